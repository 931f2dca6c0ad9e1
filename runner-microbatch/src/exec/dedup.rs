//! `Deduplicate` as Spark's streaming `dropDuplicates`: the first row per key (and window)
//! passes, later ones are dropped; state holds the keys seen. Rows late at the late-filter
//! watermark (`window_end <= watermark`) are dropped and counted; keys of windows that end at
//! or before the eviction watermark are forgotten. In the global window nothing is late and
//! keys are kept for the query's life, as Spark does without a watermark. With a ttl a key
//! is forgotten once the eviction watermark passes its first row's time plus the ttl (the
//! model's event-time timer, like Spark's `dropDuplicatesWithinWatermark`).

use super::{BatchContext, StageOutput};
use crate::error::{MicroBatchError, Result};
use crate::state::{StateDelta, StateMap};
use crate::watermark::is_late;
use arrow::array::{ArrayRef, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use weir_model::time::{Duration, Timestamp, MAX_TIMESTAMP};
use weir_runner_core::batch;
use weir_runner_core::convert::value_at;
use weir_runner_core::ExecError;

/// The stage of a `Deduplicate` node without a ttl.
#[derive(Debug)]
pub struct DedupStage {
    node: String,
    keys: Vec<String>,
    /// Seen keys (JSON of key values and window) → the time after which the watermark
    /// forgets them (`window_end - 1`, or the first row's time + ttl if earlier).
    seen: BTreeMap<String, Timestamp>,
    ttl: Option<Duration>,
    dirty: BTreeSet<String>,
}

impl DedupStage {
    /// Deduplicates on `keys`, forgetting a key `ttl` after its first row when given.
    pub fn new(node: &str, keys: Vec<String>, ttl: Option<Duration>) -> Self {
        DedupStage {
            node: node.to_string(),
            keys,
            seen: BTreeMap::new(),
            ttl,
            dirty: BTreeSet::new(),
        }
    }

    /// Keeps the first row per key, drops late rows, then evicts.
    pub fn process(&mut self, inputs: Vec<RecordBatch>, ctx: &BatchContext) -> Result<StageOutput> {
        let mut out = StageOutput::default();
        for b in inputs {
            if b.num_rows() == 0 {
                continue;
            }
            let cols: Vec<ArrayRef> = self
                .keys
                .iter()
                .map(|k| {
                    b.column_by_name(k).cloned().ok_or_else(|| {
                        MicroBatchError::Exec(ExecError::Internal(format!(
                            "`{}`: no column `{k}`",
                            self.node
                        )))
                    })
                })
                .collect::<Result<_>>()?;
            let (ts, starts, ends) = batch::ts_and_window(&b);
            let mut keep = Vec::with_capacity(b.num_rows());
            for row in 0..b.num_rows() {
                let end = ends.value(row);
                if end < MAX_TIMESTAMP && is_late(end, ctx.late_filter_watermark) {
                    out.rows_dropped_by_watermark += 1;
                    keep.push(false);
                    continue;
                }
                let key: Vec<Value> = cols.iter().map(|c| value_at(c.as_ref(), row)).collect();
                let k = Value::Array(vec![
                    Value::Array(key),
                    starts.value(row).into(),
                    end.into(),
                ])
                .to_string();
                let first = !self.seen.contains_key(&k);
                if first {
                    let mut forget_after = end.saturating_sub(1);
                    if let Some(ttl) = self.ttl {
                        forget_after = forget_after.min(ts.value(row).saturating_add(ttl.millis()));
                    }
                    self.seen.insert(k.clone(), forget_after);
                    self.dirty.insert(k);
                }
                keep.push(first);
            }
            let kept =
                filter_record_batch(&b, &BooleanArray::from(keep)).map_err(ExecError::from)?;
            if kept.num_rows() > 0 {
                out.outputs.push((None, kept));
            }
        }
        // Forgotten once the watermark is past: `window_end <= wm` or `first + ttl < wm`.
        let expired: Vec<String> = self
            .seen
            .iter()
            .filter(|(_, after)| ctx.eviction_watermark.is_some_and(|wm| **after < wm))
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            self.seen.remove(&k);
            self.dirty.insert(k);
        }
        out.state_rows = self.seen.len() as u64;
        Ok(out)
    }

    /// The changes since the last call.
    pub fn take_delta(&mut self) -> StateDelta {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|k| {
                let v = self.seen.get(&k).map(|e| Value::from(*e));
                (k, v)
            })
            .collect()
    }

    /// The whole state.
    pub fn snapshot(&self) -> StateMap {
        self.seen
            .iter()
            .map(|(k, e)| (k.clone(), Value::from(*e)))
            .collect()
    }

    /// Replaces the state with a restored version.
    pub fn restore(&mut self, state: StateMap) -> Result<()> {
        self.seen.clear();
        self.dirty.clear();
        for (k, v) in state {
            let end = v.as_i64().ok_or_else(|| {
                MicroBatchError::Exec(ExecError::Internal(format!(
                    "`{}`: state entry `{k}` is not a window end",
                    self.node
                )))
            })?;
            self.seen.insert(k, end);
        }
        Ok(())
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Rows of state.
    pub fn state_rows(&self) -> u64 {
        self.seen.len() as u64
    }
}
