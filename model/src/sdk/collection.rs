//! [`Collection`], the untyped handle, and [`Done`], the handle of a sink.

use super::builder::{Port, SharedGraph};
use super::typed::{check_fits, schema_of, PCollection};
use crate::error::{ModelError, Result};
use crate::expr::Expr;
use crate::io::{BadRecordPolicy, FileFormat, SinkMetadata, SinkSpec};
use crate::schema::Schema;
use crate::time::Duration;
use crate::transform::{Aggregation, JoinKind, Transform};
use crate::udf::{BatchFn, DoFn, StatefulFn};
use crate::window::{WatermarkStrategy, WindowingStrategy};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::rc::Rc;

/// Collects names (`["user", "page"]`, a `Vec<String>`, ...) into owned strings.
pub(crate) fn strings<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

/// An untyped handle on one collection of a pipeline being built: a node's main output or one
/// of its side outputs.
///
/// Each transform method adds one node reading this collection and returns the handle of the
/// node's main output; the node is named after its transform type unless [`named`](Self::named)
/// is called on the result. Handles are cheap to clone; using one handle twice fans the
/// collection out. See [`PipelineBuilder`](super::PipelineBuilder) for why handles share the
/// builder's graph.
///
/// # Panics
///
/// Methods that take other collections (`join`, `co_group_by_key`, `flatten`) panic when one
/// belongs to a different [`PipelineBuilder`](super::PipelineBuilder).
#[derive(Clone)]
pub struct Collection {
    graph: SharedGraph,
    port: Port,
}

impl fmt::Debug for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Collection").field(&self.name()).finish()
    }
}

impl Collection {
    pub(crate) fn new(graph: SharedGraph, port: Port) -> Self {
        Collection { graph, port }
    }

    /// Adds a node reading `self` then `others`, returning its main output.
    fn apply_with(&self, others: &[&Collection], transform: Transform) -> Collection {
        let mut inputs = vec![self.port.clone()];
        for other in others {
            assert!(
                Rc::ptr_eq(&self.graph, &other.graph),
                "collection `{}` belongs to a different PipelineBuilder than `{}`",
                other.name(),
                self.name()
            );
            inputs.push(other.port.clone());
        }
        let node = self.graph.borrow_mut().add(inputs, transform);
        Collection::new(self.graph.clone(), Port { node, tag: None })
    }

    fn apply(&self, transform: Transform) -> Collection {
        self.apply_with(&[], transform)
    }

    fn sink(&self, transform: Transform) -> Done {
        let out = self.apply(transform);
        Done {
            graph: out.graph,
            node: out.port.node,
        }
    }

    /// The collection's name: the producing node's name, plus `.<tag>` for a side output.
    /// Default names are settled when the pipeline is built, so a later explicit name equal
    /// to this default one moves this one to `<name>_2`.
    pub fn name(&self) -> String {
        self.graph.borrow().collection_name(&self.port)
    }

    /// Gives the node that produced this collection an explicit name (for a side output: the
    /// node that produced it) and returns the same handle. A name must be unique and contain
    /// no `.`; [`plan`](super::PipelineBuilder::plan) reports duplicates.
    pub fn named(&self, name: impl Into<String>) -> Collection {
        self.graph
            .borrow_mut()
            .set_name(self.port.node, name.into());
        self.clone()
    }

    /// Sets the producing node's parallelism, for runners that run subtasks in parallel.
    pub fn with_parallelism(&self, parallelism: usize) -> Collection {
        self.graph
            .borrow_mut()
            .set_parallelism(self.port.node, parallelism);
        self.clone()
    }

    /// The side output `tag` of the node that produced this collection: collection
    /// `<node>.<tag>` (dead letters of a read or ParDo, late data of an aggregation, a
    /// [`DoFn`]'s tagged outputs).
    pub fn side_output(&self, tag: impl Into<String>) -> Collection {
        Collection::new(
            self.graph.clone(),
            Port {
                node: self.port.node,
                tag: Some(tag.into()),
            },
        )
    }

