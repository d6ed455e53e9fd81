//! Every `fstore` verb given wrong input: a clear message on stderr, a non-zero exit, no panic,
//! and nothing changed.

use std::path::Path;
use std::process::Command;

fn fstore(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fstore"))
        .args(args)
        .current_dir(dir)
        .env("FSTORE_DATABASE_URL", dir.join("reg.db"))
        .env("FSTORE_STORE_URL", dir.join("objects"))
        .env_remove("FSTORE_EDGE_URL")
        .output()
        .expect("run fstore");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "fstore panicked: {stderr}");
    (out.status.success(), stderr)
}

#[test]
fn wrong_input_to_every_verb_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();

    let (ok, err) = fstore(d, &["apply", "-f", "missing.yaml"]);
    assert!(!ok && err.contains("missing.yaml"), "{err}");

    std::fs::write(d.join("bad.yaml"), "entities:\n  - name: customer\n    join_keys: [{name: id, type: int64}]\n    colour: blue\n").expect("write");
    let (ok, err) = fstore(d, &["apply", "-f", "bad.yaml"]);
    assert!(
        !ok && err.contains("line 4") && err.contains("colour"),
        "{err}"
    );

    std::fs::write(
        d.join("dangling.yaml"),
        "feature_services:\n  - name: s\n    features: [v:f]\n",
    )
    .expect("write");
    let (ok, err) = fstore(d, &["apply", "-f", "dangling.yaml", "--dry-run"]);
    assert!(
        !ok && err.contains("line 3") && err.contains("feature view `v`"),
        "{err}"
    );

    let (ok, err) = fstore(d, &["materialize"]);
    assert!(!ok && err.contains("no feature views"), "{err}");
    let (ok, err) = fstore(d, &["materialize", "--view", "nope"]);
    assert!(!ok && err.contains("nope"), "{err}");

    let (ok, err) = fstore(d, &["get", "--service", "s", "--entity", "customer_id"]);
    assert!(!ok && err.contains("join_key=value"), "{err}");
    let (ok, err) = fstore(
        d,
        &[
            "get",
            "--edge",
            "http://127.0.0.1:1",
            "--service",
            "s",
            "--entity",
            "customer_id=1",
        ],
    );
    assert!(!ok && err.contains("calling the edge"), "{err}");

    let (ok, err) = fstore(
        d,
        &["serve", "edge", "--addr", "not-an-address", "--auth", "off"],
    );
    assert!(!ok && err.contains("binding"), "{err}");
    let (ok, err) = fstore(d, &["serve", "edge", "--addr", "127.0.0.1:0"]);
    assert!(!ok && err.contains("--auth-public-key"), "{err}");
    let (ok, err) = fstore(d, &["serve", "edge", "--auth", "maybe"]);
    assert!(!ok && err.contains("maybe"), "{err}");
    let (ok, err) = fstore(d, &["token", "create", "--role", "nope", "--name", "x"]);
    assert!(!ok && err.contains("role `nope` does not exist"), "{err}");
    let (ok, err) = fstore(d, &["role", "create", "r", "--permission", "fly"]);
    assert!(!ok && err.contains("unknown action `fly`"), "{err}");
    let (ok, err) = fstore(d, &["--token", "nope", "versions"]);
    assert!(!ok && err.contains("not valid"), "{err}");
    let (ok, err) = fstore(d, &["serve", "edge", "--poll-interval", "soon"]);
    assert!(!ok && err.contains("soon"), "{err}");
    for bad in ["4/4", "0,1", "all-of-them", "2-1/4"] {
        let (ok, err) = fstore(d, &["serve", "edge", "--auth", "off", "--shards", bad]);
        assert!(!ok && err.contains("shards"), "{bad}: {err}");
    }
    // The router: edges required and real URLs, sane settings.
    let (ok, err) = fstore(d, &["serve", "router"]);
    assert!(!ok && err.contains("--edge"), "{err}");
    let (ok, err) = fstore(d, &["serve", "router", "--edge", "edge-1:6566"]);
    assert!(!ok && err.contains("not an http"), "{err}");
    let (ok, err) = fstore(
        d,
        &["serve", "router", "--edge", "http://e:1", "--attempts", "0"],
    );
    assert!(!ok && err.contains("attempts"), "{err}");
    let (ok, err) = fstore(
        d,
        &["serve", "router", "--edge", "http://e:1", "--timeout", "0s"],
    );
    assert!(!ok && err.contains("--timeout"), "{err}");
    let (ok, err) = fstore(d, &["serve", "router", "--edge", "http://e:1", "--key", ""]);
    assert!(!ok && err.contains("key"), "{err}");
    let (ok, err) = fstore(
        d,
        &[
            "serve",
            "router",
            "--edge",
            "http://e:1",
            "--addr",
            "nowhere",
        ],
    );
    assert!(!ok && err.contains("binding"), "{err}");
    let (ok, err) = fstore(
        d,
        &[
            "--store",
            "ftp://x/y",
            "serve",
            "edge",
            "--addr",
            "127.0.0.1:0",
            "--auth",
            "off",
        ],
    );
    assert!(!ok && err.contains("unsupported scheme"), "{err}");
    let (ok, err) = fstore(
        d,
        &[
            "--database-url",
            "mysql://x",
            "serve",
            "control-plane",
            "--addr",
            "127.0.0.1:0",
        ],
    );
    assert!(!ok && err.contains("mysql"), "{err}");

    // Training sets: missing flags, unknown service, a missing or unreadable entities file.
    let (ok, err) = fstore(d, &["historical", "--service", "s", "--out", "t.parquet"]);
    assert!(!ok && err.contains("--entities"), "{err}");
    std::fs::write(
        d.join("rows.csv"),
        "customer_id,event_timestamp\n1,2026-01-01T00:00:00Z\n",
    )
    .expect("write");
    let (ok, err) = fstore(
        d,
        &[
            "historical",
            "--entities",
            "rows.csv",
            "--service",
            "nope",
            "--out",
            "t.parquet",
        ],
    );
    assert!(!ok && err.contains("nope"), "{err}");
    let (ok, err) = fstore(
        d,
        &["historical", "--entities", "rows.csv", "--out", "t.parquet"],
    );
    assert!(!ok && err.contains("feature_service or features"), "{err}");
    let (ok, err) = fstore(
        d,
        &[
            "historical",
            "--entities",
            "rows.csv",
            "--features",
            "not-a-ref",
            "--out",
            "t.parquet",
        ],
    );
    assert!(!ok && err.contains("not-a-ref"), "{err}");
    let (ok, err) = fstore(
        d,
        &[
            "historical",
            "--entities",
            "missing.parquet",
            "--features",
            "v:f",
            "--out",
            "t.parquet",
        ],
    );
    assert!(!ok && err.contains("missing.parquet"), "{err}");
    let (ok, err) = fstore(
        d,
        &[
            "historical",
            "--entities",
            "bad.yaml",
            "--features",
            "v:f",
            "--out",
            "t.parquet",
        ],
    );
    assert!(!ok && err.contains("Parquet"), "{err}");
    assert!(
        !d.join("t.parquet").exists(),
        "a failed request wrote its output"
    );

    let (ok, err) = fstore(d, &["quickstart", "--customers", "many"]);
    assert!(!ok && err.contains("many"), "{err}");
    let (ok, err) = fstore(d, &["frobnicate"]);
    assert!(!ok && err.contains("frobnicate"), "{err}");

    // Nothing was applied by any of the failures.
    std::fs::write(
        d.join("ok.yaml"),
        "entities:\n  - name: customer\n    join_keys: [{name: id, type: int64}]\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_fstore"))
        .args(["apply", "-f", "ok.yaml", "--dry-run"])
        .current_dir(d)
        .env("FSTORE_DATABASE_URL", d.join("reg.db"))
        .env("FSTORE_STORE_URL", d.join("objects"))
        .output()
        .expect("run");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("1 to create, 0 to update, 0 to delete, 0 unchanged")
    );
}
