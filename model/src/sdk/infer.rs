//! Schema inference for rows given inline as JSON ([`PipelineBuilder::create`](super::PipelineBuilder::create)).

use crate::error::{ModelError, Result};
use crate::schema::{DataType, Field, Schema};
use serde_json::Value;

/// Rows as JSON objects: a value that is not an object becomes `{"element": value}`, as Beam
/// YAML's Create does.
pub(crate) fn rows_from_values(values: impl IntoIterator<Item = Value>) -> Vec<Value> {
    values
        .into_iter()
        .map(|v| match v {
            Value::Object(_) => v,
            other => {
                let mut row = serde_json::Map::new();
                row.insert("element".into(), other);
                Value::Object(row)
            }
        })
        .collect()
}

/// The schema of JSON rows: columns in order of first appearance, every column nullable.
///
/// Booleans are `bool`, integers `int64`, other numbers `float64` (a column holding both
/// becomes `float64`), strings `string`, arrays `list<item>` and objects structs (their fields
/// merged over all rows). Nulls and missing keys fit any type. The error names the column
/// whose type cannot be inferred: null in every row, an empty list in every row, or two
/// different kinds of values.
///
/// ```
/// use serde_json::json;
/// let schema = weir_model::sdk::infer_schema(&[json!({"user": "ann", "n": 1}), json!({"n": 2.5})])?;
/// assert_eq!(schema.to_string(), "(user: string, n: float64)");
/// # Ok::<(), weir_model::ModelError>(())
/// ```
pub fn infer_schema(rows: &[Value]) -> Result<Schema> {
    let mut columns = Vec::new();
    for row in rows {
        let Value::Object(map) = row else {
            return Err(ModelError::transform(
                "Create",
                format!("a row must be a JSON object, not `{row}`"),
            ));
        };
        merge_object(&mut columns, map, "")?;
    }
    to_fields(columns, "").map(Schema::new)
}

/// What the values seen so far say about a type; `Nothing` until a non-null value is seen.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Nothing,
    Bool,
    Int,
    Float,
    Str,
    List(Box<Shape>),
    Object(Vec<(String, Shape)>),
}

fn shape_of(value: &Value, path: &str) -> Result<Shape> {
    Ok(match value {
        Value::Null => Shape::Nothing,
        Value::Bool(_) => Shape::Bool,
        Value::Number(n) if n.is_i64() || n.is_u64() => Shape::Int,
        Value::Number(_) => Shape::Float,
        Value::String(_) => Shape::Str,
        Value::Array(items) => {
            let mut item = Shape::Nothing;
            for v in items {
                item = merge(item, shape_of(v, path)?, path)?;
            }
            Shape::List(Box::new(item))
        }
        Value::Object(map) => {
            let mut fields = Vec::new();
            merge_object(&mut fields, map, &format!("{path}."))?;
            Shape::Object(fields)
        }
    })
}

fn merge_object(
    fields: &mut Vec<(String, Shape)>,
    map: &serde_json::Map<String, Value>,
    prefix: &str,
) -> Result<()> {
    for (name, value) in map {
        let path = format!("{prefix}{name}");
        let shape = shape_of(value, &path)?;
        match fields.iter_mut().find(|(n, _)| n == name) {
            Some((_, known)) => {
                *known = merge(std::mem::replace(known, Shape::Nothing), shape, &path)?
            }
            None => fields.push((name.clone(), shape)),
        }
    }
    Ok(())
}

fn merge(a: Shape, b: Shape, path: &str) -> Result<Shape> {
    Ok(match (a, b) {
        (Shape::Nothing, s) | (s, Shape::Nothing) => s,
        (a, b) if a == b => a,
        (Shape::Int, Shape::Float) | (Shape::Float, Shape::Int) => Shape::Float,
        (Shape::List(x), Shape::List(y)) => Shape::List(Box::new(merge(*x, *y, path)?)),
        (Shape::Object(mut fa), Shape::Object(fb)) => {
            for (name, shape) in fb {
                let field_path = format!("{path}.{name}");
                match fa.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, known)) => {
                        *known =
                            merge(std::mem::replace(known, Shape::Nothing), shape, &field_path)?
                    }
                    None => fa.push((name, shape)),
                }
            }
            Shape::Object(fa)
        }
        (a, b) => {
            return Err(ModelError::column(
                "Create",
                path,
                format!(
                    "holds both {} and {} values; give the schema with `create_with_schema`",
                    kind(&a),
                    kind(&b)
                ),
            ))
        }
    })
}

fn kind(s: &Shape) -> &'static str {
    match s {
        Shape::Nothing => "null",
        Shape::Bool => "bool",
        Shape::Int => "int64",
        Shape::Float => "float64",
        Shape::Str => "string",
        Shape::List(_) => "list",
        Shape::Object(_) => "object",
    }
}

fn to_fields(fields: Vec<(String, Shape)>, prefix: &str) -> Result<Vec<Field>> {
    fields
        .into_iter()
        .map(|(name, shape)| {
            let path = format!("{prefix}{name}");
            Ok(Field::new(name, to_data_type(shape, &path)?))
        })
        .collect()
}

fn to_data_type(shape: Shape, path: &str) -> Result<DataType> {
    Ok(match shape {
        Shape::Nothing => {
            return Err(ModelError::column(
                "Create",
                path,
                "is null (or an empty list) in every row, so its type is unknown; give the schema with `create_with_schema`",
            ))
        }
        Shape::Bool => DataType::Boolean,
        Shape::Int => DataType::Int64,
        Shape::Float => DataType::Float64,
        Shape::Str => DataType::String,
        Shape::List(item) => DataType::List(Box::new(to_data_type(*item, path)?)),
        Shape::Object(fields) => DataType::Struct(to_fields(fields, &format!("{path}."))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_rows_infer_lists_and_structs() {
        let rows = [
            json!({"tags": [], "at": {"x": 1}}),
            json!({"tags": ["a"], "at": {"x": 2.0, "y": "b"}, "ok": null}),
            json!({"ok": true}),
        ];
        let s = infer_schema(&rows).unwrap();
        assert_eq!(
            s.to_string(),
            "(tags: list<string>, at: struct<x: float64, y: string>, ok: bool)"
        );
    }

    #[test]
    fn unknown_and_conflicting_columns_are_named() {
        let err = infer_schema(&[json!({"a": null})]).unwrap_err().to_string();
        assert!(err.contains("column `a`"), "{err}");
        let err = infer_schema(&[json!({"s": {"b": 1}}), json!({"s": {"b": "x"}})])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("column `s.b`") && err.contains("int64 and string"),
            "{err}"
        );
    }

    #[test]
    fn scalars_become_element_rows() {
        assert_eq!(rows_from_values([json!(1)]), vec![json!({"element": 1})]);
    }
}
