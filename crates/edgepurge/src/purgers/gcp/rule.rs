//! Purge targets → the body of `urlMaps.invalidateCache`, a `CacheInvalidationRule`
//! (`path`, `host`, `cacheTags`; apis.md §J.4, cloud.google.com cdn/docs
//! cache-invalidation-overview):
//!
//! - a URL: `{"host": its host, "path": its path}`: the path as clients request it (encoded
//!   once, as the target already is), without query or fragment (Cloud CDN cannot invalidate
//!   one query string alone: the path covers them all);
//! - a directory: `{"host", "path": "/dir/*"}`: everything under it;
//! - cache tags: `{"cacheTags": [...]}`, up to 10 (OR-ed), for every host of the URL map.
//!
//! A path starts with `/`, holds no `?` or `#`, and `*` only as the last character after a
//! `/`. A key holding `*` cannot be named exactly: its path is cut back to the last `/`
//! before the `*` and sent as `dir/*` (a few more objects invalidated, none missed).

use edgepurge_core::TargetKind;
use serde::Serialize;

/// Tags one request may carry (Compute API `CacheInvalidationRule.cacheTags`).
pub const MAX_TAGS: usize = 10;
/// Longest cache tag sent. Google's pages read state no per-tag limit; this only keeps a
/// runaway template from making megabyte bodies.
pub const MAX_TAG_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub struct Rule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(rename = "cacheTags", skip_serializing_if = "Vec::is_empty")]
    pub cache_tags: Vec<String>,
}

impl Rule {
    pub fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The rule for the operator: `host/path`, or the tags.
    pub fn describe(&self) -> String {
        if self.cache_tags.is_empty() {
            format!(
                "{}{}",
                self.host.as_deref().unwrap_or(""),
                self.path.as_deref().unwrap_or("")
            )
        } else {
            format!("cache tags {}", self.cache_tags.join(", "))
        }
    }
}

/// The rule that invalidates URL or directory `target`, or why there is none.
pub fn path_rule(kind: TargetKind, target: &str) -> Result<Rule, String> {
    let shown = || edgepurge_core::printable(target).into_owned();
    let u = url::Url::parse(target).map_err(|e| format!("{:?} is not a URL ({e})", shown()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("{:?} is not an http(s) URL", shown()));
    }
    let host = match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => return Err(format!("{:?} has no host", shown())),
    };
    let path = u.path();
    // Cloud CDN reads `*` only as a trailing wildcard, so a key holding one cannot be named
    // exactly. A `*` in the object's own name is covered by its directory (`/a/b*c.png` →
    // `/a/*`), never by a wider one: a `*` in a directory's name, or in a name at the top of
    // the host, would invalidate other objects (a whole host for the key `*`), so it is refused.
    let star_refused = || {
        format!(
            "{:?}: Cloud CDN cannot invalidate a path holding `*` except by a wildcard over \
             its directory, and that would reach beyond this object's directory; purge it \
             by hand if needed",
            shown()
        )
    };
    let path = match kind {
        TargetKind::Url => match path.find('*') {
            Some(i) => {
                let dir = path[..i].rfind('/').unwrap_or(0);
                if dir == 0 || path[dir + 1..].contains('/') {
                    return Err(star_refused());
                }
                format!("{}*", &path[..=dir])
            }
            None => path.to_owned(),
        },
        TargetKind::Dir => {
            if !path.ends_with('/') {
                return Err(format!("directory {:?} must end with /", shown()));
            }
            if path.contains('*') {
                return Err(star_refused());
            }
            format!("{path}*")
        }
        TargetKind::Tag => return Err("a tag is not a path".to_owned()),
    };
    Ok(Rule {
        host: Some(host),
        path: Some(path),
        cache_tags: Vec::new(),
    })
}

