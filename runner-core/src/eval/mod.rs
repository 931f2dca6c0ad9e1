//! Vectorized evaluation of [`weir_model::Expr`] on Arrow batches.
//!
//! Every sub-expression evaluates to a whole column (or a one-row scalar for literals, which
//! kernels broadcast), so a batch costs one kernel call per operator, not one call per row.
//!
//! Semantics (SQL, as the model documents them):
//! - nulls propagate through arithmetic, comparisons, casts and functions; `and` / `or` use
//!   Kleene three-valued logic; `coalesce` and `is [not] null` are the only null-absorbing forms;
//! - `int64 op float64` widens to float64; integer `+`, `-` and `*` wrap on overflow (like
//!   Spark's non-ANSI mode) instead of failing the run;
//! - `/` and `%` by zero give null, for integers and floats alike (`%` takes the sign of the
//!   dividend, like SQL and Rust);
//! - `timestamp ± int64` shifts by milliseconds; `timestamp − timestamp` is int64 milliseconds;
//! - casts never fail on data: a value that does not convert (`'abc'` to int64, a float out of
//!   int64 range) becomes null. Text → int64 accepts surrounding whitespace but only whole
//!   numbers (`'1.5'` → null); text → float64 parses decimals; text → bool accepts
//!   `true/false/t/f/yes/no/1/0` in any case; text → timestamp accepts what `to_timestamp`
//!   accepts; timestamp → text is `format_timestamp`'s form; float → int64 truncates toward
//!   zero; numbers → bool are `!= 0`, bool → numbers are 1/0.
//!
//! The functions are described on [`weir_model::expr::Function`]; choices the model leaves
//! open are documented in [`functions`].
//!
//! Errors: an expression that does not type-check against the batch (unknown column, wrong
//! operand types) is a bug in the caller, since plans are type-checked before running, and
//! yields [`ExecError::Internal`]. A bad regular expression or `date_trunc` unit, which only
//! show up at run time, yields [`ExecError::Transform`] for transform `expression`; operators
//! re-wrap it with their own name (see [`evaluate_in`]).

pub mod functions;
pub mod hash;

#[cfg(test)]
mod tests;

use crate::batch;
use crate::error::{ExecError, ExecResult};
use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, Datum, Float64Array, Int64Array,
    NullArray, RecordBatch, StringArray, StringBuilder, TimestampMillisecondArray, UInt32Array,
};
use arrow::compute::kernels::{boolean, cast, cmp, numeric, zip};
use arrow::compute::{nullif, take};
use arrow::datatypes::{
    DataType as ArrowType, Float64Type, Int64Type, TimeUnit, TimestampMillisecondType,
};
use std::sync::Arc;
use weir_model::expr::{BinaryOp, Literal};
use weir_model::{DataType, Expr, Schema};

pub use functions::format_timestamp_millis;
pub use hash::stable_hash_array;

/// Evaluates `expr` over the rows of `batch` (columns looked up by name; metadata ignored).
///
/// The result has one value per row and the Arrow type of `expr.data_type(schema)` for the
/// batch's user schema (Timestamp = `Timestamp(ms)`, Int64, Float64, Utf8, Boolean,
/// `List<Utf8>`).
pub fn evaluate(expr: &Expr, batch: &RecordBatch) -> ExecResult<ArrayRef> {
    // A plain column already of its canonical type needs no typing or evaluation.
    if let Expr::Column(name) = expr {
        if let Some(column) = batch.column_by_name(name) {
            let canonical =
                weir_model::DataType::from_arrow(column.data_type()).map(|t| t.to_arrow());
            if !batch::is_meta(name) && canonical.as_ref() == Some(column.data_type()) {
                return Ok(column.clone());
            }
        }
    }
    let schema = user_schema(batch)?;
    let out_type = expr.data_type(&schema).map_err(|e| {
        ExecError::Internal(format!("expression `{expr}` does not fit the batch: {e}"))
    })?;
    let ev = Evaluator {
        batch,
        schema: &schema,
        rows: batch.num_rows(),
    };
    let value = ev.eval(expr)?;
    let array = value.into_array(ev.rows)?;
    cast_array(&array, &out_type.to_arrow())
}

/// [`evaluate`], with any error reported as a failure of transform `node` naming the expression.
pub fn evaluate_in(node: &str, expr: &Expr, batch: &RecordBatch) -> ExecResult<ArrayRef> {
    evaluate(expr, batch).map_err(|e| match e {
        ExecError::Transform { message, .. } => ExecError::transform(node, message),
        ExecError::Internal(m) => ExecError::Internal(format!("transform `{node}`: {m}")),
        other => ExecError::transform(node, format!("evaluating `{expr}`: {other}")),
    })
}

