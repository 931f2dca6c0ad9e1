//! `hash(x)`: a stable, non-negative 64-bit hash, identical on every run, platform and Weir
//! build (Rust's `DefaultHasher` promises none of that).
//!
//! Algorithm (a format: changing it changes users' bucketing): FNV-1a 64 over the value's
//! canonical bytes, then the SplitMix64 finalizer for avalanche, then the sign bit cleared.
//! Canonical bytes: int64 and timestamp → 8 bytes little-endian (so `hash(ts) ==
//! hash(millis(ts))`); float64 → its IEEE bits little-endian with `-0.0` as `0.0` and every NaN
//! as the canonical NaN; bool → one byte 0/1; text → its UTF-8 bytes; a list → its length
//! (8 bytes) then, per item, a presence byte (0 null, 1 value), the item's byte length
//! (8 bytes) and its bytes; anything else → its JSON text. A null value hashes to null.

use crate::error::ExecResult;
use arrow::array::{Array, AsArray, Int64Array};
use arrow::datatypes::{DataType as ArrowType, Float64Type, Int64Type};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

struct StableHasher(u64);

impl StableHasher {
    fn new() -> Self {
        StableHasher(FNV_OFFSET)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }
    fn finish(&self) -> i64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z & i64::MAX as u64) as i64
    }
}

/// Hashes every value of `array` (see the module docs); nulls stay null.
pub fn stable_hash_array(array: &dyn Array) -> ExecResult<Int64Array> {
    if array.data_type() == &ArrowType::Null {
        return Ok(Int64Array::new_null(array.len()));
    }
    // Narrower integer types and zoned timestamps hash like their int64 value.
    let normalized;
    let array: &dyn Array = match array.data_type() {
        ArrowType::Int8
        | ArrowType::Int16
        | ArrowType::Int32
        | ArrowType::UInt8
        | ArrowType::UInt16
        | ArrowType::UInt32
        | ArrowType::UInt64
        | ArrowType::Timestamp(_, _) => {
            normalized = arrow::compute::cast(array, &ArrowType::Int64)?;
            normalized.as_ref()
        }
        ArrowType::Float32 => {
            normalized = arrow::compute::cast(array, &ArrowType::Float64)?;
            normalized.as_ref()
        }
        _ => array,
    };
    // Int64 (most keys): the canonical bytes are the value's own, hashed column-wise.
    if let Some(ints) = array.as_primitive_opt::<Int64Type>() {
        return Ok(ints.unary::<_, Int64Type>(|v| {
            let mut h = StableHasher::new();
            h.write(&v.to_le_bytes());
            h.finish()
        }));
    }
    // One buffer for the whole column: a value's bytes are gathered, then hashed.
    let mut bytes = Vec::new();
    Ok((0..array.len())
        .map(|i| {
            array.is_valid(i).then(|| {
                bytes.clear();
                canonical_bytes(array, i, &mut bytes);
                let mut h = StableHasher::new();
                h.write(&bytes);
                h.finish()
            })
        })
        .collect())
}

/// Appends the canonical bytes of `array[i]` (not null) to `out`.
fn canonical_bytes(array: &dyn Array, i: usize, out: &mut Vec<u8>) {
    match array.data_type() {
        ArrowType::Boolean => out.push(u8::from(array.as_boolean().value(i))),
        ArrowType::Int64 => {
            out.extend_from_slice(&array.as_primitive::<Int64Type>().value(i).to_le_bytes())
        }
        ArrowType::Float64 => {
            let x = array.as_primitive::<Float64Type>().value(i);
            let canonical = if x == 0.0 {
                0.0
            } else if x.is_nan() {
                f64::NAN
            } else {
                x
            };
            out.extend_from_slice(&canonical.to_bits().to_le_bytes());
        }
        ArrowType::Utf8 => out.extend_from_slice(array.as_string::<i32>().value(i).as_bytes()),
        ArrowType::LargeUtf8 => out.extend_from_slice(array.as_string::<i64>().value(i).as_bytes()),
        ArrowType::Timestamp(_, _)
        | ArrowType::Int8
        | ArrowType::Int16
        | ArrowType::Int32
        | ArrowType::UInt8
        | ArrowType::UInt16
        | ArrowType::UInt32
        | ArrowType::UInt64 => {
            // Nested values of narrower types: as int64, like top-level ones.
            let as_i64 = crate::convert::value_at(array, i)
                .as_i64()
                .unwrap_or_default();
            out.extend_from_slice(&as_i64.to_le_bytes());
        }
        ArrowType::List(_) => {
            let items = array.as_list::<i32>().value(i);
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for j in 0..items.len() {
                if items.is_null(j) {
                    out.push(0);
                    continue;
                }
                out.push(1);
                // Reserve the length slot, write the item, then fill the length in.
                let len_at = out.len();
                out.extend_from_slice(&[0; 8]);
                canonical_bytes(items.as_ref(), j, out);
                let len = (out.len() - len_at - 8) as u64;
                out[len_at..len_at + 8].copy_from_slice(&len.to_le_bytes());
            }
        }
        _ => out.extend_from_slice(crate::convert::value_at(array, i).to_string().as_bytes()),
    }
}
