//! Scheduled runs ([`weir_runner_core::schedule::ScheduledRunner`]): the conformance suite's schedules on a manual
//! processing-time clock starting at 0, executed as Spark Structured Streaming would.
//!
//! - **Input**: every `Read` transform the schedule delivers to reads an in-memory source of
//!   its own (registered under a name unique to the run, so concurrent runs never share
//!   rows). A delivery appends rows to its partition; the next batch sees them. The source
//!   keeps every row ever delivered, so a restart replays logged ranges exactly. A partition
//!   that has been read to its end is *pending*, not ended, until `end_input` names its
//!   source (or all): then the query's end-of-input batch raises the watermark to the maximum.
//! - **Trigger ticks** (setting `trigger`): with an interval `d > 0`, batches start at
//!   multiples of `d`; at the same instant arrivals (every step at that instant) come before
//!   the tick. Before the steps at time `t`, the due ticks `< t` run; after them, the tick at
//!   `t` if `t` is a multiple of `d`. A tick runs at most one batch (new data, a no-data batch
//!   the query's rules warrant, or the end-of-input batch), as Spark's trigger executor runs
//!   one batch per trigger. With `d = 0` (Spark's default, "as fast as possible") batches run
//!   back to back after the steps of each instant until the query has nothing to do. After
//!   the last step, ticks continue until one runs no batch (the query is idle or finished).
//!   A (re)started query runs its first tick at once, as Spark's does on start.
//! - **`available-now`**: each instant with steps is one launch of the job (as a scheduler
//!   would launch a `Trigger.AvailableNow` query): the query opens from its checkpoint,
//!   processes everything available in as many batches as it takes, with the no-data and
//!   end-of-input batches that follow, then stops. **`once`**: the same launches, but each runs
//!   a single batch (Spark's `Trigger.Once`: no follow-up no-data batch in the same launch,
//!   and never the end-of-input batch, so `end_input` is listed in
//!   [`RunRecord::ignored_steps`], as it is with `end_of_input: false`).
//! - **Batches take no manual time**: a batch's timestamp is its tick's time, and rows it
//!   writes become visible then. A batch re-run after a restart is logged with its original
//!   timestamp (Spark re-runs it identically), but its rows become visible at the restart's
//!   tick: their `visible_at` says so.
//! - **Crashes**: `after-sink-write-before-commit-log` and `mid-batch` stop the next batch
//!   that runs at that point ([`StopPoint::AfterSinkCommit`], [`StopPoint::MidBatch`]) and
//!   drop the query (process death: rows written but not committed stay recorded as
//!   uncommitted). `after-records: N` counts input rows of completed batches since the run
//!   started: the batch during which the N-th is processed stops mid-batch; if N rows were
//!   already processed when the step comes, the process dies at once, between batches
//!   (batches take no manual time, so no batch is in flight at a step's instant). The
//!   continuous runner's points (`between-pre-commit-and-commit`, `during-snapshot`) do not
//!   exist here and are listed in [`RunRecord::ignored_steps`]. Until `restart`, nothing runs;
//!   deliveries accumulate in the source, as a broker keeps them.
//! - **Restart** reopens the query from the run's checkpoint directory (a temporary
//!   directory per run), optionally at another parallelism; recovery re-runs an uncommitted
//!   batch with its logged offsets, watermark and timestamp, and exactly-once sinks skip a
//!   batch they already committed. A restart of a running query stops and reopens it; a crash
//!   step that never fired before it is listed in [`RunRecord::ignored_steps`].
//! - **Record**: every memory sink's rows; a watermark event each time an `AssignTimestamps`
//!   operator's watermark (node = its name) or the global watermark (node `global`) changes,
//!   at the time of the batch whose end computed it (the end-of-input batch runs at the
//!   maximum watermark: a `global` event at the maximum); rows dropped as late and dead
//!   letters per transform, summed over completed batches (a batch re-run after a crash
//!   counts once).

