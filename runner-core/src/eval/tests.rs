//! Exact-output tests for every operator and function, nulls included.

use super::*;
use crate::batch::ElementMeta;
use crate::convert;
use serde_json::{json, Value};
use weir_model::expr::{col, lit, Function as F};
use weir_model::Field;

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("s", DataType::String),
        Field::new("n", DataType::Int64),
        Field::new("d", DataType::Int64),
        Field::new("x", DataType::Float64),
        Field::new("b", DataType::Boolean),
        Field::new("t", DataType::Timestamp),
        Field::new("t2", DataType::Timestamp),
    ])
}

/// A batch (with metadata columns) of the given rows over [`schema`].
fn batch(rows: Value) -> RecordBatch {
    let rows: Vec<weir_model::udf::Row> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect();
    let metas = vec![ElementMeta::default(); rows.len()];
    convert::rows_to_batch(&rows, &metas, &schema()).unwrap()
}

/// Three rows with a null in every column of the middle one.
fn sample() -> RecordBatch {
    batch(json!([
        {"s": "Hello World", "n": 7, "d": 2, "x": 1.5, "b": true, "t": 1_704_067_200_123i64, "t2": 1_704_067_200_000i64},
        {},
        {"s": "  ünï  ", "n": -7, "d": 0, "x": -2.5, "b": false, "t": -1, "t2": 0},
    ]))
}

/// Evaluates and checks the Arrow type against the model's type, returning JSON values.
fn eval(expr: Expr, b: &RecordBatch) -> Vec<Value> {
    let out = evaluate(&expr, b).unwrap_or_else(|e| panic!("{expr}: {e}"));
    let want = expr.data_type(&schema()).unwrap().to_arrow();
    assert_eq!(out.data_type(), &want, "type of `{expr}`");
    assert_eq!(out.len(), b.num_rows());
    (0..out.len())
        .map(|i| convert::value_at(out.as_ref(), i))
        .collect()
}

fn call(f: F, args: Vec<Expr>) -> Expr {
    Expr::call(f, args)
}

#[test]
fn integer_arithmetic_propagates_nulls_and_wraps() {
    let b = sample();
    assert_eq!(
        eval(col("n").add(col("d")), &b),
        vec![json!(9), Value::Null, json!(-7)]
    );
    assert_eq!(
        eval(col("n").sub(lit(1)), &b),
        vec![json!(6), Value::Null, json!(-8)]
    );
    assert_eq!(
        eval(col("n").mul(col("d")), &b),
        vec![json!(14), Value::Null, json!(0)]
    );
    assert_eq!(
        eval(lit(i64::MAX).add(col("d")), &b),
        vec![json!(i64::MIN + 1), Value::Null, json!(i64::MAX)]
    );
    assert_eq!(
        eval(Expr::Negate(Box::new(col("n"))), &b),
        vec![json!(-7), Value::Null, json!(7)]
    );
}

#[test]
fn null_literals_propagate_through_every_operator() {
    let b = sample();
    let null = || lit(Literal::Null);
    assert_eq!(eval(null().add(lit(1)), &b), vec![Value::Null; 3]);
    assert_eq!(eval(col("t").sub(null()), &b), vec![Value::Null; 3]);
    assert_eq!(eval(null().mul(null()), &b), vec![Value::Null; 3]);
    assert_eq!(eval(null().div(col("x")), &b), vec![Value::Null; 3]);
    assert_eq!(
        eval(Expr::Negate(Box::new(null())), &b),
        vec![Value::Null; 3]
    );
    assert_eq!(eval(Expr::Not(Box::new(null())), &b), vec![Value::Null; 3]);
    assert_eq!(eval(call(F::Hash, vec![null()]), &b), vec![Value::Null; 3]);
    assert_eq!(
        eval(call(F::Concat, vec![col("s"), null()]), &b),
        vec![Value::Null; 3]
    );
    assert_eq!(eval(null().cast(DataType::Int64), &b), vec![Value::Null; 3]);
    assert_eq!(eval(call(F::Abs, vec![null()]), &b), vec![Value::Null; 3]);
}

