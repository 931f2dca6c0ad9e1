//! The model's windowing, triggering, state and aggregation rules, one test per rule, with
//! the exact panes the reference semantics (Beam's) produce.
//!
//! Two harnesses: [`ReduceTester`] drives the reduce logic directly with elements,
//! watermarks and processing time (Beam's `ReduceFnTester`); [`OperatorHarness`] drives a
//! built operator with batches, as a runner would.

use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use weir_model::expr::col;
use weir_model::io::{BadRecordPolicy, SourceSpec};
use weir_model::plan::Plan;
use weir_model::time::{Duration, Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};
use weir_model::transform::{AggregateFn, Aggregation, JoinKind, Transform};
use weir_model::udf::{
    CombineFn, Row, StateKind, StateSpec, StatefulContext, StatefulFn, TimeDomain, TimerSpec,
};
use weir_model::window::{
    AccumulationMode, ClosingBehavior, LateDataPolicy, PaneInfo, TimestampCombiner, Trigger,
    Window, WindowFn, WindowingStrategy,
};
use weir_model::{DataType, Field, Pipeline, Schema};
use weir_runner_core::batch::{self, ElementMeta};
use weir_runner_core::convert::{batch_to_rows, rows_to_batch};
use weir_runner_core::error::ExecResult;
use weir_runner_core::operator::{
    AggregateOperator, Operator, OperatorContext, OperatorMetrics, StatefulOperator,
    WindowIntoOperator,
};
use weir_runner_core::reduce::{ElementOutcome, FiredPane, Key, ReduceFn, ReduceRunner};
use weir_runner_core::window::assign_windows;

// ---------------------------------------------------------------------------------------
// ReduceTester: the reduce logic without a runner.
// ---------------------------------------------------------------------------------------

/// Buffers the values of a pane.
#[derive(Debug, Clone)]
struct CollectValues;

impl ReduceFn for CollectValues {
    type Input = i64;
    type Contents = Vec<i64>;
    fn create(&self) -> Vec<i64> {
        Vec::new()
    }
    fn add(&self, contents: &mut Vec<i64>, input: i64) -> ExecResult<()> {
        contents.push(input);
        Ok(())
    }
    fn merge(&self, contents: &mut Vec<i64>, other: Vec<i64>) -> ExecResult<()> {
        contents.extend(other);
        Ok(())
    }
}

/// Drives a [`ReduceRunner`] like Beam's `ReduceFnTester`: elements are assigned to windows
/// with the strategy's window function, then fed at the current processing time.
struct ReduceTester {
    strategy: WindowingStrategy,
    runner: ReduceRunner<CollectValues>,
    processing_time: Timestamp,
    fired: Vec<FiredPane<Vec<i64>>>,
}

impl ReduceTester {
    fn new(strategy: WindowingStrategy) -> Self {
        ReduceTester {
            runner: ReduceRunner::new(CollectValues, &strategy),
            strategy,
            processing_time: 0,
            fired: Vec::new(),
        }
    }

    /// Adds the element `value` at `ts` for key `key`; returns what happened in each of its
    /// windows.
    fn element(&mut self, key: &str, ts: Timestamp, value: i64) -> Vec<ElementOutcome> {
        let key = Key::new(&[json!(key)]);
        assign_windows(&self.strategy.window_fn, ts, None)
            .unwrap()
            .into_iter()
            .map(|w| {
                self.runner
                    .process_element(&key, w, ts, value, self.processing_time, &mut self.fired)
                    .unwrap()
            })
            .collect()
    }

    /// Adds elements of key `k` whose value is their timestamp.
    fn elements(&mut self, timestamps: &[Timestamp]) {
        for ts in timestamps {
            assert_eq!(
                self.element("k", *ts, *ts),
                vec![ElementOutcome::Accepted],
                "element at {ts}"
            );
        }
    }

    fn watermark(&mut self, wm: Timestamp) -> Timestamp {
        self.runner
            .advance_watermark(wm, self.processing_time, &mut self.fired)
            .unwrap()
    }

    fn processing_time(&mut self, pt: Timestamp) {
        self.processing_time = pt;
        self.runner
            .advance_processing_time(pt, &mut self.fired)
            .unwrap();
    }

    /// The panes fired since the last call, as `key [start,end) TIMING #index flags @ts values`.
    fn panes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.fired)
            .iter()
            .map(describe)
            .collect()
    }
}

/// A pane as `key [start,end) TIMING #index flags @timestamp values` (values sorted: a
/// pane's contents are a multiset).
fn describe(p: &FiredPane<Vec<i64>>) -> String {
    let key = p
        .key
        .values()
        .first()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut values = p.contents.clone();
    values.sort();
    format!(
        "{key} {} {} @{} {values:?}",
        window_text(&p.window),
        pane_text(&p.pane),
        time_text(p.timestamp)
    )
}

fn window_text(w: &Window) -> String {
    if w.is_global() {
        "[global]".into()
    } else {
        format!("[{},{})", w.start, w.end)
    }
}

fn pane_text(p: &PaneInfo) -> String {
    let mut s = format!("{} #{}", p.timing.as_str(), p.index);
    if p.is_first {
        s.push_str(" first");
    }
    if p.is_last {
        s.push_str(" last");
    }
    s
}

fn time_text(t: Timestamp) -> String {
    if t == MAX_TIMESTAMP - 1 {
        "MAX-1".into()
    } else {
        t.to_string()
    }
}

fn fixed(size: i64) -> WindowingStrategy {
    WindowingStrategy::new(WindowFn::Fixed {
        size: Duration(size),
        offset: Duration::ZERO,
    })
}

fn count(n: u64) -> Box<Trigger> {
    Box::new(Trigger::AfterCount { count: n })
}

fn repeatedly(t: Box<Trigger>) -> Box<Trigger> {
    Box::new(Trigger::Repeatedly { trigger: t })
}

// ---------------------------------------------------------------------------------------
// OperatorHarness: an operator driven with batches, as a runner would.
// ---------------------------------------------------------------------------------------

/// What an operator emitted: (side output tag or main, batch).
type Outputs = Vec<(Option<String>, RecordBatch)>;

struct OperatorHarness {
    node: String,
    op: Box<dyn Operator>,
    processing_time: Timestamp,
    watermark: Timestamp,
    metrics: OperatorMetrics,
}

impl OperatorHarness {
    fn new(node: &str, op: Box<dyn Operator>) -> Self {
        OperatorHarness {
            node: node.into(),
            op,
            processing_time: 0,
            watermark: MIN_TIMESTAMP,
            metrics: Default::default(),
        }
    }

    fn run<T>(
        &mut self,
        hook: impl FnOnce(&mut dyn Operator, &mut OperatorContext) -> ExecResult<T>,
    ) -> ExecResult<(T, Outputs)> {
        let mut ctx = OperatorContext::new(&self.node, self.processing_time, self.watermark);
        let result = hook(self.op.as_mut(), &mut ctx)?;
        self.metrics.late_dropped += ctx.metrics.late_dropped;
        Ok((result, ctx.take_outputs()))
    }

    fn batch(&mut self, input: usize, batch: RecordBatch) -> Outputs {
        self.try_batch(input, batch).unwrap()
    }

