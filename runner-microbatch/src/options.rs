//! The runner's options: command-line flags from [`PipelineOptions`] and `--set` settings.

use crate::error::{MicroBatchError, Result};
use crate::query::QueryConfig;
use crate::state::StateStoreConfig;
use crate::trigger::QueryTrigger;
use crate::watermark::WatermarkPolicy;
use weir_model::runner::PipelineOptions;

/// Flags the micro-batch runner uses; any other runner-specific flag is refused.
pub const FLAGS: &[&str] = &[
    "trigger",
    "no-data-batches",
    "watermark-policy",
    "checkpoint-dir",
    "parallelism",
    "progress-json",
];

/// Settings accepted through `--set key=value`, with what they do.
pub const SETTINGS: &[(&str, &str)] = &[
    ("max_rows_per_partition", "rows read per source partition per batch at most (default 1000000), like Spark's maxOffsetsPerTrigger"),
    ("max_batches", "stop after this many batches (for unbounded inputs)"),
    ("snapshot_every", "state store: a full snapshot every N versions (default 10)"),
    ("retain_batches", "checkpoint: batches kept restorable (default 100)"),
    ("end_of_input", "true (default): when every source has ended, a last batch at the maximum watermark closes every window"),
    ("progress", "true: a progress line per batch on stderr (default true from the CLI)"),
    ("output_mode", "`complete`: the whole result table at every batch end (global-window aggregations with a repeated trigger and accumulating panes); otherwise derived from each aggregation's trigger"),
];

fn number(options: &PipelineOptions, key: &str) -> Result<Option<u64>> {
    match options.setting(key) {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| {
                MicroBatchError::Options(format!(
                    "setting `{key}`: `{v}` is not a positive whole number"
                ))
            }),
    }
}

fn boolean(options: &PipelineOptions, key: &str) -> Result<Option<bool>> {
    match options.setting(key) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(v) => Err(MicroBatchError::Options(format!(
            "setting `{key}`: `{v}` is not true or false"
        ))),
    }
}

/// The query configuration `options` ask for (the checkpoint directory as given).
pub fn query_config(options: &PipelineOptions) -> Result<QueryConfig> {
    // The model's message names the runner; ours adds the same prefix, so keep the rest.
    options
        .reject_unused_flags("microbatch", FLAGS)
        .map_err(|e| {
            MicroBatchError::Options(e.trim_start_matches("the microbatch runner ").to_string())
        })?;
    options
        .reject_unknown_settings("microbatch", SETTINGS, &[])
        .map_err(|e| {
            MicroBatchError::Options(e.trim_start_matches("the microbatch runner ").to_string())
        })?;
    let mut c = QueryConfig::default();
    if let Some(t) = &options.trigger {
        c.trigger = QueryTrigger::parse(t).map_err(MicroBatchError::Options)?;
    }
    if let Some(b) = options.no_data_batches {
        c.no_data_batches = b;
    }
    if let Some(p) = &options.watermark_policy {
        c.watermark_policy = WatermarkPolicy::parse(p).map_err(MicroBatchError::Options)?;
    }
    if let Some(p) = options.parallelism {
        if p == 0 {
            return Err(MicroBatchError::Options(
                "--parallelism must be at least 1".into(),
            ));
        }
        c.parallelism = p;
    }
    c.checkpoint_dir = options.checkpoint_dir.clone();
    c.progress_json = options.progress_json.clone();
    if let Some(n) = number(options, "max_rows_per_partition")? {
        c.max_rows_per_partition = n as usize;
    }
    c.max_batches = number(options, "max_batches")?;
    let defaults = StateStoreConfig::default();
    c.state = StateStoreConfig {
        snapshot_every: number(options, "snapshot_every")?.unwrap_or(defaults.snapshot_every),
        retain: number(options, "retain_batches")?.unwrap_or(defaults.retain),
    };
    if let Some(b) = boolean(options, "end_of_input")? {
        c.end_of_input = b;
    }
    c.progress_to_stderr = boolean(options, "progress")?.unwrap_or(true);
    match options.setting("output_mode") {
        None => {}
        Some("complete") => c.complete_output = true,
        Some(other) => {
            return Err(MicroBatchError::Options(format!(
                "setting `output_mode`: `{other}` is not `complete` (append and update follow from each aggregation's trigger)"
            )))
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<QueryConfig> {
        let mut all = vec!["app"];
        all.extend_from_slice(args);
        query_config(&PipelineOptions::from_args(all).unwrap())
    }

    #[test]
    fn flags_and_settings_become_the_query_configuration() {
        let c = parse(&[
            "--trigger",
            "processing-time=1s",
            "--no-data-batches",
            "false",
            "--watermark-policy",
            "max",
            "--parallelism",
            "2",
            "--set",
            "max_rows_per_partition=10",
        ])
        .unwrap();
        assert_eq!(c.trigger, QueryTrigger::ProcessingTime(1_000));
        assert!(!c.no_data_batches);
        assert_eq!(c.watermark_policy, WatermarkPolicy::Max);
        assert_eq!(c.parallelism, 2);
        assert_eq!(c.max_rows_per_partition, 10);
    }

    #[test]
    fn flags_of_other_runners_and_unknown_settings_are_refused_by_name() {
        let err = parse(&["--checkpoint-mode", "exactly-once"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--checkpoint-mode"), "{err}");
        let err = parse(&["--set", "bundle_size=3"]).unwrap_err().to_string();
        assert!(err.contains("bundle_size"), "{err}");
        assert!(parse(&["--trigger", "sometimes"]).is_err());
    }
}
