//! `weir bench`: runs a standard workload on the runners of this build and reports
//! throughput (total and per core, beside Flink's published per-core figures), end-to-end
//! latency percentiles, peak memory and checkpoints.
//!
//! Nexmark queries are the pipeline files of `benches/nexmark/`, built into the binary. A
//! run rewrites each query's Nexmark sources (`--events`, one partition per unit of
//! parallelism, `--rate`) and replaces its sink by a meter (`WriteToMeter`) that counts rows
//! and records each row's latency: the processing time it was written minus its event time.
//! With `--rate`, event times follow the wall clock from the start of the run (event `k` is
//! due `k / rate` seconds after it), so that difference is the time from the event's
//! scheduled generation to its result being visible. Without a rate the source runs flat out
//! on the generator's nominal event-time schedule, and latency is not reported.
//!
//! Checkpoints: with `--checkpoint-interval`, the runner is also given `--progress-json`;
//! every JSON line it writes with a numeric `checkpoint_duration_ms` field counts as one
//! completed checkpoint.

mod comparison;
mod measure;
mod queries;
mod report;

use anyhow::anyhow;
use measure::RunSpec;
use report::{Outcome, RunResult};

/// Exit code for a refused benchmark (unknown runner or query, bad argument).
const EXIT_INVALID: u8 = 2;
/// Exit code when a run failed.
const EXIT_FAILED: u8 = 1;

/// The workloads `weir bench` runs.
#[derive(Debug, clap::Subcommand)]
pub enum Workload {
    /// The Nexmark benchmark: queries over a generated auction stream.
    Nexmark(NexmarkArgs),
    /// Basic workloads over generated rows (`--query filter-project,windowed-count`): a
    /// stateless filter + projection and a keyed 1 s tumbling-window count.
    Basic(NexmarkArgs),
}

