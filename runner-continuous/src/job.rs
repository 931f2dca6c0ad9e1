//! Deploying and running a job: one tokio task per subtask, channels wired per edge, the
//! first real failure cancels the job (Flink's full-restart failover without restarts).

use crate::channel::{credits, ChannelSender, Message};
use crate::checkpoint::{
    check_checkpointable, CheckpointConfig, CheckpointMetadata, CheckpointMode, CheckpointStorage,
    Coordinator, CoordinatorHandle, Restored,
};
use crate::clock::Clock;
use crate::graph::JobGraph;
use crate::metrics::{MetricsBoard, Progress, SubtaskMetrics};
use crate::options::{ClockMode, ContinuousOptions};
use crate::task::{
    run_operator, run_source, Chain, ChannelClosed, GateEdge, OutputGate, Subtask,
    SubtaskCheckpointing,
};
use crate::watermark::AlignmentGroup;
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_model::io::BadRecordPolicy;
use weir_model::plan::Plan;
use weir_model::runner::RunReport;
use weir_model::transform::Transform;
use weir_runner_core::io::{build_source, SinkRegistry};
use weir_runner_core::operator::BuildEnv;

/// Everything a finished continuous run produced.
#[derive(Debug, Clone)]
pub struct ContinuousRun {
    /// Counters per transform.
    pub report: RunReport,
    /// In-memory sink output.
    pub sinks: SinkRegistry,
    /// Final metrics of every subtask.
    pub metrics: Vec<SubtaskMetrics>,
    /// The job graph that ran.
    pub graph: JobGraph,
    /// Checkpoints completed during the run.
    pub checkpoints: Vec<CheckpointMetadata>,
    /// The checkpoint the run restored from.
    pub restored_from: Option<u64>,
}

/// Checkpointing for one run: settings, storage, the coordinator's handle and what was
/// restored.
struct CheckpointSetup {
    config: Arc<CheckpointConfig>,
    storage: CheckpointStorage,
    handle: CoordinatorHandle,
    restored: Option<Restored>,
    /// The id of this run's first checkpoint: after every checkpoint directory already
    /// there, complete or not, and every epoch a sink committed (an earlier run's final
    /// rows): Flink's checkpoint id counter never reuses an id, so a sink never mistakes a
    /// new transaction for one an earlier run committed under that id, and no state file of
    /// an abandoned checkpoint is mixed into a new one.
    first_id: u64,
}

/// An operator subtask's input: its queue, the head input of each channel, its credits.
struct InputQueue {
    queue: tokio::sync::mpsc::Receiver<Message>,
    inputs: Vec<usize>,
    credits: usize,
}

type Task = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>;

