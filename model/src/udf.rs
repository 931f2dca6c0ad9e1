//! User-defined functions: named structs behind `#[typetag::serde]` traits, so a pipeline
//! that holds them still serializes to its canonical JSON and back.
//!
//! Rows given to element-wise functions are JSON objects ([`Row`]): column name to value,
//! timestamps as integer milliseconds. Batch-wise functions see Arrow batches.

use crate::schema::{DataType, Schema};
use crate::time::Timestamp;
use crate::window::Window;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

/// One row, column name to value. Timestamps are integer milliseconds.
pub type Row = serde_json::Map<String, serde_json::Value>;

/// A state or timer value: any JSON value.
pub type Value = serde_json::Value;

/// Receives a function's outputs: the main output or a tagged side output.
pub trait Emitter {
    /// Emits a row to the main output.
    fn emit(&mut self, row: Row);
    /// Emits a row to the side output `tag` (declared in `side_outputs`).
    fn emit_to(&mut self, tag: &str, row: Row);
}

/// An element-wise function (ParDo / FlatMap) with optional side outputs.
#[typetag::serde(tag = "fn")]
pub trait DoFn: Debug + Send + Sync + dyn_clone::DynClone {
    /// Schema of the main output, given the input schema.
    fn output_schema(&self, input: &Schema) -> Result<Schema, String>;
    /// Tags and schemas of side outputs.
    fn side_outputs(&self, _input: &Schema) -> Result<Vec<(String, Schema)>, String> {
        Ok(Vec::new())
    }
    /// Processes one row; may emit any number of rows to any output. An `Err` fails the run
    /// (or routes the row to the dead-letter output when the transform has one).
    fn process(&self, row: &Row, out: &mut dyn Emitter) -> Result<(), String>;
}
dyn_clone::clone_trait_object!(DoFn);

/// A batch-wise function: Arrow in, Arrow out (one output).
#[typetag::serde(tag = "fn")]
pub trait BatchFn: Debug + Send + Sync + dyn_clone::DynClone {
    /// Schema of the output, given the input schema.
    fn output_schema(&self, input: &Schema) -> Result<Schema, String>;
    /// Transforms one batch. Must not depend on how input is split into batches.
    fn process_batch(&self, batch: &RecordBatch) -> Result<RecordBatch, String>;
}
dyn_clone::clone_trait_object!(BatchFn);

/// A user-defined aggregation (Beam's CombineFn) over JSON values.
#[typetag::serde(tag = "fn")]
pub trait CombineFn: Debug + Send + Sync + dyn_clone::DynClone {
    /// Output type for an input of type `input` (`None` when the aggregation has no input).
    fn output_type(&self, input: Option<&DataType>) -> Result<DataType, String>;
    /// A fresh accumulator.
    fn create_accumulator(&self) -> Value;
    /// Adds one input value.
    fn add_input(&self, acc: &mut Value, input: &Value);
    /// Merges `other` into `acc`.
    fn merge_accumulators(&self, acc: &mut Value, other: &Value);
    /// The result for an accumulator.
    fn extract_output(&self, acc: &Value) -> Value;
}
dyn_clone::clone_trait_object!(CombineFn);

/// A user-defined window function.
#[typetag::serde(tag = "fn")]
pub trait CustomWindowFn: Debug + Send + Sync + dyn_clone::DynClone {
    /// A short name for plans and errors.
    fn name(&self) -> String;
    /// The windows an element with timestamp `ts` belongs to.
    fn assign(&self, ts: Timestamp) -> Vec<Window>;
    /// Whether windows of one key merge.
    fn is_merging(&self) -> bool {
        false
    }
    /// For merging functions: groups of windows to merge and their result. The default
    /// merges overlapping or touching windows, like sessions.
    fn merge(&self, windows: &[Window]) -> Vec<(Vec<Window>, Window)> {
        let mut sorted: Vec<Window> = windows.to_vec();
        sorted.sort();
        let mut out: Vec<(Vec<Window>, Window)> = Vec::new();
        for w in sorted {
            match out.last_mut() {
                Some((members, span)) if span.intersects_or_touches(&w) => {
                    members.push(w);
                    *span = span.span(&w);
                }
                _ => out.push((vec![w], w)),
            }
        }
        out
    }
}
dyn_clone::clone_trait_object!(CustomWindowFn);

