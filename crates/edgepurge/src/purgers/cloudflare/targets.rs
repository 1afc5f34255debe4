//! Purge targets → the items of a Cloudflare purge body (apis.md §C), and the body.
//!
//! - A URL is sent whole, as `files`: `{"files": ["https://cdn.example.com/a%20b.png"]}`. It
//!   is sent encoded (Cloudflare wants UTF-8 URLs percent-encoded): targets come encoded once
//!   already; what is still raw in a hand-typed URL is encoded, an existing `%XX` never twice.
//!   The fragment is dropped (browsers never send it). `*` is not a wildcard here.
//! - A directory becomes a prefix, `host/path` without scheme, query or fragment:
//!   `https://cdn.example.com/img/2024/` → `cdn.example.com/img/2024/`, the domain root →
//!   `cdn.example.com`. The trailing `/` is kept, so `img/2024/` does not also purge
//!   `img/2024-old/`. Cloudflare takes at most 31 path separators (`/`) in a prefix.
//! - A cache tag is sent as it is (Cloudflare matches tags case-insensitively); it may not
//!   hold blanks, commas or control characters.

use edgepurge_core::{printable, TargetKind};
use serde_json::{json, Value};

/// Most `/` in a prefix.
pub const MAX_PREFIX_SEPARATORS: usize = 31;
/// Longest tag: the whole `Cache-Tag` header of a response may be at most 16 KB, so no
/// longer tag can be on any object.
pub const MAX_TAG_LEN: usize = 16 * 1024;

/// The JSON field that carries items of `kind`.
pub fn field(kind: TargetKind) -> &'static str {
    match kind {
        TargetKind::Url => "files",
        TargetKind::Dir => "prefixes",
        TargetKind::Tag => "tags",
    }
}

/// The body purging `items` (all of `kind`): one purge mode per request.
pub fn body(kind: TargetKind, items: &[String]) -> Value {
    json!({ field(kind): items })
}

/// The item that purges `target` of `kind`, or why it cannot be sent.
pub fn item(kind: TargetKind, target: &str) -> Result<String, String> {
    match kind {
        TargetKind::Url => file(target),
        TargetKind::Dir => prefix(target),
        TargetKind::Tag => tag(target),
    }
}

/// Parses an `http(s)://` URL with a host and no credentials, refusing control characters
/// (the URL parser would silently drop tabs and line breaks).
fn http_url(target: &str) -> Result<url::Url, String> {
    let shown = || format!("{:?}", printable(target));
    if target.chars().any(char::is_control) {
        return Err(format!("{} holds a control character", shown()));
    }
    let u = url::Url::parse(target).map_err(|e| format!("{} is not a URL ({e})", shown()))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(format!("{} is not an http(s) URL", shown()));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("{} has no host", shown()));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!("{} holds credentials", shown()));
    }
    Ok(u)
}

fn file(target: &str) -> Result<String, String> {
    let mut u = http_url(target)?;
    u.set_fragment(None);
    Ok(u.into())
}

fn prefix(target: &str) -> Result<String, String> {
    let u = http_url(target)?;
    let shown = format!("{:?}", printable(target));
    if u.query().is_some() || u.fragment().is_some() {
        return Err(format!(
            "{shown}: a Cloudflare prefix cannot hold a query or fragment"
        ));
    }
    if let Some(port) = u.port() {
        return Err(format!(
            "{shown}: a Cloudflare prefix is host/path and cannot name port {port}; purge its \
             URLs instead (mode = \"url\")"
        ));
    }
    let host = u.host_str().unwrap_or_default();
    let prefix = match u.path() {
        "/" | "" => host.to_owned(),
        path => format!("{host}{path}"),
    };
    let separators = prefix.matches('/').count();
    if separators > MAX_PREFIX_SEPARATORS {
        return Err(format!(
            "prefix {:?} has {separators} path separators; Cloudflare takes at most \
             {MAX_PREFIX_SEPARATORS}: purge this folder's URLs instead (mode = \"url\")",
            printable(&prefix)
        ));
    }
    Ok(prefix)
}

