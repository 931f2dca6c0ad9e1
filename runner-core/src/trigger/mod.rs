//! Trigger state machines: when a window of one key fires a pane (Beam's
//! `TriggerStateMachine` family run by `TriggerStateMachineRunner`).
//!
//! A [`TriggerState`] mirrors the [`Trigger`] tree of the windowing strategy and holds, per
//! key and window, every node's state (element count, processing-time deadline) and its
//! *finished* bit. The reduce logic drives it with the same five calls Beam uses:
//! [`TriggerState::on_element`], [`TriggerState::should_fire`], [`TriggerState::on_fire`],
//! [`TriggerState::merged`] (for merging windows) and [`TriggerState::clear`]. Once the root
//! is finished the window is closed: it fires no more and later elements are dropped.
//!
//! Each node follows the Beam state machine of the same name; the doc comment of each rule
//! says which. Two deliberate differences, both documented where they apply:
//! - a processing-time deadline is reached when `processing_time >= deadline` (Beam's
//!   in-memory timers use `>`; a manual clock that jumps to the deadline must fire there);
//! - the reduce logic asks `should_fire` after every element rather than once per bundle,
//!   so results do not depend on how input is cut into batches.

mod merge;

use crate::window::end_of_window_reached;
use serde::{Deserialize, Serialize};
use weir_model::time::Timestamp;
use weir_model::window::{Trigger, Window};

/// What a trigger can see when it runs: its window, the two clocks, and whether windows
/// can merge (some composites run every sub-trigger in parallel when they can, as in Beam).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerContext {
    /// The window the trigger runs for.
    pub window: Window,
    /// The input watermark.
    pub input_watermark: Timestamp,
    /// The current processing time.
    pub processing_time: Timestamp,
    /// Whether the window function merges windows.
    pub merging: bool,
}

impl TriggerContext {
    /// Whether the input watermark has passed the end of the window.
    fn end_of_window_reached(&self) -> bool {
        end_of_window_reached(&self.window, self.input_watermark)
    }
}

/// The state of a trigger tree for one key and window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerState {
    finished: bool,
    node: Node,
}

/// One node's own state; sub-triggers are nested [`TriggerState`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "node", rename_all = "snake_case")]
enum Node {
    /// Beam's `DefaultTriggerStateMachine`: fires whenever the watermark is past the end of
    /// the window, never finishes.
    Default,
    /// Beam's `AfterWatermark.FromEndOfWindow`: fires once at the end of the window.
    EndOfWindow,
    /// Beam's `AfterWatermarkEarlyAndLate`: `early` repeats before the end of the window,
    /// then an ON_TIME firing, then `late` repeats (when present).
    EarlyAndLate {
        early: Box<TriggerState>,
        late: Option<Box<TriggerState>>,
    },
    /// Beam's `AfterProcessingTime.pastFirstElementInPane().plusDelayOf(delay)`.
    ProcessingTime {
        delay: i64,
        deadline: Option<Timestamp>,
    },
    /// Beam's `AfterPane.elementCountAtLeast(target)`.
    Count { target: u64, seen: u64 },
    /// Beam's `Repeatedly.forever`.
    Repeatedly { repeated: Box<TriggerState> },
    /// Beam's `AfterEach.inOrder`.
    AfterEach { sequence: Vec<TriggerState> },
    /// Beam's `AfterFirst.of`.
    AfterFirst { alternatives: Vec<TriggerState> },
    /// Beam's `AfterAll.of`.
    AfterAll { conjuncts: Vec<TriggerState> },
    /// Beam's `OrFinallyTrigger`.
    OrFinally {
        main: Box<TriggerState>,
        until: Box<TriggerState>,
    },
    /// Beam's `Never.ever()`.
    Never,
}

impl TriggerState {
    /// The fresh state of `trigger` for a new window.
    pub fn new(trigger: &Trigger) -> TriggerState {
        let boxed = |t: &Trigger| Box::new(TriggerState::new(t));
        let node = match trigger {
            Trigger::Default => Node::Default,
            Trigger::AfterWatermark {
                early: None,
                late: None,
            } => Node::EndOfWindow,
            // Beam: `pastEndOfWindow().withLateFirings(l)` runs `Never` as the early trigger.
            Trigger::AfterWatermark { early, late } => Node::EarlyAndLate {
                early: early
                    .as_deref()
                    .map_or_else(|| Box::new(TriggerState::new(&Trigger::Never)), boxed),
                late: late.as_deref().map(boxed),
            },
            Trigger::AfterProcessingTime { delay } => Node::ProcessingTime {
                delay: delay.0,
                deadline: None,
            },
            Trigger::AfterCount { count } => Node::Count {
                target: *count,
                seen: 0,
            },
            Trigger::Repeatedly { trigger } => Node::Repeatedly {
                repeated: boxed(trigger),
            },
            Trigger::AfterEach { triggers } => Node::AfterEach {
                sequence: triggers.iter().map(TriggerState::new).collect(),
            },
            Trigger::AfterFirst { triggers } => Node::AfterFirst {
                alternatives: triggers.iter().map(TriggerState::new).collect(),
            },
            Trigger::AfterAll { triggers } => Node::AfterAll {
                conjuncts: triggers.iter().map(TriggerState::new).collect(),
            },
            Trigger::OrFinally { main, until } => Node::OrFinally {
                main: boxed(main),
                until: boxed(until),
            },
            Trigger::Never => Node::Never,
        };
        TriggerState {
            finished: false,
            node,
        }
    }

