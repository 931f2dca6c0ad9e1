//! One subtask's chain of operators (Flink's `OperatorChain`): records pass between chained
//! operators by direct calls, in arrival order; what leaves the chain is collected as an
//! ordered list of [`Outgoing`] items for the subtask to send.
//!
//! Watermark rules applied here:
//! - an operator's emitted rows are queued out *before* its new watermark, so a fired window
//!   is never overtaken by the watermark that fired it (Flink emits window results from the
//!   timer callback before forwarding the watermark);
//! - runner-core operators get the Beam-convention watermark
//!   ([`crate::watermark::to_operator_watermark`]); their output watermark is converted back;
//! - `AssignTimestamps` is Flink's timestamp/watermark assigner: it swallows upstream
//!   watermarks (except the final `MAX`) and emits its own, periodically, from its
//!   per-split generators ([`SplitWatermarks`]);
//! - idleness is forwarded: an idle input makes every downstream operator idle.

use crate::checkpoint::{SubtaskState, TwoPhaseCommitSink};
use crate::metrics::NodeMetrics;
use crate::watermark::{from_operator_watermark, to_operator_watermark, SplitWatermarks};
use arrow::record_batch::RecordBatch;
use std::collections::{BTreeMap, VecDeque};
use weir_model::plan::Plan;
use weir_model::time::{Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};
use weir_model::transform::Transform;
use weir_runner_core::operator::DeferredSnapshot;
use weir_runner_core::operator::{
    build_operator, BuildEnv, Operator, OperatorContext, WriteOperator,
};
use weir_runner_core::ExecResult;

/// A node's event-time status (Flink's watermark plus `WatermarkStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeStatus {
    /// Output watermark (Flink convention).
    pub watermark: Timestamp,
    /// Idle: says nothing about progress for now.
    pub idle: bool,
}

impl NodeStatus {
    /// Active at `watermark`.
    pub fn at(watermark: Timestamp) -> Self {
        NodeStatus {
            watermark,
            idle: false,
        }
    }
}

/// Something leaving the chain, in order.
#[derive(Debug)]
pub enum Outgoing {
    /// Rows on the output edge `edge` (index into the subtask's output edges).
    Data {
        /// Output edge.
        edge: usize,
        /// Rows.
        batch: RecordBatch,
    },
    /// New event-time status of the output edge `edge`.
    Status {
        /// Output edge.
        edge: usize,
        /// The status.
        status: NodeStatus,
    },
}

enum Kind {
    /// The chain's source: emits what the subtask polls; status set by the subtask.
    Source,
    /// A runner-core operator.
    Operator(Box<dyn Operator>),
    /// `AssignTimestamps`: runner-core's operator sets `__ts`; watermarks come from the
    /// per-split generators.
    Assign {
        op: Box<dyn Operator>,
        watermarks: SplitWatermarks,
    },
    /// A `Write` behind two-phase commit (checkpointed runs).
    Sink(Box<TwoPhaseCommitSink>),
}

struct Node {
    name: String,
    /// The chained producer (`None` for the head).
    producer: Option<usize>,
    kind: Kind,
    status: NodeStatus,
    /// Last input watermark handed to the operator (Flink convention).
    last_input: Timestamp,
    metrics: NodeMetrics,
}

/// A chain's state taken at a barrier: operators' state copied out, not yet rendered (see
/// [`DeferredSnapshot`]), so that rendering and writing it do not stop processing.
#[derive(Debug, Default)]
pub struct PendingState {
    /// Transform → its state.
    pub operators: BTreeMap<String, DeferredSnapshot>,
}

impl PendingState {
    /// The state as written to a checkpoint, with the sources' `positions`.
    pub fn render(self, positions: BTreeMap<u32, serde_json::Value>) -> ExecResult<SubtaskState> {
        let mut state = SubtaskState {
            positions,
            ..SubtaskState::default()
        };
        for (name, value) in self.operators {
            state.operators.insert(name, value.render()?);
        }
        Ok(state)
    }
}

