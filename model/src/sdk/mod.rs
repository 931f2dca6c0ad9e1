//! The Rust SDK: builds the same [`Pipeline`](crate::Pipeline) IR as a pipeline file, in the
//! style of Beam's Java and Python SDKs.
//!
//! # Overview
//!
//! * [`PipelineBuilder`] owns the pipeline being built. Its source methods (`create`,
//!   `read_json`, `generate_sequence`, ...) return a [`Collection`]; [`PipelineBuilder::build`]
//!   returns the [`Pipeline`](crate::Pipeline) and [`PipelineBuilder::plan`] validates it.
//! * [`Collection`] is an untyped handle on one collection. Its methods are named after the
//!   transforms (`filter`, `map_fields`, `window_into`, `combine`, `join`, `write_json`, ...)
//!   and each adds one node and returns the handle of that node's output. Sinks return
//!   [`Done`].
//! * [`PCollection<T>`] is a typed handle: a [`Collection`] whose schema is derived from a
//!   serde type `T` (see [`schema_of`]). Transforms that keep the schema (`filter`,
//!   `assign_timestamps`, `window_into`, `dedup`, `top_n`, `flatten`) keep the type; every other
//!   [`Collection`] method is reachable through `Deref` and returns an untyped handle, which
//!   [`Collection::typed`] turns back into a typed one after checking the schema fits.
//! * [`to_record_batch`] and [`from_record_batch`] convert typed values to and from Arrow for
//!   users and runners.
//! * Windowing is built with [`fixed`], [`sliding`], [`sessions`] (and [`global`],
//!   [`sessions_with_gap`], [`custom_windows`]) followed by [`Windowing`]'s options; triggers
//!   with the functions of [`trigger`]; aggregations with the functions of [`agg`].
//!
//! # Naming
//!
//! Every node is named after its transform type (`Filter`, `Combine`, `WriteToJson`, ...),
//! made unique with the scheme of [`Pipeline::unique_name`](crate::Pipeline::unique_name)
//! (`Filter`, `Filter_2`, ...). [`Collection::named`] (and [`PCollection::named`],
//! [`Done::named`]) give the node that produced a handle an explicit name instead. Handles
//! refer to nodes by identity, not by name, so naming a node later never breaks a handle;
//! explicit names take precedence over default ones, and names are settled when the
//! pipeline is built. The main output of a node is the collection named like the node; a side
//! output is `<node>.<tag>` ([`Collection::side_output`]).
//!
//! # Event time in typed structs
//!
//! An event time is an `i64` field holding milliseconds since the Unix epoch (the same unit
//! as Weir's [`Timestamp`](crate::Timestamp)); pass it to
//! [`assign_timestamps`](PCollection::assign_timestamps) as `col("ts")`. A timestamp column
//! produced by a runner also reads back into an `i64` field.
//!
//! # Examples
//!
//! A windowed click count: clicks are counted per user in fixed one-minute windows that accept
//! data up to ten seconds late; clicks later than that go to the `late` side output of the
//! count.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use weir_model::sdk::prelude::*;
//!
//! #[derive(Serialize, Deserialize)]
//! struct Click {
//!     user: String,
//!     /// Event time, milliseconds since the epoch.
//!     ts: i64,
//! }
//!
//! let p = PipelineBuilder::new("click-counts");
//! let clicks = p.create_typed(&[
//!     Click { user: "ann".into(), ts: 1_000 },
//!     Click { user: "bob".into(), ts: 2_000 },
//!     Click { user: "ann".into(), ts: 61_000 },
//! ])?;
//! let counts = clicks
//!     .assign_timestamps(col("ts"), WatermarkStrategy::bounded(Duration::from_secs(5)))
//!     .window_into(
//!         fixed(Duration::from_mins(1))
//!             .allowed_lateness(Duration::from_secs(10))
//!             .late_to("late"),
//!     )
//!     .combine(["user"], [agg::count("clicks")])
//!     .named("CountClicks");
//! counts.write_json("out/click_counts.jsonl");
//! counts.side_output("late").log().named("LogLateClicks");
//!
//! let plan = p.plan()?;
//! assert_eq!(plan.collection("CountClicks").unwrap().schema.names(), ["user", "clicks"]);
//! assert!(plan.collection("CountClicks.late").is_some());
//! # Ok::<(), weir_model::ModelError>(())
//! ```

pub mod agg;
mod builder;
mod collection;
mod infer;
pub mod trigger;
mod typed;
mod windowing;

pub use builder::{sequence_schema, text_schema, PipelineBuilder};
pub use collection::{Collection, Done};
pub use infer::infer_schema;
pub use typed::{from_record_batch, schema_of, to_record_batch, PCollection};
pub use windowing::{
    custom_windows, fixed, global, sessions, sessions_with_gap, sliding, Windowing,
};

/// Everything a pipeline author usually needs: `use weir_model::sdk::prelude::*;`.
pub mod prelude {
    pub use super::{
        agg, custom_windows, fixed, global, sessions, sessions_with_gap, sliding, trigger,
        Collection, Done, PCollection, PipelineBuilder, Windowing,
    };
    pub use crate::expr::{col, lit, Expr};
    pub use crate::time::Duration;
    pub use crate::transform::JoinKind;
    pub use crate::window::{Trigger, WatermarkStrategy, WindowingStrategy};
}
