//! The direct runner's event loop: polling, delivery to quiescence, watermark propagation,
//! processing time, end of input.

use crate::test_stream::{TestStep, TestStream};
use anyhow::{anyhow, bail, Context as _};
use arrow::record_batch::RecordBatch;
use std::collections::{BTreeMap, VecDeque};
use weir_model::io::BadRecordPolicy;
use weir_model::plan::Plan;
use weir_model::runner::RunReport;
use weir_model::time::{Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};
use weir_model::transform::Transform;
use weir_runner_core::batch::ElementMeta;
use weir_runner_core::io::{build_source, RecordCollector, SinkRegistry, Source, SourcePoll};
use weir_runner_core::operator::{
    build_operator, BuildEnv, Operator, OperatorContext, OperatorMetrics,
};
use weir_runner_core::schedule::{Action, Schedule, WatermarkEvent};
use weir_runner_core::{convert, ExecResult};

/// Where processing time comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Clock {
    /// Milliseconds since the epoch from the system clock.
    Wall,
    /// A manual clock at the given time, advanced only by test-stream steps.
    Manual(Timestamp),
}

/// Everything a finished direct run produced.
#[derive(Debug, Clone)]
pub struct DirectRun {
    /// Counters per node.
    pub report: RunReport,
    /// In-memory sink output.
    pub sinks: SinkRegistry,
    /// Every output-watermark change, per node, in order.
    pub trace: Vec<WatermarkEvent>,
}

struct SourceNode {
    /// The source to poll; `None` for a source driven by a test stream.
    source: Option<Box<dyn Source>>,
    ended: Vec<bool>,
    dead_letter_tag: Option<String>,
    /// Driven by a test stream rather than polled.
    scripted: bool,
    /// Watermark set by a test stream (scripted sources only).
    scripted_watermark: Timestamp,
    /// Rows delivered by a schedule so far (their 1-based position names bad records).
    delivered: u64,
}

enum Kind {
    Source(SourceNode),
    Operator(Box<dyn Operator>),
}

struct Node {
    name: String,
    /// Index of the node producing each input (the plan is in topological order).
    producers: Vec<usize>,
    kind: Kind,
    output_watermark: Timestamp,
    metrics: OperatorMetrics,
}

/// An output tag (`None`: main output) and its (consumer node, input index) pairs.
type Route = (Option<String>, Vec<(usize, usize)>);

struct Delivery {
    node: usize,
    input: usize,
    partition: u32,
    batch: RecordBatch,
}

pub(crate) struct Executor<'p> {
    plan: &'p Plan,
    nodes: Vec<Node>,
    /// Collection name → (consumer node, input index).
    routes: Vec<Vec<Route>>,
    queue: VecDeque<Delivery>,
    clock: Clock,
    sinks: SinkRegistry,
    trace: Vec<WatermarkEvent>,
}

