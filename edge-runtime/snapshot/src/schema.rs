use serde::{Deserialize, Serialize};

use crate::SnapshotError;

/// The type of a feature value. The names are the ones written in `features.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FeatureType {
    #[serde(rename = "int64")]
    Int64,
    #[serde(rename = "float64")]
    Float64,
    #[serde(rename = "string")]
    String,
    #[serde(rename = "bool")]
    Bool,
    #[serde(rename = "timestamp")]
    Timestamp,
    #[serde(rename = "list<float64>")]
    ListFloat64,
}

impl FeatureType {
    pub const ALL: [FeatureType; 6] = [
        FeatureType::Int64,
        FeatureType::Float64,
        FeatureType::String,
        FeatureType::Bool,
        FeatureType::Timestamp,
        FeatureType::ListFloat64,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FeatureType::Int64 => "int64",
            FeatureType::Float64 => "float64",
            FeatureType::String => "string",
            FeatureType::Bool => "bool",
            FeatureType::Timestamp => "timestamp",
            FeatureType::ListFloat64 => "list<float64>",
        }
    }
}

impl std::fmt::Display for FeatureType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The type of one entity join-key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Int64,
    String,
}

impl KeyType {
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Int64 => "int64",
            KeyType::String => "string",
        }
    }
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A named, typed column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field<T> {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: T,
}

/// What a snapshot holds: which view, which version, its key columns and its features in the
/// order of the row slots. Stored as JSON inside the snapshot so a snapshot is self-describing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSchema {
    pub view: String,
    pub version: u64,
    pub keys: Vec<Field<KeyType>>,
    pub features: Vec<Field<FeatureType>>,
    /// Maximum age of a row at serving time, in seconds; 0 means unbounded.
    pub ttl_seconds: u64,
    /// When the snapshot was materialized, microseconds since the Unix epoch.
    pub created_at_micros: i64,
    /// `Some(v)` marks a delta: it holds only the entities that changed since the slot's last
    /// snapshot and applies on top of the full snapshot of version `v` of the same view (the
    /// chain's root; every delta of a chain names the same base). Absent from full snapshots'
    /// JSON, so their bytes (and checksums) are what they were before deltas existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_version: Option<u64>,
    /// `Some` marks one shard of a view split by the hash of the entity key: it holds exactly
    /// the entities whose key hashes to `index` of `count` ([`crate::shard_of`]). Absent from
    /// unsharded snapshots' JSON, so their bytes are what they were before shards existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardOf>,
}

/// Which shard of how many a snapshot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShardOf {
    pub index: u32,
    pub count: u32,
}

/// The most shards a view may be split into: far more than any fleet needs, small enough that
/// a per-shard table stays trivial.
pub const MAX_SHARDS: u32 = 1024;

impl SnapshotSchema {
    pub fn validate(&self) -> Result<(), SnapshotError> {
        if self.keys.is_empty() {
            return Err(SnapshotError::Schema(
                "a snapshot needs at least one key column".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for name in self
            .keys
            .iter()
            .map(|k| &k.name)
            .chain(self.features.iter().map(|f| &f.name))
        {
            if !seen.insert(name.as_str()) {
                return Err(SnapshotError::Schema(format!(
                    "column `{name}` appears twice"
                )));
            }
        }
        // A delta is materialized after its base, from a sequence that only grows; one that
        // claims an equal or later base was built from the wrong chain.
        if let Some(base) = self.base_version
            && base >= self.version
        {
            return Err(SnapshotError::Schema(format!(
                "delta version {} must be newer than its base version {base}",
                self.version
            )));
        }
        if let Some(sh) = self.shard
            && (sh.count < 2 || sh.count > MAX_SHARDS || sh.index >= sh.count)
        {
            return Err(SnapshotError::Schema(format!(
                "shard {} of {} is not a shard (2 to {MAX_SHARDS} shards, index below the count)",
                sh.index, sh.count
            )));
        }
        Ok(())
    }

    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.features.iter().position(|f| f.name == name)
    }
}

/// `view:feature`, the unit a feature service bundles.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeatureRef {
    pub view: String,
    pub feature: String,
}

impl FeatureRef {
    /// Parses `view:feature`.
    pub fn parse(s: &str) -> Option<Self> {
        let (view, feature) = s.split_once(':')?;
        if view.is_empty() || feature.is_empty() || feature.contains(':') {
            return None;
        }
        Some(Self {
            view: view.to_string(),
            feature: feature.to_string(),
        })
    }
}

impl FeatureRef {
    /// The view the feature belongs to, without a version pin (`customer_rfm@v3` and the
    /// rollback slot `customer_rfm#41` are both `customer_rfm`). Names of served features
    /// use it, so that pinning or rolling back a view does not rename a model's inputs.
    pub fn base_view(&self) -> &str {
        base_view(&self.view)
    }

    /// The pinned definition version of `view@vN:feature`, if any; `Some(0)` or a malformed
    /// pin is reported by the caller's validation as `Err`.
    pub fn pin(&self) -> Result<Option<u64>, String> {
        view_pin(&self.view)
    }
}

/// The part of a view reference before any `@vN` pin or `#N` rollback slot.
pub fn base_view(view: &str) -> &str {
    view.split(['@', '#']).next().unwrap_or(view)
}

/// Parses the `@vN` pin of a view reference (`customer_rfm@v3` → 3).
pub fn view_pin(view: &str) -> Result<Option<u64>, String> {
    let Some((_, pin)) = view.split_once('@') else {
        return Ok(None);
    };
    let pin = pin.split('#').next().unwrap_or(pin);
    match pin.strip_prefix('v').map(str::parse::<u64>) {
        Some(Ok(n)) if n > 0 => Ok(Some(n)),
        _ => Err(format!(
            "`{view}`: a pinned view is written `view@vN` with N a definition version from 1"
        )),
    }
}

impl std::fmt::Display for FeatureRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.view, self.feature)
    }
}

impl Serialize for FeatureRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FeatureRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FeatureRef::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("`{s}` is not a `view:feature` reference"))
        })
    }
}
