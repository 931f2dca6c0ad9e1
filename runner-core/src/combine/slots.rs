//! [`PaneSlots`]: the state of a built-in `Combine` over non-merging windows, kept in columns.
//!
//! One *slot* per key and window: the key columns in Arrow's row format (one arena for every
//! key; the window is the slot's table's), the accumulators in typed vectors, found through one hash
//! table of slot numbers per window under a fixed-seed hash. A batch costs one hash lookup
//! per row and one typed loop per aggregation, with no allocation per row or per group.
//! Tables per window rather than one for all: a batch's rows mostly fall in a few windows,
//! whose small tables stay in cache, and a closing window's table is emptied at once and
//! reused for a later window instead of leaving holes in a big one. Each runner keeps its
//! own pane bookkeeping per slot (the `M` of [`PaneSlots`]) and its own firing rules; this
//! module only stores, accumulates, evicts and renders.
//!
//! The results are [`Combiner`]'s, rule for rule: nulls (and non-finite floats) are skipped,
//! a float sum starts at 0.0, an extreme is replaced only by a strictly smaller or larger
//! value, an int64 sum that overflows fails, non-finite float results are null.

use super::{Accumulator, Combiner};
use crate::batch::{self, ElementMeta};
use crate::error::{ExecError, ExecResult};
use crate::eval::evaluate_in;
use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType as ArrowType, Field as ArrowField, Float64Type, Int64Type};
use arrow::row::{RowConverter, Rows, SortField};
use foldhash::fast::FixedState;
use hashbrown::HashTable;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use weir_model::plan::Plan;
use weir_model::transform::{AggregateFn, Transform};
use weir_model::window::{PaneInfo, Window, WindowingStrategy};
use weir_model::{DataType, Expr, Schema, TransformNode};

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

/// A `Combine` that [`PaneSlots`] can hold: one input, non-merging windows, built-in counts,
/// sums, minima, maxima or means over int64/float64 inputs, non-float keys.
#[derive(Debug, Clone)]
pub struct ColumnarCombineSpec {
    /// The transform's name.
    pub node: String,
    /// The key columns.
    pub group_by: Vec<String>,
    /// The input's windowing strategy.
    pub windowing: WindowingStrategy,
    /// The output schema (key columns, then one column per aggregation, in plan order).
    pub output_schema: Schema,
    aggs: Vec<AggSpec>,
    key_fields: Vec<ArrowField>,
}

impl ColumnarCombineSpec {
    /// The spec of `node`, or `None` when it is not a `Combine` that columns can hold
    /// (merging windows, a user combiner, a distinct count, inputs other than int64/float64,
    /// float keys): those keep per-key JSON state.
    pub fn new(plan: &Plan, node: &TransformNode) -> ExecResult<Option<Self>> {
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
            ExecError::Internal(format!(
                "`{}`: input `{}` missing from the plan",
                node.name, node.inputs[0]
            ))
        })?;
        if input.windowing.window_fn.is_merging() {
            return Ok(None);
        }
        let output_schema = plan
            .collection(&node.name)
            .ok_or_else(|| ExecError::Internal(format!("`{}` missing from the plan", node.name)))?
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
                ExecError::Internal(format!("`{}`: no key column `{k}` in its input", node.name))
            })?;
            // Float keys: the JSON path groups NaN, infinities and null as one null key;
            // Arrow's row format keeps them apart.
            if matches!(f.data_type, DataType::Float64) {
                return Ok(None);
            }
            key_fields.push(f.to_arrow());
        }
        Ok(Some(ColumnarCombineSpec {
            node: node.name.clone(),
            group_by: group_by.clone(),
            windowing: input.windowing.clone(),
            output_schema,
            aggs,
            key_fields,
        }))
    }
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

/// One slot's key, window table and the runner's pane bookkeeping `M`. Kept small: a
/// window's worth of new keys between two watermarks is this many bytes each, all faulted
/// in as the state grows.
#[derive(Debug, Clone, Copy, Default)]
struct SlotMeta<M> {
    /// Where the key (row format) starts in the arena, and its length.
    key_offset: usize,
    key_len: u32,
    /// The slot's window table (index into `PaneSlots::tables` and `table_windows`).
    table: u32,
    hash: u64,
    /// Whether the slot holds a window (evicted slots are reused).
    live: bool,
    panes: M,
}

