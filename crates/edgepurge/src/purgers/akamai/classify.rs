//! What a Fast Purge answer means (apis.md §D.2; techdocs.akamai.com/purge-cache "API
//! errors", "Rate limiting").
//!
//! Errors come as `application/api-problem+json`: Fast Purge's own (`httpStatus`, `title`,
//! `detail`, `supportId`, `describedBy`; a 429 adds `rateLimit…`), or the API gateway's
//! (`type` under `…/-/pep-authn/` or `…/-/pep-authz/`, `status`, `title`, `detail`), which
//! checks the EdgeGrid signature and the client's grants before Fast Purge sees the request.

use crate::purgers::Verdict;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use std::time::Duration;

/// An `application/api-problem+json` answer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: String,
    /// Fast Purge's field for the status.
    pub http_status: Option<u16>,
    /// The gateway's field for the status.
    pub status: Option<u16>,
    pub support_id: Option<String>,
    /// The gateway's request id.
    pub request_id: Option<String>,
    pub rate_limit: Option<u64>,
    pub rate_limit_current_request_size: Option<u64>,
    pub rate_limit_remaining: Option<u64>,
}

impl Problem {
    /// Parses a problem body; `None` when it is not one (a proxy's page, an empty body).
    pub fn parse(text: &str) -> Option<Problem> {
        let p: Problem = serde_json::from_str(text).ok()?;
        (p.http_status.is_some() || p.status.is_some() || !p.title.is_empty()).then_some(p)
    }

    /// Whether the API gateway answered (authentication or authorization), not Fast Purge.
    pub fn from_gateway(&self) -> bool {
        self.kind.contains("/pep-authn/") || self.kind.contains("/pep-authz/")
    }

    /// `title`, or the HTTP status: the error's short name.
    pub fn code(&self, status: u16) -> String {
        if !self.title.is_empty() {
            self.title.clone()
        } else {
            format!("HTTP {status}")
        }
    }

    fn detail_has(&self, what: &str) -> bool {
        self.detail.to_ascii_lowercase().contains(what)
    }
}

/// Whether a refusal names one object rather than the request: the whole request failed
/// because of it ("If any object you specify fails to purge, the entire request fails"), so
/// the others are sent again without it. Fast Purge titles them `unauthorized arl`,
/// `unauthorized cpcode`, `bad URL`, `bad URL hostname`, … with the object in `detail`.
pub fn is_per_target(status: u16, p: &Problem) -> bool {
    if p.from_gateway() || !matches!(status, 400 | 403) {
        return false;
    }
    let t = p.title.to_ascii_lowercase();
    t.starts_with("unauthorized") || t.starts_with("bad url") || t.contains("invalid cache tag")
}

/// Whether an error code (a problem title, as kept in the log) is a per-target refusal no
/// later attempt changes.
pub fn is_target_refusal(code: &str) -> bool {
    let t = code.to_ascii_lowercase();
    t.starts_with("unauthorized") || t.starts_with("bad url") || t.contains("invalid cache tag")
}

/// Of `objects` (their texts, as sent), the one a per-target refusal names in its `detail`:
/// the longest one the detail holds (a URL can be a prefix of another), with digits not
/// running on for CP codes.
pub fn named_object(detail: &str, objects: &[String]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, o) in objects.iter().enumerate() {
        if o.is_empty() {
            continue;
        }
        let found = detail.match_indices(o.as_str()).any(|(at, m)| {
            let before = detail[..at].chars().next_back();
            let after = detail[at + m.len()..].chars().next();
            let boundary = |c: Option<char>| {
                c.is_none_or(|c| !(c.is_ascii_alphanumeric() || "/%-._~?&=+:".contains(c)))
            };
            boundary(before) && boundary(after)
        });
        if found && best.is_none_or(|b| objects[b].len() < o.len()) {
            best = Some(i);
        }
    }
    best
}

