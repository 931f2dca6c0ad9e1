//! The transform types a pipeline file may use, and the readers that turn each one's
//! `config:` into a [`Transform`].

use super::fields::{expression, index_path, names, string, user_fn, Ctx, Section};
use super::io;
use super::windowing;
use super::yaml::{Node, Pos, Value};
use crate::error::Result;
use crate::expr::col;
use crate::io::FileFormat;
use crate::transform::{AggregateFn, Aggregation, JoinKind, Transform};
use crate::window::WatermarkStrategy;

/// How many inputs a transform type takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arity {
    /// A source.
    None,
    /// Exactly one (several are flattened first, as Beam YAML does).
    One,
    /// At least this many.
    AtLeast(usize),
}

/// A transform type of the pipeline-file syntax.
pub(crate) struct TransformType {
    pub name: &'static str,
    pub arity: Arity,
    /// Whether it produces a main output (sinks and assertions do not).
    pub has_output: bool,
    pub read: fn(&TransformDef) -> Result<Built>,
}

const fn kind(
    name: &'static str,
    arity: Arity,
    has_output: bool,
    read: fn(&TransformDef) -> Result<Built>,
) -> TransformType {
    TransformType {
        name,
        arity,
        has_output,
        read,
    }
}

/// Every transform type, in the order the reference documents them.
pub(crate) const TYPES: &[TransformType] = &[
    kind("Create", Arity::None, true, io::create),
    kind("ReadFromJson", Arity::None, true, |d| {
        io::read_files(d, FileFormat::JsonLines)
    }),
    kind("ReadFromCsv", Arity::None, true, |d| {
        io::read_files(d, FileFormat::Csv)
    }),
    kind("ReadFromText", Arity::None, true, |d| {
        io::read_files(d, FileFormat::Text)
    }),
    kind("GenerateSequence", Arity::None, true, io::generate_sequence),
    kind("ReadFromMemory", Arity::None, true, io::read_memory),
    kind("ReadFromNexmark", Arity::None, true, io::read_nexmark),
    kind("ReadFromParquet", Arity::None, true, io::read_parquet),
    kind("ReadFromJetStream", Arity::None, true, io::read_jetstream),
    kind("WriteToJson", Arity::One, false, |d| {
        io::write_files(d, FileFormat::JsonLines)
    }),
    kind("WriteToCsv", Arity::One, false, |d| {
        io::write_files(d, FileFormat::Csv)
    }),
    kind("WriteToText", Arity::One, false, |d| {
        io::write_files(d, FileFormat::Text)
    }),
    kind("LogForTesting", Arity::One, false, io::log_for_testing),
    kind("WriteToMemory", Arity::One, false, io::write_memory),
    kind("WriteToMeter", Arity::One, false, io::write_meter),
    kind("WriteToParquet", Arity::One, false, io::write_parquet),
    kind("WriteToPostgres", Arity::One, false, io::write_postgres),
    kind("WriteToJetStream", Arity::One, false, io::write_jetstream),
    kind("Filter", Arity::One, true, filter),
    kind("MapToFields", Arity::One, true, map_to_fields),
    kind("Explode", Arity::One, true, explode),
    kind("AssignTimestamps", Arity::One, true, assign_timestamps),
    kind("WindowInto", Arity::One, true, window_into),
    kind("Combine", Arity::One, true, combine),
    kind("GroupByKey", Arity::One, true, group_by_key),
    kind("CoGroupByKey", Arity::AtLeast(2), true, co_group_by_key),
    kind("Join", Arity::AtLeast(2), true, join),
    kind("Flatten", Arity::AtLeast(1), true, flatten),
    kind("ParDo", Arity::One, true, par_do),
    kind("MapBatches", Arity::One, true, map_batches),
    kind("StatefulParDo", Arity::One, true, stateful_par_do),
    kind("Deduplicate", Arity::One, true, deduplicate),
    kind("TopN", Arity::One, true, top_n),
    kind("AssertEqual", Arity::One, false, io::assert_equal),
];

/// The transform type called `name`.
pub(crate) fn lookup(name: &str) -> Option<&'static TransformType> {
    TYPES.iter().find(|t| t.name == name)
}

