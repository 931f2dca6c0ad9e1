#![allow(missing_docs, unused)]
use super::Sink;
use crate::error::{ExecError, ExecResult};
use arrow::record_batch::RecordBatch;
use weir_model::{io::{DeliveryGuarantee, FileFormat, SinkMetadata}, time::Timestamp, Schema};
pub struct FileSink;
impl FileSink { pub fn new(_node: &str, _path: &str, _f: FileFormat, _m: SinkMetadata, _s: &Schema, _w: bool) -> ExecResult<Self> { Err(ExecError::Internal("not built yet".into())) } }
impl Sink for FileSink {
    fn write(&mut self, _b: &RecordBatch, _now: Timestamp) -> ExecResult<()> { Ok(()) }
    fn commit(&mut self, _e: u64, _now: Timestamp) -> ExecResult<()> { Ok(()) }
    fn guarantee(&self) -> DeliveryGuarantee { DeliveryGuarantee::Idempotent }
}
