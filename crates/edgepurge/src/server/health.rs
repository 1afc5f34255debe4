//! `/healthz`: whether the process is alive, and to the admin (or a loopback caller when no
//! admin token is set) each lane's state. `/readyz`: whether the store can commit a write.
//!
//! The public answers say only `status`: cache-node addresses and provider errors are for
//! the operator, not for whoever can reach the port.

use super::auth;
use super::AppState;
use crate::dispatch::{LaneState, LaneStatus};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

/// `ok`; `degraded` while a lane's provider is down or a lane is starting again after a
/// crash (restarting this process would not help, so still 200); `stopping` (503) once
/// shutdown began.
fn status(stopping: bool, lanes: &[LaneStatus]) -> (StatusCode, &'static str) {
    if stopping {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping");
    }
    let restarting = lanes.iter().any(|l| {
        matches!(
            l.state,
            LaneState::Restarting { .. } | LaneState::Down { .. }
        )
    });
    if restarting {
        (StatusCode::OK, "degraded")
    } else {
        (StatusCode::OK, "ok")
    }
}

pub async fn healthz(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let lanes = state.dispatcher.statuses();
    let (code, text) = status(state.dispatcher.is_stopping(), &lanes);
    if auth::check(state.admin_token.as_ref(), &headers, None, peer).is_err() {
        return (code, Json(json!({ "status": text })));
    }
    (
        code,
        Json(json!({
            "status": text,
            "rules": state.ingestor.planner().rules().len(),
            "lanes": lanes,
        })),
    )
}

pub async fn readyz(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> impl IntoResponse {
    if state.dispatcher.is_stopping() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "stopping"})),
        );
    }
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the store cannot write");
            let mut body = json!({"status": "unavailable"});
            if auth::check(state.admin_token.as_ref(), &headers, None, peer).is_ok() {
                body["error"] = json!(e.to_string());
            }
            (StatusCode::SERVICE_UNAVAILABLE, Json(body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(state: LaneState) -> LaneStatus {
        LaneStatus {
            lane: "l".into(),
            provider: "p".into(),
            state,
            requests: 0,
            succeeded: 0,
            failed: 0,
            last_success_at: None,
            last_error: None,
            restarts: 0,
        }
    }

    #[test]
    fn status_follows_shutdown_and_crashed_lanes() {
        assert_eq!(status(false, &[]), (StatusCode::OK, "ok"));
        assert_eq!(
            status(false, &[lane(LaneState::Idle), lane(LaneState::Busy)]),
            (StatusCode::OK, "ok")
        );
        assert_eq!(
            status(false, &[lane(LaneState::Restarting { at: 5 })]),
            (StatusCode::OK, "degraded")
        );
        assert_eq!(
            status(
                false,
                &[
                    lane(LaneState::Idle),
                    lane(LaneState::Down {
                        since: 1,
                        next_probe_at: 2
                    })
                ]
            ),
            (StatusCode::OK, "degraded")
        );
        assert_eq!(
            status(true, &[lane(LaneState::Idle)]),
            (StatusCode::SERVICE_UNAVAILABLE, "stopping")
        );
    }
}
