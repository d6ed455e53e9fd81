//! The one [`Registry`] implementation, shared by SQLite and PostgreSQL through sqlx's Any
//! driver (see the crate docs for why one implementation suffices).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Executor, Row};

mod access;
mod jobs;
mod quality;

use crate::catalog::{self, Candidate, Doc};
use crate::target::{Target, sqlite_file_url};
use crate::{
    Alert, AlertQuery, ApplyOutcome, ChangeEntry, ChangelogQuery, Definitions, EdgeHeartbeat,
    EdgeRecord, Enqueued, JobRun, NewAlert, NewChange, NewRun, ObjectKind, ObjectVersion,
    QualityRecord, Registry, RegistryError, Rollback, RollbackBinding, RunOutcome, RunQuery,
    RunStatus, SearchQuery, SearchResults, ServingSample, SnapshotRecord, StoredObject,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a SQLite writer waits for another writer (possibly another process, e.g. the CLI
/// while the control plane runs) before giving up; applies are short, so this is generous.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;

/// SQLite allows one writer at a time whatever the pool size, so a few connections are enough
/// for concurrent readers without piling up writers on the busy timeout.
const SQLITE_FILE_CONNECTIONS: u32 = 4;

const POSTGRES_CONNECTIONS: u32 = 10;

/// The counter that numbers change-log entries.
const CHANGELOG_COUNTER: &str = "changelog";

const MAX_CHANGELOG_LIMIT: usize = 1000;

const SNAPSHOT_COLUMNS: &str = "SELECT view_name, version, object_key, row_count, size_bytes, \
     checksum, manifest_seq, created_at, duration_ms, definition_version, lineage FROM snapshots";

pub(crate) struct SqlRegistry {
    pool: AnyPool,
    backend: &'static str,
}

fn db(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> RegistryError {
    let context = context.into();
    move |source| RegistryError::Database { context, source }
}

fn now() -> String {
    format_time(chrono::Utc::now())
}

/// How the registry writes times: RFC 3339 UTC with microseconds and `Z`, a fixed width, so
/// that stored times compare chronologically as text on both databases.
fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn to_i64(v: u64, what: &str) -> Result<i64, RegistryError> {
    i64::try_from(v).map_err(|_| {
        RegistryError::Invalid(format!(
            "{what} is {v}, above the largest storable value {}",
            i64::MAX
        ))
    })
}

fn to_u64(v: i64, what: &str) -> Result<u64, RegistryError> {
    u64::try_from(v).map_err(|_| RegistryError::Corrupt(format!("{what} is negative ({v})")))
}

fn parse_kind(s: &str) -> Result<ObjectKind, RegistryError> {
    ObjectKind::parse(s).ok_or_else(|| RegistryError::Corrupt(format!("unknown object kind `{s}`")))
}

fn parse_spec(
    text: &str,
    kind: ObjectKind,
    name: &str,
) -> Result<serde_json::Value, RegistryError> {
    serde_json::from_str(text).map_err(|e| {
        RegistryError::Corrupt(format!(
            "the stored spec of {kind} `{name}` is not JSON: {e}"
        ))
    })
}

fn get<'r, T>(row: &'r AnyRow, col: &str) -> Result<T, RegistryError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(col)
        .map_err(db(format!("reading column `{col}`")))
}

fn sqlite_pool_options() -> AnyPoolOptions {
    AnyPoolOptions::new().after_connect(|conn, _meta| {
        Box::pin(async move {
            // Set on every connection because these PRAGMAs are per connection, and the Any
            // driver offers no typed option for them.
            conn.execute(sqlx::AssertSqlSafe(format!(
                "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON;"
            )))
            .await?;
            Ok(())
        })
    })
}

/// WAL is a property of the database file, so it is set once here rather than per connection,
/// and only when needed: switching journal mode takes an exclusive lock that the busy timeout
/// does not cover, which would make every open fail while another process writes.
async fn enable_wal(pool: &AnyPool, what: &str) -> Result<(), RegistryError> {
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .map_err(db(format!("reading the journal mode of {what}")))?;
    if mode.eq_ignore_ascii_case("wal") {
        return Ok(());
    }
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
        .fetch_one(pool)
        .await
        .map_err(db(format!("switching {what} to WAL mode")))?;
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(RegistryError::Setup(format!(
            "SQLite kept journal mode `{mode}` for {what} instead of WAL (is it on a network \
             file system?)"
        )))
    }
}

