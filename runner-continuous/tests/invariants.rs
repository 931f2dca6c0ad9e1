//! Conformance invariants: without late events the output does not depend on parallelism,
//! on how sources cut their input into batches, or on output buffering; progress is
//! reported as JSON lines.

use proptest::prelude::*;
use serde_json::{json, Value};
use weir_model::runner::PipelineOptions;
use weir_runner_continuous::ContinuousRunner;
use weir_runner_core::io::{MemorySource, SinkRegistry};
use weir_runner_direct::DirectRunner;

const PIPELINE: &str = "pipeline:
  transforms:
    - {type: ReadFromMemory, name: Events, config: {name: SOURCE, schema: {user: string, ts: int64}}}
    - {type: AssignTimestamps, name: Time, input: Events, config: {timestamp: ts, max_out_of_orderness: 1h}}
    - {type: WindowInto, name: Windows, input: Time, config: {windowing: {type: fixed, size: 10s}}}
    - {type: Combine, name: Count, input: Windows, config: {group_by: user, combine: {n: {fn: count}, last: {fn: max, value: ts}}}}
    - {type: WriteToMemory, name: Out, input: Count, config: {name: out, include_pane: true}}
";

fn plan(source: &str) -> weir_model::plan::Plan {
    let text = PIPELINE.replace("SOURCE", source);
    weir_model::plan(&weir_model::file::parse_str(&text, "invariants").unwrap()).unwrap()
}

fn sorted_output(sinks: &SinkRegistry) -> Vec<String> {
    let mut rows: Vec<String> = sinks
        .rows("out")
        .into_iter()
        .map(|r| {
            format!(
                "{} {:?} {:?}",
                Value::Object(r.row),
                r.meta.window,
                r.meta.pane
            )
        })
        .collect();
    rows.sort();
    rows
}

fn register(name: &str, events: &[(u32, usize, i64)]) {
    let mut parts = vec![Vec::new(), Vec::new()];
    for (part, user, ts) in events {
        let user = ["a", "b", "c"][*user];
        let row = json!({"user": user, "ts": ts});
        parts[*part as usize].push(row.as_object().unwrap().clone());
    }
    MemorySource::register(name, parts);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn output_does_not_depend_on_parallelism_batching_or_buffering(
        events in proptest::collection::vec((0u32..2, 0usize..3, 0i64..60_000), 1..40),
        parallelism in 1usize..4,
        batch_rows in 1usize..5,
        buffer_rows in 1usize..4,
        timeout in prop_oneof![Just("0"), Just("5ms")],
    ) {
        let name = format!("invariants-{parallelism}-{batch_rows}-{buffer_rows}-{timeout}-{}", events.len());
        register(&name, &events);
        let plan = plan(&name);
        let direct = SinkRegistry::new();
        DirectRunner::with_sinks(direct.clone())
            .execute(&plan, &PipelineOptions::for_runner("direct"))
            .unwrap();
        let sinks = SinkRegistry::new();
        let options = PipelineOptions::from_args([
            "weir", "--runner", "continuous",
            "--parallelism", &parallelism.to_string(),
            "--buffer-timeout", timeout,
            "--set", &format!("source_batch_rows={batch_rows}"),
            "--set", &format!("buffer_rows={buffer_rows}"),
        ]).unwrap();
        ContinuousRunner::with_sinks(sinks.clone()).execute(&plan, &options).unwrap();
        MemorySource::unregister(&name);
        prop_assert_eq!(sorted_output(&sinks), sorted_output(&direct));
    }
}

#[test]
fn progress_is_written_as_json_lines_ending_with_the_finished_job() {
    let name = "progress-events";
    register(name, &[(0, 0, 1_000), (1, 1, 2_000), (0, 2, 15_000)]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("progress.jsonl");
    let options = PipelineOptions::from_args([
        "weir",
        "--runner",
        "continuous",
        "--parallelism",
        "2",
        "--progress-json",
        path.to_str().unwrap(),
    ])
    .unwrap();
    let run = ContinuousRunner::new()
        .execute(&plan(name), &options)
        .unwrap();
    MemorySource::unregister(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["finished"], true);
    let subtasks = last["subtasks"].as_array().unwrap();
    // Two source subtasks (Events -> Time -> Windows), two Count subtasks, one sink.
    assert_eq!(subtasks.len(), 5, "{}", run.graph.describe());
    let records_in = |node: &str| -> u64 {
        subtasks
            .iter()
            .flat_map(|s| s["nodes"].as_array().unwrap())
            .filter(|n| n["node"] == node)
            .map(|n| n["records_in"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(records_in("Count"), 3);
    assert_eq!(records_in("Out"), 3);
    // Every subtask ends at the maximum watermark.
    for s in subtasks {
        for n in s["nodes"].as_array().unwrap() {
            if n["node"] != "Out" && n["node"] != "Events" {
                assert_eq!(
                    n["watermark"],
                    json!(weir_model::time::MAX_TIMESTAMP),
                    "{n}"
                );
            }
        }
    }
}