/// Whether `tag` can be sent: visible ASCII without commas (what a comma-separated
/// `Cache-Tag` header can carry), 1 to [`MAX_TAG_LEN`] bytes.
pub fn check_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() || tag.len() > MAX_TAG_LEN {
        return Err(format!(
            "cache tag {:?} is {} bytes long; edgepurge sends 1 to {MAX_TAG_LEN}",
            edgepurge_core::printable(tag),
            tag.len()
        ));
    }
    if let Some(c) = tag.chars().find(|c| !c.is_ascii_graphic() || *c == ',') {
        return Err(format!(
            "cache tag {:?} holds {c:?}; a Cache-Tag header lists visible ASCII tags \
             separated by commas",
            edgepurge_core::printable(tag)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: TargetKind, t: &str) -> (String, String) {
        let r = path_rule(kind, t).unwrap();
        (r.host.unwrap(), r.path.unwrap())
    }

    #[test]
    fn urls_become_host_and_path_as_requested() {
        let want = |h: &str, p: &str| (h.to_owned(), p.to_owned());
        for (target, host, path) in [
            (
                "https://cdn.example.com/a%20b+c.png",
                "cdn.example.com",
                "/a%20b+c.png",
            ),
            (
                "https://cdn.example.com/img/%E7%8C%AB.jpg",
                "cdn.example.com",
                "/img/%E7%8C%AB.jpg",
            ),
            (
                "https://cdn.example.com/100%25.png",
                "cdn.example.com",
                "/100%25.png",
            ),
            (
                "http://cdn.example.com:8080/x?v=1#f",
                "cdn.example.com:8080",
                "/x",
            ),
            (
                "https://cdn.example.com/q%3Fh%23.css",
                "cdn.example.com",
                "/q%3Fh%23.css",
            ),
            // `*` only as a trailing `/*`: the key is covered by its directory.
            (
                "https://cdn.example.com/a/b*c.png",
                "cdn.example.com",
                "/a/*",
            ),
        ] {
            assert_eq!(rule(TargetKind::Url, target), want(host, path), "{target}");
        }
        // Never wider than the object's own directory: a `*` at the top of the host (the key
        // `*` would have invalidated the whole host) or in a directory's name is refused.
        for target in [
            "https://cdn.example.com/*",
            "https://cdn.example.com/*x",
            "https://cdn.example.com/x*/a.png",
            "https://cdn.example.com/img/a*/b.png",
        ] {
            let err = path_rule(TargetKind::Url, target).unwrap_err();
            assert!(
                err.contains("cannot invalidate a path holding `*`"),
                "{err}"
            );
        }
    }

    #[test]
    fn directories_end_in_a_wildcard() {
        assert_eq!(
            rule(TargetKind::Dir, "https://cdn.example.com/docs/a%20b/"),
            ("cdn.example.com".into(), "/docs/a%20b/*".into())
        );
        assert_eq!(
            rule(TargetKind::Dir, "https://cdn.example.com/"),
            ("cdn.example.com".into(), "/*".into())
        );
        assert!(path_rule(TargetKind::Dir, "https://cdn.example.com/st*r/x/").is_err());
        assert!(path_rule(TargetKind::Dir, "https://cdn.example.com/file.css").is_err());
        assert!(path_rule(TargetKind::Url, "not a url").is_err());
        assert!(path_rule(TargetKind::Url, "ftp://cdn.example.com/x").is_err());
    }

    #[test]
    fn bodies_carry_only_what_is_set() {
        let r = path_rule(TargetKind::Url, "https://cdn.example.com/a.css").unwrap();
        assert_eq!(r.body(), r#"{"host":"cdn.example.com","path":"/a.css"}"#);
        let t = Rule {
            host: None,
            path: None,
            cache_tags: vec!["product-42".into(), "products".into()],
        };
        assert_eq!(t.body(), r#"{"cacheTags":["product-42","products"]}"#);
        assert_eq!(t.describe(), "cache tags product-42, products");
        assert_eq!(r.describe(), "cdn.example.com/a.css");
    }

    #[test]
    fn tags_are_visible_ascii_without_commas() {
        assert!(check_tag("product-42").is_ok());
        assert!(check_tag("a:b/c=d").is_ok());
        for bad in ["", "a,b", "a b", "猫", "tab\t", &"x".repeat(1025)] {
            assert!(check_tag(bad).is_err(), "{bad:?}");
        }
    }
}
