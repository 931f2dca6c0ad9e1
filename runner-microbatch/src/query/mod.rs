//! The streaming query: Spark's `MicroBatchExecution` loop. Each batch
//! 1. reads the rows each source partition has beyond the last batch (its offset range),
//! 2. decides whether to run: new rows, or (no-data batch) a watermark that advanced while
//!    stateful operators hold state, or the end of a bounded input,
//! 3. writes `offsets/N` (ranges, batch watermark, late-filter watermark, batch timestamp),
//! 4. runs the stages ([`crate::exec`]),
//! 5. commits state version N+1, commits the sinks with batch id N, computes the next
//!    watermark and writes `commits/N`.
//!
//! On open, an uncommitted batch found in the logs is re-run with exactly its logged offsets,
//! watermark and timestamp. Stop points simulate crashes so tests can exercise recovery.

mod recovery;

use crate::error::{MicroBatchError, Result};
use crate::exec::{BatchContext, Graph, SourceData};
use crate::log::{write_atomic, CommitEntry, MetadataLog, OffsetEntry, PartitionRange};
use crate::progress::{BatchKind, BatchProgress, PhaseDurations, StateOperatorProgress};
use crate::state::{StateStore, StateStoreConfig};
use crate::trigger::{next_batch_time, Clock, QueryTrigger};
use crate::watermark::{
    eviction_watermark, late_filter_watermark, WatermarkPolicy, WatermarkTracker,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;
use weir_model::io::SinkSpec;
use weir_model::plan::Plan;
use weir_model::runner::RunReport;
use weir_model::time::{Timestamp, MAX_TIMESTAMP};
use weir_model::transform::Transform;
use weir_runner_core::io::{SinkRegistry, Source, SourcePoll};

/// Rows asked of a partition per poll.
const POLL_ROWS: usize = 8_192;

/// A named point at which a query in deterministic mode stops, as if it crashed there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopPoint {
    /// Batch N's rows have been processed and written to the sinks (uncommitted); nothing
    /// has been committed.
    MidBatch(u64),
    /// Batch N's state and sinks have committed, but `commits/N` is not written.
    AfterSinkCommit(u64),
    /// After this many batches have fully committed in this run.
    AfterBatches(u64),
    /// Mid-batch (as [`StopPoint::MidBatch`]) in the batch during which this query object
    /// processes its N-th input row (rows of batches it completed, counted from 1).
    AtRecord(u64),
}

impl std::fmt::Display for StopPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopPoint::MidBatch(n) => write!(f, "mid-batch {n} (rows written, nothing committed)"),
            StopPoint::AfterSinkCommit(n) => {
                write!(f, "batch {n} after the sink commit, before commits/{n}")
            }
            StopPoint::AfterBatches(n) => write!(f, "after {n} batches"),
            StopPoint::AtRecord(n) => write!(
                f,
                "the batch processing input row {n} (rows written, nothing committed)"
            ),
        }
    }
}

/// Everything that decides how a query runs.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// When batches run.
    pub trigger: QueryTrigger,
    /// Run batches without data when the watermark advanced (default on).
    pub no_data_batches: bool,
    /// Global watermark over several watermark-defining operators.
    pub watermark_policy: WatermarkPolicy,
    /// Where the offset/commit logs and state live (`None`: no checkpoint, no recovery).
    pub checkpoint_dir: Option<PathBuf>,
    /// Worker threads for partition tasks.
    pub parallelism: usize,
    /// Rows read per source partition per batch at most (Spark's `maxOffsetsPerTrigger`, per
    /// partition).
    pub max_rows_per_partition: usize,
    /// State store snapshots and retention.
    pub state: StateStoreConfig,
    /// When every source has ended, run a last batch at the maximum watermark so every
    /// window closes (the model's end of a bounded input).
    pub end_of_input: bool,
    /// Append one JSON line per batch to this file.
    pub progress_json: Option<PathBuf>,
    /// Print a progress line per batch on stderr.
    pub progress_to_stderr: bool,
    /// Stop after this many batches (wall-clock runs of unbounded inputs).
    pub max_batches: Option<u64>,
    /// Sinks treated as at-least-once whatever they declare: a re-run batch is written to
    /// them again (conformance tests use this to show what such a sink sees).
    pub at_least_once_sinks: BTreeSet<String>,
    /// Spark's complete output mode (the whole result table at every batch end), for
    /// global-window aggregations with a repeated trigger and accumulating panes.
    pub complete_output: bool,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            trigger: QueryTrigger::default(),
            no_data_batches: true,
            watermark_policy: WatermarkPolicy::Min,
            checkpoint_dir: None,
            parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            max_rows_per_partition: 1_000_000,
            state: StateStoreConfig::default(),
            end_of_input: true,
            progress_json: None,
            progress_to_stderr: false,
            max_batches: None,
            at_least_once_sinks: BTreeSet::new(),
            complete_output: false,
        }
    }
}

