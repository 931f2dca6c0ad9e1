//! Combiners (Beam's `CombineFn`): one accumulator per output column of a `Combine`, with
//! `create` / `add` / `merge` / `extract`. Accumulators are plain data that serialize to JSON,
//! so runners can checkpoint them and merge partial aggregates computed in parallel.
//!
//! Null inputs are skipped by every built-in (SQL semantics): `count(x)` counts non-null
//! `x`, `sum`/`min`/`max`/`mean` of no non-null input is null, `count` without an input
//! counts rows.

mod order;
mod slots;

pub use order::compare_values;
pub use slots::{ColumnarCombineSpec, PaneSlots};

use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};
use std::cmp::Ordering;
use std::collections::BTreeSet;
use weir_model::transform::{AggregateFn, Aggregation};
use weir_model::udf::CombineFn;
use weir_model::DataType;

/// The running state of one aggregation for one key and window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Accumulator {
    /// Rows (or non-null inputs) seen.
    Count {
        /// The count.
        count: i64,
    },
    /// Sum of int64 inputs; `None` until a non-null input arrives.
    SumInt {
        /// The sum.
        sum: Option<i64>,
    },
    /// Sum of float64 inputs; `None` until a non-null input arrives.
    SumFloat {
        /// The sum.
        sum: Option<f64>,
    },
    /// Smallest input so far.
    Min {
        /// The minimum.
        value: Option<Value>,
    },
    /// Largest input so far.
    Max {
        /// The maximum.
        value: Option<Value>,
    },
    /// Sum and count of the inputs, as float64.
    Mean {
        /// Sum of inputs.
        sum: f64,
        /// Number of inputs.
        count: i64,
    },
    /// The distinct non-null inputs, as JSON text.
    DistinctCount {
        /// The distinct values.
        values: BTreeSet<String>,
    },
    /// A user combiner's accumulator.
    Custom {
        /// Its JSON state.
        state: Value,
    },
}

/// What a [`Combiner`] computes.
#[derive(Debug, Clone)]
enum CombinerKind {
    CountRows,
    CountNonNull,
    SumInt,
    SumFloat,
    Min,
    Max,
    Mean,
    DistinctCount,
    Custom(Box<dyn CombineFn>),
}

/// One aggregation of a `Combine`, ready to run.
#[derive(Debug, Clone)]
pub struct Combiner {
    name: String,
    kind: CombinerKind,
}

impl Combiner {
    /// The combiner for `aggregation`, whose output column has type `output_type` (as the
    /// plan inferred it: a sum of int64 stays int64, of float64 is float64).
    pub fn new(aggregation: &Aggregation, output_type: &DataType) -> Result<Combiner, String> {
        let kind = match (&aggregation.func, aggregation.input.is_some()) {
            (AggregateFn::Count, false) => CombinerKind::CountRows,
            (AggregateFn::Count, true) => CombinerKind::CountNonNull,
            (AggregateFn::Sum, _) => match output_type {
                DataType::Int64 => CombinerKind::SumInt,
                DataType::Float64 => CombinerKind::SumFloat,
                other => return Err(format!("sum cannot produce {other}")),
            },
            (AggregateFn::Min, _) => CombinerKind::Min,
            (AggregateFn::Max, _) => CombinerKind::Max,
            (AggregateFn::Mean, _) => CombinerKind::Mean,
            (AggregateFn::DistinctCount, _) => CombinerKind::DistinctCount,
            (AggregateFn::Custom(f), _) => CombinerKind::Custom(f.clone()),
        };
        Ok(Combiner {
            name: aggregation.name.clone(),
            kind,
        })
    }

    /// The output column's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A fresh accumulator.
    pub fn create(&self) -> Accumulator {
        match &self.kind {
            CombinerKind::CountRows | CombinerKind::CountNonNull => Accumulator::Count { count: 0 },
            CombinerKind::SumInt => Accumulator::SumInt { sum: None },
            CombinerKind::SumFloat => Accumulator::SumFloat { sum: None },
            CombinerKind::Min => Accumulator::Min { value: None },
            CombinerKind::Max => Accumulator::Max { value: None },
            CombinerKind::Mean => Accumulator::Mean { sum: 0.0, count: 0 },
            CombinerKind::DistinctCount => Accumulator::DistinctCount {
                values: BTreeSet::new(),
            },
            CombinerKind::Custom(f) => Accumulator::Custom {
                state: f.create_accumulator(),
            },
        }
    }

