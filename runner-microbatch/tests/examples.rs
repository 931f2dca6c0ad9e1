//! Every example pipeline runs on the micro-batch runner. Where no event is late the
//! committed output equals the direct runner's; where events are late the output is the one
//! Spark's rules predict, asserted row by row.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use weir_model::io::{SinkSpec, SourceSpec};
use weir_model::runner::{PipelineOptions, Runner};
use weir_model::transform::Transform;
use weir_model::{plan, Plan};
use weir_runner_direct::DirectRunner;
use weir_runner_microbatch::MicroBatchRunner;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The example's plan with sources read from the workspace and file sinks written to `out`.
fn example(name: &str, out: &Path) -> Plan {
    let mut p =
        weir_model::file::parse_file(&root().join("examples").join(name).join("pipeline.yaml"))
            .unwrap();
    for node in &mut p.transforms {
        match &mut node.transform {
            Transform::Read {
                source: SourceSpec::Files { path, .. },
                ..
            } => {
                *path = root().join(&*path).display().to_string();
            }
            Transform::Write {
                sink: SinkSpec::Files { path, .. },
                ..
            } => {
                let file = Path::new(path.as_str()).file_name().unwrap().to_owned();
                *path = out.join(file).display().to_string();
            }
            _ => {}
        }
    }
    plan(&p).unwrap()
}

fn read_jsonl(path: PathBuf) -> Vec<Value> {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    rows.sort_by_key(|v| v.to_string());
    rows
}

fn options(args: &[&str]) -> PipelineOptions {
    let mut all = vec!["weir", "--runner", "microbatch", "--set", "progress=false"];
    all.extend_from_slice(args);
    PipelineOptions::from_args(all).unwrap()
}

/// Runs `name` on both runners; returns the two output directories.
fn both(name: &str, args: &[&str]) -> (tempfile::TempDir, tempfile::TempDir) {
    let direct = tempfile::tempdir().unwrap();
    DirectRunner::new()
        .execute(
            &example(name, direct.path()),
            &PipelineOptions::for_runner("direct"),
        )
        .unwrap();
    let micro = tempfile::tempdir().unwrap();
    MicroBatchRunner::new()
        .execute(&example(name, micro.path()), &options(args))
        .unwrap();
    (direct, micro)
}

fn assert_same_files(name: &str, files: &[&str], args: &[&str]) {
    let (direct, micro) = both(name, args);
    for f in files {
        assert_eq!(
            read_jsonl(micro.path().join(f)),
            read_jsonl(direct.path().join(f)),
            "{name}: {f} with {args:?}"
        );
    }
}

#[test]
fn word_count_gives_the_direct_runners_counts() {
    assert_same_files("word_count", &["counts.jsonl"], &[]);
    assert_same_files(
        "word_count",
        &["counts.jsonl"],
        &["--set", "max_rows_per_partition=1", "--parallelism", "2"],
    );
}

#[test]
fn user_sessions_gives_the_direct_runners_sessions() {
    assert_same_files("user_sessions", &["sessions.jsonl"], &[]);
    assert_same_files(
        "user_sessions",
        &["sessions.jsonl"],
        &["--trigger", "available-now"],
    );
}

#[test]
fn dedup_orders_gives_the_direct_runners_orders_and_dead_letters() {
    assert_same_files("dedup_orders", &["orders.jsonl", "bad_records.jsonl"], &[]);
    assert_same_files(
        "dedup_orders",
        &["orders.jsonl", "bad_records.jsonl"],
        &["--set", "max_rows_per_partition=2"],
    );
}

fn click_pane(
    user: &str,
    clicks: i64,
    minute: u32,
    timing: &str,
    index: i64,
    first: bool,
    last: bool,
) -> Value {
    json!({
        "user": user, "clicks": clicks,
        "window_start": format!("2024-05-01T10:{:02}:00.000Z", minute),
        "window_end": format!("2024-05-01T10:{:02}:00.000Z", minute + 1),
        "pane_timing": timing, "pane_index": index, "pane_is_first": first, "pane_is_last": last,
    })
}

