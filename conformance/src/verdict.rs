//! Verdicts and invariants: how a runner's run of a scenario is judged.

use crate::scenario::ExpectedRow;
use serde::Serialize;
use std::collections::BTreeMap;
use weir_model::window::PaneTiming;
use weir_runner_core::io::RecordedRow;
use weir_runner_core::schedule::WatermarkEvent;

/// The four verdicts of the design.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictKind {
    /// Equals the expected output (or, without expectations, the model's) and every
    /// invariant holds.
    Match,
    /// Differs from the model exactly as the runner's documented semantics predict.
    DivergesAsExpected,
    /// Anything else: wrong output, a broken invariant, an unexpected failure.
    Violation,
    /// Rejected at translation, with the feature named.
    Unsupported,
}

impl VerdictKind {
    /// Short name for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictKind::Match => "match",
            VerdictKind::DivergesAsExpected => "diverges-as-expected",
            VerdictKind::Violation => "violation",
            VerdictKind::Unsupported => "unsupported",
        }
    }
}

/// A verdict with its explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Which verdict.
    pub verdict: VerdictKind,
    /// Why: the `because:` of a divergence, the first differing row of a violation, the
    /// feature of an unsupported run.
    pub explanation: String,
}

/// One invariant checked on a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvariantCheck {
    /// The invariant's name.
    pub name: &'static str,
    /// Whether it held.
    pub pass: bool,
    /// What was checked or what broke.
    pub detail: String,
}

/// The fields of a sink row that expectations may compare, as canonical text.
pub fn canonical(
    row: &RecordedRow,
    with_pane: bool,
    with_window: bool,
    with_visible: bool,
) -> String {
    let mut parts = vec![sorted_json(&serde_json::Value::Object(row.row.clone()))];
    if with_pane {
        parts.push(format!(
            "pane={}/{}",
            row.meta.pane.timing.as_str(),
            row.meta.pane.index
        ));
    }
    if with_window {
        parts.push(format!(
            "window=[{}, {})",
            row.meta.window.start, row.meta.window.end
        ));
    }
    if with_visible {
        parts.push(format!("visible_at={}", row.visible_at));
    }
    parts.join(" ")
}

fn expected_canonical(e: &ExpectedRow) -> String {
    let mut parts = vec![sorted_json(&serde_json::Value::Object(e.row.clone()))];
    if let Some((t, i)) = e.pane {
        parts.push(format!("pane={}/{i}", t.as_str()));
    }
    if let Some((s, end)) = e.window {
        parts.push(format!("window=[{s}, {end})"));
    }
    if let Some(v) = e.visible_at {
        parts.push(format!("visible_at={v}"));
    }
    parts.join(" ")
}

/// JSON with object keys sorted, so rows compare regardless of column order.
pub fn sorted_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String((*k).clone()),
                        sorted_json(&o[*k])
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        serde_json::Value::Array(a) => format!(
            "[{}]",
            a.iter().map(sorted_json).collect::<Vec<_>>().join(",")
        ),
        // Whole floats compare equal to integers (`80.0` vs `80`), as JSON readers see them.
        serde_json::Value::Number(n)
            if n.as_f64()
                .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9e15) =>
        {
            format!("{}", n.as_f64().unwrap_or_default() as i64)
        }
        other => other.to_string(),
    }
}

