//! (being written)
#![allow(missing_docs, unused)]
use super::{Operator, OperatorContext};
use crate::error::{ExecError, ExecResult};
use crate::io::SinkRegistry;
use arrow::record_batch::RecordBatch;
use weir_model::{plan::Plan, TransformNode};
pub struct WriteOperator;
impl WriteOperator { pub fn new(_plan: &Plan, _node: &TransformNode, _sinks: &SinkRegistry) -> ExecResult<Self> { Err(ExecError::Internal("not built yet".into())) } }
impl Operator for WriteOperator {
    fn process_batch(&mut self, _input: usize, _batch: RecordBatch, ctx: &mut OperatorContext) -> ExecResult<()> { Err(ctx.error("not built yet")) }
}
pub struct AssertOperator;
impl AssertOperator { pub fn new(_plan: &Plan, _node: &TransformNode) -> ExecResult<Self> { Err(ExecError::Internal("not built yet".into())) } }
impl Operator for AssertOperator {
    fn process_batch(&mut self, _input: usize, _batch: RecordBatch, ctx: &mut OperatorContext) -> ExecResult<()> { Err(ctx.error("not built yet")) }
}
