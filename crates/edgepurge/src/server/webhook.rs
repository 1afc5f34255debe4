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
//! * `wait=completed`: the same, until the providers also confirmed each purge took effect
//!   (their purge tasks done; `completed` true or false in the answer).
//!
//! With `[server.pubsub_oidc]`, a bearer JWT is checked as a Pub/Sub push token
//! ([`super::oidc`]): refused with 401 and the reason, or 503 while Google's keys cannot be
//! fetched (Pub/Sub retries).

use super::answer::error;
use super::auth::{self, Caller, Denied};
use super::oidc::OidcError;
use super::refusals::Throttle;
use super::AppState;
use crate::app::{Accepted, IngestError, IngestOptions, Reservation, WaitFor, SMALL_BODY};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The query parameters a POST may carry.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Params {
    token: Option<String>,
    wait: Option<String>,
    timeout_ms: Option<u64>,
}

const DEFAULT_WAIT_MS: u64 = 10_000;
const MAX_WAIT_MS: u64 = 60_000;

/// Checks the caller: the webhook token (bearer header or `?token=`) or a Pub/Sub push token
/// when either is configured, else a loopback address. Refusals are logged (throttled), never
/// with the token.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
    peer: SocketAddr,
) -> Result<(), Box<Response>> {
    let oidc = state.pubsub_oidc.as_deref();
    let token = state.webhook_token.get();
    let caller = auth::check_caller(token.as_ref(), oidc.is_some(), headers, query_token, peer)
        .map_err(|d| {
            let why = match d {
                Denied::WrongToken => "wrong bearer token",
                Denied::MissingToken => "no bearer token",
                Denied::NotLoopback => "not loopback and no webhook token is configured (403)",
            };
            state.refused.unauthorized.note(peer, why);
            Box::new(match d {
                Denied::WrongToken if oidc.is_some() => unauthorized(
                    "the bearer token is neither the webhook token nor a Pub/Sub push token (a \
                 Google-signed JWT)",
                ),
                Denied::WrongToken => unauthorized("the bearer token is wrong"),
                Denied::MissingToken if oidc.is_some() => unauthorized(
                    "missing `Authorization: Bearer <token>`: a Pub/Sub push subscription with \
                 authentication sends it; or the server's webhook_token (also as `?token=`)",
                ),
                Denied::MissingToken => unauthorized(
                    "missing `Authorization: Bearer <token>` or `?token=` (the server's \
                 webhook_token)",
                ),
                Denied::NotLoopback => error(
                    StatusCode::FORBIDDEN,
                    "no webhook token is configured, so only loopback callers are accepted; set \
                 server.webhook_token_env or server.webhook_token_file",
                ),
            })
        })?;
    let (Caller::Jwt(token), Some(oidc)) = (caller, oidc) else {
        return Ok(());
    };
    let now_s = state.clock.now_ms().div_euclid(1000);
    match oidc.verify(token, now_s).await {
        Ok(_) => Ok(()),
        Err(OidcError::Refused(why)) => {
            let why = why.to_string();
            state.refused.pubsub_oidc.note(peer, &why);
            Err(Box::new(unauthorized(&format!(
                "the Pub/Sub push token is refused: {why}"
            ))))
        }
        Err(OidcError::Unavailable(why)) => {
            // Logged by the check when a fetch fails (once per refetch interval).
            let mut r = error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot check the Pub/Sub push token now: {why}; retry later"),
            );
            let retry = oidc.config().refetch_interval.as_secs().max(1).to_string();
            if let Ok(v) = HeaderValue::from_str(&retry) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Err(Box::new(r))
        }
    }
}

