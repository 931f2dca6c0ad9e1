//! Query triggers (when batches run) and the clock they read.
//!
//! - `processing-time=<interval>`: batches start at multiples of the interval; a batch that
//!   overruns its interval is followed at once by the next (Spark's `ProcessingTimeExecutor`).
//!   `processing-time=0` (Spark's default trigger) runs batches back to back.
//! - `available-now`: runs batches until everything available when the query started has
//!   been processed, including the no-data batches that follow, then stops.
//! - `once`: one batch with everything available, then stops (Spark's deprecated
//!   `Trigger.Once`; no no-data batch follows).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use weir_model::time::{Duration, Timestamp};

/// When batches run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryTrigger {
    /// Batches at multiples of the interval (ms); 0 runs them back to back.
    ProcessingTime(i64),
    /// Until what is available is processed, then stop.
    AvailableNow,
    /// One batch, then stop.
    Once,
}

impl Default for QueryTrigger {
    fn default() -> Self {
        QueryTrigger::ProcessingTime(0)
    }
}

impl QueryTrigger {
    /// Parses `processing-time=<duration>`, `available-now` or `once`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "available-now" => Ok(QueryTrigger::AvailableNow),
            "once" => Ok(QueryTrigger::Once),
            other => match other.strip_prefix("processing-time=") {
                Some(d) => {
                    let d = Duration::parse(d).map_err(|e| format!("--trigger {other}: {e}"))?;
                    if d.millis() < 0 {
                        return Err(format!("--trigger {other}: the interval must be >= 0"));
                    }
                    Ok(QueryTrigger::ProcessingTime(d.millis()))
                }
                None => Err(format!(
                    "--trigger must be `processing-time=<duration>`, `available-now` or `once`, not `{other}`"
                )),
            },
        }
    }
}

/// The start of the next batch of a processing-time trigger with `interval`, given the
/// start of the previous one and the time now (after it finished): the next multiple of the
/// interval after the previous start, or now if that has passed (Spark's
/// `ProcessingTimeExecutor.nextBatchTime`: a slow batch is followed at once).
pub fn next_batch_time(previous_start: Timestamp, now: Timestamp, interval: i64) -> Timestamp {
    if interval <= 0 {
        return now;
    }
    let next = (previous_start.div_euclid(interval) + 1) * interval;
    next.max(now)
}

/// Processing time: the system clock, or a manual clock advanced by the caller (tests and
/// the conformance harness).
#[derive(Debug, Clone)]
pub enum Clock {
    /// Milliseconds since the epoch.
    Wall,
    /// A shared manual time.
    Manual(ManualClock),
}

impl Clock {
    /// The time now.
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::Wall => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            Clock::Manual(m) => m.now(),
        }
    }

    /// Waits until `at` (a manual clock jumps there instead).
    pub fn wait_until(&self, at: Timestamp) {
        match self {
            Clock::Wall => {
                let now = self.now();
                if at > now {
                    std::thread::sleep(std::time::Duration::from_millis((at - now) as u64));
                }
            }
            Clock::Manual(m) => m.set(m.now().max(at)),
        }
    }
}

/// A processing-time clock advanced only by its owner; clones share the time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start)))
    }
    /// The time now.
    pub fn now(&self) -> Timestamp {
        self.0.load(Ordering::SeqCst)
    }
    /// Moves the clock by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    /// Sets the clock.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_start_at_multiples_of_the_interval_and_a_slow_batch_is_followed_at_once() {
        assert_eq!(next_batch_time(1_000, 1_200, 1_000), 2_000);
        assert_eq!(next_batch_time(1_000, 2_500, 1_000), 2_500);
        assert_eq!(next_batch_time(1_500, 1_600, 1_000), 2_000);
        assert_eq!(next_batch_time(1_000, 1_001, 0), 1_001);
    }

    #[test]
    fn triggers_parse_from_the_command_line_form() {
        assert_eq!(
            QueryTrigger::parse("processing-time=2s"),
            Ok(QueryTrigger::ProcessingTime(2_000))
        );
        assert_eq!(
            QueryTrigger::parse("available-now"),
            Ok(QueryTrigger::AvailableNow)
        );
        assert_eq!(QueryTrigger::parse("once"), Ok(QueryTrigger::Once));
        assert!(QueryTrigger::parse("continuous")
            .unwrap_err()
            .contains("available-now"));
    }

    #[test]
    fn a_manual_clock_is_shared_by_its_clones() {
        let c = ManualClock::new(5);
        let d = c.clone();
        c.advance(10);
        assert_eq!(d.now(), 15);
        Clock::Manual(d).wait_until(100);
        assert_eq!(c.now(), 100);
    }
}
