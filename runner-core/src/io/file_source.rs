//! Reading JSON lines, CSV or text from a file or a directory of files.

use super::records::{short, RecordCollector};
use super::{Source, SourcePoll};
use crate::convert;
use crate::error::{ExecError, ExecResult};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, VecDeque};
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use weir_model::{
    io::{BadRecordPolicy, FileFormat},
    time::{Duration, Timestamp},
    DataType, Schema,
};

/// How often a watched directory is listed when no interval is given.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Rows from files.
///
/// `path` is a file or a directory; a directory contributes every regular file in name
/// order, skipping hidden (`.`) and `_`-prefixed files (temp and marker files). A directory
/// with a commit manifest (`_weir_metadata/`, see [`super::manifest`]) contributes only the
/// files its committed epochs list, so a watched one sees a file once it is committed.
/// - Bounded: one partition per file (a directory without files has one empty partition).
/// - `watch`: one partition that reads the files in name order, then lists the directory
///   every `poll_interval` (default 1 s) for files it has not seen, returning
///   [`SourcePoll::Pending`] meanwhile. Files are read once, whole, when discovered: write
///   them elsewhere and rename them in. A file discovered later with a name before ones
///   already read is still read (after them).
///
/// Formats:
/// - JSON lines: one object per line; blank lines are skipped; fields not in the schema are
///   ignored; values convert like every Weir row (timestamps as RFC 3339 text or integer ms).
/// - CSV: line 1 is the header naming the columns (matched to the schema by name; extra
///   columns ignored; missing ones null). An unquoted empty field is null, a quoted empty
///   field `""` is the empty string. Values parse per the schema type: int64, float64,
///   bool (`true`/`false`, any case), timestamp (RFC 3339, `YYYY-MM-DD[ HH:MM:SS]` or
///   integer ms), lists and structs as JSON text; a non-finite float (`NaN`, `inf`) reads
///   as null, since rows hold JSON numbers. Quoted fields may span lines (the record takes
///   the number of its first line). Blank lines are skipped.
/// - Text: each line is a row of the schema's single string column.
///
/// A malformed record (invalid JSON, not an object, a value of the wrong type, an
/// unparseable CSV value, a wrong field count, a missing non-nullable field, invalid
/// UTF-8) fails the run with `path:line: message naming the field` under
/// [`BadRecordPolicy::Fail`], or becomes a dead-letter row `{source: path, line, error,
/// record: raw text}` — never skipped silently.
///
/// Position per partition: `{"file": name, "line": n}`, `n` = lines consumed from that
/// file (for a watched directory, every file named before `file` counts as read).
#[derive(Debug)]
pub struct FileSource {
    root: PathBuf,
    /// `root` is a directory (else a single file).
    is_dir: bool,
    format: FileFormat,
    schema: Schema,
    policy: BadRecordPolicy,
    watch: Option<Watch>,
    /// Bounded: one cursor per file. Watching: exactly one.
    cursors: Vec<Cursor>,
}

/// Directory-watching state of the single unbounded partition.
#[derive(Debug)]
struct Watch {
    interval: i64,
    /// Every file name ever queued or read.
    seen: BTreeSet<String>,
    /// Files discovered and not started yet, in discovery (then name) order.
    queue: VecDeque<String>,
    /// When the directory is listed next (`None`: at the next opportunity).
    next_scan: Option<Timestamp>,
}

/// Reading state of one partition.
#[derive(Debug, Default)]
struct Cursor {
    /// The file being read or last read.
    file: Option<String>,
    reader: Option<BufReader<File>>,
    /// Lines consumed from `file`.
    line: u64,
    /// Whether `file` has been read to its end.
    done: bool,
    /// CSV: for each schema column, its index in the file's header.
    csv_columns: Option<Vec<Option<usize>>>,
    /// The bytes of the current record (reused from record to record).
    record: Vec<u8>,
}

