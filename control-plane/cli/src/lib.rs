//! The `fstore` command: apply definitions, materialize, look features up, run the servers,
//! and the quickstart that does all of it on embedded defaults.

mod access;
mod catalog;
pub mod datagen;
mod jobs;
mod quality;
mod quickstart;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use fstore_control::{ControlConfig, ControlError, ControlPlane, DEFAULT_RETAIN_VERSIONS};

pub use quickstart::QuickstartArgs;

#[derive(Debug, Parser)]
#[command(
    name = "fstore",
    version,
    about = "An edge feature store: definitions in, sub-millisecond lookups out."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the registry and the object store are; shared by every command.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Registry database: a SQLite file path or `sqlite://…`, or `postgres://…`.
    #[arg(
        long,
        global = true,
        env = "FSTORE_DATABASE_URL",
        default_value = ".fstore/registry.db"
    )]
    pub database_url: String,
    /// Object store snapshots are published to: a directory, `s3://bucket/prefix`, `gs://…`, `az://…`.
    #[arg(
        long = "store",
        global = true,
        env = "FSTORE_STORE_URL",
        default_value = ".fstore/objects"
    )]
    pub store_url: String,
    /// How many published versions the object store keeps for `get --version`/`--as-of`;
    /// older manifests and the snapshots only they use are deleted after each publish.
    /// 0 keeps every version.
    #[arg(
        long,
        global = true,
        env = "FSTORE_RETAIN_VERSIONS",
        default_value_t = DEFAULT_RETAIN_VERSIONS
    )]
    pub retain_versions: usize,
    /// Webhooks that receive alerts as JSON (`{"event", "alert"}`); comma-separated or
    /// repeated.
    #[arg(
        long = "alert-webhook",
        global = true,
        env = "FSTORE_ALERT_WEBHOOKS",
        value_delimiter = ','
    )]
    pub alert_webhooks: Vec<String>,
    /// Webhooks that receive alerts as Slack messages (Slack incoming webhooks, Mattermost).
    #[arg(
        long = "alert-slack-webhook",
        global = true,
        env = "FSTORE_ALERT_SLACK_WEBHOOKS",
        value_delimiter = ','
    )]
    pub alert_slack_webhooks: Vec<String>,
    /// Act as this token's holder, with its permissions (`fst_…`); without one, the CLI acts
    /// as the local user, an admin of the registry it opens.
    #[arg(long, global = true, env = "FSTORE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Global {
    /// Where alerts go, from the webhook flags.
    pub fn alert_settings(&self) -> fstore_control::AlertSettings {
        let hooks = |urls: &[String], format| {
            urls.iter()
                .filter(|u| !u.trim().is_empty())
                .map(move |u| fstore_control::Webhook {
                    url: u.trim().to_string(),
                    format,
                })
                .collect::<Vec<_>>()
        };
        let mut webhooks = hooks(&self.alert_webhooks, fstore_control::WebhookFormat::Json);
        webhooks.extend(hooks(
            &self.alert_slack_webhooks,
            fstore_control::WebhookFormat::Slack,
        ));
        fstore_control::AlertSettings {
            webhooks,
            ..fstore_control::AlertSettings::default()
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Plan and apply a features.yaml (objects missing from it are removed).
    Apply {
        #[arg(short = 'f', long = "file", default_value = "features.yaml")]
        file: PathBuf,
        /// Show the plan and stop.
        #[arg(long)]
        dry_run: bool,
        /// Apply breaking changes even though services still read what they change.
        #[arg(long)]
        force: bool,
        /// Why: recorded with each new version and in the change log.
        #[arg(short = 'm', long, default_value = "fstore apply")]
        message: String,
    },
    /// Materialize feature views from their sources and publish the snapshots.
    Materialize {
        /// Views to materialize (all when none is named).
        #[arg(long = "view")]
        views: Vec<String>,
        /// Publish only what changed since each view's last run (a delta) where its live
        /// snapshot allows; by default every view is computed in full.
        #[arg(long)]
        incremental: bool,
    },
    /// Look features up on an edge, or in an earlier published version (`--version`, `--as-of`).
    Get {
        /// Edge base URL [env: FSTORE_EDGE_URL] [default: http://127.0.0.1:6566].
        // The environment is read by hand: a clap `env` would count as given and so conflict
        // with `--version` for everyone who exports FSTORE_EDGE_URL.
        #[arg(long, conflicts_with_all = ["version", "as_of"])]
        edge: Option<String>,
        /// Answer from published version N (the manifest number `materialize` prints), read
        /// from the object store (`--store`) rather than an edge.
        #[arg(long, value_name = "N", conflicts_with = "as_of")]
        version: Option<u64>,
        /// Answer from the version that was live at this time: RFC 3339
        /// (`2026-05-01T12:00:00Z`) or a date (`2026-05-01`, midnight UTC).
        #[arg(long, value_name = "TIMESTAMP", value_parser = parse_as_of)]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
        /// A feature service to read.
        #[arg(long, conflicts_with = "features")]
        service: Option<String>,
        /// `view:feature` references (comma-separated or repeated).
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
        /// Entity keys as `join_key=value` (repeat for several entities or composite keys).
        #[arg(long = "entity", required = true)]
        entities: Vec<String>,
    },
    /// List the published versions the object store keeps (newest first).
    Versions {
        /// Print JSON (as `GET /v1/versions` does) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Build a training set: every feature as of each entity row's timestamp.
    Historical {
        /// Entity rows (join keys and a timestamp column), Parquet or CSV, path or URL.
        #[arg(long)]
        entities: String,
        /// A feature service to read.
        #[arg(long, conflicts_with = "features")]
        service: Option<String>,
        /// `view:feature` references (comma-separated or repeated).
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
        /// Where to write it: a path or URL; `.csv` writes CSV, anything else Parquet.
        #[arg(long)]
        out: String,
        /// Name columns `view__feature`.
        #[arg(long)]
        full_feature_names: bool,
        /// The entity rows' timestamp column.
        #[arg(long, default_value = "event_timestamp")]
        timestamp_column: String,
    },
    /// Search the catalog, or show one feature's page.
    Catalog {
        #[command(subcommand)]
        what: catalog::CatalogCommand,
    },
    /// The versions of a definition, each with what changed (`fstore history view customer_rfm`).
    History(catalog::HistoryArgs),
    /// What changed between two versions (`fstore diff view customer_rfm v2 v3`).
    Diff(catalog::DiffArgs),
    /// The registry's change log: every apply, delete, publish and rollback.
    Changelog(catalog::ChangelogArgs),
    /// Where something comes from and what it feeds, as a tree (or Graphviz DOT).
    Lineage(catalog::LineageArgs),
    /// What a change to something would reach: views, services, snapshots.
    Impact(catalog::ImpactArgs),
    /// Point a feature service back at earlier snapshots (or, with --clear, at the live ones).
    Rollback(catalog::RollbackArgs),
    /// Delete one definition; refused while something depends on it, unless --force.
    Delete(catalog::DeleteArgs),
    /// Materialization runs: list them, queue one, cancel one.
    Jobs(jobs::JobsArgs),
    /// Feature quality: a view's statistics, rule results and drift.
    Quality {
        #[command(subcommand)]
        what: quality::QualityCommand,
    },
    /// Alerts raised by quality rules, drift and serving anomalies, newest first.
    Alerts(quality::AlertsArgs),
    /// API tokens: create (shown once), list, revoke.
    Token {
        #[command(subcommand)]
        what: access::TokenCommand,
    },
    /// Roles: the built-in ones and custom ones made of permissions.
    Role {
        #[command(subcommand)]
        what: access::RoleCommand,
    },
    /// The hash-chained audit log: list it, verify it.
    Audit {
        #[command(subcommand)]
        what: access::AuditCommand,
    },
    /// The control plane's public key (for edges), and who you act as.
    Auth {
        #[command(subcommand)]
        what: access::AuthCommand,
    },
    /// Right to erasure: remove one customer from the offline files and the next snapshot.
    Erase {
        /// `join_key=value`, e.g. customer_id=123.
        #[arg(long)]
        entity: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete raw data older than each source's `retention` now (the control plane also does
    /// it daily).
    Retention {
        #[arg(long)]
        json: bool,
    },
    /// Compliance: the PII report.
    Compliance {
        #[command(subcommand)]
        what: access::ComplianceCommand,
    },
    /// Run a server.
    Serve {
        #[command(subcommand)]
        what: ServeCommand,
    },
    /// Generate a sample data set, apply, materialize, and serve it on loopback.
    Quickstart(QuickstartArgs),
}

#[derive(Debug, Subcommand)]
pub enum ServeCommand {
    /// The control plane's REST API.
    ControlPlane {
        #[arg(long, env = "FSTORE_CONTROL_ADDR", default_value = "127.0.0.1:6565")]
        addr: String,
        /// Do not run the scheduler and worker (another replica does).
        #[arg(long, env = "FSTORE_NO_SCHEDULER")]
        no_scheduler: bool,
        /// This replica's name in job runs [default: <host>-<pid>].
        #[arg(long, env = "FSTORE_REPLICA_ID")]
        replica_id: Option<String>,
        /// A run taking longer fails (and is retried), e.g. 30m.
        #[arg(long, env = "FSTORE_JOB_TIMEOUT", default_value = "1h", value_parser = parse_interval)]
        job_timeout: Duration,
        /// Tries per run, the first included.
        #[arg(long, env = "FSTORE_JOB_ATTEMPTS", default_value_t = 3)]
        job_attempts: u32,
        /// The wait before a failed run's first retry; doubled for each further one.
        #[arg(long, env = "FSTORE_JOB_BACKOFF", default_value = "10s", value_parser = parse_interval)]
        job_backoff: Duration,
        /// How long a run stays claimed without renewal: a replica that dies mid-run is noticed
        /// after this.
        #[arg(long, env = "FSTORE_JOB_LEASE", default_value = "30s", value_parser = parse_interval)]
        job_lease: Duration,
        /// How often the scheduler looks for due schedules and queued runs.
        #[arg(long, env = "FSTORE_JOB_TICK", default_value = "1s", value_parser = parse_interval)]
        job_tick: Duration,
        /// An incremental run merges its view's deltas into a full snapshot once there would
        /// be this many.
        #[arg(long, env = "FSTORE_COMPACT_AFTER", default_value_t = 8)]
        compact_after: usize,
        /// `on`: every call but health, metrics and the API description needs a token
        /// (`fstore token create`). `off` lets anyone act as admin: for a laptop only.
        #[arg(long, env = "FSTORE_AUTH", default_value = "on", value_parser = ["on", "off"])]
        auth: String,
    },
    /// An edge runtime reading snapshots from the object store.
    Edge {
        #[arg(long, env = "FSTORE_EDGE_ADDR", default_value = "127.0.0.1:6566")]
        addr: String,
        /// How often to poll for a new snapshot, e.g. 5s, 500ms.
        #[arg(long, env = "FSTORE_EDGE_POLL_INTERVAL", default_value = "5s", value_parser = parse_interval)]
        poll_interval: Duration,
        /// Where downloaded snapshots are kept.
        #[arg(long, env = "FSTORE_EDGE_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
        /// Most entities one request may ask for.
        #[arg(long, env = "FSTORE_EDGE_MAX_ENTITIES", default_value_t = 1000)]
        max_entities: usize,
        /// Largest request body, in bytes.
        #[arg(long, env = "FSTORE_EDGE_MAX_BODY_BYTES", default_value_t = 1 << 20)]
        max_body_bytes: usize,
        /// A label for metrics and logs.
        #[arg(long, env = "FSTORE_EDGE_REGION", default_value = "local")]
        region: String,
        /// The control plane to report heartbeats to (http://127.0.0.1:6565); serving never
        /// depends on it.
        #[arg(long, env = "FSTORE_CONTROL_PLANE_URL")]
        control_plane: Option<String>,
        /// This edge's name in the fleet [default: <region>-<address>].
        #[arg(long, env = "FSTORE_EDGE_ID")]
        edge_id: Option<String>,
        /// The URL clients reach this edge at, when not the address it listens on.
        #[arg(long, env = "FSTORE_EDGE_ADVERTISE")]
        advertise: Option<String>,
        /// `on`: lookups need a token listed in the control plane's signed access document.
        #[arg(long, env = "FSTORE_AUTH", default_value = "on", value_parser = ["on", "off"])]
        auth: String,
        /// The control plane's public key (`fstore auth public-key`), which the access
        /// document must verify with. Needed with `--auth on`.
        #[arg(long, env = "FSTORE_AUTH_PUBLIC_KEY")]
        auth_public_key: Option<String>,
        /// The token (role `edge`) heartbeats and audit records are sent with.
        #[arg(long, env = "FSTORE_CONTROL_PLANE_TOKEN", hide_env_values = true)]
        control_plane_token: Option<String>,
        /// Which shards of sharded views to hold, as indices of a fleet-wide count: `0,1/4`,
        /// `2-3/4`, or `all`. Keys of other shards are refused (421); put a router in front.
        #[arg(long, env = "FSTORE_EDGE_SHARDS", default_value = "all")]
        shards: fstore_snapshot::ShardSet,
    },
    /// A router in front of edges: sends each entity to an edge holding its shard, balances
    /// across the edges able to answer, retries on another when one fails.
    Router {
        #[arg(long, env = "FSTORE_ROUTER_ADDR", default_value = "127.0.0.1:6567")]
        addr: String,
        /// An edge's base URL (http://edge-1:6566); repeated or comma-separated.
        #[arg(
            long = "edge",
            env = "FSTORE_ROUTER_EDGES",
            value_delimiter = ',',
            required = true
        )]
        edges: Vec<String>,
        /// The join-key columns sharded views are keyed by, in entity order.
        #[arg(
            long,
            env = "FSTORE_ROUTER_KEY",
            value_delimiter = ',',
            default_value = "customer_id"
        )]
        key: Vec<String>,
        /// How often each edge's /readyz is read, e.g. 1s.
        #[arg(long, env = "FSTORE_ROUTER_CHECK_INTERVAL", default_value = "1s", value_parser = parse_interval)]
        check_interval: Duration,
        /// How long one forwarded request may take.
        #[arg(long, env = "FSTORE_ROUTER_TIMEOUT", default_value = "5s", value_parser = parse_interval)]
        timeout: Duration,
        /// Tries per request part, the first included, each on another edge when one can answer.
        #[arg(long, env = "FSTORE_ROUTER_ATTEMPTS", default_value_t = 3)]
        attempts: usize,
        /// Largest request body, in bytes.
        #[arg(long, env = "FSTORE_ROUTER_MAX_BODY_BYTES", default_value_t = 1 << 20)]
        max_body_bytes: usize,
    },
}

