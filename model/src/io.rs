//! Source and sink contracts: partitions with replayable positions, and sinks that declare
//! their delivery guarantee.

use crate::schema::Schema;
use crate::time::Duration;
use serde::{Deserialize, Serialize};

/// What to do with an input record that cannot be parsed or does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "on_error")]
pub enum BadRecordPolicy {
    /// Fail the run, naming the file, line and field.
    #[default]
    Fail,
    /// Route the record, with its position and the error, to the side output `tag`
    /// (collection `<transform>.<tag>`, schema [`dead_letter_schema`]).
    DeadLetter {
        /// Side output tag.
        tag: String,
    },
}

/// Schema of a dead-letter output: where the record came from, what was wrong, and the raw text.
pub fn dead_letter_schema() -> Schema {
    use crate::schema::{DataType, Field};
    Schema::new(vec![
        Field::new("source", DataType::String),
        Field::new("line", DataType::Int64),
        Field::new("error", DataType::String),
        Field::new("record", DataType::String),
    ])
}

/// File formats the built-in file sources and sinks read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// One JSON object per line.
    JsonLines,
    /// Comma-separated values with a header line.
    Csv,
    /// Plain text, one row per line, in a single `line` column.
    Text,
}

/// A source: where rows come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SourceSpec {
    /// Rows given inline (Beam's Create); one partition.
    Create {
        /// The rows, as JSON objects.
        elements: Vec<serde_json::Value>,
    },
    /// Files: one file, or every file of a directory in name order (each file a partition).
    Files {
        /// A file or directory path.
        path: String,
        /// Format of each file.
        format: FileFormat,
        /// Keep watching the directory for new files (unbounded).
        #[serde(default)]
        watch: bool,
        /// How often to look for new files when watching.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        poll_interval: Option<Duration>,
    },
    /// Generated rows `{value: i}` for `i` in `start..start+count` (or unbounded when `count` is
    /// absent), at `rate` rows per second when given; `partitions` interleaved splits.
    Sequence {
        /// First value.
        #[serde(default)]
        start: i64,
        /// Number of rows; unbounded when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
        /// Rows per second; as fast as possible when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate: Option<f64>,
        /// Number of partitions.
        #[serde(default = "one")]
        partitions: u32,
    },
    /// An in-memory test source registered by name in the running process.
    Memory {
        /// Registry name.
        name: String,
    },
}

fn one() -> u32 {
    1
}

impl SourceSpec {
    /// Whether the source ends.
    pub fn is_bounded(&self) -> bool {
        match self {
            SourceSpec::Create { .. } | SourceSpec::Memory { .. } => true,
            SourceSpec::Files { watch, .. } => !watch,
            SourceSpec::Sequence { count, .. } => count.is_some(),
        }
    }
}

/// What a sink guarantees when a runner retries or restores after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryGuarantee {
    /// Rows may be written more than once after a failure.
    AtLeastOnce,
    /// Writes are keyed by batch/epoch id, so a replayed write replaces the earlier one.
    Idempotent,
    /// Writes are staged and committed with a checkpoint (two-phase commit).
    Transactional,
}

impl DeliveryGuarantee {
    /// Whether a runner may claim exactly-once output with this sink.
    pub fn is_exactly_once(self) -> bool {
        !matches!(self, DeliveryGuarantee::AtLeastOnce)
    }
}

/// A sink: where rows go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SinkSpec {
    /// Files under a path: one file when the path has an extension and the input is bounded,
    /// otherwise a directory of part files committed per batch/epoch.
    Files {
        /// Output path.
        path: String,
        /// Format.
        format: FileFormat,
    },
    /// Pretty rows on standard output (at-least-once).
    Stdout,
    /// An in-memory test sink registered by name, recording every row with its pane.
    Memory {
        /// Registry name.
        name: String,
    },
}

impl SinkSpec {
    /// The guarantee this sink gives.
    pub fn guarantee(&self) -> DeliveryGuarantee {
        match self {
            SinkSpec::Files { .. } => DeliveryGuarantee::Idempotent,
            SinkSpec::Stdout => DeliveryGuarantee::AtLeastOnce,
            SinkSpec::Memory { .. } => DeliveryGuarantee::Transactional,
        }
    }
}

/// Which columns of windowed data a sink writes besides the data itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct SinkMetadata {
    /// Write `window_start` and `window_end` columns (default: when the input is windowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<bool>,
    /// Write `pane_timing`, `pane_index`, `pane_is_first`, `pane_is_last` columns.
    #[serde(default)]
    pub pane: bool,
}
