//! What a Cloudflare answer means for the batch (apis.md §C): 429 and 5xx are retried
//! (`Retry-After` honoured), too many items split the batch, a bad token or zone is fatal at
//! once, and a 400 about the items bisects the batch until the bad item is alone.

use crate::purgers::Verdict;

/// How an answer that did not purge is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Throttled, a server error, or an answer edgepurge does not know: try again later.
    Retry,
    /// More items than one request may carry: split the batch.
    TooMany,
    /// The token, its permissions, the zone id or the endpoint is wrong: no request passes
    /// until the operator fixes the config.
    Account,
    /// Cloudflare refused what the request carries (a URL, prefix or tag it will not take):
    /// split until the bad item is alone, then refuse it for good.
    Items,
}

/// Codes that say the route (zone id) is wrong: 7003 "Could not route to /zones/…, perhaps
/// your object identifier is invalid?", 7000 "No route for that URI".
const ROUTE_CODES: &[i64] = &[7000, 7003];

/// Codes about the credentials: 10000 "Authentication error", 9106 "Missing X-Auth-Key,
/// X-Auth-Email or Authorization headers", 9109 "Unauthorized to access requested resource",
/// 6003 "Invalid request headers" (with 6100–6199, which header), 1000 "Invalid API Token".
fn is_credentials_code(code: i64) -> bool {
    matches!(code, 10000 | 9106 | 9109 | 6003 | 1000) || (6100..6200).contains(&code)
}

/// Whether a message says the request held too many items ("more than 100", "exceeds the
/// maximum"): Cloudflare's code for it is not documented, its text is.
fn says_too_many(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["too many", "more than", "exceed", "maximum", "max "]
        .iter()
        .any(|w| m.contains(w))
}

/// Classifies an answer that did not purge: its HTTP status and `errors` (codes, messages).
pub fn classify(status: u16, codes: &[i64], messages: &[&str]) -> Class {
    if status == 429 || status >= 500 {
        return Class::Retry;
    }
    if codes
        .iter()
        .any(|c| ROUTE_CODES.contains(c) || is_credentials_code(*c))
    {
        return Class::Account;
    }
    match status {
        401 | 403 | 404 | 405 | 415 => Class::Account,
        413 => Class::TooMany,
        400 | 422 if messages.iter().any(|m| says_too_many(m)) => Class::TooMany,
        400 | 422 => Class::Items,
        // 2xx with `success: false`, 409 and other surprises: retried, bounded by
        // max_attempts, rather than dropped.
        _ => Class::Retry,
    }
}

/// The verdict for a request of `items` items that got `class`; `after` is `Retry-After`.
pub fn verdict(class: Class, items: usize, after: Option<std::time::Duration>) -> Verdict {
    match class {
        Class::Retry => Verdict::RetryLater { after },
        Class::TooMany | Class::Items if items > 1 => Verdict::Split,
        Class::TooMany | Class::Items | Class::Account => Verdict::Fatal,
    }
}

