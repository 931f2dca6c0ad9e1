//! Spark's event-time watermark (`WatermarkTracker`, `EventTimeWatermarkExec`), as the named
//! rules the micro-batch runner applies.
//!
//! - Each watermark-defining operator (`AssignTimestamps`) has its own watermark: the
//!   largest event time it has seen, over every partition, minus its delay. It is updated at
//!   the end of a batch, only by operators that saw rows, and never goes down.
//! - The global watermark is the min (default) or max over the operators, an operator that
//!   has not seen data yet counting as 0 (as Spark's tracker populates it); it never
//!   decreases and is unset until a batch with data has ended. Pre-epoch event times give
//!   negative watermarks (no clamping at 0: the issue asks for them; Spark itself starts its
//!   global watermark at 0).
//! - Batch N runs with the global watermark computed at the end of batch N−1 (recorded in
//!   `offsets/N`): [`eviction_watermark`]. Late rows are filtered with the previous batch's
//!   watermark: [`late_filter_watermark`] (Spark ≥ 3.5's `eventTimeWatermarkForLateEvents`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use weir_model::time::Timestamp;

/// How the global watermark combines the operators' (`spark.sql.streaming.multipleWatermarkPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatermarkPolicy {
    /// The slowest input decides (Spark's default): no input's data is dropped as late
    /// because another input runs ahead.
    #[default]
    Min,
    /// The fastest input decides: lower latency, slower inputs' rows may be dropped.
    Max,
}

impl WatermarkPolicy {
    /// Parses `min` or `max`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "min" => Ok(WatermarkPolicy::Min),
            "max" => Ok(WatermarkPolicy::Max),
            other => Err(format!(
                "--watermark-policy must be `min` or `max`, not `{other}`"
            )),
        }
    }
}

/// Per-operator and global watermarks across batches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WatermarkTracker {
    policy: WatermarkPolicy,
    /// Operators that have seen rows, and their watermark.
    operators: BTreeMap<String, Timestamp>,
    global: Option<Timestamp>,
}

impl WatermarkTracker {
    /// A tracker with no watermark yet.
    pub fn new(policy: WatermarkPolicy) -> Self {
        WatermarkTracker {
            policy,
            operators: BTreeMap::new(),
            global: None,
        }
    }

    /// Restores the state recorded in a log entry.
    pub fn restore(
        policy: WatermarkPolicy,
        operators: BTreeMap<String, Timestamp>,
        global: Option<Timestamp>,
    ) -> Self {
        WatermarkTracker {
            policy,
            operators,
            global,
        }
    }

    /// The global watermark (`None` before the first batch with data has ended).
    pub fn global(&self) -> Option<Timestamp> {
        self.global
    }

    /// Per-operator watermarks.
    pub fn operators(&self) -> &BTreeMap<String, Timestamp> {
        &self.operators
    }

    /// End of a batch: `max_event_times` holds, for each watermark-defining operator that
    /// saw rows in the batch, the largest event time over all partitions; `delays` each
    /// operator's delay. Returns the new global watermark.
    pub fn update_at_batch_end(
        &mut self,
        max_event_times: &BTreeMap<String, Timestamp>,
        delays: &BTreeMap<String, i64>,
    ) -> Option<Timestamp> {
        for (op, max) in max_event_times {
            let candidate = operator_watermark(*max, delays.get(op).copied().unwrap_or(0));
            let entry = self.operators.entry(op.clone()).or_insert(candidate);
            *entry = (*entry).max(candidate);
        }
        // Spark's `WatermarkTracker` counts an operator that has not seen data yet as 0
        // ("Populate 0 if we haven't seen any data yet for this watermark node"), so under
        // the min policy a silent input holds the global watermark at 0.
        let unseen = delays
            .keys()
            .filter(|op| !self.operators.contains_key(*op))
            .map(|_| 0);
        let values = self.operators.values().copied().chain(unseen);
        let chosen = if self.operators.is_empty() {
            None
        } else {
            match self.policy {
                WatermarkPolicy::Min => values.min(),
                WatermarkPolicy::Max => values.max(),
            }
        };
        if let Some(c) = chosen {
            self.global = Some(self.global.map_or(c, |g| g.max(c)));
        }
        self.global
    }
}

