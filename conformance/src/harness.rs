//! Runs scenarios on runners and judges each run.

use crate::scenario::{ExpectedRow, RunnerExpectation, Scenario};
use crate::verdict::{self, InvariantCheck, Verdict, VerdictKind};
use std::collections::BTreeMap;
use weir_model::error::ModelError;
use weir_model::io::SinkSpec;
use weir_model::transform::Transform;
use weir_model::window::{AccumulationMode, Trigger};
use weir_runner_core::io::RecordedRow;
use weir_runner_core::schedule::{Action, RunRecord, ScheduledRunner, WatermarkEvent};
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
                    sink: SinkSpec::Memory { name },
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
/// is late in the model, and every windowing uses the default trigger with discarding panes
/// (other triggers legitimately pane differently per runner).
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
    ends && nothing_late && default_panes
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
    }
}

enum Expected<'a> {
    Rows(&'a [ExpectedRow]),
    Unsupported(&'a str),
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
            let record = if r.name() == "direct" {
                model.as_ref().map(Clone::clone).map_err(|e| e.to_string())
            } else {
                r.run_schedule(
                    &s.plan,
                    &s.schedule,
                    s.settings.get(r.name()).unwrap_or(&empty),
                )
                .map_err(|e| match e.downcast_ref::<ModelError>() {
                    Some(ModelError::Unsupported { feature, .. }) => {
                        format!("unsupported: {feature}")
                    }
                    _ => e.to_string(),
                })
            };
            judge(s, r.name(), record, model.as_ref().ok())
        })
        .collect();
    ScenarioResult {
        scenario: s.name.clone(),
        area: s.area.clone(),
        description: s.description.clone(),
        results,
    }
}

fn judge(
    s: &Scenario,
    runner: &str,
    record: Result<RunRecord, String>,
    model: Option<&RunRecord>,
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
    if let Some(m) = model {
        if runner != "direct" && final_output_comparable(s, m) {
            invariants.push(verdict::final_output_equals_model(
                &committed,
                m.sinks.get(&s.sink).map(Vec::as_slice).unwrap_or(&[]),
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
        (None, Some((because, Expected::Rows(rows)))) => match verdict::compare(&committed, rows) {
            Some(diff) => Verdict {
                verdict: VerdictKind::Violation,
                explanation: diff,
            },
            None => match because {
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
