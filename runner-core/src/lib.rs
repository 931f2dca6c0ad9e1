//! # weir-runner-core
//!
//! Execution building blocks every Weir runner shares, in the manner of Beam's runners-core:
//! the element representation on Arrow ([`batch`]), vectorized expression evaluation
//! ([`eval`]), rows ↔ Arrow conversion ([`convert`]), window assignment and merging
//! ([`window`]), trigger state machines ([`trigger`]), combiners ([`combine`]), keyed state
//! and timers ([`state`]), the per-key-and-window reduce logic that fires panes ([`reduce`]),
//! operators with explicit hooks ([`operator`]) and built-in sources and sinks ([`io`]).
//!
//! Runners differ only in *when* they call these pieces (per record, per micro-batch) and
//! in how they make state durable.

pub mod batch;
pub mod combine;
pub mod convert;
pub mod error;
pub mod eval;
pub mod io;
pub mod operator;
pub mod reduce;
pub mod schedule;
pub mod snapshot;
pub mod state;
pub mod trigger;
pub mod window;

pub use error::{ExecError, ExecResult};