/// One operator's watermark: its largest event time minus the delay (not clamped at 0, so
/// pre-epoch event times give a negative watermark).
pub fn operator_watermark(max_event_time: Timestamp, delay_ms: i64) -> Timestamp {
    max_event_time.saturating_sub(delay_ms)
}

/// The watermark stateful operators drop late rows with in batch N: the watermark of batch
/// N−1 (`None`: no filtering).
pub fn late_filter_watermark(previous_batch_watermark: Option<Timestamp>) -> Option<Timestamp> {
    previous_batch_watermark
}

/// The watermark batch N evicts state and emits closed windows with: batch N's own
/// watermark, computed at the end of batch N−1.
pub fn eviction_watermark(batch_watermark: Option<Timestamp>) -> Option<Timestamp> {
    batch_watermark
}

/// Deliberate bugs that mutation tests switch on to show the conformance suite catches them
/// (cargo feature `mutations`, off by default; unreachable from the command line).
#[cfg(feature = "mutations")]
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// Late filtering in batch N uses batch N's watermark instead of batch N−1's.
    LateFilterUsesCurrentWatermark,
}

/// A row is late when `event_time <= watermark` (Spark's `watermarkPredicateForData`); a row
/// in a window is late when `window_end <= watermark` (the predicate on the window's end).
/// Nothing is late before there is a watermark.
pub fn is_late(time_or_window_end: Timestamp, watermark: Option<Timestamp>) -> bool {
    watermark.is_some_and(|wm| time_or_window_end <= wm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maxes(items: &[(&str, i64)]) -> BTreeMap<String, i64> {
        items.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn watermark_is_unset_until_a_batch_with_data_ends_and_never_decreases() {
        let delays = maxes(&[("a", 10)]);
        let mut t = WatermarkTracker::new(WatermarkPolicy::Min);
        assert_eq!(t.update_at_batch_end(&maxes(&[]), &delays), None);
        assert_eq!(
            t.update_at_batch_end(&maxes(&[("a", 100)]), &delays),
            Some(90)
        );
        assert_eq!(
            t.update_at_batch_end(&maxes(&[("a", 50)]), &delays),
            Some(90)
        );
        assert_eq!(
            t.update_at_batch_end(&maxes(&[("a", 120)]), &delays),
            Some(110)
        );
    }

    #[test]
    fn pre_epoch_event_times_give_a_negative_watermark() {
        let mut t = WatermarkTracker::new(WatermarkPolicy::Min);
        assert_eq!(
            t.update_at_batch_end(&maxes(&[("a", -5_000)]), &maxes(&[("a", 1_000)])),
            Some(-6_000)
        );
    }

    #[test]
    fn min_policy_follows_the_slowest_input_and_max_the_fastest() {
        let delays = maxes(&[("a", 0), ("b", 0)]);
        let mut min = WatermarkTracker::new(WatermarkPolicy::Min);
        let mut max = WatermarkTracker::new(WatermarkPolicy::Max);
        // Only `a` has data: `b`, which saw nothing, counts as 0 and holds the minimum there
        // (Spark's tracker populates unseen operators with 0).
        assert_eq!(
            min.update_at_batch_end(&maxes(&[("a", 100)]), &delays),
            Some(0)
        );
        assert_eq!(
            min.update_at_batch_end(&maxes(&[("b", 40)]), &delays),
            Some(40)
        );
        assert_eq!(
            min.update_at_batch_end(&maxes(&[("a", 300), ("b", 200)]), &delays),
            Some(200)
        );
        assert_eq!(
            max.update_at_batch_end(&maxes(&[("a", 300), ("b", 200)]), &delays),
            Some(300)
        );
    }

    #[test]
    fn a_row_at_the_watermark_is_late() {
        assert!(is_late(10, Some(10)));
        assert!(!is_late(11, Some(10)));
        assert!(!is_late(i64::MIN / 2, None));
    }
}
