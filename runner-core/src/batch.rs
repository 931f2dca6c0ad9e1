//! The element representation every runner uses: an Arrow `RecordBatch` holding the
//! collection's columns followed by metadata columns (Beam's WindowedValue, columnar):
//!
//! | column | type | meaning |
//! |---|---|---|
//! | [`TS`] `__ts` | int64 | the element's event timestamp (ms); `MIN_TIMESTAMP` when none |
//! | [`WIN_START`] `__win_start` | int64 | window start (global: `MIN_TIMESTAMP`) |
//! | [`WIN_END`] `__win_end` | int64 | window end, exclusive (global: `MAX_TIMESTAMP`) |
//! | [`PANE_TIMING`] `__pane_timing` | int8 | 0 EARLY, 1 ON_TIME, 2 LATE, 3 UNKNOWN |
//! | [`PANE_INDEX`] `__pane_index` | int64 | pane index |
//! | [`PANE_FIRST`] `__pane_first` | bool | first pane of its window |
//! | [`PANE_LAST`] `__pane_last` | bool | last pane of its window |
//!
//! An element in several windows (sliding) appears once per window. Sinks strip the metadata
//! or turn it into `window_start`/`window_end`/`pane_*` columns as the pipeline asks.

use arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, Int8Array, RecordBatch, RecordBatchOptions,
};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::{DataType as ArrowType, Field as ArrowField, Schema as ArrowSchema};
use std::sync::Arc;
use weir_model::time::{Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP};
use weir_model::window::{PaneInfo, PaneTiming, Window};
use weir_model::Schema;

/// Event timestamp column.
pub const TS: &str = "__ts";
/// Window start column.
pub const WIN_START: &str = "__win_start";
/// Window end column.
pub const WIN_END: &str = "__win_end";
/// Pane timing column.
pub const PANE_TIMING: &str = "__pane_timing";
/// Pane index column.
pub const PANE_INDEX: &str = "__pane_index";
/// Pane is-first column.
pub const PANE_FIRST: &str = "__pane_first";
/// Pane is-last column.
pub const PANE_LAST: &str = "__pane_last";

/// Number of metadata columns at the end of every batch.
pub const META_COLUMNS: usize = 7;

/// Whether a column name is a metadata column.
pub fn is_meta(name: &str) -> bool {
    name.starts_with("__")
}

/// The Arrow schema of batches for a collection with user schema `schema`.
pub fn batch_schema(schema: &Schema) -> Arc<ArrowSchema> {
    let mut fields: Vec<ArrowField> = schema.fields.iter().map(|f| f.to_arrow()).collect();
    fields.extend(meta_fields());
    Arc::new(ArrowSchema::new(fields))
}

fn meta_fields() -> Vec<ArrowField> {
    vec![
        ArrowField::new(TS, ArrowType::Int64, false),
        ArrowField::new(WIN_START, ArrowType::Int64, false),
        ArrowField::new(WIN_END, ArrowType::Int64, false),
        ArrowField::new(PANE_TIMING, ArrowType::Int8, false),
        ArrowField::new(PANE_INDEX, ArrowType::Int64, false),
        ArrowField::new(PANE_FIRST, ArrowType::Boolean, false),
        ArrowField::new(PANE_LAST, ArrowType::Boolean, false),
    ]
}

/// Encodes a pane timing as stored in [`PANE_TIMING`].
pub fn timing_code(t: PaneTiming) -> i8 {
    match t {
        PaneTiming::Early => 0,
        PaneTiming::OnTime => 1,
        PaneTiming::Late => 2,
        PaneTiming::Unknown => 3,
    }
}

/// Decodes [`PANE_TIMING`].
pub fn timing_from_code(c: i8) -> PaneTiming {
    match c {
        0 => PaneTiming::Early,
        1 => PaneTiming::OnTime,
        2 => PaneTiming::Late,
        _ => PaneTiming::Unknown,
    }
}

/// Per-row metadata of one element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ElementMeta {
    /// Event timestamp.
    pub ts: Timestamp,
    /// Window.
    pub window: Window,
    /// Pane.
    pub pane: PaneInfo,
}

impl ElementMeta {
    /// Metadata of an element with timestamp `ts` in the global window, no pane.
    pub fn unwindowed(ts: Timestamp) -> Self {
        ElementMeta {
            ts,
            window: Window::GLOBAL,
            pane: PaneInfo::NO_FIRING,
        }
    }
}

impl Default for ElementMeta {
    fn default() -> Self {
        ElementMeta::unwindowed(MIN_TIMESTAMP)
    }
}

