//! Per-operator and per-subtask metrics (Flink's `numRecordsIn/Out`, `currentOutputWatermark`,
//! `busyTimeMsPerSecond`, `idleTimeMsPerSecond`, `backPressuredTimeMsPerSecond`), and the
//! progress reports built from them.

use crate::checkpoint::CheckpointMetadata;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_model::time::{Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};

/// Counters of one transform in one subtask.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeMetrics {
    /// The transform.
    pub node: String,
    /// Rows received.
    pub records_in: u64,
    /// Rows emitted (all outputs).
    pub records_out: u64,
    /// Rows dropped as late.
    pub late_dropped: u64,
    /// Rows sent to a dead-letter output.
    pub dead_letters: u64,
    /// Rows written (sinks).
    pub rows_written: u64,
    /// The transform's current output watermark (Flink convention; `null` before any).
    pub watermark: Option<Timestamp>,
}

/// Metrics of one subtask.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SubtaskMetrics {
    /// The vertex (its chained transforms joined by ` -> `).
    pub vertex: String,
    /// Subtask index.
    pub subtask: usize,
    /// Per chained transform.
    pub nodes: Vec<NodeMetrics>,
    /// Time spent processing (ms).
    pub busy_ms: u64,
    /// Time spent waiting for input (ms).
    pub idle_ms: u64,
    /// Time spent waiting for downstream credit (ms).
    pub backpressured_ms: u64,
    /// Sends that found the receiver out of credit and waited.
    pub blocked_sends: u64,
    /// Source polls skipped because watermark alignment paused this subtask.
    pub alignment_paused_polls: u64,
    /// Most messages ever waiting in this subtask's input queue (bounded by its credits).
    pub max_queued: usize,
    /// Its input queue's capacity (credits).
    pub credits: usize,
}

/// Where subtasks publish their metrics while running, and the coordinator its completed
/// checkpoints.
#[derive(Debug, Clone, Default)]
pub struct MetricsBoard {
    slots: Arc<Mutex<Vec<SubtaskMetrics>>>,
    checkpoints: Arc<Mutex<Vec<CheckpointMetadata>>>,
}

impl MetricsBoard {
    /// A slot for a new subtask; returns its index.
    pub fn register(&self, m: SubtaskMetrics) -> usize {
        let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        s.push(m);
        s.len() - 1
    }
    /// Replaces slot `i`.
    pub fn publish(&self, i: usize, m: SubtaskMetrics) {
        let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        s[i] = m;
    }
    /// Records a completed checkpoint.
    pub fn checkpoint_completed(&self, meta: CheckpointMetadata) {
        self.checkpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(meta);
    }
    /// The checkpoints completed so far.
    pub fn checkpoints(&self) -> Vec<CheckpointMetadata> {
        self.checkpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    /// Every subtask's latest metrics.
    pub fn snapshot(&self) -> Vec<SubtaskMetrics> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Wall-time accounting of a subtask's loop.
#[derive(Debug, Default, Clone, Copy)]
pub struct TimeSplit {
    /// Processing.
    pub busy: Duration,
    /// Waiting for input.
    pub idle: Duration,
    /// Waiting for credit.
    pub backpressured: Duration,
}

/// Shows a watermark for humans: `MIN`/`MAX` as `null`/`"end"` in JSON is left to callers.
pub fn visible_watermark(w: Timestamp) -> Option<Timestamp> {
    if w <= MIN_TIMESTAMP {
        None
    } else {
        Some(w.min(MAX_TIMESTAMP))
    }
}

/// One progress report: totals per transform plus every subtask.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// Milliseconds since the job started.
    pub elapsed_ms: u64,
    /// Whether the job has finished.
    pub finished: bool,
    /// Per subtask.
    pub subtasks: Vec<SubtaskMetrics>,
    /// Checkpoints completed so far (id, duration, size, alignment).
    pub checkpoints: Vec<CheckpointMetadata>,
}

impl Progress {
    /// The progress line shown in a terminal.
    pub fn line(&self) -> String {
        let mut per_node: Vec<(String, u64, u64)> = Vec::new();
        for s in &self.subtasks {
            for n in &s.nodes {
                match per_node.iter_mut().find(|(name, _, _)| *name == n.node) {
                    Some(e) => {
                        e.1 += n.records_in;
                        e.2 += n.records_out;
                    }
                    None => per_node.push((n.node.clone(), n.records_in, n.records_out)),
                }
            }
        }
        let backpressured: u64 = self.subtasks.iter().map(|s| s.backpressured_ms).sum();
        let nodes: Vec<String> = per_node
            .iter()
            .map(|(n, i, o)| format!("{n} {i}/{o}"))
            .collect();
        let checkpoint = match self.checkpoints.last() {
            Some(c) => format!(
                " | checkpoint {} ({} B, {} ms)",
                c.id, c.size_bytes, c.duration_ms
            ),
            None => String::new(),
        };
        format!(
            "[{:>6.1}s] {} | backpressured {} ms{checkpoint}",
            self.elapsed_ms as f64 / 1000.0,
            nodes.join(", "),
            backpressured
        )
    }
}
