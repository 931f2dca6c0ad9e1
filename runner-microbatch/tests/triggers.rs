//! Query triggers and output modes on a manual clock.

mod common;

use common::*;
use weir_model::time::Duration;
use weir_model::window::{AccumulationMode, Trigger, WindowFn, WindowingStrategy};
use weir_runner_core::io::{MemorySource, SinkRegistry};
use weir_runner_microbatch::progress::BatchKind;
use weir_runner_microbatch::{ManualClock, MicroBatchQuery, QueryConfig, QueryTrigger};

#[test]
fn a_processing_time_trigger_starts_batches_at_multiples_of_the_interval() {
    let src = unique("interval");
    source(&src, vec![vec![row("a", 5), row("a", 50)]]);
    let sinks = SinkRegistry::new();
    let clock = ManualClock::new(250);
    let cfg = QueryConfig {
        trigger: QueryTrigger::ProcessingTime(1_000),
        end_of_input: true,
        ..config()
    };
    let mut q = open(&windowed_count(&src, 0, fixed(10)), cfg, &clock, &sinks);
    q.run_to_completion().unwrap();
    let times: Vec<(i64, BatchKind)> = q.progress().iter().map(|p| (p.timestamp, p.kind)).collect();
    assert_eq!(
        times,
        vec![
            (250, BatchKind::Data),
            (1_000, BatchKind::NoData),
            (2_000, BatchKind::EndOfInput)
        ]
    );
}

#[test]
fn once_runs_a_single_batch_and_available_now_runs_until_nothing_is_left() {
    let src = unique("once");
    source(&src, vec![vec![row("a", 5), row("a", 50), row("b", 70)]]);
    let sinks = SinkRegistry::new();
    let cfg = QueryConfig {
        trigger: QueryTrigger::Once,
        end_of_input: true,
        max_rows_per_partition: 2,
        ..config()
    };
    let mut q = open(
        &windowed_count(&src, 0, fixed(10)),
        cfg,
        &ManualClock::new(0),
        &sinks,
    );
    q.run_to_completion().unwrap();
    assert_eq!(q.progress().len(), 1);
    let cfg = QueryConfig {
        trigger: QueryTrigger::AvailableNow,
        end_of_input: true,
        max_rows_per_partition: 2,
        ..config()
    };
    let mut q = open(
        &windowed_count(&src, 0, fixed(10)),
        cfg,
        &ManualClock::new(0),
        &sinks,
    );
    q.run_to_completion().unwrap();
    let kinds: Vec<BatchKind> = q.progress().iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        vec![
            BatchKind::Data,
            BatchKind::Data,
            BatchKind::NoData,
            BatchKind::EndOfInput
        ]
    );
}

#[test]
fn a_processing_time_early_firing_fires_at_the_first_batch_after_its_delay() {
    let src = unique("pt-pane");
    source(&src, vec![vec![row("a", 1)]]);
    let mut w = WindowingStrategy::new(WindowFn::Global);
    w.trigger = Trigger::Repeatedly {
        trigger: Box::new(Trigger::AfterProcessingTime {
            delay: Duration(500),
        }),
    };
    let sinks = SinkRegistry::new();
    let clock = ManualClock::new(0);
    let mut q = open(&windowed_count(&src, 0, w), config(), &clock, &sinks);
    q.run_next_batch().unwrap(); // t=0: the pane opens
    clock.set(300);
    MemorySource::append(&src, 0, vec![row("a", 2)]);
    q.run_next_batch().unwrap();
    assert!(
        sinks.committed_rows("out").is_empty(),
        "300 ms after the pane opened"
    );
    clock.set(600);
    MemorySource::append(&src, 0, vec![row("a", 3)]);
    q.run_next_batch().unwrap();
    assert_eq!(
        panes(&sinks.committed_rows("out"))
            .iter()
            .map(|p| p.1)
            .collect::<Vec<_>>(),
        vec![3]
    );
}

fn global_running_count() -> WindowingStrategy {
    let mut w = WindowingStrategy::new(WindowFn::Global);
    w.trigger = Trigger::Repeatedly {
        trigger: Box::new(Trigger::AfterCount { count: 1 }),
    };
    w.accumulation = AccumulationMode::Accumulating;
    w
}

#[test]
fn complete_mode_emits_the_whole_table_every_batch_and_update_mode_only_changes() {
    for complete in [false, true] {
        let src = unique("complete");
        source(&src, vec![vec![row("a", 1), row("b", 2)]]);
        let sinks = SinkRegistry::new();
        let cfg = QueryConfig {
            complete_output: complete,
            ..config()
        };
        let clock = ManualClock::new(0);
        let mut q = open(
            &windowed_count(&src, 0, global_running_count()),
            cfg,
            &clock,
            &sinks,
        );
        q.run_next_batch().unwrap();
        clock.set(100);
        MemorySource::append(&src, 0, vec![row("a", 3)]);
        let b = q.run_next_batch().unwrap().unwrap();
        assert_eq!(b.timestamp, 100);
        let second: Vec<(String, i64)> = sinks
            .committed_rows("out")
            .iter()
            .filter(|r| r.visible_at == b.timestamp)
            .map(|r| {
                (
                    r.row["k"].as_str().unwrap().to_string(),
                    r.row["n"].as_i64().unwrap(),
                )
            })
            .collect();
        if complete {
            assert_eq!(second, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
        } else {
            assert_eq!(second, vec![("a".to_string(), 2)]);
        }
    }
}

#[test]
fn complete_mode_is_refused_for_windows_that_close() {
    let src = unique("complete-refused");
    source(&src, vec![vec![]]);
    let cfg = QueryConfig {
        complete_output: true,
        ..config()
    };
    let err = MicroBatchQuery::open(
        &windowed_count(&src, 0, fixed(10)),
        cfg,
        weir_runner_microbatch::Clock::Manual(ManualClock::new(0)),
        SinkRegistry::new(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("complete output mode") && err.contains("Count"),
        "{err}"
    );
}
