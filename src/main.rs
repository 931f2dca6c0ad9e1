//! The `weir` command: run, validate and plan pipelines; list runners and capabilities.

mod bench;
mod soak;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use weir::model::requirements::{Feature, Support};
use weir::model::runner::PipelineOptions;

/// Freed Arrow buffers are reused rather than returned to the kernel (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "Write a streaming pipeline once; run it like Beam, Spark or Flink."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline (a YAML pipeline file or a JSON plan).
    Run {
        /// The pipeline file.
        pipeline: PathBuf,
        // Boxed: the options are much larger than the other commands' arguments.
        #[command(flatten)]
        options: Box<PipelineOptions>,
    },
    /// Check a pipeline without running it.
    Validate {
        /// The pipeline file.
        pipeline: PathBuf,
    },
    /// Print the planned pipeline: canonical JSON, or a readable graph.
    Plan {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "json")]
        format: PlanFormat,
    },
    /// Run the conformance scenarios on the runners and compare them side by side.
    Conformance {
        /// Runners to compare (comma-separated; default: every runner with scheduled runs).
        #[arg(long, value_delimiter = ',')]
        runner: Vec<String>,
        /// A scenario file or a directory of them.
        #[arg(long, default_value = "conformance/scenarios")]
        scenario: PathBuf,
        /// Report format.
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
        /// Write the report here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Benchmark the runners on a standard workload: `weir bench nexmark --query q5`.
    Bench {
        /// The workload.
        #[command(subcommand)]
        workload: bench::Workload,
    },
    /// Kill a streaming run (SIGKILL) at seeded random moments, restart it from its
    /// checkpoint each time, and compare what its sink committed with an uninterrupted run.
    Soak(soak::SoakArgs),
    /// List the runners and their capability tables.
    Runners {
        /// Output format (`markdown`: the capability matrix, each claim linked to the
        /// conformance scenarios that exercise it).
        #[arg(long, value_enum, default_value = "text")]
        format: TableFormat,
        /// The conformance scenarios to link from the Markdown matrix.
        #[arg(long, default_value = "conformance/scenarios")]
        scenarios: std::path::PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum PlanFormat {
    Json,
    Text,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Table,
    Markdown,
    Json,
    Html,
}

#[derive(Clone, Copy, ValueEnum)]
enum TableFormat {
    Text,
    Markdown,
    Json,
}

/// Exit code for a pipeline refused before running (bad file, plan or runner choice).
const EXIT_INVALID: u8 = 2;
/// Exit code for a run that failed.
const EXIT_FAILED: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("WEIR_LOG"))
        .with_writer(std::io::stderr)
        .init();
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, err)) => {
            // One paragraph: the error and its causes.
            let causes: Vec<String> = err.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", causes.join(": "));
            ExitCode::from(code)
        }
    }
}

fn invalid(e: anyhow::Error) -> (u8, anyhow::Error) {
    (EXIT_INVALID, e)
}

fn load_plan(path: &std::path::Path) -> Result<weir::model::Plan, (u8, anyhow::Error)> {
    let pipeline = weir::load_pipeline(path).map_err(invalid)?;
    weir::model::plan(&pipeline)
        .with_context(|| format!("planning `{}`", path.display()))
        .map_err(invalid)
}

fn execute(command: Command) -> Result<(), (u8, anyhow::Error)> {
    match command {
        Command::Run { pipeline, options } => {
            let plan = load_plan(&pipeline)?;
            let runner = weir::runner(&options.runner).map_err(invalid)?;
            runner.check(&plan).map_err(|e| invalid(e.into()))?;
            let report = runner.run(&plan, &options).map_err(|e| {
                (
                    EXIT_FAILED,
                    anyhow::anyhow!(e).context(format!("running `{}`", pipeline.display())),
                )
            })?;
            for (sink, rows) in &report.rows_written {
                eprintln!("{sink}: wrote {rows} row(s)");
            }
            for (node, n) in &report.late_dropped {
                eprintln!("{node}: dropped {n} late row(s)");
            }
            for (node, n) in &report.dead_letters {
                eprintln!("{node}: sent {n} malformed record(s) to its dead-letter output");
            }
            Ok(())
        }
        Command::Validate { pipeline } => {
            let plan = load_plan(&pipeline)?;
            let req: Vec<String> = plan.requirements.iter().map(|f| f.name()).collect();
            println!(
                "{}: valid ({} transforms, {} collections; requires: {})",
                pipeline.display(),
                plan.pipeline.transforms.len(),
                plan.collections.len(),
                if req.is_empty() {
                    "nothing special".to_string()
                } else {
                    req.join(", ")
                }
            );
            Ok(())
        }
        Command::Plan { pipeline, format } => {
            let plan = load_plan(&pipeline)?;
            match format {
                PlanFormat::Json => println!("{}", plan.to_json().map_err(|e| invalid(e.into()))?),
                PlanFormat::Text => print!("{}", plan.to_text()),
            }
            Ok(())
        }
        Command::Conformance {
            runner,
            scenario,
            format,
            out,
        } => conformance(&runner, &scenario, format, out.as_deref()),
        Command::Bench { workload } => bench::run(workload),
        Command::Soak(args) => soak::run(args),
        Command::Runners { format, scenarios } => {
            print!("{}", capability_table(format, &scenarios).map_err(invalid)?);
            Ok(())
        }
    }
}

