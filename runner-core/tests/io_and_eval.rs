//! Built-in sources and sinks against real files, and expression evaluation on what they read.

use arrow::record_batch::RecordBatch;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use weir_model::expr::{col, lit, Function};
use weir_model::io::{BadRecordPolicy, FileFormat, SinkMetadata, SinkSpec, SourceSpec};
use weir_model::time::Duration;
use weir_model::{DataType, Expr, Field, Schema};
use weir_runner_core::batch::ElementMeta;
use weir_runner_core::io::{
    build_sink, build_source, MemorySource, SinkRegistry, Source, SourcePoll,
};
use weir_runner_core::{convert, eval, ExecError};

fn people() -> Schema {
    Schema::new(vec![
        Field {
            name: "user".into(),
            data_type: DataType::String,
            nullable: false,
        },
        Field::new("n", DataType::Int64),
        Field::new("at", DataType::Timestamp),
    ])
}

fn dead_letters() -> BadRecordPolicy {
    BadRecordPolicy::DeadLetter { tag: "bad".into() }
}

fn files_source(
    path: &Path,
    format: FileFormat,
    schema: &Schema,
    policy: &BadRecordPolicy,
) -> Box<dyn Source> {
    let spec = SourceSpec::Files {
        path: path.display().to_string(),
        format,
        watch: false,
        poll_interval: None,
        rate: None,
    };
    build_source("Read", &spec, schema, policy).unwrap()
}

fn rows(b: &RecordBatch) -> Vec<Value> {
    convert::batch_to_rows(b)
        .into_iter()
        .map(Value::Object)
        .collect()
}

/// Polls `partition` until it ends: (data rows, dead-letter rows).
fn drain(
    source: &mut dyn Source,
    partition: u32,
    max_rows: usize,
) -> Result<(Vec<Value>, Vec<Value>), ExecError> {
    let (mut data, mut dead) = (Vec::new(), Vec::new());
    loop {
        match source.poll(partition, max_rows, 0)? {
            SourcePoll::Batch {
                data: d,
                dead_letters,
            } => {
                assert!(d.num_rows() <= max_rows);
                data.extend(rows(&d));
                if let Some(bad) = dead_letters {
                    dead.extend(rows(&bad));
                }
            }
            SourcePoll::Ended => return Ok((data, dead)),
            SourcePoll::Pending => panic!("a bounded file source is never pending"),
        }
    }
}

const PEOPLE_JSON: &str = concat!(
    "{\"user\": \"ann\", \"n\": 1, \"at\": \"2024-01-01T00:00:00Z\", \"extra\": true}\n",
    "\n",
    "{\"user\": \"bob\", \"n\": 2\n",
    "{\"user\": \"cy\", \"n\": 3, \"at\": 1000}\n",
    "{\"user\": \"dee\", \"n\": \"four\"}\n",
    "[1, 2]\n",
    "{\"n\": 6}\n",
    "{\"user\": \"eve\", \"at\": \"tomorrow\"}\n",
    "{\"user\": \"fay\"}",
);

#[test]
fn malformed_json_lines_go_to_dead_letters_with_their_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.jsonl");
    fs::write(&path, PEOPLE_JSON).unwrap();
    let mut source = files_source(&path, FileFormat::JsonLines, &people(), &dead_letters());
    assert_eq!(source.partitions(), 1);
    let (data, dead) = drain(source.as_mut(), 0, 100).unwrap();
    assert_eq!(
        data,
        vec![
            json!({"user": "ann", "n": 1, "at": 1_704_067_200_000i64}),
            json!({"user": "cy", "n": 3, "at": 1000}),
            json!({"user": "fay", "n": null, "at": null}),
        ]
    );
    let p = path.display().to_string();
    let summary: Vec<(String, i64, String)> = dead
        .iter()
        .map(|d| {
            (
                d["source"].as_str().unwrap().to_string(),
                d["line"].as_i64().unwrap(),
                d["record"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (p.clone(), 3, "{\"user\": \"bob\", \"n\": 2".to_string()),
            (
                p.clone(),
                5,
                "{\"user\": \"dee\", \"n\": \"four\"}".to_string()
            ),
            (p.clone(), 6, "[1, 2]".to_string()),
            (p.clone(), 7, "{\"n\": 6}".to_string()),
            (
                p.clone(),
                8,
                "{\"user\": \"eve\", \"at\": \"tomorrow\"}".to_string()
            ),
        ]
    );
    let errors: Vec<&str> = dead.iter().map(|d| d["error"].as_str().unwrap()).collect();
    assert!(errors[0].starts_with("invalid JSON"), "{}", errors[0]);
    assert_eq!(errors[1], "field `n`: expected int64, got \"four\"");
    assert_eq!(errors[2], "expected a JSON object, got [1,2]");
    assert!(
        errors[3].contains("`user`") && errors[3].contains("not nullable"),
        "{}",
        errors[3]
    );
    assert!(
        errors[4].contains("`at`") && errors[4].contains("tomorrow"),
        "{}",
        errors[4]
    );
}

#[test]
fn the_fail_policy_names_path_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.jsonl");
    fs::write(
        &path,
        "{\"user\": \"ann\", \"n\": 1}\n{\"user\": \"dee\", \"n\": \"four\"}\n",
    )
    .unwrap();
    let mut source = files_source(
        &path,
        FileFormat::JsonLines,
        &people(),
        &BadRecordPolicy::Fail,
    );
    let err = drain(source.as_mut(), 0, 100).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ExecError::BadRecord { line: 2, .. }),
        "{text}"
    );
    assert!(text.contains(&format!("{}:2", path.display())), "{text}");
    assert!(text.contains("`n`"), "{text}");
}