/// The operators of one subtask.
pub struct Chain {
    nodes: Vec<Node>,
    /// Collection → chained consumers (node, input).
    internal: BTreeMap<String, Vec<(usize, usize)>>,
    /// Collection → output edges.
    external: BTreeMap<String, Vec<usize>>,
    /// Node → output edges of any of its collections.
    node_edges: Vec<Vec<usize>>,
    queue: VecDeque<(usize, usize, u32, RecordBatch)>,
    outgoing: Vec<Outgoing>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        f.debug_struct("Chain").field("nodes", &names).finish()
    }
}

impl Chain {
    /// Builds the chain of `names` (head first). `edges` lists the collections leaving the
    /// chain, by output edge index. `splits` are the source splits this subtask reads (for
    /// the generators of a chained `AssignTimestamps`); `now` is the start time. With
    /// `two_phase`, sinks write through a [`TwoPhaseCommitSink`].
    pub fn new(
        plan: &Plan,
        names: &[String],
        edges: &[String],
        env: &BuildEnv,
        splits: &[u32],
        now: Timestamp,
        two_phase: bool,
    ) -> ExecResult<Chain> {
        let mut nodes: Vec<Node> = Vec::new();
        let mut internal: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
        let position = |nodes: &[Node], name: &str| nodes.iter().position(|n| n.name == name);
        for (i, name) in names.iter().enumerate() {
            let node = plan.pipeline.node(name).ok_or_else(|| {
                weir_runner_core::ExecError::Internal(format!("no transform `{name}`"))
            })?;
            let producer = if i == 0 {
                None
            } else {
                let c = &node.inputs[0];
                let p = position(&nodes, weir_model::pipeline::split_collection(c).0);
                internal.entry(c.clone()).or_default().push((i, 0));
                p
            };
            let in_source_chain = matches!(nodes.first().map(|n| &n.kind), Some(Kind::Source));
            let kind = match &node.transform {
                Transform::Read { .. } => Kind::Source,
                Transform::AssignTimestamps { watermark, .. } => {
                    // After an exchange the rows carry no split: the assigner then keeps one
                    // generator for the subtask (Flink's `assignTimestampsAndWatermarks`).
                    let splits: Vec<u32> = if in_source_chain {
                        splits.to_vec()
                    } else {
                        vec![0]
                    };
                    Kind::Assign {
                        op: build_operator(plan, node, env)?,
                        watermarks: SplitWatermarks::new(watermark.clone(), &splits, now),
                    }
                }
                // A sink that claims only at-least-once has no transaction to take part in:
                // it writes as rows arrive, and a restore replays into it again.
                Transform::Write { sink, .. }
                    if two_phase && sink.guarantee().is_exactly_once() =>
                {
                    let schema = plan
                        .collection(&node.inputs[0])
                        .map(|c| c.schema.clone())
                        .unwrap_or_default();
                    Kind::Sink(Box::new(TwoPhaseCommitSink::new(
                        WriteOperator::new(plan, node, &env.sinks)?,
                        schema,
                    )))
                }
                _ => Kind::Operator(build_operator(plan, node, env)?),
            };
            nodes.push(Node {
                name: name.clone(),
                producer,
                kind,
                status: NodeStatus::at(MIN_TIMESTAMP),
                last_input: MIN_TIMESTAMP,
                metrics: NodeMetrics {
                    node: name.clone(),
                    ..Default::default()
                },
            });
        }
        let mut external: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut node_edges = vec![Vec::new(); nodes.len()];
        for (e, collection) in edges.iter().enumerate() {
            external.entry(collection.clone()).or_default().push(e);
            let producer = weir_model::pipeline::split_collection(collection).0;
            if let Some(p) = position(&nodes, producer) {
                node_edges[p].push(e);
            }
        }
        Ok(Chain {
            nodes,
            internal,
            external,
            node_edges,
            queue: VecDeque::new(),
            outgoing: Vec::new(),
        })
    }

