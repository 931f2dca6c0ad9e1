//! Two-phase commit for sinks (Flink's `TwoPhaseCommitSinkFunction`): rows since the last
//! barrier form the open transaction; at a barrier it is pre-committed (kept, and written
//! into the checkpoint so a restore can finish it); when the coordinator declares that
//! checkpoint complete the transaction is written to the sink and committed with the
//! checkpoint id as its epoch. On restore, pending transactions the sink has not committed
//! yet are committed (idempotently: a commit marker records the last epoch committed);
//! the open transaction of a failed run is lost with it, i.e. aborted.

use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use weir_model::udf::Row;
use weir_model::window::{PaneInfo, Window};
use weir_model::Schema;
use weir_runner_core::batch::{metas, timing_code, timing_from_code, with_meta, ElementMeta};
use weir_runner_core::convert::{batch_to_rows, rows_to_arrays};
use weir_runner_core::operator::{Operator, OperatorContext, WriteOperator};
use weir_runner_core::{ExecError, ExecResult};

/// One staged transaction as stored in a checkpoint: rows with their metadata
/// `[ts, window start, window end, pane timing, pane index, first, last]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredTransaction {
    epoch: u64,
    rows: Vec<Row>,
    metas: Vec<(i64, i64, i64, i8, u64, bool, bool)>,
}

/// A `Write` operator behind two-phase commit.
#[derive(Debug)]
pub struct TwoPhaseCommitSink {
    op: WriteOperator,
    schema: Schema,
    open: Vec<RecordBatch>,
    /// Pre-committed transactions by checkpoint id, oldest first.
    pending: Vec<(u64, Vec<RecordBatch>)>,
}

impl TwoPhaseCommitSink {
    /// Wraps `op`, whose input rows have user schema `schema`.
    pub fn new(op: WriteOperator, schema: Schema) -> Self {
        TwoPhaseCommitSink {
            op,
            schema,
            open: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// Rows for the open transaction.
    pub fn write(&mut self, batch: RecordBatch) {
        self.open.push(batch);
    }

    /// Pre-commit at the barrier of checkpoint `id`: the open transaction is staged and a new
    /// one begins. Returns the pending transactions to store in the checkpoint.
    pub fn pre_commit(&mut self, id: u64) -> ExecResult<serde_json::Value> {
        let open = std::mem::take(&mut self.open);
        self.pending.push((id, open));
        let stored: Vec<StoredTransaction> = self
            .pending
            .iter()
            .map(|(epoch, batches)| {
                let mut t = StoredTransaction {
                    epoch: *epoch,
                    rows: Vec::new(),
                    metas: Vec::new(),
                };
                for b in batches {
                    t.rows.extend(batch_to_rows(b));
                    t.metas.extend(metas(b).into_iter().map(|m| {
                        (
                            m.ts,
                            m.window.start,
                            m.window.end,
                            timing_code(m.pane.timing),
                            m.pane.index,
                            m.pane.is_first,
                            m.pane.is_last,
                        )
                    }));
                }
                t
            })
            .collect();
        serde_json::to_value(stored).map_err(|e| ExecError::Internal(e.to_string()))
    }

    /// Restores the pending transactions of a checkpoint.
    pub fn restore(&mut self, state: serde_json::Value) -> ExecResult<()> {
        let stored: Vec<StoredTransaction> =
            serde_json::from_value(state).map_err(|e| ExecError::Internal(e.to_string()))?;
        for t in stored {
            let arrays = rows_to_arrays(&t.rows, &self.schema)
                .map_err(|(r, m)| ExecError::Internal(format!("restoring row {r}: {m}")))?;
            let metas: Vec<ElementMeta> = t
                .metas
                .iter()
                .map(|(ts, start, end, timing, index, first, last)| ElementMeta {
                    ts: *ts,
                    window: Window::new(*start, *end),
                    pane: PaneInfo {
                        timing: timing_from_code(*timing),
                        index: *index,
                        is_first: *first,
                        is_last: *last,
                    },
                })
                .collect();
            self.pending
                .push((t.epoch, vec![with_meta(&self.schema, arrays, &metas)?]));
        }
        Ok(())
    }

    /// Epochs of the pending transactions.
    pub fn pending_epochs(&self) -> Vec<u64> {
        self.pending.iter().map(|(e, _)| *e).collect()
    }

    /// Commits the pending transactions up to checkpoint `id`, skipping epochs up to
    /// `already` (committed before a restore). Returns the last epoch committed.
    pub fn commit(
        &mut self,
        id: u64,
        already: u64,
        ctx: &mut OperatorContext,
    ) -> ExecResult<Option<u64>> {
        let mut last = None;
        while self.pending.first().is_some_and(|(e, _)| *e <= id) {
            let (epoch, batches) = self.pending.remove(0);
            if epoch <= already {
                continue;
            }
            for b in batches {
                self.op.process_batch(0, b, ctx)?;
            }
            self.op.commit(epoch, ctx.processing_time)?;
            last = Some(epoch);
        }
        Ok(last)
    }

    /// End of input: everything still pending (after epoch `already`) or open is written and
    /// committed as one final epoch (Flink commits the final transaction at the end of a
    /// bounded input).
    pub fn close(&mut self, already: u64, ctx: &mut OperatorContext) -> ExecResult<()> {
        let pending = std::mem::take(&mut self.pending);
        for (_, batches) in pending.into_iter().filter(|(e, _)| *e > already) {
            for b in batches {
                self.op.process_batch(0, b, ctx)?;
            }
        }
        for b in std::mem::take(&mut self.open) {
            self.op.process_batch(0, b, ctx)?;
        }
        self.op.on_close(ctx)
    }
}