fn conformance(
    names: &[String],
    scenarios: &std::path::Path,
    format: ReportFormat,
    out: Option<&std::path::Path>,
) -> Result<(), (u8, anyhow::Error)> {
    use weir::conformance::report::{self, Format};
    let available = weir::scheduled_runners();
    let chosen: Vec<&dyn weir::core::schedule::ScheduledRunner> = if names.is_empty() {
        available.iter().map(|r| r.as_ref()).collect()
    } else {
        names
            .iter()
            .map(|n| {
                available
                    .iter()
                    .find(|r| r.name() == n)
                    .map(|r| r.as_ref())
                    .ok_or_else(|| {
                        let known: Vec<&str> = available.iter().map(|r| r.name()).collect();
                        invalid(anyhow::anyhow!(
                            "runner `{n}` cannot run conformance schedules (available: {})",
                            known.join(", ")
                        ))
                    })
            })
            .collect::<Result<_, _>>()?
    };
    let loaded = weir::conformance::load_scenarios(scenarios).map_err(invalid)?;
    let results = weir::conformance::run_catalogue(&loaded, &chosen);
    let format = match format {
        ReportFormat::Table => Format::Table,
        ReportFormat::Markdown => Format::Markdown,
        ReportFormat::Json => Format::Json,
        ReportFormat::Html => Format::Html,
    };
    let text = report::render(&results, format);
    match out {
        Some(path) => std::fs::write(path, &text)
            .with_context(|| format!("writing `{}`", path.display()))
            .map_err(|e| (EXIT_FAILED, e))?,
        None => print!("{text}"),
    }
    // The terminal table already ends with the summary.
    if out.is_some() || !matches!(format, Format::Table) {
        eprintln!("{}", report::summary(&results));
    }
    if results.iter().any(|r| r.has_violation()) {
        return Err((EXIT_FAILED, anyhow::anyhow!("conformance violations found")));
    }
    Ok(())
}

fn support_cell(s: &Support) -> String {
    match s {
        Support::Native => "yes".into(),
        Support::Partial { note } => format!("partial: {note}"),
        Support::Extension { note } => format!("extension: {note}"),
        Support::Unsupported { reason } => format!("no: {reason}"),
    }
}

fn capability_table(format: TableFormat, scenarios: &std::path::Path) -> anyhow::Result<String> {
    let runners = weir::runners();
    Ok(match format {
        TableFormat::Json => {
            let v: Vec<serde_json::Value> = runners
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "runner": r.name(),
                        "description": r.description(),
                        "capabilities": r.capabilities().features.iter().map(|(f, s)| {
                            serde_json::json!({"feature": f.name(), "support": s})
                        }).collect::<Vec<_>>(),
                    })
                })
                .collect();
            format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
        }
        TableFormat::Markdown => {
            use weir::conformance::matrix::{self, Column};
            let loaded = if scenarios.exists() {
                weir::conformance::load_scenarios(scenarios)?
            } else {
                Vec::new()
            };
            let in_suite: Vec<&str> = weir::scheduled_runners().iter().map(|r| r.name()).collect();
            let columns: Vec<Column> = runners
                .iter()
                .map(|r| Column {
                    runner: r.name(),
                    capabilities: r.capabilities(),
                    in_suite: in_suite.contains(&r.name()),
                })
                .collect();
            let root = scenarios
                .ancestors()
                .nth(2)
                .unwrap_or(std::path::Path::new(""));
            matrix::markdown(&columns, &loaded, root)
        }
        TableFormat::Text => {
            let mut s = String::new();
            for r in &runners {
                s.push_str(&format!("{} — {}\n", r.name(), r.description()));
                for f in Feature::ALL {
                    s.push_str(&format!(
                        "  {:<26} {}\n",
                        f.name(),
                        support_cell(&r.capabilities().support(*f))
                    ));
                }
            }
            s
        }
    })
}