struct Checkpoint {
    dir: PathBuf,
    offsets: MetadataLog<OffsetEntry>,
    commits: MetadataLog<CommitEntry>,
    stores: BTreeMap<String, StateStore>,
}

impl Checkpoint {
    fn sink_ledger(&self, sink: &str) -> PathBuf {
        self.dir.join("sinks").join(sink)
    }
}

/// A running micro-batch query.
pub struct MicroBatchQuery {
    graph: Graph,
    config: QueryConfig,
    clock: Clock,
    sinks: SinkRegistry,
    checkpoint: Option<Checkpoint>,
    tracker: WatermarkTracker,
    delays: BTreeMap<String, i64>,
    next_batch_id: u64,
    /// The batch watermark of the last batch run: the next batch's late-filter watermark.
    previous_batch_watermark: Option<Timestamp>,
    /// An uncommitted batch found on open, to run again first.
    rerun: Option<OffsetEntry>,
    /// Sinks that already committed the batch being re-run.
    rerun_skip_sinks: BTreeSet<String>,
    end_of_input_done: bool,
    stop_points: Vec<StopPoint>,
    batches_run: u64,
    last_batch_start: Option<Instant>,
    progress: Vec<BatchProgress>,
    /// A file sink writing one file (not restartable), if the plan has one.
    single_file_sink: Option<String>,
    /// Input rows of the batches this query object completed.
    rows_processed: u64,
    /// A deliberate bug for mutation testing (the `mutations` feature).
    #[cfg(feature = "mutations")]
    mutation: Option<crate::watermark::Mutation>,
}

impl MicroBatchQuery {
    /// Opens the query: builds the stages and, with a checkpoint, recovers from its logs.
    pub fn open(
        plan: &Plan,
        config: QueryConfig,
        clock: Clock,
        sinks: SinkRegistry,
    ) -> Result<Self> {
        crate::translate::check_translatable(plan)?;
        let mut graph = Graph::new(plan, sinks.clone(), config.parallelism)?;
        if config.complete_output {
            crate::translate::check_complete_mode(plan)?;
            graph.set_complete_mode();
        }
        let delays = plan
            .pipeline
            .transforms
            .iter()
            .filter_map(|n| match &n.transform {
                Transform::AssignTimestamps { watermark, .. } => {
                    Some((n.name.clone(), watermark.max_out_of_orderness.millis()))
                }
                _ => None,
            })
            .collect();
        let checkpoint = config.checkpoint_dir.as_ref().map(|dir| Checkpoint {
            dir: dir.clone(),
            offsets: MetadataLog::new(dir.join("offsets")),
            commits: MetadataLog::new(dir.join("commits")),
            stores: graph
                .stateful_stages()
                .into_iter()
                .map(|s| {
                    let store = StateStore::new(&dir.join("state"), &s, config.state);
                    (s, store)
                })
                .collect(),
        });
        let mut query = MicroBatchQuery {
            graph,
            tracker: WatermarkTracker::new(config.watermark_policy),
            config,
            clock,
            sinks,
            checkpoint,
            delays,
            next_batch_id: 0,
            previous_batch_watermark: None,
            rerun: None,
            rerun_skip_sinks: BTreeSet::new(),
            end_of_input_done: false,
            stop_points: Vec::new(),
            batches_run: 0,
            last_batch_start: None,
            progress: Vec::new(),
            single_file_sink: plan
                .pipeline
                .transforms
                .iter()
                .find_map(|n| match &n.transform {
                    Transform::Write {
                        sink: SinkSpec::Files { path, .. },
                        ..
                    } if std::path::Path::new(path).extension().is_some() => Some(n.name.clone()),
                    _ => None,
                }),
            rows_processed: 0,
            #[cfg(feature = "mutations")]
            mutation: None,
        };
        query.recover()?;
        Ok(query)
    }

