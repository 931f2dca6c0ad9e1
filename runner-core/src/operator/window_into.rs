//! `WindowInto`: assigns each element to its windows (Beam's `Window.into` /
//! `AssignWindowsDoFn`).

use super::{Operator, OperatorContext};
use crate::batch::{self, ElementMeta};
use crate::convert::batch_to_rows;
use crate::error::{ExecError, ExecResult};
use crate::window::{assign_windows, fixed_window};
use arrow::array::{Array, ArrayRef, Int64Array, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::DataType as ArrowType;
use arrow::record_batch::RecordBatch;
use std::sync::Arc;
use weir_model::window::{PaneInfo, Window, WindowFn, WindowingStrategy};
use weir_model::Schema;

/// Rewrites the window of every element per the windowing strategy: one output row per
/// assigned window (sliding windows copy an element into each of its windows), the event
/// timestamp kept, the pane reset to [`PaneInfo::NO_FIRING`]. Session windows come out as
/// proto-sessions `[ts, ts + gap)`; the aggregation downstream merges them per key.
#[derive(Debug, Clone)]
pub struct WindowIntoOperator {
    schema: Schema,
    strategy: WindowingStrategy,
}

impl WindowIntoOperator {
    /// The operator for a collection of `schema`, applying `windowing`.
    pub fn new(schema: &Schema, windowing: WindowingStrategy) -> Self {
        WindowIntoOperator {
            schema: schema.clone(),
            strategy: windowing,
        }
    }

    /// The windowing strategy applied.
    pub fn strategy(&self) -> &WindowingStrategy {
        &self.strategy
    }

    /// The batch with its elements assigned to windows. `node` names errors.
    pub fn assign(&self, batch: &RecordBatch, node: &str) -> ExecResult<RecordBatch> {
        if let Some(b) = self.assign_one_window_per_row(batch)? {
            return Ok(b);
        }
        let gaps = self.session_gaps(batch, node)?;
        let (ts, _, _) = batch::ts_and_window(batch);
        let mut rows: Vec<u32> = Vec::with_capacity(batch.num_rows());
        let mut metas: Vec<ElementMeta> = Vec::with_capacity(batch.num_rows());
        for r in 0..batch.num_rows() {
            let t = ts.value(r);
            let gap = match &gaps {
                Some(g) if g.is_null(r) => {
                    return Err(bad_gap(batch, r, t, node, "the session gap is null"))
                }
                Some(g) => Some(g.value(r)),
                None => None,
            };
            let windows = assign_windows(&self.strategy.window_fn, t, gap)
                .map_err(|m| bad_gap(batch, r, t, node, &m))?;
            for window in windows {
                rows.push(r as u32);
                metas.push(ElementMeta {
                    ts: t,
                    window,
                    pane: PaneInfo::NO_FIRING,
                });
            }
        }
        let user = batch::user_columns(batch);
        let columns: Vec<ArrayRef> = if rows.len() == batch.num_rows() {
            user.columns().to_vec()
        } else {
            let indices = UInt32Array::from(rows);
            user.columns()
                .iter()
                .map(|c| take(c.as_ref(), &indices, None))
                .collect::<Result<_, _>>()?
        };
        Ok(batch::with_meta(&self.schema, columns, &metas)?)
    }

    /// Fixed and global windows give each row one window: the window columns are computed
    /// column-wise and the user columns are kept as they are. `None` for other window
    /// functions.
    fn assign_one_window_per_row(&self, batch: &RecordBatch) -> ExecResult<Option<RecordBatch>> {
        let (ts, _, _) = batch::ts_and_window(batch);
        let (starts, ends): (ArrayRef, ArrayRef) = match &self.strategy.window_fn {
            WindowFn::Fixed { size, offset } => {
                let (size, offset) = (size.0, offset.0);
                let starts = Int64Array::from_iter_values(
                    ts.values()
                        .iter()
                        .map(|t| fixed_window(*t, size, offset).start),
                );
                let ends = Int64Array::from_iter_values(starts.values().iter().map(|s| s + size));
                (Arc::new(starts), Arc::new(ends))
            }
            WindowFn::Global => (
                Arc::new(Int64Array::from_value(Window::GLOBAL.start, ts.len())),
                Arc::new(Int64Array::from_value(Window::GLOBAL.end, ts.len())),
            ),
            _ => return Ok(None),
        };
        let user = batch::user_columns(batch);
        Ok(Some(batch::with_windows(
            &self.schema,
            user.columns().to_vec(),
            Arc::new(ts.clone()),
            starts,
            ends,
            PaneInfo::NO_FIRING,
        )?))
    }

    /// Per-row session gaps (ms) when the strategy has a gap expression.
    fn session_gaps(&self, batch: &RecordBatch, node: &str) -> ExecResult<Option<Int64Array>> {
        let WindowFn::Sessions {
            gap_expr: Some(expr),
            ..
        } = &self.strategy.window_fn
        else {
            return Ok(None);
        };
        let values = crate::eval::evaluate_in(node, expr, batch)?;
        let values = cast(&values, &ArrowType::Int64)?;
        let gaps = values
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(|| {
                ExecError::transform(node, format!("the session gap `{expr}` is not int64"))
            })?;
        Ok(Some(gaps.clone()))
    }
}

/// A session gap that cannot make a window fails the run (as in Flink's dynamic session
/// windows), naming the row, which holds the key, and its timestamp.
fn bad_gap(batch: &RecordBatch, row: usize, ts: i64, node: &str, why: &str) -> ExecError {
    let values = batch_to_rows(&batch.slice(row, 1))
        .pop()
        .map(serde_json::Value::Object)
        .unwrap_or_default();
    ExecError::transform(
        node,
        format!("{why} for the row {values} at timestamp {ts}"),
    )
}

impl Operator for WindowIntoOperator {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
    ) -> ExecResult<()> {
        let assigned = self.assign(&batch, &ctx.node)?;
        ctx.emit(None, assigned);
        Ok(())
    }
}
