//! The commit manifest of a file-sink directory (Spark's `_spark_metadata` file-sink log):
//! `<dir>/_weir_metadata/<epoch:020>.json` lists the files an epoch committed.
//!
//! - A sink writes its data files first (through a hidden temp file and a rename), then
//!   commits the epoch by writing its manifest entry, again through a temp file and an
//!   atomic rename. A crash in between leaves files that no entry lists: readers that
//!   honour the manifest never see them, and the replayed epoch rewrites them.
//! - An epoch that already has an entry is committed: a replay of it is skipped, so no file
//!   is ever listed twice.
//! - Readers list the directory's committed files as the union of every entry's files.
//!
//! Unlike Spark, the log is not compacted: one small entry per epoch that wrote rows.

use crate::error::{ExecError, ExecResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The manifest folder inside a sink directory.
pub const METADATA_DIR: &str = "_weir_metadata";

/// Version written in every entry.
pub const MANIFEST_VERSION: u32 = 1;

/// One committed epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Format version (1).
    pub version: u32,
    /// The batch id or checkpoint id committed.
    pub epoch: u64,
    /// The files it committed, relative to the sink directory.
    pub files: Vec<ManifestFile>,
}

/// One committed data file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// File name, relative to the sink directory.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// The manifest of one sink directory.
#[derive(Debug, Clone)]
pub struct Manifest {
    dir: PathBuf,
}

impl Manifest {
    /// The manifest of sink directory `root` (its folder is created on the first commit).
    pub fn new(root: &Path) -> Self {
        Manifest {
            dir: root.join(METADATA_DIR),
        }
    }

    /// The manifest of `root` when it has one (a directory written by a manifest sink).
    pub fn existing(root: &Path) -> Option<Self> {
        let m = Manifest::new(root);
        m.dir.is_dir().then_some(m)
    }

    fn entry_path(&self, epoch: u64) -> PathBuf {
        self.dir.join(format!("{epoch:020}.json"))
    }

    /// Whether `epoch` is committed.
    pub fn contains(&self, epoch: u64) -> bool {
        self.entry_path(epoch).is_file()
    }

    /// Commits `entry` atomically. Returns `false` (and writes nothing) when its epoch was
    /// already committed.
    pub fn commit(&self, entry: &ManifestEntry) -> ExecResult<bool> {
        if self.contains(entry.epoch) {
            return Ok(false);
        }
        fs::create_dir_all(&self.dir)
            .map_err(|e| ExecError::io(format!("creating {}", self.dir.display()), e))?;
        let target = self.entry_path(entry.epoch);
        let temp = self.dir.join(format!(".{:020}.json.tmp", entry.epoch));
        let text =
            serde_json::to_vec(entry).map_err(|e| ExecError::Internal(format!("manifest: {e}")))?;
        write_synced(&temp, &text)?;
        fs::rename(&temp, &target)
            .map_err(|e| ExecError::io(format!("renaming to {}", target.display()), e))?;
        sync_dir(&self.dir);
        Ok(true)
    }

    /// Every committed entry, in epoch order. Temp files and other names are ignored.
    pub fn entries(&self) -> ExecResult<Vec<ManifestEntry>> {
        let listing = |e| ExecError::io(format!("listing {}", self.dir.display()), e);
        let mut out = Vec::new();
        let read_dir = match fs::read_dir(&self.dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(listing(e)),
        };
        for item in read_dir {
            let item = item.map_err(listing)?;
            let name = item.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            if stem.parse::<u64>().is_err() {
                continue;
            }
            let path = item.path();
            let text = fs::read(&path)
                .map_err(|e| ExecError::io(format!("reading {}", path.display()), e))?;
            let entry: ManifestEntry = serde_json::from_slice(&text).map_err(|e| {
                ExecError::Internal(format!("corrupt manifest entry {}: {e}", path.display()))
            })?;
            out.push(entry);
        }
        out.sort_by_key(|e| e.epoch);
        Ok(out)
    }

    /// Names of every committed file.
    pub fn committed_files(&self) -> ExecResult<BTreeSet<String>> {
        Ok(self
            .entries()?
            .into_iter()
            .flat_map(|e| e.files.into_iter().map(|f| f.path))
            .collect())
    }
}

/// Writes `bytes` to `path` and syncs it to disk.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> ExecResult<()> {
    let io = |what: &str| {
        let what = format!("{what} {}", path.display());
        move |e| ExecError::io(what, e)
    };
    let mut f = File::create(path).map_err(io("creating"))?;
    f.write_all(bytes).map_err(io("writing"))?;
    f.sync_all().map_err(io("syncing"))
}

/// Makes renames inside `dir` durable (best effort: not every platform can sync a folder).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(epoch: u64, files: &[&str]) -> ManifestEntry {
        ManifestEntry {
            version: MANIFEST_VERSION,
            epoch,
            files: files
                .iter()
                .map(|f| ManifestFile {
                    path: f.to_string(),
                    rows: 1,
                    bytes: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn an_epoch_commits_once_and_readers_see_only_committed_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Manifest::existing(dir.path()).is_none());
        let m = Manifest::new(dir.path());
        assert!(m.commit(&entry(3, &["part-00003.parquet"])).unwrap());
        assert!(!m.commit(&entry(3, &["other.parquet"])).unwrap());
        assert!(m.commit(&entry(1, &["part-00001.parquet"])).unwrap());
        // A half-written entry of a crashed commit is not an entry.
        fs::write(
            dir.path()
                .join(METADATA_DIR)
                .join(".00000000000000000004.json.tmp"),
            b"{",
        )
        .unwrap();
        let m = Manifest::existing(dir.path()).unwrap();
        let epochs: Vec<u64> = m.entries().unwrap().iter().map(|e| e.epoch).collect();
        assert_eq!(epochs, [1, 3]);
        assert_eq!(
            m.committed_files().unwrap().into_iter().collect::<Vec<_>>(),
            ["part-00001.parquet", "part-00003.parquet"]
        );
        assert!(m.contains(3) && !m.contains(4));
    }
}
