//! Scheduled runs ([`ScheduledRunner`]): the conformance suite's schedules executed with
//! Flink's rules, deterministically, on one job-wide manual processing-time clock starting
//! at 0.
//!
//! The job is the continuous runner's own: the same [`JobGraph`] (chaining, parallelism,
//! exchanges), the same operator [`Chain`]s with their per-split watermark generators, the
//! same [`InputWatermarks`] valves, [`BarrierAligner`]s, [`CheckpointStorage`],
//! [`Restored`] rescaling and two-phase-commit sinks. Only the scheduling differs from a
//! normal run: instead of tokio tasks, a single thread moves messages between subtasks'
//! input queues in a fixed order (vertices in topological order, subtasks by index), so
//! every run of a schedule gives the same output, at any parallelism.
//!
//! Rules of a scheduled run:
//! - `deliver` appends rows to the source's partition (a split; the log keeps every row,
//!   as a broker does, so a restore can replay from a checkpointed position); the source
//!   subtask owning the split (splits round robin over subtasks) reads them one record at a
//!   time, and after each record the job runs until quiescent: every input queue is empty.
//!   Output buffers are flushed at every emission (time stands still during quiescence,
//!   so a buffer timeout could never expire; flushing at quiescence is what it would do
//!   once time moved, and nothing observable happens in between).
//! - Periodic watermark emission (Flink's `pipeline.auto-watermark-interval`) happens at
//!   every positive multiple of `watermark_interval`; checkpoints are triggered at every
//!   positive multiple of `checkpoint_interval`; processing-time timers fire at their time.
//!   Between steps the clock moves through each such instant in order, quiescing after
//!   each. At one instant: the steps first (arrivals before periodic work), then the
//!   periodic watermark emission, then processing-time timers, then the checkpoint (which
//!   completes at the same instant: acknowledgements take no manual time).
//! - `end_input` ends the source: its subtasks finish and emit the maximum watermark.
//! - Crashes drop the running job; nothing runs until `restart`, which builds the job
//!   again (optionally at another parallelism) from the latest completed checkpoint of the
//!   run's own checkpoint directory, commits the transactions it had pre-committed, seeks
//!   the sources and replays what was delivered since. Watermarks start again from the
//!   minimum (Flink does not checkpoint them). Without checkpointing the job restarts from
//!   the beginning of the input.
//! - Sinks: with checkpointing, every `Write` is a two-phase-commit sink; its rows become
//!   visible (`visible_at`) and committed when the checkpoint completes, or at the end of
//!   the input (the final transaction). Without checkpointing, rows are written as they
//!   arrive and committed at the end of the input.
//! - The run stops after the last step's instant.

use crate::channel::{KeyGroups, Message, Partitioner};
use crate::checkpoint::{
    check_checkpointable, BarrierAction, BarrierAligner, CheckpointMetadata, CheckpointMode,
    CheckpointStorage, Restored, SubtaskState,
};
use crate::graph::JobGraph;
use crate::task::{Chain, NodeStatus, Outgoing};
use crate::watermark::{InputWatermarks, WatermarkStatus};
use anyhow::{anyhow, bail, Context as _};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use weir_model::io::{BadRecordPolicy, SourceSpec};
use weir_model::plan::Plan;
use weir_model::time::{Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};
use weir_model::transform::Transform;
use weir_model::udf::Row;
use weir_model::Schema;
use weir_runner_core::io::{RecordCollector, SinkRegistry};
use weir_runner_core::operator::BuildEnv;
use weir_runner_core::schedule::{Action, CrashPoint, RunRecord, Schedule, Step, WatermarkEvent};

/// Settings a scheduled run accepts (`runners: continuous:` in a scenario).
pub const SCHEDULE_SETTINGS: &[(&str, &str)] = &[
    (
        "watermark_interval",
        "periodic watermark emission interval (default 200ms; 0 disables periodic watermarks)",
    ),
    (
        "parallelism",
        "job parallelism (default 1; per-transform parallelism of the pipeline is honoured)",
    ),
    (
        "parallelism.<transform>",
        "one transform's parallelism (Flink's `setParallelism`)",
    ),
    (
        "checkpoint_interval",
        "checkpoint every this much processing time (default: none, no checkpointing)",
    ),
    (
        "checkpoint_mode",
        "`exactly-once` (default, aligned barriers) or `at-least-once`",
    ),
    (
        "buffer_timeout",
        "accepted for completeness; on the manual clock buffers are flushed at every emission",
    ),
];

/// Parsed settings of a scheduled run.
#[derive(Debug, Clone)]
struct Settings {
    watermark_interval: i64,
    parallelism: usize,
    transform_parallelism: BTreeMap<String, usize>,
    checkpoint_interval: Option<i64>,
    mode: CheckpointMode,
}

/// A duration setting: `200ms`, `1s`, or a bare integer number of milliseconds (as in a
/// scenario's `at:`).
fn millis(key: &str, text: &str) -> anyhow::Result<i64> {
    if let Ok(n) = text.trim().parse::<i64>() {
        if n < 0 {
            bail!("setting `{key}`: `{text}` must not be negative");
        }
        return Ok(n);
    }
    weir_model::time::Duration::parse(text)
        .map(|d| d.millis())
        .map_err(|e| anyhow!("setting `{key}`: {e}"))
}

fn positive(key: &str, text: &str) -> anyhow::Result<usize> {
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("setting `{key}`: `{text}` is not a positive whole number"),
    }
}

