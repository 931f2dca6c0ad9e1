//! The Beam model on the direct runner, rule by rule, driven by test streams with exact
//! expected panes.

use serde_json::{json, Value};
use weir_model::io::{SinkMetadata, SinkSpec, SourceSpec};
use weir_model::plan::Plan;
use weir_model::time::{Duration, MAX_TIMESTAMP};
use weir_model::transform::{AggregateFn, Aggregation, Transform};
use weir_model::udf::{
    Row, StateKind, StateSpec, StatefulContext, StatefulFn, TimeDomain, TimerSpec,
};
use weir_model::window::{
    AccumulationMode, LateDataPolicy, PaneTiming, Trigger, Window, WindowFn, WindowingStrategy,
};
use weir_model::{expr::col, plan, DataType, Field, Pipeline, Schema};
use weir_runner_direct::{DirectRun, DirectRunner, TestStream};

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("user", DataType::String),
        Field::new("n", DataType::Int64),
    ])
}

fn row(user: &str, n: i64) -> Row {
    json!({"user": user, "n": n}).as_object().unwrap().clone()
}

/// events → WindowInto(windowing) → Count(count, total per user) → memory sink `out`
/// (+ the late side output → memory sink `late`).
fn counting_pipeline(windowing: WindowingStrategy) -> Plan {
    let mut p = Pipeline::new();
    let late_tag = match &windowing.late_data {
        LateDataPolicy::SideOutput { tag } => Some(tag.clone()),
        LateDataPolicy::Drop => None,
    };
    p.add(
        "events",
        vec![],
        Transform::Read {
            source: SourceSpec::Memory {
                name: "events".into(),
            },
            schema: schema(),
            bad_records: Default::default(),
        },
    );
    p.add(
        "window",
        vec!["events".into()],
        Transform::WindowInto { windowing },
    );
    p.add(
        "count",
        vec!["window".into()],
        Transform::Combine {
            group_by: vec!["user".into()],
            aggregations: vec![
                Aggregation {
                    name: "count".into(),
                    func: AggregateFn::Count,
                    input: None,
                },
                Aggregation {
                    name: "total".into(),
                    func: AggregateFn::Sum,
                    input: Some(col("n")),
                },
            ],
        },
    );
    p.add(
        "out",
        vec!["count".into()],
        Transform::Write {
            sink: SinkSpec::Memory {
                name: "out".into(),
                guarantee: None,
            },
            metadata: SinkMetadata::default(),
        },
    );
    if let Some(tag) = late_tag {
        p.add(
            "late_out",
            vec![format!("count.{tag}")],
            Transform::Write {
                sink: SinkSpec::Memory {
                    name: "late".into(),
                    guarantee: None,
                },
                metadata: SinkMetadata::default(),
            },
        );
    }
    plan(&p).expect("test pipeline plans")
}

fn fixed(size_ms: i64) -> WindowingStrategy {
    WindowingStrategy::new(WindowFn::Fixed {
        size: Duration(size_ms),
        offset: Duration::ZERO,
    })
}

/// A pane as the tests compare it: (user, count, total, window, timing, index, first, last).
type Pane = (String, i64, i64, Window, PaneTiming, u64, bool, bool);

fn run(plan: &Plan, stream: TestStream) -> (Vec<Pane>, DirectRun) {
    let runner = DirectRunner::new();
    let run = runner
        .execute_test_stream(plan, &stream)
        .expect("run succeeds");
    let panes = run
        .sinks
        .rows("out")
        .into_iter()
        .map(|r| {
            (
                r.row["user"].as_str().unwrap().to_string(),
                r.row["count"].as_i64().unwrap(),
                r.row["total"].as_i64().unwrap(),
                r.meta.window,
                r.meta.pane.timing,
                r.meta.pane.index,
                r.meta.pane.is_first,
                r.meta.pane.is_last,
            )
        })
        .collect();
    (panes, run)
}

#[allow(clippy::too_many_arguments)] // one argument per compared pane field keeps expectations one line each
fn pane(
    user: &str,
    count: i64,
    total: i64,
    w: (i64, i64),
    timing: PaneTiming,
    index: u64,
    first: bool,
    last: bool,
) -> Pane {
    (
        user.to_string(),
        count,
        total,
        Window::new(w.0, w.1),
        timing,
        index,
        first,
        last,
    )
}

use PaneTiming::{Early, Late, OnTime};