    /// Rows arriving on the head's input `input` from a channel.
    pub fn deliver(&mut self, input: usize, batch: RecordBatch, now: Timestamp) -> ExecResult<()> {
        self.queue.push_back((0, input, 0, batch));
        self.drain(now)
    }

    /// Rows polled from source split `split` (or its dead letters, `tag`), emitted by the head.
    pub fn emit_from_source(
        &mut self,
        tag: Option<&str>,
        batch: RecordBatch,
        split: u32,
        now: Timestamp,
    ) -> ExecResult<()> {
        self.nodes[0].metrics.records_out += batch.num_rows() as u64;
        if tag.is_some() {
            self.nodes[0].metrics.dead_letters += batch.num_rows() as u64;
        }
        self.route(0, tag, batch, split);
        self.drain(now)
    }

    /// Source split `split` has no more data: chained assigners stop waiting for it.
    pub fn split_finished(&mut self, split: u32) {
        for n in &mut self.nodes {
            if let Kind::Assign { watermarks, .. } = &mut n.kind {
                watermarks.on_split_finished(split);
            }
        }
    }

    fn route(&mut self, from: usize, tag: Option<&str>, batch: RecordBatch, partition: u32) {
        let collection = match tag {
            None => self.nodes[from].name.clone(),
            Some(t) => format!("{}.{t}", self.nodes[from].name),
        };
        if let Some(consumers) = self.internal.get(&collection) {
            for &(node, input) in consumers {
                self.queue
                    .push_back((node, input, partition, batch.clone()));
            }
        }
        if let Some(edges) = self.external.get(&collection) {
            for &edge in edges {
                self.outgoing.push(Outgoing::Data {
                    edge,
                    batch: batch.clone(),
                });
            }
        }
    }

    fn context(&self, i: usize, now: Timestamp) -> OperatorContext {
        let input = self.input_status(i).watermark;
        OperatorContext::new(
            self.nodes[i].name.clone(),
            now,
            to_operator_watermark(input),
        )
    }

    fn input_status(&self, i: usize) -> NodeStatus {
        match self.nodes[i].producer {
            Some(p) => self.nodes[p].status,
            None => NodeStatus {
                watermark: self.nodes[i].last_input,
                idle: false,
            },
        }
    }

    /// Takes what an operator emitted into its context, routing it on.
    fn absorb(&mut self, i: usize, ctx: &mut OperatorContext, partition: u32) {
        let m = std::mem::take(&mut ctx.metrics);
        let nm = &mut self.nodes[i].metrics;
        nm.late_dropped += m.late_dropped;
        nm.dead_letters += m.dead_letters;
        nm.rows_written += m.rows_written;
        for (tag, batch) in ctx.take_outputs() {
            self.nodes[i].metrics.records_out += batch.num_rows() as u64;
            if let Kind::Assign { watermarks, .. } = &mut self.nodes[i].kind {
                if let Some(max) = weir_runner_core::batch::max_ts(&batch) {
                    watermarks.on_event(partition, max, ctx.processing_time);
                }
            }
            self.route(i, tag.as_deref(), batch, partition);
        }
    }

    fn drain(&mut self, now: Timestamp) -> ExecResult<()> {
        while let Some((i, input, partition, batch)) = self.queue.pop_front() {
            let mut ctx = self.context(i, now);
            ctx.partition = partition;
            self.nodes[i].metrics.records_in += batch.num_rows() as u64;
            match &mut self.nodes[i].kind {
                Kind::Operator(op) | Kind::Assign { op, .. } => {
                    op.process_batch(input, batch, &mut ctx)?
                }
                Kind::Sink(sink) => sink.write(batch),
                Kind::Source => {}
            }
            self.absorb(i, &mut ctx, partition);
        }
        Ok(())
    }

