//! Pipeline files: each transform kind reads to the expected IR, chains and explicit wiring,
//! windowing expansion, user functions by name, planning, and the canonical JSON round trip.
//! (Error locations are tested next to the reader, in `model/src/file/tests.rs`.)

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use weir_model::error::ModelError;
use weir_model::file::parse_str;
use weir_model::schema::{DataType, Schema};
use weir_model::udf::{
    BatchFn, CombineFn, CustomWindowFn, DoFn, Emitter, Row, StateKind, StateSpec, StatefulContext,
    StatefulFn,
};
use weir_model::window::Window;
use weir_model::{plan, Pipeline, TransformNode};

fn parse(text: &str) -> Pipeline {
    parse_str(text, "test.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn node<'p>(p: &'p Pipeline, name: &str) -> &'p TransformNode {
    p.node(name)
        .unwrap_or_else(|| panic!("no node `{name}` in {:?}", names(p)))
}

fn names(p: &Pipeline) -> Vec<&str> {
    p.transforms.iter().map(|t| t.name.as_str()).collect()
}

/// The transform's canonical JSON, to compare IR that holds user functions.
fn ir(p: &Pipeline, name: &str) -> Value {
    serde_json::to_value(&node(p, name).transform).unwrap()
}

fn inputs<'p>(p: &'p Pipeline, name: &str) -> Vec<&'p str> {
    node(p, name).inputs.iter().map(String::as_str).collect()
}

/// Plans, writes the plan's JSON, reads the pipeline back from it, plans again: the JSON
/// must come out byte for byte the same.
fn assert_json_round_trip(p: &Pipeline) {
    let first = plan(p).unwrap_or_else(|e| panic!("{e}")).to_json().unwrap();
    let back = Pipeline::from_json(&first).unwrap();
    let second = plan(&back).unwrap().to_json().unwrap();
    assert_eq!(first, second);
}

// ---- user functions, registered by name through typetag ----

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tokenize {
    column: String,
}