use crate::error::MicroBatchError;
use crate::progress::{BatchKind, BatchProgress};
use crate::query::{MicroBatchQuery, QueryConfig, StopPoint};
use crate::trigger::{Clock, ManualClock, QueryTrigger};
use crate::watermark::WatermarkPolicy;
use crate::MicroBatchRunner;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use weir_model::io::{BadRecordPolicy, SourceSpec};
use weir_model::plan::Plan;
use weir_model::runner::{RunError, Runner};
use weir_model::time::{Duration, Timestamp, MAX_TIMESTAMP};
use weir_model::transform::Transform;
use weir_model::udf::Row;
use weir_model::Schema;
use weir_runner_core::io::{MemorySource, RecordCollector, SinkRegistry, Source, SourcePoll};
use weir_runner_core::schedule::{Action, CrashPoint, RunRecord, Schedule, Step, WatermarkEvent};
use weir_runner_core::{ExecError, ExecResult};

/// Settings a scheduled run accepts (the scenario's `runners: microbatch:` block).
pub const SCHEDULE_SETTINGS: &[(&str, &str)] = &[
    ("trigger", "`<duration>` (processing-time interval; a bare number is milliseconds; default 0 = back to back), `available-now` or `once`"),
    ("no_data_batches", "true (default) or false"),
    ("watermark_policy", "min (default) or max"),
    ("parallelism", "shards of keyed stages (default 1 in scheduled runs, so row order is deterministic; results do not depend on it)"),
    ("output_mode", "`complete`, or absent (append/update follow from each aggregation's trigger)"),
    ("max_rows_per_partition", "rows read per source partition per batch at most (default 1000000)"),
    ("end_of_input", "true (default): once every source has ended, a last batch at the maximum watermark"),
];

/// The global watermark's node name in [`RunRecord::watermarks`].
pub const GLOBAL_WATERMARK_NODE: &str = "global";

/// Batches one instant may run back to back before the run is declared stuck.
const MAX_BATCHES_PER_INSTANT: u32 = 100_000;
/// Ticks a run may take in all.
const MAX_TICKS: u64 = 10_000_000;

fn options_error(message: String) -> RunError {
    Box::new(MicroBatchError::Options(message))
}

/// The query configuration a scheduled run's settings ask for.
pub fn schedule_config(settings: &BTreeMap<String, String>) -> Result<QueryConfig, RunError> {
    let mut c = QueryConfig {
        parallelism: 1,
        ..QueryConfig::default()
    };
    let boolean = |k: &str, v: &str| match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(options_error(format!(
            "setting `{k}`: `{v}` is not true or false"
        ))),
    };
    let positive = |k: &str, v: &str| match v.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(options_error(format!(
            "setting `{k}`: `{v}` is not a positive whole number"
        ))),
    };
    for (k, v) in settings {
        let v = v.trim();
        match k.as_str() {
            "trigger" => c.trigger = parse_trigger(v)?,
            "no_data_batches" => c.no_data_batches = boolean(k, v)?,
            "watermark_policy" => {
                c.watermark_policy = WatermarkPolicy::parse(v)
                    .map_err(|e| options_error(format!("setting `watermark_policy`: {e}")))?
            }
            "parallelism" => c.parallelism = positive(k, v)?,
            "max_rows_per_partition" => c.max_rows_per_partition = positive(k, v)?,
            "end_of_input" => c.end_of_input = boolean(k, v)?,
            "output_mode" => match v {
                "complete" => c.complete_output = true,
                "append" | "update" => {}
                other => {
                    return Err(options_error(format!(
                        "setting `output_mode`: `{other}` is not `complete` (append and update follow from each aggregation's trigger)"
                    )))
                }
            },
            other => {
                let known: Vec<&str> = SCHEDULE_SETTINGS.iter().map(|(k, _)| *k).collect();
                return Err(options_error(format!(
                    "no scheduled-run setting `{other}` (settings: {})",
                    known.join(", ")
                )));
            }
        }
    }
    Ok(c)
}

fn parse_trigger(v: &str) -> Result<QueryTrigger, RunError> {
    match v {
        "available-now" => return Ok(QueryTrigger::AvailableNow),
        "once" => return Ok(QueryTrigger::Once),
        _ => {}
    }
    let d = v.strip_prefix("processing-time=").unwrap_or(v);
    let ms = if !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()) {
        d.parse::<i64>().ok()
    } else {
        Duration::parse(d).ok().map(|d| d.millis())
    };
    match ms {
        Some(ms) if ms >= 0 => Ok(QueryTrigger::ProcessingTime(ms)),
        _ => Err(options_error(format!(
            "setting `trigger`: `{v}` is not a duration (`500ms`, `1s`, milliseconds), `available-now` or `once`"
        ))),
    }
}

