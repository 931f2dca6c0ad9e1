//! The output does not depend on how the input is cut into batches or partitions: with no
//! late event, any split gives the direct runner's final output (DESIGN's invariant).

mod common;

use common::*;
use proptest::prelude::*;
use weir_model::runner::PipelineOptions;
use weir_model::time::Duration;
use weir_model::window::{WindowFn, WindowingStrategy};
use weir_runner_core::io::SinkRegistry;
use weir_runner_direct::DirectRunner;
use weir_runner_microbatch::{ManualClock, QueryConfig};

fn windowings() -> Vec<WindowingStrategy> {
    vec![
        fixed(10),
        WindowingStrategy::new(WindowFn::Sliding {
            size: Duration(20),
            period: Duration(5),
            offset: Duration::ZERO,
        }),
        WindowingStrategy::new(WindowFn::Sessions {
            gap: Duration(7),
            gap_expr: None,
        }),
        WindowingStrategy::new(WindowFn::Global),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn any_split_gives_the_direct_runners_output(
        events in proptest::collection::vec((0usize..3, 0i64..100, 0u32..3), 1..40),
        rows_per_batch in 1usize..7,
        parallelism in 1usize..4,
        windowing in 0usize..4,
    ) {
        let keys = ["a", "b", "c"];
        let mut partitions = vec![Vec::new(); 3];
        for (k, ts, p) in &events {
            partitions[*p as usize].push(row(keys[*k], *ts));
        }
        let src = unique("split");
        source(&src, partitions);
        // A delay longer than the event-time spread: no event is ever late.
        let plan = windowed_count(&src, 1_000, windowings()[windowing].clone());
        let direct = SinkRegistry::new();
        DirectRunner::with_sinks(direct.clone()).execute(&plan, &PipelineOptions::for_runner("direct")).unwrap();
        let micro = SinkRegistry::new();
        let cfg = QueryConfig { end_of_input: true, max_rows_per_partition: rows_per_batch, parallelism, ..config() };
        open(&plan, cfg, &ManualClock::new(0), &micro).run_to_completion().unwrap();
        prop_assert_eq!(counts(&micro.committed_rows("out")), counts(&direct.committed_rows("out")));
    }
}

fn top_and_groups(src: &str, windowing: WindowingStrategy) -> weir_model::Plan {
    use weir_model::transform::Transform;
    let mut p = weir_model::Pipeline::new();
    p.add("In", vec![], read(src));
    p.add("Times", vec!["In".into()], assign(100_000));
    p.add(
        "Win",
        vec!["Times".into()],
        Transform::WindowInto { windowing },
    );
    p.add(
        "Top",
        vec!["Win".into()],
        Transform::TopN {
            group_by: vec!["k".into()],
            order_by: "ts".into(),
            n: 2,
            descending: true,
        },
    );
    p.add(
        "Groups",
        vec!["Win".into()],
        Transform::GroupByKey {
            keys: vec!["k".into()],
        },
    );
    p.add("OutTop", vec!["Top".into()], write("top"));
    p.add("OutGroups", vec!["Groups".into()], write("groups"));
    weir_model::plan(&p).unwrap()
}

/// Committed rows with their windows, as sorted JSON text (list values sorted too, since
/// arrival order across partitions depends on the split).
fn canonical(rows: &[weir_runner_core::io::RecordedRow]) -> Vec<String> {
    let mut out: Vec<String> = rows
        .iter()
        .filter(|r| r.committed)
        .map(|r| {
            let mut row = r.row.clone();
            if let Some(serde_json::Value::Array(values)) = row.get_mut("values") {
                values.sort_by_key(|v| v.to_string());
            }
            format!("{} {:?}", serde_json::Value::Object(row), r.meta.window)
        })
        .collect();
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn top_n_and_group_by_key_match_the_direct_runner_under_any_split(
        events in proptest::collection::vec((0usize..2, 0i64..60, 0u32..2), 1..30),
        rows_per_batch in 1usize..5,
        windowing in 0usize..4,
    ) {
        let keys = ["a", "b"];
        let mut partitions = vec![Vec::new(); 2];
        // Distinct timestamps: TopN ties would otherwise break by arrival order, which
        // depends on the split.
        for (i, (k, ts, p)) in events.iter().enumerate() {
            partitions[*p as usize].push(row(keys[*k], ts * 100 + i as i64));
        }
        let src = unique("topgroups");
        source(&src, partitions);
        let plan = top_and_groups(&src, windowings()[windowing].clone());
        let direct = SinkRegistry::new();
        DirectRunner::with_sinks(direct.clone()).execute(&plan, &PipelineOptions::for_runner("direct")).unwrap();
        let micro = SinkRegistry::new();
        let cfg = QueryConfig { end_of_input: true, max_rows_per_partition: rows_per_batch, ..config() };
        open(&plan, cfg, &ManualClock::new(0), &micro).run_to_completion().unwrap();
        prop_assert_eq!(canonical(&micro.committed_rows("top")), canonical(&direct.committed_rows("top")));
        prop_assert_eq!(canonical(&micro.committed_rows("groups")), canonical(&direct.committed_rows("groups")));
    }
}

fn all_aggregations(src: &str, windowing: WindowingStrategy) -> weir_model::Plan {
    use weir_model::expr::col;
    use weir_model::transform::{AggregateFn, Aggregation, Transform};
    let agg = |name: &str, func: AggregateFn, input: Option<weir_model::Expr>| Aggregation {
        name: name.into(),
        func,
        input,
    };
    let half = || Some(col("ts").cast(weir_model::DataType::Float64));
    let mut p = weir_model::Pipeline::new();
    p.add("In", vec![], read(src));
    p.add("Times", vec!["In".into()], assign(100_000));
    p.add(
        "Win",
        vec!["Times".into()],
        Transform::WindowInto { windowing },
    );
    let aggregations = vec![
        agg("n", AggregateFn::Count, None),
        agg("gaps", AggregateFn::Count, Some(col("gap"))),
        agg("sum", AggregateFn::Sum, Some(col("ts"))),
        agg("min", AggregateFn::Min, Some(col("ts"))),
        agg("max", AggregateFn::Max, Some(col("gap"))),
        agg("mean", AggregateFn::Mean, Some(col("ts"))),
        agg("fsum", AggregateFn::Sum, half()),
        agg("fmin", AggregateFn::Min, half()),
    ];
    p.add(
        "Agg",
        vec!["Win".into()],
        Transform::Combine {
            group_by: vec!["k".into()],
            aggregations,
        },
    );
    p.add("Out", vec!["Agg".into()], write("agg"));
    weir_model::plan(&p).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn every_built_in_aggregation_matches_the_direct_runner_under_any_split(
        events in proptest::collection::vec((0usize..2, 0i64..60, 0u32..2, proptest::option::of(-3i64..3)), 1..30),
        rows_per_batch in 1usize..5,
        windowing in 0usize..4,
    ) {
        let keys = ["a", "b"];
        let mut partitions = vec![Vec::new(); 2];
        for (k, ts, p, gap) in &events {
            partitions[*p as usize].push(row_gap(keys[*k], *ts, gap.map_or(serde_json::Value::Null, serde_json::Value::from)));
        }
        let src = unique("aggs");
        source(&src, partitions);
        let plan = all_aggregations(&src, windowings()[windowing].clone());
        let direct = SinkRegistry::new();
        DirectRunner::with_sinks(direct.clone()).execute(&plan, &PipelineOptions::for_runner("direct")).unwrap();
        let micro = SinkRegistry::new();
        let cfg = QueryConfig { end_of_input: true, max_rows_per_partition: rows_per_batch, ..config() };
        open(&plan, cfg, &ManualClock::new(0), &micro).run_to_completion().unwrap();
        prop_assert_eq!(canonical(&micro.committed_rows("agg")), canonical(&direct.committed_rows("agg")));
    }
}

fn two_sided(
    a: &str,
    b: &str,
    windowing: WindowingStrategy,
    join: weir_model::transform::Transform,
) -> weir_model::Plan {
    use weir_model::transform::Transform;
    let mut p = weir_model::Pipeline::new();
    p.add("A", vec![], read(a));
    p.add("B", vec![], read(b));
    p.add("TimesA", vec!["A".into()], assign(100_000));
    p.add("TimesB", vec!["B".into()], assign(100_000));
    p.add(
        "WinA",
        vec!["TimesA".into()],
        Transform::WindowInto {
            windowing: windowing.clone(),
        },
    );
    p.add(
        "WinB",
        vec!["TimesB".into()],
        Transform::WindowInto { windowing },
    );
    p.add("Both", vec!["WinA".into(), "WinB".into()], join);
    p.add("Out", vec!["Both".into()], write("both"));
    weir_model::plan(&p).unwrap()
}

/// Committed rows with their windows, every list sorted, as sorted text.
fn canonical_lists(rows: &[weir_runner_core::io::RecordedRow]) -> Vec<String> {
    let mut out: Vec<String> = rows
        .iter()
        .filter(|r| r.committed)
        .map(|r| {
            let mut row = r.row.clone();
            for v in row.values_mut() {
                if let serde_json::Value::Array(items) = v {
                    items.sort_by_key(|i| i.to_string());
                }
            }
            format!("{} {:?}", serde_json::Value::Object(row), r.meta.window)
        })
        .collect();
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn joins_and_co_group_by_key_match_the_direct_runner_under_any_split(
        left in proptest::collection::vec((0usize..3, 0i64..60), 0..15),
        right in proptest::collection::vec((0usize..3, 0i64..60), 0..15),
        rows_per_batch in 1usize..5,
        parallelism in 1usize..4,
        windowing in 0usize..3,
        kind in 0usize..5,
    ) {
        use weir_model::transform::{JoinKind, Transform};
        let keys = ["a", "b", "c"];
        let (a, b) = (unique("left"), unique("right"));
        source(&a, vec![left.iter().map(|(k, ts)| row(keys[*k], *ts)).collect()]);
        source(&b, vec![right.iter().map(|(k, ts)| row(keys[*k], *ts)).collect()]);
        let on = vec![vec!["k".to_string()], vec!["k".to_string()]];
        let join = match kind {
            0 => Transform::CoGroupByKey { keys: on },
            1 => Transform::Join { on, kind: JoinKind::Inner },
            2 => Transform::Join { on, kind: JoinKind::Left },
            3 => Transform::Join { on, kind: JoinKind::Right },
            _ => Transform::Join { on, kind: JoinKind::Full },
        };
        let plan = two_sided(&a, &b, windowings()[windowing].clone(), join);
        let direct = SinkRegistry::new();
        DirectRunner::with_sinks(direct.clone()).execute(&plan, &PipelineOptions::for_runner("direct")).unwrap();
        let micro = SinkRegistry::new();
        let cfg = QueryConfig { end_of_input: true, max_rows_per_partition: rows_per_batch, parallelism, ..config() };
        open(&plan, cfg, &ManualClock::new(0), &micro).run_to_completion().unwrap();
        prop_assert_eq!(canonical_lists(&micro.committed_rows("both")), canonical_lists(&direct.committed_rows("both")));
    }
}
