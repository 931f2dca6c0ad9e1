//! Versioned keyed state, after Spark's `HDFSBackedStateStoreProvider`: each stateful
//! operator's state is a map from a key (text) to a JSON value; batch N commits version
//! N+1 as a delta file (`<version>.delta`: the keys changed or removed); every
//! `snapshot_every` versions a full snapshot (`<version>.snapshot`) is written too.
//! Restoring version V reads the latest snapshot at or below V and applies the deltas after
//! it. Versions older than the `retain` most recent are deleted once a snapshot newer than
//! them exists (Spark's `minBatchesToRetain`). Every file is written atomically.

use crate::error::{MicroBatchError, Result};
use crate::log::write_atomic;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use arrow::ipc::CompressionType;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The state of one operator at one version.
pub type StateMap = BTreeMap<String, Value>;

/// Changes a batch made: a new value, or `None` for a removed key.
pub type StateDelta = BTreeMap<String, Option<Value>>;

/// Schema metadata of a columnar delta: the eviction watermark of its batch (decimal
/// milliseconds); restoring the delta removes the windows expired at it.
pub const EVICTED_AT: &str = "weir.evicted_at";

/// The first bytes of an Arrow IPC file (how a columnar state file is told from JSON).
const ARROW_MAGIC: &[u8] = b"ARROW1";

/// One version's changes to an operator's state, in the form the operator keeps it.
#[derive(Debug, Clone)]
pub enum StateChanges {
    /// JSON entries by key; `full` is the whole state after the changes, when a snapshot is
    /// due.
    Entries {
        /// Changed and removed keys.
        delta: StateDelta,
        /// The whole state, for a snapshot.
        full: Option<StateMap>,
    },
    /// Columnar state: the rows upserted (with [`EVICTED_AT`] in the schema metadata when
    /// the batch evicted windows), and the whole state when a snapshot is due; one batch per
    /// shard, written to one file.
    Columnar {
        /// Rows upserted, plus the eviction watermark.
        delta: Vec<RecordBatch>,
        /// The whole state, for a snapshot.
        full: Option<Vec<RecordBatch>>,
    },
}

/// A restored version of an operator's state.
#[derive(Debug, Clone)]
pub enum RestoredState {
    /// JSON entries by key.
    Entries(StateMap),
    /// Columnar state: the base snapshot (if any) then each later delta, to apply in order.
    Columnar(Vec<RecordBatch>),
}

impl StateChanges {
    /// The changes of every shard of operator `node` as one: JSON entries are unique across
    /// shards; columnar batches are concatenated, with the latest eviction watermark.
    pub fn merge(node: &str, parts: Vec<StateChanges>) -> Result<StateChanges> {
        let mixed = || {
            MicroBatchError::Exec(weir_runner_core::ExecError::Internal(format!(
                "`{node}`: shards keep state in different forms"
            )))
        };
        let mut parts = parts.into_iter();
        let Some(mut merged) = parts.next() else {
            return Ok(StateChanges::Entries {
                delta: StateDelta::new(),
                full: None,
            });
        };
        for part in parts {
            match (&mut merged, part) {
                (
                    StateChanges::Entries { delta, full },
                    StateChanges::Entries { delta: d, full: f },
                ) => {
                    delta.extend(d);
                    if let (Some(full), Some(f)) = (full.as_mut(), f) {
                        full.extend(f);
                    }
                }
                (
                    StateChanges::Columnar { delta, full },
                    StateChanges::Columnar { delta: d, full: f },
                ) => {
                    delta.extend(d);
                    if let (Some(full), Some(f)) = (full.as_mut(), f) {
                        full.extend(f);
                    }
                }
                _ => return Err(mixed()),
            }
        }
        Ok(merged)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct DeltaFile {
    version: u64,
    changes: Vec<(String, Option<Value>)>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotFile {
    version: u64,
    entries: Vec<(String, Value)>,
}

/// How the state store keeps versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateStoreConfig {
    /// Write a full snapshot every this many versions (Spark's
    /// `stateStore.minDeltasForSnapshot`, default 10).
    pub snapshot_every: u64,
    /// Keep at least this many recent versions restorable (Spark's `minBatchesToRetain`,
    /// default 100).
    pub retain: u64,
}

impl Default for StateStoreConfig {
    fn default() -> Self {
        StateStoreConfig {
            snapshot_every: 10,
            retain: 100,
        }
    }
}

/// The versioned state of one stateful operator, in `<checkpoint>/state/<operator>/`.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
    config: StateStoreConfig,
}

impl StateStore {
    /// The store of operator `operator` under the checkpoint's `state` directory.
    pub fn new(state_dir: &Path, operator: &str, config: StateStoreConfig) -> Self {
        StateStore {
            dir: state_dir.join(operator),
            config,
        }
    }

