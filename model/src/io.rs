//! Source and sink contracts: partitions with replayable positions, and sinks that declare
//! their delivery guarantee.

use crate::schema::Schema;
use crate::time::Duration;
use serde::{Deserialize, Serialize};

/// What to do with an input record that cannot be parsed or does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "on_error")]
pub enum BadRecordPolicy {
    /// Fail the run, naming the file, line and field.
    #[default]
    Fail,
    /// Route the record, with its position and the error, to the side output `tag`
    /// (collection `<transform>.<tag>`, schema [`dead_letter_schema`]).
    DeadLetter {
        /// Side output tag.
        tag: String,
    },
}

/// Schema of a dead-letter output: where the record came from, what was wrong, and the raw text.
pub fn dead_letter_schema() -> Schema {
    use crate::schema::{DataType, Field};
    Schema::new(vec![
        Field::new("source", DataType::String),
        Field::new("line", DataType::Int64),
        Field::new("error", DataType::String),
        Field::new("record", DataType::String),
    ])
}

/// File formats the built-in file sources and sinks read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// One JSON object per line.
    JsonLines,
    /// Comma-separated values with a header line.
    Csv,
    /// Plain text, one row per line, in a single `line` column.
    Text,
}

/// A source: where rows come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SourceSpec {
    /// Rows given inline (Beam's Create); one partition.
    Create {
        /// The rows, as JSON objects.
        elements: Vec<serde_json::Value>,
    },
    /// Files: one file, or every file of a directory in name order (each file a partition).
    Files {
        /// A file or directory path.
        path: String,
        /// Format of each file.
        format: FileFormat,
        /// Keep watching the directory for new files (unbounded).
        #[serde(default)]
        watch: bool,
        /// How often to look for new files when watching.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        poll_interval: Option<Duration>,
        /// Rows per second over all files; as fast as possible when absent (for demos and
        /// `weir soak`, which need a run that lasts).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate: Option<f64>,
    },
    /// Generated rows `{value: i}` for `i` in `start..start+count` (or unbounded when `count` is
    /// absent), at `rate` rows per second when given; `partitions` interleaved splits.
    Sequence {
        /// First value.
        #[serde(default)]
        start: i64,
        /// Number of rows; unbounded when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
        /// Rows per second; as fast as possible when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate: Option<f64>,
        /// Number of partitions.
        #[serde(default = "one")]
        partitions: u32,
    },
    /// An in-memory test source registered by name in the running process.
    Memory {
        /// Registry name.
        name: String,
    },
    /// One table (`person`, `auction` or `bid`) of the Nexmark benchmark's event stream,
    /// generated as the Nexmark generator specifies (people, auctions and bids in the
    /// proportion 1:3:46; ids, prices, timestamps, channels and URLs as the `nexmark` crate
    /// makes them). Every table source over the same settings sees the same stream of
    /// `events` events and emits the ones of its table, so a query reading two tables
    /// reads each event once. Event `k` (0-based) goes to partition `k % partitions`.
    Nexmark {
        /// Which table's rows to emit.
        table: NexmarkTable,
        /// Number of events of the whole stream (all tables); unbounded when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        events: Option<u64>,
        /// Number of partitions.
        #[serde(default = "one")]
        partitions: u32,
        /// Id of the first event: offsets every id and the seed of every event's random data.
        #[serde(default)]
        first_event_id: u64,
        /// Event time of the first event, in milliseconds since the epoch.
        #[serde(default = "nexmark_base_time")]
        base_time: i64,
        /// Events per second of the whole stream: spaces event times `1000 / rate` ms apart
        /// and paces generation by processing time. Absent: as fast as possible, with event
        /// times spaced for the generator's default rate of 10,000 events per second.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate: Option<f64>,
        /// Events come out in a pseudo-random order within each group of this many (1: in
        /// order), as the generator's `out_of_order_group_size` does.
        #[serde(default = "one_u64")]
        out_of_order_group_size: u64,
        /// Wall-clock mode (needs `rate`): each event is generated when the processing-time
        /// clock reaches its event time, so the time from an event's timestamp to its row in
        /// a sink is the time since it was generated (the generator's wall-clock event time).
        /// Needs a `base_time` given explicitly. Without it, pacing starts at the first read,
        /// whenever that is.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        realtime: bool,
    },
    /// Parquet files: one file, or every committed file of a directory (bounded). A
    /// directory written by a Parquet sink is read through its manifest
    /// (`_weir_metadata/`): only files of committed epochs are read, so uncommitted or
    /// half-written files never are. One partition per file, in name order.
    Parquet {
        /// A `.parquet` file or a directory of them.
        path: String,
    },
    /// A NATS JetStream stream: one partition per subject filter (or one for the whole
    /// stream), each message's payload one JSON object; positions are stream sequence
    /// numbers.
    JetStream(Box<JetStreamSourceSpec>),
}

