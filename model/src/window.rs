//! Windowing strategies (Beam's vocabulary): window functions, triggers, accumulation mode,
//! allowed lateness, late-data policy, timestamp combiner, and the pane info that windowed
//! results carry. Also the watermark strategy that `AssignTimestamps` attaches to a collection.

use crate::expr::Expr;
use crate::time::{Duration, Timestamp};
use crate::udf::CustomWindowFn;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A half-open interval `[start, end)` of event time. The global window is
/// `[MIN_TIMESTAMP, MAX_TIMESTAMP)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    /// Inclusive start.
    pub start: Timestamp,
    /// Exclusive end.
    pub end: Timestamp,
}

impl Window {
    /// The global window.
    pub const GLOBAL: Window = Window {
        start: crate::time::MIN_TIMESTAMP,
        end: crate::time::MAX_TIMESTAMP,
    };

    /// `[start, end)`.
    pub fn new(start: Timestamp, end: Timestamp) -> Self {
        Window { start, end }
    }
    /// The last timestamp inside the window, `end - 1` (Beam's and Flink's `maxTimestamp`).
    pub fn max_timestamp(&self) -> Timestamp {
        self.end - 1
    }
    /// Whether this is the global window.
    pub fn is_global(&self) -> bool {
        *self == Window::GLOBAL
    }
    /// Whether the two windows overlap or touch (`[a, b)` and `[b, c)` touch), so that session
    /// windows merge.
    pub fn intersects_or_touches(&self, other: &Window) -> bool {
        self.start <= other.end && other.start <= self.end
    }
    /// The smallest window covering both.
    pub fn span(&self, other: &Window) -> Window {
        Window {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// How elements are assigned to windows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum WindowFn {
    /// One window holding everything.
    Global,
    /// Tumbling windows of `size`, aligned to the epoch plus `offset`.
    Fixed {
        /// Window length.
        size: Duration,
        /// Shift of window boundaries from the epoch.
        #[serde(default)]
        offset: Duration,
    },
    /// Windows of `size` starting every `period`; an element falls in `size / period` windows.
    Sliding {
        /// Window length.
        size: Duration,
        /// Distance between window starts.
        period: Duration,
        /// Shift of window boundaries from the epoch.
        #[serde(default)]
        offset: Duration,
    },
    /// Per-key sessions: each element opens `[ts, ts + gap)`; overlapping or touching windows
    /// merge.
    Sessions {
        /// Static gap (used when `gap_expr` is absent).
        gap: Duration,
        /// Per-element gap in milliseconds, computed from the row. Rows whose gap is <= 0
        /// are handled per runner (filtered by micro-batch, an error in continuous).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gap_expr: Option<Expr>,
    },
    /// A user-defined window function.
    Custom(Box<dyn CustomWindowFn>),
}

impl WindowFn {
    /// Whether windows merge (sessions, or a custom merging function).
    pub fn is_merging(&self) -> bool {
        match self {
            WindowFn::Sessions { .. } => true,
            WindowFn::Custom(f) => f.is_merging(),
            _ => false,
        }
    }
    /// Whether this is the global window.
    pub fn is_global(&self) -> bool {
        matches!(self, WindowFn::Global)
    }
}

impl fmt::Display for WindowFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowFn::Global => write!(f, "global"),
            WindowFn::Fixed { size, offset } if offset.0 == 0 => write!(f, "fixed({size})"),
            WindowFn::Fixed { size, offset } => write!(f, "fixed({size}, offset {offset})"),
            WindowFn::Sliding { size, period, .. } => write!(f, "sliding({size} every {period})"),
            WindowFn::Sessions {
                gap,
                gap_expr: None,
            } => write!(f, "sessions(gap {gap})"),
            WindowFn::Sessions {
                gap_expr: Some(e), ..
            } => write!(f, "sessions(gap ms = {e})"),
            WindowFn::Custom(c) => write!(f, "custom({})", c.name()),
        }
    }
}

