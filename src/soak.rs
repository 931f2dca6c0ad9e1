//! `weir soak`: a kill -9 test of a pipeline's delivery guarantee.
//!
//! 1. The pipeline runs once uninterrupted (a child `weir run`) into a fresh output location:
//!    its committed rows are what every run must commit.
//! 2. It runs again, into another fresh output location with its own checkpoint directory,
//!    and is killed with SIGKILL at `--kills` seeded random moments (uniform between
//!    [`MIN_KILL_DELAY_MS`] and `--max-kill-delay` after each start; by default chosen so
//!    the kills spread over about three quarters of the uninterrupted run's duration, and
//!    for `continuous` at least three checkpoint intervals); after
//!    each kill it is restarted from its checkpoint, and the last attempt runs to the end.
//!    A run that finishes before its kill ends the soak: `kills` counts the kills
//!    that landed.
//! 3. The committed rows of the two runs are compared as multisets of JSON rows: rows the
//!    uninterrupted run committed more often are `lost`, rows the killed run committed more
//!    often are `duplicated` (or `unexpected` when the uninterrupted run never committed
//!    them).
//!
//! Outputs are redirected by rewriting the sink's path in the loaded pipeline and handing the
//! child the canonical JSON pipeline (`weir run` reads `.json` pipelines); every other path
//! in the pipeline (inputs) is left as written, relative to the current directory.
//!
//! Sinks compared: `WriteToParquet` (the files its manifest lists, read with Weir's Parquet
//! source), `WriteToJson` (one file, or the part files of a directory: those its manifest
//! lists when it has one) and `LogForTesting` (the complete lines each attempt printed on
//! standard output: an at-least-once sink, whose replays show up as duplicates) and
//! `WriteToPostgres` (the table's rows as PostgreSQL's `row_to_json` gives them; each run
//! writes a table and sink id of its own, `<table>_soak<pid>r` and `..k`, emptied first and
//! dropped at the end unless `--work-dir` keeps them). Other sinks are refused with an error
//! naming them.

use anyhow::{anyhow, bail, Context};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weir::core::io::manifest::Manifest;
use weir::core::io::postgres::SinkTable;
use weir::core::io::{ParquetSource, Source, SourcePoll};
use weir::model::io::{FileFormat, SinkSpec};
use weir::model::transform::Transform;
use weir::model::{DataType, Field, Pipeline, Schema};

/// Exit code for a soak refused before running (bad pipeline, unsupported sink).
const EXIT_INVALID: u8 = 2;
/// Exit code for a failed run or a soak that found lost or duplicated rows.
const EXIT_FAILED: u8 = 1;

/// Earliest kill after a start, in milliseconds (a restart must get some work done).
pub const MIN_KILL_DELAY_MS: u64 = 50;

/// Rows of each kind of difference shown in the report.
const SAMPLE: usize = 5;

/// `weir soak` arguments.
#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// The pipeline file (`.yaml`) or JSON pipeline (`.json`).
    pub pipeline: PathBuf,
    /// The streaming runner to soak: `microbatch` or `continuous`.
    #[arg(long)]
    pub runner: String,
    /// How many times to kill the run (SIGKILL) before letting it finish.
    #[arg(long, default_value_t = 10)]
    pub kills: u32,
    /// Seed of the kill moments.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Latest kill after a start, in milliseconds (default: spreads the kills over about
    /// 3/4 of the uninterrupted run; continuous: at least three checkpoint intervals).
    #[arg(long)]
    pub max_kill_delay: Option<u64>,
    /// Continuous runner: time between checkpoints.
    #[arg(long, default_value = "200ms")]
    pub checkpoint_interval: String,
    /// Parallelism passed to the runner.
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Keep the runs' outputs, checkpoints and logs here (default: a temporary directory,
    /// removed at the end).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: SoakFormat,
    /// Further `weir run` flags for every run, after `--` (e.g. `-- --trigger
    /// processing-time=10ms --set max_rows_per_partition=1000`).
    #[arg(last = true)]
    pub run_args: Vec<String>,
}

