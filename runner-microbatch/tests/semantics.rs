//! The micro-batch rules, each pinned on a manual clock with in-memory sources and sinks.

mod common;

use common::*;
use serde_json::Value;
use weir_model::expr::{col, lit};
use weir_model::time::Duration;
use weir_model::transform::Transform;
use weir_model::window::{AccumulationMode, Trigger, WindowFn, WindowingStrategy};
use weir_model::{plan, Pipeline};
use weir_runner_core::io::{MemorySource, SinkRegistry};
use weir_runner_microbatch::progress::BatchKind;
use weir_runner_microbatch::watermark::WatermarkPolicy;
use weir_runner_microbatch::{ManualClock, QueryConfig};

#[test]
fn late_row_in_batch_n_uses_watermark_of_batch_n_minus_1() {
    let src = unique("lag");
    source(&src, vec![vec![row("a", 100)]]);
    let sinks = SinkRegistry::new();
    let clock = ManualClock::new(0);
    let mut q = open(
        &windowed_count(&src, 0, fixed(10)),
        config(),
        &clock,
        &sinks,
    );
    let b0 = q.run_next_batch().unwrap().unwrap();
    assert_eq!((b0.watermark, b0.next_watermark), (None, Some(100)));
    // Batch 1 runs with watermark 100 but filters late rows with batch 0's (none): the row at
    // 95 is counted, and its window [90, 100) closes at once (100 <= 100).
    MemorySource::append(&src, 0, vec![row("a", 95)]);
    let b1 = q.run_next_batch().unwrap().unwrap();
    assert_eq!((b1.late_filter_watermark, b1.watermark), (None, Some(100)));
    assert_eq!(
        counts(&sinks.committed_rows("out")),
        vec![c("a", 1, 90, 100)]
    );
    // Batch 2 filters with batch 1's watermark, 100: a row in [80, 90) is dropped and counted.
    MemorySource::append(&src, 0, vec![row("a", 85)]);
    let b2 = q.run_next_batch().unwrap().unwrap();
    assert_eq!(b2.late_filter_watermark, Some(100));
    assert_eq!(b2.state_operators[0].num_rows_dropped_by_watermark, 1);
    assert_eq!(
        counts(&sinks.committed_rows("out")),
        vec![c("a", 1, 90, 100)]
    );
    assert_eq!(q.report().late_dropped.get("Count"), Some(&1));
}

#[test]
fn stateless_operators_pass_late_rows_that_stateful_ones_drop() {
    let src = unique("stateless");
    source(&src, vec![vec![row("a", 100)]]);
    let mut p = Pipeline::new();
    p.add("In", vec![], read(&src));
    p.add("Times", vec!["In".into()], assign(0));
    p.add(
        "Keep",
        vec!["Times".into()],
        Transform::Filter {
            predicate: col("ts").gt(lit(0)),
        },
    );
    p.add("Raw", vec!["Keep".into()], write("raw"));
    p.add(
        "Win",
        vec!["Keep".into()],
        Transform::WindowInto {
            windowing: fixed(10),
        },
    );
    p.add("Count", vec!["Win".into()], count_by_k());
    p.add("Out", vec!["Count".into()], write("out"));
    let sinks = SinkRegistry::new();
    let mut q = open(&plan(&p).unwrap(), config(), &ManualClock::new(0), &sinks);
    q.run_next_batch().unwrap();
    q.run_next_batch().unwrap(); // no-data batch: watermark 100 becomes the batch watermark
    MemorySource::append(&src, 0, vec![row("a", 5)]);
    let b = q.run_next_batch().unwrap().unwrap();
    assert_eq!(b.nodes["Count"].rows_dropped_by_watermark, 1);
    let raw: Vec<i64> = sinks
        .committed_rows("raw")
        .iter()
        .map(|r| r.row["ts"].as_i64().unwrap())
        .collect();
    assert_eq!(raw, vec![100, 5]);
}

