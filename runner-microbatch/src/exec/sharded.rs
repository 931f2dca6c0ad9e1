//! Stateful stages as parallel shard tasks: the keyed exchange routes each row to the shard
//! of its key ([`super::exchange`]); each shard is an instance of the stage over its own keys,
//! run on the rayon pool. The state store sees one map per operator (entries are unique
//! across shards), and a restored entry goes to the shard of its key, so a checkpoint
//! restores at any parallelism.

use super::aggregate::WindowedAggregate;
use super::columnar_combine::ColumnarCombine;
use super::dedup::DedupStage;
use super::exchange::{shard_of_key, shards_of, split};
use super::stateful::StatefulStage;
use super::{BatchContext, StageOutput};
use crate::error::{MicroBatchError, Result};
use crate::state::{RestoredState, StateChanges, StateMap};
use arrow::array::ArrayRef;
use arrow::record_batch::RecordBatch;
use rayon::prelude::*;
use serde_json::Value;
use weir_model::plan::Plan;
use weir_model::time::Timestamp;
use weir_model::transform::Transform;
use weir_model::{Schema, TransformNode};
use weir_runner_core::ExecError;

/// A keyed stateful stage, one instance per shard.
pub trait KeyedStage: Send + std::fmt::Debug {
    /// Handles a batch's rows (input index, batch) of this shard's keys, then fires/evicts.
    fn process(
        &mut self,
        inputs: Vec<(usize, RecordBatch)>,
        ctx: &BatchContext,
    ) -> Result<StageOutput>;
    /// State changes since the last call, with the whole state when `full`.
    fn take_changes(&mut self, full: bool) -> Result<StateChanges>;
    /// Replaces the state.
    fn restore(&mut self, state: RestoredState) -> Result<()>;
    /// Rows of state.
    fn state_rows(&self) -> u64;
    /// Whether something is due by processing time at `now`.
    fn processing_time_due(&self, _now: Timestamp) -> bool {
        false
    }
    /// Switches an aggregation to complete output mode (other stages have none).
    fn set_complete(&mut self) {}
    /// The key-column values of a JSON state entry, to find its shard (columnar state is
    /// routed by its key columns).
    fn entry_key(&self, key: &str, value: &Value) -> Vec<Value>;
}

fn json_array(text: &str) -> Vec<Value> {
    match serde_json::from_str(text) {
        Ok(Value::Array(v)) => v,
        _ => Vec::new(),
    }
}

/// The JSON entries of a restored state, for stages that keep their state as entries.
fn entries(node: &str, state: RestoredState) -> Result<StateMap> {
    match state {
        RestoredState::Entries(m) => Ok(m),
        RestoredState::Columnar(_) => Err(MicroBatchError::Exec(ExecError::Internal(format!(
            "`{node}`: its checkpointed state is columnar, but this stage keeps JSON entries; \
             the checkpoint was written by another version of Weir"
        )))),
    }
}

impl KeyedStage for WindowedAggregate {
    fn process(
        &mut self,
        inputs: Vec<(usize, RecordBatch)>,
        ctx: &BatchContext,
    ) -> Result<StageOutput> {
        WindowedAggregate::process(self, inputs, ctx)
    }
    fn take_changes(&mut self, full: bool) -> Result<StateChanges> {
        let full = if full { Some(self.snapshot()?) } else { None };
        Ok(StateChanges::Entries {
            delta: self.take_delta()?,
            full,
        })
    }
    fn restore(&mut self, state: RestoredState) -> Result<()> {
        let map = entries(self.node(), state)?;
        WindowedAggregate::restore(self, map)
    }
    fn state_rows(&self) -> u64 {
        WindowedAggregate::state_rows(self)
    }
    fn processing_time_due(&self, now: Timestamp) -> bool {
        WindowedAggregate::processing_time_due(self, now)
    }
    fn set_complete(&mut self) {
        WindowedAggregate::set_complete(self)
    }
    fn entry_key(&self, _key: &str, value: &Value) -> Vec<Value> {
        value
            .get("key")
            .and_then(|k| k.as_array())
            .cloned()
            .unwrap_or_default()
    }
}

impl KeyedStage for ColumnarCombine {
    fn process(
        &mut self,
        inputs: Vec<(usize, RecordBatch)>,
        ctx: &BatchContext,
    ) -> Result<StageOutput> {
        ColumnarCombine::process(self, inputs, ctx)
    }
    fn take_changes(&mut self, full: bool) -> Result<StateChanges> {
        ColumnarCombine::take_changes(self, full)
    }
    fn restore(&mut self, state: RestoredState) -> Result<()> {
        ColumnarCombine::restore(self, state)
    }
    fn state_rows(&self) -> u64 {
        ColumnarCombine::state_rows(self)
    }
    fn processing_time_due(&self, now: Timestamp) -> bool {
        ColumnarCombine::processing_time_due(self, now)
    }
    fn set_complete(&mut self) {
        ColumnarCombine::set_complete(self)
    }
    fn entry_key(&self, _key: &str, _value: &Value) -> Vec<Value> {
        // Never asked: columnar state is routed by its key columns, and JSON entries are
        // refused by `ColumnarCombine::restore`.
        Vec::new()
    }
}

