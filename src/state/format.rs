//! The state file's text (xscp(7) §5.9; the format is documented in xscpd-state(5)):
//! one record a line, a version line first, readable by a person.
//!
//! ```text
//! xscpd-state 2
//! # saved by xscpd 0.1.0 at 2026-12-07T00:40:12Z: 2 holds, 3 lines, 1 lost
//! hold alice for 127.0.0.1 until 2026-12-07T00:45:12Z held 3 lost 0 session 1
//! from 2 chatm bob alice one
//! from - chatm bob alice two
//! chatr alice bob
//! hold Bob_2 for 2001:db8::7 until 2026-12-07T00:45:12Z held 0 lost 1 session 2
//! end holds 2 lines 3
//! ```
//!
//! A `hold` line names a held name as spelled, the address it is held for and its expiry
//! in UTC, then how many mailbox lines follow it, how many its mailbox lost, and the
//! number of its session in this file. Each mailbox line is the `chatm` or `chatr` line
//! exactly as it would be sent, without its CRLF; a `chatm` comes after `from` and the
//! session its receipt goes to (§5.6 chatr: the sender's session, not whoever has the
//! sender's name by then), or `-` if that session was not saved. The `end` line repeats
//! the counts, so that a file cut short anywhere does not parse. Lines starting with `#`
//! are comments. Decoding never panics: whatever the bytes, the answer is a state or the
//! number of the first wrong line and what is wrong with it.
//!
//! Version 1, written by earlier servers, has no sessions: a `chatm`'s receipt goes to
//! the hold of its sender's name in the same file, if there is one.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use super::utc;
use crate::conn_id::ConnId;
use crate::protocol::command::{self, Command};
use crate::protocol::framing::{MAX_PDU, is_control};
use crate::protocol::nick::{Nick, NickKey};
use crate::text;

/// The first word of the first line.
pub const MAGIC: &str = "xscpd-state";

/// The version this server writes.
pub const VERSION: u32 = 2;

/// A mailbox's lines as they go on the wire, each with its CRLF, one after the other.
/// Shared, so that the hub can hand a held mailbox to the saver without copying it.
pub type Wire = Arc<Vec<u8>>;

/// For each line of a mailbox, the session its receipt goes to (see [`SavedHold`]).
/// Shared as [`Wire`] is.
pub type Senders = Arc<Vec<ConnId>>;

/// The sender of a line that awaits no receipt (a `chatr`), or of a `chatm` whose
/// sender's session was not saved: no session has this number.
pub const NO_SENDER: ConnId = ConnId::MAX;

/// One held name, as the file keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedHold {
    /// The name as spelled.
    pub nick: Nick,
    /// The address it is held for.
    pub ip: IpAddr,
    /// When the hold ends (the file keeps whole seconds, rounded up).
    pub until: SystemTime,
    /// The session that left the name held: unique among the holds of one save (the
    /// hub's session number when saved; the hold's number in the file when loaded).
    pub session: ConnId,
    /// Lines its mailbox lost.
    pub lost: u64,
    /// Its mailbox's lines, in the order the server accepted them.
    pub wire: Wire,
    /// Each line's sender: for a `chatm`, the session its receipt goes to (any session
    /// when saved, written `from -` if no hold of the save is that session's; in a loaded
    /// file, a hold's session or [`NO_SENDER`]); for a `chatr`, [`NO_SENDER`].
    pub senders: Senders,
}

impl SavedHold {
    /// The hold of `nick` for `ip` until `until`, left by `session`, its mailbox empty.
    pub fn new(nick: Nick, ip: IpAddr, until: SystemTime, session: ConnId) -> SavedHold {
        SavedHold {
            nick,
            ip,
            until,
            session,
            lost: 0,
            wire: Wire::default(),
            senders: Senders::default(),
        }
    }

    /// Adds `line` (with its CRLF) to the mailbox, its receipt going to `sender`.
    pub fn push(&mut self, line: &[u8], sender: ConnId) {
        Arc::make_mut(&mut self.wire).extend_from_slice(line);
        Arc::make_mut(&mut self.senders).push(sender);
    }

    /// The mailbox's lines, each with its CRLF.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.wire.split_inclusive(|&b| b == b'\n')
    }

    /// The mailbox's lines, each with its sender (see [`SavedHold::senders`]).
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], ConnId)> {
        let senders = self.senders.iter().copied();
        self.lines()
            .zip(senders.chain(std::iter::repeat(NO_SENDER)))
    }

    /// How many lines the mailbox holds.
    pub fn held(&self) -> usize {
        self.wire.iter().filter(|&&b| b == b'\n').count()
    }
}

/// A connected client's copies as a save finds them: the lines, each with its CRLF, in
/// order, each line's sender (see [`SavedHold::senders`]) and the count of those lost.
#[derive(Debug, PartialEq, Eq)]
pub struct Gathered {
    /// The lines.
    pub wire: Vec<u8>,
    /// Their senders.
    pub senders: Vec<ConnId>,
    /// Lines lost.
    pub lost: u64,
}

