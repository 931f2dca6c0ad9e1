//! `AssignTimestamps`: sets each row's event time from an expression and computes the
//! model's watermark (min over source partitions of max − delay, with idleness).

use super::{Operator, OperatorContext};
use crate::batch;
use crate::convert;
use crate::error::ExecResult;
use crate::eval::evaluate_in;
use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::Int64Type;
use weir_model::time::{Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};
use weir_model::{window::WatermarkStrategy, Expr, Schema};

/// Watermark bookkeeping of one source partition.
#[derive(Debug, Clone, Copy, Default)]
struct PartitionClock {
    /// Largest event time seen.
    max_ts: Option<Timestamp>,
    /// Processing time of the last row (`None`: no row yet).
    last_row_at: Option<Timestamp>,
    /// Excluded from the watermark until it gets rows again.
    idle: bool,
}

/// Sets each row's event time from an expression and computes the watermark the model
/// (and the direct runner) defines:
///
/// - per source partition (`ctx.partition`), the largest event time seen and the processing
///   time of its last row are kept;
/// - the computed watermark is the minimum over non-idle partitions of
///   `max_p − max_out_of_orderness`; a non-idle partition that has seen nothing holds it at
///   `MIN_TIMESTAMP`;
/// - with an idle timeout, a partition without rows for longer than the timeout (processing
///   time since its last row, or since the operator started for a partition without rows)
///   turns idle when checked (`handle_processing_time`, `handle_watermark`) and stops holding
///   the watermark back until it gets rows again; when every partition is idle the watermark
///   stays where it is;
/// - `handle_watermark(input)` returns `max(computed, input)`, `MAX_TIMESTAMP` once the input
///   is `MAX_TIMESTAMP` (end of input), and never decreases.
///
/// A null event time fails the run naming the expression.
#[derive(Debug)]
pub struct AssignTimestampsOperator {
    timestamp: Expr,
    strategy: WatermarkStrategy,
    partitions: Vec<PartitionClock>,
    /// Processing time of the first hook call: when partitions without rows start idling.
    started_at: Option<Timestamp>,
    output_watermark: Timestamp,
}

impl AssignTimestampsOperator {
    /// The operator for input rows of `schema`, reading event time from `timestamp`, over
    /// `partitions` source partitions.
    pub fn new(
        schema: &Schema,
        timestamp: Expr,
        watermark: WatermarkStrategy,
        partitions: u32,
    ) -> Self {
        // The plan has type-checked `timestamp` against `schema`; nothing else to keep.
        let _ = schema;
        AssignTimestampsOperator {
            timestamp,
            strategy: watermark,
            partitions: vec![PartitionClock::default(); partitions.max(1) as usize],
            started_at: None,
            output_watermark: MIN_TIMESTAMP,
        }
    }

    /// The watermark computed from event times alone (`None`: every partition is idle).
    pub fn computed_watermark(&self) -> Option<Timestamp> {
        let delay = self.strategy.max_out_of_orderness.millis();
        self.partitions
            .iter()
            .filter(|p| !p.idle)
            .map(|p| {
                p.max_ts.map_or(MIN_TIMESTAMP, |m| {
                    m.saturating_sub(delay).max(MIN_TIMESTAMP)
                })
            })
            .min()
    }

    fn note_time(&mut self, now: Timestamp) {
        self.started_at.get_or_insert(now);
    }

    /// Marks partitions idle whose last row is older than the idle timeout.
    fn update_idleness(&mut self, now: Timestamp) {
        let Some(timeout) = self.strategy.idle_timeout else {
            return;
        };
        let started = self.started_at.unwrap_or(now);
        for p in &mut self.partitions {
            let last = p.last_row_at.unwrap_or(started);
            if now - last > timeout.millis() {
                p.idle = true;
            }
        }
    }
}

