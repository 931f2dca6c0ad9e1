//! Cross-runner properties of the conformance suite (DESIGN.md invariants), on random inputs:
//! - random events split randomly into arrivals give the same final committed output on
//!   every runner when nothing is late;
//! - under a random crash point and restart, each runner commits what it commits one-shot.

use proptest::prelude::*;
use std::collections::BTreeMap;
use weir::core::io::RecordedRow;
use weir::core::schedule::{Action, CrashPoint, RunRecord, Schedule, ScheduledRunner, Step};
use weir::model::plan::Plan;
use weir::model::udf::Row;

/// A keyed count in 10 s windows with a bound far beyond the generated disorder, so nothing
/// is ever late.
const PIPELINE: &str = r#"
pipeline:
  type: chain
  transforms:
    - type: ReadFromMemory
      name: events
      config: {name: events, schema: {key: string, v: int64, ts: int64}}
    - type: AssignTimestamps
      config: {timestamp: ts, max_out_of_orderness: 10m}
    - type: WindowInto
      config:
        windowing: {type: fixed, size: 10s}
    - type: Combine
      name: count
      config:
        group_by: key
        combine: {n: {fn: count}, total: {value: v, fn: sum}}
    - type: WriteToMemory
      config: {name: out}
"#;

fn plan() -> Plan {
    let pipeline = weir::model::file::parse_str(PIPELINE, "properties.yaml").unwrap();
    weir::model::plan(&pipeline).unwrap()
}

fn row(key: &str, v: i64, ts: i64) -> Row {
    serde_json::json!({"key": key, "v": v, "ts": ts})
        .as_object()
        .unwrap()
        .clone()
}

/// Events (key, ts) and their split into arrivals: each arrival is (partition, how many).
fn schedule(events: &[(u8, i64)], arrivals: &[(u32, usize)]) -> Schedule {
    let mut steps = Vec::new();
    let mut rest = events;
    let mut at = 0;
    for (partition, n) in arrivals {
        if rest.is_empty() {
            break;
        }
        let (now, later) = rest.split_at((*n).min(rest.len()));
        rest = later;
        steps.push(Step {
            at,
            action: Action::Deliver {
                source: "events".into(),
                partition: *partition,
                rows: now
                    .iter()
                    .enumerate()
                    .map(|(i, (k, ts))| row(&format!("k{k}"), i as i64, *ts))
                    .collect(),
            },
        });
        at += 250;
    }
    if !rest.is_empty() {
        steps.push(Step {
            at,
            action: Action::Deliver {
                source: "events".into(),
                partition: 0,
                rows: rest
                    .iter()
                    .map(|(k, ts)| row(&format!("k{k}"), 7, *ts))
                    .collect(),
            },
        });
        at += 250;
    }
    steps.push(Step {
        at: at + 1000,
        action: Action::EndInput { source: None },
    });
    Schedule { steps }
}

/// Committed rows (data and window) as a sorted multiset.
fn committed(record: &RunRecord) -> Vec<String> {
    let mut v: Vec<String> = record
        .sinks
        .get("out")
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter(|r: &&RecordedRow| r.committed)
        .map(|r| weir::conformance::verdict::canonical(r, false, true, false))
        .collect();
    v.sort();
    v
}

fn run(r: &dyn ScheduledRunner, plan: &Plan, s: &Schedule, settings: &[(&str, &str)]) -> RunRecord {
    let settings: BTreeMap<String, String> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    r.run_schedule(plan, s, &settings)
        .unwrap_or_else(|e| panic!("{} failed: {e}", r.name()))
}

/// Settings that exercise each runner's own batching: micro-batch triggers every 500 ms,
/// continuous checkpoints every 500 ms at parallelism 2.
fn settings_for(runner: &str) -> Vec<(&'static str, &'static str)> {
    match runner {
        "microbatch" => vec![("trigger", "500ms"), ("parallelism", "2")],
        "continuous" => vec![("checkpoint_interval", "500ms"), ("parallelism", "2")],
        _ => Vec::new(),
    }
}

fn events() -> impl Strategy<Value = Vec<(u8, i64)>> {
    prop::collection::vec((0u8..3, 0i64..60_000), 1..40)
}

