//! Text from senders (object keys, SNS topics and URLs, field names, provider answers) made
//! safe to print in a log line or a terminal: control characters (newlines that would forge a
//! log line, escape sequences that would drive the operator's terminal) and the Unicode
//! direction overrides that reorder what is shown are written as `\n`, `\u{1b}`, `\u{202e}`.
//! JSON output needs none of this: its encoder escapes them already.

use std::borrow::Cow;

/// Whether `c` must not reach a log line or a terminal as itself.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every unsafe character escaped (unchanged, and not copied, when it has none).
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_escapes_and_direction_overrides_cannot_reach_a_log_or_terminal() {
        assert!(matches!(printable("plain 猫 key.png"), Cow::Borrowed(_)));
        assert_eq!(
            printable("a\nINFO forged line\r\u{1b}[31mred\u{202e}txt.exe"),
            "a\\nINFO forged line\\r\\u{1b}[31mred\\u{202e}txt.exe"
        );
        assert!(!printable("x\u{7}\u{0}\u{85}y")
            .chars()
            .any(|c| c.is_control()));
    }
}
