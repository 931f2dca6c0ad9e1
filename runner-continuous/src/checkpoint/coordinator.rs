//! The checkpoint coordinator (Flink's `CheckpointCoordinator`): collects every subtask's
//! acknowledgement, declares a checkpoint complete once all running subtasks have
//! acknowledged it, writes its metadata, and notifies the sinks so they commit.

use super::storage::{CheckpointMetadata, CheckpointStorage};
use crate::metrics::MetricsBoard;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// What subtasks tell the coordinator.
#[derive(Debug)]
pub enum CoordinatorEvent {
    /// A subtask snapshotted checkpoint `id`.
    Ack {
        /// Checkpoint.
        id: u64,
        /// The subtask's global index.
        subtask: usize,
        /// Bytes of state it wrote.
        bytes: u64,
        /// How long its barrier alignment took (ms).
        alignment_ms: u64,
    },
    /// A subtask finished: it acknowledges every later checkpoint implicitly (its inputs
    /// ended, so no barrier reaches it any more).
    Finished {
        /// The subtask's global index.
        subtask: usize,
    },
}

/// What subtasks hold to talk to the coordinator.
#[derive(Debug, Clone)]
pub struct CoordinatorHandle {
    /// Acknowledgements and finishes.
    pub events: mpsc::UnboundedSender<CoordinatorEvent>,
    /// The latest completed checkpoint (sinks commit up to it).
    pub completed: watch::Receiver<u64>,
}

struct Pending {
    acked: BTreeSet<usize>,
    bytes: u64,
    alignment_ms: u64,
    started: Instant,
}

/// The coordinator's state.
pub struct Coordinator {
    storage: CheckpointStorage,
    mode: String,
    vertices: Vec<(String, usize)>,
    subtasks: usize,
    retain: usize,
    events: mpsc::UnboundedReceiver<CoordinatorEvent>,
    completed: watch::Sender<u64>,
    finished: BTreeSet<usize>,
    pending: BTreeMap<u64, Pending>,
    /// Metadata of the checkpoints completed in this run.
    pub history: Vec<CheckpointMetadata>,
    board: MetricsBoard,
}

impl Coordinator {
    /// A coordinator for `subtasks` subtasks, reporting to `board`; `last` is the checkpoint
    /// restored from (0: none).
    pub fn new(
        board: MetricsBoard,
        storage: CheckpointStorage,
        mode: String,
        vertices: Vec<(String, usize)>,
        subtasks: usize,
        retain: usize,
        last: u64,
    ) -> (Coordinator, CoordinatorHandle) {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (completed, completed_rx) = watch::channel(last);
        (
            Coordinator {
                storage,
                mode,
                vertices,
                subtasks,
                retain,
                events,
                completed,
                finished: BTreeSet::new(),
                pending: BTreeMap::new(),
                history: Vec::new(),
                board,
            },
            CoordinatorHandle {
                events: events_tx,
                completed: completed_rx,
            },
        )
    }

    /// Runs until every subtask has finished (or the job is cancelled).
    pub async fn run(mut self) -> anyhow::Result<Vec<CheckpointMetadata>> {
        while self.finished.len() < self.subtasks {
            let Some(event) = self.events.recv().await else {
                break;
            };
            match event {
                CoordinatorEvent::Ack {
                    id,
                    subtask,
                    bytes,
                    alignment_ms,
                } => {
                    let p = self.pending.entry(id).or_insert_with(|| Pending {
                        acked: BTreeSet::new(),
                        bytes: 0,
                        alignment_ms: 0,
                        started: Instant::now(),
                    });
                    p.acked.insert(subtask);
                    p.bytes += bytes;
                    p.alignment_ms = p.alignment_ms.max(alignment_ms);
                }
                CoordinatorEvent::Finished { subtask } => {
                    self.finished.insert(subtask);
                }
            }
            self.complete_ready()?;
        }
        Ok(self.history)
    }

    fn complete_ready(&mut self) -> anyhow::Result<()> {
        let ready: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                (0..self.subtasks).all(|s| p.acked.contains(&s) || self.finished.contains(&s))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            let p = self.pending.remove(&id).expect("listed above");
            // Older incomplete checkpoints are subsumed (Flink aborts them).
            self.pending.retain(|k, _| *k > id);
            let meta = CheckpointMetadata {
                id,
                mode: self.mode.clone(),
                vertices: self.vertices.clone(),
                size_bytes: p.bytes,
                duration_ms: p.started.elapsed().as_millis() as u64,
                max_alignment_ms: p.alignment_ms,
            };
            self.storage.complete(&meta, self.retain)?;
            self.board.checkpoint_completed(meta.clone());
            self.history.push(meta);
            self.completed.send_replace(id);
        }
        Ok(())
    }
}
