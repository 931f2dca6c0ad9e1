//! How a fired pane's contents become output rows, per aggregating transform (the same
//! layouts runner-core's aggregate operator produces, so outputs match the direct runner).

use super::aggregate::WindowState;
use serde_json::Value;
use weir_model::transform::JoinKind;
use weir_model::udf::Row;
use weir_model::Schema;
pub use weir_runner_core::reduce::{join_columns, JoinColumn};
use weir_runner_core::reduce::{join_rows, AggregateReduce, PaneContents, SeqRow};

/// How a pane's contents become output rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Key columns, then one column per aggregation.
    Combine,
    /// Key columns, then `values`: the other columns of each row, in arrival order.
    GroupByKey,
    /// Key columns, then one list per input.
    CoGroupByKey,
    /// Key columns, then every input's other columns, per matching combination.
    Join {
        /// Inner, left, right or full.
        kind: JoinKind,
        /// The non-key output columns.
        columns: Vec<JoinColumn>,
    },
    /// The best rows themselves.
    TopN,
}

impl Output {
    /// Whether the contents keep rows (their non-key columns) rather than aggregates.
    pub fn keeps_rows(&self) -> bool {
        matches!(
            self,
            Output::GroupByKey | Output::CoGroupByKey | Output::Join { .. }
        )
    }
}

/// The output rows of one pane of `e`.
pub fn pane_rows(
    output: &Output,
    reduce: &AggregateReduce,
    keys: &[String],
    schema: &Schema,
    e: &WindowState,
    out: &mut Vec<Row>,
) {
    let mut key_row = Row::new();
    for (name, v) in keys.iter().zip(&e.key) {
        key_row.insert(name.clone(), v.clone());
    }
    let list =
        |side: &[SeqRow]| Value::Array(side.iter().map(|r| Value::Object(r.row.clone())).collect());
    match (output, &e.contents) {
        (Output::Combine, PaneContents::Combined(accs)) => {
            for (c, acc) in reduce.combiners().iter().zip(accs) {
                key_row.insert(c.name().to_string(), c.extract(acc));
            }
            out.push(key_row);
        }
        (Output::GroupByKey | Output::CoGroupByKey, PaneContents::Rows(sides)) => {
            for (field, side) in schema.fields[keys.len().min(schema.fields.len())..]
                .iter()
                .zip(sides)
            {
                key_row.insert(field.name.clone(), list(side));
            }
            out.push(key_row);
        }
        (Output::Join { kind, columns }, PaneContents::Rows(sides)) => {
            join_rows(*kind, columns, &key_row, sides, out)
        }
        (Output::TopN, PaneContents::Top(best)) => out.extend(best.iter().map(|r| r.row.clone())),
        _ => {}
    }
}
