//! The continuous runner's settings, from `PipelineOptions`.

use crate::checkpoint::{CheckpointConfig, CheckpointMode, KillPoint};
use anyhow::{bail, Context};
use std::path::PathBuf;
use weir_model::runner::PipelineOptions;
use weir_model::time::Duration;

/// Flags of `PipelineOptions` this runner uses.
pub const FLAGS: &[&str] = &[
    "parallelism",
    "buffer-timeout",
    "watermark-interval",
    "progress-json",
    "checkpoint-interval",
    "checkpoint-dir",
    "checkpoint-mode",
];

/// Settings accepted through `--set key=value`.
pub const SETTINGS: &[(&str, &str)] = &[
    (
        "clock",
        "`wall` (default) or `manual`: deterministic mode, a single-threaded scheduler and a manual processing-time clock per source subtask advanced by `manual_tick` per poll",
    ),
    (
        "manual_tick",
        "manual clock advance per source poll (default: the watermark interval, so a watermark follows every poll)",
    ),
    (
        "source_batch_rows",
        "rows a source split yields per poll (default 1024; 1 in manual mode: per-record)",
    ),
    (
        "watermark_alignment",
        "maximum drift between source subtasks' watermarks (e.g. `1s`); a source subtask further ahead of the slowest pauses until it catches up (Flink's watermark alignment; default: off)",
    ),
    (
        "buffer_rows",
        "an output buffer is flushed when it holds this many rows (default 1024)",
    ),
    (
        "retain_checkpoints",
        "completed checkpoints kept in --checkpoint-dir (default 3)",
    ),
    (
        "restore",
        "`latest` or a checkpoint id: restore state, source positions and pending sink transactions from --checkpoint-dir",
    ),
    (
        "parallelism.<transform>",
        "run one transform at its own parallelism (Flink's `setParallelism`)",
    ),
    (
        "kill_at",
        "fail on purpose (recovery tests): `after-records:N`, `before-commit:ID`, `during-snapshot:ID`",
    ),
];

/// Processing-time mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMode {
    /// The system clock and the multi-threaded scheduler.
    Wall,
    /// Deterministic mode.
    Manual {
        /// Advance per source poll (ms).
        tick_ms: i64,
    },
}

/// Everything that decides how the continuous runner executes.
#[derive(Debug, Clone)]
pub struct ContinuousOptions {
    /// Subtasks per parallel operator (default: cores).
    pub parallelism: usize,
    /// Flush an output buffer at least this often (0: after every emission).
    pub buffer_timeout_ms: i64,
    /// Periodic watermark emission interval (processing time, ms).
    pub watermark_interval_ms: i64,
    /// Processing-time mode.
    pub clock: ClockMode,
    /// Rows per source poll.
    pub source_batch_rows: usize,
    /// Rows that make an output buffer full.
    pub buffer_rows: usize,
    /// Where to write progress JSON lines.
    pub progress_json: Option<PathBuf>,
    /// Checkpointing (with `--checkpoint-dir`).
    pub checkpoint: Option<CheckpointConfig>,
    /// Per-transform parallelism (`--set parallelism.<transform>=N`).
    pub transform_parallelism: std::collections::BTreeMap<String, usize>,
    /// Watermark alignment's maximum drift between source subtasks (ms), when on.
    pub watermark_alignment_ms: Option<i64>,
}

impl Default for ContinuousOptions {
    fn default() -> Self {
        ContinuousOptions {
            parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            buffer_timeout_ms: 5,
            watermark_interval_ms: 200,
            clock: ClockMode::Wall,
            source_batch_rows: 1024,
            buffer_rows: 1024,
            progress_json: None,
            checkpoint: None,
            transform_parallelism: Default::default(),
            watermark_alignment_ms: None,
        }
    }
}

fn duration(flag: &str, text: &str) -> anyhow::Result<i64> {
    let d = Duration::parse(text)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("--{flag} `{text}`"))?;
    if d.millis() < 0 {
        bail!("--{flag} `{text}` must not be negative");
    }
    Ok(d.millis())
}

fn positive(key: &str, text: &str) -> anyhow::Result<usize> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("setting `{key}`: `{text}` is not a positive whole number"),
    }
}

