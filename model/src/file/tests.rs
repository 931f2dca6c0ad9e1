//! Every kind of pipeline-file error: where it points (`file:line:column`) and that the
//! message names the transform and the field.

use super::parse_str;
use crate::error::ModelError;

/// The error's `file:line:column` and message.
fn error(text: &str) -> (String, String) {
    match parse_str(text, "f.yaml") {
        Err(ModelError::File { location, message }) => (location.to_string(), message),
        Err(other) => panic!("not a file error: {other}"),
        Ok(p) => panic!(
            "parsed: {:?}",
            p.transforms.iter().map(|t| &t.name).collect::<Vec<_>>()
        ),
    }
}

fn assert_error(text: &str, location: &str, message: &str) {
    let (at, got) = error(text);
    assert_eq!((at.as_str(), got.as_str()), (location, message));
}

fn assert_error_starts(text: &str, location: &str, message_start: &str) {
    let (at, got) = error(text);
    assert_eq!(at, location, "{got}");
    assert!(got.starts_with(message_start), "{got}");
}

// ---- the YAML itself ----

#[test]
fn invalid_yaml_points_at_the_scanner_error() {
    let (at, message) = error("pipeline:\n  transforms: [a, b\n");
    assert_eq!(at, "f.yaml:3:1");
    assert!(message.starts_with("invalid YAML: "), "{message}");
}

#[test]
fn a_duplicate_key_points_at_its_second_occurrence() {
    assert_error(
        "pipeline:\n  transforms: []\n  transforms: []\n",
        "f.yaml:3:3",
        "duplicate key `transforms`",
    );
}

#[test]
fn an_empty_file_or_a_file_without_a_mapping_is_refused() {
    assert_error(
        "",
        "f.yaml:1:1",
        "the file is empty; a pipeline file is a mapping with `pipeline:`",
    );
    assert_error(
        "- a\n- b\n",
        "f.yaml:1:1",
        "expected a mapping with `pipeline:`, found a list",
    );
    assert_error(
        "name: x\n",
        "f.yaml:1:1",
        "field `pipeline`: required field is missing",
    );
    assert_error(
        "pipeline:\n  transforms: []\nproviders: []\n",
        "f.yaml:3:1",
        "field `providers`: unknown field; the top level accepts: pipeline, name, options",
    );
}

#[test]
fn unsupported_tags_and_second_documents_are_refused() {
    assert_error(
        "pipeline: !!set {}\n",
        "f.yaml:1:17",
        "unsupported YAML tag `tag:yaml.org,2002:set`",
    );
    assert_error(
        "pipeline:\n  transforms: []\n---\npipeline: {}\n",
        "f.yaml:4:1",
        "a pipeline file holds one YAML document; found a second one",
    );
}

// ---- structure ----

#[test]
fn an_unknown_transform_type_lists_the_known_ones() {
    let text = "pipeline:\n  transforms:\n    - type: ReadFromKafka\n";
    assert_error_starts(
        text,
        "f.yaml:3:13",
        "transform `ReadFromKafka`, field `type`: unknown transform type `ReadFromKafka`; known types: Create, ReadFromJson, ReadFromCsv,",
    );
    assert!(error(text).1.ends_with("TopN, AssertEqual"));
}

#[test]
fn a_missing_type_names_the_transform_when_it_has_a_name_and_the_path_otherwise() {
    assert_error(
        "pipeline:\n  transforms:\n    - name: Mystery\n",
        "f.yaml:3:7",
        "transform `Mystery`, field `type`: required field is missing",
    );
    assert_error(
        "pipeline:\n  transforms:\n    - config: {}\n",
        "f.yaml:3:7",
        "field `pipeline.transforms[0].type`: required field is missing",
    );
}

#[test]
fn an_unknown_transform_field_suggests_the_closest_one() {
    assert_error(
        "pipeline:\n  transforms:\n    - type: GenerateSequence\n      nme: Numbers\n",
        "f.yaml:4:7",
        "transform `GenerateSequence`, field `nme`: unknown field; did you mean `name`? a transform accepts: type, name, input, config, windowing, parallelism",
    );
}

#[test]
fn duplicate_or_dotted_transform_names_are_refused() {
    let text = "pipeline:
  transforms:
    - {type: GenerateSequence, name: Numbers}
    - {type: GenerateSequence, name: Numbers}
";
    assert_error(
        text,
        "f.yaml:4:38",
        "field `pipeline.transforms[1].name`: two transforms are named `Numbers` (the first at line 3); names must be unique",
    );
    assert_error(
        "pipeline:\n  transforms:\n    - {type: GenerateSequence, name: a.b}\n",
        "f.yaml:3:38",
        "field `pipeline.transforms[0].name`: `a.b` is not a valid transform name (non-empty, without `.`)",
    );
}

