//! The Nexmark queries of `benches/nexmark/` on every runner of this build, at 10,000
//! events: each query's final output must be the same multiset of rows on every runner that
//! accepts the query, and must satisfy a few facts checked by hand from the query's
//! definition. A runner that refuses a query at translation (naming a feature it lacks) is
//! skipped for that query and reported on standard error.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use weir::model::io::{FileFormat, SinkSpec, SourceSpec};
use weir::model::runner::PipelineOptions;
use weir::model::transform::Transform;

/// Events of the whole stream: 200 people, 600 auctions and 9,200 bids.
const EVENTS: u64 = 10_000;
const BIDS: usize = 9_200;

type Row = serde_json::Map<String, Value>;

fn query_file(query: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/nexmark")
        .join(format!("{query}.yaml"))
}

/// Rows of every file under `path` (a file, or a directory of part files).
fn read_rows(path: &Path) -> Vec<Row> {
    let mut files = Vec::new();
    if path.is_dir() {
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push(p);
                }
            }
        }
    } else if path.exists() {
        files.push(path.to_path_buf());
    }
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| match serde_json::from_str(l) {
                    Ok(Value::Object(row)) => row,
                    other => panic!("{}: not a JSON row: {other:?}", f.display()),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The query's output on each runner that accepts it, rows sorted by their JSON text.
fn outputs(query: &str) -> BTreeMap<String, Vec<Row>> {
    let pipeline = weir::load_pipeline(&query_file(query)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut results = BTreeMap::new();
    for runner in weir::runners() {
        let out = dir.path().join(runner.name()).join("out.jsonl");
        let mut p = pipeline.clone();
        let mut sinks = 0;
        for node in &mut p.transforms {
            match &mut node.transform {
                Transform::Read {
                    source: SourceSpec::Nexmark { events, .. },
                    ..
                } => *events = Some(EVENTS),
                Transform::Write { sink, .. } => {
                    *sink = SinkSpec::Files {
                        path: out.display().to_string(),
                        format: FileFormat::JsonLines,
                    };
                    sinks += 1;
                }
                _ => {}
            }
        }
        assert_eq!(sinks, 1, "{query} has one sink");
        let plan = weir::model::plan(&p).unwrap();
        if let Err(refused) = runner.check(&plan) {
            eprintln!("{query}: skipped on `{}`: {refused}", runner.name());
            continue;
        }
        runner
            .run(&plan, &PipelineOptions::for_runner(runner.name()))
            .unwrap_or_else(|e| panic!("{query} failed on `{}`: {e}", runner.name()));
        let mut rows = read_rows(&out);
        rows.sort_by_cached_key(|r| serde_json::to_string(r).unwrap());
        results.insert(runner.name().to_string(), rows);
    }
    // Every runner of this build runs every query: a refusal must not make the comparison
    // below vacuous. (A query a runner is meant to refuse would be listed here by name.)
    let ran: Vec<&str> = results.keys().map(String::as_str).collect();
    let built: Vec<String> = weir::runners()
        .iter()
        .map(|r| r.name().to_string())
        .collect();
    let mut built: Vec<&str> = built.iter().map(String::as_str).collect();
    built.sort_unstable();
    assert_eq!(ran, built, "{query}: every runner runs it");
    results
}

/// Runs `query` everywhere, asserts every runner's rows equal the direct runner's (after
/// `normalize`), and returns the direct runner's rows.
fn same_everywhere_normalized(query: &str, normalize: fn(Vec<Row>) -> Vec<Row>) -> Vec<Row> {
    let mut results = outputs(query);
    let reference = normalize(results.remove("direct").unwrap());
    for (runner, rows) in results {
        let rows = normalize(rows);
        assert_eq!(
            rows.len(),
            reference.len(),
            "{query}: `{runner}` wrote {} rows, direct {}",
            rows.len(),
            reference.len()
        );
        for (i, (a, b)) in rows.iter().zip(&reference).enumerate() {
            assert_eq!(
                a, b,
                "{query}: sorted row {i} differs between `{runner}` and direct"
            );
        }
    }
    reference
}

fn same_everywhere(query: &str) -> Vec<Row> {
    same_everywhere_normalized(query, |rows| rows)
}

fn int(row: &Row, column: &str) -> i64 {
    row[column]
        .as_i64()
        .unwrap_or_else(|| panic!("`{column}` is not an integer in {row:?}"))
}

fn float(row: &Row, column: &str) -> f64 {
    row[column]
        .as_f64()
        .unwrap_or_else(|| panic!("`{column}` is not a number in {row:?}"))
}

fn text<'a>(row: &'a Row, column: &str) -> &'a str {
    row[column]
        .as_str()
        .unwrap_or_else(|| panic!("`{column}` is not text in {row:?}"))
}

