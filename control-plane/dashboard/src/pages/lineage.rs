//! `/lineage`: every definition as a graph from sources to services; `?focus=kind:name`
//! lights up what the node reads and what reads it, and lists its details and neighbours.

use std::collections::BTreeSet;

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use fstore_access::Action;
use fstore_spec::{Direction, Graph, Link, Node, NodeId, NodeKind};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Shared, given, query};
use crate::graph::{focus_href, render};
use crate::layout::{self, PageError, enc};
use crate::session::Viewer;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    focus: Option<String>,
}

fn parse_focus(text: &str) -> Result<NodeId, PageError> {
    let (kind, name) = text.split_once(':').ok_or_else(|| {
        PageError::bad_request(format!(
            "`focus={text}`: write kind:name, such as feature_view:customer_rfm"
        ))
    })?;
    let kind = NodeKind::parse(kind)
        .filter(|k| k.is_definition())
        .ok_or_else(|| PageError::bad_request(format!("`{kind}` is not a kind of definition")))?;
    Ok(NodeId::new(kind, name))
}

pub(crate) async fn page(
    State(cp): State<Shared>,
    Extension(v): Extension<Viewer>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Html<String>, PageError> {
    let q = query(q)?;
    v.check(Action::Describe)?;
    let focus = given(q.focus).map(|f| parse_focus(&f)).transpose()?;
    let graph = cp.lineage_graph().await?;
    if let Some(f) = &focus
        && !graph.contains(f)
    {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no {} named `{}`",
                f.kind.as_str().replace('_', " "),
                f.name
            ),
        ));
    }
    let nodes: Vec<&Node> = graph
        .nodes()
        .filter(|n| n.id.kind.is_definition())
        .collect();
    let links: Vec<&Link> = graph
        .links()
        .filter(|l| l.from.kind.is_definition() && l.to.kind.is_definition())
        .collect();
    let lit: BTreeSet<NodeId> = focus
        .as_ref()
        .map(|f| {
            graph
                .walk(f, Direction::Both, None)
                .nodes
                .into_iter()
                .map(|n| n.id)
                .collect()
        })
        .unwrap_or_default();
    let body = html! {
        h1 { "Lineage" }
        p.muted { "Sources and entities on the left, services on the right. Click a node to follow it; "
            @if focus.is_some() { a href="/lineage" { "show everything" } } @else { "the graph shows every definition." } }
        @if nodes.is_empty() {
            div.card { p.muted { "Nothing is registered yet." } }
        } @else {
            div.card style="overflow:auto" #graph { (render(&nodes, &links, focus.as_ref(), &lit)) }
            @if let Some(f) = &focus { (details(&graph, f)) }
        }
    };
    Ok(layout::page("Lineage", "/lineage", &v, body))
}

fn neighbours<'a>(graph: &'a Graph, id: &NodeId, upstream: bool) -> Vec<(&'a NodeId, &'a str)> {
    graph
        .links()
        .filter_map(|l| match upstream {
            true if &l.to == id => Some((&l.from, l.label.as_str())),
            false if &l.from == id => Some((&l.to, l.label.as_str())),
            _ => None,
        })
        .filter(|(n, _)| n.kind.is_definition())
        .collect()
}

fn details(graph: &Graph, id: &NodeId) -> Markup {
    let node = graph.node(id);
    let attr = |k: &str| {
        node.and_then(|n| n.attrs.get(k))
            .cloned()
            .unwrap_or_default()
    };
    let features: Vec<String> = attr("features")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect();
    let is_view = matches!(id.kind, NodeKind::FeatureView | NodeKind::OnDemandView);
    html! {
        div.card #focus data-focus=(id.name) {
            h2 { span.tag { (id.kind.as_str().replace('_', " ")) } " " (id.name) }
            dl.facts {
                @if let Some(v) = attr("version").as_u64() { dt { "Version" } dd { "v" (v) } }
                @if let Some(o) = attr("owner").as_str().filter(|o| !o.is_empty()) { dt { "Owner" } dd { (o) } }
                @if let Some(d) = attr("description").as_str().filter(|d| !d.is_empty()) { dt { "About" } dd { (d) } }
                @if let Some(tags) = attr("tags").as_array().filter(|t| !t.is_empty()) {
                    dt { "Tags" } dd { @for t in tags { span.tag { (t.as_str().unwrap_or("")) } } }
                }
            }
            @if is_view && !features.is_empty() {
                h3 { "Features" }
                ul.features { @for f in &features {
                    li { a href={ "/catalog/features/" (enc(&id.name)) "/" (enc(f)) } { (f) } }
                } }
            }
            h3 { "Reads from" }
            (neighbour_list(&neighbours(graph, id, true)))
            h3 { "Read by" }
            (neighbour_list(&neighbours(graph, id, false)))
        }
    }
}

fn neighbour_list(ns: &[(&NodeId, &str)]) -> Markup {
    html! {
        @if ns.is_empty() { p.muted { "nothing" } }
        ul { @for (n, how) in ns {
            li { a href=(focus_href(n)) { (n.kind.as_str().replace('_', " ")) " " (n.name) } span.muted { " (" (how) ")" } }
        } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn focus_names_a_definition() {
        let id = parse_focus("feature_view:customer_rfm").expect("focus");
        assert_eq!(
            (id.kind, id.name.as_str()),
            (NodeKind::FeatureView, "customer_rfm")
        );
        // Names may hold colons (pinned slots): only the first one splits.
        assert_eq!(parse_focus("view:a:b").expect("focus").name, "a:b");
        assert!(parse_focus("customer_rfm").is_err());
        assert!(parse_focus("snapshot:customer_rfm#3").is_err());
        assert!(parse_focus("nonsense:x").is_err());
    }
}
