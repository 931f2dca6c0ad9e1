//! Pipelines over in-memory sources and sinks, and a manual clock, for deterministic tests.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use weir_model::expr::col;
use weir_model::io::{BadRecordPolicy, SinkMetadata, SinkSpec, SourceSpec};
use weir_model::time::Duration;
use weir_model::transform::{AggregateFn, Aggregation, Transform};
use weir_model::udf::Row;
use weir_model::window::{WatermarkStrategy, WindowFn, WindowingStrategy};
use weir_model::{plan, DataType, Field, Pipeline, Plan, Schema};
use weir_runner_core::io::{MemorySource, RecordedRow, SinkRegistry};
use weir_runner_microbatch::{Clock, ManualClock, MicroBatchQuery, QueryConfig};

/// A name no other test uses (memory sources are process-wide).
pub fn unique(base: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{base}-{}", N.fetch_add(1, Ordering::SeqCst))
}

pub fn schema() -> Schema {
    Schema::new(vec![
        Field::new("k", DataType::String),
        Field::new("ts", DataType::Int64),
        Field::new("gap", DataType::Int64),
    ])
}

pub fn row(k: &str, ts: i64) -> Row {
    json!({"k": k, "ts": ts, "gap": 10})
        .as_object()
        .unwrap()
        .clone()
}

pub fn row_gap(k: &str, ts: i64, gap: Value) -> Row {
    json!({"k": k, "ts": ts, "gap": gap})
        .as_object()
        .unwrap()
        .clone()
}

pub fn read(source: &str) -> Transform {
    Transform::Read {
        source: SourceSpec::Memory {
            name: source.into(),
        },
        schema: schema(),
        bad_records: BadRecordPolicy::Fail,
    }
}

pub fn assign(delay_ms: i64) -> Transform {
    Transform::AssignTimestamps {
        timestamp: col("ts"),
        watermark: WatermarkStrategy::bounded(Duration(delay_ms)),
    }
}

pub fn count_by_k() -> Transform {
    Transform::Combine {
        group_by: vec!["k".into()],
        aggregations: vec![Aggregation {
            name: "n".into(),
            func: AggregateFn::Count,
            input: None,
        }],
    }
}

pub fn write(sink: &str) -> Transform {
    Transform::Write {
        sink: SinkSpec::Memory {
            name: sink.into(),
            guarantee: None,
        },
        metadata: SinkMetadata::default(),
    }
}

pub fn fixed(size: i64) -> WindowingStrategy {
    WindowingStrategy::new(WindowFn::Fixed {
        size: Duration(size),
        offset: Duration::ZERO,
    })
}

/// source → AssignTimestamps(delay) → WindowInto(windowing) → count per k → memory sink `out`.
pub fn windowed_count(source: &str, delay_ms: i64, windowing: WindowingStrategy) -> Plan {
    let mut p = Pipeline::new();
    p.add("In", vec![], read(source));
    p.add("Times", vec!["In".into()], assign(delay_ms));
    p.add(
        "Win",
        vec!["Times".into()],
        Transform::WindowInto { windowing },
    );
    p.add("Count", vec!["Win".into()], count_by_k());
    p.add("Out", vec!["Count".into()], write("out"));
    plan(&p).unwrap()
}

/// A deterministic configuration: manual clock, no end-of-input batch unless asked.
pub fn config() -> QueryConfig {
    QueryConfig {
        parallelism: 2,
        end_of_input: false,
        ..QueryConfig::default()
    }
}

pub fn open(
    plan: &Plan,
    config: QueryConfig,
    clock: &ManualClock,
    sinks: &SinkRegistry,
) -> MicroBatchQuery {
    MicroBatchQuery::open(plan, config, Clock::Manual(clock.clone()), sinks.clone()).unwrap()
}

/// Registers a memory source with one partition per list.
pub fn source(name: &str, partitions: Vec<Vec<Row>>) {
    MemorySource::register(name, partitions);
}

/// (k, n, window start, window end, timing, pane index, is_last) of committed rows.
pub fn panes(rows: &[RecordedRow]) -> Vec<(String, i64, i64, i64, String, u64, bool)> {
    rows.iter()
        .filter(|r| r.committed)
        .map(|r| {
            (
                r.row["k"].as_str().unwrap().to_string(),
                r.row["n"].as_i64().unwrap(),
                r.meta.window.start,
                r.meta.window.end,
                r.meta.pane.timing.as_str().to_string(),
                r.meta.pane.index,
                r.meta.pane.is_last,
            )
        })
        .collect()
}

/// (k, n, start, end) of committed rows, sorted.
pub fn counts(rows: &[RecordedRow]) -> Vec<(String, i64, i64, i64)> {
    let mut out: Vec<_> = panes(rows)
        .into_iter()
        .map(|(k, n, s, e, ..)| (k, n, s, e))
        .collect();
    out.sort();
    out
}

pub fn c(k: &str, n: i64, s: i64, e: i64) -> (String, i64, i64, i64) {
    (k.to_string(), n, s, e)
}
