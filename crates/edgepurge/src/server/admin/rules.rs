//! `/v1/rules`: list, add (the `[[rules]]` keys as JSON, through the one rule check), show,
//! delete, enable and disable. Rules of the config file are listed but changed only in the
//! file (409, with the same words as the CLI). A change is put in force at once.

use super::super::AppState;
use super::input::{query, JsonBody};
use crate::clock::rfc3339_ms;
use crate::store::{RuleOrigin, StoredRule};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Json, Response};
use edgepurge_core::RuleSpec;
use serde_json::{json, Value};
use std::sync::Arc;

/// A rule as the API shows it: its `[[rules]]` keys, then where it comes from and since when.
pub fn view(r: &StoredRule) -> Value {
    let mut v = serde_json::to_value(&r.spec).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut v {
        // Shown whatever its value, so a reader need not know the default.
        map.insert("enabled".into(), json!(r.spec.enabled));
        map.insert("mode".into(), json!(r.spec.mode.as_str()));
        map.insert("origin".into(), json!(r.origin.as_str()));
        // A config rule no server has installed yet has no creation time.
        map.insert(
            "created_at".into(),
            match (r.origin, r.created_at) {
                (RuleOrigin::Config, 0) => Value::Null,
                (_, t) => json!(rfc3339_ms(t)),
            },
        );
    }
    v
}

fn no_query(uri: &Uri) -> Result<(), super::input::Refusal> {
    query(uri.query(), &[]).map(|_| ())
}

pub async fn list(State(state): State<Arc<AppState>>, uri: Uri) -> Response {
    if let Err(r) = no_query(&uri) {
        return r.into_response();
    }
    match state.admin.rules().await {
        Ok(rules) => {
            Json(json!({ "rules": rules.iter().map(view).collect::<Vec<_>>() })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    JsonBody(spec): JsonBody<RuleSpec>,
) -> Response {
    let name = spec.name.clone();
    if let Err(e) = state.admin.add_rule(spec).await {
        return e.into_response();
    }
    state.rules_changed.notify_one();
    let rule = match state.admin.rule(&name).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mut r = (StatusCode::CREATED, Json(view(&rule))).into_response();
    // Rule names are `A-Z a-z 0-9 . _ -` only: nothing to escape.
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/rules/{name}")) {
        r.headers_mut().insert(header::LOCATION, location);
    }
    r
}

pub async fn show(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match state.admin.rule(&name).await {
        Ok(r) => Json(view(&r)).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn remove(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match state.admin.delete_rule(&name).await {
        Ok(()) => {
            state.rules_changed.notify_one();
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => e.into_response(),
    }
}

pub async fn enable(state: State<Arc<AppState>>, name: Path<String>) -> Response {
    set_enabled(state, name, true).await
}

pub async fn disable(state: State<Arc<AppState>>, name: Path<String>) -> Response {
    set_enabled(state, name, false).await
}

async fn set_enabled(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    enabled: bool,
) -> Response {
    if let Err(e) = state.admin.set_rule_enabled(&name, enabled).await {
        return e.into_response();
    }
    state.rules_changed.notify_one();
    match state.admin.rule(&name).await {
        Ok(r) => Json(view(&r)).into_response(),
        Err(e) => e.into_response(),
    }
}