    /// The collection's schema, found by planning the part of the pipeline it depends on (so
    /// an unrelated branch that does not plan yet does not matter).
    pub fn schema(&self) -> Result<Schema> {
        let pipeline = self.graph.borrow().to_pipeline_upto(self.port.node);
        let name = self.name();
        let plan = crate::plan::plan(&pipeline)?;
        plan.collection(&name)
            .map(|c| c.schema.clone())
            .ok_or_else(|| {
                ModelError::transform(
                    crate::pipeline::split_collection(&name).0,
                    format!("has no output `{name}`"),
                )
            })
    }

    /// This collection as a typed [`PCollection<T>`], after checking that its schema fits `T`:
    /// every field of `T` needs a column of a matching type (an `Option` field may be missing;
    /// an `i64` field also reads a timestamp column). The error names the column.
    pub fn typed<T: Serialize + DeserializeOwned>(&self) -> Result<PCollection<T>> {
        let expected = schema_of::<T>()?;
        let actual = self.schema()?;
        check_fits(
            &actual,
            &expected,
            &format!("collection `{}`", self.name()),
            std::any::type_name::<T>(),
        )?;
        Ok(PCollection::new(self.clone()))
    }

    // ---- element-wise ----

    /// Keeps rows for which `predicate` is true (null counts as false).
    pub fn filter(&self, predicate: Expr) -> Collection {
        self.apply(Transform::Filter { predicate })
    }

    /// Computes new columns, in order, dropping every other column (Beam YAML's MapToFields).
    pub fn map_fields<I, S>(&self, fields: I) -> Collection
    where
        I: IntoIterator<Item = (S, Expr)>,
        S: Into<String>,
    {
        let fields = fields.into_iter().map(|(n, e)| (n.into(), e)).collect();
        self.apply(Transform::Project {
            fields,
            append: false,
        })
    }

    /// Keeps every column and adds (or replaces) column `name`.
    pub fn with_column(&self, name: impl Into<String>, value: Expr) -> Collection {
        self.with_columns([(name.into(), value)])
    }

    /// Keeps every column and adds (or replaces) several, in order.
    pub fn with_columns<I, S>(&self, fields: I) -> Collection
    where
        I: IntoIterator<Item = (S, Expr)>,
        S: Into<String>,
    {
        let fields = fields.into_iter().map(|(n, e)| (n.into(), e)).collect();
        self.apply(Transform::Project {
            fields,
            append: true,
        })
    }

    /// One row per item of the list column `field` (Beam YAML's Explode).
    pub fn explode(&self, field: impl Into<String>) -> Collection {
        self.apply(Transform::Explode {
            field: field.into(),
        })
    }

    /// Applies an element-wise user function (ParDo); an error from it fails the run. Its
    /// tagged outputs are [`side_output`](Self::side_output)s of the result.
    pub fn pardo(&self, func: impl DoFn + 'static) -> Collection {
        self.apply(Transform::ParDo {
            func: Box::new(func),
            on_error: BadRecordPolicy::Fail,
        })
    }

    /// Like [`pardo`](Self::pardo), but a row the function fails on goes to the dead-letter
    /// side output `tag` instead of failing the run.
    pub fn pardo_dead_letter(
        &self,
        func: impl DoFn + 'static,
        tag: impl Into<String>,
    ) -> Collection {
        let on_error = BadRecordPolicy::DeadLetter { tag: tag.into() };
        self.apply(Transform::ParDo {
            func: Box::new(func),
            on_error,
        })
    }

    /// Applies a batch-wise user function (Arrow in, Arrow out).
    pub fn map_batches(&self, func: impl BatchFn + 'static) -> Collection {
        self.apply(Transform::MapBatches {
            func: Box::new(func),
        })
    }

    // ---- event time and windowing ----

    /// Sets each row's event time (`timestamp` is a timestamp or int64 milliseconds) and how
    /// the watermark follows it.
    pub fn assign_timestamps(&self, timestamp: Expr, watermark: WatermarkStrategy) -> Collection {
        self.apply(Transform::AssignTimestamps {
            timestamp,
            watermark,
        })
    }

