//! # weir-runner-direct
//!
//! The reference runner: single-threaded, deterministic, the Beam model exactly. Every other
//! runner is compared against it.
//!
//! It drives the shared operators of `weir-runner-core` with one rule set:
//! - sources are polled round-robin, partition by partition, `bundle_size` rows at a time;
//! - after every bundle the runner reaches quiescence: everything emitted is delivered, then
//!   watermarks are recomputed in topological order (input watermark = min over inputs), an
//!   operator's outputs always travelling before its new watermark;
//! - a source's watermark is `MIN` until every partition has ended, then `MAX` (event time
//!   and its watermark come from `AssignTimestamps`' strategy);
//! - a [`TestStream`] replaces polling with explicit steps (`add_elements`,
//!   `advance_watermark_to`, `advance_processing_time`, `advance_watermark_to_infinity`) on
//!   a manual processing-time clock, reaching quiescence before each step.

mod executor;
mod test_stream;

pub use executor::DirectRun;
pub use test_stream::{TestStep, TestStream};
pub use weir_runner_core::schedule::WatermarkEvent;

use std::collections::BTreeMap;
use weir_model::plan::Plan;
use weir_model::requirements::Capabilities;
use weir_model::runner::{PipelineOptions, RunError, RunReport, Runner};
use weir_runner_core::io::SinkRegistry;
use weir_runner_core::schedule::{RunRecord, Schedule, ScheduledRunner};

/// Settings the direct runner accepts through `--set key=value`.
pub const SETTINGS: &[(&str, &str)] = &[("bundle_size", "rows read from a source partition per bundle (default 1: the watermark advances after every element)")];

/// The reference runner.
#[derive(Debug, Clone, Default)]
pub struct DirectRunner {
    sinks: SinkRegistry,
}

impl DirectRunner {
    /// A direct runner whose in-memory sinks record into a fresh registry.
    pub fn new() -> Self {
        DirectRunner::default()
    }

    /// A direct runner recording in-memory sink output into `sinks`.
    pub fn with_sinks(sinks: SinkRegistry) -> Self {
        DirectRunner { sinks }
    }

    /// The registry of in-memory sinks this runner writes to.
    pub fn sinks(&self) -> &SinkRegistry {
        &self.sinks
    }

    /// Runs `plan` to completion on the wall clock, returning the full run record.
    pub fn execute(&self, plan: &Plan, options: &PipelineOptions) -> anyhow::Result<DirectRun> {
        self.check(plan)?;
        let bundle_size = bundle_size(options)?;
        let mut run = executor::Executor::new(
            plan,
            self.sinks.clone(),
            executor::Clock::Wall,
            &Default::default(),
        )?;
        run.run_to_completion(bundle_size)?;
        Ok(run.finish())
    }

    /// Runs `plan` driven by a test stream on a manual clock starting at 0.
    pub fn execute_test_stream(
        &self,
        plan: &Plan,
        stream: &TestStream,
    ) -> anyhow::Result<DirectRun> {
        self.check(plan)?;
        let mut scripted = std::collections::BTreeMap::new();
        for step in &stream.steps {
            if let TestStep::AddElements {
                source, partition, ..
            } = step
            {
                match plan.pipeline.node(source).map(|n| &n.transform) {
                    Some(weir_model::transform::Transform::Read { .. }) => {}
                    Some(_) => anyhow::bail!("the test stream feeds `{source}`, which is not a Read transform"),
                    None => anyhow::bail!("the test stream feeds `{source}`, which is not a transform of the pipeline"),
                }
                let parts = scripted.entry(source.clone()).or_insert(1u32);
                *parts = (*parts).max(partition + 1);
            }
        }
        let mut run = executor::Executor::new(
            plan,
            self.sinks.clone(),
            executor::Clock::Manual(0),
            &scripted,
        )?;
        run.run_test_stream(stream)?;
        Ok(run.finish())
    }
}

fn bundle_size(options: &PipelineOptions) -> anyhow::Result<usize> {
    options
        .reject_unused_flags("direct", &[])
        .map_err(anyhow::Error::msg)?;
    options
        .reject_unknown_settings("direct", SETTINGS, &[])
        .map_err(anyhow::Error::msg)?;
    match options.setting("bundle_size") {
        None => Ok(1),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => anyhow::bail!("setting `bundle_size`: `{v}` is not a positive whole number"),
        },
    }
}

impl ScheduledRunner for DirectRunner {
    fn name(&self) -> &'static str {
        "direct"
    }

    /// The model on a schedule: rows arrive one at a time and the watermark strategy is
    /// applied after every row (no emission interval); crashes and restarts are ignored and
    /// listed in [`RunRecord::ignored_steps`]. Settings: none.
    fn run_schedule(
        &self,
        plan: &Plan,
        schedule: &Schedule,
        settings: &BTreeMap<String, String>,
    ) -> Result<RunRecord, RunError> {
        if let Some(k) = settings.keys().next() {
            return Err(format!("the direct runner has no scheduled-run setting `{k}`").into());
        }
        self.check(plan)?;
        let sinks = SinkRegistry::default();
        let mut run = executor::Executor::new(
            plan,
            sinks.clone(),
            executor::Clock::Manual(0),
            &schedule.partitions(),
        )
        .map_err(|e| -> RunError { e.into() })?;
        let ignored = run
            .run_schedule(schedule)
            .map_err(|e| -> RunError { e.into() })?;
        let done = run.finish();
        Ok(RunRecord {
            sinks: sinks
                .names()
                .into_iter()
                .map(|n| (n.clone(), sinks.rows(&n)))
                .collect(),
            watermarks: done.trace,
            late_dropped: done.report.late_dropped,
            dead_letters: done.report.dead_letters,
            ignored_steps: ignored,
            input_left_open: false,
        })
    }
}

impl Runner for DirectRunner {
    fn name(&self) -> &'static str {
        "direct"
    }
    fn description(&self) -> &'static str {
        "reference runner: single-threaded, deterministic, the Beam model exactly"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::all_native()
    }
    fn run(&self, plan: &Plan, options: &PipelineOptions) -> Result<RunReport, RunError> {
        Ok(self
            .execute(plan, options)
            .map_err(|e| -> RunError { e.into() })?
            .report)
    }
}
