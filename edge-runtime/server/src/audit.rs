//! The edge's audit trail of PII reads: recorded without blocking a lookup, kept on disk, and
//! shipped to the control plane in batches, so nothing is lost while the control plane is
//! down.
//!
//! A lookup only pushes its records onto an in-memory queue. A background task appends the
//! queue to `audit/spool.jsonl` under the cache directory a few times a second, then ships
//! what the control plane has not acknowledged (`audit/shipped` holds the byte offset
//! acknowledged). Each record carries this edge's sequence number (`origin_seq`, microseconds
//! since the epoch, made strictly increasing), which the control plane deduplicates on, so a
//! batch resent after a lost acknowledgement is recorded once. Records in the queue but not
//! yet on disk (at most one flush interval) are lost if the process is killed.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::EdgeError;

/// Most records one batch carries (the control plane takes up to 10,000).
const BATCH: usize = 1000;
/// Most bytes of spool one batch reads, well under the control plane's body limit.
const BATCH_BYTES: u64 = 2 << 20;
/// How often the queue is written to disk and shipped.
const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// The spool is emptied (truncated) once everything in it is acknowledged and it is larger
/// than this.
const ROTATE_BYTES: u64 = 8 << 20;

/// One audit record, as the control plane's `POST /v1/audit/batch` takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub detail: serde_json::Value,
    pub origin: String,
    pub remote: Option<String>,
    pub origin_seq: u64,
}

/// Records waiting to be written to the spool.
#[derive(Debug, Default)]
pub struct AuditQueue {
    inner: Mutex<QueueInner>,
}

#[derive(Debug, Default)]
struct QueueInner {
    last_seq: u64,
    pending: Vec<AuditEvent>,
}

/// How many entity keys one (merged) record lists.
const MERGED_KEYS: usize = 100;

/// Folds `e` into `into` when both are the same caller reading the same features of the same
/// view from the same address, masked alike: one record per caller and view per flush
/// interval, counting its requests and entities, instead of one per request.
fn merge(into: &mut AuditEvent, e: &AuditEvent) -> bool {
    let same = into.actor == e.actor
        && into.action == e.action
        && into.resource == e.resource
        && into.remote == e.remote
        && into.detail.get("features") == e.detail.get("features")
        && into.detail.get("masked") == e.detail.get("masked");
    if !same {
        return false;
    }
    let d = &mut into.detail;
    let n = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
    let requests = n(d, "requests").max(1) + n(&e.detail, "requests").max(1);
    let entities = n(d, "entities") + n(&e.detail, "entities");
    if let Some(o) = d.as_object_mut() {
        o.insert("requests".into(), requests.into());
        o.insert("entities".into(), entities.into());
        o.insert("until".into(), e.at.clone().into());
        if let (Some(serde_json::Value::Array(keys)), Some(serde_json::Value::Array(more))) =
            (o.get_mut("keys"), e.detail.get("keys"))
        {
            let room = MERGED_KEYS.saturating_sub(keys.len());
            keys.extend(more.iter().take(room).cloned());
        }
    }
    true
}

impl AuditQueue {
    /// Queues a record, numbering it, or folds it into a queued one of the same caller, view
    /// and features (see [`merge`]).
    pub fn push(&self, mut e: AuditEvent, now_micros: i64) {
        let Ok(mut q) = self.inner.lock() else { return };
        // Only the newest few are compared: the queue is emptied every flush.
        if q.pending.iter_mut().rev().take(16).any(|p| merge(p, &e)) {
            return;
        }
        let seq = u64::try_from(now_micros).unwrap_or(0).max(q.last_seq + 1);
        q.last_seq = seq;
        e.origin_seq = seq;
        q.pending.push(e);
    }

    fn take(&self) -> Vec<AuditEvent> {
        self.inner
            .lock()
            .map(|mut q| std::mem::take(&mut q.pending))
            .unwrap_or_default()
    }

    /// Records queued and not yet written to disk.
    pub fn pending(&self) -> usize {
        self.inner.lock().map(|q| q.pending.len()).unwrap_or(0)
    }
}

/// Writes queued records to the spool and ships the spool's unacknowledged part.
pub(crate) struct Shipper {
    dir: PathBuf,
    client: reqwest::Client,
    url: Option<String>,
    token: Option<String>,
    edge: String,
    failing: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EdgeError + '_ {
    move |source| EdgeError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Shipper {
    pub(crate) fn new(
        cache_dir: &Path,
        control_plane: Option<&str>,
        token: Option<String>,
        edge: String,
    ) -> Result<Self, EdgeError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| EdgeError::Config(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self {
            dir: cache_dir.join("audit"),
            client,
            url: control_plane.map(|u| format!("{}/v1/audit/batch", u.trim_end_matches('/'))),
            token,
            edge,
            failing: false,
        })
    }

    fn spool(&self) -> PathBuf {
        self.dir.join("spool.jsonl")
    }

    fn offset_file(&self) -> PathBuf {
        self.dir.join("shipped")
    }

    /// Appends `events` to the spool.
    async fn write(&self, events: &[AuditEvent]) -> Result<(), EdgeError> {
        if events.is_empty() {
            return Ok(());
        }
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(io(&self.dir))?;
        let mut text = Vec::with_capacity(events.len() * 256);
        for e in events {
            serde_json::to_writer(&mut text, e)
                .map_err(|e| EdgeError::Config(format!("an audit record: {e}")))?;
            text.push(b'\n');
        }
        let path = self.spool();
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(io(&path))?;
        f.write_all(&text).await.map_err(io(&path))?;
        f.sync_data().await.map_err(io(&path))?;
        Ok(())
    }

