//! Checkpoint storage in a directory (Flink's `FsCheckpointStorage` layout, simplified):
//!
//! ```text
//! <dir>/chk-<id>/v<vertex>-s<subtask>.json   one file per subtask: source positions, operator state
//! <dir>/chk-<id>/_metadata                   written last: the checkpoint is complete
//! <dir>/committed/<transform>-s<subtask>    the last epoch a sink subtask committed
//! ```

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What one subtask contributes to a checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SubtaskState {
    /// Source split → position (source subtasks).
    #[serde(default)]
    pub positions: BTreeMap<u32, serde_json::Value>,
    /// Transform → its operator state.
    #[serde(default)]
    pub operators: BTreeMap<String, serde_json::Value>,
}

/// The record of a completed checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointMetadata {
    /// Checkpoint id.
    pub id: u64,
    /// `exactly-once` or `at-least-once`.
    pub mode: String,
    /// Per vertex: its head transform (a source's positions are filed under it; parsing the
    /// display name would break on transform names containing ` -> `) and its parallelism.
    pub vertices: Vec<(String, usize)>,
    /// Bytes of state written.
    pub size_bytes: u64,
    /// From the first barrier injected to the last acknowledgement (ms).
    pub duration_ms: u64,
    /// Longest barrier alignment of any subtask (ms).
    pub max_alignment_ms: u64,
}

/// A checkpoint directory.
#[derive(Debug, Clone)]
pub struct CheckpointStorage {
    dir: PathBuf,
}

