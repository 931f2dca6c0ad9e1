//! Windowed aggregation in Spark's style (`StateStoreRestoreExec` → aggregate →
//! `StateStoreSaveExec`) for `Combine`, `GroupByKey` and `TopN`: per batch, rows are hashed by
//! group key and window into keyed state (runner-core's `AggregateReduce` contents); late
//! rows are dropped (or routed aside) with the late-filter watermark; panes are emitted and
//! state evicted with the eviction watermark, per the node's [`FiringPlan`]. Session windows
//! merge per key when `next.start <= cur.end`. A built-in `Combine` over non-merging windows
//! runs as [`super::columnar_combine::ColumnarCombine`] instead, with the same rules.

use super::panes::{join_columns, pane_rows, Output};
use super::{BatchContext, StageOutput};
use crate::error::{MicroBatchError, Result};
use crate::state::{StateDelta, StateMap};
use crate::translate::{firing_plan, FiringPlan, PaneCondition};
use crate::watermark::is_late;
use arrow::array::{ArrayRef, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use weir_model::plan::Plan;
use weir_model::time::{Duration, Timestamp, MAX_TIMESTAMP};
use weir_model::transform::{AggregateFn, Transform};
use weir_model::udf::Row;
use weir_model::window::{LateDataPolicy, PaneInfo, PaneTiming, Window, WindowFn};
use weir_model::{Expr, Schema, TransformNode};
use weir_runner_core::batch::{self, ElementMeta};
use weir_runner_core::combine::Combiner;
use weir_runner_core::convert::{rows_to_batch, value_at};
use weir_runner_core::eval::evaluate_in;
use weir_runner_core::reduce::{AggregateInput, AggregateReduce, PaneContents, ReduceFn};
use weir_runner_core::window::{merge_windows, window_is_expired};
use weir_runner_core::ExecError;

/// What a row gives each aggregation.
#[derive(Debug, Clone)]
enum Arg {
    Input(Expr),
    WholeRow,
    RowCount,
}

/// The state of one key and window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowState {
    /// Group key values, in `group_by` order.
    pub key: Vec<Value>,
    /// The window.
    pub window: Window,
    /// The pane's contents: every row so far (accumulating) or since the last pane
    /// (discarding).
    pub contents: PaneContents,
    /// Rows since the last pane.
    pub pane_rows: u64,
    /// Batch timestamp of the pane's first row.
    pub pane_opened_at: Option<Timestamp>,
    /// Index of the next pane.
    pub next_pane: u64,
    /// Whether the ON_TIME pane has fired.
    pub fired_on_time: bool,
}

/// One key's values and its rows of a batch (row index, proto-window), for merging windows.
type KeyRows = (Vec<Value>, Vec<(usize, Window)>);

/// A `Combine`, `GroupByKey`, `TopN`, `CoGroupByKey` or `Join` executed batch by batch.
#[derive(Debug)]
pub struct WindowedAggregate {
    node: String,
    /// Key columns of each input.
    keys: Vec<Vec<String>>,
    output: Output,
    reduce: AggregateReduce,
    args: Vec<Arg>,
    window_fn: WindowFn,
    firing: FiringPlan,
    output_schema: Schema,
    late_tag: Option<String>,
    /// Per input, whether its rows fit the late side output (the first input's schema).
    late_fits: Vec<bool>,
    entries: BTreeMap<String, WindowState>,
    /// Complete output mode: every window's result at every batch end.
    complete: bool,
    /// Windows per key (merging window functions only).
    by_key: BTreeMap<String, BTreeSet<Window>>,
    dirty: BTreeSet<String>,
}

fn state_key(key_json: &str, w: &Window) -> String {
    format!("{}:{}:{key_json}", w.start, w.end)
}

