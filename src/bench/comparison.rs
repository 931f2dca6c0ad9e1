//! `weir bench nexmark --comparison`: the seed's comparison of the streaming runners as one
//! preset matrix, printed as a Markdown table.
//!
//! For each query (q1 and q5 unless `--query` names others) and each runner setting —
//! micro-batch with a 100 ms and a 1 s processing-time trigger, continuous with a 1 ms buffer
//! timeout — it measures:
//!
//! - latency p50/p99/p99.9 at a fixed input rate (`--rate`, default 100 K events/s) over
//!   [`LATENCY_SECONDS`] seconds of events;
//! - the maximum throughput: the query run flat out over `--events` events (the most a
//!   bounded run sustains, an upper bound on a sustainable input rate);
//! - checkpoint overhead (continuous only): the same flat-out run with exactly-once
//!   checkpoints every `--checkpoint-interval` (default 10 s), its throughput against the run
//!   without, and the checkpoints' count and average/maximum duration. The micro-batch runner
//!   has no checkpoint interval (it checkpoints every batch), so it has no such column.
//!
//! The checkpoint-overhead pair runs in child processes (`weir bench nexmark ... --format
//! json`), one each, the checkpointed one stopped when it takes more than three times as long
//! as the one without plus a minute, with their address space capped at half the machine's memory: a stalled or runaway
//! run is reported, not waited for.
//!
//! With `--repeat N` every run is repeated N times (the cells visited forward, then backward,
//! so drifting load and run-to-run effects hit them alike) and each cell is the median.

use super::measure::{self, RunSpec};
use super::queries::flink_per_core;
use super::report::{Checkpoints, Latency, Outcome, RunResult};
use weir::model::runner::Runner;

/// Seconds of events each latency run generates at the fixed rate.
pub const LATENCY_SECONDS: f64 = 20.0;

/// The checkpoint-overhead runs last at least this many checkpoint intervals.
pub const CHECKPOINTS_PER_RUN: f64 = 3.5;

/// The queries compared unless `--query` names others.
pub const DEFAULT_QUERIES: &[&str] = &["q1", "q5"];

/// One runner setting of the comparison.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// How the table names it.
    pub label: &'static str,
    /// Runner name.
    pub runner: &'static str,
    /// `--trigger`.
    pub trigger: Option<&'static str>,
    /// `--buffer-timeout`.
    pub buffer_timeout: Option<&'static str>,
}

/// The settings compared: the seed's micro-batch triggers and the continuous buffer timeout.
pub const SETTINGS: &[Setting] = &[
    Setting {
        label: "micro-batch, trigger 100 ms",
        runner: "microbatch",
        trigger: Some("processing-time=100ms"),
        buffer_timeout: None,
    },
    Setting {
        label: "micro-batch, trigger 1 s",
        runner: "microbatch",
        trigger: Some("processing-time=1s"),
        buffer_timeout: None,
    },
    Setting {
        label: "continuous, buffer timeout 1 ms",
        runner: "continuous",
        trigger: None,
        buffer_timeout: Some("1ms"),
    },
];

/// What the comparison runs with.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Queries.
    pub queries: Vec<String>,
    /// Events of the flat-out runs.
    pub events: u64,
    /// The fixed rate of the latency runs.
    pub rate: f64,
    /// Checkpoint interval of the checkpointed runs.
    pub checkpoint_interval: String,
    /// Parallelism (`None`: the cores).
    pub parallelism: Option<usize>,
    /// Runs per cell.
    pub repeat: usize,
    /// `--set` settings.
    pub settings: Vec<(String, String)>,
    /// Draw progress bars.
    pub progress: bool,
}

/// The runs of one (query, setting) cell.
#[derive(Debug, Default)]
struct Cell {
    latency: Vec<RunResult>,
    flat_out: Vec<RunResult>,
    unchecked: Vec<RunResult>,
    checkpointed: Vec<RunResult>,
}

