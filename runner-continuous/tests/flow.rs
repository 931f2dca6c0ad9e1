//! Keyed state and timers, and credit-based flow control, on the continuous runner.

use arrow::record_batch::RecordBatch;
use serde_json::json;
use weir_model::io::{SinkMetadata, SinkSpec, SourceSpec};
use weir_model::runner::PipelineOptions;
use weir_model::time::Duration;
use weir_model::transform::Transform;
use weir_model::udf::{
    BatchFn, Row, StateKind, StateSpec, StatefulContext, StatefulFn, TimeDomain, TimerSpec,
};
use weir_model::window::WatermarkStrategy;
use weir_model::{expr::col, plan, DataType, Field, Pipeline, Schema};
use weir_runner_continuous::ContinuousRunner;
use weir_runner_core::io::{MemorySource, SinkRegistry};

/// Sets an event-time timer at `ts + 1000` for every element (twice for the same time is
/// one timer) and emits the timer's time when it fires.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct EchoLater;

#[typetag::serde]
impl StatefulFn for EchoLater {
    fn state(&self) -> Vec<StateSpec> {
        vec![StateSpec {
            name: "seen".into(),
            kind: StateKind::Value,
        }]
    }
    fn timers(&self) -> Vec<TimerSpec> {
        vec![TimerSpec {
            name: "echo".into(),
            domain: TimeDomain::EventTime,
        }]
    }
    fn output_schema(&self, _input: &Schema) -> Result<Schema, String> {
        Ok(Schema::new(vec![
            Field::new("user", DataType::String),
            Field::new("fired_at", DataType::Int64),
        ]))
    }
    fn process(&self, _row: &Row, ctx: &mut dyn StatefulContext) -> Result<(), String> {
        ctx.set_value("seen", json!(true));
        let at = ctx.timestamp() + 1000;
        ctx.set_timer("echo", at);
        Ok(())
    }
    fn on_timer(&self, _timer: &str, ctx: &mut dyn StatefulContext) -> Result<(), String> {
        let user = ctx.key()["user"].clone();
        let at = ctx.timestamp();
        ctx.emit(
            json!({"user": user, "fired_at": at})
                .as_object()
                .unwrap()
                .clone(),
        );
        Ok(())
    }
}

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("user", DataType::String),
        Field::new("ts", DataType::Int64),
    ])
}

fn options(args: &[&str]) -> PipelineOptions {
    let mut all = vec!["weir", "--runner", "continuous"];
    all.extend_from_slice(args);
    PipelineOptions::from_args(all).unwrap()
}

#[test]
fn event_time_timers_fire_once_per_key_and_time_in_timestamp_order() {
    let name = "timers-events";
    let rows: Vec<Row> = [("a", 5_000), ("b", 1_000), ("c", 3_000), ("a", 5_000)]
        .iter()
        .map(|(u, ts)| json!({"user": u, "ts": ts}).as_object().unwrap().clone())
        .collect();
    MemorySource::register(name, vec![rows]);
    let mut p = Pipeline::new();
    p.add(
        "events",
        vec![],
        Transform::Read {
            source: SourceSpec::Memory { name: name.into() },
            schema: schema(),
            bad_records: Default::default(),
        },
    );
    p.add(
        "time",
        vec!["events".into()],
        Transform::AssignTimestamps {
            timestamp: col("ts"),
            watermark: WatermarkStrategy::bounded(Duration::from_secs(10)),
        },
    );
    p.add(
        "echo",
        vec!["time".into()],
        Transform::StatefulParDo {
            keys: vec!["user".into()],
            func: Box::new(EchoLater),
        },
    );
    p.add(
        "out",
        vec!["echo".into()],
        Transform::Write {
            sink: SinkSpec::Memory {
                name: "out".into(),
                guarantee: None,
            },
            metadata: SinkMetadata::default(),
        },
    );
    let plan = plan(&p).unwrap();
    let sinks = SinkRegistry::new();
    // Parallelism 1: one keyed subtask, so the sink sees its timers in firing order. With
    // D = 10 s no timer is due before the final watermark, which fires them all, in
    // timestamp order, `a`'s two elements at the same time having set one timer.
    ContinuousRunner::with_sinks(sinks.clone())
        .execute(
            &plan,
            &options(&["--parallelism", "1", "--set", "clock=manual"]),
        )
        .unwrap();
    MemorySource::unregister(name);
    let fired: Vec<(String, i64)> = sinks
        .rows("out")
        .into_iter()
        .map(|r| {
            (
                r.row["user"].as_str().unwrap().to_string(),
                r.row["fired_at"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        fired,
        vec![
            ("b".to_string(), 2_000),
            ("c".to_string(), 4_000),
            ("a".to_string(), 6_000)
        ]
    );
}

/// A deliberately slow batch function: the receiving subtask cannot keep up.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Slow;

#[typetag::serde]
impl BatchFn for Slow {
    fn output_schema(&self, input: &Schema) -> Result<Schema, String> {
        Ok(input.clone())
    }
    fn process_batch(&self, batch: &RecordBatch) -> Result<RecordBatch, String> {
        std::thread::sleep(std::time::Duration::from_micros(200));
        Ok(batch.clone())
    }
}

#[test]
fn a_slow_operator_backpressures_the_sources_with_bounded_queues() {
    let mut p = Pipeline::new();
    p.add(
        "numbers",
        vec![],
        Transform::Read {
            source: SourceSpec::Sequence {
                start: 0,
                count: Some(2_000),
                rate: None,
                partitions: 2,
            },
            schema: Schema::new(vec![Field::new("value", DataType::Int64)]),
            bad_records: Default::default(),
        },
    );
    p.add(
        "distinct",
        vec!["numbers".into()],
        Transform::Dedup {
            keys: vec!["value".into()],
            ttl: None,
        },
    );
    p.add(
        "slow",
        vec!["distinct".into()],
        Transform::MapBatches {
            func: Box::new(Slow),
        },
    );
    p.add(
        "out",
        vec!["slow".into()],
        Transform::Write {
            sink: SinkSpec::Memory {
                name: "slow-out".into(),
                guarantee: None,
            },
            metadata: SinkMetadata::default(),
        },
    );
    let plan = plan(&p).unwrap();
    let sinks = SinkRegistry::new();
    let run = ContinuousRunner::with_sinks(sinks.clone())
        .execute(
            &plan,
            &options(&[
                "--parallelism",
                "2",
                "--buffer-timeout",
                "0",
                "--set",
                "source_batch_rows=1",
            ]),
        )
        .unwrap();
    assert_eq!(sinks.rows("slow-out").len(), 2_000);
    assert_eq!(run.report.rows_written.get("out"), Some(&2_000));
    // Every input queue stayed within its credits (2 per channel + 8 floating)...
    assert!(
        run.metrics.iter().any(|s| s.credits > 0),
        "subtasks report their credits"
    );
    for s in run.metrics.iter().filter(|s| s.credits > 0) {
        assert!(s.max_queued <= s.credits, "{s:?}");
    }
    // ...so the sources, producing faster than the slow operator consumes, had to wait.
    let waits: u64 = run
        .metrics
        .iter()
        .filter(|s| s.vertex == "numbers")
        .map(|s| s.blocked_sends)
        .sum();
    assert!(waits > 0, "{:?}", run.metrics);
}