    /// Stops the query at `point` (deterministic mode): the batch method that reaches it
    /// returns [`MicroBatchError::Stopped`].
    pub fn stop_at(&mut self, point: StopPoint) {
        self.stop_points.push(point);
    }

    /// Makes this query run with a deliberate bug (mutation testing only).
    #[cfg(feature = "mutations")]
    #[doc(hidden)]
    pub fn set_mutation(&mut self, mutation: Option<crate::watermark::Mutation>) {
        self.mutation = mutation;
    }

    /// Replaces every source with what `wrap` makes of it (its position kept): the scheduled
    /// runner gates the end of its in-memory sources this way.
    pub fn wrap_sources(&mut self, mut wrap: impl FnMut(&str, Box<dyn Source>) -> Box<dyn Source>) {
        for (name, s) in self.graph.sources_mut() {
            s.wrap(name, &mut wrap);
        }
    }

    /// Whether the next batch is the re-run of a batch found uncommitted on open.
    pub fn rerun_pending(&self) -> bool {
        self.rerun.is_some()
    }

    /// Ends the query: assertions check what they received.
    pub fn close(&mut self) -> Result<()> {
        self.graph.close(self.clock.now())
    }

    /// Input rows (including dead letters) of the batches this query object completed.
    pub fn rows_processed(&self) -> u64 {
        self.rows_processed
    }

    /// Per watermark-defining operator, its watermark computed at the end of the last batch.
    pub fn operator_watermarks(&self) -> &BTreeMap<String, Timestamp> {
        self.tracker.operators()
    }

    /// Forgets every stop point set with [`MicroBatchQuery::stop_at`].
    pub fn clear_stop_points(&mut self) {
        self.stop_points.clear();
    }

    fn check_stop(&self, point: StopPoint) -> Result<()> {
        if self.stop_points.contains(&point) {
            return Err(MicroBatchError::Stopped(point));
        }
        Ok(())
    }

    /// The id the next batch gets.
    pub fn next_batch_id(&self) -> u64 {
        self.next_batch_id
    }

    /// The global watermark computed at the end of the last batch.
    pub fn watermark(&self) -> Option<Timestamp> {
        self.tracker.global()
    }

    /// Whether the bounded input has ended and its last batch has run.
    pub fn is_finished(&self) -> bool {
        self.end_of_input_done
    }

    /// Progress of every batch run by this process so far.
    pub fn progress(&self) -> &[BatchProgress] {
        &self.progress
    }

    /// The in-memory sinks' registry.
    pub fn sinks(&self) -> &SinkRegistry {
        &self.sinks
    }

    fn all_sources_ended(&mut self) -> bool {
        self.graph
            .sources_mut()
            .all(|(_, s)| s.ended.iter().all(|e| *e))
    }

    /// Reads what each partition has beyond its position, up to the per-batch limit.
    fn read_new_data(
        &mut self,
        now: Timestamp,
    ) -> Result<(SourceData, BTreeMap<String, Vec<PartitionRange>>, u64)> {
        let limit = self.config.max_rows_per_partition.max(1);
        let mut data = SourceData::new();
        let mut ranges = BTreeMap::new();
        let mut total = 0;
        for (name, reads) in self.graph.read_sources(limit, POLL_ROWS, now)? {
            let mut parts = Vec::with_capacity(reads.len());
            for (p, read) in reads.into_iter().enumerate() {
                total += read.rows;
                parts.push(PartitionRange {
                    start: read.start,
                    end: read.end,
                    rows: read.rows,
                });
                if !read.batches.is_empty() {
                    let node = data.entry(name.clone()).or_default();
                    node.extend(read.batches.into_iter().map(|(b, d)| (p as u32, b, d)));
                }
            }
            ranges.insert(name, parts);
        }
        Ok((data, ranges, total))
    }

