//! Parquet files: a sink writing one file per committed epoch through a manifest, and a
//! source reading a file or the committed files of a directory.

use super::manifest::{self, Manifest, ManifestEntry, ManifestFile};
use super::{Sink, Source, SourcePoll};
use crate::batch;
use crate::error::{ExecError, ExecResult};
use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{
    DataType as ArrowType, Field as ArrowField, Int64Type, Int8Type, Schema as ArrowSchema,
    TimeUnit,
};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::Value;
use std::collections::VecDeque;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weir_model::io::{DeliveryGuarantee, SinkMetadata};
use weir_model::time::Timestamp;
use weir_model::Schema;

const WINDOW_COLUMNS: [&str; 2] = ["window_start", "window_end"];
const PANE_COLUMNS: [&str; 4] = ["pane_timing", "pane_index", "pane_is_first", "pane_is_last"];

/// Rows the reader decodes at a time (a poll returns at most its `max_rows` of them).
const READ_BATCH_ROWS: usize = 8192;

/// A Parquet sink (idempotent): rows are buffered between commits; each commit of an epoch
/// with rows writes `part-<epoch:05>.parquet` (snappy) through a hidden temp file and a
/// rename, then commits the epoch in the directory's manifest (`_weir_metadata/`, see
/// [`Manifest`]).
///
/// - An epoch already in the manifest is a replay: its rows are dropped, nothing is written.
/// - A crash between the data file and the manifest entry leaves a file no entry lists;
///   readers honouring the manifest ignore it and the replayed epoch overwrites it.
/// - An epoch without rows writes neither a file nor an entry.
///
/// The manifest makes the directory belong to one query, as Spark's file sink does: a new
/// run (not restored from its checkpoint) into the same directory skips the epochs it finds
/// committed. Write a fresh run to a fresh directory. Two sinks must not share a directory.
///
/// Columns: the user columns with their Arrow types (timestamps as millisecond timestamps),
/// then `window_start`, `window_end` (null for the global window) when `SinkMetadata::window`
/// says so (by default: when `windowed`), then `pane_timing` (text), `pane_index`,
/// `pane_is_first`, `pane_is_last` when `SinkMetadata::pane` is set.
#[derive(Debug)]
pub struct ParquetSink {
    root: PathBuf,
    manifest: Manifest,
    schema: Arc<ArrowSchema>,
    user_columns: usize,
    window: bool,
    pane: bool,
    pending: Vec<RecordBatch>,
}

impl ParquetSink {
    /// A sink for node `node` writing rows of `schema` under directory `path`.
    pub fn new(
        node: &str,
        path: &str,
        metadata: SinkMetadata,
        schema: &Schema,
        windowed: bool,
    ) -> ExecResult<Self> {
        let root = PathBuf::from(path);
        if root.is_file() {
            return Err(ExecError::transform(
                node,
                format!(
                    "WriteToParquet writes a directory, but {} is a file",
                    root.display()
                ),
            ));
        }
        fs::create_dir_all(&root)
            .map_err(|e| ExecError::io(format!("creating directory {}", root.display()), e))?;
        let window = metadata.window.unwrap_or(windowed);
        let pane = metadata.pane;
        let mut fields: Vec<ArrowField> = schema.fields.iter().map(|f| f.to_arrow()).collect();
        let timestamp = ArrowType::Timestamp(TimeUnit::Millisecond, None);
        let mut extra: Vec<ArrowField> = Vec::new();
        if window {
            extra.extend(WINDOW_COLUMNS.map(|n| ArrowField::new(n, timestamp.clone(), true)));
        }
        if pane {
            extra.push(ArrowField::new(PANE_COLUMNS[0], ArrowType::Utf8, false));
            extra.push(ArrowField::new(PANE_COLUMNS[1], ArrowType::Int64, false));
            extra.push(ArrowField::new(PANE_COLUMNS[2], ArrowType::Boolean, false));
            extra.push(ArrowField::new(PANE_COLUMNS[3], ArrowType::Boolean, false));
        }
        for f in &extra {
            if schema.field(f.name()).is_some() {
                return Err(ExecError::transform(
                    node,
                    format!(
                        "column `{0}` clashes with the {0} metadata column the sink writes",
                        f.name()
                    ),
                ));
            }
        }
        fields.extend(extra);
        Ok(ParquetSink {
            manifest: Manifest::new(&root),
            root,
            schema: Arc::new(ArrowSchema::new(fields)),
            user_columns: schema.fields.len(),
            window,
            pane,
            pending: Vec::new(),
        })
    }

