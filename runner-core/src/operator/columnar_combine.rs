//! [`ColumnarCombineOperator`]: a built-in `Combine` over non-merging windows with the default
//! trigger and no allowed lateness, its state in columns ([`PaneSlots`]) rather than one JSON
//! entry per key and window.
//!
//! In that case the general rules of [`crate::reduce::ReduceRunner`] reduce to a few: a row
//! whose window has expired at the input watermark is late; every other row is accumulated;
//! when the input watermark passes a window's end, its single pane fires (ON_TIME, first and
//! last, stamped with the window's max timestamp) and its state is freed; each pending window
//! holds the output watermark at its max timestamp. The streaming runners build this operator
//! where it applies (see [`crate::operator::BuildEnv::columnar_state`]); the direct runner,
//! the reference, keeps the general path, and the tests run both over the same input.

use super::{DeferredSnapshot, Operator, OperatorContext};
use crate::batch;
use crate::combine::{ColumnarCombineSpec, PaneSlots};
use crate::convert::rows_to_arrays;
use crate::error::{ExecError, ExecResult};
use crate::reduce::{describe_pane, output_watermark};
use crate::snapshot::ColumnSnapshot;
use crate::window::{gc_time, window_is_expired};
use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array};
use arrow::compute::filter_record_batch;
use arrow::datatypes::DataType as ArrowType;
use arrow::record_batch::RecordBatch;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use weir_model::plan::Plan;
use weir_model::time::{Duration, Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};
use weir_model::window::{LateDataPolicy, PaneInfo, TimestampCombiner, Trigger, Window};
use weir_model::{Schema, TransformNode};

/// Most rows in one output batch.
const OUTPUT_BATCH_ROWS: usize = 8192;

/// The window bounds' columns in a snapshot.
const WINDOW_START: &str = "__window_start";
const WINDOW_END: &str = "__window_end";

/// A built-in windowed `Combine` with columnar state (see the module docs).
#[derive(Debug)]
pub struct ColumnarCombineOperator {
    late_tag: Option<String>,
    /// The key columns' schema, for restoring keys from a snapshot.
    key_schema: Schema,
    slots: PaneSlots<()>,
    /// Live slots by the time their window expires (its max timestamp): the pending panes,
    /// in firing order, and their output watermark holds.
    due: BTreeMap<Timestamp, Vec<u32>>,
    input_watermark: Timestamp,
    output_watermark: Timestamp,
    /// Buffers of `handle_watermark`, kept for their allocations.
    pane_buffer: Vec<(u32, PaneInfo)>,
    fired_buffer: Vec<u32>,
}

impl ColumnarCombineOperator {
    /// The operator of `node`, or `None` when the general aggregation must run it: a
    /// `Combine` columns cannot hold (see [`ColumnarCombineSpec::new`]), or a windowing
    /// strategy with early or late firings, allowed lateness, or a timestamp combiner other
    /// than the end of the window.
    pub fn new(plan: &Plan, node: &TransformNode) -> ExecResult<Option<Self>> {
        let Some(spec) = ColumnarCombineSpec::new(plan, node)? else {
            return Ok(None);
        };
        let w = &spec.windowing;
        let single_firing = match &w.trigger {
            Trigger::Default => true,
            Trigger::AfterWatermark { early, .. } => early.is_none(),
            _ => false,
        };
        if !single_firing
            || w.allowed_lateness != Duration::ZERO
            || w.timestamp_combiner != TimestampCombiner::EndOfWindow
        {
            return Ok(None);
        }
        let input = plan.collection(&node.inputs[0]).ok_or_else(|| {
            ExecError::Internal(format!("`{}`: input missing from the plan", node.name))
        })?;
        let key_schema = Schema::new(
            spec.group_by
                .iter()
                .map(|k| {
                    input.schema.field(k).cloned().ok_or_else(|| {
                        ExecError::Internal(format!("`{}`: no key column `{k}`", node.name))
                    })
                })
                .collect::<ExecResult<Vec<_>>>()?,
        );
        Ok(Some(ColumnarCombineOperator {
            late_tag: match &w.late_data {
                LateDataPolicy::SideOutput { tag } => Some(tag.clone()),
                LateDataPolicy::Drop => None,
            },
            key_schema,
            slots: PaneSlots::new(spec)?,
            due: BTreeMap::new(),
            input_watermark: MIN_TIMESTAMP,
            output_watermark: MIN_TIMESTAMP,
            pane_buffer: Vec::new(),
            fired_buffer: Vec::new(),
        }))
    }