/// The verdict for a problem answered with `status`, for a request of `items` objects
/// (per-target refusals are decided by the caller, which knows the objects). `retry_after`
/// is the `Retry-After` header, if any.
pub fn classify(
    status: u16,
    p: &Problem,
    items: usize,
    headers: &HeaderMap,
    retry_after: Option<Duration>,
) -> Verdict {
    let split_or_fatal = if items > 1 {
        Verdict::Split
    } else {
        Verdict::Fatal
    };
    match status {
        429 => {
            // A request larger than the whole bucket can never be accepted.
            if items > 1
                && header_u64(headers, "x-ratelimit-limit-objects").is_some_and(|l| {
                    p.rate_limit_current_request_size
                        .unwrap_or(items as u64)
                        .gt(&l)
                })
            {
                return Verdict::Split;
            }
            Verdict::RetryLater {
                after: Some(rate_limit_wait(headers, p, items, retry_after)),
            }
        }
        413 => split_or_fatal,
        408 | 500..=599 => Verdict::RetryLater { after: retry_after },
        // Clock skew: the next attempt is signed with a fresh timestamp.
        400 if p.detail_has("timestamp") => Verdict::RetryLater { after: None },
        // A nonce seen before (only a replaying proxy could cause it): signed afresh.
        400 | 401 if p.detail_has("nonce") => Verdict::RetryLater { after: None },
        400 | 401 | 403 | 404 | 405 | 410 | 411 | 415 => Verdict::Fatal,
        // Other 4xx are not documented: retried (bounded by max_attempts) rather than
        // dropping the purge.
        _ => Verdict::RetryLater { after: retry_after },
    }
}

/// The least wait after a 429: until the bucket that refused holds enough tokens, from the
/// `X-RateLimit-*` headers and the body's `rateLimit…` members; at least one second, five
/// when the answer says nothing (Akamai: "wait five seconds, then retry").
pub fn rate_limit_wait(
    headers: &HeaderMap,
    p: &Problem,
    items: usize,
    retry_after: Option<Duration>,
) -> Duration {
    let mut wait: Option<f64> = None;
    let mut longer = |s: f64| {
        if s.is_finite() && s >= 0.0 {
            wait = Some(wait.map_or(s, |w: f64| w.max(s)));
        }
    };
    // The requests bucket (one token per request).
    if header_u64(headers, "x-ratelimit-remaining") == Some(0) {
        if let Some(rate) = header_f64(headers, "x-ratelimit-limit-per-second").filter(|r| *r > 0.0)
        {
            longer(1.0 / rate);
        }
    }
    // The object bucket (one token per URL, tag or CP code of the request).
    let size = p.rate_limit_current_request_size.unwrap_or(items as u64);
    let remaining = p
        .rate_limit_remaining
        .or_else(|| header_u64(headers, "x-ratelimit-remaining-objects"));
    let rate = header_f64(headers, "x-ratelimit-limit-per-second-objects").filter(|r| *r > 0.0);
    if let (Some(remaining), Some(rate)) = (remaining, rate) {
        if size > remaining {
            longer((size - remaining) as f64 / rate);
        }
    }
    if let Some(ra) = retry_after {
        longer(ra.as_secs_f64());
    }
    match wait {
        Some(s) => Duration::from_secs_f64(s.clamp(1.0, 3600.0)),
        None => Duration::from_secs(5),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name)?.parse().ok()
}

fn header_f64(headers: &HeaderMap, name: &str) -> Option<f64> {
    header_str(headers, name)?.parse().ok()
}