/// The user schema of a batch: every column except the `__*` metadata columns.
fn user_schema(batch: &RecordBatch) -> ExecResult<Schema> {
    let arrow_schema = batch.schema();
    let fields: Vec<arrow::datatypes::FieldRef> = arrow_schema
        .fields()
        .iter()
        .filter(|f| !batch::is_meta(f.name()))
        .cloned()
        .collect();
    Schema::from_arrow(&arrow::datatypes::Schema::new(fields)).map_err(ExecError::Internal)
}

/// A run-time error of an expression (the operator adds its own name).
fn runtime_error(expr: &Expr, message: impl std::fmt::Display) -> ExecError {
    ExecError::transform("expression", format!("`{expr}`: {message}"))
}

/// A value during evaluation: a column of the batch's length, or a one-row scalar that
/// kernels broadcast (literals and anything computed only from literals).
#[derive(Debug, Clone)]
pub(crate) enum Val {
    /// One value per row.
    Array(ArrayRef),
    /// One value for every row (a length-1 array).
    Scalar(ArrayRef),
}

impl Val {
    fn array(&self) -> &ArrayRef {
        match self {
            Val::Array(a) | Val::Scalar(a) => a,
        }
    }
    fn data_type(&self) -> &ArrowType {
        self.array().data_type()
    }
    fn is_scalar(&self) -> bool {
        matches!(self, Val::Scalar(_))
    }
    /// Applies `f` to the underlying array, keeping scalar-ness.
    fn map(self, f: impl FnOnce(&ArrayRef) -> ExecResult<ArrayRef>) -> ExecResult<Val> {
        Ok(match self {
            Val::Array(a) => Val::Array(f(&a)?),
            Val::Scalar(a) => Val::Scalar(f(&a)?),
        })
    }
    /// A full column of `rows` values.
    pub(crate) fn into_array(self, rows: usize) -> ExecResult<ArrayRef> {
        match self {
            Val::Array(a) => Ok(a),
            Val::Scalar(a) => broadcast(&a, rows),
        }
    }
    /// The scalar's value, when it is a non-null int64 scalar.
    fn scalar_i64(&self) -> Option<i64> {
        match self {
            Val::Scalar(a) if a.is_valid(0) => {
                a.as_primitive_opt::<Int64Type>().map(|s| s.value(0))
            }
            _ => None,
        }
    }
    /// Whether this is a scalar null.
    fn is_null_scalar(&self) -> bool {
        matches!(self, Val::Scalar(a) if a.is_null(0) || a.data_type() == &ArrowType::Null)
    }
}

impl Datum for Val {
    fn get(&self) -> (&dyn Array, bool) {
        match self {
            Val::Array(a) => (a.as_ref(), false),
            Val::Scalar(a) => (a.as_ref(), true),
        }
    }
}

/// Repeats the single value of `scalar` `rows` times.
fn broadcast(scalar: &ArrayRef, rows: usize) -> ExecResult<ArrayRef> {
    if scalar.data_type() == &ArrowType::Null {
        return Ok(Arc::new(NullArray::new(rows)));
    }
    if scalar.is_null(0) {
        return Ok(new_null_array(scalar.data_type(), rows));
    }
    // `take` with all-zero indices is the generic "repeat" kernel for any type.
    let indices = UInt32Array::from_value(0, rows);
    Ok(take(scalar.as_ref(), &indices, None)?)
}

/// One-row array holding a literal. NULL is an Arrow `Null` array, typed later by coercion.
fn literal_array(l: &Literal) -> ArrayRef {
    match l {
        Literal::Null => Arc::new(NullArray::new(1)),
        Literal::Boolean(b) => Arc::new(BooleanArray::from(vec![*b])),
        Literal::Int64(i) => Arc::new(Int64Array::from(vec![*i])),
        Literal::Float64(f) => Arc::new(Float64Array::from(vec![*f])),
        Literal::String(s) => Arc::new(StringArray::from(vec![s.as_str()])),
        Literal::Timestamp(ms) => Arc::new(TimestampMillisecondArray::from(vec![*ms])),
    }
}

