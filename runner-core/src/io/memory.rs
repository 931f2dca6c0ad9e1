//! In-memory sources and sinks for tests and the conformance harness.
//!
//! Sources are registered by name in a process-wide registry ([`MemorySource::register`])
//! so a pipeline can refer to them by name; sinks record into a [`SinkRegistry`] the runner
//! is given, with each row's metadata, the processing time it was written and whether it
//! has been committed.

use super::{RecordCollector, Sink, Source, SourcePoll};
use crate::batch::{self, ElementMeta};
use crate::convert;
use crate::error::{ExecError, ExecResult};
use arrow::record_batch::RecordBatch;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use weir_model::io::{BadRecordPolicy, DeliveryGuarantee};
use weir_model::{time::Timestamp, udf::Row, Schema};

/// One row written to a memory sink.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRow {
    /// The user columns.
    pub row: Row,
    /// Event time, window and pane.
    pub meta: ElementMeta,
    /// Processing time at which the row was written.
    pub visible_at: Timestamp,
    /// Whether the write has been committed.
    pub committed: bool,
}

/// Rows of each named memory sink, shared by every sink handle made from it (clones share
/// the same storage).
#[derive(Debug, Clone, Default)]
pub struct SinkRegistry {
    inner: Arc<Mutex<BTreeMap<String, Vec<RecordedRow>>>>,
}

