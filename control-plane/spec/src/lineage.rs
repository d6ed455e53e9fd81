//! The lineage graph: which definitions, snapshots and edges depend on which. Links point
//! upstream → downstream (a source → the views reading it → the services serving them), so
//! "what breaks if I change X" is a downstream walk and "where does this come from" an
//! upstream one.
//!
//! [`Graph::from_definitions`] builds the definition part; callers that know about snapshots
//! and edges add those with [`Graph::add_node`] and [`Graph::add_link`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Definitions, FeatureDef, ObjectKind};

/// What a node of the graph is.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A batch source (files or a database query).
    #[default]
    Source,
    /// An entity: the join keys views are keyed by.
    Entity,
    /// Fields callers pass with a lookup.
    RequestSource,
    /// A WebAssembly component.
    Transform,
    /// A materialized feature view.
    FeatureView,
    /// A view computed per request at the edge.
    OnDemandView,
    /// A bundle of features a model consumes.
    FeatureService,
    /// One materialized version of a feature view.
    Snapshot,
    /// An edge server serving snapshots.
    Edge,
}

impl NodeKind {
    /// Every kind, in order.
    pub const ALL: [NodeKind; 9] = [
        NodeKind::Source,
        NodeKind::Entity,
        NodeKind::RequestSource,
        NodeKind::Transform,
        NodeKind::FeatureView,
        NodeKind::OnDemandView,
        NodeKind::FeatureService,
        NodeKind::Snapshot,
        NodeKind::Edge,
    ];

    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Source => "source",
            NodeKind::Entity => "entity",
            NodeKind::RequestSource => "request_source",
            NodeKind::Transform => "transform",
            NodeKind::FeatureView => "feature_view",
            NodeKind::OnDemandView => "on_demand_view",
            NodeKind::FeatureService => "feature_service",
            NodeKind::Snapshot => "snapshot",
            NodeKind::Edge => "edge",
        }
    }

    /// Reads a kind as the API and the CLI write it: the snake_case name, the REST path's
    /// plural (`feature-views`), or a short form (`view`, `service`, `odv`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "source" | "sources" => NodeKind::Source,
            "entity" | "entities" => NodeKind::Entity,
            "request_source" | "request-source" | "request-sources" => NodeKind::RequestSource,
            "transform" | "transforms" => NodeKind::Transform,
            "feature_view" | "feature-view" | "feature-views" | "view" => NodeKind::FeatureView,
            "on_demand_view" | "on-demand-view" | "on-demand-views" | "odv" => {
                NodeKind::OnDemandView
            }
            "feature_service" | "feature-service" | "feature-services" | "service" => {
                NodeKind::FeatureService
            }
            "snapshot" | "snapshots" => NodeKind::Snapshot,
            "edge" | "edges" => NodeKind::Edge,
            _ => return None,
        })
    }

    /// The node kind of a registry object.
    pub fn from_object(k: ObjectKind) -> Self {
        match k {
            ObjectKind::Entity => NodeKind::Entity,
            ObjectKind::Source => NodeKind::Source,
            ObjectKind::RequestSource => NodeKind::RequestSource,
            ObjectKind::Transform => NodeKind::Transform,
            ObjectKind::FeatureView => NodeKind::FeatureView,
            ObjectKind::OnDemandView => NodeKind::OnDemandView,
            ObjectKind::FeatureService => NodeKind::FeatureService,
        }
    }

    /// The registry object kind of a definition node; None for snapshots and edges.
    pub fn to_object(self) -> Option<ObjectKind> {
        ObjectKind::ALL
            .into_iter()
            .find(|k| NodeKind::from_object(*k) == self)
    }

    /// Whether nodes of this kind are definitions (rather than snapshots or edges).
    pub fn is_definition(self) -> bool {
        !matches!(self, NodeKind::Snapshot | NodeKind::Edge)
    }

    /// The Graphviz shape drawn for the kind.
    fn shape(self) -> &'static str {
        match self {
            NodeKind::Source => "cylinder",
            NodeKind::Entity => "diamond",
            NodeKind::RequestSource => "parallelogram",
            NodeKind::Transform => "component",
            NodeKind::FeatureView => "box",
            NodeKind::OnDemandView => "hexagon",
            NodeKind::FeatureService => "folder",
            NodeKind::Snapshot => "note",
            NodeKind::Edge => "ellipse",
        }
    }
}

