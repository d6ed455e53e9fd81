//! One artifact, two places: every example transform (and a SQL feature) computes the same
//! values offline, in batch during materialization, and at the edge, per request, over real
//! HTTP. Also: definitions that misuse transforms are refused with errors that say where.

use std::time::Duration;

use fstore_tests::{Stack, expect_api_error};
use serde_json::{Value, json};

const CUSTOMERS: u64 = 300;

/// An on-demand view that recomputes, at the edge, what materialization stored in
/// `customer_rfm`, from the same inputs.
const RECOMPUTED: &str = r#"on_demand_views:
  - name: recomputed
    sources: [customer_rfm]
    features:
      - {name: r_score_edge, type: int64, transform: rfm_score, output: r_score}
      - {name: f_score_edge, type: int64, transform: rfm_score, output: f_score}
      - {name: m_score_edge, type: int64, transform: rfm_score, output: m_score}
      - {name: rfm_score_edge, type: int64, transform: rfm_score, output: rfm_score}
      - {name: segment_edge, type: string, transform: segment, output: segment}
      - {name: clv_edge, type: float64, transform: clv, output: clv}
      - name: value_tier_edge
        type: string
        sql: "CASE WHEN monetary_365d >= 1000 THEN 'high' WHEN monetary_365d >= 250 THEN 'mid' ELSE 'low' END"
"#;

const PAIRS: [(&str, &str); 7] = [
    ("customer_rfm:r_score", "recomputed:r_score_edge"),
    ("customer_rfm:f_score", "recomputed:f_score_edge"),
    ("customer_rfm:m_score", "recomputed:m_score_edge"),
    ("customer_rfm:rfm_score", "recomputed:rfm_score_edge"),
    ("customer_rfm:segment", "recomputed:segment_edge"),
    ("customer_rfm:clv", "recomputed:clv_edge"),
    ("customer_rfm:value_tier", "recomputed:value_tier_edge"),
];

async fn post(url: &str, body: &Value) -> Value {
    let r = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .expect("post");
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.expect("json")
}

