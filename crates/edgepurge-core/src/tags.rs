//! Surrogate keys (cache tags) from object keys, for `mode = "tag"` rules.
//!
//! A template is text with placeholders, all taken from the object key after `strip_prefix`:
//!
//! | placeholder | for `img/icons/a b.png` |
//! |---|---|
//! | `{key}` | `img/icons/a b.png` |
//! | `{dir}` | `img/icons` |
//! | `{name}` | `a b.png` |
//! | `{stem}` | `a b` |
//! | `{ext}` | `png` |
//! | `{seg1}` … `{seg9}` | `img`, `icons`, `a b.png`, then empty |
//! | `{bucket}` | the rule's bucket |
//!
//! Tags travel in headers separated by spaces or commas (Varnish xkey splits on both,
//! Cloudflare and Akamai on commas) and must be printable ASCII, so the result is
//! percent-encoded like a URL path (space as `%20`, `/` as `%2F`, non-ASCII as UTF-8 `%XX`),
//! and so are the separators a key may hold (`,` as `%2C`, `;` as `%3B`): a key such as
//! `products/42,home/x.png` can never name a second tag (`home`). Template text may not
//! contain them either.
//! A template with a placeholder that is empty for this key (e.g. `{seg4}` of a short key)
//! yields no tag.

use crate::urlpath::encode_path;

/// Characters that separate tags in some cache's or CDN's tag header (besides blanks, which
/// are always encoded).
pub const SEPARATORS: &[char] = &[',', ';'];

/// Whether a key holds a character that its tags must encode (worth a line in the log).
pub fn has_separator(key: &str) -> bool {
    key.contains(SEPARATORS)
}

const PLACEHOLDERS: &[&str] = &[
    "key", "dir", "name", "stem", "ext", "bucket", "seg1", "seg2", "seg3", "seg4", "seg5", "seg6",
    "seg7", "seg8", "seg9",
];

/// Checks a template: balanced braces, known placeholders, printable ASCII otherwise.
pub fn check_template(template: &str) -> Result<(), String> {
    if template.trim().is_empty() {
        return Err("a tag template is empty".into());
    }
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let literal = &rest[..open];
        check_literal(literal, template)?;
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("tag template {template:?}: unclosed '{{'"))?;
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "tag template {template:?}: unknown placeholder {{{name}}}; use {}",
                PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        rest = &after[close + 1..];
    }
    check_literal(rest, template)
}

fn check_literal(literal: &str, template: &str) -> Result<(), String> {
    if literal.contains('}') {
        return Err(format!("tag template {template:?}: unmatched '}}'"));
    }
    if !literal.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!(
            "tag template {template:?}: literal text must be printable ASCII without spaces"
        ));
    }
    if let Some(c) = literal.chars().find(|c| SEPARATORS.contains(c)) {
        return Err(format!(
            "tag template {template:?}: {c:?} separates tags in cache headers; one template \
             makes one tag (list several templates instead)"
        ));
    }
    Ok(())
}

/// Renders a (checked) template for `path` (the key after `strip_prefix`).
pub fn render(template: &str, bucket: &str, path: &str) -> String {
    let (dir, name) = match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    };
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i + 1..]),
        _ => (name, ""),
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let value = match &after[..close] {
            "key" => path,
            "dir" => dir,
            "name" => name,
            "stem" => stem,
            "ext" => ext,
            "bucket" => bucket,
            seg if seg.starts_with("seg") => seg[3..]
                .parse::<usize>()
                .ok()
                .and_then(|n| segments.get(n.wrapping_sub(1)))
                .copied()
                .unwrap_or(""),
            _ => "",
        };
        if value.is_empty() {
            return String::new();
        }
        out.push_str(
            &encode_path(value)
                .replace('/', "%2F")
                .replace(',', "%2C")
                .replace(';', "%3B"),
        );
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_render_from_the_key() {
        let path = "img/icons/a b.png";
        let cases = [
            ("{seg1}", "img"),
            ("{seg2}", "icons"),
            ("{seg3}", "a%20b.png"),
            ("{seg4}", ""),
            ("product-{seg4}", ""),
            ("{dir}", "img%2Ficons"),
            ("{name}", "a%20b.png"),
            ("{stem}", "a%20b"),
            ("{ext}", "png"),
            ("{bucket}-{seg1}", "assets-img"),
            ("static", "static"),
            ("{key}", "img%2Ficons%2Fa%20b.png"),
        ];
        for (t, want) in cases {
            check_template(t).unwrap();
            assert_eq!(render(t, "assets", path), want, "{t}");
        }
        assert_eq!(render("{seg1}", "b", "猫/x"), "%E7%8C%AB");
    }

    #[test]
    fn a_comma_in_a_key_cannot_name_a_second_tag() {
        // products/42,home/x.png once rendered `product-42,home`, and xkey purged `home`.
        let tag = render("product-{seg2}", "b", "products/42,home/x.png");
        assert_eq!(tag, "product-42%2Chome");
        assert_eq!(render("{name}", "b", "a;b c.png"), "a%3Bb%20c.png");
        for t in [&tag, &render("{key}", "b", "x, y;z\tw/v")] {
            assert!(
                !t.contains(|c: char| c == ',' || c == ';' || c.is_whitespace()),
                "{t}"
            );
        }
        assert!(has_separator("products/42,home/x.png"));
        assert!(!has_separator("products/42/x.png"));
    }

    #[test]
    fn bad_templates_are_refused() {
        for t in [
            "",
            "{seg}",
            "{nope}",
            "{seg1",
            "a}b",
            "with space",
            "é",
            "a,{seg1}",
            "{seg1};b",
        ] {
            assert!(check_template(t).is_err(), "{t:?}");
        }
    }
}