#[test]
fn no_data_batches_emit_closed_windows_and_can_be_turned_off() {
    for no_data in [true, false] {
        let src = unique("nodata");
        source(&src, vec![vec![row("a", 5), row("b", 25)]]);
        let sinks = SinkRegistry::new();
        let cfg = QueryConfig {
            no_data_batches: no_data,
            ..config()
        };
        let mut q = open(
            &windowed_count(&src, 0, fixed(10)),
            cfg,
            &ManualClock::new(0),
            &sinks,
        );
        assert_eq!(q.run_next_batch().unwrap().unwrap().kind, BatchKind::Data);
        assert!(
            sinks.committed_rows("out").is_empty(),
            "no watermark yet in batch 0"
        );
        let next = q.run_next_batch().unwrap();
        if no_data {
            let b = next.unwrap();
            assert_eq!((b.kind, b.watermark), (BatchKind::NoData, Some(25)));
            assert_eq!(counts(&sinks.committed_rows("out")), vec![c("a", 1, 0, 10)]);
            assert!(
                q.run_next_batch().unwrap().is_none(),
                "the watermark did not move again"
            );
        } else {
            assert!(next.is_none());
            assert!(sinks.committed_rows("out").is_empty());
        }
    }
}

#[test]
fn end_of_input_closes_every_window_at_the_maximum_watermark() {
    let src = unique("eoi");
    source(&src, vec![vec![row("a", 5), row("a", 7)]]);
    let sinks = SinkRegistry::new();
    let cfg = QueryConfig {
        end_of_input: true,
        ..config()
    };
    let mut q = open(
        &windowed_count(&src, 1_000, fixed(10)),
        cfg,
        &ManualClock::new(0),
        &sinks,
    );
    q.run_to_completion().unwrap();
    let kinds: Vec<_> = q.progress().iter().map(|p| p.kind).collect();
    // The watermark moved (to 7 - 1000) while state is held: a no-data batch runs first
    // (Spark's `shouldRunAnotherBatch`), emitting nothing as the window is still open.
    assert_eq!(
        kinds,
        vec![BatchKind::Data, BatchKind::NoData, BatchKind::EndOfInput]
    );
    assert_eq!(
        panes(&sinks.committed_rows("out")),
        vec![("a".into(), 2, 0, 10, "ON_TIME".into(), 0, true)]
    );
    assert!(q.is_finished());
}

fn two_inputs(a: &str, b: &str) -> weir_model::Plan {
    let mut p = Pipeline::new();
    p.add("A", vec![], read(a));
    p.add("B", vec![], read(b));
    p.add("TimesA", vec!["A".into()], assign(0));
    p.add("TimesB", vec!["B".into()], assign(0));
    p.add(
        "Both",
        vec!["TimesA".into(), "TimesB".into()],
        Transform::Flatten,
    );
    p.add(
        "Win",
        vec!["Both".into()],
        Transform::WindowInto {
            windowing: fixed(10),
        },
    );
    p.add("Count", vec!["Win".into()], count_by_k());
    p.add("Out", vec!["Count".into()], write("out"));
    plan(&p).unwrap()
}

#[test]
fn min_policy_follows_the_slower_input_and_max_the_faster() {
    for (policy, wm, dropped) in [
        (WatermarkPolicy::Min, 30, 0),
        (WatermarkPolicy::Max, 100, 1),
    ] {
        let (a, b) = (unique("fast"), unique("slow"));
        source(&a, vec![vec![row("a", 100)]]);
        source(&b, vec![vec![row("b", 30)]]);
        let sinks = SinkRegistry::new();
        let cfg = QueryConfig {
            watermark_policy: policy,
            no_data_batches: false,
            ..config()
        };
        let mut q = open(&two_inputs(&a, &b), cfg, &ManualClock::new(0), &sinks);
        q.run_next_batch().unwrap();
        assert_eq!(q.watermark(), Some(wm));
        MemorySource::append(&b, 0, vec![row("b", 31)]);
        q.run_next_batch().unwrap();
        // Batch 2 filters with batch 1's watermark: the slow input's row at 50 is late only
        // under the max policy.
        MemorySource::append(&b, 0, vec![row("b", 50)]);
        let p = q.run_next_batch().unwrap().unwrap();
        assert_eq!(
            p.nodes["Count"].rows_dropped_by_watermark, dropped,
            "{policy:?}"
        );
    }
}

