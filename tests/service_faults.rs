//! Faults beyond kills: PostgreSQL or NATS stops in the middle of a run and comes back two
//! seconds later. The job either rides it out (the PostgreSQL sink reconnects with backoff)
//! or fails with a message naming the service and is restarted from its checkpoint; either
//! way every order is committed exactly once.
//!
//! The tests stop and start the machine's own services (the commands `.ci/services` uses),
//! so they run one at a time, and a guard brings the services back even when a test fails.
//! Cargo runs test binaries one after another, so no other test sees the outage.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;
use weir::core::io::postgres::SinkTable;
use weir::model::io::SinkSpec;
use weir::model::transform::Transform;

/// One outage at a time.
static SERVICES: Mutex<()> = Mutex::new(());

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn require_service(name: &str, addr: &str) {
    let socket = addr.parse().unwrap();
    if std::net::TcpStream::connect_timeout(&socket, Duration::from_secs(2)).is_err() {
        panic!("{name} service missing: nothing answers at {addr}; start it with `.ci/services`");
    }
}

#[derive(Debug, Clone, Copy)]
enum Service {
    Postgres,
    Nats,
}

impl Service {
    fn stop(self) {
        let status = match self {
            Service::Postgres => {
                let version = std::fs::read_dir("/etc/postgresql")
                    .expect("PostgreSQL is installed")
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .max()
                    .expect("a PostgreSQL cluster");
                Command::new("pg_ctlcluster")
                    .args(["--skip-systemctl-redirect", &version, "main", "stop"])
                    .args(["-m", "fast"])
                    .status()
            }
            Service::Nats => Command::new("pkill").args(["-x", "nats-server"]).status(),
        };
        assert!(
            status.expect("stopping a service").success(),
            "{self:?} stopped"
        );
    }
}

/// Starts whatever service is down again (`.ci/services`), also when a test panics.
struct ServicesBack;

impl ServicesBack {
    fn now(&self) {
        let status = Command::new("bash")
            .arg(root().join(".ci/services"))
            .stdout(Stdio::null())
            .status()
            .expect("running .ci/services");
        assert!(status.success(), ".ci/services brought the services back");
    }
}

impl Drop for ServicesBack {
    fn drop(&mut self) {
        self.now();
    }
}

/// A fresh stream `name` holding the 4000 orders of `examples/orders`, on `name.eu` and
/// `name.us`.
fn publish_orders(dir: &Path, name: &str) {
    weir::core::io::recreate_stream("nats://127.0.0.1:4222", name, &[format!("{name}.>")])
        .expect("creating the stream");
    let orders = root().join("examples/orders");
    let yaml = format!(
        "name: publish\npipeline:\n  transforms:\n    \
         - {{type: ReadFromJson, name: Eu, config: {{path: '{eu}', schema: {{order_id: string, user: string, amount: float64, ts: timestamp}}}}}}\n    \
         - {{type: WriteToJetStream, name: PubEu, input: Eu, config: {{subject: {name}.eu}}}}\n    \
         - {{type: ReadFromJson, name: Us, config: {{path: '{us}', schema: {{order_id: string, user: string, amount: float64, ts: timestamp}}}}}}\n    \
         - {{type: WriteToJetStream, name: PubUs, input: Us, config: {{subject: {name}.us}}}}\n",
        eu = orders.join("orders-eu.jsonl").display(),
        us = orders.join("orders-us.jsonl").display(),
    );
    let file = dir.join("publish.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = weir(&["run", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .env_remove("WEIR_RUNNER")
        .output()
        .expect("weir runs")
}

/// The orders pipeline: the stream, paced to 1000 orders/s (a 4 s run), inserted into a
/// PostgreSQL table, one table row per order (a duplicate shows as a repeated order id).
fn write_pipeline(dir: &Path, stream: &str, table: &str) -> PathBuf {
    let yaml = format!(
        "name: faults\npipeline:\n  type: chain\n  transforms:\n    \
         - {{type: ReadFromJetStream, name: ReadOrders, config: {{stream: {stream}, subjects: [{stream}.eu, {stream}.us], bounded: true, rate: 1000, schema: {{order_id: string, user: string, amount: float64, ts: timestamp}}}}}}\n    \
         - {{type: WriteToPostgres, name: WriteOrders, config: {{host: 127.0.0.1, port: 5432, database: test, user: postgres, table: {table}, job: {table}}}}}\n"
    );
    let file = dir.join("pipeline.yaml");
    std::fs::write(&file, yaml).unwrap();
    file
}

fn sink_table(pipeline: &Path) -> SinkTable {
    let p = weir::load_pipeline(pipeline).unwrap();
    p.transforms
        .iter()
        .find_map(|t| match &t.transform {
            Transform::Write {
                sink: SinkSpec::Postgres(spec),
                ..
            } => Some(SinkTable::new(&t.name, spec)),
            _ => None,
        })
        .expect("a PostgreSQL sink")
}

fn spawn_run(pipeline: &Path, runner: &str, checkpoints: &Path) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.arg("run")
        .arg(pipeline)
        .args(["--runner", runner, "--checkpoint-dir"])
        .arg(checkpoints);
    if runner == "continuous" {
        cmd.args(["--checkpoint-interval", "200ms"]);
        let completed = std::fs::read_dir(checkpoints)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .any(|e| e.path().join("_metadata").exists())
            })
            .unwrap_or(false);
        if completed {
            cmd.args(["--set", "restore=latest"]);
        }
    }
    cmd.env_remove("WEIR_RUNNER")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir runs")
}

