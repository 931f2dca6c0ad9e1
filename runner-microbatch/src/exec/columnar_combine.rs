//! The columnar `Combine`: Spark's hash aggregation with its state store, kept in columns.
//!
//! A `Combine` over non-merging windows whose aggregations are all built-in counts, sums,
//! minima, maxima or means over int64/float64 inputs keeps its state as one *slot* per key and
//! window: the key and window in Arrow's row format, the accumulators in typed vectors, found
//! through a hash table of slot numbers. A batch costs one hash lookup per row and a typed
//! loop per aggregation, and its state delta is an Arrow IPC batch of the changed slots plus
//! the eviction watermark (restoring it re-applies the eviction rule), not one JSON entry per
//! key and window.
//!
//! The semantics are [`super::aggregate::WindowedAggregate`]'s, rule for rule: late rows are
//! those whose window expired at the late-filter watermark, rows of a window whose trigger
//! finished are dropped like late ones, panes fire and windows are evicted with the eviction
//! watermark per the node's [`FiringPlan`], nulls (and non-finite floats) are skipped, an
//! int64 sum that overflows fails. The tests run both stages over the same batches.

use super::{BatchContext, StageOutput};
use crate::error::{MicroBatchError, Result};
use crate::state::{RestoredState, StateChanges, EVICTED_AT};
use crate::translate::{firing_plan, FiringPlan, PaneCondition};
use crate::watermark::is_late;
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{
    DataType as ArrowType, Field as ArrowField, Float64Type, Int64Type, Schema as ArrowSchema,
};
use arrow::row::{RowConverter, SortField};
use foldhash::fast::FixedState;
use hashbrown::HashTable;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;
use weir_model::plan::Plan;
use weir_model::time::{Duration, Timestamp, MAX_TIMESTAMP};
use weir_model::transform::{AggregateFn, Transform};
use weir_model::window::{LateDataPolicy, PaneInfo, PaneTiming, Window};
use weir_model::{DataType, Expr, Schema, TransformNode};
use weir_runner_core::batch::{self, ElementMeta};
use weir_runner_core::combine::{Accumulator, Combiner};
use weir_runner_core::eval::evaluate_in;
use weir_runner_core::window::window_is_expired;
use weir_runner_core::ExecError;

/// What one aggregation computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AggKind {
    RowCount,
    CountNonNull,
    SumInt,
    SumFloat,
    Min,
    Max,
    Mean,
}

/// One aggregation: its output column, what it computes, over which input.
#[derive(Debug, Clone)]
struct AggSpec {
    name: String,
    kind: AggKind,
    input: Option<Expr>,
    /// The input's type for sums, minima, maxima and means: int64 or float64.
    input_type: ArrowType,
    /// The output column's type.
    output_type: ArrowType,
}

/// The accumulators of one aggregation, one per slot.
#[derive(Debug, Clone)]
enum AccColumn {
    /// Counts.
    Count(Vec<i64>),
    /// Int64 sums, minima or maxima; `None` until a value arrives.
    Int(Vec<Option<i64>>),
    /// Float64 sums, minima or maxima; `None` until a value arrives.
    Float(Vec<Option<f64>>),
    /// Sum and count of the values.
    Mean(Vec<f64>, Vec<i64>),
}

impl AccColumn {
    fn for_spec(spec: &AggSpec) -> AccColumn {
        match spec.kind {
            AggKind::RowCount | AggKind::CountNonNull => AccColumn::Count(Vec::new()),
            AggKind::SumInt => AccColumn::Int(Vec::new()),
            AggKind::SumFloat => AccColumn::Float(Vec::new()),
            AggKind::Min | AggKind::Max if spec.input_type == ArrowType::Int64 => {
                AccColumn::Int(Vec::new())
            }
            AggKind::Min | AggKind::Max => AccColumn::Float(Vec::new()),
            AggKind::Mean => AccColumn::Mean(Vec::new(), Vec::new()),
        }
    }

    /// Appends an empty accumulator (a new slot).
    fn push(&mut self) {
        match self {
            AccColumn::Count(v) => v.push(0),
            AccColumn::Int(v) => v.push(None),
            AccColumn::Float(v) => v.push(None),
            AccColumn::Mean(s, c) => {
                s.push(0.0);
                c.push(0);
            }
        }
    }

    /// Empties slot `i`'s accumulator.
    fn reset(&mut self, i: usize) {
        match self {
            AccColumn::Count(v) => v[i] = 0,
            AccColumn::Int(v) => v[i] = None,
            AccColumn::Float(v) => v[i] = None,
            AccColumn::Mean(s, c) => {
                s[i] = 0.0;
                c[i] = 0;
            }
        }
    }
}

