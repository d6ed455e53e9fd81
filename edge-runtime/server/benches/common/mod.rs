//! The catalog and request bodies the lookup benchmarks share: 100,000 customers × 16
//! features (the testkit's `customer_rfm`), served whole as `segmentation_v1`.

use std::collections::BTreeMap;
use std::sync::Arc;

use fstore_edge::{Catalog, LoadedView};
use fstore_snapshot::testkit::{FEATURES, FIRST_ID, Rng, customer_rfm_writer};
use fstore_snapshot::{FeatureRef, Snapshot};

pub const CUSTOMERS: i64 = 100_000;

pub fn snapshot() -> Snapshot {
    let bytes = customer_rfm_writer(CUSTOMERS)
        .finish_to_vec()
        .expect("serializes");
    Snapshot::from_bytes(bytes).expect("verifies")
}

pub fn catalog() -> Catalog {
    let snap = snapshot();
    let checksum = format!("{:016x}", snap.checksum());
    let view = Arc::new(LoadedView::new(snap, checksum, None));
    let mut services = BTreeMap::new();
    services.insert(
        "segmentation_v1".to_string(),
        FEATURES
            .iter()
            .map(|(n, _)| FeatureRef {
                view: "customer_rfm".into(),
                feature: (*n).into(),
            })
            .collect::<Vec<_>>(),
    );
    let c = Catalog::new(1, vec![view], &services);
    assert!(c.broken_services.is_empty(), "{:?}", c.broken_services);
    c
}

/// 256 request bodies of `per_request` random existing customers each.
pub fn bodies(per_request: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(7);
    (0..256)
        .map(|_| {
            let ids: Vec<String> = (0..per_request)
                .map(|_| (FIRST_ID + rng.below(CUSTOMERS as u64) as i64).to_string())
                .collect();
            format!(
                r#"{{"feature_service":"segmentation_v1","entities":{{"customer_id":[{}]}}}}"#,
                ids.join(",")
            )
            .into_bytes()
        })
        .collect()
}
