//! # weir-runner-microbatch
//!
//! Weir's Spark-Structured-Streaming-style runner. Input is cut into micro-batches at
//! trigger ticks; each batch reads an offset range per source partition, runs the plan's
//! stages over Arrow batches (narrow stages as one rayon task per partition, stateful stages
//! over the whole batch after the keyed exchange), and commits exactly once through an
//! offset log, a commit log and a versioned state store.
//!
//! The rules, each a named function or type with the Spark behaviour it reproduces:
//! - watermark ([`watermark`]): per `AssignTimestamps` the max event time minus the delay,
//!   at batch end, never decreasing, global min/max; late filtering with the previous
//!   batch's watermark ([`watermark::late_filter_watermark`]), eviction with this batch's
//!   ([`watermark::eviction_watermark`]);
//! - output modes and firing at batch boundaries ([`translate`]);
//! - stages: narrow ones per source partition, keyed stateful ones (windowed aggregation with a
//!   vectorized path for built-in combines, GroupByKey, TopN, CoGroupByKey, windowed joins,
//!   deduplication, stateful ParDo with timers at batch boundaries) per shard after the keyed
//!   exchange ([`exec`]);
//! - triggers and clocks ([`trigger`]);
//! - offset/commit logs ([`log`]) and the state store ([`state`]);
//! - the batch loop, recovery and stop points ([`query`]); progress ([`progress`]);
//! - deterministic runs of conformance schedules on a manual clock ([`schedule`]).
//!
//! # Examples
//!
//! ```
//! use weir_model::runner::Runner;
//! let runner = weir_runner_microbatch::MicroBatchRunner::new();
//! assert_eq!(runner.name(), "microbatch");
//! ```

#![deny(missing_docs)]

pub mod error;
pub mod exec;
pub mod log;
pub mod options;
pub mod progress;
pub mod query;
pub mod schedule;
pub mod state;
pub mod translate;
pub mod trigger;
pub mod watermark;

pub use error::MicroBatchError;
pub use query::{MicroBatchQuery, QueryConfig, StopPoint};
pub use trigger::{Clock, ManualClock, QueryTrigger};

use progress::BatchProgress;
use std::collections::BTreeMap;
use weir_model::error::ModelError;
use weir_model::plan::Plan;
use weir_model::requirements::{Capabilities, Feature, Support};
use weir_model::runner::{PipelineOptions, RunError, RunReport, Runner};
use weir_runner_core::io::SinkRegistry;
use weir_runner_core::schedule::{RunRecord, Schedule, ScheduledRunner};

#[cfg(feature = "mutations")]
#[doc(hidden)]
pub use watermark::Mutation;

/// The micro-batch runner.
#[derive(Debug, Clone, Default)]
pub struct MicroBatchRunner {
    sinks: SinkRegistry,
    /// A deliberate bug (mutation testing only).
    #[cfg(feature = "mutations")]
    mutation: Option<watermark::Mutation>,
}

/// Everything a finished run produced.
#[derive(Debug, Clone)]
pub struct MicroBatchRun {
    /// Counters per node.
    pub report: RunReport,
    /// In-memory sink output.
    pub sinks: SinkRegistry,
    /// Progress of every batch.
    pub progress: Vec<BatchProgress>,
}

/// The capability table: what runs as Spark runs it, what is a Weir extension in
/// micro-batch style, and what is refused and why.
pub fn capabilities() -> Capabilities {
    let ext = |note: &str| Support::Extension {
        note: note.to_string(),
    };
    let no = |reason: &str| Support::Unsupported {
        reason: reason.to_string(),
    };
    Capabilities::all_native()
        .with(Feature::CustomWindows, ext("user window functions assign windows per row; merging ones merge per key at batch boundaries"))
        .with(Feature::AllowedLateness, ext("windows stay in state until window_end + allowed lateness <= watermark; late rows within it emit a LATE pane at the end of their batch"))
        .with(Feature::LateDataSideOutput, ext("rows Spark would drop as late go to the side output instead"))
        .with(Feature::EarlyFirings, ext("evaluated at batch ends: update output mode"))
        .with(Feature::LateFirings, ext("evaluated at batch ends within allowed lateness"))
        .with(Feature::ProcessingTimeTriggers, ext("a pane fires at the first batch end at least the delay after its first row"))
        .with(Feature::CountTriggers, ext("a pane fires at the first batch end where it holds at least the count"))
        .with(Feature::CompositeTriggers, ext("repeatedly(...) only, as update output mode; after-each/after-first/after-all/or-finally are refused"))
        .with(Feature::AccumulatingPanes, ext("update-mode panes carry the whole window so far; discarding panes carry rows since the last pane"))
        .with(Feature::TimestampCombiners, no("results carry window_end - 1; Spark has no choice of result timestamp"))
        .with(Feature::Joins, ext("windowed joins and CoGroupByKey run as a keyed windowed aggregation of all inputs: matches are emitted when the window fires, per its trigger (Spark's stream-stream join emits matches as they arrive, which the model does not)"))
        .with(Feature::IdleTimeout, no("Spark's watermark has no idleness: an input without data is left out of the global watermark until it has data"))
}

