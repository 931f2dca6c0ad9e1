//! [`PipelineBuilder`] and the shared graph that every handle of one pipeline refers to.

use super::collection::Collection;
use super::infer::{infer_schema, rows_from_values};
use super::typed::{schema_of, to_rows, PCollection};
use crate::error::Result;
use crate::io::{BadRecordPolicy, FileFormat, SourceSpec};
use crate::pipeline::{Pipeline, TransformNode};
use crate::plan::Plan;
use crate::schema::{DataType, Field, Schema};
use crate::transform::Transform;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

/// One output of a node: the main output (`tag == None`) or a side output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Port {
    /// Index of the producing node in [`Graph::nodes`].
    pub node: usize,
    /// Side output tag.
    pub tag: Option<String>,
}

/// A node being built. Inputs refer to nodes by index so names can be settled at the end.
#[derive(Debug)]
struct Draft {
    explicit_name: Option<String>,
    inputs: Vec<Port>,
    transform: Transform,
    parallelism: Option<usize>,
}

/// The pipeline under construction, shared by the builder and every handle.
#[derive(Debug)]
pub(crate) struct Graph {
    name: Option<String>,
    nodes: Vec<Draft>,
}

/// The graph as handles hold it. Borrows never outlive one SDK method and no user code runs
/// while the graph is borrowed, so the `RefCell` cannot panic.
pub(crate) type SharedGraph = Rc<RefCell<Graph>>;

impl Graph {
    /// Adds a node; returns its index.
    pub(crate) fn add(&mut self, inputs: Vec<Port>, transform: Transform) -> usize {
        self.nodes.push(Draft {
            explicit_name: None,
            inputs,
            transform,
            parallelism: None,
        });
        self.nodes.len() - 1
    }

    pub(crate) fn set_name(&mut self, node: usize, name: String) {
        self.nodes[node].explicit_name = Some(name);
    }

    pub(crate) fn set_parallelism(&mut self, node: usize, parallelism: usize) {
        self.nodes[node].parallelism = Some(parallelism);
    }

    /// The settled name of every node: explicit names as given, the others named after their
    /// transform type and made unique (`Filter`, `Filter_2`, ... as
    /// [`Pipeline::unique_name`] does), never taking a name given explicitly.
    pub(crate) fn node_names(&self) -> Vec<String> {
        let mut taken: HashSet<String> = self
            .nodes
            .iter()
            .filter_map(|n| n.explicit_name.clone())
            .collect();
        self.nodes
            .iter()
            .map(|n| match &n.explicit_name {
                Some(name) => name.clone(),
                None => {
                    let name = unique_name(n.transform.type_name(), &taken);
                    taken.insert(name.clone());
                    name
                }
            })
            .collect()
    }

    /// The settled name of a collection.
    pub(crate) fn collection_name(&self, port: &Port) -> String {
        port_name(&self.node_names(), port)
    }

    pub(crate) fn to_pipeline(&self) -> Pipeline {
        let names = self.node_names();
        let mut pipeline = Pipeline::new();
        pipeline.name = self.name.clone();
        pipeline.transforms = self
            .nodes
            .iter()
            .zip(&names)
            .map(|(n, name)| TransformNode {
                name: name.clone(),
                inputs: n.inputs.iter().map(|p| port_name(&names, p)).collect(),
                transform: n.transform.clone(),
                parallelism: n.parallelism,
            })
            .collect();
        pipeline
    }

    /// The part of the pipeline `node` depends on: the node and its transitive inputs, with
    /// names settled over the whole graph.
    pub(crate) fn to_pipeline_upto(&self, node: usize) -> Pipeline {
        let mut keep = vec![false; self.nodes.len()];
        let mut stack = vec![node];
        while let Some(n) = stack.pop() {
            if !keep[n] {
                keep[n] = true;
                stack.extend(self.nodes[n].inputs.iter().map(|p| p.node));
            }
        }
        let mut pipeline = self.to_pipeline();
        pipeline.transforms = pipeline
            .transforms
            .into_iter()
            .zip(keep)
            .filter_map(|(t, k)| k.then_some(t))
            .collect();
        pipeline
    }
}

fn port_name(names: &[String], port: &Port) -> String {
    match &port.tag {
        None => names[port.node].clone(),
        Some(tag) => format!("{}.{tag}", names[port.node]),
    }
}

