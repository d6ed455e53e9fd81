//! Who is looking: a dashboard session is the caller's API token in an `HttpOnly`,
//! `SameSite=Strict` cookie, checked on every request exactly as a bearer token is, so a
//! revoked or expired token ends its sessions at once and no session state lives in the
//! control plane (replicas behind a balancer need no stickiness).
//!
//! Forms that change something carry a CSRF value derived from the token, and a POST whose
//! `Origin` is another site is refused, on top of the cookie's `SameSite=Strict`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use fstore_access::{Action, Resource};
use fstore_control::{ControlError, ControlPlane, Principal};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use crate::layout::{self, PageError};

type Shared = Arc<ControlPlane>;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "fstore_session";

/// How long a browser keeps the session: a working day. The token's own expiry still
/// applies, and logging out or revoking the token ends it sooner.
const SESSION_SECONDS: u64 = 12 * 3600;

/// The caller of a dashboard request.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub principal: Principal,
    /// What this session's forms must send back as `csrf`; empty with authentication off.
    pub csrf: String,
    /// Whether authentication is on (off: no login, no logout button).
    pub auth: bool,
}

impl Viewer {
    pub fn may(&self, action: Action) -> bool {
        self.principal.may(action, &Resource::project())
    }

    /// Refuses with a 403 page unless the caller may `action` on the project.
    pub fn check(&self, action: Action) -> Result<(), PageError> {
        self.principal
            .check(action, &Resource::project())
            .map_err(PageError::from)
    }

    /// Refuses a form whose CSRF value is not this session's.
    pub fn check_csrf(&self, given: &str) -> Result<(), PageError> {
        if self.auth && given != self.csrf {
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "the form is stale or came from another site: reload the page and try again",
            ));
        }
        Ok(())
    }
}

fn csrf_of(token: &str) -> String {
    fstore_access::hash_text(b"fstore-dashboard-csrf", token.as_bytes())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Only paths on this site: `next=//evil.example`, `next=https://…`, and anything with a
/// backslash, whitespace or a control character (browsers drop tabs and newlines from a
/// `Location`, so `/\t/evil.example` would become `//evil.example`) land on `/`.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p
                    .chars()
                    .any(|c| c == '\\' || c.is_whitespace() || c.is_control()) =>
        {
            p.into()
        }
        _ => "/".into(),
    }
}

/// Whether a POST's `Origin` (when the browser sent one) is this site: the host the browser
/// addressed, as it reached us directly or through a proxy that rewrote `Host`.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    [header::HOST.as_str(), "x-forwarded-host"]
        .iter()
        .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .any(|h| h == origin_host)
}

/// `; Secure` when the browser reached us over HTTPS through a proxy: the cookie then never
/// travels in clear text. (Served directly, the control plane speaks plain HTTP.)
fn secure_flag(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    if https { "; Secure" } else { "" }
}

fn remote_of(req: &Request) -> Option<String> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// In front of the login page: what it writes to the audit log says it came from the
/// dashboard and from which address, as `require` does for every other page.
pub(crate) async fn origin(req: Request, next: Next) -> Response {
    let remote = remote_of(&req);
    fstore_control::with_origin("dashboard".into(), remote, next.run(req)).await
}

/// The middleware in front of every page but the login page and the assets.
pub(crate) async fn require(State(cp): State<Shared>, mut req: Request, next: Next) -> Response {
    if req.method() == Method::POST && !same_origin(req.headers()) {
        return PageError::new(
            StatusCode::FORBIDDEN,
            "a form posted from another site was refused",
        )
        .into_response();
    }
    let remote = remote_of(&req);
    let viewer = if !cp.config.auth {
        Viewer {
            principal: Principal::anonymous(),
            csrf: String::new(),
            auth: false,
        }
    } else {
        let token = cookie(req.headers(), COOKIE).map(str::to_string);
        let authenticated = match &token {
            Some(t) => cp.authenticate(t).await.map(|p| (p, csrf_of(t))),
            None => Err(ControlError::Unauthorized("not logged in".into())),
        };
        match authenticated {
            Ok((principal, csrf)) => Viewer {
                principal,
                csrf,
                auth: true,
            },
            Err(ControlError::Unauthorized(why)) => return to_login(&req, token.is_some(), &why),
            Err(e) => return PageError::from(e).into_response(),
        }
    };
    req.extensions_mut().insert(viewer);
    fstore_control::with_origin("dashboard".into(), remote, next.run(req)).await
}

