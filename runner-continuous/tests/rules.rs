//! Flink's rules, one test each, on the continuous runner in deterministic mode: one record
//! per poll, a manual clock advancing one watermark interval per poll, so a periodic
//! watermark `max − D − 1` follows every record.

use serde_json::{json, Value};
use weir_model::runner::PipelineOptions;
use weir_model::udf::Row;
use weir_model::window::PaneTiming;
use weir_runner_continuous::{ContinuousRun, ContinuousRunner};
use weir_runner_core::io::{MemorySource, SinkRegistry};

fn rows(values: &[Value]) -> Vec<Row> {
    values
        .iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect()
}

/// Registers `partitions` under a name unique to the test and runs `yaml` (where `SOURCE`
/// stands for that name) deterministically at `parallelism`.
fn run(
    test: &str,
    yaml: &str,
    partitions: Vec<Vec<Value>>,
    parallelism: usize,
) -> anyhow::Result<(ContinuousRun, SinkRegistry)> {
    let source = format!("{test}-events");
    MemorySource::register(&source, partitions.iter().map(|p| rows(p)).collect());
    let text = yaml.replace("SOURCE", &source);
    let pipeline = weir_model::file::parse_str(&text, test)?;
    let plan = weir_model::plan(&pipeline)?;
    let sinks = SinkRegistry::new();
    let options = PipelineOptions::from_args([
        "weir",
        "--runner",
        "continuous",
        "--parallelism",
        &parallelism.to_string(),
        "--set",
        "clock=manual",
    ])?;
    let result = ContinuousRunner::with_sinks(sinks.clone()).execute(&plan, &options);
    MemorySource::unregister(&source);
    Ok((result?, sinks))
}

/// `(user, count, window start, pane timing)` of every recorded row, sorted.
fn panes(sinks: &SinkRegistry, name: &str) -> Vec<(String, i64, i64, PaneTiming)> {
    let mut out: Vec<_> = sinks
        .rows(name)
        .into_iter()
        .map(|r| {
            (
                r.row["user"].as_str().unwrap().to_string(),
                r.row["n"].as_i64().unwrap(),
                r.meta.window.start,
                r.meta.pane.timing,
            )
        })
        .collect();
    out.sort_by_key(|p| format!("{p:?}"));
    out
}

fn late_ts(sinks: &SinkRegistry) -> Vec<i64> {
    let mut ts: Vec<i64> = sinks
        .rows("late")
        .iter()
        .map(|r| r.row["ts"].as_i64().unwrap())
        .collect();
    ts.sort();
    ts
}

fn counting(delay: &str, lateness: &str) -> String {
    format!(
        "pipeline:
  transforms:
    - {{type: ReadFromMemory, name: Events, config: {{name: SOURCE, schema: {{user: string, ts: int64}}}}}}
    - {{type: AssignTimestamps, name: Time, input: Events, config: {{timestamp: ts, max_out_of_orderness: {delay}}}}}
    - type: WindowInto
      name: Windows
      input: Time
      config:
        windowing: {{type: fixed, size: 10s}}
        allowed_lateness: {lateness}
        late_data: {{output: late}}
    - {{type: Combine, name: Count, input: Windows, config: {{group_by: user, combine: {{n: {{fn: count}}}}}}}}
    - {{type: WriteToMemory, name: Out, input: Count, config: {{name: out, include_pane: true}}}}
    - {{type: WriteToMemory, name: Late, input: Count.late, config: {{name: late}}}}
"
    )
}

fn ev(user: &str, ts: i64) -> Value {
    json!({"user": user, "ts": ts})
}

#[test]
fn an_element_at_exactly_the_watermark_is_late() {
    // D = 0: after ts 10 000 the watermark is 9 999, the max timestamp of window [0, 10 s):
    // it fires, and the element at 9 999 == watermark is late for it.
    let (_, sinks) = run(
        "at-watermark",
        &counting("0s", "0s"),
        vec![vec![ev("a", 10_000), ev("a", 9_999)]],
        1,
    )
    .unwrap();
    assert_eq!(late_ts(&sinks), vec![9_999]);
    assert_eq!(
        panes(&sinks, "out"),
        vec![("a".into(), 1, 10_000, PaneTiming::OnTime)]
    );
}

