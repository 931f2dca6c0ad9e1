//! Stateful processing (`StatefulParDo`, `Deduplicate`): keyed state and timers per key and
//! window, Beam's `StatefulDoFnRunner` over the in-memory [`crate::state`] backend.

use super::{Operator, OperatorContext};
use crate::batch::{self, ElementMeta};
use crate::convert::{batch_to_rows, rows_to_arrays};
use crate::error::{ExecError, ExecResult};
use crate::reduce::Key;
use crate::state::{
    event_timer_due, timer_output_timestamp, CallTimes, Declarations, FiringTimer, StateStore,
    StatefulCall, TimerQueue,
};
use crate::window::{gc_time, window_is_expired};
use arrow::array::UInt32Array;
use arrow::compute::take_record_batch;
use arrow::record_batch::RecordBatch;
use serde_json::Value;
use std::collections::BTreeSet;
use weir_model::plan::Plan;
use weir_model::time::{Duration, Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};
use weir_model::transform::Transform;
use weir_model::udf::{
    Row, StateKind, StateSpec, StatefulContext, StatefulFn, TimeDomain, TimerSpec,
};
use weir_model::window::{PaneInfo, Window};
use weir_model::{Schema, TransformNode};

/// The state cell in which `Deduplicate` remembers that a key was seen.
const DEDUP_SEEN: &str = "seen";
/// The event-time timer at which `Deduplicate` forgets a key (`ttl` after its first row).
const DEDUP_EXPIRE: &str = "expire";

/// What runs for each element and timer.
#[derive(Debug)]
enum Logic {
    /// A user's stateful function.
    User(Box<dyn StatefulFn>),
    /// Keep the first row per key (and window); forget the key `ttl` after it, if given.
    Dedup { ttl: Option<Duration> },
}

/// The operator of `StatefulParDo` and `Deduplicate`.
///
/// Per element: elements of expired windows are dropped and counted (Beam's
/// `StatefulDoFnRunner` drops them as `droppedDueToLateness`; the model has no late-data
/// side output for stateful transforms); otherwise the function runs with the state of the
/// element's key and window. Per watermark: due event-time timers fire in time order (ties
/// by key, window, name), interleaved with window garbage collection (after the timers of
/// the same time), looping until nothing is due, before the watermark is forwarded.
#[derive(Debug)]
pub struct StatefulOperator {
    node: String,
    logic: Logic,
    keys: Vec<String>,
    declarations: Declarations,
    output_schema: Schema,
    allowed_lateness: Duration,
    state: StateStore,
    timers: TimerQueue,
    /// Garbage-collection wake-ups: (gc time, key, window).
    gc: BTreeSet<(Timestamp, Key, Window)>,
    input_watermark: Timestamp,
}

/// Rows emitted by calls, with their metadata.
#[derive(Debug, Default)]
struct Emitted {
    rows: Vec<Row>,
    metas: Vec<ElementMeta>,
}

