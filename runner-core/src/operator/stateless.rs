//! Stateless operators: Filter, Project, Explode, ParDo, MapBatches, Flatten — and
//! AssignTimestamps, which is stateless per row but computes the model's watermark.

use super::{Operator, OperatorContext};
use crate::batch::{self, ElementMeta};
use crate::convert;
use crate::error::{ExecError, ExecResult};
use crate::eval::evaluate_in;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::compute::{filter_record_batch, take};
use arrow::datatypes::SchemaRef;
use std::collections::BTreeMap;
use weir_model::io::{dead_letter_schema, BadRecordPolicy};
use weir_model::time::MIN_TIMESTAMP;
use weir_model::transform::Transform;
use weir_model::udf::{BatchFn, DoFn, Emitter, Row};
use weir_model::{plan::Plan, Expr, Schema, TransformNode};

/// What a [`StatelessOperator`] does.
#[derive(Debug)]
enum Kind {
    Filter(Expr),
    /// Output columns are computed or (with `append`) copied from the input by name.
    Project(Vec<(String, Expr)>),
    Explode(String),
    ParDo {
        func: Box<dyn DoFn>,
        /// Dead-letter tag when function errors are routed instead of failing.
        dead_letter: Option<String>,
        /// Rows handled so far, for dead-letter line numbers.
        rows_seen: u64,
    },
    MapBatches(Box<dyn BatchFn>),
    Flatten,
}

/// Filter, Project, Explode, ParDo, MapBatches and Flatten.
///
/// Every output batch has exactly `batch_schema(plan schema of the output collection)`;
/// rows keep their input row's metadata (event time, window, pane). Specifics:
/// - Filter: a null predicate drops the row.
/// - Project: output columns in the plan's order (with `append`, input columns first,
///   same-named ones replaced); all expressions see the input row.
/// - Explode: one row per list item, metadata repeated; a null or empty list gives no rows.
/// - ParDo: a function error fails the run naming the node and the row, or (with a
///   dead-letter `on_error`) becomes a dead-letter row `{source: node, line: n, error,
///   record: row JSON}`, `n` counting the rows this operator has seen; rows the function
///   emitted for a failed element are discarded.
/// - MapBatches: when the function keeps the row count, each output row keeps its input
///   row's metadata. When the count changes, rows cannot be matched up, so every output
///   row gets the batch's window and pane (the input must then all be in one window and
///   pane, else the run fails naming the node) and the batch's largest event time, so no
///   output is earlier — hence never later-than-watermark — than the input it came from.
/// - Flatten: every input passes through.
#[derive(Debug)]
pub struct StatelessOperator {
    node: String,
    kind: Kind,
    input_schemas: Vec<Schema>,
    output_schema: Schema,
    output_arrow: SchemaRef,
    /// Side output schemas by tag (ParDo side outputs and dead letters).
    side_outputs: BTreeMap<String, Schema>,
}

impl StatelessOperator {
    /// The operator for `node` (Filter, Project, Explode, ParDo, MapBatches or Flatten).
    pub fn new(plan: &Plan, node: &TransformNode) -> ExecResult<Self> {
        let collection = |name: &str| {
            plan.collection(name)
                .map(|c| c.schema.clone())
                .ok_or_else(|| {
                    ExecError::Internal(format!("collection `{name}` missing from the plan"))
                })
        };
        let input_schemas = node
            .inputs
            .iter()
            .map(|i| collection(i))
            .collect::<ExecResult<Vec<_>>>()?;
        let output_schema = collection(&node.name)?;
        let mut side_outputs = BTreeMap::new();
        for out in plan.outputs_of(&node.name) {
            if let (_, Some(tag)) = weir_model::pipeline::split_collection(out) {
                side_outputs.insert(tag.to_string(), collection(out)?);
            }
        }
        let kind = match &node.transform {
            Transform::Filter { predicate } => Kind::Filter(predicate.clone()),
            Transform::Project { fields, .. } => Kind::Project(fields.clone()),
            Transform::Explode { field } => Kind::Explode(field.clone()),
            Transform::ParDo { func, on_error } => Kind::ParDo {
                func: func.clone(),
                dead_letter: match on_error {
                    BadRecordPolicy::Fail => None,
                    BadRecordPolicy::DeadLetter { tag } => Some(tag.clone()),
                },
                rows_seen: 0,
            },
            Transform::MapBatches { func } => Kind::MapBatches(func.clone()),
            Transform::Flatten => Kind::Flatten,
            other => {
                return Err(ExecError::Internal(format!(
                    "`{}` is a {}, not a stateless transform",
                    node.name,
                    other.type_name()
                )))
            }
        };
        if input_schemas.is_empty() {
            return Err(ExecError::Internal(format!("`{}` has no input", node.name)));
        }
        Ok(StatelessOperator {
            node: node.name.clone(),
            kind,
            input_schemas,
            output_arrow: batch::batch_schema(&output_schema),
            output_schema,
            side_outputs,
        })
    }

