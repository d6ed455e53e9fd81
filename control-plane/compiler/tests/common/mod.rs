//! Inputs shared by the test files.
#![allow(dead_code)]

use fstore_snapshot::FeatureType;

pub fn available() -> Vec<(String, FeatureType)> {
    [
        ("recency_days", FeatureType::Int64),
        ("frequency_90d", FeatureType::Int64),
        ("monetary_90d", FeatureType::Float64),
        ("country", FeatureType::String),
        ("is_member", FeatureType::Bool),
        ("last_seen", FeatureType::Timestamp),
        ("embedding", FeatureType::ListFloat64),
        ("Mixed Case", FeatureType::Int64),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect()
}

pub const SEGMENT: &str = "CASE WHEN recency_days <= 30 AND frequency_90d >= 5 THEN 'champion' \
     WHEN monetary_90d > 500 THEN 'big_spender' ELSE 'other' END";