#[test]
fn division_and_modulo_by_zero_are_null() {
    let b = sample();
    assert_eq!(
        eval(col("n").div(col("d")), &b),
        vec![json!(3), Value::Null, Value::Null]
    );
    assert_eq!(
        eval(col("n").rem(col("d")), &b),
        vec![json!(1), Value::Null, Value::Null]
    );
    assert_eq!(
        eval(col("n").rem(lit(3)), &b),
        vec![json!(1), Value::Null, json!(-1)]
    );
    assert_eq!(
        eval(col("x").div(lit(0.0)), &b),
        vec![Value::Null, Value::Null, Value::Null]
    );
    assert_eq!(
        eval(col("x").div(lit(0)), &b),
        vec![Value::Null, Value::Null, Value::Null]
    );
    assert_eq!(
        eval(lit(i64::MIN).div(lit(-1)), &b),
        vec![json!(i64::MIN); 3]
    );
    assert_eq!(eval(lit(7).div(lit(0)), &b), vec![Value::Null; 3]);
}

#[test]
fn int_with_float_widens_to_float() {
    let b = sample();
    assert_eq!(
        eval(col("n").mul(col("x")), &b),
        vec![json!(10.5), Value::Null, json!(17.5)]
    );
    assert_eq!(
        eval(col("x").add(lit(1)), &b),
        vec![json!(2.5), Value::Null, json!(-1.5)]
    );
    assert_eq!(
        eval(col("n").div(lit(2.0)), &b),
        vec![json!(3.5), Value::Null, json!(-3.5)]
    );
    assert_eq!(
        eval(col("n").gt(col("x")), &b),
        vec![json!(true), Value::Null, json!(false)]
    );
}

#[test]
fn timestamp_arithmetic_is_in_milliseconds() {
    let b = sample();
    assert_eq!(
        eval(col("t").add(lit(1000)), &b),
        vec![json!(1_704_067_201_123i64), Value::Null, json!(999)]
    );
    assert_eq!(eval(lit(1000).add(col("t")), &b)[2], json!(999));
    assert_eq!(eval(col("t").sub(lit(1)), &b)[2], json!(-2));
    assert_eq!(
        eval(col("t").sub(col("t2")), &b),
        vec![json!(123), Value::Null, json!(-1)]
    );
}

#[test]
fn comparisons_on_every_orderable_type() {
    let b = sample();
    assert_eq!(
        eval(col("s").eq(lit("Hello World")), &b),
        vec![json!(true), Value::Null, json!(false)]
    );
    assert_eq!(
        eval(col("s").lt(lit("B")), &b),
        vec![json!(false), Value::Null, json!(true)]
    );
    assert_eq!(
        eval(col("n").not_eq(lit(7)), &b),
        vec![json!(false), Value::Null, json!(true)]
    );
    assert_eq!(
        eval(col("n").lt_eq(lit(-7)), &b),
        vec![json!(false), Value::Null, json!(true)]
    );
    assert_eq!(
        eval(col("x").gt_eq(lit(1.5)), &b),
        vec![json!(true), Value::Null, json!(false)]
    );
    assert_eq!(
        eval(col("t").gt(col("t2")), &b),
        vec![json!(true), Value::Null, json!(false)]
    );
    assert_eq!(
        eval(col("b").eq(lit(true)), &b),
        vec![json!(true), Value::Null, json!(false)]
    );
    assert_eq!(
        eval(col("b").gt(lit(false)), &b),
        vec![json!(true), Value::Null, json!(false)]
    );
    assert_eq!(
        eval(col("n").eq(lit(Literal::Null)), &b),
        vec![Value::Null; 3]
    );
}

#[test]
fn and_or_follow_kleene_logic() {
    let b = batch(json!([
        {"b": true, "n": 1}, {"b": true, "n": 0}, {"b": true},
        {"b": false, "n": 1}, {"b": false, "n": 0}, {"b": false},
        {"n": 1}, {"n": 0}, {},
    ]));
    let other = col("n").eq(lit(1));
    let t = json!(true);
    let f = json!(false);
    let n = Value::Null;
    assert_eq!(
        eval(col("b").and(other.clone()), &b),
        vec![
            t.clone(),
            f.clone(),
            n.clone(),
            f.clone(),
            f.clone(),
            f.clone(),
            n.clone(),
            f.clone(),
            n.clone()
        ]
    );
    assert_eq!(
        eval(col("b").or(other), &b),
        vec![
            t.clone(),
            t.clone(),
            t.clone(),
            t.clone(),
            f.clone(),
            n.clone(),
            t.clone(),
            n.clone(),
            n.clone()
        ]
    );
    assert_eq!(
        eval(Expr::Not(Box::new(col("b"))), &b)[..3],
        [f.clone(), f.clone(), f.clone()]
    );
    assert_eq!(eval(Expr::Not(Box::new(col("b"))), &b)[6], n);
    assert_eq!(eval(lit(Literal::Null).and(lit(false)), &b)[0], f);
}