impl std::fmt::Display for NodeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node's identity: its kind and name (a snapshot's name is `view@version`, an edge's its
/// address; the graph does not interpret them).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct NodeId {
    /// What the node is.
    pub kind: NodeKind,
    /// Its name, unique within the kind.
    pub name: String,
}

impl NodeId {
    /// A node id of `kind` named `name`.
    pub fn new(kind: NodeKind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
        }
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// Which way a walk follows links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Towards what the node reads from.
    Upstream,
    /// Towards what reads from the node.
    Downstream,
    /// Both of the above (their union, not the whole connected component).
    Both,
}

impl Direction {
    /// The lowercase name, as deserialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
            Direction::Both => "both",
        }
    }

    /// Reads the lowercase name.
    pub fn parse(s: &str) -> Option<Self> {
        [Direction::Upstream, Direction::Downstream, Direction::Both]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// A node and its free-form attributes (version, owner, tags, rows, features...).
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// Which node.
    pub id: NodeId,
    /// Whatever the builder knows about it.
    pub attrs: Map<String, Value>,
}

/// A dependency: `to` depends on `from`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Link {
    /// The upstream end.
    pub from: NodeId,
    /// The downstream end.
    pub to: NodeId,
    /// How: "reads", "keys", "computes", "request", "serves", "pins v3", "materialized"...
    pub label: String,
}

/// The lineage graph.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    nodes: BTreeMap<NodeId, Node>,
    links: BTreeSet<Link>,
}

impl Graph {
    /// Nodes for every definition, and links: source → feature view ("reads"), entity →
    /// feature view ("keys"), transform → view ("computes", for each transform its features
    /// name), feature view → on-demand view ("reads"), request source → on-demand view
    /// ("request"), view → feature service ("serves", or "pins vN" for a pinned reference).
    /// Node attributes: owner, description, tags, and for views their feature names.
    pub fn from_definitions(defs: &Definitions) -> Self {
        let mut g = Graph::default();
        for e in &defs.entities {
            let mut attrs = meta(&e.owner, &e.description, &e.tags);
            let keys: Vec<&str> = e.join_keys.iter().map(|k| k.name.as_str()).collect();
            attrs.insert("join_keys".into(), keys.into());
            g.add_node(NodeId::new(NodeKind::Entity, &e.name), attrs);
        }
        for s in &defs.sources {
            // Only the format: a path may be a database URL holding a password.
            let mut attrs = meta(&s.owner, &s.description, &s.tags);
            attrs.insert(
                "format".into(),
                serde_json::to_value(s.format).unwrap_or_default(),
            );
            g.add_node(NodeId::new(NodeKind::Source, &s.name), attrs);
        }
        for r in &defs.request_sources {
            let mut attrs = meta(&r.owner, &r.description, &r.tags);
            let fields: Vec<&str> = r.fields.iter().map(|f| f.name.as_str()).collect();
            attrs.insert("fields".into(), fields.into());
            g.add_node(NodeId::new(NodeKind::RequestSource, &r.name), attrs);
        }
        for t in &defs.transforms {
            let mut attrs = meta(&t.owner, &t.description, &t.tags);
            if let Some(r) = &t.resolved {
                attrs.insert("sha256".into(), r.sha256.clone().into());
            }
            g.add_node(NodeId::new(NodeKind::Transform, &t.name), attrs);
        }
        for v in &defs.feature_views {
            let id = NodeId::new(NodeKind::FeatureView, &v.name);
            let mut attrs = meta(&v.owner, &v.description, &v.tags);
            attrs.insert("features".into(), feature_names(&v.features));
            g.add_node(id.clone(), attrs);
            g.add_link(
                NodeId::new(NodeKind::Source, &v.source),
                id.clone(),
                "reads",
            );
            for e in &v.entities {
                g.add_link(NodeId::new(NodeKind::Entity, e), id.clone(), "keys");
            }
            g.link_transforms(&v.features, &id);
        }
        for v in &defs.on_demand_views {
            let id = NodeId::new(NodeKind::OnDemandView, &v.name);
            let mut attrs = meta(&v.owner, &v.description, &v.tags);
            attrs.insert("features".into(), feature_names(&v.features));
            g.add_node(id.clone(), attrs);
            for s in &v.sources {
                g.add_link(NodeId::new(NodeKind::FeatureView, s), id.clone(), "reads");
            }
            if let Some(r) = &v.request_source {
                g.add_link(
                    NodeId::new(NodeKind::RequestSource, r),
                    id.clone(),
                    "request",
                );
            }
            g.link_transforms(&v.features, &id);
        }
        for s in &defs.feature_services {
            let id = NodeId::new(NodeKind::FeatureService, &s.name);
            g.add_node(id.clone(), meta(&s.owner, &s.description, &s.tags));
            for r in &s.features {
                let view = r.base_view();
                // References do not say which kind of view they mean; the two share one
                // namespace, so whichever is defined is the one.
                let kind = if defs.view(view).is_none() && defs.on_demand_view(view).is_some() {
                    NodeKind::OnDemandView
                } else {
                    NodeKind::FeatureView
                };
                let label = match r.pin() {
                    Ok(Some(n)) => format!("pins v{n}"),
                    _ => "serves".to_string(),
                };
                g.add_link(NodeId::new(kind, view), id.clone(), label);
            }
        }
        g
    }