impl ContinuousOptions {
    /// Reads and validates the options, refusing flags and settings this runner does not use.
    pub fn from_pipeline_options(options: &PipelineOptions) -> anyhow::Result<Self> {
        options
            .reject_unused_flags("continuous", FLAGS)
            .map_err(anyhow::Error::msg)?;
        options
            .reject_unknown_settings("continuous", SETTINGS, &["parallelism."])
            .map_err(anyhow::Error::msg)?;
        let mut o = ContinuousOptions::default();
        if let Some(p) = options.parallelism {
            if p == 0 {
                bail!("--parallelism must be at least 1");
            }
            o.parallelism = p;
        }
        if let Some(t) = &options.buffer_timeout {
            o.buffer_timeout_ms = duration("buffer-timeout", t)?;
        }
        if let Some(t) = &options.watermark_interval {
            o.watermark_interval_ms = duration("watermark-interval", t)?;
        }
        o.progress_json = options.progress_json.clone();
        match options.setting("clock") {
            None | Some("wall") => {}
            Some("manual") => {
                let tick_ms = match options.setting("manual_tick") {
                    Some(t) => duration("set manual_tick", t)?,
                    None => o.watermark_interval_ms,
                };
                o.clock = ClockMode::Manual { tick_ms };
                o.source_batch_rows = 1;
            }
            Some(other) => bail!("setting `clock`: `{other}` is neither `wall` nor `manual`"),
        }
        if options.setting("manual_tick").is_some() && o.clock == ClockMode::Wall {
            bail!("setting `manual_tick` needs `clock=manual`");
        }
        if let Some(n) = options.setting("source_batch_rows") {
            o.source_batch_rows = positive("source_batch_rows", n)?;
        }
        if let Some(t) = options.setting("watermark_alignment") {
            let ms = duration("set watermark_alignment", t)?;
            if ms == 0 {
                bail!("setting `watermark_alignment`: `{t}` must be greater than 0");
            }
            o.watermark_alignment_ms = Some(ms);
        }
        if let Some(n) = options.setting("buffer_rows") {
            o.buffer_rows = positive("buffer_rows", n)?;
        }
        o.checkpoint = checkpoint_config(options)?;
        for (k, v) in options.settings_map() {
            if let Some(transform) = k.strip_prefix("parallelism.") {
                o.transform_parallelism
                    .insert(transform.to_string(), positive(&k, &v)?);
            }
        }
        Ok(o)
    }
}

fn checkpoint_config(options: &PipelineOptions) -> anyhow::Result<Option<CheckpointConfig>> {
    let needs_dir = |what: &str| -> anyhow::Result<Option<CheckpointConfig>> {
        bail!("{what} needs --checkpoint-dir")
    };
    let Some(dir) = options.checkpoint_dir.clone() else {
        if options.checkpoint_interval.is_some() {
            return needs_dir("--checkpoint-interval");
        }
        for key in ["restore", "retain_checkpoints", "kill_at"] {
            if options.setting(key).is_some() {
                return needs_dir(&format!("setting `{key}`"));
            }
        }
        if options.checkpoint_mode.is_some() {
            return needs_dir("--checkpoint-mode");
        }
        return Ok(None);
    };
    let interval_ms = match &options.checkpoint_interval {
        Some(t) => {
            let ms = duration("checkpoint-interval", t)?;
            if ms == 0 {
                bail!("--checkpoint-interval must be greater than 0");
            }
            ms
        }
        // A directory alone restores (with `restore`) without taking new checkpoints.
        None => 0,
    };
    let mode = match options.checkpoint_mode.as_deref() {
        None | Some("exactly-once") => CheckpointMode::ExactlyOnce,
        Some("at-least-once") => CheckpointMode::AtLeastOnce,
        Some(other) => {
            bail!("--checkpoint-mode `{other}` is neither `exactly-once` nor `at-least-once`")
        }
    };
    let retain = match options.setting("retain_checkpoints") {
        Some(n) => positive("retain_checkpoints", n)?,
        None => 3,
    };
    let restore = match options.setting("restore") {
        None => None,
        Some("latest") => Some(None),
        Some(id) => Some(Some(id.parse::<u64>().map_err(|_| {
            anyhow::anyhow!("setting `restore`: `{id}` is neither `latest` nor a checkpoint id")
        })?)),
    };
    let kill = options
        .setting("kill_at")
        .map(KillPoint::parse)
        .transpose()?;
    Ok(Some(CheckpointConfig {
        interval_ms,
        dir,
        mode,
        retain,
        restore,
        kill,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<ContinuousOptions> {
        let mut all = vec!["weir"];
        all.extend_from_slice(args);
        ContinuousOptions::from_pipeline_options(&PipelineOptions::from_args(all).unwrap())
    }

    #[test]
    fn defaults_follow_flink() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.buffer_timeout_ms, 5);
        assert_eq!(o.watermark_interval_ms, 200);
        assert!(o.parallelism >= 1);
        assert_eq!(o.clock, ClockMode::Wall);
    }

    #[test]
    fn flags_and_settings_are_read() {
        let o = parse(&[
            "--parallelism",
            "2",
            "--buffer-timeout",
            "0",
            "--watermark-interval",
            "50ms",
            "--set",
            "clock=manual",
        ])
        .unwrap();
        assert_eq!(o.parallelism, 2);
        assert_eq!(o.buffer_timeout_ms, 0);
        assert_eq!(o.clock, ClockMode::Manual { tick_ms: 50 });
        assert_eq!(o.source_batch_rows, 1);
    }

    #[test]
    fn unused_flags_checkpoints_and_unknown_settings_are_refused_by_name() {
        let e = parse(&["--trigger", "once"]).unwrap_err().to_string();
        assert!(e.contains("--trigger"), "{e}");
        let e = parse(&["--checkpoint-interval", "1s"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("checkpoint"), "{e}");
        let e = parse(&["--set", "colour=blue"]).unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
        assert!(parse(&["--parallelism", "0"]).is_err());
        let e = parse(&["--set", "watermark_alignment=0s"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("watermark_alignment"), "{e}");
    }

    #[test]
    fn watermark_alignment_is_off_unless_set() {
        assert_eq!(parse(&[]).unwrap().watermark_alignment_ms, None);
        let o = parse(&["--set", "watermark_alignment=2s"]).unwrap();
        assert_eq!(o.watermark_alignment_ms, Some(2000));
    }
}