/// Where and how a JetStream source reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JetStreamSourceSpec {
    /// Server URL (`nats://host:port`).
    pub url: String,
    /// The stream to read.
    pub stream: String,
    /// Subject filters, one partition each; empty: one partition over the whole stream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// A timestamp column to fill with each message's JetStream timestamp (the time the
    /// server stored it), for `AssignTimestamps`; it is part of the source's schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_timestamp: Option<String>,
    /// Stop at the last message each partition had when the source started (bounded).
    #[serde(default)]
    pub bounded: bool,
    /// Messages per second over all partitions; as fast as possible when absent (for demos
    /// and `weir soak`, which need a run that lasts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
}

/// The default NATS server URL.
pub const NATS_DEFAULT_URL: &str = "nats://127.0.0.1:4222";

fn one() -> u32 {
    1
}

fn one_u64() -> u64 {
    1
}

/// The default event time of the first Nexmark event: 2015-07-15T00:00:00Z, the Nexmark
/// suite's base time.
pub const NEXMARK_BASE_TIME: i64 = 1_436_918_400_000;

fn nexmark_base_time() -> i64 {
    NEXMARK_BASE_TIME
}

/// The tables of the Nexmark benchmark, as its SQL queries read them (the `person`,
/// `auction` and `bid` views of the event stream). Column names are the snake_case field
/// names of the `nexmark` crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NexmarkTable {
    /// New users: `id, name, email_address, credit_card, city, state, date_time, extra`.
    Person,
    /// New auctions: `id, item_name, description, initial_bid, reserve, date_time, expires,
    /// seller, category, extra`.
    Auction,
    /// Bids: `auction, bidder, price, channel, url, date_time, extra`.
    Bid,
}

impl NexmarkTable {
    /// Every table.
    pub const ALL: [NexmarkTable; 3] = [
        NexmarkTable::Person,
        NexmarkTable::Auction,
        NexmarkTable::Bid,
    ];

    /// The table's name in pipeline files and SQL.
    pub fn name(self) -> &'static str {
        match self {
            NexmarkTable::Person => "person",
            NexmarkTable::Auction => "auction",
            NexmarkTable::Bid => "bid",
        }
    }

    /// The table called `name`.
    pub fn by_name(name: &str) -> Option<NexmarkTable> {
        NexmarkTable::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The table's columns: ids and prices `int64`, times `timestamp`, the rest `string`.
    pub fn schema(self) -> Schema {
        use crate::schema::{DataType, Field};
        let column = |name: &str| {
            let data_type = match name {
                "date_time" | "expires" => DataType::Timestamp,
                "id" | "initial_bid" | "reserve" | "seller" | "category" | "auction" | "bidder"
                | "price" => DataType::Int64,
                _ => DataType::String,
            };
            Field::new(name, data_type)
        };
        let names: &[&str] = match self {
            NexmarkTable::Person => &[
                "id",
                "name",
                "email_address",
                "credit_card",
                "city",
                "state",
                "date_time",
                "extra",
            ],
            NexmarkTable::Auction => &[
                "id",
                "item_name",
                "description",
                "initial_bid",
                "reserve",
                "date_time",
                "expires",
                "seller",
                "category",
                "extra",
            ],
            NexmarkTable::Bid => &[
                "auction",
                "bidder",
                "price",
                "channel",
                "url",
                "date_time",
                "extra",
            ],
        };
        Schema::new(names.iter().map(|n| column(n)).collect())
    }
}

impl SourceSpec {
    /// Whether the source ends.
    pub fn is_bounded(&self) -> bool {
        match self {
            SourceSpec::Create { .. } | SourceSpec::Memory { .. } => true,
            SourceSpec::Files { watch, .. } => !watch,
            SourceSpec::Sequence { count, .. } => count.is_some(),
            SourceSpec::Nexmark { events, .. } => events.is_some(),
            SourceSpec::Parquet { .. } => true,
            SourceSpec::JetStream(spec) => spec.bounded,
        }
    }
}

/// What a sink guarantees when a runner retries or restores after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryGuarantee {
    /// Rows may be written more than once after a failure.
    AtLeastOnce,
    /// Writes are keyed by batch/epoch id, so a replayed write replaces the earlier one.
    Idempotent,
    /// Writes are staged and committed with a checkpoint (two-phase commit).
    Transactional,
}

impl DeliveryGuarantee {
    /// Whether a runner may claim exactly-once output with this sink.
    pub fn is_exactly_once(self) -> bool {
        !matches!(self, DeliveryGuarantee::AtLeastOnce)
    }
}

