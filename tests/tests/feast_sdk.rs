//! The real Feast Python SDK (its `remote` online store) reading from an fstore edge, unchanged.
//! Needs a Python with `feast` installed, named by `FSTORE_FEAST_PYTHON` (`.ci/run` makes one);
//! without it the test says so and passes.

use fstore_tests::Stack;

const CLIENT: &str = r#"
import json, sys
from datetime import timedelta
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Bool, Float64, Int64, String

store = FeatureStore(repo_path=sys.argv[1])
customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
rfm = FeatureView(
    name="customer_rfm", entities=[customer], ttl=timedelta(days=365),
    source=FileSource(path=sys.argv[2], timestamp_field="order_ts"),
    schema=[Field(name="customer_id", dtype=Int64), Field(name="recency_days", dtype=Int64),
            Field(name="monetary_90d", dtype=Float64), Field(name="last_channel", dtype=String),
            Field(name="is_active", dtype=Bool)],
)
profile = FeatureView(
    name="customer_profile", entities=[customer], ttl=timedelta(days=0),
    source=FileSource(path=sys.argv[3], timestamp_field="updated_at"),
    schema=[Field(name="customer_id", dtype=Int64), Field(name="style_vector", dtype=Array(Float64))],
)
store.apply([customer, rfm, profile])
out = store.get_online_features(
    features=["customer_rfm:recency_days", "customer_rfm:monetary_90d", "customer_rfm:last_channel",
              "customer_rfm:is_active", "customer_profile:style_vector"],
    entity_rows=[{"customer_id": 1000}, {"customer_id": 1001}, {"customer_id": 42}],
).to_dict()
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn feast_remote_online_store_reads_an_edge() {
    let Ok(python) = std::env::var("FSTORE_FEAST_PYTHON") else {
        eprintln!("FSTORE_FEAST_PYTHON is not set: skipping the Feast SDK test (.ci/run sets it)");
        return;
    };
    let s = Stack::start(50, 100, 1 << 16).await;
    let repo = s.dir.path().join("feast_repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    std::fs::write(
        repo.join("feature_store.yaml"),
        format!(
            "project: fstore_it\nprovider: local\nregistry: {}/registry.db\nonline_store:\n  type: remote\n  path: {}\nentity_key_serialization_version: 3\n",
            repo.display(),
            s.edge_url
        ),
    )
    .expect("yaml");
    std::fs::write(repo.join("client.py"), CLIENT).expect("client");
    // Feast wants a batch source per view; the remote online store never reads it.
    let orders = s.dir.path().join("data/orders");
    let parquet = s.dir.path().join("data/customers.parquet");
    // The client blocks; keep it off the runtime that serves the edge.
    let (py, r, o, p) = (
        python.clone(),
        repo.clone(),
        orders.clone(),
        parquet.clone(),
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(py)
            .arg(r.join("client.py"))
            .arg(&r)
            .arg(&o)
            .arg(&p)
            .env("FEAST_USAGE", "False")
            .output()
    })
    .await
    .expect("join")
    .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Feast client failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .expect("client printed JSON");

    // The same lookup through fstore's own API gives the same values.
    let body = r#"{"features":["customer_rfm:recency_days","customer_rfm:monetary_90d","customer_rfm:last_channel","customer_rfm:is_active","customer_profile:style_vector"],"entities":{"customer_id":[1000,1001,42]}}"#;
    let ours: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/features", s.edge_url))
        .body(body)
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(got["customer_id"], serde_json::json!([1000, 1001, 42]));
    for (i, name) in [
        "recency_days",
        "monetary_90d",
        "last_channel",
        "is_active",
        "style_vector",
    ]
    .iter()
    .enumerate()
    {
        for row in 0..3 {
            assert_eq!(
                got[name][row], ours["results"][row]["values"][i],
                "{name} for entity row {row}"
            );
        }
    }
    assert!(
        got["recency_days"][2].is_null(),
        "an unknown customer reads as None in Feast"
    );
}