/// Builds metadata columns for `metas`.
pub fn meta_arrays(metas: &[ElementMeta]) -> Vec<ArrayRef> {
    vec![
        Arc::new(Int64Array::from_iter_values(metas.iter().map(|m| m.ts))),
        Arc::new(Int64Array::from_iter_values(
            metas.iter().map(|m| m.window.start),
        )),
        Arc::new(Int64Array::from_iter_values(
            metas.iter().map(|m| m.window.end),
        )),
        Arc::new(Int8Array::from_iter_values(
            metas.iter().map(|m| timing_code(m.pane.timing)),
        )),
        Arc::new(Int64Array::from_iter_values(
            metas.iter().map(|m| m.pane.index as i64),
        )),
        Arc::new(BooleanArray::new(
            BooleanBuffer::collect_bool(metas.len(), |i| metas[i].pane.is_first),
            None,
        )),
        Arc::new(BooleanArray::new(
            BooleanBuffer::collect_bool(metas.len(), |i| metas[i].pane.is_last),
            None,
        )),
    ]
}

/// Metadata columns of `rows` elements that all have [`ElementMeta::default`] (no
/// timestamp yet, global window, no pane): constant arrays, without a per-row `ElementMeta`
/// (sources build these for every row they read).
pub fn default_meta_arrays(rows: usize) -> Vec<ArrayRef> {
    let m = ElementMeta::default();
    vec![
        Arc::new(Int64Array::from_value(m.ts, rows)),
        Arc::new(Int64Array::from_value(m.window.start, rows)),
        Arc::new(Int64Array::from_value(m.window.end, rows)),
        Arc::new(Int8Array::from_value(timing_code(m.pane.timing), rows)),
        Arc::new(Int64Array::from_value(m.pane.index as i64, rows)),
        Arc::new(BooleanArray::new(
            BooleanBuffer::collect_bool(rows, |_| m.pane.is_first),
            None,
        )),
        Arc::new(BooleanArray::new(
            BooleanBuffer::collect_bool(rows, |_| m.pane.is_last),
            None,
        )),
    ]
}

/// User columns with metadata given column by column: timestamps, windows, and one pane
/// `pane` for every row (a window assignment, without an `ElementMeta` per row).
pub fn with_windows(
    schema: &Schema,
    columns: Vec<ArrayRef>,
    ts: ArrayRef,
    starts: ArrayRef,
    ends: ArrayRef,
    pane: PaneInfo,
) -> arrow::error::Result<RecordBatch> {
    let rows = ts.len();
    let meta = vec![
        ts,
        starts,
        ends,
        Arc::new(Int8Array::from_value(timing_code(pane.timing), rows)) as ArrayRef,
        Arc::new(Int64Array::from_value(pane.index as i64, rows)),
        Arc::new(BooleanArray::new(
            BooleanBuffer::collect_bool(rows, |_| pane.is_first),
            None,
        )),
        Arc::new(BooleanArray::new(
            BooleanBuffer::collect_bool(rows, |_| pane.is_last),
            None,
        )),
    ];
    joined(schema, columns, meta, rows)
}

/// [`with_meta`] for `rows` elements that all have [`ElementMeta::default`].
pub fn with_default_meta(
    schema: &Schema,
    columns: Vec<ArrayRef>,
    rows: usize,
) -> arrow::error::Result<RecordBatch> {
    joined(schema, columns, default_meta_arrays(rows), rows)
}

