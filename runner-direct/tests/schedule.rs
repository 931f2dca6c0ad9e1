//! The model on a schedule (what the conformance suite compares every runner against):
//! rows arrive one at a time, the watermark follows every row, only an explicit end of
//! input raises it to the maximum.

use serde_json::json;
use weir_model::file::parse_str;
use weir_model::plan;
use weir_model::time::MAX_TIMESTAMP;
use weir_model::udf::Row;
use weir_runner_core::schedule::{Action, CrashPoint, Schedule, ScheduledRunner, Step};
use weir_runner_direct::DirectRunner;

const PIPELINE: &str = r#"
pipeline:
  type: chain
  transforms:
    - type: ReadFromMemory
      name: clicks
      config:
        name: clicks
        schema: {user: string, ts: int64}
        error_handling: {output: bad}
    - type: AssignTimestamps
      name: time
      config: {timestamp: ts, max_out_of_orderness: 0}
    - type: WindowInto
      config:
        windowing: {type: fixed, size: 10s}
    - type: Combine
      name: count
      config:
        group_by: user
        combine: {n: {fn: count}}
    - type: WriteToMemory
      config: {name: out}
"#;

fn row(user: &str, ts: i64) -> Row {
    json!({"user": user, "ts": ts}).as_object().unwrap().clone()
}

fn deliver(at: i64, rows: Vec<Row>) -> Step {
    Step {
        at,
        action: Action::Deliver {
            source: "clicks".into(),
            partition: 0,
            rows,
        },
    }
}

#[test]
fn the_watermark_follows_every_row_so_a_row_behind_it_in_the_same_delivery_is_late() {
    let plan = plan(&parse_str(PIPELINE, "model.yaml").unwrap()).unwrap();
    let schedule = Schedule {
        steps: vec![
            // One delivery, but the model applies the watermark after each row: the third
            // row (ts 5 000) arrives after the watermark reached 12 000 and its window closed.
            deliver(0, vec![row("a", 1_000), row("a", 12_000), row("a", 5_000)]),
            Step {
                at: 1_000,
                action: Action::Crash {
                    point: CrashPoint::MidBatch,
                },
            },
            Step {
                at: 2_000,
                action: Action::EndInput { source: None },
            },
        ],
    };
    let record = DirectRunner::new()
        .run_schedule(&plan, &schedule, &Default::default())
        .unwrap();
    let out: Vec<(i64, i64, i64)> = record.sinks["out"]
        .iter()
        .map(|r| {
            (
                r.row["n"].as_i64().unwrap(),
                r.meta.window.start,
                r.visible_at,
            )
        })
        .collect();
    // [0, 10 s) fired when the second row arrived (t = 0); [10 s, 20 s) at end of input.
    assert_eq!(out, vec![(1, 0, 0), (1, 10_000, 2_000)]);
    assert_eq!(record.late_dropped.get("count"), Some(&1));
    assert_eq!(record.ignored_steps.len(), 1);
    let time: Vec<i64> = record
        .watermarks
        .iter()
        .filter(|w| w.node == "time")
        .map(|w| w.watermark)
        .collect();
    assert_eq!(time, vec![1_000, 12_000, MAX_TIMESTAMP]);
}

#[test]
fn without_an_end_of_input_open_windows_stay_open() {
    let plan = plan(&parse_str(PIPELINE, "model.yaml").unwrap()).unwrap();
    let schedule = Schedule {
        steps: vec![
            deliver(0, vec![row("a", 1_000)]),
            Step {
                at: 60_000,
                action: Action::Advance,
            },
        ],
    };
    let record = DirectRunner::new()
        .run_schedule(&plan, &schedule, &Default::default())
        .unwrap();
    assert!(record.sinks.get("out").is_none_or(|rows| rows.is_empty()));
    // The row did arrive: its watermark is there, and ending the input fires the window.
    let mut time = record
        .watermarks
        .iter()
        .filter(|w| w.node == "time")
        .map(|w| w.watermark);
    assert_eq!(time.next_back(), Some(1_000));
    let mut ended = schedule.clone();
    ended.steps.push(Step {
        at: 61_000,
        action: Action::EndInput { source: None },
    });
    let record = DirectRunner::new()
        .run_schedule(&plan, &ended, &Default::default())
        .unwrap();
    let out: Vec<(i64, i64)> = record.sinks["out"]
        .iter()
        .map(|r| (r.row["n"].as_i64().unwrap(), r.meta.window.start))
        .collect();
    assert_eq!(out, vec![(1, 0)]);
}

#[test]
fn a_malformed_delivered_row_goes_to_the_dead_letter_output_with_its_position() {
    let plan = plan(&parse_str(PIPELINE, "model.yaml").unwrap()).unwrap();
    let bad = json!({"user": "a", "ts": "soon"})
        .as_object()
        .unwrap()
        .clone();
    let schedule = Schedule {
        steps: vec![
            deliver(0, vec![row("a", 1_000), bad]),
            Step {
                at: 1,
                action: Action::EndInput { source: None },
            },
        ],
    };
    let record = DirectRunner::new()
        .run_schedule(&plan, &schedule, &Default::default())
        .unwrap();
    assert_eq!(record.dead_letters.get("clicks"), Some(&1));
    assert_eq!(record.sinks["out"].len(), 1);
}
