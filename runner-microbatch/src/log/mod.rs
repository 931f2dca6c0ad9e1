//! The checkpoint's write-ahead logs, after Spark's `HDFSMetadataLog`: `offsets/N` is written
//! before batch N runs (source ranges, batch watermark, batch timestamp) and `commits/N`
//! after its sinks have committed. Each entry is one file named by the batch id, holding a
//! version line (`v1`) and one JSON document, written atomically (temp file, fsync, rename,
//! like Spark's `CheckpointFileManager.createAtomic`). An entry that does not parse is
//! reported with its path: the query refuses to start rather than guess.

mod entries;

pub use entries::{CommitEntry, OffsetEntry, PartitionRange};

use crate::error::{MicroBatchError, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs;
use std::io::Write;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// The version line every log entry starts with.
pub const LOG_VERSION: &str = "v1";

/// Writes `bytes` to `path` atomically: a temp file beside it, fsync, rename, fsync of the
/// directory. A reader sees the old file or the whole new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(dir)
        .map_err(|e| MicroBatchError::io(format!("creating {}", dir.display()), e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("entry");
    let temp = dir.join(format!(".{name}.tmp"));
    let io = |what: &str, p: &Path| {
        let context = format!("{what} {}", p.display());
        move |e| MicroBatchError::io(context, e)
    };
    let mut file = fs::File::create(&temp).map_err(io("creating", &temp))?;
    file.write_all(bytes).map_err(io("writing", &temp))?;
    file.sync_all().map_err(io("syncing", &temp))?;
    drop(file);
    fs::rename(&temp, path).map_err(io("renaming to", path))?;
    // The rename itself is durable only once the directory is synced.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A log of entries of type `T`, one file per batch id under a directory.
#[derive(Debug, Clone)]
pub struct MetadataLog<T> {
    dir: PathBuf,
    _entry: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> MetadataLog<T> {
    /// The log kept in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        MetadataLog {
            dir: dir.into(),
            _entry: PhantomData,
        }
    }

    /// The file of entry `id`.
    pub fn path(&self, id: u64) -> PathBuf {
        self.dir.join(id.to_string())
    }

    /// Writes entry `id` atomically (replacing an earlier one with the same id).
    pub fn add(&self, id: u64, entry: &T) -> Result<()> {
        let json = serde_json::to_string(entry).map_err(|e| {
            MicroBatchError::checkpoint(self.path(id), format!("cannot serialize: {e}"))
        })?;
        write_atomic(
            &self.path(id),
            format!("{LOG_VERSION}\n{json}\n").as_bytes(),
        )
    }

    /// Entry `id`, if written. A corrupted or truncated entry is an error naming its path.
    pub fn get(&self, id: u64) -> Result<Option<T>> {
        let path = self.path(id);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(MicroBatchError::io(
                    format!("reading {}", path.display()),
                    e,
                ))
            }
        };
        parse_entry(&path, &text).map(Some)
    }

    /// Ids of every entry, ascending. A file that is not named by a batch id is refused.
    pub fn ids(&self) -> Result<Vec<u64>> {
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
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry
                .map_err(|e| MicroBatchError::io(format!("listing {}", self.dir.display()), e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue; // a temp file left by a crash during `write_atomic`
            }
            match name.parse::<u64>() {
                Ok(id) => ids.push(id),
                Err(_) => {
                    return Err(MicroBatchError::checkpoint(
                        entry.path(),
                        "not a log entry (the name is not a batch id)",
                    ))
                }
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// The entry with the largest id.
    pub fn latest(&self) -> Result<Option<(u64, T)>> {
        match self.ids()?.last() {
            Some(&id) => Ok(self.get(id)?.map(|e| (id, e))),
            None => Ok(None),
        }
    }

    /// Deletes entries with ids below `id` (retention).
    pub fn purge_before(&self, id: u64) -> Result<()> {
        for old in self.ids()?.into_iter().filter(|i| *i < id) {
            let p = self.path(old);
            fs::remove_file(&p)
                .map_err(|e| MicroBatchError::io(format!("deleting {}", p.display()), e))?;
        }
        Ok(())
    }
}

fn parse_entry<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T> {
    let Some((version, json)) = text.split_once('\n') else {
        return Err(MicroBatchError::checkpoint(
            path,
            "truncated: no version line",
        ));
    };
    if version != LOG_VERSION {
        return Err(MicroBatchError::checkpoint(
            path,
            format!("unknown log version `{version}` (expected `{LOG_VERSION}`)"),
        ));
    }
    if !json.ends_with('\n') {
        return Err(MicroBatchError::checkpoint(
            path,
            "truncated: the entry does not end with a newline",
        ));
    }
    serde_json::from_str(json)
        .map_err(|e| MicroBatchError::checkpoint(path, format!("corrupted: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_and_is_listed_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let log: MetadataLog<Vec<u32>> = MetadataLog::new(dir.path().join("offsets"));
        assert_eq!(log.latest().unwrap(), None);
        log.add(0, &vec![1]).unwrap();
        log.add(10, &vec![2]).unwrap();
        log.add(2, &vec![3]).unwrap();
        assert_eq!(log.ids().unwrap(), vec![0, 2, 10]);
        assert_eq!(log.latest().unwrap(), Some((10, vec![2])));
        log.purge_before(2).unwrap();
        assert_eq!(log.ids().unwrap(), vec![2, 10]);
    }

    #[test]
    fn a_truncated_entry_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let log: MetadataLog<Vec<u32>> = MetadataLog::new(dir.path());
        log.add(3, &vec![1, 2, 3]).unwrap();
        let full = fs::read_to_string(log.path(3)).unwrap();
        fs::write(log.path(3), &full[..full.len() - 3]).unwrap();
        let err = log.get(3).unwrap_err().to_string();
        assert!(err.contains(&log.path(3).display().to_string()), "{err}");
        assert!(err.contains("truncated"), "{err}");
        fs::write(log.path(3), "v1\n{\"not\": a list}\n").unwrap();
        assert!(log.get(3).unwrap_err().to_string().contains("corrupted"));
        fs::write(log.path(3), "").unwrap();
        assert!(log.get(3).unwrap_err().to_string().contains("truncated"));
    }

    #[test]
    fn a_temp_file_left_by_a_crash_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let log: MetadataLog<u32> = MetadataLog::new(dir.path());
        log.add(0, &7).unwrap();
        fs::write(dir.path().join(".1.tmp"), "v1\n").unwrap();
        assert_eq!(log.ids().unwrap(), vec![0]);
    }
}
