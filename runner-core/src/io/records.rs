//! Turning parsed input records into batches, with malformed records failing the run or
//! going to the dead-letter output, as the pipeline's [`BadRecordPolicy`] says. Shared by
//! every built-in source.

use crate::batch::{self, ElementMeta};
use crate::convert;
use crate::error::{ExecError, ExecResult};
use arrow::array::{ArrayRef, Int64Builder, RecordBatch, StringBuilder};
use serde_json::Value;
use std::sync::Arc;
use weir_model::io::{dead_letter_schema, BadRecordPolicy};
use weir_model::udf::Row;
use weir_model::{DataType, Schema};

/// One malformed record: where it came from, what is wrong, and its raw text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadLetter {
    /// File path or source description.
    pub source: String,
    /// 1-based line or record number.
    pub line: u64,
    /// What is wrong, naming the field.
    pub error: String,
    /// The raw record text.
    pub record: String,
}

/// Collects the rows of one poll: good rows, and bad ones routed or failing per the policy.
/// Every source (and every runner delivering scheduled rows) uses it, so malformed records
/// are treated identically everywhere.
pub struct RecordCollector<'a> {
    schema: &'a Schema,
    policy: &'a BadRecordPolicy,
    rows: Vec<Row>,
    dead: Vec<DeadLetter>,
}

impl<'a> RecordCollector<'a> {
    /// A collector for rows of `schema` under `policy`.
    pub fn new(schema: &'a Schema, policy: &'a BadRecordPolicy) -> Self {
        RecordCollector {
            schema,
            policy,
            rows: Vec::new(),
            dead: Vec::new(),
        }
    }

    /// Number of records (good and bad) taken so far.
    pub fn len(&self) -> usize {
        self.rows.len() + self.dead.len()
    }

    /// Whether no record was taken yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a parsed row, checking it against the schema.
    pub fn row(
        &mut self,
        row: Row,
        source: &str,
        line: u64,
        raw: impl FnOnce() -> String,
    ) -> ExecResult<()> {
        match check_fits(&row, self.schema) {
            Ok(()) => {
                self.rows.push(row);
                Ok(())
            }
            Err(message) => self.bad(source, line, message, raw()),
        }
    }

    /// Records a malformed record: an error under `Fail`, a dead letter otherwise.
    pub fn bad(&mut self, source: &str, line: u64, message: String, raw: String) -> ExecResult<()> {
        match self.policy {
            BadRecordPolicy::Fail => Err(ExecError::BadRecord {
                source_name: source.to_string(),
                line,
                message,
            }),
            BadRecordPolicy::DeadLetter { .. } => {
                self.dead.push(DeadLetter {
                    source: source.to_string(),
                    line,
                    error: message,
                    record: raw,
                });
                Ok(())
            }
        }
    }

    /// The batch of good rows (metadata: no event time, global window) and the dead letters.
    pub fn finish(self) -> ExecResult<(RecordBatch, Option<RecordBatch>)> {
        // `check_fits` mirrors the conversion's rules, so a refusal here is a bug in Weir.
        let arrays =
            convert::rows_to_arrays(&self.rows, self.schema).map_err(|(index, message)| {
                ExecError::Internal(format!(
                    "a row accepted by the schema check was refused (row {index}): {message}"
                ))
            })?;
        let data = batch::with_default_meta(self.schema, arrays, self.rows.len())?;
        let dead = if self.dead.is_empty() {
            None
        } else {
            Some(dead_letter_batch(&self.dead)?)
        };
        Ok((data, dead))
    }
}

/// A batch of the dead-letter schema (plus metadata) for `dead`.
pub(crate) fn dead_letter_batch(dead: &[DeadLetter]) -> ExecResult<RecordBatch> {
    let mut source = StringBuilder::new();
    let mut line = Int64Builder::with_capacity(dead.len());
    let mut error = StringBuilder::new();
    let mut record = StringBuilder::new();
    for d in dead {
        source.append_value(&d.source);
        line.append_value(d.line as i64);
        error.append_value(&d.error);
        record.append_value(&d.record);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(source.finish()),
        Arc::new(line.finish()),
        Arc::new(error.finish()),
        Arc::new(record.finish()),
    ];
    let metas = vec![ElementMeta::default(); dead.len()];
    Ok(batch::with_meta(&dead_letter_schema(), columns, &metas)?)
}

/// Whether `row` fits `schema`, with the conversion's rules (see [`convert::rows_to_arrays`]):
/// the message names the field. Unknown extra fields are ignored.
pub(crate) fn check_fits(row: &Row, schema: &Schema) -> Result<(), String> {
    convert::check_row(row, schema)?;
    for f in &schema.fields {
        if let Some(v) = row.get(&f.name) {
            value_fits(v, &f.data_type, &f.name)?;
        }
    }
    Ok(())
}

fn value_fits(v: &Value, t: &DataType, field: &str) -> Result<(), String> {
    let ok = match (t, v) {
        (_, Value::Null) => true,
        (DataType::Boolean, Value::Bool(_)) => true,
        (DataType::Boolean, Value::String(s)) => s == "true" || s == "false",
        (DataType::Int64, Value::Number(n)) => {
            n.is_i64()
                || n.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
        }
        (DataType::Float64, Value::Number(_)) => true,
        (DataType::String, Value::String(_)) => true,
        (DataType::Timestamp, Value::Number(n)) => n.is_i64(),
        (DataType::Timestamp, Value::String(s)) => {
            if convert::parse_timestamp(s).is_none() {
                return Err(format!(
                    "field `{field}`: `{s}` is not a timestamp (RFC 3339 or integer milliseconds)"
                ));
            }
            true
        }
        (DataType::List(item), Value::Array(items)) => {
            for it in items {
                value_fits(it, item, field)?;
            }
            true
        }
        (DataType::Struct(fields), Value::Object(o)) => {
            for f in fields {
                value_fits(
                    o.get(&f.name).unwrap_or(&Value::Null),
                    &f.data_type,
                    &f.name,
                )?;
            }
            true
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("field `{field}`: expected {t}, got {}", short(v)))
    }
}

/// A value's JSON text, cut to a readable length for messages.
pub(crate) fn short(v: &Value) -> String {
    shorten(&v.to_string())
}

/// Text cut to about 60 characters for messages.
pub(crate) fn shorten(s: &str) -> String {
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{cut}...")
    } else {
        s.to_string()
    }
}
