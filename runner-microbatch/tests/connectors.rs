//! Real sinks under the micro-batch runner's exactly-once protocol: a query stopped at each
//! crash point and restarted from its checkpoint leaves the committed content of an
//! uninterrupted run — in a Parquet directory (read through its manifest) and in a
//! PostgreSQL table (one transaction per batch with its `weir_sink_progress` row; needs the
//! server of `.ci/services` and fails saying so without it). Removing the runner's sink
//! ledger after a sink commit shows the sink's own replay check at work.

mod common;

use common::unique;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use weir_model::io::{
    BadRecordPolicy, PostgresSinkSpec, PostgresWriteMode, SinkMetadata, SinkSpec, SourceSpec,
};
use weir_model::transform::Transform;
use weir_model::udf::Row;
use weir_model::{plan, DataType, Field, Pipeline, Plan, Schema};
use weir_runner_core::convert::batch_to_rows;
use weir_runner_core::io::{build_source, MemorySource, SinkRegistry, SourcePoll};
use weir_runner_microbatch::{
    Clock, ManualClock, MicroBatchError, MicroBatchQuery, QueryConfig, StopPoint,
};

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("user", DataType::String),
        Field::new("n", DataType::Int64),
    ])
}

/// Two partitions of 10 rows, read 2 rows per partition per batch → `sink`.
fn copy_plan(sink: SinkSpec) -> Plan {
    let source = unique("connectors");
    let partitions: Vec<Vec<Row>> = (0..2)
        .map(|p| {
            (0..10)
                .map(|i| {
                    json!({"user": format!("u{p}"), "n": i})
                        .as_object()
                        .unwrap()
                        .clone()
                })
                .collect()
        })
        .collect();
    MemorySource::register(&source, partitions);
    let mut p = Pipeline::new();
    p.add(
        "Events",
        vec![],
        Transform::Read {
            source: SourceSpec::Memory { name: source },
            schema: schema(),
            bad_records: BadRecordPolicy::Fail,
        },
    );
    p.add(
        "Out",
        vec!["Events".into()],
        Transform::Write {
            sink,
            metadata: SinkMetadata::default(),
        },
    );
    plan(&p).unwrap()
}

fn config(dir: &Path) -> QueryConfig {
    QueryConfig {
        checkpoint_dir: Some(dir.to_path_buf()),
        max_rows_per_partition: 2,
        end_of_input: true,
        parallelism: 2,
        ..QueryConfig::default()
    }
}

fn open(plan: &Plan, dir: &Path) -> MicroBatchQuery {
    let clock = ManualClock::new(0);
    MicroBatchQuery::open(plan, config(dir), Clock::Manual(clock), SinkRegistry::new()).unwrap()
}

const STOPS: [StopPoint; 4] = [
    StopPoint::MidBatch(0),
    StopPoint::MidBatch(2),
    StopPoint::AfterSinkCommit(1),
    StopPoint::AfterSinkCommit(3),
];

/// Stops at `stop` (optionally losing the runner's sink ledger, as a crash between the sink
/// commit and the ledger write would), then restarts and finishes.
fn stopped_and_restarted(plan: &Plan, stop: StopPoint, lose_ledger: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut q = open(plan, dir.path());
    q.stop_at(stop);
    match q.run_to_completion() {
        Err(MicroBatchError::Stopped(p)) => assert_eq!(p, stop),
        other => panic!("expected a stop at {stop}, got {other:?}"),
    }
    drop(q);
    if lose_ledger {
        let _ = std::fs::remove_file(dir.path().join("sinks").join("Out"));
    }
    open(plan, dir.path()).run_to_completion().unwrap();
}

fn expected_rows() -> Vec<String> {
    let mut rows: Vec<String> = (0..2)
        .flat_map(|p| (0..10).map(move |i| format!("u{p}|{i}")))
        .collect();
    rows.sort();
    rows
}

