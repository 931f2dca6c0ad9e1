//! `windowing:` mappings (Beam YAML's window types plus Weir's trigger, lateness and pane
//! extensions) and the trigger syntax.

use super::fields::{duration, index_path, string, unsigned, user_fn, Ctx, Section};
use super::yaml::{Node, Value};
use crate::error::Result;
use crate::time::Duration;
use crate::window::{
    AccumulationMode, ClosingBehavior, LateDataPolicy, TimestampCombiner, Trigger, WindowFn,
    WindowingStrategy,
};

/// Window types, as written after `type:`.
const WINDOW_TYPES: &[&str] = &["global", "fixed", "sliding", "sessions", "custom"];

/// Fields every window type accepts besides its own: Weir's extensions to Beam YAML.
pub(crate) const STRATEGY_FIELDS: &[&str] = &[
    "trigger",
    "accumulation_mode",
    "allowed_lateness",
    "late_data",
    "timestamp_combiner",
    "closing_behavior",
];

/// Trigger types, as written after `type:` (or alone, for those without parameters).
const TRIGGER_TYPES: &[&str] = &[
    "default",
    "never",
    "after_watermark",
    "after_count",
    "after_processing_time",
    "repeatedly",
    "after_each",
    "after_first",
    "after_all",
    "or_finally",
];

/// Reads a `windowing:` mapping at `path`.
pub(crate) fn windowing(ctx: Ctx, node: &Node, path: &str) -> Result<WindowingStrategy> {
    let Some(entries) = node.as_map() else {
        return Err(ctx.wrong_kind(
            node,
            path,
            "a windowing mapping such as `{type: fixed, size: 60s}`",
        ));
    };
    let type_field = format!("{path}.type");
    let type_node = entries
        .iter()
        .find(|(k, _)| k.text == "type")
        .map(|(_, v)| v)
        .ok_or_else(|| {
            ctx.error(
                node.pos,
                &type_field,
                format!(
                    "required field is missing (one of: {})",
                    WINDOW_TYPES.join(", ")
                ),
            )
        })?;
    let window_type = string(&ctx, type_node, &type_field)?;
    let own: &[&str] = match window_type.as_str() {
        "global" => &[],
        "fixed" => &["size", "offset"],
        "sliding" => &["size", "period", "offset"],
        "sessions" => &["gap", "gap_expression"],
        "custom" => &["fn"],
        _ => {
            return Err(ctx.error(
                type_node.pos,
                &type_field,
                format!(
                    "unknown window type `{window_type}` (one of: {})",
                    WINDOW_TYPES.join(", ")
                ),
            ))
        }
    };
    let allowed: Vec<&str> = std::iter::once("type")
        .chain(own.iter().copied())
        .chain(STRATEGY_FIELDS.iter().copied())
        .collect();
    let section = Section::new(
        ctx,
        node,
        path,
        &allowed,
        &format!("{window_type} windowing"),
    )?;
    let required_duration = |key: &str| -> Result<Duration> {
        section
            .duration(key)?
            .ok_or_else(|| section.error(section.pos, key, "required field is missing"))
    };
    let window_fn = match window_type.as_str() {
        "global" => WindowFn::Global,
        "fixed" => WindowFn::Fixed {
            size: required_duration("size")?,
            offset: section.duration("offset")?.unwrap_or_default(),
        },
        "sliding" => WindowFn::Sliding {
            size: required_duration("size")?,
            period: required_duration("period")?,
            offset: section.duration("offset")?.unwrap_or_default(),
        },
        "sessions" => {
            section.exclusive("gap", "gap_expression")?;
            match section.expr("gap_expression")? {
                Some(e) => WindowFn::Sessions {
                    gap: Duration::ZERO,
                    gap_expr: Some(e),
                },
                None => WindowFn::Sessions {
                    gap: section.duration("gap")?.ok_or_else(|| {
                        section.error(
                            section.pos,
                            "gap",
                            "required field is missing (or give `gap_expression`)",
                        )
                    })?,
                    gap_expr: None,
                },
            }
        }
        _ => WindowFn::Custom(user_fn(
            &ctx,
            section.require("fn")?,
            &section.field("fn"),
            "window function",
        )?),
    };
    let mut strategy = WindowingStrategy::new(window_fn);
    read_extensions(&section, &mut strategy)?;
    Ok(strategy)
}