impl FileSource {
    /// A source reading `path` for node `node`.
    pub fn new(
        node: &str,
        path: &str,
        format: FileFormat,
        watch: bool,
        poll_interval: Option<Duration>,
        schema: &Schema,
        bad_records: &BadRecordPolicy,
    ) -> ExecResult<Self> {
        if format == FileFormat::Text
            && !(schema.fields.len() == 1 && schema.fields[0].data_type == DataType::String)
        {
            return Err(ExecError::transform(
                node,
                format!("a text source reads one string column (e.g. `line`), but the schema is {schema}"),
            ));
        }
        let root = PathBuf::from(path);
        let meta = fs::metadata(&root)
            .map_err(|e| ExecError::io(format!("reading {}", root.display()), e))?;
        let is_dir = meta.is_dir();
        let mut source = FileSource {
            root,
            is_dir,
            format,
            schema: schema.clone(),
            policy: bad_records.clone(),
            watch: None,
            cursors: Vec::new(),
        };
        let files = source.list_files()?;
        if watch {
            let interval = poll_interval
                .unwrap_or(DEFAULT_POLL_INTERVAL)
                .millis()
                .max(1);
            source.watch = Some(Watch {
                interval,
                seen: files.iter().cloned().collect(),
                queue: files.into(),
                next_scan: None,
            });
            source.cursors.push(Cursor::default());
        } else if files.is_empty() {
            source.cursors.push(Cursor {
                done: true,
                ..Cursor::default()
            });
        } else {
            source.cursors = files
                .into_iter()
                .map(|f| Cursor {
                    file: Some(f),
                    ..Cursor::default()
                })
                .collect();
        }
        Ok(source)
    }

    /// Names of the readable files under the root, in name order.
    fn list_files(&self) -> ExecResult<Vec<String>> {
        if !self.is_dir {
            let name = self
                .root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Ok(vec![name]);
        }
        super::parquet::list_data_files(&self.root)
    }

    /// The full path of a file of this source.
    fn file_path(&self, name: &str) -> PathBuf {
        if self.is_dir {
            self.root.join(name)
        } else {
            self.root.clone()
        }
    }

    fn partition_index(&self, partition: u32) -> ExecResult<usize> {
        let p = partition as usize;
        if p < self.cursors.len() {
            Ok(p)
        } else {
            Err(ExecError::Internal(format!(
                "{} has no partition {partition}",
                self.root.display()
            )))
        }
    }

    /// Lists the watched directory and queues files not seen before.
    fn scan(&mut self, now: Timestamp) -> ExecResult<bool> {
        let files = self.list_files()?;
        let watch = self
            .watch
            .as_mut()
            .expect("scan is only for watched sources");
        let mut found = false;
        for f in files {
            if watch.seen.insert(f.clone()) {
                watch.queue.push_back(f);
                found = true;
            }
        }
        watch.next_scan = Some(now + watch.interval);
        Ok(found)
    }

