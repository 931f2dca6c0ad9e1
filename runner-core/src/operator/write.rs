//! Terminal operators: Write (to a sink) and AssertEqual.

use super::{Operator, OperatorContext};
use crate::convert;
use crate::error::{ExecError, ExecResult};
use crate::io::{build_sink, Sink, SinkRegistry};
use arrow::record_batch::RecordBatch;
use std::collections::BTreeMap;
use weir_model::io::DeliveryGuarantee;
use weir_model::time::Timestamp;
use weir_model::transform::Transform;
use weir_model::udf::Row;
use weir_model::{plan::Plan, Schema, TransformNode};

/// Writes its input to the node's sink.
///
/// Batches are written as they come; [`Operator::on_close`] commits the next epoch.
/// Streaming runners call [`WriteOperator::commit`] per micro-batch or checkpoint instead.
/// Window columns are written by default when the input carries window metadata of a
/// non-global windowing (see the sink's `SinkMetadata`).
pub struct WriteOperator {
    node: String,
    sink: Box<dyn Sink>,
    /// The epoch the next commit uses when the runner does not say.
    next_epoch: u64,
}

impl std::fmt::Debug for WriteOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteOperator")
            .field("node", &self.node)
            .field("next_epoch", &self.next_epoch)
            .finish()
    }
}

impl WriteOperator {
    /// The operator for a `Write` node; in-memory sinks record into `sinks`.
    pub fn new(plan: &Plan, node: &TransformNode, sinks: &SinkRegistry) -> ExecResult<Self> {
        let Transform::Write { sink, metadata } = &node.transform else {
            return Err(ExecError::Internal(format!(
                "`{}` is not a Write",
                node.name
            )));
        };
        let input = node
            .inputs
            .first()
            .and_then(|i| plan.collection(i))
            .ok_or_else(|| {
                ExecError::Internal(format!(
                    "`{}`: input collection missing from the plan",
                    node.name
                ))
            })?;
        // Window columns only mean something for results of a real (non-global) windowing.
        let windowed = input.windowed_results && !input.windowing.window_fn.is_global();
        let sink = build_sink(&node.name, sink, *metadata, &input.schema, windowed, sinks)?;
        Ok(WriteOperator {
            node: node.name.clone(),
            sink,
            next_epoch: 0,
        })
    }

    /// Commits everything written since the last commit as `epoch` (the next default epoch
    /// becomes `epoch + 1`).
    pub fn commit(&mut self, epoch: u64, now: Timestamp) -> ExecResult<()> {
        self.sink.commit(epoch, now)?;
        self.next_epoch = self.next_epoch.max(epoch + 1);
        Ok(())
    }

    /// What the sink guarantees on replay.
    pub fn guarantee(&self) -> DeliveryGuarantee {
        self.sink.guarantee()
    }

    /// The sink itself (for a runner driving its native two-phase commit).
    pub fn sink_mut(&mut self) -> &mut dyn Sink {
        self.sink.as_mut()
    }
}

impl Operator for WriteOperator {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
    ) -> ExecResult<()> {
        self.sink.write(&batch, ctx.processing_time)?;
        ctx.metrics.rows_written += batch.num_rows() as u64;
        Ok(())
    }

    fn on_close(&mut self, ctx: &mut OperatorContext) -> ExecResult<()> {
        self.commit(self.next_epoch, ctx.processing_time)
    }
}

/// How many missing and unexpected rows an assertion failure lists.
const SHOWN_ROWS: usize = 10;

/// Fails the run at the end of input unless the input rows equal the expected elements
/// as a multiset (user columns only; order and metadata do not matter).
///
/// Expected elements go through the input schema first, so `"2024-01-01T00:00:00Z"`
/// matches the timestamp's milliseconds and `1` matches `1.0` in a float column.
#[derive(Debug)]
pub struct AssertOperator {
    node: String,
    /// Canonical JSON text of each expected row, with its multiplicity.
    expected: BTreeMap<String, usize>,
    /// The same for the rows received.
    actual: BTreeMap<String, usize>,
}

impl AssertOperator {
    /// The operator for an `AssertEqual` node.
    pub fn new(plan: &Plan, node: &TransformNode) -> ExecResult<Self> {
        let Transform::AssertEqual { elements } = &node.transform else {
            return Err(ExecError::Internal(format!(
                "`{}` is not an AssertEqual",
                node.name
            )));
        };
        let schema = node
            .inputs
            .first()
            .and_then(|i| plan.collection(i))
            .map(|c| c.schema.clone())
            .ok_or_else(|| {
                ExecError::Internal(format!(
                    "`{}`: input collection missing from the plan",
                    node.name
                ))
            })?;
        let mut expected = BTreeMap::new();
        for row in normalize(&node.name, elements, &schema)? {
            *expected.entry(row).or_insert(0) += 1;
        }
        Ok(AssertOperator {
            node: node.name.clone(),
            expected,
            actual: BTreeMap::new(),
        })
    }
}

