//! The Nexmark queries the benchmark runs (the pipeline files of `benches/nexmark/`, built
//! into the binary) and how a benchmark run rewrites them: the size, partitions, rate and
//! base time of every Nexmark source, and a meter instead of every sink.

use anyhow::{bail, Context};
use weir::model::io::{SinkSpec, SourceSpec};
use weir::model::transform::Transform;
use weir::model::Pipeline;

/// Every query: its name and its pipeline file.
pub const QUERIES: &[(&str, &str)] = &[
    ("q0", include_str!("../../benches/nexmark/q0.yaml")),
    ("q1", include_str!("../../benches/nexmark/q1.yaml")),
    ("q2", include_str!("../../benches/nexmark/q2.yaml")),
    ("q3", include_str!("../../benches/nexmark/q3.yaml")),
    ("q4", include_str!("../../benches/nexmark/q4.yaml")),
    ("q5", include_str!("../../benches/nexmark/q5.yaml")),
    ("q7", include_str!("../../benches/nexmark/q7.yaml")),
    ("q8", include_str!("../../benches/nexmark/q8.yaml")),
    ("q9", include_str!("../../benches/nexmark/q9.yaml")),
    ("q11", include_str!("../../benches/nexmark/q11.yaml")),
    ("q12", include_str!("../../benches/nexmark/q12.yaml")),
    ("q14", include_str!("../../benches/nexmark/q14.yaml")),
    ("q17", include_str!("../../benches/nexmark/q17.yaml")),
    ("q18", include_str!("../../benches/nexmark/q18.yaml")),
    ("q19", include_str!("../../benches/nexmark/q19.yaml")),
    ("q20", include_str!("../../benches/nexmark/q20.yaml")),
    ("q21", include_str!("../../benches/nexmark/q21.yaml")),
    ("q22", include_str!("../../benches/nexmark/q22.yaml")),
];

/// The basic workloads (`weir bench basic`, the pipeline files of `benches/basic/`): a
/// stateless filter + projection and a keyed tumbling-window count over generated rows.
pub const BASIC: &[(&str, &str)] = &[
    (
        "filter-project",
        include_str!("../../benches/basic/filter-project.yaml"),
    ),
    (
        "windowed-count",
        include_str!("../../benches/basic/windowed-count.yaml"),
    ),
];

/// Flink 1.13's published throughput per core on the nexmark/nexmark suite (8-way, RocksDB,
/// exactly-once checkpoints), events per second.
pub const FLINK_PER_CORE: &[(&str, f64)] = &[
    ("q0", 155_000.0),
    ("q1", 158_000.0),
    ("q2", 175_000.0),
    ("q3", 152_000.0),
    ("q4", 34_000.0),
    ("q5", 22_000.0),
    ("q7", 12_000.0),
    ("q8", 146_000.0),
    ("q9", 14_000.0),
    ("q11", 40_000.0),
    ("q12", 76_000.0),
    ("q14", 161_000.0),
    ("q17", 117_000.0),
    ("q18", 54_000.0),
    ("q19", 44_000.0),
    ("q20", 19_000.0),
    ("q21", 98_000.0),
    ("q22", 130_000.0),
];

/// Flink's per-core figure for `query`.
pub fn flink_per_core(query: &str) -> Option<f64> {
    FLINK_PER_CORE
        .iter()
        .find(|(q, _)| *q == query)
        .map(|(_, v)| *v)
}

/// The pipeline of `query` (a Nexmark query or a basic workload), or an error listing them.
pub fn load(query: &str) -> anyhow::Result<Pipeline> {
    let found = QUERIES
        .iter()
        .map(|(q, text)| (q, text, "nexmark"))
        .chain(BASIC.iter().map(|(q, text)| (q, text, "basic")))
        .find(|(q, _, _)| **q == query);
    let Some((name, text, dir)) = found else {
        let known: Vec<&str> = QUERIES.iter().map(|(q, _)| *q).collect();
        let basic: Vec<&str> = BASIC.iter().map(|(q, _)| *q).collect();
        bail!(
            "unknown query `{query}` (queries: {}; basic workloads: {})",
            known.join(", "),
            basic.join(", ")
        );
    };
    Ok(weir::model::file::parse_str(
        text,
        &format!("benches/{dir}/{name}.yaml"),
    )?)
}

