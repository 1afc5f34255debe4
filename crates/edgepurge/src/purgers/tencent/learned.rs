//! What the provider said about single targets, remembered for a while: a domain that is not
//! in the account (or not online), or a URL it refuses, fails at once in later batches
//! instead of failing a whole request and being bisected out again. Forgotten after
//! [`FORGET_AFTER`], so a domain added to the account meanwhile is tried again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Codes that condemn every URL of a domain.
const HOST_CODES: &[&str] = &[
    "ResourceNotFound.CdnHostNotExists",
    "ResourceUnavailable.CdnHostIsNotOnline",
    "UnauthorizedOperation.CdnHostUnauthorized",
    "InvalidParameter.CdnHostInvalidStatus",
];

pub fn is_host_code(code: &str) -> bool {
    HOST_CODES.contains(&code)
}

/// The `host[:port]` of a purge target, lower-cased; `None` for a target that is not a URL.
pub fn host_of(target: &str) -> Option<String> {
    let url = url::Url::parse(target).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

#[derive(Debug, Clone)]
struct Entry {
    code: String,
    why: String,
    until: Instant,
}

#[derive(Debug, Default)]
pub struct Learned {
    /// Keys are `host:<host>` or `url:<target>`.
    bad: Mutex<HashMap<String, Entry>>,
}

impl Learned {
    /// Why `target` is known to fail (its code and message), if it is.
    pub fn why_bad(&self, target: &str) -> Option<(String, String)> {
        let now = Instant::now();
        let mut bad = self.bad.lock().unwrap_or_else(|p| p.into_inner());
        bad.retain(|_, e| e.until > now);
        let host = host_of(target).map(|h| format!("host:{h}"));
        host.and_then(|h| bad.get(&h))
            .or_else(|| bad.get(&format!("url:{target}")))
            .map(|e| (e.code.clone(), e.why.clone()))
    }

    /// Remembers that every URL of `host` fails with `code`.
    pub fn bad_host(&self, host: &str, code: &str, message: &str) {
        tracing::warn!(
            host,
            code,
            "the provider refuses this domain: its URLs fail without a call for the next {} \
             min (add it to the account, or fix the rule's domains)",
            FORGET_AFTER.as_secs() / 60
        );
        self.insert(format!("host:{host}"), code, message);
    }

    /// Remembers that `target` fails with `code`.
    pub fn bad_url(&self, target: &str, code: &str, message: &str) {
        self.insert(format!("url:{target}"), code, message);
    }

    fn insert(&self, key: String, code: &str, message: &str) {
        let entry = Entry {
            code: code.to_owned(),
            why: message.to_owned(),
            until: Instant::now() + FORGET_AFTER,
        };
        let mut bad = self.bad.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: a flood of distinct bad URLs cannot grow this without limit.
        if bad.len() >= 10_000 {
            bad.clear();
        }
        bad.insert(key, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_hosts_and_urls_are_remembered() {
        let l = Learned::default();
        assert_eq!(l.why_bad("https://a.example/x"), None);
        l.bad_host(
            "a.example",
            "ResourceNotFound.CdnHostNotExists",
            "no such domain",
        );
        let (code, why) = l.why_bad("https://A.example/y?z").unwrap();
        assert_eq!(code, "ResourceNotFound.CdnHostNotExists");
        assert_eq!(why, "no such domain");
        assert_eq!(l.why_bad("https://a.example:8443/y"), None, "another port");
        l.bad_url(
            "https://b.example/long",
            "InvalidParameter.CdnUrlExceedLength",
            "too long",
        );
        assert!(l.why_bad("https://b.example/long").is_some());
        assert_eq!(l.why_bad("https://b.example/short"), None);
        assert_eq!(
            host_of("https://X.example:81/p").as_deref(),
            Some("x.example:81")
        );
        assert!(is_host_code("ResourceNotFound.CdnHostNotExists"));
        assert!(!is_host_code("InvalidParameter.CdnUrlExceedLength"));
    }
}
