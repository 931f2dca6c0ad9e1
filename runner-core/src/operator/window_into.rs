//! (being written)
#![allow(missing_docs, unused)]
use super::{Operator, OperatorContext};
use crate::error::{ExecError, ExecResult};
use arrow::record_batch::RecordBatch;
use weir_model::{Schema, window::WindowingStrategy};
pub struct WindowIntoOperator;
impl WindowIntoOperator { pub fn new(_schema: &Schema, _w: WindowingStrategy) -> Self { WindowIntoOperator } }
impl Operator for WindowIntoOperator {
    fn process_batch(&mut self, _input: usize, _batch: RecordBatch, ctx: &mut OperatorContext) -> ExecResult<()> {
        Err(ctx.error("operator not built yet"))
    }
}