/// The mailbox lines of a hold whose bytes are gathered on the saver thread, not by the
/// hub: a connected client's copies, shared with a save as they were when it was taken.
pub trait Copies: Send + Sync {
    /// The lines, their senders and the count of those lost.
    fn gather(&self) -> Gathered;
}

/// A hold in a save whose mailbox is still to be gathered from its [`Copies`].
pub struct Deferred {
    /// The hold; its mailbox and `lost` are replaced by what `copies` gathers.
    pub hold: SavedHold,
    /// Where its mailbox lines are.
    pub copies: Box<dyn Copies>,
}

impl Deferred {
    /// The hold with its mailbox.
    pub fn gather(self) -> SavedHold {
        let Gathered {
            wire,
            senders,
            lost,
        } = self.copies.gather();
        SavedHold {
            wire: Arc::new(wire),
            senders: Arc::new(senders),
            lost,
            ..self.hold
        }
    }
}

/// Everything the file keeps: the holds with their mailboxes, in expiry order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Saved {
    /// The holds.
    pub holds: Vec<SavedHold>,
}

impl Saved {
    /// Holds, mailbox lines and lost lines in all.
    pub fn counts(&self) -> (usize, usize, u64) {
        self.holds.iter().fold((0, 0, 0), |(h, n, l), hold| {
            (h + 1, n + hold.held(), l.saturating_add(hold.lost))
        })
    }
}

/// Writes `state`, saved at `saved_at`, as the file's text. The holds' sessions are
/// numbered from 1 in the order written.
pub fn encode(state: &Saved, saved_at: SystemTime, out: &mut impl Write) -> io::Result<()> {
    let (holds, lines, lost) = state.counts();
    let numbers: HashMap<ConnId, usize> = (state.holds.iter())
        .enumerate()
        .map(|(i, h)| (h.session, i + 1))
        .collect();
    // The hub holds a session's name once: a save has one hold a session.
    debug_assert_eq!(numbers.len(), state.holds.len(), "a session held twice");
    writeln!(out, "{MAGIC} {VERSION}")?;
    writeln!(
        out,
        "# saved by xscpd {} at {}: {holds} holds, {lines} lines, {lost} lost",
        env!("CARGO_PKG_VERSION"),
        utc::format(saved_at)
    )?;
    for (number, h) in (1..).zip(&state.holds) {
        writeln!(
            out,
            "hold {} for {} until {} held {} lost {} session {number}",
            h.nick,
            h.ip,
            utc::format(h.until),
            h.held(),
            h.lost
        )?;
        for (line, sender) in h.entries() {
            if line.starts_with(b"chatm ") {
                match numbers.get(&sender) {
                    Some(n) => write!(out, "from {n} ")?,
                    None => out.write_all(b"from - ")?,
                }
            }
            out.write_all(line.strip_suffix(b"\r\n").unwrap_or(line))?;
            out.write_all(b"\n")?;
        }
    }
    writeln!(out, "end holds {holds} lines {lines}")
}

/// Why the file's text is not a state: the first wrong line (counted from 1) and what is
/// wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    /// The line, counted from 1.
    pub line: usize,
    /// What is wrong with it.
    pub what: String,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.what)
    }
}

/// The shape of a `hold` line, for the error that finds another.
const HOLD_SHAPE: &str =
    "hold <name> for <address> until <YYYY-MM-DDTHH:MM:SSZ> held <n> lost <n> session <n>";

/// The shape of a `hold` line in version 1.
const HOLD_SHAPE_1: &str =
    "hold <name> for <address> until <YYYY-MM-DDTHH:MM:SSZ> held <n> lost <n>";

/// At most this much of a wrong line is quoted in the error.
const QUOTED: usize = 48;

/// `line`, escaped and cut to [`QUOTED`] bytes, for an error.
fn quote(line: &[u8]) -> String {
    let cut = line.len() > QUOTED;
    let text = text::for_log(&line[..line.len().min(QUOTED)]);
    if cut {
        format!("'{text}...'")
    } else {
        format!("'{text}'")
    }
}

/// The hold being read: its record and how many mailbox lines it announced.
struct Reading {
    hold: SavedHold,
    /// Its line in the file.
    line: usize,
    announced: usize,
}

/// Where a mailbox line's receipt goes, as the file says it.
enum Sender {
    /// Version 2: the hold whose `session` this is (checked once every hold is read).
    Session(ConnId),
    /// Version 1: the hold of this name, if the file has one.
    Name(NickKey),
    /// A `chatr`, or a `chatm` saved `from -`.
    Nobody,
}