/// Rows delivered to one fed `Read` so far, per partition, each with its 1-based delivery
/// number over the whole source (the model names a malformed record by it).
#[derive(Debug, Default)]
struct FeedRows {
    parts: Vec<Vec<(u64, Row)>>,
    delivered: u64,
    ended: bool,
}

/// One fed `Read`: the memory source registered for it (the graph opens it, then the run
/// replaces it with a [`FedSource`] at the same positions), its schema and rows.
struct Feed {
    registered: String,
    schema: Schema,
    bad_records: BadRecordPolicy,
    rows: Arc<Mutex<FeedRows>>,
}

impl Feed {
    fn lock(&self) -> MutexGuard<'_, FeedRows> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The source a fed `Read` reads: every row delivered so far stays (a restart replays logged
/// ranges); a partition read to its end is pending until the schedule ends the source.
/// Malformed rows are named as the model names them: the `Read`'s name and the delivery
/// number.
struct FedSource {
    node: String,
    schema: Schema,
    bad_records: BadRecordPolicy,
    rows: Arc<Mutex<FeedRows>>,
    next: Vec<usize>,
}

impl Source for FedSource {
    fn partitions(&self) -> u32 {
        self.next.len() as u32
    }
    fn poll(&mut self, partition: u32, max_rows: usize, _now: Timestamp) -> ExecResult<SourcePoll> {
        let p = partition as usize;
        let Some(start) = self.next.get(p).copied() else {
            return Err(ExecError::Internal(format!(
                "`{}` has no partition {partition}",
                self.node
            )));
        };
        let feed = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let available = feed.parts.get(p).map(Vec::as_slice).unwrap_or_default();
        if start >= available.len() {
            return Ok(if feed.ended {
                SourcePoll::Ended
            } else {
                SourcePoll::Pending
            });
        }
        let end = available.len().min(start + max_rows.max(1));
        let mut records = RecordCollector::new(&self.schema, &self.bad_records);
        for (n, row) in &available[start..end] {
            records.row(row.clone(), &self.node, *n, || {
                serde_json::Value::Object(row.clone()).to_string()
            })?;
        }
        drop(feed);
        let (data, dead_letters) = records.finish()?;
        self.next[p] = end;
        Ok(SourcePoll::Batch { data, dead_letters })
    }
    fn position(&self, partition: u32) -> serde_json::Value {
        serde_json::Value::from(self.next.get(partition as usize).copied().unwrap_or(0) as u64)
    }
    fn seek(&mut self, partition: u32, position: &serde_json::Value) -> ExecResult<()> {
        let slot = self.next.get_mut(partition as usize).ok_or_else(|| {
            ExecError::Internal(format!("`{}` has no partition {partition}", self.node))
        })?;
        *slot = position.as_u64().ok_or_else(|| {
            ExecError::Internal(format!("`{position}` is not a position of `{}`", self.node))
        })? as usize;
        Ok(())
    }
}

/// The run's fed `Read`s by name. Their registered memory sources are removed when dropped.
struct Feeds {
    by_node: BTreeMap<String, Feed>,
}

impl Drop for Feeds {
    fn drop(&mut self) {
        for f in self.by_node.values() {
            MemorySource::unregister(&f.registered);
        }
    }
}

/// The plan with every `Read` the schedule feeds reading an (empty) memory source registered
/// for this run, so the graph builds; the run then swaps in [`FedSource`]s.
fn feed_plan(plan: &Plan, schedule: &Schedule) -> Result<(Plan, Feeds), RunError> {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let run = RUNS.fetch_add(1, Ordering::SeqCst);
    let parts = schedule.partitions();
    for source in parts.keys() {
        match plan.pipeline.node(source).map(|n| &n.transform) {
            Some(Transform::Read { .. }) => {}
            Some(_) => {
                return Err(options_error(format!(
                    "the schedule delivers to `{source}`, which is not a Read transform"
                )))
            }
            None => {
                return Err(options_error(format!(
                    "the schedule delivers to `{source}`, which is not a transform of the pipeline"
                )))
            }
        }
    }
    let mut plan = plan.clone();
    let mut feeds = Feeds {
        by_node: BTreeMap::new(),
    };
    for node in &mut plan.pipeline.transforms {
        let Some(n) = parts.get(&node.name) else {
            continue;
        };
        if let Transform::Read {
            source,
            schema,
            bad_records,
        } = &mut node.transform
        {
            let registered = format!(
                "weir-microbatch-schedule-{}-{run}-{}",
                std::process::id(),
                node.name
            );
            MemorySource::register(&registered, vec![Vec::new(); *n as usize]);
            *source = SourceSpec::Memory {
                name: registered.clone(),
            };
            feeds.by_node.insert(
                node.name.clone(),
                Feed {
                    registered,
                    schema: schema.clone(),
                    bad_records: bad_records.clone(),
                    rows: Arc::new(Mutex::new(FeedRows {
                        parts: vec![Vec::new(); *n as usize],
                        delivered: 0,
                        ended: false,
                    })),
                },
            );
        }
    }
    Ok((plan, feeds))
}

/// Runs `plan` on `schedule` (see the module documentation for the rules).
pub(crate) fn run_schedule(
    runner: &MicroBatchRunner,
    plan: &Plan,
    schedule: &Schedule,
    settings: &BTreeMap<String, String>,
) -> Result<RunRecord, RunError> {
    schedule.check_order().map_err(options_error)?;
    runner.check(plan)?;
    let config = schedule_config(settings)?;
    let (fed, feeds) = feed_plan(plan, schedule)?;
    let checkpoint = tempfile::Builder::new()
        .prefix("weir-microbatch-schedule-")
        .tempdir()
        .map_err(|e| MicroBatchError::io("creating a checkpoint directory", e))?;
    let sinks = SinkRegistry::new();
    let mut driver = Driver {
        plan: &fed,
        config: QueryConfig {
            checkpoint_dir: Some(checkpoint.path().to_path_buf()),
            ..config
        },
        clock: ManualClock::new(0),
        sinks: sinks.clone(),
        feeds: &feeds,
        query: None,
        down: false,
        armed: None,
        records: 0,
        last_watermarks: BTreeMap::new(),
        attempt: 0,
        rerun_rows: Vec::new(),
        record: RunRecord::default(),
        ticks: 0,
        opens: 0,
        #[cfg(feature = "mutations")]
        mutation: runner.mutation,
    };
    driver.run(schedule)?;
    let Driver {
        mut record,
        rerun_rows,
        ..
    } = driver;
    record.sinks = sinks
        .names()
        .into_iter()
        .map(|n| {
            let rows = sinks.rows(&n);
            (n, rows)
        })
        .collect();
    for (sink, from, to, at) in rerun_rows {
        if let Some(rows) = record.sinks.get_mut(&sink) {
            for r in rows.iter_mut().take(to).skip(from) {
                r.visible_at = at;
            }
        }
    }
    drop(feeds);
    drop(checkpoint);
    Ok(record)
}

/// A crash step waiting for its batch.
#[derive(Debug, Clone)]
struct Armed {
    at: Timestamp,
    point: CrashPoint,
}

struct Driver<'a> {
    plan: &'a Plan,
    config: QueryConfig,
    clock: ManualClock,
    sinks: SinkRegistry,
    feeds: &'a Feeds,
    /// The running query (`None` while down, and between launches of available-now/once).
    query: Option<MicroBatchQuery>,
    /// Crashed and not restarted yet.
    down: bool,
    armed: Option<Armed>,
    /// Input rows of completed batches since the run started.
    records: u64,
    last_watermarks: BTreeMap<String, Timestamp>,
    /// Restarts so far (the watermark is restored from the offset log, so it stays monotone
    /// across attempts).
    attempt: u32,
    /// Rows written by re-run batches: (sink, from, to, processing time they became visible).
    rerun_rows: Vec<(String, usize, usize, Timestamp)>,
    record: RunRecord,
    ticks: u64,
    /// Query objects opened so far (restarts and available-now/once launches open new ones).
    opens: u32,
    #[cfg(feature = "mutations")]
    mutation: Option<crate::watermark::Mutation>,
}