/// What the operator can do about an error, appended to its text. `sources` names where
/// each credential is read from.
pub fn hint(status: u16, p: &Problem, sources: &super::CredentialSources) -> Option<String> {
    let d = p.detail.to_ascii_lowercase();
    Some(match status {
        401 | 400 if d.contains("signature") => format!(
            "check client_secret (read from {}) and that nothing rewrites the request on its \
             way; the client token and secret must come from the same API client",
            sources.client_secret
        ),
        401 | 400 if d.contains("client token") => format!(
            "check client_token (read from {}) and host (read from {}): the token must be the \
             API client's whose host is used",
            sources.client_token, sources.host
        ),
        401 | 400 if d.contains("access token") => format!(
            "check access_token (read from {}): it must belong to the same API client as the \
             client token",
            sources.access_token
        ),
        401 | 400 if d.contains("timestamp") => {
            "the clock of this machine is off: keep it in sync (NTP); retried with a fresh \
             signature"
                .to_owned()
        }
        401 => format!(
            "the credentials were refused: check client_token ({}), client_secret ({}), \
             access_token ({}) and host ({}), all from the same .edgerc section",
            sources.client_token, sources.client_secret, sources.access_token, sources.host
        ),
        403 if p.from_gateway() => {
            "the API client lacks the grant: in Akamai Control Center → Identity and Access \
             Management → API clients, give it the API service \"CCU APIs\" (Fast Purge) with \
             access level READ-WRITE"
                .to_owned()
        }
        403 if p.title.to_ascii_lowercase().starts_with("unauthorized") => {
            "the account may not purge this object: its hostname or CP code is not one of \
             this account's properties"
                .to_owned()
        }
        403 => "the API client may not purge this content: check its \"CCU APIs\" grant \
                (READ-WRITE) and the account's contracts"
            .to_owned(),
        404 | 405 | 410 => "Fast Purge does not know this path: check `endpoint` (give the API \
                            host only, no path)"
            .to_owned(),
        415 | 411 => "the request was malformed (a bug in edgepurge: please report it)".to_owned(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn problem(status: u16, title: &str, detail: &str) -> Problem {
        Problem {
            title: title.into(),
            detail: detail.into(),
            http_status: Some(status),
            ..Problem::default()
        }
    }

    fn gateway(status: u16, title: &str, detail: &str, authz: bool) -> Problem {
        Problem {
            kind: format!(
                "https://problems.luna.akamaiapis.net/-/{}/deny",
                if authz { "pep-authz" } else { "pep-authn" }
            ),
            title: title.into(),
            detail: detail.into(),
            status: Some(status),
            ..Problem::default()
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn statuses_classify_per_the_documented_table() {
        let none = HeaderMap::new();
        let retry = Verdict::RetryLater { after: None };
        let p = |s| problem(s, "x", "y");
        for s in [408, 500, 502, 503, 504, 507] {
            assert_eq!(classify(s, &p(s), 3, &none, None), retry, "{s}");
        }
        assert_eq!(
            classify(503, &p(503), 3, &none, Some(Duration::from_secs(7))),
            Verdict::RetryLater {
                after: Some(Duration::from_secs(7))
            }
        );
        for s in [400, 401, 403, 404, 405, 410, 411, 415] {
            assert_eq!(classify(s, &p(s), 3, &none, None), Verdict::Fatal, "{s}");
        }
        assert_eq!(classify(413, &p(413), 3, &none, None), Verdict::Split);
        assert_eq!(classify(413, &p(413), 1, &none, None), Verdict::Fatal);
        assert_eq!(classify(418, &p(418), 1, &none, None), retry);
        let skew = gateway(400, "Bad request", "Invalid timestamp", false);
        assert_eq!(classify(400, &skew, 1, &none, None), retry);
        let sig = gateway(401, "Not authorized", "The signature does not match", false);
        assert_eq!(classify(401, &sig, 1, &none, None), Verdict::Fatal);
    }

    #[test]
    fn a_429_waits_until_the_refusing_bucket_refills() {
        // Akamai's example: 110 URLs asked, 94 left, 200 per second → 16/200 s, at least 1 s.
        let h = headers(&[
            ("x-ratelimit-remaining", "50"),
            ("x-ratelimit-limit-per-second", "50.00"),
            ("x-ratelimit-remaining-objects", "94"),
            ("x-ratelimit-limit-per-second-objects", "200.00"),
            ("x-ratelimit-limit-objects", "10000"),
        ]);
        let mut p = problem(429, "URL Rate Limit exceeded", "");
        p.rate_limit_current_request_size = Some(110);
        p.rate_limit_remaining = Some(94);
        assert_eq!(
            classify(429, &p, 110, &h, None),
            Verdict::RetryLater {
                after: Some(Duration::from_secs(1))
            }
        );
        // Tags: 40 asked, none left, 500 per minute → 4.8 s.
        let h = headers(&[
            ("x-ratelimit-remaining-objects", "0"),
            ("x-ratelimit-limit-per-second-objects", "8.33"),
        ]);
        let wait = rate_limit_wait(&h, &problem(429, "TAG Rate Limit exceeded", ""), 40, None);
        assert!((4.7..4.9).contains(&wait.as_secs_f64()), "{wait:?}");
        // CP codes: 2 asked, none left, 0.5 per second → 4 s; Retry-After longer wins.
        let h = headers(&[
            ("x-ratelimit-remaining-objects", "0"),
            ("x-ratelimit-limit-per-second-objects", "0.5"),
        ]);
        let p = problem(429, "CPCODE Rate Limit exceeded", "");
        assert_eq!(rate_limit_wait(&h, &p, 2, None), Duration::from_secs(4));
        assert_eq!(
            rate_limit_wait(&h, &p, 2, Some(Duration::from_secs(9))),
            Duration::from_secs(9)
        );
        // Nothing to go by: Akamai's advice, five seconds.
        assert_eq!(
            rate_limit_wait(&HeaderMap::new(), &p, 2, None),
            Duration::from_secs(5)
        );
        // More objects than the whole bucket holds: never accepted as one request.
        let h = headers(&[("x-ratelimit-limit-objects", "300")]);
        assert_eq!(classify(429, &p, 400, &h, None), Verdict::Split);
    }

    #[test]
    fn per_target_refusals_name_their_object() {
        let arl = problem(403, "unauthorized arl", "http://fpj-test.bad-ideas2.org/");
        assert!(is_per_target(403, &arl));
        assert!(is_target_refusal("unauthorized arl"));
        assert!(is_target_refusal("bad URL"));
        assert!(!is_target_refusal("Forbidden"));
        let grant = gateway(
            403,
            "Forbidden",
            "The client does not have the grant needed for the request",
            true,
        );
        assert!(!is_per_target(403, &grant));
        let objects: Vec<String> = [
            "https://fpj-test.bad-ideas2.org/a",
            "http://fpj-test.bad-ideas2.org/",
            "http://fpj-test.bad-ideas2.org/a",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(named_object(&arl.detail, &objects), Some(1));
        let bad = "Invalid or malformed URL 'http://fpj-test.bad-ideas2.org/a': contains …";
        assert_eq!(named_object(bad, &objects), Some(2));
        let codes: Vec<String> = ["12", "123", "1234"].map(String::from).to_vec();
        assert_eq!(named_object("123", &codes), Some(1));
        assert_eq!(named_object("CP code 1234 denied", &codes), Some(2));
        assert_eq!(named_object("nothing here", &codes), None);
    }

    #[test]
    fn hints_name_the_credential_or_the_grant_and_never_a_value() {
        let sources = super::super::CredentialSources {
            host: crate::secret::SecretSource::Env("H".into()),
            client_token: crate::secret::SecretSource::Env("CT".into()),
            client_secret: crate::secret::SecretSource::File("/run/cs".into()),
            access_token: crate::secret::SecretSource::Env("AT".into()),
        };
        let h = |s, p: &Problem| hint(s, p, &sources).unwrap();
        let sig = gateway(401, "Not authorized", "The signature does not match", false);
        assert!(h(401, &sig).contains("client_secret (read from file /run/cs)"));
        let ct = gateway(
            400,
            "Bad request",
            "Invalid authorization client token",
            false,
        );
        assert!(h(400, &ct).contains("client_token (read from environment variable CT)"));
        let at = gateway(
            400,
            "Bad request",
            "Invalid authorization access token",
            false,
        );
        assert!(h(400, &at).contains("access_token (read from environment variable AT)"));
        let grant = gateway(403, "Forbidden", "The client does not have the grant", true);
        assert!(h(403, &grant).contains("\"CCU APIs\"") && h(403, &grant).contains("READ-WRITE"));
        assert_eq!(hint(429, &problem(429, "x", ""), &sources), None);
    }

    #[test]
    fn problem_bodies_of_both_shapes_parse() {
        let fp = Problem::parse(
            r#"{"supportId":"edup-1","title":"URL Rate Limit exceeded","httpStatus":429,
                "detail":"","rateLimit":10000,"rateLimitCurrentRequestSize":110,
                "rateLimitRemaining":94}"#,
        )
        .unwrap();
        assert_eq!(fp.http_status, Some(429));
        assert_eq!(fp.rate_limit_remaining, Some(94));
        assert_eq!(fp.support_id.as_deref(), Some("edup-1"));
        assert!(!fp.from_gateway());
        let gw = Problem::parse(
            r#"{"type":"https://problems.luna.akamaiapis.net/-/pep-authn/deny",
                "title":"Not authorized","status":401,"detail":"The signature does not match",
                "requestId":"abc"}"#,
        )
        .unwrap();
        assert!(gw.from_gateway());
        assert_eq!(gw.code(401), "Not authorized");
        assert_eq!(Problem::parse("<html>502</html>"), None);
        assert_eq!(Problem::parse("{}"), None);
    }
}
