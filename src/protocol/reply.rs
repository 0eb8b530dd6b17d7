//! The lines the server sends (xscp(7) §2), built in one place.
//!
//! Every function returns a complete line including its CRLF, ready for the wire. The
//! peer-visible error codes map to `[CODE]` here and nowhere else.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use super::MAX_PDU;
use super::command::{Expected, MAX_PING_TOKEN, SyntaxError};
use super::framing::FrameError;
use super::nick::{InvalidNick, MAX_NICK};

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
/// The reason given when no `uname` succeeded within `--negotiate-timeout`.
pub const NEGOTIATION_TIMEOUT: &str = "negotiation timeout";
/// The reason given when a ping went unanswered for `--ping-timeout`.
pub const PING_TIMEOUT: &str = "ping timeout";
/// The reason given to a client that does not read what it is sent.
pub const SLOW_CONSUMER: &str = "slow consumer";
/// The reason given after the last failed attempt in NEGOTIATING.
pub const TOO_MANY_ATTEMPTS: &str = "too many failed attempts";
/// The reason given to every client when the server stops.
pub const SERVER_SHUTTING_DOWN: &str = "server shutting down";

/// `+OK pong [<token>]`: the answer to the client's `ping`.
pub fn pong(token: Option<&str>) -> String {
    match token {
        Some(t) => ok(format_args!("pong {t}")),
        None => ok("pong"),
    }
}

/// `-ERR [STATE] <keyword> is not allowed in <state>`
pub fn not_allowed(keyword: &str, state: impl fmt::Display) -> String {
    err(
        Code::State,
        format_args!("{keyword} is not allowed in {state}"),
    )
}

/// `<keyword>: <what is wrong>`: the text of a SYNTAX refusal that names the keyword as
/// the client wrote it.
pub fn about(keyword: &str, what: impl fmt::Display) -> String {
    format!("{keyword}: {what}")
}

/// `-ERR [CODE] <text> (attempt <n> of <max>)`: a failed attempt in NEGOTIATING (§6).
pub fn failed_attempt(code: Code, text: impl fmt::Display, n: u32, max: u32) -> String {
    err(code, format_args!("{text} (attempt {n} of {max})"))
}

/// `-ERR [SPOOF] <name> is not your nickname`
pub fn not_your_nickname(name: &str) -> String {
    err(Code::Spoof, format_args!("{name} is not your nickname"))
}

/// `chatm <sender> <recipient> <text>`, as relayed, with where the recipient field is.
/// Built by hand: this runs once per relayed message.
pub fn chatm(sender: &str, recipient: &str, text: &str) -> (String, Range<usize>) {
    let mut line = String::with_capacity(12 + sender.len() + recipient.len() + text.len());
    line.push_str("chatm ");
    line.push_str(sender);
    line.push(' ');
    let start = line.len();
    line.push_str(recipient);
    let field = start..line.len();
    line.push(' ');
    line.push_str(text);
    line.push_str("\r\n");
    (line, field)
}

/// `chatr <sender> <recipient>`, as relayed, with where the sender field is.
pub fn chatr(sender: &str, recipient: &str) -> (String, Range<usize>) {
    let line = format!("chatr {sender} {recipient}\r\n");
    let field = "chatr ".len().."chatr ".len() + sender.len();
    (line, field)
}

/// `+OK you are <name>`: a new registration.
pub fn you_are(name: &str) -> String {
    ok(format_args!("you are {name}"))
}

/// `+OK message held for <name>` (§5.8)
pub fn held_for(name: &str) -> String {
    ok(format_args!("message held for {name}"))
}

/// `-ERR [FULL] mailbox of <name> is full` (§5.8)
pub fn mailbox_full(name: &str) -> String {
    err(Code::Full, format_args!("mailbox of {name} is full"))
}

/// `-ERR [FULL] <name> owes receipts to too many senders` (§5.5, §5.8)
pub fn receipts_full(name: &str) -> String {
    err(
        Code::Full,
        format_args!("{name} owes receipts to too many senders"),
    )
}

/// `+OK <n> users`, then the names, then `.`.
pub fn users(names: &[&str]) -> String {
    multiline(format_args!("{} users", names.len()), names)
}

/// `+OK notifications on|off`
pub fn notifications(on: bool) -> String {
    ok(if on {
        "notifications on"
    } else {
        "notifications off"
    })
}

