//! Writing JSON lines, CSV or text files, committed per batch/epoch.

use super::format::RowFormat;
use super::Sink;
use crate::error::{ExecError, ExecResult};
use arrow::record_batch::RecordBatch;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use weir_model::{
    io::{DeliveryGuarantee, FileFormat, SinkMetadata},
    time::Timestamp,
    Schema,
};

/// Where a file sink puts committed rows.
#[derive(Debug)]
enum Target {
    /// One file (the path has an extension): rows appended at each commit.
    File { file: File },
    /// A directory of `part-<epoch:05>.<ext>` files, one per committed epoch with rows.
    Directory,
}

/// A file sink (idempotent): rows are buffered between commits and written at
/// [`Sink::commit`].
///
/// - A path with an extension is a single file, (re)created when the sink is created (with
///   the CSV header); each commit appends its rows. An epoch at or below the last committed
///   one is a replay and is skipped.
/// - Otherwise the path is a directory; each commit of an epoch with rows writes
///   `part-<epoch:05>.<ext>` (`json`, `csv` or `txt`) through a hidden temp file and an atomic
///   rename, so a replayed epoch replaces its own file and readers never see half a file.
///   An epoch without rows writes no file. Two sinks writing the same directory must not
///   commit the same epoch (they would replace each other's part).
///
/// Parent directories are created. Columns: the user columns, then `window_start`,
/// `window_end` (RFC 3339; null for the global window) when `SinkMetadata::window` says so
/// (by default: when `windowed`), then `pane_timing` (EARLY/ON_TIME/LATE/UNKNOWN),
/// `pane_index`, `pane_is_first`, `pane_is_last` when `SinkMetadata::pane` is set; nothing
/// `__*` is ever written. Timestamps are RFC 3339 UTC with milliseconds
/// (`2024-01-01T00:00:00.000Z`), or integer milliseconds outside years 0000–9999. CSV has a
/// header line, writes null as an empty field and the empty string as `""`, and quotes
/// fields containing `,`, `"`, CR/LF or edge whitespace; text writes the single column.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    target: Target,
    format: RowFormat,
    pending: Vec<u8>,
    last_committed: Option<u64>,
}

impl FileSink {
    /// A sink for node `node` writing rows of `schema` to `path`; `windowed` says whether the
    /// input carries (non-global) window metadata, which is then written by default.
    pub fn new(
        node: &str,
        path: &str,
        format: FileFormat,
        metadata: SinkMetadata,
        schema: &Schema,
        windowed: bool,
    ) -> ExecResult<Self> {
        let row_format = RowFormat::new(node, format, metadata, schema, windowed)?;
        let path = PathBuf::from(path);
        let target = if path.extension().is_some() {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(|e| {
                    ExecError::io(format!("creating directory {}", parent.display()), e)
                })?;
            }
            let mut file = File::create(&path)
                .map_err(|e| ExecError::io(format!("creating {}", path.display()), e))?;
            if let Some(header) = row_format.header() {
                file.write_all(&header)
                    .map_err(|e| ExecError::io(format!("writing {}", path.display()), e))?;
            }
            Target::File { file }
        } else {
            fs::create_dir_all(&path)
                .map_err(|e| ExecError::io(format!("creating directory {}", path.display()), e))?;
            Target::Directory
        };
        Ok(FileSink {
            path,
            target,
            format: row_format,
            pending: Vec::new(),
            last_committed: None,
        })
    }

    /// The part file an epoch is committed to (directory mode).
    pub fn part_path(&self, epoch: u64) -> PathBuf {
        self.path
            .join(format!("part-{epoch:05}.{}", self.format.extension()))
    }

    fn write_part(&self, epoch: u64) -> ExecResult<()> {
        let final_path = self.part_path(epoch);
        let temp = self
            .path
            .join(format!(".part-{epoch:05}.{}.tmp", self.format.extension()));
        let io = |what: &str, p: &Path| {
            let what = what.to_string();
            let p = p.display().to_string();
            move |e| ExecError::io(format!("{what} {p}"), e)
        };
        let mut file = File::create(&temp).map_err(io("creating", &temp))?;
        if let Some(header) = self.format.header() {
            file.write_all(&header).map_err(io("writing", &temp))?;
        }
        file.write_all(&self.pending)
            .map_err(io("writing", &temp))?;
        file.sync_all().map_err(io("syncing", &temp))?;
        fs::rename(&temp, &final_path).map_err(io("renaming to", &final_path))
    }
}

impl Sink for FileSink {
    fn write(&mut self, batch: &RecordBatch, _now: Timestamp) -> ExecResult<()> {
        self.format.write_batch(batch, &mut self.pending)
    }

    fn commit(&mut self, epoch: u64, _now: Timestamp) -> ExecResult<()> {
        let replay = self.last_committed.is_some_and(|last| epoch <= last);
        match &mut self.target {
            Target::File { .. } if replay => {}
            Target::File { file } => {
                let path = self.path.display();
                file.write_all(&self.pending)
                    .map_err(|e| ExecError::io(format!("appending to {path}"), e))?;
                file.flush()
                    .map_err(|e| ExecError::io(format!("flushing {path}"), e))?;
            }
            Target::Directory if self.pending.is_empty() => {}
            Target::Directory => self.write_part(epoch)?,
        }
        self.pending.clear();
        self.last_committed = Some(self.last_committed.map_or(epoch, |last| last.max(epoch)));
        Ok(())
    }

    fn guarantee(&self) -> DeliveryGuarantee {
        DeliveryGuarantee::Idempotent
    }
}
