//! The PostgreSQL sink against the real server (127.0.0.1:5432, trust auth, user postgres,
//! database `test`; `.ci/services` starts and configures it). Each test uses its own table
//! and sink id. A missing server fails the tests, saying so.

use serde_json::json;
use std::time::Duration;
use weir_model::io::{PostgresSinkSpec, PostgresWriteMode, SinkMetadata, SinkSpec};
use weir_model::{DataType, Field, Schema};
use weir_runner_core::batch::ElementMeta;
use weir_runner_core::convert::rows_to_batch;
use weir_runner_core::io::{build_sink, Sink, SinkRegistry};

const HOST: &str = "127.0.0.1";
const PORT: u16 = 5432;

/// Fails the test, saying the service is missing, when nothing listens on the port.
fn require_server() {
    let addr = format!("{HOST}:{PORT}").parse().unwrap();
    if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
        panic!(
            "PostgreSQL service missing: nothing answers at {HOST}:{PORT}. \
             These tests need the real server; start it with `.ci/services`."
        );
    }
}

/// Runs SQL on the test database and returns every row's columns as text.
fn query(sql: &str) -> Vec<Vec<Option<String>>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(
            &format!("host={HOST} port={PORT} user=postgres dbname=test"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let messages = client.simple_query(sql).await.unwrap();
        messages
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect()
    })
}

fn fresh(table: &str) {
    require_server();
    query(
        "CREATE TABLE IF NOT EXISTS weir_sink_progress (sink_id TEXT NOT NULL, batch_id BIGINT NOT NULL, \
         committed_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (sink_id, batch_id))",
    );
    query(&format!(
        "DELETE FROM weir_sink_progress WHERE sink_id = '{table}'"
    ));
    for row in query(&format!(
        "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'weir:{table}:%'"
    )) {
        query(&format!(
            "ROLLBACK PREPARED '{}'",
            row[0].as_deref().unwrap()
        ));
    }
    // After the rollbacks: a leftover prepared transaction would hold the table's lock.
    query(&format!("DROP TABLE IF EXISTS {table}"));
}

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("user", DataType::String),
        Field::new("amount", DataType::Int64),
        Field::new("price", DataType::Float64),
        Field::new("at", DataType::Timestamp),
        Field::new("tags", DataType::List(Box::new(DataType::String))),
        Field::new("ok", DataType::Boolean),
    ])
}

fn batch(rows: serde_json::Value) -> arrow::record_batch::RecordBatch {
    let rows: Vec<_> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect();
    rows_to_batch(&rows, &vec![ElementMeta::default(); rows.len()], &schema()).unwrap()
}

fn spec(table: &str, mode: PostgresWriteMode) -> PostgresSinkSpec {
    PostgresSinkSpec {
        connection: Some(format!("host={HOST} port={PORT} dbname=test")),
        host: None,
        port: None,
        database: None,
        user: Some("postgres".into()),
        password_env: None,
        password_file: None,
        table: table.into(),
        mode,
        batch_size: 2,
        job: Some(table.into()),
    }
}

fn sink(spec: PostgresSinkSpec) -> Box<dyn Sink> {
    build_sink(
        "Out",
        &SinkSpec::Postgres(Box::new(spec)),
        SinkMetadata::default(),
        &schema(),
        false,
        &SinkRegistry::new(),
    )
    .unwrap()
}

