//! The last steps from drafts to IR nodes: redirect references to windowed roots, check
//! side-output references against the outputs each transform declares, and turn
//! `MapToFields`' `drop` into explicit columns once the input schema is known.
//!
//! Some of this needs schemas (a `DoFn` declares its side outputs from its input schema;
//! `drop` needs the input's columns), which come from planning the upstream part of the
//! pipeline. Planning requires every input of the planned part to exist, so those steps run
//! upstream first: a part is planned only once every reference and `drop` inside it is settled.

use super::fields::Ctx;
use super::pipeline::{Draft, Input};
use super::transforms::DropRequest;
use super::yaml::Pos;
use crate::error::Result;
use crate::expr::col;
use crate::io::BadRecordPolicy;
use crate::pipeline::{split_collection, Pipeline, TransformNode, FORMAT_VERSION};
use crate::plan::Plan;
use crate::transform::Transform;
use crate::window::LateDataPolicy;
use std::collections::{BTreeMap, BTreeSet};

/// A collection reference written by the user (or implied by a chain).
pub(crate) struct UserInput {
    /// `Transform` or `Transform.tag`, as written.
    pub collection: String,
    /// The key of a mapping `input:`.
    pub alias: Option<String>,
    pub pos: Pos,
    /// The field holding it (`input`, `input[1]`, `input.left`; empty for a chain's implicit input).
    pub field: String,
    /// The transform whose field it is.
    pub transform: String,
}

/// Work that needs the schema of an upstream collection.
enum Pending {
    /// A reference to a side output whose existence depends on a user function.
    SideOutput {
        reference: UserInput,
        /// The IR node reading it (the user's transform, or a flatten/windowing in front of it).
        reader: String,
    },
    /// A `MapToFields` with `drop`.
    Drop { index: usize, request: DropRequest },
}

/// Turns drafts into IR nodes.
pub(crate) fn finish(ctx: Ctx, drafts: Vec<Draft>) -> Result<Vec<TransformNode>> {
    let stands_for: BTreeMap<String, String> = drafts
        .iter()
        .filter_map(|d| Some((d.stands_for.clone()?, d.name.clone())))
        .collect();
    let mut nodes = Vec::with_capacity(drafts.len());
    let mut references: Vec<(UserInput, String)> = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    for draft in drafts {
        let mut inputs = Vec::with_capacity(draft.inputs.len());
        for input in draft.inputs {
            match input {
                Input::Generated(name) => inputs.push(name),
                Input::User(reference) => {
                    let collection = &reference.collection;
                    inputs.push(stands_for.get(collection).unwrap_or(collection).clone());
                    references.push((reference, draft.name.clone()));
                }
            }
        }
        if let Some(request) = draft.drop {
            pending.push(Pending::Drop {
                index: nodes.len(),
                request,
            });
        }
        nodes.push(TransformNode {
            name: draft.name,
            inputs,
            transform: draft.transform,
            parallelism: draft.parallelism,
        });
    }
    for (reference, reader) in references {
        let (producer, tag) = split_collection(&reference.collection);
        let Some(tag) = tag else { continue };
        let Some(node) = nodes.iter().find(|n| n.name == producer) else {
            continue;
        };
        match static_side_outputs(&nodes, node) {
            Some(tags) if tags.iter().any(|t| t == tag) => {}
            Some(tags) => {
                let declared: Vec<String> =
                    tags.iter().map(|t| format!("`{producer}.{t}`")).collect();
                return Err(no_such_output(ctx, &reference, node, &declared));
            }
            None => pending.push(Pending::SideOutput { reference, reader }),
        }
    }
    settle_upstream_first(ctx, &mut nodes, pending)?;
    Ok(nodes)
}

/// The side outputs a node declares, when they are known without schemas.
fn static_side_outputs(nodes: &[TransformNode], node: &TransformNode) -> Option<Vec<String>> {
    Some(match &node.transform {
        Transform::Read {
            bad_records: BadRecordPolicy::DeadLetter { tag },
            ..
        } => vec![tag.clone()],
        // A DoFn declares its side outputs from the input schema.
        Transform::ParDo { .. } => return None,
        t if t.is_aggregation() => late_data_tag(nodes, node).into_iter().collect(),
        _ => Vec::new(),
    })
}

/// The late-data side-output tag of an aggregation: set by the nearest `WindowInto` upstream
/// along first inputs (windowing passes through every other transform unchanged).
fn late_data_tag(nodes: &[TransformNode], aggregation: &TransformNode) -> Option<String> {
    let mut seen = BTreeSet::new();
    let mut current = aggregation;
    loop {
        let producer = split_collection(current.inputs.first()?).0;
        if !seen.insert(producer) {
            return None;
        }
        current = nodes.iter().find(|n| n.name == producer)?;
        match &current.transform {
            Transform::WindowInto { windowing } => {
                return match &windowing.late_data {
                    LateDataPolicy::SideOutput { tag } => Some(tag.clone()),
                    LateDataPolicy::Drop => None,
                }
            }
            Transform::Read { .. } => return None,
            _ => {}
        }
    }
}

