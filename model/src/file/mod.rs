//! Pipeline files: a declarative YAML form of the IR following Beam YAML. (being written)
#![allow(missing_docs, unused)]
use crate::error::{ModelError, Result};
use crate::pipeline::Pipeline;

/// Parses pipeline-file text; `file_name` is used in error locations.
pub fn parse_str(text: &str, file_name: &str) -> Result<Pipeline> {
    Err(ModelError::Json("pipeline files are not built yet".into()))
}

/// Reads and parses a pipeline file.
pub fn parse_file(path: &std::path::Path) -> Result<Pipeline> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::Json(format!("{}: {e}", path.display())))?;
    parse_str(&text, &path.display().to_string())
}
