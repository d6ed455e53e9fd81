use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    UpdateVersion,
};
use tokio::io::AsyncWriteExt;

use crate::{MANIFEST_FORMAT, Manifest, POINTER_KEY, Pointer, StorageError, manifest_key};

/// How many times [`Store::download`] tries (the first included) before giving up; each
/// retry resumes from the bytes already written.
pub const DOWNLOAD_ATTEMPTS: u32 = 6;

/// How one download attempt ended.
enum Fetched {
    Done,
    /// The transfer broke after it started; `tag` is the object's ETag, for the resumption.
    Broken {
        tag: Option<String>,
        error: StorageError,
    },
}

/// What a listing knows of an object, without reading it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectInfo {
    /// Relative to the store's root.
    pub key: String,
    pub size: u64,
    /// The store's version tag (an S3 ETag, a local file's inode-size-mtime tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    /// RFC 3339 UTC.
    pub last_modified: String,
}

/// An object store and the root prefix fstore owns inside it.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    root: Path,
    url: String,
    /// The directory behind a local store, so downloads can link or copy files directly.
    local_root: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish()
    }
}

/// Result of polling the live pointer.
#[derive(Debug, Clone, PartialEq)]
pub enum PointerRead {
    /// Nothing has been published yet.
    Missing,
    /// The pointer has the ETag the caller already holds.
    NotModified,
    Found {
        pointer: Pointer,
        etag: Option<String>,
    },
}

fn store_err(key: &str) -> impl FnOnce(object_store::Error) -> StorageError + '_ {
    move |source| match source {
        object_store::Error::NotFound { .. } => StorageError::NotFound(key.to_string()),
        object_store::Error::AlreadyExists { .. } => StorageError::AlreadyExists(key.to_string()),
        source => StorageError::Store {
            key: key.to_string(),
            source,
        },
    }
}

/// Applies `key = value` options to a cloud store builder; each cloud has its own key type,
/// parsed from object_store's option names.
fn configure<B, K>(
    mut builder: B,
    options: &[(&str, &str)],
    set: impl Fn(B, K, &str) -> B,
) -> Result<B, String>
where
    K: std::str::FromStr<Err = object_store::Error>,
{
    for (k, v) in options {
        let key = k.parse::<K>().map_err(|e| e.to_string())?;
        builder = set(builder, key, v);
    }
    Ok(builder)
}

impl Store {
    /// Opens a store from a URL: a plain path or `file://` URL (a local directory, created if
    /// missing), `s3://bucket/prefix`, `gs://bucket/prefix` or `az://container/prefix`. Cloud
    /// credentials, region and endpoint come from the usual environment variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `GOOGLE_*`, `AZURE_*`).
    pub fn from_url(url: &str) -> Result<Self, StorageError> {
        Self::from_url_opts(url, &[])
    }

