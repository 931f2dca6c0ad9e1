//! Operators: one small trait with explicit hooks (after Arroyo's), one implementation per
//! transform. The event loop, watermark bookkeeping and channel plumbing belong to the
//! runner, so operators stay plain: they get batches, watermarks and processing-time ticks,
//! and emit batches through an [`OperatorContext`].
//!
//! Rules every runner relies on:
//! - A runner delivers everything an operator emitted downstream *before* it forwards the
//!   operator's new output watermark, so a fired pane is never late downstream.
//! - `handle_watermark` receives the input watermark (min over inputs) and returns the
//!   output watermark; an operator may hold it back or, like `AssignTimestamps`, compute it.

mod aggregate;
mod assign_timestamps;
mod columnar_combine;
mod stateful;
mod stateless;
mod window_into;
mod write;

use crate::error::{ExecError, ExecResult};
use crate::io::SinkRegistry;
use arrow::record_batch::RecordBatch;
use std::collections::BTreeMap;
use weir_model::plan::Plan;
use weir_model::time::Timestamp;
use weir_model::transform::Transform;
use weir_model::TransformNode;

pub use aggregate::AggregateOperator;
pub use assign_timestamps::AssignTimestampsOperator;
pub use columnar_combine::ColumnarCombineOperator;
pub use stateful::StatefulOperator;
pub use stateless::StatelessOperator;
pub use window_into::WindowIntoOperator;
pub use write::{AssertOperator, WriteOperator};

/// Counters an operator reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorMetrics {
    /// Rows dropped because they were late for every window.
    pub late_dropped: u64,
    /// Rows routed to a dead-letter output.
    pub dead_letters: u64,
    /// Rows written by a sink.
    pub rows_written: u64,
}

/// What an operator sees of the runner while handling a hook, and where it emits.
#[derive(Debug)]
pub struct OperatorContext {
    /// The operator's transform name.
    pub node: String,
    /// Current processing time (ms).
    pub processing_time: Timestamp,
    /// Current input watermark (min over inputs).
    pub input_watermark: Timestamp,
    /// Source partition the current batch descends from (0 after an aggregation).
    pub partition: u32,
    /// Counters.
    pub metrics: OperatorMetrics,
    outputs: Vec<(Option<String>, RecordBatch)>,
}

impl OperatorContext {
    /// A context for `node` at the given times.
    pub fn new(
        node: impl Into<String>,
        processing_time: Timestamp,
        input_watermark: Timestamp,
    ) -> Self {
        OperatorContext {
            node: node.into(),
            processing_time,
            input_watermark,
            partition: 0,
            metrics: OperatorMetrics::default(),
            outputs: Vec::new(),
        }
    }
    /// Emits a batch to the main output (`None`) or the side output `tag`.
    pub fn emit(&mut self, tag: Option<&str>, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.outputs.push((tag.map(str::to_string), batch));
        }
    }
    /// Takes everything emitted so far, in emission order.
    pub fn take_outputs(&mut self) -> Vec<(Option<String>, RecordBatch)> {
        std::mem::take(&mut self.outputs)
    }
    /// A transform-level error for this operator.
    pub fn error(&self, message: impl Into<String>) -> ExecError {
        ExecError::transform(&self.node, message)
    }
}

/// An operator's state copied out at a checkpoint barrier, to be rendered as the JSON of
/// [`Operator::snapshot`] by whoever writes the checkpoint (on another thread).
pub struct DeferredSnapshot(Box<dyn FnOnce() -> ExecResult<serde_json::Value> + Send>);

impl DeferredSnapshot {
    /// State already rendered.
    pub fn ready(state: serde_json::Value) -> Self {
        DeferredSnapshot(Box::new(move || Ok(state)))
    }

    /// State that `render` turns into JSON later; it must own everything it reads.
    pub fn new(render: impl FnOnce() -> ExecResult<serde_json::Value> + Send + 'static) -> Self {
        DeferredSnapshot(Box::new(render))
    }

    /// The state as JSON.
    pub fn render(self) -> ExecResult<serde_json::Value> {
        (self.0)()
    }
}

impl std::fmt::Debug for DeferredSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeferredSnapshot")
    }
}

