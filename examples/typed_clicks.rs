//! The typed Rust API: clicks per user in 1-minute windows, with the runner chosen on the
//! command line.
//!
//! ```sh
//! cargo run --example typed_clicks -- --runner direct
//! ```

use weir::model::Plan;
use weir::prelude::*;

/// One click; `ts` is the event time in milliseconds since the epoch.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Click {
    user: String,
    url: String,
    ts: i64,
}

/// 2024-05-01T10:00:00Z in milliseconds.
const T0: i64 = 1_714_557_600_000;

fn clicks() -> Vec<Click> {
    let click = |user: &str, url: &str, s: i64| Click {
        user: user.into(),
        url: url.into(),
        ts: T0 + s * 1000,
    };
    vec![
        click("alice", "/home", 5),
        click("bob", "/home", 20),
        click("alice", "/cart", 40),
        click("alice", "/pay", 70),
        click("carol", "/home", 90),
        // Arrives after its window closed and after the allowed lateness: goes to `late`.
        click("bob", "/old", 10),
    ]
}

/// Builds the pipeline; `sink` is where the counts go.
fn pipeline(sink: impl Fn(&Collection)) -> anyhow::Result<Plan> {
    let p = PipelineBuilder::new("typed_clicks");
    let counts = p
        .create_typed(&clicks())?
        .assign_timestamps(
            col("ts"),
            WatermarkStrategy::bounded(Duration::from_secs(5)),
        )
        .window_into(
            fixed(Duration::from_mins(1))
                .allowed_lateness(Duration::from_secs(10))
                .late_to("late"),
        )
        .combine(["user"], [agg::count("clicks")])
        .named("CountClicks");
    sink(&counts);
    counts.side_output("late").log().named("LogLateClicks");
    Ok(p.plan()?)
}

fn main() -> anyhow::Result<()> {
    let options = PipelineOptions::from_args(std::env::args())?;
    let plan = pipeline(|counts| {
        counts.log();
    })?;
    let runner = weir::runner(&options.runner)?;
    runner.check(&plan)?;
    runner
        .run(&plan, &options)
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir::direct::DirectRunner;

    #[test]
    fn counts_clicks_per_user_and_minute_on_the_direct_runner() {
        let plan = pipeline(|counts| {
            counts.write_memory("typed_clicks");
        })
        .unwrap();
        let run = DirectRunner::new()
            .execute(&plan, &PipelineOptions::for_runner("direct"))
            .unwrap();
        let mut rows: Vec<(serde_json::Value, i64)> = run
            .sinks
            .rows("typed_clicks")
            .into_iter()
            .map(|r| (serde_json::Value::Object(r.row), r.meta.window.start))
            .collect();
        rows.sort_by_key(|(v, start)| (*start, v.to_string()));
        assert_eq!(
            rows,
            vec![
                (json!({"user": "alice", "clicks": 2}), T0),
                (json!({"user": "bob", "clicks": 1}), T0),
                (json!({"user": "alice", "clicks": 1}), T0 + 60_000),
                (json!({"user": "carol", "clicks": 1}), T0 + 60_000),
            ]
        );
    }
}