    /// Like [`Store::from_url`], with explicit options on top of the environment, named as
    /// object_store's config keys (`aws_endpoint`, `aws_access_key_id`, `aws_allow_http`, …).
    pub fn from_url_opts(url: &str, options: &[(&str, &str)]) -> Result<Self, StorageError> {
        let bad = |reason: String| StorageError::BadUrl {
            url: url.to_string(),
            reason,
        };
        let (inner, root): (Arc<dyn ObjectStore>, Path) = if let Some(rest) =
            url.split_once("://").map(|(scheme, _)| scheme)
        {
            let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
            let prefix = Path::from_url_path(parsed.path()).map_err(|e| bad(e.to_string()))?;
            match rest {
                "file" => {
                    let dir = parsed
                        .to_file_path()
                        .map_err(|()| bad("not a local path".into()))?;
                    return Self::local(&dir, url);
                }
                "s3" | "s3a" => {
                    let mut b = object_store::aws::AmazonS3Builder::from_env().with_url(url);
                    let endpoint = std::env::var("AWS_ENDPOINT_URL")
                        .or_else(|_| std::env::var("AWS_ENDPOINT"))
                        .ok();
                    if endpoint
                        .as_deref()
                        .is_some_and(|e| e.starts_with("http://"))
                    {
                        b = b.with_allow_http(true);
                    }
                    b = configure(b, options, |b, k, v| b.with_config(k, v)).map_err(bad)?;
                    (Arc::new(b.build().map_err(|e| bad(e.to_string()))?), prefix)
                }
                "gs" => {
                    let b = object_store::gcp::GoogleCloudStorageBuilder::from_env().with_url(url);
                    let b = configure(b, options, |b, k, v| b.with_config(k, v)).map_err(bad)?;
                    (Arc::new(b.build().map_err(|e| bad(e.to_string()))?), prefix)
                }
                "az" | "abfs" | "abfss" | "azure" => {
                    let b = object_store::azure::MicrosoftAzureBuilder::from_env().with_url(url);
                    let b = configure(b, options, |b, k, v| b.with_config(k, v)).map_err(bad)?;
                    (Arc::new(b.build().map_err(|e| bad(e.to_string()))?), prefix)
                }
                other => {
                    return Err(bad(format!(
                        "unsupported scheme `{other}` (use a path, file://, s3://, gs:// or az://)"
                    )));
                }
            }
        } else {
            return Self::local(std::path::Path::new(url), url);
        };
        Ok(Self {
            inner,
            root,
            url: url.to_string(),
            local_root: None,
        })
    }