    /// Reads exactly the logged ranges again (re-run of an uncommitted batch).
    fn replay_ranges(&mut self, entry: &OffsetEntry, now: Timestamp) -> Result<(SourceData, u64)> {
        let mut data = SourceData::new();
        let mut total = 0;
        for (name, s) in self.graph.sources_mut() {
            let Some(parts) = entry.sources.get(name) else {
                continue;
            };
            // The logged rows were available once: a rate-paced source must not hold them
            // back (and paces again afterwards, whether the replay worked or not).
            s.set_replaying(true);
            let replayed = replay_source(name, s, parts, entry.batch_id, now, &mut data);
            s.set_replaying(false);
            total += replayed?;
        }
        Ok((data, total))
    }

    /// Plans and runs the next batch, if there is one to run now. `None`: nothing to do
    /// (no new rows, the watermark has not advanced, the input has not ended).
    pub fn run_next_batch(&mut self) -> Result<Option<BatchProgress>> {
        let started = Instant::now();
        if let Some(entry) = self.rerun.take() {
            let (data, rows) = self.replay_ranges(&entry, entry.batch_timestamp)?;
            let read_ms = ms(started);
            let kind = if entry.end_of_input {
                BatchKind::EndOfInput
            } else if rows > 0 {
                BatchKind::Data
            } else {
                BatchKind::NoData
            };
            let skip = std::mem::take(&mut self.rerun_skip_sinks);
            return self
                .run_batch(entry, data, rows, kind, true, skip, started, read_ms, 0.0)
                .map(Some);
        }
        if self.end_of_input_done {
            return Ok(None);
        }
        let now = self.clock.now();
        let (data, ranges, rows) = self.read_new_data(now)?;
        let read_ms = ms(started);
        let watermark = self.tracker.global();
        let advanced = watermark.is_some() && watermark > self.previous_batch_watermark;
        #[allow(unused_mut)]
        let mut late_filter = late_filter_watermark(self.previous_batch_watermark);
        let (kind, batch_watermark) = if rows > 0 {
            (BatchKind::Data, watermark)
        } else if self.config.no_data_batches
            && ((advanced && self.graph.has_stateful_stages())
                || self.graph.processing_time_due(now))
        {
            (BatchKind::NoData, watermark)
        } else if self.config.end_of_input
            && self.all_sources_ended()
            && self.config.trigger != QueryTrigger::Once
        {
            (BatchKind::EndOfInput, Some(MAX_TIMESTAMP))
        } else {
            return Ok(None);
        };
        #[cfg(feature = "mutations")]
        if self.mutation == Some(crate::watermark::Mutation::LateFilterUsesCurrentWatermark) {
            late_filter = batch_watermark;
        }
        let entry = OffsetEntry {
            batch_id: self.next_batch_id,
            batch_timestamp: now,
            batch_watermark,
            late_filter_watermark: late_filter,
            operator_watermarks: self.tracker.operators().clone(),
            sources: ranges,
            end_of_input: kind == BatchKind::EndOfInput,
        };
        let log_started = Instant::now();
        if let Some(c) = &self.checkpoint {
            c.offsets.add(entry.batch_id, &entry)?;
        }
        let log_ms = ms(log_started);
        self.run_batch(
            entry,
            data,
            rows,
            kind,
            false,
            BTreeSet::new(),
            started,
            read_ms,
            log_ms,
        )
        .map(Some)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_batch(
        &mut self,
        entry: OffsetEntry,
        data: SourceData,
        rows: u64,
        kind: BatchKind,
        rerun: bool,
        skip_sinks: BTreeSet<String>,
        started: Instant,
        read_ms: f64,
        log_ms: f64,
    ) -> Result<BatchProgress> {
        let id = entry.batch_id;
        let ctx = BatchContext {
            batch_id: id,
            batch_timestamp: entry.batch_timestamp,
            late_filter_watermark: entry.late_filter_watermark,
            eviction_watermark: eviction_watermark(entry.batch_watermark),
        };
        let process_started = Instant::now();
        let result = self.graph.run_batch(data, &ctx, &skip_sinks)?;
        let process_ms = ms(process_started);
        self.check_stop(StopPoint::MidBatch(id))?;
        let through = self.rows_processed + rows;
        if let Some(n) = self.stop_points.iter().find_map(|p| match p {
            StopPoint::AtRecord(n) if *n > self.rows_processed && *n <= through => Some(*n),
            _ => None,
        }) {
            return Err(MicroBatchError::Stopped(StopPoint::AtRecord(n)));
        }
        let commit_started = Instant::now();
        // State version N+1 is committed by batch N.
        let stores = self
            .checkpoint
            .as_ref()
            .map(|c| c.stores.clone())
            .unwrap_or_default();
        let changes = self
            .graph
            .take_state_changes(|name| stores.get(name).is_some_and(|s| s.snapshot_due(id + 1)))?;
        for (name, changes) in changes {
            if let Some(store) = stores.get(&name) {
                store.commit(id + 1, &changes)?;
            }
        }
        let committed = self
            .graph
            .commit_sinks(id, entry.batch_timestamp, &skip_sinks)?;
        if let Some(c) = &self.checkpoint {
            for sink in committed {
                write_atomic(&c.sink_ledger(&sink), id.to_string().as_bytes())?;
            }
        }
        self.check_stop(StopPoint::AfterSinkCommit(id))?;
        let next_watermark = self
            .tracker
            .update_at_batch_end(&result.max_event_times, &self.delays);
        if let Some(c) = &self.checkpoint {
            let commit = CommitEntry {
                batch_id: id,
                next_batch_watermark: next_watermark,
                operator_watermarks: self.tracker.operators().clone(),
            };
            c.commits.add(id, &commit)?;
            let retain = self.config.state.retain.max(1);
            if id + 1 > retain {
                c.offsets.purge_before(id + 1 - retain)?;
                c.commits.purge_before(id + 1 - retain)?;
            }
        }
        let commit_ms = ms(commit_started);
        self.previous_batch_watermark = entry.batch_watermark;
        self.next_batch_id = id + 1;
        if kind == BatchKind::EndOfInput {
            self.end_of_input_done = true;
        }
        self.batches_run += 1;
        self.rows_processed += rows;
        let total_ms = ms(started);
        let since_last = self
            .last_batch_start
            .map(|t| started.duration_since(t).as_secs_f64())
            .unwrap_or(0.0);
        self.last_batch_start = Some(started);
        let state_rows = self.graph.state_rows();
        let progress = BatchProgress {
            batch_id: id,
            kind,
            rerun,
            timestamp: entry.batch_timestamp,
            num_input_rows: rows,
            input_rows_per_second: rate(rows, since_last),
            processed_rows_per_second: rate(rows, total_ms / 1000.0),
            duration_ms: PhaseDurations {
                read_ms,
                offset_log_ms: log_ms,
                process_ms,
                commit_ms,
                total_ms,
            },
            watermark: entry.batch_watermark,
            late_filter_watermark: entry.late_filter_watermark,
            next_watermark,
            state_operators: state_rows
                .iter()
                .map(|(name, n)| StateOperatorProgress {
                    name: name.clone(),
                    num_rows_total: *n,
                    memory_used_bytes: result.metrics.get(name).map_or(0, |m| m.state_bytes),
                    num_rows_dropped_by_watermark: result
                        .metrics
                        .get(name)
                        .map_or(0, |m| m.rows_dropped_by_watermark),
                })
                .collect(),
            sources: entry.sources.clone(),
            nodes: result.metrics,
        };
        self.report_progress(&progress)?;
        self.progress.push(progress.clone());
        self.check_stop(StopPoint::AfterBatches(self.batches_run))?;
        Ok(progress)
    }

    fn report_progress(&self, p: &BatchProgress) -> Result<()> {
        if self.config.progress_to_stderr {
            eprintln!("{}", p.line());
        }
        if let Some(path) = &self.config.progress_json {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| MicroBatchError::io(format!("opening {}", path.display()), e))?;
            let line = serde_json::to_string(p)
                .map_err(|e| MicroBatchError::Options(format!("progress: {e}")))?;
            writeln!(f, "{line}")
                .map_err(|e| MicroBatchError::io(format!("writing {}", path.display()), e))?;
        }
        Ok(())
    }