/// When a window's contents are emitted (Beam triggers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Trigger {
    /// The default: fire once when the watermark passes the end of the window, and again for
    /// every late element within the allowed lateness.
    Default,
    /// Fire ON_TIME when the watermark passes the end of the window, with optional EARLY and
    /// LATE firings.
    AfterWatermark {
        /// Fires before the watermark (EARLY panes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        early: Option<Box<Trigger>>,
        /// Fires after the watermark, within allowed lateness (LATE panes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        late: Option<Box<Trigger>>,
    },
    /// Fires once `delay` of processing time after the first element of a pane arrives.
    AfterProcessingTime {
        /// Delay after the pane's first element.
        delay: Duration,
    },
    /// Fires once the pane holds at least `count` elements.
    AfterCount {
        /// Element count.
        count: u64,
    },
    /// Fires its sub-trigger again and again.
    Repeatedly {
        /// The trigger to repeat.
        trigger: Box<Trigger>,
    },
    /// Runs each sub-trigger in turn; fires when the current one fires.
    AfterEach {
        /// The sequence.
        triggers: Vec<Trigger>,
    },
    /// Fires when any sub-trigger fires.
    AfterFirst {
        /// The alternatives.
        triggers: Vec<Trigger>,
    },
    /// Fires when every sub-trigger has fired.
    AfterAll {
        /// The conjuncts.
        triggers: Vec<Trigger>,
    },
    /// Fires like `main`, and finishes for good when `until` fires.
    OrFinally {
        /// The main trigger.
        main: Box<Trigger>,
        /// The finishing trigger.
        until: Box<Trigger>,
    },
    /// Never fires on its own; the window emits only at end of input/garbage collection.
    Never,
}

impl Trigger {
    /// Every trigger in this tree, this one first.
    pub fn walk(&self) -> Vec<&Trigger> {
        let mut out = vec![self];
        match self {
            Trigger::AfterWatermark { early, late } => {
                out.extend(early.iter().flat_map(|t| t.walk()));
                out.extend(late.iter().flat_map(|t| t.walk()));
            }
            Trigger::Repeatedly { trigger } => out.extend(trigger.walk()),
            Trigger::AfterEach { triggers }
            | Trigger::AfterFirst { triggers }
            | Trigger::AfterAll { triggers } => out.extend(triggers.iter().flat_map(|t| t.walk())),
            Trigger::OrFinally { main, until } => {
                out.extend(main.walk());
                out.extend(until.walk());
            }
            _ => {}
        }
        out
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, name: &str, ts: &[Trigger]| {
            write!(f, "{name}(")?;
            for (i, t) in ts.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{t}")?;
            }
            write!(f, ")")
        };
        match self {
            Trigger::Default => write!(f, "default"),
            Trigger::AfterWatermark { early, late } => {
                write!(f, "after_watermark")?;
                if let Some(e) = early {
                    write!(f, " early {e}")?;
                }
                if let Some(l) = late {
                    write!(f, " late {l}")?;
                }
                Ok(())
            }
            Trigger::AfterProcessingTime { delay } => write!(f, "after_processing_time({delay})"),
            Trigger::AfterCount { count } => write!(f, "after_count({count})"),
            Trigger::Repeatedly { trigger } => write!(f, "repeatedly({trigger})"),
            Trigger::AfterEach { triggers } => list(f, "after_each", triggers),
            Trigger::AfterFirst { triggers } => list(f, "after_first", triggers),
            Trigger::AfterAll { triggers } => list(f, "after_all", triggers),
            Trigger::OrFinally { main, until } => write!(f, "{main} or_finally {until}"),
            Trigger::Never => write!(f, "never"),
        }
    }
}

/// Whether successive panes of a window repeat earlier elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AccumulationMode {
    /// Each pane holds only the elements since the previous pane.
    #[default]
    Discarding,
    /// Each pane holds every element of the window so far.
    Accumulating,
}

/// What happens to an element that arrives too late for every window it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "policy")]
pub enum LateDataPolicy {
    /// Dropped and counted.
    #[default]
    Drop,
    /// Routed to the side output with this tag (collection `<transform>.<tag>`).
    SideOutput {
        /// Tag of the side output.
        tag: String,
    },
}

/// Whether a window emits a final pane when it is garbage-collected (Beam's ClosingBehavior).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClosingBehavior {
    /// Emit a final pane if anything arrived since the last one.
    #[default]
    FireIfNonEmpty,
    /// Always emit a final pane, even if empty.
    FireAlways,
}

/// The timestamp given to an aggregated result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimestampCombiner {
    /// The window's maximum timestamp (`end - 1`): Beam's default.
    #[default]
    EndOfWindow,
    /// The earliest input timestamp of the pane.
    Earliest,
    /// The latest input timestamp of the pane.
    Latest,
}

/// Everything that decides how a collection is windowed and when results are emitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowingStrategy {
    /// Window assignment.
    pub window_fn: WindowFn,
    /// When panes fire.
    #[serde(default = "default_trigger")]
    pub trigger: Trigger,
    /// Discarding or accumulating panes.
    #[serde(default)]
    pub accumulation: AccumulationMode,
    /// How long after the watermark passes a window's end late data is still accepted.
    #[serde(default)]
    pub allowed_lateness: Duration,
    /// What happens to data too late for every window.
    #[serde(default)]
    pub late_data: LateDataPolicy,
    /// Final pane on garbage collection.
    #[serde(default)]
    pub closing: ClosingBehavior,
    /// Timestamp of aggregated results.
    #[serde(default)]
    pub timestamp_combiner: TimestampCombiner,
}