impl SqlRegistry {
    pub(crate) async fn open(target: Target) -> Result<Self, RegistryError> {
        sqlx::any::install_default_drivers();
        let what = target.describe();
        let connecting = format!("connecting to {what}");
        let pool = match &target {
            Target::Postgres { url } => AnyPoolOptions::new()
                .max_connections(POSTGRES_CONNECTIONS)
                .acquire_timeout(Duration::from_secs(30))
                .connect(url)
                .await
                .map_err(db(connecting))?,
            // sqlx gives each new connection to `:memory:` its own empty database, so the one
            // connection must never be replaced.
            Target::SqliteMemory => sqlite_pool_options()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect("sqlite::memory:")
                .await
                .map_err(db(connecting))?,
            Target::SqliteFile { path } => {
                let abs = std::path::absolute(path).map_err(|source| RegistryError::CreateDir {
                    path: path.display().to_string(),
                    source,
                })?;
                if let Some(parent) = abs.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(|source| {
                        RegistryError::CreateDir {
                            path: parent.display().to_string(),
                            source,
                        }
                    })?;
                }
                let pool = sqlite_pool_options()
                    .max_connections(SQLITE_FILE_CONNECTIONS)
                    .connect(&sqlite_file_url(&abs)?)
                    .await
                    .map_err(db(connecting))?;
                enable_wal(&pool, &what).await?;
                pool
            }
        };
        MIGRATOR.run(&pool).await?;
        let reg = Self {
            pool,
            backend: target.backend(),
        };
        reg.create_text_index().await?;
        reg.backfill_catalog().await?;
        Ok(reg)
    }

    fn is_sqlite(&self) -> bool {
        self.backend == "sqlite"
    }

    /// The full-text index over `catalog.body`. It is not a migration because migrations are
    /// shared by both dialects and the two indexes have nothing in common: SQLite needs an
    /// FTS5 table (kept in sync by `write_catalog`), PostgreSQL an expression index. Both
    /// statements are idempotent, so this runs on every open.
    async fn create_text_index(&self) -> Result<(), RegistryError> {
        if self.is_sqlite() {
            // `unicode61` splits on everything but letters and digits and folds case; body
            // tokens are [a-z0-9]+, so it keeps each one whole and unchanged.
            self.pool
                .execute(
                    "CREATE VIRTUAL TABLE IF NOT EXISTS catalog_fts \
                     USING fts5(doc_id UNINDEXED, body, tokenize = 'unicode61')",
                )
                .await
                .map_err(db("creating the SQLite full-text index (FTS5)"))?;
            return Ok(());
        }
        // Usually there already; checked first so that an open takes no lock on the catalog.
        let exists: i64 = sqlx::query_scalar(
            "SELECT CAST(CASE WHEN to_regclass('catalog_body_fts') IS NULL THEN 0 ELSE 1 END \
             AS BIGINT)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db("looking for the PostgreSQL full-text index"))?;
        if exists == 1 {
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting the full-text index transaction"))?;
        // Two control planes starting together would both try to create the index, and
        // `IF NOT EXISTS` does not stop the loser failing on the catalog's unique name; this
        // lock (which conflicts with itself) makes the second wait and then see the index.
        tx.execute("LOCK TABLE catalog IN SHARE ROW EXCLUSIVE MODE")
            .await
            .map_err(db("locking the catalog to create its full-text index"))?;
        // 'simple' only lowercases: no stemming or stop words of its own, so PostgreSQL
        // matches exactly the tokens the registry wrote.
        tx.execute(
            "CREATE INDEX IF NOT EXISTS catalog_body_fts ON catalog \
             USING GIN (to_tsvector('simple', body))",
        )
        .await
        .map_err(db("creating the PostgreSQL full-text index"))?;
        tx.commit()
            .await
            .map_err(db("committing the full-text index"))?;
        Ok(())
    }

    /// Fills the catalog of a registry that has definitions but no catalog (one created before
    /// the catalog existed), so search works before the next apply.
    async fn backfill_catalog(&self) -> Result<(), RegistryError> {
        // Checked first without a transaction, so that an open does not write (and, on SQLite,
        // wait for other writers) in the usual case.
        if !catalog_missing(&self.pool).await? {
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting the catalog backfill"))?;
        take_apply_lock(&mut tx).await?;
        // Another process may have filled it while this one waited for the lock.
        if !catalog_missing(&mut *tx).await? {
            return Ok(());
        }
        // Unreadable definitions are left for the next apply to repair, rather than making the
        // registry impossible to open.
        let Ok(defs) = read_definitions(&mut *tx).await else {
            return Ok(());
        };
        write_catalog(&mut tx, self.is_sqlite(), &catalog::documents(&defs)).await?;
        tx.commit()
            .await
            .map_err(db("committing the catalog backfill"))?;
        Ok(())
    }
}

/// Whether there are definitions but no catalog.
async fn catalog_missing<'c, E>(exec: E) -> Result<bool, RegistryError>
where
    E: Executor<'c, Database = sqlx::Any>,
{
    let missing: i64 = sqlx::query_scalar(
        "SELECT CAST(CASE WHEN EXISTS (SELECT 1 FROM objects) \
         AND NOT EXISTS (SELECT 1 FROM catalog) THEN 1 ELSE 0 END AS BIGINT)",
    )
    .fetch_one(exec)
    .await
    .map_err(db("checking whether the catalog needs building"))?;
    Ok(missing == 1)
}

/// Updates the single apply_lock row: serialises applies (and the other writers that must
/// not interleave with them) on PostgreSQL, and on SQLite takes the write lock before the
/// transaction reads anything (see the migration).
async fn take_apply_lock(conn: &mut AnyConnection) -> Result<(), RegistryError> {
    let locked = sqlx::query("UPDATE apply_lock SET generation = generation + 1 WHERE id = 1")
        .execute(conn)
        .await
        .map_err(db("taking the apply lock"))?
        .rows_affected();
    if locked != 1 {
        return Err(RegistryError::Corrupt(
            "the apply_lock row is missing".into(),
        ));
    }
    Ok(())
}

async fn read_definitions<'c, E>(exec: E) -> Result<Definitions, RegistryError>
where
    E: Executor<'c, Database = sqlx::Any>,
{
    let rows = sqlx::query("SELECT kind, name, spec FROM objects")
        .fetch_all(exec)
        .await
        .map_err(db("reading definitions"))?;
    let mut objects = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind = parse_kind(&get::<String>(row, "kind")?)?;
        let name: String = get(row, "name")?;
        objects.push((kind, parse_spec(&get::<String>(row, "spec")?, kind, &name)?));
    }
    Definitions::from_objects(objects).map_err(|e| RegistryError::Corrupt(e.to_string()))
}

/// Replaces the catalog with `docs` (and, on SQLite, its FTS5 index with their bodies).
/// Catalogs are small, so rewriting everything is simpler than tracking what changed, and
/// cannot drift.
async fn write_catalog(
    conn: &mut AnyConnection,
    sqlite: bool,
    docs: &[Doc],
) -> Result<(), RegistryError> {
    sqlx::query("DELETE FROM catalog")
        .execute(&mut *conn)
        .await
        .map_err(db("clearing the catalog"))?;
    if sqlite {
        sqlx::query("DELETE FROM catalog_fts")
            .execute(&mut *conn)
            .await
            .map_err(db("clearing the catalog's full-text index"))?;
    }
    for d in docs {
        let doc = serde_json::to_string(d).map_err(|e| {
            RegistryError::Invalid(format!("catalog entry `{}` does not serialise: {e}", d.id))
        })?;
        let body = d.body();
        sqlx::query(
            "INSERT INTO catalog (doc_id, doc_kind, name, view_name, owner, tags, entities, \
             feature_type, description, body, doc) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&d.id)
        .bind(&d.kind)
        .bind(&d.name)
        .bind(d.view.as_deref())
        .bind(&d.owner)
        .bind(d.tags_column())
        .bind(d.entities_column())
        .bind(d.feature_type.as_deref())
        .bind(&d.description)
        .bind(&body)
        .bind(&doc)
        .execute(&mut *conn)
        .await
        .map_err(db(format!("writing catalog entry `{}`", d.id)))?;
        if sqlite {
            sqlx::query("INSERT INTO catalog_fts (doc_id, body) VALUES ($1, $2)")
                .bind(&d.id)
                .bind(&body)
                .execute(&mut *conn)
                .await
                .map_err(db(format!("indexing catalog entry `{}`", d.id)))?;
        }
    }
    Ok(())
}

/// Allocates the next value of a counter above `floor`, on whatever connection (or
/// transaction) is given.
async fn advance_counter<'c, E>(exec: E, name: &str, floor: u64) -> Result<u64, RegistryError>
where
    E: Executor<'c, Database = sqlx::Any>,
{
    // One statement, so the increment and the read cannot be split by another caller on
    // either database. CASE rather than GREATEST/MAX: the two dialects spell the two-argument
    // maximum differently.
    let value: i64 = sqlx::query_scalar(
        "INSERT INTO counters (name, current_value) VALUES ($1, $2 + 1) \
         ON CONFLICT (name) DO UPDATE SET current_value = CASE \
         WHEN counters.current_value >= $2 THEN counters.current_value + 1 ELSE $2 + 1 END \
         RETURNING current_value",
    )
    .bind(name)
    .bind(to_i64(floor, "a counter floor")?)
    .fetch_one(exec)
    .await
    .map_err(db(format!("advancing counter `{name}`")))?;
    to_u64(value, "a counter value")
}

/// Appends one change-log entry inside the caller's transaction, so the entry exists exactly
/// when the change it describes does; returns its seq.
async fn write_change(
    conn: &mut AnyConnection,
    now: &str,
    c: &NewChange,
) -> Result<u64, RegistryError> {
    let version = c
        .version
        .map(|v| to_i64(v, "the change's version"))
        .transpose()?;
    let details = serde_json::to_string(&c.details).map_err(|e| {
        RegistryError::Invalid(format!("the details of a change do not serialise: {e}"))
    })?;
    let seq = advance_counter(&mut *conn, CHANGELOG_COUNTER, 0).await?;
    sqlx::query(
        "INSERT INTO changelog (seq, created_at, actor, change_action, kind, name, version, \
         message, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(to_i64(seq, "a change-log sequence")?)
    .bind(now)
    .bind(&c.actor)
    .bind(&c.action)
    .bind(&c.kind)
    .bind(&c.name)
    .bind(version)
    .bind(&c.message)
    .bind(&details)
    .execute(&mut *conn)
    .await
    .map_err(db(format!(
        "recording the change log entry for {} `{}`",
        c.kind, c.name
    )))?;
    // Every registry change is also an audit record, in the same transaction.
    let (origin, remote) = crate::access::audit_origin();
    let mut detail = serde_json::json!({"changelog_seq": seq, "message": c.message});
    if let Some(v) = c.version {
        detail["version"] = v.into();
    }
    access::append_in(
        conn,
        &[crate::NewAuditEvent {
            at: now.to_string(),
            actor: c.actor.clone(),
            action: c.action.clone(),
            resource: format!("{}/{}", c.kind, c.name),
            detail,
            origin,
            remote,
            origin_seq: None,
        }],
    )
    .await?;
    Ok(seq)
}

fn change_entry(row: &AnyRow) -> Result<ChangeEntry, RegistryError> {
    let seq = to_u64(get(row, "seq")?, "a change-log sequence")?;
    let version: Option<i64> = get(row, "version")?;
    let details: String = get(row, "details")?;
    Ok(ChangeEntry {
        seq,
        created_at: get(row, "created_at")?,
        actor: get(row, "actor")?,
        action: get(row, "change_action")?,
        kind: get(row, "kind")?,
        name: get(row, "name")?,
        version: version
            .map(|v| to_u64(v, "a change-log version"))
            .transpose()?,
        message: get(row, "message")?,
        details: serde_json::from_str(&details).map_err(|e| {
            RegistryError::Corrupt(format!(
                "the details of change-log entry {seq} are not JSON: {e}"
            ))
        })?,
    })
}

/// A value bound to a statement assembled at run time.
enum Arg {
    Text(String),
    Int(i64),
}

/// The arguments of a statement assembled at run time, numbered as they are added.
#[derive(Default)]
struct Args(Vec<Arg>);

impl Args {
    /// Adds `a` and returns its placeholder.
    fn push(&mut self, a: Arg) -> String {
        self.0.push(a);
        format!("${}", self.0.len())
    }

    fn text(&mut self, s: impl Into<String>) -> String {
        self.push(Arg::Text(s.into()))
    }

    async fn fetch_all(self, sql: String, pool: &AnyPool) -> Result<Vec<AnyRow>, sqlx::Error> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in self.0 {
            q = match a {
                Arg::Text(s) => q.bind(s),
                Arg::Int(i) => q.bind(i),
            };
        }
        q.fetch_all(pool).await
    }

    /// Runs a statement that returns no rows; returns how many rows it changed.
    async fn execute(self, sql: String, pool: &AnyPool) -> Result<u64, sqlx::Error> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in self.0 {
            q = match a {
                Arg::Text(s) => q.bind(s),
                Arg::Int(i) => q.bind(i),
            };
        }
        Ok(q.execute(pool).await?.rows_affected())
    }
}

/// The service's current version, or None when it is not defined.
async fn service_version(
    conn: &mut AnyConnection,
    service: &str,
) -> Result<Option<u64>, RegistryError> {
    let v: Option<i64> =
        sqlx::query_scalar("SELECT version FROM objects WHERE kind = $1 AND name = $2")
            .bind(ObjectKind::FeatureService.as_str())
            .bind(service)
            .fetch_optional(conn)
            .await
            .map_err(db(format!("reading feature service `{service}`")))?;
    v.map(|v| to_u64(v, "an object version")).transpose()
}

fn stored_object(row: &AnyRow) -> Result<StoredObject, RegistryError> {
    let kind = parse_kind(&get::<String>(row, "kind")?)?;
    let name: String = get(row, "name")?;
    let spec = parse_spec(&get::<String>(row, "spec")?, kind, &name)?;
    Ok(StoredObject {
        kind,
        version: to_u64(get(row, "version")?, "an object version")?,
        spec,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        name,
    })
}

fn snapshot_record(row: &AnyRow) -> Result<SnapshotRecord, RegistryError> {
    Ok(SnapshotRecord {
        view: get(row, "view_name")?,
        version: to_u64(get(row, "version")?, "a snapshot version")?,
        key: get(row, "object_key")?,
        rows: to_u64(get(row, "row_count")?, "a snapshot row count")?,
        size_bytes: to_u64(get(row, "size_bytes")?, "a snapshot size")?,
        checksum: get(row, "checksum")?,
        manifest_seq: to_u64(get(row, "manifest_seq")?, "a manifest sequence")?,
        created_at: get(row, "created_at")?,
        duration_ms: to_u64(get(row, "duration_ms")?, "a snapshot duration")?,
        definition_version: to_u64(
            get(row, "definition_version")?,
            "a snapshot's definition version",
        )?,
        lineage: serde_json::from_str(&get::<String>(row, "lineage")?).map_err(|e| {
            RegistryError::Corrupt(format!("the lineage of a snapshot is not JSON: {e}"))
        })?,
    })
}

/// The fields every history row shares within one apply.
struct HistoryEntry<'a> {
    author: &'a str,
    message: &'a str,
    now: &'a str,
}

