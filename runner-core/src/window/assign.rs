//! Window assignment (Beam's `FixedWindows`, `SlidingWindows`, `Sessions`, custom `WindowFn`s).

use weir_model::time::Timestamp;
use weir_model::window::{Window, WindowFn};

/// The fixed (tumbling) window of length `size`, aligned to the epoch plus `offset`, that
/// contains `ts`: `[start, start + size)` with `start = ts - ((ts - offset) mod size)`, the
/// modulo taken non-negative so that negative timestamps land in the window below them
/// (Beam's `FixedWindows.assignWindow`).
pub fn fixed_window(ts: Timestamp, size: i64, offset: i64) -> Window {
    let start = ts - (ts - offset).rem_euclid(size);
    Window::new(start, start + size)
}

/// Every sliding window of length `size` starting at a multiple of `period` (plus `offset`)
/// that contains `ts`, ordered by start (Beam's `SlidingWindows.assignWindows`). An element
/// falls in `ceil(size / period)` windows.
pub fn sliding_windows(ts: Timestamp, size: i64, period: i64, offset: i64) -> Vec<Window> {
    let last_start = ts - (ts - offset).rem_euclid(period);
    let mut windows = Vec::with_capacity((size / period + 1) as usize);
    let mut start = last_start;
    while start > ts - size {
        windows.push(Window::new(start, start + size));
        start -= period;
    }
    windows.reverse();
    windows
}

/// The proto-session `[ts, ts + gap)` of one element (Beam's `Sessions.assignWindows`);
/// sessions are formed when the aggregation merges proto-sessions of one key.
///
/// A gap `<= 0` is refused: an empty or inverted window can hold no element. Beam has no
/// per-element gap; Flink's `DynamicEventTimeSessionWindows` fails the job on such a gap,
/// and so does Weir's reference runner (the caller names the row).
pub fn session_window(ts: Timestamp, gap_ms: i64) -> Result<Window, String> {
    if gap_ms <= 0 {
        return Err(format!("a session gap must be > 0 ms, got {gap_ms} ms"));
    }
    Ok(Window::new(ts, ts.saturating_add(gap_ms)))
}

/// The windows an element with timestamp `ts` belongs to under `window_fn`, ordered by start.
/// `gap_ms` is the element's session gap when the function is `Sessions` with a gap
/// expression (ignored otherwise).
pub fn assign_windows(
    window_fn: &WindowFn,
    ts: Timestamp,
    gap_ms: Option<i64>,
) -> Result<Vec<Window>, String> {
    Ok(match window_fn {
        WindowFn::Global => vec![Window::GLOBAL],
        WindowFn::Fixed { size, offset } => vec![fixed_window(ts, size.0, offset.0)],
        WindowFn::Sliding {
            size,
            period,
            offset,
        } => sliding_windows(ts, size.0, period.0, offset.0),
        WindowFn::Sessions { gap, .. } => vec![session_window(ts, gap_ms.unwrap_or(gap.0))?],
        WindowFn::Custom(custom) => {
            let mut windows = custom.assign(ts);
            windows.sort();
            windows
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_windows_align_negative_timestamps_downwards() {
        assert_eq!(fixed_window(-1, 10, 0), Window::new(-10, 0));
        assert_eq!(fixed_window(-10, 10, 0), Window::new(-10, 0));
        assert_eq!(fixed_window(0, 10, 0), Window::new(0, 10));
        assert_eq!(fixed_window(12, 10, 3), Window::new(3, 13));
        assert_eq!(fixed_window(2, 10, 3), Window::new(-7, 3));
    }

    #[test]
    fn sliding_windows_contain_the_timestamp_in_start_order() {
        assert_eq!(
            sliding_windows(7, 10, 5, 0),
            vec![Window::new(0, 10), Window::new(5, 15)]
        );
        assert_eq!(
            sliding_windows(5, 10, 5, 0),
            vec![Window::new(0, 10), Window::new(5, 15)]
        );
        assert_eq!(
            sliding_windows(-1, 6, 2, 0),
            vec![Window::new(-6, 0), Window::new(-4, 2), Window::new(-2, 4)]
        );
    }

    #[test]
    fn session_gap_must_be_positive() {
        assert_eq!(session_window(5, 10).unwrap(), Window::new(5, 15));
        assert!(session_window(5, 0).is_err());
        assert!(session_window(5, -3).is_err());
    }
}
