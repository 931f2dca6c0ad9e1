//! Aggregation builders for [`Collection::combine`](super::Collection::combine):
//! `combine(["user"], [agg::count("n"), agg::sum("total", col("amount"))])`.

use crate::expr::Expr;
use crate::transform::{AggregateFn, Aggregation};
use crate::udf::CombineFn;

fn aggregation(name: impl Into<String>, func: AggregateFn, input: Option<Expr>) -> Aggregation {
    Aggregation {
        name: name.into(),
        func,
        input,
    }
}

/// Column `name`: the number of rows.
pub fn count(name: impl Into<String>) -> Aggregation {
    aggregation(name, AggregateFn::Count, None)
}

/// Column `name`: the number of rows where `value` is not null.
pub fn count_of(name: impl Into<String>, value: Expr) -> Aggregation {
    aggregation(name, AggregateFn::Count, Some(value))
}

/// Column `name`: the sum of `value` (numeric; same type as `value`).
pub fn sum(name: impl Into<String>, value: Expr) -> Aggregation {
    aggregation(name, AggregateFn::Sum, Some(value))
}

/// Column `name`: the smallest `value`.
pub fn min(name: impl Into<String>, value: Expr) -> Aggregation {
    aggregation(name, AggregateFn::Min, Some(value))
}

/// Column `name`: the largest `value`.
pub fn max(name: impl Into<String>, value: Expr) -> Aggregation {
    aggregation(name, AggregateFn::Max, Some(value))
}

/// Column `name`: the arithmetic mean of `value` (float64).
pub fn mean(name: impl Into<String>, value: Expr) -> Aggregation {
    aggregation(name, AggregateFn::Mean, Some(value))
}

/// Column `name`: the number of distinct non-null `value`s.
pub fn distinct_count(name: impl Into<String>, value: Expr) -> Aggregation {
    aggregation(name, AggregateFn::DistinctCount, Some(value))
}

/// Column `name`: a user-defined combiner over `value` (or over nothing, like `count`).
pub fn custom(
    name: impl Into<String>,
    combiner: impl CombineFn + 'static,
    value: Option<Expr>,
) -> Aggregation {
    aggregation(name, AggregateFn::Custom(Box::new(combiner)), value)
}
