//! The job graph: the plan's transforms grouped into chained vertices with a parallelism,
//! joined by edges that say how rows are exchanged (Flink's `JobGraph` built from the
//! `StreamGraph`).
//!
//! Rules (Flink's defaults, applied to the IR):
//! - a `Read` runs at the job parallelism; its splits are assigned round robin to its
//!   subtasks;
//! - a keyed transform (grouping, join, stateful ParDo, dedup with keys) runs at the job
//!   parallelism behind a hash exchange on its key columns (`keyBy`);
//! - an aggregation without keys runs at parallelism 1 behind a gather (`windowAll`);
//! - sinks and assertions run at parallelism 1 (one output file, one assertion);
//! - any other transform keeps its producer's parallelism, forward-connected;
//! - a transform is chained into its producer's vertex when it has one input, the edge is
//!   forward and the parallelism equal (Flink's chaining conditions), so a chain runs in
//!   one task without channels.

use crate::channel::Partitioner;
use std::collections::BTreeMap;
use weir_model::plan::Plan;
use weir_model::transform::Transform;

/// A chained group of transforms run by `parallelism` subtasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vertex {
    /// The transforms, head first, in topological order.
    pub nodes: Vec<String>,
    /// Number of subtasks.
    pub parallelism: usize,
    /// Whether the head is a source (`Read`).
    pub is_source: bool,
}

impl Vertex {
    /// The head transform (the source, or the one receiving the vertex's input edges).
    pub fn head(&self) -> &str {
        &self.nodes[0]
    }
    /// A display name: the chained transforms joined by ` -> `.
    pub fn name(&self) -> String {
        self.nodes.join(" -> ")
    }
}

/// A connection between vertices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// The sending vertex.
    pub from: usize,
    /// The collection sent (a main or side output of a transform in `from`).
    pub collection: String,
    /// The receiving vertex (its head transform consumes the collection).
    pub to: usize,
    /// Which input of the receiving head transform.
    pub input: usize,
    /// How rows are routed.
    pub partitioner: Partitioner,
}

/// Vertices and edges, vertices in topological order.
#[derive(Debug, Clone, Default)]
pub struct JobGraph {
    /// The vertices.
    pub vertices: Vec<Vertex>,
    /// The edges.
    pub edges: Vec<Edge>,
}

/// What a transform needs from its input edges.
enum Placement {
    /// Hash exchange on these keys per input, job parallelism.
    Keyed(Vec<Vec<String>>),
    /// Parallelism 1, gathered.
    Single,
    /// Producer's parallelism.
    Forward,
}

fn placement(t: &Transform) -> Placement {
    let keyed = |keys: Vec<Vec<String>>| {
        if keys.iter().all(|k| !k.is_empty()) {
            Placement::Keyed(keys)
        } else {
            Placement::Single
        }
    };
    match t {
        Transform::GroupByKey { keys } => keyed(vec![keys.clone()]),
        Transform::Combine { group_by, .. } | Transform::TopN { group_by, .. } => {
            keyed(vec![group_by.clone()])
        }
        Transform::Join { on, .. } => keyed(on.clone()),
        Transform::CoGroupByKey { keys } => keyed(keys.clone()),
        Transform::StatefulParDo { keys, .. } | Transform::Dedup { keys, .. } => {
            keyed(vec![keys.clone()])
        }
        Transform::Write { .. } | Transform::AssertEqual { .. } => Placement::Single,
        _ => Placement::Forward,
    }
}

impl JobGraph {
    /// Builds the graph of `plan` at job parallelism `parallelism`.
    pub fn build(plan: &Plan, parallelism: usize) -> JobGraph {
        Self::build_with(plan, parallelism, &BTreeMap::new())
            .expect("no per-transform parallelism to refuse")
    }

