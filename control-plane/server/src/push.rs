//! `POST /v1/push`: fresh rows from an application or a stream. Good rows are appended to the
//! source in the offline store (so training sets and full runs see every value ever served),
//! then each view reading the source runs incrementally in this process and its delta is
//! published and announced to the edges at once; bad rows are refused with reasons and never
//! stop the good ones.

use serde::{Deserialize, Serialize};

use crate::incremental::RunMode;
use crate::{ControlError, ControlPlane};

/// A push: rows for one source, as JSON objects keyed by column name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    pub source: String,
    pub rows: Vec<serde_json::Value>,
}

/// What became of a push.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    pub accepted: usize,
    pub rejected: Vec<fstore_offline::PushRejected>,
    /// Fields no view of the source reads; not stored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored_fields: Vec<String>,
    /// The files appended to the source.
    pub files: Vec<String>,
    /// One per view reading the source.
    pub views: Vec<PushedView>,
}

/// How a pushed view's run went: `published` (a delta or compacted snapshot is live),
/// `unchanged` (the rows changed nothing it serves, e.g. older than what it holds), `pending`
/// (another run of the view was active; its next run publishes the rows) or `failed` (the rows
/// are stored; the run's error says why they are not served yet).
#[derive(Debug, Clone, Serialize)]
pub struct PushedView {
    pub view: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Numbers pushes within a process, so two pushes in one microsecond name different files.
static PUSHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl ControlPlane {
    /// Appends `req.rows` to the source and publishes each of its views incrementally.
    pub async fn push(&self, req: &PushRequest, actor: &str) -> Result<PushReport, ControlError> {
        if req.rows.is_empty() {
            return Err(ControlError::BadRequest(
                "a push needs at least one row".into(),
            ));
        }
        let defs = self.registry().definitions().await?;
        if defs.source(&req.source).is_none() {
            return Err(ControlError::NotFound {
                kind: "source".into(),
                name: req.source.clone(),
            });
        }
        let nonce = format!(
            "{:x}-{:x}-{:x}",
            chrono::Utc::now().timestamp_micros(),
            std::process::id(),
            PUSHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let written = fstore_offline::push_rows(&defs, &req.source, &req.rows, &nonce)
            .await
            .map_err(|e| match e {
                fstore_offline::OfflineError::Storage(s) => ControlError::Storage(s),
                other => ControlError::BadRequest(other.to_string()),
            })?;
        if written.accepted == 0 {
            let first = written
                .rejected
                .first()
                .map_or(String::new(), |r| format!("; row {}: {}", r.row, r.reason));
            return Err(ControlError::Invalid {
                code: "no_valid_rows",
                message: format!(
                    "none of the {} rows could be used, so nothing was stored{first}",
                    req.rows.len()
                ),
                details: serde_json::json!({ "rejected": written.rejected }),
            });
        }
        let owner = format!("{}/push", self.config.jobs.replica);
        let mut claimed = Vec::new();
        let mut names = Vec::new();
        let mut views = Vec::new();
        for view in &written.views {
            let mut one = Vec::new();
            match self
                .claim_manual(std::slice::from_ref(view), actor, "push", &owner, &mut one)
                .await
            {
                Ok(()) => {
                    names.push(view.clone());
                    claimed.extend(one);
                }
                Err(e) => {
                    self.abandon(&one, &owner, &e.to_string()).await;
                    views.push(PushedView {
                        view: view.clone(),
                        status: "pending",
                        run: None,
                        version: None,
                        mode: None,
                        manifest_seq: None,
                        error: Some(format!(
                            "{e}; the rows are stored and its next run publishes them"
                        )),
                    });
                }
            }
        }
        if !names.is_empty() {
            let done = self
                .run_claimed(&names, &claimed, actor, &owner, RunMode::Auto)
                .await;
            for run in &claimed {
                let mut v = PushedView {
                    view: run.view.clone(),
                    status: "failed",
                    run: Some(run.id),
                    version: None,
                    mode: None,
                    manifest_seq: None,
                    error: None,
                };
                match &done {
                    Ok(reports) => {
                        if let Some(r) = reports.iter().find(|r| r.view == run.view) {
                            v.status = if r.mode == "unchanged" {
                                "unchanged"
                            } else {
                                "published"
                            };
                            v.version = Some(r.version);
                            v.mode = Some(r.mode.clone());
                            v.manifest_seq = Some(r.manifest_seq);
                        }
                    }
                    Err(e) => v.error = Some(e.to_string()),
                }
                views.push(v);
            }
        }
        views.sort_by(|a, b| a.view.cmp(&b.view));
        Ok(PushReport {
            accepted: written.accepted,
            rejected: written.rejected,
            ignored_fields: written.ignored_fields,
            files: written.files,
            views,
        })
    }
}
