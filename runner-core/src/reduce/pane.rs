//! The rules that describe a fired pane: its timing and flags (Beam's `PaneInfoTracker`),
//! whether an empty pane is emitted (Beam's `ReduceFnRunner.needToEmit`), its timestamp
//! (the timestamp combiner) and the output watermark hold (Beam's `WatermarkHold`).

use weir_model::time::Timestamp;
use weir_model::window::{ClosingBehavior, PaneInfo, PaneTiming, TimestampCombiner, Window};

/// The pane a window fires now (Beam's `PaneInfoTracker.describePane`):
/// - index: 0 for the first pane, then one more than the previous pane; `is_first` for 0;
/// - `is_last` when this is the final pane (trigger finished or window garbage-collected);
/// - timing: LATE once an ON_TIME or LATE pane was emitted, or when the window's end is
///   already behind the *output* watermark (no timestamp could make it on time downstream);
///   otherwise EARLY while the input watermark has not passed the end of the window, and
///   ON_TIME for the one firing after it has.
pub fn describe_pane(
    previous: Option<&PaneInfo>,
    window: &Window,
    is_final: bool,
    input_watermark: Timestamp,
    output_watermark: Timestamp,
) -> PaneInfo {
    let index = previous.map_or(0, |p| p.index + 1);
    let timing = pane_timing(
        previous.map(|p| p.timing),
        window,
        input_watermark,
        output_watermark,
    );
    PaneInfo {
        timing,
        index,
        is_first: previous.is_none(),
        is_last: is_final,
    }
}

/// The timing part of [`describe_pane`].
pub fn pane_timing(
    previous: Option<PaneTiming>,
    window: &Window,
    input_watermark: Timestamp,
    output_watermark: Timestamp,
) -> PaneTiming {
    let late_for_output = window.max_timestamp() < output_watermark;
    let only_early_so_far = matches!(previous, None | Some(PaneTiming::Early));
    let early_for_input = input_watermark <= window.max_timestamp();
    if late_for_output || !only_early_so_far {
        PaneTiming::Late
    } else if early_for_input {
        PaneTiming::Early
    } else {
        PaneTiming::OnTime
    }
}

/// Whether a pane is emitted (Beam's `needToEmit`): always when elements arrived since the
/// last pane; when empty, only with `ClosingBehavior::FireAlways`, and then only for the
/// ON_TIME pane and the final pane. Weir's model has no separate `OnTimeBehavior`; Beam's
/// `FIRE_ALWAYS` on-time behaviour is folded into `FireAlways` closing.
pub fn need_to_emit(
    is_empty: bool,
    is_final: bool,
    timing: PaneTiming,
    closing: ClosingBehavior,
) -> bool {
    !is_empty
        || (closing == ClosingBehavior::FireAlways && (is_final || timing == PaneTiming::OnTime))
}

/// The timestamp of a pane's results. `inputs` is the (earliest, latest) timestamp of the
/// elements added since the previous pane, if any.
/// - `EndOfWindow`: the window's max timestamp (`end - 1`; for the global window
///   `MAX_TIMESTAMP - 1`);
/// - `Earliest` / `Latest`: of those elements. Like Beam, where the pane timestamp comes from
///   the watermark hold released at each firing, an accumulating pane is stamped from the
///   elements new to it, not from the whole accumulated content; an empty pane (emitted
///   with `FireAlways`) falls back to the window's max timestamp.
pub fn pane_timestamp(
    combiner: TimestampCombiner,
    window: &Window,
    inputs: Option<(Timestamp, Timestamp)>,
) -> Timestamp {
    match (combiner, inputs) {
        (TimestampCombiner::Earliest, Some((earliest, _))) => earliest,
        (TimestampCombiner::Latest, Some((_, latest))) => latest,
        _ => window.max_timestamp(),
    }
}

/// The output watermark hold an element places on its window's pending pane (Beam's
/// `WatermarkHold.addElementHold`): where the pane's timestamp will be, so that the pane is
/// not late downstream. `None` when that is already behind the output watermark (the
/// element is late for the output; holding would move nothing).
pub fn element_hold(
    combiner: TimestampCombiner,
    window: &Window,
    timestamp: Timestamp,
    output_watermark: Timestamp,
) -> Option<Timestamp> {
    let hold = match combiner {
        TimestampCombiner::EndOfWindow => window.max_timestamp(),
        TimestampCombiner::Earliest | TimestampCombiner::Latest => timestamp,
    };
    (hold >= output_watermark).then_some(hold)
}

/// Two holds of one pane combined per the timestamp combiner (earliest hold for `Earliest`,
/// latest for `Latest`; `EndOfWindow` holds are the window's end anyway).
pub fn combine_holds(combiner: TimestampCombiner, a: Timestamp, b: Timestamp) -> Timestamp {
    match combiner {
        TimestampCombiner::Latest => a.max(b),
        TimestampCombiner::Earliest | TimestampCombiner::EndOfWindow => a.min(b),
    }
}

/// The output watermark of an aggregation: the input watermark, held back by the earliest
/// hold of any pending pane, and never moving backwards.
pub fn output_watermark(
    previous: Timestamp,
    input_watermark: Timestamp,
    earliest_hold: Option<Timestamp>,
) -> Timestamp {
    let held = earliest_hold.map_or(input_watermark, |h| h.min(input_watermark));
    previous.max(held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_model::time::MIN_TIMESTAMP;

    const W: Window = Window { start: 0, end: 10 };

    #[test]
    fn panes_go_early_then_on_time_then_late() {
        let first = describe_pane(None, &W, false, 5, MIN_TIMESTAMP);
        assert_eq!(
            first,
            PaneInfo {
                timing: PaneTiming::Early,
                index: 0,
                is_first: true,
                is_last: false
            }
        );
        let on_time = describe_pane(Some(&first), &W, false, 10, 5);
        assert_eq!(on_time.timing, PaneTiming::OnTime);
        assert_eq!(on_time.index, 1);
        let late = describe_pane(Some(&on_time), &W, true, 12, 10);
        assert_eq!(
            late,
            PaneInfo {
                timing: PaneTiming::Late,
                index: 2,
                is_first: false,
                is_last: true
            }
        );
    }

    #[test]
    fn a_first_pane_behind_the_output_watermark_is_late() {
        assert_eq!(
            describe_pane(None, &W, false, 20, 20).timing,
            PaneTiming::Late
        );
    }

    #[test]
    fn empty_panes_only_with_fire_always() {
        assert!(!need_to_emit(
            true,
            true,
            PaneTiming::OnTime,
            ClosingBehavior::FireIfNonEmpty
        ));
        assert!(need_to_emit(
            true,
            false,
            PaneTiming::OnTime,
            ClosingBehavior::FireAlways
        ));
        assert!(!need_to_emit(
            true,
            false,
            PaneTiming::Early,
            ClosingBehavior::FireAlways
        ));
        assert!(need_to_emit(
            false,
            false,
            PaneTiming::Early,
            ClosingBehavior::FireIfNonEmpty
        ));
    }

    #[test]
    fn output_watermark_is_held_and_monotone() {
        assert_eq!(output_watermark(0, 100, Some(9)), 9);
        assert_eq!(output_watermark(20, 100, Some(9)), 20);
        assert_eq!(output_watermark(20, 100, None), 100);
    }
}