/// One slot's key, window and pane bookkeeping (one cache line to touch per row).
#[derive(Debug, Clone, Copy, Default)]
struct SlotMeta {
    /// Where the key (row format) starts in the arena, and its length.
    key_offset: usize,
    key_len: u32,
    hash: u64,
    start: i64,
    end: i64,
    /// Rows since the last pane.
    pane_rows: u64,
    /// Batch timestamp of the pane's first row.
    opened_at: Option<i64>,
    /// Index of the next pane.
    next_pane: u64,
    /// Whether the ON_TIME pane has fired.
    fired_on_time: bool,
    /// Whether the slot holds a window (evicted slots are reused).
    live: bool,
    /// Changed since the last state delta.
    dirty: bool,
}

/// Per slot: the key and window (row format), the pane bookkeeping, the accumulators.
#[derive(Debug, Default)]
struct Slots {
    /// The slots' keys (row format), back to back: one allocation for all of them.
    arena: Vec<u8>,
    /// Bytes of `arena` that belong to evicted slots (reclaimed by [`Slots::compact`]).
    garbage: usize,
    meta: Vec<SlotMeta>,
    accs: Vec<AccColumn>,
}

impl Slots {
    fn len(&self) -> usize {
        self.meta.len()
    }

    fn key(&self, slot: usize) -> &[u8] {
        let at = self.meta[slot].key_offset;
        &self.arena[at..at + self.meta[slot].key_len as usize]
    }

    /// Rewrites the arena with the live slots' keys only, once evicted keys fill half of it.
    fn compact(&mut self) {
        if self.garbage < (1 << 20) || self.garbage * 2 < self.arena.len() {
            return;
        }
        let mut arena = Vec::with_capacity(self.arena.len() - self.garbage);
        for s in 0..self.len() {
            if self.meta[s].live {
                let at = self.meta[s].key_offset;
                self.meta[s].key_offset = arena.len();
                arena.extend_from_slice(&self.arena[at..at + self.meta[s].key_len as usize]);
            }
        }
        self.arena = arena;
        self.garbage = 0;
    }
}

/// A built-in `Combine` over non-merging windows, with its state in columns.
#[derive(Debug)]
pub struct ColumnarCombine {
    node: String,
    group_by: Vec<String>,
    aggs: Vec<AggSpec>,
    firing: FiringPlan,
    output_schema: Schema,
    late_tag: Option<String>,
    /// Complete output mode: every open window's result at every batch end.
    complete: bool,
    /// Key columns, window start and end, in Arrow's row format.
    converter: RowConverter,
    /// The key columns alone in Arrow's row format: a slot's key bytes minus the window's
    /// `window_width` trailing bytes (the row format encodes columns one after the other, and
    /// two int64s at a fixed width), decoded without decoding the window again.
    key_converter: RowConverter,
    window_width: usize,
    key_fields: Vec<ArrowField>,
    /// Fixed seed: a key's hash is the same in every run (panes are ordered by it).
    hasher: FixedState,
    table: HashTable<u32>,
    slots: Slots,
    free: Vec<u32>,
    live: u64,
    /// Slots marked dirty since the last delta (may repeat; the flag decides).
    dirty: Vec<u32>,
    /// The eviction watermark of the last batch, for the delta.
    evicted_at: Option<Timestamp>,
}

/// The columns of a columnar state batch after the key columns.
const STATE_START: &str = "__win_start";
const STATE_END: &str = "__win_end";
const STATE_PANE_ROWS: &str = "__pane_rows";
const STATE_OPENED_AT: &str = "__pane_opened_at";
const STATE_NEXT_PANE: &str = "__next_pane";
const STATE_FIRED_ON_TIME: &str = "__fired_on_time";

fn internal(m: String) -> MicroBatchError {
    MicroBatchError::Exec(ExecError::Internal(m))
}

fn arrow_err(e: arrow::error::ArrowError) -> MicroBatchError {
    MicroBatchError::Exec(ExecError::from(e))
}

