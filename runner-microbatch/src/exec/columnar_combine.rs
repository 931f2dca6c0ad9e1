//! The columnar `Combine`: Spark's hash aggregation with its state store, kept in columns.
//!
//! A `Combine` that runner-core's [`PaneSlots`] can hold (non-merging windows, built-in
//! counts, sums, minima, maxima or means over int64/float64 inputs) keeps its state as one
//! slot per key and window with the pane bookkeeping below. A batch costs one hash lookup per
//! row and a typed loop per aggregation, and its state delta is an Arrow IPC batch of the
//! changed slots plus the eviction watermark (restoring it re-applies the eviction rule), not
//! one JSON entry per key and window.
//!
//! The semantics are [`super::aggregate::WindowedAggregate`]'s, rule for rule: late rows are
//! those whose window expired at the late-filter watermark, rows of a window whose trigger
//! finished are dropped like late ones, panes fire and windows are evicted with the eviction
//! watermark per the node's [`FiringPlan`]. The tests run both stages over the same batches.

use super::{BatchContext, StageOutput};
use crate::error::{MicroBatchError, Result};
use crate::state::{RestoredState, StateChanges, EVICTED_AT};
use crate::translate::{firing_plan, FiringPlan, PaneCondition};
use crate::watermark::is_late;
use arrow::array::{Array, AsArray, BooleanArray, Int64Array, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{
    DataType as ArrowType, Field as ArrowField, Int64Type, Schema as ArrowSchema,
};
use std::collections::HashMap;
use std::sync::Arc;
use weir_model::plan::Plan;
use weir_model::time::{Duration, Timestamp, MAX_TIMESTAMP};
use weir_model::window::{LateDataPolicy, PaneInfo, PaneTiming};
use weir_model::TransformNode;
use weir_runner_core::batch;
use weir_runner_core::combine::{ColumnarCombineSpec, PaneSlots};
use weir_runner_core::window::window_is_expired;
use weir_runner_core::ExecError;

/// One slot's pane bookkeeping in Spark's batch-at-a-time firing.
#[derive(Debug, Clone, Copy, Default)]
struct PaneBook {
    /// Rows since the last pane.
    pane_rows: u64,
    /// Batch timestamp of the pane's first row.
    opened_at: Option<i64>,
    /// Index of the next pane.
    next_pane: u64,
    /// Whether the ON_TIME pane has fired.
    fired_on_time: bool,
    /// Changed since the last state delta.
    dirty: bool,
}

/// A built-in `Combine` over non-merging windows, with its state in columns.
#[derive(Debug)]
pub struct ColumnarCombine {
    firing: FiringPlan,
    late_tag: Option<String>,
    /// Complete output mode: every open window's result at every batch end.
    complete: bool,
    slots: PaneSlots<PaneBook>,
    /// Slots marked dirty since the last delta (may repeat; the flag decides).
    dirty: Vec<u32>,
    /// The eviction watermark of the last batch, for the delta.
    evicted_at: Option<Timestamp>,
}

/// The pane bookkeeping columns of a state batch, between the window and the accumulators.
const STATE_START: &str = "__win_start";
const STATE_END: &str = "__win_end";
const STATE_PANE_ROWS: &str = "__pane_rows";
const STATE_OPENED_AT: &str = "__pane_opened_at";
const STATE_NEXT_PANE: &str = "__next_pane";
const STATE_FIRED_ON_TIME: &str = "__fired_on_time";

fn internal(m: String) -> MicroBatchError {
    MicroBatchError::Exec(ExecError::Internal(m))
}

impl ColumnarCombine {
    /// The columnar stage of `node`, or `None` when it is not a `Combine` this stage runs
    /// (see [`ColumnarCombineSpec::new`]): those run as
    /// [`super::aggregate::WindowedAggregate`].
    pub fn new(plan: &Plan, node: &TransformNode) -> Result<Option<Self>> {
        let Some(spec) = ColumnarCombineSpec::new(plan, node)? else {
            return Ok(None);
        };
        Ok(Some(ColumnarCombine {
            firing: firing_plan(&spec.windowing)?,
            late_tag: match &spec.windowing.late_data {
                LateDataPolicy::SideOutput { tag } => Some(tag.clone()),
                LateDataPolicy::Drop => None,
            },
            complete: false,
            slots: PaneSlots::new(spec)?,
            dirty: Vec::new(),
            evicted_at: None,
        }))
    }

    /// Switches to Spark's complete output mode.
    pub fn set_complete(&mut self) {
        self.complete = true;
    }

    /// Rows of state.
    pub fn state_rows(&self) -> u64 {
        self.slots.live()
    }

    /// Handles the batch's input rows, then fires and evicts.
    pub fn process(
        &mut self,
        inputs: Vec<(usize, RecordBatch)>,
        ctx: &BatchContext,
    ) -> Result<StageOutput> {
        let mut out = StageOutput::default();
        for (_, batch) in inputs {
            self.add_batch(&batch, ctx, &mut out)?;
        }
        if let Some(b) = self.fire_and_evict(ctx)? {
            out.outputs.push((None, b));
        }
        out.state_rows = self.slots.live();
        Ok(out)
    }

    fn mark_dirty(&mut self, slot: u32) {
        let book = self.slots.panes_mut(slot);
        if !book.dirty {
            book.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// Whether a row in window [start, end) is too late for it: the window has expired at
    /// the late-filter watermark (`window_end + allowed_lateness <= watermark`).
    fn row_is_late(&self, end: i64, late_filter: Option<Timestamp>) -> bool {
        end < MAX_TIMESTAMP
            && is_late(
                end.saturating_add(self.firing.allowed_lateness),
                late_filter,
            )
    }

    fn add_batch(
        &mut self,
        batch: &RecordBatch,
        ctx: &BatchContext,
        out: &mut StageOutput,
    ) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let inputs = self.slots.inputs(batch)?;
        let rows = self.slots.slot_keys(batch)?;
        let (_, starts, ends) = batch::ts_and_window(batch);
        let mut late = vec![false; n];
        let mut slot_of_row = vec![u32::MAX; n];
        let finishes = self.firing.late.is_none();
        for r in 0..n {
            let end = ends.value(r);
            if self.row_is_late(end, ctx.late_filter_watermark) {
                late[r] = true;
                continue;
            }
            let (slot, created) =
                self.slots
                    .slot_for(self.slots.key_of(&rows, r), starts.value(r), end);
            // A window whose trigger fired ON_TIME without late firings takes no more rows.
            if !created && finishes && self.slots.panes(slot).fired_on_time {
                late[r] = true;
                continue;
            }
            slot_of_row[r] = slot;
            let book = self.slots.panes_mut(slot);
            book.pane_rows += 1;
            book.opened_at.get_or_insert(ctx.batch_timestamp);
            self.mark_dirty(slot);
        }
        self.slots.accumulate(&inputs, &slot_of_row)?;
        self.route_late(batch, late, out)
    }

    /// Late rows go to the late side output, or are dropped and counted.
    fn route_late(
        &self,
        batch: &RecordBatch,
        late: Vec<bool>,
        out: &mut StageOutput,
    ) -> Result<()> {
        let dropped = late.iter().filter(|l| **l).count() as u64;
        if dropped == 0 {
            return Ok(());
        }
        match &self.late_tag {
            Some(tag) => {
                let rows = filter_record_batch(batch, &BooleanArray::from(late))
                    .map_err(ExecError::from)?;
                out.outputs.push((Some(tag.clone()), rows));
            }
            None => out.rows_dropped_by_watermark += dropped,
        }
        Ok(())
    }

    /// Fires due panes and evicts expired windows with the eviction watermark (the rules of
    /// `WindowedAggregate::fire_and_evict`).
    fn fire_and_evict(&mut self, ctx: &BatchContext) -> Result<Option<RecordBatch>> {
        let wm = ctx.eviction_watermark;
        self.evicted_at = wm;
        let lateness = Duration(self.firing.allowed_lateness);
        let mut fired: Vec<(u32, PaneInfo)> = Vec::new();
        let mut expired_slots = Vec::new();
        for slot in 0..self.slots.len() as u32 {
            if !self.slots.is_live(slot) {
                continue;
            }
            let window = self.slots.window(slot);
            let closed = is_late(window.end, wm);
            let expired = wm.is_some_and(|w| window_is_expired(&window, lateness, w));
            let book = *self.slots.panes(slot);
            let condition = if closed {
                self.firing.late
            } else {
                self.firing.early
            };
            let rows = book.pane_rows;
            let due_by_condition = condition
                .is_some_and(|c| c.holds(rows, book.opened_at, ctx.batch_timestamp))
                && (!closed || book.fired_on_time || !self.firing.on_time);
            let due_on_time = closed
                && self.firing.on_time
                && !book.fired_on_time
                && (rows > 0 || self.firing.fire_always);
            let due_closing =
                expired && self.firing.closing_pane && (rows > 0 || self.firing.fire_always);
            let due_complete = self.complete && !closed;
            if due_by_condition || due_on_time || due_closing || due_complete {
                let book = self.slots.panes_mut(slot);
                let timing = if !closed {
                    PaneTiming::Early
                } else if !book.fired_on_time {
                    book.fired_on_time = true;
                    PaneTiming::OnTime
                } else {
                    PaneTiming::Late
                };
                let index = book.next_pane;
                fired.push((
                    slot,
                    PaneInfo {
                        timing,
                        index,
                        is_first: index == 0,
                        is_last: expired,
                    },
                ));
                book.next_pane += 1;
                book.pane_rows = 0;
                book.opened_at = None;
                self.mark_dirty(slot);
            } else if closed && self.firing.on_time && !book.fired_on_time {
                // Nothing new to show at the close of a discarding window: it still closes.
                self.slots.panes_mut(slot).fired_on_time = true;
                self.mark_dirty(slot);
            }
            if expired {
                expired_slots.push(slot);
            }
        }
        let output = if fired.is_empty() {
            None
        } else {
            self.slots.sort_panes(&mut fired);
            Some(self.slots.pane_output(&fired)?)
        };
        if !self.firing.accumulating {
            for (slot, _) in &fired {
                self.slots.reset_accumulators(*slot);
            }
        }
        self.evict(&expired_slots);
        Ok(output)
    }

    fn evict(&mut self, slots: &[u32]) {
        for &slot in slots {
            self.slots.panes_mut(slot).dirty = false;
        }
        self.slots.evict(slots);
    }

    /// Whether a pane waiting on processing time would fire at batch timestamp `now`.
    pub fn processing_time_due(&self, now: Timestamp) -> bool {
        let timed: Vec<PaneCondition> = [self.firing.early, self.firing.late]
            .into_iter()
            .flatten()
            .filter(|c| matches!(c, PaneCondition::AfterProcessingTime(_)))
            .collect();
        !timed.is_empty()
            && (0..self.slots.len() as u32).any(|s| {
                self.slots.is_live(s)
                    && timed.iter().any(|c| {
                        let book = self.slots.panes(s);
                        c.holds(book.pane_rows, book.opened_at, now)
                    })
            })
    }

    /// The schema of this stage's state batches.
    fn state_schema(&self, evicted_at: Option<Timestamp>) -> Arc<ArrowSchema> {
        let mut fields = self.slots.key_window_fields(STATE_START, STATE_END);
        fields.push(ArrowField::new(STATE_PANE_ROWS, ArrowType::Int64, false));
        fields.push(ArrowField::new(STATE_OPENED_AT, ArrowType::Int64, true));
        fields.push(ArrowField::new(STATE_NEXT_PANE, ArrowType::Int64, false));
        fields.push(ArrowField::new(
            STATE_FIRED_ON_TIME,
            ArrowType::Boolean,
            false,
        ));
        fields.extend(self.slots.accumulator_fields());
        let metadata: HashMap<String, String> = evicted_at
            .map(|w| {
                [(EVICTED_AT.to_string(), w.to_string())]
                    .into_iter()
                    .collect()
            })
            .unwrap_or_default();
        Arc::new(ArrowSchema::new_with_metadata(fields, metadata))
    }

    /// `slots` as a state batch.
    fn state_batch(&self, slots: &[u32], evicted_at: Option<Timestamp>) -> Result<RecordBatch> {
        let book = |s: &u32| *self.slots.panes(*s);
        let mut columns = self.slots.key_window_columns(slots)?;
        columns.push(Arc::new(Int64Array::from_iter_values(
            slots.iter().map(|s| book(s).pane_rows as i64),
        )));
        columns.push(Arc::new(Int64Array::from_iter(
            slots.iter().map(|s| book(s).opened_at),
        )));
        columns.push(Arc::new(Int64Array::from_iter_values(
            slots.iter().map(|s| book(s).next_pane as i64),
        )));
        columns.push(Arc::new(BooleanArray::from_iter(
            slots.iter().map(|s| Some(book(s).fired_on_time)),
        )));
        columns.extend(self.slots.accumulator_columns(slots));
        RecordBatch::try_new(self.state_schema(evicted_at), columns)
            .map_err(|e| MicroBatchError::Exec(ExecError::from(e)))
    }

    /// The changes since the last call (the changed slots and the eviction watermark), and
    /// the whole state when `full`.
    pub fn take_changes(&mut self, full: bool) -> Result<StateChanges> {
        let mut changed = Vec::with_capacity(self.dirty.len());
        for slot in std::mem::take(&mut self.dirty) {
            let book = self.slots.panes_mut(slot);
            if book.dirty {
                book.dirty = false;
                changed.push(slot);
            }
        }
        let delta = vec![self.state_batch(&changed, self.evicted_at)?];
        let full = if full {
            let live = self.slots.live_slots_where(|_| true);
            Some(vec![self.state_batch(&live, None)?])
        } else {
            None
        };
        Ok(StateChanges::Columnar { delta, full })
    }

    /// Replaces the state with a restored version: the base snapshot's slots, then each
    /// delta's upserts and evictions in order.
    pub fn restore(&mut self, state: RestoredState) -> Result<()> {
        self.slots.clear();
        self.dirty.clear();
        self.evicted_at = None;
        let batches = match state {
            RestoredState::Columnar(b) => b,
            RestoredState::Entries(m) if m.is_empty() => Vec::new(),
            RestoredState::Entries(_) => {
                return Err(internal(format!(
                    "`{}`: its checkpointed state is JSON entries, but this Combine keeps \
                     columnar state; the checkpoint was written by another version of Weir",
                    self.slots.spec().node
                )))
            }
        };
        for b in &batches {
            self.apply_state_batch(b)?;
        }
        for slot in 0..self.slots.len() as u32 {
            self.slots.panes_mut(slot).dirty = false;
        }
        self.dirty.clear();
        Ok(())
    }

    fn apply_state_batch(&mut self, b: &RecordBatch) -> Result<()> {
        let expected = self.state_schema(None);
        let column = |name: &str| {
            b.column_by_name(name).cloned().ok_or_else(|| {
                internal(format!(
                    "`{}`: a state batch has no column `{name}` (it has {:?})",
                    self.slots.spec().node,
                    b.schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect::<Vec<_>>()
                ))
            })
        };
        let mut columns = Vec::with_capacity(expected.fields().len());
        for f in expected.fields() {
            let c = column(f.name())?;
            if c.data_type() != f.data_type() {
                return Err(internal(format!(
                    "`{}`: state column `{}` is {}, expected {}",
                    self.slots.spec().node,
                    f.name(),
                    c.data_type(),
                    f.data_type()
                )));
            }
            columns.push(c);
        }
        let k = self.slots.spec().group_by.len();
        let i64s = |i: usize| columns[i].as_primitive::<Int64Type>().clone();
        let (pane_rows, opened, next_pane) = (i64s(k + 2), i64s(k + 3), i64s(k + 4));
        let fired = columns[k + 5].as_boolean().clone();
        let slots = self
            .slots
            .restore_rows(&columns[..k + 2], &columns[k + 6..])?;
        for (r, slot) in slots.into_iter().enumerate() {
            *self.slots.panes_mut(slot) = PaneBook {
                pane_rows: pane_rows.value(r) as u64,
                opened_at: opened.is_valid(r).then(|| opened.value(r)),
                next_pane: next_pane.value(r) as u64,
                fired_on_time: fired.value(r),
                dirty: false,
            };
        }
        if let Some(w) = b.schema().metadata().get(EVICTED_AT) {
            let w: Timestamp = w.parse().map_err(|_| {
                internal(format!(
                    "`{}`: a state delta's eviction watermark `{w}` is not a number",
                    self.slots.spec().node
                ))
            })?;
            let lateness = Duration(self.firing.allowed_lateness);
            let expired = self
                .slots
                .live_slots_where(|window| window_is_expired(&window, lateness, w));
            self.evict(&expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::aggregate::WindowedAggregate;
    use crate::state::{StateStore, StateStoreConfig};
    use arrow::array::{ArrayRef, Float64Array, StringArray};
    use proptest::prelude::*;
    use weir_model::window::Window;
    use weir_runner_core::batch::ElementMeta;
    use weir_runner_core::convert::batch_to_rows;

    /// A keyed Combine over 10 ms fixed windows, with `windowing` extra WindowInto config.
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
        windowing: {{type: fixed, size: 10ms}}
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
        "",
        "        trigger: {type: after_watermark, late: {type: after_count, count: 1}}
        accumulation_mode: accumulating
        allowed_lateness: 20ms",
        "        trigger: {type: after_watermark, early: {type: repeatedly, trigger: {type: after_count, count: 2}}}
        accumulation_mode: discarding",
        "        allowed_lateness: 15ms",
    ];

    type Event = (u8, Option<i64>, Option<f64>, i64);

    fn input_batch(plan: &Plan, events: &[Event]) -> RecordBatch {
        let schema = &plan.collection("window").unwrap().schema;
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
            .map(|e| {
                let start = e.3 - e.3.rem_euclid(10);
                ElementMeta {
                    ts: e.3,
                    window: Window::new(start, start + 10),
                    pane: PaneInfo::NO_FIRING,
                }
            })
            .collect();
        batch::with_meta(schema, columns, &metas).unwrap()
    }

    /// Every output row (user columns and metadata) as text, sorted, by tag.
    fn rendered(out: &StageOutput) -> Vec<String> {
        let mut rows: Vec<String> = out
            .outputs
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
        rows.push(format!("dropped {}", out.rows_dropped_by_watermark));
        rows
    }

    /// The contexts of a run: batch i at 1000·i ms, eviction watermark the largest event
    /// time so far minus `delay`, late filtering with the previous batch's; a final batch
    /// at the end of input.
    fn contexts(batches: &[Vec<Event>], delay: i64) -> Vec<BatchContext> {
        let mut max = None::<i64>;
        let mut previous = None;
        let mut out = Vec::new();
        for (i, b) in batches.iter().enumerate() {
            max = b.iter().map(|e| e.3).chain(max).max();
            let wm = max.map(|m| m - delay);
            out.push(BatchContext {
                batch_id: i as u64,
                batch_timestamp: 1000 * i as i64,
                late_filter_watermark: previous,
                eviction_watermark: wm,
            });
            previous = wm;
        }
        out.push(BatchContext {
            batch_id: batches.len() as u64,
            batch_timestamp: 1000 * batches.len() as i64,
            late_filter_watermark: previous,
            eviction_watermark: Some(MAX_TIMESTAMP),
        });
        out
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
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// The columnar Combine gives the JSON-state aggregation's panes, late rows and
        /// state sizes batch for batch; restored from its checkpointed state at any batch, it
        /// goes on to give the same panes as the run that was not interrupted.
        #[test]
        fn columnar_state_matches_json_state_and_restores(
            windowing in 0usize..WINDOWINGS.len(),
            batches in prop::collection::vec(prop::collection::vec(event(), 0..6), 1..8),
            delay in 0i64..25,
            cut in 0usize..8,
        ) {
            let plan = plan_with(WINDOWINGS[windowing]);
            let node = plan.pipeline.transforms.iter().find(|n| n.name == "agg").unwrap();
            let mut json = WindowedAggregate::new(&plan, node).unwrap();
            let mut columnar = ColumnarCombine::new(&plan, node).unwrap().expect("columnar");
            let dir = tempfile::tempdir().unwrap();
            let store = StateStore::new(
                dir.path(),
                "agg",
                StateStoreConfig { snapshot_every: 3, retain: 100 },
            );
            let ctxs = contexts(&batches, delay);
            let inputs: Vec<Vec<(usize, RecordBatch)>> = batches
                .iter()
                .map(|b| vec![(0, input_batch(&plan, b))])
                .chain([Vec::new()])
                .collect();
            let mut expected = Vec::new();
            for (i, (input, ctx)) in inputs.iter().zip(&ctxs).enumerate() {
                let a = json.process(input.clone(), ctx).unwrap();
                let b = columnar.process(input.clone(), ctx).unwrap();
                prop_assert_eq!(rendered(&a), rendered(&b), "batch {}", i);
                prop_assert_eq!(a.state_rows, b.state_rows, "state rows after batch {}", i);
                let changes = columnar.take_changes(store.snapshot_due(i as u64 + 1)).unwrap();
                store.commit(i as u64 + 1, &changes).unwrap();
                expected.push(rendered(&b));
            }
            let cut = cut.min(inputs.len());
            let mut restored = ColumnarCombine::new(&plan, node).unwrap().unwrap();
            restored.restore(store.restore(cut as u64).unwrap()).unwrap();
            for i in cut..inputs.len() {
                let out = restored.process(inputs[i].clone(), &ctxs[i]).unwrap();
                prop_assert_eq!(&rendered(&out), &expected[i], "batch {} after restoring {}", i, cut);
            }
        }
    }

    #[test]
    fn merging_windows_and_other_inputs_stay_with_json_state() {
        let yaml = "pipeline:
  type: chain
  transforms:
    - type: ReadFromMemory
      name: events
      config: {name: events, schema: {key: string, s: string, ts: int64}}
    - type: AssignTimestamps
      name: event_time
      config: {timestamp: ts, max_out_of_orderness: 0s}
    - type: WindowInto
      name: window
      config:
        windowing: {type: sessions, gap: 10ms}
    - type: Combine
      name: agg
      config:
        group_by: key
        combine:
          n: {fn: count}
    - type: WriteToMemory
      config: {name: out}
";
        let columnar = |yaml: &str| {
            let plan =
                weir_model::plan(&weir_model::file::parse_str(yaml, "t.yaml").unwrap()).unwrap();
            let node = plan
                .pipeline
                .transforms
                .iter()
                .find(|n| n.name == "agg")
                .unwrap();
            ColumnarCombine::new(&plan, node).unwrap().is_some()
        };
        assert!(!columnar(yaml));
        let fixed = yaml.replace("{type: sessions, gap: 10ms}", "{type: fixed, size: 10ms}");
        assert!(columnar(&fixed));
        assert!(!columnar(
            &fixed.replace("n: {fn: count}", "n: {value: s, fn: max}")
        ));
        // Float keys: NaN, infinities and null are one (null) key on the JSON path.
        let float_key = fixed
            .replace("s: string", "s: float64")
            .replace("group_by: key", "group_by: s");
        assert!(!columnar(&float_key));
    }
}