/// The file read so far.
#[derive(Default)]
struct Decoder {
    version: u32,
    state: Saved,
    reading: Option<Reading>,
    /// The line each name's hold is on.
    names: HashMap<NickKey, usize>,
    /// The line each session's hold is on.
    sessions: HashMap<ConnId, usize>,
    /// Version 2: the sessions `from` names, with the lines that name them.
    named: Vec<(usize, ConnId)>,
    /// Version 1: the senders to find by name (hold, line of its mailbox, name).
    by_name: Vec<(usize, usize, NickKey)>,
}

/// Parses the file's text.
pub fn decode(bytes: &[u8]) -> Result<Saved, FormatError> {
    let err = |line: usize, what: String| FormatError { line, what };
    let mut decoder: Option<Decoder> = None;
    let mut ended = false;
    let mut n = 0;
    let mut rest = bytes;
    while !rest.is_empty() {
        n += 1;
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(err(
                n,
                format!(
                    "the last line {} has no newline: the file is cut short",
                    quote(rest)
                ),
            ));
        };
        let raw = &rest[..end];
        rest = &rest[end + 1..];
        if raw.ends_with(b"\r") {
            return Err(err(
                n,
                format!(
                    "{} ends with CR LF: the lines of a state file end with LF alone",
                    quote(raw)
                ),
            ));
        }
        let Ok(line) = std::str::from_utf8(raw) else {
            return Err(err(n, format!("not UTF-8 text: {}", quote(raw))));
        };
        let Some(d) = decoder.as_mut() else {
            let version = check_version(line).map_err(|what| err(1, what))?;
            decoder = Some(Decoder {
                version,
                ..Decoder::default()
            });
            continue;
        };
        if ended {
            return Err(err(n, format!("{} after the end line", quote(raw))));
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        match line.split(' ').next() {
            Some("hold") => d.hold(line, n)?,
            Some("end") => {
                d.end(line, n)?;
                ended = true;
            }
            _ => d.mailbox_line(line, n)?,
        }
    }
    let Some(decoder) = decoder else {
        return Err(err(1, format!("the file is empty: not an {MAGIC} file")));
    };
    if !ended {
        return Err(err(
            n + 1,
            "the file ends without its end line: it is cut short".into(),
        ));
    }
    Ok(decoder.state)
}

impl Decoder {
    /// The hold read so far is complete: all its lines came before line `at`.
    fn finish(&mut self, at: usize) -> Result<(), FormatError> {
        let Some(Reading {
            hold,
            line,
            announced,
        }) = self.reading.take()
        else {
            return Ok(());
        };
        let found = hold.senders.len();
        if found < announced {
            return Err(FormatError {
                line: at,
                what: format!(
                    "the hold on {} (line {line}) announced {announced} mailbox lines, \
                     {found} came before this line",
                    hold.nick
                ),
            });
        }
        self.state.holds.push(hold);
        Ok(())
    }

    /// A `hold` line, line `n`.
    fn hold(&mut self, line: &str, n: usize) -> Result<(), FormatError> {
        let err = |what: String| FormatError { line: n, what };
        self.finish(n)?;
        // Version 1 numbers no sessions: each hold is its own.
        let next = self.state.holds.len() as ConnId + 1;
        let (hold, announced) = parse_hold(line, self.version, next).map_err(err)?;
        if let Some(first) = self.names.insert(hold.nick.key(), n) {
            return Err(err(format!(
                "{} is held twice (first on line {first})",
                hold.nick
            )));
        }
        if let Some(first) = self.sessions.insert(hold.session, n) {
            return Err(err(format!(
                "session {} is given twice (first on line {first})",
                hold.session
            )));
        }
        self.reading = Some(Reading {
            hold,
            line: n,
            announced,
        });
        Ok(())
    }

    /// A mailbox line, line `n`.
    fn mailbox_line(&mut self, line: &str, n: usize) -> Result<(), FormatError> {
        let err = |what: String| FormatError { line: n, what };
        let holds = self.state.holds.len();
        let Some(r) = self.reading.as_mut() else {
            return Err(err(format!(
                "{} is not a hold line ('{HOLD_SHAPE}'), and a mailbox line must follow \
                 its hold",
                quote(line.as_bytes())
            )));
        };
        let found = r.hold.senders.len();
        if found == r.announced {
            return Err(err(format!(
                "{} is beyond the {} mailbox lines the hold on {} (line {}) announced",
                quote(line.as_bytes()),
                r.announced,
                r.hold.nick,
                r.line
            )));
        }
        let (wire, sender) = parse_mailbox_line(line, self.version).map_err(err)?;
        let sender = match sender {
            Sender::Session(session) => {
                self.named.push((n, session));
                session
            }
            Sender::Name(key) => {
                self.by_name.push((holds, found, key));
                NO_SENDER
            }
            Sender::Nobody => NO_SENDER,
        };
        r.hold.push(format!("{wire}\r\n").as_bytes(), sender);
        Ok(())
    }