/// Casts with SQL semantics (see the module docs): failures become null, and timestamps
/// convert to and from text in the RFC 3339 forms used everywhere else in Weir.
pub(crate) fn cast_array(array: &ArrayRef, to: &ArrowType) -> ExecResult<ArrayRef> {
    let from = array.data_type();
    if from == to {
        return Ok(array.clone());
    }
    if array.logical_null_count() == array.len() {
        // All nulls convert to any type, even where Arrow has no cast (text to list, say).
        return Ok(new_null_array(to, array.len()));
    }
    let ts = ArrowType::Timestamp(TimeUnit::Millisecond, None);
    Ok(match (from, to) {
        (ArrowType::Utf8, ArrowType::Timestamp(_, _)) => {
            let parsed: TimestampMillisecondArray = array
                .as_string::<i32>()
                .iter()
                .map(|s| s.and_then(crate::convert::parse_timestamp))
                .collect();
            cast_array(&(Arc::new(parsed) as ArrayRef), to)?
        }
        (ArrowType::Timestamp(_, _), ArrowType::Utf8) => {
            let ms = cast_array(array, &ArrowType::Int64)?;
            Arc::new(functions::format_timestamps(ms.as_primitive::<Int64Type>()))
        }
        // Arrow has no direct float/bool <-> timestamp casts; go through int64 milliseconds.
        (ArrowType::Float64 | ArrowType::Boolean, ArrowType::Timestamp(_, _))
        | (ArrowType::Timestamp(_, _), ArrowType::Float64 | ArrowType::Boolean) => {
            let ms = cast::cast(array.as_ref(), &ArrowType::Int64)?;
            cast_array(&ms, to)?
        }
        (ArrowType::Timestamp(TimeUnit::Millisecond, Some(_)), _) => {
            // A zoned timestamp is still milliseconds since the epoch.
            let plain = cast::cast(array.as_ref(), &ts)?;
            cast_array(&plain, to)?
        }
        _ => cast::cast_with_options(array.as_ref(), to, &cast::CastOptions::default())?,
    })
}

struct Evaluator<'a> {
    batch: &'a RecordBatch,
    schema: &'a Schema,
    rows: usize,
}

