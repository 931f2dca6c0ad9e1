//! Per-batch progress, like Spark's `StreamingQueryProgress`: batch id, input rows and
//! rates, time per phase, watermarks, state rows and bytes, rows dropped by the watermark.
//! Written as a line on stderr while running and as JSON lines with `--progress-json`.

use crate::exec::NodeMetrics;
use crate::log::PartitionRange;
use serde::Serialize;
use std::collections::BTreeMap;
use weir_model::time::{Timestamp, MAX_TIMESTAMP};
use weir_runner_core::eval::format_timestamp_millis;

/// Why a batch ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchKind {
    /// New rows arrived.
    Data,
    /// No rows, but the watermark advanced past what stateful operators hold.
    NoData,
    /// The bounded input ended: the watermark goes to the maximum so every window closes.
    EndOfInput,
}

/// Milliseconds spent per phase of a batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PhaseDurations {
    /// Reading source ranges.
    pub read_ms: f64,
    /// Writing `offsets/N`.
    pub offset_log_ms: f64,
    /// Running the stages.
    pub process_ms: f64,
    /// State store, sink commits and `commits/N`.
    pub commit_ms: f64,
    /// The whole batch.
    pub total_ms: f64,
}

/// One stateful operator's figures after a batch (Spark's `StateOperatorProgress`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateOperatorProgress {
    /// The transform.
    pub name: String,
    /// Rows of state.
    pub num_rows_total: u64,
    /// Estimated bytes of state.
    pub memory_used_bytes: u64,
    /// Late rows dropped in this batch.
    pub num_rows_dropped_by_watermark: u64,
}

/// Progress of one batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchProgress {
    /// Batch id.
    pub batch_id: u64,
    /// Why it ran.
    pub kind: BatchKind,
    /// Whether it re-ran a batch logged but not committed before a restart.
    pub rerun: bool,
    /// Batch timestamp (processing time, ms).
    pub timestamp: Timestamp,
    /// Rows read.
    pub num_input_rows: u64,
    /// Rows read per second of time since the previous batch started.
    pub input_rows_per_second: f64,
    /// Rows read per second of this batch's processing.
    pub processed_rows_per_second: f64,
    /// Time per phase.
    pub duration_ms: PhaseDurations,
    /// Eviction/emission watermark of the batch (`null`: none yet).
    pub watermark: Option<Timestamp>,
    /// Late-filter watermark of the batch.
    pub late_filter_watermark: Option<Timestamp>,
    /// Watermark computed at the batch's end, for the next batch.
    pub next_watermark: Option<Timestamp>,
    /// Stateful operators.
    pub state_operators: Vec<StateOperatorProgress>,
    /// Per source, per partition, the range read.
    pub sources: BTreeMap<String, Vec<PartitionRange>>,
    /// Per node counters of this batch.
    pub nodes: BTreeMap<String, NodeMetrics>,
}

impl BatchProgress {
    /// The one-line summary printed on stderr.
    pub fn line(&self) -> String {
        let wm = |w: Option<Timestamp>| match w {
            None => "-".to_string(),
            Some(w) if w >= MAX_TIMESTAMP => "max".to_string(),
            Some(w) => format_timestamp_millis(w).unwrap_or_else(|| w.to_string()),
        };
        let state: u64 = self.state_operators.iter().map(|s| s.num_rows_total).sum();
        let dropped: u64 = self
            .state_operators
            .iter()
            .map(|s| s.num_rows_dropped_by_watermark)
            .sum();
        format!(
            "batch {} [{}{}]: {} rows in {:.1} ms ({:.0} rows/s), watermark {}, next {}, state {} rows, dropped late {}",
            self.batch_id,
            match self.kind {
                BatchKind::Data => "data",
                BatchKind::NoData => "no-data",
                BatchKind::EndOfInput => "end-of-input",
            },
            if self.rerun { ", re-run" } else { "" },
            self.num_input_rows,
            self.duration_ms.total_ms,
            self.processed_rows_per_second,
            wm(self.watermark),
            wm(self.next_watermark),
            state,
            dropped,
        )
    }
}
