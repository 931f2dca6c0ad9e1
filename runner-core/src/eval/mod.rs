//! Vectorized evaluation of [`weir_model::Expr`] on Arrow batches. (being written)
#![allow(missing_docs, unused)]
use crate::error::{ExecError, ExecResult};
use arrow::array::ArrayRef;
use arrow::record_batch::RecordBatch;
use weir_model::Expr;

/// Evaluates `expr` over the rows of `batch` (columns looked up by name; metadata ignored).
pub fn evaluate(expr: &Expr, batch: &RecordBatch) -> ExecResult<ArrayRef> {
    Err(ExecError::Internal("eval not built yet".into()))
}
