//! Rows (JSON objects, see [`weir_model::udf::Row`]) to and from Arrow arrays for a schema.
//! Used where a transform works per row: user functions, aggregation state, test sinks.
//! Timestamps are integer milliseconds in rows.

use crate::batch::{self, ElementMeta};
use crate::error::{ExecError, ExecResult};
use arrow::array::{
    Array, ArrayBuilder, ArrayRef, BooleanArray, BooleanBuilder, Float16Array, Float32Array,
    Float64Array, Float64Builder, Int16Array, Int32Array, Int64Array, Int64Builder, Int8Array,
    LargeStringArray, ListArray, ListBuilder, RecordBatch, StringArray, StringBuilder, StructArray,
    StructBuilder, TimestampMillisecondArray, TimestampMillisecondBuilder, UInt16Array,
    UInt32Array, UInt64Array, UInt8Array,
};
use arrow::datatypes::{DataType as ArrowType, TimeUnit};
use serde_json::{Number, Value};
use weir_model::udf::Row;
use weir_model::{DataType, Schema};

/// The JSON value of `array[row]` (null for nulls; timestamps as integer milliseconds).
pub fn value_at(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    macro_rules! num {
        ($t:ty) => {
            Value::from(array.as_any().downcast_ref::<$t>().unwrap().value(row) as i64)
        };
    }
    macro_rules! float {
        ($t:ty) => {
            Number::from_f64(array.as_any().downcast_ref::<$t>().unwrap().value(row) as f64)
                .map(Value::Number)
                .unwrap_or(Value::Null)
        };
    }
    match array.data_type() {
        ArrowType::Boolean => Value::Bool(
            array
                .as_any()
                .downcast_ref::<BooleanArray>()
                .unwrap()
                .value(row),
        ),
        ArrowType::Int8 => num!(Int8Array),
        ArrowType::Int16 => num!(Int16Array),
        ArrowType::Int32 => num!(Int32Array),
        ArrowType::Int64 => num!(Int64Array),
        ArrowType::UInt8 => num!(UInt8Array),
        ArrowType::UInt16 => num!(UInt16Array),
        ArrowType::UInt32 => num!(UInt32Array),
        ArrowType::UInt64 => num!(UInt64Array),
        ArrowType::Float16 => Number::from_f64(f64::from(
            array
                .as_any()
                .downcast_ref::<Float16Array>()
                .unwrap()
                .value(row),
        ))
        .map(Value::Number)
        .unwrap_or(Value::Null),
        ArrowType::Float32 => float!(Float32Array),
        ArrowType::Float64 => float!(Float64Array),
        ArrowType::Utf8 => Value::String(
            array
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .value(row)
                .to_string(),
        ),
        ArrowType::LargeUtf8 => Value::String(
            array
                .as_any()
                .downcast_ref::<LargeStringArray>()
                .unwrap()
                .value(row)
                .to_string(),
        ),
        ArrowType::Timestamp(TimeUnit::Millisecond, _) => Value::from(
            array
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .unwrap()
                .value(row),
        ),
        ArrowType::List(_) => {
            let list = array.as_any().downcast_ref::<ListArray>().unwrap();
            let items = list.value(row);
            Value::Array(
                (0..items.len())
                    .map(|i| value_at(items.as_ref(), i))
                    .collect(),
            )
        }
        ArrowType::Struct(fields) => {
            let s = array.as_any().downcast_ref::<StructArray>().unwrap();
            let mut obj = Row::new();
            for (i, f) in fields.iter().enumerate() {
                obj.insert(f.name().clone(), value_at(s.column(i).as_ref(), row));
            }
            Value::Object(obj)
        }
        other => Value::String(format!("<unsupported arrow type {other}>")),
    }
}

/// The user columns of every row of `batch` as JSON objects (metadata columns skipped).
pub fn batch_to_rows(batch: &RecordBatch) -> Vec<Row> {
    let schema = batch.schema();
    let cols: Vec<(usize, &str)> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| !batch::is_meta(f.name()))
        .map(|(i, f)| (i, f.name().as_str()))
        .collect();
    (0..batch.num_rows())
        .map(|r| {
            cols.iter()
                .map(|(i, name)| (name.to_string(), value_at(batch.column(*i).as_ref(), r)))
                .collect()
        })
        .collect()
}

/// Why a value does not fit a column.
fn mismatch(field: &str, want: &DataType, got: &Value) -> String {
    format!("field `{field}`: expected {want}, got {}", short(got))
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!(
            "{}...",
            &s[..s
                .char_indices()
                .take_while(|(i, _)| *i < 57)
                .last()
                .map(|(i, c)| i + c.len_utf8())
                .unwrap_or(0)]
        )
    } else {
        s
    }
}