#[test]
fn csv_headers_quotes_nulls_and_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.csv");
    let text = concat!(
        "\u{feff}n,user,ignored,at\n",
        "1,ann,x,2024-01-01T00:00:00Z\n",
        ",\"b,o\"\"b\",,\n",
        "\n",
        "3,\"multi\nline\",,1000\n",
        "four,dee,,\n",
        "5,\"\",,\n",
        "6,short\n",
        "7,ed,,2024-01-01 00:00:01\n",
    );
    fs::write(&path, text).unwrap();
    let schema = Schema::new(vec![
        Field::new("user", DataType::String),
        Field::new("n", DataType::Int64),
        Field::new("at", DataType::Timestamp),
        Field::new("missing", DataType::Boolean),
    ]);
    let mut source = files_source(&path, FileFormat::Csv, &schema, &dead_letters());
    let (data, dead) = drain(source.as_mut(), 0, 100).unwrap();
    assert_eq!(
        data,
        vec![
            json!({"user": "ann", "n": 1, "at": 1_704_067_200_000i64, "missing": null}),
            json!({"user": "b,o\"b", "n": null, "at": null, "missing": null}),
            json!({"user": "multi\nline", "n": 3, "at": 1000, "missing": null}),
            json!({"user": "", "n": 5, "at": null, "missing": null}),
            json!({"user": "ed", "n": 7, "at": 1_704_067_201_000i64, "missing": null}),
        ]
    );
    let lines: Vec<(i64, &str)> = dead
        .iter()
        .map(|d| (d["line"].as_i64().unwrap(), d["error"].as_str().unwrap()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (7, "field `n`: `four` is not an int64"),
            (9, "expected at least 4 fields (per the header), got 2"),
        ]
    );
    assert_eq!(dead[0]["record"], json!("four,dee,,"));
}

#[test]
fn text_files_give_one_row_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.txt");
    fs::write(&path, "first\r\n\nthird").unwrap();
    let schema = Schema::new(vec![Field::new("line", DataType::String)]);
    let mut source = files_source(&path, FileFormat::Text, &schema, &BadRecordPolicy::Fail);
    let (data, _) = drain(source.as_mut(), 0, 2).unwrap();
    assert_eq!(
        data,
        vec![
            json!({"line": "first"}),
            json!({"line": ""}),
            json!({"line": "third"})
        ]
    );
}

#[test]
fn a_directory_is_one_partition_per_file_in_name_order_and_positions_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("b.jsonl"),
        "{\"user\": \"b1\"}\n{\"user\": \"b2\"}\n{\"user\": \"b3\"}\n",
    )
    .unwrap();
    fs::write(dir.path().join("a.jsonl"), "{\"user\": \"a1\"}\n").unwrap();
    fs::write(dir.path().join(".hidden"), "garbage").unwrap();
    fs::write(dir.path().join("_SUCCESS"), "").unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    let mut source = files_source(
        dir.path(),
        FileFormat::JsonLines,
        &people(),
        &BadRecordPolicy::Fail,
    );
    assert_eq!(source.partitions(), 2);
    assert_eq!(
        drain(source.as_mut(), 0, 10).unwrap().0,
        vec![json!({"user": "a1", "n": null, "at": null})]
    );
    let SourcePoll::Batch { data, .. } = source.poll(1, 1, 0).unwrap() else {
        panic!()
    };
    assert_eq!(rows(&data)[0]["user"], json!("b1"));
    let position = source.position(1);
    assert_eq!(position, json!({"file": "b.jsonl", "line": 1}));
    // A fresh source resumes exactly after b1.
    let mut restored = files_source(
        dir.path(),
        FileFormat::JsonLines,
        &people(),
        &BadRecordPolicy::Fail,
    );
    restored.seek(1, &position).unwrap();
    let users: Vec<Value> = drain(restored.as_mut(), 1, 10)
        .unwrap()
        .0
        .iter()
        .map(|r| r["user"].clone())
        .collect();
    assert_eq!(users, vec![json!("b2"), json!("b3")]);
}

