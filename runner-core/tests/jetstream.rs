//! The JetStream source and sink against the real server (127.0.0.1:4222 with JetStream;
//! `.ci/services` starts it). Each test uses its own stream. A missing server fails the
//! tests, saying so.

use serde_json::{json, Value};
use std::time::Duration;
use weir_model::io::{BadRecordPolicy, JetStreamSourceSpec, SinkMetadata, SinkSpec, SourceSpec};
use weir_model::{DataType, Field, Schema};
use weir_runner_core::batch::ElementMeta;
use weir_runner_core::convert::{batch_to_rows, rows_to_batch};
use weir_runner_core::io::{build_sink, build_source, SinkRegistry, Source, SourcePoll};

const URL: &str = "nats://127.0.0.1:4222";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A connection and the runtime that drives it.
struct Nats {
    rt: tokio::runtime::Runtime,
    js: async_nats::jetstream::Context,
}

/// A fresh stream `name` capturing `<name>.>`; fails saying the service is missing when
/// nothing answers.
fn fresh_stream(name: &str) -> Nats {
    let addr = "127.0.0.1:4222".parse().unwrap();
    if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
        panic!(
            "NATS service missing: nothing answers at 127.0.0.1:4222. These tests need the real \
             server with JetStream; start it with `.ci/services`."
        );
    }
    let rt = runtime();
    let js = rt.block_on(async {
        let client = async_nats::connect(URL).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let _ = js.delete_stream(name).await;
        js.create_stream(async_nats::jetstream::stream::Config {
            name: name.to_string(),
            subjects: vec![format!("{name}.>")],
            ..Default::default()
        })
        .await
        .unwrap();
        js
    });
    Nats { rt, js }
}

fn publish(nats: &Nats, subject: &str, payload: Value) {
    let js = nats.js.clone();
    let subject = subject.to_string();
    nats.rt.block_on(async move {
        js.publish(subject, payload.to_string().into_bytes().into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
}

/// Every payload stored in `stream`, in sequence order.
fn stored(stream: &str) -> Vec<Value> {
    let schema = Schema::new(vec![
        Field::new("user", DataType::String),
        Field::new("n", DataType::Int64),
    ]);
    let spec = SourceSpec::JetStream(Box::new(JetStreamSourceSpec {
        url: URL.into(),
        stream: stream.into(),
        subjects: vec![],
        message_timestamp: None,
        bounded: true,
        rate: None,
    }));
    let mut source = build_source("Check", &spec, &schema, &BadRecordPolicy::Fail).unwrap();
    drain(source.as_mut(), 0, 100)
}

fn drain(source: &mut dyn Source, partition: u32, max: usize) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        match source.poll(partition, max, 0).unwrap() {
            SourcePoll::Batch { data, .. } => {
                out.extend(batch_to_rows(&data).into_iter().map(Value::Object))
            }
            SourcePoll::Ended | SourcePoll::Pending => return out,
        }
    }
}

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("user", DataType::String),
        Field::new("n", DataType::Int64),
    ])
}

#[test]
fn subjects_are_partitions_positions_are_sequences_and_a_seek_replays() {
    let js = fresh_stream("weirsrc");
    for n in 0..5 {
        publish(&js, "weirsrc.a", json!({"user": "a", "n": n}));
        publish(&js, "weirsrc.b", json!({"user": "b", "n": n}));
    }
    let spec = SourceSpec::JetStream(Box::new(JetStreamSourceSpec {
        url: URL.into(),
        stream: "weirsrc".into(),
        subjects: vec!["weirsrc.a".into(), "weirsrc.b".into()],
        message_timestamp: Some("stored_at".into()),
        bounded: true,
        rate: None,
    }));
    let mut with_ts = schema();
    with_ts
        .fields
        .push(Field::new("stored_at", DataType::Timestamp));
    let mut source = build_source("In", &spec, &with_ts, &BadRecordPolicy::Fail).unwrap();
    assert_eq!(source.partitions(), 2);
    let SourcePoll::Batch { data, .. } = source.poll(0, 2, 0).unwrap() else {
        panic!("no rows")
    };
    let first = batch_to_rows(&data);
    assert_eq!(first.len(), 2);
    assert_eq!(
        (first[0]["user"].clone(), first[1]["n"].clone()),
        (json!("a"), json!(1))
    );
    assert!(first[0]["stored_at"].as_i64().unwrap() > 1_700_000_000_000);
    // a's messages are the odd sequences 1, 3, 5, ...
    let position = source.position(0);
    assert_eq!(position, json!({"seq": 3}));
    let rest: Vec<Value> = drain(source.as_mut(), 0, 10)
        .iter()
        .map(|r| r["n"].clone())
        .collect();
    assert_eq!(rest, [json!(2), json!(3), json!(4)]);
    assert!(matches!(source.poll(0, 10, 0).unwrap(), SourcePoll::Ended));
    assert_eq!(drain(source.as_mut(), 1, 10).len(), 5);

    // A restored source seeks to the logged position and replays what came after it.
    let mut again = build_source("In", &spec, &with_ts, &BadRecordPolicy::Fail).unwrap();
    again.seek(0, &position).unwrap();
    let replayed: Vec<Value> = drain(again.as_mut(), 0, 10)
        .iter()
        .map(|r| r["n"].clone())
        .collect();
    assert_eq!(replayed, [json!(2), json!(3), json!(4)]);
}

