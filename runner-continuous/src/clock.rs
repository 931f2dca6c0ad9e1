//! Processing time: the wall clock, or manual clocks for deterministic runs.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use weir_model::time::Timestamp;

/// Where a subtask reads processing time.
#[derive(Debug, Clone)]
pub enum Clock {
    /// Milliseconds since the epoch from the system clock.
    Wall,
    /// A manual clock (deterministic mode). Each source subtask owns one and advances it by
    /// a fixed tick per poll; operator subtasks read the job clock, the max over sources.
    Manual {
        /// This subtask's own time (sources) or the job clock (operators).
        own: Arc<AtomicI64>,
        /// The job clock: the max over every source subtask's clock.
        job: Arc<AtomicI64>,
    },
}

impl Clock {
    /// A manual clock for a source subtask, starting at 0, feeding `job`.
    pub fn manual_source(job: &Arc<AtomicI64>) -> Clock {
        Clock::Manual {
            own: Arc::new(AtomicI64::new(0)),
            job: job.clone(),
        }
    }
    /// The job's manual clock, as operator subtasks read it.
    pub fn manual_job(job: &Arc<AtomicI64>) -> Clock {
        Clock::Manual {
            own: job.clone(),
            job: job.clone(),
        }
    }
    /// Current processing time (ms).
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::Wall => wall_millis(),
            Clock::Manual { own, .. } => own.load(Ordering::SeqCst),
        }
    }
    /// Advances a manual clock by `ms` (no-op on the wall clock).
    pub fn advance(&self, ms: i64) {
        if let Clock::Manual { own, job } = self {
            let t = own.fetch_add(ms, Ordering::SeqCst) + ms;
            job.fetch_max(t, Ordering::SeqCst);
        }
    }
    /// Whether this is a manual clock.
    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual { .. })
    }
}

/// Milliseconds since the epoch.
pub fn wall_millis() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