/// Median of `values` (`None` when empty).
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// Runs the comparison; every run's result is passed to `each` as it ends. Returns the
/// Markdown table.
pub fn run(
    plan: &Plan,
    runner: impl Fn(&str) -> anyhow::Result<Box<dyn Runner>>,
    mut each: impl FnMut(&RunResult),
) -> anyhow::Result<String> {
    let mut cells: Vec<((String, Setting), Cell)> = Vec::new();
    for q in &plan.queries {
        for s in SETTINGS {
            cells.push(((q.clone(), *s), Cell::default()));
        }
    }
    let latency_events = ((plan.rate * LATENCY_SECONDS).round() as u64).max(1);
    let interval_secs = weir::model::time::Duration::parse(&plan.checkpoint_interval)
        .map_err(|e| anyhow::anyhow!("--checkpoint-interval `{}`: {e}", plan.checkpoint_interval))?
        .millis() as f64
        / 1000.0;
    // Serpentine order (A B B A ...): consecutive runs here are not independent.
    for i in super::serpentine(cells.len(), plan.repeat.max(1)) {
        let ((query, setting), cell) = &mut cells[i];
        let r = runner(setting.runner)?;
        let base = RunSpec {
            query: query.clone(),
            events: plan.events,
            parallelism: plan.parallelism,
            rate: None,
            checkpoint_interval: None,
            trigger: setting.trigger.map(str::to_string),
            buffer_timeout: setting.buffer_timeout.map(str::to_string),
            watermark_interval: None,
            settings: plan.settings.clone(),
            progress: plan.progress,
        };
        let paced = RunSpec {
            events: latency_events,
            rate: Some(plan.rate),
            ..base.clone()
        };
        let result = measure::run_one(&paced, r.as_ref())?;
        each(&result);
        cell.latency.push(result);
        let result = measure::run_one(&base, r.as_ref())?;
        each(&result);
        let measured = result.events_per_sec.unwrap_or(0.0);
        cell.flat_out.push(result);
        if setting.runner == "continuous" {
            // The overhead pair runs long enough for several checkpoints: at least
            // CHECKPOINTS_PER_RUN intervals at the flat-out rate just measured.
            let events = plan
                .events
                .max((measured * interval_secs * CHECKPOINTS_PER_RUN).round() as u64);
            let unchecked = RunSpec {
                events,
                ..base.clone()
            };
            // Both runs of the pair in a fresh child process each (the same allocator
            // state, no memory left from earlier runs), stopped after three times the
            // expected time plus a minute.
            let expected = std::time::Duration::from_secs_f64(events as f64 / measured.max(1.0));
            let result = run_in_child(
                &unchecked,
                setting,
                std::time::Duration::from_secs(60) + 3 * expected,
            )?;
            each(&result);
            let unchecked_elapsed = result.elapsed.max(expected);
            cell.unchecked.push(result);
            let checkpointed = RunSpec {
                events,
                checkpoint_interval: Some(plan.checkpoint_interval.clone()),
                ..base.clone()
            };
            // In a child process, so that a run that stalls can be stopped: it gets three
            // times as long as the run without checkpoints took, and a minute more.
            let limit = std::time::Duration::from_secs(60) + 3 * unchecked_elapsed;
            let result = run_in_child(&checkpointed, setting, limit)?;
            each(&result);
            cell.checkpointed.push(result);
        }
    }
    Ok(table(plan, &cells))
}

