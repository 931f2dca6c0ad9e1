//! A small YAML tree that remembers where each node was written, built from yaml-rust2's
//! event parser (its `YamlLoader` drops positions, and every pipeline-file error must point
//! at the offending node).

use crate::error::{Location, ModelError, Result};
use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Yaml;

/// A 1-based line and column (counted in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn of(marker: Marker) -> Pos {
        // yaml-rust2 counts lines from 1 but columns from 0.
        Pos {
            line: marker.line(),
            column: marker.col() + 1,
        }
    }
}

/// A YAML value with the scalar types of the YAML 1.2 core schema.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in written order; keys are the keys' text.
    Map(Vec<(Key, Node)>),
}

/// A mapping key: its text and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub text: String,
    pub pos: Pos,
}

/// How a scalar was written, to map a character of its value back to the file.
#[derive(Debug, Clone)]
pub(crate) struct ScalarSource {
    /// The scalar's text as the parser returned it (before typing).
    pub text: String,
    style: TScalarStyle,
}

/// A YAML node and where it starts.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub value: Value,
    pub pos: Pos,
    /// Set for scalars.
    pub scalar: Option<ScalarSource>,
}

impl Node {
    /// What kind of YAML value this is, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The entries when this is a mapping.
    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The text of a scalar as written (numbers and booleans included), `None` for null
    /// and collections.
    pub fn scalar_text(&self) -> Option<&str> {
        match (&self.value, &self.scalar) {
            (Value::Null | Value::Seq(_) | Value::Map(_), _) => None,
            (Value::Str(s), _) => Some(s),
            (_, Some(source)) => Some(&source.text),
            (_, None) => None,
        }
    }

    /// Where character `offset` (0-based) of this scalar's text is in the file, when it can
    /// be told exactly (single-line scalars, `|` blocks); otherwise where the node starts.
    pub fn position_of_char(&self, offset: usize, lines: &[Vec<char>]) -> Pos {
        let Some(source) = &self.scalar else {
            return self.pos;
        };
        let value: Vec<char> = source.text.chars().collect();
        let before = &value[..offset.min(value.len())];
        let candidate = match source.style {
            TScalarStyle::Plain | TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => {
                if before.contains(&'\n') {
                    return self.pos;
                }
                let quote = usize::from(!matches!(source.style, TScalarStyle::Plain));
                Pos {
                    line: self.pos.line,
                    column: self.pos.column + quote + offset,
                }
            }
            TScalarStyle::Literal => {
                // A `|` block starts at its first content character; each later line of the
                // value is indented to the same column.
                let newlines = before.iter().filter(|c| **c == '\n').count();
                let in_line = before.iter().rev().take_while(|c| **c != '\n').count();
                Pos {
                    line: self.pos.line + newlines,
                    column: self.pos.column + in_line,
                }
            }
            TScalarStyle::Folded => return self.pos,
        };
        // Escapes and folding shift characters: trust the candidate only if the file has the
        // same character there.
        let expected = value.get(offset).or(value.last());
        let found_at = if offset < value.len() {
            candidate.column
        } else {
            candidate.column.saturating_sub(1)
        };
        let found = lines
            .get(candidate.line.wrapping_sub(1))
            .and_then(|l| l.get(found_at.wrapping_sub(1)));
        if expected.is_some() && expected == found {
            candidate
        } else {
            self.pos
        }
    }
}

/// Parses `text` as one YAML document.
pub(crate) fn load(text: &str, file: &str) -> Result<Option<Node>> {
    let mut builder = TreeBuilder {
        file,
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        documents: Vec::new(),
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        return Err(file_error(
            file,
            Pos::of(*e.marker()),
            format!("invalid YAML: {}", e.info()),
        ));
    }
    if let Some(e) = builder.error {
        return Err(e);
    }
    let mut documents = builder.documents.into_iter();
    let first = documents.next().flatten();
    if let Some(Some(second)) = documents.next() {
        return Err(file_error(
            file,
            second.pos,
            "a pipeline file holds one YAML document; found a second one",
        ));
    }
    Ok(first)
}

/// An error at `pos` of `file`.
pub(crate) fn file_error(file: &str, pos: Pos, message: impl Into<String>) -> ModelError {
    ModelError::File {
        location: Location {
            file: file.to_string(),
            line: pos.line,
            column: pos.column,
        },
        message: message.into(),
    }
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        pending_key: Option<Key>,
    },
}

struct TreeBuilder<'a> {
    file: &'a str,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    /// The root of the document being read, once complete.
    root: Option<Node>,
    /// Every document read; `None` for an empty one.
    documents: Vec<Option<Node>>,
    error: Option<ModelError>,
}

impl MarkedEventReceiver for TreeBuilder<'_> {
    fn on_event(&mut self, event: Event, marker: Marker) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.handle(event, Pos::of(marker)) {
            self.error = Some(e);
        }
    }
}