impl KeyedStage for DedupStage {
    fn process(
        &mut self,
        inputs: Vec<(usize, RecordBatch)>,
        ctx: &BatchContext,
    ) -> Result<StageOutput> {
        DedupStage::process(self, inputs.into_iter().map(|(_, b)| b).collect(), ctx)
    }
    fn take_changes(&mut self, full: bool) -> Result<StateChanges> {
        Ok(StateChanges::Entries {
            full: full.then(|| self.snapshot()),
            delta: self.take_delta(),
        })
    }
    fn restore(&mut self, state: RestoredState) -> Result<()> {
        let map = entries(self.node(), state)?;
        DedupStage::restore(self, map)
    }
    fn state_rows(&self) -> u64 {
        DedupStage::state_rows(self)
    }
    fn entry_key(&self, key: &str, _value: &Value) -> Vec<Value> {
        // The entry's name is `[[key values], window start, window end]`.
        json_array(key)
            .first()
            .and_then(|k| k.as_array())
            .cloned()
            .unwrap_or_default()
    }
}

impl KeyedStage for StatefulStage {
    fn process(
        &mut self,
        inputs: Vec<(usize, RecordBatch)>,
        ctx: &BatchContext,
    ) -> Result<StageOutput> {
        StatefulStage::process(self, inputs.into_iter().map(|(_, b)| b).collect(), ctx)
    }
    fn take_changes(&mut self, full: bool) -> Result<StateChanges> {
        let full = if full { Some(self.snapshot()?) } else { None };
        Ok(StateChanges::Entries {
            delta: self.take_delta()?,
            full,
        })
    }
    fn restore(&mut self, state: RestoredState) -> Result<()> {
        let map = entries(self.node(), state)?;
        StatefulStage::restore(self, map)
    }
    fn state_rows(&self) -> u64 {
        StatefulStage::state_rows(self)
    }
    fn processing_time_due(&self, now: Timestamp) -> bool {
        StatefulStage::processing_time_due(self, now)
    }
    fn entry_key(&self, _key: &str, value: &Value) -> Vec<Value> {
        // The entry holds the key as the JSON text of its values.
        value
            .get("key")
            .and_then(|k| k.as_str())
            .map(json_array)
            .unwrap_or_default()
    }
}

/// The key columns of each input of a keyed stateful transform.
pub fn stage_keys(transform: &Transform) -> Option<Vec<Vec<String>>> {
    Some(match transform {
        Transform::Combine { group_by, .. } | Transform::TopN { group_by, .. } => {
            vec![group_by.clone()]
        }
        Transform::GroupByKey { keys }
        | Transform::Dedup { keys, .. }
        | Transform::StatefulParDo { keys, .. } => {
            vec![keys.clone()]
        }
        Transform::CoGroupByKey { keys } => keys.clone(),
        Transform::Join { on, .. } => on.clone(),
        _ => return None,
    })
}

/// A keyed stateful stage split into shards by key.
#[derive(Debug)]
pub struct Sharded {
    node: String,
    /// Key columns of each input.
    keys: Vec<Vec<String>>,
    /// The first input's key columns, for routing restored state entries.
    key_schema: Schema,
    shards: Vec<Box<dyn KeyedStage>>,
}

impl Sharded {
    /// `shards` instances of `node`'s stage made by `make`.
    pub fn new(
        plan: &Plan,
        node: &TransformNode,
        shards: usize,
        make: impl Fn() -> Result<Box<dyn KeyedStage>>,
    ) -> Result<Self> {
        let internal = |m: String| MicroBatchError::Exec(ExecError::Internal(m));
        let keys = stage_keys(&node.transform)
            .ok_or_else(|| internal(format!("`{}` is not keyed", node.name)))?;
        let input = node
            .inputs
            .first()
            .and_then(|i| plan.collection(i))
            .ok_or_else(|| internal(format!("`{}`: input missing from the plan", node.name)))?;
        let key_schema = Schema::new(
            keys.first()
                .into_iter()
                .flatten()
                .filter_map(|k| input.schema.field(k).cloned())
                .collect(),
        );
        let shards = (0..shards.max(1)).map(|_| make()).collect::<Result<_>>()?;
        Ok(Sharded {
            node: node.name.clone(),
            keys,
            key_schema,
            shards,
        })
    }

    /// Puts every shard in complete output mode.
    pub fn set_complete(&mut self) {
        self.shards.iter_mut().for_each(|s| s.set_complete());
    }

