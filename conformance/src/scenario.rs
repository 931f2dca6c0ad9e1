//! Scenario files: a pipeline, a schedule on a manual processing-time clock, runner settings
//! and expectations. The format is documented in `conformance/README.md`.

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use weir_model::plan::Plan;
use weir_model::time::{Duration, Timestamp};
use weir_model::udf::Row;
use weir_model::window::PaneTiming;
use weir_runner_core::schedule::{Action, CrashPoint, Schedule, Step};

/// A loaded, validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Unique name (defaults to the file stem).
    pub name: String,
    /// Area of the catalogue: watermarks, windowing, exactly-once, state-and-time, bad-input.
    pub area: String,
    /// What the scenario shows.
    pub description: String,
    /// The file it came from.
    pub path: PathBuf,
    /// The planned pipeline.
    pub plan: Plan,
    /// The input schedule.
    pub schedule: Schedule,
    /// Settings per runner (`key → value`); absent keys take the runner's defaults.
    pub settings: BTreeMap<String, BTreeMap<String, String>>,
    /// The memory sink whose output is compared.
    pub sink: String,
    /// Expected output of the model (the direct runner), if given.
    pub model: Option<Vec<ExpectedRow>>,
    /// Per-runner expectations other than the model.
    pub runners: BTreeMap<String, RunnerExpectation>,
}

/// One expected sink row. Only the fields given are compared.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedRow {
    /// The row's columns.
    pub row: Row,
    /// Pane timing and index, when compared.
    pub pane: Option<(PaneTiming, u64)>,
    /// Window `[start, end)` in ms, when compared.
    pub window: Option<(Timestamp, Timestamp)>,
    /// Processing time at which the row must have become visible, when compared.
    pub visible_at: Option<Timestamp>,
}

/// What a runner other than the model is expected to produce.
#[derive(Debug, Clone, PartialEq)]
pub enum RunnerExpectation {
    /// Exactly the model's expected output.
    SameAsModel,
    /// Its own output, differing from the model for the stated reason.
    Differs {
        /// The rule of the modelled engine that causes the difference.
        because: String,
        /// The expected rows.
        rows: Vec<ExpectedRow>,
    },
    /// Refused at translation, naming this feature.
    Unsupported {
        /// The feature's name as in the capability table.
        feature: String,
    },
    /// The run fails (e.g. a restart refuses a damaged checkpoint) with an error containing
    /// this text.
    Fails {
        /// Text the error must contain.
        error: String,
    },
}

/// Runners a scenario may give expectations or settings for.
pub const RUNNERS: &[&str] = &["microbatch", "continuous", "spark", "flink"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<String>,
    area: String,
    description: String,
    pipeline: String,
    schedule: Vec<RawStep>,
    #[serde(default)]
    runners: BTreeMap<String, BTreeMap<String, Value>>,
    #[serde(default)]
    expect: Option<RawExpect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    at: Value,
    #[serde(default)]
    deliver: Option<RawDeliver>,
    #[serde(default)]
    end_input: Option<String>,
    #[serde(default)]
    advance: Option<bool>,
    #[serde(default)]
    crash: Option<Value>,
    #[serde(default)]
    restart: Option<RawRestart>,
    #[serde(default)]
    corrupt_checkpoint: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeliver {
    source: String,
    #[serde(default)]
    partition: u32,
    rows: Vec<Row>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRestart {
    #[serde(default)]
    parallelism: Option<usize>,
}

/// Unknown keys are runner names, checked against [`RUNNERS`] (serde cannot deny unknown
/// fields next to a flattened map).
#[derive(Deserialize)]
struct RawExpect {
    #[serde(default = "default_sink")]
    sink: String,
    #[serde(default)]
    model: Option<Vec<RawRow>>,
    #[serde(flatten)]
    runners: BTreeMap<String, Value>,
}

fn default_sink() -> String {
    "out".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    row: Row,
    #[serde(default)]
    pane: Option<String>,
    #[serde(default)]
    window: Option<(Value, Value)>,
    #[serde(default)]
    visible_at: Option<Value>,
}

/// A time as written in scenarios: a duration string (`1s`, `250ms`) or integer milliseconds.
fn time(v: &Value, what: &str) -> anyhow::Result<Timestamp> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| anyhow!("{what}: `{n}` is not whole milliseconds")),
        Value::String(s) => {
            let neg = s.trim_start().starts_with('-');
            let d = Duration::parse(s.trim().trim_start_matches('-'))
                .map_err(|e| anyhow!("{what}: {e}"))?;
            Ok(if neg { -d.millis() } else { d.millis() })
        }
        other => bail!("{what}: `{other}` is not a time (use `1s`, `250ms` or milliseconds)"),
    }
}

