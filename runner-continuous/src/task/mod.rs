//! Subtasks: long-running tokio tasks, one per parallel instance of a vertex (Flink's
//! `StreamTask`). A source subtask polls its splits; an operator subtask reads its input
//! queue. Both run their [`Chain`] and send what leaves it through their [`OutputGate`].

pub mod chain;
pub mod gate;

pub use chain::{Chain, NodeStatus, Outgoing};
pub use gate::{ChannelClosed, GateEdge, OutputGate};

use crate::channel::Message;
use crate::checkpoint::{
    BarrierAction, BarrierAligner, CheckpointConfig, CheckpointStorage, CoordinatorEvent,
    CoordinatorHandle, KillPoint, Killed,
};
use crate::clock::Clock;
use crate::metrics::{MetricsBoard, SubtaskMetrics, TimeSplit};
use crate::options::{ClockMode, ContinuousOptions};
use crate::watermark::{AlignmentGroup, InputWatermarks, WatermarkStatus};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_model::time::{Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};
use weir_runner_core::io::{Source, SourcePoll};

/// What every subtask has.
pub struct Subtask {
    /// Vertex display name.
    pub vertex: String,
    /// Subtask index.
    pub index: usize,
    /// Its operators.
    pub chain: Chain,
    /// Its outputs.
    pub gate: OutputGate,
    /// Processing time.
    pub clock: Clock,
    /// Runner options.
    pub options: Arc<ContinuousOptions>,
    /// Where metrics go.
    pub board: MetricsBoard,
    /// Its slot on the board.
    pub slot: usize,
    /// Time accounting.
    pub time: TimeSplit,
    /// Input queue credits (0 for sources).
    pub credits: usize,
    /// Most messages seen waiting in the input queue.
    pub max_queued: usize,
    /// Checkpointing, when enabled.
    pub checkpointing: Option<SubtaskCheckpointing>,
    /// Source polls skipped while watermark alignment paused this subtask.
    pub alignment_paused_polls: u64,
    last_publish: Option<Instant>,
}

/// A subtask's part in checkpointing.
#[derive(Debug)]
pub struct SubtaskCheckpointing {
    /// Settings.
    pub config: Arc<CheckpointConfig>,
    /// Where state goes.
    pub storage: CheckpointStorage,
    /// The coordinator.
    pub coordinator: CoordinatorHandle,
    /// The vertex index.
    pub vertex: usize,
    /// The subtask's index among all subtasks of the job.
    pub global: usize,
    /// Sources: the id of the next checkpoint to trigger.
    pub next_id: u64,
    /// Sink → the last epoch it committed (from the commit markers, then as it commits).
    pub committed: BTreeMap<String, u64>,
}