impl<'p> Executor<'p> {
    /// Builds every node. `scripted` maps the `Read` nodes a test stream feeds to their
    /// partition counts; those are not opened as sources.
    pub(crate) fn new(
        plan: &'p Plan,
        sinks: SinkRegistry,
        clock: Clock,
        scripted: &BTreeMap<String, u32>,
    ) -> anyhow::Result<Self> {
        let mut env = BuildEnv {
            partitions: BTreeMap::new(),
            sinks: sinks.clone(),
            columnar_state: false,
        };
        let mut nodes = Vec::new();
        let mut consumers: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
        for (i, node) in plan.pipeline.transforms.iter().enumerate() {
            for (j, input) in node.inputs.iter().enumerate() {
                consumers.entry(input.clone()).or_default().push((i, j));
            }
            let kind = match &node.transform {
                Transform::Read {
                    source,
                    schema,
                    bad_records,
                } => {
                    let (source, parts) = match scripted.get(&node.name) {
                        Some(parts) => (None, *parts),
                        None => {
                            let source = build_source(&node.name, source, schema, bad_records)
                                .with_context(|| format!("opening source `{}`", node.name))?;
                            let parts = source.partitions();
                            (Some(source), parts)
                        }
                    };
                    for out in plan.outputs_of(&node.name) {
                        env.partitions.insert(out.to_string(), parts);
                    }
                    Kind::Source(SourceNode {
                        ended: vec![false; parts as usize],
                        source,
                        dead_letter_tag: match bad_records {
                            BadRecordPolicy::DeadLetter { tag } => Some(tag.clone()),
                            BadRecordPolicy::Fail => None,
                        },
                        scripted: scripted.contains_key(&node.name),
                        scripted_watermark: MIN_TIMESTAMP,
                        delivered: 0,
                    })
                }
                t => {
                    // Element-wise transforms keep their input's partitioning (so
                    // AssignTimestamps sees source partitions); aggregations have one.
                    let parts = if t.is_aggregation()
                        || matches!(t, Transform::StatefulParDo { .. } | Transform::Dedup { .. })
                    {
                        1
                    } else {
                        node.inputs
                            .iter()
                            .map(|i| env.partitions.get(i).copied().unwrap_or(1))
                            .max()
                            .unwrap_or(1)
                    };
                    for out in plan.outputs_of(&node.name) {
                        env.partitions.insert(out.to_string(), parts);
                    }
                    Kind::Operator(
                        build_operator(plan, node, &env)
                            .with_context(|| format!("building transform `{}`", node.name))?,
                    )
                }
            };
            nodes.push(Node {
                name: node.name.clone(),
                producers: node
                    .inputs
                    .iter()
                    .map(|c| {
                        let producer = weir_model::pipeline::split_collection(c).0;
                        plan.pipeline
                            .transforms
                            .iter()
                            .position(|t| t.name == producer)
                            .unwrap_or(i)
                    })
                    .collect(),
                kind,
                output_watermark: MIN_TIMESTAMP,
                metrics: OperatorMetrics::default(),
            });
        }
        // Per node, its outputs' consumers by tag, so delivery builds no collection names.
        let mut routes: Vec<Vec<Route>> = vec![Vec::new(); nodes.len()];
        for (collection, cs) in consumers {
            let (producer, tag) = weir_model::pipeline::split_collection(&collection);
            if let Some(i) = nodes.iter().position(|n| n.name == producer) {
                routes[i].push((tag.map(str::to_string), cs));
            }
        }
        Ok(Executor {
            plan,
            nodes,
            routes,
            queue: VecDeque::new(),
            clock,
            sinks,
            trace: Vec::new(),
        })
    }

    fn now(&self) -> Timestamp {
        match self.clock {
            Clock::Wall => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            Clock::Manual(t) => t,
        }
    }

    /// Queues `outputs` of node `from` for its consumers.
    fn route(&mut self, from: usize, partition: u32, outputs: Vec<(Option<String>, RecordBatch)>) {
        for (tag, batch) in outputs {
            let Some((_, cs)) = self.routes[from].iter().find(|(t, _)| *t == tag) else {
                continue;
            };
            for &(node, input) in cs {
                self.queue.push_back(Delivery {
                    node,
                    input,
                    partition,
                    batch: batch.clone(),
                });
            }
        }
    }

    fn input_watermark(&self, i: usize) -> Timestamp {
        self.nodes[i]
            .producers
            .iter()
            .map(|p| self.nodes[*p].output_watermark)
            .min()
            .unwrap_or(MAX_TIMESTAMP)
    }

    fn context(&self, i: usize) -> OperatorContext {
        OperatorContext::new(
            self.nodes[i].name.clone(),
            self.now(),
            self.input_watermark(i),
        )
    }

    fn absorb(&mut self, i: usize, ctx: &mut OperatorContext, partition: u32) {
        let m = std::mem::take(&mut ctx.metrics);
        let nm = &mut self.nodes[i].metrics;
        nm.late_dropped += m.late_dropped;
        nm.dead_letters += m.dead_letters;
        nm.rows_written += m.rows_written;
        let outputs = ctx.take_outputs();
        self.route(i, partition, outputs);
    }

    /// Delivers queued batches until nothing is left (quiescence).
    fn drain(&mut self) -> ExecResult<()> {
        while let Some(d) = self.queue.pop_front() {
            let mut ctx = self.context(d.node);
            ctx.partition = d.partition;
            if let Kind::Operator(op) = &mut self.nodes[d.node].kind {
                op.process_batch(d.input, d.batch, &mut ctx)?;
            }
            self.absorb(d.node, &mut ctx, d.partition);
        }
        Ok(())
    }