fn parquet_rows(dir: &Path) -> Vec<String> {
    let spec = SourceSpec::Parquet {
        path: dir.display().to_string(),
    };
    let mut source = build_source("Check", &spec, &schema(), &BadRecordPolicy::Fail).unwrap();
    let mut rows = Vec::new();
    for p in 0..source.partitions() {
        while let SourcePoll::Batch { data, .. } = source.poll(p, 1000, 0).unwrap() {
            for r in batch_to_rows(&data) {
                let user = match &r["user"] {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                rows.push(format!("{user}|{}", r["n"]));
            }
        }
    }
    rows.sort();
    rows
}

#[test]
fn parquet_output_after_every_stop_point_equals_the_uninterrupted_output() {
    for stop in STOPS {
        for lose_ledger in [false, true] {
            let out = tempfile::tempdir().unwrap();
            let plan = copy_plan(SinkSpec::Parquet {
                path: out.path().display().to_string(),
            });
            stopped_and_restarted(&plan, stop, lose_ledger);
            assert_eq!(
                parquet_rows(out.path()),
                expected_rows(),
                "stopped at {stop}, ledger lost: {lose_ledger}"
            );
        }
    }
}

/// Runs `sql` with psql on the test database; fails saying the service is missing when the
/// server does not answer.
fn psql(sql: &str) -> Vec<String> {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-tA",
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("Connection refused") || err.contains("could not connect") {
            panic!("PostgreSQL service missing at 127.0.0.1:5432 (start it with `.ci/services`): {err}");
        }
        panic!("psql failed on {sql}: {err}");
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn postgres_rows_after_every_stop_point_are_committed_exactly_once() {
    for (i, stop) in STOPS.into_iter().enumerate() {
        for lose_ledger in [false, true] {
            let table = format!("weir_test_microbatch_{i}_{lose_ledger}");
            psql(&format!("DROP TABLE IF EXISTS {table}"));
            psql("CREATE TABLE IF NOT EXISTS weir_sink_progress (sink_id TEXT NOT NULL, batch_id BIGINT NOT NULL, committed_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (sink_id, batch_id))");
            psql(&format!(
                "DELETE FROM weir_sink_progress WHERE sink_id = '{table}'"
            ));
            let plan = copy_plan(SinkSpec::Postgres(Box::new(PostgresSinkSpec {
                connection: Some("host=127.0.0.1 port=5432 dbname=test user=postgres".into()),
                host: None,
                port: None,
                database: None,
                user: None,
                password_env: None,
                password_file: None,
                table: table.clone(),
                mode: PostgresWriteMode::Insert,
                batch_size: 3,
                job: Some(table.clone()),
            })));
            stopped_and_restarted(&plan, stop, lose_ledger);
            let mut rows = psql(&format!("SELECT \"user\" || '|' || n FROM {table}"));
            rows.sort();
            assert_eq!(
                rows,
                expected_rows(),
                "stopped at {stop}, ledger lost: {lose_ledger}"
            );
        }
    }
}

/// `examples/parquet_roundtrip/<file>` with workspace-relative input paths made absolute and
/// the Parquet directory moved to `out`.
fn roundtrip_example(file: &str, out: &Path) -> Plan {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut p =
        weir_model::file::parse_file(&root.join("examples/parquet_roundtrip").join(file)).unwrap();
    for node in &mut p.transforms {
        match &mut node.transform {
            Transform::Read {
                source: SourceSpec::Files { path, .. },
                ..
            } => *path = root.join(&*path).display().to_string(),
            Transform::Read {
                source: SourceSpec::Parquet { path },
                ..
            }
            | Transform::Write {
                sink: SinkSpec::Parquet { path },
                ..
            } => *path = out.display().to_string(),
            _ => {}
        }
    }
    plan(&p).unwrap()
}

#[test]
fn the_parquet_roundtrip_example_writes_on_micro_batch_and_reads_back_its_own_assertion() {
    use weir_model::runner::PipelineOptions;
    let out = tempfile::tempdir().unwrap();
    let checkpoint = tempfile::tempdir().unwrap();
    let options = PipelineOptions::from_args([
        "weir",
        "--runner",
        "microbatch",
        "--set",
        "progress=false",
        "--set",
        "max_rows_per_partition=2",
        "--checkpoint-dir",
        checkpoint.path().to_str().unwrap(),
    ])
    .unwrap();
    weir_runner_microbatch::MicroBatchRunner::new()
        .execute(&roundtrip_example("write.yaml", out.path()), &options)
        .unwrap();
    let entries = weir_runner_core::io::manifest::Manifest::new(out.path())
        .entries()
        .unwrap();
    assert!(
        entries.len() > 1,
        "one file per batch with rows: {entries:?}"
    );
    // read.yaml ends in an AssertEqual of the expected totals.
    weir_runner_direct::DirectRunner::new()
        .execute(
            &roundtrip_example("read.yaml", out.path()),
            &weir_model::runner::PipelineOptions::for_runner("direct"),
        )
        .unwrap();
}

/// Publishes `{user, n}` rows to `subject` through Weir's own JetStream sink.
fn publish_rows(subject: &str, rows: &[(&str, i64)]) {
    let sink = SinkSpec::JetStream {
        url: "nats://127.0.0.1:4222".into(),
        subject: subject.into(),
        job: Some(unique(subject)),
        create_stream: None,
    };
    let mut s = weir_runner_core::io::build_sink(
        "Publish",
        &sink,
        SinkMetadata::default(),
        &schema(),
        false,
        &SinkRegistry::new(),
    )
    .unwrap();
    let rows: Vec<Row> = rows
        .iter()
        .map(|(u, n)| json!({"user": u, "n": n}).as_object().unwrap().clone())
        .collect();
    let metas = vec![weir_runner_core::batch::ElementMeta::default(); rows.len()];
    let batch = weir_runner_core::convert::rows_to_batch(&rows, &metas, &schema()).unwrap();
    s.write(&batch, 0).unwrap();
    s.commit(0, 0).unwrap();
}

#[test]
fn a_jetstream_source_replays_its_logged_sequences_after_every_stop_point() {
    if std::net::TcpStream::connect("127.0.0.1:4222").is_err() {
        panic!("NATS service missing at 127.0.0.1:4222 (start it with `.ci/services`)");
    }
    for (i, stop) in STOPS.into_iter().enumerate() {
        let stream = format!("weirmb{i}");
        weir_runner_core::io::recreate_stream(
            "nats://127.0.0.1:4222",
            &stream,
            &[format!("{stream}.>")],
        )
        .unwrap();
        for p in 0..2 {
            let rows: Vec<(&str, i64)> = (0..10).map(|n| (["u0", "u1"][p], n)).collect();
            publish_rows(&format!("{stream}.p{p}"), &rows);
        }
        let out = tempfile::tempdir().unwrap();
        let mut p = Pipeline::new();
        p.add(
            "Events",
            vec![],
            Transform::Read {
                source: SourceSpec::JetStream(Box::new(weir_model::io::JetStreamSourceSpec {
                    url: "nats://127.0.0.1:4222".into(),
                    stream: stream.clone(),
                    subjects: vec![format!("{stream}.p0"), format!("{stream}.p1")],
                    message_timestamp: None,
                    bounded: true,
                    rate: None,
                })),
                schema: schema(),
                bad_records: BadRecordPolicy::Fail,
            },
        );
        p.add(
            "Out",
            vec!["Events".into()],
            Transform::Write {
                sink: SinkSpec::Parquet {
                    path: out.path().display().to_string(),
                },
                metadata: SinkMetadata::default(),
            },
        );
        stopped_and_restarted(&plan(&p).unwrap(), stop, false);
        assert_eq!(
            parquet_rows(out.path()),
            expected_rows(),
            "stopped at {stop}"
        );
    }
}

#[test]
fn the_exactly_once_parquet_example_survives_a_stop_mid_batch() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut p =
        weir_model::file::parse_file(&root.join("examples/exactly-once-parquet.yaml")).unwrap();
    for node in &mut p.transforms {
        match &mut node.transform {
            Transform::Read {
                source: SourceSpec::Files { path, rate, .. },
                ..
            } => {
                *path = root.join(&*path).display().to_string();
                // Paced for `weir soak`; unpaced here.
                *rate = None;
            }
            Transform::Write {
                sink: SinkSpec::Parquet { path },
                ..
            } => *path = out.path().display().to_string(),
            _ => {}
        }
    }
    stopped_and_restarted(&plan(&p).unwrap(), StopPoint::MidBatch(1), true);
    let order_schema = Schema::new(vec![
        Field::new("user", DataType::String),
        Field::new("amount", DataType::Float64),
    ]);
    let spec = SourceSpec::Parquet {
        path: out.path().display().to_string(),
    };
    let mut source = build_source("Check", &spec, &order_schema, &BadRecordPolicy::Fail).unwrap();
    let mut total = 0.0;
    let mut rows = 0;
    for part in 0..source.partitions() {
        while let SourcePoll::Batch { data, .. } = source.poll(part, 100, 0).unwrap() {
            for r in batch_to_rows(&data) {
                total += r["amount"].as_f64().unwrap();
                rows += 1;
            }
        }
    }
    // The sum of examples/orders/*.jsonl's amounts (quarters: exact in floating point).
    assert_eq!((rows, total), (4000, 200864.25));
}
