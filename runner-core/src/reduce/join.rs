//! Join output: how the rows of one pane of a join become output rows. Shared by every
//! runner so joins lay out their columns identically.

use crate::reduce::SeqRow;
use serde_json::Value;
use weir_model::plan::CollectionInfo;
use weir_model::transform::JoinKind;
use weir_model::udf::Row;
use weir_model::Schema;

/// Where an output column of a join comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinColumn {
    /// The input (0-based) the value comes from.
    pub side: usize,
    /// The column in that input.
    pub input_field: String,
    /// The column in the output.
    pub output_field: String,
}

/// The output column of every non-key input column, positionally as the plan lays them
/// out (keys once, then each input's other columns in order, renamed on clashes); `None`
/// when the output schema does not fit the inputs.
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

/// Beam's CoGroupByKey + flatten: per key and pane, every combination of one row per input
/// (the cross product), where an input without rows contributes a row of nulls if it is
/// optional for the join kind (left: every input but the first; right: every input but the
/// second; full: all) and suppresses the key otherwise. The join sees exactly the rows the
/// pane holds: with early or late panes an outer row is padded in a pane where its match has
/// not arrived (discarding), and accumulating panes restate the whole join so far.
pub fn join_rows(
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
        // Next combination, the last input varying fastest (the first input outermost).
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