fn columns(rows: &[Row]) -> Vec<String> {
    rows.first()
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default()
}

/// The bids, as q0 passes them through (checked on every runner once, then shared).
fn bids() -> &'static [Row] {
    static BIDS: std::sync::OnceLock<Vec<Row>> = std::sync::OnceLock::new();
    BIDS.get_or_init(|| same_everywhere("q0"))
}

#[test]
fn q0_passes_every_bid_through() {
    let rows = bids();
    assert_eq!(rows.len(), BIDS);
    assert_eq!(
        columns(rows),
        ["auction", "bidder", "price", "date_time", "extra"]
    );
}

#[test]
fn q1_converts_every_price_to_euros() {
    let rows = same_everywhere("q1");
    assert_eq!(rows.len(), BIDS);
    let dollars: BTreeSet<i64> = bids().iter().map(|r| int(r, "price")).collect();
    for r in &rows {
        let euros = float(r, "price");
        let back = (euros / 0.908).round() as i64;
        assert!(
            dollars.contains(&back),
            "{euros} is not 0.908 times a bid price"
        );
    }
}

#[test]
fn q2_keeps_exactly_the_bids_on_auctions_divisible_by_123() {
    let rows = same_everywhere("q2");
    let expected = bids()
        .iter()
        .filter(|r| int(r, "auction") % 123 == 0)
        .count();
    assert!(expected > 0, "the sample has such auctions");
    assert_eq!(rows.len(), expected);
    assert!(rows.iter().all(|r| int(r, "auction") % 123 == 0));
    assert_eq!(columns(&rows), ["auction", "price"]);
}

#[test]
fn q3_lists_sellers_from_oregon_idaho_and_california() {
    let rows = same_everywhere("q3");
    assert!(!rows.is_empty());
    assert!(rows
        .iter()
        .all(|r| ["or", "id", "ca"].contains(&text(r, "state"))));
    assert_eq!(columns(&rows), ["name", "city", "state", "id"]);
}

#[test]
fn q4_averages_winning_prices_per_category() {
    let rows = same_everywhere("q4");
    let categories: Vec<i64> = rows.iter().map(|r| int(r, "category")).collect();
    assert_eq!(categories, vec![10, 11, 12, 13, 14], "one row per category");
    assert!(rows.iter().all(|r| float(r, "avg_final") > 0.0));
}

#[test]
fn q5_keeps_the_auctions_with_the_most_bids_per_window() {
    let rows = same_everywhere("q5");
    // 10,000 events span one second of event time: five sliding windows contain it.
    let windows: BTreeSet<&str> = rows.iter().map(|r| text(r, "window_start")).collect();
    assert_eq!(windows.len(), 5);
    for w in windows {
        let counts: BTreeSet<i64> = rows
            .iter()
            .filter(|r| text(r, "window_start") == w)
            .map(|r| int(r, "num"))
            .collect();
        assert_eq!(counts.len(), 1, "only ties of the maximum in window {w}");
    }
    // Every bid falls in every window here, so the maximum is the hottest auction's count.
    let mut per_auction: BTreeMap<i64, i64> = BTreeMap::new();
    for b in bids() {
        *per_auction.entry(int(b, "auction")).or_default() += 1;
    }
    let most = per_auction.values().max().copied().unwrap();
    assert!(rows.iter().all(|r| int(r, "num") == most));
}

#[test]
fn q7_finds_the_highest_bid_of_the_period() {
    let rows = same_everywhere("q7");
    let max = bids().iter().map(|r| int(r, "price")).max().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| int(r, "price") == max));
}

