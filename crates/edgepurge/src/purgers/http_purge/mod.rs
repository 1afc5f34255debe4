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

pub use config::{HttpPurgeSettings, KIND};
pub use preset::{default_limits, Methods, Preset};

use super::{snippet, Limits, PurgeError, PurgeResponse, Purger, Verdict};
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
    ) -> Result<(), Failure> {
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| Failure {
            retry: false,
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
                    return Ok(());
                }
                let redirect = status.is_redirection().then(|| {
                    format!(
                        " redirect to {}, not followed",
                        crate::purgers::redirect_target(resp.headers())
                    )
                });
                let body = resp.text().await.unwrap_or_default();
                Err(Failure {
                    retry: retryable(status),
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
    status: Option<u16>,
    text: String,
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

/// Space-joined tags, each string at most `max` bytes (a single longer tag stands alone).
fn tag_chunks(tags: &[String], max: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for tag in tags {
        if !current.is_empty() && current.len() + 1 + tag.len() > max {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(tag);
    }
    if !current.is_empty() {
        out.push(current);
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

    fn limits(&self) -> &Limits {
        &self.limits
    }

    async fn purge(&self, kind: TargetKind, targets: &[String]) -> PurgeResponse {
        // Build every request first: a malformed target fails the batch before anything is sent.
        let mut requests: Vec<(String, String, String, Option<(String, String)>)> = Vec::new();
        match kind {
            TargetKind::Url => {
                for t in targets {
                    match host_and_path(t) {
                        Ok((host, path)) => {
                            requests.push((self.methods.purge_method.clone(), host, path, None))
                        }
                        Err(e) => {
                            return PurgeResponse::failed(Verdict::Fatal, PurgeError::Request(e))
                        }
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
                for t in targets {
                    let (host, path) = match host_and_path(t) {
                        Ok(hp) => hp,
                        Err(e) => {
                            return PurgeResponse::failed(Verdict::Fatal, PurgeError::Request(e))
                        }
                    };
                    let req = match header {
                        Some(h) => (
                            method.clone(),
                            host,
                            "/".to_owned(),
                            Some((h.clone(), prefix_regex(&path))),
                        ),
                        None => (method.clone(), host, format!("{path}*"), None),
                    };
                    requests.push(req);
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
                for chunk in tag_chunks(targets, MAX_TAG_HEADER) {
                    requests.push((
                        method.clone(),
                        host.clone(),
                        "/".to_owned(),
                        Some((header.clone(), chunk)),
                    ));
                }
            }
        }

        let mut set: JoinSet<Result<(), Failure>> = JoinSet::new();
        let mut failures: Vec<Failure> = Vec::new();
        let mut queue = requests.into_iter();
        loop {
            while set.len() < self.concurrency {
                let Some((method, host, path, header)) = queue.next() else {
                    break;
                };
                set.spawn(Self::send(
                    self.http.clone(),
                    self.node.clone(),
                    method,
                    host,
                    path,
                    header,
                    self.methods.ok_status.clone(),
                ));
            }
            match set.join_next().await {
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(f))) => failures.push(f),
                Some(Err(e)) => failures.push(Failure {
                    retry: true,
                    status: None,
                    text: format!("purge task failed: {e}"),
                }),
                None => break,
            }
        }
        if failures.is_empty() {
            return PurgeResponse::done(200, None, None);
        }
        let total = match kind {
            TargetKind::Tag => tag_chunks(targets, MAX_TAG_HEADER).len(),
            _ => targets.len(),
        };
        let verdict = if failures.iter().any(|f| f.retry) {
            Verdict::RetryLater { after: None }
        } else {
            Verdict::Fatal
        };
        let mut error = format!(
            "node {}: {} of {total} request(s) failed: ",
            node_label(&self.node),
            failures.len()
        );
        let shown: Vec<&str> = failures.iter().take(3).map(|f| f.text.as_str()).collect();
        error.push_str(&shown.join("; "));
        if failures.len() > 3 {
            error.push_str(&format!("; and {} more", failures.len() - 3));
        }
        let http_status = failures.iter().find_map(|f| f.status);
        let error = match http_status {
            // The node answered at least once: its refusal decides.
            Some(status) => PurgeError::Answer {
                code: Some(status.to_string()),
                message: error,
            },
            None => PurgeError::Transport(error),
        };
        PurgeResponse {
            verdict,
            http_status,
            request_id: None,
            task_id: None,
            error: Some(error),
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
        assert!(chunks.iter().all(|c| c.len() <= MAX_TAG_HEADER));
        let rejoined: Vec<&str> = chunks.iter().flat_map(|c| c.split(' ')).collect();
        assert_eq!(rejoined.len(), 100);
        assert_eq!(tag_chunks(&["a".into(), "b".into()], 10), vec!["a b"]);
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
