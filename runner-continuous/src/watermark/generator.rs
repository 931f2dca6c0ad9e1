//! Watermark generation at the source, per split (Flink's FLIP-27 sources with a
//! `WatermarkStrategy`).

use std::collections::BTreeMap;
use weir_model::time::{Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};
use weir_model::window::WatermarkStrategy;

/// Flink's `BoundedOutOfOrdernessWatermarks` for one split: it tracks the largest timestamp
/// seen and, on each periodic emit, proposes `max_ts − D − 1` (`MIN` before any element).
/// With an idle timeout it is Flink's `WatermarksWithIdleness`, whose `IdlenessTimer` is only
/// consulted at periodic emits: the first emit that finds no element since the previous one
/// starts the inactivity clock, and a later emit more than the timeout after that start
/// marks the split idle, until it gets an element again.
#[derive(Debug, Clone)]
pub struct BoundedOutOfOrderness {
    delay: i64,
    idle_timeout: Option<i64>,
    max_ts: Option<Timestamp>,
    /// Elements seen (the timer's activity counter), and its value at the last emit.
    events: u64,
    events_at_last_emit: u64,
    /// Processing time of the first emit that found no activity (`None`: active).
    inactive_since: Option<Timestamp>,
    idle: bool,
}

impl BoundedOutOfOrderness {
    /// A generator for `strategy`, assigned at processing time `now`.
    pub fn new(strategy: &WatermarkStrategy, _now: Timestamp) -> Self {
        BoundedOutOfOrderness {
            delay: strategy.max_out_of_orderness.millis(),
            idle_timeout: strategy.idle_timeout.map(|d| d.millis()),
            max_ts: None,
            events: 0,
            events_at_last_emit: 0,
            inactive_since: None,
            idle: false,
        }
    }

    /// An element with event time `ts` arrived (at processing time `_now`; Flink's timer
    /// only counts activity and reads the clock at emits).
    pub fn on_event(&mut self, ts: Timestamp, _now: Timestamp) {
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
        self.events += 1;
        self.idle = false;
    }

    /// Flink's `IdlenessTimer.checkIfIdle`, at a periodic emit.
    fn check_if_idle(&mut self, now: Timestamp, timeout: i64) -> bool {
        if self.events != self.events_at_last_emit {
            self.events_at_last_emit = self.events;
            self.inactive_since = None;
            return false;
        }
        match self.inactive_since {
            None => {
                self.inactive_since = Some(now);
                false
            }
            Some(start) => now - start > timeout,
        }
    }

    /// The periodic emit at processing time `now`: `None` when the split is idle, otherwise
    /// `max_ts − D − 1` (Flink subtracts the extra millisecond so that an element at exactly
    /// `max_ts − D` is still on time).
    pub fn on_periodic_emit(&mut self, now: Timestamp) -> Option<Timestamp> {
        if let Some(timeout) = self.idle_timeout {
            if self.check_if_idle(now, timeout) {
                self.idle = true;
            }
        }
        if self.idle {
            return None;
        }
        Some(self.max_ts.map_or(MIN_TIMESTAMP, |m| {
            m.saturating_sub(self.delay)
                .saturating_sub(1)
                .max(MIN_TIMESTAMP)
        }))
    }

    /// Whether the split is idle (as of the last periodic emit or event).
    pub fn is_idle(&self) -> bool {
        self.idle
    }
}

/// The watermarks of the splits one source subtask reads, combined as Flink's
/// `WatermarkOutputMultiplexer` does: the subtask's watermark is the min over its non-idle
/// splits; a finished split no longer counts; when every remaining split is idle the subtask
/// is idle; the output never decreases.
#[derive(Debug, Clone)]
pub struct SplitWatermarks {
    strategy: WatermarkStrategy,
    splits: BTreeMap<u32, BoundedOutOfOrderness>,
    current: Timestamp,
}

impl SplitWatermarks {
    /// Generators for `splits`, assigned at processing time `now`.
    pub fn new(strategy: WatermarkStrategy, splits: &[u32], now: Timestamp) -> Self {
        let gens = splits
            .iter()
            .map(|s| (*s, BoundedOutOfOrderness::new(&strategy, now)))
            .collect();
        SplitWatermarks {
            strategy,
            splits: gens,
            current: MIN_TIMESTAMP,
        }
    }