    /// Whether this trigger has finished: at the root, the window is closed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// An element was added to the window's pane.
    pub fn on_element(&mut self, cx: &TriggerContext) {
        match &mut self.node {
            Node::Default | Node::EndOfWindow | Node::Never => {}
            Node::EarlyAndLate { early, late } => {
                if cx.merging {
                    // Beam runs both sub-triggers when windows can merge: a merge may
                    // re-activate the early trigger.
                    early.on_element(cx);
                    if let Some(late) = late {
                        late.on_element(cx);
                    }
                } else if !early.finished {
                    early.on_element(cx);
                } else if let Some(late) = late {
                    late.on_element(cx);
                }
            }
            Node::ProcessingTime { delay, deadline } => {
                // The first element of the pane starts the delay; later ones do not move it.
                if deadline.is_none() {
                    *deadline = Some(cx.processing_time.saturating_add(*delay));
                }
            }
            Node::Count { seen, .. } => *seen += 1,
            Node::Repeatedly { repeated } => repeated.on_element(cx),
            Node::AfterEach { sequence } => {
                if cx.merging {
                    sequence.iter_mut().for_each(|t| t.on_element(cx));
                } else if let Some(current) = sequence.iter_mut().find(|t| !t.finished) {
                    current.on_element(cx);
                }
            }
            Node::AfterFirst { alternatives } => {
                alternatives.iter_mut().for_each(|t| t.on_element(cx))
            }
            Node::AfterAll { conjuncts } => conjuncts
                .iter_mut()
                .filter(|t| !t.finished)
                .for_each(|t| t.on_element(cx)),
            Node::OrFinally { main, until } => {
                main.on_element(cx);
                until.on_element(cx);
            }
        }
    }

    /// Whether the trigger is ready to fire now.
    pub fn should_fire(&self, cx: &TriggerContext) -> bool {
        match &self.node {
            Node::Default | Node::EndOfWindow => cx.end_of_window_reached(),
            Node::EarlyAndLate { early, late } => {
                if !early.finished {
                    early.should_fire(cx) || cx.end_of_window_reached()
                } else {
                    late.as_ref().is_some_and(|l| l.should_fire(cx))
                }
            }
            Node::ProcessingTime { deadline, .. } => {
                deadline.is_some_and(|d| processing_deadline_reached(d, cx))
            }
            Node::Count { target, seen } => seen >= target,
            Node::Repeatedly { repeated } => repeated.should_fire(cx),
            Node::AfterEach { sequence } => sequence
                .iter()
                .find(|t| !t.finished)
                .is_some_and(|t| t.should_fire(cx)),
            Node::AfterFirst { alternatives } => {
                alternatives.iter().any(|t| t.finished || t.should_fire(cx))
            }
            Node::AfterAll { conjuncts } => {
                conjuncts.iter().all(|t| t.finished || t.should_fire(cx))
            }
            Node::OrFinally { main, until } => main.should_fire(cx) || until.should_fire(cx),
            Node::Never => false,
        }
    }

    /// The trigger fired (after `should_fire` returned true): advance its state, possibly
    /// finishing it.
    pub fn on_fire(&mut self, cx: &TriggerContext) {
        match &mut self.node {
            Node::Default | Node::Never => {}
            Node::EndOfWindow => self.finished = true,
            Node::EarlyAndLate { early, late } => {
                if !early.finished {
                    if !cx.end_of_window_reached() {
                        // An EARLY firing: the early trigger repeats implicitly.
                        early.on_fire(cx);
                        early.clear();
                        early.finished = false;
                    } else {
                        // The ON_TIME firing ends the early phase; the late trigger, which may
                        // have run in parallel, starts afresh.
                        if early.should_fire(cx) {
                            early.on_fire(cx);
                        }
                        early.finished = true;
                        early.clear();
                        match late {
                            None => self.finished = true,
                            Some(late) => late.clear(),
                        }
                    }
                } else if let Some(late) = late {
                    // A LATE firing: the late trigger repeats implicitly.
                    late.on_fire(cx);
                    late.clear();
                    late.finished = false;
                } else {
                    self.finished = true;
                }
            }
            Node::ProcessingTime { deadline, .. } => {
                *deadline = None;
                self.finished = true;
            }
            Node::Count { .. } => self.finished = true,
            Node::Repeatedly { repeated } => {
                repeated.on_fire(cx);
                if repeated.finished {
                    repeated.reset_tree();
                }
            }
            Node::AfterEach { sequence } => {
                if let Some(current) = sequence.iter_mut().find(|t| !t.finished) {
                    current.on_fire(cx);
                }
                if cx.merging {
                    // Every sub-trigger ran in parallel for the fired pane; start them over.
                    sequence.iter_mut().for_each(TriggerState::clear);
                }
                self.finished = sequence.iter().all(|t| t.finished);
            }
            Node::AfterFirst { alternatives } => {
                for t in alternatives.iter_mut() {
                    if t.should_fire(cx) {
                        t.on_fire(cx);
                    } else {
                        // Whatever pane it was tracking is gone.
                        t.clear();
                    }
                }
                self.finished = true;
            }
            Node::AfterAll { conjuncts } => {
                conjuncts.iter_mut().for_each(|t| t.on_fire(cx));
                self.finished = true;
            }
            Node::OrFinally { main, until } => {
                // The `until` trigger is consulted first: when it fires, the whole trigger ends.
                if until.should_fire(cx) {
                    until.on_fire(cx);
                    main.clear();
                } else {
                    main.on_fire(cx);
                }
                self.finished = main.finished || until.finished;
            }
        }
    }