impl HistoryEntry<'_> {
    async fn write(
        &self,
        conn: &mut AnyConnection,
        kind: ObjectKind,
        name: &str,
        version: i64,
        spec: Option<&str>,
    ) -> Result<(), RegistryError> {
        sqlx::query(
            "INSERT INTO object_versions (kind, name, version, spec, author, message, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(kind.as_str())
        .bind(name)
        .bind(version)
        .bind(spec)
        .bind(self.author)
        .bind(self.message)
        .bind(self.now)
        .execute(conn)
        .await
        .map_err(db(format!(
            "recording version {version} of {kind} `{name}`"
        )))?;
        Ok(())
    }
}

fn next_version(v: i64, kind: ObjectKind, name: &str) -> Result<i64, RegistryError> {
    v.checked_add(1).ok_or_else(|| {
        RegistryError::Corrupt(format!(
            "{kind} `{name}` is at the largest possible version"
        ))
    })
}

#[async_trait::async_trait]
impl Registry for SqlRegistry {
    fn backend(&self) -> &'static str {
        self.backend
    }

    async fn definitions(&self) -> Result<Definitions, RegistryError> {
        read_definitions(&self.pool).await
    }

    async fn apply(
        &self,
        defs: &Definitions,
        author: &str,
        message: &str,
    ) -> Result<ApplyOutcome, RegistryError> {
        let wanted = defs.objects();
        let mut seen = HashSet::new();
        for (kind, name, _) in &wanted {
            if !seen.insert((*kind, name.as_str())) {
                return Err(RegistryError::Invalid(format!(
                    "{kind} `{name}` is defined twice"
                )));
            }
        }

        let now = now();
        let entry = HistoryEntry {
            author,
            message,
            now: &now,
        };
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting the apply transaction"))?;
        take_apply_lock(&mut tx).await?;

        let rows = sqlx::query("SELECT kind, name, version, spec FROM objects")
            .fetch_all(&mut *tx)
            .await
            .map_err(db("reading current definitions"))?;
        // A stored spec that no longer parses is kept as None: it then differs from anything
        // applied, so an apply repairs it instead of failing on it.
        let mut current: HashMap<(ObjectKind, String), (i64, Option<serde_json::Value>)> =
            HashMap::with_capacity(rows.len());
        for row in &rows {
            let kind = parse_kind(&get::<String>(row, "kind")?)?;
            let spec = serde_json::from_str(&get::<String>(row, "spec")?).ok();
            current.insert((kind, get(row, "name")?), (get(row, "version")?, spec));
        }

        let mut out = ApplyOutcome::default();
        // (kind, name, action, version, old spec, new spec) for the change log.
        type Change = (
            ObjectKind,
            String,
            &'static str,
            i64,
            Option<serde_json::Value>,
            Option<serde_json::Value>,
        );
        let mut changes: Vec<Change> = Vec::new();
        for (kind, name, spec) in wanted {
            let text = serde_json::to_string(&spec).map_err(|e| {
                RegistryError::Invalid(format!("{kind} `{name}` does not serialise: {e}"))
            })?;
            match current.remove(&(kind, name.clone())) {
                Some((_, Some(old))) if old == spec => {}
                Some((version, old)) => {
                    let version = next_version(version, kind, &name)?;
                    sqlx::query(
                        "UPDATE objects SET version = $1, spec = $2, updated_at = $3 \
                         WHERE kind = $4 AND name = $5",
                    )
                    .bind(version)
                    .bind(&text)
                    .bind(&now)
                    .bind(kind.as_str())
                    .bind(&name)
                    .execute(&mut *tx)
                    .await
                    .map_err(db(format!("updating {kind} `{name}`")))?;
                    entry
                        .write(&mut tx, kind, &name, version, Some(&text))
                        .await?;
                    changes.push((kind, name.clone(), "update", version, old, Some(spec)));
                    out.updated.push((kind, name));
                }
                None => {
                    let last: Option<i64> = sqlx::query_scalar(
                        "SELECT MAX(version) FROM object_versions WHERE kind = $1 AND name = $2",
                    )
                    .bind(kind.as_str())
                    .bind(&name)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db(format!("reading the history of {kind} `{name}`")))?;
                    let version = next_version(last.unwrap_or(0), kind, &name)?;
                    sqlx::query(
                        "INSERT INTO objects (kind, name, version, spec, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $5)",
                    )
                    .bind(kind.as_str())
                    .bind(&name)
                    .bind(version)
                    .bind(&text)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db(format!("creating {kind} `{name}`")))?;
                    entry
                        .write(&mut tx, kind, &name, version, Some(&text))
                        .await?;
                    changes.push((kind, name.clone(), "create", version, None, Some(spec)));
                    out.created.push((kind, name));
                }
            }
        }

        for ((kind, name), (version, old)) in current {
            sqlx::query("DELETE FROM objects WHERE kind = $1 AND name = $2")
                .bind(kind.as_str())
                .bind(&name)
                .execute(&mut *tx)
                .await
                .map_err(db(format!("deleting {kind} `{name}`")))?;
            // A rollback points a service at older snapshots; with the service gone it has
            // nothing left to apply to, and a re-created service must start without it.
            if kind == ObjectKind::FeatureService {
                sqlx::query("DELETE FROM service_rollbacks WHERE service = $1")
                    .bind(&name)
                    .execute(&mut *tx)
                    .await
                    .map_err(db(format!("removing the rollbacks of `{name}`")))?;
            }
            let version = next_version(version, kind, &name)?;
            entry.write(&mut tx, kind, &name, version, None).await?;
            changes.push((kind, name.clone(), "delete", version, old, None));
            out.deleted.push((kind, name));
        }

        // Sorted so that the change log lists one apply in a stable order (deletions come
        // from a hash map).
        changes.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (kind, name, action, version, old, new) in changes {
            let diff = fstore_spec::diff_specs(kind, old.as_ref(), new.as_ref());
            let details = serde_json::to_value(&diff).map_err(|e| {
                RegistryError::Invalid(format!(
                    "the diff of {kind} `{name}` does not serialise: {e}"
                ))
            })?;
            let change = NewChange {
                actor: author.to_string(),
                action: action.to_string(),
                kind: kind.as_str().to_string(),
                name,
                version: Some(to_u64(version, "an object version")?),
                message: message.to_string(),
                details,
            };
            write_change(&mut tx, &now, &change).await?;
        }

        // Rebuilt on every apply, even one that changed nothing: it is cheap, and it brings
        // an index written by an older tokenizer up to date.
        write_catalog(&mut tx, self.is_sqlite(), &catalog::documents(defs)).await?;

        tx.commit()
            .await
            .map_err(db("committing the apply transaction"))?;
        out.created.sort();
        out.updated.sort();
        out.deleted.sort();
        Ok(out)
    }

    async fn get_object(
        &self,
        kind: ObjectKind,
        name: &str,
    ) -> Result<Option<StoredObject>, RegistryError> {
        let row = sqlx::query(
            "SELECT kind, name, version, spec, created_at, updated_at FROM objects \
             WHERE kind = $1 AND name = $2",
        )
        .bind(kind.as_str())
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db(format!("reading {kind} `{name}`")))?;
        row.as_ref().map(stored_object).transpose()
    }

    async fn list_objects(&self, kind: ObjectKind) -> Result<Vec<StoredObject>, RegistryError> {
        let rows = sqlx::query(
            "SELECT kind, name, version, spec, created_at, updated_at FROM objects \
             WHERE kind = $1",
        )
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db(format!("listing {kind} objects")))?;
        let mut out = rows
            .iter()
            .map(stored_object)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn history(
        &self,
        kind: ObjectKind,
        name: &str,
    ) -> Result<Vec<ObjectVersion>, RegistryError> {
        let rows = sqlx::query(
            "SELECT version, spec, author, message, created_at FROM object_versions \
             WHERE kind = $1 AND name = $2 ORDER BY version",
        )
        .bind(kind.as_str())
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .map_err(db(format!("reading the history of {kind} `{name}`")))?;
        rows.iter()
            .map(|row| {
                let spec: Option<String> = get(row, "spec")?;
                Ok(ObjectVersion {
                    kind,
                    name: name.to_string(),
                    version: to_u64(get(row, "version")?, "an object version")?,
                    spec: spec.map(|s| parse_spec(&s, kind, name)).transpose()?,
                    author: get(row, "author")?,
                    message: get(row, "message")?,
                    created_at: get(row, "created_at")?,
                })
            })
            .collect()
    }

    async fn next_sequence_above(&self, name: &str, floor: u64) -> Result<u64, RegistryError> {
        // On the pool, so no transaction is held open across round trips.
        advance_counter(&self.pool, name, floor).await
    }

    async fn record_snapshot(&self, s: &SnapshotRecord) -> Result<(), RegistryError> {
        let lineage = serde_json::to_string(&s.lineage).map_err(|e| {
            RegistryError::Invalid(format!("the lineage of a snapshot does not serialise: {e}"))
        })?;
        let res = sqlx::query(
            "INSERT INTO snapshots (view_name, version, object_key, row_count, size_bytes, \
             checksum, manifest_seq, created_at, duration_ms, definition_version, lineage) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&s.view)
        .bind(to_i64(s.version, "the snapshot version")?)
        .bind(&s.key)
        .bind(to_i64(s.rows, "the row count")?)
        .bind(to_i64(s.size_bytes, "the snapshot size")?)
        .bind(&s.checksum)
        .bind(to_i64(s.manifest_seq, "the manifest sequence")?)
        .bind(&s.created_at)
        .bind(to_i64(s.duration_ms, "the duration")?)
        .bind(to_i64(s.definition_version, "the definition version")?)
        .bind(&lineage)
        .execute(&self.pool)
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(RegistryError::Duplicate(format!(
                    "snapshot version {} of view `{}`",
                    s.version, s.view
                )))
            }
            Err(e) => Err(db(format!(
                "recording snapshot version {} of view `{}`",
                s.version, s.view
            ))(e)),
        }
    }

    async fn list_snapshots(
        &self,
        view: Option<&str>,
    ) -> Result<Vec<SnapshotRecord>, RegistryError> {
        let rows = match view {
            Some(v) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{SNAPSHOT_COLUMNS} WHERE view_name = $1"
                )))
                .bind(v)
                .fetch_all(&self.pool)
                .await
            }
            None => sqlx::query(SNAPSHOT_COLUMNS).fetch_all(&self.pool).await,
        }
        .map_err(db("listing snapshots"))?;
        let mut out = rows
            .iter()
            .map(snapshot_record)
            .collect::<Result<Vec<_>, _>>()?;
        // Sorted here, not in SQL, so text order is bytewise on both databases (PostgreSQL
        // would otherwise use the database collation); RFC 3339 UTC strings of one format sort
        // chronologically that way.
        out.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(b.manifest_seq.cmp(&a.manifest_seq))
                .then(b.version.cmp(&a.version))
                .then(a.view.cmp(&b.view))
        });
        Ok(out)
    }

    async fn get_snapshot(
        &self,
        view: &str,
        version: u64,
    ) -> Result<Option<SnapshotRecord>, RegistryError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SNAPSHOT_COLUMNS} WHERE view_name = $1 AND version = $2"
        )))
        .bind(view)
        .bind(to_i64(version, "the snapshot version")?)
        .fetch_optional(&self.pool)
        .await
        .map_err(db(format!(
            "reading snapshot version {version} of view `{view}`"
        )))?;
        row.as_ref().map(snapshot_record).transpose()
    }

    async fn search(&self, q: &SearchQuery) -> Result<SearchResults, RegistryError> {
        let terms = catalog::query_terms(&q.q);
        catalog::validate(q, &terms)?;

        let mut args = Args::default();
        let text_match = if terms.is_empty() {
            None
        } else if self.is_sqlite() {
            let p = args.text(catalog::fts5_match(&terms));
            Some(format!(
                "doc_id IN (SELECT doc_id FROM catalog_fts WHERE catalog_fts MATCH {p})"
            ))
        } else {
            // The same expression as the index, so PostgreSQL can use it.
            let p = args.text(catalog::tsquery(&terms));
            Some(format!(
                "to_tsvector('simple', body) @@ to_tsquery('simple', {p})"
            ))
        };
        let mut filters = Vec::new();
        for (column, value) in [
            ("doc_kind", &q.kind),
            ("owner", &q.owner),
            ("feature_type", &q.feature_type),
            ("view_name", &q.view),
        ] {
            if let Some(v) = value {
                filters.push(format!("{column} = {}", args.text(v.as_str())));
            }
        }
        // Not LIKE: SQLite's LIKE ignores ASCII case and PostgreSQL's does not, and `%`/`_`
        // in a value would be wildcards. replace() is exact and case-sensitive in both.
        for (column, value) in [("tags", &q.tag), ("entities", &q.entity)] {
            if let Some(v) = value {
                let p = args.text(catalog::bar_pattern(v));
                filters.push(format!("replace({column}, {p}, '') <> {column}"));
            }
        }
        let filter = if filters.is_empty() {
            "1 = 1".to_string()
        } else {
            filters.join(" AND ")
        };
        // All candidates come back as ONE row: the documents joined by a record separator
        // (JSON escapes control characters, so it cannot occur inside one), each prefixed
        // with its filter flag. Row by row, sqlx's SQLite driver hands each row across
        // threads, which cost more than the search itself on a large catalog.
        let joined = if self.is_sqlite() {
            "group_concat(CASE WHEN {filter} THEN '1' ELSE '0' END || doc, char(30))"
        } else {
            "string_agg(CASE WHEN {filter} THEN '1' ELSE '0' END || doc, chr(30))"
        }
        .replace("{filter}", &filter);
        let sql = match &text_match {
            // Every document containing a query token comes back, flagged by the filters
            // rather than restricted by them: idf needs the true document frequency, so a
            // filter must not change a hit's score. The catalog size comes in the same
            // statement so it is from the same snapshot of the catalog.
            Some(m) => format!(
                "SELECT {joined} AS docs, (SELECT COUNT(*) FROM catalog) AS doc_count \
                 FROM catalog WHERE {m}"
            ),
            None => format!(
                "SELECT {joined} AS docs, CAST(0 AS BIGINT) AS doc_count FROM catalog \
                 WHERE {filter}"
            ),
        };
        let rows = args
            .fetch_all(sql, &self.pool)
            .await
            .map_err(db("searching the catalog"))?;

        let mut doc_count = 0;
        let mut candidates = Vec::new();
        for row in &rows {
            doc_count = to_u64(get(row, "doc_count")?, "the catalog size")?;
            let Some(docs) = get::<Option<String>>(row, "docs")? else {
                continue;
            };
            for entry in docs.split('\u{1e}') {
                let (flag, json) = entry
                    .split_at_checked(1)
                    .ok_or_else(|| RegistryError::Corrupt("an empty catalog entry".into()))?;
                let doc: Doc = serde_json::from_str(json).map_err(|e| {
                    RegistryError::Corrupt(format!("a catalog entry is unreadable: {e}"))
                })?;
                candidates.push(Candidate {
                    doc,
                    selected: flag == "1",
                });
            }
        }
        let ranked = catalog::rank(candidates, &terms, doc_count);
        Ok(SearchResults {
            total: ranked.len(),
            offset: q.offset,
            limit: q.limit,
            hits: ranked
                .into_iter()
                .skip(q.offset)
                .take(q.limit)
                .map(|(doc, score)| catalog::hit(doc, score, &terms))
                .collect(),
        })
    }

    async fn record_change(&self, c: &NewChange) -> Result<u64, RegistryError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting the change-log transaction"))?;
        let seq = write_change(&mut tx, &now(), c).await?;
        tx.commit()
            .await
            .map_err(db("committing the change-log entry"))?;
        Ok(seq)
    }

    async fn changelog(&self, q: &ChangelogQuery) -> Result<Vec<ChangeEntry>, RegistryError> {
        if q.limit == 0 || q.limit > MAX_CHANGELOG_LIMIT {
            return Err(RegistryError::Invalid(format!(
                "change-log limit must be between 1 and {MAX_CHANGELOG_LIMIT}, got {}",
                q.limit
            )));
        }
        let mut args = Args::default();
        let mut filters = Vec::new();
        for (column, value) in [
            ("kind", &q.kind),
            ("name", &q.name),
            ("actor", &q.actor),
            ("change_action", &q.action),
        ] {
            if let Some(v) = value {
                filters.push(format!("{column} = {}", args.text(v.as_str())));
            }
        }
        if let Some(before) = q.before_seq {
            // Every stored seq is below i64::MAX, so a larger bound means no bound.
            if let Ok(before) = i64::try_from(before) {
                filters.push(format!("seq < {}", args.push(Arg::Int(before))));
            }
        }
        let filter = if filters.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", filters.join(" AND "))
        };
        // The limit is a checked number, so it is written into the statement rather than
        // bound (the two drivers disagree on which integer types LIMIT accepts).
        let sql = format!(
            "SELECT seq, created_at, actor, change_action, kind, name, version, message, \
             details FROM changelog{filter} ORDER BY seq DESC LIMIT {}",
            q.limit
        );
        let rows = args
            .fetch_all(sql, &self.pool)
            .await
            .map_err(db("reading the change log"))?;
        rows.iter().map(change_entry).collect()
    }

    async fn set_rollbacks(
        &self,
        service: &str,
        bindings: &[RollbackBinding],
        author: &str,
        message: &str,
    ) -> Result<(), RegistryError> {
        if bindings.is_empty() {
            return Err(RegistryError::Invalid(format!(
                "a rollback of `{service}` needs at least one view and snapshot"
            )));
        }
        let mut map = BTreeMap::new();
        let mut snapshot_views = BTreeMap::new();
        for b in bindings {
            let (view, version) = (&b.view, b.snapshot_version);
            if view.is_empty() || b.snapshot_view.is_empty() {
                return Err(RegistryError::Invalid(format!(
                    "a rollback of `{service}` names an empty view"
                )));
            }
            to_i64(version, "the snapshot version")?;
            snapshot_views.insert(view.as_str(), b.snapshot_view.as_str());
            if map.insert(view.as_str(), version).is_some() {
                return Err(RegistryError::Invalid(format!(
                    "a rollback of `{service}` names view `{view}` twice"
                )));
            }
        }

        let now = now();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting the rollback transaction"))?;
        // Serialised with applies, so a service cannot be deleted between the check below
        // and the insert (which would leave a rollback nothing removes).
        take_apply_lock(&mut tx).await?;
        let Some(version) = service_version(&mut tx, service).await? else {
            return Err(RegistryError::Invalid(format!(
                "feature service `{service}` is not defined"
            )));
        };
        sqlx::query("DELETE FROM service_rollbacks WHERE service = $1")
            .bind(service)
            .execute(&mut *tx)
            .await
            .map_err(db(format!("replacing the rollbacks of `{service}`")))?;
        for (view, snapshot) in &map {
            sqlx::query(
                "INSERT INTO service_rollbacks (service, view_ref, snapshot_version, author, \
                 created_at, snapshot_view) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(service)
            .bind(*view)
            .bind(to_i64(*snapshot, "the snapshot version")?)
            .bind(author)
            .bind(&now)
            .bind(snapshot_views.get(view).copied().unwrap_or(view))
            .execute(&mut *tx)
            .await
            .map_err(db(format!(
                "recording the rollback of `{service}` for `{view}`"
            )))?;
        }
        let change = NewChange {
            actor: author.to_string(),
            action: "rollback".into(),
            kind: ObjectKind::FeatureService.as_str().into(),
            name: service.to_string(),
            version: Some(version),
            message: message.to_string(),
            details: serde_json::json!(map),
        };
        write_change(&mut tx, &now, &change).await?;
        tx.commit().await.map_err(db("committing the rollback"))?;
        Ok(())
    }

    async fn clear_rollbacks(&self, service: &str, author: &str) -> Result<usize, RegistryError> {
        let now = now();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("starting the rollback transaction"))?;
        // Taken before reading, so that on SQLite the transaction holds the write lock from
        // the start (see the apply_lock table).
        take_apply_lock(&mut tx).await?;
        let rows = sqlx::query(
            "SELECT view_ref, snapshot_version FROM service_rollbacks WHERE service = $1",
        )
        .bind(service)
        .fetch_all(&mut *tx)
        .await
        .map_err(db(format!("reading the rollbacks of `{service}`")))?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut removed = BTreeMap::new();
        for row in &rows {
            removed.insert(
                get::<String>(row, "view_ref")?,
                to_u64(
                    get(row, "snapshot_version")?,
                    "a rollback's snapshot version",
                )?,
            );
        }
        sqlx::query("DELETE FROM service_rollbacks WHERE service = $1")
            .bind(service)
            .execute(&mut *tx)
            .await
            .map_err(db(format!("clearing the rollbacks of `{service}`")))?;
        let change = NewChange {
            actor: author.to_string(),
            action: "rollback_clear".into(),
            kind: ObjectKind::FeatureService.as_str().into(),
            name: service.to_string(),
            version: service_version(&mut tx, service).await?,
            message: String::new(),
            details: serde_json::json!(removed),
        };
        write_change(&mut tx, &now, &change).await?;
        tx.commit()
            .await
            .map_err(db("committing the cleared rollback"))?;
        Ok(removed.len())
    }

    async fn rollbacks(&self) -> Result<Vec<Rollback>, RegistryError> {
        let rows = sqlx::query(
            "SELECT service, view_ref, snapshot_version, author, created_at, snapshot_view \
             FROM service_rollbacks",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing rollbacks"))?;
        let mut out = rows
            .iter()
            .map(|row| {
                let view: String = get(row, "view_ref")?;
                let snapshot_view: String = get(row, "snapshot_view")?;
                Ok(Rollback {
                    service: get(row, "service")?,
                    snapshot_view: if snapshot_view.is_empty() {
                        view.clone()
                    } else {
                        snapshot_view
                    },
                    view,
                    snapshot_version: to_u64(
                        get(row, "snapshot_version")?,
                        "a rollback's snapshot version",
                    )?,
                    author: get(row, "author")?,
                    created_at: get(row, "created_at")?,
                })
            })
            .collect::<Result<Vec<_>, RegistryError>>()?;
        // Sorted here for the bytewise order on both databases (see list_snapshots).
        out.sort_by(|a, b| (&a.service, &a.view).cmp(&(&b.service, &b.view)));
        Ok(out)
    }

    async fn record_heartbeat(&self, h: &EdgeHeartbeat) -> Result<(), RegistryError> {
        if h.id.trim().is_empty() || h.id.len() > 200 {
            return Err(RegistryError::Invalid(
                "an edge id must be 1-200 characters".into(),
            ));
        }
        let views = serde_json::to_string(&h.views)
            .map_err(|e| RegistryError::Invalid(format!("edge views do not serialise: {e}")))?;
        let seq = h
            .manifest_seq
            .map(|s| to_i64(s, "the manifest sequence"))
            .transpose()?;
        let now = now();
        sqlx::query(
            "INSERT INTO edges (edge_id, region, address, manifest_seq, served_views, ready, \
             interval_ms, started_at, first_seen, last_seen) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
             ON CONFLICT (edge_id) DO UPDATE SET region = excluded.region, \
             address = excluded.address, manifest_seq = excluded.manifest_seq, \
             served_views = excluded.served_views, ready = excluded.ready, \
             interval_ms = excluded.interval_ms, started_at = excluded.started_at, \
             last_seen = excluded.last_seen",
        )
        .bind(&h.id)
        .bind(&h.region)
        .bind(&h.address)
        .bind(seq)
        .bind(&views)
        .bind(i64::from(h.ready))
        .bind(to_i64(h.interval_ms, "the heartbeat interval")?)
        .bind(&h.started_at)
        .bind(&now)
        .execute(&self.pool)
        .await
        .map_err(db(format!("recording the heartbeat of edge `{}`", h.id)))?;
        Ok(())
    }

    async fn edges(&self) -> Result<Vec<EdgeRecord>, RegistryError> {
        let rows = sqlx::query(
            "SELECT edge_id, region, address, manifest_seq, served_views, ready, interval_ms, \
             started_at, first_seen, last_seen FROM edges",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing edges"))?;
        let mut out = rows
            .iter()
            .map(|row| {
                let id: String = get(row, "edge_id")?;
                let views: String = get(row, "served_views")?;
                let views = serde_json::from_str(&views).map_err(|e| {
                    RegistryError::Corrupt(format!("the views of edge `{id}` are not JSON: {e}"))
                })?;
                let seq: Option<i64> = get(row, "manifest_seq")?;
                Ok(EdgeRecord {
                    heartbeat: EdgeHeartbeat {
                        region: get(row, "region")?,
                        address: get(row, "address")?,
                        manifest_seq: seq.map(|s| to_u64(s, "a manifest sequence")).transpose()?,
                        views,
                        ready: get::<i64>(row, "ready")? != 0,
                        interval_ms: to_u64(get(row, "interval_ms")?, "a heartbeat interval")?,
                        started_at: get(row, "started_at")?,
                        serving: Default::default(),
                        serving_window_ms: 0,
                        id,
                    },
                    first_seen: get(row, "first_seen")?,
                    last_seen: get(row, "last_seen")?,
                })
            })
            .collect::<Result<Vec<_>, RegistryError>>()?;
        out.sort_by(|a, b| a.heartbeat.id.cmp(&b.heartbeat.id));
        Ok(out)
    }

    // Job runs live in `jobs.rs`.

    async fn enqueue_run(&self, r: &NewRun) -> Result<Enqueued, RegistryError> {
        self.enqueue_run_impl(r).await
    }

    async fn claim_run(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<JobRun>, RegistryError> {
        self.claim_run_impl(owner, lease).await
    }

    async fn claim_run_id(
        &self,
        id: u64,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<JobRun>, RegistryError> {
        self.claim_run_id_impl(id, owner, lease).await
    }

    async fn renew_lease(
        &self,
        id: u64,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, RegistryError> {
        self.renew_lease_impl(id, owner, lease).await
    }

    async fn finish_run(
        &self,
        id: u64,
        owner: &str,
        outcome: &RunOutcome,
    ) -> Result<bool, RegistryError> {
        self.finish_run_impl(id, owner, outcome).await
    }

    async fn request_cancel(&self, id: u64, actor: &str) -> Result<Option<JobRun>, RegistryError> {
        self.request_cancel_impl(id, actor).await
    }

    async fn expire_leases(&self) -> Result<Vec<JobRun>, RegistryError> {
        self.expire_leases_impl().await
    }

    async fn job_runs(&self, q: &RunQuery) -> Result<Vec<JobRun>, RegistryError> {
        self.job_runs_impl(q).await
    }

    async fn job_run(&self, id: u64) -> Result<Option<JobRun>, RegistryError> {
        self.job_run_impl(id).await
    }

    async fn last_run(
        &self,
        view: &str,
        status: Option<RunStatus>,
    ) -> Result<Option<JobRun>, RegistryError> {
        self.last_run_impl(view, status).await
    }

    async fn last_scheduled_slot(&self, view: &str) -> Result<Option<String>, RegistryError> {
        self.last_scheduled_slot_impl(view).await
    }

    async fn try_lock(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<bool, RegistryError> {
        self.try_lock_impl(name, holder, lease).await
    }

    async fn unlock(&self, name: &str, holder: &str) -> Result<(), RegistryError> {
        self.unlock_impl(name, holder).await
    }

    async fn create_token(&self, t: &crate::TokenRecord) -> Result<(), RegistryError> {
        self.create_token_impl(t).await
    }

    async fn tokens(&self) -> Result<Vec<crate::TokenRecord>, RegistryError> {
        self.tokens_impl(None).await
    }

    async fn token(&self, id: &str) -> Result<Option<crate::TokenRecord>, RegistryError> {
        Ok(self.tokens_impl(Some(id)).await?.pop())
    }

    async fn revoke_token(
        &self,
        id_or_name: &str,
        by: &str,
    ) -> Result<Option<crate::TokenRecord>, RegistryError> {
        self.revoke_token_impl(id_or_name, by).await
    }

    async fn put_role(&self, r: &crate::RoleRecord) -> Result<bool, RegistryError> {
        self.put_role_impl(r).await
    }

    async fn roles(&self) -> Result<Vec<crate::RoleRecord>, RegistryError> {
        self.roles_impl().await
    }

    async fn delete_role(&self, name: &str) -> Result<bool, RegistryError> {
        self.delete_role_impl(name).await
    }

    async fn setting(&self, name: &str) -> Result<Option<String>, RegistryError> {
        self.setting_impl(name).await
    }

    async fn init_setting(&self, name: &str, value: &str) -> Result<String, RegistryError> {
        self.init_setting_impl(name, value).await
    }

    async fn append_audit(
        &self,
        events: &[crate::NewAuditEvent],
    ) -> Result<Vec<crate::AuditRecord>, RegistryError> {
        self.append_audit_impl(events).await
    }

    async fn audit(&self, q: &crate::AuditQuery) -> Result<Vec<crate::AuditRecord>, RegistryError> {
        self.audit_impl(q).await
    }

    async fn audit_head(&self) -> Result<crate::AuditHead, RegistryError> {
        self.audit_head_impl().await
    }

    async fn record_quality(&self, r: &QualityRecord) -> Result<(), RegistryError> {
        self.record_quality_impl(r).await
    }

    async fn quality_reports(
        &self,
        view: &str,
        published_only: bool,
        limit: usize,
    ) -> Result<Vec<QualityRecord>, RegistryError> {
        self.quality_reports_impl(view, published_only, limit).await
    }

    async fn quality_report(
        &self,
        view: &str,
        version: u64,
    ) -> Result<Option<QualityRecord>, RegistryError> {
        self.quality_report_impl(view, version).await
    }

    async fn put_distributions(
        &self,
        view: &str,
        key: &str,
        distributions: &serde_json::Value,
    ) -> Result<(), RegistryError> {
        self.put_distributions_impl(view, key, distributions).await
    }

    async fn distributions(
        &self,
        view: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>, RegistryError> {
        self.distributions_impl(view, key).await
    }

    async fn prune_distributions(&self, view: &str, keep: &[String]) -> Result<u64, RegistryError> {
        self.prune_distributions_impl(view, keep).await
    }

    async fn open_alert(&self, a: &NewAlert) -> Result<(Alert, bool), RegistryError> {
        self.open_alert_impl(a).await
    }

    async fn resolve_alert(&self, fingerprint: &str) -> Result<Option<Alert>, RegistryError> {
        self.resolve_alert_impl(fingerprint).await
    }

    async fn alerts(&self, q: &AlertQuery) -> Result<Vec<Alert>, RegistryError> {
        self.alerts_impl(q).await
    }

    async fn record_delivery(
        &self,
        id: u64,
        delivery: &serde_json::Value,
    ) -> Result<(), RegistryError> {
        self.record_delivery_impl(id, delivery).await
    }

    async fn record_serving(&self, samples: &[ServingSample]) -> Result<(), RegistryError> {
        self.record_serving_impl(samples).await
    }

    async fn serving_samples(
        &self,
        view: Option<&str>,
        since: &str,
    ) -> Result<Vec<ServingSample>, RegistryError> {
        self.serving_samples_impl(view, since).await
    }

    async fn serving_rollup(
        &self,
        since: &str,
        step: crate::RollupStep,
    ) -> Result<Vec<crate::ServingBucket>, RegistryError> {
        self.serving_rollup_impl(since, step).await
    }

    async fn prune_serving(&self, before: &str) -> Result<u64, RegistryError> {
        self.prune_serving_impl(before).await
    }
}