#[test]
fn is_null_and_is_not_null() {
    let b = sample();
    assert_eq!(
        eval(Expr::IsNull(Box::new(col("s"))), &b),
        vec![json!(false), json!(true), json!(false)]
    );
    assert_eq!(
        eval(Expr::IsNotNull(Box::new(col("t"))), &b),
        vec![json!(true), json!(false), json!(true)]
    );
    assert_eq!(
        eval(Expr::IsNull(Box::new(lit(Literal::Null))), &b),
        vec![json!(true); 3]
    );
}

#[test]
fn literals_broadcast_to_the_batch_length() {
    let b = sample();
    assert_eq!(eval(lit(5), &b), vec![json!(5); 3]);
    assert_eq!(eval(lit("a"), &b), vec![json!("a"); 3]);
    assert_eq!(eval(lit(Literal::Null), &b), vec![Value::Null; 3]);
    assert_eq!(eval(lit(2).mul(lit(3)), &b), vec![json!(6); 3]);
    assert_eq!(
        eval(call(F::Upper, vec![lit("x")]), &b),
        vec![json!("X"); 3]
    );
    let empty = batch(json!([]));
    assert_eq!(eval(lit(5), &empty), Vec::<Value>::new());
}

#[test]
fn casts_turn_failures_into_null() {
    let b = batch(json!([{"s": "12"}, {"s": "abc"}, {"s": " 1 "}, {}, {"s": "-3"}, {"s": "1.5"}]));
    assert_eq!(
        eval(col("s").cast(DataType::Int64), &b),
        vec![
            json!(12),
            Value::Null,
            json!(1),
            Value::Null,
            json!(-3),
            Value::Null
        ]
    );
    assert_eq!(eval(col("s").cast(DataType::Float64), &b)[0], json!(12.0));
    let b = sample();
    assert_eq!(
        eval(col("x").cast(DataType::Int64), &b),
        vec![json!(1), Value::Null, json!(-2)]
    );
    assert_eq!(
        eval(col("n").cast(DataType::Float64), &b),
        vec![json!(7.0), Value::Null, json!(-7.0)]
    );
    assert_eq!(
        eval(col("d").cast(DataType::Boolean), &b),
        vec![json!(true), Value::Null, json!(false)]
    );
    assert_eq!(
        eval(col("b").cast(DataType::Int64), &b),
        vec![json!(1), Value::Null, json!(0)]
    );
    assert_eq!(
        eval(col("b").cast(DataType::String), &b),
        vec![json!("true"), Value::Null, json!("false")]
    );
    assert_eq!(
        eval(col("n").cast(DataType::String), &b),
        vec![json!("7"), Value::Null, json!("-7")]
    );
    assert_eq!(
        eval(col("x").cast(DataType::String), &b),
        vec![json!("1.5"), Value::Null, json!("-2.5")]
    );
    assert_eq!(
        eval(col("t").cast(DataType::String), &b),
        vec![
            json!("2024-01-01T00:00:00.123Z"),
            Value::Null,
            json!("1969-12-31T23:59:59.999Z")
        ]
    );
    assert_eq!(
        eval(col("t").cast(DataType::Int64), &b),
        vec![json!(1_704_067_200_123i64), Value::Null, json!(-1)]
    );
    assert_eq!(
        eval(col("n").cast(DataType::Timestamp), &b),
        vec![json!(7), Value::Null, json!(-7)]
    );
    assert_eq!(
        eval(col("x").cast(DataType::Timestamp), &b),
        vec![json!(1), Value::Null, json!(-2)]
    );
    assert_eq!(eval(col("t").cast(DataType::Float64), &b)[2], json!(-1.0));
    let texts = batch(json!([
        {"s": "2024-01-01T00:00:00Z"}, {"s": "2024-01-01T01:00:00+01:00"}, {"s": "2024-01-01"}, {"s": "yesterday"}, {"s": "1500"}
    ]));
    assert_eq!(
        eval(col("s").cast(DataType::Timestamp), &texts),
        vec![
            json!(1_704_067_200_000i64),
            json!(1_704_067_200_000i64),
            json!(1_704_067_200_000i64),
            Value::Null,
            json!(1500)
        ]
    );
    let bools = batch(
        json!([{"s": "true"}, {"s": "FALSE"}, {"s": "maybe"}, {"s": "1"}, {"s": "Yes"}, {"s": "no"}, {"s": "t"}]),
    );
    assert_eq!(
        eval(col("s").cast(DataType::Boolean), &bools),
        vec![
            json!(true),
            json!(false),
            Value::Null,
            json!(true),
            json!(true),
            json!(false),
            json!(true)
        ]
    );
}

