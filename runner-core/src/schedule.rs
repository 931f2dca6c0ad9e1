//! Schedules: reproducible inputs on a manual processing-time clock, the common language in
//! which the conformance suite drives every runner, and the record a scheduled run returns.
//!
//! A schedule is a list of steps at processing times (milliseconds on a manual clock that
//! starts at 0). Rows are delivered to a named `Read` transform's partition without event
//! times; the pipeline's `AssignTimestamps` gives them theirs, so each runner applies its own
//! watermark rules. At the same instant, arrivals come before trigger ticks and periodic
//! watermark emissions.

use crate::io::RecordedRow;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use weir_model::plan::Plan;
use weir_model::runner::RunError;
use weir_model::time::Timestamp;
use weir_model::udf::Row;

/// A named point at which a runner can be made to crash, to reproduce a recovery path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashPoint {
    /// Micro-batch: after the sink wrote batch N, before `commits/N` is written.
    AfterSinkWriteBeforeCommitLog,
    /// Micro-batch: in the middle of running a batch.
    MidBatch,
    /// Continuous: after sinks pre-committed a checkpoint, before it completes.
    BetweenPreCommitAndCommit,
    /// Continuous: while operators snapshot their state.
    DuringSnapshot,
    /// After this many records were processed.
    AfterRecords(u64),
}

/// What happens at one instant of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Rows arrive on a partition of a `Read` transform, in order.
    Deliver {
        /// The `Read` transform.
        source: String,
        /// Its partition.
        partition: u32,
        /// The rows (user columns, no event time).
        rows: Vec<Row>,
    },
    /// A source (or every source, when `None`) has no more input.
    EndInput {
        /// The `Read` transform, or all.
        source: Option<String>,
    },
    /// Only processing time advances.
    Advance,
    /// The runner crashes at a named point (runners without recovery ignore it and say so).
    Crash {
        /// Where.
        point: CrashPoint,
    },
    /// The runner's newest checkpoint is damaged, as by a disk fault (micro-batch: its newest
    /// offset-log entry; continuous: the metadata of its newest complete checkpoint): the next
    /// restart must refuse it, naming the file, rather than silently start over.
    CorruptCheckpoint,
    /// The runner restarts from its last checkpoint, optionally at another parallelism.
    Restart {
        /// New parallelism.
        parallelism: Option<usize>,
    },
}

/// One step: an action at a processing time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Processing time (ms on the manual clock).
    pub at: Timestamp,
    /// What happens.
    pub action: Action,
}

/// A whole schedule, steps in non-decreasing time order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// The steps.
    pub steps: Vec<Step>,
}

impl Schedule {
    /// Every `(source, partition)` the schedule delivers to, with the partition count per
    /// source (highest partition + 1).
    pub fn partitions(&self) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        for s in &self.steps {
            if let Action::Deliver {
                source, partition, ..
            } = &s.action
            {
                let e = out.entry(source.clone()).or_insert(1u32);
                *e = (*e).max(partition + 1);
            }
        }
        out
    }
    /// Checks that times never go backwards.
    pub fn check_order(&self) -> Result<(), String> {
        for w in self.steps.windows(2) {
            if w[1].at < w[0].at {
                return Err(format!(
                    "step at {} ms comes after a step at {} ms",
                    w[1].at, w[0].at
                ));
            }
        }
        Ok(())
    }
}

/// A change of one transform's output watermark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkEvent {
    /// Processing time of the change.
    pub processing_time: Timestamp,
    /// The transform.
    pub node: String,
    /// Its new output watermark.
    pub watermark: Timestamp,
    /// Which run of the job (0 = first; +1 per restart after a crash): a restored job may
    /// start its watermarks again (Flink does), so they never decrease within one attempt.
    #[serde(default)]
    pub attempt: u32,
}

/// Everything a scheduled run records.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    /// Rows of each in-memory sink, with pane, visibility time and commit status.
    pub sinks: BTreeMap<String, Vec<RecordedRow>>,
    /// Output-watermark changes per transform, in order.
    pub watermarks: Vec<WatermarkEvent>,
    /// Rows dropped as late, per transform.
    pub late_dropped: BTreeMap<String, u64>,
    /// Malformed records routed to dead-letter outputs, per transform.
    pub dead_letters: BTreeMap<String, u64>,
    /// Steps the runner could not honour (e.g. a crash on a runner without recovery), with why.
    pub ignored_steps: Vec<String>,
    /// The runner stopped without acting on the end of input (e.g. Spark's one-shot trigger
    /// never runs the end-of-input batch), so windows still open were never closed.
    pub input_left_open: bool,
}

/// A runner that can execute a schedule deterministically.
pub trait ScheduledRunner {
    /// The runner's name.
    fn name(&self) -> &'static str;
    /// Runs `plan` on `schedule` with runner-specific `settings` (`key → value`).
    fn run_schedule(
        &self,
        plan: &Plan,
        schedule: &Schedule,
        settings: &BTreeMap<String, String>,
    ) -> Result<RunRecord, RunError>;
}