/// `base`, or `base_2`, `base_3`, ... : the first not in `taken`.
fn unique_name(base: &str, taken: &HashSet<String>) -> String {
    if !taken.contains(base) {
        return base.to_string();
    }
    (2..)
        .map(|i| format!("{base}_{i}"))
        .find(|n| !taken.contains(n))
        .expect("an unused name exists")
}

/// Builds a [`Pipeline`] with typed Rust calls; the entry point of the SDK.
///
/// The builder and every [`Collection`] made from it share one graph through an
/// `Rc<RefCell<..>>`. That is the most ergonomic of the designs we considered:
///
/// * handles chain like Beam's (`clicks.filter(..).combine(..).write_json(..)`) without a
///   `&mut builder` argument on every call, which would also stop a user from holding two
///   handles of one pipeline at once;
/// * handles are cheap to clone, so fanning a collection out to several consumers is natural;
/// * handles refer to nodes by identity, so [`Collection::named`] can rename a node at any time
///   without breaking other handles.
///
/// The price is that handles are not `Send`: build a pipeline on one thread, then send the
/// finished [`Pipeline`] (which is `Send`) wherever it should run. Handles of two different
/// builders must not be mixed; methods that take another collection panic if they are.
///
/// # Examples
///
/// ```
/// use weir_model::sdk::prelude::*;
///
/// let p = PipelineBuilder::new("evens");
/// p.generate_sequence(0, Some(10))
///     .filter(col("value").rem(lit(2)).eq(lit(0)))
///     .write_memory("evens");
/// let pipeline = p.build();
/// assert_eq!(pipeline.transforms.len(), 3);
/// assert_eq!(pipeline.transforms[1].name, "Filter");
/// p.plan()?;
/// # Ok::<(), weir_model::ModelError>(())
/// ```
#[derive(Debug)]
pub struct PipelineBuilder {
    graph: SharedGraph,
}

impl PipelineBuilder {
    /// An empty pipeline called `name` (used in reports and job ids).
    pub fn new(name: impl Into<String>) -> Self {
        PipelineBuilder {
            graph: Rc::new(RefCell::new(Graph {
                name: Some(name.into()),
                nodes: Vec::new(),
            })),
        }
    }

    /// The pipeline built so far, with every node's name settled. The builder stays usable.
    pub fn build(&self) -> Pipeline {
        self.graph.borrow().to_pipeline()
    }

    /// Builds and validates the pipeline ([`crate::plan::plan`]).
    pub fn plan(&self) -> Result<Plan> {
        crate::plan::plan(&self.build())
    }

    /// Adds a source node.
    fn source(&self, transform: Transform) -> Collection {
        let node = self.graph.borrow_mut().add(Vec::new(), transform);
        Collection::new(self.graph.clone(), Port { node, tag: None })
    }

    /// Reads `source` with a declared `schema`; malformed records fail the run or go to a
    /// dead-letter side output (see [`BadRecordPolicy`]). The general form of every `read_*`
    /// method, e.g. to watch a directory or route bad records:
    ///
    /// ```
    /// # use weir_model::sdk::prelude::*;
    /// use weir_model::io::{BadRecordPolicy, FileFormat, SourceSpec};
    /// # let p = PipelineBuilder::new("p");
    /// # let schema = weir_model::sdk::text_schema();
    /// let source = SourceSpec::Files {
    ///     path: "in/".into(),
    ///     format: FileFormat::JsonLines,
    ///     watch: true,
    ///     poll_interval: Some(Duration::from_secs(1)),
    ///     rate: None,
    /// };
    /// let rows = p.read(source, schema, BadRecordPolicy::DeadLetter { tag: "bad".into() });
    /// rows.side_output("bad").log();
    /// ```
    pub fn read(
        &self,
        source: SourceSpec,
        schema: Schema,
        bad_records: BadRecordPolicy,
    ) -> Collection {
        self.source(Transform::Read {
            source,
            schema,
            bad_records,
        })
    }

    /// Rows given inline (Beam's Create), with a schema inferred from them
    /// ([`infer_schema`](super::infer_schema)). A value that is not a JSON object becomes the
    /// row `{"element": value}`, as in Beam YAML.
    ///
    /// Fails when a column's type cannot be inferred (null in every row, or two kinds of
    /// values); give the schema with [`create_with_schema`](Self::create_with_schema) then.
    pub fn create(&self, rows: impl IntoIterator<Item = serde_json::Value>) -> Result<Collection> {
        let elements = rows_from_values(rows);
        let schema = infer_schema(&elements)?;
        Ok(self.create_with_schema(elements, schema))
    }