    /// Adds one input: the aggregation's input value for the row (for `count` without an
    /// input, any value: the row counts; for a user combiner without an input, the whole row
    /// as a JSON object).
    pub fn add(&self, acc: &mut Accumulator, input: &Value) -> Result<(), String> {
        if input.is_null()
            && !matches!(self.kind, CombinerKind::CountRows | CombinerKind::Custom(_))
        {
            return Ok(());
        }
        match (&self.kind, acc) {
            (
                CombinerKind::CountRows | CombinerKind::CountNonNull,
                Accumulator::Count { count },
            ) => *count += 1,
            (CombinerKind::SumInt, Accumulator::SumInt { sum }) => {
                let x = as_i64(input)?;
                *sum = Some(add_int(sum.unwrap_or(0), x)?);
            }
            (CombinerKind::SumFloat, Accumulator::SumFloat { sum }) => {
                *sum = Some(sum.unwrap_or(0.0) + as_f64(input)?)
            }
            (CombinerKind::Min, Accumulator::Min { value }) => {
                keep_extreme(value, input, Ordering::Less)
            }
            (CombinerKind::Max, Accumulator::Max { value }) => {
                keep_extreme(value, input, Ordering::Greater)
            }
            (CombinerKind::Mean, Accumulator::Mean { sum, count }) => {
                *sum += as_f64(input)?;
                *count += 1;
            }
            (CombinerKind::DistinctCount, Accumulator::DistinctCount { values }) => {
                values.insert(input.to_string());
            }
            (CombinerKind::Custom(f), Accumulator::Custom { state }) => f.add_input(state, input),
            (_, acc) => return Err(mismatch(&self.name, acc)),
        }
        Ok(())
    }

    /// Merges `other` into `acc` (both made by this combiner).
    pub fn merge(&self, acc: &mut Accumulator, other: &Accumulator) -> Result<(), String> {
        match (&self.kind, acc, other) {
            (_, Accumulator::Count { count }, Accumulator::Count { count: o }) => *count += o,
            (_, Accumulator::SumInt { sum }, Accumulator::SumInt { sum: o }) => {
                *sum = match (*sum, *o) {
                    (Some(a), Some(b)) => Some(add_int(a, b)?),
                    (a, b) => a.or(b),
                }
            }
            (_, Accumulator::SumFloat { sum }, Accumulator::SumFloat { sum: o }) => {
                *sum = match (*sum, *o) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                }
            }
            (_, Accumulator::Min { value }, Accumulator::Min { value: Some(o) }) => {
                keep_extreme(value, o, Ordering::Less)
            }
            (_, Accumulator::Max { value }, Accumulator::Max { value: Some(o) }) => {
                keep_extreme(value, o, Ordering::Greater)
            }
            (_, Accumulator::Min { .. }, Accumulator::Min { value: None })
            | (_, Accumulator::Max { .. }, Accumulator::Max { value: None }) => {}
            (_, Accumulator::Mean { sum, count }, Accumulator::Mean { sum: s, count: c }) => {
                *sum += s;
                *count += c;
            }
            (
                _,
                Accumulator::DistinctCount { values },
                Accumulator::DistinctCount { values: o },
            ) => values.extend(o.iter().cloned()),
            (
                CombinerKind::Custom(f),
                Accumulator::Custom { state },
                Accumulator::Custom { state: o },
            ) => f.merge_accumulators(state, o),
            (_, acc, _) => return Err(mismatch(&self.name, acc)),
        }
        Ok(())
    }

    /// The aggregate's value for an accumulator.
    pub fn extract(&self, acc: &Accumulator) -> Value {
        match acc {
            Accumulator::Count { count } => Value::from(*count),
            Accumulator::SumInt { sum } => sum.map_or(Value::Null, Value::from),
            Accumulator::SumFloat { sum } => sum
                .and_then(Number::from_f64)
                .map_or(Value::Null, Value::Number),
            Accumulator::Min { value } | Accumulator::Max { value } => {
                value.clone().unwrap_or(Value::Null)
            }
            Accumulator::Mean { count: 0, .. } => Value::Null,
            Accumulator::Mean { sum, count } => {
                Number::from_f64(sum / *count as f64).map_or(Value::Null, Value::Number)
            }
            Accumulator::DistinctCount { values } => Value::from(values.len() as i64),
            Accumulator::Custom { state } => match &self.kind {
                CombinerKind::Custom(f) => f.extract_output(state),
                _ => Value::Null,
            },
        }
    }
}