#[test]
fn an_unknown_pipeline_type_and_chain_only_fields_are_refused() {
    assert_error(
        "pipeline:\n  type: dag\n  transforms: []\n",
        "f.yaml:2:3",
        "field `pipeline.type`: unknown pipeline type `dag` (one of: chain, composite)",
    );
    assert_error(
        "pipeline:\n  source: {type: GenerateSequence}\n",
        "f.yaml:2:3",
        "field `pipeline.source`: only a chain pipeline (`type: chain`) takes this field",
    );
    assert_error(
        "pipeline:\n  type: chain\n  transforms: []\n",
        "f.yaml:3:15",
        "field `pipeline.transforms`: the pipeline has no transforms",
    );
}

// ---- inputs ----

const TWO_SOURCES: &str = "pipeline:
  transforms:
    - {type: Create, name: Left, config: {elements: [{k: 1}]}}
    - {type: Create, name: Right, config: {elements: [{k: 1}]}}
";

#[test]
fn an_unknown_input_names_the_field_and_lists_the_transforms() {
    let message = "unknown input `Rigth`: inputs name a transform, or `<transform>.<output>` for a side output (transforms: Join, Left, LogForTesting, Right)";
    assert_error(
        &format!("{TWO_SOURCES}    - type: LogForTesting\n      input: Rigth\n    - {{type: Join, input: {{l: Left, r: Right}}, config: {{equalities: k}}}}\n"),
        "f.yaml:6:14",
        &format!("transform `LogForTesting`, field `input`: {message}"),
    );
    assert_error(
        &format!("{TWO_SOURCES}    - type: LogForTesting\n      input: [Left, Rigth]\n    - {{type: Join, input: {{l: Left, r: Right}}, config: {{equalities: k}}}}\n"),
        "f.yaml:6:21",
        &format!("transform `LogForTesting`, field `input[1]`: {message}"),
    );
    assert_error(
        &format!("{TWO_SOURCES}    - type: LogForTesting\n      input: Left\n    - type: Join\n      input: {{l: Left, r: Rigth}}\n      config: {{equalities: k}}\n"),
        "f.yaml:8:27",
        &format!("transform `Join`, field `input.r`: {message}"),
    );
}

#[test]
fn an_unknown_side_output_says_how_side_outputs_are_declared() {
    assert_error(
        &format!("{TWO_SOURCES}    - type: LogForTesting\n      input: Left.errors\n"),
        "f.yaml:6:14",
        "transform `LogForTesting`, field `input`: `Left` has no output `errors` (its side outputs: none; a source's dead-letter output is declared with `config.error_handling: {output: <tag>}`)",
    );
    let windowed = "pipeline:
  type: chain
  transforms:
    - {type: GenerateSequence, config: {count: 1}}
    - {type: WindowInto, windowing: {type: fixed, size: 1s, late_data: {output: late}}}
    - {type: Combine, name: Sum, config: {combine: {value: sum}}}
  extra_transforms:
    - {type: LogForTesting, input: Sum.tardy}
";
    assert_error(
        windowed,
        "f.yaml:8:36",
        "transform `LogForTesting`, field `input`: `Sum` has no output `tardy` (its side outputs: `Sum.late`; an aggregation's late-data output is declared with `late_data: {output: <tag>}` in the windowing upstream)",
    );
}

#[test]
fn reading_the_output_of_a_sink_is_refused() {
    assert_error(
        &format!("{TWO_SOURCES}    - {{type: WriteToMemory, name: Out, input: Left, config: {{name: out}}}}\n    - {{type: LogForTesting, input: Out}}\n"),
        "f.yaml:6:36",
        "transform `LogForTesting`, field `input`: `Out` is a WriteToMemory and has no output to read",
    );
    assert_error(
        "pipeline:\n  type: chain\n  transforms:\n    - {type: GenerateSequence, config: {count: 1}}\n    - {type: LogForTesting}\n    - {type: LogForTesting}\n",
        "f.yaml:6:7",
        "transform `LogForTesting_2`: `LogForTesting` is a LogForTesting and has no output to read",
    );
}

#[test]
fn input_counts_are_checked_against_the_transform_type() {
    assert_error(
        &format!("{TWO_SOURCES}    - {{type: Create, name: Third, input: Left, config: {{elements: [{{k: 1}}]}}}}\n"),
        "f.yaml:5:42",
        "transform `Third`, field `input`: a Create is a source and takes no input",
    );
    assert_error(
        &format!("{TWO_SOURCES}    - {{type: Join, input: [Left], config: {{equalities: k}}}}\n"),
        "f.yaml:5:27",
        "transform `Join`, field `input`: a Join needs at least 2 input(s), got 1",
    );
    assert_error(
        &format!("{TWO_SOURCES}    - {{type: Filter, config: {{keep: k > 0}}}}\n"),
        "f.yaml:5:7",
        "transform `Filter`, field `input`: required field is missing: this transform needs an input",
    );
}

#[test]
fn a_chain_refuses_explicit_inputs_and_sources_after_the_first_transform() {
    let head = "pipeline:\n  type: chain\n  transforms:\n    - {type: GenerateSequence, name: A, config: {count: 1}}\n";
    assert_error(
        &format!("{head}    - {{type: LogForTesting, input: A}}\n"),
        "f.yaml:5:36",
        "transform `LogForTesting`, field `input`: a transform in a chain reads the previous one; wire other inputs in `extra_transforms`",
    );
    assert_error(
        &format!("{head}    - {{type: GenerateSequence, name: B}}\n"),
        "f.yaml:5:7",
        "transform `B`: a GenerateSequence takes no input, so it cannot follow `A` in a chain",
    );
}