#[test]
fn update_mode_emits_changed_windows_each_batch_and_no_unchanged_on_time_pane() {
    let src = unique("update");
    source(&src, vec![vec![row("a", 1), row("a", 2)]]);
    let mut w = fixed(10);
    w.trigger = Trigger::AfterWatermark {
        early: Some(Box::new(Trigger::AfterCount { count: 1 })),
        late: None,
    };
    w.accumulation = AccumulationMode::Accumulating;
    let sinks = SinkRegistry::new();
    let mut q = open(
        &windowed_count(&src, 0, w),
        config(),
        &ManualClock::new(0),
        &sinks,
    );
    q.run_next_batch().unwrap();
    MemorySource::append(&src, 0, vec![row("a", 3), row("b", 4)]);
    q.run_next_batch().unwrap();
    MemorySource::append(&src, 0, vec![row("c", 30)]);
    q.run_next_batch().unwrap();
    q.run_next_batch().unwrap(); // no-data batch at watermark 30 closes [0, 10)
    let got: Vec<_> = panes(&sinks.committed_rows("out"))
        .into_iter()
        .filter(|p| p.2 == 0)
        .collect();
    // Nothing arrived after the early panes, so the close writes no ON_TIME pane: as the
    // model (an empty on-time pane only with `fire_always` closing) and as Spark's update
    // mode, which never rewrites an unchanged row.
    assert_eq!(
        got,
        vec![
            ("a".into(), 2, 0, 10, "EARLY".into(), 0, false),
            ("a".into(), 3, 0, 10, "EARLY".into(), 1, false),
            ("b".into(), 1, 0, 10, "EARLY".into(), 0, false),
        ]
    );
}

#[test]
fn discarding_update_panes_hold_only_rows_since_the_last_pane() {
    let src = unique("discarding");
    source(&src, vec![vec![row("a", 1), row("a", 2)]]);
    let mut w = fixed(10);
    w.trigger = Trigger::Repeatedly {
        trigger: Box::new(Trigger::AfterCount { count: 1 }),
    };
    let sinks = SinkRegistry::new();
    let mut q = open(
        &windowed_count(&src, 0, w),
        config(),
        &ManualClock::new(0),
        &sinks,
    );
    q.run_next_batch().unwrap();
    MemorySource::append(&src, 0, vec![row("a", 3)]);
    q.run_next_batch().unwrap();
    let ns: Vec<i64> = panes(&sinks.committed_rows("out"))
        .iter()
        .map(|p| p.1)
        .collect();
    assert_eq!(ns, vec![2, 1]);
}

#[test]
fn sessions_merge_when_the_next_starts_at_or_before_the_current_end() {
    let src = unique("sessions");
    source(&src, vec![vec![row("a", 0)]]);
    let w = WindowingStrategy::new(WindowFn::Sessions {
        gap: Duration(10),
        gap_expr: None,
    });
    let sinks = SinkRegistry::new();
    let cfg = QueryConfig {
        end_of_input: true,
        ..config()
    };
    let mut q = open(
        &windowed_count(&src, 1_000, w),
        cfg,
        &ManualClock::new(0),
        &sinks,
    );
    q.run_next_batch().unwrap();
    // [10, 20) starts where [0, 10) ends: they merge. [25, 35) stays apart.
    MemorySource::append(&src, 0, vec![row("a", 10), row("a", 25)]);
    q.run_next_batch().unwrap();
    q.run_to_completion().unwrap();
    assert_eq!(
        counts(&sinks.committed_rows("out")),
        vec![c("a", 1, 25, 35), c("a", 2, 0, 20)]
    );
}

