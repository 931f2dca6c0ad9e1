//! Requirements (what a pipeline needs) and capabilities (what a runner supports), after
//! Beam's requirement URNs: a runner refuses a pipeline needing a feature it lacks, naming it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// A feature a pipeline may need from its runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feature {
    /// Reads a source that never ends.
    UnboundedSources,
    /// Non-global windows (fixed, sliding).
    Windowing,
    /// Session windows or another merging window function.
    MergingWindows,
    /// A user-defined window function.
    CustomWindows,
    /// Per-element session gaps.
    DynamicSessionGaps,
    /// Allowed lateness > 0: late data re-fires windows.
    AllowedLateness,
    /// Late data routed to a side output.
    LateDataSideOutput,
    /// EARLY firings before the watermark.
    EarlyFirings,
    /// LATE firings with a late trigger.
    LateFirings,
    /// Processing-time triggers.
    ProcessingTimeTriggers,
    /// Element-count triggers.
    CountTriggers,
    /// Composite triggers (repeatedly, after-each/first/all, or-finally).
    CompositeTriggers,
    /// Accumulating panes.
    AccumulatingPanes,
    /// Non-default timestamp combiners.
    TimestampCombiners,
    /// Joins and CoGroupByKey.
    Joins,
    /// Stateful ParDo (keyed state).
    StatefulProcessing,
    /// Event-time timers.
    EventTimeTimers,
    /// Processing-time timers.
    ProcessingTimeTimers,
    /// Element-wise user functions.
    UserFunctions,
    /// Batch-wise user functions.
    BatchUserFunctions,
    /// User-defined combiners.
    UserCombiners,
    /// Side outputs of ParDo.
    SideOutputs,
    /// Dead-letter outputs for malformed records.
    DeadLetterOutputs,
    /// Watermark idleness.
    IdleTimeout,
    /// AssertEqual checks.
    Assertions,
}

impl Feature {
    /// Every feature.
    pub const ALL: &'static [Feature] = &[
        Feature::UnboundedSources,
        Feature::Windowing,
        Feature::MergingWindows,
        Feature::CustomWindows,
        Feature::DynamicSessionGaps,
        Feature::AllowedLateness,
        Feature::LateDataSideOutput,
        Feature::EarlyFirings,
        Feature::LateFirings,
        Feature::ProcessingTimeTriggers,
        Feature::CountTriggers,
        Feature::CompositeTriggers,
        Feature::AccumulatingPanes,
        Feature::TimestampCombiners,
        Feature::Joins,
        Feature::StatefulProcessing,
        Feature::EventTimeTimers,
        Feature::ProcessingTimeTimers,
        Feature::UserFunctions,
        Feature::BatchUserFunctions,
        Feature::UserCombiners,
        Feature::SideOutputs,
        Feature::DeadLetterOutputs,
        Feature::IdleTimeout,
        Feature::Assertions,
    ];

    /// The question of Beam's capability matrix the feature answers: `what` is computed,
    /// `where` in event time, `when` in processing time results appear, `how` refinements
    /// relate.
    pub fn group(self) -> &'static str {
        use Feature::*;
        match self {
            UnboundedSources | Joins | StatefulProcessing | UserFunctions | BatchUserFunctions
            | UserCombiners | SideOutputs | DeadLetterOutputs | Assertions => "what",
            Windowing | MergingWindows | CustomWindows | DynamicSessionGaps
            | TimestampCombiners => "where",
            AllowedLateness
            | LateDataSideOutput
            | EarlyFirings
            | LateFirings
            | ProcessingTimeTriggers
            | CountTriggers
            | CompositeTriggers
            | EventTimeTimers
            | ProcessingTimeTimers
            | IdleTimeout => "when",
            AccumulatingPanes => "how",
        }
    }

    /// The feature's name, e.g. `merging-windows`.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())
    }
}

/// How a runner supports a feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "support")]
pub enum Support {
    /// As the modelled engine does it.
    Native,
    /// Supported as the modelled engine does it, but only in some forms; the others are
    /// refused at translation, naming the form.
    Partial {
        /// What is supported and what is refused.
        note: String,
    },
    /// Implemented by the runner in its own execution style; the engine it models lacks it.
    Extension {
        /// What the extension does.
        note: String,
    },
    /// Refused at translation.
    Unsupported {
        /// Why.
        reason: String,
    },
}

/// A runner's capability table: a support level per feature (absent = unsupported).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Capabilities {
    /// One row per feature.
    pub features: Vec<(Feature, Support)>,
}

impl Capabilities {
    /// Every feature supported natively.
    pub fn all_native() -> Self {
        Capabilities {
            features: Feature::ALL.iter().map(|f| (*f, Support::Native)).collect(),
        }
    }
    /// Overrides the support of one feature.
    pub fn with(mut self, feature: Feature, support: Support) -> Self {
        self.features.retain(|(f, _)| *f != feature);
        self.features.push((feature, support));
        self.features.sort_by_key(|(f, _)| *f);
        self
    }
    /// The support for `feature`.
    pub fn support(&self, feature: Feature) -> Support {
        self.features
            .iter()
            .find(|(f, _)| *f == feature)
            .map(|(_, s)| s.clone())
            .unwrap_or(Support::Unsupported {
                reason: "not declared by the runner".into(),
            })
    }
    /// The first required feature this runner does not support, with the reason.
    pub fn check(&self, required: &BTreeSet<Feature>) -> Option<(Feature, String)> {
        required.iter().find_map(|f| match self.support(*f) {
            Support::Unsupported { reason } => Some((*f, reason)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runner_lacking_a_required_feature_is_refused_naming_it() {
        let caps = Capabilities::all_native()
            .with(
                Feature::MergingWindows,
                Support::Unsupported {
                    reason: "sessions are not modelled".into(),
                },
            )
            .with(
                Feature::AllowedLateness,
                Support::Extension {
                    note: "micro-batch style".into(),
                },
            );
        let needs: BTreeSet<Feature> = [Feature::Windowing, Feature::AllowedLateness].into();
        assert_eq!(caps.check(&needs), None);
        let needs: BTreeSet<Feature> = [Feature::Windowing, Feature::MergingWindows].into();
        assert_eq!(
            caps.check(&needs),
            Some((Feature::MergingWindows, "sessions are not modelled".into()))
        );
        assert_eq!(Feature::MergingWindows.name(), "merging-windows");
    }
}
