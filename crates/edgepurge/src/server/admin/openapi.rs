//! `GET /v1/openapi.json`: the admin API described in OpenAPI 3.1.
//!
//! The document is written by hand (`openapi.json` beside this file, embedded in the binary)
//! rather than generated from the handlers: it stays readable prose for API users, needs no
//! derive macros on every view, and a test ([`super::tests`]) holds it against the route
//! table and the running router (every path, method and status code), so it cannot drift.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}
