//! Purge targets → what a Fastly purge request carries (apis.md §D.1).
//!
//! - A URL becomes the `cached_url` of `POST /purge/{cached_url}`: host and path (and query),
//!   without scheme, as the official clients send it (not encoded again):
//!   `https://cdn.example.com/a%20b.png` → `cdn.example.com/a%20b.png`. Fastly's cache key
//!   holds no scheme, so the http and https URLs of one object are one purge. The fragment
//!   is dropped (browsers never send it). Fastly serves on ports 80 and 443 only: a URL with
//!   another port cannot be in its cache and is refused.
//! - A tag is a surrogate key: printable ASCII without blanks (0x21–0x7E), at most 1,024
//!   bytes, sent in the JSON body `{"surrogate_keys": [...]}` of a batch purge. Keys travel
//!   space-separated in Fastly's `Surrogate-Key` headers, so a key with a blank or a control
//!   character could name a second key: such a key is refused, never sent.

use edgepurge_core::printable;
use serde_json::{json, Value};

/// Most surrogate keys in one batch purge request.
pub const MAX_KEYS_PER_REQUEST: usize = 256;
/// Longest surrogate key Fastly indexes: a longer one can be on no object.
pub const MAX_KEY_BYTES: usize = 1024;

/// The `cached_url` that purges `target`, or why it cannot be sent.
pub fn cached_url(target: &str) -> Result<String, String> {
    let shown = || format!("{:?}", printable(target));
    if target.chars().any(char::is_control) {
        return Err(format!("{} holds a control character", shown()));
    }
    let u = url::Url::parse(target).map_err(|e| format!("{} is not a URL ({e})", shown()))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(format!("{} is not an http(s) URL", shown()));
    }
    let Some(host) = u.host_str().filter(|h| !h.is_empty()) else {
        return Err(format!("{} has no host", shown()));
    };
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!("{} holds credentials", shown()));
    }
    if let Some(port) = u.port() {
        return Err(format!(
            "{}: Fastly serves on ports 80 and 443 only, so nothing on port {port} is in its \
             cache",
            shown()
        ));
    }
    let mut out = format!("{host}{}", u.path());
    if let Some(q) = u.query() {
        out.push('?');
        out.push_str(q);
    }
    // The URL parser leaves what must be encoded encoded; this keeps it so for any input.
    if let Some(c) = out.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "{}: {:?} cannot be sent in a purge path; percent-encode it",
            shown(),
            c
        ));
    }
    Ok(out)
}

/// Checks a surrogate key; returns it as sent.
pub fn surrogate_key(target: &str) -> Result<String, String> {
    let shown = || format!("{:?}", printable(target));
    if target.is_empty() {
        return Err("an empty surrogate key cannot be purged".to_owned());
    }
    if let Some(c) = target.chars().find(|c| !('\x21'..='\x7e').contains(c)) {
        return Err(format!(
            "surrogate key {} holds {c:?}: Fastly keys are printable ASCII without blanks \
             (0x21–0x7E), and a blank would separate a second key",
            shown()
        ));
    }
    if target.len() > MAX_KEY_BYTES {
        return Err(format!(
            "surrogate key {}… is {} bytes long: Fastly indexes keys of at most {MAX_KEY_BYTES} \
             bytes, so no object can carry it (use a shorter tag template)",
            printable(&target[..40]),
            target.len()
        ));
    }
    Ok(target.to_owned())
}

/// The body of a batch surrogate-key purge.
pub fn keys_body(keys: &[String]) -> Value {
    json!({ "surrogate_keys": keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_host_and_path_without_scheme() {
        for (target, want) in [
            (
                "https://cdn.example.com/a%20b.png",
                "cdn.example.com/a%20b.png",
            ),
            (
                "http://cdn.example.com/a%20b.png",
                "cdn.example.com/a%20b.png",
            ),
            ("https://CDN.Example.com/", "cdn.example.com/"),
            ("https://cdn.example.com", "cdn.example.com/"),
            (
                "https://cdn.example.com/img/%E7%8C%AB+1.jpg#frag",
                "cdn.example.com/img/%E7%8C%AB+1.jpg",
            ),
            (
                "https://cdn.example.com/p?v=1&w=2",
                "cdn.example.com/p?v=1&w=2",
            ),
            ("https://cdn.example.com:443/x", "cdn.example.com/x"),
            // A raw character in a hand-typed URL is encoded once by the parser.
            (
                "https://cdn.example.com/猫 1.png",
                "cdn.example.com/%E7%8C%AB%201.png",
            ),
            // Dot segments are resolved before the path is sent: never one that climbs out
            // of /purge/ on the API.
            ("https://cdn.example.com/a/../../x", "cdn.example.com/x"),
            (
                "https://cdn.example.com/a/%2e%2e/%2E%2E/x",
                "cdn.example.com/x",
            ),
        ] {
            assert_eq!(cached_url(target).as_deref(), Ok(want), "{target}");
        }
    }

    #[test]
    fn urls_fastly_cannot_cache_are_refused() {
        for (target, why) in [
            ("https://cdn.example.com:8443/x", "ports 80 and 443 only"),
            ("ftp://cdn.example.com/x", "not an http(s) URL"),
            ("not a url", "is not a URL"),
            ("https://u:p@cdn.example.com/x", "holds credentials"),
            ("https://cdn.example.com/a\nb", "control character"),
        ] {
            let err = cached_url(target).unwrap_err();
            assert!(err.contains(why), "{target}: {err}");
        }
    }

    #[test]
    fn surrogate_keys_are_printable_ascii_without_blanks() {
        for ok in ["product-42", "img%2Fa%20b.png", "a!~", &"k".repeat(1024)] {
            assert_eq!(surrogate_key(ok).as_deref(), Ok(ok));
        }
        for (bad, why) in [
            ("two keys", "holds ' '"),
            ("tab\there", "holds '\\t'"),
            ("line\r\nSurrogate-Key: x", "holds '\\r'"),
            ("猫", "holds '猫'"),
            ("del\u{7f}", "holds '\\u{7f}'"),
            ("", "empty"),
        ] {
            let err = surrogate_key(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(!err.contains('\n') && !err.contains('\r'), "{err:?}");
        }
        let err = surrogate_key(&"k".repeat(1025)).unwrap_err();
        assert!(
            err.contains("1025 bytes long") && err.contains("at most 1024"),
            "{err}"
        );
    }

    #[test]
    fn the_batch_body_lists_the_keys() {
        let body = keys_body(&["a".into(), "b-2".into()]);
        assert_eq!(body.to_string(), r#"{"surrogate_keys":["a","b-2"]}"#);
    }
}
