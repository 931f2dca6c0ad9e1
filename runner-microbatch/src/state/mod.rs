//! Versioned keyed state, after Spark's `HDFSBackedStateStoreProvider`: each stateful
//! operator's state is a map from a key (text) to a JSON value; batch N commits version
//! N+1 as a delta file (`<version>.delta`: the keys changed or removed); every
//! `snapshot_every` versions a full snapshot (`<version>.snapshot`) is written too.
//! Restoring version V reads the latest snapshot at or below V and applies the deltas after
//! it. Versions older than the `retain` most recent are deleted once a snapshot newer than
//! them exists (Spark's `minBatchesToRetain`). Every file is written atomically.

use crate::error::{MicroBatchError, Result};
use crate::log::write_atomic;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The state of one operator at one version.
pub type StateMap = BTreeMap<String, Value>;

/// Changes a batch made: a new value, or `None` for a removed key.
pub type StateDelta = BTreeMap<String, Option<Value>>;

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

    /// Commits `version` = `previous` + `delta`; `full` is the whole state after the delta,
    /// written as a snapshot when [`StateStore::snapshot_due`].
    pub fn commit(&self, version: u64, delta: &StateDelta, full: Option<&StateMap>) -> Result<()> {
        let file = DeltaFile {
            version,
            changes: delta.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        write_json(&self.delta_path(version), &file)?;
        if let (true, Some(full)) = (self.snapshot_due(version), full) {
            let snap = SnapshotFile {
                version,
                entries: full.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            };
            write_json(&self.snapshot_path(version), &snap)?;
        }
        self.clean_up(version)
    }

    /// The state at `version` (version 0 is empty): latest snapshot at or below it, then
    /// the deltas after it. A missing delta or a file that does not parse is an error
    /// naming the file.
    pub fn restore(&self, version: u64) -> Result<StateMap> {
        if version == 0 {
            return Ok(StateMap::new());
        }
        let files = self.files()?;
        let base = files
            .iter()
            .filter(|(v, snap)| *snap && *v <= version)
            .map(|(v, _)| *v)
            .max();
        let mut map = StateMap::new();
        let from = match base {
            Some(v) => {
                let snap: SnapshotFile = read_json(&self.snapshot_path(v))?;
                map.extend(snap.entries);
                v + 1
            }
            None => 1,
        };
        for v in from..=version {
            let path = self.delta_path(v);
            if !path.exists() {
                return Err(MicroBatchError::checkpoint(
                    &path,
                    format!("state version {version} cannot be restored: this delta is missing"),
                ));
            }
            let delta: DeltaFile = read_json(&path)?;
            if delta.version != v {
                return Err(MicroBatchError::checkpoint(
                    &path,
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
        Ok(map)
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

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = fs::read(path)
        .map_err(|e| MicroBatchError::io(format!("reading {}", path.display()), e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        MicroBatchError::checkpoint(path, format!("corrupted or truncated state file: {e}"))
    })
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
            store.commit(v, &d, Some(&full)).unwrap();
            history.push(full.clone());
        }
        assert_eq!(store.restore(8).unwrap(), history[8]);
        assert_eq!(store.restore(7).unwrap(), history[7]);
        assert_eq!(store.restore(0).unwrap(), StateMap::new());
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
        store.commit(1, &d, None).unwrap();
        fs::write(dir.path().join("agg/1.delta"), "{\"version\": 1, \"chan").unwrap();
        let err = store.restore(1).unwrap_err().to_string();
        assert!(
            err.contains("agg/1.delta") && err.contains("corrupted"),
            "{err}"
        );
    }
}