/// Runs `plan` to completion with `options`, in-memory sinks recording into `sinks`.
pub fn execute(
    plan: &Plan,
    options: &ContinuousOptions,
    sinks: SinkRegistry,
) -> anyhow::Result<ContinuousRun> {
    let graph = JobGraph::build_with(plan, options.parallelism, &options.transform_parallelism)
        .map_err(anyhow::Error::msg)?;
    let runtime = match options.clock {
        ClockMode::Wall => tokio::runtime::Builder::new_multi_thread()
            .enable_time()
            .build()?,
        // Deterministic mode: one thread, tasks polled in a fixed order.
        ClockMode::Manual { .. } => tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?,
    };
    let board = MetricsBoard::default();
    let started = Instant::now();
    let mut checkpoints = Vec::new();
    let mut restored_from = None;
    let result = runtime.block_on(async {
        let (setup, coordinator) = match &options.checkpoint {
            None => (None, None),
            Some(config) => {
                check_checkpointable(plan)?;
                let storage = CheckpointStorage::new(&config.dir)?;
                let restored = match config.restore {
                    None => None,
                    Some(which) => {
                        let id = match which {
                            Some(id) => id,
                            None => *storage.completed()?.last().ok_or_else(|| {
                                anyhow::anyhow!(
                                    "no completed checkpoint to restore in `{}`",
                                    config.dir.display()
                                )
                            })?,
                        };
                        let final_epoch = storage.highest_committed_epoch()?;
                        if which.is_none() && final_epoch > id {
                            anyhow::bail!(
                                "the job of `{}` finished: its sinks committed their final rows (epoch {final_epoch}) after checkpoint {id}, so restoring would write them again; run without `restore` to run the pipeline afresh",
                                config.dir.display()
                            );
                        }
                        Some(Restored::load(&storage, id, &graph, plan)?)
                    }
                };
                restored_from = restored.as_ref().map(|r| r.id);
                let vertices = graph
                    .vertices
                    .iter()
                    .map(|v| (v.head().to_string(), v.parallelism))
                    .collect();
                let subtasks = graph.vertices.iter().map(|v| v.parallelism).sum();
                let mode = match config.mode {
                    CheckpointMode::ExactlyOnce => "exactly-once",
                    CheckpointMode::AtLeastOnce => "at-least-once",
                };
                let (coordinator, handle) = Coordinator::new(
                    board.clone(),
                    storage.clone(),
                    mode.to_string(),
                    vertices,
                    subtasks,
                    config.retain,
                    restored_from.unwrap_or(0),
                );
                let first_id = storage
                    .highest_id()?
                    .max(storage.highest_committed_epoch()?)
                    .max(restored_from.unwrap_or(0))
                    + 1;
                let setup = CheckpointSetup {
                    config: Arc::new(config.clone()),
                    storage,
                    handle,
                    restored,
                    first_id,
                };
                (Some(setup), Some(tokio::spawn(coordinator.run())))
            }
        };
        let tasks = deploy(plan, &graph, options, &sinks, &board, setup.as_ref())?;
        drop(setup);
        let reporter = options.progress_json.clone().map(|path| {
            let board = board.clone();
            tokio::spawn(report_progress(path, board, started))
        });
        let outcome = run_to_end(tasks).await;
        if let Some(r) = reporter {
            r.abort();
        }
        if let Some(c) = coordinator {
            if outcome.is_ok() {
                checkpoints = c.await??;
            } else {
                c.abort();
            }
        }
        outcome
    });
    let metrics = board.snapshot();
    let progress = Progress {
        elapsed_ms: started.elapsed().as_millis() as u64,
        finished: result.is_ok(),
        subtasks: metrics.clone(),
        checkpoints: board.checkpoints(),
    };
    if let Some(path) = &options.progress_json {
        append_line(path, &progress)?;
    }
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!("\r{}", progress.line());
    }
    result?;
    Ok(ContinuousRun {
        report: report(plan, &metrics),
        sinks,
        metrics,
        graph,
        checkpoints,
        restored_from,
    })
}

fn append_line(path: &std::path::Path, progress: &Progress) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening --progress-json `{}`", path.display()))?;
    writeln!(f, "{}", serde_json::to_string(progress)?)
        .with_context(|| format!("writing --progress-json `{}`", path.display()))
}

async fn report_progress(path: std::path::PathBuf, board: MetricsBoard, started: Instant) {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let progress = Progress {
            elapsed_ms: started.elapsed().as_millis() as u64,
            finished: false,
            subtasks: board.snapshot(),
            checkpoints: board.checkpoints(),
        };
        if terminal {
            eprint!("\r{}", progress.line());
        }
        if append_line(&path, &progress).is_err() {
            return;
        }
    }
}

