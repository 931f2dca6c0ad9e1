//! Planning: validates a pipeline before anything runs and annotates each collection with its
//! schema, windowing strategy, event-time column and boundedness. The canonical JSON of a
//! [`Plan`] is stable: planning it again yields the same bytes.

use crate::error::{ModelError, Result};
use crate::expr::Expr;
use crate::io::{dead_letter_schema, BadRecordPolicy};
use crate::pipeline::{Pipeline, FORMAT_VERSION};
use crate::requirements::Feature;
use crate::schema::{DataType, Field, Schema};
use crate::transform::{AggregateFn, Transform};
use crate::window::{
    AccumulationMode, LateDataPolicy, TimestampCombiner, Trigger, WatermarkStrategy, WindowFn,
    WindowingStrategy,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What is known about a collection before running.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollectionInfo {
    /// The node producing it.
    pub producer: String,
    /// Its columns.
    pub schema: Schema,
    /// Its windowing strategy.
    pub windowing: WindowingStrategy,
    /// The column holding event time, when one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    /// The watermark strategy in force (set by `AssignTimestamps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<WatermarkStrategy>,
    /// Whether the collection ends.
    pub bounded: bool,
    /// Whether rows carry window and pane metadata from an aggregation.
    #[serde(default)]
    pub windowed_results: bool,
}

/// A validated pipeline with everything inferred about its collections.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Format version ([`FORMAT_VERSION`]).
    pub weir_plan: u32,
    /// The pipeline, its transforms in execution (topological) order.
    pub pipeline: Pipeline,
    /// Every collection by name.
    pub collections: BTreeMap<String, CollectionInfo>,
    /// Features the pipeline needs from a runner.
    pub requirements: BTreeSet<Feature>,
}

impl Plan {
    /// Canonical JSON (pretty, stable order).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| ModelError::Json(e.to_string()))
    }
    /// The collection called `name`.
    pub fn collection(&self, name: &str) -> Option<&CollectionInfo> {
        self.collections.get(name)
    }
    /// The collections a node produces (main first, then side outputs in name order).
    pub fn outputs_of(&self, node: &str) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .collections
            .iter()
            .filter(|(_, c)| c.producer == node)
            .map(|(n, _)| n.as_str())
            .collect();
        out.sort_by_key(|n| (n.contains('.'), *n));
        out
    }
    /// Readable graph: each collection with its schema and windowing.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        if let Some(n) = &self.pipeline.name {
            s.push_str(&format!("pipeline {n}\n"));
        }
        for node in &self.pipeline.transforms {
            let inputs = if node.inputs.is_empty() {
                String::new()
            } else {
                format!(" <- {}", node.inputs.join(", "))
            };
            s.push_str(&format!(
                "{} [{}]{}\n",
                node.name,
                node.transform.type_name(),
                inputs
            ));
            for out in self.outputs_of(&node.name) {
                let c = &self.collections[out];
                s.push_str(&format!("    {out}: {}\n", c.schema));
                let mut notes = vec![format!("windowing {}", c.windowing)];
                if let Some(et) = &c.event_time {
                    notes.push(format!("event time `{et}`"));
                }
                if let Some(w) = &c.watermark {
                    notes.push(format!("watermark max - {}", w.max_out_of_orderness));
                }
                notes.push(if c.bounded {
                    "bounded".into()
                } else {
                    "unbounded".into()
                });
                s.push_str(&format!("        {}\n", notes.join("; ")));
            }
        }
        let req: Vec<String> = self.requirements.iter().map(|f| f.name()).collect();
        s.push_str(&format!(
            "requires: {}\n",
            if req.is_empty() {
                "-".into()
            } else {
                req.join(", ")
            }
        ));
        s
    }
}