/// Reads Weir's strategy extensions (`trigger`, `accumulation_mode`, `allowed_lateness`,
/// `late_data`, `timestamp_combiner`, `closing_behavior`) present in `section` into `strategy`.
/// They are read inside a `windowing:` mapping, and also beside `windowing` in a
/// `WindowInto`'s config.
pub(crate) fn read_extensions(section: &Section, strategy: &mut WindowingStrategy) -> Result<()> {
    let ctx = section.ctx;
    if let Some(t) = section.get("trigger") {
        strategy.trigger = trigger(ctx, t, &section.field("trigger"))?;
    }
    if let Some(n) = section.get("accumulation_mode") {
        strategy.accumulation = choice(
            ctx,
            n,
            &section.field("accumulation_mode"),
            &[
                ("discarding", AccumulationMode::Discarding),
                ("accumulating", AccumulationMode::Accumulating),
            ],
        )?;
    }
    if let Some(d) = section.duration("allowed_lateness")? {
        strategy.allowed_lateness = d;
    }
    if let Some(n) = section.get("late_data") {
        strategy.late_data = late_data(ctx, n, &section.field("late_data"))?;
    }
    if let Some(n) = section.get("timestamp_combiner") {
        strategy.timestamp_combiner = choice(
            ctx,
            n,
            &section.field("timestamp_combiner"),
            &[
                ("end_of_window", TimestampCombiner::EndOfWindow),
                ("earliest", TimestampCombiner::Earliest),
                ("latest", TimestampCombiner::Latest),
            ],
        )?;
    }
    if let Some(n) = section.get("closing_behavior") {
        strategy.closing = choice(
            ctx,
            n,
            &section.field("closing_behavior"),
            &[
                ("fire_if_non_empty", ClosingBehavior::FireIfNonEmpty),
                ("fire_always", ClosingBehavior::FireAlways),
            ],
        )?;
    }
    Ok(())
}

/// `drop`, or `{output: <tag>}` for a side output of late data.
fn late_data(ctx: Ctx, node: &Node, field: &str) -> Result<LateDataPolicy> {
    match &node.value {
        Value::Str(s) if s == "drop" => Ok(LateDataPolicy::Drop),
        Value::Map(_) => {
            let section = Section::new(ctx, node, field, &["output"], "late_data")?;
            Ok(LateDataPolicy::SideOutput {
                tag: output_tag(&section)?,
            })
        }
        _ => Err(ctx.wrong_kind(node, field, "`drop` or `{output: <tag>}`")),
    }
}

/// The `output` tag of an `error_handling` or `late_data` mapping.
pub(crate) fn output_tag(section: &Section) -> Result<String> {
    let tag = section.req_str("output")?;
    if tag.is_empty() || tag.contains('.') {
        let pos = section.get("output").map_or(section.pos, |n| n.pos);
        return Err(section.error(
            pos,
            "output",
            format!("`{tag}` is not a valid output tag (non-empty, without `.`)"),
        ));
    }
    Ok(tag)
}

/// One of a fixed set of words.
fn choice<T: Copy>(ctx: Ctx, node: &Node, field: &str, options: &[(&str, T)]) -> Result<T> {
    let words: Vec<&str> = options.iter().map(|(w, _)| *w).collect();
    let text = string(&ctx, node, field)?;
    options
        .iter()
        .find(|(w, _)| *w == text)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            ctx.error(
                node.pos,
                field,
                format!("unknown value `{text}` (one of: {})", words.join(", ")),
            )
        })
}

