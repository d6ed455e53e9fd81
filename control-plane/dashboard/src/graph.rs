//! The lineage graph laid out left to right by kind (sources and entities, transforms, feature
//! views, on-demand views, services) and drawn as SVG; every node links to its focus view, so
//! the graph is walked by clicking from a source to a service.

use std::collections::{BTreeMap, BTreeSet};

use fstore_spec::{Link, Node, NodeId, NodeKind};
use maud::{Markup, html};

const NODE_W: f64 = 172.0;
const NODE_H: f64 = 38.0;
const COL_GAP: f64 = 64.0;
const ROW_GAP: f64 = 12.0;
const PAD: f64 = 12.0;

/// Where each kind stands, left to right.
fn column(kind: NodeKind) -> usize {
    match kind {
        NodeKind::Source | NodeKind::Entity | NodeKind::RequestSource => 0,
        NodeKind::Transform => 1,
        NodeKind::FeatureView => 2,
        NodeKind::OnDemandView => 3,
        NodeKind::FeatureService => 4,
        NodeKind::Snapshot => 5,
        NodeKind::Edge => 6,
    }
}

/// The dashboard's address for a node: the lineage page focused on it.
pub(crate) fn focus_href(id: &NodeId) -> String {
    format!(
        "/lineage?focus={}:{}",
        id.kind.as_str(),
        crate::layout::enc(&id.name)
    )
}

fn short(name: &str) -> String {
    const MAX: usize = 24;
    if name.chars().count() <= MAX {
        name.to_string()
    } else {
        let cut: String = name.chars().take(MAX - 1).collect();
        format!("{cut}…")
    }
}

/// Rows per column: first in name order, then each node moved towards the mean row of the
/// nodes it reads from (one pass left to right), which untangles most crossings of a
/// feature store's mostly tree-shaped graph.
fn layout(nodes: &[&Node], links: &[&Link]) -> BTreeMap<NodeId, (usize, f64)> {
    let mut columns: BTreeMap<usize, Vec<&NodeId>> = BTreeMap::new();
    for n in nodes {
        columns.entry(column(n.id.kind)).or_default().push(&n.id);
    }
    let mut pos: BTreeMap<NodeId, (usize, f64)> = BTreeMap::new();
    let mut upstream: BTreeMap<&NodeId, Vec<&NodeId>> = BTreeMap::new();
    for l in links {
        upstream.entry(&l.to).or_default().push(&l.from);
    }
    for (col, ids) in columns.iter_mut() {
        ids.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        if *col > 0 {
            let key = |id: &NodeId| -> f64 {
                let rows: Vec<f64> = upstream
                    .get(id)
                    .into_iter()
                    .flatten()
                    .filter_map(|u| pos.get(*u).map(|p| p.1))
                    .collect();
                if rows.is_empty() {
                    f64::MAX
                } else {
                    rows.iter().sum::<f64>() / rows.len() as f64
                }
            };
            let mut keyed: Vec<(f64, &NodeId)> = ids.iter().map(|id| (key(id), *id)).collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            *ids = keyed.into_iter().map(|(_, id)| id).collect();
        }
        for (row, id) in ids.iter().enumerate() {
            pos.insert((*id).clone(), (*col, row as f64));
        }
    }
    // Columns left empty (no transforms, say) take no room.
    let used: Vec<usize> = columns.keys().copied().collect();
    for p in pos.values_mut() {
        p.0 = used.iter().position(|c| *c == p.0).unwrap_or(0);
    }
    pos
}

fn xy(p: (usize, f64)) -> (f64, f64) {
    (
        PAD + p.0 as f64 * (NODE_W + COL_GAP),
        PAD + p.1 * (NODE_H + ROW_GAP),
    )
}

fn f1(v: f64) -> String {
    format!("{v:.1}")
}

