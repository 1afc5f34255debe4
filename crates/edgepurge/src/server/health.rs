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
use std::time::Duration;
use tokio::time::Instant;

/// `ok` (200); `degraded` (503) while a lane's provider is down, its day's quota is spent
/// (parked), its credentials cannot be read, or it is starting again after a crash, or while
/// a queue source is not connected;
/// `stopping` (503) once shutdown began. (Liveness probes use `HEAD
/// /v1/events`, which answers 200 while the process serves: restarting would not bring a
/// provider back.)
pub(super) fn status(
    stopping: bool,
    lanes: &[LaneStatus],
    sources: &[crate::sources::SourceStatus],
) -> (StatusCode, &'static str) {
    if stopping {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping");
    }
    let degraded = sources.iter().any(|s| !s.connected)
        || lanes.iter().any(|l| {
            l.missing_credentials
                || matches!(
                    l.state,
                    LaneState::Restarting { .. }
                        | LaneState::Down { .. }
                        | LaneState::Parked { .. }
                )
        });
    if degraded {
        (StatusCode::SERVICE_UNAVAILABLE, "degraded")
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
    let sources = crate::sources::snapshot(&state.sources);
    let (code, text) = status(state.dispatcher.is_stopping(), &lanes, &sources);
    if auth::check(state.admin_token.get().as_ref(), &headers, None, peer).is_err() {
        return (code, Json(json!({ "status": text })));
    }
    (
        code,
        Json(json!({
            "status": text,
            "rules": state.ingestor.planner().rules().len(),
            "lanes": lanes.iter().map(super::views::lane_status_view).collect::<Vec<_>>(),
            "sources": sources,
        })),
    )
}

/// How long one write probe's result answers `/readyz`: anyone may call it, and each probe is
/// a commit (an fsync), so callers share one probe per second instead of each making one.
const PROBE_REUSE: Duration = Duration::from_secs(1);

type LastProbe = Option<(Instant, Result<(), String>)>;

/// The last write probe, shared by concurrent `/readyz` callers.
#[derive(Default)]
pub struct Readiness {
    last: Arc<tokio::sync::Mutex<LastProbe>>,
}

impl Readiness {
    /// The answer of `probe`, run at most once per [`PROBE_REUSE`] (callers arriving while
    /// a probe runs wait for it and share its answer). The probe runs in a task of its own
    /// and keeps its answer even when the caller that started it hangs up, so callers that
    /// disconnect at once cannot start one probe each.
    pub async fn check<F, Fut>(&self, probe: F) -> Result<(), String>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        let last = Arc::clone(&self.last);
        let task = tokio::spawn(async move {
            let mut last = last.lock_owned().await;
            if let Some((at, result)) = last.as_ref() {
                if at.elapsed() < PROBE_REUSE {
                    return result.clone();
                }
            }
            let result = probe().await;
            if let Err(e) = &result {
                // Once per probe, not once per caller.
                tracing::warn!(error = %e, "not ready: the store cannot write");
            }
            *last = Some((Instant::now(), result.clone()));
            result
        });
        task.await
            .unwrap_or_else(|e| Err(format!("the readiness probe failed: {e}")))
    }
}