impl CheckpointStorage {
    /// Storage under `dir` (created when missing).
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("committed"))
            .with_context(|| format!("creating checkpoint directory `{}`", dir.display()))?;
        Ok(CheckpointStorage {
            dir: dir.to_path_buf(),
        })
    }

    fn checkpoint_dir(&self, id: u64) -> PathBuf {
        self.dir.join(format!("chk-{id}"))
    }

    fn state_file(&self, id: u64, vertex: usize, subtask: usize) -> PathBuf {
        self.checkpoint_dir(id)
            .join(format!("v{vertex}-s{subtask}.json"))
    }

    /// Writes a subtask's state; returns its size.
    pub fn write_state(
        &self,
        id: u64,
        vertex: usize,
        subtask: usize,
        state: &SubtaskState,
    ) -> anyhow::Result<u64> {
        let path = self.state_file(id, vertex, subtask);
        std::fs::create_dir_all(self.checkpoint_dir(id))?;
        // Streamed to the file: a large state is not copied into one more buffer first.
        let tmp = path.with_extension("tmp");
        let file =
            std::fs::File::create(&tmp).with_context(|| format!("writing `{}`", tmp.display()))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        serde_json::to_writer(&mut out, state)
            .with_context(|| format!("writing `{}`", tmp.display()))?;
        let file = out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing `{}`", tmp.display()))?;
        let bytes = file
            .metadata()
            .with_context(|| format!("writing `{}`", tmp.display()))?
            .len();
        std::fs::rename(&tmp, &path).with_context(|| format!("writing `{}`", path.display()))?;
        Ok(bytes)
    }

    /// Reads a subtask's state (empty when the subtask wrote none).
    pub fn read_state(
        &self,
        id: u64,
        vertex: usize,
        subtask: usize,
    ) -> anyhow::Result<SubtaskState> {
        let path = self.state_file(id, vertex, subtask);
        if !path.exists() {
            return Ok(SubtaskState::default());
        }
        let text = std::fs::read(&path)
            .with_context(|| format!("reading checkpoint state `{}`", path.display()))?;
        serde_json::from_slice(&text)
            .with_context(|| format!("reading checkpoint state `{}`", path.display()))
    }

    /// Marks checkpoint `meta.id` complete and deletes all but the newest `retain` ones.
    pub fn complete(&self, meta: &CheckpointMetadata, retain: usize) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.checkpoint_dir(meta.id))?;
        write_atomically(
            &self.checkpoint_dir(meta.id).join("_metadata"),
            &serde_json::to_vec_pretty(meta)?,
        )?;
        let completed = self.completed()?;
        if completed.len() > retain {
            for old in &completed[..completed.len() - retain] {
                std::fs::remove_dir_all(self.checkpoint_dir(*old)).ok();
            }
        }
        Ok(())
    }

    /// Ids of completed checkpoints, oldest first.
    pub fn completed(&self) -> anyhow::Result<Vec<u64>> {
        let mut ids: Vec<u64> = std::fs::read_dir(&self.dir)
            .with_context(|| format!("listing `{}`", self.dir.display()))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let id = name.strip_prefix("chk-")?.parse::<u64>().ok()?;
                e.path().join("_metadata").exists().then_some(id)
            })
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// The highest epoch any sink subtask recorded as committed (0: none); a run that ended
    /// its input commits its final rows under an epoch after its last checkpoint.
    pub fn highest_committed_epoch(&self) -> anyhow::Result<u64> {
        let dir = self.dir.join("committed");
        let mut highest = 0;
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing `{}`", dir.display()))?
        {
            let entry = entry.with_context(|| format!("listing `{}`", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".tmp") {
                highest = highest.max(self.committed_epoch(&name));
            }
        }
        Ok(highest)
    }

    /// The highest id of any checkpoint directory, complete or abandoned (0: none).
    pub fn highest_id(&self) -> anyhow::Result<u64> {
        let mut highest = 0;
        for entry in std::fs::read_dir(&self.dir)
            .with_context(|| format!("listing `{}`", self.dir.display()))?
        {
            let entry = entry.with_context(|| format!("listing `{}`", self.dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name
                .strip_prefix("chk-")
                .and_then(|i| i.parse::<u64>().ok())
            {
                highest = highest.max(id);
            }
        }
        Ok(highest)
    }

    /// The metadata of completed checkpoint `id`.
    pub fn metadata(&self, id: u64) -> anyhow::Result<CheckpointMetadata> {
        let path = self.checkpoint_dir(id).join("_metadata");
        let text = std::fs::read(&path).with_context(|| {
            format!(
                "checkpoint {id} is not complete in `{}`",
                self.dir.display()
            )
        })?;
        serde_json::from_slice(&text).with_context(|| {
            format!(
                "checkpoint {id} is corrupt: `{}` is not valid checkpoint metadata",
                self.checkpoint_dir(id).join("_metadata").display()
            )
        })
    }

    /// Overwrites the metadata of the newest complete checkpoint with garbage (conformance
    /// schedules' `corrupt_checkpoint`, a disk fault); returns the file, or `None` without a
    /// complete checkpoint.
    pub fn corrupt_newest(&self) -> anyhow::Result<Option<PathBuf>> {
        let Some(id) = self.completed()?.last().copied() else {
            return Ok(None);
        };
        let path = self.checkpoint_dir(id).join("_metadata");
        std::fs::write(&path, b"{\"id\": \x00 damaged")
            .with_context(|| format!("damaging `{}`", path.display()))?;
        Ok(Some(path))
    }

    /// The last epoch sink `name` (transform and subtask) committed (0: none).
    pub fn committed_epoch(&self, name: &str) -> u64 {
        std::fs::read_to_string(self.dir.join("committed").join(name))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Records that sink `name` committed `epoch`.
    pub fn record_commit(&self, name: &str, epoch: u64) -> anyhow::Result<()> {
        write_atomically(
            &self.dir.join("committed").join(name),
            epoch.to_string().as_bytes(),
        )
    }
}

/// Writes through a temporary file and a rename, so a crash never leaves half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_checkpoints_with_metadata_are_complete_and_old_ones_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = CheckpointStorage::new(dir.path()).unwrap();
        let meta = |id| CheckpointMetadata {
            id,
            mode: "exactly-once".into(),
            vertices: vec![],
            size_bytes: 0,
            duration_ms: 0,
            max_alignment_ms: 0,
        };
        s.write_state(1, 0, 0, &SubtaskState::default()).unwrap();
        assert!(s.completed().unwrap().is_empty());
        for id in 1..=4 {
            s.complete(&meta(id), 2).unwrap();
        }
        s.write_state(5, 0, 0, &SubtaskState::default()).unwrap();
        assert_eq!(s.completed().unwrap(), vec![3, 4]);
        assert_eq!(s.committed_epoch("Out-s0"), 0);
        s.record_commit("Out-s0", 4).unwrap();
        assert_eq!(s.committed_epoch("Out-s0"), 4);
    }
}