#[test]
fn case_picks_the_first_true_branch_and_null_conditions_are_false() {
    let b = sample();
    let e = Expr::Case {
        when: vec![
            (col("n").gt(lit(0)), lit("pos")),
            (col("b").eq(lit(false)), lit("off")),
        ],
        otherwise: Some(Box::new(lit("other"))),
    };
    assert_eq!(
        eval(e, &b),
        vec![json!("pos"), json!("other"), json!("off")]
    );
    let no_else = Expr::Case {
        when: vec![(col("n").gt(lit(0)), col("n"))],
        otherwise: None,
    };
    assert_eq!(eval(no_else, &b), vec![json!(7), Value::Null, Value::Null]);
    let widened = Expr::Case {
        when: vec![(col("b"), col("n"))],
        otherwise: Some(Box::new(col("x"))),
    };
    assert_eq!(
        eval(widened, &b),
        vec![json!(7.0), Value::Null, json!(-2.5)]
    );
}

#[test]
fn string_functions() {
    let b = sample();
    assert_eq!(
        eval(call(F::Lower, vec![col("s")]), &b),
        vec![json!("hello world"), Value::Null, json!("  ünï  ")]
    );
    assert_eq!(
        eval(call(F::Upper, vec![col("s")]), &b),
        vec![json!("HELLO WORLD"), Value::Null, json!("  ÜNÏ  ")]
    );
    assert_eq!(
        eval(call(F::Length, vec![col("s")]), &b),
        vec![json!(11), Value::Null, json!(7)]
    );
    assert_eq!(
        eval(call(F::Trim, vec![col("s")]), &b),
        vec![json!("Hello World"), Value::Null, json!("ünï")]
    );
    assert_eq!(
        eval(call(F::Concat, vec![col("s"), lit("!"), lit("?")]), &b),
        vec![json!("Hello World!?"), Value::Null, json!("  ünï  !?")]
    );
    assert_eq!(
        eval(call(F::StartsWith, vec![col("s"), lit("Hell")]), &b),
        vec![json!(true), Value::Null, json!(false)]
    );
    assert_eq!(
        eval(call(F::EndsWith, vec![col("s"), lit("ld")]), &b),
        vec![json!(true), Value::Null, json!(false)]
    );
    assert_eq!(
        eval(call(F::Contains, vec![col("s"), lit("nï")]), &b),
        vec![json!(false), Value::Null, json!(true)]
    );
    assert_eq!(
        eval(call(F::Replace, vec![col("s"), lit("o"), lit("0")]), &b),
        vec![json!("Hell0 W0rld"), Value::Null, json!("  ünï  ")]
    );
    assert_eq!(
        eval(call(F::Replace, vec![col("s"), lit(""), lit("x")]), &b)[0],
        json!("Hello World")
    );
    assert_eq!(
        eval(
            call(F::Replace, vec![col("s"), lit(Literal::Null), lit("x")]),
            &b
        )[0],
        Value::Null
    );
}

#[test]
fn substr_is_one_based_like_spark() {
    let b = batch(json!([{"s": "abcdé"}, {}]));
    let sub =
        |start: i64, len: i64| eval(call(F::Substr, vec![col("s"), lit(start), lit(len)]), &b);
    assert_eq!(sub(1, 2), vec![json!("ab"), Value::Null]);
    assert_eq!(sub(0, 2), vec![json!("ab"), Value::Null]);
    assert_eq!(sub(4, 10), vec![json!("dé"), Value::Null]);
    assert_eq!(sub(9, 2), vec![json!(""), Value::Null]);
    assert_eq!(sub(-2, 2), vec![json!("dé"), Value::Null]);
    assert_eq!(sub(-2, 1), vec![json!("d"), Value::Null]);
    assert_eq!(sub(-7, 3), vec![json!("a"), Value::Null]);
    assert_eq!(sub(2, -1), vec![json!(""), Value::Null]);
    // Bounds from columns take the row-wise path with the same rule.
    let rows = batch(
        json!([{"s": "abcdé", "n": 2, "d": 3}, {"s": "abcdé", "n": -1, "d": 5}, {"s": "x", "d": 1}]),
    );
    assert_eq!(
        eval(call(F::Substr, vec![col("s"), col("n"), col("d")]), &rows),
        vec![json!("bcd"), json!("é"), Value::Null]
    );
}

