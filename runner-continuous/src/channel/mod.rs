//! What travels between subtasks and how it is routed.
//!
//! Each subtask has one bounded input queue shared by its input channels; a message names
//! the channel it came on. The queue's capacity is Flink's credit budget — 2 exclusive
//! buffers per channel plus 8 floating buffers per input gate ([`credits`]) — so a sender
//! whose receiver has no credit left waits (backpressure) and memory stays bounded.

pub mod partition;

pub use partition::{KeyGroups, Partitioner};

use crate::watermark::WatermarkStatus;
use arrow::record_batch::RecordBatch;

/// One message on a channel. Data, watermarks and end of input share the channel, so a
/// watermark never overtakes the data sent before it.
#[derive(Debug)]
pub enum Message {
    /// Rows for the receiving operator's input `input`.
    Data {
        /// The channel (index into the receiver's channel list).
        channel: usize,
        /// The rows.
        batch: RecordBatch,
    },
    /// Event-time progress of the channel.
    Watermark {
        /// The channel.
        channel: usize,
        /// Its new status.
        status: WatermarkStatus,
    },
    /// A checkpoint barrier: everything before it on this channel belongs to checkpoint
    /// `checkpoint`, everything after it to the next one.
    Barrier {
        /// The channel.
        channel: usize,
        /// Checkpoint id.
        checkpoint: u64,
    },
    /// The channel has ended (after its final `MAX` watermark).
    End {
        /// The channel.
        channel: usize,
    },
}

/// Flink's default credits for a receiver with `channels` input channels: 2 exclusive
/// buffers per channel plus 8 floating buffers for the input gate
/// (`taskmanager.network.memory.buffers-per-channel`, `floating-buffers-per-gate`).
pub fn credits(channels: usize) -> usize {
    2 * channels + 8
}

/// Where a message goes: a receiving subtask's queue and the channel id it knows us by.
#[derive(Debug, Clone)]
pub struct ChannelSender {
    /// The receiver's queue.
    pub queue: tokio::sync::mpsc::Sender<Message>,
    /// Our channel id at the receiver.
    pub channel: usize,
}