    /// Recomputes every node's status in chain order with the head's input status `head`
    /// (for a source chain: the source's own status). `periodic` marks a periodic watermark
    /// emit, the only time assigners emit. Status changes are queued for the output edges
    /// after the rows they follow.
    pub fn advance(&mut self, head: NodeStatus, periodic: bool, now: Timestamp) -> ExecResult<()> {
        for i in 0..self.nodes.len() {
            let input = if i == 0 { head } else { self.input_status(i) };
            let before = self.nodes[i].status;
            let after = match &mut self.nodes[i].kind {
                Kind::Source | Kind::Sink(_) => input,
                Kind::Assign { watermarks, .. } => {
                    if input.watermark >= MAX_TIMESTAMP {
                        NodeStatus::at(MAX_TIMESTAMP)
                    } else if periodic {
                        match watermarks.on_periodic_emit(now) {
                            Some(w) => NodeStatus::at(w.max(before.watermark)),
                            None => NodeStatus {
                                watermark: before.watermark,
                                idle: true,
                            },
                        }
                    } else {
                        before
                    }
                }
                Kind::Operator(_) if input.idle => NodeStatus {
                    watermark: before.watermark,
                    idle: true,
                },
                Kind::Operator(_) => {
                    if input.watermark > self.nodes[i].last_input || before.idle {
                        self.nodes[i].last_input = self.nodes[i].last_input.max(input.watermark);
                        let mut ctx = self.context(i, now);
                        let Kind::Operator(op) = &mut self.nodes[i].kind else {
                            unreachable!("matched above")
                        };
                        let out =
                            op.handle_watermark(to_operator_watermark(input.watermark), &mut ctx)?;
                        self.absorb(i, &mut ctx, 0);
                        self.drain(now)?;
                        NodeStatus::at(from_operator_watermark(out).max(before.watermark))
                    } else {
                        before
                    }
                }
            };
            if i == 0 {
                self.nodes[0].last_input = self.nodes[0].last_input.max(head.watermark);
            }
            if after != before {
                self.nodes[i].status = after;
                self.nodes[i].metrics.watermark =
                    crate::metrics::visible_watermark(after.watermark);
                for &edge in &self.node_edges[i] {
                    self.outgoing.push(Outgoing::Status {
                        edge,
                        status: after,
                    });
                }
            }
        }
        Ok(())
    }

    /// Fires processing-time work due at `now` (triggers, timers).
    pub fn on_processing_time(&mut self, now: Timestamp) -> ExecResult<()> {
        for i in 0..self.nodes.len() {
            let due = match &self.nodes[i].kind {
                Kind::Operator(op) | Kind::Assign { op, .. } => {
                    op.next_processing_time().is_some_and(|t| t <= now)
                }
                Kind::Source | Kind::Sink(_) => false,
            };
            if due {
                let mut ctx = self.context(i, now);
                if let Kind::Operator(op) | Kind::Assign { op, .. } = &mut self.nodes[i].kind {
                    op.handle_processing_time(&mut ctx)?;
                }
                self.absorb(i, &mut ctx, 0);
                self.drain(now)?;
            }
        }
        Ok(())
    }