    async fn shipped(&self) -> u64 {
        tokio::fs::read_to_string(self.offset_file())
            .await
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    async fn set_shipped(&self, offset: u64) -> Result<(), EdgeError> {
        let tmp = self.dir.join("shipped.tmp");
        tokio::fs::write(&tmp, offset.to_string())
            .await
            .map_err(io(&tmp))?;
        let dest = self.offset_file();
        tokio::fs::rename(&tmp, &dest).await.map_err(io(&dest))
    }

    /// Ships up to [`BATCH`] unacknowledged records; returns whether more are waiting.
    async fn ship_once(&self) -> Result<bool, EdgeError> {
        let Some(url) = &self.url else {
            return Ok(false);
        };
        let path = self.spool();
        let Ok(mut f) = tokio::fs::File::open(&path).await else {
            return Ok(false);
        };
        let len = f.metadata().await.map_err(io(&path))?.len();
        let from = self.shipped().await.min(len);
        if from == len {
            if len > ROTATE_BYTES {
                // Everything is acknowledged: start a new spool. The offset goes back first,
                // so a crash in between resends (harmless) rather than skips.
                self.set_shipped(0).await?;
                tokio::fs::remove_file(&path).await.map_err(io(&path))?;
            }
            return Ok(false);
        }
        f.seek(std::io::SeekFrom::Start(from))
            .await
            .map_err(io(&path))?;
        let mut buf = Vec::new();
        f.take((len - from).min(BATCH_BYTES))
            .read_to_end(&mut buf)
            .await
            .map_err(io(&path))?;
        let mut events: Vec<serde_json::Value> = Vec::new();
        let mut consumed = 0usize;
        for line in buf.split_inclusive(|&b| b == b'\n') {
            // A line not yet ended is being written: ship it next time.
            if !line.ends_with(b"\n") || events.len() == BATCH {
                break;
            }
            consumed += line.len();
            // A line that does not parse (a torn write) is skipped, not shipped forever.
            if let Ok(v) = serde_json::from_slice(line) {
                events.push(v);
            }
        }
        if consumed == 0 {
            if buf.len() as u64 >= BATCH_BYTES {
                // One line larger than a batch can never be shipped: skip it, loudly, rather
                // than block every record behind it.
                let end = buf.iter().position(|&b| b == b'\n');
                tracing::error!("an audit record over {BATCH_BYTES} bytes was skipped");
                if let Some(e) = end {
                    self.set_shipped(from + e as u64 + 1).await?;
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        let mut req = self
            .client
            .post(url)
            .json(&serde_json::json!({"edge": self.edge, "events": events}));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| EdgeError::Config(format!("shipping audit records: {e}")))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(EdgeError::Config(format!(
                "shipping audit records: the control plane answered {status}: {body}"
            )));
        }
        self.set_shipped(from + consumed as u64).await?;
        Ok(from + (consumed as u64) < len)
    }

    pub(crate) async fn run(mut self, queue: std::sync::Arc<crate::EdgeState>) {
        loop {
            let events = queue.audit.take();
            if let Err(e) = self.write(&events).await {
                // Put them back rather than lose them; the next flush tries again.
                tracing::error!(error = %e, "could not write audit records to the spool");
                if let Ok(mut q) = queue.audit.inner.lock() {
                    let mut rest = std::mem::take(&mut q.pending);
                    q.pending = events;
                    q.pending.append(&mut rest);
                }
            }
            loop {
                match self.ship_once().await {
                    Ok(more) => {
                        if self.failing {
                            tracing::info!("audit records reach the control plane again");
                            self.failing = false;
                        }
                        if !more {
                            break;
                        }
                    }
                    Err(e) => {
                        if !self.failing {
                            tracing::warn!(error = %e, "audit records wait on disk until the control plane takes them");
                            self.failing = true;
                        }
                        break;
                    }
                }
            }
            tokio::time::sleep(FLUSH_EVERY).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_increase_even_within_one_microsecond() {
        let q = AuditQueue::default();
        let e = AuditEvent {
            at: "2026-01-01T00:00:00Z".into(),
            actor: "token:web".into(),
            action: "read_pii".into(),
            resource: "feature_view/x".into(),
            detail: serde_json::Value::Null,
            origin: "edge".into(),
            remote: None,
            origin_seq: 0,
        };
        let other = |actor: &str| AuditEvent {
            actor: actor.into(),
            ..e.clone()
        };
        q.push(other("token:a"), 100);
        q.push(other("token:b"), 100);
        q.push(other("token:c"), 50);
        let seqs: Vec<u64> = q.take().iter().map(|e| e.origin_seq).collect();
        assert_eq!(seqs, [100, 101, 102]);
        assert_eq!(q.pending(), 0);
        // The same caller reading the same features again is one record, counted.
        let read = |keys: &[&str]| AuditEvent {
            detail: serde_json::json!({"features": ["email"], "masked": true, "entities": keys.len(), "keys": keys}),
            ..e.clone()
        };
        q.push(read(&["id=1"]), 200);
        q.push(read(&["id=2", "id=3"]), 201);
        q.push(other("token:z"), 202);
        let merged = q.take();
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].detail["requests"], 2);
        assert_eq!(merged[0].detail["entities"], 3);
        assert_eq!(
            merged[0].detail["keys"],
            serde_json::json!(["id=1", "id=2", "id=3"])
        );
    }
}