/// `--as-of`: an RFC 3339 time, or a plain date meaning midnight UTC.
fn parse_as_of(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(format!(
        "`{s}` is neither an RFC 3339 time (2026-05-01T12:00:00Z, 2026-05-01T14:00:00+02:00) \
         nor a date (2026-05-01)"
    ))
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|e| format!("`{s}`: {e}"));
    }
    fstore_spec::parse_duration(s).map(Duration::from_secs)
}

/// The control plane's settings from the global flags; one-shot verbs never schedule.
fn control_config(g: &Global) -> ControlConfig {
    ControlConfig {
        database_url: g.database_url.clone(),
        store_url: g.store_url.clone(),
        max_body_bytes: 8 << 20,
        retain_versions: g.retain_versions,
        alerts: g.alert_settings(),
        jobs: fstore_control::JobSettings {
            enabled: false,
            ..fstore_control::JobSettings::default()
        },
        // One-shot verbs check `--token` themselves (see `access`); only a server takes
        // requests from others.
        auth: false,
    }
}

pub async fn open_control(g: &Global) -> anyhow::Result<ControlPlane> {
    open_with(g, control_config(g)).await
}

async fn open_with(g: &Global, config: ControlConfig) -> anyhow::Result<ControlPlane> {
    ControlPlane::open(config).await.with_context(|| {
        format!(
            "opening registry `{}` and store `{}`",
            g.database_url, g.store_url
        )
    })
}