impl TreeBuilder<'_> {
    fn handle(&mut self, event: Event, pos: Pos) -> Result<()> {
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart => {}
            Event::DocumentEnd => {
                let root = self.root.take();
                self.documents.push(root);
            }
            Event::Alias(id) => {
                let node = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| file_error(self.file, pos, "alias to an unknown anchor"))?;
                self.finish(node)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = self.scalar_value(&text, style, tag.as_ref(), pos)?;
                let node = Node {
                    value,
                    pos,
                    scalar: Some(ScalarSource { text, style }),
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.finish(node)?;
            }
            Event::SequenceStart(anchor, tag) => {
                self.check_collection_tag(tag.as_ref(), "seq", pos)?;
                self.stack.push(Frame::Seq {
                    pos,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, tag) => {
                self.check_collection_tag(tag.as_ref(), "map", pos)?;
                self.stack.push(Frame::Map {
                    pos,
                    anchor,
                    entries: Vec::new(),
                    pending_key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { pos, anchor, items }) => {
                        // A block sequence's start marker can trail its first item.
                        let pos = items.first().map_or(pos, |first| pos.min(first.pos));
                        (
                            Node {
                                value: Value::Seq(items),
                                pos,
                                scalar: None,
                            },
                            anchor,
                        )
                    }
                    Some(Frame::Map {
                        pos,
                        anchor,
                        entries,
                        ..
                    }) => {
                        // A block mapping's start marker trails its first key.
                        let pos = entries.first().map_or(pos, |(k, _)| pos.min(k.pos));
                        (
                            Node {
                                value: Value::Map(entries),
                                pos,
                                scalar: None,
                            },
                            anchor,
                        )
                    }
                    None => {
                        return Err(file_error(
                            self.file,
                            pos,
                            "invalid YAML: unbalanced collection end",
                        ))
                    }
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.finish(node)?;
            }
        }
        Ok(())
    }

    /// Attaches a completed node to its parent, or records it as a document root.
    fn finish(&mut self, node: Node) -> Result<()> {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => {
                    let text = match (&node.value, node.scalar_text()) {
                        (Value::Null, _) => node
                            .scalar
                            .as_ref()
                            .map(|s| s.text.clone())
                            .unwrap_or_default(),
                        (_, Some(text)) => text.to_string(),
                        _ => {
                            return Err(file_error(
                                self.file,
                                node.pos,
                                format!(
                                    "a mapping key must be a plain name, found {}",
                                    node.kind()
                                ),
                            ))
                        }
                    };
                    if entries.iter().any(|(k, _)| k.text == text) {
                        return Err(file_error(
                            self.file,
                            node.pos,
                            format!("duplicate key `{text}`"),
                        ));
                    }
                    *pending_key = Some(Key {
                        text,
                        pos: node.pos,
                    });
                }
                Some(key) => entries.push((key, node)),
            },
        }
        Ok(())
    }

    fn scalar_value(
        &self,
        text: &str,
        style: TScalarStyle,
        tag: Option<&Tag>,
        pos: Pos,
    ) -> Result<Value> {
        let core_suffix = match tag {
            None => None,
            Some(t) if t.handle == "tag:yaml.org,2002:" => Some(t.suffix.as_str()),
            Some(t) => {
                return Err(file_error(
                    self.file,
                    pos,
                    format!("unsupported YAML tag `{}{}` (only the core tags !!str, !!int, !!float, !!bool, !!null)", t.handle, t.suffix),
                ))
            }
        };
        let typed = |yaml: Yaml| match yaml {
            Yaml::Null => Some(Value::Null),
            Yaml::Boolean(b) => Some(Value::Bool(b)),
            Yaml::Integer(i) => Some(Value::Int(i)),
            Yaml::Real(r) => parse_float(&r).map(Value::Float),
            Yaml::String(s) => Some(Value::Str(s)),
            _ => None,
        };
        let value = match core_suffix {
            Some("str") => Some(Value::Str(text.to_string())),
            Some(kind @ ("int" | "float" | "bool" | "null")) => {
                let v = typed(Yaml::from_str(text));
                match (kind, v) {
                    ("int", Some(v @ Value::Int(_)))
                    | ("bool", Some(v @ Value::Bool(_)))
                    | ("null", Some(v @ Value::Null)) => Some(v),
                    ("float", Some(Value::Int(i))) => Some(Value::Float(i as f64)),
                    ("float", Some(v @ Value::Float(_))) => Some(v),
                    _ => {
                        return Err(file_error(
                            self.file,
                            pos,
                            format!("`{text}` is not a valid !!{kind}"),
                        ));
                    }
                }
            }
            Some(other) => {
                return Err(file_error(
                    self.file,
                    pos,
                    format!("unsupported YAML tag `!!{other}`"),
                ));
            }
            None if style != TScalarStyle::Plain => Some(Value::Str(text.to_string())),
            None => typed(Yaml::from_str(text)),
        };
        Ok(value.unwrap_or_else(|| Value::Str(text.to_string())))
    }

    fn check_collection_tag(&self, tag: Option<&Tag>, core: &str, pos: Pos) -> Result<()> {
        match tag {
            None => Ok(()),
            Some(t) if t.handle == "tag:yaml.org,2002:" && t.suffix == core => Ok(()),
            Some(t) => Err(file_error(
                self.file,
                pos,
                format!("unsupported YAML tag `{}{}`", t.handle, t.suffix),
            )),
        }
    }
}

/// YAML 1.2 floats, including `.inf` and `.nan` spellings.
fn parse_float(text: &str) -> Option<f64> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}
