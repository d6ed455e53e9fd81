//! The control plane's web dashboard: server-rendered HTML pages (overview, serving, catalog,
//! lineage, jobs, governance) over the same service functions the REST API calls, behind the
//! same tokens and roles, with every asset compiled into the binary so it works offline.
//!
//! Pages are rendered with maud (escaped at compile time); charts and the lineage graph are
//! SVG drawn here, so a page is one request plus two cached assets. The only script re-fetches
//! the parts of a page marked `data-live` (`?fragment=1`) every few seconds.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use fstore_control::ControlPlane;

mod assets;
mod charts;
mod graph;
mod layout;
mod pages;
mod session;

/// The dashboard's routes. Everything but the login page and the assets needs a session.
pub fn router(cp: Arc<ControlPlane>) -> Router {
    use pages::{catalog, governance, jobs, lineage, overview, serving};
    Router::new()
        .route("/", get(overview::page))
        .route("/serving", get(serving::page))
        .route("/catalog", get(catalog::search))
        .route("/catalog/features/{view}/{feature}", get(catalog::feature))
        .route("/lineage", get(lineage::page))
        .route("/jobs", get(jobs::page))
        .route("/jobs/trigger", post(jobs::trigger))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/governance", get(governance::access))
        .route("/governance/audit", get(governance::audit))
        .route("/governance/compliance", get(governance::compliance))
        .route("/logout", post(session::logout))
        .route_layer(axum::middleware::from_fn_with_state(
            cp.clone(),
            session::require,
        ))
        .merge(
            Router::new()
                .route("/login", get(session::login_page).post(session::login))
                .route_layer(axum::middleware::from_fn(session::origin)),
        )
        .route("/assets/{file}", get(assets::serve))
        // Forms here are a token or a view name.
        .layer(DefaultBodyLimit::max(16 * 1024))
        .with_state(cp)
}

/// The REST API with the dashboard merged in.
pub fn app(cp: Arc<ControlPlane>) -> Router {
    fstore_control::router(cp.clone()).merge(router(cp))
}

/// Serves the REST API and the dashboard on `listener` until `shutdown` resolves.
pub async fn serve(
    cp: Arc<ControlPlane>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app(cp.clone());
    fstore_control::serve_app(cp, app, listener, shutdown).await
}
