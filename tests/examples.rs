//! Every example pipeline validates, plans to JSON that re-plans to identical bytes, and
//! runs on the direct runner with the asserted output.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use weir::direct::DirectRunner;
use weir::model::io::SinkSpec;
use weir::model::runner::PipelineOptions;
use weir::model::transform::Transform;
use weir::model::{plan, Pipeline};

/// Loads an example, points its file sinks into `out`, checks the JSON round trip, runs it.
fn run_example(file: &str, out: &Path) -> weir::direct::DirectRun {
    let mut pipeline = weir::load_pipeline(Path::new(file)).expect("example loads");
    for node in &mut pipeline.transforms {
        if let Transform::Write {
            sink: SinkSpec::Files { path, .. },
            ..
        } = &mut node.transform
        {
            let name = Path::new(path.as_str()).file_name().unwrap().to_owned();
            *path = out.join(name).display().to_string();
        }
    }
    let planned = plan(&pipeline).expect("example plans");
    let json = planned.to_json().unwrap();
    let replanned = plan(&Pipeline::from_json(&json).unwrap())
        .unwrap()
        .to_json()
        .unwrap();
    assert_eq!(
        json, replanned,
        "planning the JSON plan again must give identical bytes"
    );
    DirectRunner::new()
        .execute(&planned, &PipelineOptions::for_runner("direct"))
        .expect("example runs")
}

fn read_jsonl(path: PathBuf) -> Vec<Value> {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    rows.sort_by_key(|v| v.to_string());
    rows
}

fn sorted(mut rows: Vec<Value>) -> Vec<Value> {
    rows.sort_by_key(|v| v.to_string());
    rows
}

#[test]
fn word_count_counts_words_across_files() {
    let out = tempfile::tempdir().unwrap();
    run_example("examples/word_count/pipeline.yaml", out.path());
    let expected: Vec<Value> = [
        ("the", 4),
        ("weir", 4),
        ("a", 3),
        ("river", 2),
        ("runs", 2),
        ("over", 2),
        ("holds", 1),
        ("back", 1),
        ("is", 1),
        ("low", 1),
        ("dam", 1),
        ("water", 1),
    ]
    .iter()
    .map(|(w, c)| json!({"word": w, "count": c}))
    .collect();
    assert_eq!(
        read_jsonl(out.path().join("counts.jsonl")),
        sorted(expected)
    );
}

fn click_pane(
    user: &str,
    clicks: i64,
    minute: u32,
    timing: &str,
    index: i64,
    first: bool,
    last: bool,
) -> Value {
    json!({
        "user": user, "clicks": clicks,
        "window_start": format!("2024-05-01T10:{:02}:00.000Z", minute),
        "window_end": format!("2024-05-01T10:{:02}:00.000Z", minute + 1),
        "pane_timing": timing, "pane_index": index, "pane_is_first": first, "pane_is_last": last,
    })
}

#[test]
fn clicks_per_user_fires_on_time_and_late_panes_and_routes_too_late_clicks_aside() {
    let out = tempfile::tempdir().unwrap();
    let run = run_example("examples/clicks_per_user/pipeline.yaml", out.path());
    let expected = vec![
        click_pane("alice", 2, 0, "ON_TIME", 0, true, false),
        click_pane("bob", 1, 0, "ON_TIME", 0, true, false),
        // bob's 10:00:58 click arrives after the window fired but within allowed lateness.
        click_pane("bob", 1, 0, "LATE", 1, false, false),
        click_pane("alice", 1, 1, "ON_TIME", 0, true, false),
        click_pane("carol", 1, 1, "ON_TIME", 0, true, false),
        click_pane("alice", 2, 2, "ON_TIME", 0, true, false),
        click_pane("carol", 1, 2, "ON_TIME", 0, true, false),
        // End of input fires the last window ON_TIME; its garbage collection (10 s later in
        // event time) finds nothing new, so, as in Beam, no pane is marked last.
        click_pane("alice", 1, 3, "ON_TIME", 0, true, false),
    ];
    assert_eq!(
        read_jsonl(out.path().join("counts.jsonl")),
        sorted(expected)
    );
    let late = vec![
        json!({"user": "bob", "url": "/home", "ts": "2024-05-01T10:00:50.000Z"}),
        json!({"user": "bob", "url": "/late", "ts": "2024-05-01T10:00:59.000Z"}),
        json!({"user": "carol", "url": "/too-late", "ts": "2024-05-01T10:00:30.000Z"}),
    ];
    assert_eq!(read_jsonl(out.path().join("late.jsonl")), sorted(late));
    assert_eq!(run.report.rows_written.get("WriteLate"), Some(&3));
}

#[test]
fn user_sessions_groups_activity_separated_by_less_than_the_gap() {
    let out = tempfile::tempdir().unwrap();
    run_example("examples/user_sessions/pipeline.yaml", out.path());
    let t0: i64 = 1_714_557_600_000;
    let session = |user: &str, events: i64, first: i64, last: i64, start: &str, end: &str| {
        json!({"user": user, "events": events, "first_ts": t0 + first, "last_ts": t0 + last,
               "window_start": format!("2024-05-01T{start}.000Z"), "window_end": format!("2024-05-01T{end}.000Z")})
    };
    let expected = vec![
        session("ann", 3, 0, 35_000, "10:00:00", "10:01:05"),
        session("ann", 2, 200_000, 220_000, "10:03:20", "10:04:10"),
        session("ben", 1, 12_000, 12_000, "10:00:12", "10:00:42"),
        session("ben", 2, 100_000, 125_000, "10:01:40", "10:02:35"),
    ];
    assert_eq!(
        read_jsonl(out.path().join("sessions.jsonl")),
        sorted(expected)
    );
}

#[test]
fn dedup_orders_keeps_the_first_row_per_order_and_dead_letters_malformed_lines() {
    let out = tempfile::tempdir().unwrap();
    let run = run_example("examples/dedup_orders/pipeline.yaml", out.path());
    let expected = vec![
        json!({"order_id": "o-1", "customer": "acme", "amount": 120.5}),
        json!({"order_id": "o-2", "customer": "globex", "amount": 80.0}),
        json!({"order_id": "o-4", "customer": "initech", "amount": 42.0}),
        json!({"order_id": "o-5", "customer": "globex", "amount": 19.99}),
    ];
    assert_eq!(
        read_jsonl(out.path().join("orders.jsonl")),
        sorted(expected)
    );
    let bad = read_jsonl(out.path().join("bad_records.jsonl"));
    let lines: Vec<i64> = bad.iter().map(|r| r["line"].as_i64().unwrap()).collect();
    assert_eq!(
        lines
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        [4, 6].into()
    );
    let amount = bad.iter().find(|r| r["line"] == 4).unwrap();
    assert_eq!(amount["source"], "examples/dedup_orders/orders.jsonl");
    assert!(
        amount["error"].as_str().unwrap().contains("amount"),
        "{amount}"
    );
    assert_eq!(
        amount["record"],
        r#"{"order_id": "o-3", "customer": "acme", "amount": "twelve"}"#
    );
    assert_eq!(run.report.dead_letters.get("ReadOrders"), Some(&2));
}