/// How `weir soak` prints its result.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SoakFormat {
    /// `key value` lines.
    Table,
    /// One JSON object.
    Json,
}

/// The sink under test.
#[derive(Debug, Clone)]
enum Target {
    /// A Parquet directory; rows read with this schema.
    Parquet { schema: Schema },
    /// JSON lines: one file (path with an extension) or a directory of part files.
    JsonFiles,
    /// Standard output.
    Stdout,
    /// A PostgreSQL table; each run writes its own copy of it.
    Postgres,
}

/// What a soak measured.
#[derive(Debug, serde::Serialize)]
pub struct SoakReport {
    pipeline: String,
    runner: String,
    sink: String,
    seed: u64,
    kills_requested: u32,
    kills: u32,
    attempts: u32,
    max_kill_delay_ms: u64,
    rows_expected: u64,
    rows_committed: u64,
    lost: u64,
    duplicated: u64,
    unexpected: u64,
    ok: bool,
    /// Up to [`SAMPLE`] rows lost, and rows committed too often, for a first look.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    lost_sample: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    extra_sample: Vec<String>,
    reference_ms: u64,
    soak_ms: u64,
}

/// Runs `weir soak`.
pub fn run(args: SoakArgs) -> Result<(), (u8, anyhow::Error)> {
    let invalid = |e: anyhow::Error| (EXIT_INVALID, e);
    let failed = |e: anyhow::Error| (EXIT_FAILED, e);
    if !matches!(args.runner.as_str(), "microbatch" | "continuous") {
        return Err(invalid(anyhow!(
            "weir soak restarts a run from its checkpoint: --runner must be `microbatch` or `continuous`, not `{}`",
            args.runner
        )));
    }
    let pipeline = weir::load_pipeline(&args.pipeline).map_err(invalid)?;
    let plan = weir::model::plan(&pipeline)
        .with_context(|| format!("planning `{}`", args.pipeline.display()))
        .map_err(invalid)?;
    let (sink_index, target) = find_sink(&pipeline, &plan).map_err(invalid)?;
    let sink_type = pipeline.transforms[sink_index].transform.type_name();

    let (work, temporary) = match &args.work_dir {
        Some(d) => (d.clone(), false),
        None => (temp_work_dir(), true),
    };
    let mut tables = Vec::new();
    let result = soak(&args, &pipeline, sink_index, &target, &work, &mut tables);
    if temporary {
        let _ = std::fs::remove_dir_all(&work);
        // The runs' tables go with the directory; kept with --work-dir, for a look.
        for t in &tables {
            if let Err(e) = t.reset() {
                eprintln!("warning: dropping a table of the soak: {e}");
            }
        }
    }
    let (expected, committed, counts) = result.map_err(failed)?;
    let diff = compare(&expected, &committed);
    let (lost, duplicated, unexpected) = (diff.lost, diff.duplicated, diff.unexpected);
    let report = SoakReport {
        pipeline: args.pipeline.display().to_string(),
        runner: args.runner.clone(),
        sink: sink_type.to_string(),
        seed: args.seed,
        kills_requested: args.kills,
        kills: counts.kills,
        attempts: counts.attempts,
        max_kill_delay_ms: counts.max_kill_delay_ms,
        rows_expected: expected.len() as u64,
        rows_committed: committed.len() as u64,
        lost,
        duplicated,
        unexpected,
        ok: lost == 0 && duplicated == 0 && unexpected == 0,
        lost_sample: diff.lost_sample,
        extra_sample: diff.extra_sample,
        reference_ms: counts.reference_ms,
        soak_ms: counts.soak_ms,
    };
    match args.format {
        SoakFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| failed(e.into()))?
        ),
        SoakFormat::Table => print!("{}", table(&report)),
    }
    if report.kills < report.kills_requested {
        eprintln!(
            "warning: only {} of {} kills landed: the run finished first (a bigger input, or a smaller --max-kill-delay, lets every kill land)",
            report.kills, report.kills_requested
        );
    }
    if !report.ok {
        return Err(failed(anyhow!(
            "the killed run committed {} row(s) fewer and {} more than the uninterrupted run",
            report.lost,
            report.duplicated + report.unexpected
        )));
    }
    Ok(())
}