    /// Number of windows holding state, over all keys.
    pub fn window_count(&self) -> u64 {
        self.slots.live()
    }

    fn error(&self, message: impl Into<String>) -> ExecError {
        ExecError::transform(&self.slots.spec().node, message)
    }

    /// The columns of a snapshot: keys, window bounds, accumulators.
    fn column_names(&self) -> Vec<String> {
        let mut names = self.slots.spec().group_by.clone();
        names.push(WINDOW_START.to_string());
        names.push(WINDOW_END.to_string());
        names.extend(
            self.slots
                .accumulator_fields()
                .iter()
                .map(|f| f.name().clone()),
        );
        names
    }

    /// The key and window columns and the accumulator columns of a [`ColumnSnapshot`],
    /// each checked against the type this operator keeps.
    fn arrays_from_columns(
        &self,
        snapshot: &ColumnSnapshot,
    ) -> ExecResult<(Vec<ArrayRef>, Vec<ArrayRef>)> {
        let mut wanted: Vec<(String, ArrowType, bool)> = self
            .key_schema
            .fields
            .iter()
            .map(|f| (f.name.clone(), f.to_arrow().data_type().clone(), true))
            .collect();
        for bound in [WINDOW_START, WINDOW_END] {
            wanted.push((bound.to_string(), ArrowType::Int64, false));
        }
        let k = wanted.len();
        for f in self.slots.accumulator_fields() {
            wanted.push((f.name().clone(), f.data_type().clone(), f.is_nullable()));
        }
        let mut arrays = Vec::with_capacity(wanted.len());
        for (name, data_type, nullable) in &wanted {
            let column = snapshot.column(name).ok_or_else(|| {
                self.error(format!("restore: the snapshot has no column `{name}`"))
            })?;
            if column.data_type() != data_type || (!nullable && column.null_count() > 0) {
                return Err(self.error(format!(
                    "restore: column `{name}` of the snapshot is {}{}, not {data_type}",
                    column.data_type(),
                    if column.null_count() > 0 {
                        " with nulls"
                    } else {
                        ""
                    }
                )));
            }
            arrays.push(column.clone());
        }
        let accumulators = arrays.split_off(k);
        Ok((arrays, accumulators))
    }

    /// The key and window columns and the accumulator columns of per-entry JSON.
    fn arrays_from_entries(&self, state: Value) -> ExecResult<(Vec<ArrayRef>, Vec<ArrayRef>)> {
        let entries = match state {
            Value::Null => Vec::new(),
            Value::Array(entries) => entries,
            _ => return Err(self.error("restore: the snapshot is not an array of entries")),
        };
        if entries.iter().any(|e| e.get("active").is_some()) {
            return Err(self.error(
                "restore: the checkpointed state holds per-key windows of the general \
                 aggregation, but this Combine keeps columnar state; the checkpoint was \
                 written by another version of Weir",
            ));
        }
        let malformed = |i: usize, what: &str| self.error(format!("restore: entry {i}: {what}"));
        let mut key_rows = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let values = e["key"]
                .as_array()
                .filter(|v| v.len() == self.key_schema.fields.len())
                .ok_or_else(|| malformed(i, "no `key` with one value per key column"))?;
            key_rows.push(
                self.key_schema
                    .fields
                    .iter()
                    .map(|f| f.name.clone())
                    .zip(values.iter().cloned())
                    .collect(),
            );
        }
        let mut key_window = rows_to_arrays(&key_rows, &self.key_schema)
            .map_err(|(r, m)| malformed(r, &format!("key: {m}")))?;
        for bound in 0..2 {
            let values = entries
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    e["window"][bound]
                        .as_i64()
                        .ok_or_else(|| malformed(i, "no `window` [start, end]"))
                })
                .collect::<ExecResult<Vec<i64>>>()?;
            key_window.push(Arc::new(Int64Array::from(values)) as ArrayRef);
        }
        let fields = self.slots.accumulator_fields();
        let mut accumulators: Vec<ArrayRef> = Vec::with_capacity(fields.len());
        for (c, f) in fields.iter().enumerate() {
            // A value of the field's type in every entry, or null where the field allows it.
            let check_all = |is_typed: &dyn Fn(&Value) -> bool| -> ExecResult<()> {
                for (i, e) in entries.iter().enumerate() {
                    let v = &e["accumulators"][c];
                    if !(is_typed(v) || (v.is_null() && f.is_nullable())) {
                        let what = format!("accumulator {c} is not a {}", f.data_type());
                        return Err(malformed(i, &what));
                    }
                }
                Ok(())
            };
            let values = entries.iter().map(|e| &e["accumulators"][c]);
            accumulators.push(match f.data_type() {
                ArrowType::Int64 => {
                    check_all(&|v| v.is_i64())?;
                    Arc::new(values.map(Value::as_i64).collect::<Int64Array>())
                }
                _ => {
                    check_all(&Value::is_number)?;
                    Arc::new(values.map(Value::as_f64).collect::<Float64Array>())
                }
            });
        }
        Ok((key_window, accumulators))
    }
}

