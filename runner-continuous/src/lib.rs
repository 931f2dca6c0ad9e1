//! # weir-runner-continuous
//!
//! Weir's Flink-style runner: the plan becomes a job graph of chained operators with
//! parallel subtasks ([`graph`]), each a long-running tokio task ([`task`]); rows travel
//! between subtasks as Arrow batches through bounded, credit-sized queues ([`channel`]), with
//! watermarks in-band ([`watermark`]). The operators are `weir-runner-core`'s, driven per
//! arriving batch with Flink's watermark convention translated to the Beam one they expect
//! (see [`watermark::to_operator_watermark`]). A built-in `Combine` whose windows fire once
//! (Flink's default event-time trigger, no allowed lateness) keeps its window state in
//! columns (`weir_runner_core::operator::ColumnarCombineOperator`, like Flink's
//! `HeapKeyedStateBackend` holding aggregates rather than rows); other aggregations keep the
//! general per-key state.
//!
//! Flink rules this runner reproduces, each named where it is implemented:
//! - bounded-out-of-orderness watermarks `max_ts − D − 1` per source split, emitted every
//!   watermark interval of processing time ([`watermark::BoundedOutOfOrderness`]); the min
//!   over a subtask's splits, idle splits excluded ([`watermark::SplitWatermarks`]); the min
//!   over active input channels after an exchange, never decreasing
//!   ([`watermark::InputWatermarks`]); the maximum watermark at the end of a bounded input;
//!   opt-in watermark alignment across source subtasks ([`watermark::AlignmentGroup`]);
//! - `Watermark(t)`: `ts <= t` is late ([`watermark::is_late`]); a window fires at
//!   `watermark >= end − 1`, is cleaned at `end − 1 + lateness`, re-fires for late elements
//!   within the lateness, and routes elements late for all windows to the side output;
//! - output buffers flushed when full, at the buffer timeout, before a watermark, or when a
//!   source subtask has nothing to read (holding rows while idle only adds latency)
//!   ([`task::OutputGate`]); credit-based backpressure with busy/idle/backpressured time per
//!   subtask ([`metrics`]).
//!
//! - checkpoints (`--checkpoint-interval`, `--checkpoint-dir`, `--checkpoint-mode`): sources
//!   inject barriers with their split positions; operators align them (exactly-once) or
//!   only track them (at-least-once) and snapshot keyed state, timers and window state;
//!   sinks pre-commit at the barrier and commit when the coordinator completes the
//!   checkpoint; `--set restore=latest` restores positions, state and pending transactions,
//!   at the same or another parallelism (keyed state moves by key group) ([`checkpoint`]).
//!
//! Deterministic mode (`--set clock=manual`): a single-threaded scheduler, a manual clock
//! per source subtask advanced per poll, one record per poll, every emission flushed.
//! Named kill points (`--set kill_at=...`) fail a run on purpose to exercise recovery.
//!
//! Scheduled runs ([`schedule`], the conformance suite's [`ScheduledRunner`]): the same job
//! graph, chains, valves, barrier aligners, checkpoint storage and two-phase-commit sinks,
//! moved by a single-threaded scheduler on one job-wide manual clock: deliveries run to
//! quiescence, periodic watermarks and checkpoints happen at multiples of their intervals,
//! crashes drop the job and restarts restore it from the run's own checkpoints.
//!
//! Decisions where the model and Flink meet:
//! - the watermark shown and sent between subtasks is Flink's; operators get it plus one
//!   millisecond (the Beam convention runner-core implements), which makes every firing,
//!   lateness, cleanup and timer rule coincide with Flink's;
//! - window results leave before the watermark that fired them; an aggregation's output
//!   watermark is runner-core's (it holds back for pending panes, as Beam does);
//! - sinks, assertions and aggregations without keys run at parallelism 1 (`windowAll`,
//!   one output file); a watermark interval of 0 disables periodic watermarks, as
//!   `setAutoWatermarkInterval(0)` does;
//! - after an exchange, rows carry no source split, so an `AssignTimestamps` there keeps one
//!   generator per subtask (Flink's `assignTimestampsAndWatermarks`);
//! - watermarks are not checkpointed: after a restore each split's generator starts again
//!   from the replayed rows.
//!
//! ```no_run
//! use weir_model::runner::{PipelineOptions, Runner};
//! let pipeline = weir_model::file::parse_file("examples/word_count/pipeline.yaml".as_ref())?;
//! let plan = weir_model::plan(&pipeline)?;
//! let runner = weir_runner_continuous::ContinuousRunner::new();
//! let options = PipelineOptions::from_args(["weir", "--runner", "continuous", "--parallelism", "2"])?;
//! runner.run(&plan, &options).map_err(|e| anyhow::anyhow!(e))?;
//! # Ok::<(), anyhow::Error>(())
//! ```

#![deny(missing_docs)]

pub mod channel;
pub mod checkpoint;
pub mod clock;
pub mod graph;
pub mod job;
pub mod metrics;
pub mod options;
pub mod schedule;
pub mod task;
pub mod watermark;

pub use job::ContinuousRun;
pub use options::ContinuousOptions;

use weir_model::plan::Plan;
use weir_model::requirements::{Capabilities, Feature, Support};
use weir_model::runner::{PipelineOptions, RunError, RunReport, Runner};
use weir_runner_core::io::SinkRegistry;
use weir_runner_core::schedule::{RunRecord, Schedule, ScheduledRunner};

/// The Flink-style runner.
#[derive(Debug, Clone, Default)]
pub struct ContinuousRunner {
    sinks: SinkRegistry,
}