/// A sink: where rows go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SinkSpec {
    /// Files under a path: one file when the path has an extension and the input is bounded,
    /// otherwise a directory of part files committed per batch/epoch.
    Files {
        /// Output path.
        path: String,
        /// Format.
        format: FileFormat,
    },
    /// Pretty rows on standard output (at-least-once).
    Stdout,
    /// An in-memory test sink registered by name, recording every row with its pane.
    Memory {
        /// Registry name.
        name: String,
        /// What the sink guarantees on replay (default transactional). `at_least_once` makes
        /// every write visible at once and a replay write again, as a plain sink would;
        /// conformance scenarios use it to compare recovery under each guarantee.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        guarantee: Option<DeliveryGuarantee>,
    },
    /// A meter registered by name in the running process: counts rows and records each
    /// row's latency (processing time written minus event time) without keeping the rows.
    /// For benchmarks.
    Meter {
        /// Registry name.
        name: String,
    },
    /// A directory of Parquet files, one per committed batch/epoch, committed through a
    /// manifest under `<path>/_weir_metadata/` (Spark's file-sink log): an epoch already in
    /// the manifest is a replay and is skipped, and files not listed in it are invisible to
    /// readers that honour it (Weir's file and Parquet sources do).
    Parquet {
        /// Output directory.
        path: String,
    },
    /// A PostgreSQL table (transactional: one transaction per batch recorded in the
    /// `weir_sink_progress` table, or PostgreSQL's two-phase commit under checkpoints).
    Postgres(Box<PostgresSinkSpec>),
    /// A NATS JetStream subject: each row published as a JSON object with a `Nats-Msg-Id`
    /// derived from (sink id, batch/epoch, row), so the stream's duplicate window drops a
    /// replayed batch's messages (idempotent within that window).
    JetStream {
        /// Server URL (`nats://host:port`).
        url: String,
        /// The subject to publish to (a stream must capture it).
        subject: String,
        /// Identifies the sink in message ids (default: `<transform>@<subject>`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job: Option<String>,
        /// A stream to create when the server has none of that name (an existing stream is
        /// used as it is), so that a demo or a test needs no separate setup.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        create_stream: Option<StreamSetup>,
    },
}

/// A JetStream stream a sink creates when it is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSetup {
    /// Stream name.
    pub name: String,
    /// The subjects it captures (wildcards allowed, e.g. `orders.>`).
    pub subjects: Vec<String>,
}

/// How a PostgreSQL sink writes rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum PostgresWriteMode {
    /// Plain `INSERT`: every row is a new table row.
    Insert,
    /// `INSERT ... ON CONFLICT (key) DO UPDATE`: the last row per key wins.
    Upsert {
        /// The key columns (the table's primary key when the sink creates it).
        key: Vec<String>,
    },
}

/// Where and how a PostgreSQL sink writes. The password never appears here: it is read at
/// run time from the environment variable `password_env` or the file `password_file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostgresSinkSpec {
    /// A libpq-style connection string (`host=... port=... dbname=... user=...`) or a
    /// `postgresql://` URL; `host`, `port`, `database` and `user` override its parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// Server host (default `127.0.0.1` when no connection string names one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Server port (default 5432).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Database name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Name of an environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Path of a file holding the password (surrounding whitespace ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// Target table (`name` or `schema.name`), created when missing.
    pub table: String,
    /// Insert or upsert.
    pub mode: PostgresWriteMode,
    /// Rows per `INSERT` statement.
    pub batch_size: u64,
    /// Identifies this sink in `weir_sink_progress` and in prepared-transaction ids
    /// (default: `<transform>@<table>`). Two jobs writing one database need different ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

/// Default rows per `INSERT` of a PostgreSQL sink.
pub const POSTGRES_DEFAULT_BATCH_SIZE: u64 = 1000;

impl SinkSpec {
    /// The guarantee this sink gives.
    pub fn guarantee(&self) -> DeliveryGuarantee {
        match self {
            SinkSpec::Files { .. } => DeliveryGuarantee::Idempotent,
            SinkSpec::Stdout => DeliveryGuarantee::AtLeastOnce,
            SinkSpec::Parquet { .. } | SinkSpec::JetStream { .. } => DeliveryGuarantee::Idempotent,
            SinkSpec::Memory { guarantee, .. } => {
                guarantee.unwrap_or(DeliveryGuarantee::Transactional)
            }
            SinkSpec::Postgres(_) => DeliveryGuarantee::Transactional,
            // A meter keeps no rows: like Flink's blackhole sink in Nexmark it takes no part
            // in two-phase commit, so checkpoints carry operator state only.
            SinkSpec::Meter { .. } => DeliveryGuarantee::AtLeastOnce,
        }
    }
}

/// Which columns of windowed data a sink writes besides the data itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct SinkMetadata {
    /// Write `window_start` and `window_end` columns (default: when the input is windowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<bool>,
    /// Write `pane_timing`, `pane_index`, `pane_is_first`, `pane_is_last` columns.
    #[serde(default)]
    pub pane: bool,
}
