//! The one mapping from the application's errors to HTTP answers: the status, what the
//! caller reads, and `Retry-After` when trying again later helps.

use crate::app::{AdminError, IngestError};
use crate::store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;

pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// 503 with `Retry-After`: the sender should try again.
fn unavailable(e: &StoreError) -> Response {
    let (message, retry_after) = match e {
        StoreError::Busy(_) => ("too many events are waiting to be stored; retry later", "1"),
        _ => ("the queue cannot store events right now; retry later", "5"),
    };
    // Every sender hears it; the log says it once every few seconds, with the count.
    static LOGGED: std::sync::LazyLock<super::refusals::Throttle> =
        std::sync::LazyLock::new(Default::default);
    if let Some(more) = LOGGED.allow() {
        tracing::error!(
            error = %e,
            more_since_last_line = more,
            "cannot store events; answering 503 so the sender retries"
        );
    }
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, message);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(retry_after));
    r
}

fn store_error(e: &StoreError) -> Response {
    match e {
        StoreError::Conflict(m) => error(StatusCode::CONFLICT, m.clone()),
        StoreError::NotFound(m) => error(StatusCode::NOT_FOUND, m.clone()),
        e => unavailable(e),
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        match &self {
            IngestError::Parse(_) | IngestError::Refused(_) => {
                error(StatusCode::BAD_REQUEST, self.to_string())
            }
            IngestError::Store(e) => store_error(e),
            IngestError::TooLarge(m) => error(StatusCode::PAYLOAD_TOO_LARGE, m.clone()),
            IngestError::Overloaded(m) => {
                // Counted in edgepurge_bodies_total{outcome="unavailable"}; a sender could
                // otherwise fill the log with one line per refusal.
                tracing::debug!("{m}");
                let mut r = error(StatusCode::SERVICE_UNAVAILABLE, m.clone());
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match &self {
            AdminError::Invalid(refusal) => (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": self.to_string(), "field": refusal.field() })),
            )
                .into_response(),
            AdminError::NotFound(m) => error(StatusCode::NOT_FOUND, m.clone()),
            AdminError::Conflict(m) => error(StatusCode::CONFLICT, m.clone()),
            AdminError::Store(e) => store_error(e),
        }
    }
}
