//! Runs scenarios on runners and judges each run.

use crate::scenario::{ExpectedRow, RunnerExpectation, Scenario};
use crate::verdict::{self, InvariantCheck, Verdict, VerdictKind};
use std::collections::BTreeMap;
use weir_model::error::ModelError;
use weir_model::io::SinkSpec;
use weir_model::requirements::Feature;
use weir_model::transform::Transform;
use weir_model::window::{AccumulationMode, Trigger};
use weir_runner_core::io::RecordedRow;
use weir_runner_core::schedule::{Action, RunRecord, Schedule, ScheduledRunner, WatermarkEvent};
use weir_runner_direct::DirectRunner;

/// One runner's run of one scenario, judged.
#[derive(Debug, Clone)]
pub struct RunnerResult {
    /// The runner.
    pub runner: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Rows of the compared sink, in write order.
    pub output: Vec<RecordedRow>,
    /// Rows dropped as late, over all transforms.
    pub dropped_late: u64,
    /// Watermark changes per transform.
    pub watermarks: Vec<WatermarkEvent>,
    /// Invariants checked on this run.
    pub invariants: Vec<InvariantCheck>,
    /// Schedule steps the runner did not honour, with why.
    pub ignored_steps: Vec<String>,
}

/// One scenario on every runner asked for.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    /// The scenario's name.
    pub scenario: String,
    /// Its area.
    pub area: String,
    /// What it shows.
    pub description: String,
    /// Per runner, in the order asked.
    pub results: Vec<RunnerResult>,
}

impl ScenarioResult {
    /// Whether any runner's verdict is a violation.
    pub fn has_violation(&self) -> bool {
        self.results
            .iter()
            .any(|r| r.verdict.verdict == VerdictKind::Violation)
    }
}

/// Runs every scenario on every runner.
pub fn run_catalogue(
    scenarios: &[Scenario],
    runners: &[&dyn ScheduledRunner],
) -> Vec<ScenarioResult> {
    scenarios.iter().map(|s| run_scenario(s, runners)).collect()
}

/// The sinks that receive an aggregation's late side output: rows there mean something
/// was late in the model.
fn late_sinks(s: &Scenario) -> Vec<String> {
    let plan = &s.plan;
    plan.pipeline
        .transforms
        .iter()
        .filter_map(|n| match (&n.transform, n.inputs.first()) {
            (
                Transform::Write {
                    sink: SinkSpec::Memory { name, .. },
                    ..
                },
                Some(input),
            ) => {
                let (producer, tag) = weir_model::pipeline::split_collection(input);
                let aggregation = plan
                    .pipeline
                    .node(producer)
                    .is_some_and(|p| p.transform.is_aggregation());
                (tag.is_some() && aggregation).then(|| name.clone())
            }
            _ => None,
        })
        .collect()
}

/// Whether the final output of every runner must equal the model's: the input ends, nothing
/// is late in the model, every windowing uses the default trigger with discarding panes
/// (other triggers legitimately pane differently per runner), and no state expires by timer.
fn final_output_comparable(s: &Scenario, model: &RunRecord) -> bool {
    let ends = s
        .schedule
        .steps
        .iter()
        .any(|st| matches!(st.action, Action::EndInput { .. }));
    let nothing_late = model.late_dropped.values().sum::<u64>() == 0
        && late_sinks(s)
            .iter()
            .all(|n| model.sinks.get(n).is_none_or(|rows| rows.is_empty()));
    let default_panes = s.plan.collections.values().all(|c| {
        c.windowing.trigger == Trigger::Default
            && c.windowing.accumulation == AccumulationMode::Discarding
    });
    // Timers fire at watermark and clock progress points, which each engine places
    // differently (after every row, at batch ends, at emission instants): state they expire
    // may legitimately see different rows.
    let no_timers = ![Feature::EventTimeTimers, Feature::ProcessingTimeTimers]
        .iter()
        .any(|f| s.plan.requirements.contains(f));
    ends && nothing_late && default_panes && no_timers
}

fn expectation_for<'a>(s: &'a Scenario, runner: &str) -> Option<(Option<&'a str>, Expected<'a>)> {
    if runner == "direct" {
        return s.model.as_deref().map(|m| (None, Expected::Rows(m)));
    }
    match s.runners.get(runner)? {
        RunnerExpectation::SameAsModel => s.model.as_deref().map(|m| (None, Expected::Rows(m))),
        RunnerExpectation::Differs { because, rows } => {
            Some((Some(because.as_str()), Expected::Rows(rows)))
        }
        RunnerExpectation::Unsupported { feature } => Some((None, Expected::Unsupported(feature))),
        RunnerExpectation::Fails { error } => Some((None, Expected::Fails(error))),
    }
}

