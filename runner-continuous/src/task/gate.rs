//! A subtask's output side (Flink's `RecordWriter` with its output buffers): rows are
//! partitioned per edge, buffered per receiving channel and flushed when a buffer is full,
//! when the buffer timeout expires, or before an event (watermark, end) so that no event
//! overtakes rows. Sending waits for credit: the receiver's bounded queue.

use crate::channel::{ChannelSender, KeyGroups, Message, Partitioner};
use crate::task::chain::{NodeStatus, Outgoing};
use crate::watermark::WatermarkStatus;
use arrow::record_batch::RecordBatch;
use std::time::{Duration, Instant};

/// A receiver went away: the job is failing elsewhere.
#[derive(Debug, thiserror::Error)]
#[error("a downstream subtask stopped")]
pub struct ChannelClosed;

/// One output edge of a subtask.
#[derive(Debug)]
pub struct GateEdge {
    /// Routing.
    pub partitioner: Partitioner,
    /// Receiver parallelism.
    pub receivers: usize,
    /// Sender per receiver subtask (`None`: this subtask has no channel to it).
    pub senders: Vec<Option<ChannelSender>>,
    buffers: Vec<Vec<RecordBatch>>,
    rows: Vec<usize>,
    round: usize,
}

impl GateEdge {
    /// An edge with `senders` indexed by receiver subtask.
    pub fn new(partitioner: Partitioner, senders: Vec<Option<ChannelSender>>) -> Self {
        let n = senders.len();
        GateEdge {
            partitioner,
            receivers: n,
            senders,
            buffers: vec![Vec::new(); n],
            rows: vec![0; n],
            round: 0,
        }
    }
}

/// The output edges of a subtask and their buffers.
#[derive(Debug)]
pub struct OutputGate {
    edges: Vec<GateEdge>,
    subtask: usize,
    buffer_rows: usize,
    buffer_timeout: Option<Duration>,
    /// When the oldest unflushed row was buffered.
    oldest: Option<Instant>,
    groups: KeyGroups,
    /// Time spent waiting for credit.
    pub backpressured: Duration,
    /// Sends that found no credit and had to wait.
    pub blocked_sends: u64,
}

impl OutputGate {
    /// A gate for subtask `subtask`; `buffer_timeout` `None` or zero flushes every emission.
    pub fn new(
        edges: Vec<GateEdge>,
        subtask: usize,
        buffer_rows: usize,
        buffer_timeout: Option<Duration>,
    ) -> Self {
        OutputGate {
            edges,
            subtask,
            buffer_rows,
            buffer_timeout: buffer_timeout.filter(|d| !d.is_zero()),
            oldest: None,
            groups: KeyGroups::default(),
            backpressured: Duration::ZERO,
            blocked_sends: 0,
        }
    }

    async fn send(
        &mut self,
        edge: usize,
        target: usize,
        msg: Message,
    ) -> Result<(), ChannelClosed> {
        let Some(sender) = &self.edges[edge].senders[target] else {
            return Ok(());
        };
        let queue = sender.queue.clone();
        let msg = match queue.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return Err(ChannelClosed),
            Err(tokio::sync::mpsc::error::TrySendError::Full(msg)) => msg,
        };
        // No credit: wait, and account the wait as backpressure.
        self.blocked_sends += 1;
        let started = Instant::now();
        let sent = queue.send(msg).await;
        self.backpressured += started.elapsed();
        sent.map_err(|_| ChannelClosed)
    }

    async fn flush_target(&mut self, edge: usize, target: usize) -> anyhow::Result<()> {
        let batches = std::mem::take(&mut self.edges[edge].buffers[target]);
        self.edges[edge].rows[target] = 0;
        if batches.is_empty() {
            return Ok(());
        }
        let batch = if batches.len() == 1 {
            batches.into_iter().next().expect("one batch")
        } else {
            arrow::compute::concat_batches(&batches[0].schema(), &batches)?
        };
        let channel = match &self.edges[edge].senders[target] {
            Some(s) => s.channel,
            None => return Ok(()),
        };
        self.send(edge, target, Message::Data { channel, batch })
            .await?;
        Ok(())
    }

    async fn flush_edge(&mut self, edge: usize) -> anyhow::Result<()> {
        for target in 0..self.edges[edge].receivers {
            self.flush_target(edge, target).await?;
        }
        Ok(())
    }

    /// Flushes every buffer.
    pub async fn flush_all(&mut self) -> anyhow::Result<()> {
        for edge in 0..self.edges.len() {
            self.flush_edge(edge).await?;
        }
        self.oldest = None;
        Ok(())
    }

    /// When buffered rows must be flushed at the latest.
    pub fn flush_deadline(&self) -> Option<Instant> {
        Some(self.oldest? + self.buffer_timeout?)
    }

    /// Flushes if the buffer timeout has expired.
    pub async fn flush_expired(&mut self) -> anyhow::Result<()> {
        if self.flush_deadline().is_some_and(|d| d <= Instant::now()) {
            self.flush_all().await?;
        }
        Ok(())
    }

    /// Sends what left the chain, in order.
    pub async fn send_all(&mut self, items: Vec<Outgoing>) -> anyhow::Result<()> {
        for item in items {
            match item {
                Outgoing::Data { edge, batch } => {
                    let e = &mut self.edges[edge];
                    let parts = e.partitioner.route(
                        batch,
                        self.subtask,
                        e.receivers,
                        &mut e.round,
                        self.groups,
                    )?;
                    for (target, part) in parts {
                        let e = &mut self.edges[edge];
                        e.rows[target] += part.num_rows();
                        e.buffers[target].push(part);
                        if self.buffer_timeout.is_none() || e.rows[target] >= self.buffer_rows {
                            self.flush_target(edge, target).await?;
                        } else {
                            self.oldest.get_or_insert_with(Instant::now);
                        }
                    }
                }
                Outgoing::Status { edge, status } => {
                    self.flush_edge(edge).await?;
                    self.broadcast_status(edge, status).await?;
                }
            }
        }
        Ok(())
    }

    async fn broadcast_status(&mut self, edge: usize, status: NodeStatus) -> anyhow::Result<()> {
        let status = if status.idle {
            WatermarkStatus::Idle
        } else {
            WatermarkStatus::Watermark(status.watermark)
        };
        for target in 0..self.edges[edge].receivers {
            if let Some(s) = &self.edges[edge].senders[target] {
                let channel = s.channel;
                self.send(edge, target, Message::Watermark { channel, status })
                    .await?;
            }
        }
        Ok(())
    }

    /// Flushes everything, then sends the barrier of checkpoint `id` on every channel.
    pub async fn broadcast_barrier(&mut self, id: u64) -> anyhow::Result<()> {
        self.flush_all().await?;
        for edge in 0..self.edges.len() {
            for target in 0..self.edges[edge].receivers {
                if let Some(s) = &self.edges[edge].senders[target] {
                    let channel = s.channel;
                    let msg = Message::Barrier {
                        channel,
                        checkpoint: id,
                    };
                    self.send(edge, target, msg).await?;
                }
            }
        }
        Ok(())
    }

    /// Flushes everything and ends every channel.
    pub async fn finish(&mut self) -> anyhow::Result<()> {
        self.flush_all().await?;
        for edge in 0..self.edges.len() {
            for target in 0..self.edges[edge].receivers {
                if let Some(s) = &self.edges[edge].senders[target] {
                    let channel = s.channel;
                    self.send(edge, target, Message::End { channel }).await?;
                }
            }
        }
        Ok(())
    }
}