#[test]
fn on_time_pane_fires_once_the_watermark_passes_the_end_of_the_window() {
    let plan = counting_pipeline(fixed(10_000));
    let stream = TestStream::new()
        .add_elements(
            "events",
            vec![
                (row("a", 1), 1_000),
                (row("a", 2), 5_000),
                (row("b", 7), 9_999),
            ],
        )
        .advance_watermark_to(9_999)
        .advance_watermark_to(10_000);
    let (panes, run) = run(&plan, stream);
    assert_eq!(
        panes,
        vec![
            pane("a", 2, 3, (0, 10_000), OnTime, 0, true, true),
            pane("b", 1, 7, (0, 10_000), OnTime, 0, true, true)
        ]
    );
    // Both panes became visible when the watermark reached 10 000, not before.
    let out = run.sinks.rows("out");
    assert!(out.iter().all(|r| r.committed));
}

#[test]
fn late_data_is_dropped_and_counted_without_allowed_lateness() {
    let plan = counting_pipeline(fixed(10_000));
    let stream = TestStream::new()
        .add_elements("events", vec![(row("a", 1), 1_000)])
        .advance_watermark_to(10_000)
        .add_elements("events", vec![(row("a", 5), 3_000)]);
    let (panes, run) = run(&plan, stream);
    assert_eq!(
        panes,
        vec![pane("a", 1, 1, (0, 10_000), OnTime, 0, true, true)]
    );
    assert_eq!(run.report.late_dropped.get("count"), Some(&1));
}

#[test]
fn late_data_goes_to_the_side_output_when_the_pipeline_asks() {
    let mut w = fixed(10_000);
    w.late_data = LateDataPolicy::SideOutput { tag: "late".into() };
    let plan = counting_pipeline(w);
    let stream = TestStream::new()
        .add_elements("events", vec![(row("a", 1), 1_000)])
        .advance_watermark_to(10_000)
        .add_elements("events", vec![(row("a", 5), 3_000)]);
    let (panes, run) = run(&plan, stream);
    assert_eq!(
        panes,
        vec![pane("a", 1, 1, (0, 10_000), OnTime, 0, true, true)]
    );
    let late: Vec<Value> = run
        .sinks
        .rows("late")
        .into_iter()
        .map(|r| Value::Object(r.row))
        .collect();
    assert_eq!(late, vec![json!({"user": "a", "n": 5})]);
    assert_eq!(run.report.late_dropped.get("count"), None);
}

fn with_lateness(accumulation: AccumulationMode) -> Plan {
    let mut w = fixed(10_000);
    w.allowed_lateness = Duration::from_secs(5);
    w.accumulation = accumulation;
    counting_pipeline(w)
}

fn lateness_stream() -> TestStream {
    TestStream::new()
        .add_elements("events", vec![(row("a", 1), 1_000), (row("a", 2), 2_000)])
        .advance_watermark_to(10_000)
        // Behind the watermark but inside allowed lateness: re-fires the window.
        .add_elements("events", vec![(row("a", 4), 4_000)])
        .add_elements("events", vec![(row("a", 8), 8_000)])
        // Past end + lateness: the window is garbage-collected; later data is dropped.
        .advance_watermark_to(15_000)
        .add_elements("events", vec![(row("a", 16), 6_000)])
}

#[test]
fn allowed_lateness_refires_the_window_with_late_panes() {
    let (panes, run) = run(
        &with_lateness(AccumulationMode::Discarding),
        lateness_stream(),
    );
    assert_eq!(
        panes,
        vec![
            pane("a", 2, 3, (0, 10_000), OnTime, 0, true, false),
            pane("a", 1, 4, (0, 10_000), Late, 1, false, false),
            pane("a", 1, 8, (0, 10_000), Late, 2, false, false),
        ]
    );
    assert_eq!(run.report.late_dropped.get("count"), Some(&1));
}

#[test]
fn accumulating_panes_repeat_everything_seen_so_far() {
    let (panes, _) = run(
        &with_lateness(AccumulationMode::Accumulating),
        lateness_stream(),
    );
    assert_eq!(
        panes,
        vec![
            pane("a", 2, 3, (0, 10_000), OnTime, 0, true, false),
            pane("a", 3, 7, (0, 10_000), Late, 1, false, false),
            pane("a", 4, 15, (0, 10_000), Late, 2, false, false),
        ]
    );
}

