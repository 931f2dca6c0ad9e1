//! The transforms of the IR (Beam's primitives plus a few composites that runners expand
//! with the shared building blocks of `weir-runner-core`).

use crate::expr::Expr;
use crate::io::{BadRecordPolicy, SinkMetadata, SinkSpec, SourceSpec};
use crate::schema::Schema;
use crate::time::Duration;
use crate::udf::{BatchFn, CombineFn, DoFn, StatefulFn};
use crate::window::{WatermarkStrategy, WindowingStrategy};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A built-in or user aggregation function.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateFn {
    /// Number of rows (or of non-null inputs when an input is given).
    Count,
    /// Sum of the input.
    Sum,
    /// Smallest input.
    Min,
    /// Largest input.
    Max,
    /// Arithmetic mean (float64).
    Mean,
    /// Number of distinct non-null inputs.
    DistinctCount,
    /// A user-defined combiner.
    Custom(Box<dyn CombineFn>),
}

impl AggregateFn {
    /// The built-in function called `name`.
    pub fn by_name(name: &str) -> Option<AggregateFn> {
        Some(match name.to_ascii_lowercase().as_str() {
            "count" => AggregateFn::Count,
            "sum" => AggregateFn::Sum,
            "min" => AggregateFn::Min,
            "max" => AggregateFn::Max,
            "mean" | "avg" | "average" => AggregateFn::Mean,
            "distinct_count" | "count_distinct" => AggregateFn::DistinctCount,
            _ => return None,
        })
    }
    /// Name for plans.
    pub fn name(&self) -> String {
        match self {
            AggregateFn::Count => "count".into(),
            AggregateFn::Sum => "sum".into(),
            AggregateFn::Min => "min".into(),
            AggregateFn::Max => "max".into(),
            AggregateFn::Mean => "mean".into(),
            AggregateFn::DistinctCount => "distinct_count".into(),
            AggregateFn::Custom(c) => c.typetag_name().to_string(),
        }
    }
}

/// One output column of a `Combine`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Aggregation {
    /// Output column name.
    pub name: String,
    /// The function.
    #[serde(rename = "fn")]
    pub func: AggregateFn,
    /// The input value (absent for a plain `count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Expr>,
}

/// Kind of join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinKind {
    /// Rows with a match on every side.
    Inner,
    /// Every row of the first input, matched or not.
    Left,
    /// Every row of the second input, matched or not.
    Right,
    /// Every row of both inputs.
    Full,
}

/// A transform. Each transform node names its inputs; its main output is the collection
/// named like the node, side outputs are `<node>.<tag>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Transform {
    /// Reads a source. Optionally assigns event time from a column while reading.
    Read {
        /// Where rows come from.
        source: SourceSpec,
        /// Declared schema of the rows.
        schema: Schema,
        /// Malformed records: fail, or route to a dead-letter side output.
        #[serde(default)]
        bad_records: BadRecordPolicy,
    },
    /// Keeps rows for which `predicate` is true (null counts as false).
    Filter {
        /// The condition.
        predicate: Expr,
    },
    /// Computes new columns (Beam YAML's MapToFields).
    Project {
        /// Output columns, in order.
        fields: Vec<(String, Expr)>,
        /// Keep every input column as well, before the new ones (replacing same-named ones).
        #[serde(default)]
        append: bool,
    },
    /// Splits a list column into one row per item (Beam YAML's Explode).
    Explode {
        /// The list column.
        field: String,
    },
    /// An element-wise user function with optional side outputs.
    ParDo {
        /// The function.
        #[serde(rename = "do_fn")]
        func: Box<dyn DoFn>,
        /// Errors from the function: fail the run, or route the row to a dead-letter output.
        #[serde(default)]
        on_error: BadRecordPolicy,
    },
    /// A batch-wise user function.
    MapBatches {
        /// The function.
        #[serde(rename = "batch_fn")]
        func: Box<dyn BatchFn>,
    },
    /// Sets each row's event time and the collection's watermark strategy.
    AssignTimestamps {
        /// The event time (a timestamp or int64 milliseconds).
        timestamp: Expr,
        /// How the watermark follows event times.
        watermark: WatermarkStrategy,
    },
    /// Sets the collection's windowing strategy.
    WindowInto {
        /// The strategy.
        windowing: WindowingStrategy,
    },
    /// Groups rows by key per window: output = key columns + `values` (a list of the
    /// remaining columns as structs) + window/pane metadata.
    GroupByKey {
        /// Key columns.
        keys: Vec<String>,
    },
    /// Aggregates rows per key (or globally when `group_by` is empty) per window.
    Combine {
        /// Key columns.
        group_by: Vec<String>,
        /// Output aggregations.
        aggregations: Vec<Aggregation>,
    },
    /// Concatenates inputs with the same schema.
    Flatten,
    /// Joins two or more inputs on equal keys per window (CoGroupByKey + flatten). Output
    /// columns: the keys once, then each input's other columns prefixed `<input>_` when they
    /// would clash.
    Join {
        /// Key columns per input, in input order (the same count for each).
        on: Vec<Vec<String>>,
        /// Inner, left, right or full.
        kind: JoinKind,
    },
    /// Groups two or more inputs by key per window: key columns + one list column per input.
    CoGroupByKey {
        /// Key columns per input, in input order.
        keys: Vec<Vec<String>>,
    },
    /// A stateful function over keyed state and timers.
    StatefulParDo {
        /// Key columns.
        keys: Vec<String>,
        /// The function.
        #[serde(rename = "stateful_fn")]
        func: Box<dyn StatefulFn>,
    },
    /// Keeps the first row per key (optionally forgetting keys after `ttl` of event time).
    Dedup {
        /// Key columns.
        keys: Vec<String>,
        /// Forget a key this long after its first row (event time); forever when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl: Option<Duration>,
    },
    /// Keeps the `n` largest (or smallest) rows per key and window, emitted when the window fires.
    TopN {
        /// Key columns (empty: one group).
        group_by: Vec<String>,
        /// Column to rank by.
        order_by: String,
        /// How many rows.
        n: usize,
        /// Largest first (default) or smallest first.
        #[serde(default = "yes")]
        descending: bool,
    },
    /// Writes to a sink.
    Write {
        /// Where rows go.
        sink: SinkSpec,
        /// Window/pane metadata columns to write.
        #[serde(default)]
        metadata: SinkMetadata,
    },
    /// Fails the run unless the input equals `elements` (as a multiset of rows).
    AssertEqual {
        /// Expected rows.
        elements: Vec<serde_json::Value>,
    },
}

