//! `POST /v1/events`: authenticate, parse (format auto-detected), match rules, commit to the
//! store, and only then answer 200. A body is accepted or refused whole.
//!
//! Query parameters:
//! * `token=SECRET`: the webhook token, for senders that cannot set `Authorization`
//!   (Ceph RGW's HTTP push). Compared in constant time; never logged.
//! * `wait=purged` (`timeout_ms=N`, default 10000, at most 60000): answer only once every
//!   purge of this body succeeded (or was given up), or the time is up. The events are durably
//!   queued either way, and the answer is 200 either way, with `purged` true or false, so a
//!   sender never resends for a slow purge. Lanes skip their linger for such requests.

use super::AppState;
use crate::ingest::lanes_touched;
use crate::store::{LogQuery, Status, StoreError};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Checks the caller: a bearer token when one is configured, else a loopback address.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Params {
    token: Option<String>,
    wait: Option<String>,
    timeout_ms: Option<u64>,
}

const DEFAULT_WAIT_MS: u64 = 10_000;
const MAX_WAIT_MS: u64 = 60_000;

/// Checks the caller: a token (bearer header or `?token=`) when one is configured, else a
/// loopback address.
fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
    peer: SocketAddr,
) -> Result<(), Box<Response>> {
    match &state.webhook_token {
        Some(token) => {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    let (scheme, rest) = v.split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
                })
                .or(query_token);
            match presented {
                Some(t) if token.matches(t.as_bytes()) => Ok(()),
                Some(_) => Err(Box::new(unauthorized("the bearer token is wrong"))),
                None => Err(Box::new(unauthorized(
                    "missing `Authorization: Bearer <token>` or `?token=` (the server's \
                     webhook_token)",
                ))),
            }
        }
        None if peer.ip().is_loopback() => Ok(()),
        None => Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "no webhook token is configured, so only loopback callers are accepted; set \
             server.webhook_token_env or server.webhook_token_file",
        ))),
    }
}

fn unauthorized(why: &str) -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, why);
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

pub async fn ingest(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    params: Result<Query<Params>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(Query(params)) = params else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad query string: use token=..., wait=purged and timeout_ms=<milliseconds>",
        );
    };
    if let Err(r) = authenticate(&state, &headers, params.token.as_deref(), peer) {
        return *r;
    }
    let wait_ms = match params.wait.as_deref() {
        None => None,
        Some("purged") => Some(
            params
                .timeout_ms
                .unwrap_or(DEFAULT_WAIT_MS)
                .min(MAX_WAIT_MS),
        ),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("wait={other:?} is not supported; use wait=purged"),
            )
        }
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "body is larger than server.max_body_bytes ({} bytes); nothing was stored",
                    state.max_body_bytes
                ),
            )
        }
        Err(rejection) => {
            return error(
                rejection.status(),
                format!("cannot read the body: {}", rejection.body_text()),
            )
        }
    };
    let parsed = match edgepurge_core::parse_body(&body) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(peer = %peer, error = %e, "refused a notification");
            return error(StatusCode::BAD_REQUEST, format!("{e}; nothing was stored"));
        }
    };
    for notice in &parsed.notices {
        tracing::info!(peer = %peer, "{notice}");
    }
    let planner = state.planner();
    let records = planner.records(&parsed.events);
    let lanes = lanes_touched(&records);
    let n_records = records.len();
    let targets: usize = records.iter().map(|r| r.jobs.len()).sum();
    let receipt = if records.is_empty() {
        Default::default()
    } else {
        match state.store.ingest(records, state.clock.now_ms()).await {
            Ok(r) => r,
            Err(e) => return store_unavailable(&e),
        }
    };
    for lane in &lanes {
        if wait_ms.is_some() {
            state.dispatcher.expedite(lane);
        } else {
            state.dispatcher.notify(lane);
        }
    }
    tracing::debug!(
        peer = %peer,
        events = parsed.events.len(),
        records = n_records,
        targets,
        merged = receipt.jobs_merged,
        "accepted"
    );
    let mut answer = json!({
        "accepted": parsed.events.len(),
        "records": receipt.purge_ids,
        "targets": targets,
        "merged": receipt.jobs_merged,
        "notices": parsed.notices,
    });
    if let Some(ms) = wait_ms {
        let (purged, statuses, waited) = wait_for_purges(&state, &receipt.purge_ids, ms).await;
        answer["purged"] = json!(purged);
        answer["statuses"] = json!(statuses);
        answer["waited_ms"] = json!(waited);
    }
    (StatusCode::OK, Json(answer)).into_response()
}

/// Waits until every record is final or `timeout_ms` passes; returns whether all succeeded
/// (or had nothing to purge), the count per status, and how long it waited.
async fn wait_for_purges(
    state: &AppState,
    ids: &[i64],
    timeout_ms: u64,
) -> (bool, BTreeMap<String, usize>, u64) {
    let start = tokio::time::Instant::now();
    let deadline = start + std::time::Duration::from_millis(timeout_ms);
    let mut finished = state.dispatcher.finished();
    let mut lanes_running = true;
    loop {
        let mut records = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            match state
                .store
                .log(LogQuery {
                    ids: Some(chunk.to_vec()),
                    limit: chunk.len(),
                    ..Default::default()
                })
                .await
            {
                Ok(r) => records.extend(r),
                Err(e) => tracing::warn!(error = %e, "cannot read purge status while waiting"),
            }
        }
        let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
        for r in &records {
            *statuses.entry(r.status.as_str().to_owned()).or_default() += 1;
        }
        let done = records.len() == ids.len() && records.iter().all(|r| r.status.is_final());
        let waited = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        if done || tokio::time::Instant::now() >= deadline || state.shutdown.is_cancelled() {
            let purged = done
                && records
                    .iter()
                    .all(|r| matches!(r.status, Status::Succeeded | Status::Skipped));
            return (purged, statuses, waited);
        }
        tokio::select! {
            changed = finished.changed(), if lanes_running => {
                // The lanes stopped (shutdown): fall back to polling.
                lanes_running = changed.is_ok();
            }
            _ = tokio::time::sleep_until(deadline) => {},
            _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {},
            _ = state.shutdown.cancelled() => {},
        }
    }
}

fn store_unavailable(e: &StoreError) -> Response {
    tracing::error!(error = %e, "cannot store events; answering 503 so the sender retries");
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the queue cannot store events right now; retry later",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

/// `HEAD /v1/events`: liveness probe used by MinIO and others before they send.
pub async fn probe() -> StatusCode {
    StatusCode::OK
}

pub async fn describe() -> Json<serde_json::Value> {
    Json(json!({
        "endpoint": "POST /v1/events",
        "formats": ["aws-s3", "sns", "minio", "ceph", "cos", "eventbridge"],
    }))
}
