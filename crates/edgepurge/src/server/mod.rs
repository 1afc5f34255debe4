//! HTTP: webhook ingest, health and readiness. `run(listener, state, shutdown)` takes both
//! from the caller, so tests bind port 0 and stop it cleanly. Handlers translate HTTP into
//! calls on the application layer and its typed errors into answers ([`answer`]).

mod answer;
mod auth;
mod health;
mod listen;
mod webhook;

pub use health::Readiness;
pub use listen::{fit_connection_cap, Limits, FD_RESERVE};

use crate::app::{Admin, Ingestor};
use crate::dispatch::Dispatcher;
use crate::secret::Secret;
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
    /// `None`: only loopback callers may post events.
    pub webhook_token: Option<Secret>,
    /// Who may read details (`/healthz` in full). `None`: loopback callers.
    pub admin_token: Option<Secret>,
    pub max_body_bytes: usize,
    /// How long a request's body may take to arrive.
    pub body_timeout: std::time::Duration,
    /// `/readyz`'s shared write probe.
    pub readiness: Readiness,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub clock: crate::clock::Clock,
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
        .layer(axum::extract::DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state)
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
