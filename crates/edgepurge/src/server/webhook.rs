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

use super::answer::error;
use super::AppState;
use crate::app::IngestOptions;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
    let opts = IngestOptions {
        wait: wait_ms.map(Duration::from_millis),
    };
    let accepted = match state.ingestor.accept(&body, &opts).await {
        Ok(a) => a,
        Err(e) => {
            if matches!(e, crate::app::IngestError::Parse(_)) {
                tracing::warn!(peer = %peer, error = %e, "refused a notification");
            }
            return e.into_response();
        }
    };
    for notice in &accepted.notices {
        tracing::info!(peer = %peer, "{notice}");
    }
    tracing::debug!(
        peer = %peer,
        events = accepted.events,
        records = accepted.records.len(),
        targets = accepted.targets,
        merged = accepted.merged,
        "accepted"
    );
    let mut answer = json!({
        "accepted": accepted.events,
        "records": accepted.records,
        "targets": accepted.targets,
        "merged": accepted.merged,
        "notices": accepted.notices,
    });
    if let Some(w) = accepted.wait {
        let statuses: serde_json::Map<String, serde_json::Value> = w
            .statuses
            .iter()
            .map(|(s, n)| (s.as_str().to_owned(), json!(n)))
            .collect();
        answer["purged"] = json!(w.purged);
        answer["statuses"] = json!(statuses);
        answer["waited_ms"] = json!(w.waited_ms);
    }
    (StatusCode::OK, Json(answer)).into_response()
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