    /// Links each transform the features name to `view`, once.
    fn link_transforms(&mut self, features: &[FeatureDef], view: &NodeId) {
        for t in features.iter().filter_map(|f| f.transform.as_deref()) {
            self.add_link(
                NodeId::new(NodeKind::Transform, t),
                view.clone(),
                "computes",
            );
        }
    }

    /// Adds a node, or merges `attrs` into the existing one (new values win).
    pub fn add_node(&mut self, id: NodeId, attrs: Map<String, Value>) {
        match self.nodes.get_mut(&id) {
            Some(node) => node.attrs.extend(attrs),
            None => {
                self.nodes.insert(id.clone(), Node { id, attrs });
            }
        }
    }

    /// The node, to change its attributes.
    pub fn node_mut(&mut self, id: &NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(id)
    }

    /// The node, if present.
    pub fn node(&self, id: &NodeId) -> Option<&Node> {
        self.nodes.get(id)
    }

    /// Every node, ordered by id.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    /// Every link, ordered.
    pub fn links(&self) -> impl Iterator<Item = &Link> {
        self.links.iter()
    }

    /// Adds a link; either end missing from the graph is added with no attributes, so a
    /// dangling reference still shows where it points.
    pub fn add_link(&mut self, from: NodeId, to: NodeId, label: impl Into<String>) {
        for id in [&from, &to] {
            if !self.nodes.contains_key(id) {
                self.add_node(id.clone(), Map::new());
            }
        }
        self.links.insert(Link {
            from,
            to,
            label: label.into(),
        });
    }

    /// Whether the node is in the graph.
    pub fn contains(&self, id: &NodeId) -> bool {
        self.nodes.contains_key(id)
    }

    /// The subgraph reachable from `start` in `direction`, at most `depth` links away (None:
    /// unlimited), including `start`; empty when `start` is not in the graph. Each node is
    /// visited once, so cycles end.
    pub fn walk(&self, start: &NodeId, direction: Direction, depth: Option<usize>) -> Subgraph {
        let mut ids = BTreeSet::new();
        let mut links = BTreeSet::new();
        if self.contains(start) {
            let downs: &[bool] = match direction {
                Direction::Upstream => &[false],
                Direction::Downstream => &[true],
                Direction::Both => &[false, true],
            };
            for &down in downs {
                self.bfs(start, down, depth, &mut ids, &mut links);
            }
        }
        Subgraph {
            root: start.clone(),
            direction: direction.as_str().to_string(),
            nodes: ids
                .into_iter()
                .filter_map(|id| self.nodes.get(id).cloned())
                .collect(),
            links: links.into_iter().cloned().collect(),
        }
    }