    /// Routes the batch's rows (input index, batch) to their shards and runs the shards in
    /// parallel.
    pub fn process(
        &mut self,
        inputs: Vec<(usize, RecordBatch)>,
        ctx: &BatchContext,
        pool: &rayon::ThreadPool,
    ) -> Result<StageOutput> {
        let n = self.shards.len();
        let mut per_shard: Vec<Vec<(usize, RecordBatch)>> = vec![Vec::new(); n];
        let inputs: Vec<(usize, RecordBatch)> = inputs
            .into_iter()
            .filter(|(_, b)| b.num_rows() > 0)
            .collect();
        if n == 1 {
            per_shard[0] = inputs;
        } else {
            // Each input batch (one per source partition, usually) is split on its own task.
            // Key columns of every input have the same types (the plan checks), so equal keys
            // of different inputs hash alike and meet in one shard.
            let columns: Vec<Vec<ArrayRef>> = inputs
                .iter()
                .map(|(side, b)| self.key_columns(b, *side))
                .collect::<Result<_>>()?;
            let splits: Vec<Result<(usize, Vec<RecordBatch>)>> = pool.install(|| {
                inputs
                    .par_iter()
                    .zip(columns.par_iter())
                    .map(|((side, b), columns)| {
                        let ids = shards_of(columns, b.num_rows(), n)?;
                        Ok((*side, split(b, &ids, n)?))
                    })
                    .collect()
            });
            for r in splits {
                let (side, parts) = r?;
                for (s, part) in parts.into_iter().enumerate() {
                    if part.num_rows() > 0 {
                        per_shard[s].push((side, part));
                    }
                }
            }
        }
        let results: Vec<Result<StageOutput>> = pool.install(|| {
            self.shards
                .par_iter_mut()
                .zip(per_shard.into_par_iter())
                .map(|(shard, batches)| shard.process(batches, ctx))
                .collect()
        });
        let mut out = StageOutput::default();
        for r in results {
            let r = r?;
            out.outputs.extend(r.outputs);
            out.rows_dropped_by_watermark += r.rows_dropped_by_watermark;
            out.state_rows += r.state_rows;
        }
        Ok(out)
    }

    /// Whether something is due by processing time at `now` in any shard.
    pub fn processing_time_due(&self, now: Timestamp) -> bool {
        self.shards.iter().any(|s| s.processing_time_due(now))
    }

    /// Changes since the last call over every shard, with the whole state when `full`.
    pub fn take_changes(&mut self, full: bool, pool: &rayon::ThreadPool) -> Result<StateChanges> {
        let parts = pool.install(|| {
            self.shards
                .par_iter_mut()
                .map(|s| s.take_changes(full))
                .collect::<Result<Vec<_>>>()
        })?;
        StateChanges::merge(&self.node, parts)
    }

    /// Restores a state version, each entry (or columnar row) into the shard of its key.
    pub fn restore(&mut self, state: RestoredState) -> Result<()> {
        let n = self.shards.len();
        if n == 1 {
            return self.shards[0].restore(state);
        }
        match state {
            RestoredState::Entries(map) => {
                let mut parts: Vec<StateMap> = vec![StateMap::new(); n];
                for (k, v) in map {
                    let key = self.shards[0].entry_key(&k, &v);
                    parts[shard_of_key(&self.key_schema, &key, n)?].insert(k, v);
                }
                for (shard, part) in self.shards.iter_mut().zip(parts) {
                    shard.restore(RestoredState::Entries(part))?;
                }
            }
            RestoredState::Columnar(batches) => {
                let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
                for b in batches {
                    let columns = self.key_columns(&b, 0)?;
                    let ids = shards_of(&columns, b.num_rows(), n)?;
                    for (s, part) in split(&b, &ids, n)?.into_iter().enumerate() {
                        parts[s].push(part);
                    }
                }
                for (shard, part) in self.shards.iter_mut().zip(parts) {
                    shard.restore(RestoredState::Columnar(part))?;
                }
            }
        }
        Ok(())
    }

    /// The key columns of input `side` in `b`.
    fn key_columns(&self, b: &RecordBatch, side: usize) -> Result<Vec<ArrayRef>> {
        let names = self.keys.get(side).ok_or_else(|| {
            MicroBatchError::Exec(ExecError::Internal(format!(
                "`{}` has no input {side}",
                self.node
            )))
        })?;
        names
            .iter()
            .map(|k| {
                b.column_by_name(k).cloned().ok_or_else(|| {
                    MicroBatchError::Exec(ExecError::Internal(format!(
                        "`{}`: no key column `{k}`",
                        self.node
                    )))
                })
            })
            .collect()
    }

    /// Rows of state over every shard.
    pub fn state_rows(&self) -> u64 {
        self.shards.iter().map(|s| s.state_rows()).sum()
    }
}