/// What the operator should fix, for an account-level refusal. `token` names where the
/// token is read from (never the token).
pub fn hint(status: u16, codes: &[i64], zone_id: &str, token: &str) -> Option<String> {
    let route = codes.iter().any(|c| ROUTE_CODES.contains(c));
    if route || status == 404 {
        return Some(format!(
            "check zone_id: Cloudflare has no zone {zone_id} for this token (zone_id is the 32 \
             hex characters shown as Zone ID on the zone's Overview page; the token's zone \
             resources must include that zone)"
        ));
    }
    match status {
        401 => Some(format!(
            "Cloudflare does not accept the API token from {token}: it must be an API token \
             (not the Global API Key), copied whole, not expired or revoked"
        )),
        403 => Some(format!(
            "the API token from {token} is not allowed to purge zone {zone_id}: give it the \
             permission Zone → Cache Purge → Purge with this zone among its zone resources \
             (and, if it has a client IP filter, this host's address)"
        )),
        400 if codes.iter().any(|c| is_credentials_code(*c)) => Some(format!(
            "Cloudflare could not read the API token from {token}: it must be the token alone \
             (no `Bearer ` prefix, quotes or line breaks inside)"
        )),
        405 | 415 => {
            Some("check endpoint: it must be Cloudflare's API base ending in /client/v4".to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn answers_classify_per_the_retry_table() {
        let table: &[(u16, &[i64], &[&str], Class)] = &[
            (
                429,
                &[971],
                &["Please wait and consider throttling your request speed"],
                Class::Retry,
            ),
            (500, &[], &[], Class::Retry),
            (502, &[], &[], Class::Retry),
            (503, &[10000], &[], Class::Retry),
            (401, &[10000], &["Authentication error"], Class::Account),
            (403, &[10000], &["Authentication error"], Class::Account),
            (
                404,
                &[7003],
                &["Could not route to /zones/x/purge_cache"],
                Class::Account,
            ),
            (
                400,
                &[7003, 7000],
                &["Could not route", "No route for that URI"],
                Class::Account,
            ),
            (
                400,
                &[6003, 6111],
                &["Invalid request headers"],
                Class::Account,
            ),
            (
                400,
                &[9106],
                &["Missing X-Auth-Key, X-Auth-Email or Authorization headers"],
                Class::Account,
            ),
            (405, &[], &[], Class::Account),
            (413, &[], &[], Class::TooMany),
            (
                400,
                &[1234],
                &["You cannot purge more than 100 tags in one request"],
                Class::TooMany,
            ),
            (
                400,
                &[1],
                &["Request exceeds the maximum of 30 files"],
                Class::TooMany,
            ),
            (
                400,
                &[1012],
                &["Request must contain one of \"purge_everything\", \"files\""],
                Class::Items,
            ),
            (400, &[], &["Invalid url"], Class::Items),
            (200, &[], &[], Class::Retry),
            (409, &[], &[], Class::Retry),
        ];
        for (status, codes, messages, want) in table {
            assert_eq!(
                classify(*status, codes, messages),
                *want,
                "{status} {codes:?}"
            );
        }
    }

    #[test]
    fn verdicts_split_batches_and_refuse_single_items() {
        let wait = Some(Duration::from_secs(7));
        assert_eq!(
            verdict(Class::Retry, 5, wait),
            Verdict::RetryLater { after: wait }
        );
        assert_eq!(verdict(Class::TooMany, 100, None), Verdict::Split);
        assert_eq!(verdict(Class::Items, 2, None), Verdict::Split);
        assert_eq!(verdict(Class::Items, 1, None), Verdict::Fatal);
        assert_eq!(verdict(Class::TooMany, 1, None), Verdict::Fatal);
        assert_eq!(verdict(Class::Account, 100, None), Verdict::Fatal);
    }

    #[test]
    fn hints_say_what_to_fix_without_the_token() {
        let zone = "023e105f4ecef8ad9ca31a8372d0c353";
        let src = "environment variable CLOUDFLARE_API_TOKEN";
        let h = hint(403, &[10000], zone, src).unwrap();
        assert!(
            h.contains("Zone → Cache Purge → Purge") && h.contains(zone),
            "{h}"
        );
        let h = hint(401, &[10000], zone, src).unwrap();
        assert!(
            h.contains("does not accept the API token from environment variable"),
            "{h}"
        );
        for (status, codes) in [(404, &[7003][..]), (400, &[7003, 7000][..])] {
            let h = hint(status, codes, zone, src).unwrap();
            assert!(h.starts_with("check zone_id") && h.contains(zone), "{h}");
        }
        assert!(hint(400, &[6003, 6111], zone, src)
            .unwrap()
            .contains("Bearer"));
        assert_eq!(hint(429, &[971], zone, src), None);
        assert_eq!(hint(400, &[1012], zone, src), None);
    }
}