impl Operator for ColumnarCombineOperator {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
    ) -> ExecResult<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let inputs = self.slots.inputs(&batch)?;
        let keys = self.slots.slot_keys(&batch)?;
        let (_, starts, ends) = batch::ts_and_window(&batch);
        let mut late = vec![false; n];
        let mut any_late = false;
        let mut slot_of_row = vec![u32::MAX; n];
        let wm = self.input_watermark;
        // New slots by expiry time, a run of one window at a time (rows of a batch mostly
        // share a few windows): one map lookup per run rather than per new slot.
        let mut run: (Timestamp, Vec<u32>) = (MIN_TIMESTAMP, Vec::new());
        for r in 0..n {
            let window = Window::new(starts.value(r), ends.value(r));
            if window_is_expired(&window, Duration::ZERO, wm) {
                late[r] = true;
                any_late = true;
                continue;
            }
            let (slot, created) =
                self.slots
                    .slot_for(self.slots.key_of(&keys, r), window.start, window.end);
            if created {
                let gc = gc_time(&window, Duration::ZERO);
                if gc != run.0 && !run.1.is_empty() {
                    self.due.entry(run.0).or_default().append(&mut run.1);
                }
                run.0 = gc;
                run.1.push(slot);
            }
            slot_of_row[r] = slot;
        }
        if !run.1.is_empty() {
            self.due.entry(run.0).or_default().append(&mut run.1);
        }
        self.slots.accumulate(&inputs, &slot_of_row)?;
        if any_late {
            let count = late.iter().filter(|l| **l).count() as u64;
            match &self.late_tag {
                Some(tag) => {
                    let rows = filter_record_batch(&batch, &BooleanArray::from(late))?;
                    ctx.emit(Some(tag), rows);
                }
                None => ctx.metrics.late_dropped += count,
            }
        }
        Ok(())
    }

    /// Fires and frees every window whose end the watermark passed, then computes the output
    /// watermark from the pending windows' holds. Panes come out by window end, then in the
    /// order their keys first arrived in the window: deterministic for a given input order,
    /// with no sort (Flink's window operator gives no order among keys either).
    fn handle_watermark(
        &mut self,
        watermark: Timestamp,
        ctx: &mut OperatorContext,
    ) -> ExecResult<Timestamp> {
        self.input_watermark = self.input_watermark.max(watermark);
        let wm = self.input_watermark;
        // Due: expiry time < watermark (Beam's timers fire once the watermark is past them).
        let pending = self.due.split_off(&wm);
        let due = std::mem::replace(&mut self.due, pending);
        // Batches of a bounded size, built in buffers kept across calls: small enough to stay
        // in cache and no burst larger than a source batch for the channels downstream.
        let mut panes = std::mem::take(&mut self.pane_buffer);
        let mut fired = std::mem::take(&mut self.fired_buffer);
        for slots in due.into_values() {
            for chunk in slots.chunks(OUTPUT_BATCH_ROWS) {
                panes.clear();
                panes.extend(chunk.iter().map(|&slot| {
                    let window = self.slots.window(slot);
                    let pane = describe_pane(None, &window, true, wm, self.output_watermark);
                    (slot, pane)
                }));
                ctx.emit(None, self.slots.pane_output(&panes)?);
            }
            fired.extend_from_slice(&slots);
        }
        self.slots.evict(&fired);
        fired.clear();
        self.pane_buffer = panes;
        self.fired_buffer = fired;
        // Each pending window holds the output at its max timestamp (the end-of-window
        // timestamp combiner), which is its expiry time with no allowed lateness.
        self.output_watermark =
            output_watermark(self.output_watermark, wm, self.due.keys().next().copied());
        Ok(self.output_watermark)
    }

    fn on_close(&mut self, ctx: &mut OperatorContext) -> ExecResult<()> {
        self.handle_watermark(MAX_TIMESTAMP, ctx).map(|_| ())
    }

    /// The live slots as a [`ColumnSnapshot`]: the key columns by name, then
    /// `__window_start`, `__window_end` and the accumulators as stored (`__acc<i>`, a mean as
    /// its sum and count).
    fn snapshot(&self) -> ExecResult<Option<Value>> {
        self.snapshot_deferred()?
            .map(DeferredSnapshot::render)
            .transpose()
    }

    /// The live slots' columns are copied at the barrier; their JSON is built later.
    fn snapshot_deferred(&self) -> ExecResult<Option<DeferredSnapshot>> {
        let slots = self.slots.live_slots_where(|_| true);
        let mut arrays = self.slots.key_window_columns(&slots)?;
        arrays.extend(self.slots.accumulator_columns(&slots));
        let names = self.column_names();
        let snapshot =
            ColumnSnapshot::from_arrays(self.slots.spec().group_by.clone(), &names, arrays)?;
        Ok(Some(DeferredSnapshot::new(move || snapshot.into_value())))
    }

    /// Restores a [`ColumnSnapshot`], or the per-entry JSON of earlier versions (`{key:
    /// [values], window: [start, end], accumulators: [...]}` per key and window).
    fn restore(&mut self, state: Value) -> ExecResult<()> {
        let (key_window, accumulators) = match ColumnSnapshot::from_value(&state) {
            Some(snapshot) => {
                let snapshot = snapshot.map_err(|m| self.error(format!("restore: {m}")))?;
                self.arrays_from_columns(&snapshot)?
            }
            None => self.arrays_from_entries(state)?,
        };
        self.slots.clear();
        self.due.clear();
        let mut slots = self.slots.restore_rows(&key_window, &accumulators)?;
        // An entry repeated (the same key and window) lands in the same slot.
        slots.sort_unstable();
        slots.dedup();
        for slot in slots {
            let window = self.slots.window(slot);
            self.due
                .entry(gc_time(&window, Duration::ZERO))
                .or_default()
                .push(slot);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::ElementMeta;
    use crate::convert::batch_to_rows;
    use crate::operator::{AggregateOperator, WindowIntoOperator};
    use arrow::array::StringArray;
    use proptest::prelude::*;
    use serde_json::json;

    /// A keyed Combine of every kind over `windowing`, reading a memory source.
    fn plan_with(windowing: &str) -> Plan {
        let yaml = format!(
            "pipeline:
  type: chain
  transforms:
    - type: ReadFromMemory
      name: events
      config: {{name: events, schema: {{key: string, v: int64, x: float64, ts: int64}}}}
    - type: AssignTimestamps
      name: event_time
      config: {{timestamp: ts, max_out_of_orderness: 0s}}
    - type: WindowInto
      name: window
      config:
{windowing}
    - type: Combine
      name: agg
      config:
        group_by: key
        combine:
          n: {{fn: count}}
          nx: {{value: x, fn: count}}
          s: {{value: v, fn: sum}}
          sx: {{value: x, fn: sum}}
          lo: {{value: v, fn: min}}
          hi: {{value: x, fn: max}}
          avg: {{value: v, fn: mean}}
    - type: WriteToMemory
      config: {{name: out}}
"
        );
        let pipeline = weir_model::file::parse_str(&yaml, "test.yaml").unwrap();
        weir_model::plan(&pipeline).unwrap()
    }

    const WINDOWINGS: [&str; 4] = [
        "        windowing: {type: fixed, size: 10ms}",
        "        windowing: {type: sliding, size: 20ms, period: 5ms}
        late_data: {output: late}",
        "        windowing: {type: global}",
        "        windowing: {type: fixed, size: 10ms}
        trigger: {type: after_watermark}
        accumulation_mode: accumulating",
    ];

    type Event = (u8, Option<i64>, Option<f64>, i64);

    fn node(plan: &Plan) -> &TransformNode {
        plan.pipeline.node("agg").unwrap()
    }

    /// `events` windowed by the plan's `WindowInto`.
    fn windowed(plan: &Plan, events: &[Event]) -> RecordBatch {
        let info = plan.collection("event_time").unwrap();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                events.iter().map(|e| format!("k{}", e.0)),
            )),
            Arc::new(Int64Array::from_iter(events.iter().map(|e| e.1))),
            Arc::new(Float64Array::from_iter(events.iter().map(|e| e.2))),
            Arc::new(Int64Array::from_iter_values(events.iter().map(|e| e.3))),
        ];
        let metas: Vec<ElementMeta> = events
            .iter()
            .map(|e| ElementMeta::unwindowed(e.3))
            .collect();
        let input = batch::with_meta(&info.schema, columns, &metas).unwrap();
        let windowing = plan.collection("window").unwrap().windowing.clone();
        let mut op = WindowIntoOperator::new(&info.schema, windowing);
        let mut ctx = OperatorContext::new("window", 0, MIN_TIMESTAMP);
        op.process_batch(0, input, &mut ctx).unwrap();
        let out: Vec<RecordBatch> = ctx.take_outputs().into_iter().map(|(_, b)| b).collect();
        arrow::compute::concat_batches(&out[0].schema(), &out).unwrap()
    }

    /// What one step emitted (rows with their metadata, sorted: the two operators order keys
    /// differently), the late-row count and the output watermark.
    fn step(
        op: &mut dyn Operator,
        input: Option<&RecordBatch>,
        watermark: Timestamp,
    ) -> (Vec<String>, u64, Timestamp) {
        let mut ctx = OperatorContext::new("agg", 0, MIN_TIMESTAMP);
        if let Some(b) = input {
            op.process_batch(0, b.clone(), &mut ctx).unwrap();
        }
        let wm = op.handle_watermark(watermark, &mut ctx).unwrap();
        let mut rows: Vec<String> = ctx
            .take_outputs()
            .iter()
            .flat_map(|(tag, b)| {
                let metas = batch::metas(b);
                batch_to_rows(b)
                    .into_iter()
                    .zip(metas)
                    .map(move |(r, m)| format!("{tag:?} {r:?} {m:?}"))
            })
            .collect();
        rows.sort();
        (rows, ctx.metrics.late_dropped, wm)
    }

    fn event() -> impl Strategy<Value = Event> {
        (
            0u8..3,
            prop::option::of(-50i64..50),
            prop::option::of(prop_oneof![
                Just(f64::NAN),
                Just(f64::INFINITY),
                (-100i32..100).prop_map(|x| x as f64 / 4.0)
            ]),
            0i64..80,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Batch for batch and watermark for watermark, the columnar operator emits the
        /// general aggregation's panes, late rows and output watermarks; restored from its
        /// snapshot at any step (and given the last watermark again, as watermarks are not
        /// checkpointed), it goes on as the run that was not interrupted. The snapshot is
        /// taken deferred and rendered only after the run went on: what it copied at the
        /// barrier does not change with later rows.
        #[test]
        fn columnar_operator_matches_the_general_aggregation_and_restores(
            windowing in 0usize..WINDOWINGS.len(),
            batches in prop::collection::vec(prop::collection::vec(event(), 0..6), 1..8),
            delay in 0i64..25,
            cut in 0usize..9,
        ) {
            let plan = plan_with(WINDOWINGS[windowing]);
            let mut general = AggregateOperator::new(&plan, node(&plan)).unwrap();
            let mut columnar = ColumnarCombineOperator::new(&plan, node(&plan)).unwrap().expect("columnar");
            let mut steps: Vec<(Option<RecordBatch>, Timestamp)> = Vec::new();
            let mut max = MIN_TIMESTAMP;
            for b in &batches {
                max = b.iter().map(|e| e.3).fold(max, i64::max);
                let wm = if max == MIN_TIMESTAMP { MIN_TIMESTAMP } else { max - delay };
                steps.push(((!b.is_empty()).then(|| windowed(&plan, b)), wm));
            }
            steps.push((None, MAX_TIMESTAMP));
            let cut = cut.min(steps.len());
            let mut expected = Vec::new();
            let mut deferred = None;
            for (i, (input, wm)) in steps.iter().enumerate() {
                if i == cut {
                    deferred = columnar.snapshot_deferred().unwrap();
                }
                let a = step(&mut general, input.as_ref(), *wm);
                let b = step(&mut columnar, input.as_ref(), *wm);
                prop_assert_eq!(&a, &b, "step {}", i);
                expected.push(b);
            }
            let Some(deferred) = deferred else { return Ok(()) };
            let text = serde_json::to_string(&deferred.render().unwrap()).unwrap();
            let snapshot = serde_json::from_str::<Value>(&text).unwrap();
            let mut restored = ColumnarCombineOperator::new(&plan, node(&plan)).unwrap().unwrap();
            restored.restore(snapshot).unwrap();
            if cut > 0 {
                let (rows, _, _) = step(&mut restored, None, steps[cut - 1].1);
                prop_assert!(rows.is_empty(), "the last watermark again fires nothing");
            }
            for i in cut..steps.len() {
                let out = step(&mut restored, steps[i].0.as_ref(), steps[i].1);
                prop_assert_eq!(&out.0, &expected[i].0, "step {} after restoring at {}", i, cut);
            }
            prop_assert_eq!(restored.window_count(), 0);
        }
    }

    #[test]
    fn firings_beyond_the_one_at_the_window_end_keep_the_general_aggregation() {
        let columnar = |windowing: &str| {
            let plan = plan_with(windowing);
            ColumnarCombineOperator::new(&plan, node(&plan))
                .unwrap()
                .is_some()
        };
        assert!(columnar(WINDOWINGS[0]));
        assert!(!columnar(&format!(
            "{}\n        allowed_lateness: 5ms",
            WINDOWINGS[0]
        )));
        assert!(!columnar(&format!(
            "{}\n        trigger: {{type: after_watermark, early: {{type: after_count, count: 1}}}}",
            WINDOWINGS[0]
        )));
        assert!(!columnar(&format!(
            "{}\n        timestamp_combiner: earliest",
            WINDOWINGS[0]
        )));
        assert!(!columnar("        windowing: {type: sessions, gap: 10ms}"));
    }

    #[test]
    fn per_entry_snapshots_of_earlier_versions_restore_into_columns() {
        let plan = plan_with(WINDOWINGS[0]);
        let mut op = ColumnarCombineOperator::new(&plan, node(&plan))
            .unwrap()
            .unwrap();
        op.restore(json!([
            {"key": ["k1"], "window": [0, 10], "accumulators": [2, 1, 5, 0.5, -1, 0.5, 6.0, 2]},
            {"key": ["k2"], "window": [10, 20], "accumulators": [1, 0, null, null, null, null, 0.0, 0]}
        ]))
        .unwrap();
        let snapshot = op.snapshot().unwrap().unwrap();
        let columns = ColumnSnapshot::from_value(&snapshot).unwrap().unwrap();
        assert_eq!(columns.key, ["key"]);
        let column = |name: &str| -> Vec<Value> {
            let c = columns.column(name).unwrap();
            (0..c.len())
                .map(|r| crate::convert::value_at(c.as_ref(), r))
                .collect()
        };
        assert_eq!(column("key"), [json!("k1"), json!("k2")]);
        assert_eq!(column(WINDOW_END), [json!(10), json!(20)]);
        assert_eq!(column("__acc2"), [json!(5), Value::Null]);
        assert_eq!(column("__acc6_sum"), [json!(6.0), json!(0.0)]);
        let mut again = ColumnarCombineOperator::new(&plan, node(&plan))
            .unwrap()
            .unwrap();
        again.restore(snapshot.clone()).unwrap();
        assert_eq!(again.snapshot().unwrap().unwrap(), snapshot);
        let keys_only = ColumnSnapshot::from_arrays(
            vec!["key".into()],
            &["key".into()],
            vec![columns.column("key").unwrap().clone()],
        )
        .unwrap();
        let err = again
            .restore(keys_only.into_value().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no column `__window_start`"), "{err}");
    }

    #[test]
    fn a_snapshot_of_the_general_aggregation_is_refused_by_name() {
        let plan = plan_with(WINDOWINGS[0]);
        let mut op = ColumnarCombineOperator::new(&plan, node(&plan))
            .unwrap()
            .unwrap();
        let err = op
            .restore(json!([{"key": ["k1"], "active": [], "closed": []}]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`agg`") && err.contains("another version"),
            "{err}"
        );
        let err = op
            .restore(json!([{"key": ["k1"], "window": [0, 10], "accumulators": [1]}]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("entry 0") && err.contains("accumulator"),
            "{err}"
        );
    }
}
