//! Alerts: a problem (a failing quality rule, drift, a serving anomaly) is opened once in the
//! registry and announced to every webhook; seen again while open it only counts another
//! occurrence; once it clears it is resolved and the resolution announced. Deliveries run in
//! the background with retries and are recorded on the alert, so a slow or failing webhook
//! never holds up the run or request that raised the problem.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fstore_registry::{Alert, NewAlert, Registry};
use serde::{Deserialize, Serialize};

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// `{"event": "firing"|"resolved", "alert": {…}}`, the alert as `GET /v1/alerts` shows it.
    Json,
    /// Slack's incoming-webhook payload (`{"text": …, "blocks": […]}`); Mattermost and most
    /// chat tools accept it too.
    Slack,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub format: WebhookFormat,
}

/// Where alerts go and how hard delivery tries.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    pub webhooks: Vec<Webhook>,
    /// Tries per delivery, the first included.
    pub attempts: u32,
    /// The wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// How long one delivery attempt may take.
    pub timeout: Duration,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            attempts: 4,
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(5),
        }
    }
}

impl AlertSettings {
    /// Refuses webhook URLs that are not http(s), so a typo fails at startup, not at the
    /// first alert.
    pub fn validate(&self) -> Result<(), String> {
        for w in &self.webhooks {
            let ok = reqwest::Url::parse(&w.url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(format!(
                    "webhook `{}` is not an http:// or https:// URL",
                    fstore_spec::redact_url(&w.url)
                ));
            }
        }
        if self.attempts == 0 {
            return Err("alert delivery needs at least one attempt".into());
        }
        Ok(())
    }
}

/// `firing` when an alert opens, `resolved` when it clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Firing,
    Resolved,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

pub(crate) struct Alerter {
    registry: Arc<dyn Registry>,
    http: reqwest::Client,
    settings: AlertSettings,
    /// Deliveries under way, so a one-shot command can wait for them before it exits.
    pending: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Alerter {
    pub(crate) fn new(registry: Arc<dyn Registry>, settings: AlertSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .unwrap_or_default();
        Self {
            registry,
            http,
            settings,
            pending: Mutex::new(Vec::new()),
        }
    }

    /// Opens (or counts another occurrence of) the alert; announces it when newly opened.
    /// Never fails: an alert that cannot be recorded is logged.
    pub(crate) async fn raise(&self, a: NewAlert) {
        match self.registry.open_alert(&a).await {
            Ok((alert, true)) => {
                tracing::warn!(alert = alert.id, fingerprint = %alert.fingerprint, summary = %alert.summary, "alert opened");
                self.announce(alert, Event::Firing);
            }
            Ok((_, false)) => {}
            Err(e) => {
                tracing::error!(fingerprint = %a.fingerprint, error = %e, "could not record an alert")
            }
        }
    }

    /// Resolves the open alert of `fingerprint`, if any, and announces that.
    pub(crate) async fn resolve(&self, fingerprint: &str) {
        match self.registry.resolve_alert(fingerprint).await {
            Ok(Some(alert)) => {
                tracing::info!(alert = alert.id, fingerprint, "alert resolved");
                self.announce(alert, Event::Resolved);
            }
            Ok(None) => {}
            Err(e) => tracing::error!(fingerprint, error = %e, "could not resolve an alert"),
        }
    }

    fn announce(&self, alert: Alert, event: Event) {
        if self.settings.webhooks.is_empty() {
            return;
        }
        let (registry, http, settings) = (
            self.registry.clone(),
            self.http.clone(),
            self.settings.clone(),
        );
        let task = tokio::spawn(async move {
            for hook in &settings.webhooks {
                deliver(registry.as_ref(), &http, &settings, hook, &alert, event).await;
            }
        });
        if let Ok(mut p) = self.pending.lock() {
            p.retain(|t| !t.is_finished());
            p.push(task);
        }
    }

    /// Waits up to `limit` for deliveries under way (a one-shot command calls this before it
    /// exits, or its alerts would die with it).
    pub(crate) async fn flush(&self, limit: Duration) {
        let tasks: Vec<_> = match self.pending.lock() {
            Ok(mut p) => p.drain(..).collect(),
            Err(_) => return,
        };
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!("gave up waiting for alert deliveries");
        }
    }
}