/// `weir bench nexmark` arguments.
#[derive(Debug, clap::Args)]
pub struct NexmarkArgs {
    /// Query to run (q0, q1, ..., q22; repeatable or comma-separated).
    #[arg(long = "query", value_delimiter = ',')]
    queries: Vec<String>,
    /// Runner to run it on (repeatable or comma-separated; default: direct, or every runner
    /// with --all).
    #[arg(long = "runner", value_delimiter = ',')]
    runners: Vec<String>,
    /// Every query (and, unless --runner is given, every runner): the matrix.
    #[arg(long)]
    all: bool,
    /// Events of the stream (all tables): `1000`, `500K`, `10M`.
    #[arg(long, default_value = "1M")]
    events: String,
    /// Parallelism for runners that run in parallel (default: the machine's cores); the
    /// direct runner always runs one task.
    #[arg(long)]
    parallelism: Option<usize>,
    /// Events per second to generate (default: as fast as possible). Latency is measured
    /// only at a fixed rate.
    #[arg(long)]
    rate: Option<String>,
    /// Checkpoint interval passed to the runner (e.g. `10s`).
    #[arg(long)]
    checkpoint_interval: Option<String>,
    /// Micro-batch trigger passed to the runner (e.g. `processing-time=1s`); a runner that
    /// does not use it refuses it.
    #[arg(long)]
    trigger: Option<String>,
    /// Output buffer timeout passed to the runner (e.g. `1ms`); a runner that does not use
    /// it refuses it.
    #[arg(long)]
    buffer_timeout: Option<String>,
    /// Watermark interval passed to the runner (e.g. `10ms`); a runner that does not use it
    /// refuses it.
    #[arg(long)]
    watermark_interval: Option<String>,
    /// Runner-specific settings, `key=value` (repeatable): passed to every runner, or with
    /// `<runner>.key=value` to that runner only (e.g. `direct.bundle_size=1024`).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    settings: Vec<(String, String)>,
    /// The seed's comparison as one preset matrix: micro-batch (trigger 100 ms and 1 s) and
    /// continuous (buffer timeout 1 ms) on q1 and q5 (or --query): latency at --rate (default
    /// 100K), flat-out throughput over --events, and the continuous runner's throughput with
    /// exactly-once checkpoints every --checkpoint-interval (default 10s). Prints a Markdown
    /// table.
    #[arg(long, conflicts_with_all = ["all", "runners", "trigger", "buffer_timeout", "watermark_interval"])]
    comparison: bool,
    /// Runs per cell (query × runner). Each round visits the cells forward, the next one
    /// backward (A B B A A B ...): on a shared machine consecutive runs are not independent,
    /// so a fixed order would favour one cell. The table shows each cell's median run; with
    /// --format json every run's object is printed as it ends. With --comparison each cell
    /// is the median of its runs.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

/// Runs a benchmark; the error carries the exit code (2: refused before running, 1: a run
/// failed).
pub fn run(workload: Workload) -> Result<(), (u8, anyhow::Error)> {
    match workload {
        Workload::Nexmark(args) => nexmark(args, queries::QUERIES),
        Workload::Basic(args) => {
            if args.comparison || args.rate.is_some() {
                return Err((
                    EXIT_INVALID,
                    anyhow!("`weir bench basic` measures throughput only: --comparison and --rate are for Nexmark"),
                ));
            }
            nexmark(args, queries::BASIC)
        }
    }
}

/// `--comparison`: the preset matrix of [`comparison`], its table on standard output (and
/// with `--format json` every run's object as it ends, before the table).
fn compare(args: &NexmarkArgs, events: u64, rate: Option<f64>) -> Result<(), (u8, anyhow::Error)> {
    let invalid = |e: anyhow::Error| (EXIT_INVALID, e);
    let queries: Vec<String> = if args.queries.is_empty() {
        comparison::DEFAULT_QUERIES
            .iter()
            .map(|q| q.to_string())
            .collect()
    } else {
        args.queries.clone()
    };
    for q in &queries {
        queries::load(q).map_err(invalid)?;
    }
    let plan = comparison::Plan {
        queries,
        events,
        rate: rate.unwrap_or(100_000.0),
        checkpoint_interval: args
            .checkpoint_interval
            .clone()
            .unwrap_or_else(|| "10s".to_string()),
        parallelism: args.parallelism,
        repeat: args.repeat,
        settings: args.settings.clone(),
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let json = matches!(args.format, Format::Json);
    let table = comparison::run(&plan, weir::runner, |r| {
        if json {
            println!("{}", r.to_json());
        }
    })
    .map_err(invalid)?;
    print!("{table}");
    Ok(())
}

/// The order in which `rounds` rounds visit `cells` cells: forward, then backward, and so on
/// (for two cells A B B A A B ...).
fn serpentine(cells: usize, rounds: usize) -> Vec<usize> {
    (0..rounds)
        .flat_map(|round| (0..cells).map(move |i| if round % 2 == 0 { i } else { cells - 1 - i }))
        .collect()
}

/// A cell's median run: by events/s, or by p99 latency for paced runs (whose events/s the
/// rate fixes); a failed or refused run stands for its cell (the lower median for an even
/// count of runs).
fn median_run(mut runs: Vec<RunResult>) -> Option<RunResult> {
    if let Some(bad) = runs.iter().position(|r| r.outcome != Outcome::Ok) {
        return Some(runs.swap_remove(bad));
    }
    let key = |r: &RunResult| match (&r.rate, &r.latency) {
        (Some(_), Some(l)) => l.p99 as f64,
        _ => r.events_per_sec.unwrap_or(0.0),
    };
    runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let mid = runs.len().saturating_sub(1) / 2;
    (!runs.is_empty()).then(|| runs.swap_remove(mid))
}

/// Runs `args`' queries, `--all` meaning every query of `workload`.
fn nexmark(args: NexmarkArgs, workload: &[(&str, &str)]) -> Result<(), (u8, anyhow::Error)> {
    let invalid = |e: anyhow::Error| (EXIT_INVALID, e);
    let events = queries::parse_count(&args.events).map_err(invalid)?;
    let rate = match &args.rate {
        None => None,
        Some(r) => Some(queries::parse_count(r).map_err(invalid)? as f64),
    };
    if args.parallelism == Some(0) {
        return Err(invalid(anyhow!("--parallelism must be at least 1")));
    }
    if args.repeat == 0 {
        return Err(invalid(anyhow!("--repeat must be at least 1")));
    }
    if args.comparison {
        return compare(&args, events, rate);
    }
    let queries: Vec<String> = if !args.queries.is_empty() {
        args.queries.clone()
    } else if args.all {
        workload.iter().map(|(q, _)| q.to_string()).collect()
    } else {
        return Err(invalid(anyhow!("give --query (e.g. --query q5) or --all")));
    };
    for q in &queries {
        queries::load(q).map_err(invalid)?;
    }
    let runner_names: Vec<String> = if !args.runners.is_empty() {
        args.runners.clone()
    } else if args.all {
        weir::runners()
            .iter()
            .map(|r| r.name().to_string())
            .collect()
    } else {
        vec!["direct".to_string()]
    };
    let runners = runner_names
        .iter()
        .map(|n| weir::runner(n))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(invalid)?;
    let matrix = queries.len() * runners.len() > 1;
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let cells: Vec<(&String, &Box<dyn weir::model::runner::Runner>)> = queries
        .iter()
        .flat_map(|q| runners.iter().map(move |r| (q, r)))
        .collect();
    let mut runs: Vec<Vec<RunResult>> = vec![Vec::new(); cells.len()];
    for cell in serpentine(cells.len(), args.repeat) {
        let (query, runner) = cells[cell];
        let spec = RunSpec {
            query: query.clone(),
            events,
            parallelism: args.parallelism,
            rate,
            checkpoint_interval: args.checkpoint_interval.clone(),
            trigger: args.trigger.clone(),
            buffer_timeout: args.buffer_timeout.clone(),
            watermark_interval: args.watermark_interval.clone(),
            settings: args.settings.clone(),
            progress: interactive,
        };
        let result = measure::run_one(&spec, runner.as_ref()).map_err(invalid)?;
        if !matrix {
            if let Outcome::Unsupported(why) = &result.outcome {
                return Err(invalid(anyhow!("{why}")));
            }
        }
        if let Format::Json = args.format {
            // One object per run, printed as each run ends.
            println!("{}", result.to_json());
        }
        runs[cell].push(result);
    }
    let results: Vec<RunResult> = runs.into_iter().filter_map(median_run).collect();
    if let Format::Table = args.format {
        print!("{}", report::table(&results));
        if args.repeat > 1 {
            println!(
                "\nEach row is its cell's median of {} runs (by events/s; by p99 latency at a rate), the cells run in A B B A order.",
                args.repeat
            );
        }
    }
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Failed(why) => Some(format!("{} on {}: {why}", r.query, r.runner)),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        return Err((
            EXIT_FAILED,
            anyhow!("{} run(s) failed: {}", failed.len(), failed.join("; ")),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use report::Latency;

    /// `weir bench nexmark ARGS` parsed as the binary parses it.
    fn parse(args: &[&str]) -> Result<Workload, clap::Error> {
        #[derive(clap::Parser)]
        struct Bench {
            #[command(subcommand)]
            workload: Workload,
        }
        let all = ["bench", "nexmark"].iter().chain(args);
        <Bench as clap::Parser>::try_parse_from(all).map(|b| b.workload)
    }

    #[test]
    fn the_comparison_refuses_the_flags_its_preset_sets_and_repeat_must_be_positive() {
        for flag in [
            &["--trigger", "once"][..],
            &["--buffer-timeout", "1ms"],
            &["--watermark-interval", "5ms"],
            &["--all"],
        ] {
            let mut args = vec!["--comparison"];
            args.extend_from_slice(flag);
            let err = parse(&args).expect_err("refused").to_string();
            assert!(err.contains("cannot be used with"), "{flag:?}: {err}");
        }
        for mode in [&["--comparison"][..], &["--query", "q0"]] {
            let mut args = vec!["--repeat", "0"];
            args.extend_from_slice(mode);
            let (code, err) = super::run(parse(&args).unwrap()).unwrap_err();
            assert_eq!(code, EXIT_INVALID);
            assert!(err.to_string().contains("--repeat"), "{err}");
        }
    }

    #[test]
    fn rounds_visit_the_cells_forward_then_backward() {
        assert_eq!(serpentine(2, 3), [0, 1, 1, 0, 0, 1]);
        assert_eq!(serpentine(3, 2), [0, 1, 2, 2, 1, 0]);
        assert_eq!(serpentine(1, 3), [0, 0, 0]);
        assert!(serpentine(4, 0).is_empty());
    }

    fn run(events_per_sec: f64, p99: Option<u64>) -> RunResult {
        let mut r = RunResult::new("q1", "continuous", 1_000, 2, p99.map(|_| 100.0));
        r.events_per_sec = Some(events_per_sec);
        r.latency = p99.map(|p99| Latency {
            p50: 1,
            p99,
            p999: p99,
        });
        r
    }

    #[test]
    fn a_cell_shows_its_median_run_or_a_failed_one() {
        let by_rate = |runs: Vec<RunResult>| median_run(runs).unwrap().events_per_sec.unwrap();
        assert_eq!(
            by_rate(vec![run(3.0, None), run(1.0, None), run(2.0, None)]),
            2.0
        );
        // The lower median of an even count.
        assert_eq!(
            by_rate(vec![
                run(4.0, None),
                run(1.0, None),
                run(3.0, None),
                run(2.0, None)
            ]),
            2.0
        );
        // Paced runs: the median by p99 latency.
        let paced = median_run(vec![
            run(9.0, Some(30)),
            run(1.0, Some(10)),
            run(5.0, Some(20)),
        ]);
        assert_eq!(paced.unwrap().latency.unwrap().p99, 20);
        let mut failed = run(5.0, None);
        failed.outcome = Outcome::Failed("boom".into());
        let shown = median_run(vec![run(1.0, None), failed, run(2.0, None)]).unwrap();
        assert_eq!(shown.outcome, Outcome::Failed("boom".into()));
        assert!(median_run(Vec::new()).is_none());
    }
}