/// `GET /metrics`: Prometheus text, for the admin (token, or loopback when none is set),
/// like `/healthz`'s details.
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> axum::response::Response {
    if auth::check(state.admin_token.get().as_ref(), &headers, None, peer).is_err() {
        return super::answer::error(
            StatusCode::UNAUTHORIZED,
            "metrics need the admin token (`Authorization: Bearer`, [admin] token_env), or a \
             loopback caller when none is set",
        );
    }
    let (depths, fanout) = match state.store.queue_depths().await {
        Ok(q) => q,
        Err(e) => {
            return super::answer::error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read the queue: {e}"),
            )
        }
    };
    let text = state.metrics.render(
        &depths,
        &fanout,
        &state.dispatcher.statuses(),
        state.clock.now_ms(),
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
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
    let store = Arc::clone(&state.store);
    let probe = || async move { store.ping().await.map_err(|e| e.to_string()) };
    match state.readiness.check(probe).await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            let mut body = json!({"status": "unavailable"});
            if auth::check(state.admin_token.get().as_ref(), &headers, None, peer).is_ok() {
                body["error"] = json!(e);
            }
            (StatusCode::SERVICE_UNAVAILABLE, Json(body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(state: LaneState) -> LaneStatus {
        LaneStatus::in_state("l", state)
    }

    #[tokio::test(start_paused = true)]
    async fn callers_that_hang_up_do_not_start_a_probe_each() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let probes = Arc::new(AtomicU32::new(0));
        let readiness = Arc::new(Readiness::default());
        for _ in 0..100 {
            let (r, p) = (Arc::clone(&readiness), Arc::clone(&probes));
            let caller = tokio::spawn(async move {
                r.check(move || async move {
                    p.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(())
                })
                .await
            });
            // The caller goes away before the probe answers.
            tokio::time::sleep(Duration::from_millis(1)).await;
            caller.abort();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(probes.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn callers_share_one_write_probe_per_second() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let probes = Arc::new(AtomicU32::new(0));
        let readiness = Arc::new(Readiness::default());
        let probe = |probes: Arc<AtomicU32>| {
            move || async move {
                probes.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err::<(), String>("disk full".into())
            }
        };
        let callers: Vec<_> = (0..100)
            .map(|_| {
                let (r, p) = (Arc::clone(&readiness), Arc::clone(&probes));
                tokio::spawn(async move { r.check(probe(p)).await })
            })
            .collect();
        for c in callers {
            assert_eq!(c.await.unwrap(), Err("disk full".into()));
        }
        assert_eq!(probes.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_millis(1100)).await;
        let _ = readiness.check(probe(Arc::clone(&probes))).await;
        assert_eq!(
            probes.load(Ordering::SeqCst),
            2,
            "a fresh probe after a second"
        );
    }

    #[test]
    fn status_follows_shutdown_and_crashed_lanes() {
        assert_eq!(status3(false, &[]), (StatusCode::OK, "ok"));
        assert_eq!(
            status3(false, &[lane(LaneState::Idle), lane(LaneState::Busy)]),
            (StatusCode::OK, "ok")
        );
        assert_eq!(
            status3(false, &[lane(LaneState::Restarting { at: 5 })]),
            (StatusCode::SERVICE_UNAVAILABLE, "degraded")
        );
        assert_eq!(
            status3(
                false,
                &[
                    lane(LaneState::Idle),
                    lane(LaneState::Down {
                        since: 1,
                        next_probe_at: 2
                    })
                ]
            ),
            (StatusCode::SERVICE_UNAVAILABLE, "degraded")
        );
        assert_eq!(
            status3(false, &[lane(LaneState::Parked { until: 9 })]),
            (StatusCode::SERVICE_UNAVAILABLE, "degraded")
        );
        let mut no_keys = lane(LaneState::Idle);
        no_keys.missing_credentials = true;
        assert_eq!(
            status3(false, &[no_keys]),
            (StatusCode::SERVICE_UNAVAILABLE, "degraded")
        );
        assert_eq!(
            status3(true, &[lane(LaneState::Idle)]),
            (StatusCode::SERVICE_UNAVAILABLE, "stopping")
        );
        // A queue source that is not connected is not ok either.
        let source = |connected| crate::sources::SourceStatus {
            connected,
            ..Default::default()
        };
        assert_eq!(status(false, &[], &[source(true)]), (StatusCode::OK, "ok"));
        assert_eq!(
            status(false, &[], &[source(true), source(false)]),
            (StatusCode::SERVICE_UNAVAILABLE, "degraded")
        );
    }

    fn status3(stopping: bool, lanes: &[LaneStatus]) -> (StatusCode, &'static str) {
        status(stopping, lanes, &[])
    }
}
