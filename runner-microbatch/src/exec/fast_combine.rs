//! The vectorized path of a `Combine` over non-merging windows with built-in aggregations on
//! int64/float64 inputs (Spark's hash aggregation): a batch's rows are grouped by their key
//! and window through Arrow's row format (one hash lookup per row, no allocation per row),
//! partial aggregates are computed per group with typed loops, and only then does each
//! group — not each row — touch the JSON state, by merging its partial accumulators.
//!
//! Semantics equal the per-row path: nulls are skipped (and so are NaN and infinities, which
//! runner-core's JSON values cannot hold), `count` without an input counts rows, an int64 sum
//! that overflows fails. Float sums may differ from a per-row sum in the last bits (addition
//! order), as they do in Spark between partial and final aggregation.

use crate::error::{MicroBatchError, Result};
use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::datatypes::{DataType as ArrowType, Float64Type, Int64Type};
use arrow::row::{RowConverter, SortField};
use serde_json::{Number, Value};
use std::collections::HashMap;
use weir_runner_core::combine::{Accumulator, Combiner};
use weir_runner_core::ExecError;

/// One aggregation as the vectorized path computes it.
#[derive(Debug, Clone)]
pub enum FastAggregate {
    /// Rows per group.
    RowCount,
    /// Non-null (finite) inputs per group.
    CountNonNull(ArrayRef),
    /// Sum of int64 inputs.
    SumInt(ArrayRef),
    /// Sum of float64 inputs.
    SumFloat(ArrayRef),
    /// Smallest input (int64 or float64).
    Min(ArrayRef),
    /// Largest input (int64 or float64).
    Max(ArrayRef),
    /// Mean of int64 or float64 inputs.
    Mean(ArrayRef),
}

fn numeric(a: &ArrayRef) -> bool {
    matches!(a.data_type(), ArrowType::Int64 | ArrowType::Float64)
}

impl FastAggregate {
    /// The vectorized form of `combiner` over `input` (`None`: the row count), if there is one.
    pub fn of(combiner: &Combiner, input: Option<&ArrayRef>) -> Option<FastAggregate> {
        Some(match (combiner.create(), input) {
            (Accumulator::Count { .. }, None) => FastAggregate::RowCount,
            (Accumulator::Count { .. }, Some(a)) => FastAggregate::CountNonNull(a.clone()),
            (Accumulator::SumInt { .. }, Some(a)) if a.data_type() == &ArrowType::Int64 => {
                FastAggregate::SumInt(a.clone())
            }
            (Accumulator::SumFloat { .. }, Some(a)) if a.data_type() == &ArrowType::Float64 => {
                FastAggregate::SumFloat(a.clone())
            }
            (Accumulator::Min { .. }, Some(a)) if numeric(a) => FastAggregate::Min(a.clone()),
            (Accumulator::Max { .. }, Some(a)) if numeric(a) => FastAggregate::Max(a.clone()),
            (Accumulator::Mean { .. }, Some(a)) if numeric(a) => FastAggregate::Mean(a.clone()),
            _ => return None,
        })
    }
}

/// The rows of a batch grouped by key and window.
#[derive(Debug, Default)]
pub struct Groups {
    /// Per row, its group (`u32::MAX`: skipped).
    pub group_of_row: Vec<u32>,
    /// Per group, its first row.
    pub first_row: Vec<usize>,
    /// Per group, its number of rows.
    pub rows: Vec<u64>,
}