/// The body `hook` receives for `alert`.
fn payload(hook: &Webhook, alert: &Alert, event: Event) -> serde_json::Value {
    match hook.format {
        WebhookFormat::Json => serde_json::json!({"event": event.name(), "alert": alert}),
        WebhookFormat::Slack => {
            let icon = match (event, alert.severity.as_str()) {
                (Event::Resolved, _) => ":large_green_circle:",
                (_, "error") => ":red_circle:",
                _ => ":large_yellow_circle:",
            };
            let head = match event {
                Event::Firing => format!("{icon} *[fstore] {}*", alert.summary),
                Event::Resolved => format!("{icon} *[fstore] resolved:* {}", alert.summary),
            };
            let context = format!(
                "alert #{} · {} · {} · view `{}` · opened {}",
                alert.id,
                alert.kind,
                alert.severity,
                alert.view.as_deref().unwrap_or("-"),
                alert.opened_at
            );
            serde_json::json!({
                "text": head,
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": head}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
                ],
            })
        }
    }
}

/// Posts one announcement to one webhook, retrying with doubling waits; records each attempt.
async fn deliver(
    registry: &dyn Registry,
    http: &reqwest::Client,
    settings: &AlertSettings,
    hook: &Webhook,
    alert: &Alert,
    event: Event,
) {
    let body = payload(hook, alert, event);
    let target = fstore_spec::redact_url(&hook.url);
    let mut wait = settings.backoff;
    for attempt in 1..=settings.attempts {
        let result = http.post(&hook.url).json(&body).send().await;
        let (ok, status, error) = match result {
            Ok(r) if r.status().is_success() => (true, Some(r.status().as_u16()), None),
            Ok(r) => (
                false,
                Some(r.status().as_u16()),
                Some(format!("answered {}", r.status())),
            ),
            Err(e) => (false, None, Some(e.to_string())),
        };
        let record = serde_json::json!({
            "event": event.name(),
            "target": target,
            "attempt": attempt,
            "ok": ok,
            "status": status,
            "error": error,
            "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        });
        if let Err(e) = registry.record_delivery(alert.id, &record).await {
            tracing::warn!(alert = alert.id, error = %e, "could not record an alert delivery");
        }
        if ok {
            return;
        }
        tracing::warn!(alert = alert.id, target = %target, attempt, error = ?error, "alert delivery failed");
        if attempt < settings.attempts {
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            id: 7,
            fingerprint: "check:v:f:range".into(),
            kind: "check".into(),
            view: Some("v".into()),
            severity: "error".into(),
            status: "open".into(),
            summary: "f: 3 values out of range".into(),
            details: serde_json::json!({}),
            opened_at: "2026-01-01T00:00:00.000000Z".into(),
            updated_at: "2026-01-01T00:00:00.000000Z".into(),
            resolved_at: None,
            occurrences: 1,
            deliveries: vec![],
        }
    }

    #[test]
    fn payloads_per_format() {
        let json = Webhook {
            url: "http://x/".into(),
            format: WebhookFormat::Json,
        };
        let p = payload(&json, &alert(), Event::Firing);
        assert_eq!(p["event"], "firing");
        assert_eq!(p["alert"]["id"], 7);
        let slack = Webhook {
            format: WebhookFormat::Slack,
            ..json
        };
        let p = payload(&slack, &alert(), Event::Resolved);
        let text = p["text"].as_str().expect("slack text");
        assert!(
            text.contains("resolved") && text.contains("3 values out of range"),
            "{text}"
        );
        assert_eq!(p["blocks"][0]["type"], "section");
    }

    #[test]
    fn settings_refuse_bad_urls() {
        let s = |url: &str| AlertSettings {
            webhooks: vec![Webhook {
                url: url.into(),
                format: WebhookFormat::Json,
            }],
            ..AlertSettings::default()
        };
        assert!(s("http://127.0.0.1:9/hook").validate().is_ok());
        assert!(s("ftp://host/x").validate().is_err());
        assert!(s("not a url").validate().is_err());
    }
}