#[test]
fn early_firings_emit_early_panes_before_the_watermark() {
    let mut w = fixed(10_000);
    w.trigger = Trigger::AfterWatermark {
        early: Some(Box::new(Trigger::Repeatedly {
            trigger: Box::new(Trigger::AfterCount { count: 2 }),
        })),
        late: None,
    };
    let plan = counting_pipeline(w);
    let stream = TestStream::new()
        .add_elements("events", vec![(row("a", 1), 1_000), (row("a", 2), 2_000)])
        .add_elements("events", vec![(row("a", 3), 3_000)])
        .advance_watermark_to(10_000);
    let (panes, _) = run(&plan, stream);
    assert_eq!(
        panes,
        vec![
            pane("a", 2, 3, (0, 10_000), Early, 0, true, false),
            pane("a", 1, 3, (0, 10_000), OnTime, 1, false, true)
        ]
    );
}

#[test]
fn processing_time_early_firing_waits_for_its_delay() {
    let mut w = fixed(10_000);
    w.trigger = Trigger::AfterWatermark {
        early: Some(Box::new(Trigger::Repeatedly {
            trigger: Box::new(Trigger::AfterProcessingTime {
                delay: Duration::from_secs(5),
            }),
        })),
        late: None,
    };
    let plan = counting_pipeline(w);
    let stream = TestStream::new()
        .add_elements("events", vec![(row("a", 1), 1_000)])
        .advance_processing_time(Duration::from_secs(4))
        .add_elements("events", vec![(row("a", 2), 2_000)])
        .advance_processing_time(Duration::from_secs(1))
        .advance_watermark_to(10_000);
    let (panes, run) = run(&plan, stream);
    // The ON_TIME firing finds the pane empty and emits nothing (fire-if-non-empty).
    assert_eq!(
        panes,
        vec![pane("a", 2, 3, (0, 10_000), Early, 0, true, false)]
    );
    // The early pane became visible at processing time 5 s, when its delay expired.
    assert_eq!(run.sinks.rows("out")[0].visible_at, 5_000);
}

#[test]
fn sessions_merge_when_a_late_element_bridges_two_fired_sessions() {
    let mut w = WindowingStrategy::new(WindowFn::Sessions {
        gap: Duration::from_secs(10),
        gap_expr: None,
    });
    w.allowed_lateness = Duration::from_secs(60);
    w.accumulation = AccumulationMode::Accumulating;
    let plan = counting_pipeline(w);
    let stream = TestStream::new()
        .add_elements("events", vec![(row("a", 1), 0), (row("a", 2), 15_000)])
        .advance_watermark_to(30_000)
        .add_elements("events", vec![(row("a", 4), 8_000)]);
    let (panes, _) = run(&plan, stream);
    assert_eq!(
        panes[0],
        pane("a", 1, 1, (0, 10_000), OnTime, 0, true, false)
    );
    assert_eq!(
        panes[1],
        pane("a", 1, 2, (15_000, 25_000), OnTime, 0, true, false)
    );
    // The bridging element merges both sessions into one window covering all three.
    let merged = &panes[2];
    assert_eq!(
        (merged.1, merged.2, merged.3, merged.4),
        (3, 7, Window::new(0, 25_000), Late)
    );
    assert_eq!(panes.len(), 3, "{panes:?}");
}

#[test]
fn global_window_with_a_repeated_count_trigger_fires_every_n_elements() {
    let mut w = WindowingStrategy::new(WindowFn::Global);
    w.trigger = Trigger::Repeatedly {
        trigger: Box::new(Trigger::AfterCount { count: 2 }),
    };
    let plan = counting_pipeline(w);
    let elements: Vec<(Row, i64)> = (1..=5).map(|i| (row("a", i), i * 1000)).collect();
    let (panes, _) = run(&plan, TestStream::new().add_elements("events", elements));
    let summary: Vec<(i64, i64, PaneTiming, u64, bool)> =
        panes.iter().map(|p| (p.1, p.2, p.4, p.5, p.7)).collect();
    assert_eq!(
        summary,
        vec![
            (2, 3, Early, 0, false),
            (2, 7, Early, 1, false),
            (1, 5, OnTime, 2, true)
        ]
    );
    assert!(panes.iter().all(|p| p.3 == Window::GLOBAL));
}

/// A stateful function that, per key, sets an event-time timer 1 s after each element and
/// emits the timer's time when it fires.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct EchoLater;