impl Subtask {
    /// A subtask of `vertex`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        vertex: String,
        index: usize,
        chain: Chain,
        gate: OutputGate,
        clock: Clock,
        options: Arc<ContinuousOptions>,
        board: MetricsBoard,
        credits: usize,
    ) -> Self {
        let slot = board.register(SubtaskMetrics {
            vertex: vertex.clone(),
            subtask: index,
            credits,
            ..Default::default()
        });
        Subtask {
            vertex,
            index,
            chain,
            gate,
            clock,
            options,
            board,
            slot,
            time: TimeSplit::default(),
            credits,
            max_queued: 0,
            checkpointing: None,
            alignment_paused_polls: 0,
            last_publish: None,
        }
    }

    fn kill_point(&self) -> Option<KillPoint> {
        self.checkpointing.as_ref().and_then(|c| c.config.kill)
    }

    /// Takes this subtask's part of checkpoint `id`: snapshot (sinks pre-commit), barrier
    /// forwarded on every output channel, state written, acknowledgement sent.
    async fn take_checkpoint(
        &mut self,
        id: u64,
        positions: BTreeMap<u32, serde_json::Value>,
        alignment: Duration,
    ) -> anyhow::Result<()> {
        // Sources have no input queue (no credits).
        let is_source = self.credits == 0;
        if let Some(KillPoint::DuringSnapshot(k)) = self.kill_point() {
            if k == id && !is_source && !self.chain.has_sink() {
                return Err(Killed(KillPoint::DuringSnapshot(k)).into());
            }
        }
        // A sink commits a completed checkpoint before it prepares the next.
        self.commit_completed()?;
        let state = self.chain.snapshot(id)?;
        self.send_outgoing().await?;
        self.gate.broadcast_barrier(id).await?;
        let Some(cp) = &self.checkpointing else {
            return Ok(());
        };
        let (storage, events) = (cp.storage.clone(), cp.coordinator.events.clone());
        let (vertex, index, global) = (cp.vertex, self.index, cp.global);
        let alignment_ms = alignment.as_millis() as u64;
        let upload = move || -> anyhow::Result<()> {
            let state = state.render(positions)?;
            let bytes = storage.write_state(id, vertex, index, &state)?;
            events
                .send(CoordinatorEvent::Ack {
                    id,
                    subtask: global,
                    bytes,
                    alignment_ms,
                })
                .ok();
            Ok(())
        };
        if self.clock.is_manual() {
            // Deterministic mode: the upload is part of the step.
            upload()?;
        } else {
            // The state is already copied out of the operators (the synchronous part of
            // Flink's snapshot); rendering and writing it do not stop processing. A failed
            // upload declines the checkpoint: it never completes, the job goes on.
            tokio::task::spawn_blocking(move || {
                if let Err(e) = upload() {
                    tracing::warn!("checkpoint {id}: uploading a snapshot failed: {e:#}");
                }
            });
        }
        Ok(())
    }

    /// Commits the sinks' transactions if the coordinator completed a checkpoint.
    fn commit_completed(&mut self) -> anyhow::Result<()> {
        let Some(cp) = &mut self.checkpointing else {
            return Ok(());
        };
        if !self.chain.has_sink() || !cp.coordinator.completed.has_changed().unwrap_or(false) {
            return Ok(());
        }
        let id = *cp.coordinator.completed.borrow_and_update();
        if let Some(KillPoint::BeforeCommit(k)) = cp.config.kill {
            if id >= k {
                return Err(Killed(KillPoint::BeforeCommit(k)).into());
            }
        }
        let now = self.clock.now();
        let cp = self.checkpointing.as_mut().expect("checked above");
        let committed = cp.committed.clone();
        let done = self
            .chain
            .commit(id, now, &|n| committed.get(n).copied().unwrap_or(0))?;
        for (sink, epoch) in done {
            cp.storage
                .record_commit(&format!("{sink}-s{}", self.index), epoch)?;
            cp.committed.insert(sink, epoch);
        }
        Ok(())
    }

    fn manual_tick(&self) -> Option<i64> {
        match self.options.clock {
            ClockMode::Manual { tick_ms } => Some(tick_ms),
            ClockMode::Wall => None,
        }
    }

    fn publish(&mut self, force: bool) {
        let due = self
            .last_publish
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if !(force || due) {
            return;
        }
        self.last_publish = Some(Instant::now());
        self.board.publish(
            self.slot,
            SubtaskMetrics {
                vertex: self.vertex.clone(),
                subtask: self.index,
                nodes: self.chain.metrics(),
                busy_ms: self.time.busy.as_millis() as u64,
                idle_ms: self.time.idle.as_millis() as u64,
                backpressured_ms: self.gate.backpressured.as_millis() as u64,
                blocked_sends: self.gate.blocked_sends,
                alignment_paused_polls: self.alignment_paused_polls,
                max_queued: self.max_queued,
                credits: self.credits,
            },
        );
    }

    async fn send_outgoing(&mut self) -> anyhow::Result<()> {
        let items = self.chain.take_outgoing();
        self.gate.send_all(items).await
    }

    /// End of input: the final `MAX` watermark, closing the operators, ending the channels.
    async fn finish(&mut self) -> anyhow::Result<()> {
        let now = self.clock.now();
        self.chain
            .advance(NodeStatus::at(MAX_TIMESTAMP), true, now)?;
        let committed = self
            .checkpointing
            .as_ref()
            .map(|c| c.committed.clone())
            .unwrap_or_default();
        let finals = self
            .chain
            .close(now, &|n| committed.get(n).copied().unwrap_or(0))?;
        if let Some(cp) = &self.checkpointing {
            // The final epoch is committed like a checkpoint's: a later run of this directory
            // must neither take its id for a checkpoint nor skip past it.
            for (sink, epoch) in finals {
                cp.storage
                    .record_commit(&format!("{sink}-s{}", self.index), epoch)?;
            }
        }
        self.send_outgoing().await?;
        self.gate.finish().await?;
        if let Some(cp) = &self.checkpointing {
            cp.coordinator
                .events
                .send(CoordinatorEvent::Finished { subtask: cp.global })
                .ok();
        }
        self.publish(true);
        Ok(())
    }

    /// Periodic watermark emission (Flink's `pipeline.auto-watermark-interval`; 0 disables
    /// it, leaving only the final watermark).
    fn periodic_due(&self, last_emit: Timestamp, now: Timestamp) -> bool {
        let interval = self.options.watermark_interval_ms;
        interval > 0 && now - last_emit >= interval
    }
}