#[test]
fn insert_mode_creates_the_table_maps_types_and_commits_per_batch() {
    let table = "weir_test_insert";
    fresh(table);
    let mut s = sink(spec(table, PostgresWriteMode::Insert));
    s.write(
        &batch(json!([
            {"user": "a", "amount": 1, "price": 1.5, "at": 0, "tags": ["x", "y"], "ok": true},
            {"user": "b", "amount": null, "price": null, "at": null, "tags": null, "ok": null},
            {"user": "c", "amount": 3, "price": 2.0, "at": 1_700_000_000_123i64, "tags": [], "ok": false},
        ])),
        0,
    )
    .unwrap();
    assert!(
        query(&format!("SELECT * FROM {table}")).is_empty(),
        "nothing before the commit"
    );
    s.commit(0, 0).unwrap();
    let got = query(&format!(
        "SELECT \"user\", amount, price, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS'), tags::text, ok FROM {table} ORDER BY \"user\""
    ));
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        got,
        vec![
            vec![
                s("a"),
                s("1"),
                s("1.5"),
                s("1970-01-01 00:00:00.000"),
                s("[\"x\", \"y\"]"),
                s("t")
            ],
            vec![s("b"), None, None, None, None, None],
            vec![
                s("c"),
                s("3"),
                s("2"),
                s("2023-11-14 22:13:20.123"),
                s("[]"),
                s("f")
            ],
        ]
    );
    let types = query(&format!(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = '{table}' ORDER BY ordinal_position"
    ));
    let types: Vec<String> = types.iter().map(|r| r[1].clone().unwrap()).collect();
    assert_eq!(
        types,
        [
            "text",
            "bigint",
            "double precision",
            "timestamp with time zone",
            "jsonb",
            "boolean"
        ]
    );
}

#[test]
fn a_replayed_batch_recorded_in_the_progress_table_is_skipped() {
    let table = "weir_test_replay";
    fresh(table);
    let rows =
        json!([{"user": "a", "amount": 1}, {"user": "b", "amount": 2}, {"user": "c", "amount": 3}]);
    let mut s = sink(spec(table, PostgresWriteMode::Insert));
    s.write(&batch(rows.clone()), 0).unwrap();
    s.commit(7, 0).unwrap();
    drop(s);
    // A restarted query re-runs batch 7 (it crashed before its commit log), then batch 8.
    let mut again = sink(spec(table, PostgresWriteMode::Insert));
    again.write(&batch(rows), 0).unwrap();
    again.commit(7, 0).unwrap();
    again
        .write(&batch(json!([{"user": "d", "amount": 4}])), 0)
        .unwrap();
    again.commit(8, 0).unwrap();
    assert_eq!(
        query(&format!("SELECT count(*) FROM {table}")),
        vec![vec![Some("4".to_string())]]
    );
    assert_eq!(
        query(&format!(
            "SELECT batch_id FROM weir_sink_progress WHERE sink_id = '{table}' ORDER BY batch_id"
        )),
        vec![vec![Some("7".to_string())], vec![Some("8".to_string())]]
    );
}

#[test]
fn upsert_mode_keeps_the_last_row_per_key() {
    let table = "weir_test_upsert";
    fresh(table);
    let mode = PostgresWriteMode::Upsert {
        key: vec!["user".into()],
    };
    let mut s = sink(spec(table, mode));
    s.write(
        &batch(json!([{"user": "a", "amount": 1}, {"user": "a", "amount": 2}, {"user": "b", "amount": 5}])),
        0,
    )
    .unwrap();
    s.commit(0, 0).unwrap();
    s.write(&batch(json!([{"user": "b", "amount": 6}])), 0)
        .unwrap();
    s.commit(1, 0).unwrap();
    assert_eq!(
        query(&format!(
            "SELECT \"user\", amount FROM {table} ORDER BY \"user\""
        )),
        vec![
            vec![Some("a".to_string()), Some("2".to_string())],
            vec![Some("b".to_string()), Some("6".to_string())],
        ]
    );
}