impl MicroBatchRunner {
    /// A runner whose in-memory sinks record into a fresh registry.
    pub fn new() -> Self {
        MicroBatchRunner::default()
    }

    /// A runner recording in-memory sink output into `sinks`.
    pub fn with_sinks(sinks: SinkRegistry) -> Self {
        MicroBatchRunner {
            sinks,
            #[cfg(feature = "mutations")]
            mutation: None,
        }
    }

    /// This runner with a deliberate semantic bug, for tests showing the conformance suite
    /// catches it (cargo feature `mutations`; the command line never builds one).
    #[cfg(feature = "mutations")]
    #[doc(hidden)]
    pub fn with_mutation(mut self, mutation: watermark::Mutation) -> Self {
        self.mutation = Some(mutation);
        self
    }

    /// The registry of in-memory sinks.
    pub fn sinks(&self) -> &SinkRegistry {
        &self.sinks
    }

    /// Runs `plan` on the wall clock as `options` say. Without `--checkpoint-dir` the
    /// checkpoint lives in a temporary directory removed after a successful run (Spark does
    /// the same for queries without a checkpoint location).
    pub fn execute(
        &self,
        plan: &Plan,
        options: &PipelineOptions,
    ) -> Result<MicroBatchRun, MicroBatchError> {
        self.check(plan).map_err(|e| match e {
            ModelError::Unsupported {
                feature, reason, ..
            } => MicroBatchError::Unsupported { feature, reason },
            other => MicroBatchError::Options(other.to_string()),
        })?;
        let mut config = options::query_config(options)?;
        if matches!(
            config.trigger,
            trigger::QueryTrigger::AvailableNow | trigger::QueryTrigger::Once
        ) {
            if let Some(node) = paced_source(plan) {
                return Err(MicroBatchError::Unsupported {
                    feature: "rate".into(),
                    reason: format!(
                        "source `{node}` is paced (`rate`), and the {} trigger processes what is available when the query starts: a paced source holds most of its input back, so the query would end with it unread; use a processing-time trigger",
                        options.trigger.as_deref().unwrap_or("")
                    ),
                });
            }
        }
        let temp = match &config.checkpoint_dir {
            Some(_) => None,
            None => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let dir = std::env::temp_dir()
                    .join(format!("weir-microbatch-{}-{nanos}", std::process::id()));
                config.checkpoint_dir = Some(dir.clone());
                Some(dir)
            }
        };
        let mut query = MicroBatchQuery::open(plan, config, Clock::Wall, self.sinks.clone())?;
        #[cfg(feature = "mutations")]
        query.set_mutation(self.mutation);
        query.run_to_completion()?;
        if let Some(dir) = temp {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(MicroBatchRun {
            report: query.report(),
            sinks: self.sinks.clone(),
            progress: query.progress().to_vec(),
        })
    }
}

impl ScheduledRunner for MicroBatchRunner {
    fn name(&self) -> &'static str {
        "microbatch"
    }

    /// Spark Structured Streaming on a manual clock: trigger ticks, batches that take no
    /// time, crashes at the runner's stop points and restarts from a per-run checkpoint
    /// directory. The rules are in [`schedule`]; settings in [`schedule::SCHEDULE_SETTINGS`].
    fn run_schedule(
        &self,
        plan: &Plan,
        schedule: &Schedule,
        settings: &BTreeMap<String, String>,
    ) -> Result<RunRecord, RunError> {
        schedule::run_schedule(self, plan, schedule, settings)
    }
}

impl Runner for MicroBatchRunner {
    fn name(&self) -> &'static str {
        "microbatch"
    }
    fn description(&self) -> &'static str {
        "Spark Structured Streaming semantics: micro-batches of Arrow data on rayon, offset and commit logs"
    }
    fn capabilities(&self) -> Capabilities {
        capabilities()
    }
    fn check(&self, plan: &Plan) -> Result<(), ModelError> {
        if let Some((feature, reason)) = self.capabilities().check(&plan.requirements) {
            return Err(ModelError::Unsupported {
                runner: Runner::name(self).into(),
                feature: feature.name(),
                reason,
            });
        }
        translate::check_translatable(plan).map_err(|e| match e {
            MicroBatchError::Unsupported { feature, reason } => ModelError::Unsupported {
                runner: Runner::name(self).into(),
                feature,
                reason,
            },
            other => ModelError::Json(other.to_string()),
        })
    }
    fn run(&self, plan: &Plan, options: &PipelineOptions) -> Result<RunReport, RunError> {
        Ok(self.execute(plan, options)?.report)
    }
}

/// The first source of `plan` paced by a `rate`, if any.
fn paced_source(plan: &Plan) -> Option<&str> {
    use weir_model::io::SourceSpec;
    use weir_model::transform::Transform;
    plan.pipeline
        .transforms
        .iter()
        .find_map(|t| match &t.transform {
            Transform::Read { source, .. } => {
                let paced = match source {
                    SourceSpec::Sequence { rate, .. }
                    | SourceSpec::Files { rate, .. }
                    | SourceSpec::Nexmark { rate, .. } => rate.is_some(),
                    SourceSpec::JetStream(spec) => spec.rate.is_some(),
                    _ => false,
                };
                paced.then_some(t.name.as_str())
            }
            _ => None,
        })
}
