//! Object keys arrive encoded differently by each notification format. Each key is decoded
//! exactly once, by the rule of its format, into the object's real UTF-8 name.

use percent_encoding::percent_decode;
use std::fmt;

/// How a notification format encodes the object key it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    /// `application/x-www-form-urlencoded` style: `+` is a space, `%XX` an escaped byte
    /// (Amazon S3 notifications, MinIO webhooks).
    Form,
    /// `%XX` is an escaped byte, `+` is a literal plus (Tencent COS, EventBridge).
    Percent,
    /// The key as stored, no escaping at all (Ceph RGW).
    Raw,
}

/// A key whose escapes do not decode to UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDecodeError {
    pub raw: String,
}

impl fmt::Display for KeyDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "object key {:?} does not decode to UTF-8 (its %XX escapes form invalid UTF-8)",
            self.raw
        )
    }
}

impl std::error::Error for KeyDecodeError {}

/// Decodes `raw` once according to `encoding`.
///
/// A `%` that is not followed by two hex digits is kept literally: some senders do not escape
/// a bare `%`, and refusing the whole notification for it would lose the purge.
pub fn decode_key(raw: &str, encoding: KeyEncoding) -> Result<String, KeyDecodeError> {
    match encoding {
        KeyEncoding::Raw => Ok(raw.to_owned()),
        KeyEncoding::Percent => percent_to_utf8(raw.as_bytes(), raw),
        KeyEncoding::Form => {
            let spaced: Vec<u8> = raw
                .bytes()
                .map(|b| if b == b'+' { b' ' } else { b })
                .collect();
            percent_to_utf8(&spaced, raw)
        }
    }
}

fn percent_to_utf8(bytes: &[u8], raw: &str) -> Result<String, KeyDecodeError> {
    let decoded: Vec<u8> = percent_decode(bytes).collect();
    String::from_utf8(decoded).map_err(|_| KeyDecodeError {
        raw: raw.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_with_plus_sign_is_not_a_space_in_percent_encoding() {
        assert_eq!(
            decode_key("a+b%20c.png", KeyEncoding::Percent).unwrap(),
            "a+b c.png"
        );
    }

    #[test]
    fn form_encoding_turns_plus_into_space_and_keeps_escaped_plus() {
        assert_eq!(
            decode_key("red+flower%2B1.jpg", KeyEncoding::Form).unwrap(),
            "red flower+1.jpg"
        );
    }

    #[test]
    fn raw_keys_are_untouched() {
        assert_eq!(
            decode_key("img/a b+c%20.png", KeyEncoding::Raw).unwrap(),
            "img/a b+c%20.png"
        );
    }

    #[test]
    fn chinese_names_decode_from_utf8_escapes() {
        assert_eq!(
            decode_key("%E5%9B%BE%E7%89%87/%E7%8C%AB.jpg", KeyEncoding::Form).unwrap(),
            "图片/猫.jpg"
        );
    }

    #[test]
    fn a_bare_percent_is_kept() {
        assert_eq!(
            decode_key("100%.txt", KeyEncoding::Percent).unwrap(),
            "100%.txt"
        );
    }

    #[test]
    fn invalid_utf8_escapes_are_an_error_naming_the_key() {
        let err = decode_key("bad%FF.txt", KeyEncoding::Form).unwrap_err();
        assert!(err.to_string().contains("bad%FF.txt"));
    }
}
