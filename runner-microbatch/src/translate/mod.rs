//! Translation: which transforms the micro-batch runner executes, how each aggregation's
//! windowing strategy maps onto an output mode and batch-boundary firing rules, and what it
//! refuses (naming the feature) because it has no micro-batch meaning or is not built.
//!
//! Mapping of triggers (Beam) onto output modes (Spark), all evaluated at batch boundaries:
//!
//! | trigger | output mode | panes |
//! |---|---|---|
//! | default / `after_watermark` | append | one ON_TIME pane when `window_end <= watermark`; with allowed lateness (extension) a LATE pane per batch that brought late rows |
//! | `after_watermark` with early firings | update | EARLY panes at batch ends when the early condition holds, then ON_TIME, then LATE |
//! | `repeatedly(after_count(n) / after_processing_time(d))` | update | a pane at each batch end where the condition holds, final pane at expiry |
//! | `never` | append at expiry | one pane when the window expires |
//!
//! `after_count(n)` holds at a batch end when the pane has at least `n` new rows;
//! `after_processing_time(d)` when the batch timestamp is at least `d` after the batch that
//! opened the pane. A top-level trigger that fires once and finishes, and `after_each`,
//! `after_first`, `after_all`, `or_finally`, are refused.

use crate::error::MicroBatchError;
use weir_model::plan::Plan;
use weir_model::transform::Transform;
use weir_model::window::{AccumulationMode, ClosingBehavior, Trigger, WindowingStrategy};

/// Spark's output modes, as this runner derives them from a windowing strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    /// A window is emitted once it closes (`window_end <= watermark`).
    Append,
    /// Changed windows are emitted at batch ends.
    Update,
}

/// When a pane of an open (or, for late panes, closed) window fires at a batch end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaneCondition {
    /// The pane has at least this many new rows (1: any batch that changed the window).
    AtLeastRows(u64),
    /// The batch timestamp is at least this many ms after the pane's first row arrived.
    AfterProcessingTime(i64),
}

impl PaneCondition {
    /// Whether the condition holds for a pane with `rows` new rows opened at `opened_at`,
    /// at batch timestamp `now`.
    pub fn holds(self, rows: u64, opened_at: Option<i64>, now: i64) -> bool {
        match self {
            PaneCondition::AtLeastRows(n) => rows >= n.max(1),
            PaneCondition::AfterProcessingTime(d) => {
                rows > 0 && opened_at.is_some_and(|t| now >= t.saturating_add(d))
            }
        }
    }
}

/// How an aggregation fires panes, derived from its windowing strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiringPlan {
    /// Panes before the window closes.
    pub early: Option<PaneCondition>,
    /// An ON_TIME pane when the window closes.
    pub on_time: bool,
    /// Panes after the window closed, within allowed lateness; `None`: the window's trigger
    /// has finished once it fired ON_TIME and later rows are dropped.
    pub late: Option<PaneCondition>,
    /// A final pane when the window expires (for triggers without an ON_TIME firing).
    pub closing_pane: bool,
    /// Emit the closing pane even if empty.
    pub fire_always: bool,
    /// Allowed lateness (ms).
    pub allowed_lateness: i64,
    /// Panes hold every row so far (accumulating) or only rows since the last pane.
    pub accumulating: bool,
}

impl FiringPlan {
    /// The output mode this plan amounts to.
    pub fn output_mode(&self) -> OutputMode {
        if self.early.is_some() {
            OutputMode::Update
        } else {
            OutputMode::Append
        }
    }
}

fn refuse(feature: impl Into<String>, reason: impl Into<String>) -> MicroBatchError {
    MicroBatchError::Unsupported {
        feature: feature.into(),
        reason: reason.into(),
    }
}

fn condition(t: &Trigger) -> Result<PaneCondition, MicroBatchError> {
    match t {
        Trigger::AfterCount { count } => Ok(PaneCondition::AtLeastRows(*count)),
        Trigger::AfterProcessingTime { delay } => Ok(PaneCondition::AfterProcessingTime(delay.millis())),
        Trigger::Repeatedly { trigger } => condition(trigger),
        other => Err(refuse(
            format!("trigger `{other}`"),
            "only after_count and after_processing_time (optionally repeated) can fire panes at batch boundaries",
        )),
    }
}