    /// The `end` line, line `n`: it matches the counts of what came before it, and every
    /// sender is found.
    fn end(&mut self, line: &str, n: usize) -> Result<(), FormatError> {
        self.finish(n)?;
        let (holds, lines, _) = self.state.counts();
        let want = format!("end holds {holds} lines {lines}");
        if line != want {
            return Err(FormatError {
                line: n,
                what: format!(
                    "{} does not match what came before it ('{want}'): lines are missing \
                     or were added",
                    quote(line.as_bytes())
                ),
            });
        }
        if let Some(&(at, session)) = self
            .named
            .iter()
            .find(|(_, s)| !self.sessions.contains_key(s))
        {
            return Err(FormatError {
                line: at,
                what: format!("no hold in the file has session {session}, which this 'from' names"),
            });
        }
        let by_name: HashMap<NickKey, ConnId> = (self.state.holds.iter())
            .map(|h| (h.nick.key(), h.session))
            .collect();
        for &(hold, line, key) in &self.by_name {
            let sender = (self.state.holds.get_mut(hold))
                .and_then(|h| Arc::make_mut(&mut h.senders).get_mut(line));
            if let (Some(&session), Some(sender)) = (by_name.get(&key), sender) {
                *sender = session;
            }
        }
        Ok(())
    }
}

/// The first line: `xscpd-state 2` (or 1); the version.
fn check_version(line: &str) -> Result<u32, String> {
    match line.split_once(' ') {
        Some((MAGIC, "1")) => Ok(1),
        Some((MAGIC, "2")) => Ok(2),
        Some((MAGIC, v)) => Err(format!(
            "version '{}' is not one this xscpd reads (it reads versions 1 and {VERSION})",
            text::for_log(v.as_bytes())
        )),
        _ => Err(format!(
            "not an {MAGIC} file: the first line is {}, not '{MAGIC} {VERSION}'",
            quote(line.as_bytes())
        )),
    }
}

/// Digits only, as a number (`parse` alone would take a `+`).
fn digits(s: &str) -> Option<u64> {
    s.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| s.parse::<u64>().ok())
        .flatten()
}

/// A session's number: 1 or more, and not [`NO_SENDER`].
fn session_number(s: &str) -> Result<ConnId, String> {
    digits(s)
        .filter(|&n| n != 0 && n != NO_SENDER)
        .ok_or_else(|| {
            format!(
                "'{}' is not a session number (from 1)",
                text::for_log(s.as_bytes())
            )
        })
}

/// `hold <name> for <address> until <time> held <n> lost <n> session <n>` (version 1:
/// without the session, which is then `next`): the hold (its mailbox empty yet) and how
/// many lines it announces.
fn parse_hold(line: &str, version: u32, next: ConnId) -> Result<(SavedHold, usize), String> {
    let shape = || {
        let shape = if version == 1 {
            HOLD_SHAPE_1
        } else {
            HOLD_SHAPE
        };
        format!("{} is not a hold line: '{shape}'", quote(line.as_bytes()))
    };
    let (head, session) = match version {
        1 => (line, None),
        _ => match line.rsplit_once(" session ") {
            Some((head, session)) => (head, Some(session)),
            None => return Err(shape()),
        },
    };
    let words: Vec<&str> = head.split(' ').collect();
    let [
        _,
        name,
        "for",
        ip,
        "until",
        until,
        "held",
        held,
        "lost",
        lost,
    ] = words[..]
    else {
        return Err(shape());
    };
    let nick = Nick::parse(name).map_err(|e| {
        format!(
            "'{}' is not a nickname: {e}",
            text::for_log(name.as_bytes())
        )
    })?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("'{}' is not an IP address", text::for_log(ip.as_bytes())))?;
    let until = utc::parse(until).ok_or_else(|| {
        format!(
            "'{}' is not a UTC time (YYYY-MM-DDTHH:MM:SSZ)",
            text::for_log(until.as_bytes())
        )
    })?;
    let count = |what: &str, s: &str| {
        digits(s).ok_or_else(|| {
            format!(
                "'{}' is not a count of {what} lines",
                text::for_log(s.as_bytes())
            )
        })
    };
    let announced = usize::try_from(count("held", held)?)
        .map_err(|_| format!("{held} mailbox lines are more than this machine can hold"))?;
    let lost = count("lost", lost)?;
    let session = match session {
        Some(s) => session_number(s)?,
        None => next,
    };
    let mut hold = SavedHold::new(nick, ip, until, session);
    hold.lost = lost;
    Ok((hold, announced))
}

