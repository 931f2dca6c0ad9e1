//! The per-key-and-window reduce logic that turns windowed elements into panes (Beam's
//! `ReduceFnRunner` with its `PaneInfoTracker`, `NonEmptyPanes`, `WatermarkHold` and
//! `LateDataDroppingDoFnRunner`, written as one state machine).
//!
//! A [`ReduceRunner`] is fed elements (key, window, timestamp, input), watermarks and
//! processing time; it drops late elements, merges windows, runs the trigger of every
//! window, and returns [`FiredPane`]s whose contents a [`ReduceFn`] accumulated. Runners
//! differ only in when they call it. The rules, each a named function:
//! - lateness: [`crate::window::window_is_expired`] (element level, before merging);
//! - merging: [`crate::window::merge_windows`], trigger state by [`TriggerState::merged`];
//! - firing: [`TriggerState::should_fire`] after every element, at the end of the window,
//!   and at processing-time deadlines;
//! - panes: [`describe_pane`], [`need_to_emit`], [`pane_timestamp`];
//! - garbage collection: a final pane when the watermark passes
//!   [`crate::window::gc_time`] (or reaches `MAX_TIMESTAMP`, end of input);
//! - output watermark: [`output_watermark`] held by [`element_hold`]s.
//!
//! [`TriggerState::should_fire`]: crate::trigger::TriggerState::should_fire
//! [`TriggerState::merged`]: crate::trigger::TriggerState::merged

mod contents;
mod join;
mod key;
mod pane;
mod runner;

pub use contents::{AggregateInput, AggregateReduce, PaneContents, RankedRow, SeqRow};
pub use join::{join_columns, join_rows, JoinColumn};
pub use key::Key;
pub use pane::{
    combine_holds, describe_pane, element_hold, need_to_emit, output_watermark, pane_timestamp,
    pane_timing,
};
pub use runner::{KeySnapshot, ReduceRunner, WindowSnapshot};

use crate::error::ExecResult;
use weir_model::time::Timestamp;
use weir_model::window::{PaneInfo, Window};

/// What a reduce buffers for one key and window, and how (Beam's `ReduceFn` / `CombineFn`).
pub trait ReduceFn {
    /// One element's input.
    type Input;
    /// The buffered contents of one key and window.
    type Contents: Clone;

    /// Empty contents.
    fn create(&self) -> Self::Contents;
    /// Adds one element.
    fn add(&self, contents: &mut Self::Contents, input: Self::Input) -> ExecResult<()>;
    /// Merges the contents of a window being merged away into `contents`.
    fn merge(&self, contents: &mut Self::Contents, other: Self::Contents) -> ExecResult<()>;
}

/// A pane fired by a [`ReduceRunner`].
#[derive(Debug, Clone, PartialEq)]
pub struct FiredPane<C> {
    /// The key.
    pub key: Key,
    /// The window (after merging).
    pub window: Window,
    /// Timing, index, first/last.
    pub pane: PaneInfo,
    /// The results' event timestamp (per the timestamp combiner).
    pub timestamp: Timestamp,
    /// What the pane holds: everything since the previous pane (discarding) or since the
    /// window began (accumulating).
    pub contents: C,
}

/// What happened to one element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementOutcome {
    /// Added to its window.
    Accepted,
    /// Its window is expired (behind the watermark by more than the allowed lateness): it is
    /// dropped and counted, or routed to the late-data side output.
    Expired,
    /// Its window's trigger has finished (the window is closed until garbage collection):
    /// dropped and counted, like Beam's `droppedDueToClosedWindow`.
    Closed,
}