// ---- config fields ----

#[test]
fn an_unknown_config_field_lists_the_allowed_fields() {
    assert_error(
        "pipeline:\n  transforms:\n    - type: ReadFromJson\n      config:\n        path: a.jsonl\n        schema: {id: int}\n        pth: x\n",
        "f.yaml:7:9",
        "transform `ReadFromJson`, field `config.pth`: unknown field; did you mean `path`? ReadFromJson accepts: path, schema, watch, poll_interval, rate, error_handling",
    );
}

#[test]
fn a_missing_required_field_points_at_the_config_or_at_the_transform_without_one() {
    assert_error(
        "pipeline:\n  transforms:\n    - type: ReadFromJson\n      name: Events\n      config:\n        schema: {id: int}\n",
        "f.yaml:6:9",
        "transform `Events`, field `config.path`: required field is missing",
    );
    assert_error(
        "pipeline:\n  type: chain\n  transforms:\n    - {type: GenerateSequence}\n    - type: WriteToJson\n",
        "f.yaml:5:7",
        "transform `WriteToJson`, field `config.path`: required field is missing",
    );
}

#[test]
fn a_value_of_the_wrong_yaml_kind_says_what_was_expected() {
    assert_error(
        "pipeline:\n  transforms:\n    - type: ReadFromText\n      config: {path: a.txt, watch: 'yes'}\n",
        "f.yaml:4:36",
        "transform `ReadFromText`, field `config.watch`: expected true or false, found a string",
    );
    assert_error(
        "pipeline:\n  transforms:\n    - type: ReadFromText\n      config: [path, a.txt]\n",
        "f.yaml:4:15",
        "transform `ReadFromText`, field `config`: expected a mapping, found a list",
    );
    assert_error(
        "pipeline:\n  transforms:\n    - {type: GenerateSequence, config: {count: -3}}\n",
        "f.yaml:3:48",
        "transform `GenerateSequence`, field `config.count`: expected a non-negative integer, found -3",
    );
}

#[test]
fn a_bad_duration_names_the_field() {
    assert_error(
        "pipeline:\n  type: chain\n  transforms:\n    - {type: GenerateSequence}\n    - type: WindowInto\n      windowing: {type: fixed, size: ten}\n",
        "f.yaml:6:38",
        "transform `WindowInto`, field `windowing.size`: `ten` is not a duration (use e.g. `500ms`, `10s`, `1m`, `2h` or a number of seconds)",
    );
    assert_error(
        "pipeline:\n  transforms:\n    - {type: ReadFromText, config: {path: a, watch: true, poll_interval: [1]}}\n",
        "f.yaml:3:74",
        "transform `ReadFromText`, field `config.poll_interval`: expected a duration such as `10s`, `500ms`, `1m` or a number of seconds, found a list",
    );
}

#[test]
fn a_bad_expression_points_at_the_exact_character_in_plain_quoted_and_block_scalars() {
    let head = "pipeline:\n  type: chain\n  transforms:\n    - {type: GenerateSequence}\n";
    assert_error(
        &format!("{head}    - type: Filter\n      config:\n        keep: value >> 3\n"),
        "f.yaml:7:22",
        "transform `Filter`, field `config.keep`: cannot parse expression `value >> 3`: expected an expression, found `>` (character 8)",
    );
    assert_error(
        &format!("{head}    - type: Filter\n      config:\n        keep: \"value = 'a' and\"\n"),
        "f.yaml:7:31",
        "transform `Filter`, field `config.keep`: cannot parse expression `value = 'a' and`: expected an expression, found end of text (character 16)",
    );
    assert_error(
        &format!("{head}    - type: MapToFields\n      config:\n        fields:\n          total: |\n            value +\n            * 2\n"),
        "f.yaml:10:13",
        "transform `MapToFields`, field `config.fields.total`: cannot parse expression `value + * 2`: expected an expression, found `*` (character 9)",
    );
    assert_error(
        &format!("{head}    - type: Filter\n      config: {{keep: {{expression: frob(value)}}}}\n"),
        "f.yaml:6:35",
        "transform `Filter`, field `config.keep.expression`: cannot parse expression `frob(value)`: unknown function `frob` (functions: lower, upper, length, trim, concat, substr, starts_with, ends_with, contains, replace, regexp_like, regexp_extract, split, split_part, abs, round, floor, ceil, coalesce, to_timestamp, millis, date_trunc, extract_hour, extract_day, format_timestamp, hash) (character 1)",
    );
}

#[test]
fn an_escaped_quoted_expression_points_at_the_scalar_when_characters_shift() {
    let text = "pipeline:\n  type: chain\n  transforms:\n    - {type: GenerateSequence}\n    - type: Filter\n      config:\n        keep: \"\\x41 = \"\n";
    assert_error(
        text,
        "f.yaml:7:15",
        "transform `Filter`, field `config.keep`: cannot parse expression `A =`: expected an expression, found end of text (character 5)",
    );
}

