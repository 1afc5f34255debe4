//! HTTP: webhook ingest, health and readiness. `run(listener, state, shutdown)` takes both
//! from the caller, so tests bind port 0 and stop it cleanly.

mod health;
mod webhook;

use crate::clock::Clock;
use crate::dispatch::Dispatcher;
use crate::ingest::Planner;
use crate::secret::Secret;
use crate::store::Store;
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub planner: RwLock<Arc<Planner>>,
    pub dispatcher: Arc<Dispatcher>,
    /// `None`: only loopback callers may post events.
    pub webhook_token: Option<Secret>,
    pub max_body_bytes: usize,
    pub clock: Clock,
    /// Cancelled when the service stops (ends waits early).
    pub shutdown: CancellationToken,
}

impl AppState {
    pub fn planner(&self) -> Arc<Planner> {
        match self.planner.read() {
            Ok(p) => Arc::clone(&p),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn set_planner(&self, planner: Planner) {
        match self.planner.write() {
            Ok(mut p) => *p = Arc::new(planner),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(planner),
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
        .layer(axum::extract::DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state)
}

/// Serves until `shutdown` is cancelled, then finishes requests in progress.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