    fn project(&self, fields: &[(String, Expr)], batch: &RecordBatch) -> ExecResult<RecordBatch> {
        let computed: BTreeMap<&str, ArrayRef> = fields
            .iter()
            .map(|(name, e)| Ok((name.as_str(), evaluate_in(&self.node, e, batch)?)))
            .collect::<ExecResult<_>>()?;
        let columns = self
            .output_schema
            .fields
            .iter()
            .map(|f| match computed.get(f.name.as_str()) {
                Some(a) => Ok(a.clone()),
                None => input_column(batch, &f.name, &self.node),
            })
            .collect::<ExecResult<Vec<_>>>()?;
        let out = batch::replace_user_columns(batch, &self.output_schema, columns)?;
        conform(out, &self.output_arrow)
    }

    fn explode(&self, field: &str, batch: &RecordBatch) -> ExecResult<RecordBatch> {
        let list_col = input_column(batch, field, &self.node)?;
        let list = list_col.as_list_opt::<i32>().ok_or_else(|| {
            ExecError::Internal(format!("`{}`: column `{field}` is not a list", self.node))
        })?;
        let offsets = list.value_offsets();
        // Row i is repeated once per item; item j of the flattened values goes with it.
        let mut row_indices: Vec<u32> = Vec::with_capacity(list.values().len());
        let mut item_indices: Vec<u32> = Vec::with_capacity(list.values().len());
        for row in 0..list.len() {
            if list.is_valid(row) {
                for item in offsets[row]..offsets[row + 1] {
                    row_indices.push(row as u32);
                    item_indices.push(item as u32);
                }
            }
        }
        let (rows, items) = (
            UInt32Array::from(row_indices),
            UInt32Array::from(item_indices),
        );
        let schema = batch.schema();
        let columns = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(column, f)| {
                if f.name() == field {
                    Ok(take(list.values().as_ref(), &items, None)?)
                } else {
                    Ok(take(column.as_ref(), &rows, None)?)
                }
            })
            .collect::<ExecResult<Vec<_>>>()?;
        let out = RecordBatch::try_new_with_options(
            self.output_arrow.clone(),
            conform_columns(columns, &self.output_arrow)?,
            &RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )?;
        Ok(out)
    }

    fn par_do(&mut self, batch: &RecordBatch, ctx: &mut OperatorContext) -> ExecResult<()> {
        let Kind::ParDo {
            func,
            dead_letter,
            rows_seen,
        } = &mut self.kind
        else {
            unreachable!("par_do on a ParDo")
        };
        let rows = convert::batch_to_rows(batch);
        let metas = batch::metas(batch);
        let mut main: (Vec<Row>, Vec<ElementMeta>) = (Vec::new(), Vec::new());
        let mut side: BTreeMap<String, (Vec<Row>, Vec<ElementMeta>)> = BTreeMap::new();
        let mut dead: (Vec<Row>, Vec<ElementMeta>) = (Vec::new(), Vec::new());
        let mut out = Collected::default();
        for (row, meta) in rows.iter().zip(&metas) {
            *rows_seen += 1;
            out.main.clear();
            out.side.clear();
            match func.process(row, &mut out) {
                Ok(()) => {
                    for r in out.main.drain(..) {
                        main.0.push(r);
                        main.1.push(*meta);
                    }
                    for (tag, r) in out.side.drain(..) {
                        if !self.side_outputs.contains_key(&tag)
                            || dead_letter.as_deref() == Some(tag.as_str())
                        {
                            let declared: Vec<&String> = self.side_outputs.keys().collect();
                            return Err(ExecError::transform(
                                &self.node,
                                format!("the function emitted to undeclared side output `{tag}` (declared: {declared:?})"),
                            ));
                        }
                        let entry = side.entry(tag).or_default();
                        entry.0.push(r);
                        entry.1.push(*meta);
                    }
                }
                Err(message) => {
                    let record = serde_json::Value::Object(row.clone()).to_string();
                    match dead_letter {
                        None => {
                            return Err(ExecError::transform(
                                &self.node,
                                format!("row {} {record}: {message}", *rows_seen),
                            ))
                        }
                        Some(_) => {
                            let mut d = Row::new();
                            d.insert("source".into(), self.node.clone().into());
                            d.insert("line".into(), (*rows_seen).into());
                            d.insert("error".into(), message.into());
                            d.insert("record".into(), record.into());
                            dead.0.push(d);
                            dead.1.push(*meta);
                        }
                    }
                }
            }
        }
        let node = self.node.clone();
        let to_batch =
            |rows: &[Row], metas: &[ElementMeta], schema: &Schema| -> ExecResult<RecordBatch> {
                let arrays = convert::rows_to_arrays(rows, schema).map_err(|(i, m)| {
                    ExecError::transform(
                        &node,
                        format!(
                            "the function emitted a row that does not fit {schema}: {m} (row {})",
                            serde_json::Value::Object(rows[i].clone())
                        ),
                    )
                })?;
                Ok(batch::with_meta(schema, arrays, metas)?)
            };
        if !main.0.is_empty() {
            ctx.emit(None, to_batch(&main.0, &main.1, &self.output_schema)?);
        }
        for (tag, (rows, metas)) in &side {
            ctx.emit(Some(tag), to_batch(rows, metas, &self.side_outputs[tag])?);
        }
        if let (Some(tag), false) = (dead_letter.as_deref(), dead.0.is_empty()) {
            ctx.metrics.dead_letters += dead.0.len() as u64;
            ctx.emit(
                Some(tag),
                to_batch(&dead.0, &dead.1, &dead_letter_schema())?,
            );
        }
        Ok(())
    }

    fn map_batches(&self, func: &dyn BatchFn, batch: &RecordBatch) -> ExecResult<RecordBatch> {
        let user = batch::user_columns(batch);
        let out = func
            .process_batch(&user)
            .map_err(|m| ExecError::transform(&self.node, m))?;
        let columns = self
            .output_schema
            .fields
            .iter()
            .map(|f| {
                out.column_by_name(&f.name).cloned().ok_or_else(|| {
                    ExecError::transform(
                        &self.node,
                        format!("the batch function's output has no column `{}`", f.name),
                    )
                })
            })
            .collect::<ExecResult<Vec<_>>>()?;
        let columns = conform_columns(columns, &self.output_arrow)?;
        if out.num_rows() == batch.num_rows() {
            return conform(
                batch::replace_user_columns(batch, &self.output_schema, columns)?,
                &self.output_arrow,
            );
        }
        let metas = batch::metas(batch);
        let first = metas.first().copied().unwrap_or_default();
        if metas
            .iter()
            .any(|m| m.window != first.window || m.pane != first.pane)
        {
            return Err(ExecError::transform(
                &self.node,
                "the batch function changed the number of rows of a batch holding several windows or panes, \
                 so its output rows cannot be given a window; apply it before WindowInto/aggregation or keep the row count",
            ));
        }
        let ts = metas.iter().map(|m| m.ts).max().unwrap_or(MIN_TIMESTAMP);
        let meta = ElementMeta { ts, ..first };
        Ok(batch::with_meta(
            &self.output_schema,
            columns,
            &vec![meta; out.num_rows()],
        )?)
    }
}