    /// The earliest processing time an operator wants to be called at.
    pub fn next_processing_time(&self) -> Option<Timestamp> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.kind {
                Kind::Operator(op) | Kind::Assign { op, .. } => op.next_processing_time(),
                Kind::Source | Kind::Sink(_) => None,
            })
            .min()
    }

    /// Whether the chain has an assigner (it needs periodic watermark emits).
    pub fn has_assigner(&self) -> bool {
        self.nodes
            .iter()
            .any(|n| matches!(n.kind, Kind::Assign { .. }))
    }

    /// End of input: every input is at `MAX` and handled; closes the operators in order.
    /// `committed(sink)` is the last epoch a two-phase sink committed before a restore.
    /// Returns `(sink, final epoch)` for every two-phase sink.
    pub fn close(
        &mut self,
        now: Timestamp,
        committed: &dyn Fn(&str) -> u64,
    ) -> ExecResult<Vec<(String, u64)>> {
        let mut finals = Vec::new();
        for i in 0..self.nodes.len() {
            let mut ctx = self.context(i, now);
            let already = committed(&self.nodes[i].name);
            match &mut self.nodes[i].kind {
                Kind::Operator(op) | Kind::Assign { op, .. } => op.on_close(&mut ctx)?,
                Kind::Sink(sink) => {
                    let epoch = sink.close(already, &mut ctx)?;
                    finals.push((self.nodes[i].name.clone(), epoch));
                }
                Kind::Source => {}
            }
            self.absorb(i, &mut ctx, 0);
            self.drain(now)?;
        }
        Ok(finals)
    }

    /// The chain's part of checkpoint `id`: operator state, and the sinks' pre-commit.
    pub fn snapshot(&mut self, id: u64) -> ExecResult<PendingState> {
        let mut state = PendingState::default();
        for n in &mut self.nodes {
            let value = match &mut n.kind {
                Kind::Operator(op) | Kind::Assign { op, .. } => op.snapshot_deferred()?,
                Kind::Sink(sink) => Some(DeferredSnapshot::ready(sink.pre_commit(id)?)),
                Kind::Source => None,
            };
            if let Some(v) = value {
                state.operators.insert(n.name.clone(), v);
            }
        }
        Ok(state)
    }

    /// Restores operator state and pending sink transactions from a checkpoint.
    pub fn restore(&mut self, state: &SubtaskState) -> ExecResult<()> {
        for n in &mut self.nodes {
            if let Some(v) = state.operators.get(&n.name) {
                match &mut n.kind {
                    Kind::Operator(op) | Kind::Assign { op, .. } => op.restore(v.clone())?,
                    Kind::Sink(sink) => sink.restore(v.clone())?,
                    Kind::Source => {}
                }
            }
        }
        Ok(())
    }

    /// The chain's two-phase sinks.
    pub fn sink_names(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.kind, Kind::Sink(_)))
            .map(|n| n.name.clone())
            .collect()
    }

    /// Whether the chain has a two-phase sink.
    pub fn has_sink(&self) -> bool {
        self.nodes.iter().any(|n| matches!(n.kind, Kind::Sink(_)))
    }

    /// Checkpoint `id` is complete: sinks commit their transactions up to it, skipping
    /// epochs up to `committed(sink)`. Returns `(sink, epoch)` for every commit made.
    pub fn commit(
        &mut self,
        id: u64,
        now: Timestamp,
        committed: &dyn Fn(&str) -> u64,
    ) -> ExecResult<Vec<(String, u64)>> {
        let mut done = Vec::new();
        for i in 0..self.nodes.len() {
            let mut ctx = self.context(i, now);
            let already = committed(&self.nodes[i].name);
            if let Kind::Sink(sink) = &mut self.nodes[i].kind {
                if let Some(epoch) = sink.commit(id, already, &mut ctx)? {
                    done.push((self.nodes[i].name.clone(), epoch));
                }
            }
            self.absorb(i, &mut ctx, 0);
        }
        Ok(done)
    }

    /// Takes everything that left the chain, in order.
    pub fn take_outgoing(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outgoing)
    }

    /// Every chained transform's current output status (Flink convention), head first.
    pub fn statuses(&self) -> Vec<(&str, NodeStatus)> {
        self.nodes
            .iter()
            .map(|n| (n.name.as_str(), n.status))
            .collect()
    }

    /// Per-transform metrics.
    pub fn metrics(&self) -> Vec<NodeMetrics> {
        self.nodes.iter().map(|n| n.metrics.clone()).collect()
    }
}