impl ContinuousRunner {
    /// A runner whose in-memory sinks record into a fresh registry.
    pub fn new() -> Self {
        ContinuousRunner::default()
    }

    /// A runner recording in-memory sink output into `sinks`.
    pub fn with_sinks(sinks: SinkRegistry) -> Self {
        ContinuousRunner { sinks }
    }

    /// The registry of in-memory sinks this runner writes to.
    pub fn sinks(&self) -> &SinkRegistry {
        &self.sinks
    }

    /// Runs `plan` to completion, returning the full run record.
    pub fn execute(&self, plan: &Plan, options: &PipelineOptions) -> anyhow::Result<ContinuousRun> {
        let options = ContinuousOptions::from_pipeline_options(options)?;
        self.execute_with(plan, &options)
    }

    /// Runs `plan` with already-parsed options.
    pub fn execute_with(
        &self,
        plan: &Plan,
        options: &ContinuousOptions,
    ) -> anyhow::Result<ContinuousRun> {
        self.check(plan)?;
        if let options::ClockMode::Manual { tick_ms } = options.clock {
            refuse_unreachable_wall_clock_sources(plan, tick_ms)?;
        }
        job::execute(plan, options, self.sinks.clone())
    }
}

/// Polls of the manual clock a wall-clock source may wait for its first event; beyond
/// that the run would look hung, so it is refused before it starts.
const MAX_POLLS_BEFORE_FIRST_EVENT: i64 = 1_000_000;

/// Refuses a source that generates on the wall clock (a Nexmark source with `realtime:
/// true`) whose first event time the manual clock, starting at 0 and advancing `tick_ms`
/// per poll, would reach only after more than [`MAX_POLLS_BEFORE_FIRST_EVENT`] polls (an
/// epoch-scale `base_time` takes billions).
fn refuse_unreachable_wall_clock_sources(plan: &Plan, tick_ms: i64) -> anyhow::Result<()> {
    use weir_model::io::SourceSpec;
    use weir_model::transform::Transform;
    for node in &plan.pipeline.transforms {
        if let Transform::Read {
            source:
                SourceSpec::Nexmark {
                    realtime: true,
                    base_time,
                    ..
                },
            ..
        } = &node.transform
        {
            let polls = if tick_ms > 0 {
                base_time / tick_ms
            } else if *base_time > 0 {
                i64::MAX // a clock that never advances never reaches it
            } else {
                0
            };
            if polls > MAX_POLLS_BEFORE_FIRST_EVENT {
                anyhow::bail!(
                    "`{}` (ReadFromNexmark) generates its events on the wall clock (`realtime: true`) from base_time {base_time}, which the manual clock (`--set clock=manual`, starting at 0, {tick_ms} ms per poll) reaches only after {polls} polls: drop `realtime`, use a small base_time, or run on the wall clock",
                    node.name
                );
            }
        }
    }
    Ok(())
}

/// The capability table: what Flink's DataStream API does natively, and what this runner
/// adds in Flink's execution style from `weir-runner-core`'s Beam pieces.
pub fn capabilities() -> Capabilities {
    let extension = |note: &str| Support::Extension { note: note.into() };
    Capabilities::all_native()
        .with(
            Feature::EarlyFirings,
            extension("Beam's AfterWatermark early firings, run per record as a custom Flink Trigger would"),
        )
        .with(
            Feature::LateFirings,
            extension("Beam's late-firing trigger inside allowed lateness (Flink re-fires on every late element)"),
        )
        .with(
            Feature::CountTriggers,
            extension("Beam's element-count trigger state machine (Flink's CountTrigger as a sub-trigger)"),
        )
        .with(
            Feature::CompositeTriggers,
            extension("Beam's composite triggers (repeatedly, after-each/first/all, or-finally); Flink has no composites"),
        )
        .with(
            Feature::ProcessingTimeTriggers,
            extension("Beam's processing-time trigger, on the subtask's processing time"),
        )
        .with(
            Feature::TimestampCombiners,
            extension("Beam's timestamp combiners for window results (Flink always uses the window's max timestamp)"),
        )
        .with(
            Feature::Assertions,
            extension("AssertEqual runs as a parallelism-1 operator"),
        )
}

impl ScheduledRunner for ContinuousRunner {
    fn name(&self) -> &'static str {
        "continuous"
    }

    /// Flink's rules on a schedule, deterministically (see [`schedule`]): periodic
    /// watermarks `max_ts − D − 1`, two-phase-commit sinks when `checkpoint_interval` is
    /// set, crashes and restarts from the run's own checkpoints. Settings:
    /// [`schedule::SCHEDULE_SETTINGS`].
    fn run_schedule(
        &self,
        plan: &Plan,
        schedule: &Schedule,
        settings: &std::collections::BTreeMap<String, String>,
    ) -> Result<RunRecord, RunError> {
        self.check(plan)?;
        schedule::run_schedule(plan, schedule, settings).map_err(|e| -> RunError { e.into() })
    }
}

impl Runner for ContinuousRunner {
    fn name(&self) -> &'static str {
        "continuous"
    }
    fn description(&self) -> &'static str {
        "Flink-style: parallel subtasks on tokio, in-band watermarks, credit-based backpressure"
    }
    fn capabilities(&self) -> Capabilities {
        capabilities()
    }
    fn run(&self, plan: &Plan, options: &PipelineOptions) -> Result<RunReport, RunError> {
        Ok(self
            .execute(plan, options)
            .map_err(|e| -> RunError { e.into() })?
            .report)
    }
}