#[test]
fn clicks_per_user_in_one_batch_has_no_late_clicks() {
    // Every click arrives in batch 0, before any watermark exists: nothing is late (Spark
    // filters late rows only once a batch with data has ended). The no-data batch that
    // follows (watermark 10:03:10) closes minutes 0-2; as each is also past its allowed
    // lateness, its one ON_TIME pane is its last. End of input closes minute 3.
    let out = tempfile::tempdir().unwrap();
    let run = MicroBatchRunner::new()
        .execute(&example("clicks_per_user", out.path()), &options(&[]))
        .unwrap();
    let mut expected = vec![
        click_pane("alice", 2, 0, "ON_TIME", 0, true, true),
        click_pane("bob", 4, 0, "ON_TIME", 0, true, true),
        click_pane("carol", 1, 0, "ON_TIME", 0, true, true),
        click_pane("alice", 1, 1, "ON_TIME", 0, true, true),
        click_pane("carol", 1, 1, "ON_TIME", 0, true, true),
        click_pane("alice", 2, 2, "ON_TIME", 0, true, true),
        click_pane("carol", 1, 2, "ON_TIME", 0, true, true),
        click_pane("alice", 1, 3, "ON_TIME", 0, true, true),
    ];
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(read_jsonl(out.path().join("counts.jsonl")), expected);
    assert_eq!(
        read_jsonl(out.path().join("late.jsonl")),
        Vec::<Value>::new()
    );
    let kinds: Vec<_> = run.progress.iter().map(|p| p.kind).collect();
    use weir_runner_microbatch::progress::BatchKind::*;
    assert_eq!(kinds, vec![Data, NoData, EndOfInput]);
}

#[test]
fn examples_run_from_the_registry_with_the_runner_trait() {
    let out = tempfile::tempdir().unwrap();
    let report = MicroBatchRunner::new()
        .run(&example("word_count", out.path()), &options(&[]))
        .unwrap();
    assert_eq!(report.rows_written.get("WriteCounts"), Some(&12));
}

#[test]
fn clicks_per_user_one_click_per_batch_drops_late_clicks_by_spark_rules() {
    // One click per batch. The watermark (max - 5 s) filters late rows one batch behind and
    // closes windows with this batch's. So bob's 10:00:58 click (batch 4) is filtered with
    // batch 3's watermark 10:00:15 and counted before minute 0 closes at 10:01:05 (the direct
    // runner, per element, sees it after the close: a LATE pane there). Bob's 10:00:50 click
    // (batch 6, filter 10:01:05 < 10:01:00 + 10 s) makes the LATE pane, and the window expires
    // in the same batch (watermark 10:01:25), so that pane is the last. The 10:00:59 and
    // 10:00:30 clicks arrive after minute 0 expired: they go to the side output.
    let out = tempfile::tempdir().unwrap();
    let args = [
        "--set",
        "max_rows_per_partition=1",
        "--trigger",
        "available-now",
    ];
    let run = MicroBatchRunner::new()
        .execute(&example("clicks_per_user", out.path()), &options(&args))
        .unwrap();
    let mut expected = vec![
        click_pane("alice", 2, 0, "ON_TIME", 0, true, false),
        click_pane("bob", 2, 0, "ON_TIME", 0, true, false),
        click_pane("bob", 1, 0, "LATE", 1, false, true),
        click_pane("alice", 1, 1, "ON_TIME", 0, true, false),
        click_pane("carol", 1, 1, "ON_TIME", 0, true, false),
        click_pane("alice", 2, 2, "ON_TIME", 0, true, true),
        click_pane("carol", 1, 2, "ON_TIME", 0, true, true),
        click_pane("alice", 1, 3, "ON_TIME", 0, true, true),
    ];
    expected.sort_by_key(|v| v.to_string());
    assert_eq!(read_jsonl(out.path().join("counts.jsonl")), expected);
    let mut late = vec![
        json!({"user": "bob", "url": "/late", "ts": "2024-05-01T10:00:59.000Z"}),
        json!({"user": "carol", "url": "/too-late", "ts": "2024-05-01T10:00:30.000Z"}),
    ];
    late.sort_by_key(|v| v.to_string());
    assert_eq!(read_jsonl(out.path().join("late.jsonl")), late);
    assert_eq!(run.report.rows_written.get("WriteLate"), Some(&2));
}

