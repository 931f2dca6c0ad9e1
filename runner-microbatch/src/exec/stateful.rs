//! `StatefulParDo` at batch boundaries, after Spark's `flatMapGroupsWithState` /
//! `transformWithState`: per batch the function sees each input row with its key's (and
//! window's) Value/List/Map state, in arrival order; then timers fire — processing-time
//! timers set before the batch timestamp (`timer < batch timestamp`), then event-time timers
//! below the eviction watermark (`timer < watermark`) in time order, interleaved with the
//! garbage collection of expired windows — until nothing is due. Rows of windows already
//! expired at the late-filter watermark are dropped and counted. State cells, timers and the
//! context the function sees are runner-core's (`StateStore`, `TimerQueue`, `StatefulCall`);
//! this stage decides when they run and makes them durable per batch.

use super::{BatchContext, StageOutput};
use crate::error::{MicroBatchError, Result};
use crate::state::{StateDelta, StateMap};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use weir_model::plan::Plan;
use weir_model::time::{Duration, Timestamp, MIN_TIMESTAMP};
use weir_model::transform::Transform;
use weir_model::udf::{Row, StatefulFn, TimeDomain};
use weir_model::window::{PaneInfo, Window};
use weir_model::{Schema, TransformNode};
use weir_runner_core::batch::{self, ElementMeta};
use weir_runner_core::convert::{batch_to_rows, rows_to_arrays};
use weir_runner_core::reduce::Key;
use weir_runner_core::state::{
    timer_output_timestamp, CallTimes, Declarations, FiringTimer, StateStore, StatefulCall,
    TimerEntry, TimerQueue, WindowCells,
};
use weir_runner_core::window::{gc_time, window_is_expired};
use weir_runner_core::ExecError;

/// One (key, window)'s durable form: its cells and its timers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    key: String,
    window: Window,
    cells: Option<WindowCells>,
    timers: Vec<(String, Timestamp, TimeDomain)>,
}

/// The stage of a `StatefulParDo` node.
#[derive(Debug)]
pub struct StatefulStage {
    node: String,
    func: Box<dyn StatefulFn>,
    keys: Vec<String>,
    declarations: Declarations,
    timer_names: Vec<String>,
    output_schema: Schema,
    allowed_lateness: Duration,
    state: StateStore,
    timers: TimerQueue,
    /// (key, window) pairs with state, by garbage-collection time.
    gc: BTreeSet<(Timestamp, Key, Window)>,
    dirty: BTreeSet<(Key, Window)>,
}

fn internal(m: String) -> MicroBatchError {
    MicroBatchError::Exec(ExecError::Internal(m))
}

impl StatefulStage {
    /// The stage of `node`.
    pub fn new(plan: &Plan, node: &TransformNode) -> Result<Self> {
        let Transform::StatefulParDo { keys, func } = &node.transform else {
            return Err(internal(format!("`{}` is not a StatefulParDo", node.name)));
        };
        let input = node
            .inputs
            .first()
            .and_then(|i| plan.collection(i))
            .ok_or_else(|| internal(format!("`{}`: input missing from the plan", node.name)))?;
        if input.windowing.window_fn.is_merging() {
            return Err(MicroBatchError::Unsupported {
                feature: "stateful processing over merging windows".into(),
                reason: format!(
                    "`{}`: state cannot follow a window that later merges ({})",
                    node.name, input.windowing.window_fn
                ),
            });
        }
        let output_schema = plan
            .collection(&node.name)
            .ok_or_else(|| internal(format!("`{}` missing from the plan", node.name)))?
            .schema
            .clone();
        Ok(StatefulStage {
            node: node.name.clone(),
            declarations: Declarations::new(&func.state(), &func.timers()),
            timer_names: func.timers().into_iter().map(|t| t.name).collect(),
            func: func.clone(),
            keys: keys.clone(),
            output_schema,
            allowed_lateness: input.windowing.allowed_lateness,
            state: StateStore::default(),
            timers: TimerQueue::default(),
            gc: BTreeSet::new(),
            dirty: BTreeSet::new(),
        })
    }

    fn key_row(&self, key: &Key) -> Row {
        self.keys.iter().cloned().zip(key.values()).collect()
    }