/// One transform of the file, as the readers see it.
pub(crate) struct TransformDef<'a> {
    /// Errors name this transform.
    pub ctx: Ctx<'a>,
    pub type_name: &'a str,
    /// Where the transform's mapping starts.
    pub pos: Pos,
    pub config: Option<&'a Node>,
    /// The transform-level `windowing:` (only `WindowInto` reads it; for other types the
    /// pipeline reader expands it into a `WindowInto` node).
    pub windowing: Option<&'a Node>,
    /// Names of the inputs, in order: the aliases of a mapping `input:`, otherwise the
    /// collection names as written.
    pub aliases: &'a [String],
}

impl<'a> TransformDef<'a> {
    /// The `config:` mapping with only the `allowed` keys (empty when absent).
    pub fn config(&self, allowed: &[&str]) -> Result<Section<'a>> {
        Section::optional(
            self.ctx,
            self.config,
            self.pos,
            "config",
            allowed,
            self.type_name,
        )
    }

    /// Fails when `config` has `key`, which this type cannot honour, saying why.
    fn refuse(&self, key: &str, why: &str) -> Result<()> {
        if let Some((k, _)) = self
            .config
            .and_then(Node::as_map)
            .and_then(|m| m.iter().find(|(k, _)| k.text == key))
        {
            return Err(self.ctx.error(
                k.pos,
                &format!("config.{key}"),
                format!("not supported by {}: {why}", self.type_name),
            ));
        }
        Ok(())
    }
}

/// What a reader produces: the transform, and for `MapToFields` with `drop`, the columns to
/// drop once the input schema is known.
pub(crate) struct Built {
    pub transform: Transform,
    pub drop: Option<DropRequest>,
}

impl Built {
    pub fn new(transform: Transform) -> Built {
        Built {
            transform,
            drop: None,
        }
    }
}

/// Input columns a `MapToFields` drops; resolved against the planned input schema.
pub(crate) struct DropRequest {
    pub columns: Vec<(String, Pos)>,
    /// Where `drop:` is written.
    pub pos: Pos,
}

const EXPRESSIONS_DO_NOT_FAIL: &str =
    "expressions give null instead of failing on a row (e.g. on division by zero); use a ParDo for per-row dead letters";

fn filter(def: &TransformDef) -> Result<Built> {
    def.refuse("error_handling", EXPRESSIONS_DO_NOT_FAIL)?;
    let config = def.config(&["keep", "language"])?;
    config.language()?;
    Ok(Built::new(Transform::Filter {
        predicate: config.req_expr("keep")?,
    }))
}