#[typetag::serde]
impl StatefulFn for EchoLater {
    fn state(&self) -> Vec<StateSpec> {
        vec![StateSpec {
            name: "seen".into(),
            kind: StateKind::Value,
        }]
    }
    fn timers(&self) -> Vec<TimerSpec> {
        vec![TimerSpec {
            name: "echo".into(),
            domain: TimeDomain::EventTime,
        }]
    }
    fn output_schema(&self, _input: &Schema) -> Result<Schema, String> {
        Ok(Schema::new(vec![
            Field::new("user", DataType::String),
            Field::new("fired_at", DataType::Int64),
        ]))
    }
    fn process(&self, _row: &Row, ctx: &mut dyn StatefulContext) -> Result<(), String> {
        ctx.set_value("seen", json!(true));
        let at = ctx.timestamp() + 1000;
        ctx.set_timer("echo", at);
        Ok(())
    }
    fn on_timer(&self, _timer: &str, ctx: &mut dyn StatefulContext) -> Result<(), String> {
        let user = ctx.key()["user"].clone();
        let at = ctx.timestamp();
        ctx.emit(
            json!({"user": user, "fired_at": at})
                .as_object()
                .unwrap()
                .clone(),
        );
        Ok(())
    }
}

#[test]
fn event_time_timers_fire_in_timestamp_order_once_the_watermark_passes() {
    let mut p = Pipeline::new();
    p.add(
        "events",
        vec![],
        Transform::Read {
            source: SourceSpec::Memory {
                name: "events".into(),
            },
            schema: schema(),
            bad_records: Default::default(),
        },
    );
    p.add(
        "echo",
        vec!["events".into()],
        Transform::StatefulParDo {
            keys: vec!["user".into()],
            func: Box::new(EchoLater),
        },
    );
    p.add(
        "out",
        vec!["echo".into()],
        Transform::Write {
            sink: SinkSpec::Memory {
                name: "out".into(),
                guarantee: None,
            },
            metadata: SinkMetadata::default(),
        },
    );
    let plan = plan(&p).unwrap();
    let stream = TestStream::new()
        .add_elements(
            "events",
            vec![
                (row("a", 0), 5_000),
                (row("b", 0), 1_000),
                (row("c", 0), 3_000),
            ],
        )
        .advance_watermark_to(3_999)
        .advance_watermark_to(10_000);
    let run = DirectRunner::new()
        .execute_test_stream(&plan, &stream)
        .unwrap();
    let fired: Vec<(String, i64, i64)> = run
        .sinks
        .rows("out")
        .into_iter()
        .map(|r| {
            (
                r.row["user"].as_str().unwrap().to_string(),
                r.row["fired_at"].as_i64().unwrap(),
                r.visible_at,
            )
        })
        .collect();
    assert_eq!(
        fired
            .iter()
            .map(|f| (f.0.as_str(), f.1))
            .collect::<Vec<_>>(),
        vec![("b", 2_000), ("c", 4_000), ("a", 6_000)]
    );
}

#[test]
fn watermark_trace_never_goes_backwards_and_ends_at_the_maximum() {
    let plan = counting_pipeline(fixed(10_000));
    let stream = TestStream::new()
        .add_elements("events", vec![(row("a", 1), 1_000)])
        .advance_watermark_to(20_000)
        .advance_watermark_to(5_000);
    let (_, run) = run(&plan, stream);
    let count: Vec<i64> = run
        .trace
        .iter()
        .filter(|e| e.node == "count")
        .map(|e| e.watermark)
        .collect();
    assert!(count.windows(2).all(|w| w[0] < w[1]), "{count:?}");
    assert_eq!(count.last(), Some(&MAX_TIMESTAMP));
}

mod split_independence {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// However the same arrivals are cut into test-stream steps, the output is the same.
        #[test]
        fn output_does_not_depend_on_how_input_is_split(
            events in proptest::collection::vec((0usize..3, 0i64..30_000, 1i64..10), 1..25),
            cuts in proptest::collection::vec(any::<bool>(), 25),
        ) {
            let plan = counting_pipeline(fixed(10_000));
            let users = ["a", "b", "c"];
            let elements: Vec<(Row, i64)> = events.iter().map(|(u, ts, n)| (row(users[*u], *n), *ts)).collect();
            let whole = TestStream::new().add_elements("events", elements.clone()).advance_watermark_to(40_000);
            let mut split = TestStream::new();
            let mut chunk = Vec::new();
            for (i, e) in elements.into_iter().enumerate() {
                chunk.push(e);
                if cuts[i] {
                    split = split.add_elements("events", std::mem::take(&mut chunk));
                }
            }
            if !chunk.is_empty() {
                split = split.add_elements("events", chunk);
            }
            split = split.advance_watermark_to(40_000);
            let (a, _) = run(&plan, whole);
            let (b, _) = run(&plan, split);
            // At least one event arrives, so at least one pane fires: equal outputs are not
            // two empty ones.
            prop_assert!(!a.is_empty());
            prop_assert_eq!(a, b);
        }
    }
}
