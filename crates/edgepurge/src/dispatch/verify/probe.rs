//! Fetching a purged URL the way a visitor would, through a cache node or the CDN itself,
//! and reading what the answer says about the copy served (status, ETag, length, cache
//! status). Only headers are read: a GET's body is dropped unread.

use super::judge::Seen;
use reqwest::header::{HeaderMap, CONTENT_LENGTH, ETAG, HOST};
use reqwest::Method;
use std::time::Duration;

/// Cache-status headers, in the order looked for (apis.md §K.5); the first present is noted.
const CACHE_STATUS: &[&str] = &[
    "x-cache",
    "cf-cache-status",
    "x-cache-lookup",
    "eo-cache-status",
    "akamai-cache-status",
    "cache-status",
];

/// Where a lane's caches are asked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    /// The URL itself: its host is the CDN.
    Direct,
    /// A self-hosted cache node (`scheme://host:port`), asked with the URL's `Host`.
    Node(url::Url),
}

impl Route {
    /// Where, for notes: `cdn` or `node 127.0.0.1:6081`.
    pub fn label(&self) -> String {
        match self {
            Route::Direct => "cdn".to_owned(),
            Route::Node(n) => format!("node {}", crate::purgers::http_purge::node_label(n)),
        }
    }
}

pub struct Prober {
    http: reqwest::Client,
}

impl Prober {
    pub fn new(timeout: Duration) -> Result<Prober, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            // A redirect is an answer about this URL, not something to follow elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            // Caches are reached directly, as for purges.
            .no_proxy()
            .user_agent(concat!("edgepurge-verify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(Prober { http })
    }

    /// `method` of `url` through `route`; `Err` says why there is no answer.
    pub async fn fetch(&self, route: &Route, url: &str, method: Method) -> Result<Seen, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let req = match route {
            Route::Direct => self.http.request(method.clone(), parsed),
            Route::Node(node) => {
                let host = parsed
                    .host_str()
                    .ok_or_else(|| format!("{url:?} has no host"))?;
                let host = match parsed.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host.to_owned(),
                };
                let mut path = parsed.path().to_owned();
                if let Some(q) = parsed.query() {
                    path.push('?');
                    path.push_str(q);
                }
                let full = format!("{}{path}", node.as_str().trim_end_matches('/'));
                self.http.request(method.clone(), full).header(HOST, host)
            }
        };
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{method}: {}", crate::purgers::describe_transport_error(&e)))?;
        Ok(read(resp.status().as_u16(), resp.headers()))
    }
}

/// What the status and headers of an answer say.
pub fn read(status: u16, headers: &HeaderMap) -> Seen {
    let text = |v: &reqwest::header::HeaderValue| {
        crate::purgers::snippet(&String::from_utf8_lossy(v.as_bytes()), 120)
    };
    Seen {
        status,
        etag: headers.get(ETAG).map(text),
        length: headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok()),
        cache: CACHE_STATUS.iter().find_map(|name| {
            let values: Vec<String> = headers.get_all(*name).iter().map(text).collect();
            (!values.is_empty()).then(|| {
                let canonical = match *name {
                    "x-cache" => "X-Cache",
                    "cf-cache-status" => "CF-Cache-Status",
                    "x-cache-lookup" => "X-Cache-Lookup",
                    "eo-cache-status" => "EO-Cache-Status",
                    "akamai-cache-status" => "Akamai-Cache-Status",
                    _ => "Cache-Status",
                };
                format!("{canonical}: {}", values.join(", "))
            })
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn headers_give_the_validator_and_the_cache_status() {
        let mut h = HeaderMap::new();
        h.insert(ETAG, HeaderValue::from_static("W/\"abc\""));
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("12"));
        h.append(
            "x-cache-lookup",
            HeaderValue::from_static("Hit From MemCache"),
        );
        h.append("x-cache-lookup", HeaderValue::from_static("Cache Hit"));
        let s = read(200, &h);
        assert_eq!(s.etag.as_deref(), Some("W/\"abc\""));
        assert_eq!(s.length, Some(12));
        assert_eq!(
            s.cache.as_deref(),
            Some("X-Cache-Lookup: Hit From MemCache, Cache Hit")
        );
        // A long header is cut before it reaches a note.
        let mut h = HeaderMap::new();
        h.insert(ETAG, HeaderValue::from_str(&"e".repeat(5000)).unwrap());
        assert!(read(200, &h).etag.unwrap().len() < 200);
        assert_eq!(
            read(404, &HeaderMap::new()),
            Seen {
                status: 404,
                ..Seen::default()
            }
        );
    }

    #[test]
    fn routes_are_named_for_notes() {
        assert_eq!(Route::Direct.label(), "cdn");
        let node = url::Url::parse("http://127.0.0.1:6081").unwrap();
        assert_eq!(Route::Node(node).label(), "node 127.0.0.1:6081");
    }
}