fn map_to_fields(def: &TransformDef) -> Result<Built> {
    def.refuse("error_handling", EXPRESSIONS_DO_NOT_FAIL)?;
    let config = def.config(&["fields", "append", "drop", "language"])?;
    config.language()?;
    let append = config.bool("append")?.unwrap_or(false);
    let drop = match config.get("drop") {
        None => None,
        Some(node) => {
            if !append {
                return Err(config.error(
                    config.key_pos("drop"),
                    "drop",
                    "only applies with `append: true` (it drops input columns)",
                ));
            }
            let field = config.field("drop");
            let columns = names(&def.ctx, node, &field)?;
            let positions: Vec<Pos> = match &node.value {
                Value::Seq(items) => items.iter().map(|n| n.pos).collect(),
                _ => vec![node.pos],
            };
            Some(DropRequest {
                columns: columns.into_iter().zip(positions).collect(),
                pos: config.key_pos("drop"),
            })
        }
    };
    let fields = match config.get("fields") {
        None if append => Vec::new(),
        None => {
            return Err(config.error(
                config.pos,
                "fields",
                "required field is missing (or set `append: true`)",
            ))
        }
        Some(node) => {
            let field = config.field("fields");
            let entries = node.as_map().ok_or_else(|| {
                def.ctx
                    .wrong_kind(node, &field, "a mapping of column name to expression")
            })?;
            entries
                .iter()
                .map(|(k, v)| {
                    Ok((
                        k.text.clone(),
                        expression(&def.ctx, v, &format!("{field}.{}", k.text))?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?
        }
    };
    Ok(Built {
        transform: Transform::Project { fields, append },
        drop,
    })
}

fn explode(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["fields"])?;
    let node = config.require("fields")?;
    let mut columns = names(&def.ctx, node, &config.field("fields"))?;
    if columns.len() != 1 {
        return Err(config.error(
            node.pos,
            "fields",
            format!(
                "Weir explodes one list column per transform, got {}; chain one Explode per column",
                columns.len()
            ),
        ));
    }
    Ok(Built::new(Transform::Explode {
        field: columns.remove(0),
    }))
}

fn assign_timestamps(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["timestamp", "language", "max_out_of_orderness", "watermark"])?;
    config.language()?;
    config.exclusive("max_out_of_orderness", "watermark")?;
    let timestamp = config.req_expr("timestamp")?;
    let watermark = match config.get("watermark") {
        Some(node) => {
            let section = Section::new(
                def.ctx,
                node,
                &config.field("watermark"),
                &["max_out_of_orderness", "idle_timeout"],
                "watermark",
            )?;
            WatermarkStrategy {
                max_out_of_orderness: section
                    .duration("max_out_of_orderness")?
                    .unwrap_or_default(),
                idle_timeout: section.duration("idle_timeout")?,
            }
        }
        None => {
            WatermarkStrategy::bounded(config.duration("max_out_of_orderness")?.unwrap_or_default())
        }
    };
    Ok(Built::new(Transform::AssignTimestamps {
        timestamp,
        watermark,
    }))
}

fn window_into(def: &TransformDef) -> Result<Built> {
    let allowed: Vec<&str> = std::iter::once("windowing")
        .chain(windowing::STRATEGY_FIELDS.iter().copied())
        .collect();
    let config = def.config(&allowed)?;
    let (node, path) = match (def.windowing, config.get("windowing")) {
        (Some(w), None) => (w, "windowing".to_string()),
        (None, Some(w)) => (w, config.field("windowing")),
        (Some(_), Some(_)) => {
            return Err(config.error(
                config.key_pos("windowing"),
                "windowing",
                "give `windowing` once: on the transform or in its config",
            ))
        }
        (None, None) => {
            return Err(def
                .ctx
                .error(def.pos, "windowing", "required field is missing"))
        }
    };
    let mut strategy = windowing::windowing(def.ctx, node, &path)?;
    // The extensions may also sit beside `windowing`, but not in both places.
    for key in windowing::STRATEGY_FIELDS {
        let inside = node
            .as_map()
            .is_some_and(|m| m.iter().any(|(k, _)| k.text == *key));
        if inside && config.get(key).is_some() {
            return Err(config.error(
                config.key_pos(key),
                key,
                format!("already given in `{path}`"),
            ));
        }
    }
    windowing::read_extensions(&config, &mut strategy)?;
    Ok(Built::new(Transform::WindowInto {
        windowing: strategy,
    }))
}

fn combine(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["group_by", "combine", "language"])?;
    config.language()?;
    let group_by = config.names("group_by")?.unwrap_or_default();
    let node = config.require("combine")?;
    let field = config.field("combine");
    let entries = node.as_map().ok_or_else(|| {
        def.ctx
            .wrong_kind(node, &field, "a mapping of output column to aggregation")
    })?;
    if entries.is_empty() {
        return Err(def
            .ctx
            .error(node.pos, &field, "needs at least one aggregation"));
    }
    let aggregations = entries
        .iter()
        .map(|(k, v)| aggregation(def.ctx, &k.text, v, &format!("{field}.{}", k.text)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Built::new(Transform::Combine {
        group_by,
        aggregations,
    }))
}

const AGGREGATE_NAMES: &str = "count, sum, min, max, mean, distinct_count";

/// One `combine:` entry: `fn-name` (aggregating the column of the same name), `fn(expr)` /
/// `count(*)`, or `{value: <expr>, fn: <fn-name | {type, config}>}`.
fn aggregation(ctx: Ctx, name: &str, node: &Node, field: &str) -> Result<Aggregation> {
    match &node.value {
        Value::Str(text) => {
            if let Some(func) = AggregateFn::by_name(text) {
                return Ok(Aggregation {
                    name: name.to_string(),
                    func,
                    input: Some(col(name)),
                });
            }
            if let Some((func_name, inner, inner_start)) = sql_call(text) {
                let func = AggregateFn::by_name(func_name).ok_or_else(|| {
                    ctx.error(
                        node.pos,
                        field,
                        format!("unknown aggregation `{func_name}` (one of: {AGGREGATE_NAMES})"),
                    )
                })?;
                let input = if inner.trim() == "*" && matches!(func, AggregateFn::Count) {
                    None
                } else {
                    Some(super::fields::expression_part(
                        &ctx,
                        node,
                        field,
                        inner,
                        inner_start,
                    )?)
                };
                return Ok(Aggregation {
                    name: name.to_string(),
                    func,
                    input,
                });
            }
            Err(ctx.error(
                node.pos,
                field,
                format!("unknown aggregation `{text}`: write one of {AGGREGATE_NAMES}, `fn(expression)`, or `{{value: ..., fn: ...}}`"),
            ))
        }
        Value::Map(_) => {
            let section = Section::new(ctx, node, field, &["value", "fn"], "an aggregation")?;
            let fn_node = section.require("fn")?;
            let func = aggregate_fn(ctx, fn_node, &section.field("fn"))?;
            let input = section.expr("value")?;
            if input.is_none() && !matches!(func, AggregateFn::Count | AggregateFn::Custom(_)) {
                return Err(section.error(
                    section.pos,
                    "value",
                    format!("required field is missing ({} needs a value)", func.name()),
                ));
            }
            Ok(Aggregation {
                name: name.to_string(),
                func,
                input,
            })
        }
        _ => Err(ctx.wrong_kind(
            node,
            field,
            "an aggregation name or a mapping with `value` and `fn`",
        )),
    }
}

/// `name(inner)`: the name, the inner text and the character at which it starts, when
/// `text` has that shape.
fn sql_call(text: &str) -> Option<(&str, &str, usize)> {
    let (name, rest) = text.split_once('(')?;
    let inner = rest.strip_suffix(')')?;
    let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    plain.then(|| (name, inner, name.chars().count() + 1))
}

/// `fn:` of an aggregation: a built-in name, `{type: <built-in>}`, or a user combiner
/// `{type: Name, config: {...}}` / `Name`.
fn aggregate_fn(ctx: Ctx, node: &Node, field: &str) -> Result<AggregateFn> {
    let builtin = match &node.value {
        Value::Str(s) => AggregateFn::by_name(s),
        Value::Map(entries) => {
            let type_name = entries
                .iter()
                .find(|(k, _)| k.text == "type")
                .and_then(|(_, v)| v.scalar_text());
            match type_name.and_then(AggregateFn::by_name) {
                Some(f) => {
                    Section::new(
                        ctx,
                        node,
                        field,
                        &["type"],
                        &format!("the built-in aggregation `{}`", f.name()),
                    )?;
                    Some(f)
                }
                None => None,
            }
        }
        _ => {
            return Err(ctx.wrong_kind(
                node,
                field,
                &format!(
                    "an aggregation ({AGGREGATE_NAMES}) or `{{type: <combiner>, config: {{...}}}}`"
                ),
            ))
        }
    };
    match builtin {
        Some(f) => Ok(f),
        None => Ok(AggregateFn::Custom(user_fn(&ctx, node, field, "combiner")?)),
    }
}

fn group_by_key(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["keys"])?;
    Ok(Built::new(Transform::GroupByKey {
        keys: config.req_names("keys")?,
    }))
}

/// Key columns per input: one list shared by every input, or a mapping alias → columns.
fn keys_per_input(def: &TransformDef, section: &Section, key: &str) -> Result<Vec<Vec<String>>> {
    let node = section.require(key)?;
    let field = section.field(key);
    if node.as_map().is_none() {
        let shared = names(&def.ctx, node, &field)?;
        return Ok(def.aliases.iter().map(|_| shared.clone()).collect());
    }
    let aliases: Vec<&str> = def.aliases.iter().map(String::as_str).collect();
    let per_input = Section::new(def.ctx, node, &field, &aliases, "this transform's inputs")?;
    def.aliases.iter().map(|a| per_input.req_names(a)).collect()
}

fn co_group_by_key(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["keys"])?;
    Ok(Built::new(Transform::CoGroupByKey {
        keys: keys_per_input(def, &config, "keys")?,
    }))
}