#[test]
fn csv_positions_resume_after_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.csv");
    fs::write(&path, "user,n\nann,1\nbob,2\ncy,3\n").unwrap();
    let mut source = files_source(&path, FileFormat::Csv, &people(), &BadRecordPolicy::Fail);
    let SourcePoll::Batch { .. } = source.poll(0, 2, 0).unwrap() else {
        panic!()
    };
    let position = source.position(0);
    assert_eq!(position, json!({"file": "x.csv", "line": 3}));
    let mut restored = files_source(&path, FileFormat::Csv, &people(), &BadRecordPolicy::Fail);
    restored.seek(0, &position).unwrap();
    assert_eq!(
        drain(restored.as_mut(), 0, 10).unwrap().0,
        vec![json!({"user": "cy", "n": 3, "at": null})]
    );
}

#[test]
fn a_watched_directory_picks_up_new_files_at_each_poll_interval() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("001.jsonl"), "{\"user\": \"a\"}\n").unwrap();
    let spec = SourceSpec::Files {
        path: dir.path().display().to_string(),
        format: FileFormat::JsonLines,
        watch: true,
        poll_interval: Some(Duration::from_millis(500)),
        rate: None,
    };
    let mut source = build_source("Watch", &spec, &people(), &BadRecordPolicy::Fail).unwrap();
    assert_eq!(source.partitions(), 1);
    let SourcePoll::Batch { data, .. } = source.poll(0, 10, 1_000).unwrap() else {
        panic!()
    };
    assert_eq!(rows(&data)[0]["user"], json!("a"));
    assert!(matches!(
        source.poll(0, 10, 1_000).unwrap(),
        SourcePoll::Pending
    ));
    assert_eq!(source.next_poll_time(), Some(1_500));
    fs::write(
        dir.path().join("002.jsonl"),
        "{\"user\": \"b\"}\n{\"user\": \"c\"}\n",
    )
    .unwrap();
    fs::write(dir.path().join(".002.jsonl.tmp"), "not yet").unwrap();
    assert!(
        matches!(source.poll(0, 10, 1_200).unwrap(), SourcePoll::Pending),
        "the directory is listed at 1500"
    );
    let SourcePoll::Batch { data, .. } = source.poll(0, 1, 1_500).unwrap() else {
        panic!()
    };
    assert_eq!(rows(&data)[0]["user"], json!("b"));
    let position = source.position(0);
    assert_eq!(position, json!({"file": "002.jsonl", "line": 1}));
    let SourcePoll::Batch { data, .. } = source.poll(0, 10, 1_500).unwrap() else {
        panic!()
    };
    assert_eq!(rows(&data)[0]["user"], json!("c"));
    assert!(matches!(
        source.poll(0, 10, 1_600).unwrap(),
        SourcePoll::Pending
    ));
    assert_eq!(source.next_poll_time(), Some(2_000));

    // Restoring: files before the position's file are done; the rest of it and later files come.
    fs::write(dir.path().join("003.jsonl"), "{\"user\": \"d\"}\n").unwrap();
    let mut restored = build_source("Watch", &spec, &people(), &BadRecordPolicy::Fail).unwrap();
    restored.seek(0, &position).unwrap();
    let mut users = Vec::new();
    while let SourcePoll::Batch { data, .. } = restored.poll(0, 10, 0).unwrap() {
        users.extend(rows(&data).into_iter().map(|r| r["user"].clone()));
    }
    assert_eq!(users, vec![json!("c"), json!("d")]);
}

#[test]
fn a_missing_path_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.jsonl");
    let spec = SourceSpec::Files {
        path: path.display().to_string(),
        format: FileFormat::JsonLines,
        watch: false,
        poll_interval: None,
        rate: None,
    };
    let err = build_source("Read", &spec, &people(), &BadRecordPolicy::Fail)
        .err()
        .unwrap();
    assert!(matches!(err, ExecError::Io { .. }));
    assert!(err.to_string().contains("nope.jsonl"), "{err}");
}

