//! Azure Blob Storage, through a real Azure API server (Azurite, Microsoft's emulator, from
//! npm): sources with Hive partitions read from a container, snapshots published to one, a
//! training set read from and written to one, and a past version answered from one. Needs
//! `FSTORE_AZURITE_DIR` (`.ci/run` npm-installs Azurite there); without it the test says so and
//! passes.

use fstore_tests::{AzuriteServer, fstore, quickstart_data};

#[test]
fn the_whole_offline_path_on_azure_blob_storage() {
    let Some(az) = AzuriteServer::start("fstore") else {
        eprintln!("FSTORE_AZURITE_DIR is not set: skipping the Azure test (.ci/run sets it)");
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    quickstart_data(dir, 100);
    // Every data file (365 daily order partitions, CRM records, entity rows) goes to the
    // container; the local copies are removed so nothing can be read from disk by mistake.
    az.upload("fstore", &dir.join("data"), "lake");
    std::fs::remove_dir_all(dir.join("data")).expect("rm data");
    let yaml = fstore_tests::test_features_yaml().replace("path: data/", "path: az://fstore/lake/");
    std::fs::write(dir.join("features.yaml"), yaml).expect("yaml");

    let mut env: Vec<(&str, String)> = az.env();
    env.push((
        "FSTORE_DATABASE_URL",
        dir.join("registry.db").display().to_string(),
    ));
    env.push(("FSTORE_STORE_URL", "az://fstore/published".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let (ok, _, err) = fstore(&["apply", "-f", "features.yaml"], &env, dir);
    assert!(ok, "apply: {err}");
    let (ok, out, err) = fstore(&["materialize"], &env, dir);
    assert!(ok, "materialize: {err}");
    assert!(out.contains("customer_rfm: version 1"), "{out}");
    // 365 daily partitions of orders were listed and read from the container.
    assert!(
        out.contains("365 files") || out.contains("rows read"),
        "{out}"
    );

    let (ok, out, err) = fstore(
        &[
            "historical",
            "--entities",
            "az://fstore/lake/training_entities.parquet",
            "--service",
            "segmentation_v1",
            "--out",
            "az://fstore/out/train.parquet",
        ],
        &env,
        dir,
    );
    assert!(ok, "historical: {err}");
    assert!(out.contains("wrote 200 rows"), "{out}");

    // The published version answers straight from the container, as an edge would.
    let (ok, out, err) = fstore(
        &[
            "get",
            "--version",
            "1",
            "--service",
            "segmentation_v1",
            "--entity",
            "customer_id=1000",
        ],
        &env,
        dir,
    );
    assert!(ok, "get --version: {err}");
    assert!(out.contains("\"customer_id\": 1000"), "{out}");
    assert!(out.contains("PRESENT"), "{out}");

    // A source path in the container that matches nothing is a clear error, not a crash.
    std::fs::write(
        dir.join("features.yaml"),
        fstore_tests::test_features_yaml()
            .replace("path: data/orders/", "path: az://fstore/nothing-here/"),
    )
    .expect("yaml");
    // Moving a source is a breaking change its services read: refused unless forced.
    let (ok, _, err) = fstore(&["apply", "-f", "features.yaml"], &env, dir);
    assert!(!ok && err.contains("breaking changes"), "apply: {err}");
    let (ok, _, err) = fstore(&["apply", "-f", "features.yaml", "--force"], &env, dir);
    assert!(ok, "apply: {err}");
    let (ok, _, err) = fstore(&["materialize", "--view", "customer_rfm"], &env, dir);
    assert!(!ok && err.contains("nothing-here"), "{err}");
}