    /// The file an epoch's rows are committed to.
    pub fn part_path(&self, epoch: u64) -> PathBuf {
        self.root.join(part_name(epoch))
    }

    /// The output batch (user columns + the metadata columns asked for) of an input batch.
    fn output_batch(&self, input: &RecordBatch) -> ExecResult<RecordBatch> {
        let width = batch::user_width(input);
        if width != self.user_columns {
            return Err(ExecError::Internal(format!(
                "a sink for {} columns got a batch with {width}",
                self.user_columns
            )));
        }
        let mut columns: Vec<ArrayRef> = (0..width).map(|c| input.column(c).clone()).collect();
        if self.window {
            let (_, start, end) = batch::ts_and_window(input);
            let global = |row: usize| batch::is_global(start.value(row), end.value(row));
            let column = |values: &Int64Array| -> ArrayRef {
                Arc::new(TimestampMillisecondArray::from_iter(
                    (0..values.len()).map(|r| (!global(r)).then(|| values.value(r))),
                ))
            };
            columns.push(column(start));
            columns.push(column(end));
        }
        if self.pane {
            let meta = |i: usize| input.column(width + i);
            let timing = meta(3).as_primitive::<Int8Type>();
            columns.push(Arc::new(StringArray::from_iter_values(
                timing
                    .values()
                    .iter()
                    .map(|c| batch::timing_from_code(*c).as_str()),
            )));
            let index = meta(4).as_primitive::<Int64Type>().clone();
            columns.push(Arc::new(index));
            columns.push(Arc::new(meta(5).as_boolean().clone()));
            columns.push(Arc::new(meta(6).as_boolean().clone()));
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// Writes the pending rows to the epoch's file; returns its manifest record.
    fn write_file(&self, epoch: u64) -> ExecResult<ManifestFile> {
        let name = part_name(epoch);
        let final_path = self.root.join(&name);
        let temp = self.root.join(format!(".{name}.tmp"));
        let io = |what: &str, p: &Path| {
            let what = format!("{what} {}", p.display());
            move |e| ExecError::io(what, e)
        };
        let parquet_err = |e: parquet::errors::ParquetError| {
            ExecError::io(
                format!("writing {}", temp.display()),
                std::io::Error::other(e),
            )
        };
        let file = File::create(&temp).map_err(io("creating", &temp))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writer =
            ArrowWriter::try_new(file, self.schema.clone(), Some(props)).map_err(parquet_err)?;
        let mut rows = 0u64;
        for b in &self.pending {
            rows += b.num_rows() as u64;
            writer.write(b).map_err(parquet_err)?;
        }
        let file = writer.into_inner().map_err(parquet_err)?;
        file.sync_all().map_err(io("syncing", &temp))?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        drop(file);
        fs::rename(&temp, &final_path).map_err(io("renaming to", &final_path))?;
        manifest::sync_dir(&self.root);
        Ok(ManifestFile {
            path: name,
            rows,
            bytes,
        })
    }
}

fn part_name(epoch: u64) -> String {
    format!("part-{epoch:05}.parquet")
}

impl Sink for ParquetSink {
    fn write(&mut self, batch: &RecordBatch, _now: Timestamp) -> ExecResult<()> {
        if batch.num_rows() > 0 {
            let out = self.output_batch(batch)?;
            self.pending.push(out);
        }
        Ok(())
    }

    fn commit(&mut self, epoch: u64, _now: Timestamp) -> ExecResult<()> {
        let pending_rows: usize = self.pending.iter().map(RecordBatch::num_rows).sum();
        if pending_rows > 0 && !self.manifest.contains(epoch) {
            let file = self.write_file(epoch)?;
            self.manifest.commit(&ManifestEntry {
                version: manifest::MANIFEST_VERSION,
                epoch,
                files: vec![file],
            })?;
        }
        self.pending.clear();
        Ok(())
    }

    fn guarantee(&self) -> DeliveryGuarantee {
        DeliveryGuarantee::Idempotent
    }
}

/// Rows from Parquet files (bounded).
///
/// `path` is a file or a directory. A directory with a manifest (`_weir_metadata/`, written
/// by [`ParquetSink`]) contributes exactly the files its committed epochs list; one without
/// contributes every regular file, skipping hidden (`.`) and `_`-prefixed ones. One partition
/// per file, in name order (a directory without files has one empty partition).
///
/// Columns are matched to the schema by name and cast to the schema's types (Arrow's cast
/// rules, e.g. int32 → int64, timestamps of any unit → milliseconds); a column the file lacks
/// reads as nulls when the schema column is nullable and is an error naming the file
/// otherwise. Extra columns are ignored.
///
/// Position per partition: `{"file": name, "row": n}`, `n` = rows consumed from that file.
#[derive(Debug)]
pub struct ParquetSource {
    node: String,
    root: PathBuf,
    is_dir: bool,
    schema: Schema,
    cursors: Vec<ParquetCursor>,
}

/// Reading state of one file.
#[derive(Default)]
struct ParquetCursor {
    file: Option<String>,
    /// Rows returned from `file`.
    row: u64,
    /// Rows still to skip after (re)opening (a seek).
    skip: u64,
    reader: Option<ParquetRecordBatchReader>,
    /// Decoded rows not returned yet.
    buffered: VecDeque<RecordBatch>,
    done: bool,
}

impl std::fmt::Debug for ParquetCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetCursor")
            .field("file", &self.file)
            .field("row", &self.row)
            .field("done", &self.done)
            .finish()
    }
}

