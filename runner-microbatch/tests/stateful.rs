//! Stateful ParDo and Deduplicate at batch boundaries: state per key, event-time timers fire
//! when `timer < eviction watermark` and processing-time timers when `timer < batch
//! timestamp`, after the batch's input rows; state and timers survive a restart.

mod common;

use common::*;
use serde_json::json;
use weir_model::time::Duration;
use weir_model::transform::Transform;
use weir_model::udf::{
    Row, StateKind, StateSpec, StatefulContext, StatefulFn, TimeDomain, TimerSpec,
};
use weir_model::{plan, DataType, Field, Pipeline, Plan, Schema};
use weir_runner_core::io::{MemorySource, SinkRegistry};
use weir_runner_microbatch::{ManualClock, MicroBatchError, QueryConfig, StopPoint};

/// Buffers rows per key in a list; the first row sets an event-time timer 10 ms later and a
/// processing-time timer 100 ms later; each timer emits how many rows are buffered.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Buffer;

#[typetag::serde(name = "microbatch_test_buffer")]
impl StatefulFn for Buffer {
    fn state(&self) -> Vec<StateSpec> {
        vec![StateSpec {
            name: "rows".into(),
            kind: StateKind::List,
        }]
    }
    fn timers(&self) -> Vec<TimerSpec> {
        vec![
            TimerSpec {
                name: "event".into(),
                domain: TimeDomain::EventTime,
            },
            TimerSpec {
                name: "wall".into(),
                domain: TimeDomain::ProcessingTime,
            },
        ]
    }
    fn output_schema(&self, _input: &Schema) -> Result<Schema, String> {
        Ok(Schema::new(vec![
            Field::new("k", DataType::String),
            Field::new("timer", DataType::String),
            Field::new("n", DataType::Int64),
        ]))
    }
    fn process(&self, row: &Row, ctx: &mut dyn StatefulContext) -> Result<(), String> {
        if ctx.list("rows").is_empty() {
            let (ts, now) = (ctx.timestamp(), ctx.processing_time());
            ctx.set_timer("event", ts + 10);
            ctx.set_timer("wall", now + 100);
        }
        ctx.append("rows", row["ts"].clone());
        Ok(())
    }
    fn on_timer(&self, timer: &str, ctx: &mut dyn StatefulContext) -> Result<(), String> {
        let k = ctx.key()["k"].clone();
        let n = ctx.list("rows").len();
        ctx.emit(
            json!({"k": k, "timer": timer, "n": n})
                .as_object()
                .unwrap()
                .clone(),
        );
        Ok(())
    }
}

fn buffered(src: &str) -> Plan {
    let mut p = Pipeline::new();
    p.add("In", vec![], read(src));
    p.add("Times", vec!["In".into()], assign(0));
    p.add(
        "Buffer",
        vec!["Times".into()],
        Transform::StatefulParDo {
            keys: vec!["k".into()],
            func: Box::new(Buffer),
        },
    );
    p.add("Out", vec!["Buffer".into()], write("out"));
    plan(&p).unwrap()
}

fn fired(sinks: &SinkRegistry) -> Vec<(String, i64, i64)> {
    sinks
        .committed_rows("out")
        .iter()
        .map(|r| {
            (
                r.row["timer"].as_str().unwrap().to_string(),
                r.row["n"].as_i64().unwrap(),
                r.meta.ts,
            )
        })
        .collect()
}

#[test]
fn an_event_time_timer_fires_below_the_eviction_watermark_after_the_batchs_rows() {
    let src = unique("timers");
    source(&src, vec![vec![row("a", 5), row("a", 7)]]);
    let sinks = SinkRegistry::new();
    let clock = ManualClock::new(0);
    let mut q = open(&buffered(&src), config(), &clock, &sinks);
    q.run_next_batch().unwrap(); // timer at 15; watermark 7 afterwards
    MemorySource::append(&src, 0, vec![row("a", 20)]);
    q.run_next_batch().unwrap(); // eviction watermark 7: 15 is not below it
    assert!(fired(&sinks).is_empty());
    MemorySource::append(&src, 0, vec![row("a", 18)]);
    q.run_next_batch().unwrap(); // eviction watermark 20: the row at 18 first, then the timer
    assert_eq!(fired(&sinks), vec![("event".to_string(), 4, 15)]);
}

#[test]
fn a_processing_time_timer_fires_at_the_first_batch_after_it() {
    let src = unique("wall");
    source(&src, vec![vec![row("a", 5)]]);
    let sinks = SinkRegistry::new();
    let clock = ManualClock::new(1_000);
    let mut q = open(&buffered(&src), config(), &clock, &sinks);
    q.run_next_batch().unwrap(); // wall timer at 1100
    clock.set(1_100);
    MemorySource::append(&src, 0, vec![row("a", 6)]);
    q.run_next_batch().unwrap(); // 1100 is not below 1100
    assert!(fired(&sinks).iter().all(|f| f.0 != "wall"));
    clock.set(1_101);
    MemorySource::append(&src, 0, vec![row("a", 7)]);
    q.run_next_batch().unwrap();
    assert!(
        fired(&sinks).iter().any(|f| f.0 == "wall" && f.1 == 3),
        "{:?}",
        fired(&sinks)
    );
}

