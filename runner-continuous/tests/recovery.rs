//! Checkpoints and recovery: kill a deterministic run at each named point, restore from the
//! latest completed checkpoint, and compare the committed output with an uninterrupted run.

use serde_json::{json, Value};
use weir_model::io::{SinkMetadata, SinkSpec, SourceSpec};
use weir_model::plan::Plan;
use weir_model::runner::PipelineOptions;
use weir_model::transform::Transform;
use weir_model::udf::{Row, StateKind, StateSpec, StatefulContext, StatefulFn, TimerSpec};
use weir_model::{plan, DataType, Field, Pipeline, Schema};
use weir_runner_continuous::checkpoint::Killed;
use weir_runner_continuous::{ContinuousRun, ContinuousRunner};
use weir_runner_core::io::{MemorySource, SinkRegistry};

/// Emits `(user, count)` with the running count of the user's elements: processing an
/// element twice shows as a count too many.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct RunningCount;

#[typetag::serde]
impl StatefulFn for RunningCount {
    fn state(&self) -> Vec<StateSpec> {
        vec![StateSpec {
            name: "count".into(),
            kind: StateKind::Value,
        }]
    }
    fn timers(&self) -> Vec<TimerSpec> {
        Vec::new()
    }
    fn output_schema(&self, _input: &Schema) -> Result<Schema, String> {
        Ok(Schema::new(vec![
            Field::new("user", DataType::String),
            Field::new("count", DataType::Int64),
        ]))
    }
    fn process(&self, row: &Row, ctx: &mut dyn StatefulContext) -> Result<(), String> {
        let count = ctx.value("count").and_then(|v| v.as_i64()).unwrap_or(0) + 1;
        ctx.set_value("count", json!(count));
        ctx.emit(
            json!({"user": row["user"], "count": count})
                .as_object()
                .unwrap()
                .clone(),
        );
        Ok(())
    }
}

/// Three partitions of 40 rows over four users → running count per user → memory sink.
fn counting_plan(source: &str, sink: &str) -> Plan {
    let partitions: Vec<Vec<Row>> = (0..3)
        .map(|p| {
            (0..40)
                .map(|i| {
                    json!({"user": format!("u{}", (i + p) % 4), "n": i})
                        .as_object()
                        .unwrap()
                        .clone()
                })
                .collect()
        })
        .collect();
    MemorySource::register(source, partitions);
    let mut p = Pipeline::new();
    p.add(
        "Events",
        vec![],
        Transform::Read {
            source: SourceSpec::Memory {
                name: source.into(),
            },
            schema: Schema::new(vec![
                Field::new("user", DataType::String),
                Field::new("n", DataType::Int64),
            ]),
            bad_records: Default::default(),
        },
    );
    p.add(
        "Count",
        vec!["Events".into()],
        Transform::StatefulParDo {
            keys: vec!["user".into()],
            func: Box::new(RunningCount),
        },
    );
    p.add(
        "Out",
        vec!["Count".into()],
        Transform::Write {
            sink: SinkSpec::Memory {
                name: sink.into(),
                guarantee: None,
            },
            metadata: SinkMetadata::default(),
        },
    );
    plan(&p).unwrap()
}

fn run(
    plan: &Plan,
    sinks: &SinkRegistry,
    dir: &std::path::Path,
    args: &[&str],
) -> anyhow::Result<ContinuousRun> {
    let mut all = vec![
        "weir",
        "--runner",
        "continuous",
        "--set",
        "clock=manual",
        "--checkpoint-dir",
        dir.to_str().unwrap(),
        "--checkpoint-interval",
        "2s",
    ];
    all.extend_from_slice(args);
    ContinuousRunner::with_sinks(sinks.clone()).execute(plan, &PipelineOptions::from_args(all)?)
}

fn committed(sinks: &SinkRegistry, name: &str) -> Vec<String> {
    let mut rows: Vec<String> = sinks
        .committed_rows(name)
        .into_iter()
        .map(|r| Value::Object(r.row).to_string())
        .collect();
    rows.sort();
    rows
}

/// The committed output of an uninterrupted checkpointed run.
fn uninterrupted(test: &str, parallelism: &str) -> Vec<String> {
    let plan = counting_plan(&format!("{test}-ref-in"), "ref");
    let sinks = SinkRegistry::new();
    let dir = tempfile::tempdir().unwrap();
    let run = run(&plan, &sinks, dir.path(), &["--parallelism", parallelism]).unwrap();
    assert!(!run.checkpoints.is_empty(), "checkpoints were taken");
    MemorySource::unregister(&format!("{test}-ref-in"));
    let rows = committed(&sinks, "ref");
    assert_eq!(rows.len(), 120);
    rows
}

