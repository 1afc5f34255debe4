//! Purge targets → CloudFront invalidation items (apis.md §B.3, §J.1).
//!
//! - A URL becomes its path (and query, if any), relative to the distribution: `/` and what
//!   follows the host. The path is sent as a viewer requests it: CloudFront wants non-ASCII
//!   and RFC 1738 "unsafe" characters percent-encoded and nothing else ("or CloudFront will
//!   not invalidate the old version"). Targets come encoded once already (space `%20`, `%`
//!   `%25`, `+` kept); what is still raw here (a hand-typed URL) is encoded, never twice.
//! - `*` is CloudFront's wildcard, allowed only last. A key holding `*` cannot be named
//!   exactly, so its path is cut at the first `*` and sent as a wildcard covering it (a few
//!   more objects invalidated, none missed).
//! - A directory becomes `/dir/*`: everything under it, subdirectories included.
//! - A cache tag becomes `#tag` (visible ASCII, no comma, at most 256 characters).

use edgepurge_core::TargetKind;

/// Longest path CloudFront accepts.
pub const MAX_PATH_LEN: usize = 4000;
/// Longest cache tag CloudFront accepts (without the `#`).
pub const MAX_TAG_LEN: usize = 256;

/// One `Paths/Items/Path` of an invalidation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Item {
    pub text: String,
    /// Counts toward the 15 wildcard paths in progress.
    pub wildcard: bool,
}

/// The item that purges `target` of `kind`, or why it cannot be sent.
pub fn item(kind: TargetKind, target: &str) -> Result<Item, String> {
    let item = match kind {
        TargetKind::Url => {
            let path = encode(url_path(target)?);
            match path.find('*') {
                Some(i) => Item {
                    text: format!("{}*", &path[..i]),
                    wildcard: true,
                },
                None => Item {
                    text: path,
                    wildcard: false,
                },
            }
        }
        TargetKind::Dir => {
            let path = encode(url_path(target)?);
            if !path.ends_with('/') {
                return Err(format!("directory {target:?} must end with /"));
            }
            let cut = path.find('*').unwrap_or(path.len());
            Item {
                text: format!("{}*", &path[..cut]),
                wildcard: true,
            }
        }
        TargetKind::Tag => return tag(target),
    };
    if item.text.len() > MAX_PATH_LEN {
        return Err(format!(
            "the path of {target:?} is {} characters long; CloudFront takes at most {MAX_PATH_LEN}",
            item.text.len()
        ));
    }
    Ok(item)
}

fn tag(tag: &str) -> Result<Item, String> {
    if tag.is_empty() || tag.len() > MAX_TAG_LEN {
        return Err(format!(
            "cache tag {:?} is {} characters long; CloudFront takes 1 to {MAX_TAG_LEN}",
            edgepurge_core::printable(tag),
            tag.len()
        ));
    }
    if let Some(c) = tag.chars().find(|c| !c.is_ascii_graphic() || *c == ',') {
        return Err(format!(
            "cache tag {:?} holds {c:?}; CloudFront tags are visible ASCII without commas",
            edgepurge_core::printable(tag)
        ));
    }
    Ok(Item {
        text: format!("#{tag}"),
        wildcard: false,
    })
}

/// What follows the host of an `http(s)://` URL: its path and query (the fragment is not
/// sent by viewers), `/` when there is none.
fn url_path(target: &str) -> Result<&str, String> {
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        target.get(8..).unwrap_or_default()
    } else if lower.starts_with("http://") {
        target.get(7..).unwrap_or_default()
    } else {
        return Err(format!(
            "{:?} is not an http(s) URL",
            edgepurge_core::printable(target)
        ));
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
    if host_end == 0 {
        return Err(format!(
            "{:?} has no host",
            edgepurge_core::printable(target)
        ));
    }
    Ok(match &rest[host_end..] {
        "" => "/",
        p => p,
    })
}