    /// Breadth-first from `start` along links (`down`: from → to, else to → from), adding
    /// what it reaches within `depth` to `ids` and every link it follows to `links`.
    fn bfs<'a>(
        &'a self,
        start: &'a NodeId,
        down: bool,
        depth: Option<usize>,
        ids: &mut BTreeSet<&'a NodeId>,
        links: &mut BTreeSet<&'a Link>,
    ) {
        let adjacent = adjacency(self.links.iter(), down);
        let mut seen = BTreeSet::from([start]);
        let mut queue = VecDeque::from([(start, 0usize)]);
        ids.insert(start);
        while let Some((id, d)) = queue.pop_front() {
            if depth.is_some_and(|max| d >= max) {
                continue;
            }
            for &(next, link) in adjacent.get(id).into_iter().flatten() {
                links.insert(link);
                if seen.insert(next) {
                    ids.insert(next);
                    queue.push_back((next, d + 1));
                }
            }
        }
    }

    /// Direct dependents of a node: those a link from it reaches, definitions only (not
    /// snapshots or edges), each once.
    pub fn dependents(&self, id: &NodeId) -> Vec<NodeId> {
        let set: BTreeSet<&NodeId> = self
            .links
            .iter()
            .filter(|l| l.from == *id && l.to.kind.is_definition())
            .map(|l| &l.to)
            .collect();
        set.into_iter().cloned().collect()
    }

    /// Everything downstream of a node, transitively, grouped by kind.
    pub fn impact(&self, id: &NodeId) -> Impact {
        let mut groups: BTreeMap<NodeKind, BTreeSet<String>> = BTreeMap::new();
        for n in self.walk(id, Direction::Downstream, None).nodes {
            if n.id != *id {
                groups.entry(n.id.kind).or_default().insert(n.id.name);
            }
        }
        let mut take = |k| {
            groups
                .remove(&k)
                .map(|s| s.into_iter().collect())
                .unwrap_or_default()
        };
        Impact {
            root: id.clone(),
            feature_views: take(NodeKind::FeatureView),
            on_demand_views: take(NodeKind::OnDemandView),
            feature_services: take(NodeKind::FeatureService),
            snapshots: take(NodeKind::Snapshot),
            edges: take(NodeKind::Edge),
        }
    }
}

/// For each node, the nodes its links lead to in one direction, and the links.
fn adjacency<'a>(
    links: impl Iterator<Item = &'a Link>,
    down: bool,
) -> BTreeMap<&'a NodeId, Vec<(&'a NodeId, &'a Link)>> {
    let mut out: BTreeMap<&NodeId, Vec<(&NodeId, &Link)>> = BTreeMap::new();
    for l in links {
        let (here, there) = if down {
            (&l.from, &l.to)
        } else {
            (&l.to, &l.from)
        };
        out.entry(here).or_default().push((there, l));
    }
    out
}

fn meta(owner: &str, description: &str, tags: &[String]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("owner".into(), owner.into());
    m.insert("description".into(), description.into());
    m.insert("tags".into(), tags.into());
    m
}

fn feature_names(features: &[FeatureDef]) -> Value {
    features
        .iter()
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .into()
}

/// The part of the graph a walk reached.
#[derive(Debug, Clone, Serialize)]
pub struct Subgraph {
    /// Where the walk started.
    pub root: NodeId,
    /// "upstream", "downstream" or "both".
    pub direction: String,
    /// The nodes reached, root included, ordered by id.
    pub nodes: Vec<Node>,
    /// The links followed, ordered.
    pub links: Vec<Link>,
}