impl StatefulOperator {
    /// The operator for `node` (a `StatefulParDo` or `Deduplicate`).
    pub fn new(plan: &Plan, node: &TransformNode) -> ExecResult<Self> {
        let name = node.name.as_str();
        let input = node
            .inputs
            .first()
            .and_then(|i| plan.collection(i))
            .ok_or_else(|| {
                ExecError::Internal(format!("`{name}`: input collection missing from the plan"))
            })?;
        let output = plan.collection(name).ok_or_else(|| {
            ExecError::Internal(format!("`{name}`: output collection missing from the plan"))
        })?;
        // Beam rejects stateful processing over merging windows: state cannot follow a
        // window that later merges into another.
        if input.windowing.window_fn.is_merging() {
            return Err(ExecError::transform(
                name,
                format!(
                    "stateful processing is not supported with merging windows ({})",
                    input.windowing.window_fn
                ),
            ));
        }
        let (logic, keys, declarations) = match &node.transform {
            Transform::StatefulParDo { keys, func } => (
                Logic::User(func.clone()),
                keys.clone(),
                Declarations::new(&func.state(), &func.timers()),
            ),
            Transform::Dedup { keys, ttl } => {
                let cells = [StateSpec {
                    name: DEDUP_SEEN.into(),
                    kind: StateKind::Value,
                }];
                let timers = [TimerSpec {
                    name: DEDUP_EXPIRE.into(),
                    domain: TimeDomain::EventTime,
                }];
                (
                    Logic::Dedup { ttl: *ttl },
                    keys.clone(),
                    Declarations::new(&cells, &timers),
                )
            }
            other => {
                return Err(ExecError::Internal(format!(
                    "`{name}`: {other} is not stateful"
                )))
            }
        };
        Ok(StatefulOperator {
            node: name.to_string(),
            logic,
            keys,
            declarations,
            output_schema: output.schema.clone(),
            allowed_lateness: input.windowing.allowed_lateness,
            state: StateStore::default(),
            timers: TimerQueue::default(),
            gc: BTreeSet::new(),
            input_watermark: MIN_TIMESTAMP,
        })
    }

    /// The state of every key and window.
    pub fn state(&self) -> &StateStore {
        &self.state
    }

    /// The timers set.
    pub fn timers(&self) -> &TimerQueue {
        &self.timers
    }

    fn error(&self, message: impl Into<String>) -> ExecError {
        ExecError::transform(&self.node, message)
    }

    /// Fires one timer.
    fn fire(
        &mut self,
        timer: FiringTimer,
        processing_time: Timestamp,
        out: &mut Emitted,
    ) -> ExecResult<()> {
        let FiringTimer {
            key,
            window,
            name,
            entry,
        } = timer;
        let timestamp = timer_output_timestamp(entry.at, entry.domain, self.input_watermark);
        let times = CallTimes {
            timestamp,
            input_watermark: self.input_watermark,
            processing_time,
            gc_time: gc_time(&window, self.allowed_lateness),
        };
        let key_names = &self.keys;
        let cells = self
            .state
            .cells_mut(&key, window, || key_row_of(key_names, &key));
        let mut call = StatefulCall::new(
            &key,
            window,
            times,
            &self.declarations,
            cells,
            &mut self.timers,
        );
        match &self.logic {
            Logic::User(func) => func
                .on_timer(&name, &mut call)
                .map_err(|m| ExecError::transform(&self.node, m))?,
            Logic::Dedup { .. } => call.clear(DEDUP_SEEN),
        }
        let rows = call
            .finish()
            .map_err(|m| ExecError::transform(&self.node, m))?;
        let meta = ElementMeta {
            ts: timestamp,
            window,
            pane: PaneInfo::NO_FIRING,
        };
        out.metas.extend(std::iter::repeat_n(meta, rows.len()));
        out.rows.extend(rows);
        Ok(())
    }

    /// Fires due event-time timers and garbage-collects expired windows, in time order,
    /// until nothing is due.
    fn on_watermark(&mut self, processing_time: Timestamp, out: &mut Emitted) -> ExecResult<()> {
        loop {
            let wm = self.input_watermark;
            let timer_at = self
                .timers
                .next_event()
                .map(|(t, ..)| *t)
                .filter(|t| event_timer_due(*t, wm));
            let gc_at = self.gc.first().map(|(t, ..)| *t).filter(|t| *t < wm);
            match (timer_at, gc_at) {
                (Some(t), g) if g.is_none_or(|g| t <= g) => {
                    let timer = self.timers.pop_due_event(wm).expect("a due timer");
                    self.fire(timer, processing_time, out)?;
                }
                (_, Some(_)) => {
                    let (_, key, window) = self.gc.pop_first().expect("a due garbage collection");
                    self.state.remove(&key, window);
                    self.timers.delete_window(&key, window);
                }
                (None, None) | (Some(_), None) => break,
            }
        }
        Ok(())
    }

