//! (being written)
#![allow(missing_docs, unused)]
use super::{Operator, OperatorContext};
use crate::error::{ExecError, ExecResult};
use arrow::record_batch::RecordBatch;
use weir_model::{plan::Plan, TransformNode};
pub struct StatefulOperator;
impl StatefulOperator { pub fn new(_plan: &Plan, _node: &TransformNode) -> ExecResult<Self> { Err(ExecError::Internal("stateful not built yet".into())) } }
impl Operator for StatefulOperator {
    fn process_batch(&mut self, _input: usize, _batch: RecordBatch, ctx: &mut OperatorContext) -> ExecResult<()> {
        Err(ctx.error("operator not built yet"))
    }
}
