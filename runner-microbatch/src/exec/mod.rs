//! Executing one micro-batch: the plan's nodes as stages in topological order. Narrow
//! stages run one task per source partition on the rayon pool; keyed stateful stages
//! (aggregations, joins, deduplication, stateful ParDo) route rows through the keyed exchange
//! ([`exchange`]) to one task per shard ([`sharded`]); sinks receive everything, then commit
//! with the batch id.

pub mod aggregate;
pub mod columnar_combine;
pub mod dedup;
pub mod exchange;
pub mod panes;
pub mod sharded;
pub mod stateful;
pub mod stateless;

use crate::error::{MicroBatchError, Result};
use crate::state::{RestoredState, StateChanges};
use aggregate::WindowedAggregate;
use arrow::record_batch::RecordBatch;
use columnar_combine::ColumnarCombine;
use dedup::DedupStage;
use serde::Serialize;
use sharded::Sharded;
use stateful::StatefulStage;
use stateless::NarrowStage;
use std::collections::{BTreeMap, BTreeSet};
use weir_model::io::{BadRecordPolicy, DeliveryGuarantee};
use weir_model::plan::Plan;
use weir_model::time::Timestamp;
use weir_model::transform::Transform;
use weir_runner_core::batch;
use weir_runner_core::io::{build_source, SinkRegistry, Source};
use weir_runner_core::operator::{
    AssertOperator, BuildEnv, Operator, OperatorContext, WriteOperator,
};
use weir_runner_core::ExecError;

/// What a stateful stage sees of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchContext {
    /// The batch id.
    pub batch_id: u64,
    /// The batch's processing time.
    pub batch_timestamp: Timestamp,
    /// Late rows are those at or below this (the previous batch's watermark).
    pub late_filter_watermark: Option<Timestamp>,
    /// Windows ending at or below this are emitted and evicted (this batch's watermark).
    pub eviction_watermark: Option<Timestamp>,
}

/// What a stateful stage produced in a batch.
#[derive(Debug, Default)]
pub struct StageOutput {
    /// Outputs by tag.
    pub outputs: Vec<(Option<String>, RecordBatch)>,
    /// Rows dropped as late.
    pub rows_dropped_by_watermark: u64,
    /// Rows of state after the batch.
    pub state_rows: u64,
}

/// Counters of one node over one batch (or the whole query).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeMetrics {
    /// Rows read (sources) or received.
    pub input_rows: u64,
    /// Rows emitted on the main output.
    pub output_rows: u64,
    /// Late rows dropped by a stateful operator.
    pub rows_dropped_by_watermark: u64,
    /// Rows filtered because their session gap was null or <= 0.
    pub rows_dropped_by_session_gap: u64,
    /// Records routed to dead-letter outputs.
    pub dead_letters: u64,
    /// Rows written by a sink.
    pub rows_written: u64,
    /// Rows of state after the batch.
    pub state_rows: u64,
    /// Approximate bytes of state after the batch (serialized size of the changed entries
    /// is not tracked; this is the row count times an estimate per row).
    pub state_bytes: u64,
}

impl NodeMetrics {
    fn add(&mut self, o: &NodeMetrics) {
        self.input_rows += o.input_rows;
        self.output_rows += o.output_rows;
        self.rows_dropped_by_watermark += o.rows_dropped_by_watermark;
        self.rows_dropped_by_session_gap += o.rows_dropped_by_session_gap;
        self.dead_letters += o.dead_letters;
        self.rows_written += o.rows_written;
        self.state_rows = o.state_rows;
        self.state_bytes = o.state_bytes;
    }
}

/// A source node: its readers and which partitions have ended.
///
/// Like Spark's per-partition read tasks (and the continuous runner's source subtasks), a
/// source is opened once per reader, `min(partitions, parallelism)` times; partition `p` is
/// read by reader `p mod readers`, and the readers poll their partitions in parallel.
pub struct SourceNode {
    readers: Vec<Box<dyn Source>>,
    /// Per partition: polled to its end.
    pub ended: Vec<bool>,
    dead_letter_tag: Option<String>,
}