    fn delta_path(&self, version: u64) -> PathBuf {
        self.dir.join(format!("{version}.delta"))
    }

    fn snapshot_path(&self, version: u64) -> PathBuf {
        self.dir.join(format!("{version}.snapshot"))
    }

    /// Whether committing `version` writes a snapshot too (the caller then passes the whole
    /// state to [`StateStore::commit`]).
    pub fn snapshot_due(&self, version: u64) -> bool {
        version % self.config.snapshot_every.max(1) == 0
    }

    /// Commits `version` = `previous` + the changes; their `full` state is written as a
    /// snapshot when [`StateStore::snapshot_due`].
    pub fn commit(&self, version: u64, changes: &StateChanges) -> Result<()> {
        let snapshot_due = self.snapshot_due(version);
        match changes {
            StateChanges::Entries { delta, full } => {
                let file = DeltaFile {
                    version,
                    changes: delta.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                };
                write_json(&self.delta_path(version), &file)?;
                if let (true, Some(full)) = (snapshot_due, full) {
                    let snap = SnapshotFile {
                        version,
                        entries: full.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    };
                    write_json(&self.snapshot_path(version), &snap)?;
                }
            }
            StateChanges::Columnar { delta, full } => {
                write_arrow(&self.delta_path(version), delta)?;
                if let (true, Some(full)) = (snapshot_due, full) {
                    write_arrow(&self.snapshot_path(version), full)?;
                }
            }
        }
        self.clean_up(version)
    }

    /// The state at `version` (version 0 is empty): latest snapshot at or below it, then
    /// the deltas after it. A missing delta or a file that does not parse is an error
    /// naming the file.
    pub fn restore(&self, version: u64) -> Result<RestoredState> {
        if version == 0 {
            return Ok(RestoredState::Entries(StateMap::new()));
        }
        let files = self.files()?;
        let base = files
            .iter()
            .filter(|(v, snap)| *snap && *v <= version)
            .map(|(v, _)| *v)
            .max();
        let mut paths = Vec::new();
        if let Some(v) = base {
            paths.push(self.snapshot_path(v));
        }
        for v in base.map_or(1, |b| b + 1)..=version {
            let path = self.delta_path(v);
            if !path.exists() {
                return Err(MicroBatchError::checkpoint(
                    &path,
                    format!("state version {version} cannot be restored: this delta is missing"),
                ));
            }
            paths.push(path);
        }
        let mut contents = Vec::with_capacity(paths.len());
        for p in &paths {
            contents.push(
                fs::read(p)
                    .map_err(|e| MicroBatchError::io(format!("reading {}", p.display()), e))?,
            );
        }
        let columnar = contents.first().is_some_and(|c| c.starts_with(ARROW_MAGIC));
        if columnar {
            let mut batches = Vec::new();
            for (p, c) in paths.iter().zip(contents) {
                batches.extend(read_arrow(p, c)?);
            }
            return Ok(RestoredState::Columnar(batches));
        }
        let mut map = StateMap::new();
        let mut from = 0;
        if base.is_some() {
            let snap: SnapshotFile = parse_json(&paths[0], &contents[0])?;
            map.extend(snap.entries);
            from = 1;
        }
        let first_delta = base.map_or(1, |b| b + 1);
        for (i, (path, bytes)) in paths.iter().zip(&contents).enumerate().skip(from) {
            let v = first_delta + (i - from) as u64;
            let delta: DeltaFile = parse_json(path, bytes)?;
            if delta.version != v {
                return Err(MicroBatchError::checkpoint(
                    path,
                    format!("holds version {}, expected {v}", delta.version),
                ));
            }
            for (k, val) in delta.changes {
                match val {
                    Some(val) => map.insert(k, val),
                    None => map.remove(&k),
                };
            }
        }
        Ok(RestoredState::Entries(map))
    }