#[test]
fn regular_expressions() {
    let b = batch(json!([{"s": "order-42-x"}, {"s": "none"}, {}]));
    assert_eq!(
        eval(call(F::RegexpLike, vec![col("s"), lit(r"\d+")]), &b),
        vec![json!(true), json!(false), Value::Null]
    );
    assert_eq!(
        eval(
            call(
                F::RegexpExtract,
                vec![col("s"), lit(r"(\w+)-(\d+)"), lit(2)]
            ),
            &b
        ),
        vec![json!("42"), Value::Null, Value::Null]
    );
    assert_eq!(
        eval(
            call(
                F::RegexpExtract,
                vec![col("s"), lit(r"(\w+)-(\d+)"), lit(0)]
            ),
            &b
        )[0],
        json!("order-42")
    );
    assert_eq!(
        eval(
            call(F::RegexpExtract, vec![col("s"), lit(r"(\d+)"), lit(5)]),
            &b
        )[0],
        Value::Null
    );
    // Patterns from a column: each distinct pattern compiled once.
    let per_row = batch(json!([{"s": "abc", "t": 0}, {"s": "^a"}, {"s": "x"}]));
    let e = call(F::RegexpLike, vec![lit("abc"), col("s")]);
    assert_eq!(
        eval(e, &per_row),
        vec![json!(true), json!(true), json!(false)]
    );
}

#[test]
fn case_changes_of_ascii_columns_keep_nulls_and_offsets() {
    // ASCII only: the byte-wise path; sliced, so the values start past offset 0.
    let b =
        batch(json!([{"s": "skip"}, {"s": "MiXeD 42"}, {}, {"s": ""}, {"s": "ok"}])).slice(1, 4);
    assert_eq!(
        eval(call(F::Lower, vec![col("s")]), &b),
        vec![json!("mixed 42"), Value::Null, json!(""), json!("ok")]
    );
    assert_eq!(
        eval(call(F::Upper, vec![col("s")]), &b),
        vec![json!("MIXED 42"), Value::Null, json!(""), json!("OK")]
    );
}

#[test]
fn one_pattern_for_all_rows_gives_the_per_row_results() {
    let b = batch(json!([{"s": "a&channel_id=7"}, {}, {"s": "channel_id=x&b"}, {"s": "none"}]));
    let pattern = "(&|^)channel_id=([^&]*)";
    let extract = |p: Expr, g: Expr| eval(call(F::RegexpExtract, vec![col("s"), p, g]), &b);
    assert_eq!(
        extract(lit(pattern), lit(2)),
        vec![json!("7"), Value::Null, json!("x"), Value::Null]
    );
    // The same pattern computed per row (pattern + an empty substring) takes the per-row
    // path: the same answers.
    let per_row_pattern = call(
        F::Concat,
        vec![
            lit(pattern),
            call(F::Substr, vec![col("s"), lit(1), lit(0)]),
        ],
    );
    assert_eq!(
        extract(per_row_pattern, lit(2)),
        extract(lit(pattern), lit(2))
    );
    let nulls = vec![Value::Null; 4];
    assert_eq!(extract(lit(Literal::Null), lit(2)), nulls);
    assert_eq!(extract(lit(pattern), lit(Literal::Null)), nulls);
    assert_eq!(extract(lit(pattern), lit(9)), nulls);
    assert_eq!(
        eval(call(F::RegexpLike, vec![col("s"), lit("channel")]), &b),
        vec![json!(true), Value::Null, json!(true), json!(false)]
    );
    assert_eq!(
        eval(call(F::RegexpLike, vec![col("s"), lit(Literal::Null)]), &b),
        nulls
    );
    // A column without a value compiles no pattern, as row by row: no error.
    let empty = batch(json!([{}, {}]));
    assert_eq!(
        eval(call(F::RegexpLike, vec![col("s"), lit("(")]), &empty),
        vec![Value::Null; 2]
    );
    let no_rows = batch(json!([]));
    assert!(eval(call(F::RegexpLike, vec![col("s"), lit("(")]), &no_rows).is_empty());
    assert!(eval(
        call(F::RegexpExtract, vec![col("s"), lit("("), lit(1)]),
        &no_rows
    )
    .is_empty());
}