fn table(r: &SoakReport) -> String {
    let value = serde_json::to_value(r).unwrap_or_default();
    let mut s = String::new();
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            s.push_str(&format!("{k:<18} {v}\n"));
        }
    }
    s
}

/// A fresh directory under the system's temporary directory.
fn temp_work_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("weir-soak-{}-{nanos}", std::process::id()))
}

/// The single sink of the pipeline, when it is one `weir soak` can read back.
fn find_sink(pipeline: &Pipeline, plan: &weir::model::Plan) -> anyhow::Result<(usize, Target)> {
    let sinks: Vec<usize> = pipeline
        .transforms
        .iter()
        .enumerate()
        .filter(|(_, t)| matches!(t.transform, Transform::Write { .. }))
        .map(|(i, _)| i)
        .collect();
    let [index] = sinks[..] else {
        let names: Vec<&str> = sinks
            .iter()
            .map(|i| pipeline.transforms[*i].name.as_str())
            .collect();
        bail!(
            "weir soak compares the output of exactly one sink; this pipeline has {} ({})",
            sinks.len(),
            names.join(", ")
        );
    };
    let node = &pipeline.transforms[index];
    let Transform::Write { sink, metadata } = &node.transform else {
        unreachable!("filtered on Write above");
    };
    let target = match sink {
        SinkSpec::Parquet { .. } => {
            let input = node
                .inputs
                .first()
                .and_then(|i| plan.collections.get(i))
                .ok_or_else(|| anyhow!("sink `{}` has no planned input", node.name))?;
            let mut schema = input.schema.clone();
            // The window and pane columns the sink may write, read as nulls when absent.
            let window = metadata.window.unwrap_or(true);
            let mut extra: Vec<(&str, DataType)> = Vec::new();
            if window {
                extra.push(("window_start", DataType::Timestamp));
                extra.push(("window_end", DataType::Timestamp));
            }
            if metadata.pane {
                extra.push(("pane_timing", DataType::String));
                extra.push(("pane_index", DataType::Int64));
                extra.push(("pane_is_first", DataType::Boolean));
                extra.push(("pane_is_last", DataType::Boolean));
            }
            for (name, ty) in extra {
                if schema.field(name).is_none() {
                    schema.fields.push(Field::new(name, ty));
                }
            }
            Target::Parquet { schema }
        }
        SinkSpec::Files {
            format: FileFormat::JsonLines,
            ..
        } => Target::JsonFiles,
        SinkSpec::Stdout => Target::Stdout,
        SinkSpec::Postgres(_) => Target::Postgres,
        _ => bail!(
            "weir soak compares Parquet, file and PostgreSQL sinks (WriteToParquet, WriteToJson, LogForTesting, WriteToPostgres); `{}` ({}) is not supported yet",
            node.name,
            node.transform.type_name()
        ),
    };
    Ok((index, target))
}

/// Counters of the two runs.
struct Counts {
    kills: u32,
    attempts: u32,
    max_kill_delay_ms: u64,
    reference_ms: u64,
    soak_ms: u64,
}

type Rows = Vec<String>;