#[test]
fn an_element_one_millisecond_after_the_watermark_is_on_time() {
    // D = 1 ms: the watermark after ts 10 000 is 10 000 − 1 − 1 = 9 998 < 9 999: the window
    // [0, 10 s) has not fired and takes the element.
    let (_, sinks) = run(
        "after-watermark",
        &counting("1ms", "0s"),
        vec![vec![ev("a", 10_000), ev("a", 9_999)]],
        1,
    )
    .unwrap();
    assert!(late_ts(&sinks).is_empty());
    assert_eq!(
        panes(&sinks, "out"),
        vec![
            ("a".into(), 1, 0, PaneTiming::OnTime),
            ("a".into(), 1, 10_000, PaneTiming::OnTime)
        ]
    );
}

#[test]
fn a_late_element_within_allowed_lateness_refires_its_window_and_later_ones_go_aside() {
    // Lateness 5 s: window [0, 10 s) is cleaned once the watermark reaches 9 999 + 5 000.
    let (run, sinks) = run(
        "refire",
        &counting("0s", "5s"),
        vec![vec![
            ev("a", 1_000),
            ev("a", 12_000), // watermark 11 999: [0, 10 s) fires ON_TIME with 1
            ev("a", 2_000),  // late but within lateness: LATE pane
            ev("a", 15_000), // watermark 14 999 = 9 999 + 5 000: [0, 10 s) is cleaned
            ev("a", 3_000),  // late for all its windows: side output
        ]],
        1,
    )
    .unwrap();
    assert_eq!(
        panes(&sinks, "out"),
        vec![
            ("a".into(), 1, 0, PaneTiming::Late),
            ("a".into(), 1, 0, PaneTiming::OnTime),
            ("a".into(), 2, 10_000, PaneTiming::OnTime),
        ]
    );
    assert_eq!(late_ts(&sinks), vec![3_000]);
    assert_eq!(run.report.rows_written.get("Late"), Some(&1));
}

#[test]
fn after_a_shuffle_the_watermark_is_the_min_over_input_channels() {
    // Two splits on two source subtasks: split 0 races ahead in event time, split 1 trails.
    // The keyed window operator takes the min over both channels, so none of split 1's
    // in-order elements is late although split 0's watermark is far past them.
    let fast: Vec<Value> = (0..20).map(|i| ev("a", 100_000 + i * 1_000)).collect();
    let slow: Vec<Value> = (0..5).map(|i| ev("b", i * 1_000)).collect();
    for parallelism in [1, 2] {
        let (run, sinks) = run(
            &format!("min-over-channels-{parallelism}"),
            &counting("0s", "0s"),
            vec![fast.clone(), slow.clone()],
            parallelism,
        )
        .unwrap();
        assert!(late_ts(&sinks).is_empty(), "parallelism {parallelism}");
        let b: Vec<_> = panes(&sinks, "out")
            .into_iter()
            .filter(|p| p.0 == "b")
            .collect();
        assert_eq!(b, vec![("b".into(), 5, 0, PaneTiming::OnTime)]);
        assert!(run.report.late_dropped.is_empty());
    }
}

fn sessions(gap: &str) -> String {
    format!(
        "pipeline:
  transforms:
    - {{type: ReadFromMemory, name: Events, config: {{name: SOURCE, schema: {{user: string, ts: int64, gap: int64}}}}}}
    - {{type: AssignTimestamps, name: Time, input: Events, config: {{timestamp: ts, max_out_of_orderness: 1m}}}}
    - type: WindowInto
      name: Sessions
      input: Time
      config:
        windowing: {{type: sessions, {gap}}}
    - {{type: Combine, name: Count, input: Sessions, config: {{group_by: user, combine: {{n: {{fn: count}}}}}}}}
    - {{type: WriteToMemory, name: Out, input: Count, config: {{name: out}}}}
"
    )
}

#[test]
fn sessions_that_touch_merge() {
    // [0, 10 s) and [10 s, 20 s) touch: one session; [25 s, 35 s) stays apart.
    let (_, sinks) = run(
        "touching-sessions",
        &sessions("gap: 10s"),
        vec![vec![
            json!({"user": "a", "ts": 0, "gap": 0}),
            json!({"user": "a", "ts": 10_000, "gap": 0}),
            json!({"user": "a", "ts": 30_000, "gap": 0}),
        ]],
        2,
    )
    .unwrap();
    let mut windows: Vec<(i64, i64, i64)> = sinks
        .rows("out")
        .iter()
        .map(|r| {
            (
                r.meta.window.start,
                r.meta.window.end,
                r.row["n"].as_i64().unwrap(),
            )
        })
        .collect();
    windows.sort();
    assert_eq!(windows, vec![(0, 20_000, 2), (30_000, 40_000, 1)]);
}