#[test]
fn two_phase_commit_prepares_at_the_barrier_and_recovery_rolls_back_unlisted_transactions() {
    let table = "weir_test_two_phase";
    fresh(table);
    let mut s = sink(spec(table, PostgresWriteMode::Insert));
    let tpc = s
        .native_two_phase()
        .expect("postgres has a native two-phase commit");
    tpc.recover(&[], 0).unwrap();
    drop(s);
    let mut s = sink(spec(table, PostgresWriteMode::Insert));
    s.write(&batch(json!([{"user": "a", "amount": 1}])), 0)
        .unwrap();
    s.native_two_phase().unwrap().prepare(1, 0).unwrap();
    s.write(&batch(json!([{"user": "b", "amount": 2}])), 0)
        .unwrap();
    s.native_two_phase().unwrap().prepare(2, 0).unwrap();
    let prepared = query(&format!(
        "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'weir:{table}:%' ORDER BY gid"
    ));
    assert_eq!(
        prepared,
        vec![
            vec![Some(format!("weir:{table}:1:0"))],
            vec![Some(format!("weir:{table}:2:0"))]
        ]
    );
    assert!(
        query(&format!("SELECT * FROM {table}")).is_empty(),
        "prepared is not visible"
    );
    drop(s);

    // The job dies; it restores a checkpoint listing only checkpoint 1 as pending.
    let mut restored = sink(spec(table, PostgresWriteMode::Insert));
    let tpc = restored.native_two_phase().unwrap();
    tpc.recover(&[1], 0).unwrap();
    tpc.commit_prepared(1, 0).unwrap();
    // Committing again (a crash after COMMIT PREPARED, before Weir noted it) is fine.
    tpc.commit_prepared(1, 0).unwrap();
    assert_eq!(
        query(&format!("SELECT \"user\" FROM {table}")),
        vec![vec![Some("a".to_string())]]
    );
    assert!(query(&format!(
        "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'weir:{table}:%'"
    ))
    .is_empty());
    // Checkpoint 2 was rolled back: committing it is an error naming the sink.
    let err = tpc.commit_prepared(2, 0).unwrap_err().to_string();
    assert!(err.contains("checkpoint 2") && err.contains(table), "{err}");
}

#[test]
fn a_password_comes_from_the_environment_and_never_appears_in_errors() {
    require_server();
    let mut bad = spec("weir_test_password", PostgresWriteMode::Insert);
    bad.connection = None;
    bad.host = Some(HOST.into());
    bad.port = Some(1); // nothing listens there
    bad.password_env = Some("WEIR_TEST_PG_PASSWORD".into());
    std::env::set_var("WEIR_TEST_PG_PASSWORD", "s3cret-value");
    let err = build_sink(
        "Out",
        &SinkSpec::Postgres(Box::new(bad.clone())),
        SinkMetadata::default(),
        &schema(),
        false,
        &SinkRegistry::new(),
    )
    .err()
    .expect("the sink cannot connect")
    .to_string();
    assert!(!err.contains("s3cret-value"), "{err}");
    assert!(
        err.contains("127.0.0.1:1") && err.contains("weir_test_password"),
        "{err}"
    );
    bad.password_env = Some("WEIR_TEST_PG_PASSWORD_UNSET".into());
    let err = build_sink(
        "Out",
        &SinkSpec::Postgres(Box::new(bad)),
        SinkMetadata::default(),
        &schema(),
        false,
        &SinkRegistry::new(),
    )
    .err()
    .expect("the sink cannot connect")
    .to_string();
    assert!(err.contains("WEIR_TEST_PG_PASSWORD_UNSET"), "{err}");
}

#[test]
fn a_lost_connection_is_reconnected_and_the_batch_committed_once() {
    let table = "weir_test_reconnect";
    fresh(table);
    let mut s = sink(spec(table, PostgresWriteMode::Insert));
    s.write(&batch(json!([{"user": "a", "amount": 1}])), 0)
        .unwrap();
    s.commit(0, 0).unwrap();
    // The server ends the sink's session (as a restart would).
    let killed = query(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'weir {table}'"
    ));
    assert_eq!(killed, vec![vec![Some("t".to_string())]]);
    s.write(
        &batch(json!([{"user": "b", "amount": 2}, {"user": "c", "amount": 3}])),
        0,
    )
    .unwrap();
    s.commit(1, 0).unwrap();
    assert_eq!(
        query(&format!("SELECT count(*) FROM {table}")),
        vec![vec![Some("3".to_string())]]
    );
}
