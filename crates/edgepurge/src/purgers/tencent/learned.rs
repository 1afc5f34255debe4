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

/// Of those, the ones that last (the domain is not in the account, or the key may not purge
/// it): remembered. A domain that is offline or being reconfigured may be back any minute,
/// so those answers are not remembered.
const LASTING_HOST_CODES: &[&str] = &[
    "ResourceNotFound.CdnHostNotExists",
    "UnauthorizedOperation.CdnHostUnauthorized",
];

/// Most entries of each kind; beyond it expired ones are dropped, and new ones are not kept
/// until some expire (a flood of bad URLs cannot grow memory, nor push out bad domains).
const MAX_ENTRIES: usize = 10_000;

pub fn is_host_code(code: &str) -> bool {
    HOST_CODES.contains(&code)
}

pub fn is_lasting_host_code(code: &str) -> bool {
    LASTING_HOST_CODES.contains(&code)
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
    hosts: Mutex<HashMap<String, Entry>>,
    urls: Mutex<HashMap<String, Entry>>,
}

fn live(map: &Mutex<HashMap<String, Entry>>, key: &str, now: Instant) -> Option<Entry> {
    let map = map.lock().unwrap_or_else(|p| p.into_inner());
    map.get(key).filter(|e| e.until > now).cloned()
}

fn insert(map: &Mutex<HashMap<String, Entry>>, key: String, entry: Entry) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() >= MAX_ENTRIES {
        let now = Instant::now();
        map.retain(|_, e| e.until > now);
    }
    if map.len() < MAX_ENTRIES || map.contains_key(&key) {
        map.insert(key, entry);
    }
}

impl Learned {
    /// Why `target` is known to fail (its code and message), if it is.
    pub fn why_bad(&self, target: &str) -> Option<(String, String)> {
        let now = Instant::now();
        host_of(target)
            .and_then(|h| live(&self.hosts, &h, now))
            .or_else(|| live(&self.urls, target, now))
            .map(|e| (e.code, e.why))
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
        insert(&self.hosts, host.to_owned(), entry(code, message));
    }

    /// Forgets what was learned about these targets and their domains.
    pub fn forget(&self, targets: &[String]) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let mut urls = self.urls.lock().unwrap_or_else(|p| p.into_inner());
        for t in targets {
            if let Some(h) = host_of(t) {
                hosts.remove(&h);
            }
            urls.remove(t);
        }
    }

    /// Remembers that `target` fails with `code`.
    pub fn bad_url(&self, target: &str, code: &str, message: &str) {
        insert(&self.urls, target.to_owned(), entry(code, message));
    }
}

fn entry(code: &str, message: &str) -> Entry {
    Entry {
        code: code.to_owned(),
        why: message.to_owned(),
        until: Instant::now() + FORGET_AFTER,
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
        l.forget(&["https://b.example/long".into()]);
        assert_eq!(l.why_bad("https://b.example/long"), None);
        assert_eq!(l.why_bad("https://b.example/short"), None);
        assert_eq!(
            host_of("https://X.example:81/p").as_deref(),
            Some("x.example:81")
        );
        assert!(is_host_code("ResourceNotFound.CdnHostNotExists"));
        assert!(!is_host_code("InvalidParameter.CdnUrlExceedLength"));
        assert!(is_lasting_host_code("ResourceNotFound.CdnHostNotExists"));
        assert!(!is_lasting_host_code(
            "ResourceUnavailable.CdnHostIsNotOnline"
        ));
    }

    #[test]
    fn a_flood_of_bad_urls_stays_bounded_and_keeps_bad_domains() {
        let l = Learned::default();
        l.bad_host("a.example", "ResourceNotFound.CdnHostNotExists", "no");
        for i in 0..(MAX_ENTRIES + 500) {
            let url = format!("https://b.example/{i}");
            l.bad_url(&url, "InvalidParameter.CdnUrlExceedLength", "x");
        }
        assert!(l.urls.lock().unwrap().len() <= MAX_ENTRIES);
        assert!(l.why_bad("https://a.example/z").is_some());
        assert!(
            l.why_bad("https://b.example/0").is_some(),
            "the first ones stay"
        );
    }
}