impl ColumnarCombine {
    /// The columnar stage of `node`, or `None` when it is not a `Combine` this stage runs
    /// (merging windows, a user combiner, a distinct count, inputs other than int64/float64):
    /// those run as [`super::aggregate::WindowedAggregate`].
    pub fn new(plan: &Plan, node: &TransformNode) -> Result<Option<Self>> {
        let Transform::Combine {
            group_by,
            aggregations,
        } = &node.transform
        else {
            return Ok(None);
        };
        if node.inputs.len() != 1 {
            return Ok(None);
        }
        let input = plan.collection(&node.inputs[0]).ok_or_else(|| {
            internal(format!(
                "`{}`: input `{}` missing from the plan",
                node.name, node.inputs[0]
            ))
        })?;
        if input.windowing.window_fn.is_merging() {
            return Ok(None);
        }
        let output_schema = plan
            .collection(&node.name)
            .ok_or_else(|| internal(format!("`{}` missing from the plan", node.name)))?
            .schema
            .clone();
        let mut aggs = Vec::new();
        for a in aggregations {
            let Some(field) = output_schema.field(&a.name) else {
                return Ok(None);
            };
            let Ok(combiner) = Combiner::new(a, &field.data_type) else {
                return Ok(None);
            };
            let input_type = match &a.input {
                Some(e) => match e.data_type(&input.schema) {
                    Ok(DataType::Int64) => ArrowType::Int64,
                    Ok(DataType::Float64) => ArrowType::Float64,
                    Ok(_) => ArrowType::Null,
                    Err(_) => return Ok(None),
                },
                None => ArrowType::Null,
            };
            let numeric = matches!(input_type, ArrowType::Int64 | ArrowType::Float64);
            let kind = match (combiner.create(), &a.input, &a.func) {
                (_, None, AggregateFn::Custom(_)) => return Ok(None),
                (Accumulator::Count { .. }, None, _) => AggKind::RowCount,
                (Accumulator::Count { .. }, Some(_), _) => AggKind::CountNonNull,
                (Accumulator::SumInt { .. }, Some(_), _) if input_type == ArrowType::Int64 => {
                    AggKind::SumInt
                }
                (Accumulator::SumFloat { .. }, Some(_), _) if input_type == ArrowType::Float64 => {
                    AggKind::SumFloat
                }
                (Accumulator::Min { .. }, Some(_), _) if numeric => AggKind::Min,
                (Accumulator::Max { .. }, Some(_), _) if numeric => AggKind::Max,
                (Accumulator::Mean { .. }, Some(_), _) if numeric => AggKind::Mean,
                _ => return Ok(None),
            };
            aggs.push(AggSpec {
                name: a.name.clone(),
                kind,
                input: a.input.clone(),
                input_type,
                output_type: field.to_arrow().data_type().clone(),
            });
        }
        let mut key_fields = Vec::new();
        for k in group_by {
            let f = input.schema.field(k).ok_or_else(|| {
                internal(format!("`{}`: no key column `{k}` in its input", node.name))
            })?;
            // Float keys: the JSON path groups NaN, infinities and null as one null key;
            // Arrow's row format keeps them apart.
            if matches!(f.data_type, DataType::Float64) {
                return Ok(None);
            }
            key_fields.push(f.to_arrow());
        }
        let mut sort_fields: Vec<SortField> = key_fields
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        sort_fields.push(SortField::new(ArrowType::Int64));
        sort_fields.push(SortField::new(ArrowType::Int64));
        let key_converter =
            RowConverter::new(sort_fields[..group_by.len()].to_vec()).map_err(arrow_err)?;
        let converter = RowConverter::new(sort_fields).map_err(arrow_err)?;
        let window_width = {
            let window = RowConverter::new(vec![
                SortField::new(ArrowType::Int64),
                SortField::new(ArrowType::Int64),
            ])
            .map_err(arrow_err)?;
            let one: ArrayRef = Arc::new(Int64Array::from(vec![0]));
            let rows = window
                .convert_columns(&[one.clone(), one])
                .map_err(arrow_err)?;
            rows.row(0).data().len()
        };
        let slots = Slots {
            accs: aggs.iter().map(AccColumn::for_spec).collect(),
            ..Slots::default()
        };
        Ok(Some(ColumnarCombine {
            node: node.name.clone(),
            group_by: group_by.clone(),
            aggs,
            firing: firing_plan(&input.windowing)?,
            output_schema,
            late_tag: match &input.windowing.late_data {
                LateDataPolicy::SideOutput { tag } => Some(tag.clone()),
                LateDataPolicy::Drop => None,
            },
            complete: false,
            converter,
            key_converter,
            window_width,
            key_fields,
            hasher: FixedState::with_seed(0x5765_6972),
            table: HashTable::new(),
            slots,
            free: Vec::new(),
            live: 0,
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
        self.live
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
        out.state_rows = self.live;
        Ok(out)
    }

    fn mark_dirty(&mut self, slot: u32) {
        let s = slot as usize;
        if !self.slots.meta[s].dirty {
            self.slots.meta[s].dirty = true;
            self.dirty.push(slot);
        }
    }

    /// The slot of (`key`, window), created empty if there is none.
    fn slot_for(&mut self, key: &[u8], start: i64, end: i64) -> (u32, bool) {
        let hash = self.hasher.hash_one(key);
        let Self { table, slots, .. } = self;
        if let Some(s) = table.find(hash, |&s| slots.key(s as usize) == key) {
            return (*s, false);
        }
        let sl = &mut self.slots;
        let offset = sl.arena.len();
        sl.arena.extend_from_slice(key);
        let meta = SlotMeta {
            key_offset: offset,
            key_len: key.len() as u32,
            hash,
            start,
            end,
            pane_rows: 0,
            opened_at: None,
            next_pane: 0,
            fired_on_time: false,
            live: true,
            dirty: false,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                let i = s as usize;
                sl.meta[i] = meta;
                sl.accs.iter_mut().for_each(|a| a.reset(i));
                s
            }
            None => {
                sl.meta.push(meta);
                sl.accs.iter_mut().for_each(AccColumn::push);
                (sl.meta.len() - 1) as u32
            }
        };
        let metas = &self.slots.meta;
        self.table
            .insert_unique(hash, slot, |&s| metas[s as usize].hash);
        self.live += 1;
        (slot, true)
    }

    /// Frees `slots`; the hash table forgets them by lookup when they are few, by one pass
    /// over the table when they are many.
    fn evict(&mut self, slots: &[u32]) {
        if slots.is_empty() {
            return;
        }
        for &slot in slots {
            let i = slot as usize;
            self.slots.meta[i].live = false;
            self.slots.meta[i].dirty = false;
            self.slots.garbage += self.slots.meta[i].key_len as usize;
        }
        if slots.len() * 4 >= self.table.len() {
            // A dense bitmap: the pass over the table then touches no slot's metadata.
            let mut gone = vec![false; self.slots.len()];
            for &slot in slots {
                gone[slot as usize] = true;
            }
            self.table.retain(|s| !gone[*s as usize]);
        } else {
            for &slot in slots {
                if let Ok(entry) = self
                    .table
                    .find_entry(self.slots.meta[slot as usize].hash, |&s| s == slot)
                {
                    entry.remove();
                }
            }
        }
        self.free.extend_from_slice(slots);
        self.live -= slots.len() as u64;
        self.slots.compact();
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
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.group_by.len() + 2);
        for k in self
            .group_by
            .iter()
            .map(String::as_str)
            .chain([batch::WIN_START, batch::WIN_END])
        {
            columns.push(batch.column_by_name(k).cloned().ok_or_else(|| {
                internal(format!("`{}`: no column `{k}` in its input", self.node))
            })?);
        }
        let inputs: Vec<Option<ArrayRef>> = self
            .aggs
            .iter()
            .map(|a| match &a.input {
                Some(e) => {
                    let col = evaluate_in(&self.node, e, batch)?;
                    let wanted = &a.input_type;
                    Ok(Some(
                        if col.data_type() == wanted || a.kind == AggKind::CountNonNull {
                            col
                        } else {
                            cast(&col, wanted).map_err(ExecError::from)?
                        },
                    ))
                }
                None => Ok(None),
            })
            .collect::<std::result::Result<_, ExecError>>()?;
        let rows = self
            .converter
            .convert_columns(&columns)
            .map_err(arrow_err)?;
        let (_, starts, ends) = batch::ts_and_window(batch);
        let mut late = vec![false; n];
        let mut slot_of_row = vec![u32::MAX; n];
        let finishes = self.firing.late.is_none();
        let metas = &self.slots.meta;
        self.table.reserve(n, |&s| metas[s as usize].hash);
        for r in 0..n {
            let end = ends.value(r);
            if self.row_is_late(end, ctx.late_filter_watermark) {
                late[r] = true;
                continue;
            }
            let (slot, created) = self.slot_for(rows.row(r).data(), starts.value(r), end);
            let s = slot as usize;
            // A window whose trigger fired ON_TIME without late firings takes no more rows.
            if !created && finishes && self.slots.meta[s].fired_on_time {
                late[r] = true;
                continue;
            }
            slot_of_row[r] = slot;
            self.slots.meta[s].pane_rows += 1;
            self.slots.meta[s]
                .opened_at
                .get_or_insert(ctx.batch_timestamp);
            self.mark_dirty(slot);
        }
        for (spec, (acc, input)) in self
            .aggs
            .iter()
            .zip(self.slots.accs.iter_mut().zip(&inputs))
        {
            accumulate(&self.node, spec, acc, input.as_ref(), &slot_of_row)?;
        }
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
            let s = slot as usize;
            if !self.slots.meta[s].live {
                continue;
            }
            let window = Window::new(self.slots.meta[s].start, self.slots.meta[s].end);
            let closed = is_late(window.end, wm);
            let expired = wm.is_some_and(|w| window_is_expired(&window, lateness, w));
            let (rows, opened, fired_on_time) = (
                self.slots.meta[s].pane_rows,
                self.slots.meta[s].opened_at,
                self.slots.meta[s].fired_on_time,
            );
            let condition = if closed {
                self.firing.late
            } else {
                self.firing.early
            };
            let due_by_condition = condition
                .is_some_and(|c| c.holds(rows, opened, ctx.batch_timestamp))
                && (!closed || fired_on_time || !self.firing.on_time);
            let due_on_time = closed
                && self.firing.on_time
                && !fired_on_time
                && (rows > 0 || self.firing.fire_always);
            let due_closing =
                expired && self.firing.closing_pane && (rows > 0 || self.firing.fire_always);
            let due_complete = self.complete && !closed;
            if due_by_condition || due_on_time || due_closing || due_complete {
                let timing = if !closed {
                    PaneTiming::Early
                } else if !fired_on_time {
                    self.slots.meta[s].fired_on_time = true;
                    PaneTiming::OnTime
                } else {
                    PaneTiming::Late
                };
                let index = self.slots.meta[s].next_pane;
                fired.push((
                    slot,
                    PaneInfo {
                        timing,
                        index,
                        is_first: index == 0,
                        is_last: expired,
                    },
                ));
                self.slots.meta[s].next_pane += 1;
                self.slots.meta[s].pane_rows = 0;
                self.slots.meta[s].opened_at = None;
                self.mark_dirty(slot);
            } else if closed && self.firing.on_time && !fired_on_time {
                // Nothing new to show at the close of a discarding window: it still closes.
                self.slots.meta[s].fired_on_time = true;
                self.mark_dirty(slot);
            }
            if expired {
                expired_slots.push(slot);
            }
        }
        let output = self.pane_output(&fired)?;
        if !self.firing.accumulating {
            for (slot, _) in &fired {
                self.slots
                    .accs
                    .iter_mut()
                    .for_each(|a| a.reset(*slot as usize));
            }
        }
        self.evict(&expired_slots);
        Ok(output)
    }

