//! Generated rows: `value` = `start`, `start + 1`, ..., optionally rate-limited.

use super::pacing::RatePacer;
use super::{Source, SourcePoll};
use crate::batch;
use crate::error::{ExecError, ExecResult};
use arrow::array::{new_null_array, ArrayRef, Int64Array};
use std::sync::Arc;
use weir_model::{time::Timestamp, DataType, Schema};

/// Generates `start..start+count` (unbounded without `count`) in the schema's first column
/// (int64; any further nullable columns are null), split over `partitions`: the value with
/// index `k = value - start` goes to partition `k % partitions`.
///
/// With `rate` (rows per second), the value with index `k` is due once
/// `rate * (now - first_poll) / 1000 > k - base`, where `first_poll` is the processing time of
/// the first poll (after creation or a seek) and `base` the smallest index not yet emitted
/// then. Which values are due depends only on `now`, never on the order partitions are
/// polled in. Position: the index `k` of the partition's next value.
#[derive(Debug)]
pub struct SequenceSource {
    schema: Schema,
    start: i64,
    count: Option<u64>,
    /// Per partition: how many of its values were emitted.
    emitted: Vec<u64>,
    /// Per partition: polled or sought by this instance. A runner may open the source once
    /// per reader, each reading some partitions: the rate clock starts from the partitions
    /// this instance reads, not from positions it never learns.
    used: Vec<bool>,
    /// Paces output to the target rate.
    pacer: RatePacer,
}

impl SequenceSource {
    /// A sequence source; fails when `partitions` is 0, `rate` is not positive or the first
    /// column is not int64.
    pub fn new(
        schema: &Schema,
        start: i64,
        count: Option<u64>,
        rate: Option<f64>,
        partitions: u32,
    ) -> ExecResult<Self> {
        let bad = |m: String| ExecError::transform("GenerateSequence", m);
        match schema.fields.first() {
            Some(f) if f.data_type == DataType::Int64 => {}
            Some(f) => {
                return Err(bad(format!(
                    "the value column `{}` must be int64, not {}",
                    f.name, f.data_type
                )))
            }
            None => return Err(bad("the schema needs an int64 value column".into())),
        }
        if let Some(f) = schema.fields.iter().skip(1).find(|f| !f.nullable) {
            return Err(bad(format!(
                "column `{}` cannot be generated and is not nullable",
                f.name
            )));
        }
        if partitions == 0 {
            return Err(bad("a sequence needs at least one partition".into()));
        }
        if let Some(r) = rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(bad(format!(
                    "the rate must be a positive number of rows per second, not {r}"
                )));
            }
        }
        Ok(SequenceSource {
            schema: schema.clone(),
            start,
            count,
            emitted: vec![0; partitions as usize],
            used: vec![false; partitions as usize],
            pacer: RatePacer::new(rate),
        })
    }

    fn parts(&self) -> u64 {
        self.emitted.len() as u64
    }

    /// Index of the next value of partition `p`.
    fn next_index(&self, p: usize) -> u64 {
        p as u64 + self.emitted[p] * self.parts()
    }

    fn ended(&self, p: usize) -> bool {
        self.count.is_some_and(|c| self.next_index(p) >= c)
    }
}

impl Source for SequenceSource {
    fn partitions(&self) -> u32 {
        self.emitted.len() as u32
    }

    fn poll(&mut self, partition: u32, max_rows: usize, now: Timestamp) -> ExecResult<SourcePoll> {
        let p = partition as usize;
        if p >= self.emitted.len() {
            return Err(ExecError::Internal(format!(
                "a sequence of {} partitions has no partition {p}",
                self.parts()
            )));
        }
        self.used[p] = true;
        let base = (0..self.emitted.len())
            .filter(|q| self.used[*q])
            .map(|q| self.next_index(q))
            .min()
            .unwrap_or(0);
        self.pacer.start(now, base);
        if self.ended(p) {
            return Ok(SourcePoll::Ended);
        }
        let limit = self.pacer.due(now).min(self.count.unwrap_or(u64::MAX));
        let first = self.next_index(p);
        if first >= limit {
            return Ok(SourcePoll::Pending);
        }
        // Indexes first, first + P, ... below `limit`.
        let available = (limit - first).div_ceil(self.parts());
        let n = available.min(max_rows.max(1) as u64);
        let step = self.parts() as i64;
        let first_value = self.start.wrapping_add(first as i64);
        let values =
            Int64Array::from_iter_values((0..n as i64).map(|j| first_value.wrapping_add(j * step)));
        let mut columns: Vec<ArrayRef> = vec![Arc::new(values)];
        columns.extend(
            self.schema
                .fields
                .iter()
                .skip(1)
                .map(|f| new_null_array(&f.data_type.to_arrow(), n as usize)),
        );
        let data = batch::with_default_meta(&self.schema, columns, n as usize)?;
        self.emitted[p] += n;
        Ok(SourcePoll::Batch {
            data,
            dead_letters: None,
        })
    }

    fn position(&self, partition: u32) -> serde_json::Value {
        let p = partition as usize;
        if p < self.emitted.len() {
            serde_json::Value::from(self.next_index(p))
        } else {
            serde_json::Value::Null
        }
    }

