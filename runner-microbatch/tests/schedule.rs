//! Scheduled runs (`ScheduledRunner`): trigger ticks on a manual clock, the watermark lagging
//! one batch, crashes at the runner's stop points and restarts from the run's checkpoint.

mod common;

use common::*;
use std::collections::BTreeMap;
use weir_model::pipeline::Pipeline;
use weir_model::time::{Timestamp, MAX_TIMESTAMP};
use weir_model::udf::Row;
use weir_model::Plan;
use weir_runner_core::io::RecordedRow;
use weir_runner_core::schedule::{Action, CrashPoint, RunRecord, Schedule, ScheduledRunner, Step};
use weir_runner_direct::DirectRunner;
use weir_runner_microbatch::MicroBatchRunner;

fn deliver(at: Timestamp, rows: Vec<Row>) -> Step {
    deliver_to(at, 0, rows)
}

fn deliver_to(at: Timestamp, partition: u32, rows: Vec<Row>) -> Step {
    Step {
        at,
        action: Action::Deliver {
            source: "In".into(),
            partition,
            rows,
        },
    }
}

fn end(at: Timestamp) -> Step {
    Step {
        at,
        action: Action::EndInput { source: None },
    }
}

fn crash(at: Timestamp, point: CrashPoint) -> Step {
    Step {
        at,
        action: Action::Crash { point },
    }
}

fn restart(at: Timestamp, parallelism: Option<usize>) -> Step {
    Step {
        at,
        action: Action::Restart { parallelism },
    }
}