fn batch_of(rows: &[Value], schema: &Schema) -> RecordBatch {
    let rows: Vec<_> = rows
        .iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect();
    convert::rows_to_batch(&rows, &vec![ElementMeta::default(); rows.len()], schema).unwrap()
}

#[test]
fn a_single_file_sink_appends_at_each_commit_and_skips_replayed_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/out.csv");
    let spec = SinkSpec::Files {
        path: path.display().to_string(),
        format: FileFormat::Csv,
    };
    let mut sink = build_sink(
        "Write",
        &spec,
        SinkMetadata::default(),
        &people(),
        false,
        &SinkRegistry::new(),
    )
    .unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "user,n,at\n");
    sink.write(
        &batch_of(&[json!({"user": "ann", "n": 1, "at": 0})], &people()),
        0,
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "user,n,at\n",
        "nothing before the commit"
    );
    sink.commit(0, 0).unwrap();
    sink.write(&batch_of(&[json!({"user": "bob"})], &people()), 0)
        .unwrap();
    sink.commit(1, 0).unwrap();
    sink.write(&batch_of(&[json!({"user": "bob"})], &people()), 0)
        .unwrap();
    sink.commit(1, 0).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "user,n,at\nann,1,1970-01-01T00:00:00.000Z\nbob,,\n"
    );
}

#[test]
fn a_directory_sink_writes_one_part_per_epoch_and_replays_replace_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let spec = SinkSpec::Files {
        path: out.display().to_string(),
        format: FileFormat::JsonLines,
    };
    let mut sink = build_sink(
        "Write",
        &spec,
        SinkMetadata::default(),
        &people(),
        false,
        &SinkRegistry::new(),
    )
    .unwrap();
    sink.write(&batch_of(&[json!({"user": "ann", "n": 1})], &people()), 0)
        .unwrap();
    sink.commit(3, 0).unwrap();
    sink.commit(4, 0).unwrap();
    let mut replay = build_sink(
        "Write",
        &spec,
        SinkMetadata::default(),
        &people(),
        false,
        &SinkRegistry::new(),
    )
    .unwrap();
    replay
        .write(&batch_of(&[json!({"user": "ann", "n": 1})], &people()), 0)
        .unwrap();
    replay.commit(3, 0).unwrap();
    let mut names: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["part-00003.json"],
        "empty epochs write nothing; temp files are renamed away"
    );
    assert_eq!(
        fs::read_to_string(out.join("part-00003.json")).unwrap(),
        "{\"user\":\"ann\",\"n\":1,\"at\":null}\n"
    );
}

#[test]
fn what_the_csv_sink_writes_the_csv_source_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("round");
    let schema = Schema::new(vec![
        Field::new("s", DataType::String),
        Field::new("x", DataType::Float64),
        Field::new("b", DataType::Boolean),
        Field::new("at", DataType::Timestamp),
        Field::new("tags", DataType::List(Box::new(DataType::String))),
    ]);
    let input = vec![
        json!({"s": " padded, \"quoted\"\nline ", "x": 1.5, "b": true, "at": 1_704_067_200_123i64, "tags": ["a", "b,c"]}),
        json!({"s": "", "x": null, "b": false, "at": -1, "tags": []}),
        json!({"s": null, "x": -0.25, "b": null, "at": null, "tags": null}),
    ];
    let spec = SinkSpec::Files {
        path: out.display().to_string(),
        format: FileFormat::Csv,
    };
    let mut sink = build_sink(
        "Write",
        &spec,
        SinkMetadata::default(),
        &schema,
        false,
        &SinkRegistry::new(),
    )
    .unwrap();
    sink.write(&batch_of(&input, &schema), 0).unwrap();
    sink.commit(0, 0).unwrap();
    let mut source = files_source(&out, FileFormat::Csv, &schema, &BadRecordPolicy::Fail);
    assert_eq!(drain(source.as_mut(), 0, 100).unwrap().0, input);
}

#[test]
fn memory_and_sequence_sources_through_build_source() {
    let schema = Schema::new(vec![Field::new("value", DataType::Int64)]);
    MemorySource::register(
        "io-and-eval-memory",
        vec![vec![json!({"value": 7}).as_object().unwrap().clone()]],
    );
    let mut memory = build_source(
        "M",
        &SourceSpec::Memory {
            name: "io-and-eval-memory".into(),
        },
        &schema,
        &BadRecordPolicy::Fail,
    )
    .unwrap();
    assert_eq!(
        drain(memory.as_mut(), 0, 10).unwrap().0,
        vec![json!({"value": 7})]
    );
    let spec = SourceSpec::Sequence {
        start: 5,
        count: Some(3),
        rate: None,
        partitions: 1,
    };
    let mut seq = build_source("S", &spec, &schema, &BadRecordPolicy::Fail).unwrap();
    assert_eq!(
        drain(seq.as_mut(), 0, 2).unwrap().0,
        vec![
            json!({"value": 5}),
            json!({"value": 6}),
            json!({"value": 7})
        ]
    );
}

