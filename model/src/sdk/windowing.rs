//! Builders for windowing strategies: `fixed(size).allowed_lateness(..).late_to("late")`.

use crate::expr::Expr;
use crate::time::Duration;
use crate::udf::CustomWindowFn;
use crate::window::{
    AccumulationMode, ClosingBehavior, LateDataPolicy, TimestampCombiner, Trigger, WindowFn,
    WindowingStrategy,
};

/// A [`WindowingStrategy`] under construction. Start with [`fixed`], [`sliding`],
/// [`sessions`], [`sessions_with_gap`], [`global`] or [`custom_windows`], chain options, and
/// pass it to [`Collection::window_into`](super::Collection::window_into).
///
/// ```
/// use weir_model::sdk::prelude::*;
///
/// let w: WindowingStrategy = sliding(Duration::from_mins(10), Duration::from_mins(1))
///     .trigger(trigger::after_watermark().early(trigger::repeatedly(trigger::after_count(100))))
///     .accumulating()
///     .allowed_lateness(Duration::from_secs(30))
///     .late_to("late")
///     .into();
/// assert_eq!(w.to_string(), "sliding(10m every 1m), trigger after_watermark early repeatedly(after_count(100)), accumulating, allowed lateness 30s, late data -> .late");
/// ```
#[derive(Debug, Clone)]
#[must_use = "a Windowing does nothing until passed to `window_into`"]
pub struct Windowing {
    strategy: WindowingStrategy,
}

/// One window holding everything (the default windowing), e.g. to set a trigger on
/// unwindowed data.
pub fn global() -> Windowing {
    Windowing::from(WindowFn::Global)
}

/// Tumbling windows of `size`, aligned to the epoch.
pub fn fixed(size: Duration) -> Windowing {
    Windowing::from(WindowFn::Fixed {
        size,
        offset: Duration::ZERO,
    })
}

/// Windows of `size` starting every `period`, aligned to the epoch.
pub fn sliding(size: Duration, period: Duration) -> Windowing {
    Windowing::from(WindowFn::Sliding {
        size,
        period,
        offset: Duration::ZERO,
    })
}

/// Per-key sessions: each row opens `[ts, ts + gap)` and touching windows merge.
pub fn sessions(gap: Duration) -> Windowing {
    Windowing::from(WindowFn::Sessions {
        gap,
        gap_expr: None,
    })
}

/// Sessions whose gap is computed per row: `gap_millis` is an int64 expression.
pub fn sessions_with_gap(gap_millis: Expr) -> Windowing {
    Windowing::from(WindowFn::Sessions {
        gap: Duration::ZERO,
        gap_expr: Some(gap_millis),
    })
}

/// Windows assigned by a user-defined window function.
pub fn custom_windows(window_fn: impl CustomWindowFn + 'static) -> Windowing {
    Windowing::from(WindowFn::Custom(Box::new(window_fn)))
}

impl From<WindowFn> for Windowing {
    fn from(window_fn: WindowFn) -> Self {
        Windowing {
            strategy: WindowingStrategy::new(window_fn),
        }
    }
}

impl From<Windowing> for WindowingStrategy {
    fn from(w: Windowing) -> Self {
        w.strategy
    }
}

impl Windowing {
    /// Shifts fixed or sliding window boundaries from the epoch by `offset` (other window
    /// functions have no boundaries to shift and are left as they are).
    pub fn offset(mut self, offset: Duration) -> Self {
        match &mut self.strategy.window_fn {
            WindowFn::Fixed { offset: o, .. } | WindowFn::Sliding { offset: o, .. } => *o = offset,
            _ => {}
        }
        self
    }

    /// When panes fire (see [`trigger`](super::trigger)); the default fires at the watermark
    /// and for every late row within the allowed lateness.
    pub fn trigger(mut self, trigger: impl Into<Trigger>) -> Self {
        self.strategy.trigger = trigger.into();
        self
    }

    /// Each pane holds every row of the window so far.
    pub fn accumulating(mut self) -> Self {
        self.strategy.accumulation = AccumulationMode::Accumulating;
        self
    }

    /// Each pane holds only the rows since the previous pane (the default).
    pub fn discarding(mut self) -> Self {
        self.strategy.accumulation = AccumulationMode::Discarding;
        self
    }

    /// Accepts rows up to `lateness` after the watermark passes a window's end.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.strategy.allowed_lateness = lateness;
        self
    }

    /// Sends rows too late for every window to the side output `tag` of the aggregation that
    /// follows (collection `<aggregation>.<tag>`, see
    /// [`Collection::side_output`](super::Collection::side_output)) instead of dropping them.
    pub fn late_to(mut self, tag: impl Into<String>) -> Self {
        self.strategy.late_data = LateDataPolicy::SideOutput { tag: tag.into() };
        self
    }

    /// Drops rows too late for every window, counting them (the default).
    pub fn drop_late(mut self) -> Self {
        self.strategy.late_data = LateDataPolicy::Drop;
        self
    }

    /// Whether a window emits a final pane when it is garbage-collected.
    pub fn closing(mut self, closing: ClosingBehavior) -> Self {
        self.strategy.closing = closing;
        self
    }

    /// The timestamp given to aggregated results (default: end of window).
    pub fn timestamp_combiner(mut self, combiner: TimestampCombiner) -> Self {
        self.strategy.timestamp_combiner = combiner;
        self
    }

    /// The strategy built so far.
    pub fn strategy(&self) -> &WindowingStrategy {
        &self.strategy
    }
}
