//! `fstore token`, `fstore role`, `fstore audit`, `fstore auth`, and what `--token` allows.
//!
//! The CLI works on the registry directly. Without `--token` it acts as the local user, an
//! admin: whoever holds the registry's credentials can change it anyway. With `--token` it
//! acts as that token, checked exactly as the REST API checks it, so a script given a
//! consumer token cannot change definitions through the CLI either.

use anyhow::Context;
use clap::{Args, Subcommand};
use fstore_access::{Action, Permission, ResourceKind, Role};
use fstore_control::{ControlPlane, Principal};

use crate::{Command, Global, open_control, whoami};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once and stored only as a hash.
    Create {
        #[arg(long)]
        name: String,
        /// admin, author, operator, consumer, auditor, edge, or a custom role.
        #[arg(long)]
        role: String,
        /// It stops working after this long (30d, 12h); by default it does not expire.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// Print JSON (the record and the token).
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id or name: the control plane refuses it at once, edges within one
    /// poll interval.
    Revoke { id_or_name: String },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create or replace a custom role.
    Create {
        name: String,
        /// `actions:kinds:names:tags` with comma-separated lists and `*` for any, e.g.
        /// `read_online,read_pii:feature_view:customer_*`; repeat for several.
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the built-in and custom roles with their permissions.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a custom role (refused while an active token has it).
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Audit records, oldest first.
    List(AuditListArgs),
    /// Check the hash chain from the first record to the last; exits 1 if it is broken.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct AuditListArgs {
    #[arg(long)]
    actor: Option<String>,
    #[arg(long)]
    action: Option<String>,
    /// A resource (`feature_view/customer_rfm`) or a prefix ending in `/`.
    #[arg(long)]
    resource: Option<String>,
    /// Only records after this sequence number.
    #[arg(long)]
    after: Option<u64>,
    #[arg(long, default_value_t = 100)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// The public key edges verify the access document with (for `serve edge
    /// --auth-public-key`).
    PublicKey,
    /// Who the CLI acts as, and what that allows.
    Whoami,
}

/// Who the CLI acts as: the `--token`'s holder, else the local user (an admin).
pub async fn principal(g: &Global, cp: &ControlPlane) -> anyhow::Result<Principal> {
    match &g.token {
        Some(t) => Ok(cp.authenticate(t).await?),
        None => Ok(Principal::local(&whoami())),
    }
}

/// Refuses a command the `--token` does not allow, before it does anything. Commands that
/// check inside the service (apply, tokens, roles, audit) are let through here.
pub async fn authorize_command(g: &Global, command: &Command) -> anyhow::Result<()> {
    if g.token.is_none() {
        return Ok(());
    }
    let project = |a: Action| Some((a, ResourceKind::Project, String::new()));
    let needs: Option<(Action, ResourceKind, String)> = match command {
        Command::Materialize { .. } | Command::Historical { .. } | Command::Get { .. } => None,
        Command::History(a) => {
            let (kind, name) = a.target()?;
            Some((
                Action::Describe,
                fstore_control::resource_kind(kind),
                name.to_string(),
            ))
        }
        Command::Versions { .. }
        | Command::Catalog { .. }
        | Command::Diff(_)
        | Command::Changelog(_)
        | Command::Lineage(_)
        | Command::Impact(_)
        | Command::Quality { .. }
        | Command::Alerts(_) => project(Action::Describe),
        Command::Rollback(a) => Some((
            Action::Update,
            ResourceKind::FeatureService,
            a.service().to_string(),
        )),
        Command::Delete(a) => {
            let (kind, name) = a.target()?;
            Some((
                Action::Delete,
                fstore_control::resource_kind(kind),
                name.to_string(),
            ))
        }
        Command::Jobs(a) => Some(a.needs()),
        // Checked by the service (per change, per token verb) or local by nature.
        Command::Apply { .. }
        | Command::Token { .. }
        | Command::Role { .. }
        | Command::Audit { .. }
        | Command::Auth { .. }
        | Command::Erase { .. }
        | Command::Retention { .. }
        | Command::Compliance { .. }
        | Command::Serve { .. }
        | Command::Quickstart(_) => None,
    };
    let cp = open_control(g).await?;
    let p = principal(g, &cp).await?;
    // Changes made under a token are recorded as the token's.
    let _ = crate::ACTOR.set(p.actor.clone());
    if let Some((action, kind, name)) = needs {
        cp.authorize(&p, action, kind, &name).await?;
    }
    match command {
        Command::Materialize { views, .. } => {
            cp.authorize_views(&p, Action::Materialize, views).await?;
        }
        Command::Historical {
            service,
            features,
            entities,
            out,
            ..
        } => {
            let params = fstore_control::HistoricalParams {
                entities: entities.clone(),
                feature_service: service.clone(),
                features: features.clone(),
                out: out.clone(),
                full_feature_names: false,
                timestamp_column: String::new(),
                principal: None,
            };
            cp.authorize_historical(&p, &params).await?;
        }
        // From an edge, the edge checks the token; from the store, the same as a training
        // set's reads, online.
        Command::Get {
            version,
            as_of,
            service,
            features,
            ..
        } if version.is_some() || as_of.is_some() => {
            if let Some(s) = service {
                cp.authorize(&p, Action::ReadOnline, ResourceKind::FeatureService, s)
                    .await?;
            }
            for f in features {
                if let Some((v, _)) = f.split_once(':') {
                    let base = fstore_snapshot::base_view(v);
                    cp.authorize(&p, Action::ReadOnline, ResourceKind::FeatureView, base)
                        .await?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn token(g: &Global, what: TokenCommand) -> anyhow::Result<()> {
    let cp = open_control(g).await?;
    let p = principal(g, &cp).await?;
    match what {
        TokenCommand::Create {
            name,
            role,
            expires_in,
            json,
        } => {
            let expires = expires_in
                .as_deref()
                .map(|e| {
                    fstore_spec::parse_duration(e)
                        .map(std::time::Duration::from_secs)
                        .map_err(|m| anyhow::anyhow!("--expires-in: {m}"))
                })
                .transpose()?;
            let t = cp.create_token(&p, &name, &role, expires).await?;
            if json {
                return print_json(&t);
            }
            println!(
                "Created token `{}` (id {}, role {}).",
                name, t.record.id, role
            );
            if let Some(e) = &t.record.expires_at {
                println!("It expires at {e}.");
            }
            println!("Keep it secret; it is not shown again:\n\n{}\n", t.token);
        }
        TokenCommand::List { json } => {
            let items = cp.tokens(&p).await?;
            if json {
                return print_json(&serde_json::json!({ "items": items }));
            }
            if items.is_empty() {
                println!("No tokens.");
            }
            for t in items {
                println!(
                    "{:<16}  {:<24}  {:<10}  {:<8}  created {} by {}{}",
                    t.token.id,
                    t.token.name,
                    t.token.role,
                    t.status,
                    t.token.created_at,
                    t.token.created_by,
                    t.token
                        .expires_at
                        .as_deref()
                        .map(|e| format!(", expires {e}"))
                        .unwrap_or_default()
                );
            }
        }
        TokenCommand::Revoke { id_or_name } => {
            let t = cp.revoke_token(&p, &id_or_name).await?;
            println!("Revoked token `{}` (id {}).", t.name, t.id);
        }
    }
    Ok(())
}

pub async fn role(g: &Global, what: RoleCommand) -> anyhow::Result<()> {
    let cp = open_control(g).await?;
    let p = principal(g, &cp).await?;
    match what {
        RoleCommand::Create {
            name,
            permissions,
            description,
        } => {
            let permissions = permissions
                .iter()
                .map(|t| Permission::parse(t))
                .collect::<Result<Vec<_>, _>>()?;
            let replaced = cp
                .put_role(
                    &p,
                    Role {
                        name: name.clone(),
                        description,
                        permissions,
                    },
                )
                .await?;
            println!(
                "{} role `{name}`.",
                if replaced { "Replaced" } else { "Created" }
            );
        }
        RoleCommand::List { json } => {
            let roles = cp.roles(&p).await?;
            if json {
                return print_json(&serde_json::json!({ "items": roles }));
            }
            for r in roles {
                println!(
                    "{}{}: {}",
                    r.role.name,
                    if r.builtin { " (built in)" } else { "" },
                    r.role.description
                );
                for perm in &r.role.permissions {
                    let list = |v: Vec<String>| {
                        if v.is_empty() {
                            "*".to_string()
                        } else {
                            v.join(",")
                        }
                    };
                    println!(
                        "  {}:{}:{}:{}",
                        list(perm.actions.iter().map(|a| a.to_string()).collect()),
                        list(perm.kinds.iter().map(|k| k.to_string()).collect()),
                        list(perm.names.clone()),
                        list(perm.tags.clone())
                    );
                }
            }
        }
        RoleCommand::Delete { name } => {
            cp.delete_role(&p, &name).await?;
            println!("Deleted role `{name}`.");
        }
    }
    Ok(())
}

pub async fn audit(g: &Global, what: AuditCommand) -> anyhow::Result<()> {
    let cp = open_control(g).await?;
    let p = principal(g, &cp).await?;
    match what {
        AuditCommand::List(a) => {
            let items = cp
                .audit_log(
                    &p,
                    &fstore_registry::AuditQuery {
                        after: a.after,
                        actor: a.actor,
                        action: a.action,
                        resource: a.resource,
                        since: None,
                        until: None,
                        limit: a.limit,
                        ..fstore_registry::AuditQuery::default()
                    },
                )
                .await?;
            if a.json {
                return print_json(&serde_json::json!({ "items": items }));
            }
            if items.is_empty() {
                println!("No audit records.");
            }
            for r in items {
                println!(
                    "{:>6}  {}  {:<22}  {:<14}  {:<32}  {}{}  {}",
                    r.seq,
                    r.at,
                    r.actor,
                    r.action,
                    r.resource,
                    r.origin,
                    r.remote.map(|x| format!(" from {x}")).unwrap_or_default(),
                    r.detail
                );
            }
        }
        AuditCommand::Verify { json } => {
            let v = cp.verify_audit(&p).await?;
            if json {
                print_json(&v)?;
            } else if v.ok {
                println!(
                    "The audit chain is intact: {} records, head {}.",
                    v.records, v.head_hash
                );
            } else {
                println!(
                    "The audit chain is BROKEN at record {}: {}",
                    v.broken_at.unwrap_or_default(),
                    v.problem.as_deref().unwrap_or("")
                );
            }
            if !v.ok {
                anyhow::bail!("audit chain verification failed");
            }
        }
    }
    Ok(())
}

pub async fn auth(g: &Global, what: AuthCommand) -> anyhow::Result<()> {
    let cp = open_control(g).await?;
    match what {
        AuthCommand::PublicKey => {
            println!(
                "{}",
                cp.public_key().await.context("reading the signing key")?
            );
        }
        AuthCommand::Whoami => {
            let p = principal(g, &cp).await?;
            println!("{} (role {})", p.actor, p.role.name);
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ComplianceCommand {
    /// Every PII feature: its mask, owner, source and retention, the services and tokens that
    /// read it (masked or not), and its audited reads in the period.
    Report {
        /// RFC 3339; the period's start.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

fn rfc3339(name: &str, v: Option<String>) -> anyhow::Result<Option<String>> {
    v.map(|s| {
        chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| {
                t.to_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            })
            .with_context(|| {
                format!("--{name} `{s}` is not an RFC 3339 time (2026-05-01T12:00:00Z)")
            })
    })
    .transpose()
}

pub async fn erase(g: &Global, entity: &str, json: bool) -> anyhow::Result<()> {
    let (key, value) = entity
        .split_once('=')
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .with_context(|| format!("`{entity}` is not `join_key=value`"))?;
    let value = match value.parse::<i64>() {
        Ok(i) => fstore_offline::KeyValue::Int(i),
        Err(_) => fstore_offline::KeyValue::Str(value.to_string()),
    };
    let cp = open_control(g).await?;
    let p = principal(g, &cp).await?;
    let r = cp.erase(&p, key, &value).await?;
    if json {
        return print_json(&r);
    }
    println!(
        "Erased {}={} ({}): {} rows from {} files.",
        r.key,
        r.value,
        r.entity,
        r.rows_removed,
        r.files.len()
    );
    for f in &r.files {
        println!(
            "  {}: {} rows removed, {} kept",
            f.file, f.rows_removed, f.rows_kept
        );
    }
    for n in &r.not_erased {
        println!("  not erased: source `{}`: {}", n.source, n.reason);
    }
    for s in &r.snapshots {
        println!(
            "  {} republished without it: version {} (manifest {})",
            s.view, s.version, s.manifest_seq
        );
    }
    if r.older_versions_kept > 0 {
        println!(
            "  {} older published versions still hold it until retention prunes them \
             (--retain-versions)",
            r.older_versions_kept
        );
    }
    Ok(())
}

pub async fn retention(g: &Global, json: bool) -> anyhow::Result<()> {
    let cp = open_control(g).await?;
    let p = principal(g, &cp).await?;
    let r = cp.apply_retention(&p).await?;
    if json {
        return print_json(&r);
    }
    if r.sources.is_empty() {
        println!("No source declares a retention.");
    }
    for s in &r.sources {
        println!(
            "{}: {} expired files deleted (before {}), {} undated files kept",
            s.source,
            s.deleted.len(),
            s.cutoff,
            s.undated_files_kept
        );
    }
    Ok(())
}

pub async fn compliance(g: &Global, what: ComplianceCommand) -> anyhow::Result<()> {
    let ComplianceCommand::Report { since, until, json } = what;
    let cp = open_control(g).await?;
    let p = principal(g, &cp).await?;
    let r = cp
        .compliance_report(&p, rfc3339("since", since)?, rfc3339("until", until)?)
        .await?;
    if json {
        return print_json(&r);
    }
    println!(
        "PII features ({}), {} erasures in the period:",
        r.features.len(),
        r.erasures
    );
    for f in &r.features {
        println!(
            "  {}:{}  mask {}, owner {}, source {}{}",
            f.view,
            f.feature,
            f.mask,
            f.owner,
            f.source.as_deref().unwrap_or("-"),
            f.source_retention_seconds
                .map(|s| format!(" (retention {})", fstore_spec::format_duration(s)))
                .unwrap_or_default()
        );
        println!("    services: {}", f.services.join(", "));
        println!("    unmasked: {}", f.tokens_unmasked.join(", "));
        println!("    masked:   {}", f.tokens_masked.join(", "));
        println!("    reads: {} ({} unmasked)", f.reads, f.reads_unmasked);
    }
    Ok(())
}
