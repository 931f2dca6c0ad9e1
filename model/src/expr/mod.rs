//! The expression language: columns, literals, arithmetic, comparison, boolean logic, casts,
//! conditionals and a set of string and time functions. Runners evaluate it vectorized on
//! Arrow (`weir-runner-core`'s `eval`); pipeline files write it as text ([`parse`]).

mod parse;
mod typing;

pub use parse::parse;

use crate::schema::DataType;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A constant value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Literal {
    /// SQL NULL.
    Null,
    /// true / false.
    Boolean(bool),
    /// A 64-bit integer.
    Int64(i64),
    /// A 64-bit float.
    Float64(f64),
    /// Text.
    String(String),
    /// Milliseconds since the epoch.
    Timestamp(i64),
}

impl Literal {
    /// The literal's type (`None` for NULL, which fits any type).
    pub fn data_type(&self) -> Option<DataType> {
        match self {
            Literal::Null => None,
            Literal::Boolean(_) => Some(DataType::Boolean),
            Literal::Int64(_) => Some(DataType::Int64),
            Literal::Float64(_) => Some(DataType::Float64),
            Literal::String(_) => Some(DataType::String),
            Literal::Timestamp(_) => Some(DataType::Timestamp),
        }
    }
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryOp {
    /// `+` (numbers; timestamp + int64 milliseconds).
    Add,
    /// `-` (numbers; timestamp - int64; timestamp - timestamp gives int64 ms).
    Sub,
    /// `*`.
    Mul,
    /// `/` (integer division on integers; null on division by zero).
    Div,
    /// `%`.
    Mod,
    /// `==` / `=`.
    Eq,
    /// `!=` / `<>`.
    NotEq,
    /// `<`.
    Lt,
    /// `<=`.
    LtEq,
    /// `>`.
    Gt,
    /// `>=`.
    GtEq,
    /// `and` (SQL three-valued logic).
    And,
    /// `or` (SQL three-valued logic).
    Or,
}

impl BinaryOp {
    /// The operator's text form.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Eq => "==",
            BinaryOp::NotEq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
        }
    }
    /// Binding strength; higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq
            | BinaryOp::NotEq
            | BinaryOp::Lt
            | BinaryOp::LtEq
            | BinaryOp::Gt
            | BinaryOp::GtEq => 3,
            BinaryOp::Add | BinaryOp::Sub => 4,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => 5,
        }
    }
}

/// A built-in scalar function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    /// `lower(s)`.
    Lower,
    /// `upper(s)`.
    Upper,
    /// `length(s)`: characters.
    Length,
    /// `trim(s)`.
    Trim,
    /// `concat(a, b, ...)`: strings; nulls make null.
    Concat,
    /// `substr(s, start, len)`: 1-based start, as in SQL.
    Substr,
    /// `starts_with(s, prefix)`.
    StartsWith,
    /// `ends_with(s, suffix)`.
    EndsWith,
    /// `contains(s, needle)`.
    Contains,
    /// `replace(s, from, to)`.
    Replace,
    /// `regexp_like(s, pattern)`: whether the pattern matches anywhere.
    RegexpLike,
    /// `regexp_extract(s, pattern, group)`: the group's text, or null.
    RegexpExtract,
    /// `split(s, separator)`: a list of strings.
    Split,
    /// `split_part(s, separator, n)`: the n-th (1-based) piece or null.
    SplitPart,
    /// `abs(x)`.
    Abs,
    /// `round(x)`.
    Round,
    /// `floor(x)`.
    Floor,
    /// `ceil(x)`.
    Ceil,
    /// `coalesce(a, b, ...)`: first non-null.
    Coalesce,
    /// `to_timestamp(x)`: int64 milliseconds or RFC 3339 text to a timestamp.
    ToTimestamp,
    /// `millis(ts)`: a timestamp as int64 milliseconds since the epoch.
    Millis,
    /// `date_trunc('minute', ts)`: unit one of second, minute, hour, day.
    DateTrunc,
    /// `extract_hour(ts)`: hour of day, UTC.
    ExtractHour,
    /// `extract_day(ts)`: day of month, UTC.
    ExtractDay,
    /// `format_timestamp(ts)`: RFC 3339 text, UTC, millisecond precision.
    FormatTimestamp,
    /// `hash(x)`: a stable 64-bit hash (non-negative) of the value.
    Hash,
}