async fn run_to_end(tasks: Vec<Task>) -> anyhow::Result<()> {
    let mut set = tokio::task::JoinSet::new();
    for t in tasks {
        set.spawn(t);
    }
    let mut failure: Option<anyhow::Error> = None;
    while let Some(joined) = set.join_next().await {
        let error = match joined {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(e) if e.is_cancelled() => continue,
            Err(e) => anyhow::anyhow!("a subtask panicked: {e}"),
        };
        // The first failure cancels the job; a "downstream stopped" error is only a
        // consequence of another failure, so a root cause replaces it.
        let is_consequence = error.downcast_ref::<ChannelClosed>().is_some();
        match &failure {
            None => {
                failure = Some(error);
                set.abort_all();
            }
            Some(f) if f.downcast_ref::<ChannelClosed>().is_some() && !is_consequence => {
                failure = Some(error)
            }
            Some(_) => {}
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Builds every subtask with its chain, channels and gate.
fn deploy(
    plan: &Plan,
    graph: &JobGraph,
    options: &ContinuousOptions,
    sinks: &SinkRegistry,
    board: &MetricsBoard,
    checkpointing: Option<&CheckpointSetup>,
) -> anyhow::Result<Vec<Task>> {
    let two_phase = checkpointing.is_some();
    let mut global = 0usize;
    let options = Arc::new(options.clone());
    let job_clock = Arc::new(AtomicI64::new(0));
    // Input channels of every operator subtask: (edge, sending subtask) → channel id.
    let mut senders: BTreeMap<(usize, usize, usize), ChannelSender> = BTreeMap::new();
    let mut receivers: BTreeMap<(usize, usize), InputQueue> = BTreeMap::new();
    for (v, vertex) in graph.vertices.iter().enumerate() {
        if vertex.is_source {
            continue;
        }
        for s in 0..vertex.parallelism {
            let mut channels = Vec::new();
            for (ei, e) in graph.incoming(v) {
                let upstream = graph.vertices[e.from].parallelism;
                for u in 0..upstream {
                    if e.partitioner.targets(u, vertex.parallelism).contains(&s) {
                        channels.push((ei, u, e.input));
                    }
                }
            }
            let credit = credits(channels.len());
            let (tx, rx) = tokio::sync::mpsc::channel(credit);
            for (id, (ei, u, _)) in channels.iter().enumerate() {
                senders.insert(
                    (*ei, *u, s),
                    ChannelSender {
                        queue: tx.clone(),
                        channel: id,
                    },
                );
            }
            let inputs = channels.iter().map(|(_, _, input)| *input).collect();
            receivers.insert(
                (v, s),
                InputQueue {
                    queue: rx,
                    inputs,
                    credits: credit,
                },
            );
        }
    }
    let mut env = BuildEnv {
        partitions: BTreeMap::new(),
        sinks: sinks.clone(),
        columnar_state: true,
    };
    let mut tasks: Vec<Task> = Vec::new();
    // One watermark-alignment group of every source subtask, when alignment is on.
    let alignment = options.watermark_alignment_ms.map(|drift| {
        let members = graph
            .vertices
            .iter()
            .filter(|v| v.is_source)
            .map(|v| v.parallelism)
            .sum();
        AlignmentGroup::new(members, drift)
    });
    let mut source_member = 0;
    for (v, vertex) in graph.vertices.iter().enumerate() {
        let edge_collections = graph.outgoing_collections(v);
        for s in 0..vertex.parallelism {
            let gate_edges = graph
                .outgoing(v)
                .map(|(ei, e)| {
                    let receivers = graph.vertices[e.to].parallelism;
                    let list = (0..receivers)
                        .map(|t| senders.remove(&(ei, s, t)))
                        .collect();
                    GateEdge::new(e.partitioner.clone(), list)
                })
                .collect();
            let timeout = match options.clock {
                ClockMode::Wall => Some(Duration::from_millis(options.buffer_timeout_ms as u64)),
                // Deterministic mode flushes every emission: no wall-time flushes.
                ClockMode::Manual { .. } => None,
            };
            let gate = OutputGate::new(gate_edges, s, options.buffer_rows, timeout);
            let clock = match options.clock {
                ClockMode::Wall => Clock::Wall,
                ClockMode::Manual { .. } if vertex.is_source => Clock::manual_source(&job_clock),
                ClockMode::Manual { .. } => Clock::manual_job(&job_clock),
            };
            let name = vertex.name();
            if vertex.is_source {
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
                    anyhow::bail!("`{}` is not a source", node.name);
                };
                let mut source = build_source(&node.name, source, schema, bad_records)
                    .with_context(|| format!("opening source `{}`", node.name))?;
                let total = source.partitions();
                for out in plan.outputs_of(&node.name) {
                    env.partitions.insert(out.to_string(), total);
                }
                let splits = crate::graph::assigned_splits(total, vertex.parallelism, s);
                let chain = Chain::new(
                    plan,
                    &vertex.nodes,
                    &edge_collections,
                    &env,
                    &splits,
                    clock.now(),
                    two_phase,
                )
                .with_context(|| format!("building `{name}`"))?;
                let tag = match bad_records {
                    BadRecordPolicy::DeadLetter { tag } => Some(tag.clone()),
                    BadRecordPolicy::Fail => None,
                };
                if let Some(restored) = checkpointing.and_then(|c| c.restored.as_ref()) {
                    let positions = restored.positions(v);
                    for split in &splits {
                        if let Some(p) = positions.get(split) {
                            source.seek(*split, p)?;
                        }
                    }
                }
                let mut task = Subtask::new(
                    name,
                    s,
                    chain,
                    gate,
                    clock,
                    options.clone(),
                    board.clone(),
                    0,
                );
                attach_checkpointing(&mut task, v, global, checkpointing)?;
                global += 1;
                let member = alignment.clone().map(|g| (g, source_member));
                source_member += 1;
                tasks.push(Box::pin(run_source(task, source, splits, tag, member)));
            } else {
                let chain = Chain::new(
                    plan,
                    &vertex.nodes,
                    &edge_collections,
                    &env,
                    &[],
                    clock.now(),
                    two_phase,
                )
                .with_context(|| format!("building `{name}`"))?;
                let input = receivers
                    .remove(&(v, s))
                    .context("operator subtask without an input queue")?;
                let mut task = Subtask::new(
                    name,
                    s,
                    chain,
                    gate,
                    clock,
                    options.clone(),
                    board.clone(),
                    input.credits,
                );
                attach_checkpointing(&mut task, v, global, checkpointing)?;
                global += 1;
                tasks.push(Box::pin(run_operator(task, input.queue, input.inputs)));
            }
        }
    }
    Ok(tasks)
}

/// Gives a subtask its part in checkpointing; after a restore, brings back its operator
/// state and commits the pending sink transactions the sink had not committed (Flink's
/// `recoverAndCommit`), skipping those its commit markers show as done.
fn attach_checkpointing(
    task: &mut Subtask,
    vertex: usize,
    global: usize,
    setup: Option<&CheckpointSetup>,
) -> anyhow::Result<()> {
    let Some(setup) = setup else {
        return Ok(());
    };
    let mut committed = BTreeMap::new();
    for node in task.chain.sink_names() {
        let epoch = setup
            .storage
            .committed_epoch(&format!("{node}-s{}", task.index));
        committed.insert(node, epoch);
    }
    let next_id = setup.first_id;
    if let Some(restored) = &setup.restored {
        task.chain
            .restore(&restored.state(vertex, task.index))
            .with_context(|| format!("restoring `{}`", task.vertex))?;
        let now = task.clock.now();
        let done = task.chain.commit(restored.id, now, &|n| {
            committed.get(n).copied().unwrap_or(0)
        })?;
        for (sink, epoch) in done {
            setup
                .storage
                .record_commit(&format!("{sink}-s{}", task.index), epoch)?;
            committed.insert(sink, epoch);
        }
    }
    // What this run commits from here on comes after its first checkpoint id (its final rows
    // too, when it ends before taking one).
    for epoch in committed.values_mut() {
        *epoch = (*epoch).max(next_id - 1);
    }
    task.checkpointing = Some(SubtaskCheckpointing {
        config: setup.config.clone(),
        storage: setup.storage.clone(),
        coordinator: setup.handle.clone(),
        vertex,
        global,
        next_id,
        committed,
    });
    Ok(())
}

/// Sums the subtasks' counters into the runner-neutral report.
fn report(plan: &Plan, metrics: &[SubtaskMetrics]) -> RunReport {
    let mut report = RunReport::default();
    for node in &plan.pipeline.transforms {
        let all = metrics
            .iter()
            .flat_map(|s| s.nodes.iter())
            .filter(|n| n.node == node.name);
        let (mut written, mut late, mut dead) = (0, 0, 0);
        for n in all {
            written += n.rows_written;
            late += n.late_dropped;
            dead += n.dead_letters;
        }
        if matches!(node.transform, Transform::Write { .. }) {
            report.rows_written.insert(node.name.clone(), written);
        }
        if late > 0 {
            report.late_dropped.insert(node.name.clone(), late);
        }
        if dead > 0 {
            report.dead_letters.insert(node.name.clone(), dead);
        }
    }
    report
}
