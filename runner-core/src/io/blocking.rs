//! A private current-thread tokio runtime that synchronous sources and sinks block on, for
//! the async clients of external systems (PostgreSQL, NATS).

use crate::error::{ExecError, ExecResult};
use std::future::Future;

/// A runtime to block on, usable from plain threads and from inside another tokio runtime
/// (the continuous runner's subtasks), where the call moves to a helper thread because tokio
/// refuses to block a runtime thread on another runtime.
pub(crate) struct BlockingRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl BlockingRuntime {
    /// A new runtime; `what` names its user in the error.
    pub fn new(what: &str) -> ExecResult<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ExecError::io(format!("{what}: starting the client runtime"), e))?;
        Ok(BlockingRuntime {
            runtime: Some(runtime),
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives until drop")
    }

    /// Runs `fut` to completion. Tasks spawned on this runtime make progress meanwhile.
    pub fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        let runtime = self.runtime();
        if tokio::runtime::Handle::try_current().is_err() {
            return runtime.block_on(fut);
        }
        std::thread::scope(|s| {
            s.spawn(|| runtime.block_on(fut))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Spawns a background task (it runs while some call blocks on the runtime).
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.runtime().spawn(fut);
    }
}

impl Drop for BlockingRuntime {
    fn drop(&mut self) {
        // Dropping a runtime inside another runtime's task panics; this does not block.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