/// Groups the rows not `skip`ped by the values of `columns` (key columns, window start, end).
pub fn group_rows(columns: &[ArrayRef], skip: &[bool]) -> Result<Groups> {
    let fields = columns
        .iter()
        .map(|c| SortField::new(c.data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields).map_err(ExecError::from)?;
    let encoded = converter
        .convert_columns(columns)
        .map_err(ExecError::from)?;
    let mut index: HashMap<&[u8], u32> = HashMap::new();
    let mut g = Groups {
        group_of_row: Vec::with_capacity(skip.len()),
        ..Groups::default()
    };
    for (row, skipped) in skip.iter().enumerate() {
        if *skipped {
            g.group_of_row.push(u32::MAX);
            continue;
        }
        let next = index.len() as u32;
        let id = *index.entry(encoded.row(row).data()).or_insert(next);
        if id == next {
            g.first_row.push(row);
            g.rows.push(0);
        }
        g.rows[id as usize] += 1;
        g.group_of_row.push(id);
    }
    Ok(g)
}

fn finite_f64(a: &ArrayRef, row: usize) -> Option<f64> {
    let v = match a.data_type() {
        ArrowType::Int64 => a.as_primitive::<Int64Type>().value(row) as f64,
        _ => a.as_primitive::<Float64Type>().value(row),
    };
    v.is_finite().then_some(v)
}

/// Whether `a[row]` is a value the per-row path would see (not null, not a non-finite float).
fn present(a: &ArrayRef, row: usize) -> bool {
    a.is_valid(row)
        && (a.data_type() != &ArrowType::Float64
            || a.as_primitive::<Float64Type>().value(row).is_finite())
}

/// Per group, one partial accumulator per aggregation.
pub fn partials(
    node: &str,
    aggregates: &[FastAggregate],
    groups: &Groups,
) -> Result<Vec<Vec<Accumulator>>> {
    let n = groups.first_row.len();
    let rows = || {
        groups
            .group_of_row
            .iter()
            .enumerate()
            .filter(|(_, g)| **g != u32::MAX)
            .map(|(r, g)| (r, *g as usize))
    };
    let mut out: Vec<Vec<Accumulator>> = (0..n)
        .map(|_| Vec::with_capacity(aggregates.len()))
        .collect();
    for agg in aggregates {
        match agg {
            FastAggregate::RowCount => {
                for (g, acc) in out.iter_mut().enumerate() {
                    acc.push(Accumulator::Count {
                        count: groups.rows[g] as i64,
                    });
                }
            }
            FastAggregate::CountNonNull(a) => {
                let mut counts = vec![0i64; n];
                for (r, g) in rows() {
                    counts[g] += present(a, r) as i64;
                }
                for (acc, count) in out.iter_mut().zip(counts) {
                    acc.push(Accumulator::Count { count });
                }
            }
            FastAggregate::SumInt(a) => {
                let values: &Int64Array = a.as_primitive::<Int64Type>();
                let mut sums: Vec<Option<i64>> = vec![None; n];
                for (r, g) in rows() {
                    if values.is_valid(r) {
                        let v = values.value(r);
                        sums[g] = Some(match sums[g] {
                            None => v,
                            Some(s) => s.checked_add(v).ok_or_else(|| {
                                MicroBatchError::Exec(ExecError::transform(
                                    node,
                                    format!("int64 sum overflows adding {v} to {s}"),
                                ))
                            })?,
                        });
                    }
                }
                for (acc, sum) in out.iter_mut().zip(sums) {
                    acc.push(Accumulator::SumInt { sum });
                }
            }
            FastAggregate::SumFloat(a) => {
                let mut sums: Vec<Option<f64>> = vec![None; n];
                for (r, g) in rows() {
                    if let Some(v) = a.is_valid(r).then(|| finite_f64(a, r)).flatten() {
                        sums[g] = Some(sums[g].unwrap_or(0.0) + v);
                    }
                }
                for (acc, sum) in out.iter_mut().zip(sums) {
                    acc.push(Accumulator::SumFloat { sum });
                }
            }
            FastAggregate::Min(a) | FastAggregate::Max(a) => {
                let is_min = matches!(agg, FastAggregate::Min(_));
                let best = extremes(a, groups, is_min);
                for (acc, value) in out.iter_mut().zip(best) {
                    acc.push(if is_min {
                        Accumulator::Min { value }
                    } else {
                        Accumulator::Max { value }
                    });
                }
            }
            FastAggregate::Mean(a) => {
                let mut sums = vec![(0.0f64, 0i64); n];
                for (r, g) in rows() {
                    if let Some(v) = a.is_valid(r).then(|| finite_f64(a, r)).flatten() {
                        sums[g].0 += v;
                        sums[g].1 += 1;
                    }
                }
                for (acc, (sum, count)) in out.iter_mut().zip(sums) {
                    acc.push(Accumulator::Mean { sum, count });
                }
            }
        }
    }
    Ok(out)
}

/// Per group, the smallest (or largest) present value, as the JSON value the per-row path keeps.
fn extremes(a: &ArrayRef, groups: &Groups, is_min: bool) -> Vec<Option<Value>> {
    let n = groups.first_row.len();
    let rows = groups
        .group_of_row
        .iter()
        .enumerate()
        .filter(|(_, g)| **g != u32::MAX);
    match a.data_type() {
        ArrowType::Int64 => {
            let values = a.as_primitive::<Int64Type>();
            let mut best: Vec<Option<i64>> = vec![None; n];
            for (r, g) in rows {
                if values.is_valid(r) {
                    let v = values.value(r);
                    let b = &mut best[*g as usize];
                    *b = Some(match *b {
                        None => v,
                        Some(x) if is_min => x.min(v),
                        Some(x) => x.max(v),
                    });
                }
            }
            best.into_iter().map(|b| b.map(Value::from)).collect()
        }
        _ => {
            let mut best: Vec<Option<f64>> = vec![None; n];
            for (r, g) in rows {
                if let Some(v) = a.is_valid(r).then(|| finite_f64(a, r)).flatten() {
                    let b = &mut best[*g as usize];
                    *b = Some(match *b {
                        None => v,
                        Some(x) if is_min => x.min(v),
                        Some(x) => x.max(v),
                    });
                }
            }
            best.into_iter()
                .map(|b| b.and_then(Number::from_f64).map(Value::Number))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn rows_group_by_key_and_window_and_partials_skip_nulls_and_non_finite_floats() {
        let keys: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "a", "a", "b"]));
        let ends: ArrayRef = Arc::new(Int64Array::from(vec![10, 10, 10, 20, 10]));
        let groups = group_rows(&[keys, ends], &[false, false, false, false, true]).unwrap();
        assert_eq!(groups.group_of_row, vec![0, 1, 0, 2, u32::MAX]);
        assert_eq!(groups.rows, vec![2, 1, 1]);
        let x: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(1.5),
            None,
            Some(f64::NAN),
            Some(2.0),
            Some(9.0),
        ]));
        let aggs = [
            FastAggregate::RowCount,
            FastAggregate::CountNonNull(x.clone()),
            FastAggregate::Max(x.clone()),
        ];
        let p = partials("n", &aggs, &groups).unwrap();
        assert_eq!(p[0][0], Accumulator::Count { count: 2 });
        assert_eq!(p[0][1], Accumulator::Count { count: 1 });
        assert_eq!(
            p[0][2],
            Accumulator::Max {
                value: Some(serde_json::json!(1.5))
            }
        );
        assert_eq!(p[1][2], Accumulator::Max { value: None });
    }

    #[test]
    fn an_int64_sum_that_overflows_fails() {
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![1, 1]));
        let groups = group_rows(&[keys], &[false, false]).unwrap();
        let x: ArrayRef = Arc::new(Int64Array::from(vec![i64::MAX, 1]));
        assert!(partials("n", &[FastAggregate::SumInt(x)], &groups).is_err());
    }
}
