//! Scheduled runs of the continuous runner: Flink's rules on a manual clock, deterministic.

use serde_json::json;
use std::collections::BTreeMap;
use weir_model::plan::Plan;
use weir_model::udf::Row;
use weir_runner_continuous::ContinuousRunner;
use weir_runner_core::io::RecordedRow;
use weir_runner_core::schedule::{Action, CrashPoint, RunRecord, Schedule, ScheduledRunner, Step};

fn plan(yaml: &str) -> Plan {
    let pipeline = weir_model::file::parse_str(yaml, "test.yaml").expect("pipeline parses");
    weir_model::plan(&pipeline).expect("pipeline plans")
}

/// Read → AssignTimestamps(D, idle) → fixed 10 s windows → count per key → memory sink.
fn windowed_count(delay: &str, idle: Option<&str>) -> Plan {
    let idle = idle
        .map(|i| format!(", idle_timeout: {i}"))
        .unwrap_or_default();
    plan(&format!(
        r#"
pipeline:
  type: chain
  transforms:
    - type: ReadFromMemory
      name: events
      config:
        name: events
        schema: {{key: string, v: int64, ts: int64}}
    - type: AssignTimestamps
      name: event_time
      config:
        timestamp: ts
        watermark: {{max_out_of_orderness: {delay}{idle}}}
    - type: WindowInto
      name: window
      config:
        windowing: {{type: fixed, size: 10s}}
    - type: Combine
      name: count
      config:
        group_by: key
        combine: {{n: {{fn: count}}}}
    - type: WriteToMemory
      config: {{name: out}}
"#
    ))
}

fn row(key: &str, ts: i64) -> Row {
    json!({"key": key, "v": 1, "ts": ts})
        .as_object()
        .expect("object")
        .clone()
}

fn deliver(at: i64, partition: u32, rows: Vec<Row>) -> Step {
    Step {
        at,
        action: Action::Deliver {
            source: "events".into(),
            partition,
            rows,
        },
    }
}

fn step(at: i64, action: Action) -> Step {
    Step { at, action }
}

fn end(at: i64) -> Step {
    step(at, Action::EndInput { source: None })
}

fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run(plan: &Plan, steps: Vec<Step>, pairs: &[(&str, &str)]) -> RunRecord {
    ContinuousRunner::new()
        .run_schedule(plan, &Schedule { steps }, &settings(pairs))
        .expect("scheduled run succeeds")
}

fn out(record: &RunRecord) -> Vec<RecordedRow> {
    record.sinks.get("out").cloned().unwrap_or_default()
}

/// Committed rows as sorted `key n window-start` lines (a multiset).
fn committed(record: &RunRecord) -> Vec<String> {
    let mut v: Vec<String> = out(record)
        .iter()
        .filter(|r| r.committed)
        .map(|r| {
            format!(
                "{} {} [{}, {})",
                r.row["key"], r.row["n"], r.meta.window.start, r.meta.window.end
            )
        })
        .collect();
    v.sort();
    v
}

fn watermarks_of(record: &RunRecord, node: &str) -> Vec<(i64, i64)> {
    record
        .watermarks
        .iter()
        .filter(|e| e.node == node)
        .map(|e| (e.processing_time, e.watermark))
        .collect()
}

#[test]
fn the_watermark_is_max_minus_delay_minus_one_and_moves_only_at_emission_instants() {
    let p = windowed_count("1s", None);
    let steps = vec![
        deliver(0, 0, vec![row("a", 1_000)]),
        // At 300 ms the row at 11 s arrives: 11 000 − 1 000 − 1 = 9 999 closes [0, 10 s),
        // but only at the next emission instant, 400 ms.
        deliver(300, 0, vec![row("a", 11_000)]),
        step(1_000, Action::Advance),
    ];
    let record = run(&p, steps, &[]);
    assert_eq!(
        watermarks_of(&record, "event_time"),
        vec![(200, -1), (400, 9_999)]
    );
    for e in &record.watermarks {
        assert_eq!(e.processing_time % 200, 0, "{e:?}");
    }
    let rows = out(&record);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].row["n"], json!(1));
    assert_eq!(rows[0].meta.window.end, 10_000);
    assert_eq!(rows[0].visible_at, 400);

    // Another interval moves the instant.
    let steps = vec![
        deliver(0, 0, vec![row("a", 1_000)]),
        deliver(300, 0, vec![row("a", 11_000)]),
        step(1_000, Action::Advance),
    ];
    let record = run(&p, steps, &[("watermark_interval", "500ms")]);
    assert_eq!(watermarks_of(&record, "event_time"), vec![(500, 9_999)]);
    assert_eq!(out(&record)[0].visible_at, 500);
}

