//! The typed layer: [`PCollection<T>`] and conversions between serde types and Arrow, built on
//! `serde_arrow`.

use super::collection::{Collection, Done};
use crate::error::{ModelError, Result};
use crate::expr::Expr;
use crate::schema::{DataType, Field, Schema};
use crate::time::Duration;
use crate::window::{WatermarkStrategy, WindowingStrategy};
use arrow::datatypes::{FieldRef, Schema as ArrowSchema};
use arrow::record_batch::RecordBatch;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_arrow::schema::{SchemaLike, TracingOptions};
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

fn typed_error(e: impl fmt::Display) -> ModelError {
    ModelError::Typed(e.to_string())
}

fn type_name<T>() -> &'static str {
    std::any::type_name::<T>()
}

/// The schema of rows of type `T`: `T`'s fields traced by `serde_arrow`
/// (`SchemaLike::from_type` with default [`TracingOptions`]) and mapped to Weir types with
/// [`Schema::from_arrow`]. Narrow integers and floats widen to 64 bits, `Option<_>` fields are
/// nullable, `Vec<_>` fields are lists and nested structs are structs. An event time is an
/// `i64` field of milliseconds.
///
/// ```
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Bid { auction: u32, price: f64, bidder: Option<String>, ts: i64 }
///
/// let schema = weir_model::sdk::schema_of::<Bid>()?;
/// assert_eq!(schema.to_string(), "(auction: int64!, price: float64!, bidder: string, ts: int64!)");
/// # Ok::<(), weir_model::ModelError>(())
/// ```
pub fn schema_of<T: DeserializeOwned>() -> Result<Schema> {
    let fail = |e: &dyn fmt::Display| {
        ModelError::Typed(format!(
            "cannot derive a schema from `{}`: {e}",
            type_name::<T>()
        ))
    };
    let fields =
        Vec::<FieldRef>::from_type::<T>(TracingOptions::default()).map_err(|e| fail(&e))?;
    Schema::from_arrow(&ArrowSchema::new(fields)).map_err(|e| fail(&e))
}

/// Typed values as a [`RecordBatch`] with Weir's Arrow types (the Arrow form of
/// [`schema_of::<T>()`](schema_of): int64, float64, utf8, millisecond timestamps), so a
/// runner can use the batch as it is.
pub fn to_record_batch<T: Serialize + DeserializeOwned>(items: &[T]) -> Result<RecordBatch> {
    let schema = schema_of::<T>()?.to_arrow();
    serde_arrow::to_record_batch(schema.fields(), &items).map_err(|e| {
        ModelError::Typed(format!(
            "cannot convert `{}` values to Arrow: {e}",
            type_name::<T>()
        ))
    })
}

/// Typed values from a [`RecordBatch`]. Metadata columns (names starting with `__`: event
/// time, window, pane) and columns `T` has no field for are ignored. The error names the
/// column that is missing or of the wrong type; a null in a field that is not an `Option`
/// also fails.
pub fn from_record_batch<T: DeserializeOwned>(batch: &RecordBatch) -> Result<Vec<T>> {
    let expected = schema_of::<T>().ok();
    let arrow_schema = batch.schema();
    let keep: Vec<usize> = (0..batch.num_columns())
        .filter(|&i| {
            let name = arrow_schema.field(i).name();
            !name.starts_with("__") && expected.as_ref().is_none_or(|s| s.field(name).is_some())
        })
        .collect();
    let projected = batch.project(&keep).map_err(typed_error)?;
    if let Some(expected) = &expected {
        // Columns whose type Weir does not model are left for serde_arrow to judge.
        let actual = Schema::new(
            projected
                .schema()
                .fields()
                .iter()
                .filter_map(|f| {
                    Some(Field {
                        name: f.name().clone(),
                        data_type: DataType::from_arrow(f.data_type())?,
                        nullable: f.is_nullable(),
                    })
                })
                .collect(),
        );
        let missing_ok = |name: &str| projected.schema().field_with_name(name).is_ok();
        check_fits_with(
            &actual,
            expected,
            "the record batch",
            type_name::<T>(),
            missing_ok,
        )?;
    }
    serde_arrow::from_record_batch(&projected).map_err(|e| {
        ModelError::Typed(format!(
            "cannot convert Arrow rows to `{}`: {e}",
            type_name::<T>()
        ))
    })
}

