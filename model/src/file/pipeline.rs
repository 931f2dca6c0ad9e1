//! The pipeline structure: `pipeline:` with `type: chain` or explicit `input:` wiring,
//! transform names, implicit flattening of several inputs, and transform-level `windowing:`
//! expanded into `WindowInto` nodes (Beam YAML's semantics).

use super::fields::{index_path, join_path, string, Ctx, Section};
use super::resolve::{self, UserInput};
use super::transforms::{lookup, Arity, DropRequest, TransformDef, TYPES};
use super::windowing;
use super::yaml::{Node, Pos, Value};
use crate::error::Result;
use crate::pipeline::{split_collection, Pipeline, FORMAT_VERSION};
use crate::transform::Transform;
use crate::window::WindowingStrategy;
use std::collections::{BTreeMap, BTreeSet};

/// Keys of a transform's mapping (`config` holds the type's own fields).
const TRANSFORM_FIELDS: &[&str] = &[
    "type",
    "name",
    "input",
    "config",
    "windowing",
    "parallelism",
];

/// A transform mapping of the file and where it sits.
struct Entry<'a> {
    node: &'a Node,
    /// Path such as `pipeline.transforms[2]`, for errors raised before the name is known.
    path: String,
    /// In a chain: reads the previous chained entry.
    chained: bool,
}

/// A transform's mapping, read but not yet turned into IR.
struct Header<'a> {
    node: &'a Node,
    type_name: String,
    type_pos: Pos,
    name: String,
    input: Option<&'a Node>,
    config: Option<&'a Node>,
    windowing: Option<&'a Node>,
    parallelism: Option<usize>,
}

/// An input of an IR node before user references are resolved.
pub(crate) enum Input {
    /// Written by the user (or implied by a chain): may need redirecting to a windowed output.
    User(UserInput),
    /// Wiring Weir generated, used as is.
    Generated(String),
}

/// An IR node under construction.
pub(crate) struct Draft {
    pub name: String,
    pub inputs: Vec<Input>,
    pub transform: Transform,
    pub parallelism: Option<usize>,
    /// Set for a `MapToFields` with `drop`, resolved once upstream schemas are known.
    pub drop: Option<DropRequest>,
    /// For the `WindowInto` of a root's `windowing:`: the root whose main output this node
    /// stands for, so that consumers of the root read the windowed collection.
    pub stands_for: Option<String>,
}

/// Reads the whole file's tree into a pipeline.
pub(crate) fn read(ctx: Ctx, root: Option<&Node>) -> Result<Pipeline> {
    let start = Pos { line: 1, column: 1 };
    let root = root.ok_or_else(|| {
        ctx.error(
            start,
            "",
            "the file is empty; a pipeline file is a mapping with `pipeline:`",
        )
    })?;
    if root.as_map().is_none() {
        return Err(ctx.error(
            root.pos,
            "",
            format!("expected a mapping with `pipeline:`, found {}", root.kind()),
        ));
    }
    let top = Section::new(
        ctx,
        root,
        "",
        &["pipeline", "name", "options"],
        "the top level",
    )?;
    if let Some(options) = top.get("options") {
        // Beam's pipeline options configure its runners; Weir's runners take theirs from the
        // command line, so the mapping is accepted and not used.
        if options.as_map().is_none() {
            return Err(ctx.wrong_kind(options, "options", "a mapping"));
        }
    }
    let spec = Section::new(
        ctx,
        top.require("pipeline")?,
        "pipeline",
        &[
            "type",
            "name",
            "transforms",
            "source",
            "sink",
            "extra_transforms",
            "windowing",
        ],
        "`pipeline`",
    )?;
    let name = match (top.str("name")?, spec.str("name")?) {
        (Some(_), Some(_)) => {
            return Err(spec.error(
                spec.key_pos("name"),
                "name",
                "the pipeline is already named at the top level",
            ));
        }
        (a, b) => a.or(b),
    };
    let chain = match spec.str("type")?.as_deref() {
        None | Some("composite") => false,
        Some("chain") => true,
        Some(other) => {
            return Err(spec.error(
                spec.key_pos("type"),
                "type",
                format!("unknown pipeline type `{other}` (one of: chain, composite)"),
            ))
        }
    };
    let entries = entries(&spec, chain)?;
    let headers = headers(ctx, &entries)?;
    let default_windowing = spec.get("windowing");
    let drafts = build(ctx, &entries, &headers, default_windowing)?;
    let transforms = resolve::finish(ctx, drafts)?;
    Ok(Pipeline {
        weir_pipeline: FORMAT_VERSION,
        name,
        transforms,
    })
}