    /// Rows given inline, with a declared schema. Values that are not JSON objects become
    /// `{"element": value}`.
    pub fn create_with_schema(
        &self,
        rows: impl IntoIterator<Item = serde_json::Value>,
        schema: Schema,
    ) -> Collection {
        let elements = rows_from_values(rows);
        self.read(
            SourceSpec::Create { elements },
            schema,
            BadRecordPolicy::Fail,
        )
    }

    /// Typed values given inline: each is serialized to a JSON object and the schema is
    /// derived from `T` ([`schema_of`](super::schema_of)).
    pub fn create_typed<T: Serialize + DeserializeOwned>(
        &self,
        elements: &[T],
    ) -> Result<PCollection<T>> {
        let schema = schema_of::<T>()?;
        let elements = to_rows(elements)?;
        Ok(PCollection::new(self.read(
            SourceSpec::Create { elements },
            schema,
            BadRecordPolicy::Fail,
        )))
    }

    fn files(path: impl Into<String>, format: FileFormat) -> SourceSpec {
        SourceSpec::Files {
            path: path.into(),
            format,
            watch: false,
            poll_interval: None,
            rate: None,
        }
    }

    /// JSON lines from a file, or from every file of a directory in name order.
    pub fn read_json(&self, path: impl Into<String>, schema: Schema) -> Collection {
        self.read(
            Self::files(path, FileFormat::JsonLines),
            schema,
            BadRecordPolicy::Fail,
        )
    }

    /// JSON lines read into typed values; the schema is derived from `T`.
    pub fn read_json_typed<T: Serialize + DeserializeOwned>(
        &self,
        path: impl Into<String>,
    ) -> Result<PCollection<T>> {
        Ok(PCollection::new(self.read_json(path, schema_of::<T>()?)))
    }

    /// CSV with a header line from a file or a directory.
    pub fn read_csv(&self, path: impl Into<String>, schema: Schema) -> Collection {
        self.read(
            Self::files(path, FileFormat::Csv),
            schema,
            BadRecordPolicy::Fail,
        )
    }

    /// CSV read into typed values; the schema is derived from `T`.
    pub fn read_csv_typed<T: Serialize + DeserializeOwned>(
        &self,
        path: impl Into<String>,
    ) -> Result<PCollection<T>> {
        Ok(PCollection::new(self.read_csv(path, schema_of::<T>()?)))
    }

    /// Plain text, one row per line in a single `line` column ([`text_schema`]).
    pub fn read_text(&self, path: impl Into<String>) -> Collection {
        self.read(
            Self::files(path, FileFormat::Text),
            text_schema(),
            BadRecordPolicy::Fail,
        )
    }

    /// Rows `{value: i}` for `i` in `start..start + count`, or unbounded when `count` is
    /// `None` ([`sequence_schema`]). For a rate or several partitions use
    /// [`read`](Self::read) with [`SourceSpec::Sequence`].
    pub fn generate_sequence(&self, start: i64, count: Option<u64>) -> Collection {
        let source = SourceSpec::Sequence {
            start,
            count,
            rate: None,
            partitions: 1,
        };
        self.read(source, sequence_schema(), BadRecordPolicy::Fail)
    }

    /// An in-memory test source registered by `name` in the running process.
    pub fn read_memory(&self, name: impl Into<String>, schema: Schema) -> Collection {
        self.read(
            SourceSpec::Memory { name: name.into() },
            schema,
            BadRecordPolicy::Fail,
        )
    }

    /// An in-memory test source read into typed values; the schema is derived from `T`.
    pub fn read_memory_typed<T: Serialize + DeserializeOwned>(
        &self,
        name: impl Into<String>,
    ) -> Result<PCollection<T>> {
        Ok(PCollection::new(self.read_memory(name, schema_of::<T>()?)))
    }
}

/// Schema of [`PipelineBuilder::generate_sequence`]: one int64 column `value`.
pub fn sequence_schema() -> Schema {
    Schema::new(vec![Field::new("value", DataType::Int64)])
}

/// Schema of [`PipelineBuilder::read_text`]: one string column `line`.
pub fn text_schema() -> Schema {
    Schema::new(vec![Field::new("line", DataType::String)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_follow_pipeline_unique_name() {
        let mut p = Pipeline::new();
        let mut taken = HashSet::new();
        for _ in 0..4 {
            let expected = p.unique_name("Filter");
            assert_eq!(unique_name("Filter", &taken), expected);
            taken.insert(expected.clone());
            p.add(expected, Vec::new(), Transform::Flatten);
        }
    }
}
