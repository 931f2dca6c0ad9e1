//! The `weir` command as a user runs it: exit codes, messages naming file/line/column and
//! fields, plans that re-plan to identical bytes.

use std::path::Path;
use std::process::{Command, Output};

fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .output()
        .expect("weir runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn every_example_validates() {
    for ex in [
        "word_count",
        "clicks_per_user",
        "user_sessions",
        "dedup_orders",
    ] {
        let o = weir(&["validate", &format!("examples/{ex}/pipeline.yaml")]);
        assert!(o.status.success(), "{ex}: {}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("valid"));
    }
}

#[test]
fn a_json_plan_plans_again_to_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let first = weir(&[
        "plan",
        "examples/clicks_per_user/pipeline.yaml",
        "--format",
        "json",
    ]);
    assert!(first.status.success(), "{}", stderr(&first));
    let plan_file = dir.path().join("plan.json");
    std::fs::write(&plan_file, &first.stdout).unwrap();
    let second = weir(&["plan", plan_file.to_str().unwrap(), "--format", "json"]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(first.stdout, second.stdout);
}

#[test]
fn text_plan_shows_schemas_and_windowing_per_collection() {
    let o = weir(&[
        "plan",
        "examples/clicks_per_user/pipeline.yaml",
        "--format",
        "text",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("CountClicks [Combine] <- PerMinute"),
        "{text}"
    );
    assert!(
        text.contains("CountClicks: (user: string, clicks: int64)"),
        "{text}"
    );
    assert!(
        text.contains("fixed(1m), allowed lateness 10s, late data -> .late"),
        "{text}"
    );
}

#[test]
fn a_malformed_pipeline_file_is_refused_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let unknown_type = write(
        dir.path(),
        "unknown.yaml",
        "pipeline:\n  transforms:\n    - type: Create\n      config:\n        elements: [{a: 1}]\n    - type: Frobnicate\n      input: Create\n",
    );
    let o = weir(&["validate", &unknown_type]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains(&format!("{unknown_type}:6:")), "{err}");
    assert!(err.contains("Frobnicate"), "{err}");

    let bad_duration = write(
        dir.path(),
        "duration.yaml",
        "pipeline:\n  type: chain\n  transforms:\n    - type: Create\n      config:\n        elements: [{a: 1}]\n    - type: WindowInto\n      config:\n        windowing:\n          type: fixed\n          size: ten minutes\n",
    );
    let o = weir(&["validate", &bad_duration]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{bad_duration}:11:")) && err.contains("size"),
        "{err}"
    );

    let missing = write(
        dir.path(),
        "missing.yaml",
        "pipeline:\n  type: chain\n  transforms:\n    - type: ReadFromJson\n      config:\n        schema: {a: int}\n",
    );
    let o = weir(&["validate", &missing]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{missing}:")) && err.contains("path"),
        "{err}"
    );
}

#[test]
fn an_unknown_column_names_the_transform_and_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "column.yaml",
        "pipeline:\n  type: chain\n  transforms:\n    - type: Create\n      config:\n        elements: [{a: 1}]\n    - type: Filter\n      name: KeepBig\n      config:\n        keep: \"b > 1\"\n",
    );
    let o = weir(&["validate", &f]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("KeepBig") && err.contains("`b`"), "{err}");
}

#[test]
fn a_malformed_record_fails_the_run_with_file_line_and_field_under_the_fail_policy() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "in.jsonl", "{\"n\": 1}\n{\"n\": \"two\"}\n");
    let f = write(
        dir.path(),
        "fail.yaml",
        &format!("pipeline:\n  type: chain\n  transforms:\n    - type: ReadFromJson\n      config:\n        path: {data}\n        schema: {{n: int64}}\n    - type: LogForTesting\n"),
    );
    let o = weir(&["run", &f]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{data}:2")) && err.contains("`n`"),
        "{err}"
    );
}

#[test]
fn runners_that_are_not_built_are_refused_by_name() {
    let o = weir(&[
        "run",
        "examples/word_count/pipeline.yaml",
        "--runner",
        "flink",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("flink"), "{}", stderr(&o));
    let o = weir(&[
        "run",
        "examples/word_count/pipeline.yaml",
        "--set",
        "colour=blue",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("colour"), "{}", stderr(&o));
}

#[test]
fn runners_prints_the_capability_matrix_with_scenario_links() {
    let o = weir(&["runners", "--format", "markdown"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("| | feature | direct | microbatch | continuous |"),
        "{text}"
    );
    // A claim links to the scenarios that exercise it; a refusal links nothing.
    let sessions = text
        .lines()
        .find(|l| l.contains("| merging-windows |"))
        .unwrap();
    assert!(
        sessions.contains("| Yes [") && sessions.contains("][s"),
        "{sessions}"
    );
    let idle = text
        .lines()
        .find(|l| l.contains("| idle-timeout |"))
        .unwrap();
    assert!(idle.contains("| No<sup>"), "{idle}");
    assert!(text.contains("[s1]: conformance/scenarios/"), "{text}");
}

#[test]
fn word_count_quick_start_prints_its_counts() {
    let o = weir(&["run", "examples/word_count/pipeline.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.contains("\"word\":\"weir\"") && l.contains("\"count\":4")),
        "{out}"
    );
}
