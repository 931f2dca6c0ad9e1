//! Rows as JSON lines on standard output (Beam YAML's LogForTesting).

use super::format::RowFormat;
use super::Sink;
use crate::error::{ExecError, ExecResult};
use arrow::record_batch::RecordBatch;
use std::io::Write;
use weir_model::{
    io::{DeliveryGuarantee, FileFormat, SinkMetadata},
    time::Timestamp,
    Schema,
};

/// Prints each row as one JSON line (same columns as the JSON file sink), buffered between
/// commits and printed and flushed at [`Sink::commit`]. At-least-once: a replay prints again.
#[derive(Debug)]
pub struct StdoutSink {
    format: RowFormat,
    pending: Vec<u8>,
}

impl StdoutSink {
    /// A sink for rows of `schema`; `windowed` says whether window columns are written by
    /// default.
    pub fn new(metadata: SinkMetadata, schema: &Schema, windowed: bool) -> Self {
        // JSON lines accept every schema and metadata choice, so this cannot fail.
        let format = RowFormat::new("stdout", FileFormat::JsonLines, metadata, schema, windowed)
            .or_else(|_| {
                RowFormat::new(
                    "stdout",
                    FileFormat::JsonLines,
                    SinkMetadata {
                        window: Some(false),
                        pane: false,
                    },
                    schema,
                    false,
                )
            })
            .expect("JSON lines take any schema");
        StdoutSink {
            format,
            pending: Vec::new(),
        }
    }
}

impl Sink for StdoutSink {
    fn write(&mut self, batch: &RecordBatch, _now: Timestamp) -> ExecResult<()> {
        self.format.write_batch(batch, &mut self.pending)
    }

    fn commit(&mut self, _epoch: u64, _now: Timestamp) -> ExecResult<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(&self.pending)
            .map_err(|e| ExecError::io("writing to standard output", e))?;
        out.flush()
            .map_err(|e| ExecError::io("flushing standard output", e))?;
        self.pending.clear();
        Ok(())
    }

    fn guarantee(&self) -> DeliveryGuarantee {
        DeliveryGuarantee::AtLeastOnce
    }
}