/// A placeholder while a source is being wrapped.
struct NoSource;

impl Source for NoSource {
    fn partitions(&self) -> u32 {
        0
    }
    fn poll(
        &mut self,
        _partition: u32,
        _max_rows: usize,
        _now: Timestamp,
    ) -> weir_runner_core::ExecResult<weir_runner_core::io::SourcePoll> {
        Ok(weir_runner_core::io::SourcePoll::Ended)
    }
    fn position(&self, _partition: u32) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn seek(
        &mut self,
        _partition: u32,
        _position: &serde_json::Value,
    ) -> weir_runner_core::ExecResult<()> {
        Ok(())
    }
}

/// What one partition gave a batch: its rows (and dead letters), where it started and ended.
pub struct PartitionRead {
    /// Data and dead letters, in poll order.
    pub batches: Vec<(RecordBatch, Option<RecordBatch>)>,
    /// Rows read, dead letters included.
    pub rows: u64,
    /// Position before the first row read.
    pub start: serde_json::Value,
    /// Position after the last row read.
    pub end: serde_json::Value,
}

impl SourceNode {
    /// The reader of partition `p`.
    pub fn reader(&mut self, p: u32) -> &mut dyn Source {
        let n = self.readers.len();
        self.readers[p as usize % n].as_mut()
    }

    /// The position after the last row read from partition `p`.
    pub fn position(&self, p: u32) -> serde_json::Value {
        self.readers[p as usize % self.readers.len()].position(p)
    }

    /// Moves partition `p` to `position` (in its reader).
    pub fn seek(
        &mut self,
        p: u32,
        position: &serde_json::Value,
    ) -> weir_runner_core::ExecResult<()> {
        self.reader(p).seek(p, position)
    }

    /// Tells every reader whether it is re-reading logged ranges.
    pub fn set_replaying(&mut self, replaying: bool) {
        self.readers
            .iter_mut()
            .for_each(|r| r.set_replaying(replaying));
    }

    /// Replaces every reader with what `wrap` makes of it.
    pub fn wrap(
        &mut self,
        name: &str,
        wrap: &mut impl FnMut(&str, Box<dyn Source>) -> Box<dyn Source>,
    ) {
        for r in &mut self.readers {
            let inner = std::mem::replace(r, Box::new(NoSource));
            *r = wrap(name, inner);
        }
    }

    /// Reads up to `limit` rows (`poll_rows` per poll) from every partition, the readers in
    /// parallel on `pool`; updates `ended`. Results are in partition order.
    fn read(
        &mut self,
        limit: usize,
        poll_rows: usize,
        now: Timestamp,
        pool: &rayon::ThreadPool,
    ) -> Result<Vec<PartitionRead>> {
        use rayon::prelude::*;
        let n = self.readers.len();
        let parts = self.ended.len();
        let per_reader: Vec<Result<Vec<(usize, PartitionRead, bool)>>> = pool.install(|| {
            self.readers
                .par_iter_mut()
                .enumerate()
                .map(|(i, reader)| {
                    (i..parts)
                        .step_by(n)
                        .map(|p| read_partition(reader.as_mut(), p as u32, limit, poll_rows, now))
                        .collect()
                })
                .collect()
        });
        let mut reads: Vec<Option<PartitionRead>> = (0..parts).map(|_| None).collect();
        for r in per_reader {
            for (p, read, ended) in r? {
                self.ended[p] = ended;
                reads[p] = Some(read);
            }
        }
        reads
            .into_iter()
            .enumerate()
            .map(|(p, r)| {
                r.ok_or_else(|| {
                    MicroBatchError::Exec(ExecError::Internal(format!(
                        "partition {p} was read by no reader"
                    )))
                })
            })
            .collect()
    }
}

