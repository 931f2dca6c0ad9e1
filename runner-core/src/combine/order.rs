//! A total order on JSON values of one column type, for min/max and TopN.

use serde_json::Value;
use std::cmp::Ordering;

/// Compares two values of one orderable column type: numbers numerically (integers exactly),
/// strings by bytes, booleans `false < true`; timestamps are integer milliseconds. Nulls
/// sort first; values of different JSON kinds (which one column never mixes) by kind.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i.cmp(&j),
            _ => {
                let (f, g) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                f.total_cmp(&g)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => kind_rank(a)
            .cmp(&kind_rank(b))
            .then_with(|| a.to_string().cmp(&b.to_string())),
    }
}

fn kind_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_numerically_and_nulls_first() {
        assert_eq!(compare_values(&json!(9), &json!(10)), Ordering::Less);
        assert_eq!(compare_values(&json!(1.5), &json!(1)), Ordering::Greater);
        assert_eq!(compare_values(&json!("b"), &json!("ab")), Ordering::Greater);
        assert_eq!(compare_values(&Value::Null, &json!(false)), Ordering::Less);
        assert_eq!(
            compare_values(&json!(true), &json!(false)),
            Ordering::Greater
        );
    }
}