/// An operator. Only `process_batch` is required.
pub trait Operator: Send {
    /// Handles a batch (user columns + metadata, see [`crate::batch`]) on input `input`.
    fn process_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
    ) -> ExecResult<()>;

    /// The input watermark advanced (or may have); returns the output watermark.
    fn handle_watermark(
        &mut self,
        watermark: Timestamp,
        _ctx: &mut OperatorContext,
    ) -> ExecResult<Timestamp> {
        Ok(watermark)
    }

    /// Processing time advanced to `ctx.processing_time`: fire processing-time triggers and
    /// timers, update idleness.
    fn handle_processing_time(&mut self, _ctx: &mut OperatorContext) -> ExecResult<()> {
        Ok(())
    }

    /// The earliest processing time at which this operator wants `handle_processing_time`,
    /// if any (lets a runner with a manual clock jump straight to it).
    fn next_processing_time(&self) -> Option<Timestamp> {
        None
    }

    /// Every input has ended and the final watermark has been handled.
    fn on_close(&mut self, _ctx: &mut OperatorContext) -> ExecResult<()> {
        Ok(())
    }

    /// The operator's state for a checkpoint (keyed state, timers, pending garbage
    /// collection), `None` when it keeps none. Watermarks are never part of it (Flink does not
    /// checkpoint them). Keyed operators return a JSON array of per-key entries, each with a
    /// `key` field (the key-column values), so that a runner can redistribute entries when it
    /// restores at another parallelism; restoring concatenated arrays merges them.
    ///
    /// The default is for operators without state. A runner that checkpoints must not rely on
    /// it for an operator that keeps state without overriding it.
    fn snapshot(&self) -> ExecResult<Option<serde_json::Value>> {
        Ok(None)
    }

    /// The state of [`Operator::snapshot`], copied out now and rendered as JSON later, off the
    /// processing path (the asynchronous part of Flink's snapshot). An operator with much
    /// state overrides it to copy its state cheaply (columns, not JSON); the default renders
    /// at once.
    fn snapshot_deferred(&self) -> ExecResult<Option<DeferredSnapshot>> {
        Ok(self.snapshot()?.map(DeferredSnapshot::ready))
    }

    /// Restores state returned by [`Operator::snapshot`] (the default has none to restore).
    fn restore(&mut self, state: serde_json::Value) -> ExecResult<()> {
        match state {
            serde_json::Value::Null => Ok(()),
            _ => Err(ExecError::Internal(
                "this operator keeps no state to restore".into(),
            )),
        }
    }
}

/// What the factory needs to know beyond the plan.
#[derive(Debug, Clone, Default)]
pub struct BuildEnv {
    /// Number of source partitions feeding each collection, by collection name.
    pub partitions: BTreeMap<String, u32>,
    /// Where in-memory sinks register their output.
    pub sinks: SinkRegistry,
    /// Whether a `Combine` that columns can hold runs as [`ColumnarCombineOperator`] (the
    /// streaming runners, for speed) rather than on the general per-key state (the direct
    /// runner: the reference the columnar operator is tested against).
    pub columnar_state: bool,
}

/// Builds the operator for a non-source node. `Read` nodes are sources, see [`crate::io`].
pub fn build_operator(
    plan: &Plan,
    node: &TransformNode,
    env: &BuildEnv,
) -> ExecResult<Box<dyn Operator>> {
    let input_info = |i: usize| {
        plan.collection(&node.inputs[i]).ok_or_else(|| {
            ExecError::Internal(format!("collection `{}` missing from plan", node.inputs[i]))
        })
    };
    if env.columnar_state {
        if let Some(op) = ColumnarCombineOperator::new(plan, node)? {
            return Ok(Box::new(op));
        }
    }
    Ok(match &node.transform {
        Transform::Read { .. } => {
            return Err(ExecError::Internal(format!(
                "`{}` is a source, not an operator",
                node.name
            )))
        }
        Transform::AssignTimestamps {
            timestamp,
            watermark,
        } => {
            let input = input_info(0)?;
            let partitions = env.partitions.get(&node.inputs[0]).copied().unwrap_or(1);
            Box::new(AssignTimestampsOperator::new(
                &input.schema,
                timestamp.clone(),
                watermark.clone(),
                partitions,
            ))
        }
        Transform::Filter { .. }
        | Transform::Project { .. }
        | Transform::Explode { .. }
        | Transform::ParDo { .. }
        | Transform::MapBatches { .. }
        | Transform::Flatten => Box::new(StatelessOperator::new(plan, node)?),
        Transform::WindowInto { windowing } => Box::new(WindowIntoOperator::new(
            &input_info(0)?.schema,
            windowing.clone(),
        )),
        Transform::GroupByKey { .. }
        | Transform::Combine { .. }
        | Transform::Join { .. }
        | Transform::CoGroupByKey { .. }
        | Transform::TopN { .. } => Box::new(AggregateOperator::new(plan, node)?),
        Transform::StatefulParDo { .. } | Transform::Dedup { .. } => {
            Box::new(StatefulOperator::new(plan, node)?)
        }
        Transform::Write { .. } => Box::new(WriteOperator::new(plan, node, &env.sinks)?),
        Transform::AssertEqual { .. } => Box::new(AssertOperator::new(plan, node)?),
    })
}
