//! `GET /v1/log` (purge records) and `GET /v1/requests` (provider requests), newest first,
//! a page at a time: `{"records": [...], "next": cursor or null}`. The cursor is opaque to
//! callers; it holds the id below which the next page starts, so records added while a
//! caller pages neither repeat nor push others out of the pages.

use super::super::AppState;
use super::input::{self, invalid, query, Refusal};
use crate::clock::rfc3339_ms;
use crate::store::{LogQuery, LogRecord, RequestRecord, Status};
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Json, Response};
use base64::Engine;
use serde_json::{json, Value};
use std::sync::Arc;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// What a cursor pages through (a cursor of one list is refused by the other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Log,
    Requests,
}

impl List {
    fn tag(self) -> &'static str {
        match self {
            List::Log => "log",
            List::Requests => "requests",
        }
    }
}

fn cursor(list: List, before: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{before}", list.tag()))
}

fn read_cursor(list: List, text: &str) -> Result<i64, Refusal> {
    let bad = || {
        invalid(
            "cursor",
            format!(
                "cursor={:?} is not a cursor of /v1/{}: pass the `next` value of the previous \
                 page unchanged",
                edgepurge_core::printable(text),
                list.tag()
            ),
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| bad())?;
    let plain = String::from_utf8(bytes).map_err(|_| bad())?;
    let (tag, id) = plain.split_once(':').ok_or_else(bad)?;
    match id.parse::<i64>() {
        Ok(id) if tag == list.tag() && id > 0 => Ok(id),
        _ => Err(bad()),
    }
}

/// The page of `limit` from `rows` fetched with one more: the page, and the cursor for the
/// next one when there is more.
fn page<T>(
    mut rows: Vec<T>,
    limit: usize,
    id: impl Fn(&T) -> i64,
    list: List,
) -> (Vec<T>, Option<String>) {
    // The store gives the newest rows oldest first: newest first here.
    rows.reverse();
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = match rows.last() {
        Some(last) if more => Some(cursor(list, id(last))),
        _ => None,
    };
    (rows, next)
}

pub fn record_view(r: &LogRecord) -> Value {
    json!({
        "id": r.id,
        "time": rfc3339_ms(r.time),
        "updated": rfc3339_ms(r.updated),
        "rule": r.rule,
        "provider": r.provider,
        "format": r.format,
        "event": r.event,
        "bucket": r.bucket,
        "key": r.key,
        "event_id": r.event_id,
        "targets": r.targets,
        "status": r.status.as_str(),
        "attempts": r.attempts,
        "request_id": r.request_id,
        "task_id": r.task_id,
        "error": r.error,
        "completed_at": r.completed_at.map(rfc3339_ms),
        "etag": r.etag,
        "size": r.size,
        "verified": r.verified.map(|v| v.as_str()),
        "verify_note": r.verify_note,
        "warmed": r.warmed.map(|w| w.as_str()),
        "warm_note": r.warm_note,
        "warm_task": r.warm_task,
        "note": r.note,
    })
}

pub fn request_view(r: &RequestRecord) -> Value {
    json!({
        "id": r.id,
        "batch_id": r.batch_id,
        "lane": r.lane,
        "kind": r.kind,
        "attempt": r.attempt,
        "targets": r.targets,
        "started_at": rfc3339_ms(r.started_at),
        "finished_at": rfc3339_ms(r.finished_at),
        "took_ms": r.finished_at - r.started_at,
        "outcome": r.outcome,
        "http_status": r.http_status,
        "request_id": r.request_id,
        "task_id": r.task_id,
        "error": r.error,
    })
}

fn param<'a>(params: &'a [(&str, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

pub async fn records(State(state): State<Arc<AppState>>, uri: Uri) -> Response {
    let params = match query(uri.query(), &["rule", "status", "since", "limit", "cursor"]) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let status = match param(&params, "status").map(str::parse::<Status>) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => return invalid("status", e).into_response(),
    };
    let (limit, since, before) = match common(&state, &params, List::Log) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let rule = param(&params, "rule").map(str::to_owned);
    let q = LogQuery {
        rule,
        status,
        since,
        before,
        limit: limit + 1,
        ..Default::default()
    };
    match state.admin.log(q).await {
        Ok(rows) => {
            let (rows, next) = page(rows, limit, |r| r.id, List::Log);
            Json(json!({
                "records": rows.iter().map(record_view).collect::<Vec<_>>(),
                "next": next,
            }))
            .into_response()
        }
        Err(e) => e.into_response(),
    }
}

pub async fn requests(State(state): State<Arc<AppState>>, uri: Uri) -> Response {
    let params = match query(uri.query(), &["since", "limit", "cursor"]) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let (limit, since, before) = match common(&state, &params, List::Requests) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    match state.admin.requests(since, before, limit + 1).await {
        Ok(rows) => {
            let (rows, next) = page(rows, limit, |r| r.id, List::Requests);
            Json(json!({
                "records": rows.iter().map(request_view).collect::<Vec<_>>(),
                "next": next,
            }))
            .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `limit`, `since` and `cursor`, shared by both lists.
fn common(
    state: &AppState,
    params: &[(&str, String)],
    list: List,
) -> Result<(usize, Option<i64>, Option<i64>), Refusal> {
    let limit = input::limit(param(params, "limit"), DEFAULT_LIMIT, MAX_LIMIT)?;
    let since = input::since(param(params, "since"), state.clock.now_ms())?;
    let before = param(params, "cursor")
        .map(|c| read_cursor(list, c))
        .transpose()?;
    Ok((limit, since, before))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_belong_to_their_list() {
        let c = cursor(List::Log, 42);
        assert_eq!(read_cursor(List::Log, &c).unwrap(), 42);
        assert!(read_cursor(List::Requests, &c).is_err());
        for bad in ["", "42", "bG9nOng", "!!"] {
            assert!(read_cursor(List::Log, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_page_is_newest_first_with_a_cursor_only_when_more_exist() {
        let (rows, next) = page(vec![1, 2, 3, 4], 3, |r| *r, List::Log);
        assert_eq!(rows, vec![4, 3, 2]);
        assert_eq!(next.map(|c| read_cursor(List::Log, &c).unwrap()), Some(2));
        let (rows, next) = page(vec![1, 2, 3], 3, |r| *r, List::Log);
        assert_eq!(rows, vec![3, 2, 1]);
        assert_eq!(next, None);
    }
}