/// Percent-encodes what CloudFront wants encoded and is still raw: bytes outside visible
/// ASCII, RFC 1738's unsafe `"<>\^`{|}` (`#` cannot occur here, `~` stays as viewers send
/// it), and a `%` that does not start an escape. A `?` query stays; a query gets no `/`
/// prefix of its own.
fn encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        out.push('/');
    }
    let bytes = path.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let escape_start = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        let raw =
            b.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&b) && (b != b'%' || escape_start);
        if raw {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(t: &str) -> String {
        item(TargetKind::Url, t).unwrap().text
    }

    #[test]
    fn hard_keys_keep_their_single_encoding() {
        // What edgepurge-core makes of hard keys, and what CloudFront must get.
        let table = [
            ("https://cdn.example.com/a%20b.png", "/a%20b.png"),
            ("https://cdn.example.com/a+b.png", "/a+b.png"),
            ("https://cdn.example.com/100%25.png", "/100%25.png"),
            (
                "https://cdn.example.com/img/%E7%8C%AB%20cat+1.jpg",
                "/img/%E7%8C%AB%20cat+1.jpg",
            ),
            ("https://cdn.example.com/a%23b%3Fc.png", "/a%23b%3Fc.png"),
            (
                "https://cdn.example.com/sub!$&'()+,;=:@~.txt",
                "/sub!$&'()+,;=:@~.txt",
            ),
            ("http://img.example.com:8080/base/x.css", "/base/x.css"),
            ("https://cdn.example.com//double//slash", "//double//slash"),
            ("https://cdn.example.com", "/"),
            ("https://cdn.example.com/", "/"),
        ];
        for (target, want) in table {
            assert_eq!(url(target), want, "{target}");
        }
    }

    #[test]
    fn raw_characters_of_hand_typed_urls_are_encoded_once() {
        assert_eq!(
            url("https://cdn.example.com/猫 1.png"),
            "/%E7%8C%AB%201.png"
        );
        assert_eq!(url("https://cdn.example.com/100%.png"), "/100%25.png");
        assert_eq!(url("https://cdn.example.com/a{b}|c"), "/a%7Bb%7D%7Cc");
        assert_eq!(url("https://cdn.example.com/q.js?v=1&x=2"), "/q.js?v=1&x=2");
        assert_eq!(url("https://cdn.example.com?v=1"), "/?v=1");
        assert_eq!(url("https://cdn.example.com/frag.html#top"), "/frag.html");
    }

    #[test]
    fn wildcards_are_last_and_counted() {
        let d = item(TargetKind::Dir, "https://cdn.example.com/docs/a%20b/").unwrap();
        assert_eq!(
            d,
            Item {
                text: "/docs/a%20b/*".into(),
                wildcard: true
            }
        );
        assert_eq!(
            item(TargetKind::Dir, "https://cdn.example.com/")
                .unwrap()
                .text,
            "/*"
        );
        // A key holding `*` is covered by a wildcard cut at its first `*`.
        let u = item(TargetKind::Url, "https://cdn.example.com/a*b/c*.png").unwrap();
        assert_eq!(u.text, "/a*");
        assert!(u.wildcard);
        assert!(
            !item(TargetKind::Url, "https://cdn.example.com/x")
                .unwrap()
                .wildcard
        );
        assert!(item(TargetKind::Dir, "https://cdn.example.com/file.css").is_err());
    }

    #[test]
    fn tags_take_a_hash_and_the_documented_limits() {
        let t = item(TargetKind::Tag, "product-42").unwrap();
        assert_eq!(t.text, "#product-42");
        assert!(!t.wildcard);
        assert_eq!(
            item(TargetKind::Tag, "a*b").unwrap().text,
            "#a*b",
            "no wildcard in tags"
        );
        assert!(item(TargetKind::Tag, &"t".repeat(256)).is_ok());
        assert!(item(TargetKind::Tag, &"t".repeat(257)).is_err());
        assert!(item(TargetKind::Tag, "a,b").is_err());
        assert!(item(TargetKind::Tag, "a b").is_err());
        assert!(item(TargetKind::Tag, "").is_err());
    }

    #[test]
    fn paths_longer_than_cloudfront_takes_are_refused() {
        let long = format!("https://cdn.example.com/{}", "a".repeat(4000));
        let err = item(TargetKind::Url, &long).unwrap_err();
        assert!(err.contains("4000"), "{err}");
        let ok = format!("https://cdn.example.com/{}", "a".repeat(3999));
        assert_eq!(url(&ok).len(), 4000);
        assert!(item(TargetKind::Url, "ftp://x/y").is_err());
        assert!(item(TargetKind::Url, "https:///y").is_err());
    }
}
