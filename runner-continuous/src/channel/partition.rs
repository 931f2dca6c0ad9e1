//! How an edge routes rows to the subtasks of its receiver.

use arrow::array::{Array, UInt32Array};
use arrow::record_batch::RecordBatch;
use weir_runner_core::eval::hash::stable_hash_array;
use weir_runner_core::{ExecError, ExecResult};

/// Key groups, Flink's unit of keyed state: a key belongs to group `hash % max_parallelism`
/// and a group to subtask `group * parallelism / max_parallelism`
/// (`KeyGroupRangeAssignment`), so changing parallelism moves whole groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyGroups {
    /// Number of key groups (Flink's default max parallelism is 128).
    pub max_parallelism: u32,
}

impl Default for KeyGroups {
    fn default() -> Self {
        KeyGroups {
            max_parallelism: 128,
        }
    }
}

impl KeyGroups {
    /// The key group of a key hash.
    pub fn group_of(&self, hash: u64) -> u32 {
        (hash % u64::from(self.max_parallelism)) as u32
    }
    /// The subtask (of `parallelism`) owning key group `group`.
    pub fn subtask_of(&self, group: u32, parallelism: usize) -> usize {
        (group as usize * parallelism) / self.max_parallelism as usize
    }
}

/// An edge's routing rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitioner {
    /// Subtask `i` sends to subtask `i` (same parallelism; Flink's forward).
    Forward,
    /// By the hash of the key columns, through key groups (Flink's `keyBy`).
    Hash {
        /// Key columns of the rows on this edge.
        keys: Vec<String>,
    },
    /// Every row to the receiver's only subtask (a parallelism-1 operator such as a global
    /// window or a single-file sink; Flink's `windowAll` / `setParallelism(1)`).
    Gather,
    /// Round robin over receiver subtasks, batch by batch (Flink's rebalance).
    Rebalance,
}

impl Partitioner {
    /// The receiver subtasks sender `subtask` may send to (each gets a channel).
    pub fn targets(&self, subtask: usize, receivers: usize) -> Vec<usize> {
        match self {
            Partitioner::Forward => vec![subtask],
            Partitioner::Gather => vec![0],
            Partitioner::Hash { .. } | Partitioner::Rebalance => (0..receivers).collect(),
        }
    }

    /// Splits `batch` into `(receiver subtask, rows)`, keeping row order within each part.
    /// `round` is the sender's round-robin counter for [`Partitioner::Rebalance`].
    pub fn route(
        &self,
        batch: RecordBatch,
        subtask: usize,
        receivers: usize,
        round: &mut usize,
        groups: KeyGroups,
    ) -> ExecResult<Vec<(usize, RecordBatch)>> {
        Ok(match self {
            Partitioner::Forward => vec![(subtask, batch)],
            Partitioner::Gather => vec![(0, batch)],
            Partitioner::Rebalance => {
                *round = (*round + 1) % receivers.max(1);
                vec![(*round, batch)]
            }
            Partitioner::Hash { keys } => {
                if receivers == 1 {
                    return Ok(vec![(0, batch)]);
                }
                let hashes = key_hashes(&batch, keys)?;
                let mut rows: Vec<Vec<u32>> = vec![Vec::new(); receivers];
                for (row, h) in hashes.into_iter().enumerate() {
                    rows[groups.subtask_of(groups.group_of(h), receivers)].push(row as u32);
                }
                let mut out = Vec::new();
                for (target, indices) in rows.into_iter().enumerate() {
                    if indices.is_empty() {
                        continue;
                    }
                    if indices.len() == batch.num_rows() {
                        out.push((target, batch));
                        break;
                    }
                    let indices = UInt32Array::from(indices);
                    out.push((target, arrow::compute::take_record_batch(&batch, &indices)?));
                }
                out
            }
        })
    }
}

/// One hash per row over the key columns (runner-core's stable hash per column, combined;
/// a null key hashes as 0), so a key lands on the same subtask on every run and machine.
pub fn key_hashes(batch: &RecordBatch, keys: &[String]) -> ExecResult<Vec<u64>> {
    let mut out = vec![0u64; batch.num_rows()];
    for key in keys {
        let column = batch.column_by_name(key).ok_or_else(|| {
            ExecError::Internal(format!("key column `{key}` missing from an exchange"))
        })?;
        let hashes = stable_hash_array(column.as_ref())?;
        for (row, h) in out.iter_mut().enumerate() {
            let v = if hashes.is_null(row) {
                0
            } else {
                hashes.value(row) as u64
            };
            *h = h.wrapping_mul(31).wrapping_add(v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(keys: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(keys.to_vec())),
                Arc::new(Int64Array::from_iter_values(0..keys.len() as i64)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn hash_routing_sends_each_key_to_one_subtask_keeping_row_order() {
        let p = Partitioner::Hash {
            keys: vec!["k".into()],
        };
        let b = batch(&["a", "b", "a", "c", "b", "a"]);
        let parts = p.route(b, 0, 2, &mut 0, KeyGroups::default()).unwrap();
        let mut seen = std::collections::BTreeMap::new();
        for (target, part) in &parts {
            let k = part
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            let v = part
                .column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            for r in 0..part.num_rows() {
                assert_eq!(
                    *seen.entry(k.value(r).to_string()).or_insert(*target),
                    *target
                );
            }
            assert!(v.values().windows(2).all(|w| w[0] < w[1]));
        }
        let total: usize = parts.iter().map(|(_, b)| b.num_rows()).sum();
        assert_eq!(total, 6);
    }

    #[test]
    fn key_groups_map_to_contiguous_subtask_ranges() {
        let g = KeyGroups::default();
        assert_eq!(g.subtask_of(0, 2), 0);
        assert_eq!(g.subtask_of(63, 2), 0);
        assert_eq!(g.subtask_of(64, 2), 1);
        assert_eq!(g.subtask_of(127, 2), 1);
        assert_eq!(g.subtask_of(127, 1), 0);
    }
}