    /// An element of `split` with event time `ts` at processing time `now` (a split not
    /// yet known — data after an exchange — gets a generator on its first element).
    pub fn on_event(&mut self, split: u32, ts: Timestamp, now: Timestamp) {
        let strategy = &self.strategy;
        self.splits
            .entry(split)
            .or_insert_with(|| BoundedOutOfOrderness::new(strategy, now))
            .on_event(ts, now);
    }

    /// `split` has no more data: it stops holding the watermark back.
    pub fn on_split_finished(&mut self, split: u32) {
        self.splits.remove(&split);
    }

    /// The periodic emit: `Some(watermark)` (never below an earlier one) or `None` when every
    /// split is idle. With no split left, the watermark is `MAX` (end of input).
    pub fn on_periodic_emit(&mut self, now: Timestamp) -> Option<Timestamp> {
        if self.splits.is_empty() {
            self.current = MAX_TIMESTAMP;
            return Some(MAX_TIMESTAMP);
        }
        let combined = self
            .splits
            .values_mut()
            .filter_map(|g| g.on_periodic_emit(now))
            .min()?;
        self.current = self.current.max(combined);
        Some(self.current)
    }

    /// The last watermark emitted.
    pub fn current(&self) -> Timestamp {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_model::time::Duration;

    fn strategy(delay: i64, idle: Option<i64>) -> WatermarkStrategy {
        WatermarkStrategy {
            max_out_of_orderness: Duration::from_millis(delay),
            idle_timeout: idle.map(Duration::from_millis),
        }
    }

    #[test]
    fn bounded_out_of_orderness_emits_max_minus_delay_minus_one() {
        let mut g = BoundedOutOfOrderness::new(&strategy(5_000, None), 0);
        assert_eq!(g.on_periodic_emit(0), Some(MIN_TIMESTAMP));
        g.on_event(10_000, 1);
        g.on_event(7_000, 2);
        assert_eq!(g.on_periodic_emit(200), Some(4_999));
    }

    #[test]
    fn the_subtask_watermark_is_the_min_over_its_splits() {
        let mut w = SplitWatermarks::new(strategy(0, None), &[0, 1], 0);
        w.on_event(0, 100, 0);
        // Split 1 has seen nothing: it holds the subtask at MIN.
        assert_eq!(w.on_periodic_emit(200), Some(MIN_TIMESTAMP));
        w.on_event(1, 50, 300);
        assert_eq!(w.on_periodic_emit(400), Some(49));
        w.on_event(1, 500, 500);
        assert_eq!(w.on_periodic_emit(600), Some(99));
    }

    #[test]
    fn idleness_releases_a_watermark_held_by_a_silent_split() {
        let mut w = SplitWatermarks::new(strategy(0, Some(1_000)), &[0, 1], 0);
        w.on_event(0, 100, 0);
        w.on_event(1, 50, 0);
        // Activity since the last check: both active.
        assert_eq!(w.on_periodic_emit(200), Some(49));
        w.on_event(0, 2_000, 300);
        // Split 1 saw nothing since the last emit: its inactivity clock starts at 400.
        assert_eq!(w.on_periodic_emit(400), Some(49));
        w.on_event(0, 2_100, 1_300);
        // 1 400 − 400 = 1 000 is not more than the timeout: still active.
        assert_eq!(w.on_periodic_emit(1_400), Some(49));
        // At 1 600 it is: split 1 is excluded and split 0 alone decides.
        assert_eq!(w.on_periodic_emit(1_600), Some(2_099));
        // It gets an element again: it counts again, but the watermark never goes back.
        w.on_event(1, 500, 1_700);
        assert_eq!(w.on_periodic_emit(1_800), Some(2_099));
        w.on_event(1, 3_000, 1_900);
        w.on_event(0, 4_000, 1_900);
        assert_eq!(w.on_periodic_emit(2_000), Some(2_999));
    }

    #[test]
    fn every_split_idle_makes_the_subtask_idle_and_finished_splits_stop_counting() {
        let mut w = SplitWatermarks::new(strategy(0, Some(10)), &[0, 1], 0);
        // The first silent emit starts the clocks; one more than 10 ms later both are idle.
        assert_eq!(w.on_periodic_emit(1), Some(MIN_TIMESTAMP));
        assert_eq!(w.on_periodic_emit(12), None);
        w.on_event(0, 40, 13);
        assert_eq!(w.on_periodic_emit(14), Some(39));
        w.on_split_finished(0);
        assert_eq!(w.on_periodic_emit(15), None);
        w.on_split_finished(1);
        assert_eq!(w.on_periodic_emit(16), Some(MAX_TIMESTAMP));
    }
}
