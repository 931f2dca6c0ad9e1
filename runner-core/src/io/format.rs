//! Writing rows as JSON lines, CSV or text for the file and stdout sinks.
//!
//! Column rules shared by every text sink: the user columns in schema order, then
//! `window_start`, `window_end` (RFC 3339; null for the global window) when window metadata
//! is written, then `pane_timing` (EARLY/ON_TIME/LATE/UNKNOWN), `pane_index`,
//! `pane_is_first`, `pane_is_last` when pane metadata is. Metadata columns (`__*`) never
//! reach the output. Timestamps are RFC 3339 UTC with milliseconds
//! (`2024-01-01T00:00:00.000Z`); a time outside years 0000–9999 is written as its integer
//! milliseconds instead.
//!
//! CSV: a header line of column names; null is an empty field; the empty string is `""`;
//! a field is quoted (with `""` for `"`) when it contains `,`, `"`, CR or LF or starts or ends
//! with whitespace; lists and structs are their JSON text. Text: the single column's text,
//! null as an empty line.

use crate::batch;
use crate::error::{ExecError, ExecResult};
use crate::eval::format_timestamp_millis;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType as ArrowType, Float64Type, Int64Type, Int8Type, TimeUnit};
use std::io::Write;
use weir_model::io::{FileFormat, SinkMetadata};
use weir_model::Schema;

const WINDOW_COLUMNS: [&str; 2] = ["window_start", "window_end"];
const PANE_COLUMNS: [&str; 4] = ["pane_timing", "pane_index", "pane_is_first", "pane_is_last"];

/// How rows of one input schema are written in one format.
#[derive(Debug, Clone)]
pub(crate) struct RowFormat {
    format: FileFormat,
    /// Output column names: user columns, then the metadata columns asked for.
    names: Vec<String>,
    user_columns: usize,
    window: bool,
    pane: bool,
}

/// One value to write, without allocating for the common types.
enum Cell<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Timestamp(i64),
    Json(serde_json::Value),
}

impl RowFormat {
    /// The layout for `schema`; `windowed` is whether window columns are written by default.
    pub(crate) fn new(
        node: &str,
        format: FileFormat,
        metadata: SinkMetadata,
        schema: &Schema,
        windowed: bool,
    ) -> ExecResult<Self> {
        let mut window = metadata.window.unwrap_or(windowed);
        let mut pane = metadata.pane;
        if format == FileFormat::Text {
            if schema.fields.len() != 1 {
                return Err(ExecError::transform(
                    node,
                    format!(
                        "a text sink writes one column, but the input has {}",
                        schema
                    ),
                ));
            }
            if metadata.window == Some(true) || pane {
                return Err(ExecError::transform(
                    node,
                    "a text sink cannot write window or pane columns",
                ));
            }
            // Defaulted window columns are simply not written in text.
            window = false;
            pane = false;
        }
        let mut names: Vec<String> = schema.fields.iter().map(|f| f.name.clone()).collect();
        let extra = WINDOW_COLUMNS
            .iter()
            .filter(|_| window)
            .chain(PANE_COLUMNS.iter().filter(|_| pane));
        for name in extra {
            if names.iter().any(|n| n == name) {
                return Err(ExecError::transform(
                    node,
                    format!(
                        "column `{name}` clashes with the {name} metadata column the sink writes"
                    ),
                ));
            }
            names.push(name.to_string());
        }
        Ok(RowFormat {
            format,
            names,
            user_columns: schema.fields.len(),
            window,
            pane,
        })
    }

    /// File extension for part files.
    pub(crate) fn extension(&self) -> &'static str {
        match self.format {
            FileFormat::JsonLines => "json",
            FileFormat::Csv => "csv",
            FileFormat::Text => "txt",
        }
    }

    /// The header line (CSV only).
    pub(crate) fn header(&self) -> Option<Vec<u8>> {
        if self.format != FileFormat::Csv {
            return None;
        }
        let mut out = Vec::new();
        for (i, name) in self.names.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_csv_text(&mut out, name);
        }
        out.push(b'\n');
        Some(out)
    }

    /// Appends every row of `batch` (user columns + metadata) to `out`.
    pub(crate) fn write_batch(&self, batch: &RecordBatch, out: &mut Vec<u8>) -> ExecResult<()> {
        let width = batch::user_width(batch);
        if width != self.user_columns {
            return Err(ExecError::Internal(format!(
                "a sink for {} columns got a batch with {width}",
                self.user_columns
            )));
        }
        let meta = |i: usize| batch.column(width + i);
        let (_, win_start, win_end) = batch::ts_and_window(batch);
        // One cell vector for the whole batch: cleared per row, never reallocated.
        let mut cells: Vec<Cell> = Vec::with_capacity(self.names.len());
        for row in 0..batch.num_rows() {
            cells.clear();
            for c in 0..width {
                cells.push(cell(batch.column(c).as_ref(), row));
            }
            if self.window {
                let (s, e) = (win_start.value(row), win_end.value(row));
                if batch::is_global(s, e) {
                    cells.extend([Cell::Null, Cell::Null]);
                } else {
                    cells.extend([Cell::Timestamp(s), Cell::Timestamp(e)]);
                }
            }
            if self.pane {
                let timing = batch::timing_from_code(meta(3).as_primitive::<Int8Type>().value(row));
                cells.push(Cell::Str(timing.as_str()));
                cells.push(Cell::Int(meta(4).as_primitive::<Int64Type>().value(row)));
                cells.push(Cell::Bool(meta(5).as_boolean().value(row)));
                cells.push(Cell::Bool(meta(6).as_boolean().value(row)));
            }
            self.write_row(&cells, out)?;
        }
        Ok(())
    }

    fn write_row(&self, cells: &[Cell], out: &mut Vec<u8>) -> ExecResult<()> {
        match self.format {
            FileFormat::JsonLines => {
                out.push(b'{');
                for (i, (name, cell)) in self.names.iter().zip(cells).enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json_string(out, name)?;
                    out.push(b':');
                    write_json(out, cell)?;
                }
                out.push(b'}');
            }
            FileFormat::Csv => {
                for (i, cell) in cells.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_csv(out, cell)?;
                }
            }
            FileFormat::Text => {
                if let Some(cell) = cells.first() {
                    write_plain(out, cell)?;
                }
            }
        }
        out.push(b'\n');
        Ok(())
    }
}