#[test]
fn a_language_other_than_weirs_expressions_is_refused_naming_the_field() {
    assert_error(
        "pipeline:\n  type: chain\n  transforms:\n    - {type: GenerateSequence}\n    - type: Filter\n      config: {language: python, keep: 'value > 1'}\n",
        "f.yaml:6:26",
        "transform `Filter`, field `config.language`: language `python` is not supported: expressions are Weir's SQL-like language (accepted: weir, sql, generic)",
    );
}

#[test]
fn error_handling_where_expressions_cannot_fail_is_refused() {
    assert_error(
        "pipeline:\n  type: chain\n  transforms:\n    - {type: GenerateSequence}\n    - type: MapToFields\n      config:\n        fields: {x: value}\n        error_handling: {output: bad}\n",
        "f.yaml:8:9",
        "transform `MapToFields`, field `config.error_handling`: not supported by MapToFields: expressions give null instead of failing on a row (e.g. on division by zero); use a ParDo for per-row dead letters",
    );
    assert_error(
        "pipeline:\n  transforms:\n    - {type: ReadFromCsv, config: {path: a, schema: {x: int}, error_handling: {output: a.b}}}\n",
        "f.yaml:3:88",
        "transform `ReadFromCsv`, field `config.error_handling.output`: `a.b` is not a valid output tag (non-empty, without `.`)",
    );
}

// ---- windowing and triggers ----

const WINDOW_HEAD: &str = "pipeline:\n  type: chain\n  transforms:\n    - {type: GenerateSequence}\n    - type: WindowInto\n      windowing:\n";

#[test]
fn windowing_errors_name_the_window_field() {
    assert_error(
        &format!("{WINDOW_HEAD}        type: tumbling\n"),
        "f.yaml:7:15",
        "transform `WindowInto`, field `windowing.type`: unknown window type `tumbling` (one of: global, fixed, sliding, sessions, custom)",
    );
    assert_error(
        &format!("{WINDOW_HEAD}        type: fixed\n        size: 1m\n        period: 10s\n"),
        "f.yaml:9:9",
        "transform `WindowInto`, field `windowing.period`: unknown field; fixed windowing accepts: type, size, offset, trigger, accumulation_mode, allowed_lateness, late_data, timestamp_combiner, closing_behavior",
    );
    assert_error(
        &format!("{WINDOW_HEAD}        type: sliding\n        size: 1m\n"),
        "f.yaml:7:9",
        "transform `WindowInto`, field `windowing.period`: required field is missing",
    );
    assert_error(
        &format!("{WINDOW_HEAD}        type: sessions\n        gap: 1m\n        gap_expression: value\n"),
        "f.yaml:9:9",
        "transform `WindowInto`, field `windowing.gap_expression`: give either `gap` or `gap_expression`, not both",
    );
    assert_error(
        &format!("{WINDOW_HEAD}        type: fixed\n        size: 1m\n        accumulation_mode: accumulate\n"),
        "f.yaml:9:28",
        "transform `WindowInto`, field `windowing.accumulation_mode`: unknown value `accumulate` (one of: discarding, accumulating)",
    );
    assert_error(
        &format!("{WINDOW_HEAD}        type: fixed\n        size: 1m\n        late_data: keep\n"),
        "f.yaml:9:20",
        "transform `WindowInto`, field `windowing.late_data`: expected `drop` or `{output: <tag>}`, found a string",
    );
}

#[test]
fn a_strategy_extension_given_inside_and_beside_windowing_is_refused() {
    assert_error(
        "pipeline:\n  type: chain\n  transforms:\n    - {type: GenerateSequence}\n    - type: WindowInto\n      config:\n        windowing: {type: fixed, size: 1m, allowed_lateness: 1s}\n        allowed_lateness: 2s\n",
        "f.yaml:8:9",
        "transform `WindowInto`, field `config.allowed_lateness`: already given in `config.windowing`",
    );
}

#[test]
fn trigger_errors_name_the_nested_field() {
    assert_error(
        &format!("{WINDOW_HEAD}        type: global\n        trigger: {{type: after_watermark, early: {{type: after_count, count: 0}}}}\n"),
        "f.yaml:8:76",
        "transform `WindowInto`, field `windowing.trigger.early.count`: a count trigger needs a count of at least 1",
    );
    assert_error(
        &format!("{WINDOW_HEAD}        type: global\n        trigger: {{type: after_each, triggers: [default, every_minute]}}\n"),
        "f.yaml:8:57",
        "transform `WindowInto`, field `windowing.trigger.triggers[1]`: unknown trigger type `every_minute` (one of: default, never, after_watermark, after_count, after_processing_time, repeatedly, after_each, after_first, after_all, or_finally)",
    );
    assert_error(
        &format!("{WINDOW_HEAD}        type: global\n        trigger: after_count\n"),
        "f.yaml:8:18",
        "transform `WindowInto`, field `windowing.trigger`: trigger `after_count` needs parameters: write `{type: after_count, count: ...}`",
    );
    assert_error(
        &format!("{WINDOW_HEAD}        type: global\n        trigger: {{type: repeatedly, trigger: {{type: after_processing_time, delay: soon}}}}\n"),
        "f.yaml:8:83",
        "transform `WindowInto`, field `windowing.trigger.trigger.delay`: `soon` is not a duration (use e.g. `500ms`, `10s`, `1m`, `2h` or a number of seconds)",
    );
}

