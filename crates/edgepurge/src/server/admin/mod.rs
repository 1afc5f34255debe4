//! The admin HTTP API under `/v1/`: rules, the purge log, provider requests, provider and
//! queue status, retries and manual purges, as JSON. Every handler is a thin translation of
//! HTTP into a call on the application layer ([`crate::app::Admin`], the [`Ingestor`] for
//! purges), so the CLI and the API cannot disagree.
//!
//! Every route except `GET /v1/openapi.json` needs the admin token ([`auth`]). The routes
//! are one table ([`routes`]) from which the router is built, and which a test holds against
//! the OpenAPI document ([`openapi`]), so the two cannot drift apart.
//!
//! [`Ingestor`]: crate::app::Ingestor

mod auth;
mod input;
mod log;
mod openapi;
mod providers;
mod purge;
mod rules;

pub use log::{record_view, request_view};
pub use providers::{fanout_queue_view, lane_queue_view, lane_status_view};
pub use purge::discarded_view;
pub use rules::view as rule_view;

use super::AppState;
use axum::handler::Handler;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::{self, MethodFilter, MethodRouter};
use axum::Router;
use std::sync::Arc;

/// One route: its method, its path (axum's `{param}` syntax, as OpenAPI writes it) and
/// whether it needs the admin token.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub authorized: bool,
    handler: MethodRouter<Arc<AppState>>,
}

/// `handler` answering `method` on `path`, behind the admin token.
fn route<H, T>(method: Method, path: &'static str, handler: H) -> Route
where
    H: Handler<T, Arc<AppState>>,
    T: 'static,
{
    // Every method the table uses is one axum can filter on.
    let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
    Route {
        method,
        path,
        authorized: true,
        handler: routing::on(filter, handler),
    }
}

/// Every admin route.
pub fn routes() -> Vec<Route> {
    vec![
        Route {
            authorized: false,
            ..route(Method::GET, "/v1/openapi.json", openapi::document)
        },
        route(Method::GET, "/v1/rules", rules::list),
        route(Method::POST, "/v1/rules", rules::create),
        route(Method::GET, "/v1/rules/{name}", rules::show),
        route(Method::DELETE, "/v1/rules/{name}", rules::remove),
        route(Method::POST, "/v1/rules/{name}/enable", rules::enable),
        route(Method::POST, "/v1/rules/{name}/disable", rules::disable),
        route(Method::GET, "/v1/log", log::records),
        route(Method::GET, "/v1/requests", log::requests),
        route(Method::GET, "/v1/providers", providers::list),
        route(Method::GET, "/v1/status", providers::status),
        route(Method::POST, "/v1/retry", purge::retry),
        route(Method::POST, "/v1/discard", purge::discard),
        route(Method::POST, "/v1/purge", purge::purge),
    ]
}

/// A path's methods and their handlers, and whether they need the admin token.
type PathRoutes = (&'static str, bool, Vec<Method>, MethodRouter<Arc<AppState>>);

/// The admin routes, the authorized ones behind the admin token check. A method a path
/// does not take is answered 405 naming the ones it does.
pub fn router(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let (mut open, mut guarded) = (Router::new(), Router::new());
    let mut by_path: Vec<PathRoutes> = Vec::new();
    for r in routes() {
        match by_path.iter_mut().find(|(p, ..)| *p == r.path) {
            Some((_, _, methods, handlers)) => {
                methods.push(r.method);
                *handlers = std::mem::take(handlers).merge(r.handler);
            }
            None => by_path.push((r.path, r.authorized, vec![r.method], r.handler)),
        }
    }
    for (path, authorized, methods, handlers) in by_path {
        let handlers = handlers.fallback(move |method: Method| not_allowed(method, path, methods));
        if authorized {
            guarded = guarded.route(path, handlers);
        } else {
            open = open.route(path, handlers);
        }
    }
    let guarded = guarded.route_layer(axum::middleware::from_fn_with_state(state, auth::require));
    open.merge(guarded)
}

async fn not_allowed(method: Method, path: &'static str, allowed: Vec<Method>) -> Response {
    let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    let mut r = super::answer::error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} is not supported on {path}; it takes {} (see GET /v1/openapi.json)",
            names.join(", ")
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&names.join(", ")) {
        r.headers_mut().insert(header::ALLOW, v);
    }
    r
}

#[cfg(test)]
mod tests;