/// How long a checkpoint may stay incomplete before the next one is injected anyway: ten
/// intervals, at least ten seconds.
fn checkpoint_timeout(interval_ms: i64) -> Duration {
    Duration::from_millis((interval_ms.max(0) as u64).saturating_mul(10).max(10_000))
}

/// A source subtask reading `splits` of `source` (dead letters go to side output `tag`).
///
/// With watermark alignment (`alignment`: the group and this subtask's member index), the
/// subtask reads nothing while its watermark is too far ahead of the slowest source subtask's,
/// but keeps emitting watermarks and taking checkpoints.
pub async fn run_source(
    mut task: Subtask,
    mut source: Box<dyn Source>,
    splits: Vec<u32>,
    dead_letter_tag: Option<String>,
    alignment: Option<(Arc<AlignmentGroup>, usize)>,
) -> anyhow::Result<()> {
    let assigned = splits.clone();
    let mut active = splits;
    let mut last_emit = task.clock.now();
    let head = NodeStatus::at(MIN_TIMESTAMP);
    let rows = task.options.source_batch_rows;
    let interval = task
        .checkpointing
        .as_ref()
        .filter(|c| c.config.interval_ms > 0)
        .map(|c| c.config.interval_ms);
    let mut next_checkpoint_at = interval.map(|i| task.clock.now() + i);
    // The last checkpoint this subtask injected, and when.
    let mut last_injected: Option<(u64, Instant)> = None;
    let mut emitted: u64 = 0;
    while !active.is_empty() {
        let mut progressed = false;
        for split in active.clone() {
            let started = Instant::now();
            let now = task.clock.now();
            let paused = alignment.as_ref().is_some_and(|(g, m)| g.must_pause(*m));
            let poll = if paused {
                task.alignment_paused_polls += 1;
                SourcePoll::Pending
            } else {
                source.poll(split, rows, now)?
            };
            match poll {
                SourcePoll::Batch { data, dead_letters } => {
                    progressed = true;
                    if let Some(dead) = dead_letters {
                        task.chain.emit_from_source(
                            dead_letter_tag.as_deref(),
                            dead,
                            split,
                            now,
                        )?;
                    }
                    emitted += data.num_rows() as u64;
                    task.chain.emit_from_source(None, data, split, now)?;
                    if let Some(KillPoint::AfterRecords(n)) = task.kill_point() {
                        if task.index == 0 && emitted >= n {
                            return Err(Killed(KillPoint::AfterRecords(n)).into());
                        }
                    }
                }
                SourcePoll::Pending => {}
                SourcePoll::Ended => {
                    progressed = true;
                    active.retain(|s| *s != split);
                    task.chain.split_finished(split);
                }
            }
            task.time.busy += started.elapsed();
            task.send_outgoing().await?;
            if let Some(tick) = task.manual_tick() {
                task.clock.advance(tick);
            }
            let now = task.clock.now();
            if task.periodic_due(last_emit, now) {
                last_emit = now;
                task.chain.advance(head, true, now)?;
                task.send_outgoing().await?;
                if let Some((group, member)) = &alignment {
                    // The assigner's watermark: downstream nodes of the chain never exceed it.
                    // An idle subtask takes no part (reported as having none), as in Flink.
                    let watermark = task
                        .chain
                        .statuses()
                        .iter()
                        .filter(|(_, st)| !st.idle)
                        .map(|(_, st)| st.watermark)
                        .max()
                        .unwrap_or(MIN_TIMESTAMP);
                    group.report(*member, watermark);
                }
            }
            if let (Some(at), Some(i)) = (next_checkpoint_at, interval) {
                // One checkpoint at a time (Flink's default of one concurrent checkpoint): a
                // two-phase sink must commit checkpoint N before it prepares N + 1, whose
                // writes would otherwise wait for N's locks while N's commit waits for them.
                // A checkpoint that never completes (a declined upload) stops holding the
                // next one back after a timeout. (On a manual clock checkpoints follow the
                // clock alone, as deterministic tests expect.)
                let previous_pending = !task.clock.is_manual()
                    && last_injected.is_some_and(|(id, at)| {
                        let completed = task
                            .checkpointing
                            .as_ref()
                            .map_or(u64::MAX, |cp| *cp.coordinator.completed.borrow());
                        completed < id && at.elapsed() < checkpoint_timeout(i)
                    });
                if now >= at && !active.is_empty() && !previous_pending {
                    next_checkpoint_at = Some(now + i);
                    let id = match &mut task.checkpointing {
                        Some(cp) => {
                            cp.next_id += 1;
                            cp.next_id - 1
                        }
                        None => 0,
                    };
                    // The barrier is injected with the positions after the last record
                    // emitted: a restore replays from exactly here.
                    let positions = assigned.iter().map(|s| (*s, source.position(*s))).collect();
                    last_injected = Some((id, Instant::now()));
                    task.take_checkpoint(id, positions, Duration::ZERO).await?;
                }
            }
            task.commit_completed()?;
        }
        let now = task.clock.now();
        task.chain.on_processing_time(now)?;
        task.send_outgoing().await?;
        task.gate.flush_expired().await?;
        task.publish(false);
        if !progressed && !active.is_empty() {
            if let Some(tick) = task.manual_tick() {
                task.clock.advance(tick.max(1));
            } else {
                // Nothing to read: rows held for the buffer timeout would only wait longer
                // (the timeout bounds a row's wait, it does not make rows wait), so they go
                // now. Then sleep until the source or a watermark is due.
                task.gate.flush_all().await?;
                let wait_ms = source
                    .next_poll_time()
                    .map(|t| t - now)
                    .unwrap_or(10)
                    .clamp(1, 10);
                let started = Instant::now();
                let wake = Instant::now() + Duration::from_millis(wait_ms as u64);
                tokio::time::sleep_until(wake.into()).await;
                task.time.idle += started.elapsed();
            }
        }
        tokio::task::yield_now().await;
    }
    if let Some((group, member)) = &alignment {
        group.leave(*member);
    }
    task.finish().await
}

