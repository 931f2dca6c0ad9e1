//! # weir
//!
//! Write a stream-processing pipeline once — in Rust or as a pipeline file — and choose how
//! it executes with `--runner`. This facade crate re-exports the model and the runners, keeps
//! the runner registry, and loads pipelines from files.
//!
//! ```no_run
//! use weir::prelude::*;
//!
//! let pipeline = weir::load_pipeline("examples/word_count/pipeline.yaml".as_ref())?;
//! let plan = weir::model::plan(&pipeline)?;
//! let options = PipelineOptions::from_args(std::env::args())?;
//! let runner = weir::runner(&options.runner)?;
//! runner.run(&plan, &options).map_err(|e| anyhow::anyhow!(e))?;
//! # Ok::<(), anyhow::Error>(())
//! ```

use anyhow::{bail, Context};
use std::path::Path;

pub use weir_conformance as conformance;
pub use weir_model as model;
pub use weir_runner_continuous as continuous;
pub use weir_runner_core as core;
pub use weir_runner_direct as direct;
pub use weir_runner_microbatch as microbatch;

/// The names most programs need.
pub mod prelude {
    pub use weir_model::expr::{col, lit};
    pub use weir_model::runner::{PipelineOptions, Runner};
    pub use weir_model::sdk::*;
    pub use weir_model::time::Duration;
    pub use weir_model::window::{Trigger, WatermarkStrategy, WindowFn, WindowingStrategy};
    pub use weir_model::{plan, DataType, Expr, Field, Pipeline, Schema};
}

/// Runners that may be asked for but are not part of this build, with the reason.
const NOT_BUILT: &[(&str, &str)] = &[
    (
        "spark",
        "the Spark Connect bridge is not part of this build yet",
    ),
    (
        "flink",
        "the Flink REST bridge is not part of this build yet",
    ),
];

/// Every runner in this build.
pub fn runners() -> Vec<Box<dyn model::runner::Runner>> {
    vec![
        Box::new(direct::DirectRunner::new()),
        Box::new(microbatch::MicroBatchRunner::new()),
        Box::new(continuous::ContinuousRunner::new()),
    ]
}

/// Every runner that can run a conformance schedule deterministically.
pub fn scheduled_runners() -> Vec<Box<dyn core::schedule::ScheduledRunner>> {
    vec![
        Box::new(direct::DirectRunner::new()),
        Box::new(microbatch::MicroBatchRunner::new()),
        Box::new(continuous::ContinuousRunner::new()),
    ]
}

/// The runner called `name`, or an error naming the runners available.
pub fn runner(name: &str) -> anyhow::Result<Box<dyn model::runner::Runner>> {
    if let Some(r) = runners().into_iter().find(|r| r.name() == name) {
        return Ok(r);
    }
    let available: Vec<&str> = runners().iter().map(|r| r.name()).collect();
    if let Some((_, why)) = NOT_BUILT.iter().find(|(n, _)| *n == name) {
        bail!(
            "runner `{name}` is not available: {why} (available: {})",
            available.join(", ")
        );
    }
    bail!(
        "unknown runner `{name}` (available: {})",
        available.join(", ")
    )
}

/// Loads a pipeline from a pipeline file (`.yaml`/`.yml`) or a canonical JSON pipeline or
/// plan (`.json`).
pub fn load_pipeline(path: &Path) -> anyhow::Result<model::Pipeline> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading pipeline `{}`", path.display()))?;
    let is_json = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => true,
        Some("yaml") | Some("yml") => false,
        _ => text.trim_start().starts_with('{'),
    };
    if is_json {
        model::Pipeline::from_json(&text)
            .with_context(|| format!("reading pipeline JSON `{}`", path.display()))
    } else {
        Ok(model::file::parse_str(&text, &path.display().to_string())?)
    }
}
