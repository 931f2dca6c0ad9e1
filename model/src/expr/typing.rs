//! Static typing of expressions against a schema, so bad expressions are refused before a
//! pipeline runs, naming the column at fault.

use super::{BinaryOp, Expr, Function, Literal};
use crate::schema::{DataType, Schema};

/// Why an expression does not type-check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeError {
    /// The column at fault, when one is.
    pub column: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl TypeError {
    fn new(message: impl Into<String>) -> Self {
        TypeError {
            column: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for TypeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(c) => write!(f, "column `{c}`: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

/// Common type of two operands for arithmetic/comparison: int64 widens to float64.
fn unify(a: &DataType, b: &DataType) -> Option<DataType> {
    match (a, b) {
        _ if a == b => Some(a.clone()),
        (DataType::Int64, DataType::Float64) | (DataType::Float64, DataType::Int64) => {
            Some(DataType::Float64)
        }
        _ => None,
    }
}

impl Expr {
    /// The type of this expression's value over rows of `schema`. A NULL literal alone has
    /// type string (it fits anywhere it is combined with something typed).
    pub fn data_type(&self, schema: &Schema) -> Result<DataType, TypeError> {
        Ok(self.type_of(schema)?.unwrap_or(DataType::String))
    }

    /// `None` means "null literal, type unknown yet".
    fn type_of(&self, schema: &Schema) -> Result<Option<DataType>, TypeError> {
        use DataType as T;
        Ok(Some(match self {
            Expr::Column(c) => match schema.field(c) {
                Some(f) => f.data_type.clone(),
                None => {
                    return Err(TypeError {
                        column: Some(c.clone()),
                        message: format!("no such column; the input has {}", schema),
                    })
                }
            },
            Expr::Literal(l) => return Ok(l.data_type()),
            Expr::Binary { op, left, right } => {
                let l = left.type_of(schema)?;
                let r = right.type_of(schema)?;
                let (l, r) = match (l, r) {
                    (None, None) => return Ok(None),
                    (Some(l), None) => (l.clone(), l),
                    (None, Some(r)) => (r.clone(), r),
                    (Some(l), Some(r)) => (l, r),
                };
                let mismatch = || {
                    TypeError::new(format!(
                        "`{}` cannot apply to {l} and {r} (in `{self}`)",
                        op.symbol()
                    ))
                };
                match op {
                    BinaryOp::And | BinaryOp::Or => {
                        if l != T::Boolean || r != T::Boolean {
                            return Err(mismatch());
                        }
                        T::Boolean
                    }
                    BinaryOp::Eq
                    | BinaryOp::NotEq
                    | BinaryOp::Lt
                    | BinaryOp::LtEq
                    | BinaryOp::Gt
                    | BinaryOp::GtEq => {
                        let u = unify(&l, &r).ok_or_else(mismatch)?;
                        if !u.is_orderable() {
                            return Err(mismatch());
                        }
                        T::Boolean
                    }
                    BinaryOp::Add | BinaryOp::Sub => match (&l, &r) {
                        (T::Timestamp, T::Int64) => T::Timestamp,
                        (T::Int64, T::Timestamp) if *op == BinaryOp::Add => T::Timestamp,
                        (T::Timestamp, T::Timestamp) if *op == BinaryOp::Sub => T::Int64,
                        _ => unify(&l, &r)
                            .filter(DataType::is_numeric)
                            .ok_or_else(mismatch)?,
                    },
                    BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => unify(&l, &r)
                        .filter(DataType::is_numeric)
                        .ok_or_else(mismatch)?,
                }
            }
            Expr::Not(e) => {
                expect(e, schema, &[T::Boolean], "not")?;
                T::Boolean
            }
            Expr::Negate(e) => match e.type_of(schema)? {
                None => return Ok(None),
                Some(t) if t.is_numeric() => t,
                Some(t) => {
                    return Err(TypeError::new(format!(
                        "`-` cannot apply to {t} (in `{self}`)"
                    )))
                }
            },
            Expr::IsNull(e) | Expr::IsNotNull(e) => {
                e.type_of(schema)?;
                T::Boolean
            }
            Expr::Cast { expr, to } => {
                let from = expr.type_of(schema)?;
                if let Some(from) = from {
                    let ok = matches!(
                        (&from, to),
                        (a, b) if a == b
                    ) || (from.is_orderable() && to.is_orderable());
                    if !ok {
                        return Err(TypeError::new(format!(
                            "cannot cast {from} to {to} (in `{self}`)"
                        )));
                    }
                }
                to.clone()
            }
            Expr::Call { func, args } => return call_type(*func, args, schema, self).map(Some),
            Expr::Case { when, otherwise } => {
                let mut result: Option<DataType> = None;
                for (c, v) in when {
                    expect(c, schema, &[T::Boolean], "case when")?;
                    result = merge_branch(result, v.type_of(schema)?, self)?;
                }
                if let Some(o) = otherwise {
                    result = merge_branch(result, o.type_of(schema)?, self)?;
                }
                return Ok(result);
            }
        }))
    }
}

fn merge_branch(
    acc: Option<DataType>,
    next: Option<DataType>,
    whole: &Expr,
) -> Result<Option<DataType>, TypeError> {
    match (acc, next) {
        (None, n) => Ok(n),
        (a, None) => Ok(a),
        (Some(a), Some(b)) => unify(&a, &b).map(Some).ok_or_else(|| {
            TypeError::new(format!(
                "case branches have types {a} and {b} (in `{whole}`)"
            ))
        }),
    }
}

fn expect(
    e: &Expr,
    schema: &Schema,
    allowed: &[DataType],
    what: &str,
) -> Result<DataType, TypeError> {
    match e.type_of(schema)? {
        None => Ok(allowed[0].clone()),
        Some(t) if allowed.contains(&t) => Ok(t),
        Some(t) => {
            let names: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
            let mut err = TypeError::new(format!(
                "{what} expects {} but `{e}` is {t}",
                names.join(" or ")
            ));
            if let Expr::Column(c) = e {
                err.column = Some(c.clone());
            }
            Err(err)
        }
    }
}

fn call_type(
    func: Function,
    args: &[Expr],
    schema: &Schema,
    whole: &Expr,
) -> Result<DataType, TypeError> {
    use DataType as T;
    let name = func.name();
    let arity = |n: usize| -> Result<(), TypeError> {
        if args.len() != n {
            Err(TypeError::new(format!(
                "{name} takes {n} argument(s), got {} (in `{whole}`)",
                args.len()
            )))
        } else {
            Ok(())
        }
    };
    let s = [T::String];
    let i = [T::Int64];
    let num = [T::Int64, T::Float64];
    let ts = [T::Timestamp];
    Ok(match func {
        Function::Lower | Function::Upper | Function::Trim => {
            arity(1)?;
            expect(&args[0], schema, &s, name)?;
            T::String
        }
        Function::Length => {
            arity(1)?;
            expect(&args[0], schema, &s, name)?;
            T::Int64
        }
        Function::Concat => {
            if args.is_empty() {
                return Err(TypeError::new("concat takes at least one argument"));
            }
            for a in args {
                expect(a, schema, &s, name)?;
            }
            T::String
        }
        Function::Substr => {
            arity(3)?;
            expect(&args[0], schema, &s, name)?;
            expect(&args[1], schema, &i, name)?;
            expect(&args[2], schema, &i, name)?;
            T::String
        }
        Function::StartsWith | Function::EndsWith | Function::Contains | Function::RegexpLike => {
            arity(2)?;
            expect(&args[0], schema, &s, name)?;
            expect(&args[1], schema, &s, name)?;
            T::Boolean
        }
        Function::Replace => {
            arity(3)?;
            for a in args {
                expect(a, schema, &s, name)?;
            }
            T::String
        }
        Function::RegexpExtract => {
            arity(3)?;
            expect(&args[0], schema, &s, name)?;
            expect(&args[1], schema, &s, name)?;
            expect(&args[2], schema, &i, name)?;
            T::String
        }
        Function::Split => {
            arity(2)?;
            expect(&args[0], schema, &s, name)?;
            expect(&args[1], schema, &s, name)?;
            T::List(Box::new(T::String))
        }
        Function::SplitPart => {
            arity(3)?;
            expect(&args[0], schema, &s, name)?;
            expect(&args[1], schema, &s, name)?;
            expect(&args[2], schema, &i, name)?;
            T::String
        }
        Function::Abs | Function::Round | Function::Floor | Function::Ceil => {
            arity(1)?;
            expect(&args[0], schema, &num, name)?
        }
        Function::Coalesce => {
            if args.is_empty() {
                return Err(TypeError::new("coalesce takes at least one argument"));
            }
            let mut t = None;
            for a in args {
                t = merge_branch(t, a.type_of(schema)?, whole)?;
            }
            t.unwrap_or(T::String)
        }
        Function::ToTimestamp => {
            arity(1)?;
            expect(&args[0], schema, &[T::Int64, T::String, T::Timestamp], name)?;
            T::Timestamp
        }
        Function::Millis => {
            arity(1)?;
            expect(&args[0], schema, &ts, name)?;
            T::Int64
        }
        Function::DateTrunc => {
            arity(2)?;
            match &args[0] {
                Expr::Literal(Literal::String(u)) if ["second", "minute", "hour", "day"].contains(&u.as_str()) => {}
                other => {
                    return Err(TypeError::new(format!(
                        "date_trunc's first argument must be one of 'second', 'minute', 'hour', 'day', not `{other}`"
                    )))
                }
            }
            expect(&args[1], schema, &ts, name)?;
            T::Timestamp
        }
        Function::ExtractHour | Function::ExtractDay => {
            arity(1)?;
            expect(&args[0], schema, &ts, name)?;
            T::Int64
        }
        Function::FormatTimestamp => {
            arity(1)?;
            expect(&args[0], schema, &ts, name)?;
            T::String
        }
        Function::Hash => {
            arity(1)?;
            args[0].type_of(schema)?;
            T::Int64
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{col, lit};
    use crate::schema::Field;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("user", DataType::String),
            Field::new("amount", DataType::Int64),
            Field::new("price", DataType::Float64),
            Field::new("ts", DataType::Timestamp),
        ])
    }

    #[test]
    fn arithmetic_widens_int_to_float() {
        assert_eq!(
            col("amount")
                .mul(col("price"))
                .data_type(&schema())
                .unwrap(),
            DataType::Float64
        );
        assert_eq!(
            col("ts").add(lit(1000)).data_type(&schema()).unwrap(),
            DataType::Timestamp
        );
    }

    #[test]
    fn unknown_column_is_named() {
        let err = col("nope").gt(lit(1)).data_type(&schema()).unwrap_err();
        assert_eq!(err.column.as_deref(), Some("nope"));
    }

    #[test]
    fn comparing_string_with_number_is_refused() {
        assert!(col("user").gt(lit(1)).data_type(&schema()).is_err());
    }
}
