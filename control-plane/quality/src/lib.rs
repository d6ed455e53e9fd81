//! Feature quality: per-feature statistics of a snapshot, the validation rules declared in
//! `features.yaml` evaluated against them, drift tests against a baseline, and the rolling band
//! that flags serving-side anomalies. Pure computation: the control plane stores the results
//! and raises the alerts.

mod drift;
mod profile;
mod rules;

pub use drift::{
    Band, Distribution, Distributions, DriftResult, band, drift, drift_checks, js, ks,
    psi_categorical, psi_from_proportions, psi_numeric,
};
pub use profile::{
    DistributionBuilder, FeatureStats, Histogram, Profile, Profiler, Quantiles, TopValue, ViewStats,
};
pub use rules::{CheckResult, FeatureChange, RunFacts, StatsChange, compare, evaluate};

use fstore_snapshot::{KeyPart, KeyType, decode_key};

/// Why a snapshot cannot be profiled.
#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    #[error("{0}")]
    Invalid(String),
}

/// An encoded entity key as people write it: `42`, or `42,eu` for a composite key; the bytes
/// in hex when they do not decode (which only a corrupt snapshot produces).
pub fn render_key(types: &[KeyType], bytes: &[u8]) -> String {
    match decode_key(types, bytes) {
        Some(parts) => parts
            .iter()
            .map(|p| match p {
                KeyPart::Int64(v) => v.to_string(),
                KeyPart::String(s) => (*s).to_string(),
            })
            .collect::<Vec<_>>()
            .join(","),
        None => bytes.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fstore_snapshot::KeyBuf;

    #[test]
    fn keys_render_as_written() {
        let types = [KeyType::Int64, KeyType::String];
        let mut k = KeyBuf::new();
        let bytes = k
            .encode(&types, &[KeyPart::Int64(42), KeyPart::String("eu")])
            .expect("encodes")
            .to_vec();
        assert_eq!(render_key(&types, &bytes), "42,eu");
        assert_eq!(render_key(&[KeyType::Int64], &[1, 2]), "0102");
    }
}