#[test]
fn a_window_stays_open_until_the_next_emission_so_same_instant_rows_are_on_time() {
    // The model would drop the row at 5 s as late behind the row at 12 s; Flink has emitted
    // no watermark between them.
    let p = windowed_count("0s", None);
    let steps = vec![
        deliver(0, 0, vec![row("a", 12_000), row("a", 5_000)]),
        end(1_000),
    ];
    let record = run(&p, steps, &[]);
    assert_eq!(
        committed(&record),
        vec!["\"a\" 1 [0, 10000)", "\"a\" 1 [10000, 20000)"]
    );
    assert!(record.late_dropped.is_empty(), "{:?}", record.late_dropped);
}

#[test]
fn with_checkpointing_rows_become_visible_when_the_checkpoint_completes() {
    let p = windowed_count("0s", None);
    let steps = |last: i64| {
        vec![
            deliver(0, 0, vec![row("a", 1_000), row("a", 11_000)]),
            step(last, Action::Advance),
        ]
    };
    // The window fires at 200 ms into the sink's open transaction: nothing is visible yet.
    let record = run(&p, steps(900), &[("checkpoint_interval", "1s")]);
    assert!(out(&record).is_empty(), "{:?}", out(&record));
    // Checkpoint 1 completes at 1 s: the transaction is committed then.
    let record = run(&p, steps(1_500), &[("checkpoint_interval", "1s")]);
    let rows = out(&record);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].committed);
    assert_eq!(rows[0].visible_at, 1_000);
    // The end of the input commits the final transaction.
    let steps = vec![
        deliver(0, 0, vec![row("a", 1_000), row("a", 11_000)]),
        end(1_500),
    ];
    let record = run(&p, steps, &[("checkpoint_interval", "1s")]);
    let visible: Vec<(String, i64)> = out(&record)
        .iter()
        .map(|r| (format!("{}", r.meta.window.start), r.visible_at))
        .collect();
    assert_eq!(
        visible,
        vec![("0".to_string(), 1_000), ("10000".to_string(), 1_500)]
    );
    // Without checkpointing rows are written as they fire and committed at the end.
    let steps = vec![
        deliver(0, 0, vec![row("a", 1_000), row("a", 11_000)]),
        end(1_500),
    ];
    let record = run(&p, steps, &[]);
    let visible: Vec<i64> = out(&record).iter().map(|r| r.visible_at).collect();
    assert_eq!(visible, vec![200, 1_500]);
    assert!(out(&record).iter().all(|r| r.committed));
}

/// Deliveries over several keys and windows, ending at 6 s.
fn recovery_input() -> Vec<Step> {
    let keys = ["a", "b", "c", "d", "e", "f"];
    let mut steps = vec![
        deliver(0, 0, keys.iter().map(|k| row(k, 1_000)).collect()),
        deliver(0, 1, keys.iter().map(|k| row(k, 2_000)).collect()),
        deliver(1_000, 0, keys.iter().map(|k| row(k, 11_000)).collect()),
        deliver(1_000, 1, vec![row("a", 12_000)]),
        // Closes [10 s, 20 s) at the 1.4 s emission: those rows are in the sinks' open
        // transaction when a crash at 1.5 s pre-commits it.
        deliver(1_200, 0, vec![row("a", 21_000)]),
        deliver(1_200, 1, vec![row("b", 21_000)]),
    ];
    steps.push(deliver(
        3_000,
        1,
        keys.iter().map(|k| row(k, 13_000)).collect(),
    ));
    steps.push(deliver(3_000, 0, vec![row("b", 25_000)]));
    steps.push(end(6_000));
    steps
}

fn with_failures(mut steps: Vec<Step>, failures: Vec<Step>) -> Vec<Step> {
    steps.extend(failures);
    steps.sort_by_key(|s| s.at);
    steps
}