    fn source_watermark(s: &SourceNode) -> Timestamp {
        if s.scripted {
            s.scripted_watermark
        } else if s.ended.iter().all(|e| *e) {
            MAX_TIMESTAMP
        } else {
            MIN_TIMESTAMP
        }
    }

    /// Recomputes watermarks in topological order until they settle. Outputs an operator
    /// emits while handling its watermark reach downstream before that watermark does.
    fn propagate_watermarks(&mut self) -> ExecResult<()> {
        loop {
            let mut changed = false;
            for i in 0..self.nodes.len() {
                let new = match &self.nodes[i].kind {
                    Kind::Source(s) => Self::source_watermark(s),
                    Kind::Operator(_) => {
                        let input_wm = self.input_watermark(i);
                        let mut ctx = self.context(i);
                        let out = match &mut self.nodes[i].kind {
                            Kind::Operator(op) => op.handle_watermark(input_wm, &mut ctx)?,
                            Kind::Source(_) => unreachable!(),
                        };
                        self.absorb(i, &mut ctx, 0);
                        self.drain()?;
                        out
                    }
                };
                if new > self.nodes[i].output_watermark {
                    self.nodes[i].output_watermark = new;
                    changed = true;
                    let processing_time = self.now();
                    let node = &mut self.nodes[i];
                    self.trace.push(WatermarkEvent {
                        processing_time,
                        node: node.name.clone(),
                        watermark: new,
                        attempt: 0,
                    });
                }
            }
            if !changed {
                return Ok(());
            }
        }
    }

    fn fire_processing_time(&mut self) -> ExecResult<()> {
        for i in 0..self.nodes.len() {
            if let Kind::Operator(_) = self.nodes[i].kind {
                let mut ctx = self.context(i);
                if let Kind::Operator(op) = &mut self.nodes[i].kind {
                    op.handle_processing_time(&mut ctx)?;
                }
                self.absorb(i, &mut ctx, 0);
                self.drain()?;
            }
        }
        Ok(())
    }

    /// Quiescence after a step: deliver everything, fire due processing time, settle
    /// watermarks.
    fn settle(&mut self) -> ExecResult<()> {
        self.drain()?;
        self.fire_processing_time()?;
        self.propagate_watermarks()
    }

    fn emit_source_batch(
        &mut self,
        i: usize,
        partition: u32,
        data: RecordBatch,
        dead: Option<RecordBatch>,
    ) {
        if let Some(dead) = dead {
            self.nodes[i].metrics.dead_letters += dead.num_rows() as u64;
            if let Kind::Source(s) = &self.nodes[i].kind {
                let tag = s.dead_letter_tag.clone();
                self.route(i, partition, vec![(tag, dead)]);
            }
        }
        self.route(i, partition, vec![(None, data)]);
    }

    /// Polls each unfinished partition of each polled source once. Returns whether any
    /// source made progress.
    fn poll_round(&mut self, bundle_size: usize) -> ExecResult<bool> {
        let mut progressed = false;
        for i in 0..self.nodes.len() {
            let parts = match &self.nodes[i].kind {
                Kind::Source(s) if !s.scripted => s.ended.len(),
                _ => continue,
            };
            for p in 0..parts {
                let now = self.now();
                let Kind::Source(s) = &mut self.nodes[i].kind else {
                    unreachable!()
                };
                if s.ended[p] {
                    continue;
                }
                let Some(source) = s.source.as_mut() else {
                    continue;
                };
                match source.poll(p as u32, bundle_size, now)? {
                    SourcePoll::Batch { data, dead_letters } => {
                        progressed = true;
                        self.emit_source_batch(i, p as u32, data, dead_letters);
                        self.settle()?;
                    }
                    SourcePoll::Pending => {}
                    SourcePoll::Ended => {
                        s.ended[p] = true;
                        progressed = true;
                    }
                }
            }
        }
        Ok(progressed)
    }

    fn polled_sources_done(&self) -> bool {
        self.nodes.iter().all(|n| match &n.kind {
            Kind::Source(s) => s.scripted || s.ended.iter().all(|e| *e),
            Kind::Operator(_) => true,
        })
    }