fn assert_killed(result: anyhow::Result<ContinuousRun>) {
    let err = result.expect_err("the kill point fires");
    assert!(err.downcast_ref::<Killed>().is_some(), "{err:#}");
}

/// Kills a run at `kill`, restores from the latest checkpoint, and returns the committed rows.
fn killed_and_restored(test: &str, mode: &str, kill: &str) -> Vec<String> {
    let source = format!("{test}-in");
    let plan = counting_plan(&source, "out");
    let sinks = SinkRegistry::new();
    let dir = tempfile::tempdir().unwrap();
    let kill = format!("kill_at={kill}");
    let common = ["--parallelism", "2", "--checkpoint-mode", mode];
    let mut args = common.to_vec();
    args.extend(["--set", &kill]);
    assert_killed(run(&plan, &sinks, dir.path(), &args));
    let mut args = common.to_vec();
    args.extend(["--set", "restore=latest"]);
    let restored = run(&plan, &sinks, dir.path(), &args).unwrap();
    assert!(restored.restored_from.is_some());
    MemorySource::unregister(&source);
    committed(&sinks, "out")
}

#[test]
fn killed_after_n_records_and_restored_commits_exactly_the_uninterrupted_output() {
    let expected = uninterrupted("after-records", "2");
    let got = killed_and_restored("after-records", "exactly-once", "after-records:30");
    assert_eq!(got, expected);
}

#[test]
fn killed_between_pre_commit_and_commit_the_restore_commits_the_pending_transaction() {
    let expected = uninterrupted("before-commit", "2");
    let got = killed_and_restored("before-commit", "exactly-once", "before-commit:1");
    assert_eq!(got, expected);
}

#[test]
fn killed_during_a_snapshot_the_restore_uses_the_previous_checkpoint() {
    let expected = uninterrupted("during-snapshot", "2");
    let got = killed_and_restored("during-snapshot", "exactly-once", "during-snapshot:2");
    assert_eq!(got, expected);
}

#[test]
fn at_least_once_with_a_shuffle_duplicates_after_a_restore() {
    // Source subtask 0 reads two splits and reaches its first barrier in half the rounds
    // subtask 1 needs: without alignment its rows after the barrier are counted into the
    // snapshot, then replayed after the restore and counted again.
    let expected = uninterrupted("at-least-once", "2");
    let got = killed_and_restored("at-least-once", "at-least-once", "after-records:30");
    assert!(
        got.len() > expected.len(),
        "{} rows committed, {} expected",
        got.len(),
        expected.len()
    );
    let max = |rows: &[String]| -> i64 {
        rows.iter()
            .map(|r| {
                serde_json::from_str::<Value>(r).unwrap()["count"]
                    .as_i64()
                    .unwrap()
            })
            .max()
            .unwrap()
    };
    assert!(
        max(&got) > max(&expected),
        "a count too many shows the duplicate"
    );
}

#[test]
fn restoring_at_parallelism_1_then_2_then_1_keeps_the_result_exact() {
    let expected = uninterrupted("rescale", "1");
    let source = "rescale-in";
    let plan = counting_plan(source, "out");
    let sinks = SinkRegistry::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_killed(run(
        &plan,
        &sinks,
        d,
        &["--parallelism", "1", "--set", "kill_at=after-records:50"],
    ));
    assert_killed(run(
        &plan,
        &sinks,
        d,
        &[
            "--parallelism",
            "2",
            "--set",
            "restore=latest",
            "--set",
            "kill_at=after-records:20",
        ],
    ));
    let last = run(
        &plan,
        &sinks,
        d,
        &["--parallelism", "1", "--set", "restore=latest"],
    )
    .unwrap();
    assert!(last.restored_from.is_some());
    MemorySource::unregister(source);
    assert_eq!(committed(&sinks, "out"), expected);
}