    /// Runs batches as the trigger says until the query is done: `once` after one batch,
    /// `available-now` when nothing is left, a processing-time trigger when the bounded
    /// input has ended (or after `max_batches`; on a manual clock, also when no batch is due).
    /// Then checks assertions.
    pub fn run_to_completion(&mut self) -> Result<()> {
        match self.config.trigger {
            QueryTrigger::Once => {
                self.run_next_batch()?;
            }
            QueryTrigger::AvailableNow => {
                while self.run_next_batch()?.is_some() && !self.max_batches_reached() {}
            }
            QueryTrigger::ProcessingTime(interval) => loop {
                let start = self.clock.now();
                let ran = self.run_next_batch()?;
                if self.end_of_input_done || self.max_batches_reached() {
                    break;
                }
                // On a manual clock nothing arrives while this call waits (time moves only when
                // the caller moves it): with nothing to run, the query stops instead of
                // waiting forever.
                if ran.is_none() && matches!(self.clock, Clock::Manual(_)) {
                    break;
                }
                let mut next = next_batch_time(start, self.clock.now(), interval);
                if ran.is_none() && interval == 0 {
                    // Nothing arrived: poll again shortly instead of spinning.
                    next = self.clock.now() + 100;
                }
                self.clock.wait_until(next);
            },
        }
        self.graph.close(self.clock.now())
    }