#[test]
fn rows_whose_session_gap_is_not_positive_are_filtered_and_counted() {
    let src = unique("gaps");
    source(
        &src,
        vec![vec![
            row_gap("a", 0, Value::from(5)),
            row_gap("a", 3, Value::from(0)),
            row_gap("a", 4, Value::from(-2)),
            row_gap("a", 6, Value::Null),
            row_gap("a", 8, Value::from(5)),
        ]],
    );
    let w = WindowingStrategy::new(WindowFn::Sessions {
        gap: Duration(1),
        gap_expr: Some(col("gap")),
    });
    let sinks = SinkRegistry::new();
    let cfg = QueryConfig {
        end_of_input: true,
        ..config()
    };
    let mut q = open(
        &windowed_count(&src, 0, w),
        cfg,
        &ManualClock::new(0),
        &sinks,
    );
    q.run_to_completion().unwrap();
    assert_eq!(q.progress()[0].nodes["Win"].rows_dropped_by_session_gap, 3);
    assert_eq!(
        counts(&sinks.committed_rows("out")),
        vec![c("a", 1, 0, 5), c("a", 1, 8, 13)]
    );
}

#[test]
fn allowed_lateness_keeps_a_window_and_emits_a_late_pane_extension() {
    let src = unique("lateness");
    source(&src, vec![vec![row("a", 5), row("a", 12)]]);
    let mut w = fixed(10);
    w.allowed_lateness = Duration(10);
    let sinks = SinkRegistry::new();
    let mut q = open(
        &windowed_count(&src, 0, w),
        config(),
        &ManualClock::new(0),
        &sinks,
    );
    q.run_next_batch().unwrap(); // watermark 12 afterwards
    q.run_next_batch().unwrap(); // no-data: [0, 10) closes, ON_TIME, kept for lateness
    MemorySource::append(&src, 0, vec![row("a", 6)]);
    q.run_next_batch().unwrap(); // 10 + 10 > 12: not too late; LATE pane
    let got: Vec<_> = panes(&sinks.committed_rows("out"))
        .into_iter()
        .filter(|p| p.2 == 0)
        .collect();
    assert_eq!(
        got,
        vec![
            ("a".into(), 1, 0, 10, "ON_TIME".into(), 0, false),
            ("a".into(), 1, 0, 10, "LATE".into(), 1, false)
        ]
    );
}

#[test]
fn unsupported_transforms_and_triggers_are_refused_naming_them() {
    use weir_model::runner::Runner;
    let src = unique("refuse");
    let mut w = fixed(10);
    w.trigger = Trigger::AfterCount { count: 2 };
    let err = weir_runner_microbatch::MicroBatchRunner::new()
        .check(&windowed_count(&src, 0, w))
        .unwrap_err()
        .to_string();
    assert!(err.contains("after_count(2)"), "{err}");
    let mut p = Pipeline::new();
    p.add("In", vec![], read(&src));
    let mut w = fixed(10);
    w.trigger = Trigger::AfterEach {
        triggers: vec![Trigger::AfterCount { count: 1 }, Trigger::Default],
    };
    p.add("Times", vec!["In".into()], assign(0));
    p.add(
        "Win",
        vec!["Times".into()],
        Transform::WindowInto { windowing: w },
    );
    p.add("Count", vec!["Win".into()], count_by_k());
    let err = weir_runner_microbatch::MicroBatchRunner::new()
        .check(&plan(&p).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("after_each"), "{err}");
}

