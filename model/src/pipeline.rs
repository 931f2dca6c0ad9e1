//! The pipeline graph: named transform nodes wired by collection names. The same value comes
//! out of the Rust SDK and of a pipeline file, and serializes to the canonical JSON form.

use crate::error::{ModelError, Result};
use crate::transform::Transform;
use serde::{Deserialize, Serialize};

/// Version of the canonical JSON form. Bumped when the form changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

/// One transform in the graph.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransformNode {
    /// Unique name. The node's main output collection has this name; side outputs are
    /// `<name>.<tag>`.
    pub name: String,
    /// Input collections, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// What the node does.
    pub transform: Transform,
    /// Parallelism override for runners that run subtasks in parallel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<usize>,
}

/// A pipeline: a graph of transforms.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pipeline {
    /// Format version of the canonical JSON form ([`FORMAT_VERSION`]).
    pub weir_pipeline: u32,
    /// Optional name, used in reports and job ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The transforms.
    pub transforms: Vec<TransformNode>,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline::new()
    }
}

impl Pipeline {
    /// An empty pipeline.
    pub fn new() -> Self {
        Pipeline {
            weir_pipeline: FORMAT_VERSION,
            name: None,
            transforms: Vec::new(),
        }
    }

    /// Adds a node; returns the name of its main output collection.
    pub fn add(
        &mut self,
        name: impl Into<String>,
        inputs: Vec<String>,
        transform: Transform,
    ) -> String {
        let name = name.into();
        self.transforms.push(TransformNode {
            name: name.clone(),
            inputs,
            transform,
            parallelism: None,
        });
        name
    }

    /// A name not used by any node yet, derived from `base` (`base`, `base_2`, ...).
    pub fn unique_name(&self, base: &str) -> String {
        if !self.transforms.iter().any(|t| t.name == base) {
            return base.to_string();
        }
        (2..)
            .map(|i| format!("{base}_{i}"))
            .find(|n| !self.transforms.iter().any(|t| &t.name == n))
            .unwrap()
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&TransformNode> {
        self.transforms.iter().find(|t| t.name == name)
    }

    /// Canonical JSON (pretty, stable field order).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| ModelError::Json(e.to_string()))
    }

    /// Reads the canonical JSON form of a pipeline, or the `pipeline` member of a plan.
    pub fn from_json(text: &str) -> Result<Pipeline> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ModelError::Json(e.to_string()))?;
        let pipeline_value = match value.get("pipeline") {
            Some(p) if value.get("weir_plan").is_some() => p.clone(),
            _ => value,
        };
        let version = pipeline_value.get("weir_pipeline").and_then(|v| v.as_u64());
        match version {
            Some(v) if v == FORMAT_VERSION as u64 => {}
            Some(v) => {
                return Err(ModelError::Json(format!(
                    "pipeline format version {v} is not supported (this Weir reads version {FORMAT_VERSION})"
                )))
            }
            None => return Err(ModelError::Json("missing `weir_pipeline` version field".into())),
        }
        serde_json::from_value(pipeline_value).map_err(|e| ModelError::Json(e.to_string()))
    }
}

/// Splits a collection name into (node, tag): `Parse.errors` → (`Parse`, Some(`errors`)).
pub fn split_collection(name: &str) -> (&str, Option<&str>) {
    match name.split_once('.') {
        Some((node, tag)) => (node, Some(tag)),
        None => (name, None),
    }
}