fn soak(
    args: &SoakArgs,
    pipeline: &Pipeline,
    sink_index: usize,
    target: &Target,
    work: &Path,
    tables: &mut Vec<SinkTable>,
) -> anyhow::Result<(Rows, Rows, Counts)> {
    std::fs::create_dir_all(work)
        .with_context(|| format!("creating work directory `{}`", work.display()))?;
    let exe = std::env::current_exe().context("finding the weir executable")?;

    // The uninterrupted run.
    // External outputs (a PostgreSQL table) get this soak's own names: the process id tells
    // it from any soak running beside it.
    let tag = format!("soak{}", std::process::id());
    let reference = Run::prepare(
        pipeline,
        sink_index,
        target,
        &work.join("reference"),
        &format!("{tag}r"),
    )?;
    tables.extend(reference.table.clone());
    let started = Instant::now();
    let child = reference.spawn(&exe, args, 0)?;
    let stdout = collect_stdout(&reference, child, None)?;
    let reference_ms = started.elapsed().as_millis() as u64;
    let expected = reference.committed(target, &stdout)?;

    // The killed run.
    // By default the kills spread over about three quarters of an uninterrupted run: the
    // mean delay, (MIN + max) / 2, is 3/4 of the run's duration divided by the kills.
    let default_max =
        (3 * reference_ms / (2 * u64::from(args.kills.max(1)))).saturating_sub(MIN_KILL_DELAY_MS);
    // A continuous run makes progress only through completed checkpoints: let most of its
    // attempts live past a few of them.
    let default_max = if args.runner == "continuous" {
        let interval = weir::model::time::Duration::parse(&args.checkpoint_interval)
            .map_err(|e| anyhow!("--checkpoint-interval `{}`: {e}", args.checkpoint_interval))?;
        default_max.max(3 * interval.millis().max(0) as u64)
    } else {
        default_max
    };
    let max_delay = args
        .max_kill_delay
        .unwrap_or(default_max)
        .max(MIN_KILL_DELAY_MS + 1);
    let mut rng = SplitMix64(args.seed);
    let run = Run::prepare(
        pipeline,
        sink_index,
        target,
        &work.join("soak"),
        &format!("{tag}k"),
    )?;
    tables.extend(run.table.clone());
    let started = Instant::now();
    let mut out = Vec::new();
    let mut kills = 0;
    let mut attempts = 0;
    let mut finished = false;
    while kills < args.kills {
        let delay = MIN_KILL_DELAY_MS + rng.next() % (max_delay - MIN_KILL_DELAY_MS);
        let child = run.spawn(&exe, args, attempts)?;
        attempts += 1;
        let (bytes, killed) = run_until(&run, child, Duration::from_millis(delay), attempts)?;
        out.extend(complete_lines(&bytes));
        if killed {
            kills += 1;
            // Killed after its final commit: the job is done, a restore would refuse.
            if run.finished_before_kill() {
                finished = true;
                break;
            }
        } else {
            finished = true;
            break;
        }
    }
    if !finished {
        let child = run.spawn(&exe, args, attempts)?;
        attempts += 1;
        out.extend(collect_stdout(&run, child, Some(attempts))?);
    }
    let soak_ms = started.elapsed().as_millis() as u64;
    let committed = run.committed(target, &out)?;
    Ok((
        expected,
        committed,
        Counts {
            kills,
            attempts,
            max_kill_delay_ms: max_delay,
            reference_ms,
            soak_ms,
        },
    ))
}

/// One output location, checkpoint directory and rewritten pipeline.
struct Run {
    dir: PathBuf,
    pipeline_file: PathBuf,
    output: Option<PathBuf>,
    /// A PostgreSQL sink's table, renamed for this run (emptied before it).
    table: Option<SinkTable>,
    checkpoints: PathBuf,
}

