//! Crash tests: for each stop point, a restart from the checkpoint gives committed output
//! identical to an uninterrupted run for exactly-once sinks; an at-least-once sink sees the
//! re-run batch twice; a damaged log entry stops the query from starting, naming the file.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use weir_runner_core::io::SinkRegistry;
use weir_runner_microbatch::state::StateStoreConfig;
use weir_runner_microbatch::{
    ManualClock, MicroBatchError, MicroBatchQuery, QueryConfig, StopPoint,
};

type Pane = (String, i64, i64, i64, String, u64, bool);

/// Batches of two rows: [a@1, a@12], [b@25, a@3]; then a no-data batch and end of input.
fn setup() -> (weir_model::Plan, String) {
    let src = unique("crash");
    source(
        &src,
        vec![vec![row("a", 1), row("a", 12), row("b", 25), row("a", 3)]],
    );
    (windowed_count(&src, 0, fixed(10)), src)
}

fn cfg(dir: &Path) -> QueryConfig {
    QueryConfig {
        checkpoint_dir: Some(dir.to_path_buf()),
        max_rows_per_partition: 2,
        end_of_input: true,
        state: StateStoreConfig {
            snapshot_every: 2,
            retain: 10,
        },
        ..config()
    }
}

fn sorted(mut v: Vec<Pane>) -> Vec<Pane> {
    v.sort();
    v
}

fn uninterrupted(plan: &weir_model::Plan) -> Vec<Pane> {
    let dir = tempfile::tempdir().unwrap();
    let sinks = SinkRegistry::new();
    let mut q = open(plan, cfg(dir.path()), &ManualClock::new(0), &sinks);
    q.run_to_completion().unwrap();
    sorted(panes(&sinks.rows("out")))
}

/// Runs until `stop`, then restarts from the checkpoint and finishes.
fn crash_and_restart(
    plan: &weir_model::Plan,
    stop: StopPoint,
    config: impl Fn(&Path) -> QueryConfig,
) -> SinkRegistry {
    crash_and_restart_with(plan, stop, &config, &config)
}

/// Runs with `before` until `stop`, then restarts with `after` from the checkpoint.
fn crash_and_restart_with(
    plan: &weir_model::Plan,
    stop: StopPoint,
    before: &dyn Fn(&Path) -> QueryConfig,
    after: &dyn Fn(&Path) -> QueryConfig,
) -> SinkRegistry {
    let dir = tempfile::tempdir().unwrap();
    let sinks = SinkRegistry::new();
    let clock = ManualClock::new(0);
    let mut q = open(plan, before(dir.path()), &clock, &sinks);
    q.stop_at(stop);
    match q.run_to_completion() {
        Err(MicroBatchError::Stopped(p)) => assert_eq!(p, stop),
        other => panic!("expected a stop at {stop}, got {other:?}"),
    }
    drop(q);
    let mut again = open(plan, after(dir.path()), &clock, &sinks);
    again.run_to_completion().unwrap();
    sinks
}

#[test]
fn the_uninterrupted_run_emits_each_window_once() {
    let (plan, _) = setup();
    assert_eq!(
        uninterrupted(&plan),
        vec![
            ("a".into(), 1, 10, 20, "ON_TIME".into(), 0, true),
            ("a".into(), 2, 0, 10, "ON_TIME".into(), 0, true),
            ("b".into(), 1, 20, 30, "ON_TIME".into(), 0, true),
        ]
    );
}

#[test]
fn every_stop_point_restarts_to_the_same_committed_output_for_an_exactly_once_sink() {
    let (plan, _) = setup();
    let expected = uninterrupted(&plan);
    for stop in [
        StopPoint::MidBatch(0),
        StopPoint::MidBatch(1),
        StopPoint::AfterSinkCommit(1),
        StopPoint::MidBatch(2),
        StopPoint::AfterSinkCommit(2),
        StopPoint::AfterSinkCommit(3),
        StopPoint::AfterBatches(1),
        StopPoint::AfterBatches(2),
    ] {
        let sinks = crash_and_restart(&plan, stop, cfg);
        assert_eq!(
            sorted(panes(&sinks.committed_rows("out"))),
            expected,
            "stop at {stop}"
        );
    }
}

