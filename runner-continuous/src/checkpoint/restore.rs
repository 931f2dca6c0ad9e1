//! Loading a completed checkpoint for a new run, at the same or another parallelism: source
//! positions are per split, so splits may move between subtasks; keyed state is per key, so
//! its entries are redistributed by key group (Flink's rescaling by `KeyGroupRange`).

use super::storage::{CheckpointStorage, SubtaskState};
use crate::channel::partition::key_hashes;
use crate::channel::KeyGroups;
use crate::graph::JobGraph;
use anyhow::{bail, Context as _};
use arrow::record_batch::RecordBatch;
use std::collections::BTreeMap;
use std::sync::Arc;
use weir_model::plan::Plan;
use weir_model::transform::Transform;
use weir_model::Schema;
use weir_runner_core::convert::rows_to_arrays;
use weir_runner_core::snapshot::ColumnSnapshot;

/// A checkpoint loaded for the current job graph.
#[derive(Debug, Default)]
pub struct Restored {
    /// The checkpoint id.
    pub id: u64,
    states: BTreeMap<(usize, usize), SubtaskState>,
    positions: BTreeMap<usize, BTreeMap<u32, serde_json::Value>>,
}

impl Restored {
    /// Loads checkpoint `id` for `graph`. State is matched by transform, not by vertex, so
    /// a transform may be chained differently at another parallelism.
    pub fn load(
        storage: &CheckpointStorage,
        id: u64,
        graph: &JobGraph,
        plan: &Plan,
    ) -> anyhow::Result<Restored> {
        let meta = storage.metadata(id)?;
        // Transform → (old parallelism, old subtask, state).
        let mut by_node: BTreeMap<String, Vec<(usize, usize, serde_json::Value)>> = BTreeMap::new();
        let mut positions_by_source: BTreeMap<String, BTreeMap<u32, serde_json::Value>> =
            BTreeMap::new();
        for (old_v, (head, old_p)) in meta.vertices.iter().enumerate() {
            for s in 0..*old_p {
                let state = storage.read_state(id, old_v, s)?;
                positions_by_source
                    .entry(head.clone())
                    .or_default()
                    .extend(state.positions);
                for (node, value) in state.operators {
                    by_node.entry(node).or_default().push((*old_p, s, value));
                }
            }
        }
        let mut restored = Restored {
            id,
            ..Default::default()
        };
        for (v, vertex) in graph.vertices.iter().enumerate() {
            if let Some(p) = positions_by_source.remove(vertex.head()) {
                restored.positions.insert(v, p);
            }
        }
        for (node, parts) in by_node {
            let (v, vertex) = graph
                .vertices
                .iter()
                .enumerate()
                .find(|(_, x)| x.nodes.contains(&node))
                .ok_or_else(|| {
                    anyhow::anyhow!("checkpoint {id} has state of `{node}`, which this job lacks")
                })?;
            let new_p = vertex.parallelism;
            // Columnar parts per new subtask, merged and encoded once after the loop.
            let mut columnar: BTreeMap<usize, ColumnSnapshot> = BTreeMap::new();
            for (old_p, s, value) in parts {
                if old_p == new_p {
                    restored
                        .states
                        .entry((v, s))
                        .or_default()
                        .operators
                        .insert(node.clone(), value);
                    continue;
                }
                if let Some(snapshot) = ColumnSnapshot::from_value(&value) {
                    let snapshot =
                        snapshot.with_context(|| format!("checkpoint {id}: state of `{node}`"))?;
                    for (target, part) in redistribute_columns(snapshot, new_p)? {
                        match columnar.get_mut(&target) {
                            Some(merged) => merged.append(part)?,
                            None => {
                                columnar.insert(target, part);
                            }
                        }
                    }
                    continue;
                }
                let serde_json::Value::Array(entries) = value else {
                    bail!(
                        "checkpoint {id}: the state of `{node}` cannot move from parallelism {old_p} to {new_p}"
                    );
                };
                for (target, entry) in redistribute(plan, &node, entries, new_p)? {
                    let slot = restored
                        .states
                        .entry((v, target))
                        .or_default()
                        .operators
                        .entry(node.clone())
                        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
                    if let serde_json::Value::Array(list) = slot {
                        list.push(entry);
                    }
                }
            }
            for (target, merged) in columnar {
                restored
                    .states
                    .entry((v, target))
                    .or_default()
                    .operators
                    .insert(node.clone(), merged.into_value()?);
            }
        }
        Ok(restored)
    }

