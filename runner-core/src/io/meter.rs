//! A benchmark sink: counts rows and records their end-to-end latency, keeping nothing else.
//!
//! Meters are registered by name in a process-wide registry, so a benchmark can read what
//! any runner's sinks measured without reaching into the runner. A row's latency is the
//! processing time at which it was written (visible in the sink, as a memory sink's
//! `visible_at`) minus its event time, in milliseconds, clamped at 0; rows without an event
//! time are counted but not timed. Each sink handle (one per parallel subtask) measures
//! locally and adds its figures to the registry when it commits and when it is dropped.

use super::Sink;
use crate::batch;
use crate::error::ExecResult;
use arrow::record_batch::RecordBatch;
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use weir_model::io::DeliveryGuarantee;
use weir_model::time::{Timestamp, MIN_TIMESTAMP};

/// The largest latency recorded exactly (one hour); larger ones count as this.
const MAX_LATENCY_MS: u64 = 3_600_000;

/// What a meter has measured so far.
#[derive(Debug, Clone)]
pub struct MeterReading {
    /// Rows written (committed or not).
    pub rows_written: u64,
    /// Rows whose write has been committed.
    pub rows_committed: u64,
    /// Latency of each timed row, in milliseconds.
    pub latency_ms: Histogram<u64>,
    /// Processing time of the first write.
    pub first_write: Option<Timestamp>,
    /// Processing time of the last write.
    pub last_write: Option<Timestamp>,
}

impl Default for MeterReading {
    fn default() -> Self {
        MeterReading {
            rows_written: 0,
            rows_committed: 0,
            latency_ms: new_histogram(),
            first_write: None,
            last_write: None,
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_max(MAX_LATENCY_MS, 3).expect("valid histogram bounds")
}

impl MeterReading {
    /// What the meter `name` has measured (empty when nothing was written to it).
    pub fn read(name: &str) -> MeterReading {
        meters().get(name).cloned().unwrap_or_default()
    }

    /// Forgets everything the meter `name` measured.
    pub fn reset(name: &str) {
        meters().remove(name);
    }

    fn add(&mut self, other: &MeterReading) {
        self.rows_written += other.rows_written;
        self.rows_committed += other.rows_committed;
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency_ms.add(&other.latency_ms);
        self.first_write = match (self.first_write, other.first_write) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_write = self.last_write.max(other.last_write);
    }
}

fn meters() -> MutexGuard<'static, HashMap<String, MeterReading>> {
    static METERS: OnceLock<Mutex<HashMap<String, MeterReading>>> = OnceLock::new();
    METERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// A sink handle of the meter `name`: measures locally, publishes on commit and drop.
#[derive(Debug)]
pub struct MeterSink {
    name: String,
    /// Figures not yet added to the registry.
    pending: MeterReading,
    /// Rows written since the last commit.
    uncommitted: u64,
}

impl MeterSink {
    /// A handle of the meter `name` (registered empty if new).
    pub fn open(name: &str) -> MeterSink {
        meters().entry(name.to_string()).or_default();
        MeterSink {
            name: name.to_string(),
            pending: MeterReading::default(),
            uncommitted: 0,
        }
    }

    fn publish(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        meters().entry(self.name.clone()).or_default().add(&pending);
    }
}

impl Sink for MeterSink {
    fn write(&mut self, batch: &RecordBatch, now: Timestamp) -> ExecResult<()> {
        let rows = batch.num_rows() as u64;
        if rows == 0 {
            return Ok(());
        }
        let (ts, _, _) = batch::ts_and_window(batch);
        for t in ts.values().iter().filter(|t| **t > MIN_TIMESTAMP) {
            let latency = now.saturating_sub(*t).clamp(0, MAX_LATENCY_MS as i64);
            self.pending.latency_ms.saturating_record(latency as u64);
        }
        self.pending.rows_written += rows;
        self.uncommitted += rows;
        self.pending.first_write = self.pending.first_write.or(Some(now));
        self.pending.last_write = Some(now);
        Ok(())
    }

    fn commit(&mut self, _epoch: u64, _now: Timestamp) -> ExecResult<()> {
        self.pending.rows_committed += std::mem::take(&mut self.uncommitted);
        self.publish();
        Ok(())
    }

    fn guarantee(&self) -> DeliveryGuarantee {
        // Keeps no rows (Flink's Nexmark blackhole sink): nothing to stage or replay safely.
        DeliveryGuarantee::AtLeastOnce
    }
}

impl Drop for MeterSink {
    fn drop(&mut self) {
        self.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::ElementMeta;
    use arrow::array::Int64Array;
    use std::sync::Arc;
    use weir_model::{DataType, Field, Schema};

    fn batch(event_times: &[Timestamp]) -> RecordBatch {
        let schema = Schema::new(vec![Field::new("v", DataType::Int64)]);
        let metas: Vec<ElementMeta> = event_times
            .iter()
            .map(|t| ElementMeta::unwindowed(*t))
            .collect();
        batch::with_meta(
            &schema,
            vec![Arc::new(Int64Array::from(vec![1; event_times.len()]))],
            &metas,
        )
        .unwrap()
    }

    #[test]
    fn a_meter_counts_rows_and_times_those_with_an_event_time() {
        MeterReading::reset("meter-test");
        let mut sink = MeterSink::open("meter-test");
        sink.write(&batch(&[90, 100, MIN_TIMESTAMP]), 100).unwrap();
        sink.commit(0, 100).unwrap();
        sink.write(&batch(&[150]), 200).unwrap();
        let after_commit = MeterReading::read("meter-test");
        assert_eq!(after_commit.rows_written, 3);
        assert_eq!(after_commit.rows_committed, 3);
        assert_eq!(after_commit.latency_ms.len(), 2);
        assert_eq!(after_commit.latency_ms.max(), 10);
        drop(sink);
        let after_drop = MeterReading::read("meter-test");
        assert_eq!(
            after_drop.rows_written, 4,
            "a dropped handle publishes its writes"
        );
        assert_eq!(after_drop.rows_committed, 3, "but not as committed");
        assert_eq!(after_drop.latency_ms.max(), 50);
        assert_eq!(after_drop.first_write, Some(100));
        assert_eq!(after_drop.last_write, Some(200));
        MeterReading::reset("meter-test");
    }
}