/// How a benchmark run sizes the sources.
#[derive(Debug, Clone, Copy)]
pub struct SourceSizing {
    /// Events of the whole stream.
    pub events: u64,
    /// Partitions of every source.
    pub partitions: u32,
    /// Events per second, when paced.
    pub rate: Option<f64>,
    /// Event time of the first event (ms).
    pub base_time: Option<i64>,
}

/// Rewrites `pipeline` for a run: every Nexmark or sequence source sized by `sizing` (a
/// sequence is `events` rows), every sink a meter named `meter` (the meter sums all of them).
/// Returns the number of sources sized.
pub fn prepare(
    pipeline: &mut Pipeline,
    sizing: SourceSizing,
    meter: &str,
) -> anyhow::Result<usize> {
    let mut sources = 0;
    for node in &mut pipeline.transforms {
        match &mut node.transform {
            Transform::Read {
                source:
                    SourceSpec::Nexmark {
                        events,
                        partitions,
                        rate,
                        base_time,
                        realtime,
                        ..
                    },
                ..
            } => {
                *events = Some(sizing.events);
                *partitions = sizing.partitions;
                *rate = sizing.rate;
                if let Some(t) = sizing.base_time {
                    *base_time = t;
                }
                // Paced runs measure latency: events are generated at their event times.
                *realtime = sizing.rate.is_some() && sizing.base_time.is_some();
                sources += 1;
            }
            Transform::Read {
                source:
                    SourceSpec::Sequence {
                        count,
                        partitions,
                        rate,
                        ..
                    },
                ..
            } => {
                *count = Some(sizing.events);
                *partitions = sizing.partitions;
                *rate = sizing.rate;
                sources += 1;
            }
            Transform::Write { sink, .. } => {
                *sink = SinkSpec::Meter {
                    name: meter.to_string(),
                }
            }
            _ => {}
        }
    }
    if sources == 0 {
        bail!("the query reads no Nexmark or sequence source");
    }
    Ok(sources)
}

/// Parses an event count: `1000`, `500K`, `10M`, `1.5M`, `2G` (decimal multiples).
pub fn parse_count(text: &str) -> anyhow::Result<u64> {
    let t = text.trim().replace('_', "");
    let (number, multiplier) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1e3),
        Some('M') => (&t[..t.len() - 1], 1e6),
        Some('G') => (&t[..t.len() - 1], 1e9),
        _ => (t.as_str(), 1.0),
    };
    let value: f64 = number
        .parse()
        .with_context(|| format!("`{text}` is not a count (e.g. 1000, 500K, 10M)"))?;
    let count = value * multiplier;
    if !(count.is_finite() && count >= 1.0 && count.fract() == 0.0) {
        bail!("`{text}` is not a whole, positive count (e.g. 1000, 500K, 10M)");
    }
    Ok(count as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_decimal_suffixes() {
        assert_eq!(parse_count("10M").unwrap(), 10_000_000);
        assert_eq!(parse_count("500k").unwrap(), 500_000);
        assert_eq!(parse_count("1.5M").unwrap(), 1_500_000);
        assert_eq!(parse_count("1_000").unwrap(), 1_000);
        assert!(parse_count("ten").is_err());
        assert!(parse_count("0").is_err());
        assert!(parse_count("1.5").is_err());
    }

    const SMALL: SourceSizing = SourceSizing {
        events: 100,
        partitions: 2,
        rate: None,
        base_time: None,
    };

    #[test]
    fn every_query_file_loads_and_reads_nexmark() {
        for (name, _) in QUERIES {
            let mut p = load(name).unwrap();
            assert!(prepare(&mut p, SMALL, "m").unwrap() >= 1, "{name}");
            weir::model::plan(&p).unwrap();
            assert!(flink_per_core(name).is_some(), "{name}");
        }
        assert!(load("q6")
            .unwrap_err()
            .to_string()
            .contains("queries: q0, q1"));
        for (name, _) in BASIC {
            let mut p = load(name).unwrap();
            assert_eq!(prepare(&mut p, SMALL, "m").unwrap(), 1, "{name}");
            weir::model::plan(&p).unwrap();
        }
    }
}
