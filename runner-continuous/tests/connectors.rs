//! Real sinks under checkpoints: a run killed at a named point and restored from its latest
//! checkpoint leaves the same committed content as an uninterrupted run — in a Parquet
//! directory (read through its manifest) and in a PostgreSQL table (two-phase commit with
//! prepared transactions; needs the server of `.ci/services` and fails saying so without it).

use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use weir_model::io::{
    BadRecordPolicy, PostgresSinkSpec, PostgresWriteMode, SinkMetadata, SinkSpec, SourceSpec,
};
use weir_model::plan::Plan;
use weir_model::runner::PipelineOptions;
use weir_model::transform::Transform;
use weir_model::udf::Row;
use weir_model::{plan, DataType, Field, Pipeline, Schema};
use weir_runner_continuous::checkpoint::Killed;
use weir_runner_continuous::{ContinuousRun, ContinuousRunner};
use weir_runner_core::convert::batch_to_rows;
use weir_runner_core::io::{build_source, MemorySource, SinkRegistry, SourcePoll};

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("user", DataType::String),
        Field::new("p", DataType::Int64),
        Field::new("n", DataType::Int64),
    ])
}

/// Three partitions of 40 rows → `sink`.
fn copy_plan(source: &str, sink: SinkSpec) -> Plan {
    let partitions: Vec<Vec<Row>> = (0..3)
        .map(|p| {
            (0..40)
                .map(|i| {
                    json!({"user": format!("u{}", (i + p) % 4), "p": p, "n": i})
                        .as_object()
                        .unwrap()
                        .clone()
                })
                .collect()
        })
        .collect();
    MemorySource::register(source, partitions);
    let mut p = Pipeline::new();
    p.add(
        "Events",
        vec![],
        Transform::Read {
            source: SourceSpec::Memory {
                name: source.into(),
            },
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

/// Where the runs are killed (the plan has no operator between source and sink, so there is
/// no `during-snapshot` point).
const KILLS: [&str; 4] = [
    "after-records:30",
    "after-records:70",
    "before-commit:1",
    "before-commit:3",
];

fn run(plan: &Plan, dir: &Path, args: &[&str]) -> anyhow::Result<ContinuousRun> {
    let mut all = vec![
        "weir",
        "--runner",
        "continuous",
        "--set",
        "clock=manual",
        "--checkpoint-dir",
        dir.to_str().unwrap(),
        "--checkpoint-interval",
        "2s",
        "--parallelism",
        "2",
    ];
    all.extend_from_slice(args);
    ContinuousRunner::with_sinks(SinkRegistry::new())
        .execute(plan, &PipelineOptions::from_args(all)?)
}

/// Runs `make_plan()` killed at `kill`, then restored; `make_plan` registers its source.
/// When the kill came before the first checkpoint completed (subtasks run concurrently, so
/// an early kill may), the second run starts afresh instead, as a user would: nothing was
/// committed, and the sink must roll back what the killed run left prepared.
fn killed_and_restored(make_plan: &dyn Fn() -> Plan, kill: &str) {
    let dir = tempfile::tempdir().unwrap();
    let kill = format!("kill_at={kill}");
    let err = run(&make_plan(), dir.path(), &["--set", &kill]).expect_err("the kill fires");
    assert!(err.downcast_ref::<Killed>().is_some(), "{err:#}");
    match run(&make_plan(), dir.path(), &["--set", "restore=latest"]) {
        Ok(restored) => assert!(restored.restored_from.is_some()),
        Err(e) if e.to_string().contains("no completed checkpoint") => {
            run(&make_plan(), dir.path(), &[]).unwrap();
        }
        Err(e) => panic!("the restored run failed: {e:#}"),
    }
}

fn expected_rows() -> Vec<String> {
    let mut rows: Vec<String> = (0..3)
        .flat_map(|p| (0..40).map(move |i| format!("u{}|{p}|{i}", (i + p) % 4)))
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
                let s = |k: &str| match &r[k] {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                rows.push(format!("{}|{}|{}", s("user"), s("p"), s("n")));
            }
        }
    }
    rows.sort();
    rows
}

#[test]
fn parquet_output_of_a_killed_and_restored_run_equals_the_uninterrupted_output() {
    for (i, kill) in KILLS.iter().enumerate() {
        let out = tempfile::tempdir().unwrap();
        let source = format!("parquet-continuous-{i}");
        let make = || {
            copy_plan(
                &source,
                SinkSpec::Parquet {
                    path: out.path().display().to_string(),
                },
            )
        };
        killed_and_restored(&make, kill);
        MemorySource::unregister(&source);
        assert_eq!(
            parquet_rows(out.path()),
            expected_rows(),
            "killed at {kill}"
        );
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

fn postgres_sink(table: &str) -> SinkSpec {
    SinkSpec::Postgres(Box::new(PostgresSinkSpec {
        connection: None,
        host: Some("127.0.0.1".into()),
        port: Some(5432),
        database: Some("test".into()),
        user: Some("postgres".into()),
        password_env: None,
        password_file: None,
        table: table.into(),
        mode: PostgresWriteMode::Insert,
        batch_size: 50,
        job: Some(table.into()),
    }))
}

fn reset_table(table: &str) {
    psql("CREATE TABLE IF NOT EXISTS weir_sink_progress (sink_id TEXT NOT NULL, batch_id BIGINT NOT NULL, committed_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (sink_id, batch_id))");
    psql(&format!(
        "DELETE FROM weir_sink_progress WHERE sink_id = '{table}'"
    ));
    for gid in psql(&format!(
        "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'weir:{table}:%'"
    )) {
        psql(&format!("ROLLBACK PREPARED '{gid}'"));
    }
    // After the rollbacks: a leftover prepared transaction would hold the table's lock.
    psql(&format!("DROP TABLE IF EXISTS {table}"));
}

#[test]
fn postgres_rows_of_a_killed_and_restored_run_are_committed_exactly_once() {
    for (i, kill) in KILLS.iter().enumerate() {
        let table = format!("weir_test_continuous_{i}");
        reset_table(&table);
        let source = format!("postgres-continuous-{i}");
        let make = || copy_plan(&source, postgres_sink(&table));
        killed_and_restored(&make, kill);
        MemorySource::unregister(&source);
        let mut rows = psql(&format!(
            "SELECT \"user\" || '|' || p || '|' || n FROM {table}"
        ));
        rows.sort();
        assert_eq!(rows, expected_rows(), "killed at {kill}");
        assert!(
            psql(&format!(
                "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'weir:{table}:%'"
            ))
            .is_empty(),
            "no prepared transaction is left behind (killed at {kill})"
        );
    }
}

#[test]
fn jetstream_to_postgres_killed_and_restored_commits_every_message_once() {
    if std::net::TcpStream::connect("127.0.0.1:4222").is_err() {
        panic!("NATS service missing at 127.0.0.1:4222 (start it with `.ci/services`)");
    }
    let url = "nats://127.0.0.1:4222";
    for (i, kill) in KILLS.iter().enumerate() {
        let stream = format!("weircont{i}");
        weir_runner_core::io::recreate_stream(url, &stream, &[format!("{stream}.>")]).unwrap();
        // The input: the copy plan's 120 rows, one subject per partition.
        for p in 0..3i64 {
            let mut publisher = weir_runner_core::io::build_sink(
                "Publish",
                &SinkSpec::JetStream {
                    url: url.into(),
                    subject: format!("{stream}.p{p}"),
                    job: Some(format!("{stream}-input-{p}")),
                    create_stream: None,
                },
                SinkMetadata::default(),
                &schema(),
                false,
                &SinkRegistry::new(),
            )
            .unwrap();
            let rows: Vec<Row> = (0..40)
                .map(|n| {
                    json!({"user": format!("u{}", (n + p) % 4), "p": p, "n": n})
                        .as_object()
                        .unwrap()
                        .clone()
                })
                .collect();
            let metas = vec![weir_runner_core::batch::ElementMeta::default(); rows.len()];
            let batch = weir_runner_core::convert::rows_to_batch(&rows, &metas, &schema()).unwrap();
            publisher.write(&batch, 0).unwrap();
            publisher.commit(0, 0).unwrap();
        }
        let table = format!("weir_test_js_continuous_{i}");
        reset_table(&table);
        let make = || {
            let mut p = Pipeline::new();
            p.add(
                "Events",
                vec![],
                Transform::Read {
                    source: SourceSpec::JetStream(Box::new(weir_model::io::JetStreamSourceSpec {
                        url: url.into(),
                        stream: stream.clone(),
                        subjects: (0..3).map(|p| format!("{stream}.p{p}")).collect(),
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
                    sink: postgres_sink(&table),
                    metadata: SinkMetadata::default(),
                },
            );
            plan(&p).unwrap()
        };
        killed_and_restored(&make, kill);
        let mut rows = psql(&format!(
            "SELECT \"user\" || '|' || p || '|' || n FROM {table}"
        ));
        rows.sort();
        assert_eq!(rows, expected_rows(), "killed at {kill}");
    }
}

/// `examples/exactly-once-postgres.yaml` with its stream, table and job renamed for a test.
fn postgres_example(stream: &str, table: &str) -> Plan {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut p =
        weir_model::file::parse_file(&root.join("examples/exactly-once-postgres.yaml")).unwrap();
    for node in &mut p.transforms {
        match &mut node.transform {
            Transform::Read {
                source: SourceSpec::JetStream(spec),
                ..
            } => {
                spec.stream = stream.into();
                spec.subjects = vec![format!("{stream}.eu"), format!("{stream}.us")];
                // Paced for `weir soak`; a test has its own small input.
                spec.rate = None;
            }
            Transform::Write {
                sink: SinkSpec::Postgres(spec),
                ..
            } => {
                spec.table = table.into();
                spec.job = Some(table.into());
            }
            _ => {}
        }
    }
    plan(&p).unwrap()
}

/// Publishes the orders of `examples/parquet_roundtrip/orders.jsonl`, alternating subjects,
/// in file (event-time) order, one commit per row.
fn publish_orders(stream: &str) {
    let url = "nats://127.0.0.1:4222";
    weir_runner_core::io::recreate_stream(url, stream, &[format!("{stream}.>")]).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let text =
        std::fs::read_to_string(root.join("examples/parquet_roundtrip/orders.jsonl")).unwrap();
    let order_schema = Schema::new(vec![
        Field::new("user", DataType::String),
        Field::new("amount", DataType::Float64),
        Field::new("ts", DataType::Timestamp),
    ]);
    for (i, region) in ["eu", "us"].iter().enumerate() {
        let mut publisher = weir_runner_core::io::build_sink(
            "Publish",
            &SinkSpec::JetStream {
                url: url.into(),
                subject: format!("{stream}.{region}"),
                job: Some(format!("{stream}-{region}")),
                create_stream: None,
            },
            SinkMetadata::default(),
            &order_schema,
            false,
            &SinkRegistry::new(),
        )
        .unwrap();
        let rows: Vec<Row> = text
            .lines()
            .skip(i)
            .step_by(2)
            .map(|l| {
                serde_json::from_str::<Value>(l)
                    .unwrap()
                    .as_object()
                    .unwrap()
                    .clone()
            })
            .collect();
        for (epoch, row) in rows.into_iter().enumerate() {
            let metas = [weir_runner_core::batch::ElementMeta::default()];
            let batch =
                weir_runner_core::convert::rows_to_batch(&[row], &metas, &order_schema).unwrap();
            publisher.write(&batch, 0).unwrap();
            publisher.commit(epoch as u64, 0).unwrap();
        }
    }
}

#[test]
fn the_exactly_once_postgres_example_upserts_each_window_once() {
    if std::net::TcpStream::connect("127.0.0.1:4222").is_err() {
        panic!("NATS service missing at 127.0.0.1:4222 (start it with `.ci/services`)");
    }
    let (stream, table) = ("weireo", "weir_test_eo_example");
    publish_orders(stream);
    reset_table(table);
    let dir = tempfile::tempdir().unwrap();
    run(&postgres_example(stream, table), dir.path(), &[]).unwrap();
    let rows = psql(&format!(
        "SELECT \"user\" || '|' || to_char(window_start AT TIME ZONE 'UTC', 'HH24:MI') || '|' || total || '|' || orders \
         FROM {table} ORDER BY 1"
    ));
    assert_eq!(
        rows,
        [
            "ana|10:00|20|2",
            "ana|10:02|2|1",
            "bo|10:00|3|1",
            "bo|10:01|10|1",
            "cy|10:01|1.25|1"
        ]
    );
    assert!(psql(&format!(
        "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'weir:{table}:%'"
    ))
    .is_empty());
}

#[test]
fn jetstream_sink_of_a_killed_and_restored_run_stores_each_row_once() {
    if std::net::TcpStream::connect("127.0.0.1:4222").is_err() {
        panic!("NATS service missing at 127.0.0.1:4222 (start it with `.ci/services`)");
    }
    let url = "nats://127.0.0.1:4222";
    for (i, kill) in KILLS.iter().enumerate() {
        let stream = format!("weircontsink{i}");
        weir_runner_core::io::recreate_stream(url, &stream, &[format!("{stream}.>")]).unwrap();
        let source = format!("jetstream-sink-continuous-{i}");
        let make = || {
            copy_plan(
                &source,
                SinkSpec::JetStream {
                    url: url.into(),
                    subject: format!("{stream}.out"),
                    job: Some(stream.clone()),
                    create_stream: None,
                },
            )
        };
        killed_and_restored(&make, kill);
        MemorySource::unregister(&source);
        let spec = SourceSpec::JetStream(Box::new(weir_model::io::JetStreamSourceSpec {
            url: url.into(),
            stream: stream.clone(),
            subjects: vec![],
            message_timestamp: None,
            bounded: true,
            rate: None,
        }));
        let mut check = build_source("Check", &spec, &schema(), &BadRecordPolicy::Fail).unwrap();
        let mut rows = Vec::new();
        while let SourcePoll::Batch { data, .. } = check.poll(0, 1000, 0).unwrap() {
            for r in batch_to_rows(&data) {
                let user = r["user"].as_str().unwrap().to_string();
                rows.push(format!("{user}|{}|{}", r["p"], r["n"]));
            }
        }
        rows.sort();
        assert_eq!(rows, expected_rows(), "killed at {kill}");
    }
}
