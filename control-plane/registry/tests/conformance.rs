//! Runs the one conformance suite against every backend, each on a fresh, empty database.

use std::time::{SystemTime, UNIX_EPOCH};

use fstore_registry::{Registry, RegistryError, SearchQuery, conformance, open};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, SqliteConnection};

/// How many documents the catalog holds after the conformance suite.
async fn catalog_size(reg: &dyn Registry) -> usize {
    reg.search(&SearchQuery::default())
        .await
        .expect("search")
        .total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A parent directory that does not exist yet, as with a first `.fstore/registry.db`.
    let path = dir.path().join("nested/.fstore/registry.db");
    let reg = open(path.to_str().expect("utf-8 temp path"))
        .await
        .expect("open sqlite registry");
    assert_eq!(reg.backend(), "sqlite");
    conformance::run_all(reg.as_ref()).await;
    drop(reg);

    // The data is in the file: reopening (which re-runs the migrator) sees it.
    let reg = open(&format!("sqlite://{}", path.display()))
        .await
        .expect("reopen sqlite registry");
    assert_eq!(reg.list_snapshots(None).await.expect("list").len(), 3);
    let docs = catalog_size(reg.as_ref()).await;
    assert!(docs > 0);
    drop(reg);

    // WAL is what lets the CLI read while the control plane writes; it is a property of the
    // file, so a plain connection must see it.
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("plain sqlite connection");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .expect("journal mode");
    assert_eq!(mode, "wal");

    // The FTS5 index is kept in step with the catalog.
    let counts: (i64, i64) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM catalog), (SELECT COUNT(*) FROM catalog_fts)")
            .fetch_one(&mut conn)
            .await
            .expect("counts");
    assert_eq!(counts, (docs as i64, docs as i64));

    // A registry with definitions but no catalog (one migrated from before the catalog)
    // gets it built when it is opened.
    conn.execute("DELETE FROM catalog; DELETE FROM catalog_fts;")
        .await
        .expect("empty the catalog");
    conn.close().await.expect("close");
    let reg = open(&format!("sqlite://{}", path.display()))
        .await
        .expect("reopen sqlite registry");
    assert_eq!(catalog_size(reg.as_ref()).await, docs);
    let hits = reg
        .search(&SearchQuery {
            q: "spend month".into(),
            ..SearchQuery::default()
        })
        .await
        .expect("search");
    assert_eq!(hits.hits[0].name, "customer_spend:spend_30d", "and indexed");
}

#[tokio::test]
async fn sqlite_in_memory() {
    let reg = open("sqlite::memory:")
        .await
        .expect("open in-memory registry");
    conformance::run_all(reg.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres() {
    if std::env::var("FSTORE_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        eprintln!("FSTORE_SKIP_POSTGRES=1: skipping the PostgreSQL conformance test");
        return;
    }
    let admin_url = std::env::var("FSTORE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    let db = format!("fstore_conf_{}_{nanos}", std::process::id());

    let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!(
            "cannot connect to PostgreSQL at {admin_url} ({e}); start it, point \
             FSTORE_TEST_POSTGRES_URL elsewhere, or set FSTORE_SKIP_POSTGRES=1"
        )
    });
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
        .await
        .expect("create test database");

    let result = tokio::spawn({
        let url = with_database(&admin_url, &db);
        async move {
            let reg = open(&url).await.expect("open postgres registry");
            assert_eq!(reg.backend(), "postgres");
            conformance::run_all(reg.as_ref()).await;
            // A second open of a migrated database must be a no-op, as when several control
            // plane replicas start together.
            let again = open(&url).await.expect("reopen postgres registry");
            assert_eq!(again.list_snapshots(None).await.expect("list").len(), 3);
            let docs = catalog_size(again.as_ref()).await;
            assert!(docs > 0);
            drop((reg, again));

            // Replicas opening together race to create the full-text index; all succeed.
            let mut conn = PgConnection::connect(&url).await.expect("plain connection");
            conn.execute("DROP INDEX catalog_body_fts")
                .await
                .expect("drop the index");
            let opened = futures::future::join_all((0..4).map(|_| open(&url))).await;
            for r in opened {
                r.expect("concurrent open");
            }
            let indexed: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'catalog_body_fts'",
            )
            .fetch_one(&mut conn)
            .await
            .expect("index lookup");
            assert_eq!(indexed, 1, "the GIN index exists");
            // A registry with definitions but no catalog gets it built when opened.
            conn.execute("DELETE FROM catalog")
                .await
                .expect("empty the catalog");
            conn.close().await.expect("close");
            let reg = open(&url).await.expect("reopen postgres registry");
            assert_eq!(catalog_size(reg.as_ref()).await, docs);
        }
    })
    .await;

    // Dropped whatever happened, so failed runs do not pile up databases.
    admin
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
        )))
        .await
        .expect("drop test database");
    admin.close().await.expect("close admin connection");
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// `url` with its database (path) replaced by `db`, keeping any query string.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

#[tokio::test]
async fn bad_urls_are_errors_not_panics() {
    let Err(err) = open("mysql://user:hunter2@x/db").await else {
        panic!("mysql must be refused");
    };
    assert!(matches!(err, RegistryError::BadUrl(_)), "got {err:?}");
    let msg = err.to_string();
    assert!(msg.contains("mysql"), "names the scheme: {msg}");
    assert!(!msg.contains("hunter2"), "never echoes a password: {msg}");

    assert!(matches!(open("").await, Err(RegistryError::BadUrl(_))));
    assert!(matches!(
        open("sqlite://x.db?mode=ro").await,
        Err(RegistryError::BadUrl(_))
    ));
}
