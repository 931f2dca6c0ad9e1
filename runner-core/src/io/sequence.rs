#![allow(missing_docs, unused)]
use super::{Source, SourcePoll};
use crate::error::{ExecError, ExecResult};
use weir_model::{time::Timestamp, Schema};
pub struct SequenceSource;
impl SequenceSource { pub fn new(_s: &Schema, _start: i64, _count: Option<u64>, _rate: Option<f64>, _p: u32) -> ExecResult<Self> { Err(ExecError::Internal("not built yet".into())) } }
impl Source for SequenceSource {
    fn partitions(&self) -> u32 { 1 }
    fn poll(&mut self, _p: u32, _m: usize, _now: Timestamp) -> ExecResult<SourcePoll> { Ok(SourcePoll::Ended) }
    fn position(&self, _p: u32) -> serde_json::Value { serde_json::Value::Null }
    fn seek(&mut self, _p: u32, _pos: &serde_json::Value) -> ExecResult<()> { Ok(()) }
}