impl Driver<'_> {
    fn run(&mut self, schedule: &Schedule) -> Result<(), RunError> {
        let trigger = self.config.trigger;
        let interval = match trigger {
            QueryTrigger::ProcessingTime(d) => Some(d),
            _ => None,
        };
        if interval.is_some() {
            self.open()?;
        }
        let mut next_tick: Timestamp = 0;
        let mut steps = schedule.steps.iter().peekable();
        while let Some(first) = steps.next() {
            let t = first.at;
            let mut group: Vec<&Step> = vec![first];
            while let Some(s) = steps.next_if(|s| s.at == t) {
                group.push(s);
            }
            if let Some(d) = interval.filter(|d| *d > 0) {
                while next_tick < t {
                    if self.down || self.query.is_none() {
                        // Nothing runs while down: on to the first tick at or after `t`.
                        next_tick = (t + d - 1).div_euclid(d) * d;
                        break;
                    }
                    self.tick(next_tick)?;
                    next_tick += d;
                }
            }
            self.clock.set(self.clock.now().max(t));
            let mut restarted = false;
            for step in group {
                restarted |= self.apply(step)?;
            }
            match trigger {
                QueryTrigger::ProcessingTime(0) => {
                    self.drain(t)?;
                }
                QueryTrigger::ProcessingTime(d) => {
                    if next_tick == t {
                        self.tick(t)?;
                        next_tick += d;
                    } else if restarted {
                        self.tick(t)?;
                    }
                }
                QueryTrigger::AvailableNow | QueryTrigger::Once => {
                    if !self.down {
                        self.open()?;
                        if trigger == QueryTrigger::Once {
                            self.tick(t)?;
                        } else {
                            self.drain(t)?;
                        }
                        self.stop_launch()?;
                    }
                }
            }
        }
        if let Some(d) = interval.filter(|d| *d > 0) {
            while self.query.is_some() && !self.down {
                if !self.tick(next_tick)? {
                    break;
                }
                next_tick += d;
            }
        }
        if let Some(a) = self.armed.take() {
            self.record.ignored_steps.push(format!(
                "crash at {} ms ({}): no batch ran after it, so it never fired",
                a.at,
                point_name(&a.point)
            ));
        }
        self.stop_launch()
    }

    /// Opens the query from the checkpoint, wraps its fed sources and arms a pending crash.
    fn open(&mut self) -> Result<(), RunError> {
        let mut q = MicroBatchQuery::open(
            self.plan,
            self.config.clone(),
            Clock::Manual(self.clock.clone()),
            self.sinks.clone(),
        )?;
        let feeds = &self.feeds.by_node;
        q.wrap_sources(|name, inner| match feeds.get(name) {
            Some(feed) => Box::new(FedSource {
                node: name.to_string(),
                schema: feed.schema.clone(),
                bad_records: feed.bad_records.clone(),
                rows: feed.rows.clone(),
                next: (0..inner.partitions())
                    .map(|p| inner.position(p).as_u64().unwrap_or(0) as usize)
                    .collect(),
            }),
            None => inner,
        });
        #[cfg(feature = "mutations")]
        q.set_mutation(self.mutation);
        self.query = Some(q);
        self.opens += 1;
        if self.armed.is_some() {
            self.arm_query()?;
        }
        Ok(())
    }

    /// The query stops (everything it ran committed). Assertions (`AssertEqual`) check what
    /// they received when the query finished, if one query object ran the whole schedule:
    /// what they received is not part of the checkpoint, so a reopened query cannot judge.
    fn stop_launch(&mut self) -> Result<(), RunError> {
        if let Some(mut q) = self.query.take() {
            if q.is_finished() && self.opens == 1 {
                q.close()?;
            }
        }
        Ok(())
    }

    /// Sets the stop point of the armed crash on the running query, or crashes at once for
    /// `after-records: N` when N rows were already processed.
    fn arm_query(&mut self) -> Result<(), RunError> {
        let (Some(q), Some(a)) = (self.query.as_mut(), self.armed.as_ref()) else {
            return Ok(());
        };
        let next = q.next_batch_id();
        match a.point {
            CrashPoint::MidBatch => q.stop_at(StopPoint::MidBatch(next)),
            CrashPoint::AfterSinkWriteBeforeCommitLog => {
                q.stop_at(StopPoint::AfterSinkCommit(next))
            }
            CrashPoint::AfterRecords(n) if n <= self.records => {
                // The N-th row was processed before this step: the process dies now, between
                // batches (no batch is in flight at a step's instant).
                self.armed = None;
                self.crash();
            }
            CrashPoint::AfterRecords(n) => {
                q.stop_at(StopPoint::AtRecord(q.rows_processed() + (n - self.records)))
            }
            CrashPoint::BetweenPreCommitAndCommit | CrashPoint::DuringSnapshot => {}
        }
        Ok(())
    }

    fn crash(&mut self) {
        self.query = None;
        self.down = true;
    }

    /// Applies one step; returns whether it restarted the query.
    fn apply(&mut self, step: &Step) -> Result<bool, RunError> {
        match &step.action {
            Action::Deliver {
                source,
                partition,
                rows,
            } => {
                let feed = self.feeds.by_node.get(source).ok_or_else(|| {
                    options_error(format!(
                        "the schedule delivers to `{source}`, which is not a Read transform"
                    ))
                })?;
                let mut f = feed.lock();
                let first = f.delivered + 1;
                f.delivered += rows.len() as u64;
                let count = f.parts.len();
                let Some(part) = f.parts.get_mut(*partition as usize) else {
                    return Err(options_error(format!(
                        "the schedule delivers to partition {partition} of `{source}`, which has {count} partitions"
                    )));
                };
                part.extend((first..).zip(rows.iter().cloned()));
            }
            Action::EndInput { source }
                if self.config.trigger == QueryTrigger::Once || !self.config.end_of_input =>
            {
                self.end_sources(source.as_deref())?;
                self.record.input_left_open = true;
                self.record.ignored_steps.push(format!(
                    "end of input at {} ms: {}, so the watermark is never raised to the maximum and windows still open stay open",
                    step.at,
                    if self.config.trigger == QueryTrigger::Once {
                        "the `once` trigger never runs the end-of-input batch (Spark's Trigger.Once runs one batch per launch)"
                    } else {
                        "`end_of_input` is false: no end-of-input batch runs"
                    }
                ));
            }
            Action::EndInput { source } => self.end_sources(source.as_deref())?,
            Action::Advance => {}
            Action::CorruptCheckpoint => {
                if !self.corrupt_newest_offsets()? {
                    self.record.ignored_steps.push(format!(
                        "corrupt checkpoint at {} ms: the offset log has no entry to damage",
                        step.at
                    ));
                }
            }
            Action::Crash { point } => match point {
                CrashPoint::BetweenPreCommitAndCommit | CrashPoint::DuringSnapshot => {
                    self.record.ignored_steps.push(format!(
                        "crash at {} ms ({}): the micro-batch runner has no such point (it has no checkpoint barriers or two-phase commit); it crashes only mid-batch, after a sink write before the commit log, or after N records",
                        step.at,
                        point_name(point)
                    ));
                }
                _ if self.down => self.record.ignored_steps.push(format!(
                    "crash at {} ms ({}): the query is already down",
                    step.at,
                    point_name(point)
                )),
                _ => {
                    if let Some(a) = self.armed.take() {
                        self.record.ignored_steps.push(format!(
                            "crash at {} ms ({}): replaced by the crash at {} ms before any batch ran",
                            a.at,
                            point_name(&a.point),
                            step.at
                        ));
                        if let Some(q) = self.query.as_mut() {
                            q.clear_stop_points();
                        }
                    }
                    self.armed = Some(Armed {
                        at: step.at,
                        point: point.clone(),
                    });
                    self.arm_query()?;
                }
            },
            Action::Restart { parallelism } => {
                if let Some(p) = parallelism {
                    if *p == 0 {
                        return Err(options_error(format!(
                            "restart at {} ms: parallelism must be at least 1",
                            step.at
                        )));
                    }
                    self.config.parallelism = *p;
                }
                if let Some(a) = self.armed.take() {
                    self.record.ignored_steps.push(format!(
                        "crash at {} ms ({}): no batch ran before the restart at {} ms, so it never fired (the restart stopped the running query and reopened it from its checkpoint)",
                        a.at,
                        point_name(&a.point),
                        step.at
                    ));
                }
                self.attempt += 1;
                self.query = None;
                self.down = false;
                if matches!(self.config.trigger, QueryTrigger::ProcessingTime(_)) {
                    self.open()?;
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Overwrites the newest offset-log entry with garbage (a disk fault); whether there was
    /// one.
    fn corrupt_newest_offsets(&self) -> Result<bool, RunError> {
        let Some(dir) = &self.config.checkpoint_dir else {
            return Ok(false);
        };
        let offsets = dir.join("offsets");
        let newest = std::fs::read_dir(&offsets)
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().parse::<u64>().ok()?;
                Some((n, e.path()))
            })
            .max_by_key(|(n, _)| *n);
        let Some((_, path)) = newest else {
            return Ok(false);
        };
        std::fs::write(&path, b"v1\n{\"batch\": \x00 damaged")
            .map_err(|e| -> RunError { format!("damaging `{}`: {e}", path.display()).into() })?;
        Ok(true)
    }

    /// Marks `source` (every fed source when `None`) as ended.
    fn end_sources(&mut self, source: Option<&str>) -> Result<(), RunError> {
        match source {
            None => self
                .feeds
                .by_node
                .values()
                .for_each(|f| f.lock().ended = true),
            Some(name) => match self.feeds.by_node.get(name) {
                Some(f) => f.lock().ended = true,
                None => match self.plan.pipeline.node(name).map(|n| &n.transform) {
                    Some(Transform::Read { .. }) => {}
                    _ => {
                        return Err(options_error(format!(
                        "the schedule ends `{name}`, which is not a Read transform of the pipeline"
                    )))
                    }
                },
            },
        }
        Ok(())
    }

    /// Runs batches back to back at `t` until the query has nothing to do.
    fn drain(&mut self, t: Timestamp) -> Result<(), RunError> {
        let mut n = 0;
        while self.tick(t)? {
            n += 1;
            if n >= MAX_BATCHES_PER_INSTANT {
                return Err(options_error(format!(
                    "more than {MAX_BATCHES_PER_INSTANT} batches at {t} ms: the query never becomes idle"
                )));
            }
        }
        Ok(())
    }

    /// One trigger tick at `t`: at most one batch. Returns whether a batch completed.
    fn tick(&mut self, t: Timestamp) -> Result<bool, RunError> {
        self.ticks += 1;
        if self.ticks > MAX_TICKS {
            return Err(options_error(format!(
                "more than {MAX_TICKS} trigger ticks: use a longer trigger interval"
            )));
        }
        let Some(q) = self.query.as_mut() else {
            return Ok(false);
        };
        if self.down {
            return Ok(false);
        }
        self.clock.set(self.clock.now().max(t));
        let before: Option<BTreeMap<String, usize>> = q.rerun_pending().then(|| {
            self.sinks
                .names()
                .into_iter()
                .map(|n| {
                    let len = self.sinks.rows(&n).len();
                    (n, len)
                })
                .collect()
        });
        match q.run_next_batch() {
            Ok(Some(p)) => {
                if let Some(before) = before {
                    for n in self.sinks.names() {
                        let len = self.sinks.rows(&n).len();
                        let from = before.get(&n).copied().unwrap_or(0);
                        if len > from {
                            self.rerun_rows.push((n, from, len, self.clock.now()));
                        }
                    }
                }
                self.account(&p);
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(MicroBatchError::Stopped(_)) => {
                self.armed = None;
                self.crash();
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Counters and watermark changes of a completed batch.
    fn account(&mut self, p: &BatchProgress) {
        self.records += p.num_input_rows;
        for (node, m) in &p.nodes {
            if m.rows_dropped_by_watermark > 0 {
                *self.record.late_dropped.entry(node.clone()).or_default() +=
                    m.rows_dropped_by_watermark;
            }
            if m.dead_letters > 0 {
                *self.record.dead_letters.entry(node.clone()).or_default() += m.dead_letters;
            }
        }
        let now = self.clock.now();
        let Some(q) = self.query.as_ref() else {
            return;
        };
        let mut changes: Vec<(String, Timestamp)> = q
            .operator_watermarks()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if p.kind == BatchKind::EndOfInput {
            changes.push((GLOBAL_WATERMARK_NODE.to_string(), MAX_TIMESTAMP));
        } else if let Some(g) = q.watermark() {
            changes.push((GLOBAL_WATERMARK_NODE.to_string(), g));
        }
        for (node, wm) in changes {
            let last = self.last_watermarks.get(&node).copied();
            if last.is_none_or(|l| wm > l) {
                self.last_watermarks.insert(node.clone(), wm);
                self.record.watermarks.push(WatermarkEvent {
                    processing_time: now,
                    node,
                    watermark: wm,
                    attempt: self.attempt,
                });
            }
        }
    }
}

fn point_name(p: &CrashPoint) -> String {
    match p {
        CrashPoint::AfterSinkWriteBeforeCommitLog => "after-sink-write-before-commit-log".into(),
        CrashPoint::MidBatch => "mid-batch".into(),
        CrashPoint::BetweenPreCommitAndCommit => "between-pre-commit-and-commit".into(),
        CrashPoint::DuringSnapshot => "during-snapshot".into(),
        CrashPoint::AfterRecords(n) => format!("after-records: {n}"),
    }
}