impl Run {
    /// Prepares a run in `dir`; `tag` tells this run's external outputs (a PostgreSQL table
    /// and sink id) from every other run's.
    fn prepare(
        pipeline: &Pipeline,
        sink_index: usize,
        target: &Target,
        dir: &Path,
        tag: &str,
    ) -> anyhow::Result<Run> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
        let mut pipeline = pipeline.clone();
        let node = pipeline.transforms[sink_index].name.clone();
        let mut table = None;
        let output = match &mut pipeline.transforms[sink_index].transform {
            Transform::Write {
                sink: SinkSpec::Parquet { path },
                ..
            } => {
                let out = dir.join("out");
                *path = out.display().to_string();
                Some(out)
            }
            Transform::Write {
                sink: SinkSpec::Files { path, .. },
                ..
            } => {
                // Keep the file/directory distinction: a path with an extension is one file.
                let out = match Path::new(path.as_str()).extension() {
                    Some(ext) => dir.join(format!("out.{}", ext.to_string_lossy())),
                    None => dir.join("out"),
                };
                *path = out.display().to_string();
                Some(out)
            }
            Transform::Write {
                sink: SinkSpec::Postgres(spec),
                ..
            } => {
                let renamed = format!("{}_{tag}", spec.table);
                // PostgreSQL cuts identifiers at 63 bytes: the two runs' tables would be one.
                if renamed.rsplit('.').next().unwrap_or(&renamed).len() > 63 {
                    bail!(
                        "table `{}` is too long for the soak's copies (`{renamed}` exceeds PostgreSQL's 63 bytes); give the sink a shorter table",
                        spec.table
                    );
                }
                spec.table = renamed;
                spec.job = Some(format!("weir-{tag}"));
                let t = SinkTable::new(&node, spec);
                t.reset()
                    .with_context(|| format!("emptying table `{}` for the soak", spec.table))?;
                table = Some(t);
                None
            }
            _ => None,
        };
        debug_assert!(output.is_some() || table.is_some() || matches!(target, Target::Stdout));
        let pipeline_file = dir.join("pipeline.json");
        std::fs::write(&pipeline_file, pipeline.to_json()?)
            .with_context(|| format!("writing `{}`", pipeline_file.display()))?;
        Ok(Run {
            dir: dir.to_path_buf(),
            pipeline_file,
            output,
            table,
            checkpoints: dir.join("checkpoints"),
        })
    }

    fn log(&self, attempt: u32) -> PathBuf {
        self.dir.join(format!("attempt-{attempt}.log"))
    }

    fn spawn(&self, exe: &Path, args: &SoakArgs, attempt: u32) -> anyhow::Result<Child> {
        let log = std::fs::File::create(self.log(attempt))
            .with_context(|| format!("creating `{}`", self.log(attempt).display()))?;
        let mut cmd = Command::new(exe);
        cmd.arg("run")
            .arg(&self.pipeline_file)
            .arg("--runner")
            .arg(&args.runner)
            .arg("--checkpoint-dir")
            .arg(&self.checkpoints);
        if args.runner == "continuous" {
            cmd.arg("--checkpoint-interval")
                .arg(&args.checkpoint_interval);
            // A Flink-style job resumes only when told to (`-s`); a micro-batch query always
            // resumes from its checkpoint location.
            if self.has_completed_checkpoint() {
                cmd.arg("--set").arg("restore=latest");
            }
        }
        if let Some(p) = args.parallelism {
            cmd.arg("--parallelism").arg(p.to_string());
        }
        cmd.args(&args.run_args);
        cmd.env_remove("WEIR_RUNNER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        cmd.spawn()
            .with_context(|| format!("starting `{} run`", exe.display()))
    }

    /// Whether a continuous run committed its final rows (a sink's commit marker past every
    /// completed checkpoint) before it was killed.
    fn finished_before_kill(&self) -> bool {
        let highest = |entries: Vec<u64>| entries.into_iter().max().unwrap_or(0);
        let read = |dir: &Path| -> Vec<std::fs::DirEntry> {
            std::fs::read_dir(dir)
                .map(|d| d.filter_map(Result::ok).collect())
                .unwrap_or_default()
        };
        let committed = highest(
            read(&self.checkpoints.join("committed"))
                .iter()
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .filter_map(|t| t.trim().parse().ok())
                .collect(),
        );
        let completed = highest(
            read(&self.checkpoints)
                .iter()
                .filter(|e| e.path().join("_metadata").exists())
                .filter_map(|e| e.file_name().to_str()?.strip_prefix("chk-")?.parse().ok())
                .collect(),
        );
        committed > completed
    }

    /// Whether a continuous run completed a checkpoint to restore (`chk-N/_metadata`).
    fn has_completed_checkpoint(&self) -> bool {
        std::fs::read_dir(&self.checkpoints)
            .map(|entries| {
                entries.filter_map(Result::ok).any(|e| {
                    e.file_name().to_string_lossy().starts_with("chk-")
                        && e.path().join("_metadata").exists()
                })
            })
            .unwrap_or(false)
    }

    /// The rows the run committed, as canonical JSON text.
    fn committed(&self, target: &Target, stdout: &[String]) -> anyhow::Result<Rows> {
        let mut rows = match (target, &self.output) {
            (Target::Stdout, _) => stdout.iter().map(|l| canonical(l)).collect(),
            (Target::Parquet { schema }, Some(out)) => read_parquet(out, schema)?,
            (Target::JsonFiles, Some(out)) => read_json_files(out)?,
            (Target::Postgres, _) => match &self.table {
                Some(t) => t.committed_rows()?.iter().map(|l| canonical(l)).collect(),
                None => bail!("internal: the sink has no table"),
            },
            _ => bail!("internal: the sink has no output location"),
        };
        rows.sort();
        Ok(rows)
    }
}

