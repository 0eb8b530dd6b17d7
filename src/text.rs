//! Peer bytes made safe to show: the one escaping function of the crate, used by the
//! server's log, the client's terminal and the checker's reports. Imports nothing of the
//! crate.
//!
//! Not `<[u8]>::escape_ascii`: it writes `\x1b` in lower case and escapes quotes and tabs
//! its own way, so every log line and report that shows an escape would change; and it
//! cannot keep UTF-8 text readable, which the client and the checker's reports need.

use std::fmt::Write;

/// What [`escape`] keeps as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Printable ASCII only. CR, LF and the backslash become `\r`, `\n` and `\\`; every
    /// other byte `\xNN`. One line of plain ASCII that reads back unambiguously: the log.
    Ascii,
    /// Text: valid UTF-8 other than control characters stays as it is; a control
    /// character (C0, DEL, C1) or a byte that is not UTF-8 becomes `\xNN`. For a person's
    /// terminal: a line cannot move the cursor or start an escape sequence, and `wörld`
    /// still reads `wörld`.
    Text,
}

/// `bytes` with everything outside what `keep` keeps written as an escape.
pub fn escape(bytes: &[u8], keep: Keep) -> String {
    let mut out = String::with_capacity(bytes.len());
    let hex = |out: &mut String, b: u32| {
        let _ = write!(out, "\\x{b:02X}");
    };
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match (keep, c) {
                (Keep::Ascii, '\r') => out.push_str("\\r"),
                (Keep::Ascii, '\n') => out.push_str("\\n"),
                (Keep::Ascii, '\\') => out.push_str("\\\\"),
                (_, ' '..='~') => out.push(c),
                (Keep::Text, c) if !c.is_control() => out.push(c),
                (Keep::Text, c) => hex(&mut out, u32::from(c)),
                (Keep::Ascii, c) => {
                    for b in c.encode_utf8(&mut [0; 4]).bytes() {
                        hex(&mut out, u32::from(b));
                    }
                }
            }
        }
        for &b in chunk.invalid() {
            hex(&mut out, u32::from(b));
        }
    }
    out
}

/// [`escape`] for the log ([`Keep::Ascii`]): no peer can start a log line or send a
/// terminal escape through it.
pub fn for_log(bytes: &[u8]) -> String {
    escape(bytes, Keep::Ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_defuses_line_breaks_and_terminal_escapes() {
        let escape = for_log;
        assert_eq!(escape(b"a\r\nb"), "a\\r\\nb");
        assert_eq!(escape(b"\x1b[31m"), "\\x1B[31m");
        assert_eq!(escape("é".as_bytes()), "\\xC3\\xA9");
        assert_eq!(escape(b"\\x"), "\\\\x");
        assert_eq!(escape(b"a\r\n\x00\xff"), "a\\r\\n\\x00\\xFF");
    }

    #[test]
    fn text_keeps_utf8_and_shows_control_characters() {
        assert_eq!(escape(b"a\x1b[31mb", Keep::Text), "a\\x1B[31mb");
        assert_eq!(escape("wörld".as_bytes(), Keep::Text), "wörld");
        assert_eq!(escape(b"\r\n\x7f\\", Keep::Text), "\\x0D\\x0A\\x7F\\");
        // C1 controls (U+009B is a one-character CSI) and bytes that are not UTF-8.
        assert_eq!(escape("\u{9b}2J".as_bytes(), Keep::Text), "\\x9B2J");
        assert_eq!(escape(b"\xff!", Keep::Text), "\\xFF!");
    }
}