fn mismatch(name: &str, acc: &Accumulator) -> String {
    format!("aggregation `{name}` was given an accumulator of another kind ({acc:?})")
}

/// `a + b`, refusing to wrap around: an int64 sum that overflows fails the run rather than
/// silently producing a wrong total.
fn add_int(a: i64, b: i64) -> Result<i64, String> {
    a.checked_add(b)
        .ok_or_else(|| format!("int64 sum overflowed ({a} + {b})"))
}

fn as_i64(v: &Value) -> Result<i64, String> {
    v.as_i64()
        .ok_or_else(|| format!("expected an int64 input, got {v}"))
}

fn as_f64(v: &Value) -> Result<f64, String> {
    v.as_f64()
        .ok_or_else(|| format!("expected a numeric input, got {v}"))
}

/// Keeps in `slot` whichever of it and `candidate` compares as `wanted` (the first one on
/// ties).
fn keep_extreme(slot: &mut Option<Value>, candidate: &Value, wanted: Ordering) {
    match slot {
        Some(current) if compare_values(candidate, current) != wanted => {}
        _ => *slot = Some(candidate.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_model::expr::col;

    fn combiner(func: AggregateFn, input: bool, out: DataType) -> Combiner {
        let agg = Aggregation {
            name: "out".into(),
            func,
            input: input.then(|| col("x")),
        };
        Combiner::new(&agg, &out).unwrap()
    }

    fn run(c: &Combiner, inputs: &[Value]) -> Value {
        // Split the inputs in two accumulators and merge, as a parallel runner would.
        let (left, right) = inputs.split_at(inputs.len() / 2);
        let mut a = c.create();
        let mut b = c.create();
        left.iter().for_each(|v| c.add(&mut a, v).unwrap());
        right.iter().for_each(|v| c.add(&mut b, v).unwrap());
        let b: Accumulator = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        c.merge(&mut a, &b).unwrap();
        c.extract(&a)
    }

    #[test]
    fn built_ins_skip_nulls_and_merge() {
        let xs = [json!(3), Value::Null, json!(1), json!(3), json!(2)];
        assert_eq!(
            run(&combiner(AggregateFn::Count, false, DataType::Int64), &xs),
            json!(5)
        );
        assert_eq!(
            run(&combiner(AggregateFn::Count, true, DataType::Int64), &xs),
            json!(4)
        );
        assert_eq!(
            run(&combiner(AggregateFn::Sum, true, DataType::Int64), &xs),
            json!(9)
        );
        assert_eq!(
            run(&combiner(AggregateFn::Min, true, DataType::Int64), &xs),
            json!(1)
        );
        assert_eq!(
            run(&combiner(AggregateFn::Max, true, DataType::Int64), &xs),
            json!(3)
        );
        assert_eq!(
            run(&combiner(AggregateFn::Mean, true, DataType::Float64), &xs),
            json!(2.25)
        );
        assert_eq!(
            run(
                &combiner(AggregateFn::DistinctCount, true, DataType::Int64),
                &xs
            ),
            json!(3)
        );
        assert_eq!(
            run(
                &combiner(AggregateFn::Sum, true, DataType::Int64),
                &[Value::Null]
            ),
            Value::Null
        );
    }

    #[test]
    fn float_sums_and_string_extremes() {
        let c = combiner(AggregateFn::Sum, true, DataType::Float64);
        assert_eq!(run(&c, &[json!(0.5), json!(1.25)]), json!(1.75));
        let c = combiner(AggregateFn::Max, true, DataType::String);
        assert_eq!(
            run(&c, &[json!("pear"), json!("apple"), json!("zoo")]),
            json!("zoo")
        );
    }

    #[test]
    fn int_sum_overflow_is_an_error() {
        let c = combiner(AggregateFn::Sum, true, DataType::Int64);
        let mut acc = c.create();
        c.add(&mut acc, &json!(i64::MAX)).unwrap();
        assert!(c.add(&mut acc, &json!(1)).is_err());
    }
}
