//! Windows: which windows an element belongs to (Beam's `WindowFn.assignWindows`), how
//! windows of one key merge (Beam's `MergingActiveWindowSet` with `WindowFn.mergeWindows`),
//! and the lateness rules that decide when a window is over (Beam's `LateDataUtils`).
//!
//! Everything here is a small pure function so that every runner applies the same rule:
//! the direct runner per element, the micro-batch runner per batch, the continuous runner
//! per record.

mod assign;
mod lateness;
mod merge;

pub use assign::{assign_windows, fixed_window, session_window, sliding_windows};
pub use lateness::{end_of_window_reached, gc_time, window_is_expired};
pub use merge::{merge_overlapping_or_touching, merge_windows, MergeGroup};
