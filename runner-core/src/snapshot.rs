//! Keyed state in a checkpoint as columns: an Arrow IPC stream (base64 in the JSON snapshot)
//! instead of one JSON object per key. A million windows of a columnar `Combine` copy out at
//! memory speed where a million JSON objects took a second of CPU per checkpoint, and the
//! state stays keyed: a runner still moves rows to the subtask owning their key group when
//! it restores at another parallelism.
//!
//! In a snapshot it reads `{"columnar": {"key": [names], "arrow_ipc": "<base64>"}}`; the key
//! columns are among the stream's columns, with the types the exchange hashes. The stream's
//! buffers are LZ4-compressed (uncompressed streams of earlier versions still read).

use crate::error::{ExecError, ExecResult};
use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::{Field, Schema};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow::ipc::CompressionType;
use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::Arc;

/// Keyed state as named Arrow columns (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSnapshot {
    /// The key columns' names, in key order.
    pub key: Vec<String>,
    /// Every column, the key columns included.
    pub batch: RecordBatch,
}

/// The tag that marks the format in a snapshot value.
const TAG: &str = "columnar";

fn base64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl ColumnSnapshot {
    /// The snapshot of `arrays`, named by `names`; `key` names the key columns.
    pub fn from_arrays(
        key: Vec<String>,
        names: &[String],
        arrays: Vec<ArrayRef>,
    ) -> ExecResult<Self> {
        let fields: Vec<Field> = names
            .iter()
            .zip(&arrays)
            .map(|(n, a)| Field::new(n, a.data_type().clone(), true))
            .collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
        Ok(ColumnSnapshot { key, batch })
    }

    /// The snapshot as a state value.
    pub fn into_value(self) -> ExecResult<Value> {
        // LZ4 frames: window bounds repeat and keys are often dense, so a million-slot
        // state shrinks severalfold, and compressing costs less than base64-encoding and
        // writing the bytes it saves.
        let options =
            IpcWriteOptions::default().try_with_compression(Some(CompressionType::LZ4_FRAME))?;
        let mut bytes = Vec::new();
        {
            let mut writer =
                StreamWriter::try_new_with_options(&mut bytes, &self.batch.schema(), options)?;
            writer.write(&self.batch)?;
            writer.finish()?;
        }
        Ok(json!({TAG: {"key": self.key, "arrow_ipc": base64().encode(bytes)}}))
    }

    /// The snapshot in `value`: `None` when it is not in this format, an error when it is
    /// but does not decode.
    pub fn from_value(value: &Value) -> Option<ExecResult<Self>> {
        let inner = value.as_object()?.get(TAG)?;
        Some(Self::decode(inner))
    }

    fn decode(inner: &Value) -> ExecResult<Self> {
        let bad = |m: String| ExecError::Internal(format!("a columnar snapshot {m}"));
        let key = inner["key"]
            .as_array()
            .and_then(|k| k.iter().map(|n| n.as_str().map(str::to_string)).collect())
            .ok_or_else(|| bad("without `key` column names".into()))?;
        let text = inner["arrow_ipc"]
            .as_str()
            .ok_or_else(|| bad("without its `arrow_ipc` stream".into()))?;
        let bytes = base64()
            .decode(text)
            .map_err(|e| bad(format!("whose stream is not base64: {e}")))?;
        let reader = StreamReader::try_new(bytes.as_slice(), None)
            .map_err(|e| bad(format!("whose stream does not open: {e}")))?;
        let schema = reader.schema();
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("whose stream does not read: {e}")))?;
        let batch = concat_batches(&schema, &batches)?;
        Ok(ColumnSnapshot { key, batch })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// The column `name`.
    pub fn column(&self, name: &str) -> Option<&ArrayRef> {
        self.batch.column_by_name(name)
    }

    /// The rows at `indices`, in that order.
    pub fn take(&self, indices: &[u32]) -> ExecResult<ColumnSnapshot> {
        let indices = UInt32Array::from(indices.to_vec());
        Ok(ColumnSnapshot {
            key: self.key.clone(),
            batch: take_record_batch(&self.batch, &indices)?,
        })
    }

    /// Appends `other`'s rows (restoring two subtasks' state into one); fails when the
    /// columns differ.
    pub fn append(&mut self, other: ColumnSnapshot) -> ExecResult<()> {
        if self.key != other.key || self.batch.schema() != other.batch.schema() {
            return Err(ExecError::Internal(format!(
                "columnar snapshots with different columns: {:?} and {:?}",
                self.batch.schema(),
                other.batch.schema()
            )));
        }
        self.batch = concat_batches(&self.batch.schema(), [&self.batch, &other.batch])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::Int64Type;

    fn snapshot() -> ColumnSnapshot {
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["a", "b", "c"])),
            Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
        ];
        ColumnSnapshot::from_arrays(vec!["k".into()], &["k".into(), "n".into()], arrays).unwrap()
    }

    #[test]
    fn columns_round_trip_split_and_merge() {
        let s = snapshot();
        let value = s.clone().into_value().unwrap();
        assert_eq!(value["columnar"]["key"], json!(["k"]));
        // Through text, as a checkpoint file holds it.
        let text = serde_json::to_string(&value).unwrap();
        let back = ColumnSnapshot::from_value(&serde_json::from_str(&text).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(back, s);
        let mut first = back.take(&[2, 0]).unwrap();
        first.append(back.take(&[1]).unwrap()).unwrap();
        let keys: Vec<&str> = first
            .column("k")
            .unwrap()
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        assert_eq!(keys, ["c", "a", "b"]);
        let n = first.column("n").unwrap().as_primitive::<Int64Type>();
        assert_eq!(n.iter().collect::<Vec<_>>(), [Some(3), Some(1), None]);
        // Other columns, or other key columns, do not merge.
        let keys_only = ColumnSnapshot::from_arrays(
            vec!["k".into()],
            &["k".into()],
            vec![s.batch.column(0).clone()],
        )
        .unwrap();
        assert!(first.append(keys_only).is_err());
        let other_key = ColumnSnapshot {
            key: vec!["n".into()],
            ..s.clone()
        };
        assert!(first.append(other_key).is_err());
        assert_eq!(first.rows(), 3);
    }

    #[test]
    fn repetitive_columns_are_stored_compressed_and_uncompressed_streams_still_read() {
        // A window's bounds repeat on every slot: 100 K rows of two int64 columns.
        let n = 100_000;
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(0..n)),
            Arc::new(Int64Array::from_value(1_000, n as usize)),
        ];
        let names = ["k".to_string(), "__window_start".to_string()];
        let s = ColumnSnapshot::from_arrays(vec!["k".into()], &names, arrays).unwrap();
        let value = s.clone().into_value().unwrap();
        let encoded = value["columnar"]["arrow_ipc"].as_str().unwrap().len();
        let raw = 2 * 8 * n as usize;
        assert!(encoded * 2 < raw, "{encoded} bytes of base64 for {raw} raw");
        assert_eq!(ColumnSnapshot::from_value(&value).unwrap().unwrap(), s);
        // A stream written without compression (earlier versions) reads the same.
        let mut bytes = Vec::new();
        let mut writer = StreamWriter::try_new(&mut bytes, &s.batch.schema()).unwrap();
        writer.write(&s.batch).unwrap();
        writer.finish().unwrap();
        drop(writer);
        let plain = json!({"columnar": {"key": ["k"], "arrow_ipc": base64().encode(&bytes)}});
        assert_eq!(ColumnSnapshot::from_value(&plain).unwrap().unwrap(), s);
    }

    #[test]
    fn other_values_are_not_columnar_and_broken_streams_are_refused() {
        assert!(ColumnSnapshot::from_value(&json!([{"key": [1]}])).is_none());
        assert!(ColumnSnapshot::from_value(&json!({"active": []})).is_none());
        for (bad, says) in [
            (json!({"columnar": {"key": "k"}}), "without `key`"),
            (
                json!({"columnar": {"key": ["k"]}}),
                "without its `arrow_ipc`",
            ),
            (
                json!({"columnar": {"key": ["k"], "arrow_ipc": "%%"}}),
                "not base64",
            ),
            (
                json!({"columnar": {"key": ["k"], "arrow_ipc": "AAAA"}}),
                "stream",
            ),
        ] {
            let err = ColumnSnapshot::from_value(&bad)
                .unwrap()
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