#[test]
fn windowing_on_a_transform_is_read_with_the_same_errors() {
    assert_error(
        "pipeline:\n  type: chain\n  transforms:\n    - {type: GenerateSequence}\n    - type: Combine\n      windowing: {type: fixed}\n      config: {combine: {value: sum}}\n",
        "f.yaml:6:18",
        "transform `Combine`, field `windowing.size`: required field is missing",
    );
    assert_error(
        "pipeline:\n  windowing: {type: fixed, size: x}\n  transforms:\n    - {type: GenerateSequence}\n",
        "f.yaml:2:34",
        "field `pipeline.windowing.size`: `x` is not a duration (use e.g. `500ms`, `10s`, `1m`, `2h` or a number of seconds)",
    );
}

// ---- transform-specific errors ----

#[test]
fn create_with_conflicting_values_asks_for_a_schema() {
    assert_error(
        "pipeline:\n  transforms:\n    - type: Create\n      config:\n        elements:\n          - {id: 1}\n          - {id: one}\n",
        "f.yaml:7:18",
        "transform `Create`, field `config.elements[1].id`: column `id` holds string here but int64 in earlier rows; declare its type in `config.schema`",
    );
    assert_error(
        "pipeline:\n  transforms:\n    - type: Create\n      config:\n        schema: {id: int}\n        elements: [{id: 1}, {name: x}]\n",
        "f.yaml:6:30",
        "transform `Create`, field `config.elements[1].name`: column `name` is not in the schema (id: int64)",
    );
    assert_error(
        "pipeline:\n  transforms:\n    - type: Create\n      config:\n        schema: {id: int}\n        elements: [{id: 1.5}]\n",
        "f.yaml:6:25",
        "transform `Create`, field `config.elements[0].id`: expected a int64 value, found a float",
    );
    assert_error(
        "pipeline:\n  transforms:\n    - type: Create\n      config:\n        schema: {id: integer, at: datetime}\n        elements: []\n",
        "f.yaml:5:35",
        "transform `Create`, field `config.schema.at`: unknown type `datetime` (types: bool, int64, float64, string, timestamp, list<type>, or a mapping for a struct)",
    );
}

#[test]
fn combine_errors_name_the_aggregation() {
    let head = "pipeline:\n  type: chain\n  transforms:\n    - {type: GenerateSequence}\n    - type: Combine\n      config:\n        combine:\n";
    assert_error(
        &format!("{head}          value: total\n"),
        "f.yaml:8:18",
        "transform `Combine`, field `config.combine.value`: unknown aggregation `total`: write one of count, sum, min, max, mean, distinct_count, `fn(expression)`, or `{value: ..., fn: ...}`",
    );
    assert_error(
        &format!("{head}          biggest: {{fn: max}}\n"),
        "f.yaml:8:20",
        "transform `Combine`, field `config.combine.biggest.value`: required field is missing (max needs a value)",
    );
    assert_error(
        &format!("{head}          s: sum(value +)\n"),
        "f.yaml:8:25",
        "transform `Combine`, field `config.combine.s`: cannot parse expression `value +`: expected an expression, found end of text (character 8)",
    );
    assert_error(
        &format!("{head}          s: {{value: value, fn: {{type: sum, config: {{x: 1}}}}}}\n"),
        "f.yaml:8:45",
        "transform `Combine`, field `config.combine.s.fn.config`: unknown field; the built-in aggregation `sum` accepts: type",
    );
    assert_error_starts(
        &format!("{head}          s: {{value: value, fn: {{type: TopFive}}}}\n"),
        "f.yaml:8:40",
        "transform `Combine`, field `config.combine.s.fn`: unknown combiner type `TopFive` (registered types: ",
    );
}

#[test]
fn join_errors_name_the_inputs() {
    assert_error(
        &format!("{TWO_SOURCES}    - type: Join\n      input: {{l: Left, r: Right}}\n      config:\n        equalities: [{{l: k}}]\n"),
        "f.yaml:8:22",
        "transform `Join`, field `config.equalities[0].r`: required field is missing: Weir joins every input on the same key, so each equality names a column of every input",
    );
    assert_error(
        &format!("{TWO_SOURCES}    - type: Join\n      input: {{l: Left, r: Right}}\n      config:\n        equalities: [{{l: k, right: k}}]\n"),
        "f.yaml:8:29",
        "transform `Join`, field `config.equalities[0].right`: unknown field; an equality (one column per input) accepts: l, r",
    );
    assert_error(
        &format!("{TWO_SOURCES}    - type: Join\n      input: {{l: Left, r: Right}}\n      config: {{equalities: k, type: cross}}\n"),
        "f.yaml:7:37",
        "transform `Join`, field `config.type`: unknown join type `cross` (one of: inner, left, right, outer, or {outer: [<inputs>]})",
    );
    assert_error(
        &format!("{TWO_SOURCES}    - type: CoGroupByKey\n      input: {{l: Left, r: Right}}\n      config: {{keys: {{l: k}}}}\n"),
        "f.yaml:7:22",
        "transform `CoGroupByKey`, field `config.keys.r`: required field is missing",
    );
}