fn yes() -> bool {
    true
}

impl Transform {
    /// The transform's type name as used in pipeline files.
    pub fn type_name(&self) -> &'static str {
        match self {
            Transform::Read { source, .. } => match source {
                SourceSpec::Create { .. } => "Create",
                SourceSpec::Files { format, .. } => match format {
                    crate::io::FileFormat::JsonLines => "ReadFromJson",
                    crate::io::FileFormat::Csv => "ReadFromCsv",
                    crate::io::FileFormat::Text => "ReadFromText",
                },
                SourceSpec::Sequence { .. } => "GenerateSequence",
                SourceSpec::Memory { .. } => "ReadFromMemory",
                SourceSpec::Nexmark { .. } => "ReadFromNexmark",
                SourceSpec::Parquet { .. } => "ReadFromParquet",
                SourceSpec::JetStream(_) => "ReadFromJetStream",
            },
            Transform::Filter { .. } => "Filter",
            Transform::Project { .. } => "MapToFields",
            Transform::Explode { .. } => "Explode",
            Transform::ParDo { .. } => "ParDo",
            Transform::MapBatches { .. } => "MapBatches",
            Transform::AssignTimestamps { .. } => "AssignTimestamps",
            Transform::WindowInto { .. } => "WindowInto",
            Transform::GroupByKey { .. } => "GroupByKey",
            Transform::Combine { .. } => "Combine",
            Transform::Flatten => "Flatten",
            Transform::Join { .. } => "Join",
            Transform::CoGroupByKey { .. } => "CoGroupByKey",
            Transform::StatefulParDo { .. } => "StatefulParDo",
            Transform::Dedup { .. } => "Deduplicate",
            Transform::TopN { .. } => "TopN",
            Transform::Write { sink, .. } => match sink {
                SinkSpec::Files { format, .. } => match format {
                    crate::io::FileFormat::JsonLines => "WriteToJson",
                    crate::io::FileFormat::Csv => "WriteToCsv",
                    crate::io::FileFormat::Text => "WriteToText",
                },
                SinkSpec::Stdout => "LogForTesting",
                SinkSpec::Memory { .. } => "WriteToMemory",
                SinkSpec::Meter { .. } => "WriteToMeter",
                SinkSpec::Parquet { .. } => "WriteToParquet",
                SinkSpec::Postgres(_) => "WriteToPostgres",
                SinkSpec::JetStream { .. } => "WriteToJetStream",
            },
            Transform::AssertEqual { .. } => "AssertEqual",
        }
    }

    /// Whether this transform groups by window (and therefore fires panes).
    pub fn is_aggregation(&self) -> bool {
        matches!(
            self,
            Transform::GroupByKey { .. }
                | Transform::Combine { .. }
                | Transform::Join { .. }
                | Transform::CoGroupByKey { .. }
                | Transform::TopN { .. }
        )
    }
}

impl fmt::Display for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.type_name())
    }
}
