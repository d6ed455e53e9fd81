//! One module per page. Handlers are thin: they check the viewer's role, call the control
//! plane's service functions (the ones the REST API calls), and render.

use std::sync::Arc;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::response::{Html, IntoResponse, Response};
use fstore_control::ControlPlane;
use maud::{Markup, html};

use crate::layout::PageError;

pub(crate) mod catalog;
pub(crate) mod governance;
pub(crate) mod jobs;
pub(crate) mod lineage;
pub(crate) mod overview;
pub(crate) mod serving;

pub(crate) type Shared = Arc<ControlPlane>;

/// A page's query string, or a 400 page saying what is wrong with it.
pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, PageError> {
    q.map(|Query(q)| q)
        .map_err(|e| PageError::bad_request(e.body_text()))
}

/// An optional text field as a form sends it: blank means not given.
pub(crate) fn given(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// A region the page's script refreshes every `every_ms`: the whole page normally, only the
/// region's inside when the script asks for `?fragment=<id>`.
pub(crate) struct Live<'a> {
    pub id: &'a str,
    pub every_ms: u32,
}

impl Live<'_> {
    /// Whether this request is the script asking for the region alone (a page can then skip
    /// what only the rest of the page needs).
    pub fn asked(&self, fragment: Option<&str>) -> bool {
        fragment == Some(self.id)
    }

    /// The region alone when this request is the script asking for it; otherwise `page`
    /// given the region wrapped for refreshing.
    pub fn respond(
        &self,
        asked: Option<&str>,
        inner: Markup,
        page: impl FnOnce(Markup) -> Html<String>,
    ) -> Response {
        if self.asked(asked) {
            Html(inner.into_string()).into_response()
        } else {
            page(html! { div id=(self.id) data-live="" data-every=(self.every_ms) { (inner) } })
                .into_response()
        }
    }
}