/// Validates `pipeline` and infers every collection's properties.
pub fn plan(pipeline: &Pipeline) -> Result<Plan> {
    if pipeline.weir_pipeline != FORMAT_VERSION {
        return Err(ModelError::Json(format!(
            "pipeline format version {} is not supported",
            pipeline.weir_pipeline
        )));
    }
    let ordered = topological_order(pipeline)?;
    let mut collections: BTreeMap<String, CollectionInfo> = BTreeMap::new();
    let mut requirements = BTreeSet::new();
    for node in &ordered.transforms {
        let inputs: Vec<&CollectionInfo> = node
            .inputs
            .iter()
            .map(|i| {
                collections.get(i).ok_or_else(|| {
                    let (producer, _) = crate::pipeline::split_collection(i);
                    let outputs: Vec<&str> = collections
                        .iter()
                        .filter(|(_, c)| c.producer == producer)
                        .map(|(n, _)| n.as_str())
                        .collect();
                    ModelError::transform(
                        &node.name,
                        format!(
                            "input `{i}` is not an output of `{producer}` (its outputs: {})",
                            outputs.join(", ")
                        ),
                    )
                })
            })
            .collect::<Result<_>>()?;
        let outputs = infer(
            &node.name,
            &node.transform,
            &node.inputs,
            &inputs,
            &mut requirements,
        )?;
        for (tag, info) in outputs {
            let name = match tag {
                None => node.name.clone(),
                Some(t) => format!("{}.{t}", node.name),
            };
            collections.insert(name, info);
        }
    }
    Ok(Plan {
        weir_plan: FORMAT_VERSION,
        pipeline: ordered,
        collections,
        requirements,
    })
}