#[test]
fn a_dynamic_session_gap_of_zero_fails_the_job_naming_key_and_timestamp() {
    let err = run(
        "zero-gap",
        &sessions("gap_expression: gap"),
        vec![vec![
            json!({"user": "a", "ts": 0, "gap": 5_000}),
            json!({"user": "zed", "ts": 4_242, "gap": 0}),
        ]],
        2,
    )
    .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("zed") && message.contains("4242") && message.contains("gap"),
        "{message}"
    );
}

/// Two sources whose event times lie 1,000 s apart: the one ahead.
const TWO_CLOCKS: &str = "
name: two_clocks
pipeline:
  transforms:
    - {type: GenerateSequence, name: Early, config: {count: 300}}
    - {type: GenerateSequence, name: Late, config: {start: 1000000, count: 300}}
    - {type: MapToFields, name: EarlyRows, input: Early, config: {fields: {key: value % 3, ts: to_timestamp(value)}}}
    - {type: MapToFields, name: LateRows, input: Late, config: {fields: {key: value % 3, ts: to_timestamp(value)}}}
    - {type: AssignTimestamps, name: EarlyTime, input: EarlyRows, config: {timestamp: ts, max_out_of_orderness: 0s}}
    - {type: AssignTimestamps, name: LateTime, input: LateRows, config: {timestamp: ts, max_out_of_orderness: 0s}}
    - {type: Flatten, name: Both, input: [EarlyTime, LateTime]}
    - type: Combine
      name: Counts
      input: Both
      windowing: {type: fixed, size: 100ms}
      config:
        group_by: key
        combine: {n: count(*)}
    - {type: WriteToMemory, name: Out, input: Counts, config: {name: two-clocks}}
";

/// `(key, count, window start)` of every row `TWO_CLOCKS` wrote, sorted, and how many
/// polls alignment skipped in the source subtasks of `Late`.
fn two_clocks(settings: &[&str]) -> (Vec<(i64, i64, i64)>, u64) {
    let plan =
        weir_model::plan(&weir_model::file::parse_str(TWO_CLOCKS, "two_clocks").unwrap()).unwrap();
    let mut args = vec!["weir", "--runner", "continuous", "--parallelism", "1"];
    for s in settings {
        args.extend(["--set", s]);
    }
    let sinks = SinkRegistry::new();
    let run = ContinuousRunner::with_sinks(sinks.clone())
        .execute(&plan, &PipelineOptions::from_args(args).unwrap())
        .unwrap();
    let mut rows: Vec<(i64, i64, i64)> = sinks
        .rows("two-clocks")
        .into_iter()
        .map(|r| {
            (
                r.row["key"].as_i64().unwrap(),
                r.row["n"].as_i64().unwrap(),
                r.meta.window.start,
            )
        })
        .collect();
    rows.sort();
    let paused = run
        .metrics
        .iter()
        .filter(|m| m.vertex.starts_with("Late"))
        .map(|m| m.alignment_paused_polls)
        .sum();
    (rows, paused)
}

/// Watermark alignment (`watermark_alignment`): the source 1,000 s ahead pauses until the
/// other has caught up (here: finished), and the result is the same as without alignment,
/// where nothing pauses. In deterministic mode, so the two sources interleave the same way in
/// every run.
#[test]
fn watermark_alignment_pauses_the_source_ahead_without_changing_the_result() {
    let (plain, plain_paused) = two_clocks(&["clock=manual"]);
    let (aligned, aligned_paused) = two_clocks(&["clock=manual", "watermark_alignment=1s"]);
    assert_eq!(plain_paused, 0, "alignment is off by default");
    assert!(aligned_paused > 0, "the source ahead paused");
    assert_eq!(aligned, plain);
    let (wall, _) = two_clocks(&["watermark_alignment=1s"]);
    assert_eq!(wall, plain, "on the wall clock too");
    // 600 rows, 3 keys, 100 rows of each 100 ms window spread over the keys.
    assert_eq!(aligned.iter().map(|r| r.1).sum::<i64>(), 600);
}
