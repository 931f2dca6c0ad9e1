//! Grouping keys.

use crate::convert::value_at;
use crate::error::{ExecError, ExecResult};
use arrow::record_batch::RecordBatch;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// A grouping key: the JSON values of the key columns, held as the JSON text of their array
/// (`["alice",3]`). Keys compare by that text, which is the deterministic key order of fired
/// panes; cloning is cheap.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(Arc<str>);

impl Key {
    /// The key of these key-column values, in key-column order.
    pub fn new(values: &[Value]) -> Key {
        // Same text as the `Value::Array` display, without copying the values first.
        Key(serde_json::to_string(values)
            .expect("JSON values serialize")
            .into())
    }

    /// The key of no columns: the single group of a global aggregation.
    pub fn unit() -> Key {
        Key::new(&[])
    }

    /// The JSON text of the key's values.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// The key-column values, in key-column order.
    pub fn values(&self) -> Vec<Value> {
        match serde_json::from_str(&self.0) {
            Ok(Value::Array(values)) => values,
            _ => Vec::new(),
        }
    }

    /// The key of every row of `batch`, from the columns `columns` (by name).
    pub fn of_rows(batch: &RecordBatch, columns: &[String]) -> ExecResult<Vec<Key>> {
        let arrays = columns
            .iter()
            .map(|c| {
                batch.column_by_name(c).ok_or_else(|| {
                    ExecError::Internal(format!("key column `{c}` missing from the batch"))
                })
            })
            .collect::<ExecResult<Vec<_>>>()?;
        Ok((0..batch.num_rows())
            .map(|r| {
                Key::new(
                    &arrays
                        .iter()
                        .map(|a| value_at(a.as_ref(), r))
                        .collect::<Vec<_>>(),
                )
            })
            .collect())
    }

    /// A key that sorts before every real key (a range bound).
    pub(crate) fn lowest() -> Key {
        Key("".into())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_round_trip_and_order_by_text() {
        let k = Key::new(&[json!("a"), json!(3), Value::Null]);
        assert_eq!(k.text(), r#"["a",3,null]"#);
        assert_eq!(k.values(), vec![json!("a"), json!(3), Value::Null]);
        assert!(Key::lowest() < Key::unit());
        assert!(Key::new(&[json!("a")]) < Key::new(&[json!("b")]));
    }
}