/// Orders nodes so each comes after its inputs (stable: ties keep the user's order).
fn topological_order(p: &Pipeline) -> Result<Pipeline> {
    let mut seen = BTreeSet::new();
    for n in &p.transforms {
        if n.name.is_empty() || n.name.contains('.') {
            return Err(ModelError::transform(
                &n.name,
                "a transform name must be non-empty and contain no `.`",
            ));
        }
        if !seen.insert(n.name.as_str()) {
            return Err(ModelError::transform(
                &n.name,
                "two transforms have this name",
            ));
        }
    }
    for n in &p.transforms {
        for input in &n.inputs {
            let (producer, _) = crate::pipeline::split_collection(input);
            if !seen.contains(producer) {
                let known: Vec<&str> = p.transforms.iter().map(|t| t.name.as_str()).collect();
                return Err(ModelError::transform(
                    &n.name,
                    format!(
                        "input `{input}` is not produced by any transform (transforms: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::with_capacity(p.transforms.len());
    while out.len() < p.transforms.len() {
        let next = p.transforms.iter().find(|n| {
            !placed.contains(&n.name)
                && n.inputs
                    .iter()
                    .all(|i| placed.contains(crate::pipeline::split_collection(i).0))
        });
        match next {
            Some(n) => {
                placed.insert(n.name.clone());
                out.push(n.clone());
            }
            None => {
                let stuck = p
                    .transforms
                    .iter()
                    .find(|n| !placed.contains(&n.name))
                    .unwrap();
                return Err(ModelError::transform(
                    &stuck.name,
                    "its inputs form a cycle",
                ));
            }
        }
    }
    Ok(Pipeline {
        weir_pipeline: p.weir_pipeline,
        name: p.name.clone(),
        transforms: out,
    })
}

type Outputs = Vec<(Option<String>, CollectionInfo)>;

fn arity(
    node: &str,
    inputs: &[&CollectionInfo],
    want: std::ops::RangeInclusive<usize>,
) -> Result<()> {
    if !want.contains(&inputs.len()) {
        let n = inputs.len();
        let expected = if want.start() == want.end() {
            format!("{}", want.start())
        } else if *want.end() == usize::MAX {
            format!("at least {}", want.start())
        } else {
            format!("{} to {}", want.start(), want.end())
        };
        return Err(ModelError::transform(
            node,
            format!("takes {expected} input(s), got {n}"),
        ));
    }
    Ok(())
}

fn type_expr(node: &str, expr: &Expr, schema: &Schema) -> Result<DataType> {
    expr.data_type(schema).map_err(|e| match e.column {
        Some(c) => ModelError::column(node, c, e.message),
        None => ModelError::transform(node, e.message),
    })
}

fn require_columns(node: &str, cols: &[String], schema: &Schema) -> Result<Vec<Field>> {
    cols.iter()
        .map(|c| {
            schema.field(c).cloned().ok_or_else(|| {
                ModelError::column(node, c, format!("no such column; the input has {schema}"))
            })
        })
        .collect()
}

fn derived(node: &str, from: &CollectionInfo, schema: Schema) -> CollectionInfo {
    let event_time = from
        .event_time
        .clone()
        .filter(|c| schema.field(c).is_some());
    CollectionInfo {
        producer: node.to_string(),
        schema,
        windowing: from.windowing.clone(),
        event_time,
        watermark: from.watermark.clone(),
        bounded: from.bounded,
        windowed_results: from.windowed_results,
    }
}

fn windowing_requirements(w: &WindowingStrategy, req: &mut BTreeSet<Feature>) {
    match &w.window_fn {
        WindowFn::Global => {}
        WindowFn::Fixed { .. } | WindowFn::Sliding { .. } => {
            req.insert(Feature::Windowing);
        }
        WindowFn::Sessions { gap_expr, .. } => {
            req.insert(Feature::Windowing);
            req.insert(Feature::MergingWindows);
            if gap_expr.is_some() {
                req.insert(Feature::DynamicSessionGaps);
            }
        }
        WindowFn::Custom(c) => {
            req.insert(Feature::CustomWindows);
            if c.is_merging() {
                req.insert(Feature::MergingWindows);
            }
        }
    }
    for t in w.trigger.walk() {
        match t {
            Trigger::AfterWatermark { early, late } => {
                if early.is_some() {
                    req.insert(Feature::EarlyFirings);
                }
                if late.is_some() {
                    req.insert(Feature::LateFirings);
                }
            }
            Trigger::AfterProcessingTime { .. } => {
                req.insert(Feature::ProcessingTimeTriggers);
            }
            Trigger::AfterCount { .. } => {
                req.insert(Feature::CountTriggers);
            }
            Trigger::Repeatedly { .. }
            | Trigger::AfterEach { .. }
            | Trigger::AfterFirst { .. }
            | Trigger::AfterAll { .. }
            | Trigger::OrFinally { .. } => {
                req.insert(Feature::CompositeTriggers);
            }
            Trigger::Default | Trigger::Never => {}
        }
    }
    if w.accumulation == AccumulationMode::Accumulating {
        req.insert(Feature::AccumulatingPanes);
    }
    if w.allowed_lateness.0 > 0 {
        req.insert(Feature::AllowedLateness);
    }
    if matches!(w.late_data, LateDataPolicy::SideOutput { .. }) {
        req.insert(Feature::LateDataSideOutput);
    }
    if w.timestamp_combiner != TimestampCombiner::EndOfWindow {
        req.insert(Feature::TimestampCombiners);
    }
}

fn validate_windowing(node: &str, w: &WindowingStrategy, schema: &Schema) -> Result<()> {
    let bad = |m: &str| Err(ModelError::transform(node, m.to_string()));
    match &w.window_fn {
        WindowFn::Fixed { size, .. } if size.0 <= 0 => return bad("fixed window size must be > 0"),
        WindowFn::Sliding { size, period, .. } => {
            if size.0 <= 0 || period.0 <= 0 {
                return bad("sliding window size and period must be > 0");
            }
            if period.0 > size.0 {
                return bad("sliding window period must not exceed its size");
            }
        }
        WindowFn::Sessions { gap, gap_expr } => match gap_expr {
            Some(e) => {
                let t = type_expr(node, e, schema)?;
                if t != DataType::Int64 {
                    return bad(&format!(
                        "the session gap expression `{e}` must be int64 milliseconds, not {t}"
                    ));
                }
            }
            None if gap.0 <= 0 => return bad("session gap must be > 0"),
            None => {}
        },
        _ => {}
    }
    for t in w.trigger.walk() {
        match t {
            Trigger::AfterCount { count: 0 } => return bad("a count trigger needs a count >= 1"),
            Trigger::AfterEach { triggers }
            | Trigger::AfterFirst { triggers }
            | Trigger::AfterAll { triggers }
                if triggers.is_empty() =>
            {
                return bad("a composite trigger needs at least one sub-trigger")
            }
            _ => {}
        }
    }
    if w.allowed_lateness.0 < 0 {
        return bad("allowed lateness must be >= 0");
    }
    Ok(())
}

fn aggregation_output(node: &str, from: &CollectionInfo, schema: Schema) -> CollectionInfo {
    CollectionInfo {
        producer: node.to_string(),
        schema,
        windowing: from.windowing.clone(),
        event_time: None,
        watermark: from.watermark.clone(),
        bounded: from.bounded,
        windowed_results: true,
    }
}

fn late_output(node: &str, from: &CollectionInfo, out: &mut Outputs) {
    if let LateDataPolicy::SideOutput { tag } = &from.windowing.late_data {
        let mut late = derived(node, from, from.schema.clone());
        late.windowed_results = false;
        out.push((Some(tag.clone()), late));
    }
}

fn infer(
    node: &str,
    transform: &Transform,
    input_names: &[String],
    inputs: &[&CollectionInfo],
    req: &mut BTreeSet<Feature>,
) -> Result<Outputs> {
    let mut out: Outputs = Vec::new();
    match transform {
        Transform::Read {
            source,
            schema,
            bad_records,
        } => {
            arity(node, inputs, 0..=0)?;
            if schema.fields.is_empty() {
                return Err(ModelError::transform(
                    node,
                    "a source needs a schema with at least one column",
                ));
            }
            let bounded = source.is_bounded();
            if !bounded {
                req.insert(Feature::UnboundedSources);
            }
            let info = CollectionInfo {
                producer: node.into(),
                schema: schema.clone(),
                windowing: WindowingStrategy::default(),
                event_time: None,
                watermark: None,
                bounded,
                windowed_results: false,
            };
            if let BadRecordPolicy::DeadLetter { tag } = bad_records {
                req.insert(Feature::DeadLetterOutputs);
                let mut dl = info.clone();
                dl.schema = dead_letter_schema();
                out.push((Some(tag.clone()), dl));
            }
            out.insert(0, (None, info));
        }
        Transform::Filter { predicate } => {
            arity(node, inputs, 1..=1)?;
            let t = type_expr(node, predicate, &inputs[0].schema)?;
            if t != DataType::Boolean {
                return Err(ModelError::transform(
                    node,
                    format!("the filter `{predicate}` must be bool, not {t}"),
                ));
            }
            out.push((None, derived(node, inputs[0], inputs[0].schema.clone())));
        }
        Transform::Project { fields, append } => {
            arity(node, inputs, 1..=1)?;
            let input = &inputs[0].schema;
            let mut schema = if *append {
                input.clone()
            } else {
                Schema::default()
            };
            let mut names = BTreeSet::new();
            for (name, e) in fields {
                if !names.insert(name.as_str()) {
                    return Err(ModelError::column(node, name, "defined twice"));
                }
                let t = type_expr(node, e, input)?;
                let f = Field::new(name, t);
                match schema.index_of(name) {
                    Some(i) => schema.fields[i] = f,
                    None => schema.fields.push(f),
                }
            }
            if schema.fields.is_empty() {
                return Err(ModelError::transform(node, "produces no columns"));
            }
            let mut info = derived(node, inputs[0], schema);
            // A renamed event-time column keeps being the event time.
            if info.event_time.is_none() {
                if let Some(et) = &inputs[0].event_time {
                    info.event_time = fields
                        .iter()
                        .find(|(_, e)| matches!(e, Expr::Column(c) if c == et))
                        .map(|(n, _)| n.clone());
                }
            }
            out.push((None, info));
        }
        Transform::Explode { field } => {
            arity(node, inputs, 1..=1)?;
            let mut schema = inputs[0].schema.clone();
            let f = require_columns(node, std::slice::from_ref(field), &schema)?.remove(0);
            let DataType::List(item) = f.data_type else {
                return Err(ModelError::column(
                    node,
                    field,
                    format!("Explode needs a list column, not {}", f.data_type),
                ));
            };
            let i = schema.index_of(field).unwrap();
            schema.fields[i].data_type = *item;
            out.push((None, derived(node, inputs[0], schema)));
        }
        Transform::ParDo { func, on_error } => {
            arity(node, inputs, 1..=1)?;
            req.insert(Feature::UserFunctions);
            let schema = func
                .output_schema(&inputs[0].schema)
                .map_err(|m| ModelError::transform(node, m))?;
            out.push((None, derived(node, inputs[0], schema)));
            for (tag, s) in func
                .side_outputs(&inputs[0].schema)
                .map_err(|m| ModelError::transform(node, m))?
            {
                req.insert(Feature::SideOutputs);
                out.push((Some(tag), derived(node, inputs[0], s)));
            }
            if let BadRecordPolicy::DeadLetter { tag } = on_error {
                req.insert(Feature::DeadLetterOutputs);
                out.push((
                    Some(tag.clone()),
                    derived(node, inputs[0], dead_letter_schema()),
                ));
            }
        }
        Transform::MapBatches { func } => {
            arity(node, inputs, 1..=1)?;
            req.insert(Feature::BatchUserFunctions);
            let schema = func
                .output_schema(&inputs[0].schema)
                .map_err(|m| ModelError::transform(node, m))?;
            out.push((None, derived(node, inputs[0], schema)));
        }
        Transform::AssignTimestamps {
            timestamp,
            watermark,
        } => {
            arity(node, inputs, 1..=1)?;
            let t = type_expr(node, timestamp, &inputs[0].schema)?;
            if t != DataType::Timestamp && t != DataType::Int64 {
                let err = format!("the event time `{timestamp}` must be a timestamp or int64 milliseconds, not {t}");
                return Err(match timestamp {
                    Expr::Column(c) => ModelError::column(node, c, err),
                    _ => ModelError::transform(node, err),
                });
            }
            if watermark.max_out_of_orderness.0 < 0 {
                return Err(ModelError::transform(
                    node,
                    "max out-of-orderness must be >= 0",
                ));
            }
            if watermark.idle_timeout.is_some() {
                req.insert(Feature::IdleTimeout);
            }
            let mut info = derived(node, inputs[0], inputs[0].schema.clone());
            info.event_time = match timestamp {
                Expr::Column(c) => Some(c.clone()),
                _ => None,
            };
            info.watermark = Some(watermark.clone());
            info.windowed_results = false;
            out.push((None, info));
        }
        Transform::WindowInto { windowing } => {
            arity(node, inputs, 1..=1)?;
            validate_windowing(node, windowing, &inputs[0].schema)?;
            windowing_requirements(windowing, req);
            let mut info = derived(node, inputs[0], inputs[0].schema.clone());
            info.windowing = windowing.clone();
            info.windowed_results = false;
            out.push((None, info));
        }
        Transform::GroupByKey { keys } => {
            arity(node, inputs, 1..=1)?;
            let input = &inputs[0].schema;
            let mut fields = require_columns(node, keys, input)?;
            let rest: Vec<Field> = input
                .fields
                .iter()
                .filter(|f| !keys.contains(&f.name))
                .cloned()
                .collect();
            fields.push(Field::new(
                "values",
                DataType::List(Box::new(DataType::Struct(rest))),
            ));
            out.push((
                None,
                aggregation_output(node, inputs[0], Schema::new(fields)),
            ));
            late_output(node, inputs[0], &mut out);
        }
        Transform::Combine {
            group_by,
            aggregations,
        } => {
            arity(node, inputs, 1..=1)?;
            let input = &inputs[0].schema;
            let mut fields = require_columns(node, group_by, input)?;
            if aggregations.is_empty() {
                return Err(ModelError::transform(
                    node,
                    "Combine needs at least one aggregation",
                ));
            }
            for a in aggregations {
                if fields.iter().any(|f| f.name == a.name) {
                    return Err(ModelError::column(
                        node,
                        &a.name,
                        "output column defined twice",
                    ));
                }
                let in_type = match &a.input {
                    Some(e) => Some(type_expr(node, e, input)?),
                    None => None,
                };
                let needs_input = !matches!(a.func, AggregateFn::Count | AggregateFn::Custom(_));
                let t = match (&a.func, &in_type) {
                    (_, None) if needs_input => {
                        return Err(ModelError::column(
                            node,
                            &a.name,
                            format!("{} needs a `value`", a.func.name()),
                        ))
                    }
                    (AggregateFn::Count | AggregateFn::DistinctCount, _) => DataType::Int64,
                    (AggregateFn::Sum, Some(t)) if t.is_numeric() => t.clone(),
                    (AggregateFn::Mean, Some(t)) if t.is_numeric() => DataType::Float64,
                    (AggregateFn::Min | AggregateFn::Max, Some(t)) if t.is_orderable() => t.clone(),
                    (AggregateFn::Custom(c), t) => {
                        req.insert(Feature::UserCombiners);
                        c.output_type(t.as_ref())
                            .map_err(|m| ModelError::column(node, &a.name, m))?
                    }
                    (f, Some(t)) => {
                        let col = a.input.as_ref().map(|e| e.to_string()).unwrap_or_default();
                        return Err(ModelError::column(
                            node,
                            &a.name,
                            format!("{} cannot aggregate `{col}` of type {t}", f.name()),
                        ));
                    }
                    (_, None) => unreachable!("checked above"),
                };
                fields.push(Field::new(&a.name, t));
            }
            out.push((
                None,
                aggregation_output(node, inputs[0], Schema::new(fields)),
            ));
            late_output(node, inputs[0], &mut out);
        }
        Transform::Flatten => {
            arity(node, inputs, 1..=usize::MAX)?;
            let first = inputs[0];
            for (name, other) in input_names.iter().zip(inputs).skip(1) {
                if other.schema != first.schema {
                    return Err(ModelError::transform(
                        node,
                        format!(
                            "input `{name}` has schema {} but `{}` has {}",
                            other.schema, input_names[0], first.schema
                        ),
                    ));
                }
                if other.windowing.window_fn.to_string() != first.windowing.window_fn.to_string() {
                    return Err(ModelError::transform(
                        node,
                        format!("input `{name}` is windowed differently"),
                    ));
                }
            }
            let mut info = derived(node, first, first.schema.clone());
            info.bounded = inputs.iter().all(|i| i.bounded);
            out.push((None, info));
        }
        Transform::Join { on, kind: _ } | Transform::CoGroupByKey { keys: on } => {
            arity(node, inputs, 2..=usize::MAX)?;
            req.insert(Feature::Joins);
            if on.len() != inputs.len() {
                return Err(ModelError::transform(
                    node,
                    format!("needs key columns for each of its {} inputs", inputs.len()),
                ));
            }
            let key_fields: Vec<Vec<Field>> = on
                .iter()
                .zip(inputs)
                .map(|(k, i)| require_columns(node, k, &i.schema))
                .collect::<Result<_>>()?;
            for (i, kf) in key_fields.iter().enumerate().skip(1) {
                if kf.len() != key_fields[0].len() {
                    return Err(ModelError::transform(
                        node,
                        "every input needs the same number of key columns",
                    ));
                }
                for (a, b) in key_fields[0].iter().zip(kf) {
                    if a.data_type != b.data_type {
                        return Err(ModelError::column(
                            node,
                            &b.name,
                            format!(
                                "key type {} of `{}` differs from {} of `{}`",
                                b.data_type, input_names[i], a.data_type, input_names[0]
                            ),
                        ));
                    }
                }
                if inputs[i].windowing.window_fn.to_string()
                    != inputs[0].windowing.window_fn.to_string()
                {
                    return Err(ModelError::transform(
                        node,
                        format!("input `{}` is windowed differently", input_names[i]),
                    ));
                }
            }
            let mut fields = key_fields[0].clone();
            if let Transform::Join { .. } = transform {
                let mut all: Vec<(usize, Field)> = Vec::new();
                for (i, input) in inputs.iter().enumerate() {
                    for f in &input.schema.fields {
                        if !on[i].contains(&f.name) {
                            all.push((i, f.clone()));
                        }
                    }
                }
                for (i, f) in &all {
                    let clash = fields.iter().any(|k| k.name == f.name)
                        || all.iter().filter(|(_, g)| g.name == f.name).count() > 1;
                    let name = if clash {
                        format!("{}_{}", input_names[*i].replace('.', "_"), f.name)
                    } else {
                        f.name.clone()
                    };
                    fields.push(Field {
                        name,
                        data_type: f.data_type.clone(),
                        nullable: true,
                    });
                }
            } else {
                for (i, input) in inputs.iter().enumerate() {
                    let rest: Vec<Field> = input
                        .schema
                        .fields
                        .iter()
                        .filter(|f| !on[i].contains(&f.name))
                        .cloned()
                        .collect();
                    fields.push(Field::new(
                        input_names[i].replace('.', "_"),
                        DataType::List(Box::new(DataType::Struct(rest))),
                    ));
                }
            }
            let mut info = aggregation_output(node, inputs[0], Schema::new(fields));
            info.bounded = inputs.iter().all(|i| i.bounded);
            out.push((None, info));
            late_output(node, inputs[0], &mut out);
        }
        Transform::StatefulParDo { keys, func } => {
            arity(node, inputs, 1..=1)?;
            require_columns(node, keys, &inputs[0].schema)?;
            req.insert(Feature::StatefulProcessing);
            for t in func.timers() {
                req.insert(match t.domain {
                    crate::udf::TimeDomain::EventTime => Feature::EventTimeTimers,
                    crate::udf::TimeDomain::ProcessingTime => Feature::ProcessingTimeTimers,
                });
            }
            let schema = func
                .output_schema(&inputs[0].schema)
                .map_err(|m| ModelError::transform(node, m))?;
            out.push((None, derived(node, inputs[0], schema)));
        }
        Transform::Dedup { keys, ttl } => {
            arity(node, inputs, 1..=1)?;
            require_columns(node, keys, &inputs[0].schema)?;
            req.insert(Feature::StatefulProcessing);
            if ttl.is_some() {
                req.insert(Feature::EventTimeTimers);
            }
            out.push((None, derived(node, inputs[0], inputs[0].schema.clone())));
        }
        Transform::TopN {
            group_by,
            order_by,
            n,
            ..
        } => {
            arity(node, inputs, 1..=1)?;
            require_columns(node, group_by, &inputs[0].schema)?;
            let f =
                require_columns(node, std::slice::from_ref(order_by), &inputs[0].schema)?.remove(0);
            if !f.data_type.is_orderable() {
                return Err(ModelError::column(
                    node,
                    order_by,
                    format!("cannot order by type {}", f.data_type),
                ));
            }
            if *n == 0 {
                return Err(ModelError::transform(node, "TopN needs n >= 1"));
            }
            out.push((
                None,
                aggregation_output(node, inputs[0], inputs[0].schema.clone()),
            ));
            late_output(node, inputs[0], &mut out);
        }
        Transform::Write { .. } => {
            arity(node, inputs, 1..=1)?;
        }
        Transform::AssertEqual { .. } => {
            arity(node, inputs, 1..=1)?;
            req.insert(Feature::Assertions);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::SourceSpec;
    use crate::schema::Field;

    fn create() -> Transform {
        Transform::Read {
            source: SourceSpec::Create {
                elements: vec![serde_json::json!({"a": 1})],
            },
            schema: Schema::new(vec![Field::new("a", DataType::Int64)]),
            bad_records: BadRecordPolicy::Fail,
        }
    }

    #[test]
    fn an_undeclared_side_output_is_refused_naming_the_transform() {
        let mut p = Pipeline::new();
        p.add("src", vec![], create());
        p.add("f", vec!["src.errors".into()], Transform::Flatten);
        let err = plan(&p).unwrap_err().to_string();
        assert_eq!(
            err,
            "transform `f`: input `src.errors` is not an output of `src` (its outputs: src)"
        );
    }

    #[test]
    fn nodes_are_ordered_after_their_inputs() {
        let mut p = Pipeline::new();
        p.add("f", vec!["src".into()], Transform::Flatten);
        p.add("src", vec![], create());
        let planned = plan(&p).unwrap();
        let names: Vec<&str> = planned
            .pipeline
            .transforms
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, vec!["src", "f"]);
    }

    #[test]
    fn a_cycle_is_refused() {
        let mut p = Pipeline::new();
        p.add("a", vec!["b".into()], Transform::Flatten);
        p.add("b", vec!["a".into()], Transform::Flatten);
        assert!(plan(&p).unwrap_err().to_string().contains("cycle"));
    }
}
