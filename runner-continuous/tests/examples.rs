//! Every example pipeline on the continuous runner gives the direct runner's final output,
//! at parallelism 1 and 2, wherever no event is late; where events are late, the output is
//! what Flink's periodic watermarks predict.

use serde_json::Value;
use std::path::{Path, PathBuf};
use weir_model::io::{SinkSpec, SourceSpec};
use weir_model::plan::Plan;
use weir_model::runner::PipelineOptions;
use weir_model::transform::Transform;
use weir_runner_continuous::ContinuousRunner;
use weir_runner_direct::DirectRunner;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example's plan with its input paths made absolute and its file sinks writing to `out`.
fn example_plan(name: &str, out: &Path) -> Plan {
    let root = workspace();
    let mut pipeline =
        weir_model::file::parse_file(&root.join(format!("examples/{name}/pipeline.yaml")))
            .expect("example loads");
    for node in &mut pipeline.transforms {
        match &mut node.transform {
            Transform::Write {
                sink: SinkSpec::Files { path, .. },
                ..
            } => {
                let file = Path::new(path.as_str()).file_name().unwrap().to_owned();
                *path = out.join(file).display().to_string();
            }
            Transform::Read {
                source: SourceSpec::Files { path, .. },
                ..
            } => *path = root.join(path.as_str()).display().to_string(),
            _ => {}
        }
    }
    weir_model::plan(&pipeline).expect("example plans")
}

/// Every output file of a run, rows sorted.
fn outputs(dir: &Path) -> Vec<(String, Vec<Value>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            let mut rows: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            rows.sort_by_key(|v| v.to_string());
            (f.file_name().unwrap().to_string_lossy().into_owned(), rows)
        })
        .collect()
}

fn direct_outputs(name: &str) -> Vec<(String, Vec<Value>)> {
    let out = tempfile::tempdir().unwrap();
    DirectRunner::new()
        .execute(
            &example_plan(name, out.path()),
            &PipelineOptions::for_runner("direct"),
        )
        .expect("direct run");
    outputs(out.path())
}

fn continuous_outputs(name: &str, args: &[&str]) -> Vec<(String, Vec<Value>)> {
    let out = tempfile::tempdir().unwrap();
    let mut all = vec!["weir", "--runner", "continuous"];
    all.extend_from_slice(args);
    let options = PipelineOptions::from_args(all).unwrap();
    ContinuousRunner::new()
        .execute(&example_plan(name, out.path()), &options)
        .expect("continuous run");
    outputs(out.path())
}

/// Examples without late events: the final output equals the direct runner's whatever the
/// parallelism and however the watermark advances.
#[test]
fn examples_without_late_events_match_the_direct_runner_at_parallelism_1_and_2() {
    for name in ["word_count", "user_sessions", "dedup_orders"] {
        let expected = direct_outputs(name);
        assert!(!expected.is_empty());
        for p in ["1", "2"] {
            for mode in [&["--set", "clock=wall"][..], &["--set", "clock=manual"][..]] {
                let mut args = vec!["--parallelism", p];
                args.extend_from_slice(mode);
                assert_eq!(
                    continuous_outputs(name, &args),
                    expected,
                    "{name} at parallelism {p} with {mode:?}"
                );
            }
        }
    }
}

/// clicks_per_user has late clicks. With a watermark after every record (deterministic mode,
/// one record per poll, the clock advancing one watermark interval per poll) Flink's
/// `max − D − 1` watermark and its `wm >= end − 1` firing give exactly the Beam model's
/// panes: the same ON_TIME panes, bob's LATE re-firing, the same three late clicks.
#[test]
fn clicks_per_user_with_a_watermark_per_record_matches_the_direct_runner() {
    let expected = direct_outputs("clicks_per_user");
    for p in ["1", "2"] {
        assert_eq!(
            continuous_outputs(
                "clicks_per_user",
                &["--parallelism", p, "--set", "clock=manual"]
            ),
            expected,
            "parallelism {p}"
        );
    }
}