impl Evaluator<'_> {
    fn type_of(&self, expr: &Expr) -> ExecResult<DataType> {
        expr.data_type(self.schema).map_err(|e| {
            ExecError::Internal(format!("expression `{expr}` does not type-check: {e}"))
        })
    }

    fn eval(&self, expr: &Expr) -> ExecResult<Val> {
        match expr {
            Expr::Column(name) => self.column(name),
            Expr::Literal(l) => Ok(Val::Scalar(literal_array(l))),
            Expr::Binary { op, left, right } => self.binary(expr, *op, left, right),
            Expr::Not(e) => {
                let v = self.coerced(e, &DataType::Boolean)?;
                v.map(|a| Ok(Arc::new(boolean::not(a.as_boolean())?) as ArrayRef))
            }
            Expr::Negate(e) => {
                let t = self.type_of(e)?;
                if !t.is_numeric() {
                    // Only `-null` type-checks with a non-numeric operand.
                    return Ok(Val::Scalar(new_null_array(&t.to_arrow(), 1)));
                }
                let v = self.coerced(e, &t)?;
                v.map(|a| Ok(numeric::neg_wrapping(a.as_ref())?))
            }
            Expr::IsNull(e) => self
                .eval(e)?
                .map(|a| Ok(Arc::new(boolean::is_null(a.as_ref())?) as ArrayRef)),
            Expr::IsNotNull(e) => self
                .eval(e)?
                .map(|a| Ok(Arc::new(boolean::is_not_null(a.as_ref())?) as ArrayRef)),
            Expr::Cast { expr: inner, to } => {
                let v = self.eval(inner)?;
                let to = to.to_arrow();
                v.map(|a| cast_array(a, &to))
            }
            Expr::Call { func, args } => functions::call(self, expr, *func, args),
            Expr::Case { when, otherwise } => self.case(expr, when, otherwise.as_deref()),
        }
    }

    /// Evaluates `expr` and casts it to `t` (used to widen int64 to float64 and to give NULL
    /// literals a type).
    fn coerced(&self, expr: &Expr, t: &DataType) -> ExecResult<Val> {
        let to = t.to_arrow();
        self.eval(expr)?.map(|a| cast_array(a, &to))
    }

    fn column(&self, name: &str) -> ExecResult<Val> {
        let schema = self.batch.schema();
        let index = match schema.index_of(name) {
            Ok(i) if !batch::is_meta(name) => i,
            _ => {
                return Err(ExecError::Internal(format!(
                    "no column `{name}` in the batch (it has {})",
                    self.schema
                )))
            }
        };
        let array = self.batch.column(index);
        // Batches from user functions may use narrower Arrow types (int32, float32, ...);
        // expressions always see the canonical Weir type.
        let canonical = self.schema.field(name).map(|f| f.data_type.to_arrow());
        match canonical {
            Some(t) if &t != array.data_type() => Ok(Val::Array(cast_array(array, &t)?)),
            _ => Ok(Val::Array(array.clone())),
        }
    }

    fn binary(&self, whole: &Expr, op: BinaryOp, left: &Expr, right: &Expr) -> ExecResult<Val> {
        let lt = self.type_of(left)?;
        let rt = self.type_of(right)?;
        // A NULL literal takes the other side's type; int64 meets float64 as float64.
        let operand = |e: &Expr, own: &DataType, other: &DataType| -> DataType {
            let is_null = is_untyped_null(e);
            match (own, other) {
                _ if is_null => other.clone(),
                (DataType::Int64, DataType::Float64) => DataType::Float64,
                _ => own.clone(),
            }
        };
        let lt2 = if matches!(op, BinaryOp::And | BinaryOp::Or) {
            DataType::Boolean
        } else {
            operand(left, &lt, &rt)
        };
        let rt2 = if matches!(op, BinaryOp::And | BinaryOp::Or) {
            DataType::Boolean
        } else {
            operand(right, &rt, &lt)
        };
        let l = self.coerced(left, &lt2)?;
        let r = self.coerced(right, &rt2)?;
        let both_scalar = l.is_scalar() && r.is_scalar();
        let wrap = |a: ArrayRef| {
            if both_scalar {
                Val::Scalar(a)
            } else {
                Val::Array(a)
            }
        };
        let bool_wrap = |b: BooleanArray| wrap(Arc::new(b));
        let arithmetic = !matches!(op, BinaryOp::And | BinaryOp::Or) && op.precedence() >= 4;
        if arithmetic && (l.is_null_scalar() || r.is_null_scalar()) {
            // `null op x` is null; with two NULL literals there is no numeric type to compute in.
            let t = self.type_of(whole)?.to_arrow();
            return Ok(Val::Scalar(new_null_array(&t, 1)));
        }
        Ok(match op {
            BinaryOp::Eq => bool_wrap(cmp::eq(&l, &r)?),
            BinaryOp::NotEq => bool_wrap(cmp::neq(&l, &r)?),
            BinaryOp::Lt => bool_wrap(cmp::lt(&l, &r)?),
            BinaryOp::LtEq => bool_wrap(cmp::lt_eq(&l, &r)?),
            BinaryOp::Gt => bool_wrap(cmp::gt(&l, &r)?),
            BinaryOp::GtEq => bool_wrap(cmp::gt_eq(&l, &r)?),
            BinaryOp::And | BinaryOp::Or => {
                let (la, ra) = self.same_length(l, r)?;
                let (la, ra) = (la.as_boolean(), ra.as_boolean());
                let out = if op == BinaryOp::And {
                    boolean::and_kleene(la, ra)?
                } else {
                    boolean::or_kleene(la, ra)?
                };
                bool_wrap(out)
            }
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul => {
                let result_type = self.type_of(whole)?;
                // Timestamps are int64 milliseconds underneath: compute on int64, then retype.
                let l = l.map(as_int64_if_timestamp)?;
                let r = r.map(as_int64_if_timestamp)?;
                let ints = l.data_type() == &ArrowType::Int64;
                let out = match (op, ints) {
                    (BinaryOp::Add, true) => numeric::add_wrapping(&l, &r)?,
                    (BinaryOp::Sub, true) => numeric::sub_wrapping(&l, &r)?,
                    (BinaryOp::Mul, true) => numeric::mul_wrapping(&l, &r)?,
                    (BinaryOp::Add, false) => numeric::add(&l, &r)?,
                    (BinaryOp::Sub, false) => numeric::sub(&l, &r)?,
                    _ => numeric::mul(&l, &r)?,
                };
                wrap(cast_array(&out, &result_type.to_arrow())?)
            }
            BinaryOp::Div | BinaryOp::Mod => {
                let (la, ra) = if both_scalar {
                    (l.array().clone(), r.array().clone())
                } else {
                    self.same_length(l, r)?
                };
                wrap(divide(&la, &ra, op == BinaryOp::Div)?)
            }
        })
    }

    /// Both operands as columns of equal length (scalars broadcast unless both are scalars).
    fn same_length(&self, l: Val, r: Val) -> ExecResult<(ArrayRef, ArrayRef)> {
        if l.is_scalar() && r.is_scalar() {
            return Ok((l.array().clone(), r.array().clone()));
        }
        Ok((l.into_array(self.rows)?, r.into_array(self.rows)?))
    }

    fn case(
        &self,
        whole: &Expr,
        when: &[(Expr, Expr)],
        otherwise: Option<&Expr>,
    ) -> ExecResult<Val> {
        let t = self.type_of(whole)?;
        let arrow_t = t.to_arrow();
        let mut result = match otherwise {
            Some(o) => self.coerced(o, &t)?,
            None => Val::Scalar(new_null_array(&arrow_t, 1)),
        };
        // Later branches are overridden by earlier ones: fold from the last branch back.
        for (cond, value) in when.iter().rev() {
            let mask = self
                .coerced(cond, &DataType::Boolean)?
                .into_array(self.rows)?;
            let value = self.coerced(value, &t)?;
            // `zip` treats a null condition as false, which is SQL's `case` rule.
            result = Val::Array(zip::zip(mask.as_boolean(), &value, &result)?);
        }
        Ok(result)
    }
}

