//! Merging trigger states when windows merge (Beam's `onMerge` of each state machine).
//!
//! Beam starts the merged window from its *own* finished bits (those of the result window
//! when it was already active, none when it is new) and lets each node decide from the
//! finished bits and state of the merging windows. `initial` below is that result window's
//! state, when it was one of the merged windows.

use super::{Node, TriggerContext, TriggerState};

impl TriggerState {
    /// The trigger state of a window formed by merging windows whose states are `parts`
    /// (at least one). `initial` is the state of the merge result window itself when it was
    /// one of them; `cx` describes the merged window.
    pub fn merged(
        parts: &[&TriggerState],
        initial: Option<&TriggerState>,
        cx: &TriggerContext,
    ) -> TriggerState {
        assert!(!parts.is_empty(), "merging the trigger states of no window");
        let mut base = initial.cloned().unwrap_or_else(|| parts[0].fresh());
        let all_finished = parts.iter().all(|p| p.finished);
        let any_finished = parts.iter().any(|p| p.finished);
        match &mut base.node {
            // Stateless, never finish (or finish only by firing): keep the result's bits.
            Node::Default | Node::Never => {}
            Node::EndOfWindow => {
                // Still active in any part, or the merged window's end is not reached yet:
                // active again. Otherwise done for good (Beam's FromEndOfWindow.onMerge).
                base.finished = all_finished && cx.end_of_window_reached();
            }
            Node::EarlyAndLate { early, late } => {
                let early_parts: Vec<&TriggerState> =
                    parts.iter().map(|p| p.early_and_late().0).collect();
                let initial_early = initial.map(|i| i.early_and_late().0);
                let early_done_everywhere = early_parts.iter().all(|p| p.finished);
                if !early_done_everywhere || !cx.end_of_window_reached() {
                    // Some pending elements have not had their early/on-time firing yet.
                    **early = TriggerState::merged(&early_parts, initial_early, cx);
                    early.finished = false;
                    if let Some(late) = late {
                        late.clear();
                        late.finished = false;
                    }
                } else {
                    early.finished = true;
                    if let Some(late) = late {
                        let late_parts: Vec<&TriggerState> =
                            parts.iter().filter_map(|p| p.early_and_late().1).collect();
                        let initial_late = initial.and_then(|i| i.early_and_late().1);
                        **late = TriggerState::merged(&late_parts, initial_late, cx);
                    }
                }
            }
            Node::ProcessingTime { deadline, .. } => {
                // The earliest pending deadline of any part wins; a finished trigger stays
                // finished with no deadline.
                *deadline = if base.finished {
                    None
                } else {
                    parts
                        .iter()
                        .filter_map(|p| match p.node {
                            Node::ProcessingTime { deadline, .. } => deadline,
                            _ => None,
                        })
                        .min()
                };
            }
            Node::Count { seen, .. } => {
                // Enough elements in any part: finished. Otherwise the counts add up.
                if any_finished {
                    base.finished = true;
                    *seen = 0;
                } else {
                    *seen = parts
                        .iter()
                        .map(|p| match p.node {
                            Node::Count { seen, .. } => seen,
                            _ => 0,
                        })
                        .sum();
                }
            }
            Node::Repeatedly { repeated } => {
                let child_parts: Vec<&TriggerState> = parts.iter().map(|p| p.child(0)).collect();
                **repeated = TriggerState::merged(&child_parts, initial.map(|i| i.child(0)), cx);
            }
            Node::AfterEach { sequence } => {
                // Sub-triggers up to the first unfinished one merge; the later ones start over.
                let mut prior_all_finished = true;
                for (i, slot) in sequence.iter_mut().enumerate() {
                    if prior_all_finished {
                        let child_parts: Vec<&TriggerState> =
                            parts.iter().map(|p| p.child(i)).collect();
                        *slot = TriggerState::merged(&child_parts, initial.map(|s| s.child(i)), cx);
                        prior_all_finished &= slot.finished;
                    } else {
                        slot.clear();
                    }
                }
                base.finished = sequence.iter().all(|t| t.finished);
            }
            Node::AfterFirst { alternatives: list } | Node::AfterAll { conjuncts: list } => {
                for (i, slot) in list.iter_mut().enumerate() {
                    let child_parts: Vec<&TriggerState> =
                        parts.iter().map(|p| p.child(i)).collect();
                    *slot = TriggerState::merged(&child_parts, initial.map(|s| s.child(i)), cx);
                }
                let is_after_all = matches!(base.node, Node::AfterAll { .. });
                let children: Vec<bool> = base.children().map(|c| c.finished).collect();
                base.finished = if is_after_all {
                    children.iter().all(|f| *f)
                } else {
                    children.iter().any(|f| *f)
                };
            }
            Node::OrFinally { main, until } => {
                let main_parts: Vec<&TriggerState> = parts.iter().map(|p| p.child(0)).collect();
                let until_parts: Vec<&TriggerState> = parts.iter().map(|p| p.child(1)).collect();
                **main = TriggerState::merged(&main_parts, initial.map(|i| i.child(0)), cx);
                **until = TriggerState::merged(&until_parts, initial.map(|i| i.child(1)), cx);
                base.finished = main.finished || until.finished;
            }
        }
        base
    }

    /// The same tree with every node unfinished and cleared.
    fn fresh(&self) -> TriggerState {
        let mut t = self.clone();
        t.reset_tree();
        t
    }

    /// The `i`-th sub-trigger (trees of one trigger spec always have the same shape).
    fn child(&self, i: usize) -> &TriggerState {
        self.children()
            .nth(i)
            .expect("trigger trees of one spec have the same shape")
    }

    /// The early and late sub-triggers of an `AfterWatermark` node.
    fn early_and_late(&self) -> (&TriggerState, Option<&TriggerState>) {
        match &self.node {
            Node::EarlyAndLate { early, late } => (early, late.as_deref()),
            _ => unreachable!("trigger trees of one spec have the same shape"),
        }
    }
}
