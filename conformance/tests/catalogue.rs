//! The whole catalogue on every runner that implements scheduled runs: zero violations.

use std::path::Path;
use weir_conformance::{load_scenarios, run_catalogue, VerdictKind};
use weir_runner_core::schedule::ScheduledRunner;
use weir_runner_direct::DirectRunner;

#[test]
fn the_catalogue_has_no_violations() {
    let scenarios = load_scenarios(Path::new("scenarios")).expect("every scenario loads");
    assert!(scenarios.len() >= 15, "{} scenarios", scenarios.len());
    let direct = DirectRunner::new();
    let runners: Vec<&dyn ScheduledRunner> = vec![&direct];
    let results = run_catalogue(&scenarios, &runners);
    let violations: Vec<String> = results
        .iter()
        .flat_map(|s| s.results.iter().map(move |r| (s, r)))
        .filter(|(_, r)| r.verdict.verdict == VerdictKind::Violation)
        .map(|(s, r)| format!("{} on {}: {}", s.scenario, r.runner, r.verdict.explanation))
        .collect();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn a_wrong_expectation_is_reported_as_a_violation_naming_the_row() {
    let mut scenario = weir_conformance::Scenario::load(Path::new(
        "scenarios/watermarks/watermark-follows-every-event.yaml",
    ))
    .unwrap();
    // Pretend the model should have counted the late row: the harness must catch it.
    let first = &mut scenario.model.as_mut().unwrap()[0];
    first.row.insert("n".into(), serde_json::json!(2));
    let direct = DirectRunner::new();
    let result = weir_conformance::run_scenario(&scenario, &[&direct as &dyn ScheduledRunner]);
    let verdict = &result.results[0].verdict;
    assert_eq!(verdict.verdict, VerdictKind::Violation);
    assert!(
        verdict.explanation.contains("\"n\":2"),
        "{}",
        verdict.explanation
    );
}

#[test]
fn a_scenario_with_a_bad_schedule_is_refused_with_the_step_named() {
    let text = "area: x\ndescription: y\npipeline: |\n  pipeline:\n    transforms:\n      - type: ReadFromMemory\n        name: events\n        config: {name: events, schema: {a: int64}}\n      - {type: WriteToMemory, input: events, config: {name: out}}\nschedule:\n  - at: 2s\n    advance: true\n  - at: 1s\n    advance: true\n";
    let err = weir_conformance::Scenario::parse(text, Path::new("bad.yaml")).unwrap_err();
    assert!(format!("{err:#}").contains("comes after"), "{err:#}");
    let text = text.replace(
        "    advance: true\n  - at: 1s",
        "    advance: true\n    end_input: all\n  - at: 3s",
    );
    let err = weir_conformance::Scenario::parse(&text, Path::new("bad.yaml")).unwrap_err();
    assert!(format!("{err:#}").contains("schedule step 1"), "{err:#}");
}

#[test]
fn a_scenario_comparing_a_sink_the_pipeline_lacks_is_refused() {
    let text = "area: x\ndescription: y\npipeline: |\n  pipeline:\n    transforms:\n      - type: ReadFromMemory\n        name: events\n        config: {name: events, schema: {a: int64}}\n      - {type: WriteToMemory, input: events, config: {name: out}}\nschedule:\n  - at: 0s\n    advance: true\nexpect:\n  sink: outt\n  model: []\n";
    let err = weir_conformance::Scenario::parse(text, Path::new("typo.yaml")).unwrap_err();
    assert!(
        format!("{err:#}").contains("no WriteToMemory sink named `outt` (memory sinks: out)"),
        "{err:#}"
    );
}