    /// Builds the graph with per-transform parallelism `overrides` (Flink's
    /// `setParallelism` on one operator). A transform that must run at parallelism 1 (a
    /// sink, an assertion, an aggregation without keys) refuses another, naming it.
    pub fn build_with(
        plan: &Plan,
        parallelism: usize,
        overrides: &BTreeMap<String, usize>,
    ) -> Result<JobGraph, String> {
        for name in overrides.keys() {
            if plan.pipeline.node(name).is_none() {
                return Err(format!(
                    "setting `parallelism.{name}`: the pipeline has no transform `{name}`"
                ));
            }
        }
        let parallelism = parallelism.max(1);
        let mut graph = JobGraph::default();
        // Transform name → its vertex.
        let mut vertex_of: BTreeMap<String, usize> = BTreeMap::new();
        for node in &plan.pipeline.transforms {
            let producers: Vec<usize> = node
                .inputs
                .iter()
                .map(|c| vertex_of[weir_model::pipeline::split_collection(c).0])
                .collect();
            // `--set parallelism.<transform>` wins over the pipeline's own per-transform value.
            let own = overrides.get(&node.name).copied().or(node.parallelism);
            if matches!(node.transform, Transform::Read { .. }) {
                vertex_of.insert(node.name.clone(), graph.vertices.len());
                graph.vertices.push(Vertex {
                    nodes: vec![node.name.clone()],
                    parallelism: own.unwrap_or(parallelism),
                    is_source: true,
                });
                continue;
            }
            let placed = placement(&node.transform);
            if let (Placement::Single, Some(p)) = (&placed, own) {
                if p != 1 {
                    return Err(format!(
                        "parallelism {p} for `{}`: it ({}) runs at parallelism 1",
                        node.name,
                        node.transform.type_name()
                    ));
                }
            }
            let (p, partitioners): (usize, Vec<Partitioner>) = match placed {
                Placement::Keyed(keys) => (
                    own.unwrap_or(parallelism),
                    keys.into_iter()
                        .map(|keys| Partitioner::Hash { keys })
                        .collect(),
                ),
                Placement::Single => (
                    1,
                    producers
                        .iter()
                        .map(|v| {
                            if graph.vertices[*v].parallelism == 1 {
                                Partitioner::Forward
                            } else {
                                Partitioner::Gather
                            }
                        })
                        .collect(),
                ),
                Placement::Forward => {
                    let p = own.unwrap_or_else(|| {
                        producers
                            .iter()
                            .map(|v| graph.vertices[*v].parallelism)
                            .max()
                            .unwrap_or(parallelism)
                    });
                    let parts = producers
                        .iter()
                        .map(|v| {
                            if graph.vertices[*v].parallelism == p {
                                Partitioner::Forward
                            } else {
                                Partitioner::Rebalance
                            }
                        })
                        .collect();
                    (p, parts)
                }
            };
            let chain_into = match (producers.as_slice(), partitioners.as_slice()) {
                ([v], [Partitioner::Forward]) if graph.vertices[*v].parallelism == p => Some(*v),
                _ => None,
            };
            match chain_into {
                Some(v) => {
                    graph.vertices[v].nodes.push(node.name.clone());
                    vertex_of.insert(node.name.clone(), v);
                }
                None => {
                    let to = graph.vertices.len();
                    graph.vertices.push(Vertex {
                        nodes: vec![node.name.clone()],
                        parallelism: p,
                        is_source: false,
                    });
                    vertex_of.insert(node.name.clone(), to);
                    for (input, (collection, partitioner)) in
                        node.inputs.iter().zip(partitioners).enumerate()
                    {
                        graph.edges.push(Edge {
                            from: producers[input],
                            collection: collection.clone(),
                            to,
                            input,
                            partitioner,
                        });
                    }
                }
            }
        }
        Ok(graph)
    }

    /// The edges leaving vertex `v`.
    pub fn outgoing(&self, v: usize) -> impl Iterator<Item = (usize, &Edge)> {
        self.edges
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.from == v)
    }

    /// The collections vertex `v` sends on its outgoing edges, in edge order.
    pub fn outgoing_collections(&self, v: usize) -> Vec<String> {
        self.outgoing(v)
            .map(|(_, e)| e.collection.clone())
            .collect()
    }

    /// The edges entering vertex `v`.
    pub fn incoming(&self, v: usize) -> impl Iterator<Item = (usize, &Edge)> {
        self.edges
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.to == v)
    }

    /// One line per vertex and edge, for logs and tests.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for (i, v) in self.vertices.iter().enumerate() {
            s.push_str(&format!("v{i} [{}] x{}\n", v.name(), v.parallelism));
        }
        for e in &self.edges {
            s.push_str(&format!(
                "v{} -{}-> v{} ({:?})\n",
                e.from, e.collection, e.to, e.partitioner
            ));
        }
        s
    }
}

