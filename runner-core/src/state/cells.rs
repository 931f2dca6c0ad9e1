//! State cells and the in-memory store of every key and window.

use crate::reduce::Key;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use weir_model::udf::{Row, StateKind, StateSpec, TimeDomain, TimerSpec, Value};
use weir_model::window::Window;

/// The cells and timers a stateful function declared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declarations {
    /// State cells by name.
    pub cells: BTreeMap<String, StateKind>,
    /// Timers by name.
    pub timers: BTreeMap<String, TimeDomain>,
}

impl Declarations {
    /// From a function's `state()` and `timers()`.
    pub fn new(cells: &[StateSpec], timers: &[TimerSpec]) -> Self {
        Declarations {
            cells: cells.iter().map(|s| (s.name.clone(), s.kind)).collect(),
            timers: timers.iter().map(|t| (t.name.clone(), t.domain)).collect(),
        }
    }

    /// The kind of the cell `name`, or why it cannot be used as `wanted`.
    pub fn check_cell(&self, name: &str, wanted: Option<StateKind>) -> Result<StateKind, String> {
        match self.cells.get(name) {
            None => Err(format!(
                "state `{name}` is not declared (declared: {})",
                self.cells.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
            Some(kind) if wanted.is_some_and(|w| w != *kind) => Err(format!(
                "state `{name}` is declared as {kind:?}, not {:?}",
                wanted.unwrap()
            )),
            Some(kind) => Ok(*kind),
        }
    }
}

/// The content of one state cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum StateCell {
    /// A value cell.
    Value(Value),
    /// A list cell.
    List(Vec<Value>),
    /// A map cell, sorted by key.
    Map(BTreeMap<String, Value>),
}

/// The state of one key and window: the key's columns and its cells (absent = empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowCells {
    /// The key as a row of the key columns.
    pub key_row: Row,
    /// Cells by name.
    pub cells: BTreeMap<String, StateCell>,
}

/// The state of every key and window of one stateful transform, in memory.
#[derive(Debug, Clone, Default)]
pub struct StateStore {
    windows: BTreeMap<(Key, Window), WindowCells>,
}

impl StateStore {
    /// The state of (key, window), created empty (with `key_row`) if absent.
    pub fn cells_mut(
        &mut self,
        key: &Key,
        window: Window,
        key_row: impl FnOnce() -> Row,
    ) -> &mut WindowCells {
        self.windows
            .entry((key.clone(), window))
            .or_insert_with(|| WindowCells {
                key_row: key_row(),
                cells: BTreeMap::new(),
            })
    }

    /// The state of (key, window), if any.
    pub fn get(&self, key: &Key, window: Window) -> Option<&WindowCells> {
        self.windows.get(&(key.clone(), window))
    }

    /// Drops the state of (key, window).
    pub fn remove(&mut self, key: &Key, window: Window) -> Option<WindowCells> {
        self.windows.remove(&(key.clone(), window))
    }

    /// Every (key, window) with state, in key and window order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Window, &WindowCells)> {
        self.windows.iter().map(|((k, w), c)| (k, w, c))
    }

    /// Number of (key, window) pairs with state.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether no key has state.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}
