//! The aggregating transforms (`GroupByKey`, `Combine`, `CoGroupByKey`, `Join`, `TopN`):
//! rows keyed and windowed into a [`ReduceRunner`], fired panes turned back into batches.

use super::{Operator, OperatorContext};
use crate::batch::{self, ElementMeta};
use crate::combine::Combiner;
use crate::convert::{batch_to_rows, rows_to_arrays, value_at};
use crate::error::{ExecError, ExecResult};
use crate::eval::evaluate_in;
use crate::reduce::{
    join_rows, AggregateInput, AggregateReduce, ElementOutcome, FiredPane, JoinColumn, Key,
    PaneContents, ReduceRunner,
};
use arrow::array::{ArrayRef, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use serde_json::Value;
use weir_model::plan::{CollectionInfo, Plan};
use weir_model::time::{Timestamp, MAX_TIMESTAMP};
use weir_model::transform::{AggregateFn, JoinKind, Transform};
use weir_model::udf::Row;
use weir_model::window::LateDataPolicy;
use weir_model::{Expr, Schema, TransformNode};

/// How a pane's contents become output rows.
#[derive(Debug, Clone)]
enum Output {
    /// Key columns, then one column per aggregation.
    Combine,
    /// Key columns, then `values`: the other columns of each row, in arrival order.
    GroupByKey,
    /// Key columns, then one list per input.
    CoGroupByKey,
    /// Key columns, then every input's other columns, per matching combination.
    Join {
        kind: JoinKind,
        columns: Vec<JoinColumn>,
    },
    /// The best rows themselves.
    TopN,
}

/// What a row contributes to the reduce besides its key.
#[derive(Debug, Clone)]
enum Args {
    /// One value per aggregation: the input expression, or the row (user combiner without
    /// input), or nothing (row count).
    Combine(Vec<CombineArg>),
    /// The rank column (`TopN`).
    Rank(Expr),
    /// None (grouping).
    None,
}

#[derive(Debug, Clone)]
enum CombineArg {
    Input(Expr),
    WholeRow,
    RowCount,
}

/// The operator of the aggregating transforms; see [`crate::reduce`] for the rules it runs.
#[derive(Debug)]
pub struct AggregateOperator {
    node: String,
    output: Output,
    args: Args,
    /// Key columns of each input.
    keys: Vec<Vec<String>>,
    /// Whether the payload keeps only the non-key columns (grouping) or the whole row.
    payload_without_keys: bool,
    output_schema: Schema,
    /// Late-data side output tag, for the inputs whose rows fit it.
    late_tag: Option<String>,
    late_fits: Vec<bool>,
    runner: ReduceRunner<AggregateReduce>,
    next_seq: u64,
}

impl AggregateOperator {
    /// The operator for `node` (a `GroupByKey`, `Combine`, `CoGroupByKey`, `Join` or `TopN`).
    pub fn new(plan: &Plan, node: &TransformNode) -> ExecResult<Self> {
        let name = node.name.as_str();
        let collection = |c: &str| -> ExecResult<&CollectionInfo> {
            plan.collection(c).ok_or_else(|| {
                ExecError::Internal(format!("collection `{c}` missing from the plan"))
            })
        };
        let inputs: Vec<&CollectionInfo> = node
            .inputs
            .iter()
            .map(|i| collection(i))
            .collect::<ExecResult<_>>()?;
        let first = *inputs
            .first()
            .ok_or_else(|| ExecError::transform(name, "an aggregation needs an input"))?;
        let output_schema = collection(name)?.schema.clone();
        let (output, args, keys, reduce, payload_without_keys) = match &node.transform {
            Transform::GroupByKey { keys } => (
                Output::GroupByKey,
                Args::None,
                vec![keys.clone()],
                AggregateReduce::rows(name, 1),
                true,
            ),
            Transform::CoGroupByKey { keys } => (
                Output::CoGroupByKey,
                Args::None,
                keys.clone(),
                AggregateReduce::rows(name, inputs.len()),
                true,
            ),
            Transform::Join { on, kind } => {
                let columns = join_columns(name, on, &inputs, &output_schema)?;
                let output = Output::Join {
                    kind: *kind,
                    columns,
                };
                (
                    output,
                    Args::None,
                    on.clone(),
                    AggregateReduce::rows(name, inputs.len()),
                    true,
                )
            }
            Transform::Combine {
                group_by,
                aggregations,
            } => {
                let mut combiners = Vec::new();
                let mut args = Vec::new();
                for a in aggregations {
                    let field = output_schema.field(&a.name).ok_or_else(|| {
                        ExecError::Internal(format!(
                            "`{name}`: aggregation `{}` missing from the plan",
                            a.name
                        ))
                    })?;
                    combiners.push(Combiner::new(a, &field.data_type).map_err(|m| {
                        ExecError::transform(name, format!("aggregation `{}`: {m}", a.name))
                    })?);
                    args.push(match (&a.input, &a.func) {
                        (Some(e), _) => CombineArg::Input(e.clone()),
                        (None, AggregateFn::Custom(_)) => CombineArg::WholeRow,
                        (None, _) => CombineArg::RowCount,
                    });
                }
                let reduce = AggregateReduce::combine(name, combiners);
                (
                    Output::Combine,
                    Args::Combine(args),
                    vec![group_by.clone()],
                    reduce,
                    false,
                )
            }
            Transform::TopN {
                group_by,
                order_by,
                n,
                descending,
            } => {
                let reduce = AggregateReduce::top(name, *n, *descending);
                (
                    Output::TopN,
                    Args::Rank(Expr::Column(order_by.clone())),
                    vec![group_by.clone()],
                    reduce,
                    false,
                )
            }
            other => {
                return Err(ExecError::Internal(format!(
                    "`{name}`: {other} is not an aggregation"
                )))
            }
        };
        if keys.len() != inputs.len() {
            return Err(ExecError::transform(
                name,
                format!("needs key columns for each of its {} inputs", inputs.len()),
            ));
        }
        let late_tag = match &first.windowing.late_data {
            LateDataPolicy::SideOutput { tag } => Some(tag.clone()),
            LateDataPolicy::Drop => None,
        };
        Ok(AggregateOperator {
            node: name.to_string(),
            output,
            args,
            keys,
            payload_without_keys,
            output_schema,
            late_tag,
            // The late side output has the first input's schema; late rows of another input
            // with a different schema cannot go there and are dropped and counted.
            late_fits: inputs.iter().map(|i| i.schema == first.schema).collect(),
            runner: ReduceRunner::new(reduce, &first.windowing),
            next_seq: 0,
        })
    }

    /// The reduce runner (windows, triggers, panes) of this aggregation.
    pub fn runner(&self) -> &ReduceRunner<AggregateReduce> {
        &self.runner
    }

    /// Each row's arguments for the reduce.
    fn arguments(&self, batch: &RecordBatch, rows: &[Row]) -> ExecResult<Vec<Vec<Value>>> {
        let n = batch.num_rows();
        let evaluate = |e: &Expr| -> ExecResult<ArrayRef> { evaluate_in(&self.node, e, batch) };
        Ok(match &self.args {
            Args::None => vec![Vec::new(); n],
            Args::Rank(e) => {
                let a = evaluate(e)?;
                (0..n).map(|r| vec![value_at(a.as_ref(), r)]).collect()
            }
            Args::Combine(args) => {
                let columns: Vec<Option<ArrayRef>> = args
                    .iter()
                    .map(|a| match a {
                        CombineArg::Input(e) => evaluate(e).map(Some),
                        _ => Ok(None),
                    })
                    .collect::<ExecResult<_>>()?;
                (0..n)
                    .map(|r| {
                        args.iter()
                            .zip(&columns)
                            .map(|(a, c)| match (a, c) {
                                (_, Some(c)) => value_at(c.as_ref(), r),
                                (CombineArg::WholeRow, _) => Value::Object(rows[r].clone()),
                                _ => Value::Bool(true),
                            })
                            .collect()
                    })
                    .collect()
            }
        })
    }

    /// Fired panes as one output batch, in firing order.
    fn emit_panes(
        &self,
        fired: Vec<FiredPane<PaneContents>>,
        ctx: &mut OperatorContext,
    ) -> ExecResult<()> {
        if fired.is_empty() {
            return Ok(());
        }
        let mut rows: Vec<Row> = Vec::new();
        let mut metas: Vec<ElementMeta> = Vec::new();
        for pane in fired {
            let meta = ElementMeta {
                ts: pane.timestamp,
                window: pane.window,
                pane: pane.pane,
            };
            let before = rows.len();
            self.pane_rows(&pane.key, pane.contents, &mut rows);
            metas.extend(std::iter::repeat_n(meta, rows.len() - before));
        }
        let arrays = rows_to_arrays(&rows, &self.output_schema).map_err(|(_, m)| {
            ExecError::transform(
                &self.node,
                format!("a result does not fit the output schema: {m}"),
            )
        })?;
        ctx.emit(None, batch::with_meta(&self.output_schema, arrays, &metas)?);
        Ok(())
    }

    /// The output rows of one pane.
    fn pane_rows(&self, key: &Key, contents: PaneContents, out: &mut Vec<Row>) {
        let fields = &self.output_schema.fields;
        let nkeys = self.keys[0].len();
        let mut key_row = Row::new();
        for (f, v) in fields.iter().zip(key.values()) {
            key_row.insert(f.name.clone(), v);
        }
        match (&self.output, contents) {
            (Output::Combine, PaneContents::Combined(accs)) => {
                let mut row = key_row;
                for (c, acc) in self.runner.reduce().combiners().iter().zip(&accs) {
                    row.insert(c.name().to_string(), c.extract(acc));
                }
                out.push(row);
            }
            (Output::GroupByKey | Output::CoGroupByKey, PaneContents::Rows(sides)) => {
                let mut row = key_row;
                for (field, side) in fields[nkeys..].iter().zip(sides) {
                    row.insert(
                        field.name.clone(),
                        Value::Array(side.into_iter().map(|r| Value::Object(r.row)).collect()),
                    );
                }
                out.push(row);
            }
            (Output::Join { kind, columns }, PaneContents::Rows(sides)) => {
                join_rows(*kind, columns, &key_row, &sides, out);
            }
            (Output::TopN, PaneContents::Top(best)) => out.extend(best.into_iter().map(|r| r.row)),
            _ => {}
        }
    }

    /// Late rows go to the late-data side output, or are dropped and counted.
    fn route_late(
        &self,
        input: usize,
        batch: &RecordBatch,
        late: Vec<bool>,
        ctx: &mut OperatorContext,
    ) -> ExecResult<()> {
        let count = late.iter().filter(|l| **l).count() as u64;
        if count == 0 {
            return Ok(());
        }
        match &self.late_tag {
            Some(tag) if self.late_fits[input] => {
                let late_rows = filter_record_batch(batch, &BooleanArray::from(late))?;
                ctx.emit(Some(tag), late_rows);
            }
            _ => ctx.metrics.late_dropped += count,
        }
        Ok(())
    }
}

/// The join's output columns, or an internal error when the plan's schema does not fit.
fn join_columns(
    node: &str,
    on: &[Vec<String>],
    inputs: &[&CollectionInfo],
    output: &Schema,
) -> ExecResult<Vec<JoinColumn>> {
    crate::reduce::join_columns(on, inputs, output).ok_or_else(|| {
        ExecError::Internal(format!(
            "`{node}`: join output schema does not match its inputs"
        ))
    })
}

impl Operator for AggregateOperator {
    fn process_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
    ) -> ExecResult<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let key_columns = self
            .keys
            .get(input)
            .ok_or_else(|| ExecError::Internal(format!("`{}` has no input {input}", self.node)))?;
        let keys = Key::of_rows(&batch, key_columns)?;
        let metas = batch::metas(&batch);
        // A combine keeps accumulators, not rows: convert rows only when something reads them.
        let needs_rows = match &self.args {
            Args::Combine(args) => args.iter().any(|a| matches!(a, CombineArg::WholeRow)),
            _ => true,
        };
        let mut rows = if needs_rows {
            batch_to_rows(&batch)
        } else {
            vec![Row::new(); batch.num_rows()]
        };
        let args = self.arguments(&batch, &rows)?;
        if self.payload_without_keys {
            for row in &mut rows {
                row.retain(|name, _| !key_columns.contains(name));
            }
        }
        let mut late = vec![false; batch.num_rows()];
        let mut fired = Vec::new();
        for (r, ((row, args), meta)) in rows.into_iter().zip(args).zip(&metas).enumerate() {
            let element = AggregateInput {
                side: input,
                seq: self.next_seq,
                row,
                args,
            };
            self.next_seq += 1;
            match self.runner.process_element(
                &keys[r],
                meta.window,
                meta.ts,
                element,
                ctx.processing_time,
                &mut fired,
            )? {
                ElementOutcome::Accepted => {}
                ElementOutcome::Expired => late[r] = true,
                ElementOutcome::Closed => ctx.metrics.late_dropped += 1,
            }
        }
        self.emit_panes(fired, ctx)?;
        self.route_late(input, &batch, late, ctx)
    }

    fn handle_watermark(
        &mut self,
        watermark: Timestamp,
        ctx: &mut OperatorContext,
    ) -> ExecResult<Timestamp> {
        let mut fired = Vec::new();
        let output = self
            .runner
            .advance_watermark(watermark, ctx.processing_time, &mut fired)?;
        self.emit_panes(fired, ctx)?;
        Ok(output)
    }

    fn handle_processing_time(&mut self, ctx: &mut OperatorContext) -> ExecResult<()> {
        let mut fired = Vec::new();
        self.runner
            .advance_processing_time(ctx.processing_time, &mut fired)?;
        self.emit_panes(fired, ctx)
    }

    fn next_processing_time(&self) -> Option<Timestamp> {
        self.runner.next_processing_time()
    }

    fn on_close(&mut self, ctx: &mut OperatorContext) -> ExecResult<()> {
        self.handle_watermark(MAX_TIMESTAMP, ctx).map(|_| ())
    }

    /// One entry per key: `{key, active: [window state...], closed: [windows]}` (see
    /// [`crate::reduce::KeySnapshot`]).
    fn snapshot(&self) -> ExecResult<Option<Value>> {
        serde_json::to_value(self.runner.snapshot())
            .map(Some)
            .map_err(|e| ExecError::Internal(format!("`{}`: snapshot: {e}", self.node)))
    }

    fn restore(&mut self, state: Value) -> ExecResult<()> {
        let keys: Vec<crate::reduce::KeySnapshot<crate::reduce::PaneContents>> =
            serde_json::from_value(state)
                .map_err(|e| ExecError::Internal(format!("`{}`: restore: {e}", self.node)))?;
        // Rows arriving after the restore must order after the restored ones.
        for k in &keys {
            for w in &k.active {
                let seqs: Vec<u64> = match &w.contents {
                    crate::reduce::PaneContents::Rows(sides) => {
                        sides.iter().flatten().map(|r| r.seq).collect()
                    }
                    crate::reduce::PaneContents::Top(rows) => rows.iter().map(|r| r.seq).collect(),
                    crate::reduce::PaneContents::Combined(_) => Vec::new(),
                };
                if let Some(max) = seqs.into_iter().max() {
                    self.next_seq = self.next_seq.max(max + 1);
                }
            }
        }
        self.runner.restore(keys);
        Ok(())
    }
}
