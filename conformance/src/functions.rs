//! User functions the scenarios name (`fn: ConformanceParity`, ...), registered through
//! typetag so that features only reachable from Rust — user functions, side outputs, user
//! combiners, custom windows, keyed state and timers — are compared on every runner too.
//!
//! Each is small and deterministic: its output depends only on its input rows, state and the
//! times the runner gives it, so runners differ only where their rules do.

use arrow::array::{Array, ArrayRef, Int64Array};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use weir_model::schema::{DataType, Field, Schema};
use weir_model::time::Timestamp;
use weir_model::udf::{
    BatchFn, CombineFn, CustomWindowFn, DoFn, Emitter, Row, StateKind, StateSpec, StatefulContext,
    StatefulFn, TimeDomain, TimerSpec,
};
use weir_model::window::Window;

/// The names scenarios may use; referencing them keeps this module linked into every
/// program that runs scenarios (typetag registers at link time).
pub fn names() -> [&'static str; 6] {
    [
        "ConformanceParity",
        "ConformanceScale",
        "ConformanceRange",
        "ConformanceFiveSecondWindows",
        "ConformanceCountUntilQuiet",
        "ConformanceSumUntilWatermark",
    ]
}

fn int(row: &Row, column: &str) -> Result<i64, String> {
    row.get(column)
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("column `{column}` is missing or not an integer in {row:?}"))
}

/// Rows with an even `v` go to the main output, odd ones to the side output `odd`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConformanceParity;

#[typetag::serde]
impl DoFn for ConformanceParity {
    fn output_schema(&self, input: &Schema) -> Result<Schema, String> {
        Ok(input.clone())
    }
    fn side_outputs(&self, input: &Schema) -> Result<Vec<(String, Schema)>, String> {
        Ok(vec![("odd".into(), input.clone())])
    }
    fn process(&self, row: &Row, out: &mut dyn Emitter) -> Result<(), String> {
        if int(row, "v")? % 2 == 0 {
            out.emit(row.clone());
        } else {
            out.emit_to("odd", row.clone());
        }
        Ok(())
    }
}

/// Multiplies the int64 column `v` by `factor`, a whole batch at a time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConformanceScale {
    /// The multiplier.
    pub factor: i64,
}

#[typetag::serde]
impl BatchFn for ConformanceScale {
    fn output_schema(&self, input: &Schema) -> Result<Schema, String> {
        match input.field("v") {
            Some(f) if f.data_type == DataType::Int64 => Ok(input.clone()),
            _ => Err("ConformanceScale needs an int64 column `v`".into()),
        }
    }
    fn process_batch(&self, batch: &RecordBatch) -> Result<RecordBatch, String> {
        let idx = batch
            .schema()
            .index_of("v")
            .map_err(|e| format!("ConformanceScale: {e}"))?;
        let v = batch
            .column(idx)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or("ConformanceScale: `v` is not int64")?;
        let scaled: Int64Array = v.iter().map(|x| x.map(|x| x * self.factor)).collect();
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns[idx] = Arc::new(scaled);
        RecordBatch::try_new(batch.schema(), columns).map_err(|e| e.to_string())
    }
}

/// A user combiner: maximum minus minimum of an int64 input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConformanceRange;

#[typetag::serde]
impl CombineFn for ConformanceRange {
    fn output_type(&self, _input: Option<&DataType>) -> Result<DataType, String> {
        Ok(DataType::Int64)
    }
    fn create_accumulator(&self) -> Value {
        json!(null)
    }
    fn add_input(&self, acc: &mut Value, input: &Value) {
        if let Some(x) = input.as_i64() {
            self.merge_accumulators(acc, &json!([x, x]));
        }
    }
    fn merge_accumulators(&self, acc: &mut Value, other: &Value) {
        let pair = |v: &Value| Some((v.get(0)?.as_i64()?, v.get(1)?.as_i64()?));
        *acc = match (pair(acc), pair(other)) {
            (Some((a, b)), Some((c, d))) => json!([a.min(c), b.max(d)]),
            (None, Some(_)) => other.clone(),
            _ => acc.clone(),
        };
    }
    fn extract_output(&self, acc: &Value) -> Value {
        match (
            acc.get(0).and_then(Value::as_i64),
            acc.get(1).and_then(Value::as_i64),
        ) {
            (Some(lo), Some(hi)) => json!(hi - lo),
            _ => Value::Null,
        }
    }
}

/// Tumbling 5-second windows, written as a custom window function.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConformanceFiveSecondWindows;

#[typetag::serde]
impl CustomWindowFn for ConformanceFiveSecondWindows {
    fn name(&self) -> String {
        "five-second-windows".into()
    }
    fn assign(&self, ts: Timestamp) -> Vec<Window> {
        let start = ts.div_euclid(5000) * 5000;
        vec![Window::new(start, start + 5000)]
    }
}

