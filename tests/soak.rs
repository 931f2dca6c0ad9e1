//! `weir soak`: kill -9 a streaming run at seeded moments, restart it from its checkpoint,
//! and compare what its sink committed with an uninterrupted run.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Runs `weir soak` in `dir`; returns the exit code, the JSON report and standard error.
fn soak(dir: &Path, args: &[&str]) -> (i32, Option<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["soak", "--format", "json"])
        .args(args)
        .current_dir(dir)
        .env_remove("WEIR_RUNNER")
        .output()
        .expect("weir runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout).ok();
    (out.status.code().unwrap_or(-1), report, stderr)
}

fn write_pipeline(dir: &Path, source: &str, sink: &str) {
    let text = format!(
        "name: soak_test\npipeline:\n  type: chain\n  transforms:\n    - {source}\n    - {sink}\n"
    );
    std::fs::write(dir.join("pipeline.yaml"), text).unwrap();
}

/// Micro-batches of 500 rows every 10 ms: 40 000 rows take about a second, so every kill
/// lands mid-run.
const MICROBATCH_PACING: [&str; 5] = [
    "--",
    "--trigger",
    "processing-time=10ms",
    "--set",
    "max_rows_per_partition=250",
];

const SEQUENCE: &str = "{type: GenerateSequence, config: {count: 40000, partitions: 2}}";

#[test]
fn microbatch_parquet_survives_kills_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(
        dir.path(),
        SEQUENCE,
        "{type: WriteToParquet, config: {path: out/numbers}}",
    );
    let mut args = vec![
        "pipeline.yaml",
        "--runner",
        "microbatch",
        "--kills",
        "3",
        "--seed",
        "7",
        "--max-kill-delay",
        "150",
    ];
    args.extend(MICROBATCH_PACING);
    let (code, report, stderr) = soak(dir.path(), &args);
    let r = report.unwrap_or_else(|| panic!("no report; stderr: {stderr}"));
    assert_eq!(code, 0, "{r:#}\n{stderr}");
    assert_eq!(r["runner"], "microbatch");
    assert_eq!(r["sink"], "WriteToParquet");
    assert_eq!(r["kills"], 3, "{r:#}");
    assert_eq!(r["rows_expected"], 40000);
    assert_eq!(r["rows_committed"], 40000);
    assert_eq!(
        (&r["lost"], &r["duplicated"]),
        (&0.into(), &0.into()),
        "{r:#}"
    );
    assert_eq!(r["ok"], true);
    // The pipeline's own output path is never written: each run gets a fresh location.
    assert!(!dir.path().join("out").exists());
}

// A rate-paced sequence: 3000 rows at 2000 rows/s, so the kills land mid-run; a restart
// resumes from the latest completed checkpoint (`--set restore=latest`, passed by the soak).
#[test]
fn continuous_parquet_survives_kills_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(
        dir.path(),
        "{type: GenerateSequence, config: {count: 3000, rate: 2000, partitions: 1}}",
        "{type: WriteToParquet, config: {path: out/numbers}}",
    );
    let (code, report, stderr) = soak(
        dir.path(),
        &[
            "pipeline.yaml",
            "--runner",
            "continuous",
            "--kills",
            "3",
            "--seed",
            "3",
            "--checkpoint-interval",
            "200ms",
            // Three attempts of at most 500 ms generate under 3,000 rows at 2,000 rows/s,
            // so every kill lands whatever the machine's load during the reference run.
            "--max-kill-delay",
            "500",
        ],
    );
    let r = report.unwrap_or_else(|| panic!("no report; stderr: {stderr}"));
    assert_eq!(r["kills"], 3, "{r:#}");
    assert_eq!(
        (&r["lost"], &r["duplicated"]),
        (&0.into(), &0.into()),
        "{r:#}"
    );
    assert_eq!(code, 0, "{r:#}\n{stderr}");
}

#[test]
fn microbatch_replays_a_rate_paced_batch_exactly() {
    // A restarted micro-batch query re-reads the logged range of its uncommitted batch: a
    // rate-paced source yields it whole, not at the rate.
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(
        dir.path(),
        "{type: GenerateSequence, config: {count: 3000, rate: 2000, partitions: 2}}",
        "{type: WriteToParquet, config: {path: out/numbers}}",
    );
    let (code, report, stderr) = soak(
        dir.path(),
        &[
            "pipeline.yaml",
            "--runner",
            "microbatch",
            "--kills",
            "4",
            "--seed",
            "2",
            "--",
            "--trigger",
            "processing-time=20ms",
        ],
    );
    let r = report.unwrap_or_else(|| panic!("no report; stderr: {stderr}"));
    assert!(r["kills"].as_u64().unwrap() >= 1, "a kill landed: {r:#}");
    assert_eq!(r["rows_committed"], 3000, "{r:#}");
    assert_eq!(
        (&r["lost"], &r["duplicated"]),
        (&0.into(), &0.into()),
        "{r:#}"
    );
    assert_eq!(code, 0, "{r:#}\n{stderr}");
}

