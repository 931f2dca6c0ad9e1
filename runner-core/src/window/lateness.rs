//! When a window is over: end of window and garbage collection (Beam's `LateDataUtils`).

use weir_model::time::{Duration, Timestamp, MAX_TIMESTAMP};
use weir_model::window::Window;

/// The latest watermark at which a window still accepts data: `max_timestamp +
/// allowed_lateness` (Beam's `LateDataUtils.garbageCollectionTime`). Once the input watermark
/// is past it, the window is expired and its state is garbage-collected.
///
/// Capped at `MAX_TIMESTAMP - 1` so that the final watermark `MAX_TIMESTAMP` (end of input)
/// collects every window; the global window (`max_timestamp = MAX_TIMESTAMP - 1`) is
/// therefore collected exactly at end of input, whatever the allowed lateness.
pub fn gc_time(window: &Window, allowed_lateness: Duration) -> Timestamp {
    window
        .max_timestamp()
        .saturating_add(allowed_lateness.0.max(0))
        .min(MAX_TIMESTAMP - 1)
}

/// Whether the window is expired at this input watermark: `gc_time < watermark` (Beam's
/// `LateDataDroppingDoFnRunner`: `window.maxTimestamp().plus(allowedLateness)
/// .isBefore(inputWatermark)`). Elements for expired windows are dropped (or routed to the
/// late-data side output).
pub fn window_is_expired(
    window: &Window,
    allowed_lateness: Duration,
    input_watermark: Timestamp,
) -> bool {
    gc_time(window, allowed_lateness) < input_watermark
}

/// Whether the input watermark has passed the end of the window: `watermark >
/// max_timestamp` (Beam's `AfterWatermark` `endOfWindowReached`; the default trigger's ON_TIME
/// firing).
pub fn end_of_window_reached(window: &Window, input_watermark: Timestamp) -> bool {
    input_watermark > window.max_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_expires_after_its_allowed_lateness() {
        let w = Window::new(0, 10);
        assert!(!window_is_expired(&w, Duration(5), 14));
        assert_eq!(gc_time(&w, Duration(5)), 14);
        assert!(window_is_expired(&w, Duration(5), 15));
        assert!(window_is_expired(&w, Duration::ZERO, 10));
        assert!(!window_is_expired(&w, Duration::ZERO, 9));
    }

    #[test]
    fn the_global_window_expires_only_at_end_of_input() {
        let g = Window::GLOBAL;
        assert!(!window_is_expired(&g, Duration(1_000), MAX_TIMESTAMP - 1));
        assert!(window_is_expired(&g, Duration(1_000), MAX_TIMESTAMP));
        assert!(end_of_window_reached(&g, MAX_TIMESTAMP));
        assert!(!end_of_window_reached(&g, MAX_TIMESTAMP - 1));
    }
}
