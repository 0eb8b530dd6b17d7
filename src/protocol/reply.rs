//! The lines the server sends (PROTOCOL.md §2), built in one place.
//!
//! Every function returns a complete line including its CRLF, ready for the wire. The
//! peer-visible error codes map to `[CODE]` here and nowhere else.

use std::fmt;

use super::framing::MAX_PDU;

/// The machine-readable code of an `-ERR` (RFC 2449 style).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Unknown keyword, wrong arity, bad argument.
    Syntax,
    /// A malformed nickname.
    Invalid,
    /// A nickname taken or held for another address.
    InUse,
    /// No such user, or no message awaiting a receipt.
    NoSuch,
    /// A command not allowed in the current state, or a stray pong.
    State,
    /// A framing violation.
    Pdu,
    /// A sender or recipient field naming someone else.
    Spoof,
    /// A connection limit.
    Full,
}

impl Code {
    /// The code as it appears in brackets.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "SYNTAX",
            Code::Invalid => "INVALID",
            Code::InUse => "IN-USE",
            Code::NoSuch => "NO-SUCH",
            Code::State => "STATE",
            Code::Pdu => "PDU",
            Code::Spoof => "SPOOF",
            Code::Full => "FULL",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `+OK <text>`
pub fn ok(text: impl fmt::Display) -> String {
    fit(format!("+OK {text}"))
}

/// `-ERR [CODE] <text>`
pub fn err(code: Code, text: impl fmt::Display) -> String {
    fit(format!("-ERR [{code}] {text}"))
}

/// `cquit <reason>`: the server's own last line before it closes.
pub fn cquit(reason: impl fmt::Display) -> String {
    fit(format!("cquit {reason}"))
}

/// The PDU limit holds for what the server sends too (§1): a line that repeats a long field
/// of the client's line is cut to [`MAX_PDU`] bytes (on a character boundary), then ended.
fn fit(mut line: String) -> String {
    if line.len() > MAX_PDU {
        let mut end = MAX_PDU;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line.push_str("\r\n");
    line
}

/// The greeting sent on accept.
pub const GREETING: &str = "+OK xscp/1 ready\r\n";
/// The answer to `cquit`.
pub const QUIT_OK: &str = "+OK terminating tasks and disconnecting\r\n";
/// The answer to a relayed `chatm`.
pub const RELAYED: &str = "+OK message relayed\r\n";
/// The reason given when a violation ends the connection.
pub const PROTOCOL_VIOLATION: &str = "protocol violation";

/// `ping <token>`: the server's ping (§5), which the client answers `+OK pong <token>`.
pub fn ping(token: &str) -> String {
    format!("ping {token}\r\n")
}

/// `-ERR [IN-USE] <name> is already taken by another client`
pub fn in_use(name: &str) -> String {
    err(Code::InUse, in_use_text(name))
}

/// The text of the IN-USE refusal (the retry count may follow it).
pub fn in_use_text(name: &str) -> String {
    format!("{name} is already taken by another client")
}

/// `-ERR [NO-SUCH] no such user <name>`
pub fn no_such_user(name: &str) -> String {
    err(Code::NoSuch, format_args!("no such user {name}"))
}

/// `-ERR [NO-SUCH] no message from <sender> awaits a receipt`
pub fn no_receipt_awaited(sender: &str) -> String {
    err(
        Code::NoSuch,
        format_args!("no message from {sender} awaits a receipt"),
    )
}

/// `+OK welcome back <name>` (§5.8), with `(<held> held, <lost> lost)` when its mailbox
/// kept or lost anything.
pub fn welcome_back(name: &str, held: usize, lost: u64) -> String {
    if held > 0 || lost > 0 {
        ok(format_args!(
            "welcome back {name} ({held} held, {lost} lost)"
        ))
    } else {
        ok(format_args!("welcome back {name}"))
    }
}

/// `+OK name changed from <old> to <new>`
pub fn name_changed(old: &str, new: &str) -> String {
    ok(format_args!("name changed from {old} to {new}"))
}

/// Why a pong is refused: it carries no token, answers no ping, or answers another one.
/// The `-ERR` text and the log line both say it this way.
#[derive(Clone, Copy, Debug)]
pub struct PongMismatch<T> {
    /// The pong's token, if it has one.
    pub token: Option<T>,
    /// The token of the outstanding ping, if one is.
    pub expected: Option<T>,
}

impl<T: fmt::Display> fmt::Display for PongMismatch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.token, &self.expected) {
            (Some(t), Some(e)) => write!(
                f,
                "pong {t} does not match the outstanding ping: expected +OK pong {e}"
            ),
            (Some(t), None) => write!(f, "pong {t} answers no ping: none is outstanding"),
            (None, Some(e)) => write!(f, "pong without a token: expected +OK pong {e}"),
            (None, None) => f.write_str("pong without a token, and no ping is outstanding"),
        }
    }
}

/// A multi-line response: the `+OK` line, one line an item, then `.` (POP3 style).
pub fn multiline<I, T>(first: impl fmt::Display, items: I) -> String
where
    I: IntoIterator<Item = T>,
    T: fmt::Display,
{
    let mut out = ok(first);
    for item in items {
        out += &format!("{item}\r\n");
    }
    out + ".\r\n"
}

/// The `capa` response for the given settings (§5).
pub fn capa(settings: &[(&str, String)]) -> String {
    multiline(
        "capability list follows",
        settings.iter().map(|(k, v)| {
            if v.is_empty() {
                k.to_string()
            } else {
                format!("{k} {v}")
            }
        }),
    )
}

/// Formats a duration in whole seconds when it is whole, else in seconds with decimals
/// (for `capa` and logs).
pub fn seconds(d: std::time::Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        let s = format!("{:.3}", d.as_secs_f64());
        s.trim_end_matches('0').to_string()
    }
}

/// Escapes a peer-controlled string for the log: control bytes, backslashes and anything
/// outside printable ASCII become escapes, so that no peer can start a log line or send a
/// terminal escape through the log.
pub fn escape(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7E => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn error_lines_carry_the_bracketed_code() {
        assert_eq!(
            in_use("bob"),
            "-ERR [IN-USE] bob is already taken by another client\r\n"
        );
        assert_eq!(no_such_user("eve"), "-ERR [NO-SUCH] no such user eve\r\n");
        assert_eq!(err(Code::Spoof, "x"), "-ERR [SPOOF] x\r\n");
    }

    #[test]
    fn replies_never_exceed_the_pdu_limit() {
        let long = "é".repeat(400);
        for line in [no_such_user(&long), ok(&long), cquit(&long)] {
            assert!(line.len() <= MAX_PDU + 2, "{}", line.len());
            assert!(line.ends_with("\r\n"));
        }
        assert_eq!(ok("short"), "+OK short\r\n");
    }

    #[test]
    fn multiline_ends_with_a_dot() {
        assert_eq!(
            multiline("2 users", ["a", "b"]),
            "+OK 2 users\r\na\r\nb\r\n.\r\n"
        );
    }

    #[test]
    fn seconds_are_whole_or_decimal() {
        assert_eq!(seconds(Duration::from_secs(30)), "30");
        assert_eq!(seconds(Duration::from_millis(250)), "0.25");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5");
    }

    #[test]
    fn escape_defuses_line_breaks_and_terminal_escapes() {
        assert_eq!(escape(b"a\r\nb"), "a\\r\\nb");
        assert_eq!(escape(b"\x1b[31m"), "\\x1B[31m");
        assert_eq!(escape("é".as_bytes()), "\\xC3\\xA9");
        assert_eq!(escape(b"\\x"), "\\\\x");
    }
}