/// The graph as SVG. With `focus`, the nodes and links of `lit` are drawn strong and the
/// rest faint.
pub(crate) fn render(
    nodes: &[&Node],
    links: &[&Link],
    focus: Option<&NodeId>,
    lit: &BTreeSet<NodeId>,
) -> Markup {
    let pos = layout(nodes, links);
    let cols = pos.values().map(|p| p.0 + 1).max().unwrap_or(1);
    let rows = pos.values().map(|p| p.1 as usize + 1).max().unwrap_or(1);
    let width = 2.0 * PAD + cols as f64 * NODE_W + (cols - 1) as f64 * COL_GAP;
    let height = 2.0 * PAD + rows as f64 * NODE_H + (rows - 1) as f64 * ROW_GAP;
    let dim = |id: &NodeId| focus.is_some() && !lit.contains(id);
    html! {
        svg.lineage width=(f1(width)) height=(f1(height)) viewBox={ "0 0 " (f1(width)) " " (f1(height)) }
            role="img" aria-label="lineage graph" {
            @for l in links {
                @if let (Some(a), Some(b)) = (pos.get(&l.from), pos.get(&l.to)) {
                    @let (x1, y1) = xy(*a);
                    @let (x2, y2) = xy(*b);
                    @let (x1, y1, x2, y2) = (x1 + NODE_W, y1 + NODE_H / 2.0, x2, y2 + NODE_H / 2.0);
                    @let mid = (x1 + x2) / 2.0;
                    @let class = if dim(&l.from) || dim(&l.to) { "link dim" }
                        else if focus.is_some() { "link hl" } else { "link" };
                    path class=(class) d={ "M" (f1(x1)) "," (f1(y1)) " C" (f1(mid)) "," (f1(y1)) " "
                        (f1(mid)) "," (f1(y2)) " " (f1(x2)) "," (f1(y2)) } {
                        title { (l.from) " → " (l.to) ": " (l.label) }
                    }
                }
            }
            @for n in nodes {
                @if let Some(p) = pos.get(&n.id) {
                    @let (x, y) = xy(*p);
                    @let class = format!("node {}{}{}", n.id.kind.as_str(),
                        if focus == Some(&n.id) { " focus" } else { "" },
                        if dim(&n.id) { " dim" } else { "" });
                    a href=(focus_href(&n.id)) data-node={ (n.id.kind.as_str()) ":" (n.id.name) } {
                        g class=(class) {
                            title { (n.id) }
                            rect x=(f1(x)) y=(f1(y)) width=(f1(NODE_W)) height=(f1(NODE_H)) rx="6" {}
                            text.kind x=(f1(x + 10.0)) y=(f1(y + 14.0)) { (n.id.kind.as_str().replace('_', " ")) }
                            text x=(f1(x + 10.0)) y=(f1(y + 29.0)) { (short(&n.id.name)) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kind: NodeKind, name: &str) -> Node {
        Node {
            id: NodeId::new(kind, name),
            attrs: Default::default(),
        }
    }

    fn link(from: &Node, to: &Node) -> Link {
        Link {
            from: from.id.clone(),
            to: to.id.clone(),
            label: "reads".into(),
        }
    }

    #[test]
    fn kinds_stand_in_columns_and_children_follow_their_parents() {
        let (s1, s2) = (
            node(NodeKind::Source, "a_src"),
            node(NodeKind::Source, "b_src"),
        );
        // Alphabetically `a_view` would come first; it reads the second source, so it goes
        // second.
        let (v1, v2) = (
            node(NodeKind::FeatureView, "a_view"),
            node(NodeKind::FeatureView, "z_view"),
        );
        let svc = node(NodeKind::FeatureService, "svc");
        let links = [
            link(&s2, &v1),
            link(&s1, &v2),
            link(&v1, &svc),
            link(&v2, &svc),
        ];
        let nodes = [&s1, &s2, &v1, &v2, &svc];
        let links: Vec<&Link> = links.iter().collect();
        let pos = layout(&nodes, &links);
        assert_eq!(pos[&v2.id], (1, 0.0));
        assert_eq!(pos[&v1.id], (1, 1.0));
        // No transforms: the service takes the third column, not the fifth.
        assert_eq!(pos[&svc.id].0, 2);

        let lit: BTreeSet<NodeId> = [s2.id.clone(), v1.id.clone()].into();
        let svg = render(&nodes, &links, Some(&v1.id), &lit).into_string();
        assert!(svg.contains(r#"href="/lineage?focus=feature_view:a_view""#));
        assert!(svg.contains(r#"class="node feature_view focus""#));
        assert!(
            svg.contains(r#"class="node source dim""#),
            "a_src is outside the walk"
        );
    }
}
