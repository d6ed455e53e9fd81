//! The stylesheet and the script, compiled into the binary: the dashboard needs no network
//! and no files beside the binary.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::layout::PageError;

const CSS: &str = include_str!("../assets/app.css");
const JS: &str = include_str!("../assets/app.js");

/// The paths pages link; the version in the query makes a new release's assets bypass
/// what browsers cached of the old ones.
pub(crate) const CSS_PATH: &str = concat!("/assets/app.css?v=", env!("CARGO_PKG_VERSION"));
pub(crate) const JS_PATH: &str = concat!("/assets/app.js?v=", env!("CARGO_PKG_VERSION"));

/// `GET /assets/{file}`.
pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "app.js" => (JS, "text/javascript; charset=utf-8"),
        _ => {
            return PageError::new(StatusCode::NOT_FOUND, format!("no asset `{file}`"))
                .into_response();
        }
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
