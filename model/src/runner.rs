//! The `Runner` trait and the pipeline options a user's binary parses from its command line,
//! so one program selects its runner with `--runner`.

use crate::error::ModelError;
use crate::plan::Plan;
use crate::requirements::Capabilities;
use std::collections::BTreeMap;

/// Options shared by every runner, plus runner-specific `--set key=value` pairs.
///
/// Embed it in a user's own `clap` parser with `#[command(flatten)]`, or parse it alone with
/// [`PipelineOptions::from_args`].
#[derive(Debug, Clone, clap::Args, Default)]
pub struct PipelineOptions {
    /// Which runner executes the pipeline: direct, microbatch, continuous (spark and flink
    /// when their bridges are built).
    #[arg(long, default_value = "direct", env = "WEIR_RUNNER")]
    pub runner: String,
    /// Parallel subtasks/partitions for runners that run in parallel (default: cores).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Runner-specific settings, `key=value` (repeatable), e.g. `--set bundle_size=100`.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub settings: Vec<(String, String)>,
    /// Micro-batch trigger: `processing-time=<duration>`, `available-now` or `once`.
    #[arg(long)]
    pub trigger: Option<String>,
    /// Micro-batch: run batches without new data when the watermark would close windows.
    #[arg(long)]
    pub no_data_batches: Option<bool>,
    /// Micro-batch: global watermark over several watermarked inputs, `min` or `max`.
    #[arg(long)]
    pub watermark_policy: Option<String>,
    /// Where checkpoints (offset/commit logs, state snapshots) are kept.
    #[arg(long)]
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// Continuous: time between checkpoints (e.g. `1s`).
    #[arg(long)]
    pub checkpoint_interval: Option<String>,
    /// Continuous: `exactly-once` (aligned barriers) or `at-least-once`.
    #[arg(long)]
    pub checkpoint_mode: Option<String>,
    /// Continuous: flush output buffers at least this often (e.g. `5ms`; `0` flushes every record).
    #[arg(long)]
    pub buffer_timeout: Option<String>,
    /// Continuous: how often sources emit watermarks (e.g. `200ms`).
    #[arg(long)]
    pub watermark_interval: Option<String>,
    /// Write per-batch/per-checkpoint progress as JSON lines to this file.
    #[arg(long)]
    pub progress_json: Option<std::path::PathBuf>,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

#[derive(clap::Parser)]
struct OptionsOnly {
    #[command(flatten)]
    options: PipelineOptions,
}

impl PipelineOptions {
    /// Options for `runner` with defaults.
    pub fn for_runner(runner: &str) -> Self {
        PipelineOptions {
            runner: runner.to_string(),
            ..Default::default()
        }
    }
    /// Parses options from an argument list (the first item is the program name).
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::Parser;
        OptionsOnly::try_parse_from(args).map(|o| o.options)
    }
    /// Runner-specific settings as a map (later values win).
    pub fn settings_map(&self) -> BTreeMap<String, String> {
        self.settings.iter().cloned().collect()
    }
    /// The runner-specific flags given on the command line (their `--` names).
    pub fn given_flags(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut flag = |set: bool, name: &'static str| {
            if set {
                out.push(name);
            }
        };
        flag(self.parallelism.is_some(), "parallelism");
        flag(self.trigger.is_some(), "trigger");
        flag(self.no_data_batches.is_some(), "no-data-batches");
        flag(self.watermark_policy.is_some(), "watermark-policy");
        flag(self.checkpoint_dir.is_some(), "checkpoint-dir");
        flag(self.checkpoint_interval.is_some(), "checkpoint-interval");
        flag(self.checkpoint_mode.is_some(), "checkpoint-mode");
        flag(self.buffer_timeout.is_some(), "buffer-timeout");
        flag(self.watermark_interval.is_some(), "watermark-interval");
        flag(self.progress_json.is_some(), "progress-json");
        out
    }

    /// Refuses flags runner `runner` does not use (`accepted` lists the ones it does), so a
    /// flag is never silently ignored.
    pub fn reject_unused_flags(&self, runner: &str, accepted: &[&str]) -> Result<(), String> {
        match self
            .given_flags()
            .into_iter()
            .find(|f| !accepted.contains(f))
        {
            Some(f) => Err(format!("the {runner} runner does not use --{f}")),
            None => Ok(()),
        }
    }

    /// Refuses `--set` keys runner `runner` does not know: `known` lists its settings (name,
    /// description; the error lists the names), `prefixes` the key families it also accepts
    /// (e.g. `parallelism.`, described in `known`).
    pub fn reject_unknown_settings(
        &self,
        runner: &str,
        known: &[(&str, &str)],
        prefixes: &[&str],
    ) -> Result<(), String> {
        let is_known = |k: &str| {
            known.iter().any(|(n, _)| *n == k) || prefixes.iter().any(|p| k.starts_with(p))
        };
        match self.settings.iter().find(|(k, _)| !is_known(k)) {
            Some((k, _)) => {
                let names: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
                Err(format!(
                    "the {runner} runner has no setting `{k}` (settings: {})",
                    names.join(", ")
                ))
            }
            None => Ok(()),
        }
    }

    /// One runner-specific setting.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunReport {
    /// Rows written per sink node.
    pub rows_written: BTreeMap<String, u64>,
    /// Rows dropped as late, per aggregation node.
    pub late_dropped: BTreeMap<String, u64>,
    /// Records routed to dead-letter outputs, per node.
    pub dead_letters: BTreeMap<String, u64>,
}