/// Expected elements as canonical row text: through Arrow and back, like the actual rows.
fn normalize(
    node: &str,
    elements: &[serde_json::Value],
    schema: &Schema,
) -> ExecResult<Vec<String>> {
    let rows = elements
        .iter()
        .enumerate()
        .map(|(i, e)| {
            e.as_object().cloned().ok_or_else(|| {
                ExecError::transform(
                    node,
                    format!("expected element {} is not a JSON object: {e}", i + 1),
                )
            })
        })
        .collect::<ExecResult<Vec<Row>>>()?;
    let arrays = convert::rows_to_arrays(&rows, schema).map_err(|(i, m)| {
        ExecError::transform(
            node,
            format!(
                "expected element {} does not fit the input schema {schema}: {m}",
                i + 1
            ),
        )
    })?;
    let metas = vec![crate::batch::ElementMeta::default(); rows.len()];
    let batch = crate::batch::with_meta(schema, arrays, &metas)?;
    Ok(convert::batch_to_rows(&batch)
        .into_iter()
        .map(|r| serde_json::Value::Object(r).to_string())
        .collect())
}

/// Rows in `a` beyond their count in `b`, as (text, extra count).
fn surplus<'a>(
    a: &'a BTreeMap<String, usize>,
    b: &BTreeMap<String, usize>,
) -> Vec<(&'a str, usize)> {
    a.iter()
        .filter_map(|(row, n)| {
            let extra = n.saturating_sub(b.get(row).copied().unwrap_or(0));
            (extra > 0).then_some((row.as_str(), extra))
        })
        .collect()
}

fn describe(title: &str, rows: &[(&str, usize)]) -> String {
    let total: usize = rows.iter().map(|(_, n)| n).sum();
    let mut s = format!("{title} ({total}):");
    for (row, n) in rows.iter().take(SHOWN_ROWS) {
        s.push_str("\n  ");
        s.push_str(row);
        if *n > 1 {
            s.push_str(&format!(" (x{n})"));
        }
    }
    if rows.len() > SHOWN_ROWS {
        s.push_str(&format!(
            "\n  ... and {} more distinct rows",
            rows.len() - SHOWN_ROWS
        ));
    }
    s
}