/// Rows a `DoFn` emitted for one element.
#[derive(Debug, Default)]
struct Collected {
    main: Vec<Row>,
    side: Vec<(String, Row)>,
}

impl Emitter for Collected {
    fn emit(&mut self, row: Row) {
        self.main.push(row);
    }
    fn emit_to(&mut self, tag: &str, row: Row) {
        self.side.push((tag.to_string(), row));
    }
}

/// A user column of `batch` by name.
fn input_column(batch: &RecordBatch, name: &str, node: &str) -> ExecResult<ArrayRef> {
    batch
        .column_by_name(name)
        .filter(|_| !batch::is_meta(name))
        .cloned()
        .ok_or_else(|| {
            ExecError::Internal(format!("`{node}`: the input batch has no column `{name}`"))
        })
}

/// Casts columns to the types of `schema`'s leading fields (user functions may produce
/// narrower types).
fn conform_columns(columns: Vec<ArrayRef>, schema: &SchemaRef) -> ExecResult<Vec<ArrayRef>> {
    columns
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c)
            } else {
                crate::eval::cast_array(&c, f.data_type())
            }
        })
        .collect()
}

/// `batch` with exactly `schema` (same columns; types cast, field flags taken from `schema`).
fn conform(batch: RecordBatch, schema: &SchemaRef) -> ExecResult<RecordBatch> {
    if batch.schema() == *schema {
        return Ok(batch);
    }
    let rows = batch.num_rows();
    let columns = conform_columns(batch.columns().to_vec(), schema)?;
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

impl Operator for StatelessOperator {
    fn process_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
    ) -> ExecResult<()> {
        if input >= self.input_schemas.len() {
            return Err(ExecError::Internal(format!(
                "`{}` has no input {input}",
                self.node
            )));
        }
        let out = match &self.kind {
            Kind::Filter(predicate) => {
                let keep = evaluate_in(&self.node, predicate, &batch)?;
                // A null predicate counts as false: `filter_record_batch` keeps only true rows.
                let kept = filter_record_batch(&batch, keep.as_boolean())?;
                conform(kept, &self.output_arrow)?
            }
            Kind::Project(fields) => self.project(fields, &batch)?,
            Kind::Explode(field) => self.explode(field, &batch)?,
            Kind::ParDo { .. } => return self.par_do(&batch, ctx),
            Kind::MapBatches(func) => self.map_batches(func.as_ref(), &batch)?,
            Kind::Flatten => conform(batch, &self.output_arrow)?,
        };
        ctx.emit(None, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{meta_at, ElementMeta};
    use serde::{Deserialize, Serialize};
    use serde_json::{json, Value};
    use weir_model::expr::{col, lit, Function};
    use weir_model::io::SourceSpec;
    use weir_model::window::{PaneInfo, PaneTiming, Window};
    use weir_model::{DataType, Field, Pipeline};

    fn input_schema() -> Schema {
        Schema::new(vec![
            Field::new("user", DataType::String),
            Field::new("n", DataType::Int64),
            Field::new("tags", DataType::List(Box::new(DataType::String))),
        ])
    }

    /// A plan `In -> <node>` (plus extra nodes), the node, and its operator.
    fn plan_with(transform: Transform) -> (Plan, TransformNode) {
        let mut p = Pipeline::new();
        let read = Transform::Read {
            source: SourceSpec::Create { elements: vec![] },
            schema: input_schema(),
            bad_records: BadRecordPolicy::Fail,
        };
        p.add("In", vec![], read);
        p.add("Op", vec!["In".into()], transform);
        let plan = weir_model::plan(&p).unwrap();
        let node = plan.pipeline.node("Op").unwrap().clone();
        (plan, node)
    }

    fn metas() -> Vec<ElementMeta> {
        let pane = PaneInfo {
            timing: PaneTiming::Early,
            index: 1,
            is_first: false,
            is_last: false,
        };
        (0..4)
            .map(|i| ElementMeta {
                ts: 1000 * i,
                window: Window::new(0, 10_000),
                pane,
            })
            .collect()
    }

    fn input() -> RecordBatch {
        let rows = json!([
            {"user": "ann", "n": 1, "tags": ["a", "b"]},
            {"user": "bob", "n": null, "tags": []},
            {"user": "cy", "n": 3, "tags": null},
            {"user": null, "n": 4, "tags": ["c"]},
        ]);
        let rows: Vec<Row> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_object().unwrap().clone())
            .collect();
        convert::rows_to_batch(&rows, &metas(), &input_schema()).unwrap()
    }

    fn run(
        op: &mut dyn Operator,
        batch: RecordBatch,
    ) -> ExecResult<Vec<(Option<String>, RecordBatch)>> {
        let mut ctx = OperatorContext::new("Op", 0, MIN_TIMESTAMP);
        op.process_batch(0, batch, &mut ctx)?;
        Ok(ctx.take_outputs())
    }

    fn rows(b: &RecordBatch) -> Vec<Value> {
        convert::batch_to_rows(b)
            .into_iter()
            .map(Value::Object)
            .collect()
    }

    fn only_main(outputs: Vec<(Option<String>, RecordBatch)>) -> RecordBatch {
        assert_eq!(outputs.len(), 1, "{outputs:?}");
        assert_eq!(outputs[0].0, None);
        outputs.into_iter().next().unwrap().1
    }

    #[test]
    fn filter_drops_false_and_null_and_keeps_metadata_aligned() {
        let (plan, node) = plan_with(Transform::Filter {
            predicate: col("n").gt(lit(1)),
        });
        let mut op = StatelessOperator::new(&plan, &node).unwrap();
        let out = only_main(run(&mut op, input()).unwrap());
        assert_eq!(
            out.schema(),
            batch::batch_schema(&plan.collection("Op").unwrap().schema)
        );
        assert_eq!(
            rows(&out),
            vec![
                json!({"user": "cy", "n": 3, "tags": null}),
                json!({"user": null, "n": 4, "tags": ["c"]})
            ]
        );
        assert_eq!(batch::metas(&out), metas()[2..].to_vec());
    }

    #[test]
    fn project_with_append_keeps_input_columns_first_and_replaces_same_names() {
        let fields = vec![
            ("n".to_string(), col("n").mul(lit(10))),
            (
                "shout".to_string(),
                Expr::call(Function::Upper, vec![col("user")]),
            ),
        ];
        let (plan, node) = plan_with(Transform::Project {
            fields,
            append: true,
        });
        let mut op = StatelessOperator::new(&plan, &node).unwrap();
        let out = only_main(run(&mut op, input()).unwrap());
        assert_eq!(
            out.schema(),
            batch::batch_schema(&plan.collection("Op").unwrap().schema)
        );
        let names: Vec<String> = out
            .schema()
            .fields()
            .iter()
            .take(4)
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, vec!["user", "n", "tags", "shout"]);
        assert_eq!(
            rows(&out)[0],
            json!({"user": "ann", "n": 10, "tags": ["a", "b"], "shout": "ANN"})
        );
        assert_eq!(rows(&out)[1]["n"], Value::Null);
        assert_eq!(batch::metas(&out), metas());
    }

    #[test]
    fn project_without_append_outputs_only_the_new_fields() {
        let fields = vec![
            ("who".to_string(), col("user")),
            ("twice".to_string(), col("n").add(col("n"))),
        ];
        let (plan, node) = plan_with(Transform::Project {
            fields,
            append: false,
        });
        let mut op = StatelessOperator::new(&plan, &node).unwrap();
        let out = only_main(run(&mut op, input()).unwrap());
        assert_eq!(
            rows(&out),
            vec![
                json!({"who": "ann", "twice": 2}),
                json!({"who": "bob", "twice": null}),
                json!({"who": "cy", "twice": 6}),
                json!({"who": null, "twice": 8}),
            ]
        );
    }

    #[test]
    fn explode_repeats_rows_and_metadata_and_drops_empty_and_null_lists() {
        let (plan, node) = plan_with(Transform::Explode {
            field: "tags".into(),
        });
        let mut op = StatelessOperator::new(&plan, &node).unwrap();
        let out = only_main(run(&mut op, input()).unwrap());
        assert_eq!(
            out.schema(),
            batch::batch_schema(&plan.collection("Op").unwrap().schema)
        );
        assert_eq!(
            rows(&out),
            vec![
                json!({"user": "ann", "n": 1, "tags": "a"}),
                json!({"user": "ann", "n": 1, "tags": "b"}),
                json!({"user": null, "n": 4, "tags": "c"}),
            ]
        );
        let m = metas();
        assert_eq!(batch::metas(&out), vec![m[0], m[0], m[3]]);
    }

    /// Test DoFn: one output row per tag, `long` side output for long names, fails on `bob`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct PerTag;

    #[typetag::serde(name = "stateless_test_per_tag")]
    impl DoFn for PerTag {
        fn output_schema(&self, _input: &Schema) -> Result<Schema, String> {
            Ok(Schema::new(vec![
                Field::new("user", DataType::String),
                Field::new("tag", DataType::String),
            ]))
        }
        fn side_outputs(&self, _input: &Schema) -> Result<Vec<(String, Schema)>, String> {
            Ok(vec![(
                "long".into(),
                Schema::new(vec![Field::new("user", DataType::String)]),
            )])
        }
        fn process(&self, row: &Row, out: &mut dyn Emitter) -> Result<(), String> {
            let user = row["user"].clone();
            if user == json!("bob") {
                out.emit(json!({"user": "partial"}).as_object().unwrap().clone());
                return Err("bob is not allowed".into());
            }
            for t in row["tags"].as_array().into_iter().flatten() {
                out.emit(json!({"user": user, "tag": t}).as_object().unwrap().clone());
            }
            if user.as_str().is_some_and(|u| u.len() == 3) {
                out.emit_to("long", json!({"user": user}).as_object().unwrap().clone());
            }
            Ok(())
        }
    }

    #[test]
    fn par_do_routes_main_side_and_dead_letter_rows_with_input_metadata() {
        let policy = BadRecordPolicy::DeadLetter {
            tag: "errors".into(),
        };
        let (plan, node) = plan_with(Transform::ParDo {
            func: Box::new(PerTag),
            on_error: policy,
        });
        let mut op = StatelessOperator::new(&plan, &node).unwrap();
        let mut ctx = OperatorContext::new("Op", 0, MIN_TIMESTAMP);
        op.process_batch(0, input(), &mut ctx).unwrap();
        let outs = ctx.take_outputs();
        let by_tag: BTreeMap<Option<String>, RecordBatch> = outs.into_iter().collect();
        let m = metas();
        let main = &by_tag[&None];
        assert_eq!(
            rows(main),
            vec![
                json!({"user": "ann", "tag": "a"}),
                json!({"user": "ann", "tag": "b"}),
                json!({"user": null, "tag": "c"}),
            ]
        );
        assert_eq!(batch::metas(main), vec![m[0], m[0], m[3]]);
        let long = &by_tag[&Some("long".to_string())];
        assert_eq!(rows(long), vec![json!({"user": "ann"})]);
        let dead = &by_tag[&Some("errors".to_string())];
        assert_eq!(
            rows(dead),
            vec![json!({
                "source": "Op",
                "line": 2,
                "error": "bob is not allowed",
                "record": "{\"user\":\"bob\",\"n\":null,\"tags\":[]}"
            })]
        );
        assert_eq!(meta_at(dead, 0), m[1]);
        assert_eq!(ctx.metrics.dead_letters, 1);
        // Line numbers continue across batches.
        let mut ctx = OperatorContext::new("Op", 0, MIN_TIMESTAMP);
        op.process_batch(0, input(), &mut ctx).unwrap();
        let dead = ctx
            .take_outputs()
            .into_iter()
            .find(|(t, _)| t.as_deref() == Some("errors"))
            .unwrap()
            .1;
        assert_eq!(rows(&dead)[0]["line"], json!(6));
    }

    #[test]
    fn par_do_error_fails_naming_node_and_row_under_fail() {
        let (plan, node) = plan_with(Transform::ParDo {
            func: Box::new(PerTag),
            on_error: BadRecordPolicy::Fail,
        });
        let mut op = StatelessOperator::new(&plan, &node).unwrap();
        let err = run(&mut op, input()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ExecError::Transform { .. }));
        assert!(
            text.contains("`Op`")
                && text.contains("row 2")
                && text.contains("\"bob\"")
                && text.contains("not allowed"),
            "{text}"
        );
    }

    /// Test BatchFn: keeps the rows with a non-null `n` (changing the count when asked).
    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct DoubleN {
        drop_nulls: bool,
    }

    #[typetag::serde(name = "stateless_test_double_n")]
    impl BatchFn for DoubleN {
        fn output_schema(&self, _input: &Schema) -> Result<Schema, String> {
            Ok(Schema::new(vec![Field::new("n2", DataType::Int64)]))
        }
        fn process_batch(&self, batch: &RecordBatch) -> Result<RecordBatch, String> {
            let n = batch.column_by_name("n").ok_or("no n")?.clone();
            let doubled =
                arrow::compute::kernels::numeric::mul(&n, &arrow::array::Int64Array::new_scalar(2))
                    .map_err(|e| e.to_string())?;
            let out =
                RecordBatch::try_from_iter(vec![("n2", doubled)]).map_err(|e| e.to_string())?;
            if self.drop_nulls {
                let keep = arrow::compute::is_not_null(out.column(0)).map_err(|e| e.to_string())?;
                return filter_record_batch(&out, &keep).map_err(|e| e.to_string());
            }
            Ok(out)
        }
    }

    #[test]
    fn map_batches_keeps_metadata_per_row_when_the_count_is_unchanged() {
        let (plan, node) = plan_with(Transform::MapBatches {
            func: Box::new(DoubleN { drop_nulls: false }),
        });
        let mut op = StatelessOperator::new(&plan, &node).unwrap();
        let out = only_main(run(&mut op, input()).unwrap());
        assert_eq!(
            rows(&out),
            vec![
                json!({"n2": 2}),
                json!({"n2": null}),
                json!({"n2": 6}),
                json!({"n2": 8})
            ]
        );
        assert_eq!(batch::metas(&out), metas());
    }

    #[test]
    fn map_batches_that_changes_the_count_gives_the_batch_window_and_latest_time() {
        let (plan, node) = plan_with(Transform::MapBatches {
            func: Box::new(DoubleN { drop_nulls: true }),
        });
        let mut op = StatelessOperator::new(&plan, &node).unwrap();
        let out = only_main(run(&mut op, input()).unwrap());
        assert_eq!(
            rows(&out),
            vec![json!({"n2": 2}), json!({"n2": 6}), json!({"n2": 8})]
        );
        let m = metas();
        assert_eq!(
            batch::metas(&out),
            vec![ElementMeta { ts: 3000, ..m[0] }; 3]
        );
        // Rows of several windows cannot share one window.
        let mut mixed = metas();
        mixed[1].window = Window::new(10_000, 20_000);
        let b = RecordBatch::try_new(input().schema(), {
            let mut cols = batch::user_columns(&input()).columns().to_vec();
            cols.extend(batch::meta_arrays(&mixed));
            cols
        })
        .unwrap();
        let err = run(&mut op, b).unwrap_err();
        assert!(err.to_string().contains("several windows"), "{err}");
    }

    #[test]
    fn flatten_passes_every_input_through() {
        let mut p = Pipeline::new();
        for name in ["A", "B"] {
            let read = Transform::Read {
                source: SourceSpec::Create { elements: vec![] },
                schema: input_schema(),
                bad_records: BadRecordPolicy::Fail,
            };
            p.add(name, vec![], read);
        }
        p.add("Op", vec!["A".into(), "B".into()], Transform::Flatten);
        let plan = weir_model::plan(&p).unwrap();
        let mut op = StatelessOperator::new(&plan, plan.pipeline.node("Op").unwrap()).unwrap();
        let mut ctx = OperatorContext::new("Op", 0, MIN_TIMESTAMP);
        op.process_batch(0, input(), &mut ctx).unwrap();
        op.process_batch(1, input().slice(0, 1), &mut ctx).unwrap();
        let outs = ctx.take_outputs();
        assert_eq!(
            outs.iter().map(|(_, b)| b.num_rows()).collect::<Vec<_>>(),
            vec![4, 1]
        );
    }
}