    /// (version, is snapshot) of every file, ascending.
    fn files(&self) -> Result<Vec<(u64, bool)>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(MicroBatchError::io(
                    format!("listing {}", self.dir.display()),
                    e,
                ))
            }
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(v) = name.strip_suffix(".delta").and_then(|v| v.parse().ok()) {
                out.push((v, false));
            } else if let Some(v) = name.strip_suffix(".snapshot").and_then(|v| v.parse().ok()) {
                out.push((v, true));
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Deletes files no longer needed to restore any of the `retain` most recent versions.
    fn clean_up(&self, latest: u64) -> Result<()> {
        let oldest_kept = latest.saturating_sub(self.config.retain.saturating_sub(1));
        let files = self.files()?;
        // The snapshot the oldest kept version restores from must stay, with what follows.
        let Some(base) = files
            .iter()
            .filter(|(v, s)| *s && *v <= oldest_kept)
            .map(|(v, _)| *v)
            .max()
        else {
            return Ok(());
        };
        for (v, snap) in files {
            if v < base || (v == base && !snap) {
                let p = if snap {
                    self.snapshot_path(v)
                } else {
                    self.delta_path(v)
                };
                fs::remove_file(&p)
                    .map_err(|e| MicroBatchError::io(format!("deleting {}", p.display()), e))?;
            }
        }
        Ok(())
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let json = serde_json::to_vec(value)
        .map_err(|e| MicroBatchError::checkpoint(path, format!("cannot serialize: {e}")))?;
    write_atomic(path, &json)
}

fn parse_json<T: for<'de> Deserialize<'de>>(path: &Path, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        MicroBatchError::checkpoint(path, format!("corrupted or truncated state file: {e}"))
    })
}

/// Writes `batches` (one schema, up to the [`EVICTED_AT`] metadata, which every batch of a
/// delta has alike or not at all) as one LZ4-compressed Arrow IPC file.
fn write_arrow(path: &Path, batches: &[RecordBatch]) -> Result<()> {
    let fail = |e: arrow::error::ArrowError| {
        MicroBatchError::checkpoint(path, format!("cannot serialize: {e}"))
    };
    let Some(first) = batches.first() else {
        return Err(MicroBatchError::checkpoint(path, "no state batch to write"));
    };
    let schema = batches
        .iter()
        .map(|b| b.schema())
        .find(|s| s.metadata().contains_key(EVICTED_AT))
        .unwrap_or_else(|| first.schema());
    let options = IpcWriteOptions::default()
        .try_with_compression(Some(CompressionType::LZ4_FRAME))
        .map_err(fail)?;
    let mut writer =
        FileWriter::try_new_with_options(Vec::new(), &schema, options).map_err(fail)?;
    for b in batches {
        writer
            .write(&b.clone().with_schema(schema.clone()).map_err(fail)?)
            .map_err(fail)?;
    }
    writer.finish().map_err(fail)?;
    let bytes = writer.into_inner().map_err(fail)?;
    write_atomic(path, &bytes)
}

