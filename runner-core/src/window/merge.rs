//! Merging windows of one key (sessions and merging custom window functions).

use weir_model::window::{Window, WindowFn};

/// One merge: windows that become one, and the window they become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeGroup {
    /// The windows merged (ordered by start); a lone window is a group of one.
    pub members: Vec<Window>,
    /// The resulting window.
    pub result: Window,
}

impl MergeGroup {
    /// Whether this group changes anything (more than one member, or a different result).
    pub fn is_merge(&self) -> bool {
        self.members.len() > 1 || self.members.first() != Some(&self.result)
    }
}

/// Groups windows that overlap or touch, transitively, into their span (Beam's
/// `MergeOverlappingIntervalWindows`, except that touching windows `[a, b)` and `[b, c)`
/// merge too, as the model's `Window::intersects_or_touches` and Flink's sessions require).
pub fn merge_overlapping_or_touching(windows: &[Window]) -> Vec<MergeGroup> {
    let mut sorted = windows.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut groups: Vec<MergeGroup> = Vec::new();
    for w in sorted {
        match groups.last_mut() {
            Some(g) if g.result.intersects_or_touches(&w) => {
                g.members.push(w);
                g.result = g.result.span(&w);
            }
            _ => groups.push(MergeGroup {
                members: vec![w],
                result: w,
            }),
        }
    }
    groups
}

/// How `windows` (the active windows of one key plus a new one) merge under `window_fn`.
/// Non-merging functions leave every window alone.
pub fn merge_windows(window_fn: &WindowFn, windows: &[Window]) -> Vec<MergeGroup> {
    match window_fn {
        WindowFn::Sessions { .. } => merge_overlapping_or_touching(windows),
        WindowFn::Custom(custom) if custom.is_merging() => custom
            .merge(windows)
            .into_iter()
            .map(|(mut members, result)| {
                members.sort();
                MergeGroup { members, result }
            })
            .collect(),
        _ => windows
            .iter()
            .map(|w| MergeGroup {
                members: vec![*w],
                result: *w,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_and_touching_windows_merge_transitively() {
        let groups = merge_overlapping_or_touching(&[
            Window::new(20, 30),
            Window::new(0, 10),
            Window::new(10, 15),
            Window::new(40, 50),
            Window::new(14, 20),
        ]);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].result, Window::new(0, 30));
        assert_eq!(groups[0].members.len(), 4);
        assert_eq!(groups[1].result, Window::new(40, 50));
        assert!(!groups[1].is_merge());
    }
}