#[test]
fn an_at_least_once_sink_sees_the_re_run_batch_twice() {
    let (plan, _) = setup();
    let mut expected = uninterrupted(&plan);
    // Batch 1 emitted a's [0, 10) window; it is delivered again by the re-run.
    expected.push(("a".into(), 2, 0, 10, "ON_TIME".into(), 0, true));
    let sinks = crash_and_restart(&plan, StopPoint::AfterSinkCommit(1), |d| QueryConfig {
        at_least_once_sinks: BTreeSet::from(["Out".to_string()]),
        ..cfg(d)
    });
    assert_eq!(
        sorted(panes(&sinks.committed_rows("out"))),
        sorted(expected)
    );
}

#[test]
fn a_restart_at_another_parallelism_gives_the_same_output() {
    let (plan, _) = setup();
    let expected = uninterrupted(&plan);
    let before = |d: &Path| QueryConfig {
        parallelism: 2,
        ..cfg(d)
    };
    let after = |d: &Path| QueryConfig {
        parallelism: 1,
        ..cfg(d)
    };
    let sinks = crash_and_restart_with(&plan, StopPoint::MidBatch(1), &before, &after);
    assert_eq!(sorted(panes(&sinks.committed_rows("out"))), expected);
}

#[test]
fn a_re_run_batch_keeps_its_logged_timestamp_and_watermarks() {
    let (plan, _) = setup();
    let dir = tempfile::tempdir().unwrap();
    let sinks = SinkRegistry::new();
    let clock = ManualClock::new(1_000);
    let mut q = open(&plan, cfg(dir.path()), &clock, &sinks);
    q.stop_at(StopPoint::MidBatch(1));
    q.run_next_batch().unwrap();
    clock.advance(500);
    assert!(matches!(
        q.run_next_batch(),
        Err(MicroBatchError::Stopped(_))
    ));
    drop(q);
    clock.advance(60_000);
    let mut again = open(&plan, cfg(dir.path()), &clock, &sinks);
    let b = again.run_next_batch().unwrap().unwrap();
    assert!(b.rerun);
    assert_eq!(
        (
            b.batch_id,
            b.timestamp,
            b.watermark,
            b.late_filter_watermark
        ),
        (1, 1_500, Some(12), None)
    );
    assert_eq!(b.num_input_rows, 2);
}

#[test]
fn a_finished_query_restarted_runs_nothing_more() {
    let (plan, _) = setup();
    let dir = tempfile::tempdir().unwrap();
    let sinks = SinkRegistry::new();
    let clock = ManualClock::new(0);
    open(&plan, cfg(dir.path()), &clock, &sinks)
        .run_to_completion()
        .unwrap();
    let before = sinks.rows("out").len();
    let mut again = open(&plan, cfg(dir.path()), &clock, &sinks);
    assert!(again.is_finished());
    assert!(again.run_next_batch().unwrap().is_none());
    assert_eq!(sinks.rows("out").len(), before);
}

#[test]
fn a_truncated_or_corrupted_log_entry_stops_the_query_from_starting_naming_its_path() {
    let (plan, _) = setup();
    for damaged in ["offsets/1", "commits/0"] {
        let dir = tempfile::tempdir().unwrap();
        let sinks = SinkRegistry::new();
        let clock = ManualClock::new(0);
        let mut q = open(&plan, cfg(dir.path()), &clock, &sinks);
        q.run_next_batch().unwrap();
        q.run_next_batch().unwrap();
        drop(q);
        let path = dir.path().join(damaged);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        let err = match MicroBatchQuery::open(
            &plan,
            cfg(dir.path()),
            weir_runner_microbatch::Clock::Manual(clock),
            sinks,
        ) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a damaged {damaged} must stop the query"),
        };
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
}