/// The keyed, windowed accumulators of one `Combine` (see the module docs). `M` is the
/// runner's per-slot pane bookkeeping, created with `M::default()` with each new slot.
#[derive(Debug)]
pub struct PaneSlots<M> {
    spec: ColumnarCombineSpec,
    /// The key columns in Arrow's row format.
    converter: RowConverter,
    /// Fixed seed: a key's hash is the same in every run (panes are ordered by it).
    hasher: FixedState,
    /// One table of slots per window holding any (emptied tables are kept for reuse).
    tables: Vec<HashTable<u32>>,
    /// The window of each table (of its last window, for a free table).
    table_windows: Vec<Window>,
    /// The table of each window holding slots.
    table_of_window: hashbrown::HashMap<(i64, i64), u32, FixedState>,
    /// Emptied tables, free for the next new window.
    free_tables: Vec<u32>,
    /// The last window looked up and its table: consecutive rows mostly share a window.
    last_window: Option<(i64, i64, u32)>,
    /// Per table, slots being evicted (scratch of `evict`, all zero between calls).
    evicting: Vec<u32>,
    /// The slots' keys (row format), back to back: one allocation for all of them.
    arena: Vec<u8>,
    /// Bytes of `arena` that belong to evicted slots (reclaimed by `compact`).
    garbage: usize,
    /// The previous arena's allocation, reused by the next `compact`.
    spare_arena: Vec<u8>,
    meta: Vec<SlotMeta<M>>,
    accs: Vec<AccColumn>,
    free: Vec<u32>,
    live: u64,
}

fn arrow_err(e: arrow::error::ArrowError) -> ExecError {
    ExecError::from(e)
}

impl<M: Copy + Default> PaneSlots<M> {
    /// Empty state for `spec`.
    pub fn new(spec: ColumnarCombineSpec) -> ExecResult<Self> {
        let sort_fields: Vec<SortField> = spec
            .key_fields
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        let converter = RowConverter::new(sort_fields).map_err(arrow_err)?;
        let accs = spec.aggs.iter().map(AccColumn::for_spec).collect();
        Ok(PaneSlots {
            spec,
            converter,
            hasher: FixedState::with_seed(0x5765_6972),
            tables: Vec::new(),
            table_windows: Vec::new(),
            table_of_window: hashbrown::HashMap::with_hasher(FixedState::with_seed(0x5765_6972)),
            free_tables: Vec::new(),
            last_window: None,
            evicting: Vec::new(),
            arena: Vec::new(),
            garbage: 0,
            spare_arena: Vec::new(),
            meta: Vec::new(),
            accs,
            free: Vec::new(),
            live: 0,
        })
    }

    /// The spec these slots hold.
    pub fn spec(&self) -> &ColumnarCombineSpec {
        &self.spec
    }

    /// Forgets every slot.
    pub fn clear(&mut self) {
        self.tables.clear();
        self.table_windows.clear();
        self.table_of_window.clear();
        self.free_tables.clear();
        self.last_window = None;
        self.evicting.clear();
        self.arena.clear();
        self.garbage = 0;
        self.meta.clear();
        self.accs = self.spec.aggs.iter().map(AccColumn::for_spec).collect();
        self.free.clear();
        self.live = 0;
    }

    /// Slot numbers in use or free: valid slots are `0..len()`, see [`PaneSlots::is_live`].
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// Whether no slot was ever created (since the last clear).
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// Number of live slots (keys × windows held).
    pub fn live(&self) -> u64 {
        self.live
    }

    /// Whether `slot` holds a window.
    pub fn is_live(&self, slot: u32) -> bool {
        self.meta[slot as usize].live
    }

    /// The window of `slot`.
    pub fn window(&self, slot: u32) -> Window {
        self.table_windows[self.meta[slot as usize].table as usize]
    }

    /// The runner's pane bookkeeping of `slot`.
    pub fn panes(&self, slot: u32) -> &M {
        &self.meta[slot as usize].panes
    }

    /// The runner's pane bookkeeping of `slot`, to change.
    pub fn panes_mut(&mut self, slot: u32) -> &mut M {
        &mut self.meta[slot as usize].panes
    }