fn no_such_output(
    ctx: Ctx,
    reference: &UserInput,
    producer: &TransformNode,
    declared: &[String],
) -> crate::error::ModelError {
    let (name, tag) = split_collection(&reference.collection);
    let how = match &producer.transform {
        Transform::Read { .. } => "a source's dead-letter output is declared with `config.error_handling: {output: <tag>}`",
        Transform::ParDo { .. } => {
            "a ParDo's outputs are those its function declares, and `config.error_handling: {output: <tag>}`"
        }
        t if t.is_aggregation() => {
            "an aggregation's late-data output is declared with `late_data: {output: <tag>}` in the windowing upstream"
        }
        _ => "this transform has no side outputs",
    };
    let declared = if declared.is_empty() {
        "none".to_string()
    } else {
        declared.join(", ")
    };
    ctx.for_transform(&reference.transform).error(
        reference.pos,
        &reference.field,
        format!(
            "`{name}` has no output `{}` (its side outputs: {declared}; {how})",
            tag.unwrap_or_default()
        ),
    )
}

/// The names of every node `inputs` depend on, transitively, including their producers.
fn upstream_of<'a>(
    nodes: &[TransformNode],
    inputs: impl IntoIterator<Item = &'a String>,
) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack: Vec<&str> = inputs.into_iter().map(|i| split_collection(i).0).collect();
    while let Some(name) = stack.pop() {
        if found.insert(name.to_string()) {
            if let Some(n) = nodes.iter().find(|n| n.name == name) {
                stack.extend(n.inputs.iter().map(|i| split_collection(i).0));
            }
        }
    }
    found
}

/// Settles every pending step, each once the part of the pipeline it plans holds no other
/// pending step.
fn settle_upstream_first(
    ctx: Ctx,
    nodes: &mut [TransformNode],
    mut pending: Vec<Pending>,
) -> Result<()> {
    while !pending.is_empty() {
        let blocked: Vec<String> = pending
            .iter()
            .map(|p| match p {
                Pending::SideOutput { reader, .. } => reader.clone(),
                Pending::Drop { index, .. } => nodes[*index].name.clone(),
            })
            .collect();
        let part = |p: &Pending| -> BTreeSet<String> {
            match p {
                Pending::SideOutput { reference, .. } => {
                    upstream_of(nodes, [&reference.collection])
                }
                Pending::Drop { index, .. } => upstream_of(nodes, &nodes[*index].inputs),
            }
        };
        let ready = pending.iter().position(|p| {
            let part = part(p);
            blocked.iter().all(|b| !part.contains(b))
        });
        let Some(ready) = ready else {
            // Only a cycle blocks everything; planning reports it. A `drop` cannot wait for that.
            return match pending.iter().find_map(|p| match p {
                Pending::Drop { index, request } => Some((index, request)),
                Pending::SideOutput { .. } => None,
            }) {
                Some((index, request)) => Err(ctx.for_transform(&nodes[*index].name).error(
                    request.pos,
                    "config.drop",
                    "cannot tell which columns remain: the transform's inputs form a cycle",
                )),
                None => Ok(()),
            };
        };
        let step = pending.remove(ready);
        let planned = plan_part(nodes, &part(&step))?;
        match step {
            Pending::SideOutput { reference, .. } => {
                if planned.collection(&reference.collection).is_none() {
                    let producer_name = split_collection(&reference.collection).0;
                    let declared: Vec<String> = planned
                        .outputs_of(producer_name)
                        .into_iter()
                        .filter(|o| o.contains('.'))
                        .map(|o| format!("`{o}`"))
                        .collect();
                    if let Some(producer) = nodes.iter().find(|n| n.name == producer_name) {
                        return Err(no_such_output(ctx, &reference, producer, &declared));
                    }
                }
            }
            Pending::Drop { index, request } => {
                resolve_drop(ctx, &mut nodes[index], &request, &planned)?
            }
        }
    }
    Ok(())
}

/// Plans the nodes named in `part`, in the pipeline's order.
fn plan_part(nodes: &[TransformNode], part: &BTreeSet<String>) -> Result<Plan> {
    let sub = Pipeline {
        weir_pipeline: FORMAT_VERSION,
        name: None,
        transforms: nodes
            .iter()
            .filter(|n| part.contains(&n.name))
            .cloned()
            .collect(),
    };
    crate::plan::plan(&sub)
}

/// Rewrites a `MapToFields` with `drop` as a projection of the kept input columns (in input
/// order, replaced in place by same-named new fields) followed by the other new fields.
fn resolve_drop(
    ctx: Ctx,
    node: &mut TransformNode,
    request: &DropRequest,
    planned: &Plan,
) -> Result<()> {
    let input_schema = planned
        .collection(&node.inputs[0])
        .map(|c| c.schema.clone())
        .unwrap_or_default();
    for (column, pos) in &request.columns {
        if input_schema.field(column).is_none() {
            return Err(ctx.for_transform(&node.name).error(
                *pos,
                "config.drop",
                format!("column `{column}` is not in the input {input_schema}"),
            ));
        }
    }
    let Transform::Project { fields, .. } = &node.transform else {
        return Ok(());
    };
    let mut new_fields = fields.clone();
    let mut projected = Vec::new();
    for f in &input_schema.fields {
        if request.columns.iter().any(|(c, _)| *c == f.name) {
            continue;
        }
        match new_fields.iter().position(|(n, _)| *n == f.name) {
            Some(at) => projected.push(new_fields.remove(at)),
            None => projected.push((f.name.clone(), col(&f.name))),
        }
    }
    projected.extend(new_fields);
    node.transform = Transform::Project {
        fields: projected,
        append: false,
    };
    Ok(())
}
