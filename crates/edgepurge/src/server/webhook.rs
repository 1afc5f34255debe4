//! `POST /v1/events`: authenticate, parse (format auto-detected), match rules, commit to the
//! store, and only then answer 200. A body is accepted or refused whole.

use super::AppState;
use crate::ingest::lanes_touched;
use crate::store::StoreError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Checks the caller: a bearer token when one is configured, else a loopback address.
fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
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
                });
            match presented {
                Some(t) if token.matches(t.as_bytes()) => Ok(()),
                Some(_) => Err(Box::new(unauthorized("the bearer token is wrong"))),
                None => Err(Box::new(unauthorized(
                    "missing `Authorization: Bearer <token>` (the server's webhook_token)",
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
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(r) = authenticate(&state, &headers, peer) {
        return *r;
    }
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
        state.dispatcher.notify(lane);
    }
    tracing::debug!(
        peer = %peer,
        events = parsed.events.len(),
        records = n_records,
        targets,
        merged = receipt.jobs_merged,
        "accepted"
    );
    (
        StatusCode::OK,
        Json(json!({
            "accepted": parsed.events.len(),
            "records": receipt.purge_ids,
            "targets": targets,
            "merged": receipt.jobs_merged,
            "notices": parsed.notices,
        })),
    )
        .into_response()
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
