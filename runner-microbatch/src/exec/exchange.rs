//! The keyed exchange before a stateful stage (Spark's `ShuffleExchangeExec` with hash
//! partitioning on the grouping keys): every row goes to the shard `hash(keys) mod shards`,
//! with runner-core's stable hash, so a key's rows and state always meet in one shard task
//! and a restored state entry finds its shard again at any parallelism.

use crate::error::Result;
use arrow::array::{Array, ArrayRef, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::record_batch::RecordBatch;
use serde_json::Value;
use weir_model::udf::Row;
use weir_model::Schema;
use weir_runner_core::convert::rows_to_arrays;
use weir_runner_core::eval::stable_hash_array;
use weir_runner_core::ExecError;

/// Per row of `columns`, its shard among `shards`.
pub fn shards_of(columns: &[ArrayRef], rows: usize, shards: usize) -> Result<Vec<u32>> {
    let mut h = vec![0u64; rows];
    for c in columns {
        let hashes = stable_hash_array(c.as_ref())?;
        for (i, acc) in h.iter_mut().enumerate() {
            let v = if hashes.is_null(i) {
                0x9e37_79b9_7f4a_7c15
            } else {
                hashes.value(i) as u64
            };
            *acc = acc.wrapping_mul(0x100_0000_01b3).wrapping_add(v);
        }
    }
    Ok(h.into_iter()
        .map(|x| (x % shards.max(1) as u64) as u32)
        .collect())
}

/// The shard of the key `values` (of the key columns `schema`), as [`shards_of`] computes it.
pub fn shard_of_key(schema: &Schema, values: &[Value], shards: usize) -> Result<usize> {
    let row: Row = schema
        .fields
        .iter()
        .map(|f| f.name.clone())
        .zip(values.iter().cloned())
        .collect();
    let arrays = rows_to_arrays(&[row], schema)
        .map_err(|(_, m)| ExecError::Internal(format!("state key {values:?}: {m}")))?;
    Ok(shards_of(&arrays, 1, shards)?[0] as usize)
}

/// `batch` split by `shard_of_row` into `shards` batches (empty ones included).
pub fn split(batch: &RecordBatch, shard_of_row: &[u32], shards: usize) -> Result<Vec<RecordBatch>> {
    let mut indices: Vec<Vec<u32>> = vec![Vec::new(); shards];
    for (row, s) in shard_of_row.iter().enumerate() {
        indices[*s as usize].push(row as u32);
    }
    indices
        .into_iter()
        .map(|idx| Ok(take_record_batch(batch, &UInt32Array::from(idx)).map_err(ExecError::from)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use std::sync::Arc;
    use weir_model::{DataType, Field};

    #[test]
    fn a_key_goes_to_the_same_shard_from_arrow_and_from_its_state_entry() {
        let k: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a"),
            Some("b"),
            None,
            Some("a"),
        ]));
        let n: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3, 1]));
        let shards = shards_of(&[k, n], 4, 3).unwrap();
        assert_eq!(shards[0], shards[3]);
        let schema = Schema::new(vec![
            Field::new("k", DataType::String),
            Field::new("n", DataType::Int64),
        ]);
        for (row, values) in [
            (0, vec![Value::from("a"), Value::from(1)]),
            (2, vec![Value::Null, Value::from(3)]),
        ] {
            assert_eq!(
                shard_of_key(&schema, &values, 3).unwrap(),
                shards[row] as usize
            );
        }
    }
}
