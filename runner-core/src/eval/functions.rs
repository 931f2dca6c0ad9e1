//! The built-in functions of the expression language.
//!
//! Choices the model leaves open (all nulls-in → null-out unless stated):
//! - `length` counts Unicode scalar values (chars), not bytes;
//! - `trim` removes leading and trailing Unicode whitespace;
//! - `substr(s, start, len)` follows Spark: `start` is 1-based, `0` acts as `1`, a negative
//!   `start` counts from the end (`-1` is the last char); the span `[start, start+len)` is then
//!   clipped to the string, so a negative `len` gives `''`;
//! - `replace(s, '', to)` returns `s` unchanged;
//! - `regexp_extract` returns null when the pattern does not match, when the group did not
//!   take part in the match, or when the pattern has no such group (group 0 = whole match);
//!   an invalid pattern fails the run;
//! - `split(s, '')` splits into single characters; `split('', sep)` is `['']`;
//! - `split_part` counts pieces from 1, a negative `n` counts from the end, `0` or an index
//!   past the pieces gives null; an empty separator makes the whole string the only piece;
//! - `abs` of `i64::MIN` wraps to itself; `round` rounds half away from zero; integer
//!   `round/floor/ceil` return the value unchanged;
//! - `to_timestamp(text)` accepts RFC 3339, `YYYY-MM-DD HH:MM:SS[.fff]` (UTC), `YYYY-MM-DD`,
//!   and integer millisecond text; anything else gives null;
//! - `date_trunc` floors toward negative infinity, so pre-epoch times truncate correctly;
//! - `format_timestamp` writes `YYYY-MM-DDTHH:MM:SS.mmmZ`; a time outside years 0000–9999
//!   cannot be written in that form and gives null;
//! - `hash`: see [`super::hash`]; `hash(null)` is null.

use super::{cast_array, int64_to_timestamp, runtime_error, string_builder, Evaluator, Val};
use crate::error::ExecResult;
use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, Int64Array, ListBuilder, StringArray, StringBuilder,
};
use arrow::buffer::{Buffer, OffsetBuffer};
use arrow::compute::kernels::{comparison, concat_elements, substring, zip};
use arrow::datatypes::{DataType as ArrowType, Float64Type, Int64Type};
use regex::Regex;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use weir_model::expr::{Function, Literal};
use weir_model::{DataType, Expr};