/// Polls partition `p` of `reader` until `limit` rows, no more for now, or its end; also
/// returns whether it ended.
fn read_partition(
    reader: &mut dyn Source,
    p: u32,
    limit: usize,
    poll_rows: usize,
    now: Timestamp,
) -> Result<(usize, PartitionRead, bool)> {
    let start = reader.position(p);
    let mut batches = Vec::new();
    let mut rows = 0usize;
    let mut ended = false;
    while rows < limit {
        match reader.poll(p, (limit - rows).min(poll_rows), now)? {
            weir_runner_core::io::SourcePoll::Batch { data, dead_letters } => {
                rows += data.num_rows() + dead_letters.as_ref().map_or(0, |d| d.num_rows());
                batches.push((data, dead_letters));
            }
            weir_runner_core::io::SourcePoll::Pending => break,
            weir_runner_core::io::SourcePoll::Ended => {
                ended = true;
                break;
            }
        }
    }
    let read = PartitionRead {
        batches,
        rows: rows as u64,
        start,
        end: reader.position(p),
    };
    Ok((p as usize, read, ended))
}

enum NodeKind {
    Source(SourceNode),
    Narrow(NarrowStage),
    /// Aggregations, joins, deduplication and stateful ParDo: keyed state, sharded.
    Keyed(Box<Sharded>),
    Write(WriteOperator),
    Assert(AssertOperator),
}

struct GraphNode {
    name: String,
    inputs: Vec<String>,
    assigns_timestamps: bool,
    kind: NodeKind,
    totals: NodeMetrics,
}

/// Rows a batch read: per source node, per partition, the data and dead letters.
pub type SourceData = BTreeMap<String, Vec<(u32, RecordBatch, Option<RecordBatch>)>>;

/// What running a batch's stages gave.
#[derive(Debug, Default)]
pub struct BatchResult {
    /// Per watermark-defining node that saw rows: the largest event time.
    pub max_event_times: BTreeMap<String, Timestamp>,
    /// Per node, this batch's counters.
    pub metrics: BTreeMap<String, NodeMetrics>,
}

/// The executable graph of a plan.
pub struct Graph {
    plan: Plan,
    nodes: Vec<GraphNode>,
    env: BuildEnv,
    pool: rayon::ThreadPool,
}

/// Estimated bytes per state row for progress reports (the state is kept as typed entries;
/// its exact serialized size is only known when it is written).
const STATE_ROW_BYTES_ESTIMATE: u64 = 256;