#[test]
fn an_at_least_once_sink_shows_duplicates_under_kills() {
    // LogForTesting prints each batch before the micro-batch runner records it committed: a
    // kill in between replays the batch and prints it again. Whether a kill lands in that
    // window is a matter of timing, so up to four seeded soaks run until one shows it.
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(dir.path(), SEQUENCE, "{type: LogForTesting}");
    let mut seen = Vec::new();
    for seed in ["1", "2", "3", "4"] {
        let mut args = vec![
            "pipeline.yaml",
            "--runner",
            "microbatch",
            "--kills",
            "30",
            "--seed",
            seed,
            "--max-kill-delay",
            "120",
        ];
        args.extend(MICROBATCH_PACING);
        let (code, report, stderr) = soak(dir.path(), &args);
        let r = report.unwrap_or_else(|| panic!("no report; stderr: {stderr}"));
        assert_eq!(r["sink"], "LogForTesting");
        assert_eq!(r["lost"], 0, "an at-least-once sink loses nothing: {r:#}");
        let duplicated = r["duplicated"].as_u64().unwrap();
        if duplicated > 0 {
            assert_eq!(r["ok"], false);
            assert_eq!(code, 1, "a soak that finds duplicates fails: {stderr}");
            assert!(
                stderr.contains("more than the uninterrupted run"),
                "{stderr}"
            );
            return;
        }
        assert_eq!(code, 0, "{r:#}\n{stderr}");
        seen.push(r);
    }
    panic!("no soak showed duplicates: {seen:#?}");
}

#[test]
fn sinks_it_cannot_read_back_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(
        dir.path(),
        SEQUENCE,
        "{type: WriteToJetStream, config: {subject: numbers.out}}",
    );
    let (code, report, stderr) = soak(
        dir.path(),
        &["pipeline.yaml", "--runner", "continuous", "--kills", "1"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(report.is_none());
    assert!(
        stderr.contains("WriteToJetStream") && stderr.contains("not supported yet"),
        "{stderr}"
    );
}

#[test]
fn only_streaming_runners_are_soaked() {
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(dir.path(), SEQUENCE, "{type: LogForTesting}");
    let (code, _, stderr) = soak(
        dir.path(),
        &["pipeline.yaml", "--runner", "direct", "--kills", "1"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`microbatch` or `continuous`"), "{stderr}");
}

#[test]
fn a_paced_source_is_refused_with_an_available_now_trigger() {
    // The trigger reads what is available at the start; a paced source holds its input back,
    // so the query would end with most of it unread.
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(
        dir.path(),
        "{type: GenerateSequence, config: {count: 3000, rate: 2000}}",
        "{type: LogForTesting}",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "run",
            "pipeline.yaml",
            "--runner",
            "microbatch",
            "--trigger",
            "available-now",
        ])
        .current_dir(dir.path())
        .env_remove("WEIR_RUNNER")
        .output()
        .expect("weir runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("rate") && stderr.contains("GenerateSequence"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing ran");
}

/// Rows the Parquet manifest of `out` lists.
fn manifest_rows(out: &Path) -> u64 {
    std::fs::read_dir(out.join("_weir_metadata"))
        .unwrap()
        .map(|e| {
            let v: Value =
                serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
            v["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["rows"].as_u64().unwrap())
                .sum::<u64>()
        })
        .sum()
}

#[test]
fn a_continuous_rerun_of_a_finished_job_writes_everything_again_and_a_restore_is_refused() {
    // Ids continue after everything the first run committed, its final epoch included: the
    // second run's epochs are new to the sink, so it writes all its rows (before, its final
    // epoch reused the first run's and was skipped as already committed).
    let dir = tempfile::tempdir().unwrap();
    write_pipeline(
        dir.path(),
        "{type: GenerateSequence, config: {count: 600, rate: 1000}}",
        "{type: WriteToParquet, config: {path: out}}",
    );
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args([
                "run",
                "pipeline.yaml",
                "--runner",
                "continuous",
                "--checkpoint-dir",
                "checkpoints",
                "--checkpoint-interval",
                "100ms",
            ])
            .args(extra)
            .current_dir(dir.path())
            .env_remove("WEIR_RUNNER")
            .output()
            .expect("weir runs")
    };
    for (attempt, expected) in [(1, 600), (2, 1200)] {
        let out = run(&[]);
        assert!(
            out.status.success(),
            "run {attempt}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            manifest_rows(&dir.path().join("out")),
            expected,
            "after run {attempt}"
        );
    }
    let out = run(&["--set", "restore=latest"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("finished"), "{stderr}");
    assert_eq!(
        manifest_rows(&dir.path().join("out")),
        1200,
        "nothing written"
    );
}
