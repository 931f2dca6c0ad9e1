//! Two-phase commit for sinks (Flink's `TwoPhaseCommitSinkFunction`): rows since the last
//! barrier form the open transaction; at a barrier it is pre-committed (kept, and written
//! into the checkpoint so a restore can finish it); when the coordinator declares that
//! checkpoint complete the transaction is written to the sink and committed with the
//! checkpoint id as its epoch. On restore, pending transactions the sink has not committed
//! yet are committed (idempotently: a commit marker records the last epoch committed);
//! the open transaction of a failed run is lost with it, i.e. aborted.
//!
//! A sink with a native two-phase commit (PostgreSQL's prepared transactions, see
//! [`weir_runner_core::io::NativeTwoPhaseCommit`]) keeps its transactions itself: at the
//! barrier the open rows go to the sink, which prepares them under the checkpoint id; the
//! checkpoint stores only the ids of the prepared transactions; completion commits them.
//! On restore the sink rolls back its prepared transactions the checkpoint does not list
//! (their checkpoints never completed) and the listed ones are committed as usual. A run
//! that does not restore rolls back every prepared transaction of the sink at its first
//! barrier.

use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use weir_model::udf::Row;
use weir_model::window::{PaneInfo, Window};
use weir_model::Schema;
use weir_runner_core::batch::{metas, timing_code, timing_from_code, with_meta, ElementMeta};
use weir_runner_core::convert::{batch_to_rows, rows_to_arrays};
use weir_runner_core::io::NativeTwoPhaseCommit;
use weir_runner_core::operator::{Operator, OperatorContext, WriteOperator};
use weir_runner_core::{ExecError, ExecResult};

/// The subtask index in transaction ids: a `Write` runs as one subtask (the job graph
/// places sinks with parallelism 1).
const SINK_SUBTASK: u32 = 0;

/// The checkpoint state of a sink with a native two-phase commit: the checkpoint ids of
/// its prepared, not yet committed transactions.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PreparedTransactions {
    prepared: Vec<u64>,
}

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
    /// Pre-committed transactions by checkpoint id, oldest first (no rows when native).
    pending: Vec<(u64, Vec<RecordBatch>)>,
    /// The sink prepares transactions itself ([`weir_runner_core::io::Sink::native_two_phase`]).
    native: bool,
    /// Native: the sink's leftover prepared transactions were resolved.
    recovered: bool,
    /// Native: rows of each prepared transaction, for the rows-written metric.
    prepared_rows: Vec<(u64, u64)>,
    /// The highest checkpoint id pre-committed or restored.
    last_epoch: u64,
}

impl TwoPhaseCommitSink {
    /// Wraps `op`, whose input rows have user schema `schema`.
    pub fn new(mut op: WriteOperator, schema: Schema) -> Self {
        let native = op.sink_mut().native_two_phase().is_some();
        TwoPhaseCommitSink {
            op,
            schema,
            open: Vec::new(),
            pending: Vec::new(),
            native,
            recovered: false,
            prepared_rows: Vec::new(),
            last_epoch: 0,
        }
    }

    /// The sink's native two-phase commit (only called when `native`).
    fn two_phase(&mut self) -> ExecResult<&mut dyn NativeTwoPhaseCommit> {
        self.op
            .sink_mut()
            .native_two_phase()
            .ok_or_else(|| ExecError::Internal("the sink lost its two-phase commit".into()))
    }

    /// Native, without a restore: rolls back whatever an earlier run left prepared.
    fn recover_once(&mut self) -> ExecResult<()> {
        if !self.recovered {
            self.two_phase()?.recover(&[], SINK_SUBTASK)?;
            self.recovered = true;
        }
        Ok(())
    }

    /// Native pre-commit: the open rows go to the sink, which prepares them.
    fn prepare_native(&mut self, id: u64) -> ExecResult<serde_json::Value> {
        self.recover_once()?;
        let mut rows = 0;
        for b in std::mem::take(&mut self.open) {
            rows += b.num_rows() as u64;
            self.op.sink_mut().write(&b, 0)?;
        }
        self.two_phase()?.prepare(id, SINK_SUBTASK)?;
        self.pending.push((id, Vec::new()));
        self.prepared_rows.push((id, rows));
        self.last_epoch = self.last_epoch.max(id);
        let stored = PreparedTransactions {
            prepared: self.pending_epochs(),
        };
        serde_json::to_value(stored).map_err(|e| ExecError::Internal(e.to_string()))
    }

    /// Native commit of the transaction prepared for `epoch`.
    fn commit_native(&mut self, epoch: u64, ctx: &mut OperatorContext) -> ExecResult<()> {
        self.two_phase()?.commit_prepared(epoch, SINK_SUBTASK)?;
        if let Some(i) = self.prepared_rows.iter().position(|(e, _)| *e == epoch) {
            ctx.metrics.rows_written += self.prepared_rows.remove(i).1;
        }
        Ok(())
    }

    /// Rows for the open transaction.
    pub fn write(&mut self, batch: RecordBatch) {
        self.open.push(batch);
    }

    /// Pre-commit at the barrier of checkpoint `id`: the open transaction is staged and a new
    /// one begins. Returns the pending transactions to store in the checkpoint.
    pub fn pre_commit(&mut self, id: u64) -> ExecResult<serde_json::Value> {
        if self.native {
            return self.prepare_native(id);
        }
        self.last_epoch = self.last_epoch.max(id);
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
        if self.native {
            let stored: PreparedTransactions = serde_json::from_value(state).map_err(|e| {
                ExecError::Internal(format!("restoring prepared transactions: {e}"))
            })?;
            self.two_phase()?.recover(&stored.prepared, SINK_SUBTASK)?;
            self.recovered = true;
            for epoch in stored.prepared {
                self.last_epoch = self.last_epoch.max(epoch);
                self.pending.push((epoch, Vec::new()));
            }
            return Ok(());
        }
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
            self.last_epoch = self.last_epoch.max(t.epoch);
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
            if self.native {
                self.commit_native(epoch, ctx)?;
                last = Some(epoch);
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

    /// End of input: the pending transactions (after epoch `already`) are committed, then the
    /// open one as a final epoch (Flink commits the final transaction at the end of a bounded
    /// input).
    /// Returns the final epoch.
    pub fn close(&mut self, already: u64, ctx: &mut OperatorContext) -> ExecResult<u64> {
        if self.native {
            self.recover_once()?;
        }
        // Each pending transaction is committed under its own epoch, as a completed
        // checkpoint would, so a sink that committed it before a crash recognises the replay;
        // the rows after the last barrier take the epoch after every checkpoint id of this run
        // (`weir soak` found one final epoch for everything re-writing committed rows). The
        // caller records it as committed, so a later run of the directory starts its ids
        // after it and a restore refuses to replay the finished job.
        let last = self.last_epoch.max(already);
        self.commit(u64::MAX, already, ctx)?;
        for b in std::mem::take(&mut self.open) {
            self.op.process_batch(0, b, ctx)?;
        }
        self.op.commit(last + 1, ctx.processing_time)?;
        Ok(last + 1)
    }
}
