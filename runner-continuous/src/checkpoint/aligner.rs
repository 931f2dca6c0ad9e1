//! Barrier handling at a subtask with several input channels.

use crate::channel::Message;
use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

/// How barriers are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointMode {
    /// Aligned barriers: a channel whose barrier has arrived is blocked until every channel's
    /// has, so the snapshot reflects exactly the records before the barrier (Flink's
    /// `CheckpointBarrierHandler` in `EXACTLY_ONCE` mode).
    ExactlyOnce,
    /// No alignment: records after a channel's barrier are processed at once, so after a
    /// restore they may be processed twice (Flink's `CheckpointBarrierTracker`,
    /// `AT_LEAST_ONCE`).
    AtLeastOnce,
}

/// What the subtask should do after a barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarrierAction {
    /// Keep going.
    Wait,
    /// Every channel has delivered the barrier of this checkpoint: snapshot now and forward
    /// the barrier.
    Snapshot(u64),
}

/// Tracks barriers per channel and, in exactly-once mode, holds back the messages of
/// channels whose barrier has arrived (Flink ≤ 1.4's `BarrierBuffer`: they are buffered at
/// the receiver rather than left in the sender's credit-blocked buffers, because the
/// channels of a subtask share one input queue here).
#[derive(Debug)]
pub struct BarrierAligner {
    mode: CheckpointMode,
    channels: usize,
    ended: BTreeSet<usize>,
    /// The checkpoint being aligned and the channels that delivered its barrier.
    current: Option<(u64, BTreeSet<usize>, Instant)>,
    /// Messages held back from blocked channels, in arrival order.
    held: VecDeque<Message>,
    /// Released messages to process before reading the queue again.
    released: VecDeque<Message>,
    /// Highest checkpoint snapshotted.
    last: u64,
}

impl BarrierAligner {
    /// An aligner over `channels` input channels.
    pub fn new(mode: CheckpointMode, channels: usize) -> Self {
        BarrierAligner {
            mode,
            channels,
            ended: BTreeSet::new(),
            current: None,
            held: VecDeque::new(),
            released: VecDeque::new(),
            last: 0,
        }
    }

    /// Whether messages of `channel` must be held back now (exactly-once, barrier arrived).
    pub fn is_blocked(&self, channel: usize) -> bool {
        self.mode == CheckpointMode::ExactlyOnce
            && self
                .current
                .as_ref()
                .is_some_and(|(_, seen, _)| seen.contains(&channel))
    }

    /// Holds back a message of a blocked channel.
    pub fn hold(&mut self, message: Message) {
        self.held.push_back(message);
    }

    /// The next released message, if any (processed before new input).
    pub fn next_released(&mut self) -> Option<Message> {
        self.released.pop_front()
    }

    /// Number of messages held back now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    fn complete(&mut self) -> BarrierAction {
        let Some((id, seen, _)) = &self.current else {
            return BarrierAction::Wait;
        };
        let open = (0..self.channels).filter(|c| !self.ended.contains(c));
        if open.clone().all(|c| seen.contains(&c)) {
            let id = *id;
            self.last = id;
            self.current = None;
            // Released in arrival order, ahead of anything still queued.
            let held = std::mem::take(&mut self.held);
            self.released.extend(held);
            BarrierAction::Snapshot(id)
        } else {
            BarrierAction::Wait
        }
    }

    /// The barrier of checkpoint `id` arrived on `channel`.
    pub fn on_barrier(&mut self, channel: usize, id: u64) -> BarrierAction {
        if id <= self.last {
            return BarrierAction::Wait;
        }
        match &mut self.current {
            Some((current, seen, _)) if *current == id => {
                seen.insert(channel);
            }
            Some((current, _, _)) if *current > id => return BarrierAction::Wait,
            // A newer checkpoint overtakes an unfinished one (Flink aborts the older).
            _ => self.current = Some((id, [channel].into(), Instant::now())),
        }
        self.complete()
    }

    /// `channel` ended: it will send no barrier any more.
    pub fn on_end(&mut self, channel: usize) -> BarrierAction {
        self.ended.insert(channel);
        self.complete()
    }

    /// When the alignment in progress started (for the alignment-time metric).
    pub fn alignment_started(&self) -> Option<Instant> {
        self.current.as_ref().map(|(_, _, t)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(channel: usize) -> Message {
        Message::End { channel }
    }

    #[test]
    fn exactly_once_blocks_a_channel_from_its_barrier_until_all_have_arrived() {
        let mut a = BarrierAligner::new(CheckpointMode::ExactlyOnce, 2);
        assert_eq!(a.on_barrier(0, 1), BarrierAction::Wait);
        assert!(a.is_blocked(0));
        assert!(!a.is_blocked(1));
        a.hold(data(0));
        assert_eq!(a.held(), 1);
        assert_eq!(a.on_barrier(1, 1), BarrierAction::Snapshot(1));
        assert!(!a.is_blocked(0));
        assert!(matches!(
            a.next_released(),
            Some(Message::End { channel: 0 })
        ));
        assert!(a.next_released().is_none());
    }

    #[test]
    fn at_least_once_never_blocks_but_snapshots_on_the_last_barrier() {
        let mut a = BarrierAligner::new(CheckpointMode::AtLeastOnce, 2);
        assert_eq!(a.on_barrier(1, 1), BarrierAction::Wait);
        assert!(!a.is_blocked(1));
        assert_eq!(a.on_barrier(0, 1), BarrierAction::Snapshot(1));
    }

    #[test]
    fn an_ended_channel_counts_as_aligned() {
        let mut a = BarrierAligner::new(CheckpointMode::ExactlyOnce, 2);
        assert_eq!(a.on_barrier(0, 3), BarrierAction::Wait);
        assert_eq!(a.on_end(1), BarrierAction::Snapshot(3));
        // Later barriers only wait for the open channel.
        assert_eq!(a.on_barrier(0, 4), BarrierAction::Snapshot(4));
        // An old barrier is ignored.
        assert_eq!(a.on_barrier(0, 2), BarrierAction::Wait);
    }
}