/// An error while running a pipeline.
pub type RunError = Box<dyn std::error::Error + Send + Sync>;

/// Executes planned pipelines.
pub trait Runner: Send + Sync {
    /// The runner's name as given to `--runner`.
    fn name(&self) -> &'static str;
    /// One line on what this runner is.
    fn description(&self) -> &'static str;
    /// What the runner supports.
    fn capabilities(&self) -> Capabilities;
    /// Refuses a pipeline that needs a feature this runner lacks, naming it.
    fn check(&self, plan: &Plan) -> Result<(), ModelError> {
        match self.capabilities().check(&plan.requirements) {
            Some((feature, reason)) => Err(ModelError::Unsupported {
                runner: self.name().to_string(),
                feature: feature.name(),
                reason,
            }),
            None => Ok(()),
        }
    }
    /// Runs the pipeline to completion (bounded input) or until stopped.
    fn run(&self, plan: &Plan, options: &PipelineOptions) -> Result<RunReport, RunError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runner_and_settings_from_args() {
        let o = PipelineOptions::from_args([
            "app",
            "--runner",
            "microbatch",
            "--set",
            "trigger=1s",
            "--parallelism",
            "2",
        ])
        .unwrap();
        assert_eq!(o.runner, "microbatch");
        assert_eq!(o.parallelism, Some(2));
        assert_eq!(o.setting("trigger"), Some("1s"));
        assert!(PipelineOptions::from_args(["app", "--set", "nokey"]).is_err());
    }

    #[test]
    fn a_flag_the_runner_does_not_use_is_refused_by_name() {
        let o = PipelineOptions::from_args(["app", "--trigger", "once"]).unwrap();
        assert_eq!(
            o.reject_unused_flags("direct", &[]).unwrap_err(),
            "the direct runner does not use --trigger"
        );
        assert!(o.reject_unused_flags("microbatch", &["trigger"]).is_ok());
    }

    #[test]
    fn an_unknown_setting_is_refused_listing_the_known_ones() {
        let o = PipelineOptions::from_args([
            "app",
            "--set",
            "colour=blue",
            "--set",
            "parallelism.Count=2",
        ])
        .unwrap();
        let known = [
            ("clock", "which clock"),
            ("parallelism.<transform>", "per transform"),
        ];
        assert_eq!(
            o.reject_unknown_settings("continuous", &known, &["parallelism."])
                .unwrap_err(),
            "the continuous runner has no setting `colour` (settings: clock, parallelism.<transform>)"
        );
        let o = PipelineOptions::from_args(["app", "--set", "parallelism.Count=2"]).unwrap();
        assert!(o
            .reject_unknown_settings("continuous", &known, &["parallelism."])
            .is_ok());
    }
}