#[test]
fn state_and_timers_survive_a_restart() {
    let src = unique("stateful-restart");
    source(
        &src,
        vec![vec![row("a", 5), row("a", 7), row("b", 9), row("a", 30)]],
    );
    let cfg = |dir: &std::path::Path| QueryConfig {
        checkpoint_dir: Some(dir.to_path_buf()),
        max_rows_per_partition: 1,
        end_of_input: true,
        ..config()
    };
    let expected = {
        let dir = tempfile::tempdir().unwrap();
        let sinks = SinkRegistry::new();
        open(
            &buffered(&src),
            cfg(dir.path()),
            &ManualClock::new(0),
            &sinks,
        )
        .run_to_completion()
        .unwrap();
        let mut f = fired(&sinks);
        f.sort();
        f
    };
    assert_eq!(
        expected,
        vec![("event".to_string(), 1, 19), ("event".to_string(), 3, 15)]
    );
    for stop in [
        StopPoint::AfterBatches(2),
        StopPoint::MidBatch(3),
        StopPoint::AfterSinkCommit(4),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let sinks = SinkRegistry::new();
        let clock = ManualClock::new(0);
        let mut q = open(&buffered(&src), cfg(dir.path()), &clock, &sinks);
        q.stop_at(stop);
        assert!(matches!(
            q.run_to_completion(),
            Err(MicroBatchError::Stopped(_))
        ));
        drop(q);
        // Restarted at another parallelism: each state entry finds its key's shard.
        let restarted = QueryConfig {
            parallelism: 3,
            ..cfg(dir.path())
        };
        open(&buffered(&src), restarted, &clock, &sinks)
            .run_to_completion()
            .unwrap();
        let mut got = fired(&sinks);
        got.sort();
        assert_eq!(got, expected, "stop at {stop}");
    }
}

#[test]
fn deduplicate_with_a_ttl_forgets_a_key_once_the_watermark_passes_it() {
    let src = unique("dedup-ttl");
    source(&src, vec![vec![row("a", 0), row("a", 5)]]);
    let mut p = Pipeline::new();
    p.add("In", vec![], read(&src));
    p.add("Times", vec!["In".into()], assign(0));
    p.add(
        "Once",
        vec!["Times".into()],
        Transform::Dedup {
            keys: vec!["k".into()],
            ttl: Some(Duration(10)),
        },
    );
    p.add("Out", vec!["Once".into()], write("out"));
    let sinks = SinkRegistry::new();
    let mut q = open(&plan(&p).unwrap(), config(), &ManualClock::new(0), &sinks);
    q.run_next_batch().unwrap(); // a@0 kept, a@5 dropped; watermark 5
    MemorySource::append(&src, 0, vec![row("a", 20)]);
    q.run_next_batch().unwrap(); // eviction watermark 5: a is still known, a@20 dropped
    q.run_next_batch().unwrap(); // no-data batch at 20: 0 + 10 < 20, a is forgotten
    MemorySource::append(&src, 0, vec![row("a", 25)]);
    q.run_next_batch().unwrap();
    let kept: Vec<i64> = sinks
        .committed_rows("out")
        .iter()
        .map(|r| r.row["ts"].as_i64().unwrap())
        .collect();
    assert_eq!(kept, vec![0, 25]);
}

#[test]
fn a_due_processing_time_timer_runs_a_no_data_batch() {
    let src = unique("wall-nodata");
    source(&src, vec![vec![row("a", 5)]]);
    let sinks = SinkRegistry::new();
    let clock = ManualClock::new(0);
    let mut q = open(&buffered(&src), config(), &clock, &sinks);
    q.run_next_batch().unwrap(); // wall timer at 100
    q.run_next_batch().unwrap(); // no-data batch for the watermark (5)
    assert!(q.run_next_batch().unwrap().is_none(), "nothing due at 0");
    clock.set(101);
    let b = q.run_next_batch().unwrap().unwrap();
    assert_eq!(b.kind, weir_runner_microbatch::progress::BatchKind::NoData);
    assert_eq!(fired(&sinks), vec![("wall".to_string(), 1, 5)]);
}

#[test]
fn deduplicate_state_survives_a_restart_at_another_parallelism() {
    let src = unique("dedup-restart");
    source(
        &src,
        vec![vec![
            row("a", 0),
            row("b", 1),
            row("a", 2),
            row("c", 3),
            row("b", 4),
            row("a", 5),
        ]],
    );
    let mut p = Pipeline::new();
    p.add("In", vec![], read(&src));
    p.add(
        "Once",
        vec!["In".into()],
        Transform::Dedup {
            keys: vec!["k".into()],
            ttl: None,
        },
    );
    p.add("Out", vec!["Once".into()], write("out"));
    let plan = plan(&p).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = |parallelism| QueryConfig {
        checkpoint_dir: Some(dir.path().to_path_buf()),
        max_rows_per_partition: 2,
        parallelism,
        end_of_input: true,
        ..config()
    };
    let sinks = SinkRegistry::new();
    let clock = ManualClock::new(0);
    let mut q = open(&plan, cfg(2), &clock, &sinks);
    q.stop_at(StopPoint::AfterBatches(1));
    assert!(matches!(
        q.run_to_completion(),
        Err(MicroBatchError::Stopped(_))
    ));
    drop(q);
    open(&plan, cfg(3), &clock, &sinks)
        .run_to_completion()
        .unwrap();
    let mut kept: Vec<(String, i64)> = sinks
        .committed_rows("out")
        .iter()
        .map(|r| {
            (
                r.row["k"].as_str().unwrap().to_string(),
                r.row["ts"].as_i64().unwrap(),
            )
        })
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        vec![
            ("a".to_string(), 0),
            ("b".to_string(), 1),
            ("c".to_string(), 3)
        ]
    );
}
