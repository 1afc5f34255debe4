//! `GET /v1/providers`: each provider account's kind, what it purges, its lanes with their
//! state, queue, counters, last success and last error, and what is left of today's quota.
//! Built from the checked config's limits and the running lanes, never from credentials, so
//! no secret (nor where one is kept) can appear. `GET /v1/status`: the service as a whole.

use super::super::AppState;
use super::input::query;
use crate::clock::rfc3339_ms;
use crate::dispatch::policy::quota_day;
use crate::dispatch::LaneStatus;
use crate::store::{FanoutDepth, LaneDepth};
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Json, Response};
use edgepurge_core::TargetKind;
use serde_json::{json, Value};
use std::sync::Arc;

/// Keys of lane states that hold times (milliseconds in the dispatcher).
const STATE_TIMES: [&str; 4] = ["until", "since", "next_probe_at", "at"];

fn time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |t| json!(rfc3339_ms(t)))
}

/// What a running lane is doing, its counters and last error, times in RFC 3339: in
/// `GET /v1/providers` and `/healthz`.
pub fn lane_status_view(s: &LaneStatus) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut v {
        for key in STATE_TIMES {
            if let Some(ms) = map.get(key).and_then(Value::as_i64) {
                map.insert(key.into(), json!(rfc3339_ms(ms)));
            }
        }
        map.insert("last_success_at".into(), time(s.last_success_at));
    }
    v
}

fn lane_view(status: Option<&LaneStatus>, depth: Option<&LaneDepth>, lane: &str) -> Value {
    let mut v = match status {
        Some(s) => lane_status_view(s),
        // A lane this server does not run (its account was added after the start).
        None => json!({ "lane": lane, "state": "not_running" }),
    };
    if let Value::Object(map) = &mut v {
        map.remove("provider");
        map.insert("queue".into(), depth_view(depth));
    }
    v
}

/// A lane's queue: its depths and the time of its oldest pending purge (RFC 3339).
pub fn depth_view(d: Option<&LaneDepth>) -> Value {
    let d = d.cloned().unwrap_or_default();
    json!({
        "pending": d.pending,
        "waiting_batches": d.waiting_batches,
        "inflight_batches": d.inflight_batches,
        "dead_batches": d.dead_batches,
        "oldest_pending_at": time(d.oldest_pending_at),
    })
}

/// An account's targets waiting to be expanded into one job per lane (http-purge nodes).
fn fanout_view(f: Option<&FanoutDepth>) -> Value {
    json!({
        "targets": f.map_or(0, |f| f.targets),
        "oldest_at": time(f.and_then(|f| f.oldest_at)),
    })
}

/// [`fanout_view`] with the account's name: `GET /v1/status` and `edgepurge status --json`.
pub fn fanout_queue_view(f: &FanoutDepth, served: Option<bool>) -> Value {
    let mut v = fanout_view(Some(f));
    if let Value::Object(map) = &mut v {
        map.insert("account".into(), json!(f.account));
        map.insert("served".into(), json!(served));
    }
    v
}

/// [`depth_view`] with the lane's name: `GET /v1/status` and `edgepurge status --json`.
/// `served`: whether a provider account of the config serves the lane
/// (false: its account was removed or renamed and nothing sends its work; null: not known,
/// no config file at hand).
pub fn lane_queue_view(d: &LaneDepth, served: Option<bool>) -> Value {
    let mut v = depth_view(Some(d));
    if let Value::Object(map) = &mut v {
        map.insert("lane".into(), json!(d.lane));
        map.insert("served".into(), json!(served));
    }
    v
}

pub async fn list(State(state): State<Arc<AppState>>, uri: Uri) -> Response {
    if let Err(r) = query(uri.query(), &[]) {
        return r.into_response();
    }
    let (depths, fanout) = match state.admin.status().await {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let statuses = state.dispatcher.statuses();
    let now = state.clock.now_ms();
    let planner = state.ingestor.planner();
    let mut out = Vec::new();
    for (name, account) in planner.providers() {
        let limits = account.limits();
        let (day, resets) = quota_day(now, limits.quota_utc_offset_s);
        let mut lanes = Vec::new();
        for lane in account.lanes() {
            let mut v = lane_view(
                statuses.iter().find(|s| s.lane == lane),
                depths.iter().find(|d| d.lane == lane),
                &lane,
            );
            let mut quota = Vec::new();
            for (kind, kl) in &limits.kinds {
                let Some(daily) = kl.daily_quota else {
                    continue;
                };
                let used = match state.store.quota_used(&lane, *kind, day).await {
                    Ok(u) => u,
                    Err(e) => return crate::app::AdminError::from(e).into_response(),
                };
                quota.push(json!({
                    "kind": kind.as_str(),
                    "daily": daily,
                    "used": used,
                    "left": daily.saturating_sub(used),
                    "resets_at": rfc3339_ms(resets),
                }));
            }
            if let Value::Object(map) = &mut v {
                map.insert("quota".into(), Value::Array(quota));
            }
            lanes.push(v);
        }
        let supports: Vec<&str> = TargetKind::ALL
            .into_iter()
            .filter(|k| account.supports(*k))
            .map(TargetKind::as_str)
            .collect();
        out.push(json!({
            "name": name,
            "kind": account.kind(),
            "supports": supports,
            "rate_per_s": limits.rate_per_s,
            "lanes": lanes,
            "fanout": fanout_view(fanout.iter().find(|f| f.account == *name)),
        }));
    }
    Json(json!({ "providers": out })).into_response()
}

pub async fn status(State(state): State<Arc<AppState>>, uri: Uri) -> Response {
    if let Err(r) = query(uri.query(), &[]) {
        return r.into_response();
    }
    let (depths, fanout) = match state.admin.status().await {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let lanes = state.dispatcher.statuses();
    let sources = crate::sources::snapshot(&state.sources);
    let (_, text) = super::super::health::status(state.dispatcher.is_stopping(), &lanes, &sources);
    let queue: Vec<Value> = depths
        .iter()
        .map(|d| lane_queue_view(d, state.admin.serves(&d.lane)))
        .collect();
    let planner = state.ingestor.planner();
    Json(json!({
        "status": text,
        "time": rfc3339_ms(state.clock.now_ms()),
        "version": env!("CARGO_PKG_VERSION"),
        "rules_in_force": planner.rules().iter().filter(|r| r.spec.enabled).count(),
        "lanes": queue,
        "fanout": fanout
            .iter()
            .map(|f| fanout_queue_view(f, state.admin.has_account(&f.account)))
            .collect::<Vec<_>>(),
        "sources": sources,
    }))
    .into_response()
}