    /// Runs the batch's rows, then due timers and garbage collection.
    pub fn process(&mut self, inputs: Vec<RecordBatch>, ctx: &BatchContext) -> Result<StageOutput> {
        let mut out = StageOutput::default();
        let mut rows_out: Vec<Row> = Vec::new();
        let mut metas_out: Vec<ElementMeta> = Vec::new();
        let wm = ctx.eviction_watermark.unwrap_or(MIN_TIMESTAMP);
        let late_wm = ctx.late_filter_watermark.unwrap_or(MIN_TIMESTAMP);
        for b in inputs {
            if b.num_rows() == 0 {
                continue;
            }
            let keys = Key::of_rows(&b, &self.keys)?;
            let metas = batch::metas(&b);
            let rows = batch_to_rows(&b);
            for ((key, meta), row) in keys.iter().zip(&metas).zip(&rows) {
                if window_is_expired(&meta.window, self.allowed_lateness, late_wm) {
                    out.rows_dropped_by_watermark += 1;
                    continue;
                }
                let gc_at = gc_time(&meta.window, self.allowed_lateness);
                self.gc.insert((gc_at, key.clone(), meta.window));
                let times = CallTimes {
                    timestamp: meta.ts,
                    input_watermark: wm,
                    processing_time: ctx.batch_timestamp,
                    gc_time: gc_at,
                };
                let key_row = self.key_row(key);
                let cells = self.state.cells_mut(key, meta.window, || key_row);
                let mut call = StatefulCall::new(
                    key,
                    meta.window,
                    times,
                    &self.declarations,
                    cells,
                    &mut self.timers,
                );
                self.func
                    .process(row, &mut call)
                    .map_err(|m| ExecError::transform(&self.node, m))?;
                let emitted = call
                    .finish()
                    .map_err(|m| ExecError::transform(&self.node, m))?;
                metas_out.extend(std::iter::repeat_n(
                    ElementMeta {
                        ts: meta.ts,
                        window: meta.window,
                        pane: PaneInfo::NO_FIRING,
                    },
                    emitted.len(),
                ));
                rows_out.extend(emitted);
                self.dirty.insert((key.clone(), meta.window));
            }
        }
        // Spark: processing-time timeouts fire when `timeout < batch timestamp`.
        while let Some(t) = self.timers.pop_due_processing(ctx.batch_timestamp - 1) {
            self.fire(t, wm, ctx.batch_timestamp, &mut rows_out, &mut metas_out)?;
        }
        // Event-time timers below the eviction watermark, in time order; a window's state is
        // dropped after its timers of the same time.
        loop {
            let timer_at = self
                .timers
                .next_event()
                .map(|(t, ..)| *t)
                .filter(|t| *t < wm);
            let gc_at = self.gc.first().map(|(t, ..)| *t).filter(|t| *t < wm);
            match (timer_at, gc_at) {
                (Some(t), g) if g.is_none_or(|g| t <= g) => {
                    let timer = self
                        .timers
                        .pop_due_event(wm)
                        .ok_or_else(|| internal("a due timer vanished".into()))?;
                    self.fire(
                        timer,
                        wm,
                        ctx.batch_timestamp,
                        &mut rows_out,
                        &mut metas_out,
                    )?;
                }
                (_, Some(_)) => {
                    let (_, key, window) = self
                        .gc
                        .pop_first()
                        .ok_or_else(|| internal("a due collection vanished".into()))?;
                    self.state.remove(&key, window);
                    self.timers.delete_window(&key, window);
                    self.dirty.insert((key, window));
                }
                _ => break,
            }
        }
        if !rows_out.is_empty() {
            let arrays = rows_to_arrays(&rows_out, &self.output_schema).map_err(|(r, m)| {
                ExecError::transform(
                    &self.node,
                    format!(
                        "output row {} does not fit {}: {m}",
                        Value::Object(rows_out[r].clone()),
                        self.output_schema
                    ),
                )
            })?;
            out.outputs.push((
                None,
                batch::with_meta(&self.output_schema, arrays, &metas_out)
                    .map_err(ExecError::from)?,
            ));
        }
        out.state_rows = self.state.len() as u64;
        Ok(out)
    }

