//! Runs one query on one runner and measures it: throughput, end-to-end latency from the
//! meter sink, peak memory and checkpoints.

use super::queries::{self, SourceSizing};
use super::report::{Checkpoints, Latency, Outcome, RunResult};
use anyhow::Context;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weir::core::io::{MeterReading, NexmarkSource};
use weir::model::runner::{PipelineOptions, Runner};

/// What to run, as the command line gives it.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Query name (`q5`).
    pub query: String,
    /// Events of the stream.
    pub events: u64,
    /// Parallelism asked for (`None`: the runner's default).
    pub parallelism: Option<usize>,
    /// Events per second, when paced.
    pub rate: Option<f64>,
    /// `--checkpoint-interval`, passed to the runner.
    pub checkpoint_interval: Option<String>,
    /// `--trigger`, passed to the runner.
    pub trigger: Option<String>,
    /// `--buffer-timeout`, passed to the runner.
    pub buffer_timeout: Option<String>,
    /// `--watermark-interval`, passed to the runner.
    pub watermark_interval: Option<String>,
    /// `--set` settings, passed to the runner.
    pub settings: Vec<(String, String)>,
    /// Draw a progress bar.
    pub progress: bool,
}

/// The settings runner `runner` gets: unscoped ones, and `<runner>.<key>` ones without the
/// prefix (so one matrix can pass `direct.bundle_size=1024` to the direct runner alone).
fn settings_for(runner: &str, settings: &[(String, String)]) -> Vec<(String, String)> {
    settings
        .iter()
        .filter_map(|(key, value)| match key.split_once('.') {
            Some((scope, key)) if scope == runner => Some((key.to_string(), value.clone())),
            Some(_) => None,
            None => Some((key.clone(), value.clone())),
        })
        .collect()
}

/// The cores a run can use: `parallelism` capped by the machine (the direct runner: 1).
fn cores_used(runner: &str, parallelism: usize) -> usize {
    let machine = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if runner == "direct" {
        1
    } else {
        parallelism.clamp(1, machine)
    }
}

/// The process's peak resident set (VmHWM), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the peak resident set to the current one (Linux: `5` into `clear_refs`), so each
/// run of a matrix reports its own peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Checkpoint statistics from a `--progress-json` file. Two forms are read: a line with a
/// numeric `checkpoint_duration_ms` field is one completed checkpoint; a line with a
/// `checkpoints` array (the continuous runner's progress lines, each holding every checkpoint
/// completed so far, `{"id", "duration_ms", ...}`) contributes its entries, counted once per
/// `id`.
pub(super) fn read_checkpoints(path: &std::path::Path) -> Option<Checkpoints> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut single: Vec<f64> = Vec::new();
    let mut by_id: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
    for v in text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        if let Some(d) = v.get("checkpoint_duration_ms").and_then(|d| d.as_f64()) {
            single.push(d);
        }
        for c in v
            .get("checkpoints")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            if let (Some(id), Some(d)) = (
                c.get("id").and_then(|i| i.as_u64()),
                c.get("duration_ms").and_then(|d| d.as_f64()),
            ) {
                by_id.insert(id, d);
            }
        }
    }
    single.extend(by_id.into_values());
    if single.is_empty() {
        return None;
    }
    Some(Checkpoints {
        count: single.len() as u64,
        avg_duration_ms: single.iter().sum::<f64>() / single.len() as f64,
        max_duration_ms: single.iter().copied().fold(0.0, f64::max),
    })
}

/// Why `runner` takes no `--checkpoint-interval`, or `None` when it does.
fn refuses_checkpoint_interval(runner: &str) -> Option<String> {
    match runner {
        "continuous" => None,
        "microbatch" => Some(
            "--checkpoint-interval: the micro-batch runner has no checkpoint interval; it \
             checkpoints at the end of every batch (offset log, commit log and state store), so \
             its checkpoint interval is its trigger interval (--trigger processing-time=D)"
                .to_string(),
        ),
        other => Some(format!(
            "--checkpoint-interval: the {other} runner does not checkpoint"
        )),
    }
}

