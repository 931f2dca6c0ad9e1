//! Trigger builders: `after_watermark().early(repeatedly(after_count(10)))`.

use crate::time::Duration;
use crate::window::Trigger;

/// The default trigger: fire when the watermark passes the end of the window, then once per
/// late row within the allowed lateness.
pub fn default() -> Trigger {
    Trigger::Default
}

/// Fires ON_TIME when the watermark passes the end of the window; add EARLY and LATE firings
/// with [`WatermarkTrigger::early`] and [`WatermarkTrigger::late`].
pub fn after_watermark() -> WatermarkTrigger {
    WatermarkTrigger {
        early: None,
        late: None,
    }
}

/// Fires once the pane holds at least `count` rows.
pub fn after_count(count: u64) -> Trigger {
    Trigger::AfterCount { count }
}

/// Fires once `delay` of processing time after the first row of a pane arrives.
pub fn after_processing_time(delay: Duration) -> Trigger {
    Trigger::AfterProcessingTime { delay }
}

/// Fires `trigger` again and again.
pub fn repeatedly(trigger: impl Into<Trigger>) -> Trigger {
    Trigger::Repeatedly {
        trigger: Box::new(trigger.into()),
    }
}

/// Runs the triggers one after another.
pub fn after_each(triggers: impl IntoIterator<Item = Trigger>) -> Trigger {
    Trigger::AfterEach {
        triggers: triggers.into_iter().collect(),
    }
}

/// Fires when any of the triggers fires.
pub fn after_first(triggers: impl IntoIterator<Item = Trigger>) -> Trigger {
    Trigger::AfterFirst {
        triggers: triggers.into_iter().collect(),
    }
}

/// Fires when all of the triggers have fired.
pub fn after_all(triggers: impl IntoIterator<Item = Trigger>) -> Trigger {
    Trigger::AfterAll {
        triggers: triggers.into_iter().collect(),
    }
}

/// Fires like `main` and finishes for good when `until` fires.
pub fn or_finally(main: impl Into<Trigger>, until: impl Into<Trigger>) -> Trigger {
    Trigger::OrFinally {
        main: Box::new(main.into()),
        until: Box::new(until.into()),
    }
}

/// Never fires on its own: windows emit only at end of input or garbage collection.
pub fn never() -> Trigger {
    Trigger::Never
}

/// An after-watermark trigger under construction ([`after_watermark`]); converts into a
/// [`Trigger`].
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a WatermarkTrigger does nothing until passed to `Windowing::trigger`"]
pub struct WatermarkTrigger {
    early: Option<Trigger>,
    late: Option<Trigger>,
}

impl WatermarkTrigger {
    /// Fires EARLY panes with `trigger` before the watermark reaches the end of the window.
    pub fn early(mut self, trigger: impl Into<Trigger>) -> Self {
        self.early = Some(trigger.into());
        self
    }

    /// Fires LATE panes with `trigger` after the watermark, within the allowed lateness.
    pub fn late(mut self, trigger: impl Into<Trigger>) -> Self {
        self.late = Some(trigger.into());
        self
    }
}

impl From<WatermarkTrigger> for Trigger {
    fn from(t: WatermarkTrigger) -> Self {
        Trigger::AfterWatermark {
            early: t.early.map(Box::new),
            late: t.late.map(Box::new),
        }
    }
}