/// When the whole file is read before the first periodic watermark (here: a manual clock
/// that never advances), Flink emits only the final watermark: no click is late, every
/// window fires once, ON_TIME, with all its clicks, and the late output is empty. This is
/// where the continuous runner legitimately differs from the per-element direct runner.
#[test]
fn clicks_per_user_read_within_one_watermark_interval_has_no_late_clicks() {
    let got = continuous_outputs(
        "clicks_per_user",
        &[
            "--parallelism",
            "2",
            "--set",
            "clock=manual",
            "--set",
            "manual_tick=0",
        ],
    );
    let (late_name, late) = &got[1];
    assert_eq!(late_name, "late.jsonl");
    assert!(late.is_empty(), "{late:?}");
    let (_, counts) = &got[0];
    assert!(counts.iter().all(|r| r["pane_timing"] == "ON_TIME"));
    let bob: Vec<i64> = counts
        .iter()
        .filter(|r| r["user"] == "bob")
        .map(|r| r["clicks"].as_i64().unwrap())
        .collect();
    // bob's four clicks of 10:00 (one of them 10:00:50, once too late) in one pane.
    assert_eq!(bob, vec![4]);
    let total: i64 = counts.iter().map(|r| r["clicks"].as_i64().unwrap()).sum();
    assert_eq!(total, 13, "every click counted once");
}

/// Checkpointing (aligned barriers, two-phase-commit file sinks) does not change any
/// example's output: with a watermark after every record, each equals the direct runner's.
#[test]
fn every_example_with_checkpoints_matches_the_direct_runner() {
    for name in [
        "word_count",
        "user_sessions",
        "dedup_orders",
        "clicks_per_user",
    ] {
        let expected = direct_outputs(name);
        for p in ["1", "2"] {
            let dir = tempfile::tempdir().unwrap();
            let got = continuous_outputs(
                name,
                &[
                    "--parallelism",
                    p,
                    "--set",
                    "clock=manual",
                    "--checkpoint-dir",
                    dir.path().to_str().unwrap(),
                    "--checkpoint-interval",
                    "400ms",
                ],
            );
            assert_eq!(got, expected, "{name} at parallelism {p}");
            let completed = std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| e.as_ref().unwrap().path().join("_metadata").exists())
                .count();
            assert!(completed > 0, "{name}: checkpoints completed");
        }
    }
}

/// A transform at its own parallelism (a rebalance before it, another exchange after).
#[test]
fn word_count_with_per_transform_parallelism_matches_the_direct_runner() {
    let expected = direct_outputs("word_count");
    let got = continuous_outputs(
        "word_count",
        &[
            "--parallelism",
            "2",
            "--set",
            "parallelism.SplitWords=1",
            "--set",
            "parallelism.CountWords=3",
        ],
    );
    assert_eq!(got, expected);
}

/// A source that generates on the wall clock from an epoch-scale base time would wait
/// billions of manual-clock polls for its first event: refused before the run starts, naming
/// the transform. From base time 0 the manual clock reaches its events and the run ends.
#[test]
fn a_wall_clock_source_the_manual_clock_cannot_reach_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let pipeline = |base_time: i64| {
        let text = format!(
            r#"
name: realtime_bids
pipeline:
  transforms:
    - type: ReadFromNexmark
      name: Bid
      config: {{table: bid, events: 100, rate: 1000, base_time: {base_time}, realtime: true}}
    - {{type: WriteToJson, name: Write, input: Bid, config: {{path: {}}}}}
"#,
            out.path().join("bids.jsonl").display()
        );
        weir_model::plan::plan(&weir_model::file::parse_str(&text, "p.yaml").unwrap())
            .expect("plans")
    };
    // Run on a thread with a deadline: the old behaviour was to wait forever.
    let run = |plan: Plan| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let options = PipelineOptions::from_args([
                "weir",
                "--runner",
                "continuous",
                "--set",
                "clock=manual",
            ])
            .unwrap();
            let _ = tx.send(
                ContinuousRunner::new()
                    .execute(&plan, &options)
                    .map(|_| ())
                    .map_err(|e| format!("{e:#}")),
            );
        });
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("the run ends or is refused within a minute")
    };
    let err = run(pipeline(1_700_000_000_000)).expect_err("refused");
    assert!(
        err.contains("`Bid`") && err.contains("realtime") && err.contains("clock=manual"),
        "{err}"
    );
    run(pipeline(0)).expect("from base time 0 the manual clock reaches every event");
    let written = std::fs::read_to_string(out.path().join("bids.jsonl")).unwrap();
    assert_eq!(written.lines().count(), 92, "46 bids in every 50 events");
}
