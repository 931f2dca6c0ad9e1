//! The pane contents of the aggregating transforms (GroupByKey, CoGroupByKey, Join,
//! Combine, TopN): one [`ReduceFn`] over [`PaneContents`].

use super::ReduceFn;
use crate::combine::{compare_values, Accumulator, Combiner};
use crate::error::{ExecError, ExecResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cmp::Ordering;
use weir_model::udf::Row;

/// One row of an aggregation's input.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateInput {
    /// Which input of the transform it came from (0 for single-input transforms).
    pub side: usize,
    /// Arrival sequence number (over all inputs), which orders grouped values and breaks
    /// TopN ties.
    pub seq: u64,
    /// The row's user columns.
    pub row: Row,
    /// Evaluated arguments: one per aggregation for `Combine`, the rank value for `TopN`.
    pub args: Vec<Value>,
}

/// A row with its arrival sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeqRow {
    /// Arrival sequence number.
    pub seq: u64,
    /// The row.
    pub row: Row,
}

/// A TopN candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedRow {
    /// The value ranked by.
    pub rank: Value,
    /// Arrival sequence number (earlier wins ties).
    pub seq: u64,
    /// The row.
    pub row: Row,
}

/// What a pane of an aggregation holds. Serializable, so runners can checkpoint it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum PaneContents {
    /// One accumulator per aggregation (`Combine`).
    Combined(Vec<Accumulator>),
    /// The rows of each input in arrival order (`GroupByKey`, `CoGroupByKey`, `Join`).
    Rows(Vec<Vec<SeqRow>>),
    /// The best rows so far, best first, at most `n` (`TopN`).
    Top(Vec<RankedRow>),
}

/// What an aggregation keeps per key and window.
#[derive(Debug, Clone)]
enum Shape {
    Combine(Vec<Combiner>),
    Rows { sides: usize },
    Top { n: usize, descending: bool },
}

/// The reduce function of the aggregating transforms.
#[derive(Debug, Clone)]
pub struct AggregateReduce {
    node: String,
    shape: Shape,
}

impl AggregateReduce {
    /// Combines with `combiners` (one per output aggregation); `node` names errors.
    pub fn combine(node: &str, combiners: Vec<Combiner>) -> Self {
        AggregateReduce {
            node: node.to_string(),
            shape: Shape::Combine(combiners),
        }
    }

    /// Keeps every row of each of `sides` inputs, in arrival order.
    pub fn rows(node: &str, sides: usize) -> Self {
        AggregateReduce {
            node: node.to_string(),
            shape: Shape::Rows { sides },
        }
    }

    /// Keeps the `n` best rows by rank: largest first when `descending`, else smallest
    /// first; null ranks after every value; ties go to the earlier row.
    pub fn top(node: &str, n: usize, descending: bool) -> Self {
        AggregateReduce {
            node: node.to_string(),
            shape: Shape::Top { n, descending },
        }
    }

    /// The combiners of a `Combine` (empty otherwise).
    pub fn combiners(&self) -> &[Combiner] {
        match &self.shape {
            Shape::Combine(c) => c,
            _ => &[],
        }
    }

    fn error(&self, message: impl Into<String>) -> ExecError {
        ExecError::transform(&self.node, message)
    }

    fn rank_order(&self, a: &RankedRow, b: &RankedRow) -> Ordering {
        let descending = matches!(
            self.shape,
            Shape::Top {
                descending: true,
                ..
            }
        );
        let by_value = match (a.rank.is_null(), b.rank.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) if descending => compare_values(&b.rank, &a.rank),
            (false, false) => compare_values(&a.rank, &b.rank),
        };
        by_value.then(a.seq.cmp(&b.seq))
    }
}

impl ReduceFn for AggregateReduce {
    type Input = AggregateInput;
    type Contents = PaneContents;

    fn create(&self) -> PaneContents {
        match &self.shape {
            Shape::Combine(combiners) => {
                PaneContents::Combined(combiners.iter().map(Combiner::create).collect())
            }
            Shape::Rows { sides } => PaneContents::Rows(vec![Vec::new(); *sides]),
            Shape::Top { .. } => PaneContents::Top(Vec::new()),
        }
    }

    fn add(&self, contents: &mut PaneContents, input: AggregateInput) -> ExecResult<()> {
        match (&self.shape, contents) {
            (Shape::Combine(combiners), PaneContents::Combined(accs)) => {
                for ((c, acc), arg) in combiners.iter().zip(accs.iter_mut()).zip(&input.args) {
                    c.add(acc, arg)
                        .map_err(|m| self.error(format!("aggregation `{}`: {m}", c.name())))?;
                }
            }
            (Shape::Rows { .. }, PaneContents::Rows(sides)) => {
                let side = sides.get_mut(input.side).ok_or_else(|| {
                    ExecError::Internal(format!("no input {} of `{}`", input.side, self.node))
                })?;
                side.push(SeqRow {
                    seq: input.seq,
                    row: input.row,
                });
            }
            (Shape::Top { n, .. }, PaneContents::Top(best)) => {
                let candidate = RankedRow {
                    rank: input.args.into_iter().next().unwrap_or(Value::Null),
                    seq: input.seq,
                    row: input.row,
                };
                let at = best.partition_point(|r| self.rank_order(r, &candidate) == Ordering::Less);
                if at < *n {
                    best.insert(at, candidate);
                    best.truncate(*n);
                }
            }
            _ => {
                return Err(ExecError::Internal(format!(
                    "`{}`: pane contents of the wrong kind",
                    self.node
                )))
            }
        }
        Ok(())
    }

    fn merge(&self, contents: &mut PaneContents, other: PaneContents) -> ExecResult<()> {
        match (&self.shape, contents, other) {
            (
                Shape::Combine(combiners),
                PaneContents::Combined(accs),
                PaneContents::Combined(others),
            ) => {
                for ((c, acc), o) in combiners.iter().zip(accs.iter_mut()).zip(&others) {
                    c.merge(acc, o)
                        .map_err(|m| self.error(format!("aggregation `{}`: {m}", c.name())))?;
                }
            }
            (Shape::Rows { .. }, PaneContents::Rows(sides), PaneContents::Rows(others)) => {
                for (side, more) in sides.iter_mut().zip(others) {
                    side.extend(more);
                    side.sort_by_key(|r| r.seq);
                }
            }
            (Shape::Top { n, .. }, PaneContents::Top(best), PaneContents::Top(others)) => {
                best.extend(others);
                best.sort_by(|a, b| self.rank_order(a, b));
                best.truncate(*n);
            }
            _ => {
                return Err(ExecError::Internal(format!(
                    "`{}`: pane contents of the wrong kind",
                    self.node
                )))
            }
        }
        Ok(())
    }
}