/// Prints definition errors one per line, the way a compiler would.
fn explain(file: &std::path::Path, e: ControlError) -> anyhow::Error {
    if let ControlError::InvalidDefinitions(errs) = &e {
        for err in errs {
            eprintln!("error: {}: {err}", file.display());
        }
        return anyhow::anyhow!("{} has {} error(s)", file.display(), errs.len());
    }
    e.into()
}

async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    fstore_control::with_origin(format!("cli:{host}"), None, run_command(cli)).await
}

async fn run_command(cli: Cli) -> anyhow::Result<()> {
    let g = cli.global;
    access::authorize_command(&g, &cli.command).await?;
    match cli.command {
        Command::Apply {
            file,
            dry_run,
            force,
            message,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let base = file.parent().map(|p| {
                if p.as_os_str().is_empty() {
                    std::path::Path::new(".")
                } else {
                    p
                }
            });
            let base = base.map(std::fs::canonicalize).transpose()?;
            let defs =
                ControlPlane::parse(&text, base.as_deref()).map_err(|e| explain(&file, e))?;
            let cp = open_control(&g).await?;
            let principal = access::principal(&g, &cp).await?;
            let opts = fstore_control::ApplyOptions {
                dry_run,
                force,
                author: if g.token.is_some() {
                    principal.actor.clone()
                } else {
                    whoami()
                },
                message,
                principal: Some(principal),
            };
            // The preview before a real apply is checked like the apply (each change), so a
            // refusal names the change it lacks; `--dry-run` alone needs `describe`.
            let dry = fstore_control::ApplyOptions {
                dry_run: true,
                principal: if dry_run {
                    opts.principal.clone()
                } else {
                    None
                },
                ..opts.clone()
            };
            let planned = cp.apply(&defs, &dry).await.map_err(|e| explain(&file, e))?;
            if let (false, Some(p)) = (dry_run, &opts.principal) {
                cp.authorize_plan(p, &planned.plan, &defs).await?;
            }
            print!("{}", planned.plan.render());
            for w in &planned.warnings {
                println!("warning: {w}");
            }
            if !planned.breaking_dependents.is_empty() {
                println!("Breaking changes reach:");
                for d in &planned.breaking_dependents {
                    println!(
                        "  {} `{}` (reads {}; {} changes)",
                        d.kind, d.name, d.via, d.change
                    );
                }
            }
            if dry_run {
                println!("Dry run: nothing changed.");
                return Ok(());
            }
            let report = cp
                .apply(&defs, &opts)
                .await
                .map_err(|e| explain(&file, e))?;
            if report.applied {
                println!("Applied.");
            } else {
                println!("Nothing to change.");
            }
            if let Some(seq) = report.republished_manifest {
                println!("Republished live manifest {seq}.");
            }
        }
        Command::Materialize { views, incremental } => {
            let cp = open_control(&g).await?;
            let bar = spinner("materializing");
            let mode = if incremental {
                fstore_control::RunMode::Auto
            } else {
                fstore_control::RunMode::Full
            };
            let reports = cp.materialize(&views, &whoami(), mode).await;
            bar.finish_and_clear();
            // A one-shot command: let the alerts it raised reach their webhooks first.
            cp.flush_alerts(std::time::Duration::from_secs(30)).await;
            for r in reports? {
                if r.mode == "unchanged" {
                    println!("{}: unchanged since version {}", r.view, r.version);
                    continue;
                }
                let rejected = match &r.quarantine {
                    Some(q) => format!(", {} rejected (listed in {q})", r.rows_rejected),
                    None => String::new(),
                };
                println!(
                    "{}: version {} ({}) — {} rows read{rejected}, {} entities written, {} expired, {:.1} MiB, {} ms (manifest {})",
                    r.view,
                    r.version,
                    r.mode,
                    r.rows_read,
                    r.rows_written,
                    r.rows_expired,
                    r.size_bytes as f64 / (1 << 20) as f64,
                    r.duration_ms,
                    r.manifest_seq
                );
            }
        }
        Command::Get {
            edge,
            version,
            as_of,
            service,
            features,
            entities,
        } => {
            let body = lookup_body(service, features, &entities)?;
            let at = match (version, as_of) {
                (Some(n), _) => Some(At::Version(n)),
                (None, Some(t)) => Some(At::Time(t)),
                (None, None) => None,
            };
            if let Some(at) = at {
                return get_published(&g, at, &body).await;
            }
            let edge = edge
                .or_else(|| std::env::var("FSTORE_EDGE_URL").ok())
                .unwrap_or_else(|| "http://127.0.0.1:6566".into());
            let mut req = reqwest::Client::new()
                .post(format!("{}/v1/features", edge.trim_end_matches('/')))
                .json(&body);
            if let Some(t) = &g.token {
                req = req.bearer_auth(t);
            }
            let resp = req
                .send()
                .await
                .with_context(|| format!("calling the edge at {edge}"))?;
            let status = resp.status();
            let v: serde_json::Value = resp
                .json()
                .await
                .context("edge answered with something that is not JSON")?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            if !status.is_success() {
                bail!("edge answered {status}");
            }
        }
        Command::Versions { json } => {
            let store = open_store(&g.store_url)?;
            let v = store.versions().await?;
            if v.items.is_empty() {
                bail!("nothing has been published to `{}` yet", g.store_url);
            }
            if json {
                let doc = serde_json::json!({"live": v.live, "items": v.items});
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print!("{}", render_versions(&v));
            }
        }
        Command::Serve { what } => match what {
            ServeCommand::ControlPlane {
                addr,
                no_scheduler,
                replica_id,
                job_timeout,
                job_attempts,
                job_backoff,
                job_lease,
                job_tick,
                compact_after,
                auth,
            } => {
                if job_attempts == 0
                    || job_lease.is_zero()
                    || job_tick.is_zero()
                    || compact_after == 0
                {
                    bail!(
                        "--job-attempts, --job-lease, --job-tick and --compact-after must be above zero"
                    );
                }
                let mut config = control_config(&g);
                let defaults = fstore_control::JobSettings::default();
                config.jobs = fstore_control::JobSettings {
                    enabled: !no_scheduler,
                    replica: replica_id.unwrap_or(defaults.replica),
                    tick: job_tick,
                    lease: job_lease,
                    timeout: job_timeout,
                    max_attempts: job_attempts,
                    backoff: job_backoff,
                    compact_after,
                };
                config.auth = auth == "on";
                if !config.auth {
                    tracing::warn!("authentication is off: every caller acts as admin");
                }
                let cp = Arc::new(open_with(&g, config).await?);
                let listener = tokio::net::TcpListener::bind(&addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
                // Tests read the first line for the address; the dashboard is on the same port.
                let local = listener.local_addr()?;
                eprintln!("control plane listening on http://{local}");
                eprintln!("dashboard at http://{local}/");
                fstore_dashboard::serve(cp, listener, shutdown_signal()).await?;
            }
            ServeCommand::Edge {
                addr,
                poll_interval,
                cache_dir,
                max_entities,
                max_body_bytes,
                region,
                control_plane,
                edge_id,
                advertise,
                auth,
                auth_public_key,
                control_plane_token,
                shards,
            } => {
                let mut cfg = fstore_edge::EdgeConfig::new(g.store_url.clone());
                cfg.shards = shards;
                cfg.auth_public_key = match (auth.as_str(), auth_public_key) {
                    ("off", _) => None,
                    (_, Some(k)) if !k.trim().is_empty() => Some(k.trim().to_string()),
                    _ => bail!(
                        "authentication is on, so the edge needs the control plane's public \
                         key: pass --auth-public-key (print it with `fstore auth public-key`), \
                         or --auth off to serve anyone"
                    ),
                };
                cfg.control_plane_token = control_plane_token;
                cfg.poll_interval = poll_interval;
                if let Some(d) = cache_dir {
                    cfg.cache_dir = d;
                }
                cfg.max_entities = max_entities;
                cfg.max_body_bytes = max_body_bytes;
                cfg.region = region;
                cfg.control_plane_url = control_plane;
                cfg.edge_id = edge_id;
                cfg.advertise_addr = advertise;
                let listener = tokio::net::TcpListener::bind(&addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
                eprintln!(
                    "edge listening on http://{} (store {})",
                    listener.local_addr()?,
                    g.store_url
                );
                fstore_edge::serve(cfg, listener, shutdown_signal()).await?;
            }
            ServeCommand::Router {
                addr,
                edges,
                key,
                check_interval,
                timeout,
                attempts,
                max_body_bytes,
            } => {
                if check_interval.is_zero() || timeout.is_zero() {
                    bail!("--check-interval and --timeout must be above zero");
                }
                let mut cfg = fstore_router::RouterConfig::new(edges);
                cfg.key = key;
                cfg.check_interval = check_interval;
                cfg.timeout = timeout;
                cfg.attempts = attempts;
                cfg.max_body_bytes = max_body_bytes;
                // Built before binding, so a bad flag fails without taking the port.
                let state = std::sync::Arc::new(fstore_router::RouterState::new(cfg)?);
                let listener = tokio::net::TcpListener::bind(&addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
                eprintln!(
                    "router listening on http://{} ({} edges)",
                    listener.local_addr()?,
                    state.edges().len()
                );
                fstore_router::serve(state, listener, shutdown_signal()).await?;
            }
        },
        Command::Historical {
            entities,
            service,
            features,
            out,
            full_feature_names,
            timestamp_column,
        } => {
            let cp = open_control(&g).await?;
            let principal = access::principal(&g, &cp).await?;
            let bar = spinner("joining");
            let report = cp
                .historical(&fstore_control::HistoricalParams {
                    entities,
                    feature_service: service,
                    features,
                    out,
                    full_feature_names,
                    timestamp_column,
                    principal: Some(principal),
                })
                .await;
            bar.finish_and_clear();
            let r = report?;
            for v in &r.views {
                println!(
                    "{}: {} source rows read, {} of {} entity rows matched",
                    v.view, v.source_rows_read, v.entity_rows_matched, r.rows
                );
            }
            println!(
                "wrote {} rows × {} columns ({:.1} MiB) to {} in {} ms",
                r.rows,
                r.columns.len(),
                r.size_bytes as f64 / (1 << 20) as f64,
                r.out,
                r.duration_ms
            );
        }
        Command::Quickstart(args) => quickstart::run(args).await?,
        Command::Catalog { what } => catalog::catalog(&g, what).await?,
        Command::History(a) => catalog::history(&g, a).await?,
        Command::Diff(a) => catalog::diff(&g, a).await?,
        Command::Changelog(a) => catalog::changelog(&g, a).await?,
        Command::Lineage(a) => catalog::lineage(&g, a).await?,
        Command::Impact(a) => catalog::impact(&g, a).await?,
        Command::Rollback(a) => catalog::rollback(&g, a).await?,
        Command::Delete(a) => catalog::delete(&g, a).await?,
        Command::Jobs(a) => jobs::jobs(&g, a).await?,
        Command::Quality { what } => quality::quality(&g, what).await?,
        Command::Alerts(a) => quality::alerts(&g, a).await?,
        Command::Token { what } => access::token(&g, what).await?,
        Command::Role { what } => access::role(&g, what).await?,
        Command::Audit { what } => access::audit(&g, what).await?,
        Command::Auth { what } => access::auth(&g, what).await?,
        Command::Erase { entity, json } => access::erase(&g, &entity, json).await?,
        Command::Retention { json } => access::retention(&g, json).await?,
        Command::Compliance { what } => access::compliance(&g, what).await?,
    }
    Ok(())
}

/// Which published version `fstore get` answers from.
#[derive(Debug, Clone, Copy)]
enum At {
    Version(u64),
    Time(chrono::DateTime<chrono::Utc>),
}

fn open_store(url: &str) -> anyhow::Result<fstore_storage::Store> {
    fstore_storage::Store::from_url(url).with_context(|| format!("opening store `{url}`"))
}

/// `fstore get --version/--as-of`: builds the catalog an edge would build from that version's
/// manifest (snapshots downloaded into a temporary directory, components loaded) and answers
/// `body` with the edge's own lookup code, so the JSON is what an edge serving that version
/// would have answered now (ttl is enforced against the current clock, as an edge does).
async fn get_published(g: &Global, at: At, body: &serde_json::Value) -> anyhow::Result<()> {
    let store_url = g.store_url.as_str();
    let store = open_store(store_url)?;
    let manifest = match at {
        At::Version(n) => store.manifest_at(n).await?,
        At::Time(t) => store.manifest_as_of(t).await?,
    };
    let seq = manifest.seq;
    let tmp = tempfile::Builder::new()
        .prefix("fstore-get-")
        .tempdir()
        .context("creating a temporary directory for snapshots")?;
    let defaults = fstore_edge::EdgeConfig::new(store_url);
    let mut components = fstore_edge::Components::new(defaults.wasm.clone());
    let metrics = fstore_edge::Metrics::default();
    let catalog = fstore_edge::build_catalog(
        &store,
        &manifest,
        tmp.path(),
        None,
        &mut components,
        &metrics,
        &fstore_snapshot::ShardSet::all(),
    )
    .await
    .with_context(|| format!("loading published version {seq} from `{store_url}`"))?;
    let request = serde_json::to_vec(body)?;
    let mut out = Vec::with_capacity(2048);
    let now = chrono::Utc::now().timestamp_micros();
    let answered = match &g.token {
        // A token's holder reads as at an edge: its permissions, its masks, audited.
        Some(token) => {
            let cp = open_control(g).await?;
            let key = cp.public_key().await?;
            let doc = store
                .get_bytes(fstore_access::ACCESS_KEY)
                .await
                .context("reading the access document")?;
            let gate = fstore_access::Gate::new(fstore_access::verify_doc(&doc, &key)?)?;
            let caller = gate
                .authenticate(Some(token), now.div_euclid(1_000_000))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut pii = Vec::new();
            let answered = fstore_edge::lookup::execute_authorized(
                &catalog,
                &request,
                fstore_edge::lookup::Format::Fstore,
                defaults.max_entities,
                now,
                &mut out,
                fstore_edge::lookup::Observe {
                    metrics: &metrics,
                    started: std::time::Instant::now(),
                },
                fstore_edge::lookup::Access {
                    caller,
                    gate: &gate,
                },
                &mut pii,
            );
            for r in pii {
                cp.audit(
                    &format!("token:{}", caller.token.name),
                    "read_pii",
                    &format!("feature_view/{}", r.view),
                    serde_json::json!({
                        "features": r.features,
                        "masked": r.masked,
                        "entities": r.entities,
                        "keys": r.keys,
                        "version": seq,
                    }),
                )
                .await?;
            }
            answered
        }
        None => fstore_edge::lookup::execute(
            &catalog,
            &request,
            fstore_edge::lookup::Format::Fstore,
            defaults.max_entities,
            now,
            &mut out,
        ),
    };
    match answered {
        Ok(_) => {
            let v: serde_json::Value = serde_json::from_slice(&out)
                .context("the lookup rendered something that is not JSON")?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Err(e) => {
            let v: serde_json::Value = serde_json::from_slice(&e.body())?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            bail!(
                "published version {seq} answered {}: {}",
                e.status,
                e.message
            )
        }
    }
}

/// The table `fstore versions` prints.
fn render_versions(v: &fstore_storage::Versions) -> String {
    let mut out = format!("{:>8}  {:<26}  views\n", "version", "published at");
    for item in &v.items {
        let views = item
            .views
            .iter()
            .map(|(name, version)| format!("{name}@{version}"))
            .collect::<Vec<_>>()
            .join(", ");
        let marker = if item.live { "*" } else { " " };
        out.push_str(&format!(
            "{marker}{:>7}  {:<26}  {views}\n",
            item.seq, item.created_at
        ));
    }
    out.push_str("(* live; `fstore get --version N` answers from version N)\n");
    out
}

/// Builds a `/v1/features` body from `join_key=value` pairs; integers stay integers.
pub fn lookup_body(
    service: Option<String>,
    features: Vec<String>,
    entities: &[String],
) -> anyhow::Result<serde_json::Value> {
    let mut cols: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
    for e in entities {
        let (k, v) = e
            .split_once('=')
            .with_context(|| format!("`{e}` is not `join_key=value`"))?;
        let val = v
            .parse::<i64>()
            .map(serde_json::Value::from)
            .unwrap_or_else(|_| serde_json::Value::from(v));
        match cols.iter_mut().find(|(c, _)| c == k) {
            Some((_, vals)) => vals.push(val),
            None => cols.push((k.to_string(), vec![val])),
        }
    }
    let mut body = serde_json::json!({ "entities": serde_json::Map::from_iter(cols.into_iter().map(|(k, v)| (k, serde_json::Value::from(v)))) });
    match service {
        Some(s) => body["feature_service"] = s.into(),
        None if features.is_empty() => bail!("name --service or --features"),
        None => body["features"] = features.into(),
    }
    Ok(body)
}

/// Who the change log and audit log record this process's changes as, once a `--token` has
/// been checked (`token:<name>`); otherwise the local user.
pub(crate) static ACTOR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub(crate) fn whoami() -> String {
    ACTOR
        .get()
        .cloned()
        .unwrap_or_else(|| std::env::var("USER").unwrap_or_else(|_| "cli".into()))
}

pub(crate) fn spinner(msg: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(msg.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}
