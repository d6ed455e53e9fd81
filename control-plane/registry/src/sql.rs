//! The one [`Registry`] implementation, shared by SQLite and PostgreSQL through sqlx's Any
//! driver (see the crate docs for why one implementation suffices).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Executor, Row};

use crate::target::{Target, sqlite_file_url};
use crate::{
    ApplyOutcome, Definitions, ObjectKind, ObjectVersion, Registry, RegistryError, SnapshotRecord,
    StoredObject,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a SQLite writer waits for another writer (possibly another process, e.g. the CLI
/// while the control plane runs) before giving up; applies are short, so this is generous.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;

/// SQLite allows one writer at a time whatever the pool size, so a few connections are enough
/// for concurrent readers without piling up writers on the busy timeout.
const SQLITE_FILE_CONNECTIONS: u32 = 4;

const POSTGRES_CONNECTIONS: u32 = 10;

pub(crate) struct SqlRegistry {
    pool: AnyPool,
    backend: &'static str,
}

fn db(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> RegistryError {
    let context = context.into();
    move |source| RegistryError::Database { context, source }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
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
        Ok(Self {
            pool,
            backend: target.backend(),
        })
    }
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
        let rows = sqlx::query("SELECT kind, name, spec FROM objects")
            .fetch_all(&self.pool)
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
        let locked = sqlx::query("UPDATE apply_lock SET generation = generation + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await
            .map_err(db("taking the apply lock"))?
            .rows_affected();
        if locked != 1 {
            return Err(RegistryError::Corrupt(
                "the apply_lock row is missing".into(),
            ));
        }

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
        for (kind, name, spec) in wanted {
            let text = serde_json::to_string(&spec).map_err(|e| {
                RegistryError::Invalid(format!("{kind} `{name}` does not serialise: {e}"))
            })?;
            match current.remove(&(kind, name.clone())) {
                Some((_, Some(old))) if old == spec => {}
                Some((version, _)) => {
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
                    out.created.push((kind, name));
                }
            }
        }

        for ((kind, name), (version, _)) in current {
            sqlx::query("DELETE FROM objects WHERE kind = $1 AND name = $2")
                .bind(kind.as_str())
                .bind(&name)
                .execute(&mut *tx)
                .await
                .map_err(db(format!("deleting {kind} `{name}`")))?;
            let version = next_version(version, kind, &name)?;
            entry.write(&mut tx, kind, &name, version, None).await?;
            out.deleted.push((kind, name));
        }

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
        // One statement, so the increment and the read cannot be split by another caller on
        // either database, and no transaction is held open across round trips. CASE rather
        // than GREATEST/MAX: the two dialects spell the two-argument maximum differently.
        let value: i64 = sqlx::query_scalar(
            "INSERT INTO counters (name, current_value) VALUES ($1, $2 + 1) \
             ON CONFLICT (name) DO UPDATE SET current_value = CASE \
             WHEN counters.current_value >= $2 THEN counters.current_value + 1 ELSE $2 + 1 END \
             RETURNING current_value",
        )
        .bind(name)
        .bind(to_i64(floor, "a counter floor")?)
        .fetch_one(&self.pool)
        .await
        .map_err(db(format!("advancing counter `{name}`")))?;
        to_u64(value, "a counter value")
    }

    async fn record_snapshot(&self, s: &SnapshotRecord) -> Result<(), RegistryError> {
        let res = sqlx::query(
            "INSERT INTO snapshots (view_name, version, object_key, row_count, size_bytes, \
             checksum, manifest_seq, created_at, duration_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
        const COLUMNS: &str = "SELECT view_name, version, object_key, row_count, size_bytes, \
             checksum, manifest_seq, created_at, duration_ms FROM snapshots";
        let rows = match view {
            Some(v) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{COLUMNS} WHERE view_name = $1"
                )))
                .bind(v)
                .fetch_all(&self.pool)
                .await
            }
            None => sqlx::query(COLUMNS).fetch_all(&self.pool).await,
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
}
