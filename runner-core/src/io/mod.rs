//! Built-in sources and sinks and the two traits they implement.
//!
//! A [`Source`] is split into partitions, each with a replayable position; a runner polls a
//! partition for its next batch. Malformed records either fail the run with file and line,
//! or go to the dead-letter batch returned beside the data, as the pipeline chose.
//! A [`Sink`] receives batches and commits them per batch/epoch; it declares its
//! [`DeliveryGuarantee`].

mod blocking;
mod create;
mod file_sink;
mod file_source;
mod format;
mod jetstream;
pub mod manifest;
mod memory;
mod meter;
mod nexmark;
mod pacing;
mod parquet;
pub mod postgres;
mod records;
mod sequence;
mod stdout;

use crate::error::ExecResult;
use arrow::record_batch::RecordBatch;
use weir_model::io::{BadRecordPolicy, DeliveryGuarantee, SinkMetadata, SinkSpec, SourceSpec};
use weir_model::time::Timestamp;
use weir_model::Schema;

pub use create::CreateSource;
pub use file_sink::FileSink;
pub use file_source::FileSource;
pub use jetstream::{recreate_stream, JetStreamSink, JetStreamSource};
pub use memory::{MemorySink, MemorySource, RecordedRow, SinkRegistry};
pub use meter::{MeterReading, MeterSink};
pub use nexmark::{NexmarkEventKind, NexmarkSchedule, NexmarkSettings, NexmarkSource};
pub use parquet::{ParquetSink, ParquetSource};
pub use postgres::PostgresSink;
pub use records::RecordCollector;
pub use sequence::SequenceSource;
pub use stdout::StdoutSink;

/// What polling a partition gave.
#[derive(Debug)]
pub enum SourcePoll {
    /// Rows (user columns + metadata), and malformed records routed to the dead-letter
    /// output (dead-letter schema + metadata) when the pipeline asked for one.
    Batch {
        /// Parsed rows.
        data: RecordBatch,
        /// Malformed records, when any and when routed.
        dead_letters: Option<RecordBatch>,
    },
    /// Nothing now; poll again later (unbounded sources).
    Pending,
    /// The partition has no more data.
    Ended,
}

/// A partitioned source with replayable positions.
pub trait Source: Send {
    /// Number of partitions (fixed for the source's life).
    fn partitions(&self) -> u32;
    /// Up to `max_rows` next rows of `partition`, at processing time `now`.
    fn poll(&mut self, partition: u32, max_rows: usize, now: Timestamp) -> ExecResult<SourcePoll>;
    /// The position after the last row returned from `partition` (JSON, runner-opaque).
    fn position(&self, partition: u32) -> serde_json::Value;
    /// Moves `partition` to a position returned earlier by [`Source::position`].
    fn seek(&mut self, partition: u32, position: &serde_json::Value) -> ExecResult<()>;
    /// The processing time at which polling may yield more (rate limits, directory polls).
    fn next_poll_time(&self) -> Option<Timestamp> {
        None
    }
    /// Whether the next polls re-read a range read before (a micro-batch replaying a logged
    /// batch after a restart): those rows were available once already, so a rate-paced
    /// source yields them without pacing. Pacing restarts from the positions reached when
    /// replaying ends. Sources without pacing ignore it.
    fn set_replaying(&mut self, _replaying: bool) {}
}

/// A sink that writes batches and commits them per batch/epoch.
pub trait Sink: Send {
    /// Writes rows (user columns + metadata) at processing time `now`; not yet committed.
    fn write(&mut self, batch: &RecordBatch, now: Timestamp) -> ExecResult<()>;
    /// Commits everything written since the last commit as `epoch`.
    fn commit(&mut self, epoch: u64, now: Timestamp) -> ExecResult<()>;
    /// What the sink guarantees on replay.
    fn guarantee(&self) -> DeliveryGuarantee;
    /// The external system's own two-phase commit, when the sink has one (PostgreSQL's
    /// prepared transactions). A checkpointing runner then prepares the sink's transaction
    /// at the barrier and commits it when the checkpoint completes, instead of staging the
    /// rows in its own checkpoint state. Default: none.
    fn native_two_phase(&mut self) -> Option<&mut dyn NativeTwoPhaseCommit> {
        None
    }
}