impl Function {
    /// Every function, for name lookup and documentation.
    pub const ALL: &'static [Function] = &[
        Function::Lower,
        Function::Upper,
        Function::Length,
        Function::Trim,
        Function::Concat,
        Function::Substr,
        Function::StartsWith,
        Function::EndsWith,
        Function::Contains,
        Function::Replace,
        Function::RegexpLike,
        Function::RegexpExtract,
        Function::Split,
        Function::SplitPart,
        Function::Abs,
        Function::Round,
        Function::Floor,
        Function::Ceil,
        Function::Coalesce,
        Function::ToTimestamp,
        Function::Millis,
        Function::DateTrunc,
        Function::ExtractHour,
        Function::ExtractDay,
        Function::FormatTimestamp,
        Function::Hash,
    ];

    /// The function's name in expression text.
    pub fn name(self) -> &'static str {
        match self {
            Function::Lower => "lower",
            Function::Upper => "upper",
            Function::Length => "length",
            Function::Trim => "trim",
            Function::Concat => "concat",
            Function::Substr => "substr",
            Function::StartsWith => "starts_with",
            Function::EndsWith => "ends_with",
            Function::Contains => "contains",
            Function::Replace => "replace",
            Function::RegexpLike => "regexp_like",
            Function::RegexpExtract => "regexp_extract",
            Function::Split => "split",
            Function::SplitPart => "split_part",
            Function::Abs => "abs",
            Function::Round => "round",
            Function::Floor => "floor",
            Function::Ceil => "ceil",
            Function::Coalesce => "coalesce",
            Function::ToTimestamp => "to_timestamp",
            Function::Millis => "millis",
            Function::DateTrunc => "date_trunc",
            Function::ExtractHour => "extract_hour",
            Function::ExtractDay => "extract_day",
            Function::FormatTimestamp => "format_timestamp",
            Function::Hash => "hash",
        }
    }

    /// The function called `name` (case-insensitive).
    pub fn by_name(name: &str) -> Option<Function> {
        let lower = name.to_ascii_lowercase();
        Function::ALL.iter().copied().find(|f| f.name() == lower)
    }
}

/// An expression over the columns of one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    /// The value of a column.
    Column(String),
    /// A constant.
    Literal(Literal),
    /// `left op right`.
    Binary {
        /// Operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `not e`.
    Not(Box<Expr>),
    /// `-e`.
    Negate(Box<Expr>),
    /// `e is null`.
    IsNull(Box<Expr>),
    /// `e is not null`.
    IsNotNull(Box<Expr>),
    /// `cast(e as type)`.
    Cast {
        /// The value.
        expr: Box<Expr>,
        /// Target type.
        to: DataType,
    },
    /// `func(args...)`.
    Call {
        /// The function.
        func: Function,
        /// Arguments.
        args: Vec<Expr>,
    },
    /// `case when c1 then v1 ... else d end`.
    Case {
        /// (condition, value) pairs, tried in order.
        when: Vec<(Expr, Expr)>,
        /// Value when no condition holds (null when absent).
        otherwise: Option<Box<Expr>>,
    },
}

/// Builds a column reference.
pub fn col(name: impl Into<String>) -> Expr {
    Expr::Column(name.into())
}

/// Builds a literal.
pub fn lit(value: impl Into<Literal>) -> Expr {
    Expr::Literal(value.into())
}

impl From<i64> for Literal {
    fn from(v: i64) -> Self {
        Literal::Int64(v)
    }
}
impl From<i32> for Literal {
    fn from(v: i32) -> Self {
        Literal::Int64(v as i64)
    }
}
impl From<f64> for Literal {
    fn from(v: f64) -> Self {
        Literal::Float64(v)
    }
}
impl From<bool> for Literal {
    fn from(v: bool) -> Self {
        Literal::Boolean(v)
    }
}
impl From<&str> for Literal {
    fn from(v: &str) -> Self {
        Literal::String(v.to_string())
    }
}
impl From<String> for Literal {
    fn from(v: String) -> Self {
        Literal::String(v)
    }
}

