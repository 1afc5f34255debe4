//! `/v1/rules`: list, add (the `[[rules]]` keys as JSON, through the one rule check), show,
//! delete, enable and disable. Rules of the config file are listed but changed only in the
//! file (409, with the same words as the CLI). A change is in force when the answer comes
//! (other servers on the store, and changes made with the CLI, follow within a second).

use super::super::AppState;
use super::input::{query, JsonBody};
use crate::app::Planner;
use crate::clock::rfc3339_ms;
use crate::store::{RuleOrigin, StoredRule};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Json, Response};
use edgepurge_core::RuleSpec;
use serde_json::{json, Value};
use std::sync::Arc;

/// A rule as the API shows it: its `[[rules]]` keys, where it comes from and since when, and
/// whether the running server applies it now (`in_force`: enabled, and not left out because
/// it no longer passes the rule check, e.g. its provider account was removed).
pub fn view(r: &StoredRule, planner: &Planner) -> Value {
    let mut v = serde_json::to_value(&r.spec).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut v {
        // Shown whatever its value, so a reader need not know the default.
        map.insert("enabled".into(), json!(r.spec.enabled));
        map.insert("mode".into(), json!(r.spec.mode.as_str()));
        map.insert("min_interval_ms".into(), json!(r.spec.min_interval_ms));
        map.insert("origin".into(), json!(r.origin.as_str()));
        let in_force = planner
            .rules()
            .iter()
            .any(|p| p.spec.name == r.spec.name && p.spec.enabled);
        map.insert("in_force".into(), json!(in_force));
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
            let planner = state.ingestor.planner();
            let views: Vec<Value> = rules.iter().map(|r| view(r, &planner)).collect();
            Json(json!({ "rules": views })).into_response()
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
    apply(&state).await;
    let rule = match state.admin.rule(&name).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let mut r = (
        StatusCode::CREATED,
        Json(view(&rule, &state.ingestor.planner())),
    )
        .into_response();
    // Rule names are `A-Z a-z 0-9 . _ -` only: nothing to escape.
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/rules/{name}")) {
        r.headers_mut().insert(header::LOCATION, location);
    }
    r
}

pub async fn show(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match state.admin.rule(&name).await {
        Ok(r) => Json(view(&r, &state.ingestor.planner())).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn remove(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match state.admin.delete_rule(&name).await {
        Ok(()) => {
            apply(&state).await;
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
    apply(&state).await;
    match state.admin.rule(&name).await {
        Ok(r) => Json(view(&r, &state.ingestor.planner())).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Puts the stored rules in force now, rather than at the next poll for changes.
async fn apply(state: &AppState) {
    let _reloading = state.ingestor.reloading().await;
    match state.store.rules().await {
        Ok(stored) => {
            let (planner, problems) = state.ingestor.planner().with_rules(&stored);
            for p in problems {
                tracing::error!("{p}");
            }
            state.ingestor.set_planner(planner);
        }
        // The change is stored: the poll for changes applies it within a second.
        Err(e) => tracing::warn!(error = %e, "cannot reload rules after an admin API change"),
    }
}
