//! Event-time progress the way Flink's runtime tracks it.
//!
//! - [`generator`]: the bounded-out-of-orderness generator per source split, emitting
//!   `max_ts − D − 1` periodically, with idleness (Flink's `BoundedOutOfOrdernessWatermarks`,
//!   `WatermarksWithIdleness` and the per-split `WatermarkOutputMultiplexer`).
//! - [`alignment`]: opt-in watermark alignment across source subtasks (Flink's
//!   `withWatermarkAlignment`): a source too far ahead of the slowest pauses.
//! - [`valve`]: the min over an operator's input channels after an exchange (Flink's
//!   `StatusWatermarkValve`).
//! - the conversion between Flink's watermark convention and the Beam-convention watermark
//!   that `weir-runner-core`'s operators expect ([`to_operator_watermark`],
//!   [`from_operator_watermark`]).

pub mod alignment;
pub mod generator;
pub mod valve;

pub use alignment::AlignmentGroup;
pub use generator::{BoundedOutOfOrderness, SplitWatermarks};
pub use valve::{InputWatermarks, WatermarkStatus};

use weir_model::time::{Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};

/// The watermark handed to a `weir-runner-core` operator for Flink watermark `flink`.
///
/// Flink's watermark `W` promises no more elements with `ts <= W`; the Beam model's input
/// watermark `W'` promises none with `ts < W'`. They carry the same information when
/// `W' = W + 1`, and with that shift runner-core's Beam rules become Flink's exactly:
/// - a window fires when `W' > end − 1` ⇔ `W >= end − 1` (Flink's `EventTimeTrigger`);
/// - a window is expired when `end − 1 + lateness < W'` ⇔ `end − 1 + lateness <= W`
///   (Flink's `WindowOperator.isWindowLate`, cleanup timer at `maxTimestamp + lateness`);
/// - an event-time timer at `t` fires when `W' > t` ⇔ `W >= t` (Flink's
///   `InternalTimerService.advanceWatermark`).
///
/// `MIN` (nothing known) and `MAX` (end of input) are fixed points.
pub fn to_operator_watermark(flink: Timestamp) -> Timestamp {
    if flink <= MIN_TIMESTAMP {
        MIN_TIMESTAMP
    } else if flink >= MAX_TIMESTAMP {
        MAX_TIMESTAMP
    } else {
        flink + 1
    }
}

/// The Flink watermark for an operator's Beam-convention output watermark (the inverse of
/// [`to_operator_watermark`]).
pub fn from_operator_watermark(beam: Timestamp) -> Timestamp {
    if beam <= MIN_TIMESTAMP {
        MIN_TIMESTAMP
    } else if beam >= MAX_TIMESTAMP {
        MAX_TIMESTAMP
    } else {
        beam - 1
    }
}

/// Whether an element with timestamp `ts` is late at Flink watermark `watermark`:
/// `Watermark(t)` declares that no element with `ts <= t` follows, so `ts == watermark` is
/// already late.
pub fn is_late(ts: Timestamp, watermark: Timestamp) -> bool {
    ts <= watermark
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_model::time::Duration;
    use weir_model::window::Window;
    use weir_runner_core::state::event_timer_due;
    use weir_runner_core::window::{end_of_window_reached, window_is_expired};

    #[test]
    fn conversion_round_trips_and_keeps_min_and_max() {
        for w in [MIN_TIMESTAMP, -5, 0, 1, 59_999, MAX_TIMESTAMP] {
            assert_eq!(from_operator_watermark(to_operator_watermark(w)), w);
        }
        assert_eq!(to_operator_watermark(MIN_TIMESTAMP), MIN_TIMESTAMP);
        assert_eq!(to_operator_watermark(MAX_TIMESTAMP), MAX_TIMESTAMP);
    }

    #[test]
    fn a_window_fires_when_the_flink_watermark_reaches_its_max_timestamp() {
        let w = Window::new(0, 60_000);
        assert!(!end_of_window_reached(&w, to_operator_watermark(59_998)));
        assert!(end_of_window_reached(&w, to_operator_watermark(59_999)));
    }

    #[test]
    fn a_window_is_late_once_max_timestamp_plus_lateness_is_at_or_below_the_watermark() {
        let w = Window::new(0, 60_000);
        let lateness = Duration::from_millis(10_000);
        assert!(!window_is_expired(
            &w,
            lateness,
            to_operator_watermark(69_998)
        ));
        assert!(window_is_expired(
            &w,
            lateness,
            to_operator_watermark(69_999)
        ));
        // Without lateness an element at the window's last millisecond is late once the
        // watermark equals it: `ts == watermark` is late.
        assert!(window_is_expired(
            &w,
            Duration::ZERO,
            to_operator_watermark(59_999)
        ));
        assert!(is_late(59_999, 59_999));
        assert!(!is_late(60_000, 59_999));
    }

    #[test]
    fn an_event_time_timer_fires_when_the_watermark_reaches_it() {
        assert!(!event_timer_due(100, to_operator_watermark(99)));
        assert!(event_timer_due(100, to_operator_watermark(100)));
    }
}
