//! Warming a self-hosted cache: a plain GET of the purged URL through the node (with the URL's
//! `Host`), as a visitor's first request would be, so the cache fetches the new object from
//! the origin and keeps it. The body is read and dropped as it comes, at most
//! [`MAX_WARM_BYTES`] (a cache keeps fetching from the origin after the client left).

use super::{host_and_path, node_label, retryable, HttpPurgeNode};
use crate::purgers::{snippet, PrefetchResponse, PurgeError, Verdict};
use reqwest::StatusCode;

/// The most of a warmed object's body read (and dropped) per GET.
pub const MAX_WARM_BYTES: u64 = 256 << 20;

/// The cache's own word on hit or miss, when it says (Varnish and ATS presets: `X-Cache`).
const CACHE_HEADERS: &[&str] = &["x-cache", "x-cache-status", "cache-status", "age"];

impl HttpPurgeNode {
    /// GETs `target` through this node and reads its body (dropped as it comes).
    pub(super) async fn warm(&self, target: &str) -> PrefetchResponse {
        let (host, path) = match host_and_path(target) {
            Ok(hp) => hp,
            Err(e) => return PrefetchResponse::failed(Verdict::Fatal, PurgeError::Request(e)),
        };
        let mut url = self.node.clone();
        url.set_path("");
        let full = format!("{}{}", url.as_str().trim_end_matches('/'), path);
        let what = format!("node {}: GET {path}", node_label(&self.node));
        let resp = match self
            .http
            .get(&full)
            .header(reqwest::header::HOST, &host)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return PrefetchResponse::failed(
                    Verdict::RetryLater { after: None },
                    PurgeError::Transport(format!(
                        "{what}: {}",
                        crate::purgers::describe_transport_error(&e)
                    )),
                )
            }
        };
        let status = resp.status();
        let cache: Vec<String> = CACHE_HEADERS
            .iter()
            .filter_map(|h| {
                resp.headers().get(*h).map(|v| {
                    format!(
                        "{h}: {}",
                        snippet(&String::from_utf8_lossy(v.as_bytes()), 60)
                    )
                })
            })
            .collect();
        let cache = if cache.is_empty() {
            String::new()
        } else {
            format!(", {}", cache.join(", "))
        };
        if !status.is_success() {
            let verdict = if retryable(status) {
                Verdict::RetryLater {
                    after: crate::purgers::retry_after(resp.headers()),
                }
            } else {
                Verdict::Fatal
            };
            let why = if status == StatusCode::NOT_FOUND {
                " (the origin does not have it)"
            } else {
                ""
            };
            return PrefetchResponse::failed(
                verdict,
                PurgeError::Answer {
                    code: Some(status.as_u16().to_string()),
                    message: format!("{what}: HTTP {}{why}{cache}", status.as_u16()),
                },
            );
        }
        match drain(resp).await {
            Ok((bytes, cut)) => PrefetchResponse {
                verdict: Verdict::Done,
                task_id: None,
                note: Some(format!(
                    "node {}: HTTP {}{cache}, {bytes} bytes{}",
                    node_label(&self.node),
                    status.as_u16(),
                    if cut { " read (stopped there)" } else { "" }
                )),
                error: None,
            },
            Err(e) => PrefetchResponse::failed(
                Verdict::RetryLater { after: None },
                PurgeError::Transport(format!("{what}: reading the body: {e}")),
            ),
        }
    }
}

/// Reads and drops a body; how many bytes, and whether it stopped at the cap.
async fn drain(mut resp: reqwest::Response) -> Result<(u64, bool), String> {
    let mut n: u64 = 0;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| crate::purgers::describe_transport_error(&e))?
    {
        n = n.saturating_add(chunk.len() as u64);
        if n >= MAX_WARM_BYTES {
            return Ok((n, true));
        }
    }
    Ok((n, false))
}