#[test]
fn expressions_evaluate_on_rows_read_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("people.jsonl");
    fs::write(
        &path,
        PEOPLE_JSON.lines().take(4).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    let mut source = files_source(&path, FileFormat::JsonLines, &people(), &dead_letters());
    let SourcePoll::Batch { data, .. } = source.poll(0, 100, 0).unwrap() else {
        panic!()
    };
    let label = Expr::call(
        Function::Concat,
        vec![
            Expr::call(Function::Upper, vec![col("user")]),
            lit("@"),
            Expr::call(Function::FormatTimestamp, vec![col("at")]),
        ],
    );
    let out = eval::evaluate(&label, &data).unwrap();
    let got: Vec<Value> = (0..out.len())
        .map(|i| convert::value_at(out.as_ref(), i))
        .collect();
    assert_eq!(
        got,
        vec![
            json!("ANN@2024-01-01T00:00:00.000Z"),
            json!("CY@1970-01-01T00:00:01.000Z")
        ]
    );
    let big = eval::evaluate(
        &col("n")
            .gt(lit(1))
            .and(Expr::IsNotNull(Box::new(col("at")))),
        &data,
    )
    .unwrap();
    assert_eq!(convert::value_at(big.as_ref(), 1), json!(true));
}

/// One line of a generated JSON-lines file: a good row, a blank line or a bad line.
fn line_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (any::<u8>(), proptest::option::of(any::<i32>())).prop_map(|(u, n)| {
            json!({"user": format!("u{u}"), "n": n}).to_string()
        }),
        1 => Just(String::new()),
        1 => Just("{not json".to_string()),
        1 => Just("{\"user\": \"x\", \"n\": \"NaN\"}".to_string()),
        1 => Just("{\"n\": 1}".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_file_source_yields_the_same_rows_whatever_max_rows_is(
        lines in proptest::collection::vec(line_strategy(), 0..40),
        max_rows in 1usize..12,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gen.jsonl");
        fs::write(&path, lines.join("\n")).unwrap();
        let mut whole = files_source(&path, FileFormat::JsonLines, &people(), &dead_letters());
        let expected = drain(whole.as_mut(), 0, usize::MAX).unwrap();
        let mut piecewise = files_source(&path, FileFormat::JsonLines, &people(), &dead_letters());
        let got = drain(piecewise.as_mut(), 0, max_rows).unwrap();
        prop_assert_eq!(&got, &expected);
        let good = lines.iter().filter(|l| l.starts_with("{\"user\":\"u")).count();
        prop_assert_eq!(expected.0.len(), good);
        let blank = lines.iter().filter(|l| l.is_empty()).count();
        prop_assert_eq!(expected.0.len() + expected.1.len(), lines.len() - blank);
    }

    #[test]
    fn resuming_from_any_position_gives_the_rest_of_the_rows(
        lines in proptest::collection::vec(line_strategy(), 1..30),
        first in 1usize..10,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gen.jsonl");
        fs::write(&path, lines.join("\n")).unwrap();
        let mut whole = files_source(&path, FileFormat::JsonLines, &people(), &dead_letters());
        let (all_rows, all_dead) = drain(whole.as_mut(), 0, usize::MAX).unwrap();
        let mut source = files_source(&path, FileFormat::JsonLines, &people(), &dead_letters());
        let (mut rows_seen, mut dead_seen) = (Vec::new(), Vec::new());
        if let SourcePoll::Batch { data, dead_letters } = source.poll(0, first, 0).unwrap() {
            rows_seen.extend(rows(&data));
            dead_seen.extend(dead_letters.iter().flat_map(rows));
        }
        let position = source.position(0);
        let mut restored = files_source(&path, FileFormat::JsonLines, &people(), &dead_letters());
        restored.seek(0, &position).unwrap();
        let (rest_rows, rest_dead) = drain(restored.as_mut(), 0, 3).unwrap();
        rows_seen.extend(rest_rows);
        dead_seen.extend(rest_dead);
        prop_assert_eq!(rows_seen, all_rows);
        prop_assert_eq!(dead_seen, all_dead);
    }
}
