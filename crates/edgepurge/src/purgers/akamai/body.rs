//! What a Fast Purge request carries (apis.md §D.2): `{"objects": [...]}` of one object
//! type: full URLs (`url`), cache tags (`tag`) or CP codes as integers (`cpcode`), in a body
//! of at most 50,000 bytes. Each target is checked here before anything is sent, so a target
//! Akamai would refuse fails alone instead of failing the whole request.

use std::fmt;

/// Largest request body Fast Purge takes: "50,000 bytes" (a larger one is answered 413).
pub const MAX_BODY_BYTES: usize = 50_000;
/// `{"objects":[` + `]}`.
const ENVELOPE_BYTES: usize = r#"{"objects":[]}"#.len();
/// Longest cache tag Akamai purges (a longer one is never matched).
pub const MAX_TAG_LEN: usize = 128;

/// The object type of a request: the path segment `/ccu/v3/{action}/{type}/{network}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    Url,
    Tag,
    CpCode,
}

impl ObjectType {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Url => "url",
            ObjectType::Tag => "tag",
            ObjectType::CpCode => "cpcode",
        }
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One object, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Its JSON text in the `objects` array (a quoted string, or a CP code's digits).
    pub json: String,
    /// Two targets with the same key are one object (Akamai purges a URL's http and https
    /// variants together, so those differ only in scheme).
    pub key: String,
}

/// Checks `target` as an object of `ty`. `cpcodes` are the CP codes the account may purge.
pub fn object(ty: ObjectType, target: &str, cpcodes: &[u64]) -> Result<Object, String> {
    let shown = edgepurge_core::printable(target);
    match ty {
        ObjectType::Url => {
            let u = url::Url::parse(target)
                .map_err(|e| format!("{shown:?} is not a URL Fast Purge can take ({e})"))?;
            if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                return Err(format!(
                    "{shown:?}: Fast Purge purges http and https URLs only"
                ));
            }
            // Akamai refuses non-ASCII characters ("bad URL"); rule URLs are percent-encoded,
            // so only a hand-made target can have them.
            if !target.is_ascii() || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
                return Err(format!(
                    "{shown:?}: the URL must be ASCII without spaces (percent-encode the path)"
                ));
            }
            let key = match target.split_once("://") {
                Some((_, rest)) => rest.to_owned(),
                None => target.to_owned(),
            };
            Ok(Object {
                json: json_string(target),
                key,
            })
        }
        ObjectType::Tag => {
            check_tag(target).map_err(|why| format!("cache tag {shown:?} {why}"))?;
            Ok(Object {
                json: json_string(target),
                key: target.to_owned(),
            })
        }
        ObjectType::CpCode => {
            let code: u64 = target
                .trim()
                .parse()
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| {
                    format!(
                        "{shown:?} is not a CP code (a number, e.g. 123456): with \
                         tags_are = \"cpcodes\" a tag rule's tags must render CP codes"
                    )
                })?;
            if !cpcodes.contains(&code) {
                return Err(format!(
                    "CP code {code} is not in this account's `cpcodes` list; add it there to \
                     let rules purge it"
                ));
            }
            Ok(Object {
                json: code.to_string(),
                key: code.to_string(),
            })
        }
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Akamai's cache tag syntax: an RFC 7230 token without `*`, at most 128 characters.
fn check_tag(tag: &str) -> Result<(), &'static str> {
    if tag.is_empty() {
        return Err("is empty");
    }
    if tag.len() > MAX_TAG_LEN {
        return Err("is longer than 128 characters (Akamai never matches it)");
    }
    let ok = tag
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'+-.^_`|~".contains(&b));
    if !ok {
        return Err(
            "holds a character Akamai does not allow in cache tags (letters, digits and \
             !#$%&'+-.^_`|~ only)",
        );
    }
    Ok(())
}