/// The transform mappings in file order: `source`, `transforms`, `sink`, `extra_transforms`.
fn entries<'a>(spec: &Section<'a>, chain: bool) -> Result<Vec<Entry<'a>>> {
    if !chain {
        for key in ["source", "sink", "extra_transforms"] {
            if spec.get(key).is_some() {
                return Err(spec.error(
                    spec.key_pos(key),
                    key,
                    "only a chain pipeline (`type: chain`) takes this field",
                ));
            }
        }
    }
    let mut out = Vec::new();
    let single = |key: &str, out: &mut Vec<Entry<'a>>| {
        if let Some(node) = spec.get(key) {
            out.push(Entry {
                node,
                path: spec.field(key),
                chained: true,
            });
        }
    };
    single("source", &mut out);
    let list = |key: &str, chained: bool, required: bool, out: &mut Vec<Entry<'a>>| -> Result<()> {
        let node = match spec.get(key) {
            Some(n) => n,
            None if required => return Err(spec.error(spec.pos, key, "required field is missing")),
            None => return Ok(()),
        };
        let Value::Seq(items) = &node.value else {
            return Err(spec
                .ctx
                .wrong_kind(node, &spec.field(key), "a list of transforms"));
        };
        for (i, item) in items.iter().enumerate() {
            out.push(Entry {
                node: item,
                path: index_path(&spec.field(key), i),
                chained,
            });
        }
        Ok(())
    };
    let has_ends = spec.get("source").is_some() || spec.get("sink").is_some();
    list("transforms", chain, !has_ends, &mut out)?;
    single("sink", &mut out);
    list("extra_transforms", false, false, &mut out)?;
    if out.is_empty() {
        let pos = spec.get("transforms").map_or(spec.pos, |n| n.pos);
        return Err(spec.error(pos, "transforms", "the pipeline has no transforms"));
    }
    Ok(out)
}

/// Reads each entry's type and name; unnamed transforms are named after their type
/// (`Filter`, then `Filter_2`, ...), skipping names given explicitly anywhere in the file.
fn headers<'a>(ctx: Ctx, entries: &[Entry<'a>]) -> Result<Vec<Header<'a>>> {
    let mut explicit: BTreeMap<String, Pos> = BTreeMap::new();
    let mut raw = Vec::new();
    for entry in entries {
        let Some(map) = entry.node.as_map() else {
            return Err(ctx.wrong_kind(
                entry.node,
                &entry.path,
                "a transform (a mapping with `type`)",
            ));
        };
        let find = |key: &str| map.iter().find(|(k, _)| k.text == key).map(|(_, v)| v);
        let name = match find("name") {
            None => None,
            Some(n) => {
                let field = join_path(&entry.path, "name");
                let text = string(&ctx, n, &field)?;
                if text.is_empty() || text.contains('.') {
                    return Err(ctx.error(
                        n.pos,
                        &field,
                        format!("`{text}` is not a valid transform name (non-empty, without `.`)"),
                    ));
                }
                if let Some(first) = explicit.get(&text) {
                    return Err(ctx.error(
                        n.pos,
                        &field,
                        format!("two transforms are named `{text}` (the first at line {}); names must be unique", first.line),
                    ));
                }
                explicit.insert(text.clone(), n.pos);
                Some(text)
            }
        };
        raw.push((entry, name, find("type")));
    }
    let mut taken: BTreeSet<String> = explicit.keys().cloned().collect();
    let mut headers = Vec::new();
    for (entry, name, type_node) in raw {
        let type_name = match type_node {
            Some(n) => string(&ctx, n, &join_path(&entry.path, "type"))?,
            None => {
                let about = name.as_deref().map_or(ctx, |n| ctx.for_transform(n));
                let field = if name.is_some() {
                    "type".to_string()
                } else {
                    join_path(&entry.path, "type")
                };
                return Err(about.error(entry.node.pos, &field, "required field is missing"));
            }
        };
        let name = match name {
            Some(n) => n,
            None => {
                let base = if type_name.is_empty() || type_name.contains('.') {
                    "Transform"
                } else {
                    type_name.as_str()
                };
                fresh_name(&mut taken, base)
            }
        };
        let header_ctx = ctx.for_transform(&name);
        Section::new(header_ctx, entry.node, "", TRANSFORM_FIELDS, "a transform")?;
        // Explicit nulls count as absent, as in every other mapping.
        let get = |key: &str| {
            entry
                .node
                .as_map()
                .and_then(|m| m.iter().find(|(k, _)| k.text == key))
                .map(|(_, v)| v)
                .filter(|v| !matches!(v.value, Value::Null))
        };
        let parallelism = match get("parallelism") {
            None => None,
            Some(n) => match n.value {
                Value::Int(p) if p >= 1 => Some(p as usize),
                _ => {
                    return Err(header_ctx.error(
                        n.pos,
                        "parallelism",
                        "expected a positive integer",
                    ))
                }
            },
        };
        headers.push(Header {
            node: entry.node,
            type_pos: type_node.map_or(entry.node.pos, |n| n.pos),
            type_name,
            input: get("input"),
            config: get("config"),
            windowing: get("windowing"),
            parallelism,
            name,
        });
    }
    Ok(headers)
}