fn unauthorized(why: &str) -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, why);
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// The caller is checked from the head of the request, before its body is read.
pub async fn ingest(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let params: Params = match serde_urlencoded::from_str(parts.uri.query().unwrap_or("")) {
        Ok(p) => p,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad query string: use token=..., wait=purged and timeout_ms=<milliseconds>",
            )
        }
    };
    if let Err(r) = authenticate(&state, &parts.headers, params.token.as_deref(), peer).await {
        state
            .metrics
            .body(if r.status() == StatusCode::SERVICE_UNAVAILABLE {
                "unavailable"
            } else {
                "unauthorized"
            });
        return *r;
    }
    let wait_for = match params.wait.as_deref() {
        None => None,
        Some("purged") => Some(WaitFor::Purged),
        Some("completed") => Some(WaitFor::Completed),
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "wait={:?} is not supported; use wait=purged or wait=completed",
                    edgepurge_core::printable(other)
                ),
            )
        }
    };
    let wait_ms = wait_for.map(|_| {
        params
            .timeout_ms
            .unwrap_or(DEFAULT_WAIT_MS)
            .min(MAX_WAIT_MS)
    });
    // A declared length over the limit is refused from the head, without reading the body.
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes as u64) {
        state.metrics.body("refused");
        return too_large(state.max_body_bytes);
    }
    let deadline = tokio::time::Instant::now() + state.body_timeout;
    let read = read_body(&state, body, declared, deadline).await;
    let (body, reservation) = match read {
        Ok(b) => b,
        Err(ReadError::TooLarge) => {
            state.metrics.body("refused");
            return too_large(state.max_body_bytes);
        }
        Err(ReadError::Busy(e)) => {
            state.metrics.body("unavailable");
            return e.into_response();
        }
        Err(ReadError::Failed(e)) => {
            state.metrics.body("refused");
            return error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            );
        }
        Err(ReadError::TimedOut) => {
            state.metrics.body("refused");
            static SLOW: std::sync::LazyLock<Throttle> = std::sync::LazyLock::new(Default::default);
            if let Some(more) = SLOW.allow() {
                tracing::warn!(
                    peer = %peer,
                    more_since_last_line = more,
                    "a request body did not arrive in time"
                );
            }
            let mut r = error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within server.body_timeout_s ({} s); nothing was \
                     stored",
                    state.body_timeout.as_secs()
                ),
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
    };
    let opts = IngestOptions {
        wait: wait_ms.map(Duration::from_millis),
        wait_for: wait_for.unwrap_or_default(),
    };
    let accepted = match state
        .ingestor
        .accept_reserved(reservation, body, &opts)
        .await
    {
        Ok(a) => {
            state.metrics.body("accepted");
            a
        }
        Err(e) => {
            use crate::app::IngestError::*;
            state.metrics.body(match e {
                Parse(_) | Refused(_) | TooLarge(_) => "refused",
                Store(_) | Overloaded(_) => "unavailable",
            });
            if matches!(e, crate::app::IngestError::Parse(_)) {
                let error = e.to_string();
                // One line every few seconds (with the count since): a sender cannot flood
                // the log with bad bodies.
                static BAD: std::sync::LazyLock<Throttle> =
                    std::sync::LazyLock::new(Default::default);
                if let Some(more) = BAD.allow() {
                    tracing::warn!(
                        peer = %peer,
                        more_since_last_line = more,
                        error = %edgepurge_core::printable(&error),
                        "refused a notification"
                    );
                }
            }
            return e.into_response();
        }
    };
    for notice in &accepted.notices {
        tracing::info!(peer = %peer, "{}", edgepurge_core::printable(notice));
    }
    tracing::debug!(
        peer = %peer,
        events = accepted.events,
        records = accepted.records.len(),
        targets = accepted.targets,
        merged = accepted.merged,
        "accepted"
    );
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        answer(&accepted),
    )
        .into_response()
}

fn too_large(max: usize) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("body is larger than server.max_body_bytes ({max} bytes); nothing was stored"),
    )
}

enum ReadError {
    TooLarge,
    TimedOut,
    /// No room in the parse budget in time.
    Busy(IngestError),
    Failed(String),
}