fn key_and_count_schema(input: &Schema, keys: &[&str]) -> Result<Schema, String> {
    let mut fields = Vec::new();
    for k in keys {
        let f = input
            .field(k)
            .ok_or_else(|| format!("needs a key column `{k}`"))?;
        fields.push(f.clone());
    }
    fields.push(Field::new("n", DataType::Int64));
    Ok(Schema::new(fields))
}

/// Counts rows per `key` and emits the count once the key has been quiet for `quiet_ms` of
/// processing time (a processing-time timer, reset by every row), then forgets the key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConformanceCountUntilQuiet {
    /// Processing time without rows after which the count is emitted.
    pub quiet_ms: i64,
}

#[typetag::serde]
impl StatefulFn for ConformanceCountUntilQuiet {
    fn state(&self) -> Vec<StateSpec> {
        vec![StateSpec {
            name: "n".into(),
            kind: StateKind::Value,
        }]
    }
    fn timers(&self) -> Vec<TimerSpec> {
        vec![TimerSpec {
            name: "quiet".into(),
            domain: TimeDomain::ProcessingTime,
        }]
    }
    fn output_schema(&self, input: &Schema) -> Result<Schema, String> {
        key_and_count_schema(input, &["key"])
    }
    fn process(&self, _row: &Row, ctx: &mut dyn StatefulContext) -> Result<(), String> {
        let n = ctx.value("n").and_then(|v| v.as_i64()).unwrap_or(0) + 1;
        ctx.set_value("n", json!(n));
        let at = ctx.processing_time() + self.quiet_ms;
        ctx.set_timer("quiet", at);
        Ok(())
    }
    fn on_timer(&self, _timer: &str, ctx: &mut dyn StatefulContext) -> Result<(), String> {
        let n = ctx.value("n").and_then(|v| v.as_i64()).unwrap_or(0);
        let mut out = ctx.key().clone();
        out.insert("n".into(), json!(n));
        ctx.emit(out);
        ctx.clear("n");
        Ok(())
    }
}

/// Sums `v` per `key` in 10-second event-time buckets and emits each bucket's sum when an
/// event-time timer at the bucket's end fires (the watermark passed it), then forgets it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConformanceSumUntilWatermark;

#[typetag::serde]
impl StatefulFn for ConformanceSumUntilWatermark {
    fn state(&self) -> Vec<StateSpec> {
        vec![StateSpec {
            name: "sums".into(),
            kind: StateKind::Map,
        }]
    }
    fn timers(&self) -> Vec<TimerSpec> {
        vec![TimerSpec {
            name: "bucket_end".into(),
            domain: TimeDomain::EventTime,
        }]
    }
    fn output_schema(&self, input: &Schema) -> Result<Schema, String> {
        let mut s = key_and_count_schema(input, &["key"])?;
        s.fields.push(Field::new("bucket", DataType::Int64));
        Ok(s)
    }
    fn process(&self, row: &Row, ctx: &mut dyn StatefulContext) -> Result<(), String> {
        let bucket = ctx.timestamp().div_euclid(10_000) * 10_000;
        let key = bucket.to_string();
        let sum = ctx
            .map_get("sums", &key)
            .and_then(|v| v.as_i64())
            .unwrap_or(0)
            + int(row, "v")?;
        ctx.map_put("sums", &key, json!(sum));
        // One timer per key: at the earliest open bucket's end.
        let earliest = ctx
            .map_entries("sums")
            .iter()
            .filter_map(|(k, _)| k.parse::<i64>().ok())
            .min()
            .unwrap_or(bucket);
        ctx.set_timer("bucket_end", earliest + 10_000 - 1);
        Ok(())
    }
    fn on_timer(&self, _timer: &str, ctx: &mut dyn StatefulContext) -> Result<(), String> {
        let due = ctx.timestamp();
        let mut open: Vec<(i64, i64)> = ctx
            .map_entries("sums")
            .iter()
            .filter_map(|(k, v)| Some((k.parse::<i64>().ok()?, v.as_i64()?)))
            .collect();
        open.sort();
        for (bucket, sum) in &open {
            if bucket + 10_000 - 1 <= due {
                let mut out = ctx.key().clone();
                out.insert("n".into(), json!(sum));
                out.insert("bucket".into(), json!(bucket));
                ctx.emit(out);
                ctx.map_remove("sums", &bucket.to_string());
            }
        }
        if let Some((next, _)) = open.iter().find(|(b, _)| b + 10_000 - 1 > due) {
            ctx.set_timer("bucket_end", next + 10_000 - 1);
        }
        Ok(())
    }
}