fn join(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["type", "equalities"])?;
    let kind = match config.get("type") {
        None => JoinKind::Inner,
        Some(node) => join_kind(def, node, &config.field("type"))?,
    };
    let node = config.require("equalities")?;
    let field = config.field("equalities");
    let mut on: Vec<Vec<String>> = def.aliases.iter().map(|_| Vec::new()).collect();
    match &node.value {
        Value::Str(_) => {
            let column = string(&def.ctx, node, &field)?;
            on.iter_mut().for_each(|k| k.push(column.clone()));
        }
        Value::Seq(items) if !items.is_empty() => {
            let aliases: Vec<&str> = def.aliases.iter().map(String::as_str).collect();
            for (i, item) in items.iter().enumerate() {
                let item_field = index_path(&field, i);
                if let Value::Str(column) = &item.value {
                    on.iter_mut().for_each(|k| k.push(column.clone()));
                    continue;
                }
                let equality = Section::new(
                    def.ctx,
                    item,
                    &item_field,
                    &aliases,
                    "an equality (one column per input)",
                )?;
                for (keys, alias) in on.iter_mut().zip(&aliases) {
                    keys.push(equality.str(alias)?.ok_or_else(|| {
                        equality.error(
                            item.pos,
                            alias,
                            "required field is missing: Weir joins every input on the same key, so each equality names a column of every input",
                        )
                    })?);
                }
            }
        }
        _ => {
            return Err(def.ctx.wrong_kind(
                node,
                &field,
                "a column name, or a list of `{<input>: <column>, ...}` mappings",
            ))
        }
    }
    Ok(Built::new(Transform::Join { on, kind }))
}

