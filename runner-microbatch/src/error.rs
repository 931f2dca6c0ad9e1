//! Errors of the micro-batch runner: bad options, pipelines it refuses, a checkpoint it
//! cannot trust, I/O, failures while executing a batch, and deliberate stops in
//! deterministic mode.

use crate::query::StopPoint;
use std::path::PathBuf;
use thiserror::Error;
use weir_runner_core::ExecError;

/// An error of the micro-batch runner.
#[derive(Debug, Error)]
pub enum MicroBatchError {
    /// A runner option or `--set` setting is invalid.
    #[error("microbatch runner: {0}")]
    Options(String),
    /// The pipeline needs something the runner refuses, naming the feature.
    #[error("the microbatch runner does not support {feature}: {reason}")]
    Unsupported {
        /// The feature (a requirement name or a transform/trigger).
        feature: String,
        /// Why.
        reason: String,
    },
    /// A log entry or state file of the checkpoint is corrupted, truncated or inconsistent;
    /// the query refuses to start rather than guess.
    #[error("checkpoint entry {path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
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
    /// A batch failed while executing.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The query stopped at a stop point requested in deterministic mode (a simulated crash).
    #[error("query stopped at {0}")]
    Stopped(StopPoint),
}

impl MicroBatchError {
    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        MicroBatchError::Io {
            context: context.into(),
            source,
        }
    }
    /// A checkpoint file that cannot be trusted.
    pub fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        MicroBatchError::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Result with [`MicroBatchError`].
pub type Result<T, E = MicroBatchError> = std::result::Result<T, E>;