/// A mailbox line of a file of `version`: the line as it goes on the wire (without its
/// CRLF) and where its receipt goes.
fn parse_mailbox_line(line: &str, version: u32) -> Result<(&str, Sender), String> {
    if version == 1 {
        let sender = check_mailbox_line(line)?;
        return Ok((line, sender.map_or(Sender::Nobody, Sender::Name)));
    }
    let Some(rest) = line.strip_prefix("from ") else {
        return match check_mailbox_line(line)? {
            None => Ok((line, Sender::Nobody)),
            Some(_) => Err(format!(
                "{} has no sender: a chatm line starts 'from <session>' or 'from -'",
                quote(line.as_bytes())
            )),
        };
    };
    let (word, wire) = rest.split_once(' ').unwrap_or((rest, ""));
    let sender = match word {
        "-" => Sender::Nobody,
        n => Sender::Session(session_number(n)?),
    };
    match check_mailbox_line(wire)? {
        Some(_) => Ok((wire, sender)),
        None => Err(format!(
            "{} has a sender: a chatr line awaits no receipt, it has no 'from'",
            quote(line.as_bytes())
        )),
    }
}

/// A mailbox line: a `chatm` or `chatr` that the server could have relayed (§1: at most
/// 510 bytes, no control bytes; a `chatm` from a nickname, since its receipt goes back to
/// that name). The sender of a `chatm`; `None` for a `chatr`.
fn check_mailbox_line(line: &str) -> Result<Option<NickKey>, String> {
    if line.len() > MAX_PDU {
        return Err(format!(
            "a mailbox line of {} bytes: at most {MAX_PDU}",
            line.len()
        ));
    }
    if let Some(&b) = line.as_bytes().iter().find(|&&b| is_control(b)) {
        return Err(format!("control byte 0x{b:02X} in a mailbox line"));
    }
    // As the server writes them (reply.rs): the keyword in lower case, one space after it.
    let parsed = if line.starts_with("chatm ") || line.starts_with("chatr ") {
        command::parse(&command::classify(line))
    } else {
        Err(command::SyntaxError::Unknown)
    };
    match parsed {
        Ok(Command::Chatm { sender, .. }) => match Nick::parse(sender) {
            Ok(nick) => Ok(Some(nick.key())),
            Err(_) => Err(format!(
                "the sender '{}' of a chatm is not a nickname",
                text::for_log(sender.as_bytes())
            )),
        },
        Ok(Command::Chatr { .. }) => Ok(None),
        _ => Err(format!(
            "{} is neither a hold line ('{HOLD_SHAPE}') nor a chatm or chatr line",
            quote(line.as_bytes())
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use proptest::prelude::*;

    use super::*;

    /// A hold left by `session`, with `lines`, each with the session its receipt goes to.
    fn hold(
        name: &str,
        ip: &str,
        session: ConnId,
        lines: &[(&str, ConnId)],
        lost: u64,
    ) -> SavedHold {
        let nick = Nick::parse(name).expect("test nickname");
        let ip = ip.parse().expect("test address");
        let until = UNIX_EPOCH + Duration::from_secs(1_796_604_312);
        let mut hold = SavedHold::new(nick, ip, until, session);
        hold.lost = lost;
        for (line, sender) in lines {
            hold.push(format!("{line}\r\n").as_bytes(), *sender);
        }
        hold
    }

    fn text(state: &Saved) -> String {
        let mut out = Vec::new();
        let at = UNIX_EPOCH + Duration::from_secs(1_796_604_012);
        encode(state, at, &mut out).expect("write to a Vec");
        String::from_utf8(out).expect("UTF-8")
    }

    /// The module comment's example: bob sent alice "one", then renamed himself Bob_2
    /// and left; "two" came from an earlier bob, whose session was not saved.
    fn example() -> Saved {
        Saved {
            holds: vec![
                hold(
                    "alice",
                    "127.0.0.1",
                    1,
                    &[
                        ("chatm bob alice one", 2),
                        ("chatm bob alice two", NO_SENDER),
                        ("chatr alice bob", NO_SENDER),
                    ],
                    0,
                ),
                hold("Bob_2", "2001:db8::7", 2, &[], 1),
            ],
        }
    }

    /// The example of the module comment (and of xscpd-state(5)), byte for byte.
    #[test]
    fn a_state_is_written_one_record_a_line() {
        let want = format!(
            "xscpd-state 2\n\
             # saved by xscpd {} at 2026-12-07T00:40:12Z: 2 holds, 3 lines, 1 lost\n\
             hold alice for 127.0.0.1 until 2026-12-07T00:45:12Z held 3 lost 0 session 1\n\
             from 2 chatm bob alice one\n\
             from - chatm bob alice two\n\
             chatr alice bob\n\
             hold Bob_2 for 2001:db8::7 until 2026-12-07T00:45:12Z held 0 lost 1 session 2\n\
             end holds 2 lines 3\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(text(&example()), want);
        assert_eq!(decode(want.as_bytes()), Ok(example()));
    }

    /// The hub's session numbers are numbered anew in the file, from 1; a sender whose
    /// session is not saved is `-`.
    #[test]
    fn sessions_are_numbered_in_file_order() {
        let far = 1 << 62;
        let state = Saved {
            holds: vec![
                hold("a", "::1", 40, &[("chatm b a hi", far)], 0),
                hold(
                    "b",
                    "::1",
                    far,
                    &[("chatm a b hi", 40), ("chatm c b x", 99)],
                    0,
                ),
            ],
        };
        let t = text(&state);
        assert!(t.contains(" session 1\nfrom 2 chatm b a hi\n"), "{t}");
        assert!(
            t.contains(" session 2\nfrom 1 chatm a b hi\nfrom - chatm c b x\n"),
            "{t}"
        );
        let back = decode(t.as_bytes()).expect("parses");
        let sessions: Vec<_> = back.holds.iter().map(|h| h.session).collect();
        assert_eq!(sessions, [1, 2]);
        assert_eq!(back.holds[0].senders.as_slice(), [2]);
        assert_eq!(back.holds[1].senders.as_slice(), [1, NO_SENDER]);
    }

    /// Version 1 (earlier servers) is read: a `chatm`'s receipt goes to the hold of its
    /// sender's name, if the file has one.
    #[test]
    fn a_version_1_file_finds_senders_by_name() {
        let t = "xscpd-state 1\n\
                 hold alice for ::1 until 2026-12-07T00:45:12Z held 3 lost 0\n\
                 chatm BOB alice one\n\
                 chatm carol alice two\n\
                 chatr alice bob\n\
                 hold bob for ::1 until 2026-12-07T00:45:12Z held 0 lost 0\n\
                 end holds 2 lines 3\n";
        let state = decode(t.as_bytes()).expect("parses");
        assert_eq!(state.holds[1].session, 2);
        assert_eq!(state.holds[0].senders.as_slice(), [2, NO_SENDER, NO_SENDER]);
        // Written back as version 2.
        assert!(text(&state).contains("from 2 chatm BOB alice one\nfrom - chatm carol"));
    }

    #[test]
    fn an_empty_state_is_the_version_and_the_end() {
        let t = text(&Saved::default());
        assert!(t.starts_with("xscpd-state 2\n#"));
        assert!(t.ends_with("\nend holds 0 lines 0\n"));
        assert_eq!(decode(t.as_bytes()), Ok(Saved::default()));
    }

    #[test]
    fn comments_and_empty_lines_are_skipped() {
        let t = "xscpd-state 2\n\n# a note\nhold a for ::1 until 2026-12-07T00:45:12Z \
                 held 1 lost 0 session 1\n# between\nfrom - chatm b a hi\nend holds 1 lines 1\n";
        let state = decode(t.as_bytes()).expect("parses");
        assert_eq!(state.holds[0].wire.as_slice(), b"chatm b a hi\r\n");
    }

    /// A count of lost lines as large as the file can say does not overflow a sum.
    #[test]
    fn the_largest_lost_counts_add_up_without_overflow() {
        let hold = |name, session| {
            format!(
                "hold {name} for ::1 until 2026-12-07T00:45:12Z held 0 lost {} session {session}\n",
                u64::MAX
            )
        };
        let t = format!(
            "xscpd-state 2\n{}{}end holds 2 lines 0\n",
            hold("a", 1),
            hold("b", 2)
        );
        let state = decode(t.as_bytes()).expect("parses");
        assert_eq!(state.counts(), (2, 0, u64::MAX));
    }

    /// The line a broken file is refused at, and a word of the reason.
    fn refused(t: &[u8]) -> (usize, String) {
        match decode(t) {
            Ok(s) => panic!("{:?} parsed: {s:?}", String::from_utf8_lossy(t)),
            Err(e) => (e.line, e.what),
        }
    }

    #[test]
    fn a_wrong_first_line_is_refused_on_line_one() {
        let (line, what) = refused(b"xscpd-state 3\nend holds 0 lines 0\n");
        assert_eq!(line, 1);
        assert!(
            what.contains("version '3'") && what.contains("reads versions 1 and 2"),
            "{what}"
        );
        let (line, what) = refused(b"hello\n");
        assert_eq!(line, 1);
        assert!(what.contains("not an xscpd-state file"), "{what}");
        assert_eq!(refused(b"").0, 1);
        assert_eq!(refused(b"\xff\n").0, 1);
    }

    /// A file whose lines end with CR LF (edited or copied on another system) is refused
    /// at its first such line, and the error says so, not that the version is wrong or
    /// that a count or name is.
    #[test]
    fn a_line_ending_with_cr_lf_is_named_as_such() {
        let t = text(&example());
        let (line, what) = refused(t.replace('\n', "\r\n").as_bytes());
        assert_eq!(line, 1);
        assert!(what.contains("CR LF"), "{what}");
        let mixed = t.replacen(" session 1\n", " session 1\r\n", 1);
        let (line, what) = refused(mixed.as_bytes());
        assert_eq!(line, 3);
        assert!(what.contains("CR LF"), "{what}");
    }

    #[test]
    fn a_file_cut_anywhere_is_refused() {
        let t = text(&example());
        for cut in 0..t.len() {
            let (line, _) = refused(&t.as_bytes()[..cut]);
            let complete = t[..cut].matches('\n').count();
            assert!(line >= complete.max(1), "cut at {cut}: line {line}");
        }
    }

    #[test]
    fn a_missing_or_extra_line_is_refused_at_the_line_that_shows_it() {
        let t = text(&example());
        let lines: Vec<&str> = t.lines().collect();
        // Without "chatm bob alice two": the next hold line shows the gap.
        let mut without = lines.clone();
        without.remove(4);
        let (line, what) = refused((without.join("\n") + "\n").as_bytes());
        assert_eq!(line, 6, "{what}");
        assert!(what.contains("announced 3"), "{what}");
        // With one more mailbox line than announced.
        let mut with = lines.clone();
        with.insert(4, "chatr bob alice");
        let (line, what) = refused((with.join("\n") + "\n").as_bytes());
        assert_eq!(line, 7, "{what}");
        // A whole hold missing: the end line's counts differ.
        let mut one = lines.clone();
        one.remove(6);
        let (line, what) = refused((one.join("\n") + "\n").as_bytes());
        assert_eq!(line, 7, "{what}");
        assert!(what.contains("end holds 1 lines 3"), "{what}");
        // Anything after the end.
        let after =
            format!("{t}hold x for ::1 until 2026-12-07T00:45:12Z held 0 lost 0 session 3\n");
        assert_eq!(refused(after.as_bytes()).0, 9);
    }

    #[test]
    fn bad_fields_are_named() {
        let at = "for ::1 until 2026-12-07T00:45:12Z";
        let cases = [
            (format!("hold 1a {at} held 0 lost 0 session 1"), "nickname"),
            (
                "hold a for ::g until 2026-12-07T00:45:12Z held 0 lost 0 session 1".into(),
                "IP address",
            ),
            (
                "hold a for ::1 until 2026-12-07T25:45:12Z held 0 lost 0 session 1".into(),
                "UTC time",
            ),
            (format!("hold a {at} held -1 lost 0 session 1"), "held"),
            (format!("hold a {at} held 0 lost +1 session 1"), "lost"),
            (
                format!("hold a {at} held 0 lost 0 session 0"),
                "session number",
            ),
            (
                format!("hold a {at} held 0 lost 0 session x"),
                "session number",
            ),
            (format!("hold a {at} held 0 lost 0"), "session <n>"),
            (format!("hold a {at} held 0"), "hold <name>"),
            (
                format!("hold a  {at} held 0 lost 0 session 1"),
                "hold <name>",
            ),
            ("chatm b a hi".into(), "must follow its hold"),
        ];
        for (record, word) in cases {
            let t = format!("xscpd-state 2\n{record}\nend holds 0 lines 0\n");
            let (line, what) = refused(t.as_bytes());
            assert_eq!(line, 2, "{record}: {what}");
            assert!(what.contains(word), "{record}: {what}");
        }
    }

    #[test]
    fn bad_mailbox_lines_are_named() {
        let long = format!("from - chatm b a {}", "x".repeat(MAX_PDU));
        let cases = [
            ("from - chatm b a hi\tthere", "control byte 0x09"),
            ("users", "neither"),
            ("CHATM b a hi", "neither"),
            (" chatm b a hi", "neither"),
            ("from - chatm b a", "neither"),
            ("from - chatm 9b a hi", "sender '9b'"),
            (long.as_str(), "at most 510"),
            ("chatm b a hi", "no sender"),
            ("from 1 chatr a b", "has a sender"),
            ("from x chatm b a hi", "session number"),
            ("from 7 chatm b a hi", "session 7"),
        ];
        for (record, word) in cases {
            let t = format!(
                "xscpd-state 2\nhold a for ::1 until 2026-12-07T00:45:12Z held 1 lost 0 \
                 session 1\n{record}\nend holds 1 lines 1\n"
            );
            let (line, what) = refused(t.as_bytes());
            assert_eq!(line, 3, "{record}: {what}");
            assert!(what.contains(word), "{record}: {what}");
        }
        let t = b"xscpd-state 2\nhold a for ::1 until 2026-12-07T00:45:12Z held 1 lost 0 \
                  session 1\nfrom - chatm b a \xc3\n";
        assert_eq!(
            refused(t),
            (3, "not UTF-8 text: 'from - chatm b a \\xC3'".into())
        );
    }

    #[test]
    fn a_name_or_a_session_held_twice_is_refused() {
        let t = "xscpd-state 2\n\
                 hold alice for ::1 until 2026-12-07T00:45:12Z held 0 lost 0 session 1\n\
                 hold ALICE for ::2 until 2026-12-07T00:45:12Z held 0 lost 0 session 2\n\
                 end holds 2 lines 0\n";
        let (line, what) = refused(t.as_bytes());
        assert_eq!(line, 3);
        assert!(what.contains("first on line 2"), "{what}");
        let t = t.replace("ALICE", "bob").replace("session 2", "session 1");
        let (line, what) = refused(t.as_bytes());
        assert_eq!(line, 3);
        assert!(what.contains("session 1 is given twice"), "{what}");
    }

    /// Any nickname the protocol allows (§5.1 uname): a letter, then up to 15 letters,
    /// digits, `-` or `_`, in any case.
    fn any_nick() -> impl Strategy<Value = Nick> {
        "[A-Za-z][A-Za-z0-9_-]{0,15}"
            .prop_map(|s| Nick::parse(&s).expect("the pattern is a nickname"))
    }

    fn any_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
            // IPv4-mapped IPv6, which prints in dotted form.
            any::<[u8; 4]>()
                .prop_map(|b| IpAddr::from(std::net::Ipv4Addr::from(b).to_ipv6_mapped())),
        ]
    }

    /// A line the server could have relayed or kept: a `chatm` (any printable UTF-8 text)
    /// or a `chatr`.
    fn any_line() -> impl Strategy<Value = String> {
        prop_oneof![
            (
                Just("chatm"),
                any_nick(),
                any_nick(),
                "[^\\x00-\\x1F\\x7F]{1,120}"
            )
                .prop_filter_map("fits a PDU", |(k, from, to, text)| {
                    let line = format!("{k} {from} {to} {text}");
                    (line.len() <= MAX_PDU && !text.trim_start_matches(' ').is_empty())
                        .then_some(line)
                }),
            (any_nick(), any_nick()).prop_map(|(from, to)| format!("chatr {from} {to}")),
        ]
    }

    fn any_hold() -> impl Strategy<Value = SavedHold> {
        (
            any_nick(),
            any_ip(),
            0u64..253_402_300_800,
            any::<u64>(),
            proptest::collection::vec(any_line(), 0..8),
        )
            .prop_map(|(nick, ip, secs, lost, lines)| {
                let until = UNIX_EPOCH + Duration::from_secs(secs);
                let mut hold = SavedHold::new(nick, ip, until, 0);
                hold.lost = lost;
                for l in &lines {
                    hold.push(format!("{l}\r\n").as_bytes(), NO_SENDER);
                }
                hold
            })
    }

    /// Holds as a file numbers them (sessions from 1 in order), each `chatm` from one of
    /// them or from a session not saved.
    fn any_state() -> impl Strategy<Value = Saved> {
        let holds = proptest::collection::vec(any_hold(), 0..12);
        (holds, any::<u64>()).prop_map(|(mut holds, seed)| {
            // One hold a name (the hub's map has one).
            let mut seen = std::collections::HashSet::new();
            holds.retain(|h| seen.insert(h.nick.key()));
            let n = holds.len() as u64;
            let mut pick = seed;
            for (h, session) in holds.iter_mut().zip(1..) {
                h.session = session;
                let chatm: Vec<bool> = h.lines().map(|l| l.starts_with(b"chatm ")).collect();
                for (sender, chatm) in Arc::make_mut(&mut h.senders).iter_mut().zip(chatm) {
                    pick = pick.rotate_left(7) ^ 0x9E37_79B9_7F4A_7C15;
                    let k = pick % (n + 1);
                    *sender = if chatm && k > 0 { k } else { NO_SENDER };
                }
            }
            Saved { holds }
        })
    }

    proptest! {
        /// xscp(7) §5.9: what is saved is what is loaded, for any holds (IPv4 and IPv6,
        /// any allowed spelling of a name) and any mailboxes.
        #[test]
        fn save_then_load_gives_the_same_state(state in any_state()) {
            let mut out = Vec::new();
            encode(&state, SystemTime::now(), &mut out).expect("write to a Vec");
            prop_assert_eq!(decode(&out), Ok(state));
        }

        /// Whatever the bytes, decoding answers: a state or a line number within the file.
        #[test]
        fn any_bytes_decode_or_name_a_line(
            version in 1u32..=2,
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut t = format!("xscpd-state {version}\n").into_bytes();
            t.extend_from_slice(&bytes);
            if let Err(e) = decode(&t) {
                prop_assert!(e.line >= 1 && e.line <= t.split(|&b| b == b'\n').count() + 1);
            }
        }

        /// A saved file with one byte changed either still parses or names a line.
        #[test]
        fn a_changed_byte_is_caught_or_harmless(state in any_state(), at in any::<usize>(), b in any::<u8>()) {
            let mut out = Vec::new();
            encode(&state, SystemTime::now(), &mut out).expect("write to a Vec");
            let i = at % out.len();
            out[i] = b;
            let _ = decode(&out);
        }
    }
}