    fn seek(&mut self, partition: u32, position: &serde_json::Value) -> ExecResult<()> {
        let p = partition as usize;
        let parts = self.parts();
        // The partition's indexes are p, p + P, p + 2P, ...
        let index = position
            .as_u64()
            .filter(|k| p < self.emitted.len() && *k >= p as u64 && (*k - p as u64) % parts == 0)
            .ok_or_else(|| {
                ExecError::Internal(format!(
                    "`{position}` is not a position of sequence partition {partition}"
                ))
            })?;
        self.emitted[p] = (index - p as u64) / parts;
        self.used[p] = true;
        // The rate clock restarts from the restored positions at the next poll.
        self.pacer.reset();
        Ok(())
    }

    fn set_replaying(&mut self, replaying: bool) {
        self.pacer.set_replaying(replaying);
    }

    fn next_poll_time(&self) -> Option<Timestamp> {
        let next = (0..self.emitted.len())
            .filter(|p| !self.ended(*p))
            .map(|p| self.next_index(p))
            .min()?;
        self.pacer.due_time(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::batch_to_rows;
    use weir_model::Field;

    fn schema() -> Schema {
        Schema::new(vec![Field::new("value", DataType::Int64)])
    }

    fn values(poll: SourcePoll) -> Vec<i64> {
        match poll {
            SourcePoll::Batch { data, .. } => batch_to_rows(&data)
                .iter()
                .map(|r| r["value"].as_i64().unwrap())
                .collect(),
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    #[test]
    fn values_are_interleaved_over_partitions() {
        let mut s = SequenceSource::new(&schema(), 10, Some(7), None, 3).unwrap();
        assert_eq!(values(s.poll(0, 100, 0).unwrap()), vec![10, 13, 16]);
        assert_eq!(values(s.poll(1, 1, 0).unwrap()), vec![11]);
        assert_eq!(values(s.poll(1, 100, 0).unwrap()), vec![14]);
        assert_eq!(values(s.poll(2, 100, 0).unwrap()), vec![12, 15]);
        for p in 0..3 {
            assert!(matches!(s.poll(p, 100, 0).unwrap(), SourcePoll::Ended));
        }
        // Partition 1 emitted indexes 1 and 4; its next index is 7 (past the count).
        assert_eq!(s.position(1), serde_json::json!(7));
        s.seek(1, &serde_json::json!(4)).unwrap();
        assert_eq!(values(s.poll(1, 100, 0).unwrap()), vec![14]);
    }

    #[test]
    fn rate_limits_rows_by_processing_time() {
        // 2 rows per second over 2 partitions: index k is due at 500 * (k + 1) ms.
        let mut s = SequenceSource::new(&schema(), 0, None, Some(2.0), 2).unwrap();
        assert!(matches!(
            s.poll(0, 100, 1_000).unwrap(),
            SourcePoll::Pending
        ));
        assert_eq!(s.next_poll_time(), Some(1_500));
        assert!(matches!(
            s.poll(1, 100, 1_500).unwrap(),
            SourcePoll::Pending
        ));
        assert_eq!(values(s.poll(0, 100, 1_500).unwrap()), vec![0]);
        assert_eq!(s.next_poll_time(), Some(2_000));
        assert_eq!(values(s.poll(1, 100, 2_000).unwrap()), vec![1]);
        assert_eq!(values(s.poll(0, 100, 3_000).unwrap()), vec![2]);
        assert_eq!(values(s.poll(1, 100, 3_000).unwrap()), vec![3]);
        assert_eq!(s.next_poll_time(), Some(3_500));
        // max_rows caps a poll; the rest stays due.
        assert_eq!(values(s.poll(0, 1, 10_000).unwrap()), vec![4]);
        assert_eq!(
            values(s.poll(0, 100, 10_000).unwrap()),
            vec![6, 8, 10, 12, 14, 16]
        );
    }

    #[test]
    fn an_instance_reading_some_partitions_paces_from_their_positions() {
        // 1000 rows per second over 2 partitions; this instance reads partition 1 only,
        // restored at index 100 001: its clock starts there, not at partition 0's index 0.
        let mut s = SequenceSource::new(&schema(), 0, None, Some(1000.0), 2).unwrap();
        s.seek(1, &serde_json::json!(100_001)).unwrap();
        assert!(matches!(s.poll(1, 100, 0).unwrap(), SourcePoll::Pending));
        assert_eq!(values(s.poll(1, 100, 1_000).unwrap()).len(), 100);
    }

    #[test]
    fn rejects_a_non_int_value_column_and_zero_partitions() {
        let text = Schema::new(vec![Field::new("value", DataType::String)]);
        assert!(SequenceSource::new(&text, 0, None, None, 1)
            .unwrap_err()
            .to_string()
            .contains("int64"));
        assert!(SequenceSource::new(&schema(), 0, None, None, 0).is_err());
        assert!(SequenceSource::new(&schema(), 0, None, Some(0.0), 1).is_err());
        let mut s = SequenceSource::new(&schema(), 0, None, None, 3).unwrap();
        assert!(
            s.seek(1, &serde_json::json!(3)).is_err(),
            "index 3 belongs to partition 0"
        );
    }
}