#[test]
fn q8_finds_new_people_who_opened_auctions() {
    let rows = same_everywhere("q8");
    assert!(!rows.is_empty());
    let ids: BTreeSet<i64> = rows.iter().map(|r| int(r, "id")).collect();
    assert_eq!(ids.len(), rows.len(), "each person once per window");
    // 200 people registered; person ids count from 1000.
    assert!(ids.iter().all(|id| (1000..1200).contains(id)));
}

#[test]
fn q9_keeps_one_winning_bid_per_auction() {
    let rows = same_everywhere("q9");
    assert!(!rows.is_empty(), "q9 finds winning bids");
    let auctions: BTreeSet<i64> = rows.iter().map(|r| int(r, "id")).collect();
    assert_eq!(auctions.len(), rows.len());
    for r in &rows {
        // Timestamps are written as RFC 3339 text of one width, which sorts like time.
        assert!(text(r, "bid_date_time") <= text(r, "expires"));
        assert!(text(r, "bid_date_time") >= text(r, "date_time"));
    }
}

#[test]
fn q11_counts_every_bid_in_some_session() {
    let rows = same_everywhere("q11");
    let total: i64 = rows.iter().map(|r| int(r, "bid_count")).sum();
    assert_eq!(total, BIDS as i64);
}

/// q12's panes depend on processing time; a bidder's counts summed over panes do not.
fn count_per_bidder(rows: Vec<Row>) -> Vec<Row> {
    let mut sums: BTreeMap<i64, i64> = BTreeMap::new();
    for r in &rows {
        *sums.entry(int(r, "bidder")).or_default() += int(r, "bid_count");
    }
    sums.into_iter()
        .map(|(bidder, n)| {
            let mut row = Row::new();
            row.insert("bidder".into(), bidder.into());
            row.insert("bid_count".into(), n.into());
            row
        })
        .collect()
}

#[test]
fn q12_counts_every_bid_per_bidder() {
    let rows = same_everywhere_normalized("q12", count_per_bidder);
    let total: i64 = rows.iter().map(|r| int(r, "bid_count")).sum();
    assert_eq!(total, BIDS as i64);
}

#[test]
fn q14_classifies_mid_priced_bids() {
    let rows = same_everywhere("q14");
    assert!(!rows.is_empty());
    for r in &rows {
        let price = float(r, "price");
        assert!(price > 1_000_000.0 && price < 50_000_000.0);
        // The sample's events are all at 00:00 UTC.
        assert_eq!(text(r, "bid_time_type"), "nightTime");
        let cs = text(r, "extra").matches('c').count() as i64;
        assert_eq!(int(r, "c_counts"), cs);
    }
}

#[test]
fn q17_counts_every_bid_in_exactly_one_price_rank() {
    let rows = same_everywhere("q17");
    let total: i64 = rows.iter().map(|r| int(r, "total_bids")).sum();
    assert_eq!(total, BIDS as i64);
    for r in &rows {
        assert_eq!(
            int(r, "rank1_bids") + int(r, "rank2_bids") + int(r, "rank3_bids"),
            int(r, "total_bids")
        );
        assert!(int(r, "min_price") <= int(r, "max_price"));
        assert_eq!(text(r, "day"), "2015-07-15");
    }
}

#[test]
fn q18_keeps_one_bid_per_bidder_and_auction() {
    let rows = same_everywhere("q18");
    let pairs: BTreeSet<(i64, i64)> = bids()
        .iter()
        .map(|r| (int(r, "bidder"), int(r, "auction")))
        .collect();
    assert_eq!(rows.len(), pairs.len());
    let kept: BTreeSet<(i64, i64)> = rows
        .iter()
        .map(|r| (int(r, "bidder"), int(r, "auction")))
        .collect();
    assert_eq!(kept, pairs);
}

#[test]
fn q19_keeps_at_most_ten_bids_per_auction() {
    let rows = same_everywhere("q19");
    let mut per_auction: BTreeMap<i64, usize> = BTreeMap::new();
    for r in &rows {
        *per_auction.entry(int(r, "auction")).or_default() += 1;
    }
    assert!(per_auction.values().all(|n| *n <= 10));
    assert!(per_auction.values().any(|n| *n == 10));
}

#[test]
fn q20_joins_bids_with_auctions_of_category_ten() {
    let rows = same_everywhere("q20");
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| int(r, "category") == 10));
    assert!(rows.iter().all(|r| int(r, "auction") >= 1000));
}