#[test]
fn a_corrupted_state_file_stops_the_query_from_starting_naming_its_path() {
    let (plan, _) = setup();
    let dir = tempfile::tempdir().unwrap();
    let sinks = SinkRegistry::new();
    let clock = ManualClock::new(0);
    let mut q = open(&plan, cfg(dir.path()), &clock, &sinks);
    q.run_next_batch().unwrap();
    drop(q);
    let path = dir.path().join("state/Count/1.delta");
    std::fs::write(&path, "{\"version\"").unwrap();
    let err = MicroBatchQuery::open(
        &plan,
        cfg(dir.path()),
        weir_runner_microbatch::Clock::Manual(clock),
        sinks,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
}

fn file_sink_plan(src: &str, out: &Path) -> weir_model::Plan {
    use weir_model::io::{FileFormat, SinkMetadata, SinkSpec};
    let mut p = weir_model::Pipeline::new();
    p.add("In", vec![], read(src));
    p.add("Times", vec!["In".into()], assign(0));
    p.add(
        "Win",
        vec!["Times".into()],
        weir_model::transform::Transform::WindowInto {
            windowing: fixed(10),
        },
    );
    p.add("Count", vec!["Win".into()], count_by_k());
    let sink = SinkSpec::Files {
        path: out.display().to_string(),
        format: FileFormat::JsonLines,
    };
    p.add(
        "Out",
        vec!["Count".into()],
        weir_model::transform::Transform::Write {
            sink,
            metadata: SinkMetadata::default(),
        },
    );
    weir_model::plan(&p).unwrap()
}

/// Every part file of a directory sink: name and content.
fn parts(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_directory_file_sink_commits_one_part_file_per_batch_id_across_restarts() {
    let (_, src) = setup();
    let expected = {
        let out = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let plan = file_sink_plan(&src, &out.path().join("counts"));
        open(
            &plan,
            cfg(dir.path()),
            &ManualClock::new(0),
            &SinkRegistry::new(),
        )
        .run_to_completion()
        .unwrap();
        parts(&out.path().join("counts"))
    };
    assert_eq!(
        expected.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        vec!["part-00001.json", "part-00002.json", "part-00003.json"]
    );
    for stop in [
        StopPoint::MidBatch(1),
        StopPoint::AfterSinkCommit(1),
        StopPoint::AfterSinkCommit(2),
    ] {
        let out = tempfile::tempdir().unwrap();
        let plan = file_sink_plan(&src, &out.path().join("counts"));
        crash_and_restart(&plan, stop, cfg);
        assert_eq!(
            parts(&out.path().join("counts")),
            expected,
            "stop at {stop}"
        );
    }
}

#[test]
fn restarting_with_a_single_file_sink_is_refused_rather_than_losing_output() {
    let (_, src) = setup();
    let out = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plan = file_sink_plan(&src, &out.path().join("counts.jsonl"));
    let clock = ManualClock::new(0);
    let mut q = open(&plan, cfg(dir.path()), &clock, &SinkRegistry::new());
    q.run_next_batch().unwrap();
    drop(q);
    let err = MicroBatchQuery::open(
        &plan,
        cfg(dir.path()),
        weir_runner_microbatch::Clock::Manual(clock),
        SinkRegistry::new(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("single-file sink `Out`"), "{err}");
}

#[test]
fn partitions_read_by_parallel_readers_give_one_reader_s_output_and_restart_exactly() {
    // Three partitions, two readers at parallelism 2 (partitions 0 and 2, and 1), two rows
    // per partition per batch.
    let src = unique("parallel-readers");
    source(
        &src,
        vec![
            vec![row("a", 1), row("b", 2), row("a", 11), row("c", 31)],
            vec![row("b", 3), row("c", 14), row("a", 25)],
            vec![row("c", 5), row("a", 16), row("b", 27), row("a", 38)],
        ],
    );
    let plan = windowed_count(&src, 0, fixed(10));
    let one_reader = uninterrupted(&plan);
    assert_eq!(
        one_reader.iter().map(|p| p.1).sum::<i64>(),
        11,
        "{one_reader:?}"
    );
    let two = |d: &Path| QueryConfig {
        parallelism: 2,
        ..cfg(d)
    };
    let dir = tempfile::tempdir().unwrap();
    let sinks = SinkRegistry::new();
    let mut q = open(&plan, two(dir.path()), &ManualClock::new(0), &sinks);
    q.run_to_completion().unwrap();
    assert_eq!(sorted(panes(&sinks.committed_rows("out"))), one_reader);
    for stop in [StopPoint::MidBatch(1), StopPoint::AfterSinkCommit(1)] {
        let sinks = crash_and_restart(&plan, stop, two);
        assert_eq!(
            sorted(panes(&sinks.committed_rows("out"))),
            one_reader,
            "stopped at {stop}"
        );
    }
}
