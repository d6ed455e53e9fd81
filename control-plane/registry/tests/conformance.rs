//! Runs the one conformance suite against every backend, each on a fresh, empty database.

use std::time::{SystemTime, UNIX_EPOCH};

use fstore_registry::{RegistryError, conformance, open};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, SqliteConnection};

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