/// Waits for `child` to finish successfully; returns the complete lines it printed.
fn collect_stdout(run: &Run, mut child: Child, attempt: Option<u32>) -> anyhow::Result<Rows> {
    let reader = stdout_reader(&mut child);
    let status = child.wait().context("waiting for the run")?;
    let bytes = reader.join().unwrap_or_default();
    if !status.success() {
        let log = run.log(attempt.map_or(0, |a| a - 1));
        bail!(
            "the run of `{}` failed ({status}); its log `{}` ends: {}",
            run.pipeline_file.display(),
            log.display(),
            log_tail(&log)
        );
    }
    Ok(complete_lines(&bytes))
}

/// Runs `child` until it exits or `delay` passes, then kills it (SIGKILL). Returns what it
/// printed and whether it was killed. A run that exits early must have succeeded.
fn run_until(
    run: &Run,
    mut child: Child,
    delay: Duration,
    attempt: u32,
) -> anyhow::Result<(Vec<u8>, bool)> {
    let reader = stdout_reader(&mut child);
    let deadline = Instant::now() + delay;
    loop {
        if let Some(status) = child.try_wait().context("polling the run")? {
            let bytes = reader.join().unwrap_or_default();
            if !status.success() {
                let log = run.log(attempt - 1);
                bail!(
                    "attempt {attempt} of the killed run failed ({status}); its log `{}` ends: {}",
                    log.display(),
                    log_tail(&log)
                );
            }
            return Ok((bytes, false));
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(5)));
    }
    // `Child::kill` sends SIGKILL on Unix.
    child.kill().context("killing the run")?;
    child.wait().context("waiting for the killed run")?;
    let bytes = reader.join().unwrap_or_default();
    Ok((bytes, true))
}

/// The last lines of a run's log, on one line.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut tail: Vec<&str> = text.lines().rev().take(3).collect();
    tail.reverse();
    tail.join(" | ")
}