    fn max_batches_reached(&self) -> bool {
        self.config
            .max_batches
            .is_some_and(|m| self.batches_run >= m)
    }

    /// What the run did, per node.
    pub fn report(&self) -> RunReport {
        let mut report = RunReport::default();
        let sinks: BTreeSet<String> = self.graph.sinks().into_iter().collect();
        for (name, m) in self.graph.totals() {
            if sinks.contains(&name) {
                report.rows_written.insert(name.clone(), m.rows_written);
            }
            if m.rows_dropped_by_watermark > 0 {
                report
                    .late_dropped
                    .insert(name.clone(), m.rows_dropped_by_watermark);
            }
            if m.dead_letters > 0 {
                report.dead_letters.insert(name.clone(), m.dead_letters);
            }
        }
        report
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn rate(rows: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        rows as f64 / secs
    } else {
        0.0
    }
}

/// Reads the logged `parts` of source `name` again into `data`; returns the rows read.
fn replay_source(
    name: &str,
    source: &mut crate::exec::SourceNode,
    parts: &[PartitionRange],
    batch_id: u64,
    now: Timestamp,
    data: &mut SourceData,
) -> Result<u64> {
    let mut total = 0;
    for (p, range) in parts.iter().enumerate() {
        source.seek(p as u32, &range.start)?;
        let mut rows = 0u64;
        while rows < range.rows {
            let want = ((range.rows - rows) as usize).min(POLL_ROWS);
            match source.reader(p as u32).poll(p as u32, want, now)? {
                SourcePoll::Batch {
                    data: b,
                    dead_letters,
                } => {
                    rows +=
                        (b.num_rows() + dead_letters.as_ref().map_or(0, |d| d.num_rows())) as u64;
                    data.entry(name.to_string())
                        .or_default()
                        .push((p as u32, b, dead_letters));
                }
                SourcePoll::Pending | SourcePoll::Ended => break,
            }
        }
        if rows != range.rows || source.position(p as u32) != range.end {
            return Err(MicroBatchError::Options(format!(
                "source `{name}` partition {p} cannot replay batch {batch_id}: logged {} rows ending at {}, read {rows} ending at {}",
                range.rows,
                range.end,
                source.position(p as u32)
            )));
        }
        total += rows;
    }
    Ok(total)
}
