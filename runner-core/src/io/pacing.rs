//! Pacing a generated source to a target rate on the processing-time clock, shared by the
//! sequence and Nexmark generators.

use super::{Source, SourcePoll};
use crate::error::{ExecError, ExecResult};
use weir_model::time::Timestamp;

/// How many items are due at a processing time: `rate` per second counted from the first
/// poll, so output is deterministic for a given sequence of poll times.
#[derive(Debug, Clone)]
pub(crate) struct RatePacer {
    rate: Option<f64>,
    /// Processing time of the first poll and the first index not produced then.
    origin: Option<(Timestamp, u64)>,
    /// Re-reading rows produced before: everything is due, and the clock restarts after.
    replaying: bool,
    /// The origin is fixed (item 0 due at a given time) rather than taken at the first poll.
    anchored: bool,
}

impl RatePacer {
    /// A pacer at `rate` items per second; unpaced when `None`.
    pub(crate) fn new(rate: Option<f64>) -> Self {
        RatePacer {
            rate,
            origin: None,
            replaying: false,
            anchored: false,
        }
    }

    /// A pacer at `rate` items per second whose item `i` is due at `origin + i / rate`
    /// whenever polling starts, and after seeks and replays too: items due while nobody
    /// polled come out at once (a source that kept producing while the job was down).
    pub(crate) fn anchored(rate: f64, origin: Timestamp) -> Self {
        RatePacer {
            rate: Some(rate),
            origin: Some((origin, 0)),
            replaying: false,
            anchored: true,
        }
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
        if !self.anchored {
            self.origin = None;
        }
    }

    /// Starts or ends a replay of items produced before (see
    /// [`crate::io::Source::set_replaying`]); either way the clock restarts at the next poll.
    pub(crate) fn set_replaying(&mut self, replaying: bool) {
        self.replaying = replaying;
        self.reset();
    }

