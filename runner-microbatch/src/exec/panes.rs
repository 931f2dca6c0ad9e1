//! How a fired pane's contents become output rows, per aggregating transform (the same
//! layouts runner-core's aggregate operator produces, so outputs match the direct runner).

use super::aggregate::WindowState;
use serde_json::Value;
use weir_model::plan::CollectionInfo;
use weir_model::transform::JoinKind;
use weir_model::udf::Row;
use weir_model::Schema;
use weir_runner_core::reduce::{AggregateReduce, PaneContents, SeqRow};

/// Where an output column of a join comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinColumn {
    side: usize,
    input_field: String,
    output_field: String,
}

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

/// The output column of every non-key input column, positionally as the plan lays them out
/// (keys once, then each input's other columns in order, renamed on clashes).
pub fn join_columns(
    on: &[Vec<String>],
    inputs: &[&CollectionInfo],
    output: &Schema,
) -> Option<Vec<JoinColumn>> {
    let nkeys = on.first().map_or(0, Vec::len);
    let mut columns = Vec::new();
    for (side, input) in inputs.iter().enumerate() {
        for f in &input.schema.fields {
            if !on[side].contains(&f.name) {
                columns.push((side, f.name.clone()));
            }
        }
    }
    if output.fields.len() != nkeys + columns.len() {
        return None;
    }
    Some(
        columns
            .into_iter()
            .zip(&output.fields[nkeys..])
            .map(|((side, input_field), out)| JoinColumn {
                side,
                input_field,
                output_field: out.name.clone(),
            })
            .collect(),
    )
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

/// Every combination of one row per input (the first input outermost); with an outer join a
/// side without rows contributes nulls, with an inner one nothing is emitted.
fn join_rows(
    kind: JoinKind,
    columns: &[JoinColumn],
    key_row: &Row,
    sides: &[Vec<SeqRow>],
    out: &mut Vec<Row>,
) {
    let required = |i: usize| match kind {
        JoinKind::Inner => true,
        JoinKind::Left => i == 0,
        JoinKind::Right => i == 1,
        JoinKind::Full => false,
    };
    if sides.iter().all(Vec::is_empty)
        || sides
            .iter()
            .enumerate()
            .any(|(i, s)| s.is_empty() && required(i))
    {
        return;
    }
    let choices: Vec<Vec<Option<&Row>>> = sides
        .iter()
        .map(|s| {
            if s.is_empty() {
                vec![None]
            } else {
                s.iter().map(|r| Some(&r.row)).collect()
            }
        })
        .collect();
    let mut combination = vec![0usize; sides.len()];
    loop {
        let mut row = key_row.clone();
        for c in columns {
            let value = choices[c.side][combination[c.side]]
                .and_then(|r| r.get(&c.input_field))
                .cloned();
            row.insert(c.output_field.clone(), value.unwrap_or(Value::Null));
        }
        out.push(row);
        let mut i = sides.len();
        loop {
            if i == 0 {
                return;
            }
            i -= 1;
            combination[i] += 1;
            if combination[i] < choices[i].len() {
                break;
            }
            combination[i] = 0;
        }
    }
}
