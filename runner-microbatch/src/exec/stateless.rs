//! Narrow stages: transforms that need no shuffle (Filter, Project, Explode, ParDo,
//! MapBatches, Flatten, AssignTimestamps, WindowInto) run as one task per source partition on
//! the rayon pool, each task with its own instance of runner-core's operator. Stateless
//! operators pass late rows (Spark filters late rows only in stateful operators).

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType as ArrowType, Int64Type};
use arrow::record_batch::RecordBatch;
use weir_model::plan::Plan;
use weir_model::transform::Transform;
use weir_model::window::WindowFn;
use weir_model::{Expr, TransformNode};
use weir_runner_core::eval::evaluate_in;
use weir_runner_core::operator::{build_operator, BuildEnv, Operator, OperatorContext};
use weir_runner_core::{ExecError, ExecResult};

/// What one partition task of a narrow stage produced.
#[derive(Debug, Default)]
pub struct TaskOutput {
    /// Outputs by tag (`None`: main output).
    pub outputs: Vec<(Option<String>, RecordBatch)>,
    /// Rows routed to dead-letter outputs.
    pub dead_letters: u64,
    /// Rows filtered because their session gap was null or <= 0.
    pub rows_dropped_by_session_gap: u64,
}

/// One narrow node: an operator instance per partition.
pub struct NarrowStage {
    node: TransformNode,
    /// The per-row session gap, when the node is a `WindowInto` with a gap expression.
    session_gap: Option<Expr>,
    tasks: Vec<Box<dyn Operator>>,
}

impl std::fmt::Debug for NarrowStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NarrowStage")
            .field("node", &self.node.name)
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

impl NarrowStage {
    /// The stage of `node`.
    pub fn new(node: &TransformNode) -> Self {
        let session_gap = match &node.transform {
            Transform::WindowInto { windowing } => match &windowing.window_fn {
                WindowFn::Sessions {
                    gap_expr: Some(e), ..
                } => Some(e.clone()),
                _ => None,
            },
            _ => None,
        };
        NarrowStage {
            node: node.clone(),
            session_gap,
            tasks: Vec::new(),
        }
    }

    /// Runs the stage over `inputs` (per partition: (input index, batch) in arrival order) on
    /// `pool`, one task per partition.
    pub fn run(
        &mut self,
        plan: &Plan,
        env: &BuildEnv,
        pool: &rayon::ThreadPool,
        inputs: Vec<Vec<(usize, RecordBatch)>>,
        batch_timestamp: i64,
    ) -> ExecResult<Vec<TaskOutput>> {
        while self.tasks.len() < inputs.len() {
            self.tasks.push(build_operator(plan, &self.node, env)?);
        }
        let node = &self.node.name;
        let gap = self.session_gap.as_ref();
        use rayon::prelude::*;
        pool.install(|| {
            self.tasks
                .par_iter_mut()
                .zip(inputs.into_par_iter())
                .map(|(op, batches)| run_task(node, gap, op.as_mut(), batches, batch_timestamp))
                .collect()
        })
    }
}

fn run_task(
    node: &str,
    gap: Option<&Expr>,
    op: &mut dyn Operator,
    batches: Vec<(usize, RecordBatch)>,
    batch_timestamp: i64,
) -> ExecResult<TaskOutput> {
    let mut out = TaskOutput::default();
    let mut ctx = OperatorContext::new(node, batch_timestamp, weir_model::time::MIN_TIMESTAMP);
    for (input, batch) in batches {
        let batch = match gap {
            Some(expr) => {
                let (kept, dropped) = drop_invalid_session_gaps(node, expr, &batch)?;
                out.rows_dropped_by_session_gap += dropped;
                kept
            }
            None => batch,
        };
        op.process_batch(input, batch, &mut ctx)?;
    }
    out.dead_letters = ctx.metrics.dead_letters;
    out.outputs = ctx.take_outputs();
    Ok(out)
}

/// Spark's `session_window` with a dynamic gap filters out rows whose gap is null or not
/// positive (they could open no session); returns the kept rows and how many were dropped.
pub fn drop_invalid_session_gaps(
    node: &str,
    gap: &Expr,
    batch: &RecordBatch,
) -> ExecResult<(RecordBatch, u64)> {
    let values = evaluate_in(node, gap, batch)?;
    let values = cast(&values, &ArrowType::Int64).map_err(ExecError::from)?;
    let gaps = values.as_primitive::<Int64Type>();
    let keep: BooleanArray = (0..gaps.len())
        .map(|i| Some(gaps.is_valid(i) && gaps.value(i) > 0))
        .collect();
    let dropped = keep.iter().filter(|k| *k == Some(false)).count() as u64;
    if dropped == 0 {
        return Ok((batch.clone(), 0));
    }
    Ok((filter_record_batch(batch, &keep)?, dropped))
}