/// Pages go to the login page and come back; a live fragment or a form gets a 401 (the
/// page's script reloads the page, which then redirects).
fn to_login(req: &Request, had_cookie: bool, why: &str) -> Response {
    let fragment = req.uri().query().is_some_and(|q| q.contains("fragment="));
    let mut resp = if req.method() == Method::GET && !fragment {
        let next = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let mut to = String::from("/login?next=");
        to.push_str(&crate::layout::enc(&next));
        if had_cookie {
            to.push_str("&expired=1");
        }
        Redirect::to(&to).into_response()
    } else {
        PageError::new(StatusCode::UNAUTHORIZED, format!("{why}: log in again")).into_response()
    };
    if had_cookie {
        clear_cookie(&mut resp);
    }
    resp
}

fn clear_cookie(resp: &mut Response) {
    resp.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("fstore_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
}

#[derive(Deserialize, Default)]
pub(crate) struct LoginParams {
    next: Option<String>,
    expired: Option<String>,
}

/// `GET /login`.
pub(crate) async fn login_page(
    State(cp): State<Shared>,
    q: Result<Query<LoginParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let note = q
        .expired
        .is_some()
        .then_some("Your session ended (the token expired or was revoked). Log in again.");
    login_form(&cp, &local_path(q.next.as_deref()), note, StatusCode::OK)
}

fn login_form(cp: &ControlPlane, next: &str, error: Option<&str>, status: StatusCode) -> Response {
    let body = html! {
        div.login {
            h1 { "fstore" }
            @if !cp.config.auth {
                p.note { "Authentication is off on this control plane: every page is open." }
                a.button href="/" { "Open the dashboard" }
            } @else {
                p { "Log in with an API token (" code { "fstore token create" } ")." }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label for="token" { "Token" }
                    input #token type="password" name="token" autocomplete="off" required
                        placeholder="fst_…" autofocus;
                    button type="submit" { "Log in" }
                }
            }
        }
    };
    (status, layout::bare("Log in", body)).into_response()
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login`: checks the token as the API would, then sets the session cookie.
pub(crate) async fn login(
    State(cp): State<Shared>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return PageError::new(
            StatusCode::FORBIDDEN,
            "a form posted from another site was refused",
        )
        .into_response();
    }
    let Ok(Form(form)) = form else {
        return login_form(
            &cp,
            "/",
            Some("The form was incomplete: give a token."),
            StatusCode::BAD_REQUEST,
        );
    };
    let next = local_path(form.next.as_deref());
    let token = form.token.trim();
    if !cp.config.auth {
        return Redirect::to(&next).into_response();
    }
    match cp.authenticate(token).await {
        Ok(p) => {
            // The token is `fst_<hex>_<hex>` (authenticate parsed it), so it is cookie-safe.
            let cookie = format!(
                "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}{}",
                secure_flag(&headers)
            );
            let Ok(cookie) = HeaderValue::from_str(&cookie) else {
                return login_form(
                    &cp,
                    &next,
                    Some("That is not a token."),
                    StatusCode::BAD_REQUEST,
                );
            };
            // No session without its record in the audit log.
            if let Err(e) = cp.audit(&p.actor, "login", "dashboard", json!({})).await {
                return PageError::from(e).into_response();
            }
            let mut resp = Redirect::to(&next).into_response();
            resp.headers_mut().append(header::SET_COOKIE, cookie);
            resp
        }
        Err(ControlError::Unauthorized(why)) => {
            // Failed attempts are recorded too, so guessing shows in the log; the token's id
            // (never its secret) names what was tried.
            let tried = fstore_access::parse_token(token).map(|(id, _)| id).ok();
            if let Err(e) = cp
                .audit(
                    "anonymous",
                    "login_failed",
                    "dashboard",
                    json!({"reason": why, "token_id": tried}),
                )
                .await
            {
                return PageError::from(e).into_response();
            }
            login_form(&cp, &next, Some(&why), StatusCode::UNAUTHORIZED)
        }
        Err(e) => PageError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: forgets the cookie (the token itself stays valid: revoke it to end it).
pub(crate) async fn logout(
    State(cp): State<Shared>,
    axum::Extension(v): axum::Extension<Viewer>,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    v.check_csrf(&csrf)?;
    cp.audit(&v.principal.actor, "logout", "dashboard", json!({}))
        .await?;
    let mut resp = Redirect::to("/login").into_response();
    clear_cookie(&mut resp);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(local_path(Some("/jobs?view=a")), "/jobs?view=a");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "jobs",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; fstore_session=fst_ab_cd; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("fst_ab_cd"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn a_post_from_another_origin_is_told_apart() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(
            same_origin(&h),
            "no Origin header: a same-site form or a script"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
        // Behind a proxy that rewrote Host, the forwarded host is what the browser addressed.
        h.insert(header::HOST, HeaderValue::from_static("10.0.0.5:6565"));
        h.insert(
            "x-forwarded-host",
            HeaderValue::from_static("fstore.example"),
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://fstore.example"),
        );
        assert!(same_origin(&h));
        assert_eq!(secure_flag(&h), "");
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert_eq!(secure_flag(&h), "; Secure");
    }
}
