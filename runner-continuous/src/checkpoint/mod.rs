//! Asynchronous barrier snapshots (Flink's checkpointing): sources inject barriers and
//! snapshot their positions; operators align barriers ([`BarrierAligner`]) and snapshot their
//! state; sinks pre-commit at the barrier and commit when the [`coordinator`] declares the
//! checkpoint complete ([`TwoPhaseCommitSink`]); a restore brings back positions, state and
//! pending transactions from the [`CheckpointStorage`].

pub mod aligner;
pub mod coordinator;
pub mod restore;
pub mod sink;
pub mod storage;

pub use aligner::{BarrierAction, BarrierAligner, CheckpointMode};
pub use coordinator::{Coordinator, CoordinatorEvent, CoordinatorHandle};
pub use restore::Restored;
pub use sink::TwoPhaseCommitSink;
pub use storage::{CheckpointMetadata, CheckpointStorage, SubtaskState};

use anyhow::bail;
use std::path::PathBuf;
use weir_model::plan::Plan;
use weir_model::transform::Transform;

/// A named point where a deterministic run fails on purpose, to exercise recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillPoint {
    /// Source subtask 0 fails once it has emitted this many records.
    AfterRecords(u64),
    /// A sink fails after checkpoint `id` completed, before committing it (between
    /// pre-commit and commit).
    BeforeCommit(u64),
    /// A keyed operator fails while snapshotting checkpoint `id` (before acknowledging it).
    DuringSnapshot(u64),
}

impl KillPoint {
    /// Parses `after-records:N`, `before-commit:ID` or `during-snapshot:ID`.
    pub fn parse(text: &str) -> anyhow::Result<KillPoint> {
        let (name, n) = text
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("kill point `{text}` is not NAME:NUMBER"))?;
        let n: u64 = n
            .parse()
            .map_err(|_| anyhow::anyhow!("kill point `{text}`: `{n}` is not a number"))?;
        Ok(match name {
            "after-records" => KillPoint::AfterRecords(n),
            "before-commit" => KillPoint::BeforeCommit(n),
            "during-snapshot" => KillPoint::DuringSnapshot(n),
            _ => {
                bail!("unknown kill point `{name}` (after-records, before-commit, during-snapshot)")
            }
        })
    }
}

/// The failure a kill point raises.
#[derive(Debug, thiserror::Error)]
#[error("killed at kill point {0:?}")]
pub struct Killed(pub KillPoint);

/// Checkpointing settings.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// Time between checkpoints (processing time, ms).
    pub interval_ms: i64,
    /// Where checkpoints are stored.
    pub dir: PathBuf,
    /// Barrier alignment.
    pub mode: CheckpointMode,
    /// Completed checkpoints kept.
    pub retain: usize,
    /// Restore from the latest completed checkpoint (`Some(None)`) or a given one.
    pub restore: Option<Option<u64>>,
    /// Fail on purpose here.
    pub kill: Option<KillPoint>,
}

/// Refuses checkpointing for a plan with a transform whose state cannot be snapshotted,
/// naming it: an assertion keeps every row it saw and has no snapshot.
pub fn check_checkpointable(plan: &Plan) -> anyhow::Result<()> {
    for node in &plan.pipeline.transforms {
        if matches!(node.transform, Transform::AssertEqual { .. }) {
            bail!(
                "the continuous runner cannot checkpoint `{}` ({}): it keeps every row it saw without a snapshot; run without --checkpoint-interval",
                node.name,
                node.transform.type_name()
            );
        }
    }
    Ok(())
}