/// `base`, or `base_2`, `base_3`, ... whichever is free; marks it taken.
pub(crate) fn fresh_name(taken: &mut BTreeSet<String>, base: &str) -> String {
    let name = std::iter::once(base.to_string())
        .chain((2..).map(|i| format!("{base}_{i}")))
        .find(|n| !taken.contains(n))
        .unwrap_or_else(|| base.to_string());
    taken.insert(name.clone());
    name
}

/// The `input:` field: a collection, a list of collections, or a mapping alias → collection.
fn user_inputs(ctx: Ctx, transform: &str, node: &Node) -> Result<Vec<UserInput>> {
    let one = |n: &Node, field: String, alias: Option<String>| -> Result<UserInput> {
        let collection = string(&ctx, n, &field)?;
        Ok(UserInput {
            collection,
            alias,
            pos: n.pos,
            field,
            transform: transform.to_string(),
        })
    };
    match &node.value {
        Value::Str(_) => Ok(vec![one(node, "input".into(), None)?]),
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| one(n, index_path("input", i), None))
            .collect(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, n)| one(n, join_path("input", &k.text), Some(k.text.clone())))
            .collect(),
        _ => Err(ctx.wrong_kind(
            node,
            "input",
            "a collection name, a list of names, or a mapping of input name to collection",
        )),
    }
}

impl Draft {
    /// A node Weir generates (a flatten or a windowing), without parallelism or `drop`.
    fn generated(name: String, inputs: Vec<Input>, transform: Transform) -> Draft {
        Draft {
            name,
            inputs,
            transform,
            parallelism: None,
            drop: None,
            stands_for: None,
        }
    }
}

/// Turns the headers into IR drafts in file order.
fn build(
    ctx: Ctx,
    entries: &[Entry],
    headers: &[Header],
    default_windowing: Option<&Node>,
) -> Result<Vec<Draft>> {
    let mut taken: BTreeSet<String> = headers.iter().map(|h| h.name.clone()).collect();
    let producers: BTreeMap<&str, &Header> = headers.iter().map(|h| (h.name.as_str(), h)).collect();
    let mut drafts: Vec<Draft> = Vec::new();
    let mut previous_in_chain: Option<&Header> = None;
    for (entry, header) in entries.iter().zip(headers) {
        let tctx = ctx.for_transform(&header.name);
        let kind = lookup(&header.type_name).ok_or_else(|| {
            let known: Vec<&str> = TYPES.iter().map(|t| t.name).collect();
            tctx.error(
                header.type_pos,
                "type",
                format!(
                    "unknown transform type `{}`; known types: {}",
                    header.type_name,
                    known.join(", ")
                ),
            )
        })?;
        let previous = if entry.chained {
            previous_in_chain.replace(header)
        } else {
            None
        };
        let inputs = inputs_of(tctx, entry, header, kind.arity, previous)?;
        for input in &inputs {
            check_producer(tctx, input, &producers)?;
        }
        check_arity(tctx, header, kind.arity, inputs.len())?;
        let aliases: Vec<String> = inputs
            .iter()
            .map(|i| i.alias.clone().unwrap_or_else(|| i.collection.clone()))
            .collect();
        let is_window_into = kind.name == "WindowInto";
        let def = TransformDef {
            ctx: tctx,
            type_name: kind.name,
            pos: header.node.pos,
            config: header.config,
            windowing: if is_window_into {
                header.windowing
            } else {
                None
            },
            aliases: &aliases,
        };
        let built = (kind.read)(&def)?;
        let windowing = match (header.windowing, default_windowing) {
            _ if is_window_into => None,
            (Some(w), _) => Some(windowing::windowing(tctx, w, "windowing")?),
            // The pipeline-level `windowing` applies to roots without their own.
            (None, Some(w)) if kind.arity == Arity::None => {
                Some(windowing::windowing(ctx, w, "pipeline.windowing")?)
            }
            _ => None,
        };
        let mut node_inputs: Vec<Input> = inputs.into_iter().map(Input::User).collect();
        if kind.arity == Arity::One && node_inputs.len() > 1 {
            // Beam YAML flattens several inputs of a one-input transform.
            let flatten = fresh_name(&mut taken, &format!("{}_flatten", header.name));
            drafts.push(Draft::generated(
                flatten.clone(),
                node_inputs,
                Transform::Flatten,
            ));
            node_inputs = vec![Input::Generated(flatten)];
        }
        let is_root = node_inputs.is_empty();
        if let (Some(w), false) = (&windowing, is_root) {
            window_each_input(&mut drafts, &mut taken, &header.name, &mut node_inputs, w);
        }
        drafts.push(Draft {
            name: header.name.clone(),
            inputs: node_inputs,
            transform: built.transform,
            parallelism: header.parallelism,
            drop: built.drop,
            stands_for: None,
        });
        if let (Some(w), true) = (windowing, is_root) {
            // Windowing on a root windows its main output, which consumers then read.
            let name = fresh_name(&mut taken, &format!("{}_windowing", header.name));
            let mut draft = Draft::generated(
                name,
                vec![Input::Generated(header.name.clone())],
                Transform::WindowInto { windowing: w },
            );
            draft.stands_for = Some(header.name.clone());
            drafts.push(draft);
        }
    }
    Ok(drafts)
}