/// Reads a trigger: a bare type name for triggers without parameters, or a mapping with `type`.
pub(crate) fn trigger(ctx: Ctx, node: &Node, path: &str) -> Result<Trigger> {
    let type_field = format!("{path}.type");
    let (trigger_type, type_pos) = match &node.value {
        Value::Str(s) => (s.clone(), node.pos),
        Value::Map(entries) => {
            let type_node = entries
                .iter()
                .find(|(k, _)| k.text == "type")
                .map(|(_, v)| v)
                .ok_or_else(|| {
                    ctx.error(
                        node.pos,
                        &type_field,
                        format!(
                            "required field is missing (one of: {})",
                            TRIGGER_TYPES.join(", ")
                        ),
                    )
                })?;
            (string(&ctx, type_node, &type_field)?, type_node.pos)
        }
        _ => return Err(ctx.wrong_kind(node, path, "a trigger name or a mapping with `type`")),
    };
    let params: &[&str] = match trigger_type.as_str() {
        "default" | "never" => &[],
        "after_watermark" => &["early", "late"],
        "after_count" => &["count"],
        "after_processing_time" => &["delay"],
        "repeatedly" => &["trigger"],
        "after_each" | "after_first" | "after_all" => &["triggers"],
        "or_finally" => &["main", "until"],
        _ => {
            return Err(ctx.error(
                type_pos,
                if node.as_map().is_some() {
                    &type_field
                } else {
                    path
                },
                format!(
                    "unknown trigger type `{trigger_type}` (one of: {})",
                    TRIGGER_TYPES.join(", ")
                ),
            ))
        }
    };
    if node.as_map().is_none() {
        return match trigger_type.as_str() {
            "default" => Ok(Trigger::Default),
            "never" => Ok(Trigger::Never),
            "after_watermark" => Ok(Trigger::AfterWatermark { early: None, late: None }),
            _ => Err(ctx.error(
                node.pos,
                path,
                format!("trigger `{trigger_type}` needs parameters: write `{{type: {trigger_type}, {}: ...}}`", params.join(": ..., ")),
            )),
        };
    }
    let allowed: Vec<&str> = std::iter::once("type")
        .chain(params.iter().copied())
        .collect();
    let section = Section::new(
        ctx,
        node,
        path,
        &allowed,
        &format!("trigger `{trigger_type}`"),
    )?;
    let sub = |key: &str| -> Result<Box<Trigger>> {
        Ok(Box::new(trigger(
            ctx,
            section.require(key)?,
            &section.field(key),
        )?))
    };
    let optional_sub = |key: &str| -> Result<Option<Box<Trigger>>> {
        section
            .get(key)
            .map(|n| Ok(Box::new(trigger(ctx, n, &section.field(key))?)))
            .transpose()
    };
    Ok(match trigger_type.as_str() {
        "default" => Trigger::Default,
        "never" => Trigger::Never,
        "after_watermark" => Trigger::AfterWatermark {
            early: optional_sub("early")?,
            late: optional_sub("late")?,
        },
        "after_count" => {
            let field = section.field("count");
            let count = unsigned(&ctx, section.require("count")?, &field)?;
            if count == 0 {
                return Err(ctx.error(
                    section.require("count")?.pos,
                    &field,
                    "a count trigger needs a count of at least 1",
                ));
            }
            Trigger::AfterCount { count }
        }
        "after_processing_time" => Trigger::AfterProcessingTime {
            delay: duration(&ctx, section.require("delay")?, &section.field("delay"))?,
        },
        "repeatedly" => Trigger::Repeatedly {
            trigger: sub("trigger")?,
        },
        "or_finally" => Trigger::OrFinally {
            main: sub("main")?,
            until: sub("until")?,
        },
        composite => {
            let list_node = section.require("triggers")?;
            let field = section.field("triggers");
            let Value::Seq(items) = &list_node.value else {
                return Err(ctx.wrong_kind(list_node, &field, "a list of triggers"));
            };
            if items.is_empty() {
                return Err(ctx.error(list_node.pos, &field, "needs at least one trigger"));
            }
            let triggers = items
                .iter()
                .enumerate()
                .map(|(i, t)| trigger(ctx, t, &index_path(&field, i)))
                .collect::<Result<Vec<_>>>()?;
            match composite {
                "after_each" => Trigger::AfterEach { triggers },
                "after_first" => Trigger::AfterFirst { triggers },
                _ => Trigger::AfterAll { triggers },
            }
        }
    })
}