impl WindowedAggregate {
    /// The stage of a `Combine`, `GroupByKey`, `TopN`, `CoGroupByKey` or `Join` node.
    pub fn new(plan: &Plan, node: &TransformNode) -> Result<Self> {
        let internal = |m: String| MicroBatchError::Exec(ExecError::Internal(m));
        let inputs = node
            .inputs
            .iter()
            .map(|i| {
                plan.collection(i).ok_or_else(|| {
                    internal(format!(
                        "`{}`: input `{i}` missing from the plan",
                        node.name
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let input = inputs[0];
        let output_schema = plan
            .collection(&node.name)
            .ok_or_else(|| internal(format!("`{}` missing from the plan", node.name)))?
            .schema
            .clone();
        let (keys, output, reduce, args) = match &node.transform {
            Transform::Combine {
                group_by,
                aggregations,
            } => {
                let mut combiners = Vec::new();
                let mut args = Vec::new();
                for a in aggregations {
                    let field = output_schema.field(&a.name).ok_or_else(|| {
                        internal(format!("`{}`: no column `{}`", node.name, a.name))
                    })?;
                    combiners.push(Combiner::new(a, &field.data_type).map_err(|m| {
                        MicroBatchError::Exec(ExecError::transform(
                            &node.name,
                            format!("aggregation `{}`: {m}", a.name),
                        ))
                    })?);
                    args.push(match (&a.input, &a.func) {
                        (Some(e), _) => Arg::Input(e.clone()),
                        (None, AggregateFn::Custom(_)) => Arg::WholeRow,
                        (None, _) => Arg::RowCount,
                    });
                }
                (
                    vec![group_by.clone()],
                    Output::Combine,
                    AggregateReduce::combine(&node.name, combiners),
                    args,
                )
            }
            Transform::GroupByKey { keys } => (
                vec![keys.clone()],
                Output::GroupByKey,
                AggregateReduce::rows(&node.name, 1),
                Vec::new(),
            ),
            Transform::TopN {
                group_by,
                order_by,
                n,
                descending,
            } => (
                vec![group_by.clone()],
                Output::TopN,
                AggregateReduce::top(&node.name, *n, *descending),
                vec![Arg::Input(Expr::Column(order_by.clone()))],
            ),
            Transform::CoGroupByKey { keys } => (
                keys.clone(),
                Output::CoGroupByKey,
                AggregateReduce::rows(&node.name, node.inputs.len()),
                Vec::new(),
            ),
            Transform::Join { on, kind } => {
                let columns = join_columns(on, &inputs, &output_schema).ok_or_else(|| {
                    internal(format!(
                        "`{}`: join output schema does not match its inputs",
                        node.name
                    ))
                })?;
                (
                    on.clone(),
                    Output::Join {
                        kind: *kind,
                        columns,
                    },
                    AggregateReduce::rows(&node.name, node.inputs.len()),
                    Vec::new(),
                )
            }
            other => {
                return Err(internal(format!(
                    "`{}`: {other} is not an aggregation",
                    node.name
                )))
            }
        };
        Ok(WindowedAggregate {
            late_fits: inputs.iter().map(|i| i.schema == input.schema).collect(),
            node: node.name.clone(),
            keys,
            output,
            reduce,
            args,
            window_fn: input.windowing.window_fn.clone(),
            firing: firing_plan(&input.windowing)?,
            output_schema,
            late_tag: match &input.windowing.late_data {
                LateDataPolicy::SideOutput { tag } => Some(tag.clone()),
                LateDataPolicy::Drop => None,
            },
            entries: BTreeMap::new(),
            complete: false,
            by_key: BTreeMap::new(),
            dirty: BTreeSet::new(),
        })
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// How this aggregation fires.
    pub fn firing(&self) -> &FiringPlan {
        &self.firing
    }

    /// Switches to Spark's complete output mode: at every batch end, every open window's
    /// accumulated result, changed or not (checked by [`crate::translate::check_complete_mode`]).
    pub fn set_complete(&mut self) {
        self.complete = true;
    }

    /// Whether a row in `window` is too late for it: the window has expired at the late-filter
    /// watermark (`window_end + allowed_lateness <= watermark`).
    fn row_is_late(&self, window: &Window, late_filter: Option<Timestamp>) -> bool {
        let end = window.end.saturating_add(self.firing.allowed_lateness);
        window.end < MAX_TIMESTAMP && is_late(end, late_filter)
    }

    /// Handles the batch's input rows, then fires and evicts.
    pub fn process(
        &mut self,
        inputs: Vec<(usize, RecordBatch)>,
        ctx: &BatchContext,
    ) -> Result<StageOutput> {
        let mut out = StageOutput::default();
        let mut seq_base = ctx.batch_id << 32;
        for (side, batch) in inputs {
            self.add_batch(&batch, side, seq_base, ctx, &mut out)?;
            seq_base += batch.num_rows() as u64;
        }
        let fired = self.fire_and_evict(ctx)?;
        if let Some(b) = fired {
            out.outputs.push((None, b));
        }
        out.state_rows = self.entries.len() as u64;
        Ok(out)
    }

    fn add_batch(
        &mut self,
        batch: &RecordBatch,
        side: usize,
        seq_base: u64,
        ctx: &BatchContext,
        out: &mut StageOutput,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let key_names = self.keys.get(side).cloned().ok_or_else(|| {
            MicroBatchError::Exec(ExecError::Internal(format!(
                "`{}` has no input {side}",
                self.node
            )))
        })?;
        let key_columns: Vec<ArrayRef> = key_names
            .iter()
            .map(|k| {
                batch.column_by_name(k).cloned().ok_or_else(|| {
                    MicroBatchError::Exec(weir_runner_core::ExecError::Internal(format!(
                        "`{}`: no key column `{k}`",
                        self.node
                    )))
                })
            })
            .collect::<Result<_>>()?;
        let arg_columns: Vec<Option<ArrayRef>> = self
            .args
            .iter()
            .map(|a| match a {
                Arg::Input(e) => evaluate_in(&self.node, e, batch).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<_, _>>()?;
        // Rows as JSON only where the contents keep them (grouping, top-n, user combiners
        // over the whole row); a built-in Combine never converts rows.
        let whole_rows: Option<Vec<Row>> = (!matches!(self.output, Output::Combine)
            || self.args.iter().any(|a| matches!(a, Arg::WholeRow)))
        .then(|| weir_runner_core::convert::batch_to_rows(batch));
        let args = self.args.clone();
        let mut inputs = RowInputs {
            args: &args,
            columns: &arg_columns,
            rows: whole_rows.as_deref(),
            keep_rows: self.output.keeps_rows(),
            side,
            keys: &key_names,
            seq_base,
        };
        let (_, starts, ends) = batch::ts_and_window(batch);
        let mut late_mask = Vec::with_capacity(batch.num_rows());
        // Merging windows: rows grouped per key first, then merged with the key's sessions.
        let mut per_key: BTreeMap<String, KeyRows> = BTreeMap::new();
        for row in 0..batch.num_rows() {
            let window = Window::new(starts.value(row), ends.value(row));
            let key: Vec<Value> = key_columns
                .iter()
                .map(|c| value_at(c.as_ref(), row))
                .collect();
            // Same text as `Value::Array(key).to_string()`, without copying the key.
            let key_json = serde_json::to_string(&key).map_err(|e| {
                MicroBatchError::Exec(ExecError::Internal(format!("key to JSON: {e}")))
            })?;
            let sk = state_key(&key_json, &window);
            let late =
                self.row_is_late(&window, ctx.late_filter_watermark) || self.trigger_finished(&sk);
            late_mask.push(late);
            if late {
                continue;
            }
            if self.window_fn.is_merging() {
                per_key
                    .entry(key_json)
                    .or_insert_with(|| (key, Vec::new()))
                    .1
                    .push((row, window));
            } else {
                let entry = self
                    .entries
                    .entry(sk.clone())
                    .or_insert_with(|| new_state(key, window, self.reduce.create()));
                add_row(&self.reduce, entry, inputs.input(row), ctx.batch_timestamp)?;
                self.dirty.insert(sk);
            }
        }
        for (key_json, (key, rows)) in per_key {
            self.add_merging(&key_json, key, rows, &mut inputs, ctx)?;
        }
        self.route_late(batch, side, late_mask, out)
    }

    /// Late rows go to the late side output, or are dropped and counted.
    fn route_late(
        &self,
        batch: &RecordBatch,
        side: usize,
        late_mask: Vec<bool>,
        out: &mut StageOutput,
    ) -> Result<()> {
        let dropped = late_mask.iter().filter(|l| **l).count() as u64;
        if dropped > 0 {
            // The side output has the first input's schema; late rows of another input with
            // a different schema cannot go there and are dropped and counted.
            let fits = self.late_fits.get(side).copied().unwrap_or(false);
            match &self.late_tag {
                Some(tag) if fits => {
                    let mask = BooleanArray::from(late_mask);
                    let late_rows = filter_record_batch(batch, &mask)
                        .map_err(weir_runner_core::ExecError::from)?;
                    out.outputs.push((Some(tag.clone()), late_rows));
                }
                _ => out.rows_dropped_by_watermark += dropped,
            }
        }
        Ok(())
    }

    /// A window whose trigger fired ON_TIME without late firings accepts no more rows (Beam's
    /// finished trigger); such rows are dropped like late ones.
    /// Whether the window of state entry `sk` fired on time and takes no late panes.
    fn trigger_finished(&self, sk: &str) -> bool {
        self.firing.late.is_none() && self.entries.get(sk).is_some_and(|e| e.fired_on_time)
    }

    fn add_merging(
        &mut self,
        key_json: &str,
        key: Vec<Value>,
        rows: Vec<(usize, Window)>,
        inputs: &mut RowInputs<'_>,
        ctx: &BatchContext,
    ) -> Result<()> {
        let existing: Vec<Window> = self
            .by_key
            .get(key_json)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        let mut all = existing.clone();
        all.extend(rows.iter().map(|(_, w)| *w));
        for group in merge_windows(&self.window_fn, &all) {
            let result = group.result;
            let mut merged = new_state(key.clone(), result, self.reduce.create());
            // A merged window that differs from every window it absorbed is a new window: its
            // pane index starts again at 0, as in the model; one that equals an existing
            // window keeps that window's panes.
            let new_window = !existing.contains(&result);
            for member in group.members.iter().filter(|m| existing.contains(m)) {
                let sk = state_key(key_json, member);
                if let Some(old) = self.entries.remove(&sk) {
                    merge_state(&self.reduce, &mut merged, old)?;
                    self.dirty.insert(sk);
                }
                if let Some(set) = self.by_key.get_mut(key_json) {
                    set.remove(member);
                }
            }
            for (row, _) in rows
                .iter()
                .filter(|(_, w)| result.start <= w.start && w.end <= result.end)
            {
                add_row(
                    &self.reduce,
                    &mut merged,
                    inputs.input(*row),
                    ctx.batch_timestamp,
                )?;
            }
            if new_window {
                merged.next_pane = 0;
            }
            let sk = state_key(key_json, &result);
            self.entries.insert(sk.clone(), merged);
            self.by_key
                .entry(key_json.to_string())
                .or_default()
                .insert(result);
            self.dirty.insert(sk);
        }
        Ok(())
    }

    /// Fires due panes and evicts expired windows with the eviction watermark.
    fn fire_and_evict(&mut self, ctx: &BatchContext) -> Result<Option<RecordBatch>> {
        let wm = ctx.eviction_watermark;
        let mut rows: Vec<Row> = Vec::new();
        let mut metas: Vec<ElementMeta> = Vec::new();
        let mut expired_keys = Vec::new();
        for (sk, e) in self.entries.iter_mut() {
            let closed = is_late(e.window.end, wm);
            // Spark evicts when `window_end + lateness <= watermark`, i.e. Beam's
            // `max_timestamp + lateness < watermark`; the global window only at end of input.
            let expired = wm.is_some_and(|w| {
                window_is_expired(&e.window, Duration(self.firing.allowed_lateness), w)
            });
            let condition = if closed {
                self.firing.late
            } else {
                self.firing.early
            };
            let due_by_condition = condition
                .is_some_and(|c| c.holds(e.pane_rows, e.pane_opened_at, ctx.batch_timestamp))
                && (!closed || e.fired_on_time || !self.firing.on_time);
            // As the model: an ON_TIME pane with nothing new since the last pane fires only
            // with `fire_always` closing (Beam's FIRE_ALWAYS on-time behaviour), accumulating
            // or not; Spark's update mode would not rewrite an unchanged row either.
            let due_on_time = closed
                && self.firing.on_time
                && !e.fired_on_time
                && (e.pane_rows > 0 || self.firing.fire_always);
            let due_closing =
                expired && self.firing.closing_pane && (e.pane_rows > 0 || self.firing.fire_always);
            let due_complete = self.complete && !closed;
            if due_by_condition || due_on_time || due_closing || due_complete {
                let timing = if !closed {
                    PaneTiming::Early
                } else if !e.fired_on_time {
                    e.fired_on_time = true;
                    PaneTiming::OnTime
                } else {
                    PaneTiming::Late
                };
                let pane = PaneInfo {
                    timing,
                    index: e.next_pane,
                    is_first: e.next_pane == 0,
                    is_last: expired,
                };
                let before = rows.len();
                pane_rows(
                    &self.output,
                    &self.reduce,
                    &self.keys[0],
                    &self.output_schema,
                    e,
                    &mut rows,
                );
                let meta = ElementMeta {
                    ts: e.window.max_timestamp(),
                    window: e.window,
                    pane,
                };
                metas.extend(std::iter::repeat_n(meta, rows.len() - before));
                e.next_pane += 1;
                e.pane_rows = 0;
                e.pane_opened_at = None;
                if !self.firing.accumulating {
                    e.contents = self.reduce.create();
                }
                self.dirty.insert(sk.clone());
            } else if closed && self.firing.on_time && !e.fired_on_time {
                // Nothing new to show at the close of a discarding window: it still closes.
                e.fired_on_time = true;
                self.dirty.insert(sk.clone());
            }
            if expired {
                expired_keys.push(sk.clone());
            }
        }
        for sk in expired_keys {
            if let Some(e) = self.entries.remove(&sk) {
                let key_json = Value::Array(e.key.clone()).to_string();
                if let Some(set) = self.by_key.get_mut(&key_json) {
                    set.remove(&e.window);
                    if set.is_empty() {
                        self.by_key.remove(&key_json);
                    }
                }
            }
            self.dirty.insert(sk);
        }
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(rows_to_batch(&rows, &metas, &self.output_schema)?))
    }

    /// The changes since the last call, for the state store.
    pub fn take_delta(&mut self) -> Result<StateDelta> {
        let mut delta = StateDelta::new();
        for sk in std::mem::take(&mut self.dirty) {
            let v = match self.entries.get(&sk) {
                Some(e) => Some(to_json(e)?),
                None => None,
            };
            delta.insert(sk, v);
        }
        Ok(delta)
    }

    /// The whole state, for snapshots.
    pub fn snapshot(&self) -> Result<StateMap> {
        self.entries
            .iter()
            .map(|(k, e)| Ok((k.clone(), to_json(e)?)))
            .collect()
    }

    /// Replaces the state with a restored version.
    pub fn restore(&mut self, state: StateMap) -> Result<()> {
        self.entries.clear();
        self.by_key.clear();
        self.dirty.clear();
        for (k, v) in state {
            let e: WindowState = serde_json::from_value(v).map_err(|err| {
                MicroBatchError::Exec(weir_runner_core::ExecError::Internal(format!(
                    "`{}`: state entry `{k}` does not parse: {err}",
                    self.node
                )))
            })?;
            if self.window_fn.is_merging() {
                self.by_key
                    .entry(Value::Array(e.key.clone()).to_string())
                    .or_default()
                    .insert(e.window);
            }
            self.entries.insert(k, e);
        }
        Ok(())
    }

    /// Whether a pane waiting on processing time would fire at batch timestamp `now`.
    pub fn processing_time_due(&self, now: Timestamp) -> bool {
        let conditions = [self.firing.early, self.firing.late];
        let timed = conditions
            .iter()
            .flatten()
            .any(|c| matches!(c, PaneCondition::AfterProcessingTime(_)));
        timed
            && self.entries.values().any(|e| {
                conditions.iter().flatten().any(|c| {
                    matches!(c, PaneCondition::AfterProcessingTime(_))
                        && c.holds(e.pane_rows, e.pane_opened_at, now)
                })
            })
    }

    /// Rows of state.
    pub fn state_rows(&self) -> u64 {
        self.entries.len() as u64
    }
}

fn to_json(e: &WindowState) -> Result<Value> {
    serde_json::to_value(e).map_err(|err| {
        MicroBatchError::Exec(weir_runner_core::ExecError::Internal(format!(
            "state entry: {err}"
        )))
    })
}

fn new_state(key: Vec<Value>, window: Window, contents: PaneContents) -> WindowState {
    WindowState {
        key,
        window,
        contents,
        pane_rows: 0,
        pane_opened_at: None,
        next_pane: 0,
        fired_on_time: false,
    }
}

/// Builds each row's input to the reduce from the batch's evaluated columns.
struct RowInputs<'a> {
    args: &'a [Arg],
    columns: &'a [Option<ArrayRef>],
    rows: Option<&'a [Row]>,
    /// The contents keep each row's non-key columns (grouping, co-grouping, joins).
    keep_rows: bool,
    /// Which input the rows come from.
    side: usize,
    keys: &'a [String],
    /// Arrival order is batch id, then row: the same on a re-run of the batch.
    seq_base: u64,
}

impl RowInputs<'_> {
    fn input(&mut self, row: usize) -> AggregateInput {
        let args = self
            .args
            .iter()
            .zip(self.columns)
            .map(|(a, c)| match (a, c) {
                (Arg::Input(_), Some(col)) => value_at(col.as_ref(), row),
                (Arg::WholeRow, _) => self
                    .rows
                    .map(|w| Value::Object(w[row].clone()))
                    .unwrap_or(Value::Null),
                _ => Value::Bool(true),
            })
            .collect();
        let row_values = match (self.keep_rows, self.rows) {
            (true, Some(rows)) => rows[row]
                .iter()
                .filter(|(k, _)| !self.keys.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            // TopN keeps the whole row; a Combine keeps none.
            (false, Some(rows)) => rows[row].clone(),
            _ => Row::new(),
        };
        AggregateInput {
            side: self.side,
            seq: self.seq_base + row as u64,
            row: row_values,
            args,
        }
    }
}

fn add_row(
    reduce: &AggregateReduce,
    e: &mut WindowState,
    input: AggregateInput,
    now: Timestamp,
) -> Result<()> {
    reduce.add(&mut e.contents, input)?;
    e.pane_rows += 1;
    e.pane_opened_at.get_or_insert(now);
    Ok(())
}

/// Merges session `other` into `into` (Spark's `MergingSessionsExec`): contents combine,
/// pane bookkeeping keeps the most advanced of the two.
fn merge_state(reduce: &AggregateReduce, into: &mut WindowState, other: WindowState) -> Result<()> {
    reduce.merge(&mut into.contents, other.contents)?;
    into.pane_rows += other.pane_rows;
    into.pane_opened_at = match (into.pane_opened_at, other.pane_opened_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    into.next_pane = into.next_pane.max(other.next_pane);
    into.fired_on_time |= other.fired_on_time;
    Ok(())
}