#[test]
fn invalid_regex_is_a_transform_error() {
    let b = sample();
    let err = evaluate(&call(F::RegexpLike, vec![col("s"), lit("(")]), &b).unwrap_err();
    assert!(matches!(err, ExecError::Transform { .. }), "{err}");
    let err = evaluate_in("Clean", &call(F::RegexpLike, vec![col("s"), lit("(")]), &b).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("Clean") && text.contains("invalid regular expression"),
        "{text}"
    );
}

#[test]
fn split_and_split_part() {
    let b = batch(json!([{"s": "a,b,,c"}, {"s": ""}, {}, {"s": "ab"}]));
    assert_eq!(
        eval(call(F::Split, vec![col("s"), lit(",")]), &b),
        vec![
            json!(["a", "b", "", "c"]),
            json!([""]),
            Value::Null,
            json!(["ab"])
        ]
    );
    assert_eq!(
        eval(call(F::Split, vec![col("s"), lit("")]), &b)[3],
        json!(["a", "b"])
    );
    let part = |n: i64| eval(call(F::SplitPart, vec![col("s"), lit(","), lit(n)]), &b);
    assert_eq!(
        part(2),
        vec![json!("b"), Value::Null, Value::Null, Value::Null]
    );
    assert_eq!(
        part(1),
        vec![json!("a"), json!(""), Value::Null, json!("ab")]
    );
    assert_eq!(
        part(-1),
        vec![json!("c"), json!(""), Value::Null, json!("ab")]
    );
    assert_eq!(part(-4)[0], json!("a"));
    assert_eq!(part(-5)[0], Value::Null);
    assert_eq!(part(0)[0], Value::Null);
    assert_eq!(part(5)[0], Value::Null);
}

#[test]
fn numeric_functions() {
    let b = batch(json!([{"n": -3, "x": -2.5}, {}, {"n": 4, "x": 2.4}, {"n": i64::MIN, "x": 0.5}]));
    assert_eq!(
        eval(call(F::Abs, vec![col("n")]), &b),
        vec![json!(3), Value::Null, json!(4), json!(i64::MIN)]
    );
    assert_eq!(
        eval(call(F::Abs, vec![col("x")]), &b),
        vec![json!(2.5), Value::Null, json!(2.4), json!(0.5)]
    );
    assert_eq!(
        eval(call(F::Round, vec![col("x")]), &b),
        vec![json!(-3.0), Value::Null, json!(2.0), json!(1.0)]
    );
    assert_eq!(
        eval(call(F::Floor, vec![col("x")]), &b),
        vec![json!(-3.0), Value::Null, json!(2.0), json!(0.0)]
    );
    assert_eq!(
        eval(call(F::Ceil, vec![col("x")]), &b),
        vec![json!(-2.0), Value::Null, json!(3.0), json!(1.0)]
    );
    assert_eq!(
        eval(call(F::Round, vec![col("n")]), &b),
        vec![json!(-3), Value::Null, json!(4), json!(i64::MIN)]
    );
}

#[test]
fn coalesce_takes_the_first_non_null() {
    let b = batch(json!([{"n": 1, "d": 2}, {"d": 3}, {}]));
    assert_eq!(
        eval(call(F::Coalesce, vec![col("n"), col("d")]), &b),
        vec![json!(1), json!(3), Value::Null]
    );
    assert_eq!(
        eval(call(F::Coalesce, vec![col("n"), col("d"), lit(0)]), &b),
        vec![json!(1), json!(3), json!(0)]
    );
    assert_eq!(
        eval(
            call(F::Coalesce, vec![lit(Literal::Null), col("n"), lit(1.5)]),
            &b
        ),
        vec![json!(1.0), json!(1.5), json!(1.5)]
    );
    assert_eq!(
        eval(call(F::Coalesce, vec![lit(Literal::Null)]), &b),
        vec![Value::Null; 3]
    );
}

