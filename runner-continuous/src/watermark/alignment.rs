//! Watermark alignment (Flink's `WatermarkStrategy.withWatermarkAlignment`, FLIP-182): a
//! source subtask whose watermark runs more than a maximum drift ahead of the slowest source
//! subtask stops reading until the others catch up.
//!
//! Without it, a source subtask that happens to run faster than another (its core is less
//! busy, its split is cheaper to read) moves its event time ahead without bound; the
//! watermark downstream follows the slowest, so every window of the fast one stays open and
//! keyed state grows with the length of the run. Opt-in, as in Flink: `--set
//! watermark_alignment=<max drift>`. One group holds every source subtask of the job.
//! Subtasks without a watermark yet take no part, and a finished subtask leaves the group.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use weir_model::time::{Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};

/// The shared watermarks of one alignment group.
#[derive(Debug)]
pub struct AlignmentGroup {
    max_drift_ms: i64,
    /// Each member's current watermark (`MIN_TIMESTAMP`: none yet; `MAX_TIMESTAMP`: done).
    watermarks: Vec<AtomicI64>,
}

impl AlignmentGroup {
    /// A group of `members` source subtasks allowing `max_drift_ms` between them.
    pub fn new(members: usize, max_drift_ms: i64) -> Arc<Self> {
        Arc::new(AlignmentGroup {
            max_drift_ms,
            watermarks: (0..members)
                .map(|_| AtomicI64::new(MIN_TIMESTAMP))
                .collect(),
        })
    }

    /// Member `member`'s watermark is now `watermark`.
    pub fn report(&self, member: usize, watermark: Timestamp) {
        self.watermarks[member].store(watermark, Ordering::Relaxed);
    }

    /// Member `member` has finished: it no longer holds the others back.
    pub fn leave(&self, member: usize) {
        self.report(member, MAX_TIMESTAMP);
    }

    /// Whether member `member` must pause: its watermark is more than the maximum drift
    /// ahead of the slowest member that has one. The slowest member is never paused.
    pub fn must_pause(&self, member: usize) -> bool {
        let own = self.watermarks[member].load(Ordering::Relaxed);
        if own == MIN_TIMESTAMP || own == MAX_TIMESTAMP {
            return false;
        }
        let slowest = self
            .watermarks
            .iter()
            .map(|w| w.load(Ordering::Relaxed))
            .filter(|w| *w != MIN_TIMESTAMP)
            .min()
            .unwrap_or(own);
        own > slowest.saturating_add(self.max_drift_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_member_ahead_by_more_than_the_drift_pauses_until_the_others_catch_up() {
        let group = AlignmentGroup::new(3, 1000);
        group.report(0, 5000);
        assert!(
            !group.must_pause(0),
            "alone with a watermark: nothing to wait for"
        );
        group.report(1, 3000);
        assert!(
            group.must_pause(0),
            "2 s ahead of member 1 with 1 s allowed"
        );
        assert!(!group.must_pause(1), "the slowest never pauses");
        assert!(!group.must_pause(2), "no watermark yet: takes no part");
        group.report(1, 4000);
        assert!(!group.must_pause(0), "exactly the drift ahead is allowed");
        group.leave(1);
        assert!(!group.must_pause(0), "a finished member holds nobody back");
    }
}