#[test]
fn progress_is_written_as_json_lines() {
    let out = tempfile::tempdir().unwrap();
    let progress = out.path().join("progress.jsonl");
    let p = progress.display().to_string();
    MicroBatchRunner::new()
        .execute(
            &example("user_sessions", out.path()),
            &options(&["--progress-json", &p]),
        )
        .unwrap();
    let lines: Vec<Value> = std::fs::read_to_string(&progress)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["batch_id"], 0);
    assert_eq!(lines[0]["num_input_rows"], 8);
    assert_eq!(lines[0]["watermark"], Value::Null);
    assert_eq!(lines[0]["next_watermark"], 1_714_557_700_000i64);
    assert_eq!(lines[1]["kind"], "no_data");
    assert_eq!(lines[1]["watermark"], 1_714_557_700_000i64);
    assert!(lines[0]["duration_ms"]["total_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(lines[0]["state_operators"][0]["name"], "Sessions");
}

/// word_count with its sink turned into a directory (restartable) and one line per batch.
fn word_count_to_directory(out: &Path) -> Plan {
    let mut p = example("word_count", out).pipeline;
    p.transforms.retain(|n| n.name != "Show");
    for node in &mut p.transforms {
        if let Transform::Write {
            sink: SinkSpec::Files { path, .. },
            ..
        } = &mut node.transform
        {
            *path = out.join("counts").display().to_string();
        }
    }
    plan(&p).unwrap()
}

fn committed_counts(dir: &Path) -> Vec<Value> {
    let mut rows = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if !path.file_name().unwrap().to_string_lossy().starts_with('.') {
            rows.extend(
                std::fs::read_to_string(&path)
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap()),
            );
        }
    }
    rows.sort_by_key(|v| v.to_string());
    rows
}

#[test]
fn word_count_restarted_from_its_checkpoint_reads_each_line_once() {
    use weir_runner_core::io::SinkRegistry;
    use weir_runner_microbatch::{Clock, MicroBatchError, MicroBatchQuery, QueryConfig, StopPoint};
    let config = |ckpt: &Path| QueryConfig {
        checkpoint_dir: Some(ckpt.to_path_buf()),
        max_rows_per_partition: 1,
        parallelism: 2,
        ..QueryConfig::default()
    };
    let expected = {
        let out = tempfile::tempdir().unwrap();
        let plan = word_count_to_directory(out.path());
        let mut q = MicroBatchQuery::open(
            &plan,
            config(&out.path().join("ckpt")),
            Clock::Wall,
            SinkRegistry::new(),
        )
        .unwrap();
        q.run_to_completion().unwrap();
        committed_counts(&out.path().join("counts"))
    };
    assert_eq!(expected.len(), 12);
    for stop in [
        StopPoint::MidBatch(1),
        StopPoint::AfterSinkCommit(2),
        StopPoint::AfterBatches(1),
    ] {
        let out = tempfile::tempdir().unwrap();
        let plan = word_count_to_directory(out.path());
        let ckpt = out.path().join("ckpt");
        let mut q =
            MicroBatchQuery::open(&plan, config(&ckpt), Clock::Wall, SinkRegistry::new()).unwrap();
        q.stop_at(stop);
        assert!(matches!(
            q.run_to_completion(),
            Err(MicroBatchError::Stopped(_))
        ));
        drop(q);
        let mut q =
            MicroBatchQuery::open(&plan, config(&ckpt), Clock::Wall, SinkRegistry::new()).unwrap();
        q.run_to_completion().unwrap();
        assert_eq!(
            committed_counts(&out.path().join("counts")),
            expected,
            "stop at {stop}"
        );
    }
}