/// `inner` | `left` | `right` | `outer` (also `full`), or Beam's `{outer: [inputs]}` naming
/// the inputs whose unmatched rows are kept.
fn join_kind(def: &TransformDef, node: &Node, field: &str) -> Result<JoinKind> {
    const KINDS: &str = "inner, left, right, outer, or {outer: [<inputs>]}";
    match &node.value {
        Value::Str(s) => match s.as_str() {
            "inner" => Ok(JoinKind::Inner),
            "left" => Ok(JoinKind::Left),
            "right" => Ok(JoinKind::Right),
            "outer" | "full" => Ok(JoinKind::Full),
            other => Err(def.ctx.error(
                node.pos,
                field,
                format!("unknown join type `{other}` (one of: {KINDS})"),
            )),
        },
        Value::Map(_) => {
            let section = Section::new(def.ctx, node, field, &["outer"], "a join type")?;
            let outer = section.req_names("outer")?;
            for name in &outer {
                if !def.aliases.contains(name) {
                    let pos = section.get("outer").map_or(node.pos, |n| n.pos);
                    return Err(section.error(
                        pos,
                        "outer",
                        format!(
                            "`{name}` is not an input (inputs: {})",
                            def.aliases.join(", ")
                        ),
                    ));
                }
            }
            let all = def.aliases.iter().all(|a| outer.contains(a));
            match outer.as_slice() {
                _ if all => Ok(JoinKind::Full),
                [] => Ok(JoinKind::Inner),
                [only] if *only == def.aliases[0] => Ok(JoinKind::Left),
                [only] if def.aliases.len() == 2 && *only == def.aliases[1] => Ok(JoinKind::Right),
                _ => Err(section.error(
                    node.pos,
                    "outer",
                    "Weir keeps unmatched rows of the first input (left), the second of two (right), or all inputs (outer)",
                )),
            }
        }
        _ => Err(def.ctx.wrong_kind(node, field, KINDS)),
    }
}

fn flatten(def: &TransformDef) -> Result<Built> {
    def.config(&[])?;
    Ok(Built::new(Transform::Flatten))
}

fn par_do(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["fn", "error_handling"])?;
    let func = user_fn(&def.ctx, config.require("fn")?, &config.field("fn"), "DoFn")?;
    Ok(Built::new(Transform::ParDo {
        func,
        on_error: io::error_handling(&config)?,
    }))
}

fn map_batches(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["fn"])?;
    Ok(Built::new(Transform::MapBatches {
        func: user_fn(
            &def.ctx,
            config.require("fn")?,
            &config.field("fn"),
            "BatchFn",
        )?,
    }))
}

fn stateful_par_do(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["keys", "fn"])?;
    let keys = config.req_names("keys")?;
    let func = user_fn(
        &def.ctx,
        config.require("fn")?,
        &config.field("fn"),
        "StatefulFn",
    )?;
    Ok(Built::new(Transform::StatefulParDo { keys, func }))
}

fn deduplicate(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["keys", "ttl"])?;
    Ok(Built::new(Transform::Dedup {
        keys: config.req_names("keys")?,
        ttl: config.duration("ttl")?,
    }))
}

fn top_n(def: &TransformDef) -> Result<Built> {
    let config = def.config(&["group_by", "order_by", "n", "descending"])?;
    let group_by = config.names("group_by")?.unwrap_or_default();
    let order_by = config.req_str("order_by")?;
    let n = config
        .u64("n")?
        .ok_or_else(|| config.error(config.pos, "n", "required field is missing"))?;
    if n == 0 {
        return Err(config.error(config.require("n")?.pos, "n", "must be at least 1"));
    }
    let descending = config.bool("descending")?.unwrap_or(true);
    Ok(Built::new(Transform::TopN {
        group_by,
        order_by,
        n: n as usize,
        descending,
    }))
}