impl Graph {
    /// Builds every node; in-memory sinks record into `sinks`; tasks run on `parallelism`
    /// threads.
    pub fn new(plan: &Plan, sinks: SinkRegistry, parallelism: usize) -> Result<Self> {
        let env = BuildEnv {
            partitions: BTreeMap::new(),
            sinks,
            columnar_state: false,
        };
        let mut nodes = Vec::new();
        for node in &plan.pipeline.transforms {
            let kind = match &node.transform {
                Transform::Read {
                    source,
                    schema,
                    bad_records,
                } => {
                    let first = build_source(&node.name, source, schema, bad_records)?;
                    let parts = first.partitions() as usize;
                    let mut readers = vec![first];
                    for _ in 1..parts.min(parallelism).max(1) {
                        let reader = build_source(&node.name, source, schema, bad_records)?;
                        // A source that lists its partitions when opened (a directory) may
                        // see another list the second time: then one reader reads them all.
                        if reader.partitions() as usize != parts {
                            readers.truncate(1);
                            break;
                        }
                        readers.push(reader);
                    }
                    NodeKind::Source(SourceNode {
                        readers,
                        ended: vec![false; parts],
                        dead_letter_tag: match bad_records {
                            BadRecordPolicy::DeadLetter { tag } => Some(tag.clone()),
                            BadRecordPolicy::Fail => None,
                        },
                    })
                }
                Transform::Combine { .. }
                | Transform::GroupByKey { .. }
                | Transform::TopN { .. }
                | Transform::Join { .. }
                | Transform::CoGroupByKey { .. } => {
                    NodeKind::Keyed(Box::new(Sharded::new(plan, node, parallelism, || {
                        Ok(match ColumnarCombine::new(plan, node)? {
                            Some(c) => Box::new(c),
                            None => Box::new(WindowedAggregate::new(plan, node)?),
                        })
                    })?))
                }
                Transform::StatefulParDo { .. } => {
                    NodeKind::Keyed(Box::new(Sharded::new(plan, node, parallelism, || {
                        Ok(Box::new(StatefulStage::new(plan, node)?))
                    })?))
                }
                Transform::Dedup { keys, ttl } => {
                    NodeKind::Keyed(Box::new(Sharded::new(plan, node, parallelism, || {
                        Ok(Box::new(DedupStage::new(&node.name, keys.clone(), *ttl)))
                    })?))
                }
                Transform::Write { .. } => {
                    NodeKind::Write(WriteOperator::new(plan, node, &env.sinks)?)
                }
                Transform::AssertEqual { .. } => NodeKind::Assert(AssertOperator::new(plan, node)?),
                Transform::Filter { .. }
                | Transform::Project { .. }
                | Transform::Explode { .. }
                | Transform::ParDo { .. }
                | Transform::MapBatches { .. }
                | Transform::Flatten
                | Transform::AssignTimestamps { .. }
                | Transform::WindowInto { .. } => NodeKind::Narrow(NarrowStage::new(node)),
            };
            nodes.push(GraphNode {
                name: node.name.clone(),
                inputs: node.inputs.clone(),
                assigns_timestamps: matches!(node.transform, Transform::AssignTimestamps { .. }),
                kind,
                totals: NodeMetrics::default(),
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(parallelism.max(1))
            .thread_name(|i| format!("weir-microbatch-{i}"))
            .build()
            .map_err(|e| {
                MicroBatchError::Options(format!("cannot start {parallelism} worker threads: {e}"))
            })?;
        Ok(Graph {
            plan: plan.clone(),
            nodes,
            env,
            pool,
        })
    }

    /// The source nodes, by name.
    pub fn sources_mut(&mut self) -> impl Iterator<Item = (&str, &mut SourceNode)> {
        self.nodes.iter_mut().filter_map(|n| match &mut n.kind {
            NodeKind::Source(s) => Some((n.name.as_str(), s)),
            _ => None,
        })
    }

    /// Reads up to `limit` rows per partition from every source (`poll_rows` per poll),
    /// each source's readers in parallel: per source node, per partition, what it read.
    pub fn read_sources(
        &mut self,
        limit: usize,
        poll_rows: usize,
        now: Timestamp,
    ) -> Result<Vec<(String, Vec<PartitionRead>)>> {
        let mut out = Vec::new();
        for n in &mut self.nodes {
            if let NodeKind::Source(s) = &mut n.kind {
                out.push((n.name.clone(), s.read(limit, poll_rows, now, &self.pool)?));
            }
        }
        Ok(out)
    }

    /// Puts every aggregation in complete output mode.
    pub fn set_complete_mode(&mut self) {
        for n in &mut self.nodes {
            if let NodeKind::Keyed(a) = &mut n.kind {
                a.set_complete();
            }
        }
    }

    /// Whether some stage keeps state across batches (no-data batches matter only then).
    pub fn has_stateful_stages(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| matches!(n.kind, NodeKind::Keyed(_)))
    }

    /// Whether some stage has work due by processing time at `now` (a processing-time timer
    /// or pane): Spark runs no-data batches for processing-time timeouts.
    pub fn processing_time_due(&self, now: Timestamp) -> bool {
        self.nodes.iter().any(|n| match &n.kind {
            NodeKind::Keyed(k) => k.processing_time_due(now),
            _ => false,
        })
    }

    /// Names of the stateful stages.
    pub fn stateful_stages(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.kind, NodeKind::Keyed(_)))
            .map(|n| n.name.clone())
            .collect()
    }