impl SinkRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        SinkRegistry::default()
    }

    /// A sink writing into the rows recorded under `name` (created empty if new).
    pub fn sink(&self, name: &str) -> MemorySink {
        self.lock().entry(name.to_string()).or_default();
        MemorySink {
            name: name.to_string(),
            registry: self.clone(),
            uncommitted: Vec::new(),
            guarantee: DeliveryGuarantee::Transactional,
        }
    }

    /// Every row written under `name`, in write order, committed or not.
    pub fn rows(&self, name: &str) -> Vec<RecordedRow> {
        self.lock().get(name).cloned().unwrap_or_default()
    }

    /// The committed rows written under `name`, in write order.
    pub fn committed_rows(&self, name: &str) -> Vec<RecordedRow> {
        self.lock()
            .get(name)
            .map(|rows| rows.iter().filter(|r| r.committed).cloned().collect())
            .unwrap_or_default()
    }

    /// Names of every sink made from this registry.
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Vec<RecordedRow>>> {
        // A panic while holding the lock cannot leave the vectors half-updated in a way that
        // matters to readers, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A transactional sink recording rows in a [`SinkRegistry`]: rows are visible (uncommitted)
/// at write time and marked committed by [`Sink::commit`].
#[derive(Debug)]
pub struct MemorySink {
    name: String,
    registry: SinkRegistry,
    /// Positions in the registry's row list of this handle's rows not yet committed.
    uncommitted: Vec<usize>,
    /// What the sink claims on replay; an at-least-once sink has no transaction, so its
    /// rows are visible (committed) as soon as they are written.
    guarantee: DeliveryGuarantee,
}

impl MemorySink {
    /// The same sink claiming `guarantee`.
    pub fn with_guarantee(mut self, guarantee: DeliveryGuarantee) -> Self {
        self.guarantee = guarantee;
        self
    }

    /// Forgets the rows written since the last commit: they stay recorded, uncommitted
    /// (an aborted transaction's rows were visible to nobody but the harness).
    pub fn abort(&mut self) {
        self.uncommitted.clear();
    }
}

impl Sink for MemorySink {
    fn write(&mut self, batch: &RecordBatch, now: Timestamp) -> ExecResult<()> {
        let rows = convert::batch_to_rows(batch);
        let metas = batch::metas(batch);
        let mut all = self.registry.lock();
        let recorded = all.entry(self.name.clone()).or_default();
        let at_once = self.guarantee == DeliveryGuarantee::AtLeastOnce;
        for (row, meta) in rows.into_iter().zip(metas) {
            if !at_once {
                self.uncommitted.push(recorded.len());
            }
            recorded.push(RecordedRow {
                row,
                meta,
                visible_at: now,
                committed: at_once,
            });
        }
        Ok(())
    }

    fn commit(&mut self, _epoch: u64, _now: Timestamp) -> ExecResult<()> {
        let mut all = self.registry.lock();
        let recorded = all.entry(self.name.clone()).or_default();
        for i in self.uncommitted.drain(..) {
            if let Some(r) = recorded.get_mut(i) {
                r.committed = true;
            }
        }
        Ok(())
    }

    fn guarantee(&self) -> DeliveryGuarantee {
        self.guarantee
    }
}

type SourceRows = Arc<Mutex<Vec<Vec<Row>>>>;

fn sources() -> MutexGuard<'static, HashMap<String, SourceRows>> {
    static SOURCES: OnceLock<Mutex<HashMap<String, SourceRows>>> = OnceLock::new();
    SOURCES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// A bounded source over rows registered by name, one list of rows per partition.
///
/// Rows appended with [`MemorySource::append`] before a partition has ended are read too.
/// A row that does not fit the schema fails the run (`memory:<name>[p]`, row number).
/// Position: the index of the next row of the partition.
#[derive(Debug)]
pub struct MemorySource {
    name: String,
    rows: SourceRows,
    schema: Schema,
    bad_records: BadRecordPolicy,
    next: Vec<usize>,
}

impl MemorySource {
    /// Registers (or replaces) the rows of the memory source `name`.
    pub fn register(name: &str, partitions: Vec<Vec<Row>>) {
        sources().insert(name.to_string(), Arc::new(Mutex::new(partitions)));
    }

    /// Appends rows to a partition of a registered source (growing the partition list if
    /// needed). Sources already open see them only for partitions they know of.
    pub fn append(name: &str, partition: u32, rows: Vec<Row>) {
        let shared = sources().entry(name.to_string()).or_default().clone();
        let mut parts = shared.lock().unwrap_or_else(|p| p.into_inner());
        if parts.len() <= partition as usize {
            parts.resize(partition as usize + 1, Vec::new());
        }
        parts[partition as usize].extend(rows);
    }

    /// Removes a registered source.
    pub fn unregister(name: &str) {
        sources().remove(name);
    }

    /// Opens the source registered as `name`, reading rows of `schema`; rows that do not fit
    /// fail the run or go to the dead-letter output per `bad_records`.
    pub fn open(name: &str, schema: &Schema, bad_records: &BadRecordPolicy) -> ExecResult<Self> {
        let all = sources();
        let rows = all.get(name).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = all.keys().map(String::as_str).collect();
            known.sort_unstable();
            ExecError::io(
                format!("opening memory source `{name}`"),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "no such source is registered (registered: {})",
                        known.join(", ")
                    ),
                ),
            )
        })?;
        let partitions = rows.lock().unwrap_or_else(|p| p.into_inner()).len().max(1);
        Ok(MemorySource {
            name: name.to_string(),
            rows,
            schema: schema.clone(),
            bad_records: bad_records.clone(),
            next: vec![0; partitions],
        })
    }

    fn slot(&self, partition: u32) -> ExecResult<usize> {
        let p = partition as usize;
        if p < self.next.len() {
            Ok(p)
        } else {
            Err(ExecError::Internal(format!(
                "memory source `{}` has no partition {partition}",
                self.name
            )))
        }
    }
}

impl Source for MemorySource {
    fn partitions(&self) -> u32 {
        self.next.len() as u32
    }

    fn poll(&mut self, partition: u32, max_rows: usize, _now: Timestamp) -> ExecResult<SourcePoll> {
        let p = self.slot(partition)?;
        let parts = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let available = parts.get(p).map(Vec::as_slice).unwrap_or_default();
        let start = self.next[p];
        if start >= available.len() {
            return Ok(SourcePoll::Ended);
        }
        let end = available.len().min(start + max_rows.max(1));
        let source = format!("memory:{}[{partition}]", self.name);
        let mut records = RecordCollector::new(&self.schema, &self.bad_records);
        for (i, row) in available[start..end].iter().enumerate() {
            records.row(row.clone(), &source, (start + i + 1) as u64, || {
                serde_json::Value::Object(row.clone()).to_string()
            })?;
        }
        let (data, dead_letters) = records.finish()?;
        drop(parts);
        self.next[p] = end;
        Ok(SourcePoll::Batch { data, dead_letters })
    }