/// Compares committed rows with expectations (only the fields the expectations give).
/// Returns the first difference, if any.
pub fn compare(observed: &[RecordedRow], expected: &[ExpectedRow]) -> Option<String> {
    let with_pane = expected.iter().any(|e| e.pane.is_some());
    let with_window = expected.iter().any(|e| e.window.is_some());
    let with_visible = expected.iter().any(|e| e.visible_at.is_some());
    let mut got: Vec<String> = observed
        .iter()
        .map(|r| canonical(r, with_pane, with_window, with_visible))
        .collect();
    let mut want: Vec<String> = expected.iter().map(expected_canonical).collect();
    got.sort();
    want.sort();
    if got == want {
        return None;
    }
    let missing: Vec<&String> = want
        .iter()
        .filter(|w| count(&want, w) > count(&got, w))
        .collect();
    let extra: Vec<&String> = got
        .iter()
        .filter(|g| count(&got, g) > count(&want, g))
        .collect();
    Some(match (missing.first(), extra.first()) {
        (Some(m), Some(x)) => format!(
            "expected row `{m}` is missing; got `{x}` instead ({} missing, {} unexpected)",
            missing.len(),
            extra.len()
        ),
        (Some(m), None) => format!("expected row `{m}` is missing ({} missing)", missing.len()),
        (None, Some(x)) => format!("unexpected row `{x}` ({} unexpected)", extra.len()),
        (None, None) => "rows differ in multiplicity".to_string(),
    })
}

fn count(v: &[String], s: &str) -> usize {
    v.iter().filter(|x| x.as_str() == s).count()
}

/// Watermarks never go backwards, per transform within one job attempt.
pub fn watermarks_monotone(events: &[WatermarkEvent]) -> InvariantCheck {
    // Per transform and job attempt: a restored job may start its watermarks again.
    let mut last: BTreeMap<(&str, u32), i64> = BTreeMap::new();
    for e in events {
        if let Some(prev) = last.get(&(e.node.as_str(), e.attempt)) {
            if e.watermark < *prev {
                return InvariantCheck {
                    name: "watermarks-never-decrease",
                    pass: false,
                    detail: format!(
                        "`{}` went from {prev} back to {} at processing time {} (attempt {})",
                        e.node, e.watermark, e.processing_time, e.attempt
                    ),
                };
            }
        }
        last.insert((&e.node, e.attempt), e.watermark);
    }
    let transforms: std::collections::BTreeSet<&str> = last.keys().map(|(n, _)| *n).collect();
    InvariantCheck {
        name: "watermarks-never-decrease",
        pass: true,
        detail: format!(
            "{} watermark changes over {} transforms",
            events.len(),
            transforms.len()
        ),
    }
}

/// With nothing late in the model, the final committed output (rows and windows, whatever the
/// panes) must equal the model's; behind an at-least-once sink it must hold everything the
/// model's does (replays may duplicate).
pub fn final_output_equals_model(
    observed: &[RecordedRow],
    model: &[RecordedRow],
    at_least_once: bool,
) -> InvariantCheck {
    let project = |rows: &[RecordedRow]| {
        let mut v: Vec<String> = rows
            .iter()
            .filter(|r| r.committed)
            .map(|r| canonical(r, false, true, false))
            .collect();
        v.sort();
        v
    };
    let (got, want) = (project(observed), project(model));
    let missing = multiset_minus(&want, &got);
    let extra = multiset_minus(&got, &want);
    let pass = missing.is_empty() && (at_least_once || extra.is_empty());
    InvariantCheck {
        name: "final-output-equals-model-when-nothing-is-late",
        pass,
        detail: match (missing.first(), extra.first()) {
            (None, None) => format!("{} committed rows equal the model's", got.len()),
            (None, Some(e)) if pass => format!(
                "nothing lost; {} duplicate(s) allowed by the at-least-once sink, first: {e}",
                extra.len()
            ),
            (m, e) => format!(
                "differs from the model: {} missing (first: {}), {} unexpected (first: {})",
                missing.len(),
                m.map_or("-", String::as_str),
                extra.len(),
                e.map_or("-", String::as_str)
            ),
        },
    }
}

/// Committed rows (data, window and pane) as a sorted multiset.
fn committed_multiset(rows: &[RecordedRow]) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .filter(|r| r.committed)
        .map(|r| canonical(r, true, true, false))
        .collect();
    v.sort();
    v
}

/// Multiset difference `a - b`.
fn multiset_minus(a: &[String], b: &[String]) -> Vec<String> {
    let mut rest = b.to_vec();
    let mut out = Vec::new();
    for x in a {
        match rest.iter().position(|y| y == x) {
            Some(i) => {
                rest.swap_remove(i);
            }
            None => out.push(x.clone()),
        }
    }
    out
}