    /// Forgets the pane being tracked (counts, deadlines) in this subtree, keeping finished
    /// bits (Beam's `clear`).
    pub fn clear(&mut self) {
        match &mut self.node {
            Node::Default | Node::EndOfWindow | Node::Never => {}
            Node::EarlyAndLate { early, late } => {
                early.clear();
                if let Some(late) = late {
                    late.clear();
                }
            }
            Node::ProcessingTime { deadline, .. } => *deadline = None,
            Node::Count { seen, .. } => *seen = 0,
            Node::Repeatedly { repeated } => repeated.clear(),
            Node::AfterEach { sequence: list }
            | Node::AfterFirst { alternatives: list }
            | Node::AfterAll { conjuncts: list } => list.iter_mut().for_each(TriggerState::clear),
            Node::OrFinally { main, until } => {
                main.clear();
                until.clear();
            }
        }
    }

    /// Clears this subtree and marks every node unfinished (Beam's `resetTree`, used by
    /// `Repeatedly`).
    pub fn reset_tree(&mut self) {
        self.clear();
        self.finished = false;
        self.children_mut().for_each(TriggerState::reset_tree);
    }

    /// The earliest processing-time deadline in this tree later than `after`, if any (the
    /// runner's clock can jump there; Beam sets a processing-time timer at it). Deadlines
    /// already reached are left out: they can no longer change whether the trigger fires.
    pub fn next_processing_time(&self, after: Timestamp) -> Option<Timestamp> {
        let own = match &self.node {
            Node::ProcessingTime { deadline, .. } => deadline.filter(|d| *d > after),
            _ => None,
        };
        self.children()
            .filter_map(|c| c.next_processing_time(after))
            .chain(own)
            .min()
    }

    fn children(&self) -> Box<dyn Iterator<Item = &TriggerState> + '_> {
        match &self.node {
            Node::Default
            | Node::EndOfWindow
            | Node::Never
            | Node::ProcessingTime { .. }
            | Node::Count { .. } => Box::new(std::iter::empty()),
            Node::EarlyAndLate { early, late } => {
                Box::new(std::iter::once(&**early).chain(late.as_deref()))
            }
            Node::Repeatedly { repeated } => Box::new(std::iter::once(&**repeated)),
            Node::AfterEach { sequence: list }
            | Node::AfterFirst { alternatives: list }
            | Node::AfterAll { conjuncts: list } => Box::new(list.iter()),
            Node::OrFinally { main, until } => Box::new([&**main, &**until].into_iter()),
        }
    }

    fn children_mut(&mut self) -> Box<dyn Iterator<Item = &mut TriggerState> + '_> {
        match &mut self.node {
            Node::Default
            | Node::EndOfWindow
            | Node::Never
            | Node::ProcessingTime { .. }
            | Node::Count { .. } => Box::new(std::iter::empty()),
            Node::EarlyAndLate { early, late } => {
                Box::new(std::iter::once(&mut **early).chain(late.as_deref_mut()))
            }
            Node::Repeatedly { repeated } => Box::new(std::iter::once(&mut **repeated)),
            Node::AfterEach { sequence: list }
            | Node::AfterFirst { alternatives: list }
            | Node::AfterAll { conjuncts: list } => Box::new(list.iter_mut()),
            Node::OrFinally { main, until } => Box::new([&mut **main, &mut **until].into_iter()),
        }
    }
}

/// Whether a processing-time deadline has been reached: `processing_time >= deadline`.
/// Beam's in-memory timers fire strictly after the deadline; Weir fires at it so that a
/// runner whose manual clock jumps to [`TriggerState::next_processing_time`] sees the firing.
fn processing_deadline_reached(deadline: Timestamp, cx: &TriggerContext) -> bool {
    cx.processing_time >= deadline
}

#[cfg(test)]
mod tests;
