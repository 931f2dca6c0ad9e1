//! The combined watermark of an operator's input channels (Flink's `StatusWatermarkValve`).

use weir_model::time::{Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};

/// What an upstream subtask says about event-time progress on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatermarkStatus {
    /// No element with `ts <= t` follows on this channel.
    Watermark(Timestamp),
    /// The channel has nothing to say for now (all its upstream splits idle): it stops
    /// holding the watermark back until it sends data or a watermark again.
    Idle,
}

#[derive(Debug, Clone, Copy)]
struct Channel {
    watermark: Timestamp,
    idle: bool,
    /// Counts towards the min: an active channel whose watermark is at or past the combined
    /// output (a channel coming back from idleness rejoins only once it has caught up).
    aligned: bool,
}

/// Per-channel watermarks and the never-decreasing min over the active, aligned ones.
#[derive(Debug, Clone)]
pub struct InputWatermarks {
    channels: Vec<Channel>,
    output: Timestamp,
}

impl InputWatermarks {
    /// `n` channels, all active at `MIN`.
    pub fn new(n: usize) -> Self {
        InputWatermarks {
            channels: vec![
                Channel {
                    watermark: MIN_TIMESTAMP,
                    idle: false,
                    aligned: true,
                };
                n
            ],
            output: if n == 0 { MAX_TIMESTAMP } else { MIN_TIMESTAMP },
        }
    }

    /// The combined watermark.
    pub fn current(&self) -> Timestamp {
        self.output
    }

    /// Whether every channel is idle (the operator is idle too and says so downstream).
    pub fn all_idle(&self) -> bool {
        !self.channels.is_empty() && self.channels.iter().all(|c| c.idle)
    }

    /// Data arrived on `channel`: an idle channel becomes active again (not yet aligned).
    pub fn on_data(&mut self, channel: usize) {
        let c = &mut self.channels[channel];
        if c.idle {
            c.idle = false;
            c.aligned = c.watermark >= self.output;
        }
    }

    /// A status from `channel`; returns the new combined watermark when it advanced.
    pub fn update(&mut self, channel: usize, status: WatermarkStatus) -> Option<Timestamp> {
        let output = self.output;
        let c = &mut self.channels[channel];
        match status {
            WatermarkStatus::Watermark(w) => {
                c.idle = false;
                // A channel's own watermarks never go back (Flink ignores a lower one).
                c.watermark = c.watermark.max(w);
                if c.watermark >= output {
                    c.aligned = true;
                }
            }
            WatermarkStatus::Idle => {
                c.idle = true;
                c.aligned = false;
            }
        }
        self.recompute()
    }

    fn recompute(&mut self) -> Option<Timestamp> {
        let min = self
            .channels
            .iter()
            .filter(|c| !c.idle && c.aligned)
            .map(|c| c.watermark)
            .min()?;
        if min > self.output {
            self.output = min;
            Some(min)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use WatermarkStatus::{Idle, Watermark};

    #[test]
    fn after_a_shuffle_the_watermark_is_the_min_over_channels() {
        let mut v = InputWatermarks::new(2);
        assert_eq!(v.update(0, Watermark(100)), None);
        assert_eq!(v.update(1, Watermark(40)), Some(40));
        assert_eq!(v.update(1, Watermark(300)), Some(100));
        // A lower watermark on a channel changes nothing.
        assert_eq!(v.update(0, Watermark(50)), None);
        assert_eq!(v.current(), 100);
    }

    #[test]
    fn an_idle_channel_is_excluded_until_it_catches_up() {
        let mut v = InputWatermarks::new(2);
        v.update(0, Watermark(100));
        assert_eq!(v.update(1, Idle), Some(100));
        assert!(!v.all_idle());
        v.update(0, Watermark(200));
        assert_eq!(v.current(), 200);
        // Channel 1 comes back behind the output: it does not pull the watermark back and
        // does not hold it until it reaches it.
        assert_eq!(v.update(1, Watermark(150)), None);
        assert_eq!(v.update(0, Watermark(400)), Some(400));
        assert_eq!(v.update(1, Watermark(500)), None);
        assert_eq!(v.update(0, Watermark(600)), Some(500));
    }

    #[test]
    fn finished_channels_hold_nothing_back_once_they_send_max() {
        let mut v = InputWatermarks::new(2);
        v.update(1, Watermark(MAX_TIMESTAMP));
        assert_eq!(v.update(0, Watermark(7)), Some(7));
        assert_eq!(v.update(0, Watermark(MAX_TIMESTAMP)), Some(MAX_TIMESTAMP));
        assert_eq!(InputWatermarks::new(0).current(), MAX_TIMESTAMP);
    }

    #[test]
    fn all_channels_idle_leaves_the_watermark_where_it_is() {
        let mut v = InputWatermarks::new(2);
        v.update(0, Watermark(10));
        v.update(1, Watermark(20));
        v.update(0, Idle);
        v.update(1, Idle);
        assert!(v.all_idle());
        assert_eq!(v.current(), 20);
    }
}