impl Operator for AssignTimestampsOperator {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
    ) -> ExecResult<()> {
        self.note_time(ctx.processing_time);
        let values = evaluate_in(&ctx.node, &self.timestamp, &batch)?;
        let millis = crate::eval::cast_array(&values, &arrow::datatypes::DataType::Int64)?;
        let millis = millis.as_primitive::<Int64Type>();
        if let Some(row) = (0..millis.len()).find(|i| millis.is_null(*i)) {
            let what = match &self.timestamp {
                Expr::Column(c) => format!("column `{c}`"),
                other => format!("`{other}`"),
            };
            let record =
                serde_json::Value::Object(convert::batch_to_rows(&batch.slice(row, 1)).remove(0));
            return Err(ctx.error(format!("the event time {what} is null in row {record}")));
        }
        let p = ctx.partition as usize;
        if p >= self.partitions.len() {
            self.partitions.resize(p + 1, PartitionClock::default());
        }
        let clock = &mut self.partitions[p];
        if let Some(max) = arrow::compute::max(millis) {
            clock.max_ts = Some(clock.max_ts.map_or(max, |m| m.max(max)));
        }
        if !millis.is_empty() {
            clock.last_row_at = Some(ctx.processing_time);
            clock.idle = false;
        }
        let ts = Int64Array::new(millis.values().clone(), None);
        ctx.emit(None, batch::replace_ts(&batch, ts)?);
        Ok(())
    }

    fn handle_watermark(
        &mut self,
        watermark: Timestamp,
        ctx: &mut OperatorContext,
    ) -> ExecResult<Timestamp> {
        self.note_time(ctx.processing_time);
        self.update_idleness(ctx.processing_time);
        let next = if watermark >= MAX_TIMESTAMP {
            MAX_TIMESTAMP
        } else {
            let computed = self.computed_watermark().unwrap_or(self.output_watermark);
            computed.max(watermark)
        };
        self.output_watermark = self.output_watermark.max(next);
        Ok(self.output_watermark)
    }

    fn handle_processing_time(&mut self, ctx: &mut OperatorContext) -> ExecResult<()> {
        self.note_time(ctx.processing_time);
        self.update_idleness(ctx.processing_time);
        Ok(())
    }

    fn next_processing_time(&self) -> Option<Timestamp> {
        let timeout = self.strategy.idle_timeout?.millis();
        let started = self.started_at?;
        self.partitions
            .iter()
            .filter(|p| !p.idle)
            .map(|p| {
                p.last_row_at
                    .unwrap_or(started)
                    .saturating_add(timeout)
                    .saturating_add(1)
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::ElementMeta;
    use crate::error::ExecError;
    use serde_json::json;
    use weir_model::expr::{col, lit};
    use weir_model::time::Duration;
    use weir_model::udf::Row;
    use weir_model::{DataType, Field};

    // ---- AssignTimestamps: the model's watermark rules ----

    fn ts_schema() -> Schema {
        Schema::new(vec![
            Field::new("at", DataType::Timestamp),
            Field::new("ms", DataType::Int64),
        ])
    }

    fn ts_batch(times: &[Option<i64>]) -> RecordBatch {
        let rows: Vec<Row> = times
            .iter()
            .map(|t| json!({"at": t, "ms": t}).as_object().unwrap().clone())
            .collect();
        convert::rows_to_batch(
            &rows,
            &vec![ElementMeta::default(); rows.len()],
            &ts_schema(),
        )
        .unwrap()
    }

    fn assign(delay: i64, idle: Option<i64>, partitions: u32) -> AssignTimestampsOperator {
        let strategy = WatermarkStrategy {
            max_out_of_orderness: Duration::from_millis(delay),
            idle_timeout: idle.map(Duration::from_millis),
        };
        AssignTimestampsOperator::new(&ts_schema(), col("at"), strategy, partitions)
    }

    /// Feeds `times` on `partition` at processing time `now`; returns the emitted `__ts`.
    fn feed(
        op: &mut AssignTimestampsOperator,
        partition: u32,
        now: i64,
        times: &[i64],
    ) -> Vec<i64> {
        let mut ctx = OperatorContext::new("Stamp", now, MIN_TIMESTAMP);
        ctx.partition = partition;
        let b = ts_batch(&times.iter().copied().map(Some).collect::<Vec<_>>());
        op.process_batch(0, b, &mut ctx).unwrap();
        ctx.take_outputs()
            .iter()
            .flat_map(|(_, b)| batch::metas(b))
            .map(|m| m.ts)
            .collect()
    }

    fn watermark(op: &mut AssignTimestampsOperator, now: i64, input: i64) -> i64 {
        let mut ctx = OperatorContext::new("Stamp", now, input);
        op.handle_watermark(input, &mut ctx).unwrap()
    }

    fn tick(op: &mut AssignTimestampsOperator, now: i64) {
        let mut ctx = OperatorContext::new("Stamp", now, MIN_TIMESTAMP);
        op.handle_processing_time(&mut ctx).unwrap();
    }

    #[test]
    fn event_time_comes_from_a_timestamp_or_int64_expression() {
        let mut op = assign(0, None, 1);
        assert_eq!(feed(&mut op, 0, 0, &[5, 3, 9]), vec![5, 3, 9]);
        let strategy = WatermarkStrategy::bounded(Duration::ZERO);
        let mut by_ms =
            AssignTimestampsOperator::new(&ts_schema(), col("ms").add(lit(1)), strategy, 1);
        assert_eq!(feed(&mut by_ms, 0, 0, &[5]), vec![6]);
    }

    #[test]
    fn null_event_time_fails_naming_the_column() {
        let mut op = assign(0, None, 1);
        let mut ctx = OperatorContext::new("Stamp", 0, MIN_TIMESTAMP);
        let err = op
            .process_batch(0, ts_batch(&[Some(1), None]), &mut ctx)
            .unwrap_err();
        assert!(matches!(err, ExecError::Transform { .. }));
        let text = err.to_string();
        assert!(
            text.contains("Stamp") && text.contains("column `at`") && text.contains("null"),
            "{text}"
        );
    }

    #[test]
    fn watermark_is_min_over_partitions_of_max_minus_delay() {
        let mut op = assign(100, None, 2);
        feed(&mut op, 0, 0, &[1_000, 5_000, 3_000]);
        feed(&mut op, 1, 0, &[2_000]);
        assert_eq!(watermark(&mut op, 0, MIN_TIMESTAMP), 1_900);
        feed(&mut op, 1, 0, &[9_000]);
        assert_eq!(watermark(&mut op, 0, MIN_TIMESTAMP), 4_900);
        // An older event does not move a partition's maximum back.
        feed(&mut op, 0, 0, &[10]);
        assert_eq!(watermark(&mut op, 0, MIN_TIMESTAMP), 4_900);
    }

    #[test]
    fn partition_without_data_holds_the_watermark_until_idle() {
        let mut op = assign(0, Some(1_000), 2);
        feed(&mut op, 0, 0, &[5_000]);
        assert_eq!(watermark(&mut op, 500, MIN_TIMESTAMP), MIN_TIMESTAMP);
        // Partition 0 stays active; partition 1 never had rows since the start at 0.
        feed(&mut op, 0, 900, &[4_000]);
        // Exactly the timeout is not "longer than" it.
        assert_eq!(watermark(&mut op, 1_000, MIN_TIMESTAMP), MIN_TIMESTAMP);
        assert_eq!(op.next_processing_time(), Some(1_001));
        tick(&mut op, 1_001);
        assert_eq!(watermark(&mut op, 1_001, MIN_TIMESTAMP), 5_000);
    }

    #[test]
    fn partition_without_data_holds_forever_without_idle_timeout() {
        let mut op = assign(0, None, 2);
        feed(&mut op, 0, 0, &[5_000]);
        tick(&mut op, 1_000_000);
        assert_eq!(watermark(&mut op, 1_000_000, MIN_TIMESTAMP), MIN_TIMESTAMP);
        assert_eq!(op.next_processing_time(), None);
    }

    #[test]
    fn idle_partition_stops_holding_back_until_it_emits_again() {
        let mut op = assign(0, Some(1_000), 2);
        feed(&mut op, 0, 0, &[2_000]);
        feed(&mut op, 1, 0, &[1_000]);
        assert_eq!(watermark(&mut op, 0, MIN_TIMESTAMP), 1_000);
        feed(&mut op, 0, 800, &[4_000]);
        // Partition 1 last had rows at 0: idle after 1000 ms; partition 0 at 1800.
        assert_eq!(op.next_processing_time(), Some(1_001));
        tick(&mut op, 1_001);
        assert_eq!(watermark(&mut op, 1_001, MIN_TIMESTAMP), 4_000);
        assert_eq!(op.next_processing_time(), Some(1_801));
        // It emits again: it holds the watermark again (which never goes back).
        feed(&mut op, 1, 1_200, &[3_000]);
        assert_eq!(watermark(&mut op, 1_200, MIN_TIMESTAMP), 4_000);
        feed(&mut op, 0, 1_300, &[8_000]);
        assert_eq!(watermark(&mut op, 1_300, MIN_TIMESTAMP), 4_000);
        feed(&mut op, 1, 1_400, &[6_000]);
        assert_eq!(watermark(&mut op, 1_400, MIN_TIMESTAMP), 6_000);
    }

    #[test]
    fn idleness_is_also_checked_when_the_watermark_is_handled() {
        let mut op = assign(0, Some(1_000), 2);
        feed(&mut op, 0, 0, &[2_000]);
        feed(&mut op, 0, 1_000, &[1_500]);
        assert_eq!(watermark(&mut op, 1_500, MIN_TIMESTAMP), 2_000);
    }

    #[test]
    fn when_every_partition_is_idle_the_watermark_stays() {
        let mut op = assign(0, Some(1_000), 2);
        feed(&mut op, 0, 0, &[2_000]);
        feed(&mut op, 1, 0, &[3_000]);
        assert_eq!(watermark(&mut op, 0, MIN_TIMESTAMP), 2_000);
        tick(&mut op, 5_000);
        assert_eq!(op.computed_watermark(), None);
        assert_eq!(watermark(&mut op, 5_000, MIN_TIMESTAMP), 2_000);
        assert_eq!(op.next_processing_time(), None);
    }

    #[test]
    fn input_watermark_and_end_of_input_and_monotonicity() {
        let mut op = assign(0, None, 1);
        feed(&mut op, 0, 0, &[1_000]);
        assert_eq!(watermark(&mut op, 0, 5_000), 5_000);
        assert_eq!(
            watermark(&mut op, 0, MIN_TIMESTAMP),
            5_000,
            "never decreases"
        );
        assert_eq!(watermark(&mut op, 0, MAX_TIMESTAMP), MAX_TIMESTAMP);
        let mut fresh = assign(0, None, 3);
        assert_eq!(watermark(&mut fresh, 0, MAX_TIMESTAMP), MAX_TIMESTAMP);
    }
}