fn builder_for(t: &DataType, capacity: usize) -> Box<dyn ArrayBuilder> {
    match t {
        DataType::Boolean => Box::new(BooleanBuilder::with_capacity(capacity)),
        DataType::Int64 => Box::new(Int64Builder::with_capacity(capacity)),
        DataType::Float64 => Box::new(Float64Builder::with_capacity(capacity)),
        DataType::String => Box::new(StringBuilder::with_capacity(capacity, capacity * 8)),
        DataType::Timestamp => Box::new(TimestampMillisecondBuilder::with_capacity(capacity)),
        DataType::List(item) => Box::new(
            ListBuilder::new(builder_for(item, 0)).with_field(arrow::datatypes::Field::new(
                "item",
                item.to_arrow(),
                true,
            )),
        ),
        DataType::Struct(fields) => Box::new(StructBuilder::new(
            fields.iter().map(|f| f.to_arrow()).collect::<Vec<_>>(),
            fields
                .iter()
                .map(|f| builder_for(&f.data_type, capacity))
                .collect(),
        )),
    }
}

/// Appends `v` to a builder made by [`builder_for`] for type `t`.
fn append(b: &mut dyn ArrayBuilder, t: &DataType, v: &Value, field: &str) -> Result<(), String> {
    macro_rules! b {
        ($ty:ty) => {
            b.as_any_mut()
                .downcast_mut::<$ty>()
                .expect("builder matches type")
        };
    }
    match t {
        DataType::Boolean => {
            let b = b!(BooleanBuilder);
            match v {
                Value::Null => b.append_null(),
                Value::Bool(x) => b.append_value(*x),
                Value::String(s) if s == "true" || s == "false" => b.append_value(s == "true"),
                _ => return Err(mismatch(field, t, v)),
            }
        }
        DataType::Int64 => {
            let b = b!(Int64Builder);
            match v {
                Value::Null => b.append_null(),
                Value::Number(n) if n.is_i64() => b.append_value(n.as_i64().unwrap()),
                Value::Number(n)
                    if n.as_f64()
                        .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.0e15) =>
                {
                    b.append_value(n.as_f64().unwrap() as i64)
                }
                _ => return Err(mismatch(field, t, v)),
            }
        }
        DataType::Float64 => {
            let b = b!(Float64Builder);
            match v {
                Value::Null => b.append_null(),
                Value::Number(n) => b.append_value(n.as_f64().unwrap_or(f64::NAN)),
                _ => return Err(mismatch(field, t, v)),
            }
        }
        DataType::String => {
            let b = b!(StringBuilder);
            match v {
                Value::Null => b.append_null(),
                Value::String(s) => b.append_value(s),
                _ => return Err(mismatch(field, t, v)),
            }
        }
        DataType::Timestamp => {
            let b = b!(TimestampMillisecondBuilder);
            match v {
                Value::Null => b.append_null(),
                Value::Number(n) if n.is_i64() => b.append_value(n.as_i64().unwrap()),
                Value::String(s) => match parse_timestamp(s) {
                    Some(ms) => b.append_value(ms),
                    None => return Err(format!("field `{field}`: `{s}` is not a timestamp (RFC 3339 or integer milliseconds)")),
                },
                _ => return Err(mismatch(field, t, v)),
            }
        }
        DataType::List(item) => {
            let b = b!(ListBuilder<Box<dyn ArrayBuilder>>);
            match v {
                Value::Null => b.append_null(),
                Value::Array(items) => {
                    for it in items {
                        append(b.values().as_mut(), item, it, field)?;
                    }
                    b.append(true);
                }
                _ => return Err(mismatch(field, t, v)),
            }
        }
        DataType::Struct(fields) => {
            let b = b!(StructBuilder);
            match v {
                Value::Null => {
                    for (i, f) in fields.iter().enumerate() {
                        let child: &mut dyn ArrayBuilder = struct_child(b, i);
                        append(child, &f.data_type, &Value::Null, &f.name)?;
                    }
                    b.append_null();
                }
                Value::Object(o) => {
                    for (i, f) in fields.iter().enumerate() {
                        let child: &mut dyn ArrayBuilder = struct_child(b, i);
                        append(
                            child,
                            &f.data_type,
                            o.get(&f.name).unwrap_or(&Value::Null),
                            &f.name,
                        )?;
                    }
                    b.append(true);
                }
                _ => return Err(mismatch(field, t, v)),
            }
        }
    }
    Ok(())
}

fn struct_child(b: &mut StructBuilder, i: usize) -> &mut dyn ArrayBuilder {
    // StructBuilder exposes typed access only; the boxed builders were created by builder_for.
    b.field_builders_mut()[i].as_mut()
}

