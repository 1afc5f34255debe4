//! HTTP: webhook ingest, the admin API ([`admin`]) and the web console on it ([`console`]),
//! health and readiness. `run(listener, state, shutdown)` takes both
//! from the caller, so tests bind port 0 and stop it cleanly. Handlers translate HTTP into
//! calls on the application layer and its typed errors into answers ([`answer`]).

mod admin;
mod answer;
mod auth;
mod console;
mod health;
mod listen;
mod oidc;
mod refusals;
mod webhook;

/// The JSON shapes of log records, provider requests, rules and lane queues (times in RFC
/// 3339), shared by the admin API and the command line's `--json`.
pub mod views {
    pub use super::admin::{
        discarded_view, fanout_queue_view, lane_queue_view, lane_status_view, record_view,
        request_view, rule_view,
    };
}
pub use auth::Token;
pub use health::Readiness;
pub use listen::{fit_connection_cap, Limits, FD_RESERVE};
pub use oidc::{PubsubOidc, PubsubOidcConfig, RawPubsubOidc};

use crate::app::{Admin, Ingestor};
use crate::dispatch::Dispatcher;
use crate::store::Store;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub ingestor: Arc<Ingestor>,
    pub admin: Arc<Admin>,
    pub dispatcher: Arc<Dispatcher>,
    /// `None`, and no `pubsub_oidc`: only loopback callers may post events.
    /// Replaced on SIGHUP (`Service::reload_tokens`).
    pub webhook_token: auth::Token,
    /// Pub/Sub push tokens accepted beside the webhook token (`[server.pubsub_oidc]`).
    pub pubsub_oidc: Option<Arc<PubsubOidc>>,
    /// Who may read details (`/healthz` in full). `None`: loopback callers.
    /// Replaced on SIGHUP (`Service::reload_tokens`).
    pub admin_token: auth::Token,
    pub max_body_bytes: usize,
    /// How long a request's body may take to arrive.
    pub body_timeout: std::time::Duration,
    /// `/readyz`'s shared write probe.
    pub readiness: Readiness,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub clock: crate::clock::Clock,
    /// Refused callers, logged at most once per kind every few seconds.
    pub refused: RefusalLog,
    /// The queue sources running beside the webhook (`[[sources]]`).
    pub sources: crate::sources::Statuses,
}

/// The kinds of refusal the log reports.
pub struct RefusalLog {
    pub unauthorized: refusals::Refusals,
    pub pubsub_oidc: refusals::Refusals,
    pub not_found: refusals::Refusals,
    pub admin: refusals::Refusals,
}

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog {
            unauthorized: refusals::Refusals::new("webhook authentication"),
            pubsub_oidc: refusals::Refusals::new("Pub/Sub push token"),
            not_found: refusals::Refusals::new("no such path"),
            admin: refusals::Refusals::new("admin API authentication"),
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/v1/events",
            post(webhook::ingest)
                .get(webhook::describe)
                .head(webhook::probe),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(admin::router(Arc::clone(&state)))
        .merge(console::router())
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state)
}

/// Unknown paths: 404 naming where things are (and a log line, rate-limited).
async fn not_found(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> axum::response::Response {
    let what = format!("{method} {}", uri.path());
    state.refused.not_found.note(peer, &what);
    answer::error(
        axum::http::StatusCode::NOT_FOUND,
        format!(
            "no such path: {what}; bucket notifications go to POST /v1/events (admin API: \
             /v1/rules, /v1/log, ..., described at GET /v1/openapi.json; console: GET /; \
             health: GET /healthz, /readyz; metrics: GET /metrics)",
            what = edgepurge_core::printable(&what)
        ),
    )
}

/// Serves until `shutdown` is cancelled, then lets requests in progress finish (for at most
/// `limits.drain`).
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    listen::serve(listener, router(state), limits, shutdown).await
}