    fn local(dir: &std::path::Path, url: &str) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(|e| {
            StorageError::BadUrl {
                url: url.to_string(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            inner: Arc::new(fs),
            root: Path::default(),
            url: url.to_string(),
            local_root: Some(dir.to_path_buf()),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// The full object path of `key` (relative to the root).
    pub fn path(&self, key: &str) -> Path {
        key.split('/')
            .filter(|p| !p.is_empty())
            .fold(self.root.clone(), |p, part| p.clone().join(part))
    }

    /// Writes an immutable object: fails with `AlreadyExists` rather than replace one.
    pub async fn put_new(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        self.put_new_parts(key, vec![bytes]).await
    }

    /// Writes an immutable object given as consecutive parts, without joining them first.
    pub async fn put_new_parts(&self, key: &str, parts: Vec<Bytes>) -> Result<(), StorageError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.inner
            .put_opts(
                &self.path(key),
                parts.into_iter().collect::<PutPayload>(),
                opts,
            )
            .await
            .map_err(store_err(key))?;
        Ok(())
    }

    /// Writes or replaces an object that is not part of a published version (an exported
    /// training set, say), where last-writer-wins is what the caller asked for.
    pub async fn put_replace(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        self.inner
            .put_opts(
                &self.path(key),
                PutPayload::from(bytes),
                PutOptions::default(),
            )
            .await
            .map_err(store_err(key))?;
        Ok(())
    }

    pub async fn get_bytes(&self, key: &str) -> Result<Bytes, StorageError> {
        let r = self
            .inner
            .get(&self.path(key))
            .await
            .map_err(store_err(key))?;
        r.bytes().await.map_err(store_err(key))
    }

    /// Fetches an object to the local file `dest` without holding it in memory: written to
    /// `<dest>.part` beside it, then renamed, so `dest` is either absent or complete.
    /// From a local store the file is hard-linked (objects are immutable, so sharing the inode
    /// is safe) or copied. No fsync: callers verify content (snapshot checksums) before use, so
    /// a file torn by a crash is detected and fetched again rather than trusted.
    ///
    /// From a remote store a broken transfer resumes where it stopped: the next attempt asks
    /// for the rest (`Range: bytes=N-`, `If-Match` the ETag of the first response) and
    /// appends, up to [`DOWNLOAD_ATTEMPTS`] tries with doubling pauses. A `.part` left by
    /// an earlier process (an edge restarted mid-download) is resumed the same way; objects
    /// are written once, and the checksum check on load catches anything else. One process
    /// per cache directory: two would append to the same `.part`.
    pub async fn download(&self, key: &str, dest: &std::path::Path) -> Result<u64, StorageError> {
        let io = |source| StorageError::Io {
            path: dest.display().to_string(),
            source,
        };
        if let Some(root) = &self.local_root {
            let tmp = dest.with_extension(format!("part-{}", std::process::id()));
            let src = key
                .split('/')
                .filter(|p| !p.is_empty())
                .fold(root.clone(), |p, part| p.join(part));
            if !src.exists() {
                return Err(StorageError::NotFound(key.to_string()));
            }
            let (src2, tmp2) = (src.clone(), tmp.clone());
            let n = tokio::task::spawn_blocking(move || {
                let _ = std::fs::remove_file(&tmp2);
                match std::fs::hard_link(&src2, &tmp2) {
                    Ok(()) => std::fs::metadata(&tmp2).map(|m| m.len()),
                    Err(_) => std::fs::copy(&src2, &tmp2),
                }
            })
            .await
            .map_err(|e| io(std::io::Error::other(e)))?
            .map_err(io)?;
            tokio::fs::rename(&tmp, dest).await.map_err(io)?;
            return Ok(n);
        }
        let part = dest.with_extension("part");
        let path = self.path(key);
        let mut have = tokio::fs::metadata(&part).await.map_or(0, |m| m.len());
        let mut e_tag: Option<String> = None;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let failed = match self.fetch_from(&path, &part, have, e_tag.as_deref()).await {
                Ok(Fetched::Done) => break,
                Ok(Fetched::Broken { tag, error }) => {
                    e_tag = e_tag.or(tag);
                    error
                }
                Err(e @ StorageError::NotFound(_)) => return Err(e),
                Err(e) => {
                    // A stale `.part` (say, of a longer object under a reused name in a test
                    // store) makes the ranged request itself fail: start over from zero.
                    if have > 0 {
                        let _ = tokio::fs::remove_file(&part).await;
                        e_tag = None;
                    }
                    e
                }
            };
            have = tokio::fs::metadata(&part).await.map_or(0, |m| m.len());
            if attempt >= DOWNLOAD_ATTEMPTS {
                return Err(failed);
            }
            tracing::warn!(
                key,
                bytes = have,
                attempt,
                error = %failed,
                "download broken; resuming"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
        }
        let n = tokio::fs::metadata(&part).await.map_err(io)?.len();
        tokio::fs::rename(&part, dest).await.map_err(io)?;
        Ok(n)
    }

    /// One attempt of [`Store::download`]: appends the object from byte `have` on to `part`.
    /// A transfer that breaks after it started is `Broken` (what arrived stays in `part`);
    /// a request that fails outright is an error.
    async fn fetch_from(
        &self,
        path: &Path,
        part: &std::path::Path,
        have: u64,
        e_tag: Option<&str>,
    ) -> Result<Fetched, StorageError> {
        let key = path.as_ref();
        let io = |source| StorageError::Io {
            path: part.display().to_string(),
            source,
        };
        let opts = GetOptions {
            range: (have > 0).then_some(GetRange::Offset(have)),
            if_match: e_tag.map(str::to_string),
            ..Default::default()
        };
        let r = self
            .inner
            .get_opts(path, opts)
            .await
            .map_err(store_err(key))?;
        let tag = r.meta.e_tag.clone();
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(part)
            .await
            .map_err(io)?;
        if have > 0 && file.metadata().await.map_err(io)?.len() != have {
            return Err(io(std::io::Error::other("partial file changed underneath")));
        }
        // Large buffer: each tokio file write is a blocking-pool round trip.
        let mut file = tokio::io::BufWriter::with_capacity(8 << 20, file);
        let mut stream = r.into_stream();
        let mut broken = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => file.write_all(&chunk).await.map_err(io)?,
                Err(e) => {
                    broken = Some(store_err(key)(e));
                    break;
                }
            }
        }
        // What arrived is kept either way: the next attempt asks only for the rest.
        file.flush().await.map_err(io)?;
        Ok(match broken {
            None => Fetched::Done,
            Some(error) => Fetched::Broken { tag, error },
        })
    }

    /// Keys (relative to the root) under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        Ok(self
            .list_meta(prefix)
            .await?
            .into_iter()
            .map(|o| o.key)
            .collect())
    }

    /// Objects under `prefix` with their size and version tag, sorted by key. Lineage records
    /// these, so a snapshot can be traced to exactly the bytes it was computed from.
    pub async fn list_meta(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let base = self.path(prefix);
        let mut out = Vec::new();
        let mut s = self.inner.list(Some(&base));
        while let Some(meta) = s.next().await {
            let meta = meta.map_err(store_err(prefix))?;
            out.push(self.object_info(meta));
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// One object's size and version tag.
    pub async fn head(&self, key: &str) -> Result<ObjectInfo, StorageError> {
        let meta = self
            .inner
            .head(&self.path(key))
            .await
            .map_err(store_err(key))?;
        Ok(self.object_info(meta))
    }

    fn object_info(&self, meta: object_store::ObjectMeta) -> ObjectInfo {
        let root_parts = self.root.parts().count();
        let rel: Vec<String> = meta
            .location
            .parts()
            .skip(root_parts)
            .map(|p| p.as_ref().to_string())
            .collect();
        ObjectInfo {
            key: rel.join("/"),
            size: meta.size,
            e_tag: meta.e_tag,
            last_modified: meta
                .last_modified
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }

    /// Reads the live pointer; with `if_none_match`, answers `NotModified` cheaply when the
    /// pointer has not moved (a conditional GET, so polling costs one small request).
    pub async fn read_pointer(
        &self,
        if_none_match: Option<&str>,
    ) -> Result<PointerRead, StorageError> {
        let opts = GetOptions {
            if_none_match: if_none_match.map(str::to_string),
            ..Default::default()
        };
        let r = match self.inner.get_opts(&self.path(POINTER_KEY), opts).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(PointerRead::Missing),
            Err(object_store::Error::NotModified { .. }) => return Ok(PointerRead::NotModified),
            Err(e) => return Err(store_err(POINTER_KEY)(e)),
        };
        let etag = r.meta.e_tag.clone();
        let bytes = r.bytes().await.map_err(store_err(POINTER_KEY))?;
        let pointer: Pointer =
            serde_json::from_slice(&bytes).map_err(|e| StorageError::Decode {
                key: POINTER_KEY.into(),
                reason: e.to_string(),
            })?;
        Ok(PointerRead::Found { pointer, etag })
    }

    /// Reads a small mutable object unless its ETag is still `if_none_match`: None when
    /// missing or unchanged, else its bytes and new ETag.
    pub async fn get_if_changed(
        &self,
        key: &str,
        if_none_match: Option<&str>,
    ) -> Result<Option<(Bytes, Option<String>)>, StorageError> {
        let opts = GetOptions {
            if_none_match: if_none_match.map(str::to_string),
            ..Default::default()
        };
        let r = match self.inner.get_opts(&self.path(key), opts).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. } | object_store::Error::NotModified { .. }) => {
                return Ok(None);
            }
            Err(e) => return Err(store_err(key)(e)),
        };
        let etag = r.meta.e_tag.clone();
        let bytes = r.bytes().await.map_err(store_err(key))?;
        Ok(Some((bytes, etag)))
    }

    pub async fn read_manifest(&self, key: &str) -> Result<Manifest, StorageError> {
        let bytes = self.get_bytes(key).await?;
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| StorageError::Decode {
            key: key.into(),
            reason: e.to_string(),
        })?;
        if m.format != MANIFEST_FORMAT {
            return Err(StorageError::Decode {
                key: key.into(),
                reason: format!(
                    "manifest format {} is not supported (expected {MANIFEST_FORMAT})",
                    m.format
                ),
            });
        }
        Ok(m)
    }

    /// The manifest the live pointer names, if anything was published.
    pub async fn live_manifest(&self) -> Result<Option<Manifest>, StorageError> {
        match self.read_pointer(None).await? {
            PointerRead::Found { pointer, .. } => {
                Ok(Some(self.read_manifest(&pointer.manifest).await?))
            }
            _ => Ok(None),
        }
    }

    /// Publishes `manifest`: writes it as a new immutable object, then moves the live pointer
    /// to it. Every snapshot the manifest names must already exist. The pointer only moves
    /// forward: a conditional put (ETag match) where the store supports it, so two publishers
    /// cannot interleave; a store without conditional updates (a local directory) falls back
    /// to an atomic overwrite after re-checking the sequence number.
    pub async fn publish(&self, manifest: &Manifest) -> Result<(), StorageError> {
        let key = manifest_key(manifest.seq);
        let body = serde_json::to_vec_pretty(manifest).map_err(|e| StorageError::Decode {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        self.put_new(&key, Bytes::from(body)).await?;
        let pointer = Pointer {
            format: MANIFEST_FORMAT,
            seq: manifest.seq,
            manifest: key,
        };
        self.move_pointer(&pointer).await
    }

    /// Points `live.json` at an existing manifest (publish and rollback both end here).
    pub async fn move_pointer(&self, pointer: &Pointer) -> Result<(), StorageError> {
        let body = Bytes::from(
            serde_json::to_vec(pointer).map_err(|e| StorageError::Decode {
                key: POINTER_KEY.into(),
                reason: e.to_string(),
            })?,
        );
        let path = self.path(POINTER_KEY);
        for _ in 0..16 {
            let mode = match self.inner.get(&path).await {
                Err(object_store::Error::NotFound { .. }) => PutMode::Create,
                Err(e) => return Err(store_err(POINTER_KEY)(e)),
                Ok(r) => {
                    let version = UpdateVersion {
                        e_tag: r.meta.e_tag.clone(),
                        version: r.meta.version.clone(),
                    };
                    let bytes = r.bytes().await.map_err(store_err(POINTER_KEY))?;
                    // An unreadable pointer is replaced rather than blocking every publish.
                    if let Ok(cur) = serde_json::from_slice::<Pointer>(&bytes)
                        && cur.seq >= pointer.seq
                    {
                        return Err(StorageError::Stale {
                            current: cur.seq,
                            attempted: pointer.seq,
                        });
                    }
                    PutMode::Update(version)
                }
            };
            let put = self
                .inner
                .put_opts(
                    &path,
                    PutPayload::from_bytes(body.clone()),
                    PutOptions {
                        mode,
                        ..Default::default()
                    },
                )
                .await;
            match put {
                Ok(_) => return Ok(()),
                Err(
                    object_store::Error::Precondition { .. }
                    | object_store::Error::AlreadyExists { .. },
                ) => continue,
                Err(object_store::Error::NotImplemented { .. }) => {
                    // Local directories: the write is a rename, so readers still see the old or
                    // the new pointer whole; ordering was checked just above.
                    self.inner
                        .put(&path, PutPayload::from_bytes(body.clone()))
                        .await
                        .map_err(store_err(POINTER_KEY))?;
                    return Ok(());
                }
                Err(e) => return Err(store_err(POINTER_KEY)(e)),
            }
        }
        Err(StorageError::Store {
            key: POINTER_KEY.into(),
            source: object_store::Error::Generic {
                store: "fstore",
                source: "live pointer kept changing under 16 attempts".into(),
            },
        })
    }
}