/// A sink's native two-phase commit (Flink's `TwoPhaseCommitSinkFunction` over a database's
/// prepared transactions). Transactions are named by (sink, checkpoint, subtask).
pub trait NativeTwoPhaseCommit {
    /// Puts every row written since the last prepare or commit into one transaction and
    /// prepares it for checkpoint `checkpoint`: once this returns, the transaction survives
    /// a crash of Weir or of the external system until committed or rolled back.
    fn prepare(&mut self, checkpoint: u64, subtask: u32) -> ExecResult<()>;
    /// Commits the transaction prepared for `checkpoint`. Idempotent: a transaction already
    /// committed (e.g. before a crash) is not an error; one that was never prepared is.
    fn commit_prepared(&mut self, checkpoint: u64, subtask: u32) -> ExecResult<()>;
    /// Restore (or first start): rolls back every prepared transaction of this sink and
    /// `subtask` whose checkpoint is not in `keep` (they belong to checkpoints that never
    /// completed). Those in `keep` stay prepared, for [`Self::commit_prepared`].
    fn recover(&mut self, keep: &[u64], subtask: u32) -> ExecResult<()>;
}

/// Builds the source of a `Read` node.
pub fn build_source(
    node: &str,
    spec: &SourceSpec,
    schema: &Schema,
    bad_records: &BadRecordPolicy,
) -> ExecResult<Box<dyn Source>> {
    Ok(match spec {
        SourceSpec::Create { elements } => Box::new(create::CreateSource::new(
            node,
            elements,
            schema,
            bad_records,
        )?),
        SourceSpec::Files {
            path,
            format,
            watch,
            poll_interval,
            rate,
        } => pacing::paced(
            Box::new(file_source::FileSource::new(
                node,
                path,
                *format,
                *watch,
                *poll_interval,
                schema,
                bad_records,
            )?),
            node,
            *rate,
        )?,
        SourceSpec::Sequence {
            start,
            count,
            rate,
            partitions,
        } => Box::new(sequence::SequenceSource::new(
            schema,
            *start,
            *count,
            *rate,
            *partitions,
        )?),
        SourceSpec::Memory { name } => Box::new(MemorySource::open(name, schema, bad_records)?),
        SourceSpec::Nexmark {
            table,
            events,
            partitions,
            first_event_id,
            base_time,
            rate,
            out_of_order_group_size,
            realtime,
        } => Box::new(NexmarkSource::new(
            schema,
            &NexmarkSettings {
                table: *table,
                events: *events,
                partitions: *partitions,
                first_event_id: *first_event_id,
                base_time: *base_time,
                rate: *rate,
                out_of_order_group_size: *out_of_order_group_size,
                realtime: *realtime,
            },
        )?),
        SourceSpec::Parquet { path } => Box::new(ParquetSource::new(node, path, schema)?),
        SourceSpec::JetStream(spec) => pacing::paced(
            Box::new(JetStreamSource::new(node, spec, schema, bad_records)?),
            node,
            spec.rate,
        )?,
    })
}

/// Builds the sink of a `Write` node whose input has user schema `schema`.
pub fn build_sink(
    node: &str,
    spec: &SinkSpec,
    metadata: SinkMetadata,
    schema: &Schema,
    windowed: bool,
    registry: &SinkRegistry,
) -> ExecResult<Box<dyn Sink>> {
    Ok(match spec {
        SinkSpec::Files { path, format } => Box::new(file_sink::FileSink::new(
            node, path, *format, metadata, schema, windowed,
        )?),
        SinkSpec::Stdout => Box::new(stdout::StdoutSink::new(metadata, schema, windowed)),
        SinkSpec::Memory { name, guarantee } => Box::new(
            registry
                .sink(name)
                .with_guarantee(guarantee.unwrap_or(DeliveryGuarantee::Transactional)),
        ),
        SinkSpec::Meter { name } => Box::new(MeterSink::open(name)),
        SinkSpec::Parquet { path } => {
            Box::new(ParquetSink::new(node, path, metadata, schema, windowed)?)
        }
        SinkSpec::Postgres(spec) => {
            Box::new(PostgresSink::new(node, spec, metadata, schema, windowed)?)
        }
        SinkSpec::JetStream {
            url,
            subject,
            job,
            create_stream,
        } => Box::new(JetStreamSink::new(
            node,
            url,
            subject,
            job.as_deref(),
            create_stream.as_ref(),
            metadata,
            schema,
            windowed,
        )?),
    })
}