    /// Reads up to `max_rows` records from cursor `p`'s current file into `collector`.
    fn read_records(
        &mut self,
        p: usize,
        max_rows: usize,
        collector: &mut RecordCollector,
    ) -> ExecResult<()> {
        let Some(name) = self.cursors[p].file.clone() else {
            return Ok(());
        };
        let path = self.file_path(&name);
        let source_name = path.display().to_string();
        if self.cursors[p].reader.is_none() && !self.cursors[p].done {
            let file = File::open(&path)
                .map_err(|e| ExecError::io(format!("opening {source_name}"), e))?;
            self.cursors[p].reader = Some(BufReader::new(file));
        }
        let mut fields = CsvFields::default();
        while collector.len() < max_rows {
            let cursor = &mut self.cursors[p];
            let Some(line) = cursor.next_record(self.format, &source_name)? else {
                cursor.done = true;
                cursor.reader = None;
                break;
            };
            let Ok(text) = std::str::from_utf8(&cursor.record) else {
                let raw = String::from_utf8_lossy(&cursor.record).into_owned();
                collector.bad(
                    &source_name,
                    line,
                    "the line is not valid UTF-8".into(),
                    raw,
                )?;
                continue;
            };
            match self.format {
                FileFormat::JsonLines => {
                    if text.trim().is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<Value>(text) {
                        Ok(Value::Object(row)) => {
                            collector.row(row, &source_name, line, || text.to_string())?
                        }
                        Ok(other) => collector.bad(
                            &source_name,
                            line,
                            format!("expected a JSON object, got {}", short(&other)),
                            text.to_string(),
                        )?,
                        Err(e) => collector.bad(
                            &source_name,
                            line,
                            format!("invalid JSON: {e}"),
                            text.to_string(),
                        )?,
                    }
                }
                FileFormat::Text => {
                    let mut row = Map::new();
                    row.insert(
                        self.schema.fields[0].name.clone(),
                        Value::String(text.to_string()),
                    );
                    collector.row(row, &source_name, line, String::new)?;
                }
                FileFormat::Csv => {
                    if cursor.csv_columns.is_none() {
                        cursor.csv_columns =
                            Some(csv_header(text, &mut fields, &self.schema).map_err(
                                |message| ExecError::BadRecord {
                                    source_name: source_name.clone(),
                                    line,
                                    message,
                                },
                            )?);
                        continue;
                    }
                    if text.trim().is_empty() {
                        continue;
                    }
                    let columns = cursor.csv_columns.as_ref().expect("header read above");
                    match csv_row(text, &mut fields, columns, &self.schema) {
                        Ok(row) => collector.row(row, &source_name, line, || text.to_string())?,
                        Err(message) => {
                            collector.bad(&source_name, line, message, text.to_string())?
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Cursor {
    /// Reads the next record of the open file into `self.record` (without its line break);
    /// returns the number of its first line, or `None` at the end of the file.
    fn next_record(&mut self, format: FileFormat, path: &str) -> ExecResult<Option<u64>> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        let bytes = &mut self.record;
        bytes.clear();
        let first_line = self.line + 1;
        loop {
            let n = reader
                .read_until(b'\n', bytes)
                .map_err(|e| ExecError::io(format!("reading {path}"), e))?;
            if n == 0 {
                if bytes.is_empty() {
                    return Ok(None);
                }
                break;
            }
            self.line += 1;
            // A CSV quoted field may hold line breaks: the record goes on while a quote is open.
            let quotes_open =
                format == FileFormat::Csv && bytes.iter().filter(|b| **b == b'"').count() % 2 == 1;
            if !quotes_open {
                break;
            }
        }
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        Ok(Some(first_line))
    }

    /// Opens `name` and skips its first `line` lines (re-reading a CSV header on the way).
    fn restore(&mut self, source: &FileSource, name: &str, line: u64) -> ExecResult<()> {
        *self = Cursor {
            file: Some(name.to_string()),
            ..Cursor::default()
        };
        let path = source.file_path(name);
        let display = path.display().to_string();
        let file = match File::open(&path) {
            Ok(f) => f,
            // In a watched directory a file that is gone was read before; nothing is left of it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && source.watch.is_some() => {
                self.done = true;
                self.line = line;
                return Ok(());
            }
            Err(e) => return Err(ExecError::io(format!("opening {display}"), e)),
        };
        self.reader = Some(BufReader::new(file));
        if source.format == FileFormat::Csv && line > 0 {
            if let Some(at) = self.next_record(source.format, &display)? {
                let header = String::from_utf8_lossy(&self.record);
                let columns = csv_header(&header, &mut CsvFields::default(), &source.schema)
                    .map_err(|message| ExecError::BadRecord {
                        source_name: display.clone(),
                        line: at,
                        message,
                    })?;
                self.csv_columns = Some(columns);
            }
        }
        let mut skipped = Vec::new();
        while self.line < line {
            skipped.clear();
            let reader = self.reader.as_mut().expect("opened above");
            let n = reader
                .read_until(b'\n', &mut skipped)
                .map_err(|e| ExecError::io(format!("reading {display}"), e))?;
            if n == 0 {
                break;
            }
            self.line += 1;
        }
        Ok(())
    }
}

impl Source for FileSource {
    fn partitions(&self) -> u32 {
        self.cursors.len() as u32
    }

    fn poll(&mut self, partition: u32, max_rows: usize, now: Timestamp) -> ExecResult<SourcePoll> {
        let p = self.partition_index(partition)?;
        let max_rows = max_rows.max(1);
        // The collector borrows the schema and policy; clone them (small) so `self` stays free.
        let (schema, policy) = (self.schema.clone(), self.policy.clone());
        let mut collector = RecordCollector::new(&schema, &policy);
        if self.watch.is_none() {
            if self.cursors[p].done {
                return Ok(SourcePoll::Ended);
            }
            self.read_records(p, max_rows, &mut collector)?;
            if collector.is_empty() && self.cursors[p].done {
                return Ok(SourcePoll::Ended);
            }
        } else {
            loop {
                self.read_records(p, max_rows, &mut collector)?;
                if collector.len() >= max_rows {
                    break;
                }
                let cursor_idle = self.cursors[p].done || self.cursors[p].file.is_none();
                if !cursor_idle {
                    continue;
                }
                let watch = self.watch.as_mut().expect("watching");
                if let Some(next) = watch.queue.pop_front() {
                    self.cursors[p] = Cursor {
                        file: Some(next),
                        ..Cursor::default()
                    };
                    continue;
                }
                let scan_due = watch.next_scan.is_none_or(|at| now >= at);
                if scan_due && self.scan(now)? {
                    continue;
                }
                break;
            }
            if collector.is_empty() {
                return Ok(SourcePoll::Pending);
            }
        }
        let (data, dead_letters) = collector.finish()?;
        Ok(SourcePoll::Batch { data, dead_letters })
    }

    fn position(&self, partition: u32) -> Value {
        match self.cursors.get(partition as usize) {
            Some(c) => serde_json::json!({"file": c.file, "line": c.line}),
            None => Value::Null,
        }
    }

    fn seek(&mut self, partition: u32, position: &Value) -> ExecResult<()> {
        let p = self.partition_index(partition)?;
        let bad = || {
            ExecError::Internal(format!(
                "`{position}` is not a position of {}",
                self.root.display()
            ))
        };
        let file = match position.get("file") {
            Some(Value::String(f)) => Some(f.clone()),
            Some(Value::Null) | None => None,
            Some(_) => return Err(bad()),
        };
        let line = position.get("line").and_then(Value::as_u64).unwrap_or(0);
        let listed = if self.watch.is_some() {
            Some(self.list_files()?)
        } else {
            None
        };
        if let (Some(watch), Some(files)) = (self.watch.as_mut(), listed) {
            // Everything named up to `file` was read; everything after it is still to come.
            watch.seen = files
                .iter()
                .filter(|f| file.as_ref().is_some_and(|cur| *f <= cur))
                .cloned()
                .collect();
            watch.queue = files
                .iter()
                .filter(|f| !watch.seen.contains(*f))
                .cloned()
                .collect();
            watch.seen.extend(watch.queue.iter().cloned());
            watch.next_scan = None;
        } else if file.is_some() && self.cursors[p].file != file {
            return Err(bad());
        }
        let mut cursor = Cursor::default();
        match &file {
            Some(name) => cursor.restore(self, name, line)?,
            None => cursor.done = self.watch.is_none(),
        }
        self.cursors[p] = cursor;
        Ok(())
    }

    fn next_poll_time(&self) -> Option<Timestamp> {
        self.watch.as_ref().and_then(|w| w.next_scan)
    }
}

/// Reusable storage for the fields of one CSV record: unescaped text in one buffer, and
/// per field its span and whether it was quoted.
#[derive(Debug, Default)]
struct CsvFields {
    text: String,
    spans: Vec<(usize, usize, bool)>,
}

impl CsvFields {
    fn len(&self) -> usize {
        self.spans.len()
    }

    /// Field `i`: its text and whether it was quoted.
    fn get(&self, i: usize) -> (&str, bool) {
        let (a, z, quoted) = self.spans[i];
        (&self.text[a..z], quoted)
    }

    /// Splits one complete record (RFC 4180: `,` separated, `"` quoted with `""` escapes).
    fn split(&mut self, record: &str) -> Result<(), String> {
        self.text.clear();
        self.spans.clear();
        let mut rest = record;
        loop {
            let start = self.text.len();
            if let Some(quoted) = rest.strip_prefix('"') {
                let mut inner = quoted;
                loop {
                    let Some(q) = inner.find('"') else {
                        return Err(format!(
                            "field {}: unterminated quoted field",
                            self.spans.len() + 1
                        ));
                    };
                    self.text.push_str(&inner[..q]);
                    inner = &inner[q + 1..];
                    match inner.strip_prefix('"') {
                        Some(after) => {
                            self.text.push('"');
                            inner = after;
                        }
                        None => break,
                    }
                }
                self.spans.push((start, self.text.len(), true));
                if inner.is_empty() {
                    return Ok(());
                }
                match inner.strip_prefix(',') {
                    Some(after) => rest = after,
                    None => {
                        return Err(format!(
                            "field {}: text after the closing quote",
                            self.spans.len()
                        ));
                    }
                }
            } else {
                let end = rest.find(',').unwrap_or(rest.len());
                self.text.push_str(&rest[..end]);
                self.spans.push((start, self.text.len(), false));
                if end == rest.len() {
                    return Ok(());
                }
                rest = &rest[end + 1..];
            }
        }
    }
}

/// For each schema column, its index in a CSV header line (a byte-order mark is dropped).
fn csv_header(
    header: &str,
    fields: &mut CsvFields,
    schema: &Schema,
) -> Result<Vec<Option<usize>>, String> {
    let header = header.strip_prefix('\u{feff}').unwrap_or(header);
    fields
        .split(header)
        .map_err(|m| format!("bad CSV header: {m}"))?;
    let names: Vec<&str> = (0..fields.len()).map(|i| fields.get(i).0).collect();
    Ok(schema
        .fields
        .iter()
        .map(|f| names.iter().position(|n| *n == f.name))
        .collect())
}

/// Parses a CSV record into a row of `schema` (`columns`: each schema column's header index).
fn csv_row(
    record: &str,
    fields: &mut CsvFields,
    columns: &[Option<usize>],
    schema: &Schema,
) -> Result<serde_json::Map<String, Value>, String> {
    fields.split(record)?;
    let expected = columns.iter().flatten().max().map_or(0, |m| m + 1);
    if fields.len() < expected {
        return Err(format!(
            "expected at least {expected} fields (per the header), got {}",
            fields.len()
        ));
    }
    let mut row = Map::new();
    for (f, index) in schema.fields.iter().zip(columns) {
        let Some(index) = index else { continue };
        let (text, quoted) = fields.get(*index);
        let value = if text.is_empty() {
            if quoted && f.data_type == DataType::String {
                Value::String(String::new())
            } else {
                Value::Null
            }
        } else {
            csv_value(text, &f.data_type).map_err(|want| {
                format!(
                    "field `{}`: `{}` is not {want}",
                    f.name,
                    super::records::shorten(text)
                )
            })?
        };
        row.insert(f.name.clone(), value);
    }
    Ok(row)
}

/// A CSV field's value for a column of type `t`, or what was expected.
fn csv_value(text: &str, t: &DataType) -> Result<Value, String> {
    let trimmed = text.trim();
    let fail = |what: &str| Err(what.to_string());
    match t {
        DataType::String => Ok(Value::String(text.to_string())),
        DataType::Int64 => trimmed
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| fail("an int64")),
        DataType::Float64 => match trimmed.parse::<f64>() {
            Ok(x) => Ok(serde_json::Number::from_f64(x)
                .map(Value::Number)
                .unwrap_or(Value::Null)),
            Err(_) => fail("a float64"),
        },
        DataType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => fail("a bool (true or false)"),
        },
        DataType::Timestamp => match convert::parse_timestamp(trimmed) {
            Some(ms) => Ok(Value::from(ms)),
            None => fail("a timestamp (RFC 3339 or integer milliseconds)"),
        },
        DataType::List(_) | DataType::Struct(_) => {
            serde_json::from_str(trimmed).or_else(|_| fail(&format!("{t} as JSON text")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_follow_rfc_4180() {
        let mut f = CsvFields::default();
        f.split(r#"a,"b,c","say ""hi""",,"""#).unwrap();
        let got: Vec<(&str, bool)> = (0..f.len()).map(|i| f.get(i)).collect();
        assert_eq!(
            got,
            vec![
                ("a", false),
                ("b,c", true),
                ("say \"hi\"", true),
                ("", false),
                ("", true)
            ]
        );
        f.split("x,").unwrap();
        assert_eq!(f.len(), 2);
        assert!(f.split(r#""open"#).unwrap_err().contains("unterminated"));
        assert!(f
            .split(r#""a"b"#)
            .unwrap_err()
            .contains("after the closing quote"));
    }

    #[test]
    fn csv_values_parse_per_type() {
        assert_eq!(csv_value(" 42 ", &DataType::Int64), Ok(Value::from(42)));
        assert_eq!(
            csv_value("4.5", &DataType::Float64),
            Ok(serde_json::json!(4.5))
        );
        assert_eq!(csv_value("TRUE", &DataType::Boolean), Ok(Value::Bool(true)));
        assert_eq!(
            csv_value("1970-01-01T00:00:01Z", &DataType::Timestamp),
            Ok(Value::from(1000))
        );
        assert_eq!(
            csv_value("[1,2]", &DataType::List(Box::new(DataType::Int64))),
            Ok(serde_json::json!([1, 2]))
        );
        assert!(csv_value("x", &DataType::Int64).is_err());
    }
}