fn pane(s: &str) -> anyhow::Result<(PaneTiming, u64)> {
    let (t, i) = s
        .split_once('/')
        .ok_or_else(|| anyhow!("pane `{s}` is not TIMING/INDEX, e.g. ON_TIME/0"))?;
    let timing = PaneTiming::parse(t)
        .ok_or_else(|| anyhow!("pane timing `{t}` is not EARLY, ON_TIME, LATE or UNKNOWN"))?;
    let index = i
        .parse()
        .map_err(|_| anyhow!("pane index `{i}` is not a whole number"))?;
    Ok((timing, index))
}

fn rows(raw: Vec<RawRow>, what: &str) -> anyhow::Result<Vec<ExpectedRow>> {
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| {
            let ctx = format!("{what}, row {}", i + 1);
            Ok(ExpectedRow {
                row: r.row,
                pane: r
                    .pane
                    .as_deref()
                    .map(pane)
                    .transpose()
                    .with_context(|| ctx.clone())?,
                window: match r.window {
                    Some((s, e)) => Some((time(&s, &ctx)?, time(&e, &ctx)?)),
                    None => None,
                },
                visible_at: r.visible_at.as_ref().map(|v| time(v, &ctx)).transpose()?,
            })
        })
        .collect()
}

fn setting_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn crash_point(v: &Value) -> anyhow::Result<CrashPoint> {
    serde_json::from_value(v.clone()).map_err(|e| {
        anyhow!("crash point `{v}`: {e} (one of after-sink-write-before-commit-log, mid-batch, between-pre-commit-and-commit, during-snapshot, {{after-records: N}})")
    })
}

/// YAML text → JSON value (scenario files are YAML).
fn yaml_to_json(y: &yaml_rust2::Yaml) -> anyhow::Result<Value> {
    use yaml_rust2::Yaml;
    Ok(match y {
        Yaml::Real(s) => serde_json::Number::from_f64(s.parse::<f64>()?)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect::<anyhow::Result<_>>()?),
        Yaml::Hash(h) => {
            let mut m = serde_json::Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    other => bail!("a mapping key must be text, not {other:?}"),
                };
                m.insert(key, yaml_to_json(v)?);
            }
            Value::Object(m)
        }
        Yaml::Null => Value::Null,
        Yaml::Alias(_) | Yaml::BadValue => bail!("unsupported YAML value"),
    })
}