/// Whether the model types `e` as "NULL, type unknown yet" (it then takes the type of what
/// it is combined with): a NULL literal, and negations, operators and `case`s of only those.
fn is_untyped_null(e: &Expr) -> bool {
    match e {
        Expr::Literal(Literal::Null) => true,
        Expr::Negate(inner) => is_untyped_null(inner),
        Expr::Binary { left, right, .. } => is_untyped_null(left) && is_untyped_null(right),
        Expr::Case { when, otherwise } => {
            when.iter().all(|(_, v)| is_untyped_null(v))
                && otherwise.as_deref().is_none_or(is_untyped_null)
        }
        _ => false,
    }
}

/// Timestamps as their int64 milliseconds; other arrays unchanged.
fn as_int64_if_timestamp(a: &ArrayRef) -> ExecResult<ArrayRef> {
    match a.data_type() {
        ArrowType::Timestamp(_, _) => cast_array(a, &ArrowType::Int64),
        _ => Ok(a.clone()),
    }
}

/// `/` or `%` with null for a zero divisor. Integer division truncates toward zero and
/// wraps on `i64::MIN / -1`.
fn divide(l: &ArrayRef, r: &ArrayRef, is_div: bool) -> ExecResult<ArrayRef> {
    let zero_divisor = match r.data_type() {
        ArrowType::Int64 => cmp::eq(r, &Int64Array::new_scalar(0))?,
        _ => cmp::eq(r, &Float64Array::new_scalar(0.0))?,
    };
    let out: ArrayRef = match l.data_type() {
        ArrowType::Int64 => {
            let (a, b) = (l.as_primitive::<Int64Type>(), r.as_primitive::<Int64Type>());
            // Slots with a zero divisor are nulled below; the closure must only not panic there.
            let q = if is_div {
                arrow::compute::binary::<_, _, _, Int64Type>(a, b, |x, y| {
                    if y == 0 {
                        0
                    } else {
                        x.wrapping_div(y)
                    }
                })?
            } else {
                arrow::compute::binary::<_, _, _, Int64Type>(a, b, |x, y| {
                    if y == 0 {
                        0
                    } else {
                        x.wrapping_rem(y)
                    }
                })?
            };
            Arc::new(q)
        }
        _ => {
            let (a, b) = (
                l.as_primitive::<Float64Type>(),
                r.as_primitive::<Float64Type>(),
            );
            let q = if is_div {
                arrow::compute::binary::<_, _, _, Float64Type>(a, b, |x, y| x / y)?
            } else {
                arrow::compute::binary::<_, _, _, Float64Type>(a, b, |x, y| x % y)?
            };
            Arc::new(q)
        }
    };
    Ok(nullif(out.as_ref(), &zero_divisor)?)
}

/// Reinterprets an int64 array as timestamps (used by functions that compute on milliseconds).
pub(crate) fn int64_to_timestamp(a: Int64Array) -> TimestampMillisecondArray {
    a.reinterpret_cast::<TimestampMillisecondType>()
}

/// A string column built row by row with a writer, for functions with no Arrow kernel.
pub(crate) fn string_builder(rows: usize) -> StringBuilder {
    StringBuilder::with_capacity(rows, rows * 16)
}