/// Reads a body of at most `server.max_body_bytes` by `deadline`, into one buffer sized from
/// its declared length (a large body is held once, not as chunks and then a copy of them).
///
/// Room in the parse budget is taken when the body's bytes start to arrive, not at its head
/// (a sender that stops after the head holds nothing): for the declared length, or, without
/// one, for the largest body once more than a small one has come.
async fn read_body(
    state: &AppState,
    mut body: axum::body::Body,
    declared: Option<u64>,
    deadline: tokio::time::Instant,
) -> Result<(Vec<u8>, Reservation), ReadError> {
    use http_body_util::BodyExt;
    let limit = state.max_body_bytes;
    let mut buf = Vec::new();
    let mut reservation: Option<Reservation> = None;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(frame)) => frame.map_err(|e| ReadError::Failed(e.to_string()))?,
            Ok(None) => break,
            Err(_) => return Err(ReadError::TimedOut),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > limit {
            return Err(ReadError::TooLarge);
        }
        if reservation.is_none() {
            let need = match declared {
                Some(n) => Some(n as usize),
                None if buf.len() + data.len() > SMALL_BODY => Some(limit),
                None => None,
            };
            if let Some(need) = need {
                let within = deadline.saturating_duration_since(tokio::time::Instant::now());
                let r = state
                    .ingestor
                    .reserve(need, within)
                    .await
                    .map_err(ReadError::Busy)?;
                reservation = Some(r);
                buf.reserve_exact(need.min(limit).saturating_sub(buf.len()));
            }
        }
        buf.extend_from_slice(&data);
    }
    let reservation = match reservation {
        Some(r) => r,
        // Small (or empty): never waits.
        None => state
            .ingestor
            .reserve(buf.len(), Duration::ZERO)
            .await
            .map_err(ReadError::Busy)?,
    };
    Ok((buf, reservation))
}

/// `{"accepted", "records", "targets", "merged", "notices"[, "purged", "statuses",
/// "waited_ms"]}`, written directly (the hot path of every webhook).
fn answer(a: &Accepted) -> String {
    let mut out = String::with_capacity(96 + a.records.len() * 8);
    let _ = write!(out, "{{\"accepted\":{},\"records\":[", a.events);
    for (i, id) in a.records.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{id}");
    }
    let notices = serde_json::to_string(&a.notices).unwrap_or_else(|_| "[]".into());
    let _ = write!(
        out,
        "],\"targets\":{},\"merged\":{},\"notices\":{notices}",
        a.targets, a.merged
    );
    if let Some(w) = &a.wait {
        let statuses: serde_json::Map<String, serde_json::Value> = w
            .statuses
            .iter()
            .map(|(s, n)| (s.as_str().to_owned(), json!(n)))
            .collect();
        let _ = write!(
            out,
            ",\"purged\":{},\"statuses\":{},\"waited_ms\":{}",
            w.purged,
            serde_json::Value::Object(statuses),
            w.waited_ms
        );
        if let Some(c) = w.completed {
            let _ = write!(out, ",\"completed\":{c}");
        }
    }
    out.push('}');
    out
}

/// `HEAD /v1/events`: liveness probe used by MinIO and others before they send.
pub async fn probe() -> StatusCode {
    StatusCode::OK
}

pub async fn describe() -> Json<serde_json::Value> {
    Json(json!({
        "endpoint": "POST /v1/events",
        "formats": ["aws-s3", "sns", "minio", "ceph", "cos", "eventbridge", "gcs", "oss", "r2"],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::WaitOutcome;
    use crate::store::Status;

    #[test]
    fn the_answer_is_the_documented_json() {
        let mut a = Accepted {
            events: 2,
            records: vec![7, 8],
            targets: 3,
            merged: 1,
            notices: vec!["s3:TestEvent \"ignored\"".into()],
            wait: None,
        };
        let v: serde_json::Value = serde_json::from_str(&answer(&a)).unwrap();
        assert_eq!(
            v,
            json!({"accepted": 2, "records": [7, 8], "targets": 3, "merged": 1,
                   "notices": ["s3:TestEvent \"ignored\""]})
        );
        a.wait = Some(WaitOutcome {
            purged: false,
            statuses: [(Status::Sent, 1), (Status::Succeeded, 1)]
                .into_iter()
                .collect(),
            waited_ms: 500,
            completed: None,
        });
        let v: serde_json::Value = serde_json::from_str(&answer(&a)).unwrap();
        assert_eq!(v["purged"], false);
        assert_eq!(v["statuses"], json!({"sent": 1, "succeeded": 1}));
        assert_eq!(v["waited_ms"], 500);
        assert!(v.get("completed").is_none(), "only for wait=completed");
        if let Some(w) = a.wait.as_mut() {
            w.completed = Some(true);
        }
        let v: serde_json::Value = serde_json::from_str(&answer(&a)).unwrap();
        assert_eq!(v["completed"], true);
    }
}