#[test]
fn the_watermark_can_be_negative_for_pre_epoch_event_times() {
    let src = unique("negative");
    source(&src, vec![vec![row("a", -5_000)]]);
    let sinks = SinkRegistry::new();
    let mut q = open(
        &windowed_count(&src, 1_000, fixed(10)),
        config(),
        &ManualClock::new(0),
        &sinks,
    );
    q.run_next_batch().unwrap();
    assert_eq!(q.watermark(), Some(-6_000));
}

#[test]
fn partitions_run_in_parallel_and_the_watermark_takes_the_max_over_all_of_them() {
    let src = unique("partitions");
    source(
        &src,
        vec![vec![row("a", 10)], vec![row("a", 40)], vec![row("b", 20)]],
    );
    let sinks = SinkRegistry::new();
    let mut q = open(
        &windowed_count(&src, 5, fixed(100)),
        QueryConfig {
            end_of_input: true,
            ..config()
        },
        &ManualClock::new(0),
        &sinks,
    );
    let b = q.run_next_batch().unwrap().unwrap();
    assert_eq!(b.next_watermark, Some(35));
    assert_eq!(b.sources["In"].len(), 3);
    q.run_to_completion().unwrap();
    assert_eq!(
        counts(&sinks.committed_rows("out")),
        vec![c("a", 2, 0, 100), c("b", 1, 0, 100)]
    );
}

#[test]
fn chained_aggregations_keep_rows_emitted_in_the_same_batch_as_late_filtering_lags_a_batch() {
    use weir_model::transform::{AggregateFn, Aggregation};
    let src = unique("chained");
    source(&src, vec![vec![row("a", 1), row("a", 12)]]);
    let mut p = Pipeline::new();
    p.add("In", vec![], read(&src));
    p.add("Times", vec!["In".into()], assign(0));
    p.add(
        "Win",
        vec!["Times".into()],
        Transform::WindowInto {
            windowing: fixed(10),
        },
    );
    p.add("Count", vec!["Win".into()], count_by_k());
    p.add(
        "Win2",
        vec!["Count".into()],
        Transform::WindowInto {
            windowing: fixed(20),
        },
    );
    let total = Aggregation {
        name: "n".into(),
        func: AggregateFn::Sum,
        input: Some(col("n")),
    };
    p.add(
        "Total",
        vec!["Win2".into()],
        Transform::Combine {
            group_by: vec!["k".into()],
            aggregations: vec![total],
        },
    );
    p.add("Out", vec!["Total".into()], write("out"));
    let plan = plan(&p).unwrap();
    let sinks = SinkRegistry::new();
    let cfg = QueryConfig {
        end_of_input: true,
        ..config()
    };
    let mut q = open(&plan, cfg, &ManualClock::new(0), &sinks);
    q.run_next_batch().unwrap(); // watermark 12 afterwards
    MemorySource::append(&src, 0, vec![row("a", 25)]);
    q.run_next_batch().unwrap(); // Count emits [0, 10) at 9
                                 // The no-data batch at 25 emits Count's [10, 20) at 19 and, in the same batch, Total's
                                 // [0, 20): the row at 19 is filtered with the previous batch's watermark (12), not 25,
                                 // so it is not dropped (Spark >= 3.5 with several stateful operators).
    let b = q.run_next_batch().unwrap().unwrap();
    assert_eq!((b.late_filter_watermark, b.watermark), (Some(12), Some(25)));
    assert_eq!(counts(&sinks.committed_rows("out")), vec![c("a", 2, 0, 20)]);
    q.run_to_completion().unwrap();
    assert_eq!(
        counts(&sinks.committed_rows("out")),
        vec![c("a", 1, 20, 40), c("a", 2, 0, 20)]
    );
    let direct = SinkRegistry::new();
    weir_runner_direct::DirectRunner::with_sinks(direct.clone())
        .execute(
            &plan,
            &weir_model::runner::PipelineOptions::for_runner("direct"),
        )
        .unwrap();
    assert_eq!(
        counts(&direct.committed_rows("out")),
        counts(&sinks.committed_rows("out"))
    );
}
