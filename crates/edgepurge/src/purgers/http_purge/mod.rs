//! Self-hosted caches purged over HTTP: Varnish, Squid, Apache Traffic Server, nginx.
//!
//! Each node of an `http-purge` provider is its own lane, so one node being down never holds
//! back the others, and a purge record is done only when every node answered. For every
//! target the node gets one request whose `Host` is the CDN URL's host:
//!
//! * URL: `PURGE /path` (method configurable);
//! * directory: `BAN /` with header `X-Ban-Url: ^/dir/` (a regex on the path, Varnish style),
//!   or, with no header configured, `PURGE /dir/*` (wildcard style, ngx_cache_purge / NGINX
//!   Plus);
//! * tag: `PURGEKEY /` with header `xkey-purge: k1 k2 …` (Varnish xkey), many tags per request.

mod config;
mod preset;
mod warm;

pub use config::{HttpPurgeSettings, KIND};
pub use preset::{default_limits, Methods, Preset};

use super::{snippet, Limits, PurgeError, PurgeResponse, Purger, TargetFailure, Verdict};
use async_trait::async_trait;
use edgepurge_core::TargetKind;
use reqwest::{Method, StatusCode};
use std::time::Duration;
use tokio::task::JoinSet;

/// `host:port` of a node.
fn node_host(node: &url::Url) -> String {
    let host = node.host_str().unwrap_or("?");
    let port = node.port_or_known_default().unwrap_or(80);
    format!("{host}:{port}")
}

/// `host:port` of a node (with its scheme when not http), for lane names and messages.
pub fn node_label(node: &url::Url) -> String {
    if node.scheme() == "http" {
        node_host(node)
    } else {
        format!("{}://{}", node.scheme(), node_host(node))
    }
}

/// One cache node.
pub struct HttpPurgeNode {
    provider: String,
    lane: String,
    node: url::Url,
    methods: Methods,
    concurrency: usize,
    limits: Limits,
    http: reqwest::Client,
}

impl HttpPurgeNode {
    pub fn build(settings: &HttpPurgeSettings) -> Result<Vec<HttpPurgeNode>, String> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            // Caches are reached directly; an environment proxy would purge the wrong thing.
            .no_proxy()
            // A 3xx is a failure: following it would purge (or report) some other server.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(settings.node_concurrency)
            .user_agent(concat!("edgepurge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        for (method, _) in std::iter::once((&settings.methods.purge_method, ()))
            .chain(settings.methods.dir.iter().map(|(m, _)| (m, ())))
            .chain(settings.methods.tag.iter().map(|(m, _)| (m, ())))
        {
            Method::from_bytes(method.as_bytes())
                .map_err(|_| format!("{method:?} is not a valid HTTP method"))?;
        }
        Ok(settings
            .nodes
            .iter()
            .map(|node| HttpPurgeNode {
                provider: settings.name.clone(),
                lane: settings.lane_name(node),
                node: node.clone(),
                methods: settings.methods.clone(),
                concurrency: settings.node_concurrency.max(1),
                limits: settings.limits.clone(),
                http: http.clone(),
            })
            .collect())
    }

    /// Sends one request to this node; `Ok` when the answer is in `ok_status`.
    async fn send(
        http: reqwest::Client,
        node: url::Url,
        method: String,
        host: String,
        path: String,
        header: Option<(String, String)>,
        ok: Vec<u16>,
    ) -> Result<u16, Failure> {
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| Failure {
            retry: false,
            retry_after: None,
            status: None,
            text: format!("{method:?} is not a valid HTTP method"),
        })?;
        let mut url = node.clone();
        // `path` is already percent-encoded (it comes from a purge target URL).
        url.set_path("");
        let full = format!("{}{}", url.as_str().trim_end_matches('/'), path);
        let mut req = http
            .request(method.clone(), &full)
            .header(reqwest::header::HOST, &host);
        if let Some((name, value)) = &header {
            req = req.header(name.as_str(), value.as_str());
        }
        let what = format!("{method} {path} (Host {host})");
        match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                if ok.contains(&status.as_u16()) {
                    return Ok(status.as_u16());
                }
                let retry_after = crate::purgers::retry_after(resp.headers());
                let redirect = status.is_redirection().then(|| {
                    format!(
                        " redirect to {}, not followed",
                        crate::purgers::redirect_target(resp.headers())
                    )
                });
                let body = crate::purgers::answer_text(resp).await.unwrap_or_default();
                Err(Failure {
                    retry: retryable(status),
                    retry_after,
                    status: Some(status.as_u16()),
                    text: format!(
                        "{what}: HTTP {status}{}: {}",
                        redirect.unwrap_or_default(),
                        snippet(&body, 120)
                    ),
                })
            }
            Err(e) => Err(Failure {
                retry: true,
                retry_after: None,
                status: None,
                text: format!(
                    "{what}: {}",
                    if e.is_timeout() {
                        "timed out".to_owned()
                    } else if e.is_connect() {
                        "connection failed (node down?)".to_owned()
                    } else {
                        e.to_string()
                    }
                ),
            }),
        }
    }
}