/// Runs the orders pipeline on `runner`, stops `service` 1.5 s into the run for 2 s, and
/// restarts the run from its checkpoint until it succeeds; checks the table holds every
/// order once. Returns the error message of the run the outage failed, if it failed one.
fn outage(service: Service, runner: &str, name: &str) -> Option<String> {
    let _one_at_a_time = SERVICES.lock().unwrap_or_else(|e| e.into_inner());
    require_service("PostgreSQL", "127.0.0.1:5432");
    require_service("NATS JetStream", "127.0.0.1:4222");
    let back = ServicesBack;
    let dir = tempfile::tempdir().unwrap();
    publish_orders(dir.path(), &name.to_uppercase());
    let pipeline = write_pipeline(dir.path(), &name.to_uppercase(), name);
    let table = sink_table(&pipeline);
    table.reset().unwrap();
    let checkpoints = dir.path().join("checkpoints");

    let mut child = spawn_run(&pipeline, runner, &checkpoints);
    std::thread::sleep(Duration::from_millis(1500));
    if let Some(status) = child.try_wait().unwrap() {
        let out = child.wait_with_output().unwrap();
        panic!(
            "the run (4 s of input) should still be going when {service:?} stops, but it \
             ended ({status}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    service.stop();
    std::thread::sleep(Duration::from_secs(2));
    back.now();
    let mut out = child.wait_with_output().unwrap();
    let mut failure = None;
    let mut restarts = 0;
    while !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            restarts < 3,
            "the run keeps failing after the outage: {stderr}"
        );
        failure.get_or_insert(stderr);
        restarts += 1;
        out = spawn_run(&pipeline, runner, &checkpoints)
            .wait_with_output()
            .unwrap();
    }

    let rows = table.committed_rows().unwrap();
    let ids: Vec<String> = rows
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_str(r).unwrap();
            v["order_id"].as_str().unwrap().to_string()
        })
        .collect();
    let distinct: BTreeSet<&String> = ids.iter().collect();
    let expected: BTreeSet<String> = ["eu", "us"]
        .iter()
        .flat_map(|r| (0..2000).map(move |i| format!("{r}-{i:05}")))
        .collect();
    assert_eq!(
        ids.len(),
        distinct.len(),
        "no order is committed twice ({runner}, {service:?} outage)"
    );
    assert_eq!(
        distinct.into_iter().cloned().collect::<BTreeSet<_>>(),
        expected,
        "every order is committed ({runner}, {service:?} outage)"
    );
    table.reset().unwrap();
    match &failure {
        None => eprintln!("{runner}, {service:?} outage: the run rode it out"),
        Some(m) => eprintln!("{runner}, {service:?} outage: failed, resumed on restart: {m}"),
    }
    failure
}

#[test]
fn postgres_outage_on_continuous_loses_and_duplicates_nothing() {
    if let Some(message) = outage(Service::Postgres, "continuous", "faults_pg_cont") {
        assert!(message.contains("PostgreSQL"), "{message}");
    }
}

#[test]
fn postgres_outage_on_microbatch_loses_and_duplicates_nothing() {
    if let Some(message) = outage(Service::Postgres, "microbatch", "faults_pg_mb") {
        assert!(message.contains("PostgreSQL"), "{message}");
    }
}

#[test]
fn nats_outage_on_continuous_loses_and_duplicates_nothing() {
    if let Some(message) = outage(Service::Nats, "continuous", "faults_nats_cont") {
        assert!(message.contains("JetStream"), "{message}");
    }
}

#[test]
fn nats_outage_on_microbatch_loses_and_duplicates_nothing() {
    if let Some(message) = outage(Service::Nats, "microbatch", "faults_nats_mb") {
        assert!(message.contains("JetStream"), "{message}");
    }
}