    /// The state of subtask `subtask` of vertex `vertex` (source positions excluded).
    pub fn state(&self, vertex: usize, subtask: usize) -> SubtaskState {
        self.states
            .get(&(vertex, subtask))
            .map(|s| SubtaskState {
                positions: BTreeMap::new(),
                operators: s.operators.clone(),
            })
            .unwrap_or_default()
    }

    /// Every split position of the source vertex `vertex`.
    pub fn positions(&self, vertex: usize) -> BTreeMap<u32, serde_json::Value> {
        self.positions.get(&vertex).cloned().unwrap_or_default()
    }
}

/// Splits columnar state by the subtask of `parallelism` owning each row's key group: its
/// key columns have the input's types, so they hash as the exchange hashes them.
fn redistribute_columns(
    snapshot: ColumnSnapshot,
    parallelism: usize,
) -> anyhow::Result<Vec<(usize, ColumnSnapshot)>> {
    let hashes = key_hashes(&snapshot.batch, &snapshot.key)?;
    let groups = KeyGroups::default();
    let mut by_target: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    for (r, h) in hashes.into_iter().enumerate() {
        let target = groups.subtask_of(groups.group_of(h), parallelism);
        by_target.entry(target).or_default().push(r as u32);
    }
    by_target
        .into_iter()
        .map(|(target, rows)| Ok((target, snapshot.take(&rows)?)))
        .collect()
}

/// Assigns keyed entries (each with a `key` array of key-column values) to the subtask of
/// `parallelism` owning their key group, hashing the keys exactly as the exchange does.
fn redistribute(
    plan: &Plan,
    node: &str,
    entries: Vec<serde_json::Value>,
    parallelism: usize,
) -> anyhow::Result<Vec<(usize, serde_json::Value)>> {
    let keys = state_keys(plan, node)?;
    let rows: Vec<weir_model::udf::Row> = entries
        .iter()
        .map(|e| {
            let values = e["key"].as_array().cloned().unwrap_or_default();
            keys.iter().cloned().zip(values).collect()
        })
        .collect();
    let owners = owners_by_keys(plan, node, &keys, &rows, parallelism)?;
    Ok(owners.into_iter().zip(entries).collect())
}

/// The key columns of `node`'s state: its exchange's keys.
fn state_keys(plan: &Plan, node: &str) -> anyhow::Result<Vec<String>> {
    let transform = plan
        .pipeline
        .node(node)
        .context("restored transform missing")?;
    // Multi-input transforms hash each input by its own key columns; the values (and so
    // the hashes) agree, so the first input's columns place a key.
    Ok(match &transform.transform {
        Transform::StatefulParDo { keys, .. }
        | Transform::Dedup { keys, .. }
        | Transform::GroupByKey { keys } => keys.clone(),
        Transform::Combine { group_by, .. } | Transform::TopN { group_by, .. } => group_by.clone(),
        Transform::Join { on, .. } => on.first().cloned().unwrap_or_default(),
        Transform::CoGroupByKey { keys } => keys.first().cloned().unwrap_or_default(),
        other => bail!("the state of `{node}` ({other}) is not keyed"),
    })
}

/// The subtask of `parallelism` owning each key (`rows` hold the `keys` columns), hashed
/// exactly as the exchange hashes them.
fn owners_by_keys(
    plan: &Plan,
    node: &str,
    keys: &[String],
    rows: &[weir_model::udf::Row],
    parallelism: usize,
) -> anyhow::Result<Vec<usize>> {
    let transform = plan
        .pipeline
        .node(node)
        .context("restored transform missing")?;
    let input = plan
        .collection(&transform.inputs[0])
        .context("restored transform input missing")?;
    let fields = keys
        .iter()
        .map(|k| input.schema.field(k).cloned().context("key column missing"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let key_schema = Schema::new(fields);
    let arrays = rows_to_arrays(rows, &key_schema)
        .map_err(|(r, m)| anyhow::anyhow!("restoring the key of `{node}` entry {r}: {m}"))?;
    let arrow_schema = Arc::new(arrow::datatypes::Schema::new(
        key_schema
            .fields
            .iter()
            .map(|f| f.to_arrow())
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(arrow_schema, arrays)?;
    let hashes = key_hashes(&batch, keys)?;
    let groups = KeyGroups::default();
    Ok(hashes
        .into_iter()
        .map(|h| groups.subtask_of(groups.group_of(h), parallelism))
        .collect())
}