    /// Names of the sink nodes.
    pub fn sinks(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.kind, NodeKind::Write(_)))
            .map(|n| n.name.clone())
            .collect()
    }

    /// What each sink guarantees on replay.
    pub fn sink_guarantees(&self) -> BTreeMap<String, DeliveryGuarantee> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Write(w) => Some((n.name.clone(), w.guarantee())),
                _ => None,
            })
            .collect()
    }

    /// Query-wide counters per node.
    pub fn totals(&self) -> BTreeMap<String, NodeMetrics> {
        self.nodes
            .iter()
            .map(|n| (n.name.clone(), n.totals.clone()))
            .collect()
    }

    /// Runs every stage over the batch's rows. Sinks in `skip_sinks` (they committed this
    /// batch id before a restart) receive nothing.
    pub fn run_batch(
        &mut self,
        data: SourceData,
        ctx: &BatchContext,
        skip_sinks: &BTreeSet<String>,
    ) -> Result<BatchResult> {
        let mut result = BatchResult::default();
        let mut collections: BTreeMap<String, Vec<(u32, RecordBatch)>> = BTreeMap::new();
        // A collection is dropped once its last consumer has taken it, so a batch's
        // intermediate rows are not all held until the batch ends.
        let mut last_use: BTreeMap<String, usize> = BTreeMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for c in &n.inputs {
                last_use.insert(c.clone(), i);
            }
        }
        let mut data = data;
        for i in 0..self.nodes.len() {
            let name = self.nodes[i].name.clone();
            let mut m = NodeMetrics::default();
            let inputs: Vec<(usize, u32, RecordBatch)> = self.nodes[i]
                .inputs
                .iter()
                .enumerate()
                .flat_map(|(idx, c)| {
                    collections
                        .get(c)
                        .into_iter()
                        .flatten()
                        .map(move |(p, b)| (idx, *p, b.clone()))
                })
                .collect();
            for c in &self.nodes[i].inputs {
                if last_use.get(c) == Some(&i) {
                    collections.remove(c);
                }
            }
            m.input_rows = inputs.iter().map(|(_, _, b)| b.num_rows() as u64).sum();
            let mut produced: Vec<(u32, Option<String>, RecordBatch)> = Vec::new();
            let node = &mut self.nodes[i];
            match &mut node.kind {
                NodeKind::Source(s) => {
                    for (p, b, dead) in data.remove(&name).unwrap_or_default() {
                        m.input_rows += b.num_rows() as u64;
                        if let Some(d) = dead {
                            m.dead_letters += d.num_rows() as u64;
                            produced.push((p, s.dead_letter_tag.clone(), d));
                        }
                        produced.push((p, None, b));
                    }
                }
                NodeKind::Narrow(stage) => {
                    if !inputs.is_empty() {
                        let parts = inputs
                            .iter()
                            .map(|(_, p, _)| *p as usize + 1)
                            .max()
                            .unwrap_or(1);
                        let mut grouped: Vec<Vec<(usize, RecordBatch)>> = vec![Vec::new(); parts];
                        for (idx, p, b) in inputs {
                            grouped[p as usize].push((idx, b));
                        }
                        let tasks = stage.run(
                            &self.plan,
                            &self.env,
                            &self.pool,
                            grouped,
                            ctx.batch_timestamp,
                        )?;
                        for (p, t) in tasks.into_iter().enumerate() {
                            m.dead_letters += t.dead_letters;
                            m.rows_dropped_by_session_gap += t.rows_dropped_by_session_gap;
                            produced
                                .extend(t.outputs.into_iter().map(|(tag, b)| (p as u32, tag, b)));
                        }
                    }
                }
                NodeKind::Keyed(f) => {
                    let out = f.process(
                        inputs.into_iter().map(|(idx, _, b)| (idx, b)).collect(),
                        ctx,
                        &self.pool,
                    )?;
                    absorb_stage(&mut m, &mut produced, out);
                }
                NodeKind::Write(w) => {
                    if !skip_sinks.contains(&name) {
                        let mut octx = OperatorContext::new(
                            &name,
                            ctx.batch_timestamp,
                            weir_model::time::MIN_TIMESTAMP,
                        );
                        for (_, _, b) in inputs {
                            w.process_batch(0, b, &mut octx)?;
                        }
                        m.rows_written = octx.metrics.rows_written;
                    }
                }
                NodeKind::Assert(a) => {
                    let mut octx = OperatorContext::new(
                        &name,
                        ctx.batch_timestamp,
                        weir_model::time::MIN_TIMESTAMP,
                    );
                    for (_, _, b) in inputs {
                        a.process_batch(0, b, &mut octx)?;
                    }
                }
            }
            if node.assigns_timestamps {
                let max = produced
                    .iter()
                    .filter(|(_, tag, _)| tag.is_none())
                    .filter_map(|(_, _, b)| batch::max_ts(b))
                    .max();
                if let Some(max) = max {
                    result.max_event_times.insert(name.clone(), max);
                }
            }
            m.output_rows = produced
                .iter()
                .filter(|(_, t, _)| t.is_none())
                .map(|(_, _, b)| b.num_rows() as u64)
                .sum();
            m.state_bytes = m.state_rows * STATE_ROW_BYTES_ESTIMATE;
            node.totals.add(&m);
            for (p, tag, b) in produced {
                let collection = match tag {
                    None => name.clone(),
                    Some(t) => format!("{name}.{t}"),
                };
                // Consumed by a later node only (the graph is in topological order).
                if last_use.get(&collection).is_some_and(|last| *last > i) {
                    collections.entry(collection).or_default().push((p, b));
                }
            }
            result.metrics.insert(name, m);
        }
        Ok(result)
    }

    /// Commits every sink (except `skip`) with epoch `batch_id`.
    pub fn commit_sinks(
        &mut self,
        batch_id: u64,
        now: Timestamp,
        skip: &BTreeSet<String>,
    ) -> Result<Vec<String>> {
        let mut committed = Vec::new();
        for n in &mut self.nodes {
            if let NodeKind::Write(w) = &mut n.kind {
                if !skip.contains(&n.name) {
                    w.commit(batch_id, now)?;
                    committed.push(n.name.clone());
                }
            }
        }
        Ok(committed)
    }

    /// Each stateful stage's changes since the last call, with its whole state when
    /// `want_full(name)` says a snapshot is due.
    pub fn take_state_changes(
        &mut self,
        want_full: impl Fn(&str) -> bool,
    ) -> Result<Vec<(String, StateChanges)>> {
        let mut out = Vec::new();
        for n in &mut self.nodes {
            if let NodeKind::Keyed(k) = &mut n.kind {
                out.push((
                    n.name.clone(),
                    k.take_changes(want_full(&n.name), &self.pool)?,
                ));
            }
        }
        Ok(out)
    }

    /// Replaces stage `name`'s state with a restored version.
    pub fn restore_state(&mut self, name: &str, state: RestoredState) -> Result<()> {
        for n in &mut self.nodes {
            if n.name == name {
                if let NodeKind::Keyed(k) = &mut n.kind {
                    return k.restore(state);
                }
            }
        }
        Err(MicroBatchError::Exec(ExecError::Internal(format!(
            "no stateful stage `{name}`"
        ))))
    }

    /// Rows of state per stateful stage.
    pub fn state_rows(&self) -> BTreeMap<String, u64> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Keyed(k) => Some((n.name.clone(), k.state_rows())),
                _ => None,
            })
            .collect()
    }

    /// End of the query: assertions check what they received.
    pub fn close(&mut self, now: Timestamp) -> Result<()> {
        for n in &mut self.nodes {
            if let NodeKind::Assert(a) = &mut n.kind {
                let mut ctx = OperatorContext::new(&n.name, now, weir_model::time::MAX_TIMESTAMP);
                a.on_close(&mut ctx)?;
            }
        }
        Ok(())
    }
}

fn absorb_stage(
    m: &mut NodeMetrics,
    produced: &mut Vec<(u32, Option<String>, RecordBatch)>,
    out: StageOutput,
) {
    m.rows_dropped_by_watermark += out.rows_dropped_by_watermark;
    m.state_rows = out.state_rows;
    produced.extend(out.outputs.into_iter().map(|(t, b)| (0, t, b)));
}
