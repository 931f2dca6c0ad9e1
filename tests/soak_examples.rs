//! `weir soak` on the shipped exactly-once examples, 10 kills each, on both streaming runners:
//! JetStream → windowed aggregation → PostgreSQL, and files → Parquet. Needs PostgreSQL
//! (127.0.0.1:5432, database `test`) and NATS JetStream (127.0.0.1:4222), which `.ci/services`
//! starts; a missing service fails the test, saying so.

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const KILLS: u64 = 10;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn require_service(name: &str, addr: &str) {
    let socket = addr.parse().unwrap();
    if std::net::TcpStream::connect_timeout(&socket, Duration::from_secs(2)).is_err() {
        panic!("{name} service missing: nothing answers at {addr}; start it with `.ci/services`");
    }
}

/// The example's stream ORDERS, created afresh and filled by `examples/publish-orders.yaml`
/// (once per test binary).
fn orders_published() {
    static PUBLISHED: OnceLock<()> = OnceLock::new();
    PUBLISHED.get_or_init(|| {
        require_service("NATS JetStream", "127.0.0.1:4222");
        weir::core::io::recreate_stream(
            "nats://127.0.0.1:4222",
            "ORDERS",
            &["orders.>".to_string()],
        )
        .expect("creating stream ORDERS");
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "examples/publish-orders.yaml"])
            .current_dir(root())
            .env_remove("WEIR_RUNNER")
            .output()
            .expect("weir runs");
        assert!(
            out.status.success(),
            "publishing the orders failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// Soaks `example` on `runner` with 10 kills; returns the report after checking it found
/// nothing lost or duplicated.
fn soak_example(example: &str, runner: &str, seed: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["soak", example, "--runner", runner, "--kills"])
        .arg(KILLS.to_string())
        .args(["--seed", seed, "--format", "json"])
        .current_dir(root())
        .env_remove("WEIR_RUNNER")
        .output()
        .expect("weir runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let r: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("no report from the soak; stderr: {stderr}"));
    assert_eq!(
        (&r["lost"], &r["duplicated"], &r["unexpected"]),
        (&0.into(), &0.into(), &0.into()),
        "{r:#}\n{stderr}"
    );
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(out.status.code(), Some(0), "{r:#}\n{stderr}");
    assert_eq!(r["rows_committed"], r["rows_expected"], "{r:#}");
    // The examples are paced to last about 20 s, and the kills spread over 3/4 of that: a
    // kill lands before the end unless the machine stalls a restart for long.
    assert!(
        r["kills"].as_u64().unwrap() >= KILLS - 2,
        "most kills land mid-run: {r:#}"
    );
    r
}

#[test]
fn postgres_example_on_continuous() {
    require_service("PostgreSQL", "127.0.0.1:5432");
    orders_published();
    let r = soak_example("examples/exactly-once-postgres.yaml", "continuous", "1");
    assert_eq!(r["sink"], "WriteToPostgres");
    // Totals per user (12 per region) and minute of event time (about 31).
    assert!(r["rows_expected"].as_u64().unwrap() > 300, "{r:#}");
}

#[test]
fn postgres_example_on_microbatch() {
    require_service("PostgreSQL", "127.0.0.1:5432");
    orders_published();
    let r = soak_example("examples/exactly-once-postgres.yaml", "microbatch", "2");
    assert_eq!(r["sink"], "WriteToPostgres");
    assert!(r["rows_expected"].as_u64().unwrap() > 300, "{r:#}");
}

#[test]
fn parquet_example_on_continuous() {
    let r = soak_example("examples/exactly-once-parquet.yaml", "continuous", "3");
    assert_eq!(
        (&r["sink"], &r["rows_expected"]),
        (&"WriteToParquet".into(), &4000.into())
    );
}

#[test]
fn parquet_example_on_microbatch() {
    let r = soak_example("examples/exactly-once-parquet.yaml", "microbatch", "4");
    assert_eq!(
        (&r["sink"], &r["rows_expected"]),
        (&"WriteToParquet".into(), &4000.into())
    );
}