/// Parses RFC 3339 text (or a date `YYYY-MM-DD`, or integer text) to milliseconds.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    if let Ok(ms) = s.trim().parse::<i64>() {
        return Some(ms);
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s.trim()) {
        return Some(dt.timestamp_millis());
    }
    if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S%.f") {
        return Some(dt.and_utc().timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_millis())
}

/// Converts rows to one array per schema column. On failure: the row index and a message
/// naming the field. Missing fields are null; a non-nullable column refuses null.
pub fn rows_to_arrays(rows: &[Row], schema: &Schema) -> Result<Vec<ArrayRef>, (usize, String)> {
    let mut builders: Vec<Box<dyn ArrayBuilder>> = schema
        .fields
        .iter()
        .map(|f| builder_for(&f.data_type, rows.len()))
        .collect();
    // One lookup per field: a row's values are looked up once, its non-nullable fields
    // checked first (the error `check_row` gives), then appended.
    let mut values: Vec<&Value> = Vec::with_capacity(schema.fields.len());
    for (r, row) in rows.iter().enumerate() {
        values.clear();
        values.extend(
            schema
                .fields
                .iter()
                .map(|f| row.get(&f.name).unwrap_or(&Value::Null)),
        );
        if let Some(f) = schema
            .fields
            .iter()
            .zip(&values)
            .find(|(f, v)| v.is_null() && !f.nullable)
            .map(|(f, _)| f)
        {
            return Err((r, not_nullable(&f.name)));
        }
        for ((f, b), v) in schema.fields.iter().zip(builders.iter_mut()).zip(&values) {
            append(b.as_mut(), &f.data_type, v, &f.name).map_err(|m| (r, m))?;
        }
    }
    Ok(builders.iter_mut().map(|b| b.finish()).collect())
}

/// Checks that a row fits a schema without building anything: the error names the field.
pub fn check_row(row: &Row, schema: &Schema) -> Result<(), String> {
    for f in schema.fields.iter().filter(|f| !f.nullable) {
        if row.get(&f.name).unwrap_or(&Value::Null).is_null() {
            return Err(not_nullable(&f.name));
        }
    }
    Ok(())
}

fn not_nullable(field: &str) -> String {
    format!("field `{field}`: missing or null, but the column is not nullable")
}

/// Rows and their metadata to a batch of `schema`.
pub fn rows_to_batch(
    rows: &[Row],
    metas: &[ElementMeta],
    schema: &Schema,
) -> ExecResult<RecordBatch> {
    let arrays = rows_to_arrays(rows, schema)
        .map_err(|(r, m)| ExecError::Internal(format!("row {r}: {m}")))?;
    Ok(batch::with_meta(schema, arrays, metas)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_model::Field;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("user", DataType::String),
            Field::new("n", DataType::Int64),
            Field::new("ts", DataType::Timestamp),
            Field::new("tags", DataType::List(Box::new(DataType::String))),
        ])
    }

    #[test]
    fn rows_round_trip_through_arrow() {
        let rows: Vec<Row> = vec![
            json!({"user": "a", "n": 1, "ts": 1000, "tags": ["x", "y"]})
                .as_object()
                .unwrap()
                .clone(),
            json!({"user": null, "n": 2, "ts": "1970-01-01T00:00:02Z", "tags": []})
                .as_object()
                .unwrap()
                .clone(),
        ];
        let metas = vec![ElementMeta::default(); 2];
        let b = rows_to_batch(&rows, &metas, &schema()).unwrap();
        let back = batch_to_rows(&b);
        assert_eq!(back[0], rows[0]);
        assert_eq!(back[1]["ts"], json!(2000));
        assert_eq!(back[1]["user"], Value::Null);
    }

    #[test]
    fn type_mismatch_names_row_and_field() {
        let rows: Vec<Row> = vec![
            json!({"user": "a", "n": 1}).as_object().unwrap().clone(),
            json!({"user": "b", "n": "two"})
                .as_object()
                .unwrap()
                .clone(),
        ];
        let (r, msg) = rows_to_arrays(&rows, &schema()).unwrap_err();
        assert_eq!(r, 1);
        assert!(msg.contains("`n`"), "{msg}");
    }

    #[test]
    fn a_missing_required_field_is_reported_before_a_type_mismatch_as_check_row_does() {
        let schema = Schema::new(vec![
            Field::new("n", DataType::Int64),
            Field {
                nullable: false,
                ..Field::new("id", DataType::String)
            },
        ]);
        let row = json!({"n": "two"}).as_object().unwrap().clone();
        let expected = check_row(&row, &schema).unwrap_err();
        assert!(expected.contains("`id`"), "{expected}");
        let rows = vec![json!({"n": 1, "id": "a"}).as_object().unwrap().clone(), row];
        assert_eq!(rows_to_arrays(&rows, &schema).unwrap_err(), (1, expected));
    }
}