impl Settings {
    fn parse(settings: &BTreeMap<String, String>) -> anyhow::Result<Settings> {
        let mut s = Settings {
            watermark_interval: 200,
            parallelism: 1,
            transform_parallelism: BTreeMap::new(),
            checkpoint_interval: None,
            mode: CheckpointMode::ExactlyOnce,
        };
        for (key, value) in settings {
            match key.as_str() {
                "watermark_interval" => s.watermark_interval = millis(key, value)?,
                "parallelism" => s.parallelism = positive(key, value)?,
                "checkpoint_interval" => {
                    let ms = millis(key, value)?;
                    s.checkpoint_interval = (ms > 0).then_some(ms);
                }
                "checkpoint_mode" => {
                    s.mode = match value.trim() {
                        "exactly-once" | "exactly_once" => CheckpointMode::ExactlyOnce,
                        "at-least-once" | "at_least_once" => CheckpointMode::AtLeastOnce,
                        other => bail!(
                            "setting `checkpoint_mode`: `{other}` is neither `exactly-once` nor `at-least-once`"
                        ),
                    }
                }
                "buffer_timeout" => {
                    millis(key, value)?;
                }
                k => match k.strip_prefix("parallelism.") {
                    Some(t) if !t.is_empty() => {
                        s.transform_parallelism
                            .insert(t.to_string(), positive(key, value)?);
                    }
                    _ => {
                        let known: Vec<&str> = SCHEDULE_SETTINGS.iter().map(|(k, _)| *k).collect();
                        bail!(
                            "the continuous runner has no scheduled-run setting `{k}` (settings: {})",
                            known.join(", ")
                        )
                    }
                },
            }
        }
        Ok(s)
    }
}

/// The job died at a crash point.
#[derive(Debug, thiserror::Error)]
#[error("the job died at a crash point")]
struct Died;

/// Where, inside a checkpoint, the job is to die.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckpointCrash {
    /// When subtask `.0` (global index) starts its snapshot.
    DuringSnapshot(usize),
    /// After every subtask snapshotted (sinks pre-committed), before completion.
    BeforeCompletion,
}

/// One output edge of a subtask.
struct Out {
    partitioner: Partitioner,
    receivers: usize,
    /// Per receiver subtask: (its global index, our channel id there).
    targets: Vec<Option<(usize, usize)>>,
    round: usize,
}

struct SourcePart {
    /// The `Read` transform.
    name: String,
    schema: Schema,
    bad_records: BadRecordPolicy,
    dead_letter_tag: Option<String>,
    splits: Vec<u32>,
    /// Split → index of the next row to read in the log.
    next: BTreeMap<u32, usize>,
}

struct OperatorPart {
    inbox: VecDeque<Message>,
    /// Head input per channel.
    inputs: Vec<usize>,
    valve: InputWatermarks,
    head: NodeStatus,
    ended: Vec<bool>,
    aligner: Option<BarrierAligner>,
}

enum Part {
    Source(SourcePart),
    Operator(OperatorPart),
}

struct Sub {
    vertex: usize,
    index: usize,
    chain: Chain,
    part: Part,
    outs: Vec<Out>,
    finished: bool,
    /// Sink → last epoch committed.
    committed: BTreeMap<String, u64>,
    /// Last checkpoint this subtask snapshotted.
    acked: u64,
}

/// Rows delivered so far: source → partition → (1-based delivery number, row).
type Log = BTreeMap<String, Vec<Vec<(u64, Row)>>>;

/// One attempt of the job.
struct Job {
    graph: JobGraph,
    subs: Vec<Sub>,
    storage: Option<CheckpointStorage>,
    crash: Option<CheckpointCrash>,
}

fn channel_of(m: &Message) -> usize {
    match m {
        Message::Data { channel, .. }
        | Message::Watermark { channel, .. }
        | Message::Barrier { channel, .. }
        | Message::End { channel } => *channel,
    }
}