#[test]
fn time_functions() {
    // 2024-03-05T17:42:13.250Z and a pre-epoch instant.
    let b = batch(
        json!([{"t": 1_709_660_533_250i64, "n": 1000, "s": "2024-03-05T17:42:13.25Z"}, {}, {"t": -1, "n": -1, "s": "nope"}]),
    );
    assert_eq!(
        eval(call(F::Millis, vec![col("t")]), &b),
        vec![json!(1_709_660_533_250i64), Value::Null, json!(-1)]
    );
    assert_eq!(
        eval(call(F::ToTimestamp, vec![col("n")]), &b),
        vec![json!(1000), Value::Null, json!(-1)]
    );
    assert_eq!(
        eval(call(F::ToTimestamp, vec![col("s")]), &b),
        vec![json!(1_709_660_533_250i64), Value::Null, Value::Null]
    );
    let trunc = |unit: &str| eval(call(F::DateTrunc, vec![lit(unit), col("t")]), &b);
    assert_eq!(
        trunc("second"),
        vec![json!(1_709_660_533_000i64), Value::Null, json!(-1000)]
    );
    assert_eq!(
        trunc("minute"),
        vec![json!(1_709_660_520_000i64), Value::Null, json!(-60_000)]
    );
    assert_eq!(
        trunc("hour"),
        vec![json!(1_709_658_000_000i64), Value::Null, json!(-3_600_000)]
    );
    assert_eq!(
        trunc("day"),
        vec![json!(1_709_596_800_000i64), Value::Null, json!(-86_400_000)]
    );
    assert_eq!(
        eval(call(F::ExtractHour, vec![col("t")]), &b),
        vec![json!(17), Value::Null, json!(23)]
    );
    assert_eq!(
        eval(call(F::ExtractDay, vec![col("t")]), &b),
        vec![json!(5), Value::Null, json!(31)]
    );
    assert_eq!(
        eval(call(F::FormatTimestamp, vec![col("t")]), &b),
        vec![
            json!("2024-03-05T17:42:13.250Z"),
            Value::Null,
            json!("1969-12-31T23:59:59.999Z")
        ]
    );
    let far = batch(json!([{"t": weir_model::time::MIN_TIMESTAMP}, {"t": 253_402_300_799_999i64}]));
    assert_eq!(
        eval(call(F::FormatTimestamp, vec![col("t")]), &far),
        vec![Value::Null, json!("9999-12-31T23:59:59.999Z")]
    );
    assert_eq!(
        eval(call(F::ExtractDay, vec![col("t")]), &far)[1],
        json!(31)
    );
}

#[test]
fn format_timestamp_matches_the_documented_form() {
    assert_eq!(
        format_timestamp_millis(1_704_067_200_000).as_deref(),
        Some("2024-01-01T00:00:00.000Z")
    );
    assert_eq!(
        format_timestamp_millis(0).as_deref(),
        Some("1970-01-01T00:00:00.000Z")
    );
    assert_eq!(
        format_timestamp_millis(951_782_400_000).as_deref(),
        Some("2000-02-29T00:00:00.000Z")
    );
    assert_eq!(
        format_timestamp_millis(weir_model::time::MAX_TIMESTAMP),
        None
    );
}

#[test]
fn hash_is_stable_non_negative_and_type_consistent() {
    let b = batch(
        json!([{"n": 1, "s": "a", "t": 1, "x": 0.0, "b": true}, {}, {"n": 2, "s": "b", "t": 2, "x": -0.0, "b": false}]),
    );
    let hashes = eval(call(F::Hash, vec![col("n")]), &b);
    // Pinned values: the algorithm is a format (documented in eval::hash); never change them.
    assert_eq!(
        hashes,
        vec![
            json!(6_676_229_981_160_887_125i64),
            Value::Null,
            json!(8_883_341_085_335_942_963i64)
        ]
    );
    assert_eq!(
        eval(call(F::Hash, vec![col("t")]), &b),
        hashes,
        "hash(ts) == hash(millis(ts))"
    );
    let strings = eval(call(F::Hash, vec![col("s")]), &b);
    assert_eq!(strings[0], json!(198_367_012_849_983_736i64));
    let floats = eval(call(F::Hash, vec![col("x")]), &b);
    assert_eq!(floats[0], floats[2], "0.0 and -0.0 hash alike");
    assert!(eval(call(F::Hash, vec![col("b")]), &b)
        .iter()
        .all(|v| v.is_null() || v.as_i64().unwrap() >= 0));
    let lists = eval(
        call(F::Hash, vec![call(F::Split, vec![col("s"), lit(",")])]),
        &b,
    );
    assert_ne!(lists[0], lists[2]);
    assert!(lists[0].as_i64().unwrap() >= 0);
}