#[test]
fn map_to_fields_drop_needs_append_and_existing_columns() {
    let head = "pipeline:\n  type: chain\n  transforms:\n    - {type: Create, config: {elements: [{a: 1, b: 2}]}}\n    - type: MapToFields\n      config:\n";
    assert_error(
        &format!("{head}        drop: [a]\n        fields: {{c: a}}\n"),
        "f.yaml:7:9",
        "transform `MapToFields`, field `config.drop`: only applies with `append: true` (it drops input columns)",
    );
    assert_error(
        &format!("{head}        append: true\n        drop: [a, z]\n"),
        "f.yaml:8:19",
        "transform `MapToFields`, field `config.drop`: column `z` is not in the input (a: int64, b: int64)",
    );
}

#[test]
fn other_transform_specific_errors_name_their_field() {
    let head = "pipeline:\n  type: chain\n  transforms:\n    - {type: Create, config: {elements: [{a: [1], b: [2]}]}}\n";
    assert_error(
        &format!("{head}    - {{type: Explode, config: {{fields: [a, b]}}}}\n"),
        "f.yaml:5:40",
        "transform `Explode`, field `config.fields`: Weir explodes one list column per transform, got 2; chain one Explode per column",
    );
    assert_error(
        &format!("{head}    - {{type: TopN, config: {{order_by: a, n: 0}}}}\n"),
        "f.yaml:5:45",
        "transform `TopN`, field `config.n`: must be at least 1",
    );
    assert_error(
        &format!("{head}    - {{type: AssignTimestamps, config: {{timestamp: a, max_out_of_orderness: 1s, watermark: {{}}}}}}\n"),
        "f.yaml:5:81",
        "transform `AssignTimestamps`, field `config.watermark`: give either `max_out_of_orderness` or `watermark`, not both",
    );
    assert_error(
        &format!("{head}    - {{type: ParDo, config: {{fn: {{type: Tokenize, config: {{fn: x}}}}}}}}\n"),
        "f.yaml:5:59",
        "transform `ParDo`, field `config.fn.config.fn`: `fn` is reserved for the function's type name",
    );
    assert_error(
        &format!("{head}    - {{type: GroupByKey, parallelism: 0, config: {{keys: a}}}}\n"),
        "f.yaml:5:39",
        "transform `GroupByKey`, field `parallelism`: expected a positive integer",
    );
    assert_error(
        &format!("{head}    - {{type: GroupByKey, config: {{keys: ['']}}}}\n"),
        "f.yaml:5:42",
        "transform `GroupByKey`, field `config.keys[0]`: a column name cannot be empty",
    );
}

// ---- the Nexmark source and the meter sink ----

#[test]
fn read_from_nexmark_reads_every_field_and_the_tables_schema() {
    use crate::io::{NexmarkTable, SinkSpec, SourceSpec};
    use crate::transform::Transform;
    let p = parse_str(
        "pipeline:\n  type: chain\n  transforms:\n    - type: ReadFromNexmark\n      config: {table: auction, events: 1000, partitions: 4, first_event_id: 50, base_time: 0, rate: {elements: 10, seconds: 2}, out_of_order_group_size: 7}\n    - {type: WriteToMeter, config: {name: m}}\n",
        "f.yaml",
    )
    .unwrap();
    let Transform::Read { source, schema, .. } = &p.transforms[0].transform else {
        panic!("not a Read")
    };
    assert_eq!(
        *source,
        SourceSpec::Nexmark {
            table: NexmarkTable::Auction,
            events: Some(1000),
            partitions: 4,
            first_event_id: 50,
            base_time: 0,
            rate: Some(5.0),
            out_of_order_group_size: 7,
            realtime: false,
        }
    );
    assert_eq!(*schema, NexmarkTable::Auction.schema());
    assert!(source.is_bounded());
    let Transform::Write { sink, .. } = &p.transforms[1].transform else {
        panic!("not a Write")
    };
    assert_eq!(*sink, SinkSpec::Meter { name: "m".into() });
    assert_eq!(p.transforms[0].transform.type_name(), "ReadFromNexmark");
    assert_eq!(p.transforms[1].transform.type_name(), "WriteToMeter");
}