#[test]
fn q21_derives_a_channel_id_for_every_row() {
    let rows = same_everywhere("q21");
    assert!(!rows.is_empty() && rows.len() <= BIDS);
    for r in &rows {
        let id = text(r, "channel_id");
        match text(r, "channel") {
            "Apple" => assert_eq!(id, "0"),
            "Google" => assert_eq!(id, "1"),
            "Facebook" => assert_eq!(id, "2"),
            "Baidu" => assert_eq!(id, "3"),
            _ => assert!(id.parse::<i64>().is_ok(), "{id}"),
        }
    }
}

#[test]
fn q22_splits_the_url_into_directories() {
    let rows = same_everywhere("q22");
    assert_eq!(rows.len(), BIDS);
    for r in &rows {
        for dir in ["dir1", "dir2", "dir3"] {
            let d = text(r, dir);
            assert!((3..5).contains(&d.len()), "{dir} = {d}");
        }
    }
}

/// `weir bench <workload> --all --events 10K --format json`: one JSON object per run.
fn bench_json(workload: &str) -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "bench", workload, "--all", "--events", "10K", "--format", "json",
        ])
        .output()
        .expect("weir runs");
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The CI-sized bench smoke: `weir bench nexmark --all --events 10K --format json` runs every
/// query on every runner of this build, exits 0, reports a positive throughput for each run,
/// and every runner writes as many rows per query as the direct runner (q12's processing-time
/// panes aside: their count depends on timing).
#[test]
fn bench_all_at_10k_events_runs_every_query_on_every_runner() {
    let runs = bench_json("nexmark");
    let queries: BTreeSet<String> = std::fs::read_dir(query_file("q0").parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let runners: BTreeSet<String> = weir::runners()
        .iter()
        .map(|r| r.name().to_string())
        .collect();
    let mut seen = BTreeSet::new();
    let mut rows: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for run in &runs {
        let (query, runner) = (text_of(run, "query"), text_of(run, "runner"));
        assert_eq!(run["status"], "ok", "{query} on {runner}: {run}");
        assert_eq!(run["events"], 10_000, "{query} on {runner}");
        let rate = run["events_per_sec"].as_f64().unwrap_or(0.0);
        assert!(rate > 0.0, "{query} on {runner}: events_per_sec {rate}");
        assert!(
            run["events_per_sec_per_core"].as_f64().unwrap_or(0.0) > 0.0,
            "{query} on {runner}"
        );
        assert!(
            seen.insert((query.clone(), runner.clone())),
            "{query} on {runner} twice"
        );
        let n = run["output_rows"].as_u64().expect("output_rows");
        rows.entry(query).or_default().insert(runner, n);
    }
    let expected: BTreeSet<(String, String)> = queries
        .iter()
        .flat_map(|q| runners.iter().map(move |r| (q.clone(), r.clone())))
        .collect();
    assert_eq!(seen, expected, "every query × runner, once");
    for (query, per_runner) in rows {
        if query == "q12" {
            continue;
        }
        let direct = per_runner["direct"];
        for (runner, n) in &per_runner {
            assert_eq!(
                *n, direct,
                "{query}: `{runner}` wrote {n} rows, direct {direct}"
            );
        }
    }
}

fn text_of(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("`{field}` is not text in {v}"))
        .to_string()
}

/// `weir bench basic --all --events 10K`: the filter + projection keeps 9 rows in 10 and the
/// windowed count writes one row per key and second (1000 keys, 10 s of event time), on
/// every runner.
#[test]
fn bench_basic_workloads_write_the_expected_rows_on_every_runner() {
    let runs = bench_json("basic");
    assert_eq!(runs.len(), 2 * weir::runners().len(), "{runs:#?}");
    for run in &runs {
        let (query, runner) = (text_of(run, "query"), text_of(run, "runner"));
        assert_eq!(run["status"], "ok", "{query} on {runner}: {run}");
        let expected = match query.as_str() {
            "filter-project" => 9_000,
            "windowed-count" => 10_000,
            other => panic!("unexpected workload {other}"),
        };
        assert_eq!(run["output_rows"], expected, "{query} on {runner}");
        assert!(run["events_per_sec_per_core"].as_f64().unwrap_or(0.0) > 0.0);
    }
}