enum Expected<'a> {
    Rows(&'a [ExpectedRow]),
    Unsupported(&'a str),
    Fails(&'a str),
}

/// Runs one scenario: the model (direct runner) always, then each runner asked for.
pub fn run_scenario(s: &Scenario, runners: &[&dyn ScheduledRunner]) -> ScenarioResult {
    let empty = BTreeMap::new();
    let model = DirectRunner::new().run_schedule(
        &s.plan,
        &s.schedule,
        s.settings.get("direct").unwrap_or(&empty),
    );
    let results = runners
        .iter()
        .map(|r| {
            let settings = s.settings.get(r.name()).unwrap_or(&empty);
            let run = |schedule: &Schedule| {
                r.run_schedule(&s.plan, schedule, settings).map_err(|e| {
                    match e.downcast_ref::<ModelError>() {
                        Some(ModelError::Unsupported { feature, .. }) => {
                            format!("unsupported: {feature}")
                        }
                        _ => e.to_string(),
                    }
                })
            };
            let record = if r.name() == "direct" {
                model.as_ref().map(Clone::clone).map_err(|e| e.to_string())
            } else {
                run(&s.schedule)
            };
            let recovery = match &record {
                Ok(rec) if r.name() != "direct" => recovery_invariants(s, settings, rec, &run),
                _ => Vec::new(),
            };
            judge(s, r.name(), record, model.as_ref().ok(), recovery)
        })
        .collect();
    ScenarioResult {
        scenario: s.name.clone(),
        area: s.area.clone(),
        description: s.description.clone(),
        results,
    }
}

/// Whether memory sink `sink` claims exactly-once output on replay (an at-least-once one may
/// legitimately hold duplicates after a crash: only loss is then a violation).
fn sink_is_exactly_once(s: &Scenario, sink: &str) -> bool {
    !s.plan.pipeline.transforms.iter().any(|n| {
        matches!(
            &n.transform,
            Transform::Write { sink: spec @ SinkSpec::Memory { name, .. }, .. }
                if name == sink && !spec.guarantee().is_exactly_once()
        )
    })
}

/// The schedule without its crashes and restarts.
fn one_shot(schedule: &Schedule) -> Schedule {
    Schedule {
        steps: schedule
            .steps
            .iter()
            .filter(|st| {
                !matches!(
                    st.action,
                    Action::Crash { .. } | Action::Restart { .. } | Action::CorruptCheckpoint
                )
            })
            .cloned()
            .collect(),
    }
}

/// The schedule with every restart at `parallelism`.
fn restarts_at(schedule: &Schedule, parallelism: usize) -> Schedule {
    let mut out = schedule.clone();
    for st in &mut out.steps {
        if let Action::Restart { parallelism: p } = &mut st.action {
            *p = Some(parallelism);
        }
    }
    out
}

/// For a schedule that crashes: the committed output equals the same schedule run one-shot
/// (no loss; no duplicates unless the runner was set to at-least-once checkpoints), and so
/// does the crashed run restored at another parallelism.
fn recovery_invariants(
    s: &Scenario,
    settings: &BTreeMap<String, String>,
    crashed: &RunRecord,
    run: &dyn Fn(&Schedule) -> Result<RunRecord, String>,
) -> Vec<InvariantCheck> {
    let crashes = s
        .schedule
        .steps
        .iter()
        .any(|st| matches!(st.action, Action::Crash { .. }));
    if !crashes {
        return Vec::new();
    }
    // Duplicates are allowed when the checkpoints or the sink are at-least-once.
    let at_least_once_checkpoints = settings
        .get("checkpoint_mode")
        .is_some_and(|m| m == "at-least-once");
    let failed = |name: &'static str, e: String| InvariantCheck {
        name,
        pass: false,
        detail: format!("the comparison run failed: {e}"),
    };
    let reference = match run(&one_shot(&s.schedule)) {
        Ok(r) => r,
        Err(e) => return vec![failed("crash-recovery-equals-one-shot", e)],
    };
    // Late data in the one-shot run makes the comparison meaningless where an engine does not
    // restore its watermark (Flink restarts it from the minimum, so a row late before a crash
    // may be on time after it): the scenario's expectations judge that difference instead.
    // Rows dropped as late only after a crash stay a violation.
    let late = |r: &RunRecord| r.late_dropped.values().sum::<u64>();
    if late(&reference) > 0 {
        return Vec::new();
    }
    // Every memory sink of the pipeline, not only the compared one.
    let compare = |name: &'static str, got: &RunRecord| {
        let sinks: std::collections::BTreeSet<&String> =
            reference.sinks.keys().chain(got.sinks.keys()).collect();
        let mut passed = Vec::new();
        for sink in sinks {
            let rows = |r: &RunRecord| r.sinks.get(sink).cloned().unwrap_or_default();
            let check = verdict::recovery_equals_one_shot(
                name,
                &rows(got),
                &rows(&reference),
                at_least_once_checkpoints || !sink_is_exactly_once(s, sink),
            );
            if !check.pass {
                return InvariantCheck {
                    detail: format!("sink `{sink}`: {}", check.detail),
                    ..check
                };
            }
            passed.push(format!("`{sink}`: {}", check.detail));
        }
        InvariantCheck {
            name,
            pass: true,
            detail: passed.join("; "),
        }
    };
    let mut out = vec![compare("crash-recovery-equals-one-shot", crashed)];
    let restarted_at: Vec<Option<usize>> = s
        .schedule
        .steps
        .iter()
        .filter_map(|st| match st.action {
            Action::Restart { parallelism } => Some(parallelism),
            _ => None,
        })
        .collect();
    // Restored at another parallelism than the scenario's: 2, or 1 when it already uses 2.
    let base = settings
        .get("parallelism")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1);
    let other = if base == 2 || restarted_at.contains(&Some(2)) {
        1
    } else {
        2
    };
    if !restarted_at.is_empty() {
        out.push(match run(&restarts_at(&s.schedule, other)) {
            Ok(r) => compare("restore-at-other-parallelism-equals-one-shot", &r),
            Err(e) => failed("restore-at-other-parallelism-equals-one-shot", e),
        });
    }
    out
}