#[test]
fn read_from_nexmark_in_wall_clock_mode_needs_a_rate_and_a_base_time() {
    use crate::io::SourceSpec;
    use crate::transform::Transform;
    let head = "pipeline:\n  transforms:\n    - type: ReadFromNexmark\n";
    assert_error(
        &format!("{head}      config: {{table: bid, base_time: 1, realtime: true}}\n"),
        "f.yaml:4:52",
        "transform `ReadFromNexmark`, field `config.realtime`: wall-clock mode paces events by their event times, so it needs a `rate`",
    );
    assert_error(
        &format!("{head}      config: {{table: bid, rate: 10, realtime: true}}\n"),
        "f.yaml:4:48",
        "transform `ReadFromNexmark`, field `config.realtime`: wall-clock mode needs `base_time` (the wall-clock time of the first event, milliseconds since the epoch), so that a restored run generates the same events at the same times",
    );
    assert_error(
        &format!("{head}      config: {{table: bid, rate: 10, realtime: yes}}\n"),
        "f.yaml:4:48",
        "transform `ReadFromNexmark`, field `config.realtime`: expected true or false, found a string",
    );
    let p = parse_str(
        "pipeline:\n  type: chain\n  transforms:\n    - type: ReadFromNexmark\n      config: {table: bid, rate: 10, realtime: true, base_time: 1800000000000}\n    - {type: WriteToMeter, config: {name: m}}\n",
        "f.yaml",
    )
    .unwrap();
    let Transform::Read {
        source:
            SourceSpec::Nexmark {
                base_time,
                realtime,
                ..
            },
        ..
    } = &p.transforms[0].transform
    else {
        panic!("not a Nexmark read")
    };
    assert!(*realtime);
    assert_eq!(*base_time, 1_800_000_000_000);
}

#[test]
fn read_from_nexmark_refuses_an_unknown_table_and_zero_partitions() {
    let head = "pipeline:\n  transforms:\n    - type: ReadFromNexmark\n";
    assert_error(
        &format!("{head}      config: {{table: bids}}\n"),
        "f.yaml:4:23",
        "transform `ReadFromNexmark`, field `config.table`: unknown Nexmark table `bids` (tables: person, auction, bid)",
    );
    assert_error(
        &format!("{head}      config: {{table: bid, partitions: 0}}\n"),
        "f.yaml:4:40",
        "transform `ReadFromNexmark`, field `config.partitions`: must be at least 1",
    );
}

// ---- Parquet and PostgreSQL ----

#[test]
fn parquet_read_and_write_take_a_path_and_round_trip_through_json() {
    use crate::io::{SinkSpec, SourceSpec};
    use crate::transform::Transform;
    let p = parse_str(
        "pipeline:\n  type: chain\n  transforms:\n    - type: ReadFromParquet\n      config: {path: in/, schema: {k: string, n: int64}}\n    - {type: WriteToParquet, config: {path: out, include_pane: true}}\n",
        "f.yaml",
    )
    .unwrap();
    let Transform::Read { source, .. } = &p.transforms[0].transform else {
        panic!("not a Read")
    };
    assert_eq!(*source, SourceSpec::Parquet { path: "in/".into() });
    assert!(source.is_bounded());
    let Transform::Write { sink, metadata } = &p.transforms[1].transform else {
        panic!("not a Write")
    };
    assert_eq!(*sink, SinkSpec::Parquet { path: "out".into() });
    assert!(metadata.pane);
    assert_eq!(p.transforms[0].transform.type_name(), "ReadFromParquet");
    assert_eq!(p.transforms[1].transform.type_name(), "WriteToParquet");
    let json = p.to_json().unwrap();
    assert_eq!(
        crate::Pipeline::from_json(&json)
            .unwrap()
            .to_json()
            .unwrap(),
        json
    );
}

#[test]
fn write_to_postgres_reads_its_config_and_refuses_a_password() {
    use crate::io::{DeliveryGuarantee, PostgresWriteMode, SinkSpec};
    use crate::transform::Transform;
    let head = "pipeline:\n  type: chain\n  transforms:\n    - {type: GenerateSequence, config: {count: 3}}\n    - type: WriteToPostgres\n";
    let p = parse_str(
        &format!("{head}      config: {{host: db, port: 5433, database: test, user: weir, password_env: PGPASS, table: totals, mode: upsert, key: value, batch_size: 10}}\n"),
        "f.yaml",
    )
    .unwrap();
    let Transform::Write { sink, .. } = &p.transforms[1].transform else {
        panic!("not a Write")
    };
    let SinkSpec::Postgres(spec) = sink else {
        panic!("not postgres: {sink:?}")
    };
    assert_eq!(spec.host.as_deref(), Some("db"));
    assert_eq!(spec.port, Some(5433));
    assert_eq!(spec.password_env.as_deref(), Some("PGPASS"));
    assert_eq!(
        spec.mode,
        PostgresWriteMode::Upsert {
            key: vec!["value".into()]
        }
    );
    assert_eq!(spec.batch_size, 10);
    assert_eq!(sink.guarantee(), DeliveryGuarantee::Transactional);
    assert_eq!(p.transforms[1].transform.type_name(), "WriteToPostgres");
    let json = p.to_json().unwrap();
    assert!(!json.contains("password\""), "{json}");
    assert_eq!(
        crate::Pipeline::from_json(&json)
            .unwrap()
            .to_json()
            .unwrap(),
        json
    );

    assert_error(
        &format!("{head}      config: {{table: t, password: hunter2}}\n"),
        "f.yaml:6:26",
        "transform `WriteToPostgres`, field `config.password`: passwords do not belong in pipeline files; name an environment variable with `password_env` or a file with `password_file`",
    );
    assert_error_starts(
        &format!("{head}      config: {{table: t, mode: upsert}}\n"),
        "f.yaml:6:26",
        "transform `WriteToPostgres`, field `config.key`: `mode: upsert` needs the key columns",
    );
    assert_error_starts(
        &format!("{head}      config: {{table: t, mode: merge}}\n"),
        "f.yaml:6:32",
        "transform `WriteToPostgres`, field `config.mode`: unknown mode `merge`",
    );
}

