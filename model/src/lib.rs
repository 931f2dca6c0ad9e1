//! # weir-model
//!
//! The runner-neutral pipeline model of Weir: schemas, expressions, windowing strategies,
//! triggers, transforms, source and sink contracts, the pipeline graph with its canonical
//! JSON form, pipeline files, requirements and capabilities, and the [`runner::Runner`] trait.
//!
//! Nothing here executes data; runners (built on `weir-runner-core`) do. A pipeline is
//! built either with the Rust SDK ([`sdk`]) or from a pipeline file ([`mod@file`]); both produce
//! the same [`pipeline::Pipeline`], which [`plan::plan`] validates and annotates with a
//! schema and windowing strategy per collection.

pub mod error;
pub mod expr;
pub mod file;
pub mod io;
pub mod pipeline;
pub mod plan;
pub mod requirements;
pub mod runner;
pub mod schema;
pub mod sdk;
pub mod time;
pub mod transform;
pub mod udf;
pub mod window;

pub use error::{ModelError, Result};
pub use expr::Expr;
pub use pipeline::{Pipeline, TransformNode};
pub use plan::{plan, Plan};
pub use schema::{DataType, Field, Schema};
pub use time::{Duration, Timestamp};