impl ParquetSource {
    /// A source reading `path` for node `node`.
    pub fn new(node: &str, path: &str, schema: &Schema) -> ExecResult<Self> {
        let root = PathBuf::from(path);
        let meta = fs::metadata(&root)
            .map_err(|e| ExecError::io(format!("reading {}", root.display()), e))?;
        let is_dir = meta.is_dir();
        let files = if is_dir {
            list_data_files(&root)?
        } else {
            vec![root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()]
        };
        let cursors = if files.is_empty() {
            vec![ParquetCursor {
                done: true,
                ..ParquetCursor::default()
            }]
        } else {
            files
                .into_iter()
                .map(|f| ParquetCursor {
                    file: Some(f),
                    ..ParquetCursor::default()
                })
                .collect()
        };
        Ok(ParquetSource {
            node: node.to_string(),
            root,
            is_dir,
            schema: schema.clone(),
            cursors,
        })
    }

    fn file_path(&self, name: &str) -> PathBuf {
        if self.is_dir {
            self.root.join(name)
        } else {
            self.root.clone()
        }
    }

    fn cursor(&mut self, partition: u32) -> ExecResult<usize> {
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

    /// The next decoded batch of file `p` in the source schema, or `None` at its end.
    fn next_decoded(&mut self, p: usize) -> ExecResult<Option<RecordBatch>> {
        let Some(name) = self.cursors[p].file.clone() else {
            return Ok(None);
        };
        let path = self.file_path(&name);
        let display = path.display().to_string();
        let parquet_err = |e: parquet::errors::ParquetError| {
            ExecError::io(format!("reading {display}"), std::io::Error::other(e))
        };
        if self.cursors[p].reader.is_none() {
            let file =
                File::open(&path).map_err(|e| ExecError::io(format!("opening {display}"), e))?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(parquet_err)?
                .with_batch_size(READ_BATCH_ROWS)
                .build()
                .map_err(parquet_err)?;
            self.cursors[p].reader = Some(reader);
        }
        loop {
            let reader = self.cursors[p].reader.as_mut().expect("opened above");
            let Some(raw) = reader.next() else {
                return Ok(None);
            };
            let raw = raw.map_err(|e| {
                ExecError::io(format!("reading {display}"), std::io::Error::other(e))
            })?;
            let cursor = &mut self.cursors[p];
            let raw = if cursor.skip > 0 {
                let n = (cursor.skip as usize).min(raw.num_rows());
                cursor.skip -= n as u64;
                raw.slice(n, raw.num_rows() - n)
            } else {
                raw
            };
            if raw.num_rows() == 0 {
                continue;
            }
            return self.conform(&raw, &display).map(Some);
        }
    }

    /// `raw`'s columns matched to the schema by name and cast; metadata appended.
    fn conform(&self, raw: &RecordBatch, display: &str) -> ExecResult<RecordBatch> {
        let mut columns = Vec::with_capacity(self.schema.fields.len());
        for field in &self.schema.fields {
            let target = field.data_type.to_arrow();
            let column = match raw.column_by_name(&field.name) {
                Some(c) => arrow::compute::cast(c, &target).map_err(|e| ExecError::BadRecord {
                    source_name: display.to_string(),
                    line: 0,
                    message: format!(
                        "column `{}` of type {} cannot be read as {}: {e}",
                        field.name,
                        c.data_type(),
                        field.data_type
                    ),
                })?,
                None if field.nullable => new_null_array(&target, raw.num_rows()),
                None => {
                    return Err(ExecError::transform(
                        &self.node,
                        format!(
                            "{display} has no column `{}` (the schema's column is not nullable)",
                            field.name
                        ),
                    ))
                }
            };
            if !field.nullable && column.null_count() > 0 {
                return Err(ExecError::transform(
                    &self.node,
                    format!("{display}: column `{}` holds nulls", field.name),
                ));
            }
            columns.push(column);
        }
        Ok(batch::with_default_meta(
            &self.schema,
            columns,
            raw.num_rows(),
        )?)
    }
}

/// The data files of a directory: the manifest's committed files when it has one, otherwise
/// every regular, non-hidden, non-`_` file. In name order.
pub(crate) fn list_data_files(root: &Path) -> ExecResult<Vec<String>> {
    let listing = |e| ExecError::io(format!("listing directory {}", root.display()), e);
    let committed = Manifest::existing(root)
        .map(|m| m.committed_files())
        .transpose()?;
    let mut names = Vec::new();
    for entry in fs::read_dir(root).map_err(listing)? {
        let entry = entry.map_err(listing)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        if committed.as_ref().is_some_and(|c| !c.contains(&name)) {
            continue;
        }
        if fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

impl Source for ParquetSource {
    fn partitions(&self) -> u32 {
        self.cursors.len() as u32
    }

    fn poll(&mut self, partition: u32, max_rows: usize, _now: Timestamp) -> ExecResult<SourcePoll> {
        let p = self.cursor(partition)?;
        let max_rows = max_rows.max(1);
        if self.cursors[p].done && self.cursors[p].buffered.is_empty() {
            return Ok(SourcePoll::Ended);
        }
        let mut parts = Vec::new();
        let mut rows = 0;
        while rows < max_rows {
            let next = match self.cursors[p].buffered.pop_front() {
                Some(b) => Some(b),
                None if self.cursors[p].done => None,
                None => self.next_decoded(p)?,
            };
            let Some(b) = next else {
                let cursor = &mut self.cursors[p];
                cursor.done = true;
                cursor.reader = None;
                break;
            };
            let take = (max_rows - rows).min(b.num_rows());
            if take < b.num_rows() {
                self.cursors[p]
                    .buffered
                    .push_front(b.slice(take, b.num_rows() - take));
            }
            rows += take;
            parts.push(b.slice(0, take));
        }
        if parts.is_empty() {
            return Ok(SourcePoll::Ended);
        }
        self.cursors[p].row += rows as u64;
        let data = arrow::compute::concat_batches(&batch::batch_schema(&self.schema), &parts)?;
        Ok(SourcePoll::Batch {
            data,
            dead_letters: None,
        })
    }

    fn position(&self, partition: u32) -> Value {
        match self.cursors.get(partition as usize) {
            Some(c) => serde_json::json!({"file": c.file, "row": c.row}),
            None => Value::Null,
        }
    }

    fn seek(&mut self, partition: u32, position: &Value) -> ExecResult<()> {
        let p = self.cursor(partition)?;
        let file = position.get("file").and_then(Value::as_str);
        if file.map(str::to_string) != self.cursors[p].file {
            return Err(ExecError::Internal(format!(
                "`{position}` is not a position of partition {partition} of {}",
                self.root.display()
            )));
        }
        let row = position.get("row").and_then(Value::as_u64).unwrap_or(0);
        let file = self.cursors[p].file.clone();
        self.cursors[p] = ParquetCursor {
            done: file.is_none(),
            file,
            row,
            skip: row,
            ..ParquetCursor::default()
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::ElementMeta;
    use crate::convert::{batch_to_rows, rows_to_batch};
    use serde_json::json;
    use weir_model::window::{PaneInfo, PaneTiming, Window};
    use weir_model::{DataType, Field};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("k", DataType::String),
            Field::new("n", DataType::Int64),
            Field::new("at", DataType::Timestamp),
        ])
    }

    fn rows(range: std::ops::Range<i64>) -> RecordBatch {
        let rows: Vec<_> = range
            .clone()
            .map(|i| {
                json!({"k": format!("k{i}"), "n": i, "at": 1_000 * i})
                    .as_object()
                    .unwrap()
                    .clone()
            })
            .collect();
        rows_to_batch(&rows, &vec![ElementMeta::default(); rows.len()], &schema()).unwrap()
    }

    fn read_all(path: &Path, max_rows: usize) -> Vec<serde_json::Map<String, Value>> {
        let mut source = ParquetSource::new("R", path.to_str().unwrap(), &schema()).unwrap();
        let mut out = Vec::new();
        for p in 0..source.partitions() {
            while let SourcePoll::Batch { data, .. } = source.poll(p, max_rows, 0).unwrap() {
                out.extend(batch_to_rows(&data));
            }
        }
        out
    }

    #[test]
    fn an_epoch_with_rows_becomes_one_committed_file_and_reads_back_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut sink = ParquetSink::new(
            "W",
            out.to_str().unwrap(),
            SinkMetadata::default(),
            &schema(),
            false,
        )
        .unwrap();
        sink.write(&rows(0..3), 0).unwrap();
        sink.write(&rows(3..5), 0).unwrap();
        sink.commit(0, 0).unwrap();
        sink.commit(1, 0).unwrap();
        sink.write(&rows(5..6), 0).unwrap();
        sink.commit(2, 0).unwrap();
        assert!(sink.part_path(0).is_file());
        assert!(!sink.part_path(1).exists(), "an empty epoch writes nothing");
        let back = read_all(&out, 2);
        assert_eq!(back.len(), 6);
        assert_eq!(back[5]["k"], json!("k5"));
        assert_eq!(back[5]["at"], json!(5000));
    }

    #[test]
    fn window_and_pane_columns_are_written_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let metadata = SinkMetadata {
            window: None,
            pane: true,
        };
        let mut sink =
            ParquetSink::new("W", dir.path().to_str().unwrap(), metadata, &schema(), true).unwrap();
        let row = json!({"k": "a", "n": 1, "at": 0})
            .as_object()
            .unwrap()
            .clone();
        let meta = ElementMeta {
            ts: 59_999,
            window: Window::new(0, 60_000),
            pane: PaneInfo {
                timing: PaneTiming::OnTime,
                index: 0,
                is_first: true,
                is_last: true,
            },
        };
        sink.write(&rows_to_batch(&[row], &[meta], &schema()).unwrap(), 0)
            .unwrap();
        sink.commit(7, 0).unwrap();
        let wide = Schema::new(vec![
            Field::new("k", DataType::String),
            Field::new("window_end", DataType::Timestamp),
            Field::new("pane_timing", DataType::String),
        ]);
        let mut source = ParquetSource::new("R", dir.path().to_str().unwrap(), &wide).unwrap();
        let SourcePoll::Batch { data, .. } = source.poll(0, 10, 0).unwrap() else {
            panic!("no rows");
        };
        assert_eq!(
            serde_json::Value::Object(batch_to_rows(&data).remove(0)),
            json!({"k": "a", "window_end": 60_000, "pane_timing": "ON_TIME"})
        );
    }

