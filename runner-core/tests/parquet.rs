//! The Parquet sink and source on real files: a round trip, replayed epochs skipped through
//! the manifest, and files no committed epoch lists invisible to Weir's readers.

use serde_json::{json, Value};
use std::path::Path;
use weir_model::io::{BadRecordPolicy, FileFormat, SinkMetadata, SinkSpec, SourceSpec};
use weir_model::{DataType, Field, Schema};
use weir_runner_core::batch::ElementMeta;
use weir_runner_core::convert::{batch_to_rows, rows_to_batch};
use weir_runner_core::io::manifest::{Manifest, METADATA_DIR};
use weir_runner_core::io::{build_sink, build_source, Sink, SinkRegistry, SourcePoll};

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("user", DataType::String),
        Field::new("amount", DataType::Float64),
        Field::new("at", DataType::Timestamp),
        Field::new("tags", DataType::List(Box::new(DataType::String))),
        Field::new("ok", DataType::Boolean),
    ])
}

fn rows(users: &[&str], base: i64) -> arrow::record_batch::RecordBatch {
    let rows: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let i = i as i64 + base;
            json!({"user": u, "amount": i as f64 / 2.0, "at": 1_700_000_000_000i64 + i,
                   "tags": [u, "x"], "ok": i % 2 == 0})
            .as_object()
            .unwrap()
            .clone()
        })
        .collect();
    rows_to_batch(&rows, &vec![ElementMeta::default(); rows.len()], &schema()).unwrap()
}

fn sink(dir: &Path) -> Box<dyn Sink> {
    let spec = SinkSpec::Parquet {
        path: dir.display().to_string(),
    };
    build_sink(
        "Out",
        &spec,
        SinkMetadata::default(),
        &schema(),
        false,
        &SinkRegistry::new(),
    )
    .unwrap()
}

/// Every row a source over `spec` reads, as sorted JSON text.
fn read(spec: SourceSpec) -> Vec<String> {
    let mut source = build_source("In", &spec, &schema(), &BadRecordPolicy::Fail).unwrap();
    let mut out = Vec::new();
    for p in 0..source.partitions() {
        loop {
            match source.poll(p, 3, 0).unwrap() {
                SourcePoll::Batch { data, .. } => out.extend(
                    batch_to_rows(&data)
                        .into_iter()
                        .map(|r| Value::Object(r).to_string()),
                ),
                SourcePoll::Ended => break,
                SourcePoll::Pending => panic!("a bounded source is never pending"),
            }
        }
    }
    out.sort();
    out
}

fn parquet(dir: &Path) -> SourceSpec {
    SourceSpec::Parquet {
        path: dir.display().to_string(),
    }
}

#[test]
fn rows_written_by_the_sink_read_back_equal_through_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut s = sink(&out);
    let first = rows(&["a", "b", "c", "d"], 0);
    let second = rows(&["e"], 10);
    s.write(&first, 0).unwrap();
    s.commit(0, 0).unwrap();
    s.write(&second, 0).unwrap();
    s.commit(1, 0).unwrap();
    let mut expected: Vec<String> = [first, second]
        .iter()
        .flat_map(batch_to_rows)
        .map(|r| Value::Object(r).to_string())
        .collect();
    expected.sort();
    assert_eq!(read(parquet(&out)), expected);
    // A single file reads the same way.
    assert_eq!(read(parquet(&out.join("part-00001.parquet"))).len(), 1);
    let entries = Manifest::new(&out).entries().unwrap();
    let files: Vec<(u64, String, u64)> = entries
        .iter()
        .flat_map(|e| {
            e.files
                .iter()
                .map(move |f| (e.epoch, f.path.clone(), f.rows))
        })
        .collect();
    assert_eq!(
        files,
        vec![
            (0, "part-00000.parquet".to_string(), 4),
            (1, "part-00001.parquet".to_string(), 1)
        ]
    );
}

#[test]
fn a_replayed_epoch_already_in_the_manifest_is_skipped_even_by_a_new_sink() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path());
    s.write(&rows(&["a", "b"], 0), 0).unwrap();
    s.commit(0, 0).unwrap();
    // The same sink replays epoch 0 (e.g. a micro-batch re-run after a crash).
    s.write(&rows(&["a", "b"], 0), 0).unwrap();
    s.commit(0, 0).unwrap();
    drop(s);
    // A restarted process replays it again, then goes on with epoch 1.
    let mut again = sink(dir.path());
    again.write(&rows(&["a", "b"], 0), 0).unwrap();
    again.commit(0, 0).unwrap();
    again.write(&rows(&["c"], 2), 0).unwrap();
    again.commit(1, 0).unwrap();
    let users: Vec<String> = read(parquet(dir.path()))
        .iter()
        .map(|r| serde_json::from_str::<Value>(r).unwrap()["user"].to_string())
        .collect();
    assert_eq!(users, ["\"a\"", "\"b\"", "\"c\""]);
}

#[test]
fn files_of_uncommitted_epochs_are_invisible_to_the_parquet_and_file_sources() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path());
    s.write(&rows(&["a"], 0), 0).unwrap();
    s.commit(0, 0).unwrap();
    s.write(&rows(&["b"], 1), 0).unwrap();
    s.commit(1, 0).unwrap();
    // A crash after epoch 2's data file but before its manifest entry: simulate by
    // removing the entry of a committed epoch, which leaves exactly that state.
    s.write(&rows(&["z"], 2), 0).unwrap();
    s.commit(2, 0).unwrap();
    let entry = dir
        .path()
        .join(METADATA_DIR)
        .join(format!("{:020}.json", 2));
    std::fs::remove_file(entry).unwrap();
    // And a stray file no sink committed, plus a half-written temp file.
    std::fs::copy(
        dir.path().join("part-00000.parquet"),
        dir.path().join("part-00099.parquet"),
    )
    .unwrap();
    std::fs::write(dir.path().join(".part-00003.parquet.tmp"), b"PAR1").unwrap();
    assert!(dir.path().join("part-00002.parquet").is_file());
    let users: Vec<Value> = read(parquet(dir.path()))
        .iter()
        .map(|r| serde_json::from_str::<Value>(r).unwrap()["user"].clone())
        .collect();
    assert_eq!(users, [json!("a"), json!("b")]);

    // The replay of epoch 2 commits it (rewriting its file), and then it is visible.
    let mut again = sink(dir.path());
    again.write(&rows(&["z"], 2), 0).unwrap();
    again.commit(2, 0).unwrap();
    assert_eq!(read(parquet(dir.path())).len(), 3);

    // Weir's JSON-lines file source honours a manifest the same way.
    let json_dir = tempfile::tempdir().unwrap();
    std::fs::write(json_dir.path().join("a.json"), "{\"user\": \"a\"}\n").unwrap();
    std::fs::write(json_dir.path().join("b.json"), "{\"user\": \"b\"}\n").unwrap();
    Manifest::new(json_dir.path())
        .commit(&weir_runner_core::io::manifest::ManifestEntry {
            version: 1,
            epoch: 0,
            files: vec![weir_runner_core::io::manifest::ManifestFile {
                path: "a.json".into(),
                rows: 1,
                bytes: 14,
            }],
        })
        .unwrap();
    let json_rows = read(SourceSpec::Files {
        path: json_dir.path().display().to_string(),
        format: FileFormat::JsonLines,
        watch: false,
        poll_interval: None,
        rate: None,
    });
    assert_eq!(json_rows.len(), 1);
    assert!(json_rows[0].contains("\"a\""), "{json_rows:?}");
}