/// A run that crashed and restarted (`recovered`) against the same schedule run one-shot:
/// under an exactly-once sink the committed outputs are equal (no loss, no duplicates);
/// under `at_least_once` nothing may be lost, but replays may duplicate.
pub fn recovery_equals_one_shot(
    name: &'static str,
    recovered: &[RecordedRow],
    one_shot: &[RecordedRow],
    at_least_once: bool,
) -> InvariantCheck {
    let (got, want) = (committed_multiset(recovered), committed_multiset(one_shot));
    let lost = multiset_minus(&want, &got);
    let extra = multiset_minus(&got, &want);
    let pass = lost.is_empty() && (at_least_once || extra.is_empty());
    let detail = if pass && extra.is_empty() {
        format!("{} committed rows equal the one-shot run's", got.len())
    } else if pass {
        format!(
            "nothing lost; {} duplicate(s) allowed by at-least-once, first: {}",
            extra.len(),
            extra[0]
        )
    } else if let Some(l) = lost.first() {
        format!(
            "{} row(s) lost against the one-shot run, first: {l}",
            lost.len()
        )
    } else {
        format!(
            "{} duplicate or extra row(s) against the one-shot run, first: {}",
            extra.len(),
            extra[0]
        )
    };
    InvariantCheck { name, pass, detail }
}

/// Timing of a pane as written in reports.
pub fn pane_text(timing: PaneTiming, index: u64) -> String {
    format!("{}/{index}", timing.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_runner_core::batch::ElementMeta;

    fn row(key: &str, committed: bool) -> RecordedRow {
        RecordedRow {
            row: serde_json::json!({ "key": key })
                .as_object()
                .unwrap()
                .clone(),
            meta: ElementMeta::default(),
            visible_at: 0,
            committed,
        }
    }

    fn rows(keys: &[&str]) -> Vec<RecordedRow> {
        keys.iter().map(|k| row(k, true)).collect()
    }

    #[test]
    fn recovery_allows_duplicates_only_under_at_least_once_and_never_loss() {
        let one_shot = rows(&["a", "b"]);
        let same = recovery_equals_one_shot("r", &rows(&["b", "a"]), &one_shot, false);
        assert!(same.pass, "{}", same.detail);
        let duplicated = rows(&["a", "b", "b"]);
        assert!(!recovery_equals_one_shot("r", &duplicated, &one_shot, false).pass);
        let allowed = recovery_equals_one_shot("r", &duplicated, &one_shot, true);
        assert!(
            allowed.pass && allowed.detail.contains("1 duplicate"),
            "{}",
            allowed.detail
        );
        let lost = recovery_equals_one_shot("r", &rows(&["a", "a"]), &one_shot, true);
        assert!(
            !lost.pass && lost.detail.contains("lost"),
            "{}",
            lost.detail
        );
        // Uncommitted rows do not count.
        let mut pending = rows(&["a", "b"]);
        pending.push(row("b", false));
        assert!(recovery_equals_one_shot("r", &pending, &one_shot, false).pass);
    }

    #[test]
    fn final_output_counts_duplicates_as_a_difference() {
        let model = rows(&["a", "b"]);
        let got = rows(&["a", "b", "b"]);
        let strict = final_output_equals_model(&got, &model, false);
        assert!(!strict.pass);
        assert!(strict.detail.contains("1 unexpected"), "{}", strict.detail);
        assert!(final_output_equals_model(&got, &model, true).pass);
        assert!(!final_output_equals_model(&rows(&["a"]), &model, true).pass);
    }

    #[test]
    fn watermarks_may_start_again_only_in_a_new_attempt() {
        let event = |t, w, attempt| WatermarkEvent {
            processing_time: t,
            node: "n".into(),
            watermark: w,
            attempt,
        };
        assert!(watermarks_monotone(&[event(0, 10, 0), event(1, 5, 1), event(2, 7, 1)]).pass);
        assert!(!watermarks_monotone(&[event(0, 10, 0), event(1, 5, 0)]).pass);
    }
}