    #[test]
    fn seek_resumes_a_file_after_the_rows_already_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = ParquetSink::new(
            "W",
            dir.path().to_str().unwrap(),
            SinkMetadata::default(),
            &schema(),
            false,
        )
        .unwrap();
        sink.write(&rows(0..10), 0).unwrap();
        sink.commit(0, 0).unwrap();
        let path = dir.path().to_str().unwrap();
        let mut first = ParquetSource::new("R", path, &schema()).unwrap();
        let _ = first.poll(0, 4, 0).unwrap();
        let position = first.position(0);
        assert_eq!(position, json!({"file": "part-00000.parquet", "row": 4}));
        let mut second = ParquetSource::new("R", path, &schema()).unwrap();
        second.seek(0, &position).unwrap();
        let SourcePoll::Batch { data, .. } = second.poll(0, 100, 0).unwrap() else {
            panic!("no rows");
        };
        let ns: Vec<Value> = batch_to_rows(&data)
            .iter()
            .map(|r| r["n"].clone())
            .collect();
        assert_eq!(ns, (4..10).map(|i| json!(i)).collect::<Vec<_>>());
        assert!(matches!(second.poll(0, 100, 0).unwrap(), SourcePoll::Ended));
    }

    #[test]
    fn a_missing_non_nullable_column_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = ParquetSink::new(
            "W",
            dir.path().to_str().unwrap(),
            SinkMetadata::default(),
            &schema(),
            false,
        )
        .unwrap();
        sink.write(&rows(0..1), 0).unwrap();
        sink.commit(0, 0).unwrap();
        let mut strict = Field::new("missing", DataType::Int64);
        strict.nullable = false;
        let mut source = ParquetSource::new(
            "R",
            dir.path().to_str().unwrap(),
            &Schema::new(vec![strict]),
        )
        .unwrap();
        let err = source.poll(0, 10, 0).unwrap_err().to_string();
        assert!(err.contains("`missing`"), "{err}");
    }
}