/// Time domain of a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeDomain {
    /// Fires when the watermark passes the timer's time.
    EventTime,
    /// Fires when the processing-time clock passes the timer's time.
    ProcessingTime,
}

/// The kind of a declared state cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    /// One value.
    Value,
    /// An append-only list (with clear).
    List,
    /// A map from string keys to values.
    Map,
}

/// A state cell declared up front by a stateful function.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StateSpec {
    /// The cell's name.
    pub name: String,
    /// Value, list or map.
    pub kind: StateKind,
}

/// A timer declared up front by a stateful function.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimerSpec {
    /// The timer family's name.
    pub name: String,
    /// Event or processing time.
    pub domain: TimeDomain,
}

/// What a stateful function can do while handling an element or a timer: read and write
/// its key's state, set timers, emit rows. Implemented by every runner.
pub trait StatefulContext {
    /// The current key (the `keys` columns of the element).
    fn key(&self) -> &Row;
    /// The element's (or firing timer's) event timestamp.
    fn timestamp(&self) -> Timestamp;
    /// The input watermark.
    fn watermark(&self) -> Timestamp;
    /// The current processing time.
    fn processing_time(&self) -> Timestamp;
    /// Reads a value cell.
    fn value(&self, state: &str) -> Option<Value>;
    /// Writes a value cell.
    fn set_value(&mut self, state: &str, value: Value);
    /// Reads a list cell.
    fn list(&self, state: &str) -> Vec<Value>;
    /// Appends to a list cell.
    fn append(&mut self, state: &str, value: Value);
    /// Reads one entry of a map cell.
    fn map_get(&self, state: &str, key: &str) -> Option<Value>;
    /// Writes one entry of a map cell.
    fn map_put(&mut self, state: &str, key: &str, value: Value);
    /// Removes one entry of a map cell.
    fn map_remove(&mut self, state: &str, key: &str);
    /// All entries of a map cell, sorted by key.
    fn map_entries(&self, state: &str) -> Vec<(String, Value)>;
    /// Clears a cell of any kind.
    fn clear(&mut self, state: &str);
    /// Sets (or moves) the timer `timer` for this key to fire at `at`.
    fn set_timer(&mut self, timer: &str, at: Timestamp);
    /// Deletes the timer `timer` for this key.
    fn delete_timer(&mut self, timer: &str);
    /// Emits a row to the main output, at the current timestamp.
    fn emit(&mut self, row: Row);
    /// Emits a row to a side output.
    fn emit_to(&mut self, tag: &str, row: Row);
}

/// A stateful function (stateful ParDo): keyed state and timers, declared up front.
#[typetag::serde(tag = "fn")]
pub trait StatefulFn: Debug + Send + Sync + dyn_clone::DynClone {
    /// State cells the function uses.
    fn state(&self) -> Vec<StateSpec>;
    /// Timers the function uses.
    fn timers(&self) -> Vec<TimerSpec> {
        Vec::new()
    }
    /// Schema of the main output, given the input schema.
    fn output_schema(&self, input: &Schema) -> Result<Schema, String>;
    /// Handles one element of the current key.
    fn process(&self, row: &Row, ctx: &mut dyn StatefulContext) -> Result<(), String>;
    /// Handles a timer of the current key firing at `ctx.timestamp()`.
    fn on_timer(&self, _timer: &str, _ctx: &mut dyn StatefulContext) -> Result<(), String> {
        Ok(())
    }
}
dyn_clone::clone_trait_object!(StatefulFn);