fn cell(array: &dyn Array, row: usize) -> Cell<'_> {
    if array.is_null(row) {
        return Cell::Null;
    }
    match array.data_type() {
        ArrowType::Boolean => Cell::Bool(array.as_boolean().value(row)),
        ArrowType::Int64 => Cell::Int(array.as_primitive::<Int64Type>().value(row)),
        ArrowType::Float64 => Cell::Float(array.as_primitive::<Float64Type>().value(row)),
        ArrowType::Utf8 => Cell::Str(array.as_string::<i32>().value(row)),
        ArrowType::Timestamp(TimeUnit::Millisecond, _) => Cell::Timestamp(
            array
                .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                .value(row),
        ),
        _ => match crate::convert::value_at(array, row) {
            serde_json::Value::Bool(b) => Cell::Bool(b),
            serde_json::Value::Number(n) if n.is_i64() => Cell::Int(n.as_i64().unwrap_or_default()),
            serde_json::Value::Number(n) => Cell::Float(n.as_f64().unwrap_or(f64::NAN)),
            other => Cell::Json(other),
        },
    }
}

fn io_err(e: std::io::Error) -> ExecError {
    ExecError::io("formatting a row", e)
}

fn json_string(out: &mut Vec<u8>, s: &str) -> ExecResult<()> {
    serde_json::to_writer(out, s)
        .map_err(|e| ExecError::Internal(format!("writing JSON text: {e}")))
}

fn write_json(out: &mut Vec<u8>, cell: &Cell) -> ExecResult<()> {
    match cell {
        Cell::Null => out.extend_from_slice(b"null"),
        Cell::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Cell::Int(i) => write!(out, "{i}").map_err(io_err)?,
        // serde_json writes finite floats with a decimal point (1.0) and non-finite as null.
        Cell::Float(f) => {
            serde_json::to_writer(out, f).map_err(|e| ExecError::Internal(e.to_string()))?
        }
        Cell::Str(s) => json_string(out, s)?,
        Cell::Timestamp(ms) => match format_timestamp_millis(*ms) {
            Some(text) => json_string(out, &text)?,
            None => write!(out, "{ms}").map_err(io_err)?,
        },
        Cell::Json(v) => {
            serde_json::to_writer(out, v).map_err(|e| ExecError::Internal(e.to_string()))?
        }
    }
    Ok(())
}

fn write_csv(out: &mut Vec<u8>, cell: &Cell) -> ExecResult<()> {
    match cell {
        Cell::Null => {}
        Cell::Str(s) => write_csv_text(out, s),
        Cell::Json(v) => write_csv_text(out, &v.to_string()),
        other => write_plain(out, other)?,
    }
    Ok(())
}

/// A value's text without any quoting (CSV numbers and booleans; the text format).
fn write_plain(out: &mut Vec<u8>, cell: &Cell) -> ExecResult<()> {
    match cell {
        Cell::Null => {}
        Cell::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Cell::Int(i) => write!(out, "{i}").map_err(io_err)?,
        Cell::Float(f) if f.is_finite() => {
            serde_json::to_writer(out, f).map_err(|e| ExecError::Internal(e.to_string()))?
        }
        Cell::Float(f) => write!(out, "{f}").map_err(io_err)?,
        Cell::Str(s) => out.extend_from_slice(s.as_bytes()),
        Cell::Timestamp(ms) => match format_timestamp_millis(*ms) {
            Some(text) => out.extend_from_slice(text.as_bytes()),
            None => write!(out, "{ms}").map_err(io_err)?,
        },
        Cell::Json(v) => {
            serde_json::to_writer(out, v).map_err(|e| ExecError::Internal(e.to_string()))?
        }
    }
    Ok(())
}

