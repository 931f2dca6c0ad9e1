//! Pacing a generated source to a target rate on the processing-time clock, shared by the
//! sequence and Nexmark generators.

use weir_model::time::Timestamp;

/// How many items are due at a processing time: `rate` per second counted from the first
/// poll, so output is deterministic for a given sequence of poll times.
#[derive(Debug, Clone)]
pub(crate) struct RatePacer {
    rate: Option<f64>,
    /// Processing time of the first poll and the first index not produced then.
    origin: Option<(Timestamp, u64)>,
}

impl RatePacer {
    /// A pacer at `rate` items per second; unpaced when `None`.
    pub(crate) fn new(rate: Option<f64>) -> Self {
        RatePacer { rate, origin: None }
    }

    /// Starts the clock at the first poll (`base` = first index not produced yet); later
    /// calls do nothing.
    pub(crate) fn start(&mut self, now: Timestamp, base: u64) {
        if self.origin.is_none() {
            self.origin = Some((now, base));
        }
    }

    /// Restarts the clock at the next poll (after a seek: positions moved).
    pub(crate) fn reset(&mut self) {
        self.origin = None;
    }

    /// The index below which every item is due at `now` (unpaced: all).
    pub(crate) fn due(&self, now: Timestamp) -> u64 {
        match (self.rate, self.origin) {
            (None, _) => u64::MAX,
            (Some(_), None) => 0,
            (Some(rate), Some((origin, base))) => {
                let elapsed = (now - origin).max(0) as f64;
                base.saturating_add((rate * elapsed / 1000.0).floor() as u64)
            }
        }
    }

    /// When item `next` becomes due (`None` when unpaced or not started).
    pub(crate) fn due_time(&self, next: u64) -> Option<Timestamp> {
        let rate = self.rate?;
        let (origin, base) = self.origin?;
        // Item `next` is due once floor(rate * elapsed / 1000) >= next - base + 1.
        let needed = (next - base + 1) as f64;
        let mut at = origin + (needed * 1000.0 / rate).ceil() as i64;
        // Float rounding must never make the runner poll too early forever, nor too late.
        while self.due(at) <= next {
            at += 1;
        }
        while at > origin && self.due(at - 1) > next {
            at -= 1;
        }
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_fall_due_at_the_rate_from_the_first_poll() {
        let mut p = RatePacer::new(Some(2.0));
        assert_eq!(p.due(0), 0);
        p.start(1_000, 10);
        assert_eq!(p.due(1_000), 10);
        assert_eq!(p.due(1_499), 10);
        assert_eq!(p.due(1_500), 11);
        assert_eq!(p.due_time(10), Some(1_500));
        assert_eq!(p.due_time(11), Some(2_000));
        assert_eq!(RatePacer::new(None).due(0), u64::MAX);
    }
}