impl Subgraph {
    /// Graphviz DOT, left to right: one node per id (quoted and escaped, since names may hold
    /// `@ # : /` and quotes), shaped by kind, labelled "kind\nname"; the root bold and filled.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph lineage {\n  rankdir=LR;\n  node [fontsize=10];\n");
        for n in &self.nodes {
            let root = if n.id == self.root {
                ", style=\"bold,filled\", fillcolor=\"lightyellow\""
            } else {
                ""
            };
            out.push_str(&format!(
                "  {} [label=\"{}\\n{}\", shape={}{root}];\n",
                dot_id(&n.id),
                n.id.kind,
                escape(&n.id.name),
                n.id.kind.shape()
            ));
        }
        for l in &self.links {
            out.push_str(&format!(
                "  {} -> {} [label=\"{}\"];\n",
                dot_id(&l.from),
                dot_id(&l.to),
                escape(&l.label)
            ));
        }
        out.push_str("}\n");
        out
    }

    /// An indented tree from the root in the walk's direction, like `cargo tree`: each line
    /// "kind name [label]", the label being the link's to its parent. A node reached again is
    /// printed once more with " (*)" and not expanded again. For "both", the upstream tree
    /// then the downstream one, their root lines marked "(upstream)" and "(downstream)".
    pub fn render_tree(&self) -> String {
        let direction = Direction::parse(&self.direction).unwrap_or(Direction::Downstream);
        let downs: &[bool] = match direction {
            Direction::Upstream => &[false],
            Direction::Downstream => &[true],
            Direction::Both => &[false, true],
        };
        let mut out = String::new();
        for &down in downs {
            out.push_str(&self.root.to_string());
            if direction == Direction::Both {
                out.push_str(if down { " (downstream)" } else { " (upstream)" });
            }
            out.push('\n');
            let adjacent = adjacency(self.links.iter(), down);
            let mut expanded = BTreeSet::from([&self.root]);
            branch(&self.root, "", &adjacent, &mut expanded, &mut out);
        }
        out
    }
}