fn read_arrow(path: &Path, bytes: Vec<u8>) -> Result<Vec<RecordBatch>> {
    let corrupt = |e: arrow::error::ArrowError| {
        MicroBatchError::checkpoint(path, format!("corrupted or truncated state file: {e}"))
    };
    if !bytes.starts_with(ARROW_MAGIC) {
        return Err(MicroBatchError::checkpoint(
            path,
            "a JSON state file among columnar ones: corrupted, or written by another version",
        ));
    }
    FileReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(corrupt)?
        .map(|b| b.map_err(corrupt))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn delta(changes: &[(&str, Option<i64>)]) -> StateDelta {
        changes
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(Value::from)))
            .collect()
    }

    fn entries(s: RestoredState) -> StateMap {
        match s {
            RestoredState::Entries(m) => m,
            RestoredState::Columnar(_) => panic!("columnar"),
        }
    }

    fn apply(map: &mut StateMap, d: &StateDelta) {
        for (k, v) in d {
            match v {
                Some(v) => map.insert(k.clone(), v.clone()),
                None => map.remove(k),
            };
        }
    }

    #[test]
    fn restore_is_latest_snapshot_plus_deltas_and_old_versions_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(
            dir.path(),
            "agg",
            StateStoreConfig {
                snapshot_every: 3,
                retain: 2,
            },
        );
        let mut full = StateMap::new();
        let mut history = vec![full.clone()];
        for v in 1..=8u64 {
            let d = delta(&[
                (&format!("k{}", v % 4), Some(v as i64)),
                (&format!("k{}", (v + 2) % 4), None),
            ]);
            apply(&mut full, &d);
            store
                .commit(
                    v,
                    &StateChanges::Entries {
                        delta: d,
                        full: Some(full.clone()),
                    },
                )
                .unwrap();
            history.push(full.clone());
        }
        assert_eq!(entries(store.restore(8).unwrap()), history[8]);
        assert_eq!(entries(store.restore(7).unwrap()), history[7]);
        assert_eq!(entries(store.restore(0).unwrap()), StateMap::new());
        // Snapshot 6 covers versions 7 and 8: everything before it is gone.
        assert!(!dir.path().join("agg/3.snapshot").exists());
        assert!(!dir.path().join("agg/5.delta").exists());
        assert!(dir.path().join("agg/6.snapshot").exists());
        assert!(store.restore(4).is_err());
        assert_eq!(history[8].get("k0"), Some(&json!(8)));
    }

    #[test]
    fn a_corrupted_delta_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path(), "agg", StateStoreConfig::default());
        let d = delta(&[("a", Some(1))]);
        store
            .commit(
                1,
                &StateChanges::Entries {
                    delta: d,
                    full: None,
                },
            )
            .unwrap();
        fs::write(dir.path().join("agg/1.delta"), "{\"version\": 1, \"chan").unwrap();
        let err = store.restore(1).unwrap_err().to_string();
        assert!(
            err.contains("agg/1.delta") && err.contains("corrupted"),
            "{err}"
        );
    }

    #[test]
    fn columnar_versions_restore_as_their_batches_and_a_truncated_one_is_reported() {
        use arrow::array::{ArrayRef, Int64Array};
        use arrow::datatypes::{DataType, Field, Schema};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(
            dir.path(),
            "agg",
            StateStoreConfig {
                snapshot_every: 2,
                retain: 10,
            },
        );
        let batch = |v: i64, evicted_at: Option<i64>| {
            let metadata: std::collections::HashMap<String, String> = evicted_at
                .map(|w| [(EVICTED_AT.to_string(), w.to_string())].into())
                .unwrap_or_default();
            let schema =
                Schema::new_with_metadata(vec![Field::new("k", DataType::Int64, false)], metadata);
            let col: ArrayRef = Arc::new(Int64Array::from(vec![v]));
            RecordBatch::try_new(Arc::new(schema), vec![col]).unwrap()
        };
        for v in 1..=3 {
            let changes = StateChanges::Columnar {
                // Two shards: one with the eviction watermark, one without rows.
                delta: vec![batch(v, Some(v * 10)), batch(v, Some(v * 10)).slice(0, 0)],
                full: Some(vec![batch(100 + v, None)]),
            };
            store.commit(v as u64, &changes).unwrap();
        }
        // Version 3: the snapshot of version 2, then delta 3.
        let RestoredState::Columnar(batches) = store.restore(3).unwrap() else {
            panic!("not columnar")
        };
        let values: Vec<(i64, Option<String>)> = batches
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| {
                (
                    b.column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .unwrap()
                        .value(0),
                    b.schema().metadata().get(EVICTED_AT).cloned(),
                )
            })
            .collect();
        assert_eq!(values, vec![(102, None), (3, Some("30".to_string()))]);
        let path = dir.path().join("agg/3.delta");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = store.restore(3).unwrap_err().to_string();
        assert!(
            err.contains("agg/3.delta") && err.contains("corrupted"),
            "{err}"
        );
    }
}