/// The inputs a transform reads: its `input:` field, or in a chain the previous transform.
fn inputs_of(
    ctx: Ctx,
    entry: &Entry,
    header: &Header,
    arity: Arity,
    previous: Option<&Header>,
) -> Result<Vec<UserInput>> {
    if !entry.chained {
        return header
            .input
            .map_or(Ok(Vec::new()), |node| user_inputs(ctx, &header.name, node));
    }
    if let Some(node) = header.input {
        return Err(ctx.error(
            node.pos,
            "input",
            "a transform in a chain reads the previous one; wire other inputs in `extra_transforms`",
        ));
    }
    match (previous, arity) {
        (None, _) => Ok(Vec::new()),
        (Some(prev), Arity::None) => Err(ctx.error(
            header.node.pos,
            "",
            format!(
                "a {} takes no input, so it cannot follow `{}` in a chain",
                header.type_name, prev.name
            ),
        )),
        (Some(prev), _) => Ok(vec![UserInput {
            collection: prev.name.clone(),
            alias: None,
            pos: header.node.pos,
            field: String::new(),
            transform: header.name.clone(),
        }]),
    }
}

/// Windowing on a transform with inputs windows each input just before it: one `WindowInto`
/// per input, named `<name>_windowing`, or with several inputs `<name>_windowing_<alias>`
/// (`<name>_windowing_<n>` for unnamed inputs).
fn window_each_input(
    drafts: &mut Vec<Draft>,
    taken: &mut BTreeSet<String>,
    name: &str,
    inputs: &mut [Input],
    windowing: &WindowingStrategy,
) {
    let count = inputs.len();
    for (i, input) in inputs.iter_mut().enumerate() {
        let base = match (&input, count) {
            (_, 1) => format!("{name}_windowing"),
            (Input::User(UserInput { alias: Some(a), .. }), _) => {
                format!("{name}_windowing_{}", a.replace('.', "_"))
            }
            _ => format!("{name}_windowing_{}", i + 1),
        };
        let window_name = fresh_name(taken, &base);
        let upstream = std::mem::replace(input, Input::Generated(window_name.clone()));
        drafts.push(Draft::generated(
            window_name,
            vec![upstream],
            Transform::WindowInto {
                windowing: windowing.clone(),
            },
        ));
    }
}

/// Fails unless the input names a transform of the file that has outputs.
fn check_producer(ctx: Ctx, input: &UserInput, producers: &BTreeMap<&str, &Header>) -> Result<()> {
    let (producer, tag) = split_collection(&input.collection);
    let Some(header) = producers.get(producer) else {
        let known: Vec<&str> = producers.keys().copied().collect();
        return Err(ctx.error(
            input.pos,
            &input.field,
            format!(
                "unknown input `{}`: inputs name a transform, or `<transform>.<output>` for a side output (transforms: {})",
                input.collection,
                known.join(", ")
            ),
        ));
    };
    if let Some(kind) = lookup(&header.type_name) {
        if !kind.has_output && tag.is_none() {
            return Err(ctx.error(
                input.pos,
                &input.field,
                format!("`{producer}` is a {} and has no output to read", kind.name),
            ));
        }
    }
    Ok(())
}

fn check_arity(ctx: Ctx, header: &Header, arity: Arity, count: usize) -> Result<()> {
    let at = header.input.map_or(header.node.pos, |n| n.pos);
    let message = match arity {
        Arity::None if count > 0 => {
            format!("a {} is a source and takes no input", header.type_name)
        }
        Arity::One if count == 0 => {
            "required field is missing: this transform needs an input".to_string()
        }
        Arity::AtLeast(n) if count < n => {
            format!(
                "a {} needs at least {n} input(s), got {count}",
                header.type_name
            )
        }
        _ => return Ok(()),
    };
    Err(ctx.error(at, "input", message))
}
