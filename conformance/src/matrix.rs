//! The capability matrix: Beam's what / where / when / how rows, one column per runner, each
//! Yes, Partial and Extension cell linked to the scenarios that exercise the feature (every
//! scenario whose pipeline requires it), so a claim can be checked by running them.

use crate::scenario::Scenario;
use std::path::Path;
use weir_model::requirements::{Capabilities, Feature, Support};
use weir_runner_core::schedule::Action;

/// One runner's column.
pub struct Column<'a> {
    /// Runner name.
    pub runner: &'a str,
    /// Its declared capabilities.
    pub capabilities: Capabilities,
    /// Whether the conformance suite runs it (only then do scenarios prove its claims).
    pub in_suite: bool,
}

/// The scenarios whose pipelines require `feature`. A schedule whose input arrives over
/// processing time is an unbounded source as far as the runner can tell (it ends only at
/// `end_input`), so such scenarios prove `unbounded-sources`.
pub fn scenarios_for(feature: Feature, scenarios: &[Scenario]) -> Vec<&Scenario> {
    scenarios
        .iter()
        .filter(|s| {
            s.plan.requirements.contains(&feature)
                || (feature == Feature::UnboundedSources && arrives_over_time(s))
        })
        .collect()
}

fn arrives_over_time(s: &Scenario) -> bool {
    let mut times = s.schedule.steps.iter().filter_map(|st| match st.action {
        Action::Deliver { .. } => Some(st.at),
        _ => None,
    });
    let first = times.next();
    times.any(|t| Some(t) != first)
}

/// Scenario links shown per cell; the rest are counted.
const MAX_LINKS: usize = 5;

fn group_title(group: &str) -> &'static str {
    match group {
        "what" => "**What** is computed",
        "where" => "**Where** in event time",
        "when" => "**When** in processing time",
        _ => "**How** refinements relate",
    }
}

/// The matrix as Markdown. `root` is the directory links are relative to (scenario paths are
/// shown relative to it). Scenarios are numbered; a cell links each number to its file with
/// a reference-style link defined below the table.
pub fn markdown(columns: &[Column<'_>], scenarios: &[Scenario], root: &Path) -> String {
    let mut out = String::from("| | feature |");
    for c in columns {
        out.push_str(&format!(" {} |", c.runner));
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---|".repeat(columns.len()));
    out.push('\n');
    let mut notes: Vec<String> = Vec::new();
    for group in ["what", "where", "when", "how"] {
        let mut first = true;
        for f in Feature::ALL.iter().filter(|f| f.group() == group) {
            let title = if first { group_title(group) } else { "" };
            first = false;
            out.push_str(&format!("| {title} | {} |", f.name()));
            // The most focused scenarios first: fewest required features.
            let mut proving = scenarios_for(*f, scenarios);
            proving.sort_by_key(|s| s.plan.requirements.len());
            for c in columns {
                let support = c.capabilities.support(*f);
                let (word, note) = match &support {
                    Support::Native => ("Yes", None),
                    Support::Partial { note } => ("Partial", Some(note)),
                    Support::Extension { note } => ("Extension", Some(note)),
                    Support::Unsupported { reason } => ("No", Some(reason)),
                };
                let mut cell = word.to_string();
                if let Some(n) = note {
                    notes.push(format!("{} / {}: {n}", c.runner, f.name()));
                    cell.push_str(&format!("<sup>{}</sup>", notes.len()));
                }
                if word != "No" && c.in_suite {
                    for s in proving.iter().take(MAX_LINKS) {
                        let n = number(s, scenarios);
                        cell.push_str(&format!(" [{n}][s{n}]"));
                    }
                    if proving.len() > MAX_LINKS {
                        cell.push_str(&format!(" +{}", proving.len() - MAX_LINKS));
                    }
                }
                out.push_str(&format!(" {cell} |"));
            }
            out.push('\n');
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        for (i, n) in notes.iter().enumerate() {
            out.push_str(&format!("{}. {n}\n", i + 1));
        }
    }
    if !scenarios.is_empty() {
        out.push_str("\nScenarios: ");
        let names: Vec<String> = scenarios
            .iter()
            .enumerate()
            .map(|(i, s)| format!("[{}][s{}] {}", i + 1, i + 1, s.name))
            .collect();
        out.push_str(&names.join(" · "));
        out.push_str("\n\n");
        for (i, s) in scenarios.iter().enumerate() {
            out.push_str(&format!("[s{}]: {}\n", i + 1, link(&s.path, root)));
        }
    }
    out
}

fn number(s: &Scenario, all: &[Scenario]) -> usize {
    all.iter()
        .position(|x| std::ptr::eq(x, s))
        .map_or(0, |i| i + 1)
}

fn link(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Cells that claim support (Yes, Partial, Extension) on a runner in the suite without any
/// scenario exercising the feature: `(runner, feature)`.
pub fn unproven(columns: &[Column<'_>], scenarios: &[Scenario]) -> Vec<(String, Feature)> {
    let mut out = Vec::new();
    for c in columns.iter().filter(|c| c.in_suite) {
        for f in Feature::ALL {
            let claimed = !matches!(c.capabilities.support(*f), Support::Unsupported { .. });
            if claimed && scenarios_for(*f, scenarios).is_empty() {
                out.push((c.runner.to_string(), *f));
            }
        }
    }
    out
}