    fn position(&self, partition: u32) -> serde_json::Value {
        serde_json::Value::from(self.next.get(partition as usize).copied().unwrap_or(0) as u64)
    }

    fn seek(&mut self, partition: u32, position: &serde_json::Value) -> ExecResult<()> {
        let p = self.slot(partition)?;
        self.next[p] = position.as_u64().ok_or_else(|| {
            ExecError::Internal(format!(
                "`{position}` is not a position of memory source `{}`",
                self.name
            ))
        })? as usize;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_model::window::{PaneInfo, PaneTiming, Window};
    use weir_model::{DataType, Field};

    fn row(v: serde_json::Value) -> Row {
        v.as_object().unwrap().clone()
    }

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("k", DataType::String),
            Field::new("v", DataType::Int64),
        ])
    }

    #[test]
    fn memory_source_reads_each_partition_and_seeks() {
        MemorySource::register(
            "memory-test-source",
            vec![
                vec![
                    row(json!({"k": "a", "v": 1})),
                    row(json!({"k": "b", "v": 2})),
                ],
                vec![row(json!({"k": "c"}))],
            ],
        );
        let mut s =
            MemorySource::open("memory-test-source", &schema(), &BadRecordPolicy::Fail).unwrap();
        assert_eq!(s.partitions(), 2);
        let SourcePoll::Batch { data, .. } = s.poll(0, 1, 0).unwrap() else {
            panic!()
        };
        assert_eq!(
            convert::batch_to_rows(&data),
            vec![row(json!({"k": "a", "v": 1}))]
        );
        assert_eq!(s.position(0), json!(1));
        let SourcePoll::Batch { data, .. } = s.poll(1, 10, 0).unwrap() else {
            panic!()
        };
        assert_eq!(
            convert::batch_to_rows(&data),
            vec![row(json!({"k": "c", "v": null}))]
        );
        assert!(matches!(s.poll(1, 10, 0).unwrap(), SourcePoll::Ended));
        MemorySource::append(
            "memory-test-source",
            0,
            vec![row(json!({"k": "d", "v": 4}))],
        );
        let SourcePoll::Batch { data, .. } = s.poll(0, 10, 0).unwrap() else {
            panic!()
        };
        assert_eq!(data.num_rows(), 2);
        s.seek(0, &json!(0)).unwrap();
        let SourcePoll::Batch { data, .. } = s.poll(0, 10, 0).unwrap() else {
            panic!()
        };
        assert_eq!(data.num_rows(), 3);
        MemorySource::unregister("memory-test-source");
        assert!(
            MemorySource::open("memory-test-source", &schema(), &BadRecordPolicy::Fail)
                .unwrap_err()
                .to_string()
                .contains("memory-test-source")
        );
    }

    #[test]
    fn sink_records_rows_with_metadata_and_commits() {
        let registry = SinkRegistry::new();
        let mut sink = registry.sink("out");
        let pane = PaneInfo {
            timing: PaneTiming::OnTime,
            index: 0,
            is_first: true,
            is_last: false,
        };
        let meta = ElementMeta {
            ts: 59_999,
            window: Window::new(0, 60_000),
            pane,
        };
        let b =
            convert::rows_to_batch(&[row(json!({"k": "a", "v": 1}))], &[meta], &schema()).unwrap();
        sink.write(&b, 100).unwrap();
        assert_eq!(registry.rows("out").len(), 1);
        assert!(registry.committed_rows("out").is_empty());
        sink.commit(0, 150).unwrap();
        let b2 = convert::rows_to_batch(
            &[row(json!({"k": "b", "v": 2}))],
            &[ElementMeta::default()],
            &schema(),
        )
        .unwrap();
        sink.write(&b2, 200).unwrap();
        let all = registry.rows("out");
        assert_eq!(
            all[0],
            RecordedRow {
                row: row(json!({"k": "a", "v": 1})),
                meta,
                visible_at: 100,
                committed: true
            }
        );
        assert!(!all[1].committed);
        assert_eq!(all[1].visible_at, 200);
        assert_eq!(registry.committed_rows("out").len(), 1);
        assert_eq!(registry.names(), vec!["out".to_string()]);
    }
}