/// The children of `node` under `prefix`, depth first.
fn branch<'a>(
    node: &'a NodeId,
    prefix: &str,
    adjacent: &BTreeMap<&'a NodeId, Vec<(&'a NodeId, &'a Link)>>,
    expanded: &mut BTreeSet<&'a NodeId>,
    out: &mut String,
) {
    let children = adjacent.get(node).map(Vec::as_slice).unwrap_or_default();
    for (i, &(child, link)) in children.iter().enumerate() {
        let (tee, indent) = if i + 1 == children.len() {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let again = !expanded.insert(child);
        let mark = if again { " (*)" } else { "" };
        out.push_str(&format!("{prefix}{tee}{child} [{}]{mark}\n", link.label));
        if !again {
            branch(child, &format!("{prefix}{indent}"), adjacent, expanded, out);
        }
    }
}

/// A node's DOT id: `"kind:name"`, quoted.
fn dot_id(id: &NodeId) -> String {
    format!("\"{}:{}\"", id.kind, escape(&id.name))
}

/// Escapes text for a quoted DOT string.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// What depends on a node, transitively, by kind: the answer to "what does changing it touch".
#[derive(Debug, Clone, Default, Serialize)]
pub struct Impact {
    /// The node changed.
    pub root: NodeId,
    /// Feature views downstream, sorted.
    pub feature_views: Vec<String>,
    /// On-demand views downstream, sorted.
    pub on_demand_views: Vec<String>,
    /// Feature services downstream, sorted.
    pub feature_services: Vec<String>,
    /// Snapshots downstream, sorted.
    pub snapshots: Vec<String>,
    /// Edges downstream, sorted.
    pub edges: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_features_yaml;

    const YAML: &str = r#"
entities:
  - name: customer
    join_keys: [{name: customer_id, type: int64}]
sources:
  - name: orders
    path: data/orders.parquet
    timestamp_field: ts
  - name: crm
    path: data/crm.parquet
    timestamp_field: ts
request_sources:
  - name: cart
    fields: [{name: amount, type: float64}]
transforms:
  - name: bucketize
    component: t/bucketize.wasm
feature_views:
  - name: rfm
    entities: [customer]
    source: orders
    owner: growth
    features:
      - {name: monetary, type: float64}
      - {name: segment, type: int64, transform: bucketize}
  - name: profile
    entities: [customer]
    source: crm
    features:
      - {name: age, type: int64}
on_demand_views:
  - name: risk
    sources: [rfm]
    request_source: cart
    features:
      - {name: score, type: float64, sql: "monetary * 2"}
      - {name: bucket, type: int64, transform: bucketize}
feature_services:
  - name: svc_a
    features: [rfm:monetary, risk:score]
  - name: svc_b
    features: ["rfm@v3:segment", profile:age]
"#;

    fn graph() -> Graph {
        Graph::from_definitions(&parse_features_yaml(YAML, None).expect("fixture is valid"))
    }

    fn id(kind: NodeKind, name: &str) -> NodeId {
        NodeId::new(kind, name)
    }

    fn names(s: &Subgraph) -> Vec<String> {
        s.nodes.iter().map(|n| n.id.to_string()).collect()
    }

    #[test]
    fn kinds_parse_every_spelling() {
        for k in NodeKind::ALL {
            assert_eq!(NodeKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_value(k).expect("serializable");
            assert_eq!(json, k.as_str());
        }
        for (s, k) in [
            ("feature-views", NodeKind::FeatureView),
            ("view", NodeKind::FeatureView),
            ("service", NodeKind::FeatureService),
            ("feature-services", NodeKind::FeatureService),
            ("request-sources", NodeKind::RequestSource),
            ("on-demand-views", NodeKind::OnDemandView),
            ("odv", NodeKind::OnDemandView),
            ("entities", NodeKind::Entity),
            ("snapshots", NodeKind::Snapshot),
            ("edges", NodeKind::Edge),
        ] {
            assert_eq!(NodeKind::parse(s), Some(k), "{s}");
        }
        assert_eq!(NodeKind::parse("views!"), None);
        for k in ObjectKind::ALL {
            assert_eq!(NodeKind::from_object(k).as_str(), k.as_str());
        }
        assert_eq!(Direction::parse("both"), Some(Direction::Both));
    }

    #[test]
    fn links_every_dependency() {
        let g = graph();
        let links: Vec<String> = g
            .links()
            .map(|l| format!("{} -{}-> {}", l.from, l.label, l.to))
            .collect();
        assert_eq!(
            links,
            [
                "source crm -reads-> feature_view profile",
                "source orders -reads-> feature_view rfm",
                "entity customer -keys-> feature_view profile",
                "entity customer -keys-> feature_view rfm",
                "request_source cart -request-> on_demand_view risk",
                "transform bucketize -computes-> feature_view rfm",
                "transform bucketize -computes-> on_demand_view risk",
                "feature_view profile -serves-> feature_service svc_b",
                "feature_view rfm -reads-> on_demand_view risk",
                "feature_view rfm -serves-> feature_service svc_a",
                "feature_view rfm -pins v3-> feature_service svc_b",
                "on_demand_view risk -serves-> feature_service svc_a",
            ]
        );
        let rfm = g.node(&id(NodeKind::FeatureView, "rfm")).expect("node");
        assert_eq!(rfm.attrs["owner"], "growth");
        assert_eq!(
            rfm.attrs["features"],
            serde_json::json!(["monetary", "segment"])
        );
    }

    #[test]
    fn walks_respect_direction_and_depth() {
        let g = graph();
        let orders = id(NodeKind::Source, "orders");
        let near = g.walk(&orders, Direction::Downstream, Some(1));
        assert_eq!(names(&near), ["source orders", "feature_view rfm"]);
        assert_eq!(near.links.len(), 1);
        let all = g.walk(&orders, Direction::Downstream, None);
        assert_eq!(
            names(&all),
            [
                "source orders",
                "feature_view rfm",
                "on_demand_view risk",
                "feature_service svc_a",
                "feature_service svc_b"
            ]
        );
        assert_eq!(all.links.len(), 5);

        let svc = id(NodeKind::FeatureService, "svc_a");
        let up = g.walk(&svc, Direction::Upstream, Some(1));
        assert_eq!(
            names(&up),
            [
                "feature_view rfm",
                "on_demand_view risk",
                "feature_service svc_a"
            ]
        );
        let up = g.walk(&svc, Direction::Upstream, None);
        assert_eq!(
            names(&up),
            [
                "source orders",
                "entity customer",
                "request_source cart",
                "transform bucketize",
                "feature_view rfm",
                "on_demand_view risk",
                "feature_service svc_a"
            ]
        );

        // Both is the union of the two walks, not everything connected: profile shares an
        // entity with rfm but is neither upstream nor downstream of it.
        let both = g.walk(&id(NodeKind::FeatureView, "rfm"), Direction::Both, Some(1));
        assert_eq!(both.direction, "both");
        assert!(!names(&both).contains(&"feature_view profile".to_string()));
        assert_eq!(both.nodes.len(), 7);

        let missing = g.walk(&id(NodeKind::Edge, "nowhere"), Direction::Both, None);
        assert!(missing.nodes.is_empty() && missing.links.is_empty());
    }

    #[test]
    fn cycles_end() {
        let mut g = Graph::default();
        let (a, b) = (
            id(NodeKind::FeatureView, "a"),
            id(NodeKind::FeatureView, "b"),
        );
        g.add_link(a.clone(), b.clone(), "reads");
        g.add_link(b.clone(), a.clone(), "reads");
        let s = g.walk(&a, Direction::Both, None);
        assert_eq!(s.nodes.len(), 2);
        assert_eq!(s.links.len(), 2);
        let down = g.walk(&a, Direction::Downstream, None);
        assert_eq!(
            down.render_tree(),
            "feature_view a\n└── feature_view b [reads]\n    └── feature_view a [reads] (*)\n"
        );
    }

    #[test]
    fn dependents_and_impact() {
        let mut g = graph();
        let rfm = id(NodeKind::FeatureView, "rfm");
        let snap = id(NodeKind::Snapshot, "rfm@7");
        let edge = id(NodeKind::Edge, "http://edge-1:8080");
        g.add_node(snap.clone(), Map::from_iter([("rows".into(), 10.into())]));
        g.add_link(rfm.clone(), snap.clone(), "materialized");
        g.add_link(snap.clone(), edge.clone(), "served by");
        g.add_node(
            snap.clone(),
            Map::from_iter([("size_bytes".into(), 99.into())]),
        );
        let attrs = &g.node(&snap).expect("snapshot").attrs;
        assert_eq!(
            (attrs["rows"].clone(), attrs["size_bytes"].clone()),
            (10.into(), 99.into())
        );

        let deps: Vec<String> = g.dependents(&rfm).iter().map(|d| d.to_string()).collect();
        assert_eq!(
            deps,
            [
                "on_demand_view risk",
                "feature_service svc_a",
                "feature_service svc_b"
            ]
        );

        let impact = g.impact(&id(NodeKind::Source, "orders"));
        assert_eq!(impact.feature_views, ["rfm"]);
        assert_eq!(impact.on_demand_views, ["risk"]);
        assert_eq!(impact.feature_services, ["svc_a", "svc_b"]);
        assert_eq!(impact.snapshots, ["rfm@7"]);
        assert_eq!(impact.edges, ["http://edge-1:8080"]);

        let impact = g.impact(&id(NodeKind::Entity, "customer"));
        assert_eq!(impact.feature_views, ["profile", "rfm"]);
        assert_eq!(impact.feature_services, ["svc_a", "svc_b"]);
    }

    #[test]
    fn dot_escapes_names_and_marks_the_root() {
        let mut g = Graph::default();
        let odd = id(NodeKind::FeatureView, "we\"ird@v3");
        let svc = id(NodeKind::FeatureService, "svc");
        g.add_link(odd.clone(), svc.clone(), "pins v3");
        let dot = g.walk(&svc, Direction::Upstream, None).to_dot();
        assert_eq!(
            dot,
            "digraph lineage {\n  rankdir=LR;\n  node [fontsize=10];\n  \
             \"feature_view:we\\\"ird@v3\" [label=\"feature_view\\nwe\\\"ird@v3\", shape=box];\n  \
             \"feature_service:svc\" [label=\"feature_service\\nsvc\", shape=folder, style=\"bold,filled\", fillcolor=\"lightyellow\"];\n  \
             \"feature_view:we\\\"ird@v3\" -> \"feature_service:svc\" [label=\"pins v3\"];\n}\n"
        );
    }

    #[test]
    fn renders_a_tree() {
        let g = graph();
        let tree = g
            .walk(&id(NodeKind::Source, "orders"), Direction::Downstream, None)
            .render_tree();
        assert_eq!(
            tree,
            "source orders
└── feature_view rfm [reads]
    ├── on_demand_view risk [reads]
    │   └── feature_service svc_a [serves]
    ├── feature_service svc_a [serves] (*)
    └── feature_service svc_b [pins v3]
"
        );
        let up = g
            .walk(
                &id(NodeKind::OnDemandView, "risk"),
                Direction::Both,
                Some(1),
            )
            .render_tree();
        assert_eq!(
            up,
            "on_demand_view risk (upstream)
├── request_source cart [request]
├── transform bucketize [computes]
└── feature_view rfm [reads]
on_demand_view risk (downstream)
└── feature_service svc_a [serves]
"
        );
    }
}