#[typetag::serde]
impl DoFn for Tokenize {
    fn output_schema(&self, _input: &Schema) -> Result<Schema, String> {
        Ok(Schema::new(vec![weir_model::Field::new(
            "word",
            DataType::String,
        )]))
    }
    fn side_outputs(&self, _input: &Schema) -> Result<Vec<(String, Schema)>, String> {
        Ok(vec![(
            "empty".into(),
            Schema::new(vec![weir_model::Field::new("line", DataType::String)]),
        )])
    }
    fn process(&self, row: &Row, out: &mut dyn Emitter) -> Result<(), String> {
        let text = row[&self.column].as_str().unwrap_or_default();
        for word in text.split_whitespace() {
            out.emit(json!({"word": word}).as_object().unwrap().clone());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct JoinText {
    separator: String,
}

#[typetag::serde]
impl CombineFn for JoinText {
    fn output_type(&self, _input: Option<&DataType>) -> Result<DataType, String> {
        Ok(DataType::String)
    }
    fn create_accumulator(&self) -> Value {
        json!("")
    }
    fn add_input(&self, acc: &mut Value, input: &Value) {
        let joined = match acc.as_str().unwrap_or_default() {
            "" => input.as_str().unwrap_or_default().to_string(),
            s => format!(
                "{s}{}{}",
                self.separator,
                input.as_str().unwrap_or_default()
            ),
        };
        *acc = json!(joined);
    }
    fn merge_accumulators(&self, acc: &mut Value, other: &Value) {
        self.add_input(acc, other);
    }
    fn extract_output(&self, acc: &Value) -> Value {
        acc.clone()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Passthrough;

#[typetag::serde]
impl BatchFn for Passthrough {
    fn output_schema(&self, input: &Schema) -> Result<Schema, String> {
        Ok(input.clone())
    }
    fn process_batch(
        &self,
        batch: &arrow::record_batch::RecordBatch,
    ) -> Result<arrow::record_batch::RecordBatch, String> {
        Ok(batch.clone())
    }
}

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
    fn output_schema(&self, input: &Schema) -> Result<Schema, String> {
        Ok(input.clone())
    }
    fn process(&self, row: &Row, ctx: &mut dyn StatefulContext) -> Result<(), String> {
        let n = ctx.value("count").and_then(|v| v.as_i64()).unwrap_or(0) + 1;
        ctx.set_value("count", json!(n));
        ctx.emit(row.clone());
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Decades;

#[typetag::serde]
impl CustomWindowFn for Decades {
    fn name(&self) -> String {
        "decades".into()
    }
    fn assign(&self, ts: i64) -> Vec<Window> {
        let start = ts - ts.rem_euclid(10_000);
        vec![Window::new(start, start + 10_000)]
    }
}

// ---- structure ----

const EVENTS_SCHEMA: &str = "{user: string, amount: float64, ts: int64}";

#[test]
fn a_chain_feeds_each_transform_the_previous_one_with_source_and_sink_shorthands() {
    let p = parse(&format!(
        r#"pipeline:
  type: chain
  source:
    type: ReadFromJson
    config: {{path: in.jsonl, schema: {EVENTS_SCHEMA}}}
  transforms:
    - type: Filter
      config: {{keep: amount > 0}}
    - type: Filter
      config: {{keep: user is not null}}
  sink:
    type: WriteToJson
    config: {{path: out.jsonl}}
"#
    ));
    assert_eq!(
        names(&p),
        ["ReadFromJson", "Filter", "Filter_2", "WriteToJson"]
    );
    assert_eq!(inputs(&p, "ReadFromJson"), Vec::<&str>::new());
    assert_eq!(inputs(&p, "Filter"), ["ReadFromJson"]);
    assert_eq!(inputs(&p, "Filter_2"), ["Filter"]);
    assert_eq!(inputs(&p, "WriteToJson"), ["Filter_2"]);
    assert_json_round_trip(&p);
}

#[test]
fn explicit_wiring_takes_a_name_a_list_or_a_mapping_of_inputs_in_any_order() {
    let p = parse(
        r#"name: wiring
pipeline:
  transforms:
    - type: WriteToJson
      input: Both
      config: {path: out.jsonl}
    - type: Flatten
      name: Both
      input: [Left, Right]
    - type: Create
      name: Left
      config: {elements: [{k: 1}]}
    - type: Create
      name: Right
      config: {elements: [{k: 2}]}
    - type: CoGroupByKey
      input: {a: Left, b: Right}
      config: {keys: k}
    - type: LogForTesting
      input: CoGroupByKey
"#,
    );
    assert_eq!(p.name.as_deref(), Some("wiring"));
    assert_eq!(inputs(&p, "WriteToJson"), ["Both"]);
    assert_eq!(inputs(&p, "Both"), ["Left", "Right"]);
    assert_eq!(inputs(&p, "CoGroupByKey"), ["Left", "Right"]);
    let planned = plan(&p).unwrap();
    assert_eq!(
        planned.pipeline.transforms.last().unwrap().name,
        "LogForTesting"
    );
    assert_json_round_trip(&p);
}

#[test]
fn default_names_skip_names_given_explicitly_anywhere_in_the_file() {
    let p = parse(
        r#"pipeline:
  name: named-inside
  type: chain
  transforms:
    - type: Create
      config: {elements: [{x: 1}]}
    - type: Filter
      config: {keep: x > 0}
    - type: Filter
      config: {keep: x > 1}
    - type: MapToFields
      name: Filter_2
      config: {fields: {x: x}}
"#,
    );
    assert_eq!(p.name.as_deref(), Some("named-inside"));
    assert_eq!(names(&p), ["Create", "Filter", "Filter_3", "Filter_2"]);
}

#[test]
fn a_chain_can_wire_side_outputs_in_extra_transforms() {
    let p = parse(
        r#"pipeline:
  type: chain
  transforms:
    - type: ReadFromCsv
      name: Read
      config:
        path: in.csv
        schema: {line_no: int, text: string}
        error_handling: {output: bad}
    - type: WriteToCsv
      config: {path: out.csv}
  extra_transforms:
    - type: WriteToJson
      name: WriteBad
      input: Read.bad
      config: {path: bad.jsonl}
options:
  streaming: true
"#,
    );
    assert_eq!(inputs(&p, "WriteBad"), ["Read.bad"]);
    assert_eq!(
        ir(&p, "Read")["bad_records"],
        json!({"on_error": "dead_letter", "tag": "bad"})
    );
    let planned = plan(&p).unwrap();
    assert_eq!(
        planned.collection("Read.bad").unwrap().schema.names(),
        ["source", "line", "error", "record"]
    );
    assert_json_round_trip(&p);
}

#[test]
fn several_inputs_of_a_one_input_transform_are_flattened_first() {
    let p = parse(
        r#"pipeline:
  transforms:
    - {type: Create, name: A, config: {elements: [{x: 1}]}}
    - {type: Create, name: B, config: {elements: [{x: 2}]}}
    - type: WriteToJson
      name: Out
      input: [A, B]
      config: {path: out.jsonl}
"#,
    );
    assert_eq!(names(&p), ["A", "B", "Out_flatten", "Out"]);
    assert_eq!(inputs(&p, "Out_flatten"), ["A", "B"]);
    assert_eq!(ir(&p, "Out_flatten"), json!({"type": "flatten"}));
    assert_eq!(inputs(&p, "Out"), ["Out_flatten"]);
    assert_json_round_trip(&p);
}

// ---- windowing on transforms (Beam YAML semantics) ----

#[test]
fn windowing_on_a_transform_windows_its_input_just_before_it() {
    let p = parse(&format!(
        r#"pipeline:
  type: chain
  transforms:
    - type: ReadFromJson
      config: {{path: in.jsonl, schema: {EVENTS_SCHEMA}}}
    - type: AssignTimestamps
      config: {{timestamp: ts}}
    - type: Combine
      name: Totals
      windowing: {{type: fixed, size: 1m}}
      config: {{group_by: user, combine: {{amount: sum}}}}
    - type: LogForTesting
"#
    ));
    assert_eq!(
        names(&p),
        [
            "ReadFromJson",
            "AssignTimestamps",
            "Totals_windowing",
            "Totals",
            "LogForTesting"
        ]
    );
    assert_eq!(inputs(&p, "Totals_windowing"), ["AssignTimestamps"]);
    assert_eq!(inputs(&p, "Totals"), ["Totals_windowing"]);
    assert_eq!(inputs(&p, "LogForTesting"), ["Totals"]);
    assert_eq!(
        ir(&p, "Totals_windowing")["windowing"]["window_fn"],
        json!({"type": "fixed", "size": 60_000, "offset": 0})
    );
    assert_json_round_trip(&p);
}

#[test]
fn windowing_on_a_root_windows_its_main_output_and_every_consumer_reads_that() {
    let p = parse(
        r#"pipeline:
  transforms:
    - type: WriteToJson
      input: Seq
      config: {path: out.jsonl}
    - type: GenerateSequence
      name: Seq
      config: {count: 10}
      windowing: {type: sliding, size: 10s, period: 5s}
"#,
    );
    assert_eq!(names(&p), ["WriteToJson", "Seq", "Seq_windowing"]);
    assert_eq!(inputs(&p, "Seq_windowing"), ["Seq"]);
    assert_eq!(inputs(&p, "WriteToJson"), ["Seq_windowing"]);
    assert_json_round_trip(&p);
}

#[test]
fn windowing_on_a_join_windows_each_input_named_by_its_alias() {
    let p = parse(
        r#"pipeline:
  windowing: {type: fixed, size: 30s}
  transforms:
    - {type: Create, name: Orders, config: {elements: [{id: 1, amount: 2.5}]}}
    - {type: Create, name: Users, config: {elements: [{uid: 1, name: ann}]}}
    - type: Join
      input: {orders: Orders, users: Users}
      windowing: {type: fixed, size: 1m}
      config:
        equalities: [{orders: id, users: uid}]
"#,
    );
    assert_eq!(
        names(&p),
        [
            "Orders",
            "Orders_windowing",
            "Users",
            "Users_windowing",
            "Join_windowing_orders",
            "Join_windowing_users",
            "Join"
        ]
    );
    // The pipeline-level windowing applies to the roots; the Join's own to its inputs.
    assert_eq!(inputs(&p, "Join_windowing_orders"), ["Orders_windowing"]);
    assert_eq!(
        inputs(&p, "Join"),
        ["Join_windowing_orders", "Join_windowing_users"]
    );
    assert_eq!(
        ir(&p, "Orders_windowing")["windowing"]["window_fn"]["size"],
        json!(30_000)
    );
    assert_eq!(
        ir(&p, "Join_windowing_users")["windowing"]["window_fn"]["size"],
        json!(60_000)
    );
    assert_eq!(
        ir(&p, "Join"),
        json!({"type": "join", "on": [["id"], ["uid"]], "kind": "inner"})
    );
    assert_json_round_trip(&p);
}

#[test]
fn window_into_reads_every_window_type_and_strategy_extension() {
    let p = parse(
        r#"pipeline:
  type: chain
  transforms:
    - {type: GenerateSequence, config: {count: 3}}
    - type: WindowInto
      name: Fixed
      windowing: {type: fixed, size: 60, offset: 500ms}
    - type: WindowInto
      name: Sessions
      windowing:
        type: sessions
        gap: 2m
        trigger: {type: after_watermark, early: {type: after_count, count: 2}, late: never}
        accumulation_mode: accumulating
        allowed_lateness: 1h
        late_data: {output: too_late}
        timestamp_combiner: earliest
        closing_behavior: fire_always
    - type: WindowInto
      name: Dynamic
      config:
        windowing: {type: sessions, gap_expression: value * 1000, late_data: drop}
    - type: WindowInto
      name: Custom
      windowing: {type: custom, fn: Decades}
    - type: WindowInto
      name: Global
      windowing: {type: global, trigger: {type: repeatedly, trigger: {type: after_count, count: 5}}}
"#,
    );
    assert_eq!(
        ir(&p, "Fixed")["windowing"]["window_fn"],
        json!({"type": "fixed", "size": 60_000, "offset": 500})
    );
    assert_eq!(
        ir(&p, "Sessions")["windowing"],
        json!({
            "window_fn": {"type": "sessions", "gap": 120_000},
            "trigger": {"type": "after_watermark", "early": {"type": "after_count", "count": 2}, "late": {"type": "never"}},
            "accumulation": "accumulating",
            "allowed_lateness": 3_600_000,
            "late_data": {"policy": "side_output", "tag": "too_late"},
            "closing": "fire_always",
            "timestamp_combiner": "earliest"
        })
    );
    assert_eq!(
        ir(&p, "Dynamic")["windowing"]["window_fn"],
        json!({"type": "sessions", "gap": 0, "gap_expr": {"binary": {"op": "mul", "left": {"column": "value"}, "right": {"literal": {"int64": 1000}}}}})
    );
    assert_eq!(
        ir(&p, "Custom")["windowing"]["window_fn"],
        json!({"type": "custom", "fn": "Decades"})
    );
    assert_eq!(
        ir(&p, "Global")["windowing"]["trigger"],
        json!({"type": "repeatedly", "trigger": {"type": "after_count", "count": 5}})
    );
    assert_json_round_trip(&p);
}

#[test]
fn triggers_read_every_documented_form() {
    let p = parse(
        r#"pipeline:
  type: chain
  transforms:
    - {type: GenerateSequence, config: {count: 3}}
    - type: WindowInto
      windowing:
        type: fixed
        size: 1m
        trigger:
          type: or_finally
          main:
            type: repeatedly
            trigger:
              type: after_first
              triggers:
                - {type: after_processing_time, delay: 30s}
                - {type: after_count, count: 100}
          until:
            type: after_each
            triggers: [after_watermark, {type: after_all, triggers: [default]}]
"#,
    );
    assert_eq!(
        ir(&p, "WindowInto")["windowing"]["trigger"],
        json!({
            "type": "or_finally",
            "main": {"type": "repeatedly", "trigger": {"type": "after_first", "triggers": [
                {"type": "after_processing_time", "delay": 30_000},
                {"type": "after_count", "count": 100}
            ]}},
            "until": {"type": "after_each", "triggers": [
                {"type": "after_watermark"},
                {"type": "after_all", "triggers": [{"type": "default"}]}
            ]}
        })
    );
    assert_json_round_trip(&p);
}

#[test]
fn the_late_output_of_a_windowed_aggregation_is_named_after_the_aggregation() {
    let p = parse(&format!(
        r#"pipeline:
  type: chain
  transforms:
    - type: ReadFromMemory
      config: {{name: events, schema: {EVENTS_SCHEMA}}}
    - type: AssignTimestamps
      config: {{timestamp: ts, watermark: {{max_out_of_orderness: 5s, idle_timeout: 1m}}}}
    - type: WindowInto
      windowing: {{type: fixed, size: 10s, allowed_lateness: 0, late_data: {{output: late}}}}
    - type: GroupByKey
      name: PerUser
      config: {{keys: [user]}}
    - type: WriteToMemory
      config: {{name: out, include_window: true, include_pane: true}}
  extra_transforms:
    - type: WriteToMemory
      name: Late
      input: PerUser.late
      config: {{name: late}}
"#
    ));
    assert_eq!(
        ir(&p, "AssignTimestamps")["watermark"],
        json!({"max_out_of_orderness": 5000, "idle_timeout": 60_000})
    );
    assert_eq!(
        ir(&p, "WriteToMemory")["metadata"],
        json!({"window": true, "pane": true})
    );
    let planned = plan(&p).unwrap();
    assert_eq!(
        planned.collection("PerUser.late").unwrap().schema.names(),
        ["user", "amount", "ts"]
    );
    assert_json_round_trip(&p);
}

// ---- sources and sinks ----

#[test]
fn create_infers_a_schema_widening_ints_to_floats_and_defaulting_all_null_columns_to_string() {
    let p = parse(
        r#"pipeline:
  transforms:
    - type: Create
      config:
        elements:
          - {n: 1, x: 1, s: a, b: true, tags: [], nothing: null, point: {lat: 1}}
          - {n: 2, x: 2.5, tags: [red], point: {lat: 2.5, lon: 3}}
"#,
    );
    let Value::Object(read) = ir(&p, "Create") else {
        panic!()
    };
    assert_eq!(
        read["schema"],
        json!([
            {"name": "n", "type": "int64", "nullable": true},
            {"name": "x", "type": "float64", "nullable": true},
            {"name": "s", "type": "string", "nullable": true},
            {"name": "b", "type": "boolean", "nullable": true},
            {"name": "tags", "type": {"list": "string"}, "nullable": true},
            {"name": "nothing", "type": "string", "nullable": true},
            {"name": "point", "type": {"struct": [
                {"name": "lat", "type": "float64", "nullable": true},
                {"name": "lon", "type": "int64", "nullable": true}
            ]}, "nullable": true}
        ])
    );
    // Integers in float columns are written as floats, so every row matches the schema.
    assert_eq!(
        read["source"]["elements"],
        json!([
            {"n": 1, "x": 1.0, "s": "a", "b": true, "tags": [], "nothing": null, "point": {"lat": 1.0}},
            {"n": 2, "x": 2.5, "tags": ["red"], "point": {"lat": 2.5, "lon": 3}}
        ])
    );
    assert_json_round_trip(&p);
}

#[test]
fn create_takes_a_declared_schema_and_wraps_non_mapping_elements_like_beam() {
    let p = parse(
        r#"pipeline:
  transforms:
    - type: Create
      name: Typed
      config:
        schema: {amount: double, at: timestamp, words: list<str>}
        elements:
          - {amount: 3, at: 1700000000000, words: [a, b]}
          - {amount: 0.5, at: "2024-01-01T00:00:00Z"}
    - type: Create
      name: Scalars
      config: {elements: [1, 2, 3]}
"#,
    );
    assert_eq!(
        ir(&p, "Typed")["source"]["elements"],
        json!([{"amount": 3.0, "at": 1_700_000_000_000i64, "words": ["a", "b"]}, {"amount": 0.5, "at": "2024-01-01T00:00:00Z"}])
    );
    assert_eq!(
        ir(&p, "Typed")["schema"][2],
        json!({"name": "words", "type": {"list": "string"}, "nullable": true})
    );
    assert_eq!(
        ir(&p, "Scalars")["source"]["elements"],
        json!([{"element": 1}, {"element": 2}, {"element": 3}])
    );
    assert_json_round_trip(&p);
}

#[test]
fn file_sources_read_path_schema_watch_poll_interval_and_dead_letters() {
    let p = parse(
        r#"pipeline:
  transforms:
    - type: ReadFromJson
      name: Json
      config:
        path: data/
        schema: {id: int}
        watch: true
        poll_interval: 250ms
        error_handling: {output: errors}
    - type: ReadFromCsv
      name: Csv
      config: {path: a.csv, schema: {id: int}}
    - type: ReadFromText
      name: Text
      config: {path: a.txt}
"#,
    );
    assert_eq!(
        ir(&p, "Json"),
        json!({
            "type": "read",
            "source": {"kind": "files", "path": "data/", "format": "json_lines", "watch": true, "poll_interval": 250},
            "schema": [{"name": "id", "type": "int64", "nullable": true}],
            "bad_records": {"on_error": "dead_letter", "tag": "errors"}
        })
    );
    assert_eq!(ir(&p, "Csv")["source"]["format"], json!("csv"));
    assert_eq!(ir(&p, "Csv")["bad_records"], json!({"on_error": "fail"}));
    assert_eq!(
        ir(&p, "Text")["schema"],
        json!([{"name": "line", "type": "string", "nullable": true}])
    );
    let planned = plan(&p).unwrap();
    assert!(!planned.collection("Json").unwrap().bounded);
    assert_json_round_trip(&p);
}

#[test]
fn generate_sequence_reads_count_or_beams_exclusive_end_and_rate_forms() {
    let p = parse(
        r#"pipeline:
  transforms:
    - {type: GenerateSequence, name: Counted, config: {start: 5, count: 10, rate: 2.5, partitions: 4}}
    - {type: GenerateSequence, name: Ended, config: {start: 5, end: 8, rate: {elements: 10, seconds: 4}}}
    - {type: GenerateSequence, name: Endless}
"#,
    );
    assert_eq!(
        ir(&p, "Counted")["source"],
        json!({"kind": "sequence", "start": 5, "count": 10, "rate": 2.5, "partitions": 4})
    );
    assert_eq!(
        ir(&p, "Ended")["source"],
        json!({"kind": "sequence", "start": 5, "count": 3, "rate": 2.5, "partitions": 1})
    );
    assert_eq!(
        ir(&p, "Endless")["source"],
        json!({"kind": "sequence", "start": 0, "partitions": 1})
    );
    assert_eq!(
        ir(&p, "Endless")["schema"],
        json!([{"name": "value", "type": "int64", "nullable": true}])
    );
    assert_json_round_trip(&p);
}

#[test]
fn sinks_read_paths_and_window_and_pane_metadata() {
    let p = parse(
        r#"pipeline:
  transforms:
    - {type: GenerateSequence, name: Seq, config: {count: 1}}
    - {type: WriteToJson, input: Seq, config: {path: a.jsonl, include_window: false}}
    - {type: WriteToCsv, input: Seq, config: {path: a.csv, include_pane: true}}
    - {type: WriteToText, input: Seq, config: {path: a.txt}}
    - {type: LogForTesting, input: Seq}
    - {type: WriteToMemory, input: Seq, config: {name: mem}}
"#,
    );
    assert_eq!(
        ir(&p, "WriteToJson"),
        json!({"type": "write", "sink": {"kind": "files", "path": "a.jsonl", "format": "json_lines"}, "metadata": {"window": false, "pane": false}})
    );
    assert_eq!(ir(&p, "WriteToCsv")["metadata"], json!({"pane": true}));
    assert_eq!(ir(&p, "WriteToText")["sink"]["format"], json!("text"));
    assert_eq!(ir(&p, "LogForTesting")["sink"], json!({"kind": "stdout"}));
    assert_eq!(
        ir(&p, "WriteToMemory")["sink"],
        json!({"kind": "memory", "name": "mem"})
    );
    assert_json_round_trip(&p);
}

// ---- element-wise transforms ----

#[test]
fn filter_and_map_to_fields_read_expressions_in_text_or_beams_expression_mappings() {
    let p = parse(&format!(
        r#"pipeline:
  type: chain
  transforms:
    - type: ReadFromJson
      config: {{path: in.jsonl, schema: {EVENTS_SCHEMA}}}
    - type: Filter
      config:
        language: sql
        keep: {{expression: "amount >= 10 and user <> 'bot'"}}
    - type: MapToFields
      config:
        language: generic
        fields:
          who: upper(user)
          cents: {{expression: cast(amount * 100 as int)}}
          one: 1
    - type: MapToFields
      name: Appended
      config:
        append: true
        fields: {{big: cents > 1000}}
"#
    ));
    assert_eq!(
        ir(&p, "Filter")["predicate"],
        serde_json::to_value(weir_model::expr::parse("amount >= 10 and user != 'bot'").unwrap())
            .unwrap()
    );
    let Value::Array(fields) = &ir(&p, "MapToFields")["fields"] else {
        panic!()
    };
    let fields: Vec<String> = fields
        .iter()
        .map(|f| f[0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(fields, ["who", "cents", "one"]);
    assert_eq!(
        ir(&p, "MapToFields")["fields"][2],
        json!(["one", {"literal": {"int64": 1}}])
    );
    assert_eq!(ir(&p, "Appended")["append"], json!(true));
    let planned = plan(&p).unwrap();
    assert_eq!(
        planned.collection("Appended").unwrap().schema.names(),
        ["who", "cents", "one", "big"]
    );
    assert_json_round_trip(&p);
}

#[test]
fn map_to_fields_drop_becomes_an_explicit_projection_of_the_remaining_columns() {
    let p = parse(&format!(
        r#"pipeline:
  type: chain
  transforms:
    - type: ReadFromJson
      config: {{path: in.jsonl, schema: {EVENTS_SCHEMA}}}
    - type: MapToFields
      name: First
      config:
        append: true
        drop: ts
        fields: {{amount: amount * 2, doubled: true}}
    - type: MapToFields
      name: Second
      config: {{append: true, drop: [doubled, user], fields: {{user: lower(user)}}}}
"#
    ));
    assert_eq!(
        ir(&p, "First"),
        json!({"type": "project", "append": false, "fields": [
            ["user", {"column": "user"}],
            ["amount", {"binary": {"op": "mul", "left": {"column": "amount"}, "right": {"literal": {"int64": 2}}}}],
            ["doubled", {"literal": {"boolean": true}}]
        ]})
    );
    let planned = plan(&p).unwrap();
    assert_eq!(
        planned.collection("Second").unwrap().schema.names(),
        ["amount", "user"]
    );
    assert_json_round_trip(&p);
}

#[test]
fn explode_assign_timestamps_and_dedup_read_their_fields() {
    let p = parse(
        r#"pipeline:
  type: chain
  transforms:
    - type: Create
      config: {elements: [{id: 1, tags: [a, b], at: 5}]}
    - {type: Explode, config: {fields: tags}}
    - {type: AssignTimestamps, config: {timestamp: at * 1000, max_out_of_orderness: 1.5}}
    - {type: Deduplicate, config: {keys: [id, tags], ttl: 1d}}
    - {type: Explode, name: Single, config: {fields: [tags]}}
"#,
    );
    assert_eq!(
        ir(&p, "Explode"),
        json!({"type": "explode", "field": "tags"})
    );
    assert_eq!(
        ir(&p, "Single"),
        json!({"type": "explode", "field": "tags"})
    );
    assert_eq!(
        ir(&p, "AssignTimestamps")["watermark"],
        json!({"max_out_of_orderness": 1500})
    );
    assert_eq!(
        ir(&p, "Deduplicate"),
        json!({"type": "dedup", "keys": ["id", "tags"], "ttl": 86_400_000})
    );
}

#[test]
fn user_functions_are_built_by_type_name_with_their_config() {
    let p = parse(
        r#"pipeline:
  type: chain
  transforms:
    - type: Create
      config: {elements: [{user: a, line: hello world}]}
    - type: ParDo
      name: Words
      config:
        fn: {type: Tokenize, config: {column: line}}
        error_handling: {output: failed}
    - type: MapBatches
      config: {fn: Passthrough}
    - type: StatefulParDo
      config: {keys: word, fn: {type: RunningCount}}
  extra_transforms:
    - {type: LogForTesting, name: Empty, input: Words.empty}
    - {type: LogForTesting, name: Failed, input: Words.failed}
"#,
    );
    assert_eq!(
        ir(&p, "Words"),
        json!({"type": "par_do", "do_fn": {"fn": "Tokenize", "column": "line"}, "on_error": {"on_error": "dead_letter", "tag": "failed"}})
    );
    assert_eq!(
        ir(&p, "MapBatches")["batch_fn"],
        json!({"fn": "Passthrough"})
    );
    assert_eq!(
        ir(&p, "StatefulParDo"),
        json!({"type": "stateful_par_do", "keys": ["word"], "stateful_fn": {"fn": "RunningCount"}})
    );
    let planned = plan(&p).unwrap();
    assert!(planned.collection("Words.empty").is_some());
    assert_json_round_trip(&p);
}

// ---- aggregations ----

#[test]
fn combine_reads_beams_shorthands_full_form_sql_style_and_user_combiners() {
    let p = parse(&format!(
        r#"pipeline:
  type: chain
  transforms:
    - type: ReadFromJson
      config: {{path: in.jsonl, schema: {EVENTS_SCHEMA}}}
    - type: Combine
      config:
        group_by: user
        combine:
          amount: sum
          biggest: {{value: amount, fn: max}}
          typed: {{value: amount * 2, fn: {{type: mean}}}}
          rows: count(*)
          total_cents: sum(amount * 100)
          users: {{value: user, fn: {{type: JoinText, config: {{separator: ","}}}}}}
          events: {{fn: count}}
"#
    ));
    let combine = ir(&p, "Combine");
    assert_eq!(combine["group_by"], json!(["user"]));
    let aggs = combine["aggregations"].as_array().unwrap();
    assert_eq!(
        aggs[0],
        json!({"name": "amount", "fn": "sum", "input": {"column": "amount"}})
    );
    assert_eq!(
        aggs[1],
        json!({"name": "biggest", "fn": "max", "input": {"column": "amount"}})
    );
    assert_eq!(aggs[2]["fn"], json!("mean"));
    assert_eq!(aggs[3], json!({"name": "rows", "fn": "count"}));
    assert_eq!(aggs[4]["input"]["binary"]["op"], json!("mul"));
    assert_eq!(
        aggs[5]["fn"],
        json!({"custom": {"fn": "JoinText", "separator": ","}})
    );
    assert_eq!(aggs[6], json!({"name": "events", "fn": "count"}));
    let planned = plan(&p).unwrap();
    assert_eq!(
        planned.collection("Combine").unwrap().schema.to_string(),
        "(user: string, amount: float64, biggest: float64, typed: float64, rows: int64, total_cents: float64, users: string, events: int64)"
    );
    assert_json_round_trip(&p);
}

#[test]
fn combine_without_group_by_is_global() {
    let p = parse(
        r#"pipeline:
  type: chain
  transforms:
    - {type: Create, config: {elements: [{x: 1}]}}
    - {type: Combine, config: {group_by: [], combine: {x: sum}}}
    - {type: Combine, name: Again, config: {combine: {x: max}}}
"#,
    );
    assert_eq!(ir(&p, "Combine")["group_by"], json!([]));
    assert_eq!(ir(&p, "Again")["group_by"], json!([]));
}

#[test]
fn join_reads_shared_or_per_input_equalities_and_every_join_type() {
    let p = parse(
        r#"pipeline:
  transforms:
    - {type: Create, name: A, config: {elements: [{id: 1, x: 1}]}}
    - {type: Create, name: B, config: {elements: [{id: 1, key: 1, y: 2}]}}
    - {type: Create, name: C, config: {elements: [{id: 1, z: 3}]}}
    - {type: Join, name: Shared, input: {a: A, b: B, c: C}, config: {equalities: id, type: outer}}
    - type: Join
      name: PerInput
      input: {left: A, right: B}
      config:
        type: right
        equalities: [{left: id, right: key}, x]
    - {type: Join, name: OuterLeft, input: {a: A, b: B}, config: {equalities: id, type: {outer: [a]}}}
    - {type: Join, name: OuterBoth, input: {a: A, b: B}, config: {equalities: id, type: {outer: [a, b]}}}
    - {type: Join, name: Listed, input: [A, B], config: {equalities: [{A: id, B: key}], type: left}}
    - {type: CoGroupByKey, name: PerAlias, input: {a: A, b: B}, config: {keys: {a: [id], b: key}}}
    - {type: GroupByKey, input: A, config: {keys: id}}
    - {type: TopN, input: A, config: {group_by: id, order_by: x, n: 3, descending: false}}
    - {type: TopN, name: Top, input: A, config: {order_by: x, n: 1}}
"#,
    );
    assert_eq!(
        ir(&p, "Shared"),
        json!({"type": "join", "on": [["id"], ["id"], ["id"]], "kind": "full"})
    );
    assert_eq!(inputs(&p, "Shared"), ["A", "B", "C"]);
    assert_eq!(
        ir(&p, "PerInput"),
        json!({"type": "join", "on": [["id", "x"], ["key", "x"]], "kind": "right"})
    );
    assert_eq!(ir(&p, "OuterLeft")["kind"], json!("left"));
    assert_eq!(ir(&p, "OuterBoth")["kind"], json!("full"));
    assert_eq!(
        ir(&p, "Listed"),
        json!({"type": "join", "on": [["id"], ["key"]], "kind": "left"})
    );
    assert_eq!(
        ir(&p, "PerAlias"),
        json!({"type": "co_group_by_key", "keys": [["id"], ["key"]]})
    );
    assert_eq!(
        ir(&p, "GroupByKey"),
        json!({"type": "group_by_key", "keys": ["id"]})
    );
    assert_eq!(
        ir(&p, "TopN"),
        json!({"type": "top_n", "group_by": ["id"], "order_by": "x", "n": 3, "descending": false})
    );
    assert_eq!(
        ir(&p, "Top"),
        json!({"type": "top_n", "group_by": [], "order_by": "x", "n": 1, "descending": true})
    );
}

#[test]
fn assert_equal_keeps_the_expected_rows() {
    let p = parse(
        r#"pipeline:
  type: chain
  transforms:
    - {type: Create, config: {elements: [{x: 1}]}}
    - {type: AssertEqual, config: {elements: [{x: 1}]}}
"#,
    );
    assert_eq!(
        ir(&p, "AssertEqual"),
        json!({"type": "assert_equal", "elements": [{"x": 1}]})
    );
    assert_json_round_trip(&p);
}

// ---- planning ----

#[test]
fn an_expression_reading_an_unknown_column_fails_planning_naming_transform_and_column() {
    let p = parse(&format!(
        r#"pipeline:
  type: chain
  transforms:
    - type: ReadFromJson
      config: {{path: in.jsonl, schema: {EVENTS_SCHEMA}}}
    - type: Filter
      name: BigSpenders
      config: {{keep: amout > 100}}
"#
    ));
    match plan(&p).unwrap_err() {
        ModelError::Column {
            transform, column, ..
        } => {
            assert_eq!(
                (transform.as_str(), column.as_str()),
                ("BigSpenders", "amout")
            );
        }
        other => panic!("{other}"),
    }
}

#[test]
fn the_transform_types_are_listed_for_tools_and_docs() {
    let types = weir_model::file::transform_types();
    assert_eq!(types.first(), Some(&"Create"));
    assert!(types.contains(&"Join") && types.contains(&"WindowInto"));
}

#[test]
fn a_realistic_streaming_file_plans_and_round_trips() {
    let p = parse(
        r#"# Click sessions per user, with late clicks and unparsable lines kept aside.
name: sessions
pipeline:
  transforms:
    - type: ReadFromJson
      name: Clicks
      config:
        path: clicks/
        watch: true
        schema: {user: string, page: string, at: timestamp}
        error_handling: {output: unparsable}
    - type: AssignTimestamps
      input: Clicks
      config: {timestamp: at, max_out_of_orderness: 10s}
    - type: Combine
      name: Sessions
      input: AssignTimestamps
      windowing:
        type: sessions
        gap: 5m
        trigger: {type: after_watermark, early: {type: after_processing_time, delay: 1m}}
        allowed_lateness: 10m
        late_data: {output: late}
      config:
        group_by: user
        combine:
          clicks: count(*)
          pages: {value: page, fn: distinct_count}
    - type: WriteToJson
      input: Sessions
      config: {path: sessions/, include_pane: true}
    - type: WriteToJson
      name: LateClicks
      input: Sessions.late
      config: {path: late/}
    - type: WriteToJson
      name: Unparsable
      input: Clicks.unparsable
      config: {path: unparsable/}
"#,
    );
    let planned = plan(&p).unwrap();
    assert!(!planned.collection("Sessions").unwrap().bounded);
    assert_json_round_trip(&p);
}

#[test]
fn an_unknown_user_function_lists_the_registered_ones_and_bad_config_is_explained() {
    let head = "pipeline:\n  type: chain\n  transforms:\n    - {type: Create, config: {elements: [{line: a}]}}\n";
    let err = parse_str(
        &format!("{head}    - {{type: ParDo, config: {{fn: Tokenise}}}}\n"),
        "f.yaml",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "f.yaml:5:34: transform `ParDo`, field `config.fn`: unknown DoFn type `Tokenise` (registered types: `Tokenize`)"
    );
    let err = parse_str(&format!("{head}    - {{type: ParDo, config: {{fn: {{type: Tokenize, config: {{col: line}}}}}}}}\n"), "f.yaml")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "f.yaml:5:41: transform `ParDo`, field `config.fn`: cannot build DoFn `Tokenize` from its config: missing field `column`"
    );
}

#[test]
fn window_into_also_takes_the_strategy_extensions_beside_windowing_in_its_config() {
    let p = parse(
        r#"pipeline:
  type: chain
  transforms:
    - {type: GenerateSequence, config: {count: 3}}
    - type: WindowInto
      config:
        windowing: {type: fixed, size: 1m}
        trigger: {type: after_watermark, late: {type: after_count, count: 1}}
        allowed_lateness: 10s
        late_data: {output: late}
    - type: Combine
      config: {combine: {value: sum}}
  extra_transforms:
    - {type: LogForTesting, input: Combine.late}
"#,
    );
    assert_eq!(
        ir(&p, "WindowInto")["windowing"],
        json!({
            "window_fn": {"type": "fixed", "size": 60_000, "offset": 0},
            "trigger": {"type": "after_watermark", "late": {"type": "after_count", "count": 1}},
            "accumulation": "discarding",
            "allowed_lateness": 10_000,
            "late_data": {"policy": "side_output", "tag": "late"},
            "closing": "fire_if_non_empty",
            "timestamp_combiner": "end_of_window"
        })
    );
    assert_json_round_trip(&p);
}

#[test]
fn the_repository_examples_parse_plan_and_round_trip() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<_> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path().join("pipeline.yaml"))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no pipeline files under {}",
        examples.display()
    );
    for file in files {
        let p = weir_model::file::parse_file(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(p.name.is_some(), "{}", file.display());
        assert_json_round_trip(&p);
    }
}

/// The YAML examples of `docs/PIPELINE_FILES.md` that are whole pipelines.
fn documented_pipelines() -> Vec<String> {
    let doc = include_str!("../../docs/PIPELINE_FILES.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_yaml_example_of_the_reference_parses_plans_and_round_trips() {
    let blocks = documented_pipelines();
    assert!(blocks.len() >= 15, "{}", blocks.len());
    for block in blocks {
        let p = parse_str(&block, "doc.yaml").unwrap_or_else(|e| panic!("{e}\n{block}"));
        plan(&p).unwrap_or_else(|e| panic!("{e}\n{block}"));
        assert_json_round_trip(&p);
    }
}

#[test]
fn the_reference_documents_every_transform_type_and_function() {
    let doc = include_str!("../../docs/PIPELINE_FILES.md");
    for t in weir_model::file::transform_types() {
        assert!(
            doc.contains(&format!("#### {t}")) || doc.contains(&format!(", {t}")),
            "transform {t}"
        );
    }
    for f in weir_model::expr::Function::ALL {
        assert!(
            doc.contains(&format!("`{}(", f.name())),
            "function {}",
            f.name()
        );
    }
}

#[test]
fn a_side_output_a_user_function_does_not_declare_is_an_error_at_the_reference() {
    let text = r#"pipeline:
  type: chain
  transforms:
    - type: Create
      config: {elements: [{line: a}]}
    - {type: ParDo, name: Words, config: {fn: {type: Tokenize, config: {column: line}}}}
    - type: MapToFields
      config: {append: true, drop: word, fields: {n: 1}}
  extra_transforms:
    - {type: LogForTesting, name: Bad, input: [Words.empty, Words.nonexistent]}
"#;
    assert_eq!(
        parse_str(text, "f.yaml").unwrap_err().to_string(),
        "f.yaml:10:61: transform `Bad`, field `input[1]`: `Words` has no output `nonexistent` (its side outputs: `Words.empty`; \
         a ParDo's outputs are those its function declares, and `config.error_handling: {output: <tag>}`)"
    );
}

#[test]
fn yaml_anchors_and_aliases_share_a_mapping_between_transforms() {
    let p = parse(
        r#"pipeline:
  transforms:
    - type: ReadFromJson
      name: Today
      config: {path: today.jsonl, schema: &events {user: string, amount: float64}}
    - type: ReadFromJson
      name: Yesterday
      config: {path: yesterday.jsonl, schema: *events}
"#,
    );
    assert_eq!(ir(&p, "Today")["schema"], ir(&p, "Yesterday")["schema"]);
}

#[test]
fn inputs_forming_a_cycle_read_and_are_reported_by_planning() {
    let p = parse(
        r#"pipeline:
  transforms:
    - {type: Filter, name: A, input: B, config: {keep: x > 0}}
    - {type: MapToFields, name: B, input: A, config: {fields: {x: x}}}
"#,
    );
    assert!(plan(&p).unwrap_err().to_string().contains("cycle"));
    let err = parse_str(
        r#"pipeline:
  transforms:
    - {type: Filter, name: A, input: B, config: {keep: x > 0}}
    - {type: MapToFields, name: B, input: A, config: {append: true, drop: [y]}}
"#,
        "f.yaml",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "f.yaml:4:69: transform `B`, field `config.drop`: cannot tell which columns remain: the transform's inputs form a cycle"
    );
}