impl Scenario {
    /// Reads and validates a scenario file: the pipeline must plan, times must not go back.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading scenario `{}`", path.display()))?;
        Scenario::parse(&text, path).with_context(|| format!("scenario `{}`", path.display()))
    }

    /// Parses scenario text; `path` names it in errors and gives the default name.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Scenario> {
        let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| anyhow!("{e}"))?;
        let doc = docs.first().ok_or_else(|| anyhow!("the file is empty"))?;
        let raw: RawScenario = serde_json::from_value(yaml_to_json(doc)?)?;
        let pipeline =
            weir_model::file::parse_str(&raw.pipeline, &format!("{} (pipeline)", path.display()))?;
        let plan = weir_model::plan(&pipeline)?;
        let mut steps = Vec::new();
        for (i, s) in raw.schedule.into_iter().enumerate() {
            let what = format!("schedule step {}", i + 1);
            let at = time(&s.at, &what)?;
            let mut actions = Vec::new();
            if let Some(d) = s.deliver {
                actions.push(Action::Deliver {
                    source: d.source,
                    partition: d.partition,
                    rows: d.rows,
                });
            }
            if let Some(src) = s.end_input {
                actions.push(Action::EndInput {
                    source: if src == "all" { None } else { Some(src) },
                });
            }
            if s.advance == Some(true) {
                actions.push(Action::Advance);
            }
            if let Some(c) = &s.crash {
                actions.push(Action::Crash {
                    point: crash_point(c).with_context(|| what.clone())?,
                });
            }
            if s.corrupt_checkpoint == Some(true) {
                actions.push(Action::CorruptCheckpoint);
            }
            if let Some(r) = s.restart {
                actions.push(Action::Restart {
                    parallelism: r.parallelism,
                });
            }
            if actions.len() != 1 {
                bail!("{what}: give exactly one of deliver, end_input, advance, crash, corrupt_checkpoint, restart");
            }
            steps.push(Step {
                at,
                action: actions.remove(0),
            });
        }
        let schedule = Schedule { steps };
        schedule.check_order().map_err(|e| anyhow!(e))?;
        if let Some(r) = raw
            .runners
            .keys()
            .find(|r| *r != "direct" && !RUNNERS.contains(&r.as_str()))
        {
            bail!(
                "runners.{r}: unknown runner (one of: direct, {})",
                RUNNERS.join(", ")
            );
        }
        let settings = raw
            .runners
            .into_iter()
            .map(|(r, kv)| {
                (
                    r,
                    kv.into_iter().map(|(k, v)| (k, setting_text(&v))).collect(),
                )
            })
            .collect();
        let (sink, model, runners) = match raw.expect {
            None => (default_sink(), None, BTreeMap::new()),
            Some(e) => {
                let model = e.model.map(|m| rows(m, "expect.model")).transpose()?;
                let mut runners = BTreeMap::new();
                for (runner, v) in e.runners {
                    let what = format!("expect.{runner}");
                    if !RUNNERS.contains(&runner.as_str()) {
                        bail!(
                            "{what}: unknown field `{runner}` (expected sink, model, or a runner: {})",
                            RUNNERS.join(", ")
                        );
                    }
                    let exp = match v {
                        Value::String(s) if s == "same-as-model" => RunnerExpectation::SameAsModel,
                        Value::Object(mut o) => {
                            if let Some(f) = o.remove("unsupported") {
                                RunnerExpectation::Unsupported {
                                    feature: setting_text(&f),
                                }
                            } else if let Some(f) = o.remove("fails") {
                                RunnerExpectation::Fails {
                                    error: setting_text(&f),
                                }
                            } else {
                                let because = o
                                    .remove("because")
                                    .and_then(|b| b.as_str().map(str::to_string))
                                    .ok_or_else(|| {
                                        anyhow!("{what}: a differing expectation needs `because:`")
                                    })?;
                                let raw_rows: Vec<RawRow> = serde_json::from_value(
                                    o.remove("rows")
                                        .ok_or_else(|| anyhow!("{what}: needs `rows:`"))?,
                                )
                                .with_context(|| what.clone())?;
                                if let Some(k) = o.keys().next() {
                                    bail!("{what}: unknown field `{k}` (expected because, rows, unsupported or fails)");
                                }
                                RunnerExpectation::Differs {
                                    because,
                                    rows: rows(raw_rows, &what)?,
                                }
                            }
                        }
                        other => bail!("{what}: `{other}` is not same-as-model or a mapping"),
                    };
                    runners.insert(runner, exp);
                }
                (e.sink, model, runners)
            }
        };
        // A misnamed sink would compare an empty output and could pass unnoticed.
        let memory_sinks: Vec<&str> = plan
            .pipeline
            .transforms
            .iter()
            .filter_map(|n| match &n.transform {
                weir_model::transform::Transform::Write {
                    sink: weir_model::io::SinkSpec::Memory { name, .. },
                    ..
                } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        if !memory_sinks.contains(&sink.as_str()) {
            bail!(
                "expect.sink: the pipeline has no WriteToMemory sink named `{sink}` (memory sinks: {})",
                memory_sinks.join(", ")
            );
        }
        let name = raw.name.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        Ok(Scenario {
            name,
            area: raw.area,
            description: raw.description,
            path: path.to_path_buf(),
            plan,
            schedule,
            settings,
            sink,
            model,
            runners,
        })
    }
}

/// Loads one scenario file, or every `*.yaml` under a directory (recursively, in path order).
pub fn load_scenarios(path: &Path) -> anyhow::Result<Vec<Scenario>> {
    // Scenarios may name the suite's user functions: keep them linked.
    let _ = crate::functions::names();
    if path.is_file() {
        return Ok(vec![Scenario::load(path)?]);
    }
    let mut files = Vec::new();
    collect(path, &mut files)?;
    files.sort();
    let scenarios: Vec<Scenario> = files
        .iter()
        .map(|f| Scenario::load(f))
        .collect::<anyhow::Result<_>>()?;
    let mut names = std::collections::BTreeSet::new();
    for s in &scenarios {
        if !names.insert(&s.name) {
            bail!("two scenarios are named `{}`", s.name);
        }
    }
    Ok(scenarios)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading `{}`", dir.display()))? {
        let p = entry?.path();
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
    Ok(())
}