#[test]
fn a_crash_between_pre_commit_and_commit_then_a_restart_loses_and_duplicates_nothing() {
    let p = windowed_count("0s", None);
    let cfg = [("checkpoint_interval", "1s")];
    let reference = run(&p, recovery_input(), &cfg);
    assert!(!committed(&reference).is_empty());
    let steps = with_failures(
        recovery_input(),
        vec![
            step(
                1_500,
                Action::Crash {
                    point: CrashPoint::BetweenPreCommitAndCommit,
                },
            ),
            step(2_000, Action::Restart { parallelism: None }),
        ],
    );
    let record = run(&p, steps, &cfg);
    assert_eq!(committed(&record), committed(&reference));
    assert!(
        record.ignored_steps.is_empty(),
        "{:?}",
        record.ignored_steps
    );
    // Checkpoint 1 (at 1 s) committed the first windows; the transaction pre-committed by
    // the failed checkpoint at 1.5 s was never committed, and nothing is committed twice.
    // [10 s, 20 s) fired at 1.4 s into the transaction the failed checkpoint pre-committed;
    // it was aborted, the rows were replayed and fired again, and committed exactly once.
    let second_windows: Vec<i64> = out(&record)
        .iter()
        .filter(|r| r.meta.window.start == 10_000)
        .map(|r| r.visible_at)
        .collect();
    assert_eq!(second_windows, vec![2_000; 6]);
    assert!(out(&record).iter().all(|r| r.committed));
    let first_windows = out(&record)
        .iter()
        .filter(|r| r.meta.window.start == 0 && r.committed)
        .count();
    assert_eq!(first_windows, 6);
    assert!(out(&record)
        .iter()
        .filter(|r| r.meta.window.start == 0)
        .all(|r| r.visible_at == 1_000));
}

#[test]
fn crashes_and_restores_at_parallelism_one_two_one_give_the_uninterrupted_output() {
    let p = windowed_count("0s", None);
    let cfg = [("checkpoint_interval", "1s")];
    let reference = run(&p, recovery_input(), &cfg);
    let steps = with_failures(
        recovery_input(),
        vec![
            step(
                1_500,
                Action::Crash {
                    point: CrashPoint::DuringSnapshot,
                },
            ),
            step(
                2_000,
                Action::Restart {
                    parallelism: Some(2),
                },
            ),
            step(
                3_000,
                Action::Crash {
                    point: CrashPoint::AfterRecords(1_000),
                },
            ),
            step(
                3_500,
                Action::Crash {
                    point: CrashPoint::BetweenPreCommitAndCommit,
                },
            ),
            step(
                4_000,
                Action::Restart {
                    parallelism: Some(1),
                },
            ),
        ],
    );
    let record = run(&p, steps, &cfg);
    assert_eq!(committed(&record), committed(&reference));
    // Parallelism 2 from the start gives the same output too.
    let record = run(
        &p,
        recovery_input(),
        &[("checkpoint_interval", "1s"), ("parallelism", "2")],
    );
    assert_eq!(committed(&record), committed(&reference));
}

#[test]
fn after_records_crashes_once_that_many_records_were_read() {
    let p = windowed_count("0s", None);
    let cfg = [("checkpoint_interval", "1s")];
    let reference = run(&p, recovery_input(), &cfg);
    // 12 records are read at 0 s: armed at 500 ms for 14, the job dies at 1 s after the
    // second record of that delivery, before checkpoint 1; the restart at 2 s finds no
    // completed checkpoint and reads the input again from the beginning.
    let steps = with_failures(
        recovery_input(),
        vec![
            step(
                500,
                Action::Crash {
                    point: CrashPoint::AfterRecords(14),
                },
            ),
            step(2_000, Action::Restart { parallelism: None }),
        ],
    );
    let record = run(&p, steps, &cfg);
    assert_eq!(committed(&record), committed(&reference));
}