    fn key(&self, slot: usize) -> &[u8] {
        let at = self.meta[slot].key_offset;
        &self.arena[at..at + self.meta[slot].key_len as usize]
    }

    /// Row `r`'s key among `keys` (from [`PaneSlots::slot_keys`]): empty for a `Combine`
    /// without keys, whose converted rows have no rows at all.
    pub fn key_of<'a>(&self, keys: &'a Rows, r: usize) -> &'a [u8] {
        if self.spec.group_by.is_empty() {
            &[]
        } else {
            keys.row(r).data()
        }
    }

    /// The keys of a batch's rows in the row format: see [`PaneSlots::key_of`].
    pub fn slot_keys(&self, batch: &RecordBatch) -> ExecResult<Rows> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.spec.group_by.len());
        for k in self.spec.group_by.iter().map(String::as_str) {
            columns.push(batch.column_by_name(k).cloned().ok_or_else(|| {
                ExecError::Internal(format!(
                    "`{}`: no column `{k}` in its input",
                    self.spec.node
                ))
            })?);
        }
        self.converter.convert_columns(&columns).map_err(arrow_err)
    }

    /// Each aggregation's input column over `batch` (`None` for a row count).
    pub fn inputs(&self, batch: &RecordBatch) -> ExecResult<Vec<Option<ArrayRef>>> {
        self.spec
            .aggs
            .iter()
            .map(|a| match &a.input {
                Some(e) => {
                    let col = evaluate_in(&self.spec.node, e, batch)?;
                    let wanted = &a.input_type;
                    Ok(Some(
                        if col.data_type() == wanted || a.kind == AggKind::CountNonNull {
                            col
                        } else {
                            cast(&col, wanted)?
                        },
                    ))
                }
                None => Ok(None),
            })
            .collect()
    }

    /// The table of window (`start`, `end`), taken from the free tables if the window has
    /// none yet.
    fn table_for(&mut self, start: i64, end: i64) -> u32 {
        if let Some((s, e, t)) = self.last_window {
            if s == start && e == end {
                return t;
            }
        }
        let t = match self.table_of_window.get(&(start, end)) {
            Some(t) => *t,
            None => {
                let window = Window::new(start, end);
                let t = match self.free_tables.pop() {
                    Some(t) => {
                        self.table_windows[t as usize] = window;
                        t
                    }
                    None => {
                        self.tables.push(HashTable::new());
                        self.table_windows.push(window);
                        self.evicting.push(0);
                        (self.tables.len() - 1) as u32
                    }
                };
                self.table_of_window.insert((start, end), t);
                t
            }
        };
        self.last_window = Some((start, end, t));
        t
    }

    /// Empties table `t` (its window holds no slot any more) and frees it for reuse.
    fn release_table(&mut self, t: u32) {
        let window = self.table_windows[t as usize];
        self.tables[t as usize].clear();
        self.table_of_window.remove(&(window.start, window.end));
        if self.last_window.is_some_and(|(_, _, last)| last == t) {
            self.last_window = None;
        }
        self.free_tables.push(t);
    }

    /// The slot of (`key`, window) — `key` being a row of [`PaneSlots::slot_keys`] — created
    /// empty if there is none; `true` when created.
    pub fn slot_for(&mut self, key: &[u8], start: i64, end: i64) -> (u32, bool) {
        let t = self.table_for(start, end);
        let hash = self.hasher.hash_one(key);
        let Self {
            tables,
            meta,
            arena,
            ..
        } = &*self;
        let found = tables[t as usize].find(hash, |&s| {
            let m = &meta[s as usize];
            &arena[m.key_offset..m.key_offset + m.key_len as usize] == key
        });
        if let Some(s) = found {
            return (*s, false);
        }
        let offset = self.arena.len();
        self.arena.extend_from_slice(key);
        let meta = SlotMeta {
            key_offset: offset,
            key_len: key.len() as u32,
            table: t,
            hash,
            live: true,
            panes: M::default(),
        };
        let slot = match self.free.pop() {
            Some(s) => {
                let i = s as usize;
                self.meta[i] = meta;
                self.accs.iter_mut().for_each(|a| a.reset(i));
                s
            }
            None => {
                self.meta.push(meta);
                self.accs.iter_mut().for_each(AccColumn::push);
                (self.meta.len() - 1) as u32
            }
        };
        let metas = &self.meta;
        self.tables[t as usize].insert_unique(hash, slot, |&s| metas[s as usize].hash);
        self.live += 1;
        (slot, true)
    }

    /// Adds each row's inputs (from [`PaneSlots::inputs`]) to its slot's accumulators;
    /// `u32::MAX` skips the row.
    pub fn accumulate(
        &mut self,
        inputs: &[Option<ArrayRef>],
        slot_of_row: &[u32],
    ) -> ExecResult<()> {
        for (spec, (acc, input)) in self.spec.aggs.iter().zip(self.accs.iter_mut().zip(inputs)) {
            accumulate(&self.spec.node, spec, acc, input.as_ref(), slot_of_row)?;
        }
        Ok(())
    }

    /// Empties `slot`'s accumulators (a discarding pane fired).
    pub fn reset_accumulators(&mut self, slot: u32) {
        self.accs.iter_mut().for_each(|a| a.reset(slot as usize));
    }

    /// Frees `slots`. A window whose slots all go has its table emptied at once; the
    /// others forget the slots one by one.
    pub fn evict(&mut self, slots: &[u32]) {
        if slots.is_empty() {
            return;
        }
        for &slot in slots {
            let m = &mut self.meta[slot as usize];
            m.live = false;
            self.garbage += m.key_len as usize;
            self.evicting[m.table as usize] += 1;
        }
        for &slot in slots {
            let m = &self.meta[slot as usize];
            let t = m.table as usize;
            match self.evicting[t] {
                // The table was released with an earlier slot of its window.
                0 => {}
                n if n as usize == self.tables[t].len() => {
                    self.evicting[t] = 0;
                    self.release_table(t as u32);
                }
                // Counts the slots of this call still in the table: once they are all
                // that is left, the rest go at once.
                _ => {
                    self.evicting[t] -= 1;
                    let hash = m.hash;
                    if let Ok(entry) = self.tables[t].find_entry(hash, |&s| s == slot) {
                        entry.remove();
                    }
                }
            }
        }
        self.free.extend_from_slice(slots);
        self.live -= slots.len() as u64;
        self.compact();
    }

    /// Rewrites the arena with the live slots' keys only, once evicted keys fill half of it.
    /// The old arena's allocation is kept for the next compaction (no fresh pages to fault
    /// in when state churns).
    fn compact(&mut self) {
        if self.garbage < (1 << 20) || self.garbage * 2 < self.arena.len() {
            return;
        }
        let mut arena = std::mem::take(&mut self.spare_arena);
        arena.clear();
        arena.reserve(self.arena.len() - self.garbage);
        for m in self.meta.iter_mut().filter(|m| m.live) {
            let at = m.key_offset;
            m.key_offset = arena.len();
            arena.extend_from_slice(&self.arena[at..at + m.key_len as usize]);
        }
        self.spare_arena = std::mem::replace(&mut self.arena, arena);
        self.garbage = 0;
    }

    /// Sorts fired slots into pane order: by window (start, then end), then by the key's
    /// fixed-seed hash, then its bytes. The same order live and after a restore, whatever
    /// slots the keys occupy. Fired slots come in runs of one window: the runs are grouped,
    /// not sorted, and each window's keys are sorted as compact (hash, position) pairs, so
    /// comparisons touch no slot metadata and only equal hashes compare key bytes.
    pub fn sort_panes<T: Copy>(&self, fired: &mut [(u32, T)]) {
        let mut by_window: std::collections::BTreeMap<(i64, i64), Vec<(u64, u32)>> =
            std::collections::BTreeMap::new();
        let mut run: Vec<(u64, u32)> = Vec::new();
        let mut current = None;
        for (i, (s, _)) in fired.iter().enumerate() {
            let m = &self.meta[*s as usize];
            let window = self.table_windows[m.table as usize];
            if current != Some((window.start, window.end)) {
                if let Some(w) = current {
                    by_window.entry(w).or_default().append(&mut run);
                }
                current = Some((window.start, window.end));
            }
            run.push((m.hash, i as u32));
        }
        if let Some(w) = current {
            by_window.entry(w).or_default().append(&mut run);
        }
        let mut sorted: Vec<(u32, T)> = Vec::with_capacity(fired.len());
        for mut group in by_window.into_values() {
            group.sort_unstable_by(|a, b| {
                a.0.cmp(&b.0).then_with(|| {
                    let key = |i: u32| self.key(fired[i as usize].0 as usize);
                    key(a.1).cmp(key(b.1))
                })
            });
            sorted.extend(group.iter().map(|(_, i)| fired[*i as usize]));
        }
        fired.copy_from_slice(&sorted);
    }

    /// The key columns of `slots`, decoded from their row format.
    pub fn key_columns(&self, slots: &[u32]) -> ExecResult<Vec<ArrayRef>> {
        let parser = self.converter.parser();
        self.converter
            .convert_rows(slots.iter().map(|s| parser.parse(self.key(*s as usize))))
            .map_err(arrow_err)
    }

    /// The output rows of fired panes, in the order given: key columns and results, each
    /// stamped with its window's max timestamp (the end-of-window timestamp combiner).
    pub fn pane_output(&self, fired: &[(u32, PaneInfo)]) -> ExecResult<RecordBatch> {
        let slots: Vec<u32> = fired.iter().map(|(s, _)| *s).collect();
        let keys = self.key_columns(&slots)?;
        let mut by_name: HashMap<&str, ArrayRef> = self
            .spec
            .group_by
            .iter()
            .map(String::as_str)
            .zip(keys)
            .collect();
        for (spec, acc) in self.spec.aggs.iter().zip(&self.accs) {
            let values = extract(acc, &slots);
            let values = if values.data_type() == &spec.output_type {
                values
            } else {
                cast(&values, &spec.output_type)?
            };
            by_name.insert(spec.name.as_str(), values);
        }
        let columns = self
            .spec
            .output_schema
            .fields
            .iter()
            .map(|f| {
                by_name.remove(f.name.as_str()).ok_or_else(|| {
                    ExecError::Internal(format!(
                        "`{}`: no output column `{}`",
                        self.spec.node, f.name
                    ))
                })
            })
            .collect::<ExecResult<Vec<_>>>()?;
        let metas: Vec<ElementMeta> = fired
            .iter()
            .map(|(s, pane)| {
                let window = self.window(*s);
                ElementMeta {
                    ts: window.max_timestamp(),
                    window,
                    pane: *pane,
                }
            })
            .collect();
        Ok(batch::with_meta(&self.spec.output_schema, columns, &metas)?)
    }

    /// The fields of [`PaneSlots::key_window_columns`]: the key columns (nullable), then
    /// `window_start` and `window_end` named by the caller.
    pub fn key_window_fields(&self, start: &str, end: &str) -> Vec<ArrowField> {
        let mut fields: Vec<ArrowField> = self
            .spec
            .key_fields
            .iter()
            .map(|f| f.clone().with_nullable(true))
            .collect();
        fields.push(ArrowField::new(start, ArrowType::Int64, false));
        fields.push(ArrowField::new(end, ArrowType::Int64, false));
        fields
    }

    /// The key columns, window starts and window ends of `slots`.
    pub fn key_window_columns(&self, slots: &[u32]) -> ExecResult<Vec<ArrayRef>> {
        let mut columns = self.key_columns(slots)?;
        columns.push(Arc::new(Int64Array::from_iter_values(
            slots.iter().map(|s| self.window(*s).start),
        )));
        columns.push(Arc::new(Int64Array::from_iter_values(
            slots.iter().map(|s| self.window(*s).end),
        )));
        Ok(columns)
    }

    /// The fields of [`PaneSlots::accumulator_columns`]: `__acc{i}` per aggregation
    /// (`__acc{i}_sum` and `__acc{i}_count` for a mean).
    pub fn accumulator_fields(&self) -> Vec<ArrowField> {
        let mut fields = Vec::new();
        for (i, acc) in self.accs.iter().enumerate() {
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
        fields
    }

    /// The accumulators of `slots`, as stored (not as results), for a checkpoint.
    pub fn accumulator_columns(&self, slots: &[u32]) -> Vec<ArrayRef> {
        let mut columns: Vec<ArrayRef> = Vec::new();
        let at = |s: &u32| *s as usize;
        for acc in &self.accs {
            match acc {
                AccColumn::Count(v) => columns.push(Arc::new(Int64Array::from_iter_values(
                    slots.iter().map(|s| v[at(s)]),
                ))),
                AccColumn::Int(v) => columns.push(Arc::new(Int64Array::from_iter(
                    slots.iter().map(|s| v[at(s)]),
                ))),
                AccColumn::Float(v) => columns.push(Arc::new(Float64Array::from_iter(
                    slots.iter().map(|s| v[at(s)]),
                ))),
                AccColumn::Mean(sum, count) => {
                    columns.push(Arc::new(Float64Array::from_iter_values(
                        slots.iter().map(|s| sum[at(s)]),
                    )));
                    columns.push(Arc::new(Int64Array::from_iter_values(
                        slots.iter().map(|s| count[at(s)]),
                    )));
                }
            }
        }
        columns
    }

    /// Restores slots from checkpointed columns: `key_window` as from
    /// [`PaneSlots::key_window_columns`], `accumulators` as from
    /// [`PaneSlots::accumulator_columns`] (types checked by the caller against the
    /// `*_fields`). Each row replaces its slot's accumulators; returns each row's slot.
    pub fn restore_rows(
        &mut self,
        key_window: &[ArrayRef],
        accumulators: &[ArrayRef],
    ) -> ExecResult<Vec<u32>> {
        let n = key_window.first().map_or(0, |c| c.len());
        let k = self.spec.group_by.len();
        let rows = self
            .converter
            .convert_columns(&key_window[..k])
            .map_err(arrow_err)?;
        let starts = key_window[k].as_primitive::<Int64Type>().clone();
        let ends = key_window[k + 1].as_primitive::<Int64Type>().clone();
        let mut slots = Vec::with_capacity(n);
        for r in 0..n {
            let key = self.key_of(&rows, r);
            let (slot, _) = self.slot_for(key, starts.value(r), ends.value(r));
            let s = slot as usize;
            let mut c = 0;
            for acc in &mut self.accs {
                let col = &accumulators[c];
                match acc {
                    AccColumn::Count(v) => v[s] = col.as_primitive::<Int64Type>().value(r),
                    AccColumn::Int(v) => {
                        let a = col.as_primitive::<Int64Type>();
                        v[s] = a.is_valid(r).then(|| a.value(r));
                    }
                    AccColumn::Float(v) => {
                        let a = col.as_primitive::<Float64Type>();
                        v[s] = a.is_valid(r).then(|| a.value(r));
                    }
                    AccColumn::Mean(sum, count) => {
                        sum[s] = col.as_primitive::<Float64Type>().value(r);
                        c += 1;
                        count[s] = accumulators[c].as_primitive::<Int64Type>().value(r);
                    }
                }
                c += 1;
            }
            slots.push(slot);
        }
        Ok(slots)
    }

    /// The live slots whose window satisfies `pred`.
    pub fn live_slots_where(&self, mut pred: impl FnMut(Window) -> bool) -> Vec<u32> {
        (0..self.meta.len() as u32)
            .filter(|s| self.meta[*s as usize].live && pred(self.window(*s)))
            .collect()
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
) -> ExecResult<()> {
    let rows = || {
        slot_of_row
            .iter()
            .enumerate()
            .filter(|(_, s)| **s != u32::MAX)
            .map(|(r, s)| (r, *s as usize))
    };
    let missing = || {
        ExecError::Internal(format!(
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
                            ExecError::transform(
                                node,
                                format!("int64 sum overflows adding {x} to {sum}"),
                            )
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
                    // As the combiners: a sum starts at 0.0 (so -0.0 sums to 0.0), and an
                    // extreme is replaced only by a strictly smaller/larger value.
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
            return Err(ExecError::Internal(format!(
                "`{node}`: aggregation `{}` ({kind:?}) has accumulators of another kind",
                spec.name
            )))
        }
    }
    Ok(())
}

/// The results of `slots`' accumulators, as [`Combiner::extract`] gives them (non-finite
/// float results are null, as JSON cannot hold them).
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
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The slots of a count per 10 ms window, grouped by `group_by` (a YAML list).
    fn slots_grouped_by(group_by: &str) -> PaneSlots<()> {
        let yaml = format!(
            "pipeline:
  type: chain
  transforms:
    - type: ReadFromMemory
      name: events
      config: {{name: events, schema: {{key: int64, ts: int64}}}}
    - type: AssignTimestamps
      config: {{timestamp: ts}}
    - type: WindowInto
      config: {{windowing: {{type: fixed, size: 10ms}}}}
    - type: Combine
      name: agg
      config: {{group_by: {group_by}, combine: {{n: {{fn: count}}}}}}
    - type: WriteToMemory
      config: {{name: out}}
"
        );
        let pipeline = weir_model::file::parse_str(&yaml, "test.yaml").unwrap();
        let plan = weir_model::plan(&pipeline).unwrap();
        let spec = ColumnarCombineSpec::new(&plan, plan.pipeline.node("agg").unwrap())
            .unwrap()
            .expect("a columnar combine");
        PaneSlots::new(spec).unwrap()
    }

    fn slots() -> PaneSlots<()> {
        slots_grouped_by("[key]")
    }

    #[test]
    fn a_combine_without_keys_has_one_empty_key() {
        let mut slots = slots_grouped_by("[]");
        let v: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
        let batch = RecordBatch::try_from_iter([("v", v)]).unwrap();
        let keys = slots.slot_keys(&batch).unwrap();
        assert_eq!(slots.key_of(&keys, 2), &[] as &[u8]);
        let (a, created) = slots.slot_for(slots.key_of(&keys, 0), 0, 10);
        assert!(created);
        assert_eq!(slots.slot_for(slots.key_of(&keys, 2), 0, 10), (a, false));
        assert_ne!(slots.slot_for(&[], 10, 20).0, a);
        assert!(slots.key_columns(&[a]).unwrap().is_empty());
        assert_eq!(slots.key_window_columns(&[a]).unwrap().len(), 2);
    }

    /// A key of `len` bytes: long keys make evictions reach the arena's compaction.
    fn key(k: u8, len: usize) -> Vec<u8> {
        let mut key = vec![k; len];
        key[0] = k;
        key
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Finds or creates the slot of key `.0` in window `.1`.
        Find(u8, i64),
        /// Evicts the live slots picked by the mask (bit i: the i-th in key/window order).
        Evict(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..6, 0i64..4).prop_map(|(k, w)| Op::Find(k, w)),
            1 => any::<u64>().prop_map(Op::Evict),
        ]
    }

    proptest! {
        /// Whatever the order of finds and evictions (whole windows, parts of windows), a
        /// live (key, window) keeps its slot, an evicted one comes back as a new slot, and
        /// slots report their windows.
        #[test]
        fn slots_follow_finds_and_evictions(
            ops in proptest::collection::vec(op(), 1..80),
            long_keys in any::<bool>(),
        ) {
            let len = if long_keys { 200_000 } else { 8 };
            let mut slots = slots();
            let mut model: BTreeMap<(u8, i64), u32> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Find(k, w) => {
                        let (slot, created) = slots.slot_for(&key(k, len), w * 10, w * 10 + 10);
                        match model.get(&(k, w)) {
                            Some(s) => prop_assert_eq!((slot, created), (*s, false)),
                            None => {
                                prop_assert!(created);
                                prop_assert!(!model.values().any(|s| *s == slot));
                                model.insert((k, w), slot);
                            }
                        }
                        prop_assert_eq!(slots.window(slot), Window::new(w * 10, w * 10 + 10));
                    }
                    Op::Evict(mask) => {
                        let picked: Vec<(u8, i64)> = model
                            .keys()
                            .enumerate()
                            .filter(|(i, _)| mask >> (i % 64) & 1 == 1)
                            .map(|(_, kw)| *kw)
                            .collect();
                        let evicted: Vec<u32> =
                            picked.iter().map(|kw| model.remove(kw).unwrap()).collect();
                        slots.evict(&evicted);
                        for s in &evicted {
                            prop_assert!(!slots.is_live(*s));
                        }
                    }
                }
                prop_assert_eq!(slots.live(), model.len() as u64);
                for ((k, w), s) in &model {
                    prop_assert!(slots.is_live(*s));
                    prop_assert_eq!(slots.key(*s as usize), &key(*k, len)[..]);
                    let again = slots.slot_for(&key(*k, len), w * 10, w * 10 + 10);
                    prop_assert_eq!(again, (*s, false));
                }
            }
        }
    }
}