impl Job {
    /// Deploys `plan` at `parallelism`, restoring the latest completed checkpoint of
    /// `storage` if there is one.
    fn deploy(
        plan: &Plan,
        settings: &Settings,
        parallelism: usize,
        partitions: &BTreeMap<String, u32>,
        sinks: &SinkRegistry,
        storage: Option<&CheckpointStorage>,
        now: Timestamp,
    ) -> anyhow::Result<Job> {
        let graph = JobGraph::build_with(plan, parallelism, &settings.transform_parallelism)
            .map_err(anyhow::Error::msg)?;
        let restored = match storage {
            Some(st) => match st.completed()?.last() {
                Some(id) => Some(Restored::load(st, *id, &graph, plan)?),
                None => None,
            },
            None => None,
        };
        // Global index of subtask `s` of vertex `v`.
        let mut first = Vec::new();
        let mut total = 0;
        for v in &graph.vertices {
            first.push(total);
            total += v.parallelism;
        }
        // Channels: (edge, sender subtask, receiver subtask) → channel id at the receiver.
        let mut channel_ids: BTreeMap<(usize, usize, usize), usize> = BTreeMap::new();
        let mut inputs_of: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        for (v, vertex) in graph.vertices.iter().enumerate() {
            if vertex.is_source {
                continue;
            }
            for s in 0..vertex.parallelism {
                let mut inputs = Vec::new();
                for (ei, e) in graph.incoming(v) {
                    for u in 0..graph.vertices[e.from].parallelism {
                        if e.partitioner.targets(u, vertex.parallelism).contains(&s) {
                            channel_ids.insert((ei, u, s), inputs.len());
                            inputs.push(e.input);
                        }
                    }
                }
                inputs_of.insert((v, s), inputs);
            }
        }
        let mut env = BuildEnv {
            partitions: BTreeMap::new(),
            sinks: sinks.clone(),
            columnar_state: true,
        };
        let two_phase = storage.is_some();
        let mut subs = Vec::new();
        for (v, vertex) in graph.vertices.iter().enumerate() {
            let edge_collections = graph.outgoing_collections(v);
            for s in 0..vertex.parallelism {
                let outs = graph
                    .outgoing(v)
                    .map(|(ei, e)| {
                        let receivers = graph.vertices[e.to].parallelism;
                        Out {
                            partitioner: e.partitioner.clone(),
                            receivers,
                            targets: (0..receivers)
                                .map(|t| {
                                    channel_ids.get(&(ei, s, t)).map(|c| (first[e.to] + t, *c))
                                })
                                .collect(),
                            round: 0,
                        }
                    })
                    .collect();
                let name = vertex.name();
                let (chain, part) = if vertex.is_source {
                    let node = plan
                        .pipeline
                        .node(vertex.head())
                        .context("source transform missing")?;
                    let Transform::Read {
                        source,
                        schema,
                        bad_records,
                    } = &node.transform
                    else {
                        bail!("`{}` is not a source", node.name);
                    };
                    if !matches!(source, SourceSpec::Memory { .. }) {
                        bail!(
                            "scheduled runs of the continuous runner read only ReadFromMemory sources fed by the schedule; `{}` is a {}",
                            node.name,
                            node.transform.type_name()
                        );
                    }
                    let count = partitions.get(&node.name).copied().unwrap_or(1);
                    for out in plan.outputs_of(&node.name) {
                        env.partitions.insert(out.to_string(), count);
                    }
                    let splits = crate::graph::assigned_splits(count, vertex.parallelism, s);
                    let chain = Chain::new(
                        plan,
                        &vertex.nodes,
                        &edge_collections,
                        &env,
                        &splits,
                        now,
                        two_phase,
                    )
                    .with_context(|| format!("building `{name}`"))?;
                    let positions = restored
                        .as_ref()
                        .map(|r| r.positions(v))
                        .unwrap_or_default();
                    let next = splits
                        .iter()
                        .map(|sp| {
                            let at =
                                positions.get(sp).and_then(|p| p.as_u64()).unwrap_or(0) as usize;
                            (*sp, at)
                        })
                        .collect();
                    let part = Part::Source(SourcePart {
                        name: node.name.clone(),
                        schema: schema.clone(),
                        bad_records: bad_records.clone(),
                        dead_letter_tag: match bad_records {
                            BadRecordPolicy::DeadLetter { tag } => Some(tag.clone()),
                            BadRecordPolicy::Fail => None,
                        },
                        splits,
                        next,
                    });
                    (chain, part)
                } else {
                    let chain = Chain::new(
                        plan,
                        &vertex.nodes,
                        &edge_collections,
                        &env,
                        &[],
                        now,
                        two_phase,
                    )
                    .with_context(|| format!("building `{name}`"))?;
                    let inputs = inputs_of.remove(&(v, s)).unwrap_or_default();
                    let valve = InputWatermarks::new(inputs.len());
                    let part = Part::Operator(OperatorPart {
                        inbox: VecDeque::new(),
                        head: NodeStatus::at(valve.current()),
                        valve,
                        ended: vec![false; inputs.len()],
                        aligner: two_phase
                            .then(|| BarrierAligner::new(settings.mode, inputs.len())),
                        inputs,
                    });
                    (chain, part)
                };
                subs.push(Sub {
                    vertex: v,
                    index: s,
                    chain,
                    part,
                    outs,
                    finished: false,
                    committed: BTreeMap::new(),
                    acked: 0,
                });
            }
        }
        let mut job = Job {
            graph,
            subs,
            storage: storage.cloned(),
            crash: None,
        };
        // State, pending transactions (committed now: Flink's `recoverAndCommit`, skipping
        // epochs the commit markers show as done).
        if let Some(st) = storage {
            for sub in &mut job.subs {
                for node in sub.chain.sink_names() {
                    let epoch = st.committed_epoch(&format!("{node}-s{}", sub.index));
                    sub.committed.insert(node, epoch);
                }
                if let Some(r) = &restored {
                    sub.chain
                        .restore(&r.state(sub.vertex, sub.index))
                        .with_context(|| format!("restoring `{}`", sub.chain_name()))?;
                    let committed = sub.committed.clone();
                    let done = sub
                        .chain
                        .commit(r.id, now, &|n| committed.get(n).copied().unwrap_or(0))?;
                    for (sink, epoch) in done {
                        st.record_commit(&format!("{sink}-s{}", sub.index), epoch)?;
                        sub.committed.insert(sink, epoch);
                    }
                    sub.acked = r.id;
                }
            }
        }
        Ok(job)
    }

    /// Sends what left subtask `i`'s chain to the receivers' input queues.
    fn send(&mut self, i: usize) -> anyhow::Result<()> {
        let items = self.subs[i].chain.take_outgoing();
        let mut messages: Vec<(usize, Message)> = Vec::new();
        {
            let sub = &mut self.subs[i];
            for item in items {
                match item {
                    Outgoing::Data { edge, batch } => {
                        let out = &mut sub.outs[edge];
                        let parts = out.partitioner.route(
                            batch,
                            sub.index,
                            out.receivers,
                            &mut out.round,
                            KeyGroups::default(),
                        )?;
                        for (target, rows) in parts {
                            if let Some((to, channel)) = out.targets[target] {
                                messages.push((
                                    to,
                                    Message::Data {
                                        channel,
                                        batch: rows,
                                    },
                                ));
                            }
                        }
                    }
                    Outgoing::Status { edge, status } => {
                        let status = if status.idle {
                            WatermarkStatus::Idle
                        } else {
                            WatermarkStatus::Watermark(status.watermark)
                        };
                        for (to, channel) in sub.outs[edge].targets.iter().flatten() {
                            messages.push((
                                *to,
                                Message::Watermark {
                                    channel: *channel,
                                    status,
                                },
                            ));
                        }
                    }
                }
            }
        }
        self.push(messages);
        Ok(())
    }

