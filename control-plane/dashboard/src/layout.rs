//! The page shell (head, navigation, who is logged in), error pages, and the small formatting
//! helpers every page shares.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use fstore_access::Action;
use fstore_control::ControlError;
use maud::{DOCTYPE, Markup, html};

use crate::session::Viewer;

/// The navigation's entries: the section's path and label.
const NAV: [(&str, &str); 6] = [
    ("/", "Overview"),
    ("/serving", "Serving"),
    ("/catalog", "Catalog"),
    ("/lineage", "Lineage"),
    ("/jobs", "Jobs"),
    ("/governance", "Governance"),
];

/// Where a section's link leads this viewer, if anywhere: governance opens on tokens and
/// roles for `manage_access`, on the audit log for `read_audit` alone, and not at all
/// without either.
pub(crate) fn section_href(section: &str, viewer: &Viewer) -> Option<&'static str> {
    match section {
        "/governance" if viewer.may(Action::ManageAccess) => Some("/governance"),
        "/governance" if viewer.may(Action::ReadAudit) => Some("/governance/audit"),
        "/governance" => None,
        other => NAV.iter().find(|(p, _)| *p == other).map(|(p, _)| *p),
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · fstore" }
            link rel="stylesheet" href=(crate::assets::CSS_PATH);
            script src=(crate::assets::JS_PATH) defer {}
        }
    }
}

/// A full page: navigation (entries the viewer may use), the viewer and a logout button,
/// then `body`.
pub(crate) fn page(title: &str, active: &str, viewer: &Viewer, body: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    a.brand href="/" { "fstore" }
                    nav {
                        @for (section, label) in NAV {
                            @if let Some(href) = section_href(section, viewer) {
                                a href=(href) class=@if section == active { "active" } @else { "" } { (label) }
                            }
                        }
                    }
                    div.who {
                        span #who { (viewer.principal.actor) }
                        " "
                        span.role { (viewer.principal.role.name) }
                        @if viewer.auth {
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button.link type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    Html(markup.into_string())
}

/// A page without navigation: the login page and error pages.
pub(crate) fn bare(title: &str, body: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare { main { (body) } }
        }
    };
    Html(markup.into_string())
}

/// A refusal or failure shown as a page with its status: 400 for bad input, 401, 403 for a
/// role without the action (saying which), 404, 409, never a bare 500 for input.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<ControlError> for PageError {
    fn from(e: ControlError) -> Self {
        let status = e.status();
        // Server-side failures are logged in full; the page, like the REST API's body, says
        // no more (their text can name databases, buckets and paths).
        let message = if status.is_server_error() {
            tracing::error!(error = %e, "dashboard page failed");
            "internal error; see the control plane's log".to_string()
        } else {
            e.to_string()
        };
        Self { status, message }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::FORBIDDEN => "403 Forbidden",
            StatusCode::UNAUTHORIZED => "401 Not logged in",
            StatusCode::NOT_FOUND => "404 Not found",
            StatusCode::CONFLICT => "409 Conflict",
            s if s.is_client_error() => "400 Bad request",
            _ => "The control plane failed",
        };
        let body = html! {
            div.error-page {
                h1 { (title) }
                p.error role="alert" { (self.message) }
                @if self.status == StatusCode::FORBIDDEN {
                    p { "Your token's role does not allow this page. Ask an admin for a role that does." }
                }
                p {
                    a href="/" { "Back to the overview" }
                    @if self.status == StatusCode::UNAUTHORIZED || self.status == StatusCode::FORBIDDEN {
                        " · " a href="/login" { "Log in with another token" }
                    }
                }
            }
        };
        (self.status, bare(title, body)).into_response()
    }
}

/// A status word as a coloured badge; the class is the word's tone.
pub(crate) fn badge(word: &str) -> Markup {
    let tone = match word {
        "up" | "fresh" | "succeeded" | "ready" | "active" | "passed" | "intact" => "ok",
        "late" | "running" | "queued" | "warn" | "warning" | "manual" | "behind" => "warn",
        "down" | "failed" | "rejected" | "error" | "never" | "open" | "revoked" | "critical"
        | "not ready" => "bad",
        _ => "neutral",
    };
    html! { span class={ "badge " (tone) } { (word) } }
}

/// `4 s`, `3 min`, `2 h 5 min`, `3 d`.
pub(crate) fn human_seconds(s: i64) -> String {
    let s = s.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => match (s % 3600) / 60 {
            0 => format!("{} h", s / 3600),
            m => format!("{} h {m} min", s / 3600),
        },
        _ => format!("{} d", s / 86400),
    }
}

/// How long a run took, or has been going.
pub(crate) fn run_duration(started: Option<&str>, finished: Option<&str>) -> String {
    let millis = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.timestamp_millis())
    };
    match (started.and_then(millis), finished.and_then(millis)) {
        (Some(a), Some(b)) => format!("{:.1} s", (b - a) as f64 / 1000.0),
        (Some(a), None) => format!(
            "{} so far",
            human_seconds((chrono::Utc::now().timestamp_millis() - a) / 1000)
        ),
        _ => "–".into(),
    }
}

/// `2026-12-04 10:15:02` from an RFC 3339 time (UTC, as stored), else the text as given.
pub(crate) fn short_time(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| t.to_utc().format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// `950`, `12.3k`, `4.56M`: counts and rates for tables and chart axes.
pub(crate) fn compact(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "–".into()
    } else if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Percent-encodes all but unreserved characters: for query values and path segments.
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `12.5 %`.
pub(crate) fn percent(rate: f64) -> String {
    if rate > 0.0 && rate < 0.001 {
        "< 0.1 %".into()
    } else {
        format!("{:.1} %", rate * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_figures_read_the_way_people_write_them() {
        assert_eq!(human_seconds(4), "4 s");
        assert_eq!(human_seconds(185), "3 min");
        assert_eq!(human_seconds(7500), "2 h 5 min");
        assert_eq!(human_seconds(3 * 86400 + 5), "3 d");
        assert_eq!(compact(950.0), "950");
        assert_eq!(compact(12_345.0), "12.3k");
        assert_eq!(compact(4_560_000.0), "4.56M");
        assert_eq!(compact(0.25), "0.250");
        assert_eq!(percent(0.125), "12.5 %");
        assert_eq!(percent(0.0004), "< 0.1 %");
        assert_eq!(
            short_time("2026-12-04T10:15:02.123Z"),
            "2026-12-04 10:15:02"
        );
    }

    async fn body(e: PageError) -> (StatusCode, String) {
        let resp = e.into_response();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8(bytes.to_vec()).expect("utf-8"))
    }

    #[tokio::test]
    async fn an_error_page_escapes_what_it_repeats_and_hides_internals() {
        let (status, html) = body(PageError::bad_request("<script>x</script>")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script>x"), "{html}");
        let (status, html) = body(PageError::from(ControlError::Internal(
            "postgres://admin:secret@db/registry refused".into(),
        )))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!html.contains("secret"), "{html}");
    }
}
