//! # weir-conformance
//!
//! The same scenarios on every runner, compared side by side: what the direct runner (the
//! model), the micro-batch runner (Spark-style) and the continuous runner (Flink-style) do to
//! the same data, where they agree, and why they differ.
//!
//! - [`scenario`]: the scenario file format (pipeline, schedule, runner settings,
//!   expectations), documented in `conformance/README.md`.
//! - [`harness`]: runs a scenario on each runner through the runner-neutral
//!   [`ScheduledRunner`](weir_runner_core::schedule::ScheduledRunner) interface.
//! - [`verdict`]: compares outputs with expectations and checks the invariants of the design
//!   on every run.
//! - [`functions`]: the user functions scenarios name (typetag), so UDF, state and timer
//!   features are compared too.
//! - [`matrix`]: the Beam-style capability matrix, each claim linked to its scenarios.
//! - [`report`]: terminal table, Markdown, JSON and a static HTML page.

pub mod functions;
pub mod harness;
pub mod matrix;
pub mod report;
pub mod scenario;
pub mod verdict;

pub use harness::{run_catalogue, run_scenario, ScenarioResult};
pub use scenario::{load_scenarios, Scenario};
pub use verdict::{Verdict, VerdictKind};