/// Runs `spec` as `weir bench nexmark ... --format json` in a child process, killed after
/// `limit` (its outcome then `Failed`, naming the time).
fn run_in_child(
    spec: &RunSpec,
    setting: &Setting,
    limit: std::time::Duration,
) -> anyhow::Result<RunResult> {
    use std::process::{Command, Stdio};
    let mut args: Vec<String> = vec![
        "bench".into(),
        "nexmark".into(),
        "--query".into(),
        spec.query.clone(),
        "--runner".into(),
        setting.runner.into(),
        "--events".into(),
        spec.events.to_string(),
        "--format".into(),
        "json".into(),
    ];
    let flags = [
        ("--parallelism", spec.parallelism.map(|p| p.to_string())),
        ("--checkpoint-interval", spec.checkpoint_interval.clone()),
        ("--trigger", spec.trigger.clone()),
        ("--buffer-timeout", spec.buffer_timeout.clone()),
        ("--watermark-interval", spec.watermark_interval.clone()),
    ];
    for (flag, value) in flags {
        if let Some(v) = value {
            args.push(flag.into());
            args.push(v);
        }
    }
    for (k, v) in &spec.settings {
        args.push("--set".into());
        args.push(format!("{k}={v}"));
    }
    // Its address space is capped at half the machine's memory (`ulimit -v`), so a run whose
    // memory runs away fails alone instead of taking the machine's memory.
    let exe = std::env::current_exe()?;
    let mut command = match half_the_memory_kib() {
        Some(kib) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c")
                .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
                .arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    let mut child = command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut result = RunResult::new(&spec.query, setting.runner, spec.events, 0, spec.rate);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            result.elapsed = started.elapsed();
            result.outcome = Outcome::Failed(format!(
                "no result after {:.0} s (`weir {}`), stopped",
                limit.as_secs_f64(),
                args.join(" ")
            ));
            return Ok(result);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut stdout)?;
    }
    let Some(v) = stdout
        .lines()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    else {
        result.elapsed = started.elapsed();
        result.outcome = Outcome::Failed(format!(
            "`weir {}` printed no result ({status} after {:.0} s)",
            args.join(" "),
            result.elapsed.as_secs_f64()
        ));
        return Ok(result);
    };
    result.parallelism = v["parallelism"].as_u64().unwrap_or(0) as usize;
    result.elapsed = std::time::Duration::from_millis(v["elapsed_ms"].as_u64().unwrap_or(0));
    result.events_per_sec = v["events_per_sec"].as_f64();
    result.events_per_sec_per_core = v["events_per_sec_per_core"].as_f64();
    result.peak_rss_bytes = v["peak_rss_bytes"].as_u64();
    result.output_rows = v["output_rows"].as_u64();
    result.checkpoints = v["checkpoints"].as_object().map(|c| Checkpoints {
        count: c.get("count").and_then(|x| x.as_u64()).unwrap_or(0),
        avg_duration_ms: c
            .get("avg_duration_ms")
            .and_then(|x| x.as_f64())
            .unwrap_or(0.0),
        max_duration_ms: c
            .get("max_duration_ms")
            .and_then(|x| x.as_f64())
            .unwrap_or(0.0),
    });
    let error = v["error"].as_str().unwrap_or("").to_string();
    result.outcome = match v["status"].as_str() {
        Some("ok") => Outcome::Ok,
        Some("unsupported") => Outcome::Unsupported(error),
        _ => Outcome::Failed(error),
    };
    Ok(result)
}

/// Half of `MemTotal` (Linux), in KiB.
fn half_the_memory_kib() -> Option<u64> {
    if !std::path::Path::new("/bin/sh").exists() {
        return None;
    }
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 2)
}

fn ok(runs: &[RunResult]) -> impl Iterator<Item = &RunResult> {
    runs.iter().filter(|r| r.outcome == Outcome::Ok)
}

fn median_of(runs: &[RunResult], f: impl Fn(&RunResult) -> Option<f64>) -> Option<f64> {
    median(ok(runs).filter_map(f).collect())
}

fn failures(runs: &[RunResult]) -> Vec<String> {
    runs.iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Ok => None,
            Outcome::Unsupported(why) => Some(format!("unsupported: {why}")),
            Outcome::Failed(why) => Some(format!("failed: {why}")),
        })
        .collect()
}

fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}K", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn table(plan: &Plan, cells: &[((String, Setting), Cell)]) -> String {
    let mut s = format!(
        "Latency at {} events/s ({} events); throughput flat out over {} events; checkpoint \
         overhead: continuous flat out for at least {CHECKPOINTS_PER_RUN} intervals, without and \
         with exactly-once checkpoints every {}; median of {} run(s) per cell.\n\n",
        si(plan.rate),
        si(plan.rate * LATENCY_SECONDS),
        si(plan.events as f64),
        plan.checkpoint_interval,
        plan.repeat.max(1),
    );
    s.push_str(
        "| query | runner, setting | p50 ms | p99 ms | p99.9 ms | max events/s | per core | Flink/core | ratio | long run events/s: without / with checkpoints | checkpoint overhead | checkpoints: count (avg/max ms) | notes |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    let dash = || "-".to_string();
    for ((query, setting), cell) in cells {
        let latency = |f: fn(&Latency) -> u64| {
            median_of(&cell.latency, |r| r.latency.as_ref().map(|l| f(l) as f64))
                .map(|v| format!("{v:.0}"))
                .unwrap_or_else(dash)
        };
        let max = median_of(&cell.flat_out, |r| r.events_per_sec);
        let per_core = median_of(&cell.flat_out, |r| r.events_per_sec_per_core);
        let flink = flink_per_core(query);
        let ratio = per_core.zip(flink).map(|(a, b)| format!("{:.2}×", a / b));
        let with = median_of(&cell.checkpointed, |r| r.events_per_sec);
        let without = median_of(&cell.unchecked, |r| r.events_per_sec);
        let overhead = with
            .zip(without)
            .map(|(w, m)| format!("{:.1} %", (1.0 - w / m) * 100.0));
        let checkpoints: Vec<Checkpoints> = ok(&cell.checkpointed)
            .filter_map(|r| r.checkpoints)
            .collect();
        let checkpoints = if setting.runner != "continuous" {
            "n/a (every batch)".to_string()
        } else if checkpoints.is_empty() {
            dash()
        } else {
            let count = median(checkpoints.iter().map(|c| c.count as f64).collect()).unwrap_or(0.0);
            let avg = median(checkpoints.iter().map(|c| c.avg_duration_ms).collect());
            let max = median(checkpoints.iter().map(|c| c.max_duration_ms).collect());
            match avg.zip(max) {
                Some((a, m)) => format!("{count:.0} ({a:.0}/{m:.0})"),
                None => "0".to_string(),
            }
        };
        let mut notes: Vec<String> = Vec::new();
        for (what, runs) in [
            ("latency", &cell.latency),
            ("flat out", &cell.flat_out),
            ("long run", &cell.unchecked),
            ("checkpointed", &cell.checkpointed),
        ] {
            for f in failures(runs) {
                notes.push(format!("{what}: {f}"));
            }
        }
        // A paced run lasts LATENCY_SECONDS plus its final flush; much longer means the
        // runner fell behind the rate.
        let took = median_of(&cell.latency, |r| Some(r.elapsed.as_secs_f64()));
        if let Some(t) = took {
            if t > LATENCY_SECONDS * 1.1 {
                notes.push(format!(
                    "paced run took {t:.1} s for {LATENCY_SECONDS:.0} s of events"
                ));
            }
        }
        s.push_str(&format!(
            "| {query} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {checkpoints} | {} |\n",
            setting.label,
            latency(|l| l.p50),
            latency(|l| l.p99),
            latency(|l| l.p999),
            max.map(si).unwrap_or_else(dash),
            per_core.map(si).unwrap_or_else(dash),
            flink.map(si).unwrap_or_else(dash),
            ratio.unwrap_or_else(dash),
            without.map(si).unwrap_or_else(dash),
            with.map(si).unwrap_or_else(dash),
            overhead.unwrap_or_else(dash),
            notes.join("; ").replace('|', "/"),
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_takes_the_middle_or_the_mean_of_the_two_middles() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
