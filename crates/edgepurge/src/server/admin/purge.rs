//! `POST /v1/purge`: URLs or directories purged by hand, through the same path as `edgepurge
//! purge` (the one target check, then [`Ingestor::accept_manual`]), optionally waiting for
//! the outcome like the webhook's `wait=purged`. `POST /v1/retry`: dead letters re-queued,
//! as `edgepurge retry` does, and their lanes woken.
//!
//! [`Ingestor::accept_manual`]: crate::app::Ingestor::accept_manual

use super::super::AppState;
use super::input::{invalid, query, JsonBody};
use crate::app::{IngestError, IngestOptions};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Json, Response};
use edgepurge_core::TargetKind;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Most targets one request may purge.
pub const MAX_TARGETS: usize = 10_000;
const DEFAULT_WAIT_MS: u64 = 10_000;
const MAX_WAIT_MS: u64 = 60_000;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    /// The provider account; may be left out when only one is configured.
    #[serde(default)]
    provider: Option<String>,
    /// `url` (default) or `dir`.
    #[serde(default)]
    kind: Option<String>,
    targets: Vec<String>,
}

pub async fn purge(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    JsonBody(body): JsonBody<PurgeBody>,
) -> Response {
    let params = match query(uri.query(), &["wait", "timeout_ms"]) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let mut wait = None;
    let mut timeout_ms = DEFAULT_WAIT_MS;
    for (name, value) in &params {
        match *name {
            "wait" if value == "purged" => wait = Some(()),
            "wait" => {
                return invalid(
                    "wait",
                    format!(
                        "wait={:?} is not supported; use wait=purged",
                        edgepurge_core::printable(value)
                    ),
                )
                .into_response()
            }
            _ => match value.parse::<u64>() {
                Ok(n) if n <= MAX_WAIT_MS => timeout_ms = n,
                _ => {
                    return invalid(
                        "timeout_ms",
                        format!(
                            "timeout_ms must be a whole number of milliseconds up to {MAX_WAIT_MS}"
                        ),
                    )
                    .into_response()
                }
            },
        }
    }
    let kind = match body.kind.as_deref() {
        None | Some("url") => TargetKind::Url,
        Some("dir") => TargetKind::Dir,
        Some(other) => {
            return invalid(
                "kind",
                format!(
                    "kind {:?} cannot be purged by hand; use \"url\" or \"dir\"",
                    edgepurge_core::printable(other)
                ),
            )
            .into_response()
        }
    };
    let planner = state.ingestor.planner();
    let providers = planner.providers();
    let provider =
        match (body.provider, providers.len()) {
            (Some(p), _) => p,
            (None, 1) => providers.keys().next().cloned().unwrap_or_default(),
            (None, 0) => return invalid(
                "provider",
                "no provider account is configured: add a [providers.NAME] section to the config",
            )
            .into_response(),
            (None, _) => {
                return invalid(
                    "provider",
                    format!(
                        "several provider accounts are configured ({}); name one in \"provider\"",
                        providers.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
                .into_response()
            }
        };
    if !providers.contains_key(&provider) {
        return invalid(
            "provider",
            format!(
                "provider {:?} is not in the config (configured: {})",
                edgepurge_core::printable(&provider),
                providers.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
        .into_response();
    }
    if body.targets.is_empty() {
        return invalid("targets", "nothing to purge: list URLs in \"targets\"").into_response();
    }
    if body.targets.len() > MAX_TARGETS {
        return invalid(
            "targets",
            format!(
                "{} targets in one request; send at most {MAX_TARGETS} at a time",
                body.targets.len()
            ),
        )
        .into_response();
    }
    let raw = body
        .targets
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t, format!("targets[{i}]")));
    let targets = match crate::app::check_targets(raw, kind) {
        Ok(t) => t,
        Err(refusal) => {
            return invalid(
                "targets",
                edgepurge_core::printable(&refusal.to_string()).into_owned(),
            )
            .into_response()
        }
    };
    let opts = IngestOptions {
        wait: wait.map(|()| Duration::from_millis(timeout_ms)),
        wait_for: Default::default(),
    };
    let accepted = match state
        .ingestor
        .accept_manual(&provider, kind, &targets, &opts)
        .await
    {
        Ok(a) => a,
        // Configuration the account cannot do (a kind it cannot purge).
        Err(IngestError::Refused(m)) => return invalid("kind", m).into_response(),
        Err(e) => return e.into_response(),
    };
    let mut answer = json!({
        "provider": provider,
        "kind": kind.as_str(),
        "records": accepted.records,
        "targets": accepted.targets,
        "merged": accepted.merged,
    });
    if let Some(w) = &accepted.wait {
        let statuses: serde_json::Map<String, serde_json::Value> = w
            .statuses
            .iter()
            .map(|(s, n)| (s.as_str().to_owned(), json!(n)))
            .collect();
        answer["purged"] = json!(w.purged);
        answer["statuses"] = serde_json::Value::Object(statuses);
        answer["waited_ms"] = json!(w.waited_ms);
    }
    (StatusCode::OK, Json(answer)).into_response()
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBody {
    /// Only this provider account's lanes.
    #[serde(default)]
    provider: Option<String>,
    /// Only batches holding a purge of this rule.
    #[serde(default)]
    rule: Option<String>,
}

pub async fn retry(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    JsonBody(body): JsonBody<RetryBody>,
) -> Response {
    if let Err(r) = query(uri.query(), &[]) {
        return r.into_response();
    }
    let requeued = match state
        .admin
        .retry(body.provider.as_deref(), body.rule.as_deref())
        .await
    {
        Ok(n) => n,
        // An account or rule that does not exist: the field that names it.
        Err(crate::app::AdminError::NotFound(m)) => {
            let unknown_provider = body
                .provider
                .as_ref()
                .is_some_and(|p| !state.ingestor.planner().providers().contains_key(p));
            let field = if unknown_provider { "provider" } else { "rule" };
            return invalid(field, m).into_response();
        }
        Err(e) => return e.into_response(),
    };
    if requeued > 0 {
        // Sent now, not at the lanes' next poll.
        let planner = state.ingestor.planner();
        let lanes: Vec<String> = match &body.provider {
            Some(p) => planner.lanes_of(p).to_vec(),
            None => state.dispatcher.lane_names().map(str::to_owned).collect(),
        };
        for lane in lanes {
            state.dispatcher.notify(&lane, 0);
        }
    }
    Json(json!({ "requeued": requeued })).into_response()
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscardBody {
    /// One lane no provider account serves any more.
    #[serde(default)]
    lane: Option<String>,
    /// Every lane of a provider account removed from the config, and its fan-out targets.
    #[serde(default)]
    provider: Option<String>,
}

/// What `POST /v1/discard` and `edgepurge discard --json` answer.
pub fn discarded_view(d: &crate::app::Discarded) -> Value {
    json!({
        "lanes": d.lanes,
        "batches": d.batches,
        "targets": d.targets,
        "dead_before": d.dead_before,
        "fanout_left": d.fanout_left,
        "waiting_until": d.waiting_until.map(crate::clock::rfc3339_ms),
    })
}

/// `POST /v1/discard`: the queued work of a lane, or of a provider account, that no account
/// of the config serves moved to the dead letters, as `edgepurge discard` does.
pub async fn discard(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    JsonBody(body): JsonBody<DiscardBody>,
) -> Response {
    if let Err(r) = query(uri.query(), &[]) {
        return r.into_response();
    }
    let (target, field) = match (body.lane, body.provider) {
        (Some(lane), None) => (crate::app::DiscardTarget::Lane(lane), "lane"),
        (None, Some(provider)) => (crate::app::DiscardTarget::Provider(provider), "provider"),
        _ => {
            return invalid(
                "lane",
                "give exactly one of \"lane\" and \"provider\"".to_owned(),
            )
            .into_response()
        }
    };
    // Run to the end (and the lanes' leases released) even if the caller hangs up.
    let admin = Arc::clone(&state.admin);
    let done = match tokio::spawn(async move { admin.discard(&target).await }).await {
        Ok(done) => done,
        Err(e) => {
            return crate::app::AdminError::Store(crate::store::StoreError::Unavailable(format!(
                "the discard stopped: {e}"
            )))
            .into_response()
        }
    };
    match done {
        Ok(d) => Json(discarded_view(&d)).into_response(),
        Err(crate::app::AdminError::NotFound(m)) => invalid(field, m).into_response(),
        Err(e) => e.into_response(),
    }
}