/// Typed values as JSON objects (rows of a Create).
pub(crate) fn to_rows<T: Serialize>(items: &[T]) -> Result<Vec<serde_json::Value>> {
    items
        .iter()
        .map(|item| {
            let value = serde_json::to_value(item).map_err(typed_error)?;
            if value.is_object() {
                Ok(value)
            } else {
                Err(ModelError::Typed(format!(
                    "`{}` must serialize to a JSON object (a struct with named fields), not `{value}`",
                    type_name::<T>()
                )))
            }
        })
        .collect()
}

/// Checks that rows of schema `actual` deserialize into a type of schema `expected`.
pub(crate) fn check_fits(
    actual: &Schema,
    expected: &Schema,
    what: &str,
    type_name: &str,
) -> Result<()> {
    check_fits_with(actual, expected, what, type_name, |_| false)
}

/// [`check_fits`], where `unchecked(column)` says a column missing from `actual` exists but
/// has a type Weir does not model (left for serde_arrow to judge).
fn check_fits_with(
    actual: &Schema,
    expected: &Schema,
    what: &str,
    type_name: &str,
    unchecked: impl Fn(&str) -> bool,
) -> Result<()> {
    for want in &expected.fields {
        match actual.field(&want.name) {
            None if want.nullable || unchecked(&want.name) => {}
            None => {
                return Err(ModelError::Typed(format!(
                    "{what} does not fit `{type_name}`: it has no column `{}` ({}); its columns are {actual}",
                    want.name, want.data_type
                )))
            }
            Some(have) if !fits(&have.data_type, &want.data_type) => {
                return Err(ModelError::Typed(format!(
                    "{what} does not fit `{type_name}`: column `{}` is {}, the field is {}",
                    want.name, have.data_type, want.data_type
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Whether values of type `have` deserialize into a field traced as `want`.
fn fits(have: &DataType, want: &DataType) -> bool {
    match (have, want) {
        (a, b) if a == b => true,
        // An event-time column reads into an `i64` of milliseconds.
        (DataType::Timestamp, DataType::Int64) => true,
        (DataType::List(a), DataType::List(b)) => fits(a, b),
        (DataType::Struct(have), DataType::Struct(want)) => {
            want.iter()
                .all(|w| match have.iter().find(|h| h.name == w.name) {
                    Some(h) => fits(&h.data_type, &w.data_type),
                    None => w.nullable,
                })
        }
        _ => false,
    }
}

/// A typed handle: a [`Collection`] whose rows are values of `T` (schema [`schema_of::<T>()`](schema_of)).
///
/// Transforms that keep the schema keep the type (`filter`, `assign_timestamps`,
/// `window_into`, `dedup`, `top_n`, `bottom_n`, `flatten`, `named`). Every other
/// [`Collection`] method is available through `Deref` and returns an untyped [`Collection`];
/// call [`Collection::typed`] on it to get back to a typed handle.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use weir_model::sdk::prelude::*;
///
/// #[derive(Serialize, Deserialize)]
/// struct Order { id: i64, amount: f64 }
/// #[derive(Serialize, Deserialize)]
/// struct Total { total: f64 }
///
/// let p = PipelineBuilder::new("totals");
/// let orders: PCollection<Order> = p.create_typed(&[Order { id: 1, amount: 9.5 }])?;
/// let big: PCollection<Order> = orders.filter(col("amount").gt(lit(5.0)));
/// let totals: PCollection<Total> = big.combine_globally([agg::sum("total", col("amount"))]).typed()?;
/// totals.write_memory("totals");
/// # Ok::<(), weir_model::ModelError>(())
/// ```
pub struct PCollection<T> {
    inner: Collection,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for PCollection<T> {
    fn clone(&self) -> Self {
        PCollection {
            inner: self.inner.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> fmt::Debug for PCollection<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PCollection<{}>({})",
            type_name::<T>(),
            self.inner.name()
        )
    }
}

impl<T> Deref for PCollection<T> {
    type Target = Collection;
    fn deref(&self) -> &Collection {
        &self.inner
    }
}

impl<T> From<PCollection<T>> for Collection {
    fn from(p: PCollection<T>) -> Collection {
        p.inner
    }
}

impl<T: Serialize + DeserializeOwned> PCollection<T> {
    /// Wraps a collection known to hold values of `T` (no check).
    pub(crate) fn new(inner: Collection) -> Self {
        PCollection {
            inner,
            _type: PhantomData,
        }
    }

    fn keep(&self, inner: Collection) -> Self {
        PCollection::new(inner)
    }

    /// The untyped handle of the same collection.
    pub fn untyped(&self) -> Collection {
        self.inner.clone()
    }

    /// Gives the producing node an explicit name (see [`Collection::named`]).
    pub fn named(&self, name: impl Into<String>) -> Self {
        self.keep(self.inner.named(name))
    }

    /// Sets the producing node's parallelism (see [`Collection::with_parallelism`]).
    pub fn with_parallelism(&self, parallelism: usize) -> Self {
        self.keep(self.inner.with_parallelism(parallelism))
    }

    /// Keeps values for which `predicate` is true ([`Collection::filter`]).
    pub fn filter(&self, predicate: Expr) -> Self {
        self.keep(self.inner.filter(predicate))
    }

    /// Sets the event time, typically `col("ts")` for an `i64` field of milliseconds
    /// ([`Collection::assign_timestamps`]).
    pub fn assign_timestamps(&self, timestamp: Expr, watermark: WatermarkStrategy) -> Self {
        self.keep(self.inner.assign_timestamps(timestamp, watermark))
    }

    /// Sets the windowing strategy ([`Collection::window_into`]).
    pub fn window_into(&self, windowing: impl Into<WindowingStrategy>) -> Self {
        self.keep(self.inner.window_into(windowing))
    }

    /// Keeps the first value per key ([`Collection::dedup`]).
    pub fn dedup<K, S>(&self, keys: K, ttl: Option<Duration>) -> Self
    where
        K: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.keep(self.inner.dedup(keys, ttl))
    }

    /// Keeps the `n` largest values per key and window ([`Collection::top_n`]).
    pub fn top_n<K, S>(&self, group_by: K, order_by: impl Into<String>, n: usize) -> Self
    where
        K: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.keep(self.inner.top_n(group_by, order_by, n))
    }

    /// Keeps the `n` smallest values per key and window ([`Collection::bottom_n`]).
    pub fn bottom_n<K, S>(&self, group_by: K, order_by: impl Into<String>, n: usize) -> Self
    where
        K: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.keep(self.inner.bottom_n(group_by, order_by, n))
    }

    /// Concatenates with other collections of `T` ([`Collection::flatten`]).
    pub fn flatten<'a>(&self, others: impl IntoIterator<Item = &'a PCollection<T>>) -> Self
    where
        T: 'a,
    {
        let others: Vec<&Collection> = others.into_iter().map(|p| &p.inner).collect();
        self.keep(self.inner.flatten(others))
    }

    /// Fails the run unless this collection equals `expected` as a multiset
    /// ([`Collection::assert_equal`]).
    pub fn assert_equal_typed(&self, expected: &[T]) -> Result<Done> {
        Ok(self.inner.assert_equal(to_rows(expected)?))
    }
}