#[derive(Debug)]
struct Failure {
    retry: bool,
    /// The node's `Retry-After` (on 429 or 503).
    retry_after: Option<Duration>,
    status: Option<u16>,
    text: String,
}

impl Failure {
    fn verdict(&self) -> Verdict {
        if self.retry {
            Verdict::RetryLater {
                after: self.retry_after,
            }
        } else {
            Verdict::Fatal
        }
    }

    fn error(&self) -> PurgeError {
        match self.status {
            Some(status) => PurgeError::Answer {
                code: Some(status.to_string()),
                message: self.text.clone(),
            },
            None => PurgeError::Transport(self.text.clone()),
        }
    }
}

/// Refusals that will not change by themselves (ACL, unknown method, bad request) are fatal;
/// overload and server errors are retried.
fn retryable(status: StatusCode) -> bool {
    status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

/// Splits a target URL into the Host header and the request path (with query).
fn host_and_path(target: &str) -> Result<(String, String), String> {
    let url = url::Url::parse(target).map_err(|e| format!("{target:?} is not a URL: {e}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| format!("{target:?} has no host"))?;
    let host = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let mut path = url.path().to_owned();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    Ok((host, path))
}

/// Longest tag header edgepurge sends: caches refuse long headers (Varnish's default
/// `http_req_hdr_len` and nginx's header buffers are 8 KiB).
const MAX_TAG_HEADER: usize = 4000;

/// Space-joined tags, each string at most `max` bytes (a single longer tag stands alone),
/// with the indices of the tags it holds.
fn tag_chunks(tags: &[String], max: usize) -> Vec<(String, Vec<usize>)> {
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    let mut current = String::new();
    let mut held = Vec::new();
    for (i, tag) in tags.iter().enumerate() {
        if !current.is_empty() && current.len() + 1 + tag.len() > max {
            out.push((std::mem::take(&mut current), std::mem::take(&mut held)));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(tag);
        held.push(i);
    }
    if !current.is_empty() {
        out.push((current, held));
    }
    out
}

/// `^` + the path with regex metacharacters escaped: matches every URL under it.
pub fn prefix_regex(path: &str) -> String {
    let mut out = String::from("^");
    for c in path.chars() {
        if "\\.^$|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait]
impl Purger for HttpPurgeNode {
    fn lane(&self) -> &str {
        &self.lane
    }

    fn provider(&self) -> &str {
        &self.provider
    }

    fn probe_via(&self) -> Option<url::Url> {
        Some(self.node.clone())
    }

    /// One GET per URL, through this node; the node's own rate (`rate_per_s`) applies.
    fn prefetch_limits(&self) -> Option<super::PrefetchLimits> {
        Some(super::PrefetchLimits {
            max_urls: 1,
            rate_per_s: self.limits.rate_per_s,
            daily_quota: None,
        })
    }

    async fn prefetch(&self, urls: &[String]) -> super::PrefetchResponse {
        match urls {
            [url] => self.warm(url).await,
            _ => super::PrefetchResponse::failed(
                Verdict::Split,
                PurgeError::Request("a cache node is warmed one URL at a time".into()),
            ),
        }
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    async fn purge(&self, kind: TargetKind, targets: &[String]) -> PurgeResponse {
        // One request per target (per group of tags); each remembers the targets it carries,
        // so a failure fails only them. A malformed target fails alone, before anything goes.
        let mut requests: Vec<NodeRequest> = Vec::new();
        let mut failed: Vec<TargetFailure> = Vec::new();
        let malformed = |index: usize, e: String| TargetFailure {
            index,
            verdict: Verdict::Fatal,
            error: PurgeError::Request(e),
            group: 0,
        };
        match kind {
            TargetKind::Url => {
                for (i, t) in targets.iter().enumerate() {
                    match host_and_path(t) {
                        Ok((host, path)) => requests.push(NodeRequest {
                            method: self.methods.purge_method.clone(),
                            host,
                            path,
                            header: None,
                            targets: vec![i],
                        }),
                        Err(e) => failed.push(malformed(i, e)),
                    }
                }
            }
            TargetKind::Dir => {
                let Some((method, header)) = &self.methods.dir else {
                    return PurgeResponse::failed(
                        Verdict::Fatal,
                        PurgeError::Request(format!(
                            "provider {} has no directory purge (set dir_method)",
                            self.provider
                        )),
                    );
                };
                for (i, t) in targets.iter().enumerate() {
                    let (host, path) = match host_and_path(t) {
                        Ok(hp) => hp,
                        Err(e) => {
                            failed.push(malformed(i, e));
                            continue;
                        }
                    };
                    let (path, header) = match header {
                        Some(h) => ("/".to_owned(), Some((h.clone(), prefix_regex(&path)))),
                        None => (format!("{path}*"), None),
                    };
                    requests.push(NodeRequest {
                        method: method.clone(),
                        host,
                        path,
                        header,
                        targets: vec![i],
                    });
                }
            }
            TargetKind::Tag => {
                let Some((method, header)) = &self.methods.tag else {
                    return PurgeResponse::failed(
                        Verdict::Fatal,
                        PurgeError::Request(format!(
                            "provider {} has no tag purge (set tag_method)",
                            self.provider
                        )),
                    );
                };
                let host = node_host(&self.node);
                for (chunk, indices) in tag_chunks(targets, MAX_TAG_HEADER) {
                    requests.push(NodeRequest {
                        method: method.clone(),
                        host: host.clone(),
                        path: "/".to_owned(),
                        header: Some((header.clone(), chunk)),
                        targets: indices,
                    });
                }
            }
        }

        let total = requests.len() + failed.len();
        let mut set: JoinSet<(Vec<usize>, Result<u16, Failure>)> = JoinSet::new();
        let mut failures: Vec<(Vec<usize>, Failure)> = Vec::new();
        let mut statuses: Vec<u16> = Vec::new();
        let mut queue = requests.into_iter();
        loop {
            while set.len() < self.concurrency {
                let Some(r) = queue.next() else {
                    break;
                };
                let (http, node, ok) = (
                    self.http.clone(),
                    self.node.clone(),
                    self.methods.ok_status.clone(),
                );
                set.spawn(async move {
                    let out = Self::send(http, node, r.method, r.host, r.path, r.header, ok).await;
                    (r.targets, out)
                });
            }
            match set.join_next().await {
                Some(Ok((_, Ok(status)))) => statuses.push(status),
                Some(Ok((indices, Err(f)))) => failures.push((indices, f)),
                Some(Err(e)) => {
                    // A request task that died: its targets are unknown here, so the batch
                    // is retried whole.
                    return PurgeResponse::failed(
                        Verdict::RetryLater { after: None },
                        PurgeError::Transport(format!("purge task failed: {e}")),
                    );
                }
                None => break,
            }
        }
        // What the node answered most often (the request log shows a real status).
        let status = most_common(&statuses);
        if failures.is_empty() && failed.is_empty() {
            return PurgeResponse::done(status.unwrap_or(200), None, None);
        }
        let failing = failures.len() + failed.len();
        if statuses.is_empty() {
            return self.all_failed(failures, failed, total);
        }
        // Some went through: only the failed targets are sent again (or given up).
        for (indices, f) in failures {
            let verdict = f.verdict();
            let error = f.error();
            for i in indices {
                failed.push(TargetFailure {
                    index: i,
                    verdict: verdict.clone(),
                    error: error.clone(),
                    group: 0,
                });
            }
        }
        tracing::debug!(
            node = %node_label(&self.node),
            failing,
            total,
            "some purge requests failed"
        );
        PurgeResponse {
            failed,
            ..PurgeResponse::done(status.unwrap_or(200), None, None)
        }
    }
}

/// One request to a node and the targets it carries.
struct NodeRequest {
    method: String,
    host: String,
    path: String,
    header: Option<(String, String)>,
    targets: Vec<usize>,
}

fn most_common(statuses: &[u16]) -> Option<u16> {
    let mut counts: std::collections::BTreeMap<u16, usize> = std::collections::BTreeMap::new();
    for s in statuses {
        *counts.entry(*s).or_default() += 1;
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(s, _)| s)
}

impl HttpPurgeNode {
    /// Every request failed: the batch's verdict (retried when any failure may pass, after
    /// the longest `Retry-After` a node asked for), with the first few reasons.
    fn all_failed(
        &self,
        failures: Vec<(Vec<usize>, Failure)>,
        malformed: Vec<TargetFailure>,
        total: usize,
    ) -> PurgeResponse {
        let retry = failures.iter().any(|(_, f)| f.retry);
        let after = failures.iter().filter_map(|(_, f)| f.retry_after).max();
        let verdict = if retry {
            Verdict::RetryLater { after }
        } else {
            Verdict::Fatal
        };
        let texts: Vec<String> = failures
            .iter()
            .map(|(_, f)| f.text.clone())
            .chain(malformed.iter().map(|m| m.error.to_string()))
            .collect();
        let mut error = format!(
            "node {}: {} of {total} request(s) failed: ",
            node_label(&self.node),
            texts.len()
        );
        error.push_str(&texts.iter().take(3).cloned().collect::<Vec<_>>().join("; "));
        if texts.len() > 3 {
            error.push_str(&format!("; and {} more", texts.len() - 3));
        }
        let http_status = failures.iter().find_map(|(_, f)| f.status);
        let error = match http_status {
            // The node answered at least once: its refusal decides.
            Some(status) => PurgeError::Answer {
                code: Some(status.to_string()),
                message: error,
            },
            None if failures.is_empty() => PurgeError::Request(error),
            None => PurgeError::Transport(error),
        };
        PurgeResponse {
            http_status,
            ..PurgeResponse::failed(verdict, error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_host_and_encoded_path() {
        assert_eq!(
            host_and_path("https://cdn.example.com/img/%E7%8C%AB%201.png").unwrap(),
            ("cdn.example.com".into(), "/img/%E7%8C%AB%201.png".into())
        );
        assert_eq!(
            host_and_path("http://cdn.test:8080/a?b=1").unwrap(),
            ("cdn.test:8080".into(), "/a?b=1".into())
        );
    }

    #[test]
    fn long_tag_lists_are_split_across_requests() {
        let tags: Vec<String> = (0..100).map(|i| format!("{i:0>90}")).collect();
        let chunks = tag_chunks(&tags, MAX_TAG_HEADER);
        assert!(chunks.len() >= 3, "{}", chunks.len());
        assert!(chunks.iter().all(|(c, _)| c.len() <= MAX_TAG_HEADER));
        let rejoined: Vec<&str> = chunks.iter().flat_map(|(c, _)| c.split(' ')).collect();
        assert_eq!(rejoined.len(), 100);
        // Each chunk knows which tags it carries, in order.
        let held: Vec<usize> = chunks.iter().flat_map(|(_, i)| i.clone()).collect();
        assert_eq!(held, (0..100).collect::<Vec<_>>());
        assert_eq!(
            tag_chunks(&["a".into(), "b".into()], 10),
            vec![("a b".to_owned(), vec![0, 1])]
        );
    }

    #[test]
    fn directory_regexes_escape_metacharacters() {
        assert_eq!(prefix_regex("/a.b/(x)+/"), "^/a\\.b/\\(x\\)\\+/");
    }

    #[test]
    fn presets_know_their_not_cached_answers() {
        assert!(Preset::Squid.methods().ok_status.contains(&404));
        assert!(Preset::Trafficserver.methods().ok_status.contains(&404));
        assert!(Preset::Nginx.methods().ok_status.contains(&412));
        assert_eq!(Preset::Varnish.methods().ok_status, vec![200]);
        assert!(Preset::Varnish.methods().dir.is_some());
        assert!(Preset::Squid.methods().dir.is_none());
    }

    #[test]
    fn acl_refusals_are_fatal_and_overload_is_retried() {
        assert!(!retryable(StatusCode::FORBIDDEN));
        assert!(!retryable(StatusCode::METHOD_NOT_ALLOWED));
        assert!(!retryable(StatusCode::NOT_IMPLEMENTED));
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(retryable(StatusCode::BAD_GATEWAY));
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
    }
}
