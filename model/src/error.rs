//! Errors raised while building, reading or validating a pipeline.

use thiserror::Error;

/// Where in a pipeline file something is: file, 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file's path as given by the user (or `<string>` for in-memory text).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// An error in a pipeline: refused before anything runs.
#[derive(Debug, Error)]
pub enum ModelError {
    /// The pipeline file is not valid YAML/JSON, or does not follow the pipeline-file syntax.
    #[error("{location}: {message}")]
    File {
        /// Where the problem is.
        location: Location,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A transform is wired or configured inconsistently (unknown input, duplicate name, ...).
    #[error("transform `{transform}`: {message}")]
    Transform {
        /// The transform's name.
        transform: String,
        /// What is wrong.
        message: String,
    },
    /// A column is missing or has the wrong type.
    #[error("transform `{transform}`, column `{column}`: {message}")]
    Column {
        /// The transform's name.
        transform: String,
        /// The column's name.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// The canonical JSON plan could not be read or written.
    #[error("pipeline JSON: {0}")]
    Json(String),
    /// A runner cannot execute the pipeline: it lacks a required feature.
    #[error("runner `{runner}` does not support {feature}: {reason}")]
    Unsupported {
        /// The runner's name.
        runner: String,
        /// The feature, as named in the capability table.
        feature: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// Converting typed Rust values to or from Arrow failed.
    #[error("typed conversion: {0}")]
    Typed(String),
}

impl ModelError {
    /// A transform-level error.
    pub fn transform(transform: impl Into<String>, message: impl Into<String>) -> Self {
        ModelError::Transform {
            transform: transform.into(),
            message: message.into(),
        }
    }
    /// A column-level error.
    pub fn column(
        transform: impl Into<String>,
        column: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ModelError::Column {
            transform: transform.into(),
            column: column.into(),
            message: message.into(),
        }
    }
}

/// Result with [`ModelError`].
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