    /// The output rows of the fired panes, ordered by window then key.
    fn pane_output(&self, fired: &[(u32, PaneInfo)]) -> Result<Option<RecordBatch>> {
        if fired.is_empty() {
            return Ok(None);
        }
        let sl = &self.slots;
        // By window (runs of slots of one window are grouped, not sorted), then by key.
        let mut by_window: BTreeMap<(i64, i64), Vec<(u32, PaneInfo)>> = BTreeMap::new();
        let mut run: Vec<(u32, PaneInfo)> = Vec::new();
        let mut current = None;
        for f in fired.iter() {
            let m = &sl.meta[f.0 as usize];
            if current != Some((m.start, m.end)) {
                if let Some(w) = current {
                    by_window.entry(w).or_default().append(&mut run);
                }
                current = Some((m.start, m.end));
            }
            run.push(*f);
        }
        if let Some(w) = current {
            by_window.entry(w).or_default().append(&mut run);
        }
        // Within a window, by the key's fixed-seed hash, then its bytes: the same order live
        // and after a restore, whatever slots the keys occupy, and cheap to sort.
        let fired: Vec<(u32, PaneInfo)> = by_window
            .into_values()
            .flat_map(|group| {
                let mut keyed: Vec<(u64, (u32, PaneInfo))> = group
                    .into_iter()
                    .map(|f| (sl.meta[f.0 as usize].hash, f))
                    .collect();
                keyed.sort_unstable_by(|(ha, a), (hb, b)| {
                    ha.cmp(hb)
                        .then_with(|| sl.key(a.0 as usize).cmp(sl.key(b.0 as usize)))
                });
                keyed.into_iter().map(|(_, f)| f)
            })
            .collect();
        let slots: Vec<u32> = fired.iter().map(|(s, _)| *s).collect();
        let keys = self.key_columns(&slots)?;
        let mut by_name: HashMap<&str, ArrayRef> =
            self.group_by.iter().map(String::as_str).zip(keys).collect();
        for (spec, acc) in self.aggs.iter().zip(&sl.accs) {
            let values = extract(acc, &slots);
            let values = if values.data_type() == &spec.output_type {
                values
            } else {
                cast(&values, &spec.output_type).map_err(arrow_err)?
            };
            by_name.insert(spec.name.as_str(), values);
        }
        let columns = self
            .output_schema
            .fields
            .iter()
            .map(|f| {
                by_name.remove(f.name.as_str()).ok_or_else(|| {
                    internal(format!("`{}`: no output column `{}`", self.node, f.name))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let metas: Vec<ElementMeta> = fired
            .iter()
            .map(|(s, pane)| {
                let window = Window::new(sl.meta[*s as usize].start, sl.meta[*s as usize].end);
                ElementMeta {
                    ts: window.max_timestamp(),
                    window,
                    pane: *pane,
                }
            })
            .collect();
        Ok(Some(
            batch::with_meta(&self.output_schema, columns, &metas).map_err(arrow_err)?,
        ))
    }

    /// The key columns of `slots`, decoded from their row format.
    fn key_columns(&self, slots: &[u32]) -> Result<Vec<ArrayRef>> {
        let parser = self.key_converter.parser();
        let columns = self
            .key_converter
            .convert_rows(slots.iter().map(|s| {
                let key = self.slots.key(*s as usize);
                parser.parse(&key[..key.len() - self.window_width])
            }))
            .map_err(arrow_err)?;
        Ok(columns)
    }

    /// Whether a pane waiting on processing time would fire at batch timestamp `now`.
    pub fn processing_time_due(&self, now: Timestamp) -> bool {
        let timed: Vec<PaneCondition> = [self.firing.early, self.firing.late]
            .into_iter()
            .flatten()
            .filter(|c| matches!(c, PaneCondition::AfterProcessingTime(_)))
            .collect();
        !timed.is_empty()
            && (0..self.slots.len()).any(|s| {
                self.slots.meta[s].live
                    && timed.iter().any(|c| {
                        c.holds(
                            self.slots.meta[s].pane_rows,
                            self.slots.meta[s].opened_at,
                            now,
                        )
                    })
            })
    }

    /// The schema of this stage's state batches.
    fn state_schema(&self, evicted_at: Option<Timestamp>) -> Arc<ArrowSchema> {
        let mut fields: Vec<ArrowField> = self
            .key_fields
            .iter()
            .map(|f| f.clone().with_nullable(true))
            .collect();
        fields.push(ArrowField::new(STATE_START, ArrowType::Int64, false));
        fields.push(ArrowField::new(STATE_END, ArrowType::Int64, false));
        fields.push(ArrowField::new(STATE_PANE_ROWS, ArrowType::Int64, false));
        fields.push(ArrowField::new(STATE_OPENED_AT, ArrowType::Int64, true));
        fields.push(ArrowField::new(STATE_NEXT_PANE, ArrowType::Int64, false));
        fields.push(ArrowField::new(
            STATE_FIRED_ON_TIME,
            ArrowType::Boolean,
            false,
        ));
        for (i, acc) in self.slots.accs.iter().enumerate() {
            match acc {
                AccColumn::Count(_) => fields.push(ArrowField::new(
                    format!("__acc{i}"),
                    ArrowType::Int64,
                    false,
                )),
                AccColumn::Int(_) => {
                    fields.push(ArrowField::new(format!("__acc{i}"), ArrowType::Int64, true))
                }
                AccColumn::Float(_) => fields.push(ArrowField::new(
                    format!("__acc{i}"),
                    ArrowType::Float64,
                    true,
                )),
                AccColumn::Mean(..) => {
                    fields.push(ArrowField::new(
                        format!("__acc{i}_sum"),
                        ArrowType::Float64,
                        false,
                    ));
                    fields.push(ArrowField::new(
                        format!("__acc{i}_count"),
                        ArrowType::Int64,
                        false,
                    ));
                }
            }
        }
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
        let sl = &self.slots;
        let idx = |v: &[i64]| Int64Array::from_iter_values(slots.iter().map(|s| v[*s as usize]));
        let mut columns = self.key_columns(slots)?;
        columns.push(Arc::new(Int64Array::from_iter_values(
            slots.iter().map(|s| sl.meta[*s as usize].start),
        )));
        columns.push(Arc::new(Int64Array::from_iter_values(
            slots.iter().map(|s| sl.meta[*s as usize].end),
        )));
        columns.push(Arc::new(Int64Array::from_iter_values(
            slots.iter().map(|s| sl.meta[*s as usize].pane_rows as i64),
        )));
        columns.push(Arc::new(Int64Array::from_iter(
            slots.iter().map(|s| sl.meta[*s as usize].opened_at),
        )));
        columns.push(Arc::new(Int64Array::from_iter_values(
            slots.iter().map(|s| sl.meta[*s as usize].next_pane as i64),
        )));
        columns.push(Arc::new(BooleanArray::from_iter(
            slots
                .iter()
                .map(|s| Some(sl.meta[*s as usize].fired_on_time)),
        )));
        for acc in &sl.accs {
            match acc {
                AccColumn::Count(v) => columns.push(Arc::new(idx(v))),
                AccColumn::Int(v) => columns.push(Arc::new(Int64Array::from_iter(
                    slots.iter().map(|s| v[*s as usize]),
                ))),
                AccColumn::Float(v) => columns.push(Arc::new(Float64Array::from_iter(
                    slots.iter().map(|s| v[*s as usize]),
                ))),
                AccColumn::Mean(sum, count) => {
                    columns.push(Arc::new(Float64Array::from_iter_values(
                        slots.iter().map(|s| sum[*s as usize]),
                    )));
                    columns.push(Arc::new(idx(count)));
                }
            }
        }
        RecordBatch::try_new(self.state_schema(evicted_at), columns).map_err(arrow_err)
    }

    /// The changes since the last call (the changed slots and the eviction watermark), and
    /// the whole state when `full`.
    pub fn take_changes(&mut self, full: bool) -> Result<StateChanges> {
        let mut changed = Vec::with_capacity(self.dirty.len());
        for slot in std::mem::take(&mut self.dirty) {
            let s = slot as usize;
            if self.slots.meta[s].dirty {
                self.slots.meta[s].dirty = false;
                changed.push(slot);
            }
        }
        let delta = vec![self.state_batch(&changed, self.evicted_at)?];
        let full = if full {
            let live: Vec<u32> = (0..self.slots.len() as u32)
                .filter(|s| self.slots.meta[*s as usize].live)
                .collect();
            Some(vec![self.state_batch(&live, None)?])
        } else {
            None
        };
        Ok(StateChanges::Columnar { delta, full })
    }

    /// Replaces the state with a restored version: the base snapshot's slots, then each
    /// delta's upserts and evictions in order.
    pub fn restore(&mut self, state: RestoredState) -> Result<()> {
        self.table.clear();
        self.slots = Slots {
            accs: self.aggs.iter().map(AccColumn::for_spec).collect(),
            ..Slots::default()
        };
        self.free.clear();
        self.dirty.clear();
        self.live = 0;
        self.evicted_at = None;
        let batches = match state {
            RestoredState::Columnar(b) => b,
            RestoredState::Entries(m) if m.is_empty() => Vec::new(),
            RestoredState::Entries(_) => {
                return Err(internal(format!(
                    "`{}`: its checkpointed state is JSON entries, but this Combine keeps \
                     columnar state; the checkpoint was written by another version of Weir",
                    self.node
                )))
            }
        };
        for b in &batches {
            self.apply_state_batch(b)?;
        }
        for m in &mut self.slots.meta {
            m.dirty = false;
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
                    self.node,
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
                    self.node,
                    f.name(),
                    c.data_type(),
                    f.data_type()
                )));
            }
            columns.push(c);
        }
        let k = self.group_by.len();
        let rows = self
            .converter
            .convert_columns(&columns[..k + 2])
            .map_err(arrow_err)?;
        let i64s = |i: usize| columns[i].as_primitive::<Int64Type>().clone();
        let (starts, ends, pane_rows, opened, next_pane) =
            (i64s(k), i64s(k + 1), i64s(k + 2), i64s(k + 3), i64s(k + 4));
        let fired = columns[k + 5].as_boolean().clone();
        for r in 0..b.num_rows() {
            let (slot, _) = self.slot_for(rows.row(r).data(), starts.value(r), ends.value(r));
            let s = slot as usize;
            self.slots.meta[s].pane_rows = pane_rows.value(r) as u64;
            self.slots.meta[s].opened_at = opened.is_valid(r).then(|| opened.value(r));
            self.slots.meta[s].next_pane = next_pane.value(r) as u64;
            self.slots.meta[s].fired_on_time = fired.value(r);
            let mut c = k + 6;
            for acc in &mut self.slots.accs {
                match acc {
                    AccColumn::Count(v) => v[s] = columns[c].as_primitive::<Int64Type>().value(r),
                    AccColumn::Int(v) => {
                        let a = columns[c].as_primitive::<Int64Type>();
                        v[s] = a.is_valid(r).then(|| a.value(r));
                    }
                    AccColumn::Float(v) => {
                        let a = columns[c].as_primitive::<Float64Type>();
                        v[s] = a.is_valid(r).then(|| a.value(r));
                    }
                    AccColumn::Mean(sum, count) => {
                        sum[s] = columns[c].as_primitive::<Float64Type>().value(r);
                        c += 1;
                        count[s] = columns[c].as_primitive::<Int64Type>().value(r);
                    }
                }
                c += 1;
            }
        }
        if let Some(w) = b.schema().metadata().get(EVICTED_AT) {
            let w: Timestamp = w.parse().map_err(|_| {
                internal(format!(
                    "`{}`: a state delta's eviction watermark `{w}` is not a number",
                    self.node
                ))
            })?;
            let lateness = Duration(self.firing.allowed_lateness);
            let expired: Vec<u32> = (0..self.slots.len() as u32)
                .filter(|s| {
                    let s = *s as usize;
                    self.slots.meta[s].live
                        && window_is_expired(
                            &Window::new(self.slots.meta[s].start, self.slots.meta[s].end),
                            lateness,
                            w,
                        )
                })
                .collect();
            self.evict(&expired);
        }
        Ok(())
    }
}