fn arrivals() -> impl Strategy<Value = Vec<(u32, usize)>> {
    prop::collection::vec((0u32..2, 1usize..8), 1..10)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_runner_commits_the_models_output_when_nothing_is_late(
        events in events(),
        arrivals in arrivals(),
    ) {
        let plan = plan();
        let schedule = schedule(&events, &arrivals);
        let runners = weir::scheduled_runners();
        let model = committed(&run(runners[0].as_ref(), &plan, &schedule, &[]));
        prop_assert!(!model.is_empty());
        for r in &runners[1..] {
            let got = committed(&run(r.as_ref(), &plan, &schedule, &settings_for(r.name())));
            prop_assert_eq!(&got, &model, "{} differs from the model", r.name());
        }
    }

    #[test]
    fn a_crash_and_restart_commits_what_a_one_shot_run_commits(
        events in events(),
        arrivals in arrivals(),
        crash_at in 0usize..6,
        point in 0usize..4,
        restart_parallelism in 1usize..3,
    ) {
        let plan = plan();
        let one_shot = schedule(&events, &arrivals);
        let mut crashed = one_shot.clone();
        let at = crashed.steps[crash_at.min(crashed.steps.len() - 2)].at + 100;
        let point = [
            CrashPoint::AfterSinkWriteBeforeCommitLog,
            CrashPoint::MidBatch,
            CrashPoint::BetweenPreCommitAndCommit,
            CrashPoint::DuringSnapshot,
        ][point].clone();
        let i = crashed.steps.iter().position(|s| s.at > at).unwrap_or(crashed.steps.len());
        crashed.steps.insert(i, Step { at, action: Action::Crash { point } });
        crashed.steps.insert(i + 1, Step {
            at: at + 50,
            action: Action::Restart { parallelism: Some(restart_parallelism) },
        });
        for r in &weir::scheduled_runners()[1..] {
            let settings = settings_for(r.name());
            let want = committed(&run(r.as_ref(), &plan, &one_shot, &settings));
            let got = committed(&run(r.as_ref(), &plan, &crashed, &settings));
            prop_assert_eq!(&got, &want, "{} after a crash differs from its one-shot run", r.name());
        }
    }
}

/// The mutation check: making the micro-batch runner filter late rows with the current
/// batch's watermark (instead of the previous batch's, as Spark does) must turn the scenario
/// that shows the rule into a violation.
#[test]
fn breaking_the_micro_batch_late_filter_rule_is_caught_by_a_scenario() {
    use weir::conformance::{load_scenarios, run_scenario, VerdictKind};
    use weir::microbatch::{MicroBatchRunner, Mutation};
    let scenario = &load_scenarios(std::path::Path::new(
        "conformance/scenarios/watermarks/watermark-lags-one-batch.yaml",
    ))
    .unwrap()[0];
    let honest = MicroBatchRunner::new();
    let result = run_scenario(scenario, &[&honest]);
    assert_ne!(
        result.results[0].verdict.verdict,
        VerdictKind::Violation,
        "{}",
        result.results[0].verdict.explanation
    );
    let mutant = MicroBatchRunner::new().with_mutation(Mutation::LateFilterUsesCurrentWatermark);
    let result = run_scenario(scenario, &[&mutant]);
    assert_eq!(
        result.results[0].verdict.verdict,
        VerdictKind::Violation,
        "the mutation went unnoticed: {}",
        result.results[0].verdict.explanation
    );
}

/// Every Yes, Partial and Extension in the capability matrix of a runner in the suite is
/// exercised by at least one scenario.
#[test]
fn every_capability_claim_is_exercised_by_a_scenario() {
    use weir::conformance::matrix::{unproven, Column};
    let scenarios =
        weir::conformance::load_scenarios(std::path::Path::new("conformance/scenarios")).unwrap();
    let in_suite: Vec<&str> = weir::scheduled_runners().iter().map(|r| r.name()).collect();
    let runners = weir::runners();
    let columns: Vec<Column> = runners
        .iter()
        .map(|r| Column {
            runner: r.name(),
            capabilities: r.capabilities(),
            in_suite: in_suite.contains(&r.name()),
        })
        .collect();
    assert_eq!(unproven(&columns, &scenarios), vec![]);
}