/// Evaluates `func(args)`; `whole` is the call itself, for its result type and errors.
pub(super) fn call(ev: &Evaluator, whole: &Expr, func: Function, args: &[Expr]) -> ExecResult<Val> {
    use Function as F;
    let string = |i: usize| ev.coerced(&args[i], &DataType::String);
    let int = |i: usize| ev.coerced(&args[i], &DataType::Int64);
    let millis = |i: usize| -> ExecResult<Val> {
        let v = ev.coerced(&args[i], &DataType::Timestamp)?;
        v.map(|a| cast_array(a, &ArrowType::Int64))
    };
    match func {
        F::Lower => string(0)?.map(|a| Ok(Arc::new(change_case(a.as_string(), false)) as ArrayRef)),
        F::Upper => string(0)?.map(|a| Ok(Arc::new(change_case(a.as_string(), true)) as ArrayRef)),
        F::Length => string(0)?.map(|a| {
            let chars: Int64Array = a
                .as_string::<i32>()
                .iter()
                .map(|s| s.map(|s| s.chars().count() as i64))
                .collect();
            Ok(Arc::new(chars) as ArrayRef)
        }),
        F::Trim => string(0)?.map(|a| {
            let strings = a.as_string::<i32>();
            let mut b = StringBuilder::with_capacity(strings.len(), strings.value_data().len());
            strings
                .iter()
                .for_each(|s| b.append_option(s.map(str::trim)));
            Ok(Arc::new(b.finish()) as ArrayRef)
        }),
        F::Concat => {
            let vals = args
                .iter()
                .map(|a| ev.coerced(a, &DataType::String))
                .collect::<ExecResult<Vec<_>>>()?;
            combine(ev, vals, |cols| {
                let strings: Vec<&StringArray> =
                    cols.iter().map(|c| c.as_string::<i32>()).collect();
                Ok(Arc::new(concat_elements::concat_elements_utf8_many(
                    &strings,
                )?))
            })
        }
        F::Substr => substr(ev, string(0)?, int(1)?, int(2)?),
        F::StartsWith | F::EndsWith | F::Contains => {
            let (s, p) = (string(0)?, string(1)?);
            let out = match func {
                F::StartsWith => comparison::starts_with(&s, &p)?,
                F::EndsWith => comparison::ends_with(&s, &p)?,
                _ => comparison::contains(&s, &p)?,
            };
            Ok(wrap_like(&[&s, &p], Arc::new(out)))
        }
        F::Replace => {
            let vals = vec![string(0)?, string(1)?, string(2)?];
            combine(ev, vals, |cols| {
                let (s, from, to) = (
                    cols[0].as_string::<i32>(),
                    cols[1].as_string::<i32>(),
                    cols[2].as_string::<i32>(),
                );
                let mut b = StringBuilder::with_capacity(s.len(), s.value_data().len());
                for i in 0..s.len() {
                    if s.is_null(i) || from.is_null(i) || to.is_null(i) {
                        b.append_null();
                    } else {
                        write_replaced(&mut b, s.value(i), from.value(i), to.value(i));
                        b.append_value("");
                    }
                }
                Ok(Arc::new(b.finish()))
            })
        }
        F::RegexpLike => {
            let (s, p) = (string(0)?, string(1)?);
            let mut cache = RegexCache::new(whole);
            if let Some(pattern) = constant_pattern(&s, &p) {
                // One pattern for every row: compiled once, not broadcast per row.
                let Some(pattern) = pattern else {
                    return Ok(Val::Array(new_null_array(&ArrowType::Boolean, ev.rows)));
                };
                let re = cache.get(pattern)?;
                let s = s.array().as_string::<i32>();
                let out: arrow::array::BooleanArray =
                    s.iter().map(|v| v.map(|v| re.is_match(v))).collect();
                return Ok(Val::Array(Arc::new(out)));
            }
            combine(ev, vec![s, p], |cols| {
                let (s, p) = (cols[0].as_string::<i32>(), cols[1].as_string::<i32>());
                let mut out = arrow::array::BooleanBuilder::with_capacity(s.len());
                for i in 0..s.len() {
                    if s.is_null(i) || p.is_null(i) {
                        out.append_null();
                    } else {
                        out.append_value(cache.get(p.value(i))?.is_match(s.value(i)));
                    }
                }
                Ok(Arc::new(out.finish()))
            })
        }
        F::RegexpExtract => {
            let (s, p, g) = (string(0)?, string(1)?, int(2)?);
            let mut cache = RegexCache::new(whole);
            if let (Some(pattern), true) = (constant_pattern(&s, &p), g.is_scalar()) {
                // One pattern and group for every row: compiled once, capture slots reused.
                let group = g.array().as_primitive::<Int64Type>();
                let (Some(pattern), false) = (pattern, group.is_null(0)) else {
                    return Ok(Val::Array(new_null_array(&ArrowType::Utf8, ev.rows)));
                };
                let re = cache.get(pattern)?;
                let group = usize::try_from(group.value(0))
                    .ok()
                    .filter(|g| *g < re.captures_len());
                let s = s.array().as_string::<i32>();
                let mut b = StringBuilder::with_capacity(s.len(), s.len() * 8);
                let mut locations = re.capture_locations();
                for text in s.iter() {
                    let found = text.zip(group).and_then(|(text, group)| {
                        re.captures_read(&mut locations, text)?;
                        locations.get(group).map(|(a, z)| &text[a..z])
                    });
                    b.append_option(found);
                }
                return Ok(Val::Array(Arc::new(b.finish())));
            }
            combine(ev, vec![s, p, g], |cols| {
                let (s, p) = (cols[0].as_string::<i32>(), cols[1].as_string::<i32>());
                let g = cols[2].as_primitive::<Int64Type>();
                let mut b = StringBuilder::with_capacity(s.len(), s.len() * 8);
                for i in 0..s.len() {
                    if s.is_null(i) || p.is_null(i) || g.is_null(i) {
                        b.append_null();
                        continue;
                    }
                    let re = cache.get(p.value(i))?;
                    let group = usize::try_from(g.value(i))
                        .ok()
                        .filter(|g| *g < re.captures_len());
                    let text = s.value(i);
                    let found = group.and_then(|group| {
                        let mut locations = re.capture_locations();
                        re.captures_read(&mut locations, text)?;
                        locations.get(group).map(|(a, z)| &text[a..z])
                    });
                    b.append_option(found);
                }
                Ok(Arc::new(b.finish()))
            })
        }
        F::Split => combine(ev, vec![string(0)?, string(1)?], |cols| {
            let (s, sep) = (cols[0].as_string::<i32>(), cols[1].as_string::<i32>());
            let mut b = ListBuilder::with_capacity(StringBuilder::new(), s.len());
            for i in 0..s.len() {
                if s.is_null(i) || sep.is_null(i) {
                    b.append_null();
                    continue;
                }
                let (text, sep) = (s.value(i), sep.value(i));
                if sep.is_empty() {
                    for (start, c) in text.char_indices() {
                        b.values().append_value(&text[start..start + c.len_utf8()]);
                    }
                } else {
                    text.split(sep)
                        .for_each(|piece| b.values().append_value(piece));
                }
                b.append(true);
            }
            Ok(Arc::new(b.finish()))
        }),
        F::SplitPart => combine(ev, vec![string(0)?, string(1)?, int(2)?], |cols| {
            let (s, sep) = (cols[0].as_string::<i32>(), cols[1].as_string::<i32>());
            let n = cols[2].as_primitive::<Int64Type>();
            let mut b = StringBuilder::with_capacity(s.len(), s.len() * 8);
            for i in 0..s.len() {
                if s.is_null(i) || sep.is_null(i) || n.is_null(i) {
                    b.append_null();
                } else {
                    b.append_option(split_part(s.value(i), sep.value(i), n.value(i)));
                }
            }
            Ok(Arc::new(b.finish()))
        }),
        F::Abs | F::Round | F::Floor | F::Ceil => {
            // The call's type is its argument's (int64 for a NULL literal).
            let t = ev.type_of(whole)?;
            let v = ev.coerced(&args[0], &t)?;
            v.map(|a| {
                Ok(match a.data_type() {
                    ArrowType::Int64 if func == F::Abs => Arc::new(
                        a.as_primitive::<Int64Type>()
                            .unary::<_, Int64Type>(i64::wrapping_abs),
                    ) as ArrayRef,
                    ArrowType::Int64 => a.clone(),
                    _ => {
                        let op: fn(f64) -> f64 = match func {
                            F::Abs => f64::abs,
                            F::Round => f64::round,
                            F::Floor => f64::floor,
                            _ => f64::ceil,
                        };
                        Arc::new(a.as_primitive::<Float64Type>().unary::<_, Float64Type>(op))
                    }
                })
            })
        }
        F::Coalesce => {
            let t = ev.type_of(whole)?;
            let mut result: Option<Val> = None;
            for arg in args {
                let next = ev.coerced(arg, &t)?;
                result = Some(match result {
                    None => next,
                    Some(done @ Val::Scalar(_)) if !done.is_null_scalar() => return Ok(done),
                    Some(Val::Scalar(_)) => next,
                    Some(Val::Array(a)) if a.null_count() == 0 => return Ok(Val::Array(a)),
                    Some(Val::Array(a)) => {
                        let present = arrow::compute::is_not_null(a.as_ref())?;
                        Val::Array(zip::zip(&present, &a, &next)?)
                    }
                });
            }
            Ok(result.expect("coalesce has at least one argument (type-checked)"))
        }
        F::ToTimestamp => {
            let v = ev.eval(&args[0])?;
            v.map(|a| cast_array(a, &DataType::Timestamp.to_arrow()))
        }
        F::Millis => millis(0),
        F::DateTrunc => {
            let unit_ms: i64 = match &args[0] {
                Expr::Literal(Literal::String(u)) => match u.as_str() {
                    "second" => 1_000,
                    "minute" => 60_000,
                    "hour" => 3_600_000,
                    "day" => 86_400_000,
                    other => {
                        return Err(runtime_error(
                            whole,
                            format!("unknown date_trunc unit '{other}'"),
                        ))
                    }
                },
                other => {
                    return Err(runtime_error(
                        whole,
                        format!("the date_trunc unit must be a text literal, not `{other}`"),
                    ))
                }
            };
            millis(1)?.map(|a| {
                let ms = a.as_primitive::<Int64Type>();
                let truncated =
                    ms.unary::<_, Int64Type>(|t| t.div_euclid(unit_ms).saturating_mul(unit_ms));
                Ok(Arc::new(int64_to_timestamp(truncated)) as ArrayRef)
            })
        }
        F::ExtractHour => millis(0)?.map(|a| {
            let hours = a
                .as_primitive::<Int64Type>()
                .unary::<_, Int64Type>(|t| t.div_euclid(3_600_000).rem_euclid(24));
            Ok(Arc::new(hours) as ArrayRef)
        }),
        F::ExtractDay => millis(0)?.map(|a| {
            let days = a
                .as_primitive::<Int64Type>()
                .unary::<_, Int64Type>(|t| civil_from_days(t.div_euclid(86_400_000)).2);
            Ok(Arc::new(days) as ArrayRef)
        }),
        F::FormatTimestamp => {
            millis(0)?.map(|a| Ok(Arc::new(format_timestamps(a.as_primitive())) as ArrayRef))
        }
        F::Hash => ev
            .eval(&args[0])?
            .map(|a| Ok(Arc::new(super::hash::stable_hash_array(a.as_ref())?) as ArrayRef)),
    }
}