/// Runs `spec` on `runner`. A query the runner refuses is an `Unsupported` outcome, a run
/// that fails a `Failed` one; errors are for what cannot be set up at all.
pub fn run_one(spec: &RunSpec, runner: &dyn Runner) -> anyhow::Result<RunResult> {
    let mut pipeline = queries::load(&spec.query)?;
    let name = runner.name();
    let parallelism = spec.parallelism.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let parallelism = if name == "direct" { 1 } else { parallelism };
    let meter = format!("bench-{}-{name}", spec.query);
    // With a rate, event times follow the wall clock from the start of the run, so a row's
    // latency (written minus event time) is the time since its event was due.
    let base_time = spec.rate.map(|_| now_ms());
    let sources = queries::prepare(
        &mut pipeline,
        SourceSizing {
            events: spec.events,
            partitions: parallelism as u32,
            rate: spec.rate,
            base_time,
        },
        &meter,
    )?;
    let plan =
        weir::model::plan(&pipeline).with_context(|| format!("planning Nexmark {}", spec.query))?;
    let mut result = RunResult::new(&spec.query, name, spec.events, parallelism, spec.rate);
    if let Err(refused) = runner.check(&plan) {
        result.outcome = Outcome::Unsupported(refused.to_string());
        return Ok(result);
    }
    let mut options = PipelineOptions::for_runner(name);
    if name != "direct" {
        options.parallelism = spec.parallelism;
    }
    options.settings = settings_for(name, &spec.settings);
    options.trigger = spec.trigger.clone();
    options.buffer_timeout = spec.buffer_timeout.clone();
    options.watermark_interval = spec.watermark_interval.clone();
    // Checkpointed runs: exactly-once checkpoints into a fresh directory, removed afterwards;
    // completed checkpoints are read back from the runner's progress lines.
    let mut checkpoint_dir = None;
    if let Some(interval) = &spec.checkpoint_interval {
        if let Some(why) = refuses_checkpoint_interval(name) {
            result.outcome = Outcome::Unsupported(why);
            return Ok(result);
        }
        let dir = scratch_path(&meter, "checkpoints");
        options.checkpoint_interval = Some(interval.clone());
        options.checkpoint_mode = Some("exactly-once".to_string());
        options.checkpoint_dir = Some(dir.clone());
        checkpoint_dir = Some(dir);
    }
    let progress_file = spec
        .checkpoint_interval
        .as_ref()
        .map(|_| scratch_path(&meter, "progress.jsonl"));
    options.progress_json = progress_file.clone();

    MeterReading::reset(&meter);
    reset_peak_rss();
    let passed_before = NexmarkSource::events_passed_in_process();
    let bar = progress_bar(spec, name);
    let started = Instant::now();
    let (outcome, elapsed) = std::thread::scope(|scope| {
        // The run is timed on its own thread: the progress loop below wakes only every
        // 100 ms and must not round the duration up.
        let run = scope.spawn(|| {
            let outcome = runner.run(&plan, &options).map_err(|e| e.to_string());
            (outcome, started.elapsed())
        });
        while !run.is_finished() {
            std::thread::sleep(Duration::from_millis(20));
            let passed = NexmarkSource::events_passed_in_process() - passed_before;
            bar.set_position((passed / sources as u64).min(spec.events));
        }
        run.join()
            .unwrap_or_else(|_| (Err("the runner panicked".to_string()), started.elapsed()))
    });
    bar.finish_and_clear();
    result.peak_rss_bytes = peak_rss_bytes();
    result.elapsed = elapsed;
    match outcome {
        Err(e) => result.outcome = Outcome::Failed(e),
        Ok(_) => {
            let reading = MeterReading::read(&meter);
            let secs = elapsed.as_secs_f64().max(1e-9);
            result.events_per_sec = Some(spec.events as f64 / secs);
            result.events_per_sec_per_core =
                Some(spec.events as f64 / secs / cores_used(name, parallelism) as f64);
            result.output_rows = Some(reading.rows_written);
            if spec.rate.is_some() && !reading.latency_ms.is_empty() {
                let h = &reading.latency_ms;
                result.latency = Some(Latency {
                    p50: h.value_at_quantile(0.50),
                    p99: h.value_at_quantile(0.99),
                    p999: h.value_at_quantile(0.999),
                });
            }
            result.checkpoints = progress_file.as_deref().and_then(read_checkpoints);
        }
    }
    MeterReading::reset(&meter);
    if let Some(p) = progress_file {
        let _ = std::fs::remove_file(p);
    }
    if let Some(d) = checkpoint_dir {
        let _ = std::fs::remove_dir_all(d);
    }
    Ok(result)
}

/// A fresh path in the temporary directory (a checkpoint directory, a progress file).
fn scratch_path(meter: &str, what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "weir-{meter}-{}-{}.{what}",
        std::process::id(),
        now_ms()
    ))
}

