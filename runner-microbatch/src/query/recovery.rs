//! Restart from a checkpoint (Spark's `MicroBatchExecution.populateStartOffsets`): the
//! latest `offsets/L` and `commits/C` decide where the query resumes.
//!
//! - `C == L`: batch L is done. Sources resume after its ranges, state is version L+1, the
//!   watermark is the one `commits/L` recorded.
//! - `C == L−1` (or no commit and `L == 0`): batch L was logged but not committed; it is
//!   re-run with exactly its logged ranges, watermarks and timestamp, on state version L.
//!   Sinks whose ledger shows they committed batch L skip it.
//! - anything else, or an entry that does not parse, is refused naming the file.

use super::MicroBatchQuery;
use crate::error::{MicroBatchError, Result};
use crate::log::{CommitEntry, OffsetEntry};
use crate::watermark::WatermarkTracker;
use std::collections::BTreeSet;

impl MicroBatchQuery {
    pub(super) fn recover(&mut self) -> Result<()> {
        let Some(c) = &self.checkpoint else {
            return Ok(());
        };
        // Every entry must parse: a damaged log is reported before anything runs.
        for id in c.offsets.ids()? {
            c.offsets.get(id)?;
        }
        for id in c.commits.ids()? {
            c.commits.get(id)?;
        }
        let latest_offsets = c.offsets.latest()?;
        let latest_commit = c.commits.latest()?;
        let (l, entry) = match (latest_offsets, &latest_commit) {
            (None, None) => return Ok(()),
            (None, Some((id, _))) => {
                return Err(MicroBatchError::checkpoint(
                    c.commits.path(*id),
                    "a commit without its offsets entry",
                ))
            }
            (Some(x), _) => x,
        };
        let committed = latest_commit.as_ref().map(|(id, _)| *id);
        if let Some(sink) = &self.single_file_sink {
            // runner-core's file sink recreates a single-file target when it opens, so resuming
            // would silently lose what earlier runs committed to it.
            return Err(MicroBatchError::Unsupported {
                feature: format!("restarting with the single-file sink `{sink}`"),
                reason: format!(
                    "the checkpoint {} holds committed batches, and a single output file is recreated on start; write to a directory (a path without an extension), whose part files are committed per batch id",
                    c.dir.display()
                ),
            });
        }
        let policy = self.config.watermark_policy;
        if committed == Some(l) {
            let (_, commit) = latest_commit.expect("checked");
            self.tracker = WatermarkTracker::restore(
                policy,
                commit.operator_watermarks,
                commit.next_batch_watermark,
            );
            self.previous_batch_watermark = entry.batch_watermark;
            self.end_of_input_done = entry.end_of_input;
            self.next_batch_id = l + 1;
            self.seek_sources(&entry)?;
            self.restore_state(l + 1)?;
        } else if committed.map_or(l == 0, |c| c + 1 == l) {
            let previous: Option<CommitEntry> = match l {
                0 => None,
                _ => c.commits.get(l - 1)?,
            };
            let global = previous.as_ref().and_then(|p| p.next_batch_watermark);
            self.tracker =
                WatermarkTracker::restore(policy, entry.operator_watermarks.clone(), global);
            self.previous_batch_watermark = entry.late_filter_watermark;
            self.next_batch_id = l;
            self.restore_state(l)?;
            // A sink that guarantees exactly-once and committed batch L skips its replay (Spark's
            // sinks skip a batch id they have committed); an at-least-once sink gets it again.
            let mut skip = BTreeSet::new();
            for (sink, guarantee) in self.graph.sink_guarantees() {
                let exactly_once =
                    guarantee.is_exactly_once() && !self.config.at_least_once_sinks.contains(&sink);
                if exactly_once && self.sink_committed(&sink)?.is_some_and(|e| e >= l) {
                    skip.insert(sink);
                }
            }
            self.rerun_skip_sinks = skip;
            self.rerun = Some(entry);
        } else {
            return Err(MicroBatchError::checkpoint(
                c.offsets.path(l),
                format!(
                    "batch {l} is logged but the latest commit is {}; the logs are inconsistent",
                    committed.map_or("none".to_string(), |c| format!("commits/{c}"))
                ),
            ));
        }
        Ok(())
    }

    /// The last batch id sink `sink` committed, from its ledger.
    fn sink_committed(&self, sink: &str) -> Result<Option<u64>> {
        let Some(c) = &self.checkpoint else {
            return Ok(None);
        };
        let path = c.sink_ledger(sink);
        match std::fs::read_to_string(&path) {
            Ok(t) => t.trim().parse::<u64>().map(Some).map_err(|_| {
                MicroBatchError::checkpoint(&path, format!("corrupted sink ledger `{}`", t.trim()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(MicroBatchError::io(
                format!("reading {}", path.display()),
                e,
            )),
        }
    }

    /// Moves every source to the end of the ranges of `entry`.
    fn seek_sources(&mut self, entry: &OffsetEntry) -> Result<()> {
        for (name, s) in self.graph.sources_mut() {
            if let Some(parts) = entry.sources.get(name) {
                for (p, r) in parts.iter().enumerate() {
                    s.seek(p as u32, &r.end)?;
                }
            }
        }
        Ok(())
    }

    fn restore_state(&mut self, version: u64) -> Result<()> {
        let Some(c) = &self.checkpoint else {
            return Ok(());
        };
        let stores = c.stores.clone();
        for (name, store) in stores {
            let state = store.restore(version)?;
            self.graph.restore_state(&name, state)?;
        }
        Ok(())
    }
}