/// Runs a row-wise computation over several operands: on the one-row arrays when every
/// operand is a scalar (the result is a scalar), otherwise on full columns.
fn combine(
    ev: &Evaluator,
    vals: Vec<Val>,
    mut f: impl FnMut(&[ArrayRef]) -> ExecResult<ArrayRef>,
) -> ExecResult<Val> {
    if vals.iter().all(Val::is_scalar) {
        let cols: Vec<ArrayRef> = vals.iter().map(|v| v.array().clone()).collect();
        return Ok(Val::Scalar(f(&cols)?));
    }
    let cols = vals
        .into_iter()
        .map(|v| v.into_array(ev.rows))
        .collect::<ExecResult<Vec<_>>>()?;
    Ok(Val::Array(f(&cols)?))
}

/// Wraps a kernel result computed from Datum operands: scalar when every operand was.
fn wrap_like(operands: &[&Val], out: ArrayRef) -> Val {
    if operands.iter().all(|v| v.is_scalar()) {
        Val::Scalar(out)
    } else {
        Val::Array(out)
    }
}

/// `Some(pattern)` when `p` is one pattern for every row of the column `s`, `None`
/// otherwise. `Some(None)` when every result is null without compiling anything: a null
/// pattern, or a column without a value (row by row, no row would compile the pattern).
fn constant_pattern<'a>(s: &Val, p: &'a Val) -> Option<Option<&'a str>> {
    if s.is_scalar() || !p.is_scalar() {
        return None;
    }
    let p = p.array().as_string::<i32>();
    let any_text = s.array().null_count() < s.array().len();
    Some((p.is_valid(0) && any_text).then(|| p.value(0)))
}