/// Whether `a[row]` is a value the per-row path would see (not null, not a non-finite float).
fn present(a: &ArrayRef, row: usize) -> bool {
    a.is_valid(row)
        && (a.data_type() != &ArrowType::Float64
            || a.as_primitive::<Float64Type>().value(row).is_finite())
}

/// Adds each row's input to its slot's accumulator (`u32::MAX`: the row is skipped).
fn accumulate(
    node: &str,
    spec: &AggSpec,
    acc: &mut AccColumn,
    input: Option<&ArrayRef>,
    slot_of_row: &[u32],
) -> Result<()> {
    let rows = || {
        slot_of_row
            .iter()
            .enumerate()
            .filter(|(_, s)| **s != u32::MAX)
            .map(|(r, s)| (r, *s as usize))
    };
    let missing = || {
        internal(format!(
            "`{node}`: aggregation `{}` has no input",
            spec.name
        ))
    };
    match (spec.kind, acc) {
        (AggKind::RowCount, AccColumn::Count(c)) => {
            for (_, s) in rows() {
                c[s] += 1;
            }
        }
        (AggKind::CountNonNull, AccColumn::Count(c)) => {
            let a = input.ok_or_else(missing)?;
            for (r, s) in rows() {
                c[s] += present(a, r) as i64;
            }
        }
        (AggKind::SumInt, AccColumn::Int(v)) => {
            let a = input.ok_or_else(missing)?.as_primitive::<Int64Type>();
            for (r, s) in rows() {
                if a.is_valid(r) {
                    let x = a.value(r);
                    v[s] = Some(match v[s] {
                        None => x,
                        Some(sum) => sum.checked_add(x).ok_or_else(|| {
                            MicroBatchError::Exec(ExecError::transform(
                                node,
                                format!("int64 sum overflows adding {x} to {sum}"),
                            ))
                        })?,
                    });
                }
            }
        }
        (AggKind::Min | AggKind::Max, AccColumn::Int(v)) => {
            let a = input.ok_or_else(missing)?.as_primitive::<Int64Type>();
            let min = spec.kind == AggKind::Min;
            for (r, s) in rows() {
                if a.is_valid(r) {
                    let x = a.value(r);
                    v[s] = Some(match v[s] {
                        None => x,
                        Some(b) if min => b.min(x),
                        Some(b) => b.max(x),
                    });
                }
            }
        }
        (AggKind::SumFloat | AggKind::Min | AggKind::Max, AccColumn::Float(v)) => {
            let a = input.ok_or_else(missing)?.as_primitive::<Float64Type>();
            for (r, s) in rows() {
                let x = a.value(r);
                if a.is_valid(r) && x.is_finite() {
                    // As runner-core's combiners: a sum starts at 0.0 (so -0.0 sums to 0.0),
                    // and an extreme is replaced only by a strictly smaller/larger value.
                    v[s] = Some(match (spec.kind, v[s]) {
                        (AggKind::SumFloat, b) => b.unwrap_or(0.0) + x,
                        (_, None) => x,
                        (AggKind::Min, Some(b)) if x < b => x,
                        (AggKind::Max, Some(b)) if x > b => x,
                        (_, Some(b)) => b,
                    });
                }
            }
        }
        (AggKind::Mean, AccColumn::Mean(sum, count)) => {
            let a = input.ok_or_else(missing)?;
            for (r, s) in rows() {
                if a.is_valid(r) {
                    let x = match a.data_type() {
                        ArrowType::Int64 => a.as_primitive::<Int64Type>().value(r) as f64,
                        _ => a.as_primitive::<Float64Type>().value(r),
                    };
                    if x.is_finite() {
                        sum[s] += x;
                        count[s] += 1;
                    }
                }
            }
        }
        (kind, _) => {
            return Err(internal(format!(
                "`{node}`: aggregation `{}` ({kind:?}) has accumulators of another kind",
                spec.name
            )))
        }
    }
    Ok(())
}

/// The results of `slots`' accumulators, as runner-core's `Combiner::extract` gives them
/// (non-finite float results are null, as JSON cannot hold them).
fn extract(acc: &AccColumn, slots: &[u32]) -> ArrayRef {
    let finite = |x: f64| x.is_finite().then_some(x);
    match acc {
        AccColumn::Count(v) => Arc::new(Int64Array::from_iter_values(
            slots.iter().map(|s| v[*s as usize]),
        )),
        AccColumn::Int(v) => Arc::new(Int64Array::from_iter(slots.iter().map(|s| v[*s as usize]))),
        AccColumn::Float(v) => Arc::new(Float64Array::from_iter(
            slots.iter().map(|s| v[*s as usize].and_then(finite)),
        )),
        AccColumn::Mean(sum, count) => Arc::new(Float64Array::from_iter(slots.iter().map(|s| {
            let s = *s as usize;
            (count[s] > 0)
                .then(|| sum[s] / count[s] as f64)
                .and_then(finite)
        }))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::aggregate::WindowedAggregate;
    use crate::state::{StateStore, StateStoreConfig};
    use arrow::array::StringArray;
    use proptest::prelude::*;
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