    fn emit(&self, out: Emitted, ctx: &mut OperatorContext) -> ExecResult<()> {
        if out.rows.is_empty() {
            return Ok(());
        }
        let arrays = rows_to_arrays(&out.rows, &self.output_schema).map_err(|(r, m)| {
            self.error(format!(
                "output row {} does not fit the output schema {}: {m}",
                Value::Object(out.rows[r].clone()),
                self.output_schema
            ))
        })?;
        ctx.emit(
            None,
            batch::with_meta(&self.output_schema, arrays, &out.metas)?,
        );
        Ok(())
    }
}

/// The key as a row of the key columns.
fn key_row_of(names: &[String], key: &Key) -> Row {
    names.iter().cloned().zip(key.values()).collect()
}

impl Operator for StatefulOperator {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
    ) -> ExecResult<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let keys = Key::of_rows(&batch, &self.keys)?;
        let metas = batch::metas(&batch);
        let rows = match self.logic {
            Logic::User(_) => batch_to_rows(&batch),
            Logic::Dedup { .. } => Vec::new(),
        };
        let mut out = Emitted::default();
        let mut kept: Vec<u32> = Vec::new();
        for (r, (key, meta)) in keys.iter().zip(&metas).enumerate() {
            if window_is_expired(&meta.window, self.allowed_lateness, self.input_watermark) {
                ctx.metrics.late_dropped += 1;
                continue;
            }
            let gc_at = gc_time(&meta.window, self.allowed_lateness);
            self.gc.insert((gc_at, key.clone(), meta.window));
            let times = CallTimes {
                timestamp: meta.ts,
                input_watermark: self.input_watermark,
                processing_time: ctx.processing_time,
                gc_time: gc_at,
            };
            let key_names = &self.keys;
            let cells = self
                .state
                .cells_mut(key, meta.window, || key_row_of(key_names, key));
            let mut call = StatefulCall::new(
                key,
                meta.window,
                times,
                &self.declarations,
                cells,
                &mut self.timers,
            );
            match &self.logic {
                Logic::User(func) => func
                    .process(&rows[r], &mut call)
                    .map_err(|m| ExecError::transform(&self.node, m))?,
                Logic::Dedup { ttl } => {
                    if call.value(DEDUP_SEEN).is_none() {
                        call.set_value(DEDUP_SEEN, Value::Bool(true));
                        // A ttl reaching past the window's expiry needs no timer: the
                        // window's state is dropped then anyway.
                        if let Some(at) = ttl
                            .map(|d| meta.ts.saturating_add(d.0))
                            .filter(|at| *at <= gc_at)
                        {
                            call.set_timer(DEDUP_EXPIRE, at);
                        }
                        kept.push(r as u32);
                    }
                }
            }
            let emitted = call
                .finish()
                .map_err(|m| ExecError::transform(&self.node, m))?;
            out.metas.extend(std::iter::repeat_n(*meta, emitted.len()));
            out.rows.extend(emitted);
        }
        if !kept.is_empty() {
            ctx.emit(None, take_record_batch(&batch, &UInt32Array::from(kept))?);
        }
        self.emit(out, ctx)
    }

    fn handle_watermark(
        &mut self,
        watermark: Timestamp,
        ctx: &mut OperatorContext,
    ) -> ExecResult<Timestamp> {
        self.input_watermark = self.input_watermark.max(watermark);
        let mut out = Emitted::default();
        self.on_watermark(ctx.processing_time, &mut out)?;
        self.emit(out, ctx)?;
        Ok(self.input_watermark)
    }

    fn handle_processing_time(&mut self, ctx: &mut OperatorContext) -> ExecResult<()> {
        let mut out = Emitted::default();
        while let Some(timer) = self.timers.pop_due_processing(ctx.processing_time) {
            self.fire(timer, ctx.processing_time, &mut out)?;
        }
        self.emit(out, ctx)
    }

    fn next_processing_time(&self) -> Option<Timestamp> {
        self.timers.next_processing_time()
    }

    fn on_close(&mut self, ctx: &mut OperatorContext) -> ExecResult<()> {
        self.handle_watermark(MAX_TIMESTAMP, ctx).map(|_| ())
    }

    /// One entry per (key, window) with state, timers or a pending garbage collection:
    /// `{key, window, key_row, cells, timers: [{name, at, domain}], gc}`.
    fn snapshot(&self) -> ExecResult<Option<Value>> {
        let mut entries: std::collections::BTreeMap<(Key, Window), snapshot::Entry> =
            Default::default();
        fn entry<'a>(
            entries: &'a mut std::collections::BTreeMap<(Key, Window), snapshot::Entry>,
            key: &Key,
            window: Window,
        ) -> &'a mut snapshot::Entry {
            entries
                .entry((key.clone(), window))
                .or_insert_with(|| snapshot::Entry::new(key, window))
        }
        for (key, window, cells) in self.state.iter() {
            let e = entry(&mut entries, key, *window);
            e.key_row = cells.key_row.clone();
            e.cells = cells.cells.clone();
        }
        for (key, window, name, timer) in self.timers.iter() {
            entry(&mut entries, key, window)
                .timers
                .push(snapshot::Timer {
                    name: name.to_string(),
                    at: timer.at,
                    domain: timer.domain,
                });
        }
        for (at, key, window) in &self.gc {
            entry(&mut entries, key, *window).gc = Some(*at);
        }
        let entries: Vec<&snapshot::Entry> = entries.values().collect();
        serde_json::to_value(entries)
            .map(Some)
            .map_err(|e| ExecError::Internal(format!("`{}`: snapshot: {e}", self.node)))
    }

    fn restore(&mut self, state: Value) -> ExecResult<()> {
        let entries: Vec<snapshot::Entry> = serde_json::from_value(state)
            .map_err(|e| ExecError::Internal(format!("`{}`: restore: {e}", self.node)))?;
        for e in entries {
            let key = Key::new(&e.key);
            if !e.cells.is_empty() || !e.key_row.is_empty() {
                let cells = self.state.cells_mut(&key, e.window, || e.key_row.clone());
                cells.cells.extend(e.cells);
            }
            for t in e.timers {
                self.timers.set(
                    &key,
                    e.window,
                    &t.name,
                    crate::state::TimerEntry {
                        at: t.at,
                        domain: t.domain,
                    },
                );
            }
            if let Some(at) = e.gc {
                self.gc.insert((at, key, e.window));
            }
        }
        Ok(())
    }
}