#[test]
fn metadata_columns_are_not_visible_and_unknown_columns_are_named() {
    let b = sample();
    let err = evaluate(&col(crate::batch::TS), &b).unwrap_err();
    assert!(err.to_string().contains("__ts"), "{err}");
    let err = evaluate(&col("nope").add(lit(1)), &b).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn narrower_arrow_types_are_seen_as_their_weir_type() {
    use arrow::array::Int32Array;
    let narrow = RecordBatch::try_from_iter(vec![(
        "n",
        Arc::new(Int32Array::from(vec![Some(1), None])) as ArrayRef,
    )])
    .unwrap();
    let out = evaluate(&col("n").add(lit(1)), &narrow).unwrap();
    assert_eq!(out.data_type(), &ArrowType::Int64);
    assert_eq!(convert::value_at(out.as_ref(), 0), json!(2));
}

mod random_expressions {
    use super::*;
    use proptest::prelude::*;

    fn leaf() -> impl Strategy<Value = Expr> {
        prop_oneof![
            prop::sample::select(vec!["s", "n", "d", "x", "b", "t", "t2"]).prop_map(col),
            Just(lit(Literal::Null)),
            (-3i64..5).prop_map(lit),
            prop::sample::select(vec![0.0, -1.5, 2.25]).prop_map(lit),
            prop::sample::select(vec!["a", ",", "^H", r"(\w)(o)", "minute", "day", " x "])
                .prop_map(lit),
            any::<bool>().prop_map(lit),
            Just(Expr::Literal(Literal::Timestamp(1_000))),
        ]
    }

    fn expr() -> impl Strategy<Value = Expr> {
        leaf().prop_recursive(4, 24, 3, |inner| {
            let ops = vec![
                BinaryOp::Add,
                BinaryOp::Sub,
                BinaryOp::Mul,
                BinaryOp::Div,
                BinaryOp::Mod,
                BinaryOp::Eq,
                BinaryOp::NotEq,
                BinaryOp::Lt,
                BinaryOp::GtEq,
                BinaryOp::And,
                BinaryOp::Or,
            ];
            let types = vec![
                DataType::Boolean,
                DataType::Int64,
                DataType::Float64,
                DataType::String,
                DataType::Timestamp,
            ];
            prop_oneof![
                (prop::sample::select(ops), inner.clone(), inner.clone()).prop_map(|(op, l, r)| {
                    Expr::Binary {
                        op,
                        left: Box::new(l),
                        right: Box::new(r),
                    }
                }),
                inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
                inner.clone().prop_map(|e| Expr::Negate(Box::new(e))),
                inner.clone().prop_map(|e| Expr::IsNull(Box::new(e))),
                (inner.clone(), prop::sample::select(types)).prop_map(|(e, t)| e.cast(t)),
                (
                    prop::sample::select(F::ALL.to_vec()),
                    prop::collection::vec(inner.clone(), 1..4)
                )
                    .prop_map(|(f, args)| Expr::call(f, args)),
                (inner.clone(), inner.clone(), proptest::option::of(inner)).prop_map(
                    |(c, v, o)| Expr::Case {
                        when: vec![(c, v)],
                        otherwise: o.map(Box::new)
                    }
                ),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Any expression that type-checks evaluates without panicking, to its declared type.
        #[test]
        fn well_typed_expressions_evaluate_to_their_type(e in expr()) {
            let b = sample();
            if let Ok(t) = e.data_type(&schema()) {
                match evaluate(&e, &b) {
                    Ok(out) => {
                        prop_assert_eq!(out.data_type(), &t.to_arrow(), "{}", e);
                        prop_assert_eq!(out.len(), b.num_rows());
                    }
                    Err(ExecError::Transform { message, .. }) => {
                        prop_assert!(message.contains("regular expression") || message.contains("date_trunc"), "{}: {}", e, message);
                    }
                    Err(other) => prop_assert!(false, "{}: {}", e, other),
                }
            }
        }
    }
}
