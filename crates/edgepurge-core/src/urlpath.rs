//! Object key → URL path, encoded the way a browser requests it.
//!
//! RFC 3986 `pchar` plus `/`: unreserved characters, sub-delims `!$&'()*+,;=`, `:` and `@`
//! stay as they are; everything else (space, `%`, `#`, `?`, `"<>\^`{|}`, `[` `]`, controls,
//! and every non-ASCII character as its UTF-8 bytes) becomes `%XX` with uppercase hex.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

/// Bytes that must be escaped in a URL path (non-ASCII is always escaped by the encoder).
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Percent-encodes a decoded object key as a URL path (without the leading `/`).
pub fn encode_path(key: &str) -> String {
    utf8_percent_encode(key, PATH).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_keys_encode_like_a_browser_requests_them() {
        let table = [
            ("plain/file.png", "plain/file.png"),
            ("a b.png", "a%20b.png"),
            ("a+b.png", "a+b.png"),
            ("100%.png", "100%25.png"),
            ("a#b.png", "a%23b.png"),
            ("a?b=c.png", "a%3Fb=c.png"),
            ("图片/猫.jpg", "%E5%9B%BE%E7%89%87/%E7%8C%AB.jpg"),
            ("café.txt", "caf%C3%A9.txt"),
            ("a//b.png", "a//b.png"),
            ("/leading.png", "/leading.png"),
            ("sub-delims!$&'()*+,;=:@.txt", "sub-delims!$&'()*+,;=:@.txt"),
            (
                "q\"<>\\^`{|}[].txt",
                "q%22%3C%3E%5C%5E%60%7B%7C%7D%5B%5D.txt",
            ),
            ("tab\there\n.txt", "tab%09here%0A.txt"),
            ("unreserved-._~AZaz09", "unreserved-._~AZaz09"),
            ("emoji😀.png", "emoji%F0%9F%98%80.png"),
        ];
        for (key, want) in table {
            assert_eq!(encode_path(key), want, "key {key:?}");
        }
    }
}