#[test]
fn a_pipeline_with_an_assertion_refuses_checkpointing_naming_the_transform() {
    let text = "pipeline:
  transforms:
    - {type: Create, name: In, config: {elements: [{k: a}]}}
    - {type: AssertEqual, name: Check, input: In, config: {elements: [{k: a}]}}
";
    let plan = weir_model::plan(&weir_model::file::parse_str(text, "t").unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = run(&plan, &SinkRegistry::new(), dir.path(), &[]).unwrap_err();
    assert!(
        format!("{err:#}").contains("`Check` (AssertEqual)"),
        "{err:#}"
    );
}

/// Clicks per user in 10 s windows with lateness and a late side output, from three splits.
fn windowed_plan(source: &str, delay: &str) -> Plan {
    let partitions: Vec<Vec<Row>> = (0..3)
        .map(|p| {
            (0..40)
                .map(|i| {
                    // Mostly increasing times, one in seven 25 s behind: some late, some
                    // within lateness, depending on the watermark.
                    let ts = i * 1_000 + p * 300 - if i % 7 == 3 { 25_000 } else { 0 };
                    json!({"user": format!("u{}", (i + p) % 3), "ts": ts.max(0)})
                        .as_object()
                        .unwrap()
                        .clone()
                })
                .collect()
        })
        .collect();
    MemorySource::register(source, partitions);
    let text = format!(
        "pipeline:
  transforms:
    - {{type: ReadFromMemory, name: Events, config: {{name: {source}, schema: {{user: string, ts: int64}}}}}}
    - {{type: AssignTimestamps, name: Time, input: Events, config: {{timestamp: ts, max_out_of_orderness: {delay}}}}}
    - type: WindowInto
      name: Windows
      input: Time
      config:
        windowing: {{type: fixed, size: 10s}}
        allowed_lateness: 5s
        late_data: {{output: late}}
    - {{type: Combine, name: Count, input: Windows, config: {{group_by: user, combine: {{n: {{fn: count}}}}}}}}
    - {{type: WriteToMemory, name: Out, input: Count, config: {{name: out, include_pane: true}}}}
    - {{type: WriteToMemory, name: Late, input: Count.late, config: {{name: late}}}}
"
    );
    weir_model::plan(&weir_model::file::parse_str(&text, "windowed").unwrap()).unwrap()
}

fn committed_panes(sinks: &SinkRegistry, name: &str) -> Vec<String> {
    let mut rows: Vec<String> = sinks
        .committed_rows(name)
        .into_iter()
        .map(|r| {
            format!(
                "{} {:?} {:?}",
                Value::Object(r.row),
                r.meta.window,
                r.meta.pane
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn window_state_survives_a_crash() {
    // Parallelism 1: one source subtask reads all three splits in a fixed interleaving, which
    // the restore reproduces from the splits' positions. Watermarks are not checkpointed
    // (as in Flink): after the restore each split's generator starts again from the replayed
    // rows, so an element replayed in the first poll round could be judged differently; none
    // of this scenario's late clicks falls there, so the panes and the late output are equal.
    let reference_source = "windowed-ref-in";
    let plan = windowed_plan(reference_source, "2s");
    let sinks = SinkRegistry::new();
    let dir = tempfile::tempdir().unwrap();
    run(&plan, &sinks, dir.path(), &["--parallelism", "1"]).unwrap();
    MemorySource::unregister(reference_source);
    let expected = (
        committed_panes(&sinks, "out"),
        committed_panes(&sinks, "late"),
    );
    assert!(!expected.1.is_empty(), "the scenario has late clicks");

    let source = "windowed-in";
    let plan = windowed_plan(source, "2s");
    let sinks = SinkRegistry::new();
    let dir = tempfile::tempdir().unwrap();
    assert_killed(run(
        &plan,
        &sinks,
        dir.path(),
        &["--parallelism", "1", "--set", "kill_at=after-records:70"],
    ));
    let restored = run(
        &plan,
        &sinks,
        dir.path(),
        &["--parallelism", "1", "--set", "restore=latest"],
    )
    .unwrap();
    assert!(restored.restored_from.is_some());
    MemorySource::unregister(source);
    assert_eq!(
        (
            committed_panes(&sinks, "out"),
            committed_panes(&sinks, "late")
        ),
        expected
    );
}

#[test]
fn window_state_is_redistributed_by_key_group_when_restoring_at_parallelism_2() {
    // With a 1 h bound nothing is late: every window fires once at the end, whatever the
    // parallelism, so the restored run at parallelism 2 must give the uninterrupted panes.
    let reference_source = "rescaled-windows-ref-in";
    let plan = windowed_plan(reference_source, "1h");
    let sinks = SinkRegistry::new();
    let dir = tempfile::tempdir().unwrap();
    run(&plan, &sinks, dir.path(), &["--parallelism", "1"]).unwrap();
    MemorySource::unregister(reference_source);
    let expected = committed_panes(&sinks, "out");

    let source = "rescaled-windows-in";
    let plan = windowed_plan(source, "1h");
    let sinks = SinkRegistry::new();
    let dir = tempfile::tempdir().unwrap();
    assert_killed(run(
        &plan,
        &sinks,
        dir.path(),
        &["--parallelism", "1", "--set", "kill_at=after-records:70"],
    ));
    let restored = run(
        &plan,
        &sinks,
        dir.path(),
        &["--parallelism", "2", "--set", "restore=latest"],
    )
    .unwrap();
    assert!(restored.restored_from.is_some());
    MemorySource::unregister(source);
    assert_eq!(committed_panes(&sinks, "out"), expected);
}