    fn push(&mut self, messages: Vec<(usize, Message)>) {
        for (to, m) in messages {
            if let Part::Operator(op) = &mut self.subs[to].part {
                op.inbox.push_back(m);
            }
        }
    }

    /// Sends `make(channel)` on every output channel of subtask `i`.
    fn broadcast(&mut self, i: usize, make: impl Fn(usize) -> Message) {
        let messages: Vec<(usize, Message)> = self.subs[i]
            .outs
            .iter()
            .flat_map(|o| o.targets.iter().flatten())
            .map(|(to, channel)| (*to, make(*channel)))
            .collect();
        self.push(messages);
    }

    /// End of input for subtask `i`: the final `MAX` watermark, closing, ending channels.
    fn finish(&mut self, i: usize, now: Timestamp) -> anyhow::Result<()> {
        let sub = &mut self.subs[i];
        if let Part::Source(src) = &sub.part {
            for split in src.splits.clone() {
                sub.chain.split_finished(split);
            }
        }
        sub.chain
            .advance(NodeStatus::at(MAX_TIMESTAMP), true, now)?;
        let committed = sub.committed.clone();
        let finals = sub
            .chain
            .close(now, &|n| committed.get(n).copied().unwrap_or(0))?;
        if let Some(st) = &self.storage {
            for (sink, epoch) in finals {
                st.record_commit(&format!("{sink}-s{}", sub.index), epoch)?;
            }
        }
        sub.finished = true;
        self.send(i)?;
        self.broadcast(i, |channel| Message::End { channel });
        Ok(())
    }

    /// Subtask `i` snapshots checkpoint `id` (sinks pre-commit) and forwards the barrier.
    fn snapshot(&mut self, i: usize, id: u64) -> anyhow::Result<()> {
        if self.crash == Some(CheckpointCrash::DuringSnapshot(i)) {
            return Err(Died.into());
        }
        let sub = &mut self.subs[i];
        let positions = match &sub.part {
            Part::Source(src) => src
                .next
                .iter()
                .map(|(s, n)| (*s, serde_json::Value::from(*n as u64)))
                .collect(),
            _ => BTreeMap::new(),
        };
        let state: SubtaskState = sub.chain.snapshot(id)?.render(positions)?;
        sub.acked = id;
        let (vertex, index) = (sub.vertex, sub.index);
        if let Some(st) = &self.storage {
            st.write_state(id, vertex, index, &state)?;
        }
        self.send(i)?;
        self.broadcast(i, |channel| Message::Barrier {
            channel,
            checkpoint: id,
        });
        Ok(())
    }

    /// Handles one message at operator subtask `i`.
    fn handle(&mut self, i: usize, message: Message, now: Timestamp) -> anyhow::Result<()> {
        let mut snapshot = None;
        let mut all_ended = false;
        {
            let sub = &mut self.subs[i];
            let Part::Operator(op) = &mut sub.part else {
                return Ok(());
            };
            match message {
                Message::Barrier {
                    channel,
                    checkpoint,
                } => {
                    if let Some(a) = op.aligner.as_mut() {
                        if let BarrierAction::Snapshot(id) = a.on_barrier(channel, checkpoint) {
                            snapshot = Some(id);
                        }
                    }
                }
                Message::Data { channel, batch } => {
                    op.valve.on_data(channel);
                    sub.chain.deliver(op.inputs[channel], batch, now)?;
                }
                Message::Watermark { channel, status } => {
                    op.valve.update(channel, status);
                }
                Message::End { channel } => {
                    op.ended[channel] = true;
                    op.valve
                        .update(channel, WatermarkStatus::Watermark(MAX_TIMESTAMP));
                    if let Some(a) = op.aligner.as_mut() {
                        if let BarrierAction::Snapshot(id) = a.on_end(channel) {
                            snapshot = Some(id);
                        }
                    }
                    all_ended = op.ended.iter().all(|e| *e);
                }
            }
            let status = NodeStatus {
                watermark: op.valve.current(),
                idle: op.valve.all_idle(),
            };
            if status != op.head {
                op.head = status;
                sub.chain.advance(status, false, now)?;
            }
            sub.chain.on_processing_time(now)?;
        }
        self.send(i)?;
        if let Some(id) = snapshot {
            self.snapshot(i, id)?;
        }
        if all_ended {
            self.finish(i, now)?;
        }
        Ok(())
    }