/// User columns and metadata columns of `rows` rows as one batch.
fn joined(
    schema: &Schema,
    mut columns: Vec<ArrayRef>,
    meta: Vec<ArrayRef>,
    rows: usize,
) -> arrow::error::Result<RecordBatch> {
    columns.extend(meta);
    RecordBatch::try_new_with_options(
        batch_schema(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
}

/// Joins user columns (matching `schema`) with metadata for each row into a batch.
pub fn with_meta(
    schema: &Schema,
    columns: Vec<ArrayRef>,
    metas: &[ElementMeta],
) -> arrow::error::Result<RecordBatch> {
    joined(schema, columns, meta_arrays(metas), metas.len())
}

/// Number of user columns in a batch (all but the trailing metadata).
pub fn user_width(batch: &RecordBatch) -> usize {
    batch.num_columns() - META_COLUMNS
}

/// The user columns of a batch, as a batch of their own.
pub fn user_columns(batch: &RecordBatch) -> RecordBatch {
    let n = user_width(batch);
    batch
        .project(&(0..n).collect::<Vec<_>>())
        .expect("projection of existing columns")
}

/// The metadata columns' arrays of a batch: (ts, win_start, win_end).
pub fn ts_and_window(batch: &RecordBatch) -> (&Int64Array, &Int64Array, &Int64Array) {
    let n = user_width(batch);
    let get = |i: usize| {
        batch
            .column(n + i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("int64 metadata column")
    };
    (get(0), get(1), get(2))
}

/// Reads the metadata of row `row`.
pub fn meta_at(batch: &RecordBatch, row: usize) -> ElementMeta {
    let n = user_width(batch);
    let i64_at = |i: usize| {
        batch
            .column(n + i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("int64")
            .value(row)
    };
    let timing = batch
        .column(n + 3)
        .as_any()
        .downcast_ref::<Int8Array>()
        .expect("int8")
        .value(row);
    let b_at = |i: usize| {
        batch
            .column(n + i)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .expect("bool")
            .value(row)
    };
    ElementMeta {
        ts: i64_at(0),
        window: Window::new(i64_at(1), i64_at(2)),
        pane: PaneInfo {
            timing: timing_from_code(timing),
            index: i64_at(4) as u64,
            is_first: b_at(5),
            is_last: b_at(6),
        },
    }
}

/// Reads the metadata of every row.
pub fn metas(batch: &RecordBatch) -> Vec<ElementMeta> {
    // The columns are looked up and cast once, not once per row as `meta_at` does.
    let n = user_width(batch);
    let int64 = |i: usize| {
        batch
            .column(n + i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("int64 metadata column")
    };
    let boolean = |i: usize| {
        batch
            .column(n + i)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .expect("bool metadata column")
    };
    let (ts, start, end, index) = (int64(0), int64(1), int64(2), int64(4));
    let timing = batch
        .column(n + 3)
        .as_any()
        .downcast_ref::<Int8Array>()
        .expect("int8 metadata column");
    let (first, last) = (boolean(5), boolean(6));
    (0..batch.num_rows())
        .map(|r| ElementMeta {
            ts: ts.value(r),
            window: Window::new(start.value(r), end.value(r)),
            pane: PaneInfo {
                timing: timing_from_code(timing.value(r)),
                index: index.value(r) as u64,
                is_first: first.value(r),
                is_last: last.value(r),
            },
        })
        .collect()
}

/// Replaces the user columns of `batch` (keeping its metadata) under a new user schema.
pub fn replace_user_columns(
    batch: &RecordBatch,
    schema: &Schema,
    columns: Vec<ArrayRef>,
) -> arrow::error::Result<RecordBatch> {
    let n = user_width(batch);
    let mut cols = columns;
    cols.extend((n..batch.num_columns()).map(|i| batch.column(i).clone()));
    RecordBatch::try_new_with_options(
        batch_schema(schema),
        cols,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}

/// Replaces the timestamp column.
pub fn replace_ts(batch: &RecordBatch, ts: Int64Array) -> arrow::error::Result<RecordBatch> {
    let n = user_width(batch);
    let mut cols = batch.columns().to_vec();
    cols[n] = Arc::new(ts);
    RecordBatch::try_new(batch.schema(), cols)
}

/// An empty batch for `schema`.
pub fn empty(schema: &Schema) -> RecordBatch {
    RecordBatch::new_empty(batch_schema(schema))
}

/// The largest event timestamp in a batch, if any row has one.
pub fn max_ts(batch: &RecordBatch) -> Option<Timestamp> {
    let (ts, _, _) = ts_and_window(batch);
    arrow::compute::max(ts).filter(|t| *t > MIN_TIMESTAMP)
}

/// Whether a window is the global window.
pub fn is_global(start: Timestamp, end: Timestamp) -> bool {
    start == MIN_TIMESTAMP && end == MAX_TIMESTAMP
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use weir_model::{DataType, Field};

    #[test]
    fn metadata_round_trips_through_a_batch() {
        let schema = Schema::new(vec![Field::new("user", DataType::String)]);
        let pane = PaneInfo {
            timing: PaneTiming::Late,
            index: 2,
            is_first: false,
            is_last: true,
        };
        let m = ElementMeta {
            ts: 42,
            window: Window::new(0, 60_000),
            pane,
        };
        let b = with_meta(&schema, vec![Arc::new(StringArray::from(vec!["a"]))], &[m]).unwrap();
        assert_eq!(user_width(&b), 1);
        assert_eq!(meta_at(&b, 0), m);
        assert_eq!(metas(&b), vec![m]);
        assert_eq!(user_columns(&b).num_columns(), 1);
    }
}