/// Applies the quickstart's definitions plus `extra` on-demand views and waits until the edge
/// serves `probe`.
async fn apply_extra(s: &Stack, extra: &str, probe: &str) {
    let yaml = fstore_tests::test_features_yaml().replace("on_demand_views:\n", extra);
    let defs = fstore_control::ControlPlane::parse(&yaml, Some(s.dir.path())).expect("parse");
    s.cp.apply(&defs, &fstore_control::ApplyOptions::new("test"))
        .await
        .expect("apply");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/features", s.edge_url))
            .json(&json!({"features": [probe], "entities": {"customer_id": [1000]}}))
            .send()
            .await
            .expect("post");
        if r.status().is_success() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "edge never served {probe}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_and_edge_compute_the_same_values() {
    let s = Stack::start(CUSTOMERS, 10_000, 1 << 20).await;
    apply_extra(&s, RECOMPUTED, "recomputed:segment_edge").await;
    // The stored features came out of `compute-batch` at materialization; ask for them and for
    // their per-request twins in one request.
    let ids: Vec<i64> = (1000..1000 + CUSTOMERS as i64).collect();
    let features: Vec<&str> = PAIRS.iter().flat_map(|(a, b)| [*a, *b]).collect();
    let resp = post(
        &format!("{}/v1/features", s.edge_url),
        &json!({"features": features, "entities": {"customer_id": ids}}),
    )
    .await;
    let results = resp["results"].as_array().expect("results");
    assert_eq!(results.len(), CUSTOMERS as usize);
    let mut present = 0;
    let mut found = 0;
    let mut segments = std::collections::BTreeSet::new();
    for (row, r) in results.iter().enumerate() {
        // Customers with no order within the view's ttl are not in the snapshot; the
        // per-request twins would compute on nulls, which the batch never saw.
        if r["statuses"][0] == "NOT_FOUND" {
            continue;
        }
        found += 1;
        for (i, (stored, edge)) in PAIRS.iter().enumerate() {
            let (a, b) = (&r["values"][2 * i], &r["values"][2 * i + 1]);
            // Value for value: the JSON rendering of both is the shortest round-trip form, so
            // equal text means equal bits.
            assert_eq!(
                a,
                b,
                "customer {}: {stored} vs {edge} in {r} (first error: {})",
                1000 + row,
                resp["errors"][0]
            );
            let status = &r["statuses"][2 * i + 1];
            assert!(
                status == "PRESENT" || status == "NULL_VALUE",
                "customer {}: {edge} has status {status}",
                1000 + row
            );
            if status == "PRESENT" {
                present += 1;
            }
        }
        segments.insert(r["values"][8].to_string());
    }
    // Not a comparison of nulls: nearly every value is present and segments vary.
    assert!(found > CUSTOMERS as usize / 2, "{found}");
    assert!(present > found * PAIRS.len() * 9 / 10, "{present}");
    assert!(segments.len() >= 4, "{segments:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_time_offer_matches_the_batch_export() {
    let s = Stack::start(CUSTOMERS, 10_000, 1 << 20).await;
    let ids: Vec<i64> = (1000..1100).collect();
    let carts: Vec<f64> = ids.iter().map(|i| (i % 37) as f64 * 7.5).collect();
    let channels: Vec<&str> = ids
        .iter()
        .map(|i| ["web", "mobile", "store"][(*i % 3) as usize])
        .collect();
    let resp = post(
        &format!("{}/v1/features", s.edge_url),
        &json!({
            "features": ["customer_rfm:segment", "customer_rfm:clv", "checkout_offer:offer", "checkout_offer:discount_pct"],
            "entities": {"customer_id": ids},
            "request_context": {"cart_value": carts, "channel": channels},
        }),
    )
    .await;
    // Only customers in the snapshot have a segment to compare.
    let all = resp["results"].as_array().expect("results");
    let keep: Vec<usize> = (0..all.len())
        .filter(|&i| all[i]["values"][0].is_string())
        .collect();
    assert!(keep.len() > 50, "{} of 100 customers found", keep.len());
    let results: Vec<&serde_json::Value> = keep.iter().map(|&i| &all[i]).collect();
    let ids: Vec<i64> = keep.iter().map(|&i| ids[i]).collect();
    let carts: Vec<f64> = keep.iter().map(|&i| carts[i]).collect();
    let channels: Vec<&str> = keep.iter().map(|&i| channels[i]).collect();

    // The same component, run the offline way: one `compute-batch` call over every row.
    let host = fstore_wasm_host::Host::new(fstore_wasm_host::HostConfig::default()).expect("host");
    let bytes = std::fs::read(s.dir.path().join("transforms/next_offer.wasm")).expect("wasm");
    let t = host
        .load(&bytes, &[], fstore_wasm_host::Limits::default())
        .expect("load");
    use fstore_wasm_host::{Column, ColumnData};
    let segment: Vec<String> = results
        .iter()
        .map(|r| r["values"][0].as_str().unwrap_or_default().to_string())
        .collect();
    let clv: Vec<f64> = results
        .iter()
        .map(|r| r["values"][1].as_f64().unwrap_or_default())
        .collect();
    let col = |data| Column {
        data,
        validity: Vec::new(),
    };
    let out = t
        .call_batch(
            ids.len() as u32,
            &[
                col(ColumnData::String(segment)),
                col(ColumnData::Float64(clv)),
                col(ColumnData::Float64(carts.clone())),
                col(ColumnData::String(
                    channels.iter().map(|c| c.to_string()).collect(),
                )),
            ],
        )
        .expect("batch");
    let (ColumnData::String(offers), ColumnData::Float64(discounts)) = (&out[0].data, &out[1].data)
    else {
        panic!("next_offer outputs a string and a float64")
    };
    let mut kinds = std::collections::BTreeSet::new();
    for (i, r) in results.iter().enumerate() {
        assert!(
            r["values"][0].is_string(),
            "customer {} has a segment",
            ids[i]
        );
        assert_eq!(r["values"][2], json!(offers[i]), "customer {}", ids[i]);
        assert_eq!(r["values"][3], json!(discounts[i]), "customer {}", ids[i]);
        kinds.insert(offers[i].clone());
    }
    assert!(kinds.len() >= 2, "offers do not vary: {kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misused_transforms_are_refused_with_their_place() {
    let s = Stack::start(50, 10_000, 1 << 20).await;
    let c = reqwest::Client::new();
    // The REST API resolves relative paths against the server's directory, so use absolute.
    let base = fstore_tests::absolute_features_yaml(s.dir.path());
    let cases: [(&str, String, &str); 7] = [
        (
            "missing component",
            base.replace("transforms/clv.wasm", "transforms/nope.wasm"),
            "transforms.clv.component",
        ),
        (
            "not a component",
            base.replace("transforms/clv.wasm", "data/customers.parquet"),
            "transforms.clv.component",
        ),
        (
            "config the component rejects",
            base.replace("margin: \"0.3\"", "margin: \"lots\""),
            "transforms.clv.component",
        ),
        (
            "output the component does not have",
            base.replace(
                "{name: clv, type: float64, transform: clv,",
                "{name: clv, type: float64, transform: clv, output: lifetime,",
            ),
            "feature_views.customer_rfm.features.clv",
        ),
        (
            "output of the wrong type",
            base.replace(
                "{name: clv, type: float64, transform: clv,",
                "{name: clv, type: int64, transform: clv,",
            ),
            "feature_views.customer_rfm.features.clv",
        ),
        (
            "input of another type than the transform reads",
            base.replace(
                "{name: tenure_months, type: int64,",
                "{name: tenure_months, type: float64,",
            ),
            "feature_views.customer_rfm.features.segment",
        ),
        (
            "SQL that does not type-check",
            base.replace(
                "WHEN monetary_365d >= 250 THEN 'mid'",
                "WHEN last_channel >= 250 THEN 'mid'",
            ),
            "feature_views.customer_rfm.features.value_tier",
        ),
    ];
    for (what, yaml, key) in cases {
        assert_ne!(yaml, base, "{what}: the replacement did not apply");
        let r = c
            .post(format!("{}/v1/apply?dry_run=true", s.control_url))
            .body(yaml)
            .send()
            .await
            .expect("post");
        let status = r.status().as_u16();
        let v: Value = r.json().await.expect("json");
        assert_eq!(status, 400, "{what}: {v}");
        assert_eq!(v["error"]["code"], "invalid_definitions", "{what}: {v}");
        let details = v["error"]["details"].as_array().expect("details");
        assert!(
            details.iter().any(|d| d["key"] == key),
            "{what}: expected key {key} in {v}"
        );
    }
    // A wrong request field type at the edge is the caller's mistake.
    let r = c
        .post(format!("{}/v1/features", s.edge_url))
        .json(&json!({
            "features": ["checkout_offer:offer"],
            "entities": {"customer_id": [1000]},
            "request_context": {"cart_value": "a lot"},
        }))
        .send()
        .await
        .expect("post");
    expect_api_error(r, 400).await;
    // Nothing above changed what is applied: a dry run of the real file plans nothing.
    let r = c
        .post(format!("{}/v1/apply?dry_run=true", s.control_url))
        .body(base)
        .send()
        .await
        .expect("post");
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        v["plan"]["changes"].as_array().map(Vec::len),
        Some(0),
        "{v}"
    );
}