/// The firing plan of an aggregation over `windowing`, or the refusal naming the trigger.
pub fn firing_plan(windowing: &WindowingStrategy) -> Result<FiringPlan, MicroBatchError> {
    let mut plan = FiringPlan {
        early: None,
        on_time: true,
        late: Some(PaneCondition::AtLeastRows(1)),
        closing_pane: false,
        fire_always: windowing.closing == ClosingBehavior::FireAlways,
        allowed_lateness: windowing.allowed_lateness.millis().max(0),
        accumulating: windowing.accumulation == AccumulationMode::Accumulating,
    };
    match &windowing.trigger {
        Trigger::Default => {}
        Trigger::AfterWatermark { early, late } => {
            plan.early = early.as_deref().map(condition).transpose()?;
            plan.late = late.as_deref().map(condition).transpose()?;
        }
        Trigger::Repeatedly { trigger } => {
            let c = condition(trigger)?;
            plan.early = Some(c);
            plan.late = Some(c);
            plan.on_time = false;
            plan.closing_pane = true;
        }
        Trigger::Never => {
            plan.on_time = false;
            plan.late = None;
            plan.closing_pane = true;
        }
        t @ (Trigger::AfterCount { .. } | Trigger::AfterProcessingTime { .. }) => return Err(refuse(
            format!("trigger `{t}`"),
            "a trigger that fires once and then finishes the window has no micro-batch meaning; use repeatedly(...)",
        )),
        t => {
            return Err(refuse(
                format!("trigger `{t}`"),
                "composite triggers other than repeatedly(...) have no micro-batch meaning",
            ))
        }
    }
    Ok(plan)
}

/// Checks that Spark's complete output mode (the whole result table at every batch end)
/// means what the pipeline asks: every aggregation is over the global window with a trigger
/// that fires at batch ends and accumulating panes. Anything else would repeat results the
/// model never emits again, so it is refused naming the aggregation.
pub fn check_complete_mode(plan: &Plan) -> Result<(), MicroBatchError> {
    let mut any = false;
    for node in &plan.pipeline.transforms {
        match &node.transform {
            Transform::Combine { .. } => {
                any = true;
                let Some(info) = node.inputs.first().and_then(|i| plan.collection(i)) else {
                    continue;
                };
                let w = &info.windowing;
                let firing = firing_plan(w)?;
                if !w.window_fn.is_global() || !firing.accumulating || firing.early.is_none() {
                    return Err(refuse(
                        "complete output mode",
                        format!(
                            "`{}` must aggregate the global window with accumulating panes and a trigger firing at batch ends (it has {w})",
                            node.name
                        ),
                    ));
                }
            }
            Transform::Dedup { .. } => {
                return Err(refuse(
                    "complete output mode",
                    format!("`{}`: Deduplicate has no result table", node.name),
                ))
            }
            _ => {}
        }
    }
    if !any {
        return Err(refuse(
            "complete output mode",
            "the pipeline has no aggregation",
        ));
    }
    Ok(())
}

/// Refuses transforms and strategies the runner does not execute, naming them.
pub fn check_translatable(plan: &Plan) -> Result<(), MicroBatchError> {
    for node in &plan.pipeline.transforms {
        let input = node.inputs.first().and_then(|i| plan.collection(i));
        match &node.transform {
            Transform::Combine { .. }
            | Transform::GroupByKey { .. }
            | Transform::TopN { .. }
            | Transform::Join { .. }
            | Transform::CoGroupByKey { .. } => {
                if let Some(info) = input {
                    firing_plan(&info.windowing)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_model::time::Duration;
    use weir_model::window::WindowFn;

    fn strategy(trigger: Trigger) -> WindowingStrategy {
        let mut w = WindowingStrategy::new(WindowFn::Fixed {
            size: Duration(10),
            offset: Duration::ZERO,
        });
        w.trigger = trigger;
        w
    }

    #[test]
    fn the_default_trigger_maps_to_append_and_early_firings_to_update() {
        assert_eq!(
            firing_plan(&strategy(Trigger::Default))
                .unwrap()
                .output_mode(),
            OutputMode::Append
        );
        let early = Trigger::AfterWatermark {
            early: Some(Box::new(Trigger::AfterCount { count: 2 })),
            late: None,
        };
        let p = firing_plan(&strategy(early)).unwrap();
        assert_eq!(p.output_mode(), OutputMode::Update);
        assert_eq!(p.early, Some(PaneCondition::AtLeastRows(2)));
        assert_eq!(p.late, None);
    }

    #[test]
    fn triggers_without_a_micro_batch_meaning_are_refused_naming_them() {
        let err = firing_plan(&strategy(Trigger::AfterCount { count: 3 }))
            .unwrap_err()
            .to_string();
        assert!(err.contains("after_count(3)"), "{err}");
        let err = firing_plan(&strategy(Trigger::OrFinally {
            main: Box::new(Trigger::Default),
            until: Box::new(Trigger::Never),
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("or_finally"), "{err}");
    }

    #[test]
    fn a_processing_time_condition_holds_once_its_delay_has_passed() {
        let c = PaneCondition::AfterProcessingTime(100);
        assert!(!c.holds(3, Some(1_000), 1_099));
        assert!(c.holds(3, Some(1_000), 1_100));
        assert!(!c.holds(0, Some(1_000), 5_000));
    }
}
