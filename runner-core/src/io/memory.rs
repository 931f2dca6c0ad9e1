#![allow(missing_docs, unused)]
use super::{Sink, Source, SourcePoll};
use crate::batch::ElementMeta;
use crate::error::{ExecError, ExecResult};
use arrow::record_batch::RecordBatch;
use weir_model::{io::DeliveryGuarantee, time::Timestamp, udf::Row, Schema};
#[derive(Debug, Clone)]
pub struct RecordedRow { pub row: Row, pub meta: ElementMeta, pub visible_at: Timestamp, pub committed: bool }
#[derive(Debug, Clone, Default)]
pub struct SinkRegistry;
impl SinkRegistry { pub fn sink(&self, _name: &str) -> MemorySink { MemorySink } }
pub struct MemorySink;
impl Sink for MemorySink {
    fn write(&mut self, _b: &RecordBatch, _now: Timestamp) -> ExecResult<()> { Ok(()) }
    fn commit(&mut self, _e: u64, _now: Timestamp) -> ExecResult<()> { Ok(()) }
    fn guarantee(&self) -> DeliveryGuarantee { DeliveryGuarantee::Transactional }
}
pub struct MemorySource;
impl MemorySource { pub fn open(_name: &str, _s: &Schema) -> ExecResult<Self> { Err(ExecError::Internal("not built yet".into())) } }
impl Source for MemorySource {
    fn partitions(&self) -> u32 { 1 }
    fn poll(&mut self, _p: u32, _m: usize, _now: Timestamp) -> ExecResult<SourcePoll> { Ok(SourcePoll::Ended) }
    fn position(&self, _p: u32) -> serde_json::Value { serde_json::Value::Null }
    fn seek(&mut self, _p: u32, _pos: &serde_json::Value) -> ExecResult<()> { Ok(()) }
}