/// The checkpoint format of a stateful operator's keyed state.
mod snapshot {
    use crate::reduce::Key;
    use crate::state::StateCell;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;
    use weir_model::time::Timestamp;
    use weir_model::udf::{Row, TimeDomain};
    use weir_model::window::Window;

    /// A set timer.
    #[derive(Debug, Serialize, Deserialize)]
    pub(super) struct Timer {
        pub(super) name: String,
        pub(super) at: Timestamp,
        pub(super) domain: TimeDomain,
    }

    /// Everything of one key and window.
    #[derive(Debug, Serialize, Deserialize)]
    pub(super) struct Entry {
        /// The key-column values.
        pub(super) key: Vec<serde_json::Value>,
        pub(super) window: Window,
        #[serde(default)]
        pub(super) key_row: Row,
        #[serde(default)]
        pub(super) cells: BTreeMap<String, StateCell>,
        #[serde(default)]
        pub(super) timers: Vec<Timer>,
        #[serde(default)]
        pub(super) gc: Option<Timestamp>,
    }

    impl Entry {
        pub(super) fn new(key: &Key, window: Window) -> Self {
            Entry {
                key: key.values(),
                window,
                key_row: Row::new(),
                cells: BTreeMap::new(),
                timers: Vec::new(),
                gc: None,
            }
        }
    }
}