/// An operator subtask reading `queue`; `inputs[channel]` is the head input of a channel.
pub async fn run_operator(
    mut task: Subtask,
    mut queue: tokio::sync::mpsc::Receiver<Message>,
    inputs: Vec<usize>,
) -> anyhow::Result<()> {
    let mut valve = InputWatermarks::new(inputs.len());
    let mut head = NodeStatus::at(valve.current());
    let mut ended = vec![false; inputs.len()];
    let mut last_emit = task.clock.now();
    let mut last_emit_at = Instant::now();
    let periodic = task.chain.has_assigner() && task.options.watermark_interval_ms > 0;
    let mut aligner = task
        .checkpointing
        .as_ref()
        .map(|c| BarrierAligner::new(c.config.mode, inputs.len()));
    let mut completed = task
        .checkpointing
        .as_ref()
        .map(|c| c.coordinator.completed.clone());
    while ended.iter().any(|e| !e) {
        task.max_queued = task.max_queued.max(queue.len());
        let waiting = Instant::now();
        let released = aligner.as_mut().and_then(|a| a.next_released());
        let message = if let Some(m) = released {
            Some(Some(m))
        } else {
            let mut deadline = None;
            if !task.clock.is_manual() {
                deadline = task.gate.flush_deadline();
                let mut consider =
                    |d: Instant| deadline = Some(deadline.map_or(d, |x: Instant| x.min(d)));
                if let Some(t) = task.chain.next_processing_time() {
                    let ms = (t - task.clock.now()).max(0) as u64;
                    consider(Instant::now() + Duration::from_millis(ms));
                }
                if periodic {
                    let interval = task.options.watermark_interval_ms as u64;
                    consider(last_emit_at + Duration::from_millis(interval));
                }
            }
            // A sink also waits for the coordinator's notification that a checkpoint is
            // complete, to commit.
            let watch = completed.as_mut().filter(|_| task.chain.has_sink());
            let watching = watch.is_some();
            let mut coordinator_gone = false;
            let next = tokio::select! {
                biased;
                changed = async { watch.expect("checked by the guard").changed().await }, if watching => {
                    coordinator_gone = changed.is_err();
                    None
                }
                m = queue.recv() => Some(m),
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now).into()), if deadline.is_some() => None,
            };
            if coordinator_gone {
                completed = None;
            }
            next
        };
        task.time.idle += waiting.elapsed();
        let started = Instant::now();
        let now = task.clock.now();
        // Exactly-once alignment: a channel whose barrier has arrived is held back.
        let message = match (message, aligner.as_mut()) {
            (Some(Some(m)), Some(a)) if a.is_blocked(channel_of(&m)) => {
                a.hold(m);
                None
            }
            (m, _) => m,
        };
        match message {
            Some(None) => return Err(ChannelClosed.into()),
            Some(Some(Message::Barrier {
                channel,
                checkpoint,
            })) => {
                if let Some(a) = aligner.as_mut() {
                    let started = a.alignment_started().unwrap_or_else(Instant::now);
                    if let BarrierAction::Snapshot(id) = a.on_barrier(channel, checkpoint) {
                        task.take_checkpoint(id, BTreeMap::new(), started.elapsed())
                            .await?;
                    }
                }
            }
            Some(Some(Message::Data { channel, batch })) => {
                valve.on_data(channel);
                task.chain.deliver(inputs[channel], batch, now)?;
            }
            Some(Some(Message::Watermark { channel, status })) => {
                valve.update(channel, status);
            }
            Some(Some(Message::End { channel })) => {
                ended[channel] = true;
                // An ended channel has sent MAX; make sure it no longer holds anything back.
                valve.update(channel, WatermarkStatus::Watermark(MAX_TIMESTAMP));
                if let Some(a) = aligner.as_mut() {
                    let started = a.alignment_started().unwrap_or_else(Instant::now);
                    if let BarrierAction::Snapshot(id) = a.on_end(channel) {
                        task.take_checkpoint(id, BTreeMap::new(), started.elapsed())
                            .await?;
                    }
                }
            }
            None => {}
        }
        let status = NodeStatus {
            watermark: valve.current(),
            idle: valve.all_idle(),
        };
        if status != head {
            head = status;
            task.chain.advance(head, false, now)?;
        }
        if periodic && (task.periodic_due(last_emit, now) || task.clock.is_manual()) {
            last_emit = now;
            last_emit_at = Instant::now();
            task.chain.advance(head, true, now)?;
        }
        task.chain.on_processing_time(now)?;
        task.commit_completed()?;
        task.time.busy += started.elapsed();
        task.send_outgoing().await?;
        task.gate.flush_expired().await?;
        task.publish(false);
    }
    task.finish().await
}

fn channel_of(m: &Message) -> usize {
    match m {
        Message::Data { channel, .. }
        | Message::Watermark { channel, .. }
        | Message::Barrier { channel, .. }
        | Message::End { channel } => *channel,
    }
}

#[cfg(test)]
mod tests;