fn tag(tag: &str) -> Result<String, String> {
    if tag.is_empty() || tag.len() > MAX_TAG_LEN {
        return Err(format!(
            "cache tag {:?} is {} bytes long; Cloudflare takes 1 to {MAX_TAG_LEN}",
            printable(tag),
            tag.len()
        ));
    }
    if let Some(c) = tag.chars().find(|c| !c.is_ascii_graphic() || *c == ',') {
        return Err(format!(
            "cache tag {:?} holds {c:?}; Cloudflare tags are visible ASCII without blanks or \
             commas",
            printable(tag)
        ));
    }
    Ok(tag.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_one_purge_mode() {
        let items = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(
            body(TargetKind::Url, &items).to_string(),
            r#"{"files":["a","b"]}"#
        );
        assert_eq!(
            body(TargetKind::Dir, &items).to_string(),
            r#"{"prefixes":["a","b"]}"#
        );
        assert_eq!(
            body(TargetKind::Tag, &items).to_string(),
            r#"{"tags":["a","b"]}"#
        );
    }

    #[test]
    fn urls_are_sent_whole_and_encoded_once() {
        let ok = |t: &str| item(TargetKind::Url, t).unwrap();
        assert_eq!(
            ok("https://cdn.example.com/img/%E7%8C%AB%20cat+1.jpg"),
            "https://cdn.example.com/img/%E7%8C%AB%20cat+1.jpg"
        );
        // Raw characters of a hand-typed URL are encoded; %XX is kept.
        assert_eq!(
            ok("https://cdn.example.com/a b/猫/100%25.png?v=1#top"),
            "https://cdn.example.com/a%20b/%E7%8C%AB/100%25.png?v=1"
        );
        assert_eq!(
            ok("http://CDN.Example.com:443"),
            "http://cdn.example.com:443/"
        );
        assert_eq!(
            ok("https://cdn.example.com:443/x"),
            "https://cdn.example.com/x"
        );
        assert_eq!(
            ok("https://cdn.example.com/*.css"),
            "https://cdn.example.com/*.css"
        );
        for bad in [
            "cdn.example.com/a",
            "ftp://cdn.example.com/a",
            "https://user:pw@cdn.example.com/a",
            "https://cdn.example.com/a\nb",
            "https://",
        ] {
            assert!(item(TargetKind::Url, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn directories_become_prefixes_without_scheme() {
        let ok = |t: &str| item(TargetKind::Dir, t).unwrap();
        assert_eq!(
            ok("https://cdn.example.com/img/2024/"),
            "cdn.example.com/img/2024/"
        );
        assert_eq!(ok("http://cdn.example.com/"), "cdn.example.com");
        assert_eq!(ok("https://cdn.example.com"), "cdn.example.com");
        assert_eq!(
            ok("https://cdn.example.com/a%20b/%E7%8C%AB/"),
            "cdn.example.com/a%20b/%E7%8C%AB/"
        );
        let err = item(TargetKind::Dir, "https://cdn.example.com/d/?x=1").unwrap_err();
        assert!(err.contains("query or fragment"), "{err}");
        let err = item(TargetKind::Dir, "https://cdn.example.com:8443/d/").unwrap_err();
        assert!(err.contains("port 8443"), "{err}");
    }

    #[test]
    fn prefixes_take_at_most_31_separators() {
        let dirs = |n: usize| {
            let mut t = "https://cdn.example.com/".to_owned();
            for i in 0..n {
                t.push_str(&format!("d{i}/"));
            }
            t
        };
        // host/d0/…/d29/ holds 31 separators; one folder deeper holds 32.
        let p = item(TargetKind::Dir, &dirs(30)).unwrap();
        assert_eq!(p.matches('/').count(), 31);
        let err = item(TargetKind::Dir, &dirs(31)).unwrap_err();
        assert!(
            err.contains("has 32 path separators; Cloudflare takes at most 31"),
            "{err}"
        );
    }

    #[test]
    fn tags_are_visible_ascii_without_commas() {
        assert_eq!(
            item(TargetKind::Tag, "product-a%20b").unwrap(),
            "product-a%20b"
        );
        for bad in ["", "a,b", "a b", "猫", "a\tb"] {
            assert!(item(TargetKind::Tag, bad).is_err(), "{bad:?}");
        }
        assert!(item(TargetKind::Tag, &"x".repeat(MAX_TAG_LEN)).is_ok());
        assert!(item(TargetKind::Tag, &"x".repeat(MAX_TAG_LEN + 1)).is_err());
    }
}