    fn fire(
        &mut self,
        timer: FiringTimer,
        wm: Timestamp,
        now: Timestamp,
        rows: &mut Vec<Row>,
        metas: &mut Vec<ElementMeta>,
    ) -> Result<()> {
        let FiringTimer {
            key,
            window,
            name,
            entry,
        } = timer;
        let timestamp = timer_output_timestamp(entry.at, entry.domain, wm);
        let times = CallTimes {
            timestamp,
            input_watermark: wm,
            processing_time: now,
            gc_time: gc_time(&window, self.allowed_lateness),
        };
        let key_row = self.key_row(&key);
        let cells = self.state.cells_mut(&key, window, || key_row);
        let mut call = StatefulCall::new(
            &key,
            window,
            times,
            &self.declarations,
            cells,
            &mut self.timers,
        );
        self.func
            .on_timer(&name, &mut call)
            .map_err(|m| ExecError::transform(&self.node, m))?;
        let emitted = call
            .finish()
            .map_err(|m| ExecError::transform(&self.node, m))?;
        metas.extend(std::iter::repeat_n(
            ElementMeta {
                ts: timestamp,
                window,
                pane: PaneInfo::NO_FIRING,
            },
            emitted.len(),
        ));
        rows.extend(emitted);
        self.gc
            .insert((gc_time(&window, self.allowed_lateness), key.clone(), window));
        self.dirty.insert((key, window));
        Ok(())
    }

    fn entry(&self, key: &Key, window: Window) -> Option<Entry> {
        let cells = self.state.get(key, window).cloned();
        let timers: Vec<(String, Timestamp, TimeDomain)> = self
            .timer_names
            .iter()
            .filter_map(|n| {
                self.timers
                    .get(key, window, n)
                    .map(|e| (n.clone(), e.at, e.domain))
            })
            .collect();
        if cells.is_none() && timers.is_empty() {
            return None;
        }
        Some(Entry {
            key: key.text().to_string(),
            window,
            cells,
            timers,
        })
    }

    fn store_key(key: &Key, window: Window) -> String {
        format!("{}:{}:{}", window.start, window.end, key.text())
    }

    /// The changes since the last call.
    pub fn take_delta(&mut self) -> Result<StateDelta> {
        let mut delta = StateDelta::new();
        for (key, window) in std::mem::take(&mut self.dirty) {
            let v = self
                .entry(&key, window)
                .map(serde_json::to_value)
                .transpose()
                .map_err(|e| internal(e.to_string()))?;
            delta.insert(Self::store_key(&key, window), v);
        }
        Ok(delta)
    }

    /// The whole state.
    pub fn snapshot(&self) -> Result<StateMap> {
        let mut pairs: BTreeSet<(Key, Window)> =
            self.state.iter().map(|(k, w, _)| (k.clone(), *w)).collect();
        pairs.extend(self.timers.iter().map(|(k, w, ..)| (k.clone(), w)));
        let mut map = StateMap::new();
        for (k, w) in pairs {
            if let Some(e) = self.entry(&k, w) {
                map.insert(
                    Self::store_key(&k, w),
                    serde_json::to_value(e).map_err(|e| internal(e.to_string()))?,
                );
            }
        }
        Ok(map)
    }

    /// Replaces the state with a restored version.
    pub fn restore(&mut self, state: StateMap) -> Result<()> {
        self.state = StateStore::default();
        self.timers = TimerQueue::default();
        self.gc.clear();
        self.dirty.clear();
        for (k, v) in state {
            let e: Entry = serde_json::from_value(v)
                .map_err(|err| internal(format!("`{}`: state entry `{k}`: {err}", self.node)))?;
            let values: Vec<Value> = serde_json::from_str(&e.key)
                .map_err(|err| internal(format!("state key `{}`: {err}", e.key)))?;
            let key = Key::new(&values);
            if let Some(cells) = e.cells {
                *self.state.cells_mut(&key, e.window, Row::new) = cells;
            }
            for (name, at, domain) in e.timers {
                self.timers
                    .set(&key, e.window, &name, TimerEntry { at, domain });
            }
            self.gc
                .insert((gc_time(&e.window, self.allowed_lateness), key, e.window));
        }
        Ok(())
    }

    /// Whether a processing-time timer is due at batch timestamp `now` (`timer < now`).
    pub fn processing_time_due(&self, now: Timestamp) -> bool {
        self.timers.next_processing_time().is_some_and(|t| t < now)
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Rows of state.
    pub fn state_rows(&self) -> u64 {
        self.state.len() as u64
    }
}
