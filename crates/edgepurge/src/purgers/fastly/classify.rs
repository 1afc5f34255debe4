//! What a Fastly answer that did not purge means for the batch (apis.md §D.1): 429 waits for
//! `Fastly-RateLimit-Reset` (or `Retry-After`), 5xx is retried, a bad token, a token without
//! the purge scope or an unknown service is fatal at once with what to fix, and a 400 about
//! the keys bisects the batch until the bad key is alone.

use crate::purgers::Verdict;
use edgepurge_core::TargetKind;
use reqwest::header::HeaderMap;
use std::time::Duration;

/// The header that says when Fastly's rate-limit window resets (Unix time, seconds).
pub const RATE_LIMIT_RESET: &str = "fastly-ratelimit-reset";

/// How an answer that did not purge is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Throttled, a server error, or an answer edgepurge does not know: try again later.
    Retry,
    /// More keys than one request may carry: split the batch.
    TooMany,
    /// The token, its scope, the service id or the endpoint is wrong: no request passes
    /// until the operator fixes the config.
    Account,
    /// Fastly refused what the request carries: split until the bad item is alone, then
    /// refuse it for good.
    Items,
}

pub fn classify(status: u16) -> Class {
    match status {
        429 | 500.. => Class::Retry,
        401 | 403 | 404 | 405 => Class::Account,
        413 => Class::TooMany,
        400 | 422 => Class::Items,
        _ => Class::Retry,
    }
}

/// The verdict for a request of `items` items that got `class`; `after` is how long Fastly
/// asked to wait.
pub fn verdict(class: Class, items: usize, after: Option<Duration>) -> Verdict {
    match class {
        Class::Retry => Verdict::RetryLater { after },
        Class::TooMany | Class::Items if items > 1 => Verdict::Split,
        Class::TooMany | Class::Items | Class::Account => Verdict::Fatal,
    }
}

/// How long to wait before the next request: `Retry-After` (seconds) when given, else until
/// `Fastly-RateLimit-Reset` (Unix seconds) as seen at `now_ms`; a reset in the past is no
/// wait.
pub fn wait(headers: &HeaderMap, now_ms: i64) -> Option<Duration> {
    if let Some(d) = crate::purgers::retry_after(headers) {
        return Some(d);
    }
    let reset: i64 = headers
        .get(RATE_LIMIT_RESET)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let ms = reset.saturating_mul(1000).saturating_sub(now_ms).max(0);
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// What the operator should fix, for an account-level refusal. `token` names where the token
/// is read from (never the token).
pub fn hint(status: u16, kind: TargetKind, service_id: &str, token: &str) -> Option<String> {
    match status {
        401 => Some(format!(
            "Fastly does not accept the API token from {token}: it must be an API token, \
             copied whole, not expired or revoked"
        )),
        403 => Some(format!(
            "the API token from {token} may not purge: give it the scope purge_select (purge by \
             URL and surrogate key), with access to service {service_id} if it is limited to \
             some services"
        )),
        404 if kind == TargetKind::Tag => Some(format!(
            "check service_id: Fastly has no service {service_id} this token can see (the \
             service's ID from the control panel or `fastly service list`, not its name)"
        )),
        404 | 405 => {
            Some("check endpoint: it must be Fastly's API base, https://api.fastly.com".to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn answers_classify_per_the_retry_table() {
        for (status, want) in [
            (429, Class::Retry),
            (500, Class::Retry),
            (503, Class::Retry),
            (401, Class::Account),
            (403, Class::Account),
            (404, Class::Account),
            (405, Class::Account),
            (413, Class::TooMany),
            (400, Class::Items),
            (422, Class::Items),
            (409, Class::Retry),
            (200, Class::Retry),
        ] {
            assert_eq!(classify(status), want, "{status}");
        }
    }

    #[test]
    fn verdicts_split_batches_and_refuse_single_items() {
        let after = Some(Duration::from_secs(3));
        assert_eq!(
            verdict(Class::Retry, 9, after),
            Verdict::RetryLater { after }
        );
        assert_eq!(verdict(Class::Items, 2, None), Verdict::Split);
        assert_eq!(verdict(Class::TooMany, 256, None), Verdict::Split);
        assert_eq!(verdict(Class::Items, 1, None), Verdict::Fatal);
        assert_eq!(verdict(Class::Account, 256, None), Verdict::Fatal);
    }

    #[test]
    fn the_wait_is_retry_after_or_until_the_rate_limit_resets() {
        let mut h = HeaderMap::new();
        assert_eq!(wait(&h, 1_000_000), None);
        h.insert(RATE_LIMIT_RESET, HeaderValue::from_static("1003"));
        assert_eq!(wait(&h, 1_000_250), Some(Duration::from_millis(2_750)));
        // A reset already past: send again at once.
        assert_eq!(wait(&h, 1_004_000), Some(Duration::ZERO));
        h.insert(RATE_LIMIT_RESET, HeaderValue::from_static("soon"));
        assert_eq!(wait(&h, 1_000_000), None);
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(wait(&h, 1_000_000), Some(Duration::from_secs(7)));
    }

    #[test]
    fn hints_say_what_to_fix_without_the_token() {
        let src = "environment variable FASTLY_API_TOKEN";
        let s = "SU1Z0isxPaozGVKXdv0eY";
        let h = hint(401, TargetKind::Url, s, src).unwrap();
        assert!(
            h.contains("does not accept the API token from environment"),
            "{h}"
        );
        let h = hint(403, TargetKind::Tag, s, src).unwrap();
        assert!(h.contains("purge_select") && h.contains(s), "{h}");
        let h = hint(404, TargetKind::Tag, s, src).unwrap();
        assert!(h.starts_with("check service_id") && h.contains(s), "{h}");
        let h = hint(404, TargetKind::Url, s, src).unwrap();
        assert!(h.starts_with("check endpoint"), "{h}");
        assert_eq!(hint(429, TargetKind::Url, s, src), None);
        assert_eq!(hint(400, TargetKind::Tag, s, src), None);
    }
}
