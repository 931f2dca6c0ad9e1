//! (being written)
#![allow(missing_docs, unused)]
use super::{Operator, OperatorContext};
use crate::error::{ExecError, ExecResult};
use arrow::record_batch::RecordBatch;
use weir_model::{plan::Plan, TransformNode, Schema, Expr, window::WatermarkStrategy};
pub struct StatelessOperator;
impl StatelessOperator { pub fn new(_plan: &Plan, _node: &TransformNode) -> ExecResult<Self> { Err(ExecError::Internal("not built yet".into())) } }
impl Operator for StatelessOperator {
    fn process_batch(&mut self, _input: usize, _batch: RecordBatch, ctx: &mut OperatorContext) -> ExecResult<()> { Err(ctx.error("not built yet")) }
}
pub struct AssignTimestampsOperator;
impl AssignTimestampsOperator { pub fn new(_schema: &Schema, _e: Expr, _w: WatermarkStrategy, _partitions: u32) -> Self { AssignTimestampsOperator } }
impl Operator for AssignTimestampsOperator {
    fn process_batch(&mut self, _input: usize, _batch: RecordBatch, ctx: &mut OperatorContext) -> ExecResult<()> { Err(ctx.error("not built yet")) }
}