fn judge(
    s: &Scenario,
    runner: &str,
    record: Result<RunRecord, String>,
    model: Option<&RunRecord>,
    recovery: Vec<InvariantCheck>,
) -> RunnerResult {
    let expectation = expectation_for(s, runner);
    let record = match record {
        Ok(r) => r,
        Err(e) => {
            let verdict = match (e.strip_prefix("unsupported: "), &expectation) {
                (Some(f), Some((_, Expected::Unsupported(want)))) if f == *want => Verdict {
                    verdict: VerdictKind::Unsupported,
                    explanation: format!("rejected at translation: {f}"),
                },
                (Some(f), None) => Verdict {
                    verdict: VerdictKind::Unsupported,
                    explanation: format!("rejected at translation: {f}"),
                },
                (_, Some((_, Expected::Fails(want)))) if e.contains(*want) => Verdict {
                    verdict: VerdictKind::Match,
                    // The error names run-specific temporary paths: keep reports stable.
                    explanation: format!("failed as expected, with an error naming `{want}`"),
                },
                _ => Verdict {
                    verdict: VerdictKind::Violation,
                    explanation: format!("the run failed: {e}"),
                },
            };
            return RunnerResult {
                runner: runner.to_string(),
                verdict,
                output: Vec::new(),
                dropped_late: 0,
                watermarks: Vec::new(),
                invariants: Vec::new(),
                ignored_steps: Vec::new(),
            };
        }
    };
    let output = record.sinks.get(&s.sink).cloned().unwrap_or_default();
    let committed: Vec<RecordedRow> = output.iter().filter(|r| r.committed).cloned().collect();
    let mut invariants = vec![verdict::watermarks_monotone(&record.watermarks)];
    invariants.extend(recovery);
    if let Some(m) = model {
        // A runner whose expectation explains a difference (`because:`) may drop rows as late
        // by its own watermark rules (e.g. Spark's `max` policy) or stop without acting on
        // the end of input (Spark's `once`); without such an explanation neither exempts it.
        let explained = matches!(expectation, Some((Some(_), _)));
        let runner_late = record.late_dropped.values().sum::<u64>() > 0;
        if runner != "direct"
            && !(explained && (runner_late || record.input_left_open))
            && final_output_comparable(s, m)
        {
            invariants.push(verdict::final_output_equals_model(
                &committed,
                m.sinks.get(&s.sink).map(Vec::as_slice).unwrap_or(&[]),
                !sink_is_exactly_once(s, &s.sink),
            ));
        }
    }
    let broken = invariants.iter().find(|i| !i.pass);
    let verdict = match (broken, &expectation) {
        (Some(i), _) => Verdict {
            verdict: VerdictKind::Violation,
            explanation: format!("invariant {} broken: {}", i.name, i.detail),
        },
        (None, Some((_, Expected::Unsupported(f)))) => Verdict {
            verdict: VerdictKind::Violation,
            explanation: format!("expected a rejection naming `{f}`, but the run succeeded"),
        },
        (None, Some((_, Expected::Fails(f)))) => Verdict {
            verdict: VerdictKind::Violation,
            explanation: format!("expected the run to fail with `{f}`, but it succeeded"),
        },
        (None, Some((because, Expected::Rows(rows)))) => match verdict::compare(&committed, rows) {
            Some(diff) => Verdict {
                verdict: VerdictKind::Violation,
                explanation: diff,
            },
            None => match because {
                // A stated difference that is no longer there is stale: say so.
                Some(_)
                    if s.model
                        .as_deref()
                        .is_some_and(|m| verdict::compare(&committed, m).is_none()) =>
                {
                    Verdict {
                        verdict: VerdictKind::Violation,
                        explanation: "the expectation explains a difference, but the output \
                                      equals the model's: write `same-as-model`"
                            .into(),
                    }
                }
                Some(b) => Verdict {
                    verdict: VerdictKind::DivergesAsExpected,
                    explanation: b.to_string(),
                },
                None => Verdict {
                    verdict: VerdictKind::Match,
                    explanation: "equals the expected output".into(),
                },
            },
        },
        (None, None) => Verdict {
            verdict: VerdictKind::Match,
            explanation: "no expectation given; every invariant holds".into(),
        },
    };
    RunnerResult {
        runner: runner.to_string(),
        verdict,
        output,
        dropped_late: record.late_dropped.values().sum(),
        watermarks: record.watermarks,
        invariants,
        ignored_steps: record.ignored_steps,
    }
}
