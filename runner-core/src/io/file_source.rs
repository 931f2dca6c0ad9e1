#![allow(missing_docs, unused)]
use super::{Source, SourcePoll};
use crate::error::{ExecError, ExecResult};
use weir_model::{io::{BadRecordPolicy, FileFormat}, time::{Duration, Timestamp}, Schema};
pub struct FileSource;
impl FileSource { pub fn new(_node: &str, _path: &str, _f: FileFormat, _w: bool, _pi: Option<Duration>, _s: &Schema, _b: &BadRecordPolicy) -> ExecResult<Self> { Err(ExecError::Internal("not built yet".into())) } }
impl Source for FileSource {
    fn partitions(&self) -> u32 { 1 }
    fn poll(&mut self, _p: u32, _m: usize, _now: Timestamp) -> ExecResult<SourcePoll> { Ok(SourcePoll::Ended) }
    fn position(&self, _p: u32) -> serde_json::Value { serde_json::Value::Null }
    fn seek(&mut self, _p: u32, _pos: &serde_json::Value) -> ExecResult<()> { Ok(()) }
}