fn change_case(strings: &StringArray, upper: bool) -> StringArray {
    let offsets = strings.value_offsets();
    let (first, last) = (offsets[0], offsets[offsets.len() - 1]);
    let data = &strings.value_data()[first as usize..last as usize];
    if data.is_ascii() {
        // ASCII changes case byte for byte: the offsets and nulls stay, and no row is
        // looked at on its own.
        let bytes: Vec<u8> = if upper {
            data.iter().map(u8::to_ascii_uppercase).collect()
        } else {
            data.iter().map(u8::to_ascii_lowercase).collect()
        };
        let offsets = OffsetBuffer::new(offsets.iter().map(|o| o - first).collect());
        return StringArray::new(offsets, Buffer::from_vec(bytes), strings.nulls().cloned());
    }
    let mut b = StringBuilder::with_capacity(strings.len(), strings.value_data().len());
    for s in strings.iter() {
        match s {
            None => b.append_null(),
            Some(s) => {
                // Writing into the builder avoids a String per row.
                for c in s.chars() {
                    if upper {
                        c.to_uppercase()
                            .for_each(|u| b.write_char(u).expect("writing to a builder"));
                    } else {
                        c.to_lowercase()
                            .for_each(|l| b.write_char(l).expect("writing to a builder"));
                    }
                }
                b.append_value("");
            }
        }
    }
    b.finish()
}

fn write_replaced(b: &mut StringBuilder, s: &str, from: &str, to: &str) {
    if from.is_empty() {
        b.write_str(s).expect("writing to a builder");
        return;
    }
    let mut last = 0;
    for (at, _) in s.match_indices(from) {
        b.write_str(&s[last..at]).expect("writing to a builder");
        b.write_str(to).expect("writing to a builder");
        last = at + from.len();
    }
    b.write_str(&s[last..]).expect("writing to a builder");
}

fn substr(ev: &Evaluator, s: Val, start: Val, len: Val) -> ExecResult<Val> {
    // For non-negative literal bounds Spark's rule equals Arrow's char-based substring kernel.
    if let (Some(start), Some(len)) = (start.scalar_i64(), len.scalar_i64()) {
        if start >= 0 && len >= 0 {
            let from = (start - 1).max(0);
            return s.map(|a| {
                Ok(Arc::new(substring::substring_by_char(
                    a.as_string::<i32>(),
                    from,
                    Some(len as u64),
                )?) as ArrayRef)
            });
        }
    }
    combine(ev, vec![s, start, len], |cols| {
        let s = cols[0].as_string::<i32>();
        let (start, len) = (
            cols[1].as_primitive::<Int64Type>(),
            cols[2].as_primitive::<Int64Type>(),
        );
        let mut b = StringBuilder::with_capacity(s.len(), s.value_data().len());
        for i in 0..s.len() {
            if s.is_null(i) || start.is_null(i) || len.is_null(i) {
                b.append_null();
            } else {
                b.append_value(substr_sql(s.value(i), start.value(i), len.value(i)));
            }
        }
        Ok(Arc::new(b.finish()))
    })
}