// ---- NATS JetStream ----

#[test]
fn jetstream_read_adds_the_message_timestamp_column_and_write_takes_a_subject() {
    use crate::io::{SinkSpec, SourceSpec, NATS_DEFAULT_URL};
    use crate::schema::DataType;
    use crate::transform::Transform;
    let p = parse_str(
        "pipeline:\n  type: chain\n  transforms:\n    - type: ReadFromJetStream\n      config: {stream: S, subjects: [a, b], schema: {k: string}, message_timestamp: at, bounded: true}\n    - {type: WriteToJetStream, config: {subject: out, job: j}}\n",
        "f.yaml",
    )
    .unwrap();
    let Transform::Read { source, schema, .. } = &p.transforms[0].transform else {
        panic!("not a Read")
    };
    let SourceSpec::JetStream(spec) = source else {
        panic!("not JetStream: {source:?}")
    };
    assert_eq!(spec.url, NATS_DEFAULT_URL);
    assert_eq!(spec.subjects, ["a", "b"]);
    assert!(source.is_bounded());
    assert_eq!(schema.field("at").unwrap().data_type, DataType::Timestamp);
    let Transform::Write { sink, .. } = &p.transforms[1].transform else {
        panic!("not a Write")
    };
    assert_eq!(
        *sink,
        SinkSpec::JetStream {
            url: NATS_DEFAULT_URL.into(),
            subject: "out".into(),
            job: Some("j".into()),
            create_stream: None,
        }
    );
    assert_eq!(p.transforms[0].transform.type_name(), "ReadFromJetStream");
    assert_eq!(p.transforms[1].transform.type_name(), "WriteToJetStream");
    assert_error_starts(
        "pipeline:\n  transforms:\n    - type: ReadFromJetStream\n      config: {stream: S, schema: {k: string}, message_timestamp: k}\n",
        "f.yaml:4:48",
        "transform `ReadFromJetStream`, field `config.message_timestamp`: column `k` is already in the schema",
    );
}

#[test]
fn a_jetstream_sink_may_create_its_stream_and_a_source_may_be_paced() {
    use crate::io::{SinkSpec, SourceSpec, StreamSetup};
    use crate::transform::Transform;
    let p = parse_str(
        "pipeline:\n  type: chain\n  transforms:\n    - {type: ReadFromJetStream, config: {stream: S, rate: 50, schema: {k: string}}}\n    - {type: WriteToJetStream, config: {subject: o.x, create_stream: {name: O, subjects: [o.>]}}}\n",
        "f.yaml",
    )
    .unwrap();
    let Transform::Read {
        source: SourceSpec::JetStream(spec),
        ..
    } = &p.transforms[0].transform
    else {
        panic!("not a JetStream read")
    };
    assert_eq!(spec.rate, Some(50.0));
    let Transform::Write {
        sink: SinkSpec::JetStream { create_stream, .. },
        ..
    } = &p.transforms[1].transform
    else {
        panic!("not a JetStream write")
    };
    assert_eq!(
        *create_stream,
        Some(StreamSetup {
            name: "O".into(),
            subjects: vec!["o.>".into()]
        })
    );
    assert_error_starts(
        "pipeline:\n  type: chain\n  transforms:\n    - {type: GenerateSequence, config: {count: 1}}\n    - {type: WriteToJetStream, config: {subject: o.x, create_stream: {name: O, subject: [o.>]}}}\n",
        "f.yaml:5:80",
        "transform `WriteToJetStream`, field `config.create_stream.subject`: unknown field; did you mean `subjects`?",
    );
}

#[test]
fn a_memory_sink_guarantee_is_parsed_and_a_bad_one_is_refused_naming_it() {
    let head = "pipeline:\n  type: chain\n  transforms:\n    - type: Create\n      config: {elements: [{x: 1}]}\n";
    let p = parse_str(
        &format!("{head}    - {{type: WriteToMemory, config: {{name: out, guarantee: at_least_once}}}}\n"),
        "f.yaml",
    )
    .unwrap();
    match &p.transforms[1].transform {
        crate::transform::Transform::Write { sink, .. } => {
            assert_eq!(sink.guarantee(), crate::io::DeliveryGuarantee::AtLeastOnce)
        }
        other => panic!("{other:?}"),
    }
    let (at, message) = error(&format!(
        "{head}    - {{type: WriteToMemory, config: {{name: out, guarantee: maybe}}}}\n"
    ));
    assert_eq!(at, "f.yaml:6:60");
    assert!(message.contains("field `config.guarantee`"), "{message}");
    assert!(message.contains("`maybe` is not a guarantee"), "{message}");
}