    fn try_batch(&mut self, input: usize, batch: RecordBatch) -> ExecResult<Outputs> {
        Ok(self.run(|op, ctx| op.process_batch(input, batch, ctx))?.1)
    }

    fn watermark(&mut self, wm: Timestamp) -> Outputs {
        self.watermark = wm;
        let (_, out) = self.run(|op, ctx| op.handle_watermark(wm, ctx)).unwrap();
        out
    }

    fn processing_time(&mut self, pt: Timestamp) -> Outputs {
        self.processing_time = pt;
        self.run(|op, ctx| op.handle_processing_time(ctx))
            .unwrap()
            .1
    }

    fn close(&mut self) -> Outputs {
        let mut out = self.watermark(MAX_TIMESTAMP);
        out.extend(self.run(|op, ctx| op.on_close(ctx)).unwrap().1);
        out
    }
}

fn schema(fields: &[(&str, DataType)]) -> Schema {
    Schema::new(
        fields
            .iter()
            .map(|(n, t)| Field::new(*n, t.clone()))
            .collect(),
    )
}

/// A batch of `rows` (JSON objects) with timestamps `ts`, unwindowed.
fn rows_at(schema: &Schema, rows: &[(Timestamp, Value)]) -> RecordBatch {
    let metas: Vec<ElementMeta> = rows
        .iter()
        .map(|(t, _)| ElementMeta::unwindowed(*t))
        .collect();
    let rows: Vec<Row> = rows
        .iter()
        .map(|(_, r)| r.as_object().unwrap().clone())
        .collect();
    rows_to_batch(&rows, &metas, schema).unwrap()
}

/// Every output row of `outputs` sent to `tag` as `{row} [window] PANE @ts`.
fn rendered(outputs: &Outputs, tag: Option<&str>) -> Vec<String> {
    outputs
        .iter()
        .filter(|(t, _)| t.as_deref() == tag)
        .flat_map(|(_, b)| {
            batch_to_rows(b)
                .into_iter()
                .zip(batch::metas(b))
                .map(|(row, m)| {
                    let pane = if m.pane == PaneInfo::NO_FIRING {
                        "-".to_string()
                    } else {
                        pane_text(&m.pane)
                    };
                    format!(
                        "{} {} {} @{}",
                        Value::Object(row),
                        window_text(&m.window),
                        pane,
                        time_text(m.ts)
                    )
                })
        })
        .collect()
}

/// A plan: `src` (Create with `input`), `win` (WindowInto), then `node` from `win`.
fn windowed_plan(input: &Schema, windowing: WindowingStrategy, node: Transform) -> Plan {
    let mut p = Pipeline::new();
    let src = p.add("src", vec![], read(input));
    let win = p.add("win", vec![src], Transform::WindowInto { windowing });
    p.add("node", vec![win], node);
    weir_model::plan(&p).unwrap()
}

fn read(schema: &Schema) -> Transform {
    Transform::Read {
        source: SourceSpec::Create {
            elements: Vec::new(),
        },
        schema: schema.clone(),
        bad_records: BadRecordPolicy::Fail,
    }
}

/// WindowInto and an aggregation of `plan`, chained: batches go through both.
struct WindowedAggregation {
    window_into: OperatorHarness,
    aggregate: OperatorHarness,
}

impl WindowedAggregation {
    fn new(plan: &Plan, input: &Schema) -> Self {
        let windowing = plan.collection("win").unwrap().windowing.clone();
        let node = plan.pipeline.node("node").unwrap();
        WindowedAggregation {
            window_into: OperatorHarness::new(
                "win",
                Box::new(WindowIntoOperator::new(input, windowing)),
            ),
            aggregate: OperatorHarness::new(
                "node",
                Box::new(AggregateOperator::new(plan, node).unwrap()),
            ),
        }
    }

