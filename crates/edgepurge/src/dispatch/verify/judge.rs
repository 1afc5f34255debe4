//! What a CDN's answer says about a purge, compared with what the event said the object is
//! now. Pure: the planner asks [`start`] when a record is made, the verifier asks [`judge`]
//! about each answer and [`conclude`] about the record.

use crate::store::{Verified, VerifyStart};
use edgepurge_core::event::names;
use edgepurge_core::TargetKind;

/// What a cache answered to one probe (a HEAD or GET of a purged URL through it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub status: u16,
    pub etag: Option<String>,
    /// `Content-Length` as the header says (a HEAD has no body to count).
    pub length: Option<u64>,
    /// The cache's own word on hit or miss (`X-Cache: HIT`, `CF-Cache-Status: MISS`, ...),
    /// for the note.
    pub cache: Option<String>,
}

/// What one answer, or a record's answers together, say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Fresh(String),
    Stale(String),
    Unverifiable(String),
}

/// The object an event describes, as a fresh copy must show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected<'a> {
    /// A delete: fresh means the cache answers 404 or 410.
    pub removed: bool,
    pub etag: Option<&'a str>,
    pub size: Option<u64>,
}

impl<'a> Expected<'a> {
    pub fn of(event_name: &str, etag: Option<&'a str>, size: Option<u64>) -> Expected<'a> {
        Expected {
            removed: names::is_removal(event_name),
            etag: etag.filter(|e| !normalize_etag(e).is_empty()),
            size,
        }
    }
}

/// How a record of a rule with `verify = true` starts: pending (checked after its purge), or
/// unverifiable at once, with the reason, when nothing could tell fresh from stale.
pub fn start(
    event_name: &str,
    etag: Option<&str>,
    size: Option<u64>,
    kinds: impl IntoIterator<Item = TargetKind>,
) -> VerifyStart {
    let unverifiable = |why: String| VerifyStart {
        state: Verified::Unverifiable,
        note: Some(why),
        round: 0,
    };
    if let Some(kind) = kinds.into_iter().find(|k| *k != TargetKind::Url) {
        return unverifiable(format!(
            "not a URL: a {} purge has no one object to fetch",
            kind.as_str()
        ));
    }
    let expected = Expected::of(event_name, etag, size);
    if !expected.removed && expected.etag.is_none() && expected.size.is_none() {
        return unverifiable("no validator in the event (no ETag or size)".to_owned());
    }
    VerifyStart {
        state: Verified::Pending,
        note: None,
        round: 0,
    }
}

/// The targets that address the object itself: a directory URL (an `index_document` rule
/// also purges `dir/`) is served by a website endpoint as the index, or not at all by a plain
/// bucket, so its answer says nothing about this object and is not compared.
pub fn object_urls(targets: &[String]) -> Vec<&str> {
    targets
        .iter()
        .map(String::as_str)
        .filter(|t| !t.ends_with('/'))
        .collect()
}

/// An ETag compared as S3, COS and caches write it: quotes and a weak `W/` prefix dropped
/// (a cache that compresses marks the ETag weak), hex case ignored.
pub fn normalize_etag(etag: &str) -> String {
    let t = etag.trim();
    let t = t
        .strip_prefix("W/")
        .or_else(|| t.strip_prefix("w/"))
        .unwrap_or(t);
    t.trim_matches('"').trim().to_ascii_lowercase()
}

/// Whether a HEAD's answer lacks what `judge` needs, so a GET is worth sending: the cache
/// refused HEAD, or answered without the validator the event has.
pub fn needs_get(want: &Expected<'_>, head: &Seen) -> bool {
    if matches!(head.status, 405 | 501) {
        return true;
    }
    if want.removed || !(200..300).contains(&head.status) {
        return false;
    }
    let etag = want.etag.is_some() && head.etag.is_some();
    let size = want.size.is_some() && head.length.is_some();
    !(etag || size)
}

/// What one answer says about the object `want` describes.
pub fn judge(want: &Expected<'_>, seen: &Seen) -> Finding {
    let status = seen.status;
    let cache = seen
        .cache
        .as_deref()
        .map(|c| format!(", {c}"))
        .unwrap_or_default();
    if want.removed {
        return match status {
            404 | 410 => Finding::Fresh(format!("HTTP {status}{cache}")),
            200..=299 | 304 => Finding::Stale(format!(
                "HTTP {status}{cache}: still served after the delete"
            )),
            _ => Finding::Unverifiable(format!("HTTP {status}{cache}")),
        };
    }
    match status {
        200..=299 => {}
        404 | 410 => {
            return Finding::Stale(format!(
                "HTTP {status}{cache}: the new object is not served"
            ))
        }
        _ => return Finding::Unverifiable(format!("HTTP {status}{cache}")),
    }
    if let (Some(want_tag), Some(seen_tag)) = (want.etag, seen.etag.as_deref()) {
        return if normalize_etag(want_tag) == normalize_etag(seen_tag) {
            Finding::Fresh(format!("ETag {seen_tag}{cache}"))
        } else {
            Finding::Stale(format!(
                "ETag {seen_tag}{cache}, the event's is \"{}\"",
                normalize_etag(want_tag)
            ))
        };
    }
    if let (Some(want_size), Some(length)) = (want.size, seen.length) {
        let no_etag = if want.etag.is_some() {
            " (the cache sent no ETag)"
        } else {
            ""
        };
        return if want_size == length {
            Finding::Fresh(format!("size {length}{no_etag}{cache}"))
        } else {
            Finding::Stale(format!(
                "size {length}{no_etag}{cache}, the event's is {want_size}"
            ))
        };
    }
    Finding::Unverifiable(format!(
        "HTTP {status}{cache} without {} to compare with the event's",
        match (want.etag.is_some(), want.size.is_some()) {
            (true, true) => "an ETag or Content-Length",
            (true, false) => "an ETag",
            _ => "a Content-Length",
        }
    ))
}

/// The answers for one record together: stale if any is, else unverifiable if any is, else
/// fresh. Each note names where it was seen (`where: what`).
pub fn combine(findings: impl IntoIterator<Item = (String, Finding)>) -> Finding {
    let (mut fresh, mut stale, mut unverifiable) = (Vec::new(), Vec::new(), Vec::new());
    for (place, f) in findings {
        match f {
            Finding::Fresh(n) => fresh.push(format!("{place}: {n}")),
            Finding::Stale(n) => stale.push(format!("{place}: {n}")),
            Finding::Unverifiable(n) => unverifiable.push(format!("{place}: {n}")),
        }
    }
    if !stale.is_empty() {
        Finding::Stale(stale.join("; "))
    } else if !unverifiable.is_empty() {
        Finding::Unverifiable(unverifiable.join("; "))
    } else if fresh.is_empty() {
        Finding::Unverifiable("nothing to fetch".to_owned())
    } else {
        Finding::Fresh(fresh.join("; "))
    }
}

/// A stale finding for an object that changed again since (record `newer` of the same rule
/// and account): the copy seen may well be the newer one, and that record is verified (and
/// purged again if need be) on its own, so this one is neither stale nor purged again.
pub fn superseded(finding: Finding, newer: Option<i64>) -> Finding {
    match (finding, newer) {
        (Finding::Stale(n), Some(id)) => Finding::Unverifiable(format!(
            "{n}; the object changed again since (record #{id}, verified on its own)"
        )),
        (f, _) => f,
    }
}

/// What a record of `round` (re-purges before it) shows for `finding`, and whether to purge
/// once more (a stale record of a round below `max_repurges`).
pub fn conclude(finding: Finding, round: u32, max_repurges: u32) -> (Verified, String, bool) {
    let after = match round {
        0 => String::new(),
        1 => " (after 1 re-purge)".to_owned(),
        n => format!(" (after {n} re-purges)"),
    };
    match finding {
        Finding::Fresh(n) => (Verified::Fresh, format!("{n}{after}"), false),
        Finding::Unverifiable(n) => (Verified::Unverifiable, format!("{n}{after}"), false),
        Finding::Stale(n) if round < max_repurges => (Verified::Stale, n, true),
        Finding::Stale(n) => (Verified::Stale, format!("{n}{after}"), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD5: &str = "0cc175b9c0f1b6a831c399e269772661";

    fn seen(status: u16, etag: Option<&str>, length: Option<u64>) -> Seen {
        Seen {
            status,
            etag: etag.map(str::to_owned),
            length,
            cache: Some("X-Cache: HIT".into()),
        }
    }

    fn put<'a>(etag: Option<&'a str>, size: Option<u64>) -> Expected<'a> {
        Expected::of("ObjectCreated:Put", etag, size)
    }

    #[test]
    fn etags_compare_without_quotes_weakness_or_hex_case() {
        for tag in [
            MD5.to_owned(),
            format!("\"{MD5}\""),
            format!("W/\"{MD5}\""),
            format!("w/\"{}\"", MD5.to_uppercase()),
            format!(" \"{MD5}\" "),
        ] {
            assert_eq!(normalize_etag(&tag), MD5, "{tag}");
        }
        // A multipart ETag keeps its part count.
        assert_eq!(normalize_etag("\"abc-3\""), "abc-3");
        assert_ne!(normalize_etag("\"abc-3\""), normalize_etag("\"abc\""));
    }

    #[test]
    fn an_answer_is_fresh_stale_or_unverifiable() {
        let want = put(Some(MD5), Some(1));
        let quoted = format!("\"{MD5}\"");
        let weak = format!("W/\"{MD5}\"");
        let table: Vec<(Seen, &str)> = vec![
            // The ETag decides when both sides have one, whatever the size says.
            (seen(200, Some(&quoted), Some(99)), "fresh"),
            (seen(200, Some(&weak), None), "fresh"),
            (seen(206, Some(&quoted), None), "fresh"),
            (seen(200, Some("\"0000\""), Some(1)), "stale"),
            // No ETag from the cache: the size.
            (seen(200, None, Some(1)), "fresh"),
            (seen(200, None, Some(2)), "stale"),
            // Nothing to compare.
            (seen(200, None, None), "unverifiable"),
            // The new object not served at all.
            (seen(404, None, None), "stale"),
            (seen(410, None, None), "stale"),
            // The cache failed: no word on freshness.
            (seen(503, None, None), "unverifiable"),
            (seen(403, Some(&quoted), None), "unverifiable"),
        ];
        for (s, expected) in table {
            let got = match judge(&want, &s) {
                Finding::Fresh(_) => "fresh",
                Finding::Stale(_) => "stale",
                Finding::Unverifiable(_) => "unverifiable",
            };
            assert_eq!(got, expected, "{s:?}");
        }
        // Only a size in the event: the length decides.
        let sized = put(None, Some(5));
        assert!(matches!(
            judge(&sized, &seen(200, Some("\"x\""), Some(5))),
            Finding::Fresh(_)
        ));
        assert!(matches!(
            judge(&sized, &seen(200, Some("\"x\""), Some(6))),
            Finding::Stale(_)
        ));
    }

    #[test]
    fn a_delete_is_fresh_when_the_cache_says_gone() {
        let want = Expected::of("ObjectRemoved:Delete", None, None);
        assert!(want.removed);
        assert!(matches!(
            judge(&want, &seen(404, None, None)),
            Finding::Fresh(_)
        ));
        assert!(matches!(
            judge(&want, &seen(410, None, None)),
            Finding::Fresh(_)
        ));
        let Finding::Stale(note) = judge(&want, &seen(200, Some("\"a\""), Some(3))) else {
            panic!("a deleted object still served is stale");
        };
        assert!(note.contains("still served after the delete"), "{note}");
        assert!(matches!(
            judge(&want, &seen(502, None, None)),
            Finding::Unverifiable(_)
        ));
        // A delete needs no validator.
        assert!(!needs_get(&want, &seen(200, None, None)));
    }

    #[test]
    fn notes_say_what_was_seen_and_what_was_expected() {
        let want = put(Some(MD5), None);
        let Finding::Stale(note) = judge(&want, &seen(200, Some("\"0000\""), None)) else {
            panic!("stale");
        };
        assert_eq!(
            note,
            format!("ETag \"0000\", X-Cache: HIT, the event's is \"{MD5}\"")
        );
    }

    #[test]
    fn a_get_follows_a_head_without_the_validator() {
        let want = put(Some(MD5), None);
        assert!(needs_get(&want, &seen(200, None, Some(3))));
        assert!(!needs_get(&want, &seen(200, Some("\"x\""), None)));
        assert!(needs_get(&want, &seen(405, None, None)));
        assert!(!needs_get(&want, &seen(404, None, None)));
        let sized = put(None, Some(3));
        assert!(!needs_get(&sized, &seen(200, None, Some(3))));
    }

    #[test]
    fn records_start_pending_only_when_something_can_tell() {
        let url = [TargetKind::Url];
        assert_eq!(
            start("ObjectCreated:Put", Some(MD5), None, url).state,
            Verified::Pending
        );
        assert_eq!(
            start("ObjectCreated:Put", None, Some(3), url).state,
            Verified::Pending
        );
        assert_eq!(
            start("ObjectRemoved:Delete", None, None, url).state,
            Verified::Pending
        );
        let none = start("ObjectCreated:Put", None, None, url);
        assert_eq!(none.state, Verified::Unverifiable);
        assert_eq!(
            none.note.as_deref(),
            Some("no validator in the event (no ETag or size)")
        );
        // An empty ETag is no validator.
        assert_eq!(
            start("ObjectCreated:Put", Some("\"\""), None, url).state,
            Verified::Unverifiable
        );
        for kind in [TargetKind::Dir, TargetKind::Tag] {
            let s = start("ObjectCreated:Put", Some(MD5), Some(1), [kind]);
            assert_eq!(s.state, Verified::Unverifiable);
            assert!(s.note.unwrap().starts_with("not a URL"), "{kind:?}");
        }
    }

    #[test]
    fn stale_is_purged_again_a_bounded_number_of_times() {
        let stale = || Finding::Stale("ETag \"b\"".into());
        assert_eq!(
            conclude(stale(), 0, 1),
            (Verified::Stale, "ETag \"b\"".into(), true)
        );
        assert_eq!(
            conclude(stale(), 1, 1),
            (
                Verified::Stale,
                "ETag \"b\" (after 1 re-purge)".into(),
                false
            )
        );
        assert!(!conclude(stale(), 0, 0).2, "no re-purges allowed");
        let (v, note, again) = conclude(Finding::Fresh("ETag \"a\"".into()), 1, 1);
        assert_eq!((v, again), (Verified::Fresh, false));
        assert_eq!(note, "ETag \"a\" (after 1 re-purge)");
    }

    #[test]
    fn a_stale_copy_of_an_object_changed_again_is_not_purged_again() {
        let stale = Finding::Stale("ETag \"new\", the event's is \"old\"".into());
        let f = superseded(stale.clone(), Some(9));
        assert_eq!(
            f,
            Finding::Unverifiable(
                "ETag \"new\", the event's is \"old\"; the object changed again since \
                 (record #9, verified on its own)"
                    .into()
            )
        );
        assert!(!conclude(f, 0, 1).2, "no re-purge");
        assert_eq!(superseded(stale.clone(), None), stale);
        let fresh = Finding::Fresh("x".into());
        assert_eq!(superseded(fresh.clone(), Some(9)), fresh);
    }

    #[test]
    fn an_index_documents_directory_url_is_not_compared() {
        let targets = vec![
            "https://cdn.example.com/docs/index.html".to_owned(),
            "https://cdn.example.com/docs/".to_owned(),
            "https://img.example.com/docs/index.html".to_owned(),
        ];
        assert_eq!(
            object_urls(&targets),
            vec![
                "https://cdn.example.com/docs/index.html",
                "https://img.example.com/docs/index.html"
            ]
        );
        assert!(object_urls(&["https://cdn.example.com/".to_owned()]).is_empty());
    }

    #[test]
    fn one_stale_answer_makes_the_record_stale() {
        let f = combine([
            ("node a".to_owned(), Finding::Fresh("ETag \"a\"".into())),
            (
                "node b".to_owned(),
                Finding::Unverifiable("timed out".into()),
            ),
            ("node c".to_owned(), Finding::Stale("ETag \"b\"".into())),
        ]);
        assert_eq!(f, Finding::Stale("node c: ETag \"b\"".into()));
        let f = combine([
            ("node a".to_owned(), Finding::Fresh("ETag \"a\"".into())),
            (
                "node b".to_owned(),
                Finding::Unverifiable("timed out".into()),
            ),
        ]);
        assert_eq!(f, Finding::Unverifiable("node b: timed out".into()));
        let f = combine([
            ("node a".to_owned(), Finding::Fresh("x".into())),
            ("node b".to_owned(), Finding::Fresh("y".into())),
        ]);
        assert_eq!(f, Finding::Fresh("node a: x; node b: y".into()));
    }
}