impl Operator for AssertOperator {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _ctx: &mut OperatorContext,
    ) -> ExecResult<()> {
        for row in convert::batch_to_rows(&batch) {
            *self
                .actual
                .entry(serde_json::Value::Object(row).to_string())
                .or_insert(0) += 1;
        }
        Ok(())
    }

    fn on_close(&mut self, _ctx: &mut OperatorContext) -> ExecResult<()> {
        let missing = surplus(&self.expected, &self.actual);
        let unexpected = surplus(&self.actual, &self.expected);
        if missing.is_empty() && unexpected.is_empty() {
            return Ok(());
        }
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(describe("missing (expected, not produced)", &missing));
        }
        if !unexpected.is_empty() {
            parts.push(describe("unexpected (produced, not expected)", &unexpected));
        }
        Err(ExecError::Assertion {
            transform: self.node.clone(),
            message: parts.join("\n"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::ElementMeta;
    use serde_json::json;
    use weir_model::io::{BadRecordPolicy, FileFormat, SinkMetadata, SinkSpec, SourceSpec};
    use weir_model::time::MIN_TIMESTAMP;
    use weir_model::{DataType, Field, Pipeline};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("k", DataType::String),
            Field::new("at", DataType::Timestamp),
        ])
    }

    fn plan_with(transform: Transform) -> (Plan, TransformNode) {
        let mut p = Pipeline::new();
        let read = Transform::Read {
            source: SourceSpec::Create { elements: vec![] },
            schema: schema(),
            bad_records: BadRecordPolicy::Fail,
        };
        p.add("In", vec![], read);
        p.add("Out", vec!["In".into()], transform);
        let plan = weir_model::plan(&p).unwrap();
        let node = plan.pipeline.node("Out").unwrap().clone();
        (plan, node)
    }

    fn batch(rows: serde_json::Value) -> RecordBatch {
        let rows: Vec<Row> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_object().unwrap().clone())
            .collect();
        convert::rows_to_batch(&rows, &vec![ElementMeta::default(); rows.len()], &schema()).unwrap()
    }

    #[test]
    fn write_counts_rows_and_commits_on_close() {
        let (plan, node) = plan_with(Transform::Write {
            sink: SinkSpec::Memory {
                name: "w".into(),
                guarantee: None,
            },
            metadata: SinkMetadata::default(),
        });
        let sinks = SinkRegistry::new();
        let mut op = WriteOperator::new(&plan, &node, &sinks).unwrap();
        assert_eq!(op.guarantee(), DeliveryGuarantee::Transactional);
        let mut ctx = OperatorContext::new("Out", 10, MIN_TIMESTAMP);
        op.process_batch(
            0,
            batch(json!([{"k": "a", "at": 1}, {"k": "b", "at": 2}])),
            &mut ctx,
        )
        .unwrap();
        assert_eq!(ctx.metrics.rows_written, 2);
        assert!(sinks.committed_rows("w").is_empty());
        op.commit(0, 11).unwrap();
        assert_eq!(sinks.committed_rows("w").len(), 2);
        op.process_batch(0, batch(json!([{"k": "c", "at": 3}])), &mut ctx)
            .unwrap();
        op.on_close(&mut ctx).unwrap();
        assert_eq!(sinks.committed_rows("w").len(), 3);
        assert_eq!(sinks.rows("w")[2].visible_at, 10);
    }

    #[test]
    fn write_to_a_directory_commits_part_files_per_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let (plan, node) = plan_with(Transform::Write {
            sink: SinkSpec::Files {
                path: out.display().to_string(),
                format: FileFormat::JsonLines,
            },
            metadata: SinkMetadata::default(),
        });
        let mut op = WriteOperator::new(&plan, &node, &SinkRegistry::new()).unwrap();
        let mut ctx = OperatorContext::new("Out", 0, MIN_TIMESTAMP);
        op.process_batch(0, batch(json!([{"k": "a", "at": 0}])), &mut ctx)
            .unwrap();
        op.on_close(&mut ctx).unwrap();
        let text = std::fs::read_to_string(out.join("part-00000.json")).unwrap();
        assert_eq!(text, "{\"k\":\"a\",\"at\":\"1970-01-01T00:00:00.000Z\"}\n");
    }

    fn assert_op(expected: serde_json::Value) -> AssertOperator {
        let elements = expected.as_array().unwrap().clone();
        let (plan, node) = plan_with(Transform::AssertEqual { elements });
        AssertOperator::new(&plan, &node).unwrap()
    }

    #[test]
    fn assert_equal_compares_multisets_after_normalising_expected_rows() {
        let mut op = assert_op(json!([
            {"k": "a", "at": "1970-01-01T00:00:01Z"},
            {"k": "a", "at": 1000},
            {"at": 5, "k": null},
        ]));
        let mut ctx = OperatorContext::new("Out", 0, MIN_TIMESTAMP);
        op.process_batch(
            0,
            batch(json!([{"k": null, "at": 5}, {"k": "a", "at": 1000}])),
            &mut ctx,
        )
        .unwrap();
        op.process_batch(0, batch(json!([{"k": "a", "at": 1000}])), &mut ctx)
            .unwrap();
        op.on_close(&mut ctx).unwrap();
    }

    #[test]
    fn assert_equal_lists_missing_and_unexpected_rows() {
        let mut op =
            assert_op(json!([{"k": "a", "at": 1}, {"k": "a", "at": 1}, {"k": "b", "at": 2}]));
        let mut ctx = OperatorContext::new("Out", 0, MIN_TIMESTAMP);
        op.process_batch(
            0,
            batch(json!([{"k": "a", "at": 1}, {"k": "z", "at": 9}])),
            &mut ctx,
        )
        .unwrap();
        let err = op.on_close(&mut ctx).unwrap_err();
        assert!(matches!(err, ExecError::Assertion { .. }));
        assert_eq!(
            err.to_string(),
            "assertion `Out` failed: missing (expected, not produced) (2):\n  {\"k\":\"a\",\"at\":1}\n  {\"k\":\"b\",\"at\":2}\n\
             unexpected (produced, not expected) (1):\n  {\"k\":\"z\",\"at\":9}"
        );
    }

    #[test]
    fn assert_equal_shows_at_most_ten_rows_per_side() {
        let mut op = assert_op(json!([]));
        let rows: Vec<serde_json::Value> = (0..15)
            .map(|i| json!({"k": format!("r{i:02}"), "at": i}))
            .collect();
        let mut ctx = OperatorContext::new("Out", 0, MIN_TIMESTAMP);
        op.process_batch(0, batch(serde_json::Value::Array(rows)), &mut ctx)
            .unwrap();
        let text = op.on_close(&mut ctx).unwrap_err().to_string();
        assert!(
            text.contains("(15)") && text.contains("... and 5 more"),
            "{text}"
        );
        assert_eq!(text.matches("\n  {").count(), 10);
    }

    #[test]
    fn expected_rows_that_do_not_fit_the_schema_are_refused() {
        let (plan, node) = plan_with(Transform::AssertEqual {
            elements: vec![json!({"k": 1})],
        });
        let err = AssertOperator::new(&plan, &node).unwrap_err();
        assert!(err.to_string().contains("`k`"), "{err}");
    }
}