    fn push(&mut self, batch: RecordBatch) -> Outputs {
        let windowed = self.window_into.batch(0, batch);
        windowed
            .into_iter()
            .flat_map(|(_, b)| self.aggregate.batch(0, b))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Window assignment.
// ---------------------------------------------------------------------------------------

#[test]
fn fixed_windows_are_aligned_to_the_offset_and_correct_for_negative_timestamps() {
    let w = WindowFn::Fixed {
        size: Duration(10),
        offset: Duration(3),
    };
    assert_eq!(
        assign_windows(&w, 12, None).unwrap(),
        vec![Window::new(3, 13)]
    );
    assert_eq!(
        assign_windows(&w, 2, None).unwrap(),
        vec![Window::new(-7, 3)]
    );
    let w = WindowFn::Fixed {
        size: Duration(10),
        offset: Duration::ZERO,
    };
    assert_eq!(
        assign_windows(&w, -1, None).unwrap(),
        vec![Window::new(-10, 0)]
    );
}

#[test]
fn sliding_windows_put_one_element_in_several_windows() {
    let input = schema(&[("k", DataType::String), ("x", DataType::Int64)]);
    let sliding = WindowingStrategy::new(WindowFn::Sliding {
        size: Duration(10),
        period: Duration(5),
        offset: Duration::ZERO,
    });
    let combine = Transform::Combine {
        group_by: vec!["k".into()],
        aggregations: vec![Aggregation {
            name: "total".into(),
            func: AggregateFn::Sum,
            input: Some(col("x")),
        }],
    };
    let plan = windowed_plan(&input, sliding, combine);
    let mut agg = WindowedAggregation::new(&plan, &input);
    let windowed = agg.window_into.batch(
        0,
        rows_at(
            &input,
            &[
                (7, json!({"k": "a", "x": 1})),
                (12, json!({"k": "a", "x": 10})),
            ],
        ),
    );
    assert_eq!(
        rendered(&windowed, None),
        vec![
            r#"{"k":"a","x":1} [0,10) - @7"#,
            r#"{"k":"a","x":1} [5,15) - @7"#,
            r#"{"k":"a","x":10} [5,15) - @12"#,
            r#"{"k":"a","x":10} [10,20) - @12"#,
        ]
    );
    for (_, b) in windowed {
        agg.aggregate.batch(0, b);
    }
    assert_eq!(
        rendered(&agg.aggregate.watermark(30), None),
        vec![
            r#"{"k":"a","total":1} [0,10) ON_TIME #0 first last @9"#,
            r#"{"k":"a","total":11} [5,15) ON_TIME #0 first last @14"#,
            r#"{"k":"a","total":10} [10,20) ON_TIME #0 first last @19"#,
        ]
    );
}

#[test]
fn a_session_gap_that_is_not_positive_fails_the_run_naming_the_row_and_timestamp() {
    let input = schema(&[("user", DataType::String), ("gap", DataType::Int64)]);
    let sessions = WindowingStrategy::new(WindowFn::Sessions {
        gap: Duration(10),
        gap_expr: Some(col("gap")),
    });
    let mut op = OperatorHarness::new("win", Box::new(WindowIntoOperator::new(&input, sessions)));
    let ok = op.batch(0, rows_at(&input, &[(5, json!({"user": "ann", "gap": 7}))]));
    assert_eq!(
        rendered(&ok, None),
        vec![r#"{"user":"ann","gap":7} [5,12) - @5"#]
    );
    let err = op
        .try_batch(
            0,
            rows_at(&input, &[(42, json!({"user": "bob", "gap": 0}))]),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("transform `win`")
            && err.contains(r#""user":"bob""#)
            && err.contains("timestamp 42"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Lateness.
// ---------------------------------------------------------------------------------------

fn late_data_pipeline(policy: LateDataPolicy) -> (Plan, Schema) {
    let input = schema(&[("k", DataType::String), ("x", DataType::Int64)]);
    let mut windowing = fixed(10);
    windowing.late_data = policy;
    (
        windowed_plan(
            &input,
            windowing,
            Transform::GroupByKey {
                keys: vec!["k".into()],
            },
        ),
        input,
    )
}

#[test]
fn late_data_for_an_expired_window_is_dropped_and_counted() {
    let (plan, input) = late_data_pipeline(LateDataPolicy::Drop);
    let mut agg = WindowedAggregation::new(&plan, &input);
    agg.push(rows_at(
        &input,
        &[
            (1, json!({"k": "a", "x": 1})),
            (2, json!({"k": "a", "x": 2})),
        ],
    ));
    assert_eq!(
        rendered(&agg.aggregate.watermark(10), None),
        vec![r#"{"k":"a","values":[{"x":1},{"x":2}]} [0,10) ON_TIME #0 first last @9"#]
    );
    let late = agg.push(rows_at(
        &input,
        &[
            (5, json!({"k": "a", "x": 5})),
            (15, json!({"k": "a", "x": 15})),
        ],
    ));
    assert!(late.is_empty());
    assert_eq!(agg.aggregate.metrics.late_dropped, 1);
    assert_eq!(
        rendered(&agg.aggregate.close(), None),
        vec![r#"{"k":"a","values":[{"x":15}]} [10,20) ON_TIME #0 first last @19"#]
    );
}

#[test]
fn late_data_goes_unchanged_to_the_side_output_when_asked() {
    let (plan, input) = late_data_pipeline(LateDataPolicy::SideOutput { tag: "late".into() });
    let mut agg = WindowedAggregation::new(&plan, &input);
    agg.push(rows_at(&input, &[(1, json!({"k": "a", "x": 1}))]));
    agg.aggregate.watermark(10);
    let out = agg.push(rows_at(
        &input,
        &[
            (5, json!({"k": "a", "x": 5})),
            (15, json!({"k": "b", "x": 15})),
        ],
    ));
    assert_eq!(
        rendered(&out, Some("late")),
        vec![r#"{"k":"a","x":5} [0,10) - @5"#]
    );
    assert_eq!(agg.aggregate.metrics.late_dropped, 0);
}

#[test]
fn an_element_behind_the_watermark_is_accepted_while_its_window_is_within_allowed_lateness() {
    let mut strategy = fixed(10);
    strategy.allowed_lateness = Duration(20);
    let mut t = ReduceTester::new(strategy);
    t.watermark(25);
    // ts 3 is behind the watermark, but [0,10) expires only after 9 + 20 = 29.
    assert_eq!(t.element("k", 3, 3), vec![ElementOutcome::Accepted]);
    // Its first pane is LATE: the window's end is already behind the output watermark.
    assert_eq!(t.panes(), vec!["k [0,10) LATE #0 first @9 [3]"]);
    t.watermark(30);
    assert_eq!(t.element("k", 4, 4), vec![ElementOutcome::Expired]);
    assert!(t.panes().is_empty());
}

#[test]
fn allowed_lateness_refires_the_window_with_late_panes() {
    let mut strategy = fixed(10);
    strategy.allowed_lateness = Duration(20);
    let mut t = ReduceTester::new(strategy);
    t.elements(&[1, 5]);
    t.watermark(10);
    // With allowed lateness the ON_TIME pane is not the last: late data may follow.
    assert_eq!(t.panes(), vec!["k [0,10) ON_TIME #0 first @9 [1, 5]"]);
    // The default trigger fires a LATE pane for every late element.
    t.elements(&[3]);
    t.elements(&[7]);
    assert_eq!(
        t.panes(),
        vec!["k [0,10) LATE #1 @9 [3]", "k [0,10) LATE #2 @9 [7]"]
    );
    // Garbage collection at 9 + 20 < 30: nothing new, so no final pane.
    t.watermark(30);
    assert!(t.panes().is_empty());
    assert_eq!(t.runner.window_count(), 0);
}

#[test]
fn the_final_pane_at_garbage_collection_is_last() {
    let mut strategy = fixed(10);
    strategy.allowed_lateness = Duration(20);
    strategy.trigger = Trigger::AfterWatermark {
        early: None,
        late: Some(count(2)),
    };
    let mut t = ReduceTester::new(strategy.clone());
    t.elements(&[1, 5]);
    t.watermark(10);
    t.elements(&[3]);
    t.watermark(30);
    assert_eq!(
        t.panes(),
        vec![
            "k [0,10) ON_TIME #0 first @9 [1, 5]",
            "k [0,10) LATE #1 last @9 [3]"
        ]
    );

    // FireAlways emits the final pane even when empty.
    strategy.closing = ClosingBehavior::FireAlways;
    let mut t = ReduceTester::new(strategy);
    t.elements(&[1]);
    t.watermark(30);
    assert_eq!(
        t.panes(),
        vec![
            "k [0,10) ON_TIME #0 first @9 [1]",
            "k [0,10) LATE #1 last @9 []"
        ]
    );
}

#[test]
fn without_allowed_lateness_the_on_time_pane_is_the_only_and_last_pane() {
    let mut t = ReduceTester::new(fixed(10));
    t.elements(&[1, 2, 12]);
    assert_eq!(t.watermark(10), 10);
    assert_eq!(t.panes(), vec!["k [0,10) ON_TIME #0 first last @9 [1, 2]"]);
    t.watermark(MAX_TIMESTAMP);
    assert_eq!(t.panes(), vec!["k [10,20) ON_TIME #0 first last @19 [12]"]);
}

#[test]
fn a_finished_trigger_closes_its_window_and_drops_later_elements() {
    let mut strategy = fixed(10);
    strategy.allowed_lateness = Duration(100);
    strategy.trigger = Trigger::AfterWatermark {
        early: None,
        late: None,
    };
    let mut t = ReduceTester::new(strategy);
    t.elements(&[1]);
    t.watermark(10);
    assert_eq!(t.panes(), vec!["k [0,10) ON_TIME #0 first last @9 [1]"]);
    assert_eq!(t.element("k", 2, 2), vec![ElementOutcome::Closed]);
    t.watermark(200);
    assert!(t.panes().is_empty());
    assert_eq!(t.runner.window_count(), 0);
}

// ---------------------------------------------------------------------------------------
// Triggers and panes.
// ---------------------------------------------------------------------------------------

fn early_and_late(mode: AccumulationMode) -> Vec<String> {
    let mut strategy = fixed(10);
    strategy.allowed_lateness = Duration(100);
    strategy.accumulation = mode;
    strategy.trigger = Trigger::AfterWatermark {
        early: Some(count(2)),
        late: Some(count(1)),
    };
    let mut t = ReduceTester::new(strategy);
    t.elements(&[1, 2, 3]);
    t.watermark(10);
    t.elements(&[4]);
    t.watermark(200);
    t.panes()
}

#[test]
fn discarding_panes_hold_only_the_data_since_the_last_firing() {
    assert_eq!(
        early_and_late(AccumulationMode::Discarding),
        vec![
            "k [0,10) EARLY #0 first @9 [1, 2]",
            "k [0,10) ON_TIME #1 @9 [3]",
            "k [0,10) LATE #2 @9 [4]"
        ]
    );
}

#[test]
fn accumulating_panes_hold_everything_so_far() {
    assert_eq!(
        early_and_late(AccumulationMode::Accumulating),
        vec![
            "k [0,10) EARLY #0 first @9 [1, 2]",
            "k [0,10) ON_TIME #1 @9 [1, 2, 3]",
            "k [0,10) LATE #2 @9 [1, 2, 3, 4]",
        ]
    );
}

#[test]
fn early_firings_by_count() {
    let mut strategy = fixed(10);
    strategy.trigger = Trigger::AfterWatermark {
        early: Some(count(2)),
        late: None,
    };
    let mut t = ReduceTester::new(strategy);
    t.elements(&[1, 2, 3, 4, 5]);
    assert_eq!(
        t.panes(),
        vec![
            "k [0,10) EARLY #0 first @9 [1, 2]",
            "k [0,10) EARLY #1 @9 [3, 4]"
        ]
    );
    t.watermark(10);
    assert_eq!(t.panes(), vec!["k [0,10) ON_TIME #2 last @9 [5]"]);
}

#[test]
fn early_firings_by_processing_time() {
    let mut strategy = fixed(10);
    strategy.trigger = Trigger::AfterWatermark {
        early: Some(Box::new(Trigger::AfterProcessingTime {
            delay: Duration(100),
        })),
        late: None,
    };
    let mut t = ReduceTester::new(strategy);
    t.elements(&[1]);
    t.processing_time(50);
    t.elements(&[2]);
    // The delay runs from the pane's first element.
    assert_eq!(t.runner.next_processing_time(), Some(100));
    t.processing_time(99);
    assert!(t.panes().is_empty());
    t.processing_time(100);
    assert_eq!(t.panes(), vec!["k [0,10) EARLY #0 first @9 [1, 2]"]);
    assert_eq!(t.runner.next_processing_time(), None);
    t.processing_time(120);
    t.elements(&[3]);
    assert_eq!(t.runner.next_processing_time(), Some(220));
    t.watermark(10);
    assert_eq!(t.panes(), vec!["k [0,10) ON_TIME #1 last @9 [3]"]);
    assert_eq!(t.runner.next_processing_time(), None);
}

#[test]
fn global_window_with_repeated_count_trigger() {
    let mut strategy = WindowingStrategy::new(WindowFn::Global);
    strategy.trigger = *repeatedly(count(2));
    let mut t = ReduceTester::new(strategy);
    t.elements(&[1, 2, 3, 4, 5]);
    assert_eq!(
        t.panes(),
        vec![
            "k [global] EARLY #0 first @MAX-1 [1, 2]",
            "k [global] EARLY #1 @MAX-1 [3, 4]"
        ]
    );
    t.watermark(1_000_000);
    assert!(
        t.panes().is_empty(),
        "the global window ends only with the input"
    );
    t.watermark(MAX_TIMESTAMP);
    assert_eq!(t.panes(), vec!["k [global] ON_TIME #2 last @MAX-1 [5]"]);
}

#[test]
fn or_finally_fires_like_its_main_trigger_until_the_until_trigger_fires() {
    let mut strategy = WindowingStrategy::new(WindowFn::Global);
    strategy.trigger = Trigger::OrFinally {
        main: repeatedly(count(2)),
        until: count(5),
    };
    let mut t = ReduceTester::new(strategy);
    t.elements(&[1, 2, 3, 4, 5]);
    assert_eq!(
        t.panes(),
        vec![
            "k [global] EARLY #0 first @MAX-1 [1, 2]",
            "k [global] EARLY #1 @MAX-1 [3, 4]",
            "k [global] EARLY #2 last @MAX-1 [5]",
        ]
    );
    assert_eq!(t.element("k", 6, 6), vec![ElementOutcome::Closed]);
    t.watermark(MAX_TIMESTAMP);
    assert!(t.panes().is_empty());
}

#[test]
fn after_each_runs_its_triggers_in_sequence_then_finishes() {
    let mut strategy = WindowingStrategy::new(WindowFn::Global);
    strategy.trigger = Trigger::AfterEach {
        triggers: vec![*count(2), *count(3)],
    };
    let mut t = ReduceTester::new(strategy);
    t.elements(&[1, 2, 3, 4, 5]);
    assert_eq!(
        t.panes(),
        vec![
            "k [global] EARLY #0 first @MAX-1 [1, 2]",
            "k [global] EARLY #1 last @MAX-1 [3, 4, 5]"
        ]
    );
    assert_eq!(t.element("k", 6, 6), vec![ElementOutcome::Closed]);
}

#[test]
fn after_first_and_after_all() {
    let mut strategy = fixed(10);
    strategy.trigger = *repeatedly(Box::new(Trigger::AfterFirst {
        triggers: vec![
            *count(3),
            Trigger::AfterProcessingTime {
                delay: Duration(10),
            },
        ],
    }));
    let mut t = ReduceTester::new(strategy.clone());
    t.elements(&[1, 2, 3]);
    t.elements(&[4]);
    t.processing_time(10);
    assert_eq!(
        t.panes(),
        vec![
            "k [0,10) EARLY #0 first @9 [1, 2, 3]",
            "k [0,10) EARLY #1 @9 [4]"
        ]
    );

    strategy.trigger = Trigger::AfterAll {
        triggers: vec![
            *count(2),
            Trigger::AfterProcessingTime {
                delay: Duration(10),
            },
        ],
    };
    let mut t = ReduceTester::new(strategy);
    t.elements(&[1]);
    t.processing_time(10);
    assert!(t.panes().is_empty(), "the count is not reached yet");
    t.elements(&[2]);
    assert_eq!(t.panes(), vec!["k [0,10) EARLY #0 first last @9 [1, 2]"]);
}

#[test]
fn never_trigger_emits_only_at_garbage_collection() {
    let mut strategy = fixed(10);
    strategy.trigger = Trigger::Never;
    strategy.allowed_lateness = Duration(5);
    let mut t = ReduceTester::new(strategy);
    t.elements(&[1, 2]);
    t.watermark(12);
    assert!(t.panes().is_empty());
    t.watermark(15);
    assert_eq!(t.panes(), vec!["k [0,10) ON_TIME #0 first last @9 [1, 2]"]);
}

#[test]
fn timestamp_combiners_stamp_results_and_hold_the_output_watermark() {
    let mut strategy = fixed(10);
    strategy.timestamp_combiner = TimestampCombiner::Earliest;
    let mut t = ReduceTester::new(strategy.clone());
    t.elements(&[6, 3, 8]);
    // The pending pane will be stamped 3: the output watermark may not pass it.
    assert_eq!(t.watermark(5), 3);
    assert_eq!(t.watermark(10), 10);
    assert_eq!(
        t.panes(),
        vec!["k [0,10) ON_TIME #0 first last @3 [3, 6, 8]"]
    );

    strategy.timestamp_combiner = TimestampCombiner::Latest;
    let mut t = ReduceTester::new(strategy.clone());
    t.elements(&[6, 3, 8]);
    assert_eq!(t.watermark(9), 8);
    t.watermark(10);
    assert_eq!(
        t.panes(),
        vec!["k [0,10) ON_TIME #0 first last @8 [3, 6, 8]"]
    );

    strategy.timestamp_combiner = TimestampCombiner::EndOfWindow;
    let mut t = ReduceTester::new(strategy);
    t.elements(&[6]);
    assert_eq!(t.watermark(9), 9);
}

// ---------------------------------------------------------------------------------------
// Merging windows.
// ---------------------------------------------------------------------------------------

fn sessions(gap: i64) -> WindowingStrategy {
    WindowingStrategy::new(WindowFn::Sessions {
        gap: Duration(gap),
        gap_expr: None,
    })
}

#[test]
fn sessions_merge_when_windows_overlap_or_touch() {
    let mut t = ReduceTester::new(sessions(10));
    t.elements(&[1, 12, 40]);
    // [11, 21) touches [1, 11) and overlaps [12, 22): all three merge into [1, 22).
    t.elements(&[11]);
    t.element("other", 5, 5);
    t.watermark(MAX_TIMESTAMP);
    assert_eq!(
        t.panes(),
        vec![
            "other [5,15) ON_TIME #0 first last @14 [5]",
            "k [1,22) ON_TIME #0 first last @21 [1, 11, 12]",
            "k [40,50) ON_TIME #0 first last @49 [40]",
        ]
    );
}

fn bridged_sessions(mode: AccumulationMode) -> Vec<String> {
    let mut strategy = sessions(10);
    strategy.allowed_lateness = Duration(100);
    strategy.accumulation = mode;
    let mut t = ReduceTester::new(strategy);
    t.elements(&[1, 5, 20]);
    t.watermark(40);
    // A late element whose proto-session [12, 22) touches both fired sessions merges them.
    t.elements(&[12]);
    t.watermark(200);
    t.panes()
}

#[test]
fn a_late_element_bridging_two_sessions_merges_them_into_a_new_window() {
    // Beam: the merged window is a new window, so its pane history starts fresh (index 0,
    // first); its end is behind the output watermark, so the pane is LATE. Discarding
    // panes hold only the bridging element.
    assert_eq!(
        bridged_sessions(AccumulationMode::Discarding),
        vec![
            "k [1,15) ON_TIME #0 first @14 [1, 5]",
            "k [20,30) ON_TIME #0 first @29 [20]",
            "k [1,30) LATE #0 first @29 [12]"
        ]
    );
    assert_eq!(
        bridged_sessions(AccumulationMode::Accumulating),
        vec![
            "k [1,15) ON_TIME #0 first @14 [1, 5]",
            "k [20,30) ON_TIME #0 first @29 [20]",
            "k [1,30) LATE #0 first @29 [1, 5, 12, 20]",
        ]
    );
}

#[test]
fn merging_adds_up_trigger_counts() {
    let mut strategy = sessions(10);
    strategy.trigger = *repeatedly(count(3));
    let mut t = ReduceTester::new(strategy);
    t.elements(&[1, 30]);
    t.elements(&[20]);
    // [20, 30) merges [30, 40): two elements, count 2.
    assert!(t.panes().is_empty());
    t.elements(&[10]);
    // [10, 20) bridges [1, 11) and [20, 40): four elements, the count of 3 is reached.
    assert_eq!(
        t.panes(),
        vec!["k [1,40) EARLY #0 first @39 [1, 10, 20, 30]"]
    );
}

// ---------------------------------------------------------------------------------------
// Aggregations.
// ---------------------------------------------------------------------------------------

#[test]
fn combine_with_each_built_in_aggregation() {
    let input = schema(&[
        ("k", DataType::String),
        ("x", DataType::Int64),
        ("f", DataType::Float64),
        ("s", DataType::String),
    ]);
    let agg = |name: &str, func: AggregateFn, input: Option<&str>| Aggregation {
        name: name.into(),
        func,
        input: input.map(col),
    };
    let combine = Transform::Combine {
        group_by: vec!["k".into()],
        aggregations: vec![
            agg("rows", AggregateFn::Count, None),
            agg("xs", AggregateFn::Count, Some("x")),
            agg("sum_x", AggregateFn::Sum, Some("x")),
            agg("sum_f", AggregateFn::Sum, Some("f")),
            agg("min_x", AggregateFn::Min, Some("x")),
            agg("max_s", AggregateFn::Max, Some("s")),
            agg("mean_x", AggregateFn::Mean, Some("x")),
            agg("distinct_x", AggregateFn::DistinctCount, Some("x")),
        ],
    };
    let plan = windowed_plan(&input, fixed(10), combine);
    let mut op = WindowedAggregation::new(&plan, &input);
    op.push(rows_at(
        &input,
        &[
            (1, json!({"k": "b", "x": 4, "f": 0.5, "s": "pear"})),
            (2, json!({"k": "a", "x": 3, "f": 1.5, "s": "kiwi"})),
            (3, json!({"k": "a", "x": null, "f": 2.0, "s": "apple"})),
            (4, json!({"k": "a", "x": 3, "f": null, "s": null})),
            (5, json!({"k": "a", "x": 6, "f": 0.25, "s": "fig"})),
        ],
    ));
    assert_eq!(
        rendered(&op.aggregate.close(), None),
        vec![
            r#"{"k":"a","rows":4,"xs":3,"sum_x":12,"sum_f":3.75,"min_x":3,"max_s":"kiwi","mean_x":4.0,"distinct_x":2} [0,10) ON_TIME #0 first last @9"#,
            r#"{"k":"b","rows":1,"xs":1,"sum_x":4,"sum_f":0.5,"min_x":4,"max_s":"pear","mean_x":4.0,"distinct_x":1} [0,10) ON_TIME #0 first last @9"#,
        ]
    );
}

/// A user combiner: the distinct input strings, sorted and joined with `+`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct JoinDistinct;

#[typetag::serde]
impl CombineFn for JoinDistinct {
    fn output_type(&self, _input: Option<&DataType>) -> Result<DataType, String> {
        Ok(DataType::String)
    }
    fn create_accumulator(&self) -> Value {
        json!([])
    }
    fn add_input(&self, acc: &mut Value, input: &Value) {
        // Without an input expression the combiner sees the whole row.
        let item = input.get("s").unwrap_or(input).clone();
        acc.as_array_mut().unwrap().push(item);
    }
    fn merge_accumulators(&self, acc: &mut Value, other: &Value) {
        acc.as_array_mut()
            .unwrap()
            .extend(other.as_array().unwrap().iter().cloned());
    }
    fn extract_output(&self, acc: &Value) -> Value {
        let mut items: Vec<String> = acc
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        items.sort();
        items.dedup();
        json!(items.join("+"))
    }
}

#[test]
fn combine_with_a_user_combine_fn() {
    let input = schema(&[("k", DataType::String), ("s", DataType::String)]);
    let combine = Transform::Combine {
        group_by: vec!["k".into()],
        aggregations: vec![
            Aggregation {
                name: "of_input".into(),
                func: AggregateFn::Custom(Box::new(JoinDistinct)),
                input: Some(col("s")),
            },
            Aggregation {
                name: "of_row".into(),
                func: AggregateFn::Custom(Box::new(JoinDistinct)),
                input: None,
            },
        ],
    };
    let plan = windowed_plan(&input, fixed(10), combine);
    let mut op = WindowedAggregation::new(&plan, &input);
    op.push(rows_at(
        &input,
        &[
            (1, json!({"k": "a", "s": "y"})),
            (2, json!({"k": "a", "s": "x"})),
        ],
    ));
    op.push(rows_at(&input, &[(3, json!({"k": "a", "s": "y"}))]));
    assert_eq!(
        rendered(&op.aggregate.close(), None),
        vec![r#"{"k":"a","of_input":"x+y","of_row":"x+y"} [0,10) ON_TIME #0 first last @9"#]
    );
}

#[test]
fn combine_without_keys_is_one_global_group() {
    let input = schema(&[("x", DataType::Int64)]);
    let combine = Transform::Combine {
        group_by: vec![],
        aggregations: vec![Aggregation {
            name: "n".into(),
            func: AggregateFn::Count,
            input: None,
        }],
    };
    let plan = windowed_plan(&input, WindowingStrategy::new(WindowFn::Global), combine);
    let mut op = WindowedAggregation::new(&plan, &input);
    op.push(rows_at(
        &input,
        &[(1, json!({"x": 1})), (2, json!({"x": 2}))],
    ));
    op.push(rows_at(&input, &[(3, json!({"x": 3}))]));
    assert_eq!(
        rendered(&op.aggregate.close(), None),
        vec![r#"{"n":3} [global] ON_TIME #0 first last @MAX-1"#]
    );
}

#[test]
fn group_by_key_lists_the_other_columns_in_arrival_order() {
    let input = schema(&[
        ("k", DataType::String),
        ("x", DataType::Int64),
        ("y", DataType::String),
    ]);
    let plan = windowed_plan(
        &input,
        fixed(10),
        Transform::GroupByKey {
            keys: vec!["k".into()],
        },
    );
    let mut op = WindowedAggregation::new(&plan, &input);
    op.push(rows_at(
        &input,
        &[
            (3, json!({"k": "a", "x": 2, "y": "p"})),
            (1, json!({"k": "a", "x": 1, "y": "q"})),
        ],
    ));
    op.push(rows_at(
        &input,
        &[(12, json!({"k": "a", "x": 3, "y": "r"}))],
    ));
    assert_eq!(
        rendered(&op.aggregate.close(), None),
        vec![
            r#"{"k":"a","values":[{"x":2,"y":"p"},{"x":1,"y":"q"}]} [0,10) ON_TIME #0 first last @9"#,
            r#"{"k":"a","values":[{"x":3,"y":"r"}]} [10,20) ON_TIME #0 first last @19"#,
        ]
    );
}

fn join_plan(transform: Transform) -> (Plan, Schema, Schema) {
    let left = schema(&[("k", DataType::Int64), ("v", DataType::String)]);
    let right = schema(&[("id", DataType::Int64), ("v", DataType::String)]);
    let mut p = Pipeline::new();
    let l = p.add("left", vec![], read(&left));
    let r = p.add("right", vec![], read(&right));
    p.add("node", vec![l, r], transform);
    (weir_model::plan(&p).unwrap(), left, right)
}

fn run_join(kind: JoinKind) -> Vec<String> {
    let (plan, left, right) = join_plan(Transform::Join {
        on: vec![vec!["k".into()], vec!["id".into()]],
        kind,
    });
    let mut op = OperatorHarness::new(
        "node",
        Box::new(AggregateOperator::new(&plan, plan.pipeline.node("node").unwrap()).unwrap()),
    );
    op.batch(
        0,
        rows_at(
            &left,
            &[
                (1, json!({"k": 1, "v": "a"})),
                (2, json!({"k": 2, "v": "b"})),
                (3, json!({"k": 2, "v": "c"})),
            ],
        ),
    );
    op.batch(
        1,
        rows_at(
            &right,
            &[
                (4, json!({"id": 2, "v": "x"})),
                (5, json!({"id": 3, "v": "y"})),
            ],
        ),
    );
    rendered(&op.close(), None)
        .into_iter()
        .map(|s| s.split(" [").next().unwrap().to_string())
        .collect()
}

#[test]
fn inner_join_is_the_cross_product_of_matching_rows() {
    assert_eq!(
        run_join(JoinKind::Inner),
        vec![
            r#"{"k":2,"left_v":"b","right_v":"x"}"#,
            r#"{"k":2,"left_v":"c","right_v":"x"}"#
        ]
    );
}

#[test]
fn left_join_keeps_unmatched_rows_of_the_first_input() {
    assert_eq!(
        run_join(JoinKind::Left),
        vec![
            r#"{"k":1,"left_v":"a","right_v":null}"#,
            r#"{"k":2,"left_v":"b","right_v":"x"}"#,
            r#"{"k":2,"left_v":"c","right_v":"x"}"#,
        ]
    );
}

#[test]
fn full_join_keeps_unmatched_rows_of_every_input() {
    assert_eq!(
        run_join(JoinKind::Full),
        vec![
            r#"{"k":1,"left_v":"a","right_v":null}"#,
            r#"{"k":2,"left_v":"b","right_v":"x"}"#,
            r#"{"k":2,"left_v":"c","right_v":"x"}"#,
            r#"{"k":3,"left_v":null,"right_v":"y"}"#,
        ]
    );
}

fn join_per_pane(mode: AccumulationMode) -> Vec<String> {
    let left = schema(&[("k", DataType::Int64), ("l", DataType::String)]);
    let right = schema(&[("k", DataType::Int64), ("r", DataType::String)]);
    let mut every_element = WindowingStrategy::new(WindowFn::Global);
    every_element.trigger = *repeatedly(count(1));
    every_element.accumulation = mode;
    let mut p = Pipeline::new();
    let l = p.add("left_src", vec![], read(&left));
    let l = p.add(
        "left",
        vec![l],
        Transform::WindowInto {
            windowing: every_element.clone(),
        },
    );
    let r = p.add("right_src", vec![], read(&right));
    let r = p.add(
        "right",
        vec![r],
        Transform::WindowInto {
            windowing: every_element,
        },
    );
    let join = Transform::Join {
        on: vec![vec!["k".into()], vec!["k".into()]],
        kind: JoinKind::Left,
    };
    p.add("node", vec![l, r], join);
    let plan = weir_model::plan(&p).unwrap();
    let node = plan.pipeline.node("node").unwrap();
    let mut op = OperatorHarness::new(
        "node",
        Box::new(AggregateOperator::new(&plan, node).unwrap()),
    );
    let mut out = op.batch(0, rows_at(&left, &[(1, json!({"k": 1, "l": "a"}))]));
    out.extend(op.batch(1, rows_at(&right, &[(2, json!({"k": 1, "r": "x"}))])));
    rendered(&out, None)
        .into_iter()
        .map(|s| s.replace(" [global]", "").replace(" @MAX-1", ""))
        .collect()
}

#[test]
fn an_outer_join_pads_the_rows_of_each_pane() {
    // The join sees exactly the rows its pane holds. Discarding: the right row arrives in
    // a pane without its left match, and a left join drops it.
    assert_eq!(
        join_per_pane(AccumulationMode::Discarding),
        vec![r#"{"k":1,"l":"a","r":null} EARLY #0 first"#]
    );
    // Accumulating: the second pane restates the join with both rows.
    assert_eq!(
        join_per_pane(AccumulationMode::Accumulating),
        vec![
            r#"{"k":1,"l":"a","r":null} EARLY #0 first"#,
            r#"{"k":1,"l":"a","r":"x"} EARLY #1"#
        ]
    );
}

#[test]
fn co_group_by_key_lists_each_inputs_rows() {
    let (plan, left, right) = join_plan(Transform::CoGroupByKey {
        keys: vec![vec!["k".into()], vec!["id".into()]],
    });
    let mut op = OperatorHarness::new(
        "node",
        Box::new(AggregateOperator::new(&plan, plan.pipeline.node("node").unwrap()).unwrap()),
    );
    op.batch(0, rows_at(&left, &[(1, json!({"k": 1, "v": "a"}))]));
    op.batch(
        1,
        rows_at(
            &right,
            &[
                (2, json!({"id": 1, "v": "x"})),
                (3, json!({"id": 2, "v": "y"})),
            ],
        ),
    );
    assert_eq!(
        rendered(&op.close(), None),
        vec![
            r#"{"k":1,"left":[{"v":"a"}],"right":[{"v":"x"}]} [global] ON_TIME #0 first last @MAX-1"#,
            r#"{"k":2,"left":[],"right":[{"v":"y"}]} [global] ON_TIME #0 first last @MAX-1"#,
        ]
    );
}

#[test]
fn top_n_keeps_the_n_largest_rows_with_ties_in_arrival_order() {
    let input = schema(&[
        ("g", DataType::String),
        ("score", DataType::Int64),
        ("id", DataType::Int64),
    ]);
    let top = Transform::TopN {
        group_by: vec!["g".into()],
        order_by: "score".into(),
        n: 3,
        descending: true,
    };
    let plan = windowed_plan(&input, fixed(100), top);
    let mut op = WindowedAggregation::new(&plan, &input);
    op.push(rows_at(
        &input,
        &[
            (1, json!({"g": "a", "score": 5, "id": 1})),
            (2, json!({"g": "a", "score": 9, "id": 2})),
            (3, json!({"g": "b", "score": 1, "id": 3})),
            (4, json!({"g": "a", "score": null, "id": 4})),
            (5, json!({"g": "a", "score": 7, "id": 5})),
            (6, json!({"g": "a", "score": 9, "id": 6})),
        ],
    ));
    let rows: Vec<String> = rendered(&op.aggregate.close(), None)
        .into_iter()
        .map(|s| s.split(" [").next().unwrap().to_string())
        .collect();
    assert_eq!(
        rows,
        vec![
            r#"{"g":"a","score":9,"id":2}"#,
            r#"{"g":"a","score":9,"id":6}"#,
            r#"{"g":"a","score":7,"id":5}"#,
            r#"{"g":"b","score":1,"id":3}"#,
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Stateful processing.
// ---------------------------------------------------------------------------------------

/// Remembers each key's elements; a `flush` timer (event time, at the element's `at`)
/// emits how many there were and sets a `follow_up` timer one millisecond later.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FlushAtDeadline;

#[typetag::serde]
impl StatefulFn for FlushAtDeadline {
    fn state(&self) -> Vec<StateSpec> {
        vec![StateSpec {
            name: "items".into(),
            kind: StateKind::List,
        }]
    }
    fn timers(&self) -> Vec<TimerSpec> {
        vec![
            TimerSpec {
                name: "flush".into(),
                domain: TimeDomain::EventTime,
            },
            TimerSpec {
                name: "follow_up".into(),
                domain: TimeDomain::EventTime,
            },
            TimerSpec {
                name: "tick".into(),
                domain: TimeDomain::ProcessingTime,
            },
        ]
    }
    fn output_schema(&self, _input: &Schema) -> Result<Schema, String> {
        Ok(schema(&[
            ("k", DataType::String),
            ("timer", DataType::String),
            ("at", DataType::Int64),
            ("n", DataType::Int64),
        ]))
    }
    fn process(&self, row: &Row, ctx: &mut dyn StatefulContext) -> Result<(), String> {
        ctx.append("items", row["at"].clone());
        ctx.set_timer("flush", row["at"].as_i64().unwrap());
        if row.get("tick").and_then(Value::as_bool) == Some(true) {
            ctx.set_timer("tick", ctx.processing_time() + 50);
        }
        Ok(())
    }
    fn on_timer(&self, timer: &str, ctx: &mut dyn StatefulContext) -> Result<(), String> {
        let mut out = ctx.key().clone();
        out.insert("timer".into(), json!(timer));
        out.insert("at".into(), json!(ctx.timestamp()));
        out.insert("n".into(), json!(ctx.list("items").len()));
        ctx.emit(out);
        if timer == "flush" {
            ctx.set_timer("follow_up", ctx.timestamp() + 1);
        }
        Ok(())
    }
}

fn stateful_operator(
    func: Box<dyn StatefulFn>,
    input: &Schema,
    windowing: WindowingStrategy,
) -> OperatorHarness {
    let plan = windowed_plan(
        input,
        windowing,
        Transform::StatefulParDo {
            keys: vec!["k".into()],
            func,
        },
    );
    OperatorHarness::new(
        "node",
        Box::new(StatefulOperator::new(&plan, plan.pipeline.node("node").unwrap()).unwrap()),
    )
}

fn timer_input() -> Schema {
    schema(&[
        ("k", DataType::String),
        ("at", DataType::Int64),
        ("tick", DataType::Boolean),
    ])
}

#[test]
fn event_time_timers_fire_in_timestamp_then_key_order_before_the_watermark_moves_on() {
    let input = timer_input();
    let mut op = stateful_operator(
        Box::new(FlushAtDeadline),
        &input,
        WindowingStrategy::new(WindowFn::Global),
    );
    op.batch(
        0,
        rows_at(
            &input,
            &[
                (1, json!({"k": "c", "at": 12})),
                (2, json!({"k": "a", "at": 15})),
                (3, json!({"k": "b", "at": 12})),
                // Setting `flush` again for `a` moves it from 15 to 20.
                (4, json!({"k": "a", "at": 20})),
            ],
        ),
    );
    // `input_wm > t` fires: nothing at 12.
    assert!(rendered(&op.watermark(12), None).is_empty());
    // At 14, b@12 and c@12 fire (key order), and their follow-ups at 13 fire in the same
    // advance, since a timer may set further timers.
    assert_eq!(
        rendered(&op.watermark(14), None),
        vec![
            r#"{"k":"b","timer":"flush","at":12,"n":1} [global] - @12"#,
            r#"{"k":"c","timer":"flush","at":12,"n":1} [global] - @12"#,
            r#"{"k":"b","timer":"follow_up","at":13,"n":1} [global] - @13"#,
            r#"{"k":"c","timer":"follow_up","at":13,"n":1} [global] - @13"#,
        ]
    );
    assert_eq!(
        rendered(&op.watermark(100), None),
        vec![
            r#"{"k":"a","timer":"flush","at":20,"n":2} [global] - @20"#,
            r#"{"k":"a","timer":"follow_up","at":21,"n":2} [global] - @21"#,
        ]
    );
}

#[test]
fn processing_time_timers_fire_when_the_clock_reaches_them_stamped_with_the_input_watermark() {
    let input = timer_input();
    let mut op = stateful_operator(
        Box::new(FlushAtDeadline),
        &input,
        WindowingStrategy::new(WindowFn::Global),
    );
    op.processing_time(10);
    op.batch(
        0,
        rows_at(&input, &[(7, json!({"k": "a", "at": 1000, "tick": true}))]),
    );
    assert_eq!(op.op.next_processing_time(), Some(60));
    op.watermark(50);
    assert!(rendered(&op.processing_time(59), None).is_empty());
    assert_eq!(
        rendered(&op.processing_time(60), None),
        vec![r#"{"k":"a","timer":"tick","at":50,"n":1} [global] - @50"#]
    );
    assert_eq!(op.op.next_processing_time(), None);
}

#[test]
fn window_state_is_garbage_collected_when_the_window_expires() {
    let input = timer_input();
    let mut strategy = fixed(10);
    strategy.allowed_lateness = Duration(5);
    let mut op = stateful_operator(Box::new(FlushAtDeadline), &input, strategy.clone());
    let window_into = WindowIntoOperator::new(&input, strategy);
    let windowed =
        |rows: &[(Timestamp, Value)]| window_into.assign(&rows_at(&input, rows), "win").unwrap();
    op.batch(0, windowed(&[(1, json!({"k": "a", "at": 13}))]));
    // Timers up to the window's expiry (9 + 5 = 14) fire before its state is dropped.
    assert_eq!(
        rendered(&op.watermark(100), None),
        vec![
            r#"{"k":"a","timer":"flush","at":13,"n":1} [0,10) - @13"#,
            r#"{"k":"a","timer":"follow_up","at":14,"n":1} [0,10) - @14"#,
        ]
    );
    // An element for the expired window is dropped and counted.
    op.batch(0, windowed(&[(3, json!({"k": "a", "at": 14}))]));
    assert_eq!(op.metrics.late_dropped, 1);
    // A timer after the window's expiry is refused, as in Beam.
    let err = op
        .try_batch(0, windowed(&[(101, json!({"k": "a", "at": 125}))]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("after its window [100, 110) expires at 114"),
        "{err}"
    );
}

/// Misuses its context in the ways the operator must report.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Misbehaving {
    mode: String,
}

#[typetag::serde]
impl StatefulFn for Misbehaving {
    fn state(&self) -> Vec<StateSpec> {
        vec![StateSpec {
            name: "declared".into(),
            kind: StateKind::Value,
        }]
    }
    fn output_schema(&self, _input: &Schema) -> Result<Schema, String> {
        Ok(schema(&[("n", DataType::Int64)]))
    }
    fn process(&self, _row: &Row, ctx: &mut dyn StatefulContext) -> Result<(), String> {
        match self.mode.as_str() {
            "undeclared" => ctx.set_value("other", json!(1)),
            "wrong_kind" => ctx.append("declared", json!(1)),
            _ => ctx.emit(json!({"n": "not a number"}).as_object().unwrap().clone()),
        }
        Ok(())
    }
}

#[test]
fn stateful_misuse_fails_the_run_naming_the_transform_and_the_problem() {
    let input = timer_input();
    let cases = [
        ("undeclared", "state `other` is not declared"),
        (
            "wrong_kind",
            "state `declared` is declared as Value, not List",
        ),
        ("bad_output", "field `n`"),
    ];
    for (mode, expected) in cases {
        let mut op = stateful_operator(
            Box::new(Misbehaving { mode: mode.into() }),
            &input,
            WindowingStrategy::new(WindowFn::Global),
        );
        let err = op
            .try_batch(0, rows_at(&input, &[(1, json!({"k": "a", "at": 1}))]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("transform `node`") && err.contains(expected),
            "{mode}: {err}"
        );
    }
}

#[test]
fn dedup_keeps_the_first_row_per_key_and_forgets_it_after_the_ttl() {
    let input = schema(&[("k", DataType::String), ("x", DataType::Int64)]);
    let plan = windowed_plan(
        &input,
        WindowingStrategy::new(WindowFn::Global),
        Transform::Dedup {
            keys: vec!["k".into()],
            ttl: Some(Duration(10)),
        },
    );
    let mut op = OperatorHarness::new(
        "node",
        Box::new(StatefulOperator::new(&plan, plan.pipeline.node("node").unwrap()).unwrap()),
    );
    let out = op.batch(
        0,
        rows_at(
            &input,
            &[
                (1, json!({"k": "a", "x": 1})),
                (2, json!({"k": "b", "x": 2})),
                (5, json!({"k": "a", "x": 3})),
            ],
        ),
    );
    assert_eq!(
        rendered(&out, None),
        vec![
            r#"{"k":"a","x":1} [global] - @1"#,
            r#"{"k":"b","x":2} [global] - @2"#
        ]
    );
    // `a` is forgotten once the watermark passes 1 + 10.
    op.watermark(12);
    let out = op.batch(
        0,
        rows_at(
            &input,
            &[
                (13, json!({"k": "a", "x": 4})),
                (14, json!({"k": "b", "x": 5})),
            ],
        ),
    );
    // `b` (first seen at 2) is remembered until the watermark passes 12.
    assert_eq!(
        rendered(&out, None),
        vec![r#"{"k":"a","x":4} [global] - @13"#]
    );
}

// ---------------------------------------------------------------------------------------
// Batch independence.
// ---------------------------------------------------------------------------------------

/// Runs `elements` (ts, key, x) cut into batches at `cuts` through WindowInto and a Combine
/// whose trigger fires every two elements, then ends the input.
fn counted_in_batches(elements: &[(i64, u8, i64)], cuts: &[usize]) -> Vec<String> {
    let input = schema(&[("k", DataType::String), ("x", DataType::Int64)]);
    let mut windowing = fixed(10);
    windowing.trigger = *repeatedly(count(2));
    let combine = Transform::Combine {
        group_by: vec!["k".into()],
        aggregations: vec![Aggregation {
            name: "total".into(),
            func: AggregateFn::Sum,
            input: Some(col("x")),
        }],
    };
    let plan = windowed_plan(&input, windowing, combine);
    let mut op = WindowedAggregation::new(&plan, &input);
    let rows: Vec<(Timestamp, Value)> = elements
        .iter()
        .map(|(ts, k, x)| (*ts, json!({"k": format!("k{k}"), "x": x})))
        .collect();
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (rows.len() + 1)).collect();
    bounds.extend([0, rows.len()]);
    bounds.sort();
    let mut out = Vec::new();
    for pair in bounds.windows(2) {
        if pair[0] < pair[1] {
            out.extend(op.push(rows_at(&input, &rows[pair[0]..pair[1]])));
        }
    }
    out.extend(op.aggregate.close());
    rendered(&out, None)
}

proptest::proptest! {
    #[test]
    fn output_does_not_depend_on_how_input_is_cut_into_batches(
        elements in proptest::collection::vec((0i64..40, 0u8..3, -5i64..5), 1..30),
        cuts in proptest::collection::vec(0usize..40, 0..6),
    ) {
        proptest::prop_assert_eq!(counted_in_batches(&elements, &cuts), counted_in_batches(&elements, &[]));
    }
}
