//! Reading typed fields out of YAML mappings, with errors that name the transform and the
//! field and point at the offending node.

use super::yaml::{file_error, Node, Pos, Value};
use crate::error::{ModelError, Result};
use crate::expr::Expr;
use crate::time::Duration;
use serde::de::DeserializeOwned;
use std::fmt::Display;

/// What errors are about: the file, and the transform being read (if any).
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    /// The file's lines, to place errors inside expression text.
    pub lines: &'a [Vec<char>],
    pub transform: Option<&'a str>,
}

impl<'a> Ctx<'a> {
    /// The same file, about transform `name`.
    pub fn for_transform(&self, name: &'a str) -> Ctx<'a> {
        Ctx {
            transform: Some(name),
            ..*self
        }
    }

    /// An error at `pos` about `field` (a dotted path such as `config.path`; empty when the
    /// error is about the whole transform).
    pub fn error(&self, pos: Pos, field: &str, message: impl Display) -> ModelError {
        let text = match (self.transform, field.is_empty()) {
            (Some(t), false) => format!("transform `{t}`, field `{field}`: {message}"),
            (Some(t), true) => format!("transform `{t}`: {message}"),
            (None, false) => format!("field `{field}`: {message}"),
            (None, true) => message.to_string(),
        };
        file_error(self.file, pos, text)
    }

    /// "expected X, found Y" at `node`.
    pub fn wrong_kind(&self, node: &Node, field: &str, expected: &str) -> ModelError {
        self.error(
            node.pos,
            field,
            format!("expected {expected}, found {}", node.kind()),
        )
    }
}

/// `parent.key`, or `key` at the top.
pub(crate) fn join_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[index]`.
pub(crate) fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// A YAML mapping whose keys were checked against the fields its owner accepts.
pub(crate) struct Section<'a> {
    pub ctx: Ctx<'a>,
    /// Where the mapping starts (or, when it is absent, where it would belong).
    pub pos: Pos,
    /// Dotted path of the mapping, such as `config` or `config.error_handling`.
    pub path: String,
    entries: &'a [(super::yaml::Key, Node)],
}

impl<'a> Section<'a> {
    /// Reads `node` as a mapping with only the `allowed` keys; `owner` names who accepts them
    /// in the error (e.g. `ReadFromJson`).
    pub fn new(
        ctx: Ctx<'a>,
        node: &'a Node,
        path: &str,
        allowed: &[&str],
        owner: &str,
    ) -> Result<Section<'a>> {
        let entries = node
            .as_map()
            .ok_or_else(|| ctx.wrong_kind(node, path, "a mapping"))?;
        for (key, _) in entries {
            if !allowed.contains(&key.text.as_str()) {
                let field = join_path(path, &key.text);
                let hint = closest(&key.text, allowed)
                    .map(|c| format!("did you mean `{c}`? "))
                    .unwrap_or_default();
                let accepted = if allowed.is_empty() {
                    "no fields".to_string()
                } else {
                    allowed.join(", ")
                };
                return Err(ctx.error(
                    key.pos,
                    &field,
                    format!("unknown field; {hint}{owner} accepts: {accepted}"),
                ));
            }
        }
        Ok(Section {
            ctx,
            pos: node.pos,
            path: path.to_string(),
            entries,
        })
    }

    /// Reads an optional mapping: absent behaves as an empty one placed at `pos`.
    pub fn optional(
        ctx: Ctx<'a>,
        node: Option<&'a Node>,
        pos: Pos,
        path: &str,
        allowed: &[&str],
        owner: &str,
    ) -> Result<Section<'a>> {
        match node {
            Some(n) => Section::new(ctx, n, path, allowed, owner),
            None => Ok(Section {
                ctx,
                pos,
                path: path.to_string(),
                entries: &[],
            }),
        }
    }

    /// The value of `key`; an explicit YAML null counts as absent.
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.text == key)
            .map(|(_, v)| v)
            .filter(|v| !matches!(v.value, Value::Null))
    }

    /// Where `key` is written (the section's start when it is absent).
    pub fn key_pos(&self, key: &str) -> Pos {
        self.entries
            .iter()
            .find(|(k, _)| k.text == key)
            .map_or(self.pos, |(k, _)| k.pos)
    }

    /// The dotted path of `key`.
    pub fn field(&self, key: &str) -> String {
        join_path(&self.path, key)
    }

    /// An error about `key` at `pos`.
    pub fn error(&self, pos: Pos, key: &str, message: impl Display) -> ModelError {
        self.ctx.error(pos, &self.field(key), message)
    }

    /// The value of a required `key`.
    pub fn require(&self, key: &str) -> Result<&'a Node> {
        self.get(key)
            .ok_or_else(|| self.error(self.pos, key, "required field is missing"))
    }

    /// Fails when both `a` and `b` are given.
    pub fn exclusive(&self, a: &str, b: &str) -> Result<()> {
        if self.get(a).is_some() && self.get(b).is_some() {
            return Err(self.error(
                self.key_pos(b),
                b,
                format!("give either `{a}` or `{b}`, not both"),
            ));
        }
        Ok(())
    }

    /// An optional string.
    pub fn str(&self, key: &str) -> Result<Option<String>> {
        self.get(key)
            .map(|n| string(&self.ctx, n, &self.field(key)))
            .transpose()
    }

    /// A required string.
    pub fn req_str(&self, key: &str) -> Result<String> {
        string(&self.ctx, self.require(key)?, &self.field(key))
    }

    /// An optional boolean.
    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        self.get(key)
            .map(|n| boolean(&self.ctx, n, &self.field(key)))
            .transpose()
    }

    /// An optional non-negative integer.
    pub fn u64(&self, key: &str) -> Result<Option<u64>> {
        self.get(key)
            .map(|n| unsigned(&self.ctx, n, &self.field(key)))
            .transpose()
    }

    /// An optional duration.
    pub fn duration(&self, key: &str) -> Result<Option<Duration>> {
        self.get(key)
            .map(|n| duration(&self.ctx, n, &self.field(key)))
            .transpose()
    }

    /// An optional expression.
    pub fn expr(&self, key: &str) -> Result<Option<Expr>> {
        self.get(key)
            .map(|n| expression(&self.ctx, n, &self.field(key)))
            .transpose()
    }

    /// A required expression.
    pub fn req_expr(&self, key: &str) -> Result<Expr> {
        expression(&self.ctx, self.require(key)?, &self.field(key))
    }

    /// Optional column names: one name or a list of names.
    pub fn names(&self, key: &str) -> Result<Option<Vec<String>>> {
        self.get(key)
            .map(|n| names(&self.ctx, n, &self.field(key)))
            .transpose()
    }

    /// Required column names: one name or a list of names.
    pub fn req_names(&self, key: &str) -> Result<Vec<String>> {
        names(&self.ctx, self.require(key)?, &self.field(key))
    }

    /// Checks an optional `language:` field: Weir evaluates its own expression language,
    /// which Beam YAML calls `generic` (and whose syntax is SQL's).
    pub fn language(&self) -> Result<()> {
        if let Some(node) = self.get("language") {
            let field = self.field("language");
            let lang = string(&self.ctx, node, &field)?;
            if !matches!(
                lang.to_ascii_lowercase().as_str(),
                "weir" | "sql" | "generic"
            ) {
                return Err(self.ctx.error(
                    node.pos,
                    &field,
                    format!("language `{lang}` is not supported: expressions are Weir's SQL-like language (accepted: weir, sql, generic)"),
                ));
            }
        }
        Ok(())
    }
}

/// A string scalar.
pub(crate) fn string(ctx: &Ctx, node: &Node, field: &str) -> Result<String> {
    match &node.value {
        Value::Str(s) => Ok(s.clone()),
        _ => Err(ctx.wrong_kind(node, field, "a string")),
    }
}

/// A boolean scalar.
pub(crate) fn boolean(ctx: &Ctx, node: &Node, field: &str) -> Result<bool> {
    match node.value {
        Value::Bool(b) => Ok(b),
        _ => Err(ctx.wrong_kind(node, field, "true or false")),
    }
}

/// A non-negative integer scalar.
pub(crate) fn unsigned(ctx: &Ctx, node: &Node, field: &str) -> Result<u64> {
    match node.value {
        Value::Int(i) if i >= 0 => Ok(i as u64),
        Value::Int(i) => Err(ctx.error(
            node.pos,
            field,
            format!("expected a non-negative integer, found {i}"),
        )),
        _ => Err(ctx.wrong_kind(node, field, "a non-negative integer")),
    }
}

/// A duration: `500ms`, `10s`, `1m`, `2h`, `1d`, or a plain number of seconds.
pub(crate) fn duration(ctx: &Ctx, node: &Node, field: &str) -> Result<Duration> {
    let text = match (&node.value, node.scalar_text()) {
        (Value::Str(_) | Value::Int(_) | Value::Float(_), Some(text)) => text,
        _ => {
            return Err(ctx.wrong_kind(
                node,
                field,
                "a duration such as `10s`, `500ms`, `1m` or a number of seconds",
            ))
        }
    };
    Duration::parse(text).map_err(|m| ctx.error(node.pos, field, m))
}

/// Column names: one name, or a list of names.
pub(crate) fn names(ctx: &Ctx, node: &Node, field: &str) -> Result<Vec<String>> {
    let one = |n: &Node, f: &str| -> Result<String> {
        let s = string(ctx, n, f)?;
        if s.is_empty() {
            return Err(ctx.error(n.pos, f, "a column name cannot be empty"));
        }
        Ok(s)
    };
    match &node.value {
        Value::Str(_) => Ok(vec![one(node, field)?]),
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .map(|(i, n)| one(n, &index_path(field, i)))
            .collect(),
        _ => Err(ctx.wrong_kind(node, field, "a column name or a list of column names")),
    }
}

/// An expression: text (numbers and booleans are read as written), or Beam YAML's
/// `{expression: <text>}` mapping with an optional `language`.
pub(crate) fn expression(ctx: &Ctx, node: &Node, field: &str) -> Result<Expr> {
    if node.as_map().is_some() {
        let section = Section::new(
            *ctx,
            node,
            field,
            &["expression", "language"],
            "an expression mapping",
        )?;
        section.language()?;
        let inner = section.require("expression")?;
        return expression(ctx, inner, &section.field("expression"));
    }
    let text = match (&node.value, node.scalar_text()) {
        (Value::Str(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_), Some(text)) => text,
        _ => return Err(ctx.wrong_kind(node, field, "an expression (text)")),
    };
    expression_part(ctx, node, field, text, 0)
}

/// Parses `text`, which starts at character `start` of `node`'s scalar, placing a syntax
/// error at the exact character of the file when the scalar's layout allows.
pub(crate) fn expression_part(
    ctx: &Ctx,
    node: &Node,
    field: &str,
    text: &str,
    start: usize,
) -> Result<Expr> {
    crate::expr::parse(text).map_err(|message| {
        // One line in messages; same length, so character N still points at the same place.
        let shown = text.replace('\n', " ");
        let shown = shown.trim_end();
        // The parser's errors start with `at character N:` (1-based).
        let located = message
            .strip_prefix("at character ")
            .and_then(|rest| rest.split_once(": "))
            .and_then(|(n, what)| Some((n.parse::<usize>().ok()?, what)));
        match located {
            Some((n, what)) => ctx.error(
                node.position_of_char(start + n - 1, ctx.lines),
                field,
                format!("cannot parse expression `{shown}`: {what} (character {n})"),
            ),
            None => ctx.error(
                node.pos,
                field,
                format!("cannot parse expression `{shown}`: {message}"),
            ),
        }
    })
}

/// A user function for a `#[typetag::serde]` trait: `Name`, or `{type: Name, config: {...}}`,
/// deserialized from the JSON `{"fn": "Name", ...config}`. `what` names the trait.
pub(crate) fn user_fn<T>(ctx: &Ctx, node: &Node, field: &str, what: &str) -> Result<T>
where
    T: DeserializeOwned,
{
    let (type_name, config, type_pos) = match &node.value {
        Value::Str(s) => (s.clone(), serde_json::Map::new(), node.pos),
        Value::Map(_) => {
            let section = Section::new(*ctx, node, field, &["type", "config"], what)?;
            let type_node = section.require("type")?;
            let type_name = string(ctx, type_node, &section.field("type"))?;
            let config = match section.get("config") {
                None => serde_json::Map::new(),
                Some(c) => match to_json(ctx, c, &section.field("config"))? {
                    serde_json::Value::Object(map) => map,
                    _ => return Err(ctx.wrong_kind(c, &section.field("config"), "a mapping")),
                },
            };
            if config.contains_key("fn") {
                let pos = section.get("config").map_or(node.pos, |c| c.pos);
                return Err(ctx.error(
                    pos,
                    &section.field("config.fn"),
                    "`fn` is reserved for the function's type name",
                ));
            }
            (type_name, config, type_node.pos)
        }
        _ => {
            return Err(ctx.wrong_kind(
                node,
                field,
                &format!("a {what} type name or `{{type: <name>, config: {{...}}}}`"),
            ))
        }
    };
    let mut object = serde_json::Map::new();
    object.insert("fn".into(), serde_json::Value::String(type_name.clone()));
    object.extend(config);
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| {
        let detail = e.to_string();
        let message = if detail.starts_with("unknown variant") {
            let known = detail
                .split_once("expected ")
                .map_or("none are registered in this program", |(_, k)| k);
            format!("unknown {what} type `{type_name}` (registered types: {known})")
        } else {
            format!("cannot build {what} `{type_name}` from its config: {detail}")
        };
        ctx.error(type_pos, field, message)
    })
}

/// The JSON value of a YAML node (for rows and user-function configs).
pub(crate) fn to_json(ctx: &Ctx, node: &Node, field: &str) -> Result<serde_json::Value> {
    use serde_json::Value as J;
    Ok(match &node.value {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(x) => match serde_json::Number::from_f64(*x) {
            Some(n) => J::Number(n),
            None => {
                return Err(ctx.error(
                    node.pos,
                    field,
                    format!("{x} cannot be represented (JSON has no infinities or NaN)"),
                ))
            }
        },
        Value::Str(s) => J::String(s.clone()),
        Value::Seq(items) => J::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, n)| to_json(ctx, n, &index_path(field, i)))
                .collect::<Result<_>>()?,
        ),
        Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| Ok((k.text.clone(), to_json(ctx, v, &join_path(field, &k.text))?)))
                .collect::<Result<_>>()?,
        ),
    })
}

/// The allowed word closest to a misspelt one, if it is close enough to be a likely typo.
fn closest<'w>(word: &str, allowed: &[&'w str]) -> Option<&'w str> {
    allowed
        .iter()
        .map(|a| (edit_distance(word, a), *a))
        .filter(|(d, a)| *d <= 2 && *d < a.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}