/// How many of `objects` (JSON texts, in order) fit one body of at most `max_bytes`.
pub fn fitting(objects: &[&str], max_bytes: usize) -> usize {
    let mut size = ENVELOPE_BYTES;
    for (i, o) in objects.iter().enumerate() {
        size += o.len() + usize::from(i > 0);
        if size > max_bytes {
            return i;
        }
    }
    objects.len()
}

/// The request body for `objects` (JSON texts).
pub fn body(objects: &[&str]) -> String {
    format!(r#"{{"objects":[{}]}}"#, objects.join(","))
}

/// Whether one object alone is too large for any request.
pub fn too_large_alone(object: &str) -> bool {
    ENVELOPE_BYTES + object.len() > MAX_BODY_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_sent_whole_and_checked() {
        let o = object(
            ObjectType::Url,
            "https://cdn.example.com/a%20b.png?x=1",
            &[],
        )
        .unwrap();
        assert_eq!(o.json, r#""https://cdn.example.com/a%20b.png?x=1""#);
        let http = object(ObjectType::Url, "http://cdn.example.com/a%20b.png?x=1", &[]).unwrap();
        assert_eq!(o.key, http.key, "http and https are purged together");
        for bad in [
            "not a url",
            "ftp://cdn.example.com/x",
            "https://cdn.example.com/猫.png",
            "https://cdn.example.com/a b",
        ] {
            assert!(object(ObjectType::Url, bad, &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_follow_akamais_syntax() {
        for good in [
            "products",
            "product-42",
            "a%20b",
            "v1.2_x|y~z",
            &"t".repeat(128),
        ] {
            let o = object(ObjectType::Tag, good, &[]).unwrap();
            assert_eq!(o.json, format!("\"{good}\""));
        }
        for (bad, why) in [
            ("", "is empty"),
            (&"t".repeat(129) as &str, "longer than 128"),
            ("a,b", "character"),
            ("a b", "character"),
            ("a*", "character"),
            ("a/b", "character"),
            ("タグ", "character"),
        ] {
            let err = object(ObjectType::Tag, bad, &[]).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn cp_codes_are_numbers_of_the_configured_list() {
        let o = object(ObjectType::CpCode, "123456", &[123456, 7]).unwrap();
        assert_eq!(o.json, "123456", "an integer, not a string");
        let err = object(ObjectType::CpCode, "999", &[123456]).unwrap_err();
        assert!(
            err.contains("CP code 999 is not in this account's `cpcodes`"),
            "{err}"
        );
        let err = object(ObjectType::CpCode, "products", &[123456]).unwrap_err();
        assert!(err.contains("is not a CP code"), "{err}");
        assert!(object(ObjectType::CpCode, "0", &[0]).is_err());
    }

    #[test]
    fn bodies_are_cut_by_size_not_only_by_count() {
        let a = r#""https://cdn.example.com/a""#;
        assert_eq!(
            body(&[a, "12"]),
            r#"{"objects":["https://cdn.example.com/a",12]}"#
        );
        assert_eq!(body(&[a]).len(), ENVELOPE_BYTES + a.len());
        // Exactly at the limit fits; one byte more does not.
        let n = 10;
        let exact = ENVELOPE_BYTES + n * a.len() + (n - 1);
        assert_eq!(fitting(&vec![a; 20], exact), n);
        assert_eq!(fitting(&vec![a; 20], exact - 1), n - 1);
        assert_eq!(fitting(&[a; 3], MAX_BODY_BYTES), 3);
        // 1 KB URLs: at most 48 in 50,000 bytes.
        let long = format!("\"https://cdn.example.com/{}\"", "x".repeat(1000));
        let k = fitting(&vec![long.as_str(); 400], MAX_BODY_BYTES);
        assert_eq!(k, 48);
        assert!(body(&vec![long.as_str(); k]).len() <= MAX_BODY_BYTES);
        assert!(body(&vec![long.as_str(); k + 1]).len() > MAX_BODY_BYTES);
        assert!(!too_large_alone(&long));
        assert!(too_large_alone(&"x".repeat(MAX_BODY_BYTES)));
    }
}