fn write_csv_text(out: &mut Vec<u8>, s: &str) {
    let needs_quotes = s.is_empty()
        || s.contains([',', '"', '\n', '\r'])
        || s.starts_with(char::is_whitespace)
        || s.ends_with(char::is_whitespace);
    if !needs_quotes {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    out.push(b'"');
    for part in s.split_inclusive('"') {
        out.extend_from_slice(part.as_bytes());
        if part.ends_with('"') {
            out.push(b'"');
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::ElementMeta;
    use crate::convert::rows_to_batch;
    use serde_json::json;
    use weir_model::window::{PaneInfo, PaneTiming, Window};
    use weir_model::{DataType, Field};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("name", DataType::String),
            Field::new("n", DataType::Int64),
            Field::new("x", DataType::Float64),
            Field::new("ts", DataType::Timestamp),
            Field::new("tags", DataType::List(Box::new(DataType::String))),
        ])
    }

    fn sample() -> RecordBatch {
        let rows = vec![
            json!({"name": "a,\"b\"", "n": 1, "x": 1.0, "ts": 1_704_067_200_000i64, "tags": ["p", "q"]}),
            json!({"name": "", "n": null, "x": 2.5, "ts": null, "tags": null}),
        ];
        let rows: Vec<_> = rows
            .into_iter()
            .map(|r| r.as_object().unwrap().clone())
            .collect();
        let pane = PaneInfo {
            timing: PaneTiming::OnTime,
            index: 0,
            is_first: true,
            is_last: true,
        };
        let metas = [
            ElementMeta {
                ts: 59_999,
                window: Window::new(0, 60_000),
                pane,
            },
            ElementMeta::default(),
        ];
        rows_to_batch(&rows, &metas, &schema()).unwrap()
    }

    fn text(format: FileFormat, metadata: SinkMetadata, windowed: bool) -> String {
        let f = RowFormat::new("W", format, metadata, &schema(), windowed).unwrap();
        let mut out = f.header().unwrap_or_default();
        f.write_batch(&sample(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_lines_with_window_and_pane_columns() {
        let out = text(
            FileFormat::JsonLines,
            SinkMetadata {
                window: None,
                pane: true,
            },
            true,
        );
        assert_eq!(
            out,
            concat!(
                r#"{"name":"a,\"b\"","n":1,"x":1.0,"ts":"2024-01-01T00:00:00.000Z","tags":["p","q"],"window_start":"1970-01-01T00:00:00.000Z","window_end":"1970-01-01T00:01:00.000Z","pane_timing":"ON_TIME","pane_index":0,"pane_is_first":true,"pane_is_last":true}"#,
                "\n",
                r#"{"name":"","n":null,"x":2.5,"ts":null,"tags":null,"window_start":null,"window_end":null,"pane_timing":"UNKNOWN","pane_index":0,"pane_is_first":true,"pane_is_last":true}"#,
                "\n"
            )
        );
    }

    #[test]
    fn csv_quotes_only_when_needed_and_keeps_null_apart_from_empty() {
        let out = text(FileFormat::Csv, SinkMetadata::default(), false);
        assert_eq!(
            out,
            "name,n,x,ts,tags\n\"a,\"\"b\"\"\",1,1.0,2024-01-01T00:00:00.000Z,\"[\"\"p\"\",\"\"q\"\"]\"\n\"\",,2.5,,\n"
        );
    }

    #[test]
    fn unwindowed_input_gets_no_window_columns_unless_asked() {
        let out = text(FileFormat::JsonLines, SinkMetadata::default(), false);
        assert!(!out.contains("window_start"));
        let out = text(
            FileFormat::JsonLines,
            SinkMetadata {
                window: Some(true),
                pane: false,
            },
            false,
        );
        assert!(out.contains("\"window_start\":\"1970-01-01T00:00:00.000Z\""));
        let out = text(
            FileFormat::JsonLines,
            SinkMetadata {
                window: Some(false),
                pane: false,
            },
            true,
        );
        assert!(!out.contains("window_start"));
    }

    #[test]
    fn text_writes_one_column_and_refuses_more() {
        let one = Schema::new(vec![Field::new("line", DataType::String)]);
        let f = RowFormat::new("W", FileFormat::Text, SinkMetadata::default(), &one, true).unwrap();
        let rows: Vec<_> = [json!({"line": "hello"}), json!({})]
            .iter()
            .map(|r| r.as_object().unwrap().clone())
            .collect();
        let b = rows_to_batch(&rows, &[ElementMeta::default(); 2], &one).unwrap();
        let mut out = Vec::new();
        f.write_batch(&b, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "hello\n\n");
        let err = RowFormat::new(
            "W",
            FileFormat::Text,
            SinkMetadata::default(),
            &schema(),
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("one column"), "{err}");
    }

    #[test]
    fn a_user_column_named_like_a_metadata_column_is_refused() {
        let clash = Schema::new(vec![Field::new("window_start", DataType::Int64)]);
        let err = RowFormat::new("W", FileFormat::Csv, SinkMetadata::default(), &clash, true)
            .unwrap_err();
        assert!(err.to_string().contains("window_start"), "{err}");
    }
}
