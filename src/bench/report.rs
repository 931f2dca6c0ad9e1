//! Benchmark results and their two forms: a terminal/Markdown table and JSON lines (one
//! object per run, stable field names).

use super::queries::flink_per_core;
use serde_json::{json, Value};
use std::time::Duration;

/// End-to-end latency percentiles, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
}

/// Checkpoints a runner reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Checkpoints {
    /// Completed checkpoints.
    pub count: u64,
    /// Their average duration, milliseconds.
    pub avg_duration_ms: f64,
    /// The longest, milliseconds.
    pub max_duration_ms: f64,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It ran to the end.
    Ok,
    /// The runner refused the query (the reason names the feature).
    Unsupported(String),
    /// The run failed.
    Failed(String),
}

/// One benchmark run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Query name.
    pub query: String,
    /// Runner name.
    pub runner: String,
    /// Events of the stream.
    pub events: u64,
    /// Parallelism used.
    pub parallelism: usize,
    /// Events per second asked for, when paced.
    pub rate: Option<f64>,
    /// How it ended.
    pub outcome: Outcome,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// Events per second.
    pub events_per_sec: Option<f64>,
    /// Events per second per core used.
    pub events_per_sec_per_core: Option<f64>,
    /// Latency percentiles (measured only with a rate).
    pub latency: Option<Latency>,
    /// Peak resident set of the process during the run.
    pub peak_rss_bytes: Option<u64>,
    /// Checkpoints, when the runner reported them.
    pub checkpoints: Option<Checkpoints>,
    /// Rows the query wrote.
    pub output_rows: Option<u64>,
}

impl RunResult {
    /// A result not yet measured.
    pub fn new(
        query: &str,
        runner: &str,
        events: u64,
        parallelism: usize,
        rate: Option<f64>,
    ) -> Self {
        RunResult {
            query: query.to_string(),
            runner: runner.to_string(),
            events,
            parallelism,
            rate,
            outcome: Outcome::Ok,
            elapsed: Duration::ZERO,
            events_per_sec: None,
            events_per_sec_per_core: None,
            latency: None,
            peak_rss_bytes: None,
            checkpoints: None,
            output_rows: None,
        }
    }

    /// The run as one JSON object.
    pub fn to_json(&self) -> Value {
        let (status, error) = match &self.outcome {
            Outcome::Ok => ("ok", None),
            Outcome::Unsupported(why) => ("unsupported", Some(why.clone())),
            Outcome::Failed(why) => ("failed", Some(why.clone())),
        };
        let flink = flink_per_core(&self.query);
        json!({
            "query": self.query,
            "runner": self.runner,
            "events": self.events,
            "parallelism": self.parallelism,
            "rate": self.rate,
            "status": status,
            "error": error,
            "elapsed_ms": self.elapsed.as_millis() as u64,
            "events_per_sec": self.events_per_sec.map(|v| v.round()),
            "events_per_sec_per_core": self.events_per_sec_per_core.map(|v| v.round()),
            "flink_events_per_sec_per_core": flink,
            "ratio_to_flink_per_core": ratio(self.events_per_sec_per_core, flink),
            "latency_ms": self.latency.map(|l| json!({"p50": l.p50, "p99": l.p99, "p999": l.p999})),
            "peak_rss_bytes": self.peak_rss_bytes,
            "checkpoints": self.checkpoints.map(|c| json!({"count": c.count, "avg_duration_ms": c.avg_duration_ms, "max_duration_ms": c.max_duration_ms})),
            "output_rows": self.output_rows,
            "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        })
    }
}

fn ratio(ours: Option<f64>, flink: Option<f64>) -> Option<f64> {
    Some(((ours? / flink?) * 100.0).round() / 100.0)
}

/// `1234567` as `1.23M`, `45600` as `45.6K`.
fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}K", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn bytes(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0))
}

/// The results as a Markdown table (which also reads well in a terminal).
pub fn table(results: &[RunResult]) -> String {
    let mut s = String::from(
        "| query | runner | events | par. | events/s | events/s/core | Flink/core | ratio | p50 ms | p99 ms | p99.9 ms | peak RSS | checkpoints (avg/max ms) | rows out | status |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    let dash = || "-".to_string();
    for r in results {
        let flink = flink_per_core(&r.query);
        let (p50, p99, p999) = match r.latency {
            Some(l) => (l.p50.to_string(), l.p99.to_string(), l.p999.to_string()),
            None => (dash(), dash(), dash()),
        };
        let status = match &r.outcome {
            Outcome::Ok => "ok".to_string(),
            Outcome::Unsupported(why) => format!("unsupported: {why}"),
            Outcome::Failed(why) => format!("failed: {why}"),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {p50} | {p99} | {p999} | {} | {} | {} | {} |\n",
            r.query,
            r.runner,
            si(r.events as f64),
            r.parallelism,
            r.events_per_sec.map(si).unwrap_or_else(dash),
            r.events_per_sec_per_core.map(si).unwrap_or_else(dash),
            flink.map(si).unwrap_or_else(dash),
            ratio(r.events_per_sec_per_core, flink)
                .map(|x| format!("{x:.2}×"))
                .unwrap_or_else(dash),
            r.peak_rss_bytes.map(bytes).unwrap_or_else(dash),
            r.checkpoints
                .map(|c| {
                    format!(
                        "{} ({:.0}/{:.0})",
                        c.count, c.avg_duration_ms, c.max_duration_ms
                    )
                })
                .unwrap_or_else(dash),
            r.output_rows.map(|n| n.to_string()).unwrap_or_else(dash),
            status.replace('|', "/"),
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_stable_fields() {
        let mut r = RunResult::new("q5", "direct", 1_000_000, 1, Some(100_000.0));
        r.events_per_sec = Some(44_000.4);
        r.events_per_sec_per_core = Some(44_000.4);
        r.latency = Some(Latency {
            p50: 1,
            p99: 7,
            p999: 12,
        });
        r.peak_rss_bytes = Some(1 << 20);
        let v = r.to_json();
        for field in [
            "query",
            "runner",
            "events",
            "parallelism",
            "events_per_sec",
            "events_per_sec_per_core",
            "peak_rss_bytes",
        ] {
            assert!(!v[field].is_null(), "{field}");
        }
        assert_eq!(v["latency_ms"], json!({"p50": 1, "p99": 7, "p999": 12}));
        assert_eq!(v["ratio_to_flink_per_core"], json!(2.0));
        assert!(table(&[r]).contains("| q5 | direct | 1.00M | 1 | 44.0K | 44.0K | 22.0K | 2.00× | 1 | 7 | 12 | 1 MiB | - | - | ok |"));
    }
}