/// Spark's `substring(s, pos, len)` on chars.
fn substr_sql(s: &str, pos: i64, len: i64) -> &str {
    let start = match pos {
        p if p > 0 => p - 1,
        p if p < 0 => s.chars().count() as i64 + p,
        _ => 0,
    };
    let end = start.saturating_add(len);
    let start = start.max(0);
    if end <= start {
        return "";
    }
    let byte_at = |char_index: i64| {
        s.char_indices()
            .nth(char_index as usize)
            .map(|(b, _)| b)
            .unwrap_or(s.len())
    };
    let from = byte_at(start);
    let to = byte_at(end);
    &s[from..to]
}

fn split_part<'a>(s: &'a str, sep: &str, n: i64) -> Option<&'a str> {
    if sep.is_empty() {
        return (n == 1 || n == -1).then_some(s);
    }
    if n > 0 {
        s.split(sep).nth((n - 1) as usize)
    } else if n < 0 {
        let pieces = s.matches(sep).count() as i64 + 1;
        let index = pieces + n;
        if index < 0 {
            None
        } else {
            s.split(sep).nth(index as usize)
        }
    } else {
        None
    }
}

/// Compiles each distinct pattern once per process: evaluations run per batch (per row on
/// record-at-a-time runners), so a per-evaluation cache would recompile on every row.
/// Bounded, since patterns may come from data.
fn compiled_patterns() -> &'static std::sync::Mutex<HashMap<String, Regex>> {
    static COMPILED: std::sync::OnceLock<std::sync::Mutex<HashMap<String, Regex>>> =
        std::sync::OnceLock::new();
    COMPILED.get_or_init(Default::default)
}

/// Most patterns kept process-wide before the cache starts over.
const MAX_CACHED_PATTERNS: usize = 1024;

/// The compiled patterns one evaluation uses (clones of the process-wide ones; a `Regex`
/// clone shares the compiled program).
struct RegexCache<'a> {
    expr: &'a Expr,
    compiled: HashMap<String, Regex>,
}

impl<'a> RegexCache<'a> {
    fn new(expr: &'a Expr) -> Self {
        RegexCache {
            expr,
            compiled: HashMap::new(),
        }
    }
    fn get(&mut self, pattern: &str) -> ExecResult<&Regex> {
        if !self.compiled.contains_key(pattern) {
            let mut shared = compiled_patterns()
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let re = match shared.get(pattern) {
                Some(re) => re.clone(),
                None => {
                    let re = Regex::new(pattern).map_err(|e| {
                        runtime_error(
                            self.expr,
                            format!("invalid regular expression '{pattern}': {e}"),
                        )
                    })?;
                    if shared.len() >= MAX_CACHED_PATTERNS {
                        shared.clear();
                    }
                    shared.insert(pattern.to_string(), re.clone());
                    re
                }
            };
            self.compiled.insert(pattern.to_string(), re);
        }
        Ok(&self.compiled[pattern])
    }
}

/// (year, month, day) of a day number counted from 1970-01-01 (proleptic Gregorian, UTC).
/// Howard Hinnant's `civil_from_days`, exact for every day an i64 millisecond count reaches.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Writes `ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ`; false (nothing written) when the year is
/// outside 0000–9999.
fn write_timestamp(w: &mut impl Write, ms: i64) -> bool {
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return false;
    }
    let (h, m, s, milli) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1_000 % 60,
        ms_of_day % 1_000,
    );
    write!(
        w,
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z"
    )
    .is_ok()
}

/// RFC 3339 text, UTC, millisecond precision (`2024-01-01T00:00:00.000Z`) for a timestamp in
/// milliseconds, or `None` when its year is outside 0000–9999.
pub fn format_timestamp_millis(ms: i64) -> Option<String> {
    let mut s = String::with_capacity(24);
    write_timestamp(&mut s, ms).then_some(s)
}

/// [`format_timestamp_millis`] for a column of milliseconds (nulls and unwritable times → null).
pub(crate) fn format_timestamps(ms: &Int64Array) -> StringArray {
    let mut b = string_builder(ms.len());
    for v in ms.iter() {
        match v {
            Some(ms) if write_timestamp(&mut b, ms) => b.append_value(""),
            _ => b.append_null(),
        }
    }
    b.finish()
}