/// `notif join <name>`
pub fn notif_join(name: &str) -> String {
    format!("notif join {name}\r\n")
}

/// `notif cname <old> <new>`
pub fn notif_cname(old: &str, new: &str) -> String {
    format!("notif cname {old} {new}\r\n")
}

/// `notif quit <name>`
pub fn notif_quit(name: &str) -> String {
    format!("notif quit {name}\r\n")
}

/// `server full`, the reason a connection limit gives.
pub const SERVER_FULL: &str = "server full";
/// The refusal of a connection over `--max-per-ip`.
pub const FULL_FROM_ADDRESS: &str = "server full (too many connections from your address)";
/// The refusal of a connection the server has no descriptor or thread for.
pub const FULL_OUT_OF_RESOURCES: &str = "server full (out of resources)";

/// `-ERR [FULL] <text>` and `cquit server full`: a connection refused at accept (§7).
pub fn refused_full(text: &str) -> String {
    err(Code::Full, text) + &cquit(SERVER_FULL)
}

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

/// The text of a `-ERR [SYNTAX]` (after the keyword, see [`about`], but for an unknown one).
impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyntaxError::Unknown => f.write_str("unknown command"),
            SyntaxError::TooMany => f.write_str("too many arguments"),
            SyntaxError::Missing(arg) => write!(f, "missing {arg}"),
            SyntaxError::EmptyMessage => f.write_str("empty message"),
            SyntaxError::Invalid(Expected::Token) => write!(
                f,
                "a token is at most {MAX_PING_TOKEN} printable ASCII characters"
            ),
            SyntaxError::Invalid(Expected::OnOrOff) => f.write_str("expected on or off"),
            SyntaxError::Invalid(Expected::Pong) => {
                f.write_str("a client sends +OK only as +OK pong <token>")
            }
        }
    }
}

/// The text of the `-ERR [PDU]` before a framing violation closes the connection.
impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLong => write!(f, "line longer than {MAX_PDU} bytes"),
            FrameError::ControlByte(b) => write!(f, "control byte 0x{b:02X} in line"),
            FrameError::InvalidUtf8 => f.write_str("line is not valid UTF-8"),
        }
    }
}

/// The text of a `-ERR [INVALID]`: what a nickname is (§5, `uname`).
impl fmt::Display for InvalidNick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a nickname is 1-{MAX_NICK} characters: a letter, then letters, digits, - or _"
        )
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

/// The settings the `capa` response announces (§5).
#[derive(Clone, Copy, Debug)]
pub struct Capabilities {
    /// `--max-retries`
    pub max_retries: u32,
    /// `--negotiate-timeout`
    pub negotiate_timeout: Duration,
    /// `--ping-interval`
    pub ping_interval: Duration,
    /// `--ping-timeout`
    pub ping_timeout: Duration,
    /// `--hold`
    pub hold: Duration,
    /// `--mailbox`
    pub mailbox: usize,
    /// `--max-holds`
    pub max_holds: usize,
    /// `--max-holds-per-ip`
    pub max_holds_per_ip: usize,
    /// `--rate`
    pub rate: u32,
}

/// The `capa` response for the given settings (§5).
pub fn capa(c: &Capabilities) -> String {
    let list: [(&str, String); 13] = [
        ("XSCP", "1".into()),
        ("PDU", (MAX_PDU + 2).to_string()),
        ("RETRIES", c.max_retries.to_string()),
        ("NEGOTIATE", seconds(c.negotiate_timeout)),
        (
            "PING",
            format!("{} {}", seconds(c.ping_interval), seconds(c.ping_timeout)),
        ),
        ("HOLD", seconds(c.hold)),
        ("MAILBOX", c.mailbox.to_string()),
        // The hold bounds (§5.7), in all and per address: an item of its own, so that
        // clients reading `HOLD <secs>` see it unchanged.
        ("HOLDS", format!("{} {}", c.max_holds, c.max_holds_per_ip)),
        ("RATE", c.rate.to_string()),
        ("BROADCAST", String::new()),
        ("RECEIPTS", String::new()),
        ("USERS", String::new()),
        ("NOTIF", String::new()),
    ];
    multiline(
        "capability list follows",
        list.iter().map(|(k, v)| {
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
pub fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        let s = format!("{:.3}", d.as_secs_f64());
        s.trim_end_matches('0').to_string()
    }
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
}
