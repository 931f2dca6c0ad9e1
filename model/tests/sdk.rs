//! The Rust SDK builds the same IR as a hand-written pipeline, converts typed values to and
//! from Arrow, and every builder method yields a pipeline that plans.

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType as ArrowType, TimeUnit};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use weir_model::io::{BadRecordPolicy, FileFormat, SinkMetadata, SinkSpec, SourceSpec};
use weir_model::requirements::Feature;
use weir_model::schema::{DataType, Field, Schema};
use weir_model::sdk::prelude::*;
use weir_model::sdk::{from_record_batch, schema_of, to_record_batch};
use weir_model::time::Timestamp;
use weir_model::transform::{AggregateFn, Aggregation, Transform};
use weir_model::udf::{
    BatchFn, CombineFn, CustomWindowFn, DoFn, Emitter, Row, StateKind, StateSpec, StatefulContext,
    StatefulFn, TimeDomain, TimerSpec, Value,
};
use weir_model::window::{ClosingBehavior, LateDataPolicy, TimestampCombiner, Window, WindowFn};
use weir_model::{ModelError, Pipeline};

// ---------------------------------------------------------------------------------------------
// Types and user functions used below.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Click {
    user: String,
    /// Event time in milliseconds.
    ts: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserCount {
    user: String,
    clicks: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    x: f64,
    y: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Everything {
    id: u32,
    name: String,
    score: f64,
    active: bool,
    nickname: Option<String>,
    tags: Vec<String>,
    at: Point,
    ts: i64,
}

fn everything() -> Vec<Everything> {
    vec![
        Everything {
            id: 1,
            name: "ann".into(),
            score: 0.5,
            active: true,
            nickname: Some("a".into()),
            tags: vec!["x".into(), "y".into()],
            at: Point { x: 1.0, y: 2.0 },
            ts: 1_000,
        },
        Everything {
            id: 2,
            name: "bob".into(),
            score: -3.25,
            active: false,
            nickname: None,
            tags: vec![],
            at: Point { x: 0.0, y: -1.5 },
            ts: -5,
        },
    ]
}

/// Splits `line` into words; empty lines go to the `empty` side output.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SplitWords;

#[typetag::serde]
impl DoFn for SplitWords {
    fn output_schema(&self, _input: &Schema) -> Result<Schema, String> {
        Ok(Schema::new(vec![Field::new("word", DataType::String)]))
    }
    fn side_outputs(&self, input: &Schema) -> Result<Vec<(String, Schema)>, String> {
        Ok(vec![("empty".into(), input.clone())])
    }
    fn process(&self, row: &Row, out: &mut dyn Emitter) -> Result<(), String> {
        let line = row.get("line").and_then(|v| v.as_str()).ok_or("no line")?;
        if line.trim().is_empty() {
            out.emit_to("empty", row.clone());
        }
        for w in line.split_whitespace() {
            let mut r = Row::new();
            r.insert("word".into(), json!(w));
            out.emit(r);
        }
        Ok(())
    }
}

/// Passes batches through.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Identity;

#[typetag::serde]
impl BatchFn for Identity {
    fn output_schema(&self, input: &Schema) -> Result<Schema, String> {
        Ok(input.clone())
    }
    fn process_batch(&self, batch: &RecordBatch) -> Result<RecordBatch, String> {
        Ok(batch.clone())
    }
}

/// Product of int64 inputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Product;

#[typetag::serde]
impl CombineFn for Product {
    fn output_type(&self, input: Option<&DataType>) -> Result<DataType, String> {
        match input {
            Some(DataType::Int64) => Ok(DataType::Int64),
            other => Err(format!("product needs int64, not {other:?}")),
        }
    }
    fn create_accumulator(&self) -> Value {
        json!(1)
    }
    fn add_input(&self, acc: &mut Value, input: &Value) {
        *acc = json!(acc.as_i64().unwrap_or(1) * input.as_i64().unwrap_or(1));
    }
    fn merge_accumulators(&self, acc: &mut Value, other: &Value) {
        self.add_input(acc, other);
    }
    fn extract_output(&self, acc: &Value) -> Value {
        acc.clone()
    }
}

/// Windows of ten milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TenMillis;

#[typetag::serde]
impl CustomWindowFn for TenMillis {
    fn name(&self) -> String {
        "ten_millis".into()
    }
    fn assign(&self, ts: Timestamp) -> Vec<Window> {
        let start = ts - ts.rem_euclid(10);
        vec![Window::new(start, start + 10)]
    }
}

/// Emits a running count per key and flushes it on an event-time timer.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunningCount;

#[typetag::serde]
impl StatefulFn for RunningCount {
    fn state(&self) -> Vec<StateSpec> {
        vec![StateSpec {
            name: "count".into(),
            kind: StateKind::Value,
        }]
    }
    fn timers(&self) -> Vec<TimerSpec> {
        vec![TimerSpec {
            name: "flush".into(),
            domain: TimeDomain::EventTime,
        }]
    }
    fn output_schema(&self, _input: &Schema) -> Result<Schema, String> {
        Ok(Schema::new(vec![Field::new("count", DataType::Int64)]))
    }
    fn process(&self, _row: &Row, ctx: &mut dyn StatefulContext) -> Result<(), String> {
        let n = ctx.value("count").and_then(|v| v.as_i64()).unwrap_or(0) + 1;
        ctx.set_value("count", json!(n));
        let at = ctx.timestamp() + 1_000;
        ctx.set_timer("flush", at);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The SDK produces the same IR as a hand-built pipeline.

fn click_counts_with_sdk() -> Result<PipelineBuilder, ModelError> {
    let p = PipelineBuilder::new("click-counts");
    let clicks = p.create_typed(&[
        Click {
            user: "ann".into(),
            ts: 1_000,
        },
        Click {
            user: "bob".into(),
            ts: 61_000,
        },
    ])?;
    let counts = clicks
        .assign_timestamps(
            col("ts"),
            WatermarkStrategy::bounded(Duration::from_secs(5)),
        )
        .window_into(
            fixed(Duration::from_mins(1))
                .allowed_lateness(Duration::from_secs(10))
                .late_to("late"),
        )
        .combine(["user"], [agg::count("clicks")])
        .named("CountClicks");
    counts.write_json("out/counts.jsonl");
    counts.side_output("late").log();
    Ok(p)
}

fn click_counts_by_hand() -> Pipeline {
    let mut p = Pipeline::new();
    p.name = Some("click-counts".into());
    let schema = Schema::new(vec![
        Field {
            name: "user".into(),
            data_type: DataType::String,
            nullable: false,
        },
        Field {
            name: "ts".into(),
            data_type: DataType::Int64,
            nullable: false,
        },
    ]);
    let elements = vec![
        json!({"user": "ann", "ts": 1000}),
        json!({"user": "bob", "ts": 61000}),
    ];
    p.add(
        "Create",
        vec![],
        Transform::Read {
            source: SourceSpec::Create { elements },
            schema,
            bad_records: BadRecordPolicy::Fail,
        },
    );
    p.add(
        "AssignTimestamps",
        vec!["Create".into()],
        Transform::AssignTimestamps {
            timestamp: col("ts"),
            watermark: WatermarkStrategy::bounded(Duration::from_secs(5)),
        },
    );
    let mut windowing = WindowingStrategy::new(WindowFn::Fixed {
        size: Duration::from_mins(1),
        offset: Duration::ZERO,
    });
    windowing.allowed_lateness = Duration::from_secs(10);
    windowing.late_data = LateDataPolicy::SideOutput { tag: "late".into() };
    p.add(
        "WindowInto",
        vec!["AssignTimestamps".into()],
        Transform::WindowInto { windowing },
    );
    p.add(
        "CountClicks",
        vec!["WindowInto".into()],
        Transform::Combine {
            group_by: vec!["user".into()],
            aggregations: vec![Aggregation {
                name: "clicks".into(),
                func: AggregateFn::Count,
                input: None,
            }],
        },
    );
    p.add(
        "WriteToJson",
        vec!["CountClicks".into()],
        Transform::Write {
            sink: SinkSpec::Files {
                path: "out/counts.jsonl".into(),
                format: FileFormat::JsonLines,
            },
            metadata: SinkMetadata::default(),
        },
    );
    p.add(
        "LogForTesting",
        vec!["CountClicks.late".into()],
        Transform::Write {
            sink: SinkSpec::Stdout,
            metadata: SinkMetadata::default(),
        },
    );
    p
}

#[test]
fn sdk_pipeline_equals_the_hand_built_ir() {
    let sdk = click_counts_with_sdk().unwrap();
    assert_eq!(
        sdk.build().to_json().unwrap(),
        click_counts_by_hand().to_json().unwrap()
    );
    assert_eq!(
        sdk.plan().unwrap().to_json().unwrap(),
        weir_model::plan(&click_counts_by_hand())
            .unwrap()
            .to_json()
            .unwrap()
    );
}

#[test]
fn untyped_join_pipeline_equals_the_hand_built_ir() {
    let p = PipelineBuilder::new("orders");
    let orders = p
        .create([json!({"id": 1, "user": "ann", "amount": 9.5})])
        .unwrap();
    let users = p.create_with_schema([json!({"name": "ann", "country": "NZ"})], users_schema());
    orders
        .filter(col("amount").gt(lit(5.0)))
        .join_on(&users, ["user"], ["name"], JoinKind::Left)
        .with_column("big", lit(true))
        .write_memory("out");

    let mut hand = Pipeline::new();
    hand.name = Some("orders".into());
    let orders_schema = Schema::new(vec![
        Field::new("id", DataType::Int64),
        Field::new("user", DataType::String),
        Field::new("amount", DataType::Float64),
    ]);
    let create = |elements, schema| Transform::Read {
        source: SourceSpec::Create { elements },
        schema,
        bad_records: BadRecordPolicy::Fail,
    };
    hand.add(
        "Create",
        vec![],
        create(
            vec![json!({"id": 1, "user": "ann", "amount": 9.5})],
            orders_schema,
        ),
    );
    hand.add(
        "Create_2",
        vec![],
        create(
            vec![json!({"name": "ann", "country": "NZ"})],
            users_schema(),
        ),
    );
    hand.add(
        "Filter",
        vec!["Create".into()],
        Transform::Filter {
            predicate: col("amount").gt(lit(5.0)),
        },
    );
    hand.add(
        "Join",
        vec!["Filter".into(), "Create_2".into()],
        Transform::Join {
            on: vec![vec!["user".into()], vec!["name".into()]],
            kind: JoinKind::Left,
        },
    );
    hand.add(
        "MapToFields",
        vec!["Join".into()],
        Transform::Project {
            fields: vec![("big".into(), lit(true))],
            append: true,
        },
    );
    hand.add(
        "WriteToMemory",
        vec!["MapToFields".into()],
        Transform::Write {
            sink: SinkSpec::Memory {
                name: "out".into(),
                guarantee: None,
            },
            metadata: SinkMetadata::default(),
        },
    );
    assert_eq!(p.build().to_json().unwrap(), hand.to_json().unwrap());
    p.plan().unwrap();
}

fn users_schema() -> Schema {
    Schema::new(vec![
        Field::new("name", DataType::String),
        Field::new("country", DataType::String),
    ])
}

#[test]
fn sdk_pipeline_with_user_functions_survives_the_canonical_json() {
    let p = PipelineBuilder::new("words");
    p.read_text("in.txt")
        .pardo(SplitWords)
        .combine(["word"], [agg::count("n")])
        .log();
    let json = p.build().to_json().unwrap();
    assert_eq!(Pipeline::from_json(&json).unwrap().to_json().unwrap(), json);
}

// ---------------------------------------------------------------------------------------------
// Names.

#[test]
fn default_names_are_the_transform_type_made_unique() {
    let p = PipelineBuilder::new("names");
    let seq = p.generate_sequence(0, Some(10));
    let a = seq.filter(col("value").gt(lit(1)));
    let b = a.filter(col("value").lt(lit(8)));
    assert_eq!(seq.name(), "GenerateSequence");
    assert_eq!(
        (a.name(), b.name()),
        ("Filter".to_string(), "Filter_2".to_string())
    );
    assert_eq!(b.log().name(), "LogForTesting");
}

#[test]
fn explicit_names_win_and_renaming_keeps_downstream_inputs() {
    let p = PipelineBuilder::new("names");
    let seq = p.generate_sequence(0, Some(10));
    let first = seq.filter(col("value").gt(lit(1)));
    let sink = first.log();
    // Naming a later node `Filter` moves the earlier default-named one aside.
    first.filter(col("value").lt(lit(8))).named("Filter");
    assert_eq!(first.name(), "Filter_2");
    let pipeline = p.build();
    assert_eq!(
        pipeline.node(&sink.name()).unwrap().inputs,
        vec!["Filter_2".to_string()]
    );
    // Renaming after the node has consumers rewires them.
    first.named("KeepSome");
    sink.named("Print");
    let pipeline = p.build();
    assert_eq!(
        pipeline.node("Print").unwrap().inputs,
        vec!["KeepSome".to_string()]
    );
    assert_eq!(
        pipeline.node("Filter").unwrap().inputs,
        vec!["KeepSome".to_string()]
    );
    p.plan().unwrap();
}

#[test]
fn duplicate_explicit_names_fail_plan() {
    let p = PipelineBuilder::new("dup");
    let seq = p.generate_sequence(0, Some(1)).named("Numbers");
    seq.filter(col("value").gt(lit(0))).named("Numbers");
    let err = p.plan().unwrap_err();
    assert!(
        matches!(&err, ModelError::Transform { transform, .. } if transform == "Numbers"),
        "{err}"
    );
}

#[test]
#[should_panic(expected = "different PipelineBuilder")]
fn mixing_collections_of_two_builders_panics() {
    let a = PipelineBuilder::new("a").generate_sequence(0, Some(1));
    let b = PipelineBuilder::new("b").generate_sequence(0, Some(1));
    a.flatten([&b]);
}

// ---------------------------------------------------------------------------------------------
// Typed values and Arrow.

#[test]
fn schema_is_derived_from_a_struct() {
    let schema = schema_of::<Everything>().unwrap();
    let required = |name: &str, data_type| Field {
        name: name.into(),
        data_type,
        nullable: false,
    };
    assert_eq!(
        schema.fields,
        vec![
            required("id", DataType::Int64),
            required("name", DataType::String),
            required("score", DataType::Float64),
            required("active", DataType::Boolean),
            Field::new("nickname", DataType::String),
            required("tags", DataType::List(Box::new(DataType::String))),
            required(
                "at",
                DataType::Struct(vec![
                    required("x", DataType::Float64),
                    required("y", DataType::Float64)
                ])
            ),
            required("ts", DataType::Int64),
        ]
    );
}

#[test]
fn a_type_without_named_fields_has_no_schema() {
    let err = schema_of::<i64>().unwrap_err();
    assert!(matches!(err, ModelError::Typed(_)), "{err}");
}

#[test]
fn typed_values_round_trip_through_a_record_batch() {
    let items = everything();
    let batch = to_record_batch(&items).unwrap();
    assert_eq!(batch.num_rows(), 2);
    // Weir's Arrow types, so a runner can use the batch as it is.
    assert_eq!(
        batch.schema().field_with_name("id").unwrap().data_type(),
        &ArrowType::Int64
    );
    assert_eq!(
        batch.schema().field_with_name("name").unwrap().data_type(),
        &ArrowType::Utf8
    );
    assert_eq!(
        batch.schema(),
        schema_of::<Everything>().unwrap().to_arrow()
    );
    assert_eq!(from_record_batch::<Everything>(&batch).unwrap(), items);
    assert!(
        from_record_batch::<Everything>(&to_record_batch::<Everything>(&[]).unwrap())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn reading_a_batch_ignores_metadata_columns_and_reads_timestamps_as_millis() {
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("user", Arc::new(StringArray::from(vec!["ann", "bob"]))),
        (
            "ts",
            Arc::new(TimestampMillisecondArray::from(vec![1_000, 2_000])),
        ),
        (
            "__ts",
            Arc::new(TimestampMillisecondArray::from(vec![1_000, 2_000])),
        ),
        (
            "__pane_timing",
            Arc::new(StringArray::from(vec!["ON_TIME", "LATE"])),
        ),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    assert_eq!(
        batch.schema().field(1).data_type(),
        &ArrowType::Timestamp(TimeUnit::Millisecond, None)
    );
    let clicks: Vec<Click> = from_record_batch(&batch).unwrap();
    assert_eq!(
        clicks,
        vec![
            Click {
                user: "ann".into(),
                ts: 1_000
            },
            Click {
                user: "bob".into(),
                ts: 2_000
            }
        ]
    );
}

#[test]
fn reading_a_batch_names_the_missing_or_mistyped_column() {
    let batch = RecordBatch::try_from_iter(vec![(
        "user",
        Arc::new(StringArray::from(vec!["ann"])) as ArrayRef,
    )])
    .unwrap();
    let err = from_record_batch::<Click>(&batch).unwrap_err().to_string();
    assert!(err.contains("no column `ts`"), "{err}");
    let batch = RecordBatch::try_from_iter(vec![
        ("user", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("ts", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
    ])
    .unwrap();
    let err = from_record_batch::<Click>(&batch).unwrap_err();
    assert!(
        matches!(&err, ModelError::Typed(m) if m.contains("column `user` is int64")),
        "{err}"
    );
}

#[test]
fn a_collection_becomes_typed_when_its_schema_fits() {
    let p = PipelineBuilder::new("typed");
    let clicks = p
        .create_typed(&[Click {
            user: "c".into(),
            ts: 0,
        }])
        .unwrap();
    let counts: PCollection<UserCount> = clicks
        .combine(["user"], [agg::count("clicks")])
        .typed()
        .unwrap();
    counts
        .assert_equal_typed(&[UserCount {
            user: "c".into(),
            clicks: 1,
        }])
        .unwrap();
    p.plan().unwrap();
}

#[test]
fn the_builder_stays_usable_after_build() {
    let p = click_counts_with_sdk().unwrap();
    let before = p.build();
    p.generate_sequence(0, Some(1)).log();
    assert_eq!(p.build().transforms.len(), before.transforms.len() + 2);
    assert_eq!(p.build().transforms[0].name, before.transforms[0].name);
}

#[test]
fn typed_looks_only_at_what_the_collection_depends_on() {
    let p = PipelineBuilder::new("branches");
    let clicks = p
        .create_typed(&[Click {
            user: "ann".into(),
            ts: 1,
        }])
        .unwrap();
    clicks.filter(col("nope").eq(lit(1))).log();
    let kept: PCollection<Click> = clicks
        .filter(col("ts").gt(lit(0)))
        .untyped()
        .typed()
        .unwrap();
    assert_eq!(kept.name(), "Filter_2");
    assert!(p.plan().is_err(), "the other branch is still wrong");
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct MaybeScored {
    user: String,
    score: Option<f64>,
}

#[test]
fn an_option_field_may_be_missing_from_collection_and_batch() {
    let p = PipelineBuilder::new("optional");
    let clicks = p
        .create_typed(&[Click {
            user: "ann".into(),
            ts: 1,
        }])
        .unwrap();
    clicks.typed::<MaybeScored>().unwrap();
    let batch = to_record_batch(&[Click {
        user: "ann".into(),
        ts: 1,
    }])
    .unwrap();
    let rows: Vec<MaybeScored> = from_record_batch(&batch).unwrap();
    assert_eq!(
        rows,
        vec![MaybeScored {
            user: "ann".into(),
            score: None
        }]
    );
}

#[test]
fn typed_names_the_column_that_does_not_fit() {
    let p = PipelineBuilder::new("misfit");
    let clicks = p
        .create_typed(&[Click {
            user: "c".into(),
            ts: 0,
        }])
        .unwrap();
    let renamed = clicks.map_fields([("user", col("user")), ("clicks", col("user"))]);
    let err = renamed.typed::<UserCount>().unwrap_err();
    assert!(
        matches!(&err, ModelError::Typed(m) if m.contains("column `clicks` is string")),
        "{err}"
    );
    let err = clicks
        .combine(["user"], [agg::count("n")])
        .typed::<UserCount>()
        .unwrap_err();
    assert!(
        matches!(&err, ModelError::Typed(m) if m.contains("no column `clicks`")),
        "{err}"
    );
}

#[test]
fn create_infers_a_schema_and_names_the_column_it_cannot() {
    let p = PipelineBuilder::new("create");
    let rows = p
        .create([
            json!({"user": "ann", "tags": ["a"]}),
            json!({"user": null, "tags": []}),
            json!(3),
        ])
        .unwrap();
    assert_eq!(
        rows.schema().unwrap().to_string(),
        "(user: string, tags: list<string>, element: int64)"
    );
    let err = p.create([json!({"user": null})]).unwrap_err();
    assert!(
        matches!(&err, ModelError::Column { column, .. } if column == "user"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Every builder method yields a pipeline that plans.

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    line: String,
}

#[test]
fn plan_succeeds_for_every_source() {
    let p = PipelineBuilder::new("sources");
    let bad = SourceSpec::Files {
        path: "in/".into(),
        format: FileFormat::JsonLines,
        watch: true,
        poll_interval: None,
        rate: None,
    };
    let sources = [
        p.create([json!({"value": 1})]).unwrap(),
        p.create_with_schema([json!({"value": 2})], weir_model::sdk::sequence_schema()),
        p.generate_sequence(0, Some(3)),
        p.generate_sequence(0, None),
        p.read_json("in.jsonl", weir_model::sdk::sequence_schema()),
        p.read_csv("in.csv", weir_model::sdk::sequence_schema()),
        p.read_memory("numbers", weir_model::sdk::sequence_schema()),
        p.read(
            bad,
            weir_model::sdk::sequence_schema(),
            BadRecordPolicy::DeadLetter { tag: "bad".into() },
        ),
    ];
    sources[0].flatten(&sources[1..]).write_memory("all");
    sources[7].side_output("bad").log();
    let texts = [
        p.read_text("in.txt"),
        p.read_json_typed::<Line>("lines.jsonl").unwrap().untyped(),
        p.read_csv_typed::<Line>("lines.csv").unwrap().untyped(),
        p.read_memory_typed::<Line>("lines").unwrap().untyped(),
        p.create_typed(&[Line { line: "x".into() }])
            .unwrap()
            .untyped(),
    ];
    for t in &texts {
        t.typed::<Line>().unwrap().log();
    }
    let plan = p.plan().unwrap();
    assert!(plan.collection("ReadFromJson_2.bad").is_some());
    assert!(plan.requirements.contains(&Feature::UnboundedSources));
    assert!(plan.requirements.contains(&Feature::DeadLetterOutputs));
}

#[test]
fn plan_succeeds_for_every_element_wise_transform() {
    let p = PipelineBuilder::new("element-wise");
    let lines = p
        .create([json!({"line": "a b", "n": 2, "parts": ["x", "y"]})])
        .unwrap();
    let words = lines.pardo(SplitWords).named("Split").with_parallelism(2);
    words.side_output("empty").log();
    let checked = lines.pardo_dead_letter(SplitWords, "errors");
    checked.side_output("errors").log();
    checked.side_output("empty").log();
    lines
        .filter(col("n").gt(lit(1)))
        .map_fields([
            ("line", col("line")),
            ("twice", col("n").mul(lit(2))),
            ("parts", col("parts")),
        ])
        .with_column("one", lit(1))
        .with_columns([("two", lit(2)), ("one", lit(1.5))])
        .explode("parts")
        .map_batches(Identity)
        .write_csv("out.csv");
    words.write_text("words.txt");
    let plan = p.plan().unwrap();
    assert_eq!(plan.collection("Split").unwrap().schema.names(), ["word"]);
    assert_eq!(plan.pipeline.node("Split").unwrap().parallelism, Some(2));
    assert_eq!(
        plan.collection("ParDo.errors").unwrap().schema,
        weir_model::io::dead_letter_schema()
    );
    assert_eq!(
        plan.collection("MapBatches").unwrap().schema.to_string(),
        "(line: string, twice: int64, parts: string, one: float64, two: int64)"
    );
}

fn timed(p: &PipelineBuilder) -> Collection {
    p.create([json!({"user": "ann", "page": "home", "amount": 3, "ts": 1000})])
        .unwrap()
        .assign_timestamps(
            col("ts"),
            WatermarkStrategy {
                max_out_of_orderness: Duration::from_secs(1),
                idle_timeout: Some(Duration::from_secs(30)),
            },
        )
}

#[test]
fn plan_succeeds_for_every_windowing() {
    let p = PipelineBuilder::new("windowing");
    let events = timed(&p);
    let windowings: Vec<Windowing> = vec![
        global().trigger(trigger::repeatedly(trigger::after_processing_time(
            Duration::from_secs(1),
        ))),
        fixed(Duration::from_mins(1)).offset(Duration::from_secs(30)),
        sliding(Duration::from_mins(10), Duration::from_mins(1))
            .offset(Duration::from_secs(5))
            .accumulating(),
        sessions(Duration::from_secs(30))
            .late_to("late")
            .drop_late(),
        sessions_with_gap(col("amount").mul(lit(1000))),
        custom_windows(TenMillis).discarding(),
        fixed(Duration::from_secs(10))
            .trigger(
                trigger::after_watermark()
                    .early(trigger::after_first([
                        trigger::after_count(5),
                        trigger::after_processing_time(Duration::from_secs(1)),
                    ]))
                    .late(trigger::after_count(1)),
            )
            .allowed_lateness(Duration::from_mins(1))
            .late_to("late")
            .closing(ClosingBehavior::FireAlways)
            .timestamp_combiner(TimestampCombiner::Earliest),
        fixed(Duration::from_secs(10)).trigger(trigger::or_finally(
            trigger::repeatedly(trigger::after_each([
                trigger::after_count(2),
                trigger::after_all([trigger::after_count(3)]),
            ])),
            trigger::never(),
        )),
        fixed(Duration::from_secs(10)).trigger(trigger::default()),
    ];
    for w in windowings {
        let counted = events.window_into(w).combine(["user"], [agg::count("n")]);
        counted.log();
    }
    events.window_into(WindowingStrategy::default()).log();
    let plan = p.plan().unwrap();
    for f in [
        Feature::Windowing,
        Feature::MergingWindows,
        Feature::DynamicSessionGaps,
        Feature::CustomWindows,
        Feature::EarlyFirings,
        Feature::LateFirings,
        Feature::CompositeTriggers,
        Feature::AccumulatingPanes,
        Feature::AllowedLateness,
        Feature::LateDataSideOutput,
        Feature::TimestampCombiners,
        Feature::IdleTimeout,
        Feature::CountTriggers,
        Feature::ProcessingTimeTriggers,
    ] {
        assert!(plan.requirements.contains(&f), "missing {f:?}");
    }
    assert!(plan.collection("Combine_7.late").is_some());
    assert!(
        plan.collection("Combine_4.late").is_none(),
        "drop_late() replaced late_to()"
    );
}

#[test]
fn plan_succeeds_for_every_aggregation_and_join() {
    let p = PipelineBuilder::new("aggregations");
    let events = timed(&p).window_into(fixed(Duration::from_mins(1)));
    let pages = p
        .create([json!({"page": "home", "title": "Home", "ts": 0})])
        .unwrap()
        .assign_timestamps(col("ts"), WatermarkStrategy::bounded(Duration::ZERO))
        .window_into(fixed(Duration::from_mins(1)));
    events.group_by_key(["user"]).log();
    events
        .combine(
            ["user", "page"],
            [
                agg::count("n"),
                agg::count_of("with_amount", col("amount")),
                agg::sum("total", col("amount")),
                agg::min("smallest", col("amount")),
                agg::max("largest", col("amount")),
                agg::mean("average", col("amount")),
                agg::distinct_count("pages", col("page")),
                agg::custom("product", Product, Some(col("amount"))),
            ],
        )
        .named("Stats")
        .log();
    events.combine_globally([agg::count("n")]).log();
    events.join(&pages, ["page"], JoinKind::Inner).log();
    events
        .join_on(&pages, ["page"], ["page"], JoinKind::Full)
        .log();
    events.co_group_by_key([&pages], ["page"]).log();
    events
        .co_group_by_key_on([&pages], [["page"], ["page"]])
        .log();
    events.top_n(["user"], "amount", 3).log();
    events.bottom_n(Vec::<String>::new(), "amount", 1).log();
    let plan = p.plan().unwrap();
    assert_eq!(
        plan.collection("Stats").unwrap().schema.names(),
        [
            "user",
            "page",
            "n",
            "with_amount",
            "total",
            "smallest",
            "largest",
            "average",
            "pages",
            "product"
        ]
    );
    assert_eq!(
        plan.collection("Join").unwrap().schema.names(),
        [
            "page",
            "user",
            "amount",
            "WindowInto_ts",
            "title",
            "WindowInto_2_ts"
        ]
    );
    assert_eq!(
        plan.collection("CoGroupByKey").unwrap().schema.names(),
        ["page", "WindowInto", "WindowInto_2"]
    );
    assert!(plan.requirements.contains(&Feature::Joins));
    assert!(plan.requirements.contains(&Feature::UserCombiners));
}

#[test]
fn plan_succeeds_for_stateful_transforms_and_every_sink() {
    let p = PipelineBuilder::new("stateful");
    let events = timed(&p);
    events
        .stateful(["user"], RunningCount)
        .write_memory("counts");
    events
        .dedup(["user", "page"], Some(Duration::from_mins(10)))
        .write_json("dedup.jsonl");
    events.dedup(["user"], None).write_csv("first.csv");
    events
        .write(
            SinkSpec::Memory {
                name: "meta".into(),
                guarantee: None,
            },
            SinkMetadata {
                window: Some(true),
                pane: true,
            },
        )
        .named("WithPanes");
    events.write_text("events.txt");
    events.log().named("Print");
    events.assert_equal([json!({"user": "ann", "page": "home", "amount": 3, "ts": 1000})]);
    let typed = p
        .create_typed(&[Click {
            user: "ann".into(),
            ts: 5,
        }])
        .unwrap();
    let deduped = typed
        .assign_timestamps(col("ts"), WatermarkStrategy::bounded(Duration::ZERO))
        .window_into(fixed(Duration::from_secs(1)))
        .dedup(["user"], None)
        .top_n(Vec::<String>::new(), "ts", 1)
        .bottom_n(["user"], "ts", 1)
        .filter(col("ts").gt_eq(lit(0)))
        .named("Latest")
        .with_parallelism(1);
    deduped
        .flatten([&deduped])
        .assert_equal_typed(&[Click {
            user: "ann".into(),
            ts: 5,
        }])
        .unwrap();
    let plan = p.plan().unwrap();
    for f in [
        Feature::StatefulProcessing,
        Feature::EventTimeTimers,
        Feature::Assertions,
    ] {
        assert!(plan.requirements.contains(&f), "missing {f:?}");
    }
    assert!(plan.pipeline.node("WithPanes").is_some() && plan.pipeline.node("Print").is_some());
    assert_eq!(
        plan.collection("StatefulParDo").unwrap().schema.names(),
        ["count"]
    );
}

// ---------------------------------------------------------------------------------------------
// Errors surface at plan time, naming the transform and column.

#[test]
fn a_bad_column_in_an_expression_fails_plan_naming_transform_and_column() {
    let p = PipelineBuilder::new("typo");
    let clicks = p
        .create_typed(&[Click {
            user: "ann".into(),
            ts: 1,
        }])
        .unwrap();
    clicks
        .filter(col("usr").eq(lit("ann")))
        .named("OnlyAnn")
        .log();
    let err = p.plan().unwrap_err();
    match &err {
        ModelError::Column {
            transform, column, ..
        } => assert_eq!((transform.as_str(), column.as_str()), ("OnlyAnn", "usr")),
        other => panic!("expected a column error, got {other}"),
    }
    assert!(
        err.to_string().contains("`OnlyAnn`") && err.to_string().contains("`usr`"),
        "{err}"
    );
}

#[test]
fn a_bad_aggregation_input_fails_plan_naming_the_default_transform_name() {
    let p = PipelineBuilder::new("typo");
    p.generate_sequence(0, Some(1))
        .combine_globally([agg::sum("total", col("amount"))])
        .log();
    let err = p.plan().unwrap_err();
    assert!(
        matches!(&err, ModelError::Column { transform, column, .. } if transform == "Combine" && column == "amount"),
        "{err}"
    );
}
