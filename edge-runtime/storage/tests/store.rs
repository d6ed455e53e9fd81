//! The publish protocol on a local directory: immutable objects, a pointer that only moves
//! forward, cheap conditional polling; and URL handling for every supported scheme.

use std::collections::BTreeMap;

use fstore_storage::{MANIFEST_FORMAT, Manifest, PointerRead, StorageError, Store, manifest_key};

fn manifest(seq: u64) -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT,
        seq,
        created_at: "2026-11-28T00:00:00Z".into(),
        views: BTreeMap::new(),
        services: BTreeMap::new(),
        on_demand: BTreeMap::new(),
        transforms: BTreeMap::new(),
    }
}

#[tokio::test]
async fn objects_are_immutable_and_the_pointer_only_moves_forward() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::from_url(&dir.path().join("objects").to_string_lossy()).expect("store");
    assert_eq!(
        store.read_pointer(None).await.expect("read"),
        PointerRead::Missing
    );
    assert!(store.live_manifest().await.expect("live").is_none());

    store
        .put_new("snapshots/v/1.fss", b"one".to_vec().into())
        .await
        .expect("first write");
    let again = store
        .put_new("snapshots/v/1.fss", b"two".to_vec().into())
        .await;
    assert!(
        matches!(again, Err(StorageError::AlreadyExists(_))),
        "{again:?}"
    );
    assert_eq!(
        &store.get_bytes("snapshots/v/1.fss").await.expect("get")[..],
        b"one"
    );

    store.publish(&manifest(1)).await.expect("publish 1");
    let PointerRead::Found { pointer, etag } = store.read_pointer(None).await.expect("read") else {
        panic!("pointer missing after publish");
    };
    assert_eq!(
        (pointer.seq, pointer.manifest.as_str()),
        (1, manifest_key(1).as_str())
    );
    // Polling with the ETag we hold costs nothing when nothing moved.
    assert_eq!(
        store.read_pointer(etag.as_deref()).await.expect("poll"),
        PointerRead::NotModified
    );

    store.publish(&manifest(3)).await.expect("publish 3");
    assert_eq!(
        store
            .live_manifest()
            .await
            .expect("live")
            .expect("some")
            .seq,
        3
    );
    // An older publish (a slow concurrent writer) cannot move the pointer back.
    let stale = store.publish(&manifest(2)).await;
    assert!(
        matches!(
            stale,
            Err(StorageError::Stale {
                current: 3,
                attempted: 2
            })
        ),
        "{stale:?}"
    );
    assert_eq!(
        store
            .live_manifest()
            .await
            .expect("live")
            .expect("some")
            .seq,
        3
    );
    // Nor can a manifest number be reused.
    assert!(matches!(
        store.publish(&manifest(3)).await,
        Err(StorageError::AlreadyExists(_))
    ));

    assert_eq!(store.list("manifests").await.expect("list").len(), 3);
    let dest = dir.path().join("copy.fss");
    assert_eq!(
        store
            .download("snapshots/v/1.fss", &dest)
            .await
            .expect("download"),
        3
    );
    assert_eq!(std::fs::read(&dest).expect("read"), b"one");
    assert!(matches!(
        store.download("snapshots/v/9.fss", &dest).await,
        Err(StorageError::NotFound(_))
    ));
}

#[test]
fn every_supported_scheme_opens_without_network() {
    let dir = tempfile::tempdir().expect("tmp");
    let local = dir.path().join("a/b");
    Store::from_url(&local.to_string_lossy()).expect("plain path");
    assert!(local.is_dir(), "a local store's directory is created");
    Store::from_url(&format!("file://{}", dir.path().join("c").display())).expect("file URL");
    Store::from_url_opts(
        "s3://bucket/prefix",
        &[
            ("aws_access_key_id", "k"),
            ("aws_secret_access_key", "s"),
            ("aws_region", "eu-west-1"),
        ],
    )
    .expect("s3");
    Store::from_url_opts("gs://bucket/prefix", &[("google_bearer_token", "t")]).expect("gcs");
    Store::from_url_opts(
        "az://container/prefix",
        &[
            ("azure_storage_account_name", "acct"),
            ("azure_storage_account_key", "a2V5"),
        ],
    )
    .expect("azure");
    for bad in ["ftp://host/x", "s3://"] {
        assert!(
            matches!(Store::from_url(bad), Err(StorageError::BadUrl { .. })),
            "{bad}"
        );
    }
    assert!(matches!(
        Store::from_url_opts("s3://b/p", &[("no_such_option", "x")]),
        Err(StorageError::BadUrl { .. })
    ));
}