    /// Runs until every input queue is empty.
    fn quiesce(&mut self, now: Timestamp) -> anyhow::Result<()> {
        loop {
            let mut progressed = false;
            for i in 0..self.subs.len() {
                loop {
                    if self.subs[i].finished {
                        break;
                    }
                    let Part::Operator(op) = &mut self.subs[i].part else {
                        break;
                    };
                    let released = op.aligner.as_mut().and_then(|a| a.next_released());
                    let Some(m) = released.or_else(|| op.inbox.pop_front()) else {
                        break;
                    };
                    progressed = true;
                    if let Some(a) = op.aligner.as_mut() {
                        if a.is_blocked(channel_of(&m)) {
                            a.hold(m);
                            continue;
                        }
                    }
                    self.handle(i, m, now)?;
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// Operator subtasks whose inputs all ended before they were deployed (none here, but a
    /// vertex without input channels ends at once).
    fn start(&mut self, now: Timestamp) -> anyhow::Result<()> {
        for i in 0..self.subs.len() {
            let no_input = match &self.subs[i].part {
                Part::Operator(op) => op.inputs.is_empty(),
                Part::Source(src) => src.splits.is_empty(),
            };
            if no_input && !self.subs[i].finished {
                // A source subtask without splits finishes at once (Flink's reader with no
                // split assigned), sending the maximum watermark.
                self.finish(i, now)?;
            }
        }
        self.quiesce(now)
    }

    /// Reads the next unread row of any split (subtasks and splits in order); returns
    /// whether one was read.
    fn read_one(&mut self, log: &Log, now: Timestamp) -> anyhow::Result<bool> {
        for i in 0..self.subs.len() {
            if self.subs[i].finished {
                continue;
            }
            let sub = &mut self.subs[i];
            let Part::Source(src) = &mut sub.part else {
                continue;
            };
            let parts = log.get(&src.name);
            for split in src.splits.clone() {
                let at = src.next.get(&split).copied().unwrap_or(0);
                let Some((number, row)) = parts
                    .and_then(|p| p.get(split as usize))
                    .and_then(|rows| rows.get(at))
                else {
                    continue;
                };
                let mut records = RecordCollector::new(&src.schema, &src.bad_records);
                records.row(row.clone(), &src.name, *number, || {
                    serde_json::Value::Object(row.clone()).to_string()
                })?;
                let (data, dead) = records.finish()?;
                src.next.insert(split, at + 1);
                if let Some(dead) = dead {
                    sub.chain
                        .emit_from_source(src.dead_letter_tag.as_deref(), dead, split, now)?;
                }
                if data.num_rows() > 0 {
                    sub.chain.emit_from_source(None, data, split, now)?;
                }
                sub.chain.on_processing_time(now)?;
                self.send(i)?;
                self.quiesce(now)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Source subtasks of ended sources that have read everything finish.
    fn finish_ended(
        &mut self,
        log: &Log,
        ended: &BTreeSet<String>,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        for i in 0..self.subs.len() {
            if self.subs[i].finished {
                continue;
            }
            let Part::Source(src) = &self.subs[i].part else {
                continue;
            };
            if !ended.contains(&src.name) {
                continue;
            }
            let parts = log.get(&src.name);
            let caught_up = src.splits.iter().all(|sp| {
                let len = parts.and_then(|p| p.get(*sp as usize)).map_or(0, Vec::len);
                src.next.get(sp).copied().unwrap_or(0) >= len
            });
            if caught_up {
                self.finish(i, now)?;
                self.quiesce(now)?;
            }
        }
        Ok(())
    }

    /// The periodic watermark emission at `now`.
    fn periodic_emit(&mut self, now: Timestamp) -> anyhow::Result<()> {
        for i in 0..self.subs.len() {
            let sub = &mut self.subs[i];
            if sub.finished || !sub.chain.has_assigner() {
                continue;
            }
            let head = match &sub.part {
                Part::Source(_) => NodeStatus::at(MIN_TIMESTAMP),
                Part::Operator(op) => op.head,
            };
            sub.chain.advance(head, true, now)?;
            self.send(i)?;
            self.quiesce(now)?;
        }
        Ok(())
    }

    /// Processing-time timers due at `now`.
    fn fire_timers(&mut self, now: Timestamp) -> anyhow::Result<()> {
        for i in 0..self.subs.len() {
            if self.subs[i].finished {
                continue;
            }
            self.subs[i].chain.on_processing_time(now)?;
            self.send(i)?;
            self.quiesce(now)?;
        }
        Ok(())
    }

    /// The earliest processing-time timer.
    fn next_timer(&self) -> Option<Timestamp> {
        self.subs
            .iter()
            .filter(|s| !s.finished)
            .filter_map(|s| s.chain.next_processing_time())
            .min()
    }

    fn all_finished(&self) -> bool {
        self.subs.iter().all(|s| s.finished)
    }

    /// Checkpoint `id` at `now`: barriers injected at the sources, aligned through the job,
    /// then completed (metadata written) and committed by every sink. Returns whether the
    /// checkpoint completed.
    fn checkpoint(&mut self, id: u64, now: Timestamp, mode_name: &str) -> anyhow::Result<bool> {
        let Some(storage) = self.storage.clone() else {
            return Ok(false);
        };
        for i in 0..self.subs.len() {
            let sub = &self.subs[i];
            if !matches!(sub.part, Part::Source(_)) {
                continue;
            }
            if sub.finished {
                // A finished source still records where its splits are, so a restore does
                // not read them again (Flink's checkpoints with finished tasks).
                let Part::Source(src) = &sub.part else {
                    unreachable!("matched above")
                };
                let state = SubtaskState {
                    positions: src
                        .next
                        .iter()
                        .map(|(s, n)| (*s, serde_json::Value::from(*n as u64)))
                        .collect(),
                    operators: BTreeMap::new(),
                };
                storage.write_state(id, sub.vertex, sub.index, &state)?;
                self.subs[i].acked = id;
                continue;
            }
            self.snapshot(i, id)?;
            self.quiesce(now)?;
        }
        self.quiesce(now)?;
        let complete = self.subs.iter().all(|s| s.finished || s.acked >= id);
        if !complete {
            return Ok(false);
        }
        if self.crash == Some(CheckpointCrash::BeforeCompletion) {
            return Err(Died.into());
        }
        let meta = CheckpointMetadata {
            id,
            mode: mode_name.to_string(),
            vertices: self
                .graph
                .vertices
                .iter()
                .map(|v| (v.head().to_string(), v.parallelism))
                .collect(),
            size_bytes: 0,
            duration_ms: 0,
            max_alignment_ms: 0,
        };
        storage.complete(&meta, 10)?;
        // The coordinator notifies the sinks: they commit.
        for sub in &mut self.subs {
            if sub.finished || !sub.chain.has_sink() {
                continue;
            }
            let committed = sub.committed.clone();
            let done = sub
                .chain
                .commit(id, now, &|n| committed.get(n).copied().unwrap_or(0))?;
            for (sink, epoch) in done {
                storage.record_commit(&format!("{sink}-s{}", sub.index), epoch)?;
                sub.committed.insert(sink, epoch);
            }
        }
        Ok(true)
    }

    /// The subtask a `during-snapshot` crash hits: the first operator subtask without a sink
    /// (a keyed operator snapshotting its state), else the first subtask.
    fn snapshot_victim(&self) -> usize {
        self.subs
            .iter()
            .position(|s| !s.finished && matches!(s.part, Part::Operator(_)) && !s.chain.has_sink())
            .or_else(|| self.subs.iter().position(|s| !s.finished))
            .unwrap_or(0)
    }

    /// Output watermark per transform: the min over its subtasks (idle subtasks excluded
    /// unless all are idle).
    fn watermarks(&self) -> BTreeMap<String, Timestamp> {
        let mut per: BTreeMap<String, Vec<NodeStatus>> = BTreeMap::new();
        for sub in &self.subs {
            for (name, status) in sub.chain.statuses() {
                per.entry(name.to_string()).or_default().push(status);
            }
        }
        per.into_iter()
            .map(|(name, statuses)| {
                let active = statuses
                    .iter()
                    .filter(|s| !s.idle)
                    .map(|s| s.watermark)
                    .min();
                let all = statuses.iter().map(|s| s.watermark).min();
                (name, active.or(all).unwrap_or(MIN_TIMESTAMP))
            })
            .collect()
    }

    /// Late drops and dead letters per transform.
    fn counters(&self) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
        let (mut late, mut dead) = (BTreeMap::new(), BTreeMap::new());
        for sub in &self.subs {
            for m in sub.chain.metrics() {
                if m.late_dropped > 0 {
                    *late.entry(m.node.clone()).or_insert(0) += m.late_dropped;
                }
                if m.dead_letters > 0 {
                    *dead.entry(m.node.clone()).or_insert(0) += m.dead_letters;
                }
            }
        }
        (late, dead)
    }
}

impl Sub {
    fn chain_name(&self) -> String {
        format!("{:?}", self.chain)
    }
}

/// The state of a scheduled run across job attempts.
struct Scheduler<'p> {
    plan: &'p Plan,
    settings: Settings,
    partitions: BTreeMap<String, u32>,
    sinks: SinkRegistry,
    storage: Option<CheckpointStorage>,
    /// The run's checkpoint directory, removed when the run ends.
    _dir: Option<tempfile::TempDir>,
    job: Option<Job>,
    parallelism: usize,
    now: Timestamp,
    /// Every instant up to this one had its periodic work done.
    done_through: Timestamp,
    log: Log,
    delivered: BTreeMap<String, u64>,
    ended: BTreeSet<String>,
    /// Records read by sources since the run started (replays included).
    records: u64,
    /// An armed `after-records` crash.
    armed: Option<u64>,
    next_checkpoint: u64,
    record: RunRecord,
    /// Highest watermark recorded per transform in this attempt.
    high: BTreeMap<String, Timestamp>,
    /// Job attempts deployed so far, minus one (0 = the first).
    attempt: u32,
    /// Whether a job has been deployed before (the next deploy is a new attempt).
    deployed: bool,
}

impl<'p> Scheduler<'p> {
    fn mode_name(&self) -> &'static str {
        match self.settings.mode {
            CheckpointMode::ExactlyOnce => "exactly-once",
            CheckpointMode::AtLeastOnce => "at-least-once",
        }
    }

    /// Runs `f` on the live job; a [`Died`] error crashes the job instead of failing the run.
    fn with_job(
        &mut self,
        f: impl FnOnce(&mut Job, &Log, &BTreeSet<String>, Timestamp) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let Some(job) = self.job.as_mut() else {
            return Ok(());
        };
        match f(job, &self.log, &self.ended, self.now) {
            Ok(()) => {
                self.trace();
                Ok(())
            }
            Err(e) if e.is::<Died>() => {
                self.crash();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The job dies: its open transactions are lost (aborted), its counters kept.
    fn crash(&mut self) {
        if let Some(job) = self.job.take() {
            self.absorb_counters(&job);
        }
        self.armed = None;
    }

    fn absorb_counters(&mut self, job: &Job) {
        let (late, dead) = job.counters();
        for (k, v) in late {
            *self.record.late_dropped.entry(k).or_insert(0) += v;
        }
        for (k, v) in dead {
            *self.record.dead_letters.entry(k).or_insert(0) += v;
        }
    }

    /// Records watermark changes within the current attempt (after a restore the watermark
    /// starts from the minimum again, as Flink's does, under a new attempt number).
    fn trace(&mut self) {
        let Some(job) = &self.job else {
            return;
        };
        let current = job.watermarks();
        for node in &self.plan.pipeline.transforms {
            let Some(w) = current.get(&node.name).copied() else {
                continue;
            };
            let high = self.high.entry(node.name.clone()).or_insert(MIN_TIMESTAMP);
            if w > *high {
                *high = w;
                self.record.watermarks.push(WatermarkEvent {
                    processing_time: self.now,
                    node: node.name.clone(),
                    watermark: w,
                    attempt: self.attempt,
                });
            }
        }
    }

    /// Reads everything delivered, one record at a time, honouring an armed crash; then
    /// finishes ended sources.
    fn pump(&mut self) -> anyhow::Result<()> {
        loop {
            let mut read = false;
            self.with_job(|job, log, _, now| {
                read = job.read_one(log, now)?;
                Ok(())
            })?;
            if !read || self.job.is_none() {
                break;
            }
            self.records += 1;
            if self.armed.is_some_and(|n| self.records >= n) {
                self.crash();
                return Ok(());
            }
        }
        self.with_job(|job, log, ended, now| job.finish_ended(log, ended, now))
    }

    fn deploy(&mut self) -> anyhow::Result<()> {
        if self.deployed {
            self.attempt += 1;
            self.high.clear();
        }
        self.deployed = true;
        let job = Job::deploy(
            self.plan,
            &self.settings,
            self.parallelism,
            &self.partitions,
            &self.sinks,
            self.storage.as_ref(),
            self.now,
        )?;
        self.job = Some(job);
        self.with_job(|job, _, _, now| job.start(now))?;
        self.pump()
    }

    /// Periodic work due exactly at `t`: watermark emission, timers, checkpoint.
    fn instant(&mut self, t: Timestamp) -> anyhow::Result<()> {
        self.now = t;
        let wm = self.settings.watermark_interval;
        if wm > 0 && t > 0 && t % wm == 0 {
            self.with_job(|job, _, _, now| job.periodic_emit(now))?;
        }
        self.with_job(|job, _, _, now| job.fire_timers(now))?;
        if let Some(ci) = self.settings.checkpoint_interval {
            if t > 0 && t % ci == 0 && self.job.as_ref().is_some_and(|j| !j.all_finished()) {
                let id = self.next_checkpoint;
                self.next_checkpoint += 1;
                let mode = self.mode_name();
                self.with_job(|job, _, _, now| job.checkpoint(id, now, mode).map(|_| ()))?;
            }
        }
        self.done_through = t;
        Ok(())
    }

    /// The next instant after `done_through` with periodic work.
    fn next_instant(&self) -> Option<Timestamp> {
        let job = self.job.as_ref().filter(|j| !j.all_finished())?;
        let after = self.done_through;
        let next_multiple = |i: i64| (after.div_euclid(i) + 1) * i;
        let mut next: Option<Timestamp> = None;
        let mut consider = |t: Timestamp| next = Some(next.map_or(t, |n: Timestamp| n.min(t)));
        if self.settings.watermark_interval > 0 {
            consider(next_multiple(self.settings.watermark_interval));
        }
        if let Some(ci) = self.settings.checkpoint_interval {
            consider(next_multiple(ci));
        }
        if let Some(t) = job.next_timer() {
            consider(t.max(after + 1));
        }
        next
    }

    /// Moves the clock through every instant with periodic work before `t`.
    fn advance_before(&mut self, t: Timestamp) -> anyhow::Result<()> {
        while let Some(next) = self.next_instant() {
            if next >= t {
                break;
            }
            self.instant(next)?;
        }
        self.now = self.now.max(t);
        Ok(())
    }

    fn step(&mut self, step: &Step) -> anyhow::Result<()> {
        let at = step.at;
        match &step.action {
            Action::Deliver {
                source,
                partition,
                rows,
            } => {
                let node = self.plan.pipeline.node(source).map(|n| &n.transform);
                if !matches!(node, Some(Transform::Read { .. })) {
                    bail!("the schedule delivers to `{source}`, which is not a Read transform of the pipeline");
                }
                let counter = self.delivered.entry(source.clone()).or_insert(0);
                let parts = self.log.entry(source.clone()).or_default();
                if parts.len() <= *partition as usize {
                    parts.resize(*partition as usize + 1, Vec::new());
                }
                for row in rows {
                    *counter += 1;
                    parts[*partition as usize].push((*counter, row.clone()));
                }
                if self.ended.contains(source) {
                    self.record.ignored_steps.push(format!(
                        "delivery at {at} ms to `{source}`: its input had already ended; the rows are kept but never read"
                    ));
                }
                self.pump()?;
            }
            Action::EndInput { source } => {
                match source {
                    Some(s) => {
                        self.ended.insert(s.clone());
                    }
                    None => {
                        for node in &self.plan.pipeline.transforms {
                            if matches!(node.transform, Transform::Read { .. }) {
                                self.ended.insert(node.name.clone());
                            }
                        }
                    }
                }
                self.pump()?;
            }
            Action::Advance => {}
            Action::CorruptCheckpoint => {
                let damaged = match &self.storage {
                    Some(storage) => storage.corrupt_newest()?,
                    None => None,
                };
                if damaged.is_none() {
                    self.record.ignored_steps.push(format!(
                        "corrupt checkpoint at {at} ms: there is no complete checkpoint to damage"
                    ));
                }
            }
            Action::Crash { point } => self.crash_at(at, point)?,
            Action::Restart { parallelism } => {
                if self.job.as_ref().is_some_and(Job::all_finished) {
                    self.record.ignored_steps.push(format!(
                        "restart at {at} ms: the job had already finished (its whole input ended); a finished Flink job is not restarted"
                    ));
                    return Ok(());
                }
                if let Some(job) = self.job.take() {
                    // A restart of a running job is a failover: it is cancelled first.
                    self.absorb_counters(&job);
                }
                self.armed = None;
                if let Some(p) = parallelism {
                    self.parallelism = (*p).max(1);
                }
                self.deploy()?;
            }
        }
        Ok(())
    }

    fn crash_at(&mut self, at: Timestamp, point: &CrashPoint) -> anyhow::Result<()> {
        let name = match point {
            CrashPoint::AfterSinkWriteBeforeCommitLog => "after-sink-write-before-commit-log",
            CrashPoint::MidBatch => "mid-batch",
            CrashPoint::BetweenPreCommitAndCommit => "between-pre-commit-and-commit",
            CrashPoint::DuringSnapshot => "during-snapshot",
            CrashPoint::AfterRecords(_) => "after-records",
        };
        match point {
            CrashPoint::AfterSinkWriteBeforeCommitLog | CrashPoint::MidBatch => {
                self.record.ignored_steps.push(format!(
                    "crash at {at} ms ({name}): the continuous runner has no such point: it runs no batches and keeps no commit log (Flink commits sink transactions when a checkpoint completes); the job kept running"
                ));
                return Ok(());
            }
            _ => {}
        }
        let Some(job) = &self.job else {
            self.record.ignored_steps.push(format!(
                "crash at {at} ms ({name}): the job was already down"
            ));
            return Ok(());
        };
        if job.all_finished() {
            self.record.ignored_steps.push(format!(
                "crash at {at} ms ({name}): the job had already finished (its whole input ended)"
            ));
            return Ok(());
        }
        match point {
            CrashPoint::AfterRecords(n) => {
                if self.records >= *n {
                    self.crash();
                } else {
                    self.armed = Some(*n);
                }
            }
            CrashPoint::BetweenPreCommitAndCommit | CrashPoint::DuringSnapshot => {
                if self.storage.is_none() {
                    self.record.ignored_steps.push(format!(
                        "crash at {at} ms ({name}): checkpointing is off (no `checkpoint_interval`), so there is no checkpoint to crash in; the job died at the step"
                    ));
                    self.crash();
                    return Ok(());
                }
                // The next checkpoint is triggered now and the job dies inside it.
                let id = self.next_checkpoint;
                self.next_checkpoint += 1;
                let mode = self.mode_name();
                if let Some(job) = self.job.as_mut() {
                    job.crash = Some(match point {
                        CrashPoint::DuringSnapshot => {
                            CheckpointCrash::DuringSnapshot(job.snapshot_victim())
                        }
                        _ => CheckpointCrash::BeforeCompletion,
                    });
                }
                self.with_job(|job, _, _, now| job.checkpoint(id, now, mode).map(|_| ()))?;
                if self.job.is_some() {
                    // The checkpoint could not reach the crash point (e.g. it did not
                    // complete); the job dies at the step all the same.
                    self.crash();
                }
            }
            _ => unreachable!("handled above"),
        }
        Ok(())
    }

    fn run(mut self, schedule: &Schedule) -> anyhow::Result<RunRecord> {
        schedule.check_order().map_err(anyhow::Error::msg)?;
        self.deploy()?;
        let mut i = 0;
        let steps = &schedule.steps;
        while i < steps.len() {
            let at = steps[i].at;
            self.advance_before(at)?;
            // Every step at this instant (arrivals first), then the instant's periodic work.
            while i < steps.len() && steps[i].at == at {
                self.step(&steps[i])?;
                i += 1;
            }
            if at > self.done_through {
                self.instant(at)?;
            }
        }
        if let Some(job) = self.job.take() {
            self.absorb_counters(&job);
        }
        let sinks = &self.sinks;
        self.record.sinks = sinks
            .names()
            .into_iter()
            .map(|n| {
                let rows = sinks.rows(&n);
                (n, rows)
            })
            .collect();
        Ok(self.record)
    }
}

/// Runs `plan` on `schedule` with the continuous runner's scheduled-run `settings`.
pub fn run_schedule(
    plan: &Plan,
    schedule: &Schedule,
    settings: &BTreeMap<String, String>,
) -> anyhow::Result<RunRecord> {
    let settings = Settings::parse(settings)?;
    let (storage, dir) = match settings.checkpoint_interval {
        Some(_) => {
            check_checkpointable(plan)?;
            let dir = tempfile::Builder::new()
                .prefix("weir-continuous-schedule-")
                .tempdir()
                .context("creating the scheduled run's checkpoint directory")?;
            let storage = CheckpointStorage::new(dir.path())?;
            (Some(storage), Some(dir))
        }
        None => (None, None),
    };
    let scheduler = Scheduler {
        plan,
        parallelism: settings.parallelism,
        settings,
        partitions: schedule.partitions(),
        sinks: SinkRegistry::default(),
        storage,
        _dir: dir,
        job: None,
        now: 0,
        done_through: 0,
        log: Log::new(),
        delivered: BTreeMap::new(),
        ended: BTreeSet::new(),
        records: 0,
        armed: None,
        next_checkpoint: 1,
        record: RunRecord::default(),
        high: BTreeMap::new(),
        attempt: 0,
        deployed: false,
    };
    scheduler.run(schedule)
}