#[test]
fn an_unbounded_source_is_pending_until_messages_arrive_and_bad_ones_are_dead_letters() {
    let js = fresh_stream("weirlive");
    let spec = SourceSpec::JetStream(Box::new(JetStreamSourceSpec {
        url: URL.into(),
        stream: "weirlive".into(),
        subjects: vec![],
        message_timestamp: None,
        bounded: false,
        rate: None,
    }));
    let policy = BadRecordPolicy::DeadLetter { tag: "bad".into() };
    let mut source = build_source("In", &spec, &schema(), &policy).unwrap();
    assert!(matches!(
        source.poll(0, 10, 0).unwrap(),
        SourcePoll::Pending
    ));
    publish(&js, "weirlive.x", json!({"user": "a", "n": 1}));
    publish(&js, "weirlive.x", json!([1, 2]));
    let SourcePoll::Batch { data, dead_letters } = source.poll(0, 10, 0).unwrap() else {
        panic!("no rows")
    };
    assert_eq!(data.num_rows(), 1);
    let dead = batch_to_rows(&dead_letters.expect("a dead letter"));
    assert_eq!(dead[0]["line"], json!(2));
    assert!(dead[0]["error"].as_str().unwrap().contains("JSON object"));
    assert!(matches!(
        source.poll(0, 10, 0).unwrap(),
        SourcePoll::Pending
    ));
}

#[test]
fn the_sink_publishes_with_message_ids_so_a_replayed_epoch_is_stored_once() {
    let _js = fresh_stream("weirsink");
    let sink_spec = SinkSpec::JetStream {
        url: URL.into(),
        subject: "weirsink.out".into(),
        job: Some("weirsink-test".into()),
        create_stream: None,
    };
    let sink = || {
        build_sink(
            "Out",
            &sink_spec,
            SinkMetadata::default(),
            &schema(),
            false,
            &SinkRegistry::new(),
        )
        .unwrap()
    };
    let rows = |r: Value| {
        let rows: Vec<_> = r
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_object().unwrap().clone())
            .collect();
        rows_to_batch(&rows, &vec![ElementMeta::default(); rows.len()], &schema()).unwrap()
    };
    let mut s = sink();
    s.write(
        &rows(json!([{"user": "a", "n": 1}, {"user": "b", "n": 2}])),
        0,
    )
    .unwrap();
    s.commit(1, 0).unwrap();
    drop(s);
    // The restarted job replays epoch 1 with the rows in another order, then epoch 2.
    let mut again = sink();
    again
        .write(
            &rows(json!([{"user": "b", "n": 2}, {"user": "a", "n": 1}])),
            0,
        )
        .unwrap();
    again.commit(1, 0).unwrap();
    again
        .write(&rows(json!([{"user": "c", "n": 3}])), 0)
        .unwrap();
    again.commit(2, 0).unwrap();
    let users: Vec<Value> = stored("weirsink")
        .iter()
        .map(|r| r["user"].clone())
        .collect();
    assert_eq!(users, [json!("a"), json!("b"), json!("c")]);
}

#[test]
fn a_missing_stream_is_an_error_naming_it() {
    let _js = fresh_stream("weirother");
    let spec = SourceSpec::JetStream(Box::new(JetStreamSourceSpec {
        url: URL.into(),
        stream: "weir_no_such_stream".into(),
        subjects: vec![],
        message_timestamp: None,
        bounded: true,
        rate: None,
    }));
    let err = build_source("In", &spec, &schema(), &BadRecordPolicy::Fail)
        .err()
        .expect("no such stream")
        .to_string();
    assert!(err.contains("weir_no_such_stream"), "{err}");
}