    /// The index below which every item is due at `now` (unpaced or replaying: all).
    pub(crate) fn due(&self, now: Timestamp) -> u64 {
        if self.replaying {
            return u64::MAX;
        }
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
        let rate = self.rate.filter(|_| !self.replaying)?;
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

/// `source` paced to `rate` rows per second over all its partitions, each partition getting
/// an equal share (unchanged without a rate); fails when the rate is not a positive number.
pub(crate) fn paced(
    source: Box<dyn Source>,
    node: &str,
    rate: Option<f64>,
) -> ExecResult<Box<dyn Source>> {
    let Some(rate) = rate else {
        return Ok(source);
    };
    if !(rate.is_finite() && rate > 0.0) {
        return Err(ExecError::transform(
            node,
            format!("`rate` must be a positive number of rows per second, not {rate}"),
        ));
    }
    let parts = source.partitions().max(1) as usize;
    Ok(Box::new(PacedSource {
        inner: source,
        pacers: vec![RatePacer::new(Some(rate / parts as f64)); parts],
        emitted: vec![0; parts],
        waiting: vec![false; parts],
    }))
}

/// Any source, paced per partition: the rows a partition yields (data and dead letters) are
/// counted from its first poll after creation, a seek or a replay, and held back while they
/// run ahead of the partition's share of the rate. Pacing each partition on its own keeps
/// them abreast whatever order a runner polls them in (a runner's subtasks each poll their
/// own partitions), so event times advance together. Positions are the inner source's.
struct PacedSource {
    inner: Box<dyn Source>,
    pacers: Vec<RatePacer>,
    /// Per partition: rows yielded since the source was created (its pacer's index).
    emitted: Vec<u64>,
    /// Per partition: the inner source had nothing (pending or ended) at the last poll, so
    /// the pace does not say when to poll it again.
    waiting: Vec<bool>,
}

impl Source for PacedSource {
    fn partitions(&self) -> u32 {
        self.inner.partitions()
    }

    fn poll(&mut self, partition: u32, max_rows: usize, now: Timestamp) -> ExecResult<SourcePoll> {
        let p = partition as usize;
        let (Some(pacer), Some(emitted)) = (self.pacers.get_mut(p), self.emitted.get_mut(p)) else {
            return self.inner.poll(partition, max_rows, now);
        };
        pacer.start(now, *emitted);
        let due = pacer.due(now);
        if due <= *emitted {
            return Ok(SourcePoll::Pending);
        }
        let allowed = (due - *emitted).min(max_rows.max(1) as u64) as usize;
        let poll = self.inner.poll(partition, allowed, now)?;
        if let SourcePoll::Batch { data, dead_letters } = &poll {
            *emitted +=
                (data.num_rows() + dead_letters.as_ref().map_or(0, |d| d.num_rows())) as u64;
        }
        self.waiting[p] = !matches!(poll, SourcePoll::Batch { .. });
        Ok(poll)
    }

    fn position(&self, partition: u32) -> serde_json::Value {
        self.inner.position(partition)
    }

    fn seek(&mut self, partition: u32, position: &serde_json::Value) -> ExecResult<()> {
        self.inner.seek(partition, position)?;
        if let Some(pacer) = self.pacers.get_mut(partition as usize) {
            pacer.reset();
            self.waiting[partition as usize] = false;
        }
        Ok(())
    }

    fn next_poll_time(&self) -> Option<Timestamp> {
        // The earliest a partition that is not waiting for its inner source has a row due (a
        // partition not polled yet has no pace: the runner polls it anyway).
        let paced = self
            .pacers
            .iter()
            .zip(&self.emitted)
            .zip(&self.waiting)
            .filter(|(_, waiting)| !**waiting)
            .filter_map(|((pacer, emitted), _)| pacer.due_time(*emitted))
            .min();
        // The earlier of the two: a poll before the other is due only comes back pending.
        match (paced, self.inner.next_poll_time()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn set_replaying(&mut self, replaying: bool) {
        for pacer in &mut self.pacers {
            pacer.set_replaying(replaying);
        }
        self.inner.set_replaying(replaying);
    }
}

impl std::fmt::Debug for PacedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacedSource")
            .field("pacers", &self.pacers)
            .field("emitted", &self.emitted)
            .finish()
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

    #[test]
    fn a_replay_is_not_paced_and_the_clock_restarts_after_it() {
        let mut p = RatePacer::new(Some(2.0));
        p.start(1_000, 10);
        p.set_replaying(true);
        p.start(1_000, 0);
        assert_eq!(p.due(1_000), u64::MAX);
        assert_eq!(p.due_time(0), None);
        p.set_replaying(false);
        p.start(5_000, 20);
        assert_eq!(p.due(5_000), 20);
        assert_eq!(p.due(5_500), 21);
    }

    #[test]
    fn an_anchored_pacer_keeps_its_origin_through_polls_seeks_and_replays() {
        // 2 items per second from t = 1000: item i is due at 1000 + 500 (i + 1).
        let mut p = RatePacer::anchored(2.0, 1_000);
        p.start(3_000, 4);
        assert_eq!(p.due(1_499), 0);
        assert_eq!(p.due(1_500), 1);
        assert_eq!(p.due(3_000), 4);
        assert_eq!(p.due_time(4), Some(3_500));
        p.reset();
        p.set_replaying(true);
        assert_eq!(p.due(0), u64::MAX);
        p.set_replaying(false);
        p.start(9_000, 0);
        assert_eq!(
            p.due(3_000),
            4,
            "a late start catches up on the items due since the origin"
        );
    }

    #[test]
    fn a_paced_source_yields_rows_at_the_rate_and_replays_unpaced() {
        use crate::io::CreateSource;
        use weir_model::io::BadRecordPolicy;
        use weir_model::{DataType, Field, Schema};
        let schema = Schema::new(vec![Field::new("v", DataType::Int64)]);
        let rows: Vec<serde_json::Value> = (0..10).map(|v| serde_json::json!({"v": v})).collect();
        let inner = CreateSource::new("Create", &rows, &schema, &BadRecordPolicy::Fail).unwrap();
        let mut s = paced(Box::new(inner), "Create", Some(4.0)).unwrap();
        let n = |p: SourcePoll| match p {
            SourcePoll::Batch { data, .. } => data.num_rows(),
            _ => 0,
        };
        assert_eq!(n(s.poll(0, 100, 0).unwrap()), 0);
        assert_eq!(s.next_poll_time(), Some(250));
        assert_eq!(n(s.poll(0, 100, 500).unwrap()), 2);
        assert_eq!(n(s.poll(0, 100, 500).unwrap()), 0);
        let start = s.position(0);
        assert_eq!(n(s.poll(0, 100, 1_000).unwrap()), 2);
        // A replay of the range read before is not held back.
        s.set_replaying(true);
        s.seek(0, &start).unwrap();
        assert_eq!(n(s.poll(0, 2, 1_000).unwrap()), 2);
        s.set_replaying(false);
        assert_eq!(n(s.poll(0, 100, 1_000).unwrap()), 0);
        assert!(paced(
            Box::new(CreateSource::new("C", &rows, &schema, &BadRecordPolicy::Fail).unwrap()),
            "C",
            Some(0.0)
        )
        .is_err());
    }
}