fn stdout_reader(child: &mut Child) -> std::thread::JoinHandle<Vec<u8>> {
    let stdout = child.stdout.take();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut s) = stdout {
            let _ = s.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// The newline-terminated, non-empty lines of `bytes` (a line cut by a kill is not output).
fn complete_lines(bytes: &[u8]) -> Rows {
    let text = String::from_utf8_lossy(bytes);
    let complete = match text.rfind('\n') {
        Some(i) => &text[..i],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// A JSON line in one canonical text form (the line itself when it is not JSON).
fn canonical(line: &str) -> String {
    serde_json::from_str::<serde_json::Value>(line)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| line.to_string())
}

/// The rows of a Parquet sink directory: the files its manifest lists.
fn read_parquet(dir: &Path, schema: &Schema) -> anyhow::Result<Rows> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let path = dir.display().to_string();
    let mut source =
        ParquetSource::new("soak", &path, schema).map_err(|e| anyhow!("reading `{path}`: {e}"))?;
    let mut rows = Vec::new();
    for p in 0..source.partitions() {
        loop {
            match source
                .poll(p, 8192, 0)
                .map_err(|e| anyhow!("reading `{path}`: {e}"))?
            {
                SourcePoll::Batch { data, .. } => rows.extend(
                    weir::core::convert::batch_to_rows(&data)
                        .into_iter()
                        .map(|r| serde_json::Value::Object(r).to_string()),
                ),
                SourcePoll::Pending => continue,
                SourcePoll::Ended => break,
            }
        }
    }
    Ok(rows)
}

/// The rows of a JSON-lines sink: its file, or the part files of its directory (those its
/// manifest lists when it has one; hidden and `_` files skipped).
fn read_json_files(out: &Path) -> anyhow::Result<Rows> {
    let mut files = Vec::new();
    if out.is_file() {
        files.push(out.to_path_buf());
    } else if out.is_dir() {
        let committed = Manifest::existing(out)
            .map(|m| m.committed_files())
            .transpose()
            .map_err(|e| anyhow!("reading the manifest of `{}`: {e}", out.display()))?;
        for entry in
            std::fs::read_dir(out).with_context(|| format!("listing `{}`", out.display()))?
        {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('_') || !entry.path().is_file() {
                continue;
            }
            if committed.as_ref().is_some_and(|c| !c.contains(&name)) {
                continue;
            }
            files.push(entry.path());
        }
    }
    let mut rows = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("reading `{}`", f.display()))?;
        rows.extend(complete_lines(text.as_bytes()).iter().map(|l| canonical(l)));
    }
    Ok(rows)
}

/// How two multisets of rows differ.
#[derive(Debug, Default, PartialEq)]
struct Diff {
    lost: u64,
    duplicated: u64,
    unexpected: u64,
    lost_sample: Vec<String>,
    extra_sample: Vec<String>,
}

/// How `committed` differs from `expected` (multisets of rows).
fn compare(expected: &[String], committed: &[String]) -> Diff {
    let mut counts: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in expected {
        counts.entry(r).or_default().0 += 1;
    }
    for r in committed {
        counts.entry(r).or_default().1 += 1;
    }
    let mut d = Diff::default();
    for (row, (want, got)) in counts {
        if got < want {
            d.lost += want - got;
            if d.lost_sample.len() < SAMPLE {
                d.lost_sample.push(row.to_string());
            }
            continue;
        }
        if got > want && d.extra_sample.len() < SAMPLE {
            d.extra_sample.push(row.to_string());
        }
        if want == 0 {
            d.unexpected += got;
        } else {
            d.duplicated += got - want;
        }
    }
    d
}

/// A tiny seeded PRNG (SplitMix64) for the kill moments.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_counts_lost_duplicated_and_unexpected_rows() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let d = compare(&s(&["a", "a", "b", "c"]), &s(&["a", "b", "b", "b", "d"]));
        assert_eq!((d.lost, d.duplicated, d.unexpected), (2, 2, 1));
        assert_eq!(
            (d.lost_sample, d.extra_sample),
            (s(&["a", "c"]), s(&["b", "d"]))
        );
        assert_eq!(compare(&s(&["a"]), &s(&["a"])), Diff::default());
    }

    #[test]
    fn a_line_cut_by_a_kill_is_not_output() {
        assert_eq!(
            complete_lines(b"{\"a\":1}\n{\"a\":2}\n{\"a\""),
            ["{\"a\":1}", "{\"a\":2}"]
        );
        assert!(complete_lines(b"{\"a\"").is_empty());
    }
}
