//! Errors raised while executing a pipeline.

use thiserror::Error;

/// An error during execution. Expected errors (bad input, failed I/O, failed assertion)
/// carry where they happened; `Internal` marks a bug in Weir.
#[derive(Debug, Error)]
pub enum ExecError {
    /// A malformed input record, with its position, under the `fail` policy.
    #[error("{source_name}:{line}: {message}")]
    BadRecord {
        /// File (or source) name.
        source_name: String,
        /// 1-based line (or record number).
        line: u64,
        /// What is wrong, naming the field.
        message: String,
    },
    /// I/O with context.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A transform failed on data (user function error, evaluation error, job-failing rule).
    #[error("transform `{transform}`: {message}")]
    Transform {
        /// The transform's name.
        transform: String,
        /// What went wrong.
        message: String,
    },
    /// An `AssertEqual` did not hold.
    #[error("assertion `{transform}` failed: {message}")]
    Assertion {
        /// The transform's name.
        transform: String,
        /// Expected vs actual.
        message: String,
    },
    /// An Arrow kernel failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A bug in Weir.
    #[error("internal error (a bug in Weir): {0}")]
    Internal(String),
}

impl ExecError {
    /// A transform-level error.
    pub fn transform(transform: impl Into<String>, message: impl Into<String>) -> Self {
        ExecError::Transform {
            transform: transform.into(),
            message: message.into(),
        }
    }
    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ExecError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result with [`ExecError`].
pub type ExecResult<T> = Result<T, ExecError>;