fn default_trigger() -> Trigger {
    Trigger::Default
}

impl Default for WindowingStrategy {
    fn default() -> Self {
        WindowingStrategy::new(WindowFn::Global)
    }
}

impl WindowingStrategy {
    /// The given window function with the default trigger, discarding, no lateness.
    pub fn new(window_fn: WindowFn) -> Self {
        WindowingStrategy {
            window_fn,
            trigger: Trigger::Default,
            accumulation: AccumulationMode::Discarding,
            allowed_lateness: Duration::ZERO,
            late_data: LateDataPolicy::Drop,
            closing: ClosingBehavior::FireIfNonEmpty,
            timestamp_combiner: TimestampCombiner::EndOfWindow,
        }
    }
    /// Whether this is the default global windowing (no windowing applied).
    pub fn is_default_global(&self) -> bool {
        self.window_fn.is_global() && self.trigger == Trigger::Default
    }
}

impl fmt::Display for WindowingStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.window_fn)?;
        if self.trigger != Trigger::Default {
            write!(f, ", trigger {}", self.trigger)?;
        }
        if self.accumulation == AccumulationMode::Accumulating {
            write!(f, ", accumulating")?;
        }
        if self.allowed_lateness.0 > 0 {
            write!(f, ", allowed lateness {}", self.allowed_lateness)?;
        }
        if let LateDataPolicy::SideOutput { tag } = &self.late_data {
            write!(f, ", late data -> .{tag}")?;
        }
        Ok(())
    }
}

/// Whether a pane fired before, at, or after the watermark passed the end of its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaneTiming {
    /// Before the watermark reached the end of the window.
    Early,
    /// The firing when the watermark passed the end of the window.
    OnTime,
    /// After the watermark passed the end of the window.
    Late,
    /// Not determined (e.g. unwindowed data).
    Unknown,
}

impl PaneTiming {
    /// The name used in output files: `EARLY`, `ON_TIME`, `LATE`, `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            PaneTiming::Early => "EARLY",
            PaneTiming::OnTime => "ON_TIME",
            PaneTiming::Late => "LATE",
            PaneTiming::Unknown => "UNKNOWN",
        }
    }
    /// Inverse of [`PaneTiming::as_str`].
    pub fn parse(s: &str) -> Option<PaneTiming> {
        Some(match s {
            "EARLY" => PaneTiming::Early,
            "ON_TIME" => PaneTiming::OnTime,
            "LATE" => PaneTiming::Late,
            "UNKNOWN" => PaneTiming::Unknown,
            _ => return None,
        })
    }
}

/// Which firing of a window produced a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PaneInfo {
    /// EARLY / ON_TIME / LATE.
    pub timing: PaneTiming,
    /// 0 for the first pane of the window, then 1, 2, ...
    pub index: u64,
    /// Whether this is the window's first pane.
    pub is_first: bool,
    /// Whether this is the window's last pane.
    pub is_last: bool,
}

impl PaneInfo {
    /// The pane of unwindowed data: one ON_TIME pane that is first and last
    /// (Beam's `NO_FIRING` is reported as this for simplicity).
    pub const NO_FIRING: PaneInfo = PaneInfo {
        timing: PaneTiming::Unknown,
        index: 0,
        is_first: true,
        is_last: true,
    };
}

/// How a source's or `AssignTimestamps`' watermark is derived from event times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatermarkStrategy {
    /// Bound on out-of-orderness: the watermark trails the largest event time by this much.
    #[serde(default)]
    pub max_out_of_orderness: Duration,
    /// A partition with no events for this long stops holding the watermark back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
}

impl WatermarkStrategy {
    /// Bounded out-of-orderness `delay`, no idleness.
    pub fn bounded(delay: Duration) -> Self {
        WatermarkStrategy {
            max_out_of_orderness: delay,
            idle_timeout: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touching_windows_merge_as_sessions() {
        let a = Window::new(0, 10);
        let b = Window::new(10, 20);
        assert!(a.intersects_or_touches(&b));
        assert_eq!(a.span(&b), Window::new(0, 20));
        assert!(!a.intersects_or_touches(&Window::new(11, 12)));
        assert_eq!(a.max_timestamp(), 9);
    }

    #[test]
    fn windowing_strategy_json_round_trip() {
        let mut w = WindowingStrategy::new(WindowFn::Fixed {
            size: Duration::from_mins(1),
            offset: Duration::ZERO,
        });
        w.trigger = Trigger::AfterWatermark {
            early: Some(Box::new(Trigger::AfterCount { count: 2 })),
            late: Some(Box::new(Trigger::AfterCount { count: 1 })),
        };
        w.allowed_lateness = Duration::from_secs(10);
        let json = serde_json::to_string(&w).unwrap();
        let back: WindowingStrategy = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}