    /// The next processing time something is due (wall clock runs sleep until then).
    fn next_wakeup(&self) -> Option<Timestamp> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.kind {
                Kind::Source(s) => s.source.as_ref().and_then(|s| s.next_poll_time()),
                Kind::Operator(op) => op.next_processing_time(),
            })
            .min()
    }

    fn close(&mut self) -> ExecResult<()> {
        self.propagate_watermarks()?;
        for i in 0..self.nodes.len() {
            let mut ctx = self.context(i);
            if let Kind::Operator(op) = &mut self.nodes[i].kind {
                op.on_close(&mut ctx)?;
            }
            self.absorb(i, &mut ctx, 0);
            self.drain()?;
        }
        Ok(())
    }

    pub(crate) fn run_to_completion(&mut self, bundle_size: usize) -> anyhow::Result<()> {
        loop {
            let progressed = self.poll_round(bundle_size)?;
            self.settle()?;
            if self.polled_sources_done() {
                break;
            }
            if !progressed {
                let now = self.now();
                let wake = self
                    .next_wakeup()
                    .unwrap_or(now + 50)
                    .clamp(now + 1, now + 200);
                std::thread::sleep(std::time::Duration::from_millis((wake - now) as u64));
            }
        }
        self.close()?;
        Ok(())
    }

    pub(crate) fn run_test_stream(&mut self, stream: &TestStream) -> anyhow::Result<()> {
        // Sources not fed by the stream are read completely first; they must be bounded.
        for n in &self.nodes {
            if let Kind::Source(s) = &n.kind {
                let spec = self
                    .plan
                    .collection(&n.name)
                    .map(|c| c.bounded)
                    .unwrap_or(true);
                if !s.scripted && !spec {
                    bail!(
                        "source `{}` is unbounded and not fed by the test stream",
                        n.name
                    );
                }
            }
        }
        while !self.polled_sources_done() {
            self.poll_round(usize::MAX)?;
        }
        self.settle()?;
        for step in &stream.steps {
            match step {
                TestStep::AddElements {
                    source,
                    partition,
                    elements,
                } => {
                    let idx = self
                        .nodes
                        .iter()
                        .position(|n| &n.name == source)
                        .expect("checked above");
                    let schema = &self
                        .plan
                        .collection(source)
                        .ok_or_else(|| anyhow!("no collection `{source}`"))?
                        .schema;
                    let rows: Vec<_> = elements.iter().map(|(r, _)| r.clone()).collect();
                    let metas: Vec<ElementMeta> = elements
                        .iter()
                        .map(|(_, ts)| ElementMeta::unwindowed(*ts))
                        .collect();
                    let arrays = convert::rows_to_arrays(&rows, schema).map_err(|(r, m)| {
                        anyhow!(
                            "test stream element {} for `{source}` does not fit its schema: {m}",
                            r + 1
                        )
                    })?;
                    let batch = weir_runner_core::batch::with_meta(schema, arrays, &metas)?;
                    self.emit_source_batch(idx, *partition, batch, None);
                }
                TestStep::AdvanceWatermarkTo { watermark } => {
                    self.set_scripted_watermark(*watermark)
                }
                TestStep::AdvanceProcessingTime { by } => {
                    if let Clock::Manual(t) = &mut self.clock {
                        *t += by.millis();
                    }
                }
                TestStep::AdvanceWatermarkToInfinity => self.set_scripted_watermark(MAX_TIMESTAMP),
            }
            self.settle()?;
        }
        self.set_scripted_watermark(MAX_TIMESTAMP);
        self.settle()?;
        self.close()?;
        Ok(())
    }

    /// Runs a schedule: the clock jumps to each step's time (firing what is due), rows arrive
    /// one at a time with quiescence after each (the model's watermark follows every event),
    /// and only an explicit end of input raises source watermarks to the maximum.
    pub(crate) fn run_schedule(&mut self, schedule: &Schedule) -> anyhow::Result<Vec<String>> {
        schedule.check_order().map_err(anyhow::Error::msg)?;
        let mut ignored = Vec::new();
        while !self.polled_sources_done() {
            self.poll_round(usize::MAX)?;
        }
        self.settle()?;
        for step in &schedule.steps {
            if let Clock::Manual(t) = &mut self.clock {
                *t = (*t).max(step.at);
            }
            self.settle()?;
            match &step.action {
                Action::Deliver { source, partition, rows } => {
                    let idx = self.source_index(source)?;
                    for row in rows {
                        let (data, dead) = self.scheduled_row(idx, source, row)?;
                        self.emit_source_batch(idx, *partition, data, dead);
                        self.settle()?;
                    }
                }
                Action::EndInput { source } => {
                    for n in &mut self.nodes {
                        if let Kind::Source(s) = &mut n.kind {
                            if s.scripted && source.as_ref().is_none_or(|name| *name == n.name) {
                                s.scripted_watermark = MAX_TIMESTAMP;
                                s.ended.iter_mut().for_each(|e| *e = true);
                            }
                        }
                    }
                    self.settle()?;
                }
                Action::Advance => {}
                Action::Crash { point } => ignored.push(format!(
                    "crash at {} ms ({point:?}): the model never crashes; the direct runner ignores it",
                    step.at
                )),
                Action::CorruptCheckpoint => ignored.push(format!(
                    "corrupt checkpoint at {} ms: the model keeps no checkpoints; the direct runner ignores it",
                    step.at
                )),
                Action::Restart { .. } => ignored.push(format!(
                    "restart at {} ms: the model never crashes; the direct runner ignores it",
                    step.at
                )),
            }
        }
        let all_ended = self.nodes.iter().all(|n| match &n.kind {
            Kind::Source(s) => !s.scripted || s.scripted_watermark == MAX_TIMESTAMP,
            Kind::Operator(_) => true,
        });
        if all_ended {
            self.close()?;
        }
        Ok(ignored)
    }

    fn source_index(&self, name: &str) -> anyhow::Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.name == name && matches!(&n.kind, Kind::Source(s) if s.scripted))
            .ok_or_else(|| anyhow!("the schedule delivers to `{name}`, which is not a Read transform of the pipeline"))
    }

    /// One delivered row as a batch, or as a dead letter when it does not fit the schema
    /// and the source routes malformed records (otherwise the run fails naming the field),
    /// exactly as the built-in sources treat records.
    fn scheduled_row(
        &mut self,
        idx: usize,
        source: &str,
        row: &weir_model::udf::Row,
    ) -> anyhow::Result<(RecordBatch, Option<RecordBatch>)> {
        let node = self.plan.pipeline.node(source).map(|n| &n.transform);
        let Some(Transform::Read {
            schema,
            bad_records,
            ..
        }) = node
        else {
            bail!("the schedule delivers to `{source}`, which is not a Read transform");
        };
        let Kind::Source(s) = &mut self.nodes[idx].kind else {
            unreachable!()
        };
        s.delivered += 1;
        let mut records = RecordCollector::new(schema, bad_records);
        records.row(row.clone(), source, s.delivered, || {
            serde_json::Value::Object(row.clone()).to_string()
        })?;
        Ok(records.finish()?)
    }

    fn set_scripted_watermark(&mut self, wm: Timestamp) {
        for n in &mut self.nodes {
            if let Kind::Source(s) = &mut n.kind {
                if s.scripted {
                    s.scripted_watermark = s.scripted_watermark.max(wm);
                }
            }
        }
    }

    pub(crate) fn finish(self) -> DirectRun {
        let mut report = RunReport::default();
        for n in &self.nodes {
            let kind = self.plan.pipeline.node(&n.name).map(|t| &t.transform);
            if let Some(Transform::Write { .. }) = kind {
                report
                    .rows_written
                    .insert(n.name.clone(), n.metrics.rows_written);
            }
            if n.metrics.late_dropped > 0 {
                report
                    .late_dropped
                    .insert(n.name.clone(), n.metrics.late_dropped);
            }
            if n.metrics.dead_letters > 0 {
                report
                    .dead_letters
                    .insert(n.name.clone(), n.metrics.dead_letters);
            }
        }
        DirectRun {
            report,
            sinks: self.sinks,
            trace: self.trace,
        }
    }
}
