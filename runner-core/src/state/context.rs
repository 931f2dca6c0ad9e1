//! [`StatefulCall`]: the model's `StatefulContext` for one element or timer of one key and
//! window.

use super::{Declarations, StateCell, TimerEntry, TimerQueue, WindowCells};
use crate::reduce::Key;
use std::cell::RefCell;
use std::collections::BTreeMap;
use weir_model::time::Timestamp;
use weir_model::udf::{Row, StateKind, StatefulContext, TimeDomain, Value};
use weir_model::window::Window;

/// Where and when a [`StatefulCall`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTimes {
    /// The element's or firing timer's event timestamp.
    pub timestamp: Timestamp,
    /// The input watermark.
    pub input_watermark: Timestamp,
    /// The processing time.
    pub processing_time: Timestamp,
    /// The window's garbage-collection time (no event-time timer may be set after it).
    pub gc_time: Timestamp,
}

/// The context of one call of a stateful function: reads and writes the state of its key and
/// window, sets timers, collects emitted rows.
///
/// The model's context methods cannot fail, so misuse (an undeclared cell or timer, a cell
/// used as the wrong kind, an event-time timer after the window expires, a side output) is
/// recorded and returned by [`StatefulCall::finish`]; the operator then fails the run.
#[derive(Debug)]
pub struct StatefulCall<'a> {
    key: &'a Key,
    window: Window,
    times: CallTimes,
    declarations: &'a Declarations,
    cells: &'a mut WindowCells,
    timers: &'a mut TimerQueue,
    outputs: Vec<Row>,
    error: RefCell<Option<String>>,
}

impl<'a> StatefulCall<'a> {
    /// A call for `key` in `window`.
    pub fn new(
        key: &'a Key,
        window: Window,
        times: CallTimes,
        declarations: &'a Declarations,
        cells: &'a mut WindowCells,
        timers: &'a mut TimerQueue,
    ) -> Self {
        StatefulCall {
            key,
            window,
            times,
            declarations,
            cells,
            timers,
            outputs: Vec::new(),
            error: RefCell::new(None),
        }
    }

    /// When this call runs.
    pub fn times(&self) -> CallTimes {
        self.times
    }

    /// The rows emitted to the main output, or the first misuse of the context.
    pub fn finish(self) -> Result<Vec<Row>, String> {
        match self.error.into_inner() {
            Some(e) => Err(e),
            None => Ok(self.outputs),
        }
    }

    fn fail(&self, message: String) {
        self.error.borrow_mut().get_or_insert(message);
    }

    /// Whether `name` is a declared cell of `kind` (recording the misuse otherwise).
    fn declared(&self, name: &str, kind: StateKind) -> bool {
        match self.declarations.check_cell(name, Some(kind)) {
            Ok(_) => true,
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    fn list_cell(&mut self, name: &str) -> Option<&mut Vec<Value>> {
        if !self.declared(name, StateKind::List) {
            return None;
        }
        match self
            .cells
            .cells
            .entry(name.to_string())
            .or_insert_with(|| StateCell::List(Vec::new()))
        {
            StateCell::List(items) => Some(items),
            _ => None,
        }
    }

    fn map_cell(&mut self, name: &str) -> Option<&mut BTreeMap<String, Value>> {
        if !self.declared(name, StateKind::Map) {
            return None;
        }
        match self
            .cells
            .cells
            .entry(name.to_string())
            .or_insert_with(|| StateCell::Map(BTreeMap::new()))
        {
            StateCell::Map(entries) => Some(entries),
            _ => None,
        }
    }

    fn timer_domain(&self, name: &str) -> Option<TimeDomain> {
        let domain = self.declarations.timers.get(name).copied();
        if domain.is_none() {
            self.fail(format!(
                "timer `{name}` is not declared (declared: {})",
                self.declarations
                    .timers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        domain
    }
}

impl StatefulContext for StatefulCall<'_> {
    fn key(&self) -> &Row {
        &self.cells.key_row
    }

    fn timestamp(&self) -> Timestamp {
        self.times.timestamp
    }

    fn watermark(&self) -> Timestamp {
        self.times.input_watermark
    }

    fn processing_time(&self) -> Timestamp {
        self.times.processing_time
    }

    fn value(&self, state: &str) -> Option<Value> {
        if !self.declared(state, StateKind::Value) {
            return None;
        }
        match self.cells.cells.get(state) {
            Some(StateCell::Value(v)) => Some(v.clone()),
            _ => None,
        }
    }

    fn set_value(&mut self, state: &str, value: Value) {
        if self.declared(state, StateKind::Value) {
            self.cells
                .cells
                .insert(state.to_string(), StateCell::Value(value));
        }
    }

    fn list(&self, state: &str) -> Vec<Value> {
        if !self.declared(state, StateKind::List) {
            return Vec::new();
        }
        match self.cells.cells.get(state) {
            Some(StateCell::List(items)) => items.clone(),
            _ => Vec::new(),
        }
    }

    fn append(&mut self, state: &str, value: Value) {
        if let Some(items) = self.list_cell(state) {
            items.push(value);
        }
    }

    fn map_get(&self, state: &str, key: &str) -> Option<Value> {
        if !self.declared(state, StateKind::Map) {
            return None;
        }
        match self.cells.cells.get(state) {
            Some(StateCell::Map(entries)) => entries.get(key).cloned(),
            _ => None,
        }
    }

    fn map_put(&mut self, state: &str, key: &str, value: Value) {
        if let Some(entries) = self.map_cell(state) {
            entries.insert(key.to_string(), value);
        }
    }

    fn map_remove(&mut self, state: &str, key: &str) {
        if let Some(entries) = self.map_cell(state) {
            entries.remove(key);
        }
    }

    fn map_entries(&self, state: &str) -> Vec<(String, Value)> {
        if !self.declared(state, StateKind::Map) {
            return Vec::new();
        }
        match self.cells.cells.get(state) {
            Some(StateCell::Map(entries)) => entries
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn clear(&mut self, state: &str) {
        match self.declarations.check_cell(state, None) {
            Ok(_) => {
                self.cells.cells.remove(state);
            }
            Err(e) => self.fail(e),
        }
    }

    fn set_timer(&mut self, timer: &str, at: Timestamp) {
        let Some(domain) = self.timer_domain(timer) else {
            return;
        };
        // Beam refuses an event-time timer after the window's expiry: it could never fire
        // before the window's state is gone.
        if domain == TimeDomain::EventTime && at > self.times.gc_time {
            self.fail(format!(
                "event-time timer `{timer}` set for {at}, after its window [{}, {}) expires at {}",
                self.window.start, self.window.end, self.times.gc_time
            ));
            return;
        }
        self.timers
            .set(self.key, self.window, timer, TimerEntry { at, domain });
    }

    fn delete_timer(&mut self, timer: &str) {
        if self.timer_domain(timer).is_some() {
            self.timers.delete(self.key, self.window, timer);
        }
    }

    fn emit(&mut self, row: Row) {
        self.outputs.push(row);
    }

    fn emit_to(&mut self, tag: &str, _row: Row) {
        // The model gives stateful functions no way to declare side outputs, so the plan
        // has no collection for them.
        self.fail(format!(
            "emitted to side output `{tag}`, but a stateful function has no side outputs"
        ));
    }
}