/// The source splits subtask `subtask` of a source vertex at `parallelism` reads: round robin
/// over the subtasks (Flink's default split assignment).
pub fn assigned_splits(total: u32, parallelism: usize, subtask: usize) -> Vec<u32> {
    (0..total)
        .filter(|p| *p as usize % parallelism == subtask)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(path: &str) -> Plan {
        let text = std::fs::read_to_string(format!("../{path}")).unwrap();
        let pipeline = weir_model::file::parse_str(&text, path).unwrap();
        weir_model::plan(&pipeline).unwrap()
    }

    #[test]
    fn forward_transforms_chain_and_keyed_ones_get_a_hash_exchange() {
        let g = JobGraph::build(&plan_of("examples/clicks_per_user/pipeline.yaml"), 2);
        assert_eq!(
            g.describe(),
            "v0 [ReadClicks -> EventTime -> PerMinute] x2\n\
             v1 [CountClicks] x2\n\
             v2 [WriteCounts] x1\n\
             v3 [WriteLate] x1\n\
             v0 -PerMinute-> v1 (Hash { keys: [\"user\"] })\n\
             v1 -CountClicks-> v2 (Gather)\n\
             v1 -CountClicks.late-> v3 (Gather)\n"
        );
    }

    #[test]
    fn a_transform_may_run_at_its_own_parallelism_but_a_sink_only_at_one() {
        let plan = plan_of("examples/word_count/pipeline.yaml");
        let overrides = [("SplitWords".to_string(), 1), ("CountWords".to_string(), 3)].into();
        let g = JobGraph::build_with(&plan, 2, &overrides).unwrap();
        assert_eq!(
            g.describe(),
            "v0 [ReadLines] x2\n\
             v1 [SplitWords -> OneWordPerRow -> NonEmpty] x1\n\
             v2 [CountWords] x3\n\
             v3 [WriteCounts] x1\n\
             v4 [Show] x1\n\
             v0 -ReadLines-> v1 (Rebalance)\n\
             v1 -NonEmpty-> v2 (Hash { keys: [\"word\"] })\n\
             v2 -CountWords-> v3 (Gather)\n\
             v2 -CountWords-> v4 (Gather)\n"
        );
        let e = JobGraph::build_with(&plan, 2, &[("Show".to_string(), 2)].into()).unwrap_err();
        assert!(
            e.contains("parallelism 2 for `Show`: it (LogForTesting) runs at parallelism 1"),
            "{e}"
        );
        let e = JobGraph::build_with(&plan, 2, &[("Nope".to_string(), 2)].into()).unwrap_err();
        assert!(e.contains("no transform `Nope`"), "{e}");
    }

    #[test]
    fn at_parallelism_one_sinks_chain_but_keyed_exchanges_stay() {
        let g = JobGraph::build(&plan_of("examples/word_count/pipeline.yaml"), 1);
        assert_eq!(
            g.describe(),
            "v0 [ReadLines -> SplitWords -> OneWordPerRow -> NonEmpty] x1\n\
             v1 [CountWords -> WriteCounts -> Show] x1\n\
             v0 -NonEmpty-> v1 (Hash { keys: [\"word\"] })\n"
        );
    }

    #[test]
    fn the_pipelines_own_per_transform_parallelism_is_honoured_and_a_setting_overrides_it() {
        let mut pipeline = weir_model::file::parse_file(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/word_count/pipeline.yaml"
        )))
        .unwrap();
        for node in &mut pipeline.transforms {
            if node.name == "CountWords" {
                node.parallelism = Some(3);
            }
        }
        let plan = weir_model::plan(&pipeline).unwrap();
        let vertex_parallelism = |g: &JobGraph| {
            g.vertices
                .iter()
                .find(|v| v.nodes.iter().any(|n| n == "CountWords"))
                .map(|v| v.parallelism)
        };
        let g = JobGraph::build_with(&plan, 2, &BTreeMap::new()).unwrap();
        assert_eq!(vertex_parallelism(&g), Some(3));
        let g = JobGraph::build_with(&plan, 2, &[("CountWords".to_string(), 1)].into()).unwrap();
        assert_eq!(vertex_parallelism(&g), Some(1));
    }
}
