#![allow(missing_docs, unused)]
use super::Sink;
use crate::error::{ExecError, ExecResult};
use arrow::record_batch::RecordBatch;
use weir_model::{io::{DeliveryGuarantee, SinkMetadata}, time::Timestamp, Schema};
pub struct StdoutSink;
impl StdoutSink { pub fn new(_m: SinkMetadata, _s: &Schema, _w: bool) -> Self { StdoutSink } }
impl Sink for StdoutSink {
    fn write(&mut self, _b: &RecordBatch, _now: Timestamp) -> ExecResult<()> { Ok(()) }
    fn commit(&mut self, _e: u64, _now: Timestamp) -> ExecResult<()> { Ok(()) }
    fn guarantee(&self) -> DeliveryGuarantee { DeliveryGuarantee::AtLeastOnce }
}