    /// Sets the windowing strategy: a [`WindowingStrategy`] or a [`Windowing`](super::Windowing)
    /// built with [`fixed`](super::fixed), [`sliding`](super::sliding), [`sessions`](super::sessions), ...
    pub fn window_into(&self, windowing: impl Into<WindowingStrategy>) -> Collection {
        self.apply(Transform::WindowInto {
            windowing: windowing.into(),
        })
    }

    // ---- aggregations ----

    /// Groups rows by `keys` per window: the keys plus a `values` list of the other columns.
    pub fn group_by_key<I, S>(&self, keys: I) -> Collection
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.apply(Transform::GroupByKey {
            keys: strings(keys),
        })
    }

    /// Aggregates rows per `group_by` key and window: the keys, then one column per
    /// aggregation (built with [`agg`](super::agg)).
    pub fn combine<K, S, A>(&self, group_by: K, aggregations: A) -> Collection
    where
        K: IntoIterator<Item = S>,
        S: Into<String>,
        A: IntoIterator<Item = Aggregation>,
    {
        let aggregations = aggregations.into_iter().collect();
        self.apply(Transform::Combine {
            group_by: strings(group_by),
            aggregations,
        })
    }

    /// Aggregates all rows of each window (Combine.globally).
    pub fn combine_globally(
        &self,
        aggregations: impl IntoIterator<Item = Aggregation>,
    ) -> Collection {
        self.combine(Vec::<String>::new(), aggregations)
    }

    /// Joins with `other` on equal `on` columns (present under the same names in both) per
    /// window. Output: the keys once, then each side's other columns, prefixed `<input>_` when
    /// names clash.
    pub fn join<K, S>(&self, other: &Collection, on: K, kind: JoinKind) -> Collection
    where
        K: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let on = strings(on);
        self.join_on(other, on.clone(), on, kind)
    }

    /// Joins with `other` where this side's `left_on` columns equal the other's `right_on`.
    pub fn join_on<L, R, S, T>(
        &self,
        other: &Collection,
        left_on: L,
        right_on: R,
        kind: JoinKind,
    ) -> Collection
    where
        L: IntoIterator<Item = S>,
        R: IntoIterator<Item = T>,
        S: Into<String>,
        T: Into<String>,
    {
        self.apply_with(
            &[other],
            Transform::Join {
                on: vec![strings(left_on), strings(right_on)],
                kind,
            },
        )
    }

    /// Groups this and `others` by the `keys` columns (the same names in every input) per
    /// window: the keys plus one list column per input.
    pub fn co_group_by_key<'a, C, K, S>(&self, others: C, keys: K) -> Collection
    where
        C: IntoIterator<Item = &'a Collection>,
        K: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let others: Vec<&Collection> = others.into_iter().collect();
        let keys = strings(keys);
        let per_input = vec![keys; others.len() + 1];
        self.co_group_by_key_on(others, per_input)
    }

    /// Like [`co_group_by_key`](Self::co_group_by_key), with key columns given per input (this
    /// one first).
    pub fn co_group_by_key_on<'a, C, P, K, S>(&self, others: C, keys_per_input: P) -> Collection
    where
        C: IntoIterator<Item = &'a Collection>,
        P: IntoIterator<Item = K>,
        K: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let others: Vec<&Collection> = others.into_iter().collect();
        let keys = keys_per_input.into_iter().map(strings).collect();
        self.apply_with(&others, Transform::CoGroupByKey { keys })
    }

    /// Concatenates this collection with `others` (same schema and windowing).
    pub fn flatten<'a>(&self, others: impl IntoIterator<Item = &'a Collection>) -> Collection {
        let others: Vec<&Collection> = others.into_iter().collect();
        self.apply_with(&others, Transform::Flatten)
    }

    /// Keeps the `n` rows with the largest `order_by` per `group_by` key and window.
    pub fn top_n<K, S>(&self, group_by: K, order_by: impl Into<String>, n: usize) -> Collection
    where
        K: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.apply(Transform::TopN {
            group_by: strings(group_by),
            order_by: order_by.into(),
            n,
            descending: true,
        })
    }

    /// Keeps the `n` rows with the smallest `order_by` per `group_by` key and window.
    pub fn bottom_n<K, S>(&self, group_by: K, order_by: impl Into<String>, n: usize) -> Collection
    where
        K: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.apply(Transform::TopN {
            group_by: strings(group_by),
            order_by: order_by.into(),
            n,
            descending: false,
        })
    }

    // ---- stateful ----

    /// Applies a stateful function to rows keyed by `keys` (stateful ParDo with keyed state
    /// and timers).
    pub fn stateful<K, S>(&self, keys: K, func: impl StatefulFn + 'static) -> Collection
    where
        K: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.apply(Transform::StatefulParDo {
            keys: strings(keys),
            func: Box::new(func),
        })
    }

    /// Keeps the first row per `keys`, forgetting a key `ttl` of event time after its first
    /// row (never when `None`).
    pub fn dedup<K, S>(&self, keys: K, ttl: Option<Duration>) -> Collection
    where
        K: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.apply(Transform::Dedup {
            keys: strings(keys),
            ttl,
        })
    }

    // ---- sinks ----

    /// Writes to `sink`, with the window/pane metadata columns chosen by `metadata`. The
    /// general form of every `write_*` method.
    pub fn write(&self, sink: SinkSpec, metadata: SinkMetadata) -> Done {
        self.sink(Transform::Write { sink, metadata })
    }

    fn write_files(&self, path: impl Into<String>, format: FileFormat) -> Done {
        self.write(
            SinkSpec::Files {
                path: path.into(),
                format,
            },
            SinkMetadata::default(),
        )
    }

    /// Writes JSON lines: one file when `path` has an extension and the input is bounded,
    /// otherwise a directory of part files.
    pub fn write_json(&self, path: impl Into<String>) -> Done {
        self.write_files(path, FileFormat::JsonLines)
    }

    /// Writes CSV with a header line (file or directory, as [`write_json`](Self::write_json)).
    pub fn write_csv(&self, path: impl Into<String>) -> Done {
        self.write_files(path, FileFormat::Csv)
    }

    /// Writes plain text (file or directory, as [`write_json`](Self::write_json)).
    pub fn write_text(&self, path: impl Into<String>) -> Done {
        self.write_files(path, FileFormat::Text)
    }

    /// Writes to an in-memory test sink registered by `name`.
    pub fn write_memory(&self, name: impl Into<String>) -> Done {
        self.write(
            SinkSpec::Memory {
                name: name.into(),
                guarantee: None,
            },
            SinkMetadata::default(),
        )
    }

    /// Prints rows to standard output (Beam YAML's LogForTesting).
    pub fn log(&self) -> Done {
        self.write(SinkSpec::Stdout, SinkMetadata::default())
    }

    /// Fails the run unless this collection equals `rows` as a multiset.
    pub fn assert_equal(&self, rows: impl IntoIterator<Item = serde_json::Value>) -> Done {
        self.sink(Transform::AssertEqual {
            elements: rows.into_iter().collect(),
        })
    }
}

/// The handle of a node without outputs: a sink or an assertion (Beam's `PDone`).
#[derive(Clone)]
pub struct Done {
    graph: SharedGraph,
    node: usize,
}

impl fmt::Debug for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Done").field(&self.name()).finish()
    }
}

impl Done {
    /// Gives the node an explicit name.
    pub fn named(&self, name: impl Into<String>) -> Done {
        self.graph.borrow_mut().set_name(self.node, name.into());
        self.clone()
    }

    /// The node's name (settled when the pipeline is built, see [`Collection::name`]).
    pub fn name(&self) -> String {
        self.graph.borrow().collection_name(&Port {
            node: self.node,
            tag: None,
        })
    }
}