#[test]
fn an_idle_split_stops_holding_the_watermark_back() {
    let p = windowed_count("0s", Some("2s"));
    let steps = vec![
        deliver(0, 0, vec![row("a", 1_000)]),
        deliver(0, 1, vec![row("b", 2_000)]),
        deliver(1_000, 0, vec![row("a", 15_000)]),
        step(3_000, Action::Advance),
    ];
    let record = run(&p, steps, &[]);
    // Split 1 is silent after 0 ms: Flink's idleness timer starts at the first emission that
    // finds no new element (400 ms) and declares it idle at the first emission more than 2 s
    // after that, 2 600 ms.
    let rows = out(&record);
    let visible: Vec<i64> = rows.iter().map(|r| r.visible_at).collect();
    assert_eq!(visible, vec![2_600, 2_600], "{rows:?}");
    assert_eq!(
        watermarks_of(&record, "event_time").last(),
        Some(&(2_600, 14_999))
    );
    // Without the idle timeout the silent split holds everything back.
    let p = windowed_count("0s", None);
    let steps = vec![
        deliver(0, 0, vec![row("a", 1_000)]),
        deliver(0, 1, vec![row("b", 2_000)]),
        deliver(1_000, 0, vec![row("a", 15_000)]),
        step(3_000, Action::Advance),
    ];
    let record = run(&p, steps, &[]);
    assert!(out(&record).is_empty());
}

#[test]
fn the_end_of_the_input_emits_the_maximum_watermark() {
    let p = windowed_count("5s", None);
    let steps = vec![
        deliver(0, 0, vec![row("a", 1_000), row("b", 30_000)]),
        end(100),
    ];
    let record = run(&p, steps, &[]);
    assert_eq!(
        committed(&record),
        vec!["\"a\" 1 [0, 10000)", "\"b\" 1 [30000, 40000)"]
    );
    assert!(out(&record).iter().all(|r| r.visible_at == 100));
    assert_eq!(
        watermarks_of(&record, "event_time").last().map(|w| w.1),
        Some(weir_model::time::MAX_TIMESTAMP)
    );
}

#[test]
fn micro_batch_crash_points_are_listed_as_ignored_steps() {
    let p = windowed_count("0s", None);
    let steps = vec![
        deliver(0, 0, vec![row("a", 1_000)]),
        step(
            100,
            Action::Crash {
                point: CrashPoint::AfterSinkWriteBeforeCommitLog,
            },
        ),
        step(
            200,
            Action::Crash {
                point: CrashPoint::MidBatch,
            },
        ),
        end(300),
    ];
    let record = run(&p, steps, &[]);
    assert_eq!(record.ignored_steps.len(), 2, "{:?}", record.ignored_steps);
    assert!(record.ignored_steps[0].contains("after-sink-write-before-commit-log"));
    assert!(record.ignored_steps[1].contains("mid-batch"));
    assert!(record
        .ignored_steps
        .iter()
        .all(|s| s.contains("the continuous runner has no such point")));
    assert_eq!(committed(&record), vec!["\"a\" 1 [0, 10000)"]);
}

#[test]
fn unknown_settings_are_refused_naming_the_key() {
    let p = windowed_count("0s", None);
    let e = ContinuousRunner::new()
        .run_schedule(&p, &Schedule::default(), &settings(&[("trigger", "1s")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`trigger`"), "{e}");
    let e = ContinuousRunner::new()
        .run_schedule(
            &p,
            &Schedule::default(),
            &settings(&[("checkpoint_mode", "sometimes")]),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("checkpoint_mode"), "{e}");
}

#[test]
fn runs_are_deterministic_at_parallelism_two_in_both_checkpoint_modes() {
    let p = windowed_count("0s", None);
    for mode in ["exactly-once", "at-least-once"] {
        let cfg = [
            ("parallelism", "2"),
            ("checkpoint_interval", "500ms"),
            ("checkpoint_mode", mode),
        ];
        let steps = || {
            with_failures(
                recovery_input(),
                vec![
                    step(
                        1_200,
                        Action::Crash {
                            point: CrashPoint::BetweenPreCommitAndCommit,
                        },
                    ),
                    step(1_700, Action::Restart { parallelism: None }),
                ],
            )
        };
        let first = run(&p, steps(), &cfg);
        for _ in 0..3 {
            let again = run(&p, steps(), &cfg);
            assert_eq!(out(&again), out(&first));
            assert_eq!(again.watermarks, first.watermarks);
        }
        // No loss in either mode.
        let reference = run(&p, recovery_input(), &[]);
        assert_eq!(committed(&first), committed(&reference), "{mode}");
    }
}
