//! Pipeline files: the declarative YAML form of a pipeline, following Beam YAML.
//!
//! A file holds a `pipeline:` mapping whose `transforms:` are wired either as a chain
//! (`type: chain`: each reads the previous one) or explicitly by `input:`. Each transform has
//! a `type` (Beam YAML's names: `ReadFromJson`, `Filter`, `MapToFields`, `Combine`, `Join`,
//! ...), an optional `name`, a `config` mapping, and optionally `windowing`. The result is the
//! same [`Pipeline`] the Rust SDK builds; `docs/PIPELINE_FILES.md` is the full reference.
//!
//! Every error is a [`ModelError::File`] whose location points at the offending YAML node
//! and whose message names the transform and the field. Column and type errors (an
//! expression reading a column the input lacks) are found by [`crate::plan::plan`].
//!
//! # Examples
//!
//! ```
//! use weir_model::file::parse_str;
//!
//! let pipeline = parse_str(
//!     r#"
//! pipeline:
//!   type: chain
//!   transforms:
//!     - type: Create
//!       config:
//!         elements: [{user: a, amount: 3}, {user: b, amount: 12}]
//!     - type: Filter
//!       config:
//!         keep: amount > 10
//!     - type: LogForTesting
//! "#,
//!     "example.yaml",
//! )
//! .unwrap();
//! let names: Vec<&str> = pipeline.transforms.iter().map(|t| t.name.as_str()).collect();
//! assert_eq!(names, ["Create", "Filter", "LogForTesting"]);
//! weir_model::plan(&pipeline).unwrap();
//!
//! let err = parse_str("pipeline:\n  transforms:\n    - type: Filtr\n", "bad.yaml").unwrap_err();
//! assert!(err.to_string().starts_with("bad.yaml:3:13: transform `Filtr`, field `type`: unknown transform type"));
//! ```

mod fields;
mod io;
mod pipeline;
mod resolve;
#[cfg(test)]
mod tests;
mod transforms;
mod windowing;
mod yaml;

use crate::error::{Location, ModelError, Result};
use crate::pipeline::Pipeline;
use fields::Ctx;

/// Parses pipeline-file text; `file_name` is used in error locations.
pub fn parse_str(text: &str, file_name: &str) -> Result<Pipeline> {
    let root = yaml::load(text, file_name)?;
    let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
    let ctx = Ctx {
        file: file_name,
        lines: &lines,
        transform: None,
    };
    pipeline::read(ctx, root.as_ref())
}

/// Reads and parses a pipeline file.
pub fn parse_file(path: &std::path::Path) -> Result<Pipeline> {
    let file_name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::File {
        location: Location {
            file: file_name.clone(),
            line: 1,
            column: 1,
        },
        message: format!("cannot read the pipeline file: {e}"),
    })?;
    parse_str(&text, &file_name)
}

/// The transform types pipeline files accept, in documentation order.
pub fn transform_types() -> Vec<&'static str> {
    transforms::TYPES.iter().map(|t| t.name).collect()
}