fn progress_bar(spec: &RunSpec, runner: &str) -> indicatif::ProgressBar {
    if !spec.progress {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(spec.events),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{prefix:>14} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events ({per_sec})",
    ) {
        bar.set_style(style);
    }
    bar.set_prefix(format!("{} {runner}", spec.query));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(query: &str, events: u64, rate: Option<f64>) -> RunSpec {
        RunSpec {
            query: query.to_string(),
            events,
            parallelism: None,
            rate,
            checkpoint_interval: None,
            trigger: None,
            buffer_timeout: None,
            watermark_interval: None,
            settings: vec![("direct.bundle_size".into(), "16".into())],
            progress: false,
        }
    }

    #[test]
    fn a_run_counts_the_rows_the_meter_saw_and_times_them_only_at_a_rate() {
        let direct = weir::direct::DirectRunner::new();
        let flat_out = run_one(&spec("q0", 1_000, None), &direct).unwrap();
        assert_eq!(flat_out.outcome, Outcome::Ok);
        assert_eq!(
            flat_out.output_rows,
            Some(920),
            "46 bids in every 50 events"
        );
        assert_eq!(flat_out.parallelism, 1);
        assert!(flat_out.events_per_sec.is_some());
        assert!(flat_out.latency.is_none(), "no schedule, no latency");
        let paced = run_one(&spec("q0", 1_000, Some(100_000.0)), &direct).unwrap();
        assert_eq!(paced.outcome, Outcome::Ok);
        let latency = paced.latency.expect("latency at a rate");
        assert!(latency.p50 <= latency.p99 && latency.p99 <= latency.p999);
    }

    #[test]
    fn checkpoints_are_read_from_both_progress_forms() {
        let path = scratch_path("test-read", "progress.jsonl");
        let lines = [
            r#"{"elapsed_ms":1000,"checkpoints":[{"id":1,"duration_ms":10}]}"#,
            r#"{"elapsed_ms":2000,"checkpoints":[{"id":1,"duration_ms":10},{"id":2,"duration_ms":30}]}"#,
            r#"{"batch_id":3,"checkpoint_duration_ms":20}"#,
            "not json",
        ];
        std::fs::write(&path, lines.join("\n")).unwrap();
        let c = read_checkpoints(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(c.count, 3, "ids 1 and 2 once each, plus one single line");
        assert_eq!(c.avg_duration_ms, 20.0);
        assert_eq!(c.max_duration_ms, 30.0);
    }

    #[test]
    fn only_the_continuous_runner_takes_a_checkpoint_interval() {
        let mut s = spec("q0", 1_000, None);
        s.checkpoint_interval = Some("10s".into());
        let microbatch = weir::runner("microbatch").unwrap();
        let refused = run_one(&s, microbatch.as_ref()).unwrap();
        match refused.outcome {
            Outcome::Unsupported(why) => {
                assert!(why.contains("--checkpoint-interval"), "{why}");
                assert!(why.contains("every batch"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert!(refuses_checkpoint_interval("continuous").is_none());
    }

    #[test]
    fn the_watermark_interval_reaches_the_runner() {
        let mut s = spec("q0", 1_000, None);
        s.watermark_interval = Some("5ms".into());
        let continuous = weir::runner("continuous").unwrap();
        let run = run_one(&s, continuous.as_ref()).unwrap();
        assert_eq!(run.outcome, Outcome::Ok);
        assert_eq!(run.output_rows, Some(920));
        // A runner without watermark intervals refuses the flag by name.
        let microbatch = weir::runner("microbatch").unwrap();
        match run_one(&s, microbatch.as_ref()).unwrap().outcome {
            Outcome::Failed(why) => assert!(why.contains("--watermark-interval"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_checkpointed_continuous_run_reports_its_checkpoints() {
        let mut s = spec("q0", 200_000, None);
        s.checkpoint_interval = Some("20ms".into());
        s.parallelism = Some(2);
        let continuous = weir::runner("continuous").unwrap();
        let r = run_one(&s, continuous.as_ref()).unwrap();
        assert_eq!(r.outcome, Outcome::Ok);
        assert_eq!(r.output_rows, Some(184_000), "46 bids in every 50 events");
        let c = r.checkpoints.expect("checkpoints from --progress-json");
        assert!(
            c.count >= 1 && c.max_duration_ms >= c.avg_duration_ms,
            "{c:?}"
        );
    }

    #[test]
    fn scoped_settings_go_to_their_runner_only() {
        let settings = vec![
            ("direct.bundle_size".to_string(), "1024".to_string()),
            ("continuous.x".to_string(), "1".to_string()),
            ("shared".to_string(), "2".to_string()),
        ];
        assert_eq!(
            settings_for("direct", &settings),
            vec![
                ("bundle_size".to_string(), "1024".to_string()),
                ("shared".to_string(), "2".to_string())
            ]
        );
        assert_eq!(
            settings_for("microbatch", &settings),
            vec![("shared".to_string(), "2".to_string())]
        );
    }
}