macro_rules! binary_builders {
    ($($name:ident => $op:ident),* $(,)?) => {
        impl Expr {
            $(
                #[doc = concat!("`self ", stringify!($name), " other` (", stringify!($op), ").")]
                pub fn $name(self, other: Expr) -> Expr {
                    Expr::Binary { op: BinaryOp::$op, left: Box::new(self), right: Box::new(other) }
                }
            )*
        }
    };
}

// `add`/`sub`/... build expressions; implementing std::ops would force operator syntax on
// `Expr` values where method chains read better next to `eq`/`and`.
#[allow(clippy::should_implement_trait)]
mod builders {
    use super::{BinaryOp, Expr};
    binary_builders! {
    add => Add, sub => Sub, mul => Mul, div => Div, rem => Mod,
    eq => Eq, not_eq => NotEq, lt => Lt, lt_eq => LtEq, gt => Gt, gt_eq => GtEq,
    and => And, or => Or,
    }
}

impl Expr {
    /// `cast(self as to)`.
    pub fn cast(self, to: DataType) -> Expr {
        Expr::Cast {
            expr: Box::new(self),
            to,
        }
    }
    /// `func(args)`.
    pub fn call(func: Function, args: Vec<Expr>) -> Expr {
        Expr::Call { func, args }
    }
    /// The columns this expression reads, in first-use order, without repeats.
    pub fn columns(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.visit_columns(&mut |c| {
            if !out.iter().any(|o: &String| o == c) {
                out.push(c.to_string());
            }
        });
        out
    }

    fn visit_columns(&self, f: &mut dyn FnMut(&str)) {
        match self {
            Expr::Column(c) => f(c),
            Expr::Literal(_) => {}
            Expr::Binary { left, right, .. } => {
                left.visit_columns(f);
                right.visit_columns(f);
            }
            Expr::Not(e) | Expr::Negate(e) | Expr::IsNull(e) | Expr::IsNotNull(e) => {
                e.visit_columns(f)
            }
            Expr::Cast { expr, .. } => expr.visit_columns(f),
            Expr::Call { args, .. } => args.iter().for_each(|a| a.visit_columns(f)),
            Expr::Case { when, otherwise } => {
                for (c, v) in when {
                    c.visit_columns(f);
                    v.visit_columns(f);
                }
                if let Some(o) = otherwise {
                    o.visit_columns(f);
                }
            }
        }
    }
}

fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn is_plain_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !parse::is_keyword(s)
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => write!(f, "null"),
            Literal::Boolean(b) => write!(f, "{b}"),
            Literal::Int64(i) => write!(f, "{i}"),
            Literal::Float64(x) => {
                if x.fract() == 0.0 && x.is_finite() {
                    write!(f, "{x:.1}")
                } else {
                    write!(f, "{x}")
                }
            }
            Literal::String(s) => write!(f, "{}", quote_str(s)),
            Literal::Timestamp(ms) => write!(f, "to_timestamp({ms})"),
        }
    }
}

/// Text form, parseable again by [`parse`] to an equal expression.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(c) if is_plain_identifier(c) => write!(f, "{c}"),
            Expr::Column(c) => write!(f, "`{}`", c.replace('`', "``")),
            Expr::Literal(l) => write!(f, "{l}"),
            Expr::Binary { op, left, right } => write!(f, "({left} {} {right})", op.symbol()),
            Expr::Not(e) => write!(f, "(not {e})"),
            Expr::Negate(e) => write!(f, "(-{e})"),
            Expr::IsNull(e) => write!(f, "({e} is null)"),
            Expr::IsNotNull(e) => write!(f, "({e} is not null)"),
            Expr::Cast { expr, to } => write!(f, "cast({expr} as {to})"),
            Expr::Call { func, args } => {
                write!(f, "{}(", func.name())?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{a}")?;
                }
                write!(f, ")")
            }
            Expr::Case { when, otherwise } => {
                write!(f, "case")?;
                for (c, v) in when {
                    write!(f, " when {c} then {v}")?;
                }
                if let Some(o) = otherwise {
                    write!(f, " else {o}")?;
                }
                write!(f, " end")
            }
        }
    }
}