fn settings(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run(plan: &Plan, steps: Vec<Step>, kv: &[(&str, &str)]) -> RunRecord {
    MicroBatchRunner::new()
        .run_schedule(plan, &Schedule { steps }, &settings(kv))
        .unwrap()
}

/// (k, n, window start, window end, visible at) of committed rows, sorted.
fn committed(rows: &[RecordedRow]) -> Vec<(String, i64, i64, i64, Timestamp)> {
    let mut out: Vec<_> = rows
        .iter()
        .filter(|r| r.committed)
        .map(|r| {
            (
                r.row["k"].as_str().unwrap().to_string(),
                r.row["n"].as_i64().unwrap(),
                r.meta.window.start,
                r.meta.window.end,
                r.visible_at,
            )
        })
        .collect();
    out.sort();
    out
}

/// Committed rows without visibility times.
fn results(rows: &[RecordedRow]) -> Vec<(String, i64, i64, i64)> {
    committed(rows)
        .into_iter()
        .map(|(k, n, s, e, _)| (k, n, s, e))
        .collect()
}

fn out(record: &RunRecord) -> &[RecordedRow] {
    record.sinks.get("out").map(Vec::as_slice).unwrap_or(&[])
}

fn plan() -> Plan {
    // The memory source name is irrelevant: the schedule feeds the `Read` called `In`.
    windowed_count("unused-by-scheduled-runs", 0, fixed(10_000))
}

/// One batch per second: a@5s, then a@12s, then a@8s. Batch 2 runs with watermark 12 s (its
/// own, computed at the end of batch 1) but filters late rows with batch 1's, 5 s.
fn lagging_steps() -> Vec<Step> {
    vec![
        deliver(0, vec![row("a", 5_000)]),
        deliver(1_000, vec![row("a", 12_000)]),
        deliver(2_000, vec![row("a", 8_000)]),
        end(3_000),
    ]
}

fn k(s: &str) -> String {
    s.to_string()
}

#[test]
fn a_row_late_by_the_current_watermark_but_not_the_previous_batchs_is_kept() {
    let record = run(&plan(), lagging_steps(), &[("trigger", "1s")]);
    assert_eq!(
        committed(out(&record)),
        vec![
            (k("a"), 1, 10_000, 20_000, 3_000),
            // Counted with a@8s, which the model drops as late (its watermark is already 12 s).
            (k("a"), 2, 0, 10_000, 2_000),
        ]
    );
    assert!(record.late_dropped.is_empty(), "{:?}", record.late_dropped);
    let model = DirectRunner::new()
        .run_schedule(
            &plan(),
            &Schedule {
                steps: lagging_steps(),
            },
            &BTreeMap::new(),
        )
        .unwrap();
    assert_eq!(
        results(model.sinks.get("out").unwrap()),
        vec![(k("a"), 1, 0, 10_000), (k("a"), 1, 10_000, 20_000)]
    );
    // Watermark changes at batch ends: the operator's and the global one, then the maximum
    // of the end-of-input batch.
    let events: Vec<(Timestamp, &str, Timestamp)> = record
        .watermarks
        .iter()
        .map(|e| (e.processing_time, e.node.as_str(), e.watermark))
        .collect();
    assert_eq!(
        events,
        vec![
            (0, "Times", 5_000),
            (0, "global", 5_000),
            (1_000, "Times", 12_000),
            (1_000, "global", 12_000),
            (3_000, "global", MAX_TIMESTAMP),
        ]
    );
}

#[test]
fn a_processing_time_trigger_gates_when_rows_become_visible() {
    let steps = || {
        vec![
            deliver(200, vec![row("a", 1_000)]),
            deliver(1_300, vec![row("a", 15_000)]),
            end(2_500),
        ]
    };
    // Ticks at 0, 1 s, 2 s, ...: data at 1 s and 2 s; the no-data batch closing [0, 10 s) at
    // 3 s; the end-of-input batch at 4 s.
    let per_second = run(&plan(), steps(), &[("trigger", "1s")]);
    assert_eq!(
        committed(out(&per_second)),
        vec![
            (k("a"), 1, 0, 10_000, 3_000),
            (k("a"), 1, 10_000, 20_000, 4_000)
        ]
    );
    // Back to back (Spark's default trigger): everything runs at the instant of the step.
    let asap = run(&plan(), steps(), &[]);
    assert_eq!(
        committed(out(&asap)),
        vec![
            (k("a"), 1, 0, 10_000, 1_300),
            (k("a"), 1, 10_000, 20_000, 2_500)
        ]
    );
    // Without no-data batches, [0, 10 s) waits for the next batch: the end of input.
    let no_data_off = run(
        &plan(),
        steps(),
        &[("trigger", "1s"), ("no_data_batches", "false")],
    );
    assert_eq!(
        committed(out(&no_data_off)),
        vec![
            (k("a"), 1, 0, 10_000, 3_000),
            (k("a"), 1, 10_000, 20_000, 3_000)
        ]
    );
}

/// The exactly-once scenarios' schedule: batches every 500 ms, so the crash at 1.5 s hits
/// the no-data batch that closes [0, 10 s).
fn crash_steps(point: CrashPoint, parallelism: Option<usize>) -> Vec<Step> {
    vec![
        deliver(0, vec![row("a", 1_000), row("b", 2_000)]),
        deliver(1_000, vec![row("a", 11_000)]),
        crash(1_500, point),
        restart(2_000, parallelism),
        deliver(3_000, vec![row("b", 12_000)]),
        end(4_000),
    ]
}

fn without_crashes(steps: Vec<Step>) -> Vec<Step> {
    steps
        .into_iter()
        .filter(|s| !matches!(s.action, Action::Crash { .. } | Action::Restart { .. }))
        .collect()
}

#[test]
fn a_crash_after_the_sink_write_and_a_restart_commit_each_row_exactly_once() {
    let steps = crash_steps(CrashPoint::AfterSinkWriteBeforeCommitLog, None);
    let crashed = run(&plan(), steps.clone(), &[("trigger", "500ms")]);
    let one_shot = run(&plan(), without_crashes(steps), &[("trigger", "500ms")]);
    assert!(
        crashed.ignored_steps.is_empty(),
        "{:?}",
        crashed.ignored_steps
    );
    assert_eq!(committed(out(&crashed)), committed(out(&one_shot)));
    // The sink committed batch 3 before the crash; the re-run skipped it: no duplicates and
    // nothing left uncommitted.
    assert_eq!(out(&crashed).len(), 4);
    assert!(out(&crashed).iter().all(|r| r.committed));
    assert_eq!(
        results(out(&crashed)),
        vec![
            (k("a"), 1, 0, 10_000),
            (k("a"), 1, 10_000, 20_000),
            (k("b"), 1, 0, 10_000),
            (k("b"), 1, 10_000, 20_000)
        ]
    );
}

#[test]
fn a_mid_batch_crash_leaves_uncommitted_rows_and_the_rerun_commits_them_at_the_restart() {
    let steps = crash_steps(CrashPoint::MidBatch, None);
    let crashed = run(&plan(), steps.clone(), &[("trigger", "500ms")]);
    let one_shot = run(&plan(), without_crashes(steps), &[("trigger", "500ms")]);
    // Panes of one window come out in no particular key order.
    let mut uncommitted: Vec<(String, Timestamp)> = out(&crashed)
        .iter()
        .filter(|r| !r.committed)
        .map(|r| (r.row["k"].as_str().unwrap().to_string(), r.visible_at))
        .collect();
    uncommitted.sort();
    assert_eq!(uncommitted, vec![(k("a"), 1_500), (k("b"), 1_500)]);
    assert_eq!(results(out(&crashed)), results(out(&one_shot)));
    // The re-run batch keeps its logged timestamp, but its rows became visible at the restart.
    assert_eq!(
        committed(out(&crashed))
            .iter()
            .filter(|r| r.2 == 0)
            .map(|r| r.4)
            .collect::<Vec<_>>(),
        vec![2_000, 2_000]
    );
}

#[test]
fn a_restart_at_another_parallelism_gives_the_uninterrupted_output() {
    for (before, after) in [("1", 2), ("2", 1), ("1", 3)] {
        let steps = crash_steps(CrashPoint::AfterSinkWriteBeforeCommitLog, Some(after));
        let crashed = run(
            &plan(),
            steps.clone(),
            &[("trigger", "500ms"), ("parallelism", before)],
        );
        let one_shot = run(&plan(), without_crashes(steps), &[("trigger", "500ms")]);
        assert_eq!(
            committed(out(&crashed)),
            committed(out(&one_shot)),
            "parallelism {before} -> {after}"
        );
        assert!(out(&crashed).iter().all(|r| r.committed));
    }
}

#[test]
fn after_records_crashes_in_the_batch_processing_that_record() {
    let mut p = Pipeline::new();
    p.add("In", vec![], read("unused-by-scheduled-runs"));
    p.add("Out", vec!["In".into()], write("out"));
    let plan = weir_model::plan(&p).unwrap();
    let steps = vec![
        deliver(0, vec![row("a", 1), row("b", 2)]),
        crash(100, CrashPoint::AfterRecords(3)),
        deliver(1_000, vec![row("c", 3), row("d", 4)]),
        restart(2_000, None),
        end(3_000),
    ];
    let record = run(&plan, steps, &[]);
    let rows: Vec<(String, bool, Timestamp)> = out(&record)
        .iter()
        .map(|r| {
            (
                r.row["k"].as_str().unwrap().to_string(),
                r.committed,
                r.visible_at,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (k("a"), true, 0),
            (k("b"), true, 0),
            // Record 3 is in the batch at 1 s: it stopped mid-batch, its rows uncommitted.
            (k("c"), false, 1_000),
            (k("d"), false, 1_000),
            (k("c"), true, 2_000),
            (k("d"), true, 2_000),
        ]
    );
    // Already past: the process dies at once, between batches.
    let steps = vec![
        deliver(0, vec![row("a", 1), row("b", 2)]),
        crash(100, CrashPoint::AfterRecords(1)),
        deliver(1_000, vec![row("c", 3)]),
        restart(2_000, None),
    ];
    let record = run(&plan, steps, &[]);
    let rows: Vec<(String, bool, Timestamp)> = out(&record)
        .iter()
        .map(|r| {
            (
                r.row["k"].as_str().unwrap().to_string(),
                r.committed,
                r.visible_at,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![(k("a"), true, 0), (k("b"), true, 0), (k("c"), true, 2_000)]
    );
}

#[test]
fn continuous_only_crash_points_are_listed_as_ignored() {
    for point in [
        CrashPoint::BetweenPreCommitAndCommit,
        CrashPoint::DuringSnapshot,
    ] {
        let steps = crash_steps(point, None);
        let record = run(&plan(), steps.clone(), &[("trigger", "500ms")]);
        assert_eq!(record.ignored_steps.len(), 1, "{:?}", record.ignored_steps);
        assert!(
            record.ignored_steps[0].contains("has no such point"),
            "{}",
            record.ignored_steps[0]
        );
        let one_shot = run(&plan(), without_crashes(steps), &[("trigger", "500ms")]);
        assert_eq!(committed(out(&record)), committed(out(&one_shot)));
    }
}

#[test]
fn a_crash_that_no_batch_reaches_before_the_restart_is_listed_as_ignored() {
    // Back to back, everything ran at 1 s: nothing runs between the crash and the restart.
    let record = run(&plan(), crash_steps(CrashPoint::MidBatch, None), &[]);
    assert_eq!(record.ignored_steps.len(), 1);
    assert!(
        record.ignored_steps[0].contains("never fired"),
        "{}",
        record.ignored_steps[0]
    );
}

#[test]
fn available_now_and_once_launch_the_query_at_each_instant() {
    let steps = || {
        vec![
            deliver(0, vec![row("a", 1_000), row("a", 15_000)]),
            end(1_000),
        ]
    };
    let available_now = run(&plan(), steps(), &[("trigger", "available-now")]);
    assert_eq!(
        committed(out(&available_now)),
        vec![
            (k("a"), 1, 0, 10_000, 0),
            (k("a"), 1, 10_000, 20_000, 1_000)
        ]
    );
    // One batch per launch, never the end-of-input batch: the last window stays open.
    let once = run(&plan(), steps(), &[("trigger", "once")]);
    assert_eq!(committed(out(&once)), vec![(k("a"), 1, 0, 10_000, 1_000)]);
    assert!(available_now.ignored_steps.is_empty());
    assert_eq!(once.ignored_steps.len(), 1);
    assert!(
        once.ignored_steps[0].contains("never runs the end-of-input batch"),
        "{}",
        once.ignored_steps[0]
    );
}

#[test]
fn partitions_are_read_in_one_batch_and_the_watermark_is_their_maximum() {
    let steps = vec![
        deliver_to(0, 0, vec![row("a", 1_000)]),
        deliver_to(0, 1, vec![row("b", 2_000)]),
        deliver_to(1_000, 0, vec![row("a", 15_000)]),
        end(10_000),
    ];
    let record = run(&plan(), steps, &[]);
    // Spark's watermark is the maximum event time over all partitions: [0, 10 s) closes at 1 s,
    // while the model's minimum over partitions holds it until the input ends.
    assert_eq!(
        committed(out(&record)),
        vec![
            (k("a"), 1, 0, 10_000, 1_000),
            (k("a"), 1, 10_000, 20_000, 10_000),
            (k("b"), 1, 0, 10_000, 1_000)
        ]
    );
}

#[test]
fn unknown_settings_and_bad_values_are_refused_by_name() {
    let schedule = Schedule {
        steps: lagging_steps(),
    };
    let err = MicroBatchRunner::new()
        .run_schedule(&plan(), &schedule, &settings(&[("bundle_size", "3")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bundle_size"), "{err}");
    let err = MicroBatchRunner::new()
        .run_schedule(&plan(), &schedule, &settings(&[("trigger", "sometimes")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("trigger"), "{err}");
}

#[cfg(feature = "mutations")]
#[test]
fn the_late_filter_mutation_changes_the_output() {
    use weir_runner_microbatch::Mutation;
    let mutated = MicroBatchRunner::new()
        .with_mutation(Mutation::LateFilterUsesCurrentWatermark)
        .run_schedule(
            &plan(),
            &Schedule {
                steps: lagging_steps(),
            },
            &settings(&[("trigger", "1s")]),
        )
        .unwrap();
    // With batch 2's own watermark (12 s), a@8s is dropped as late.
    assert_eq!(
        results(out(&mutated)),
        vec![(k("a"), 1, 0, 10_000), (k("a"), 1, 10_000, 20_000)]
    );
    assert_eq!(mutated.late_dropped.get("Count"), Some(&1));
    let correct = run(&plan(), lagging_steps(), &[("trigger", "1s")]);
    assert_ne!(results(out(&mutated)), results(out(&correct)));
}
