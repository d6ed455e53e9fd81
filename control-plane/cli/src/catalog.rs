//! The catalog and change-safety verbs: search, a feature's page, history, diff, change log,
//! lineage, impact, rollback and delete. Each prints a human summary, or with `--json` the
//! document the matching REST endpoint returns.

use std::io::IsTerminal;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use fstore_spec::{Direction, NodeKind, ObjectKind};

use crate::{Global, open_control, whoami};

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Ranked full-text search over names, descriptions and tags.
    Search(SearchArgs),
    /// One feature's page: definition, versions, services, lineage, freshness.
    Show {
        /// `view:feature`.
        feature: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Words to look for, e.g. "spend in the last month"; the last word also matches as a
    /// prefix. Empty lists everything the filters keep.
    #[arg(default_value = "")]
    query: String,
    /// Only this kind: feature, feature_view, on_demand_view, feature_service, source,
    /// transform, entity.
    #[arg(long)]
    kind: Option<String>,
    #[arg(long)]
    tag: Option<String>,
    #[arg(long)]
    owner: Option<String>,
    #[arg(long)]
    entity: Option<String>,
    /// Feature type: int64, float64, string, bool, timestamp, list<float64>.
    #[arg(long = "type")]
    feature_type: Option<String>,
    #[arg(long)]
    view: Option<String>,
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[arg(long, default_value_t = 0)]
    offset: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// view, on_demand_view, service, source, transform, entity, request_source.
    kind: String,
    name: String,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    kind: String,
    name: String,
    /// The older version: 2 or v2.
    from: String,
    /// The newer version.
    to: String,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ChangelogArgs {
    #[arg(long)]
    kind: Option<String>,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    actor: Option<String>,
    #[arg(long)]
    action: Option<String>,
    /// Entries before this sequence number (paging back).
    #[arg(long)]
    before: Option<u64>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct LineageArgs {
    /// source, entity, transform, view, on_demand_view, service, snapshot.
    kind: String,
    name: String,
    /// Where it comes from.
    #[arg(long, conflicts_with = "downstream")]
    upstream: bool,
    /// What it feeds (the default).
    #[arg(long)]
    downstream: bool,
    /// At most this many links away.
    #[arg(long)]
    depth: Option<usize>,
    /// Print Graphviz DOT (`| dot -Tsvg`).
    #[arg(long, conflicts_with = "json")]
    dot: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ImpactArgs {
    kind: String,
    name: String,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The feature service.
    service: String,
    /// Serve every view the service reads as published version N served it.
    #[arg(long, value_name = "N", conflicts_with_all = ["view", "clear"])]
    to_version: Option<u64>,
    /// Roll back one view (with --snapshot).
    #[arg(long, requires = "snapshot", conflicts_with = "clear")]
    view: Option<String>,
    /// The snapshot version of --view to serve.
    #[arg(long, requires = "view")]
    snapshot: Option<u64>,
    /// Undo the rollback: serve the live snapshots again.
    #[arg(long)]
    clear: bool,
    #[arg(short = 'm', long)]
    message: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    kind: String,
    name: String,
    /// Also delete everything that depends on it.
    #[arg(long)]
    force: bool,
}

/// A definition kind as people type it: `view`, `feature_view`, `feature-views`, `service`...
impl HistoryArgs {
    /// The definition whose history is read.
    pub(crate) fn target(&self) -> anyhow::Result<(ObjectKind, &str)> {
        Ok((object_kind(&self.kind)?, &self.name))
    }
}

impl RollbackArgs {
    pub(crate) fn service(&self) -> &str {
        &self.service
    }
}

impl DeleteArgs {
    /// The definition deleted.
    pub(crate) fn target(&self) -> anyhow::Result<(ObjectKind, &str)> {
        Ok((object_kind(&self.kind)?, &self.name))
    }
}

fn object_kind(s: &str) -> anyhow::Result<ObjectKind> {
    NodeKind::parse(s)
        .with_context(|| format!("`{s}` is not a kind"))?
        .to_object()
        .with_context(|| format!("`{s}` is not a kind of definition"))
}

fn version(s: &str) -> anyhow::Result<u64> {
    s.strip_prefix('v')
        .unwrap_or(s)
        .parse()
        .with_context(|| format!("`{s}` is not a version (3 or v3)"))
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Highlights as a terminal shows them: bold on a terminal, `[…]` in a pipe, entities decoded.
fn terminal_highlight(fragment: &str) -> String {
    let (on, off) = if std::io::stdout().is_terminal() {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("[", "]")
    };
    fragment
        .replace("<mark>", on)
        .replace("</mark>", off)
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

pub async fn catalog(g: &Global, what: CatalogCommand) -> anyhow::Result<()> {
    let cp = open_control(g).await?;
    match what {
        CatalogCommand::Search(a) => {
            let r = cp
                .search(&fstore_registry::SearchQuery {
                    q: a.query,
                    kind: a.kind,
                    tag: a.tag,
                    owner: a.owner,
                    entity: a.entity,
                    feature_type: a.feature_type,
                    view: a.view,
                    limit: a.limit,
                    offset: a.offset,
                })
                .await?;
            if a.json {
                return print_json(&r);
            }
            if r.hits.is_empty() {
                println!("No matches.");
                return Ok(());
            }
            for h in &r.hits {
                let ty = h.feature_type.as_deref().unwrap_or("");
                let tags = if h.tags.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", h.tags.join(", "))
                };
                println!(
                    "{:>7.3}  {:<16} {} {ty}{tags}  ({})",
                    h.score,
                    h.kind,
                    h.name,
                    if h.owner.is_empty() {
                        "no owner"
                    } else {
                        &h.owner
                    }
                );
                for hl in &h.highlights {
                    println!(
                        "           {}: {}",
                        hl.field,
                        terminal_highlight(&hl.fragment)
                    );
                }
            }
            println!(
                "{}–{} of {} matches",
                r.offset + 1,
                r.offset + r.hits.len(),
                r.total
            );
        }
        CatalogCommand::Show { feature, json } => {
            let (view, name) = feature
                .split_once(':')
                .with_context(|| format!("`{feature}` is not `view:feature`"))?;
            let p = cp.feature_page(view, name).await?;
            if json {
                return print_json(&p);
            }
            println!("{}:{}  ({})", p.view, p.feature, p.feature_type);
            if !p.description.is_empty() {
                println!("  {}", p.description);
            }
            println!(
                "  owner: {}   tags: {}   entities: {}",
                if p.owner.is_empty() { "-" } else { &p.owner },
                if p.tags.is_empty() {
                    "-".into()
                } else {
                    p.tags.join(", ")
                },
                p.entities.join(", ")
            );
            println!(
                "  {} `{}` v{}{}{}",
                p.view_kind.replace('_', " "),
                p.view,
                p.view_version,
                p.source
                    .as_deref()
                    .map(|s| format!(", source `{s}`"))
                    .unwrap_or_default(),
                p.transform
                    .as_deref()
                    .map(|t| format!(", transform `{t}`"))
                    .unwrap_or_default()
            );
            match (&p.freshness.live_snapshot, &p.freshness.age_seconds) {
                (Some(v), Some(age)) => println!(
                    "  served: snapshot {v} (manifest {}), materialized {age} s ago",
                    p.freshness.manifest_seq.unwrap_or_default()
                ),
                _ => println!("  served: not materialized yet"),
            }
            println!("  versions:");
            for v in &p.versions {
                println!(
                    "    v{} {} by {}: {} ({:?})",
                    v.version, v.created_at, v.author, v.change, v.compatibility
                );
            }
            println!("  services:");
            for s in &p.services {
                let pin = s
                    .pinned_version
                    .map(|v| format!(" pinned to v{v}"))
                    .unwrap_or_default();
                let rb = s
                    .rolled_back_to
                    .map(|v| format!(" rolled back to snapshot {v}"))
                    .unwrap_or_default();
                println!("    {}{pin}{rb}", s.service);
            }
        }
    }
    Ok(())
}

pub async fn history(g: &Global, a: HistoryArgs) -> anyhow::Result<()> {
    let kind = object_kind(&a.kind)?;
    let cp = open_control(g).await?;
    let items = cp.history(kind, &a.name).await?;
    if a.json {
        return print_json(&serde_json::json!({ "items": items }));
    }
    for h in &items {
        let what = if h.deleted {
            "deleted".to_string()
        } else if h.version == 1 || h.diff.changes.is_empty() {
            "created".to_string()
        } else {
            format!("{:?}", h.diff.compatibility).to_lowercase()
        };
        println!(
            "v{}  {}  {}  {what}  \"{}\"",
            h.version, h.created_at, h.author, h.message
        );
        if !h.deleted {
            print!("{}", h.diff.render());
        }
    }
    Ok(())
}

pub async fn diff(g: &Global, a: DiffArgs) -> anyhow::Result<()> {
    let kind = object_kind(&a.kind)?;
    let (from, to) = (version(&a.from)?, version(&a.to)?);
    let cp = open_control(g).await?;
    let d = cp.diff(kind, &a.name, from, to).await?;
    if a.json {
        return print_json(&d);
    }
    println!(
        "{kind} `{}` v{from} → v{to}: {}",
        a.name,
        if d.changes.is_empty() {
            "no changes".to_string()
        } else {
            format!("{:?}", d.compatibility).to_lowercase()
        }
    );
    print!("{}", d.render());
    Ok(())
}

pub async fn changelog(g: &Global, a: ChangelogArgs) -> anyhow::Result<()> {
    let cp = open_control(g).await?;
    let items = cp
        .changelog(&fstore_registry::ChangelogQuery {
            kind: a.kind,
            name: a.name,
            actor: a.actor,
            action: a.action,
            before_seq: a.before,
            limit: a.limit,
        })
        .await?;
    if a.json {
        return print_json(&serde_json::json!({ "items": items }));
    }
    for e in &items {
        let version = e.version.map(|v| format!(" v{v}")).unwrap_or_default();
        let class = e
            .details
            .get("compatibility")
            .and_then(|c| c.as_str())
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        println!(
            "#{:<5} {}  {:<10} {:<14} {} {}{version}{class}  \"{}\"",
            e.seq, e.created_at, e.actor, e.action, e.kind, e.name, e.message
        );
    }
    Ok(())
}

fn node_kind(s: &str) -> anyhow::Result<NodeKind> {
    NodeKind::parse(s).with_context(|| {
        format!("`{s}` is not a kind (source, entity, transform, view, service, snapshot...)")
    })
}

pub async fn lineage(g: &Global, a: LineageArgs) -> anyhow::Result<()> {
    let kind = node_kind(&a.kind)?;
    let direction = if a.upstream {
        Direction::Upstream
    } else {
        Direction::Downstream
    };
    let cp = open_control(g).await?;
    let sub = cp.lineage(kind, &a.name, direction, a.depth).await?;
    if a.json {
        print_json(&sub)
    } else if a.dot {
        print!("{}", sub.to_dot());
        Ok(())
    } else {
        print!("{}", sub.render_tree());
        Ok(())
    }
}

pub async fn impact(g: &Global, a: ImpactArgs) -> anyhow::Result<()> {
    let kind = node_kind(&a.kind)?;
    let cp = open_control(g).await?;
    let i = cp.impact(kind, &a.name).await?;
    if a.json {
        return print_json(&i);
    }
    println!("A change to {} `{}` reaches:", kind.as_str(), a.name);
    for (what, names) in [
        ("feature views", &i.feature_views),
        ("on-demand views", &i.on_demand_views),
        ("feature services", &i.feature_services),
        ("snapshots", &i.snapshots),
        ("edges", &i.edges),
    ] {
        if !names.is_empty() {
            println!("  {what}: {}", names.join(", "));
        }
    }
    Ok(())
}

pub async fn rollback(g: &Global, a: RollbackArgs) -> anyhow::Result<()> {
    let cp = open_control(g).await?;
    let r = if a.clear {
        cp.clear_rollback(&a.service, &whoami()).await?
    } else {
        if a.to_version.is_none() && a.view.is_none() {
            bail!("give --to-version N, or --view V --snapshot N, or --clear");
        }
        cp.rollback(
            &a.service,
            &fstore_control::RollbackParams {
                to_version: a.to_version,
                view: a.view,
                snapshot: a.snapshot,
                message: a.message,
            },
            &whoami(),
        )
        .await?
    };
    if r.bindings.is_empty() {
        println!("{} serves the live snapshots again.", r.service);
    }
    for (view, snapshot) in &r.bindings {
        println!("{} now reads `{view}` snapshot {snapshot}.", r.service);
    }
    if let Some(seq) = r.manifest_seq {
        println!("Published as manifest {seq}; edges follow at their next poll.");
    }
    Ok(())
}

pub async fn delete(g: &Global, a: DeleteArgs) -> anyhow::Result<()> {
    let kind = object_kind(&a.kind)?;
    let cp = open_control(g).await?;
    let principal = crate::access::principal(g, &cp).await?;
    let r = cp
        .delete(kind, &a.name, a.force, &whoami(), Some(&principal))
        .await?;
    for (kind, name) in &r.deleted {
        println!("deleted {kind} `{name}`");
    }
    if let Some(seq) = r.republished_manifest {
        println!("Republished live manifest {seq}.");
    }
    Ok(())
}
