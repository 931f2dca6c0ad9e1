//! Keyed state and timers for stateful processing (Beam's `StateInternals` and
//! `TimerInternals` with their in-memory reference implementations, and the
//! `StatefulDoFnRunner` rules).
//!
//! State lives per key *and window* ([`StateStore`]), in cells a function declares up front
//! ([`Declarations`]); timers ([`TimerQueue`]) live per key, window and timer name, and
//! setting one again moves it. [`StatefulCall`] implements the model's
//! [`weir_model::udf::StatefulContext`] over both for one element or timer.
//!
//! Rules, as in Beam:
//! - an event-time timer fires once the input watermark is past it ([`event_timer_due`]),
//!   a processing-time timer once processing time reaches it ([`processing_timer_due`]);
//! - an event-time timer may not be set after its window's garbage-collection time;
//! - a window's state and timers are dropped when the watermark passes its
//!   garbage-collection time ([`crate::window::gc_time`]).

mod cells;
mod context;
mod timers;

pub use cells::{Declarations, StateCell, StateStore, WindowCells};
pub use context::{CallTimes, StatefulCall};
pub use timers::{FiringTimer, TimerEntry, TimerQueue};

use weir_model::time::Timestamp;
use weir_model::udf::TimeDomain;

/// Whether an event-time timer set for `at` fires at this input watermark: `watermark > at`
/// (Beam; the watermark promises no more elements at or before itself only once past).
pub fn event_timer_due(at: Timestamp, input_watermark: Timestamp) -> bool {
    input_watermark > at
}

/// Whether a processing-time timer set for `at` fires at this processing time:
/// `processing_time >= at`, so that a runner whose manual clock jumps to the next timer
/// fires it there.
pub fn processing_timer_due(at: Timestamp, processing_time: Timestamp) -> bool {
    processing_time >= at
}

/// The event timestamp of a firing timer, which is also the timestamp of what it emits
/// (Beam's `SimpleDoFnRunner.onTimer`): the timer's time for an event-time timer; for a
/// processing-time timer, whose time is not an event time, the current input watermark,
/// which is by definition not late.
pub fn timer_output_timestamp(
    at: Timestamp,
    domain: TimeDomain,
    input_watermark: Timestamp,
) -> Timestamp {
    match domain {
        TimeDomain::EventTime => at,
        TimeDomain::ProcessingTime => input_watermark,
    }
}
