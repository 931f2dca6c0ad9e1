//! What the offset and commit logs record.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use weir_model::time::Timestamp;

/// The rows batch N reads from one source partition: `[start, end)` as the source's own
/// opaque positions, and how many rows that is (so a replay reads exactly them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionRange {
    /// Position before the batch's first row (`null`: the partition's beginning).
    pub start: serde_json::Value,
    /// Position after the batch's last row.
    pub end: serde_json::Value,
    /// Rows in the range.
    pub rows: u64,
}

/// `offsets/N`: everything that decides batch N, written before it runs (Spark's `OffsetSeq`
/// with its `OffsetSeqMetadata`). A re-run of an uncommitted batch uses exactly these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffsetEntry {
    /// The batch id.
    pub batch_id: u64,
    /// Processing time of the batch (`current_timestamp()` in Spark), ms.
    pub batch_timestamp: Timestamp,
    /// The batch's watermark (computed at the end of the previous batch; `None` until a
    /// batch with data has ended). Used for eviction and emission in this batch.
    pub batch_watermark: Option<Timestamp>,
    /// The watermark of the previous batch, used for late filtering in this batch.
    pub late_filter_watermark: Option<Timestamp>,
    /// Per watermark-defining operator, its watermark before this batch.
    pub operator_watermarks: BTreeMap<String, Timestamp>,
    /// Per source node, per partition, the range read.
    pub sources: BTreeMap<String, Vec<PartitionRange>>,
    /// A batch run because the bounded input ended: its watermark is the maximum.
    #[serde(default)]
    pub end_of_input: bool,
}

/// `commits/N`: batch N's sinks have committed; the watermark computed at its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitEntry {
    /// The batch id.
    pub batch_id: u64,
    /// The global watermark computed at the end of the batch (Spark's
    /// `CommitMetadata.nextBatchWatermarkMs`), used by the next batch.
    pub next_batch_watermark: Option<Timestamp>,
    /// Per watermark-defining operator, its watermark after the batch.
    pub operator_watermarks: BTreeMap<String, Timestamp>,
}
