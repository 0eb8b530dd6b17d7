//! The state file's text (xscp(7) §5.9; the format is documented in xscpd-state(5)):
//! one record a line, a version line first, readable by a person.
//!
//! ```text
//! xscpd-state 1
//! # saved by xscpd 0.1.0 at 2026-12-07T00:40:12Z: 2 holds, 3 lines, 1 lost
//! hold alice for 127.0.0.1 until 2026-12-07T00:45:12Z held 3 lost 0
//! chatm bob alice one
//! chatm bob alice two
//! chatr alice bob
//! hold Bob_2 for 2001:db8::7 until 2026-12-07T00:45:12Z held 0 lost 1
//! end holds 2 lines 3
//! ```
//!
//! A `hold` line names a held name as spelled, the address it is held for and its expiry
//! in UTC, then how many mailbox lines follow it and how many its mailbox lost. Each
//! mailbox line is the `chatm` or `chatr` line exactly as it would be sent, without its
//! CRLF. The `end` line repeats the counts, so that a file cut short anywhere does not
//! parse. Lines starting with `#` are comments. Decoding never panics: whatever the bytes,
//! the answer is a state or the number of the first wrong line and what is wrong with it.

use std::fmt;
use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use super::utc;
use crate::protocol::command::{self, Command};
use crate::protocol::framing::{MAX_PDU, is_control};
use crate::protocol::nick::{Nick, NickKey};
use crate::text;

/// The first word of the first line.
pub const MAGIC: &str = "xscpd-state";

/// The version this server writes and reads.
pub const VERSION: u32 = 1;

/// A mailbox's lines as they go on the wire, each with its CRLF, one after the other.
/// Shared, so that the hub can hand a held mailbox to the saver without copying it.
pub type Wire = Arc<Vec<u8>>;

/// One held name, as the file keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedHold {
    /// The name as spelled.
    pub nick: Nick,
    /// The address it is held for.
    pub ip: IpAddr,
    /// When the hold ends (the file keeps whole seconds, rounded up).
    pub until: SystemTime,
    /// Lines its mailbox lost.
    pub lost: u64,
    /// Its mailbox's lines, in the order the server accepted them.
    pub wire: Wire,
}

impl SavedHold {
    /// The mailbox's lines, each with its CRLF.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.wire.split_inclusive(|&b| b == b'\n')
    }

    /// How many lines the mailbox holds.
    pub fn held(&self) -> usize {
        self.wire.iter().filter(|&&b| b == b'\n').count()
    }
}

/// The mailbox lines of a hold whose bytes are gathered on the saver thread, not by the
/// hub: a connected client's copies, shared with a save as they were when it was taken.
pub trait Copies: Send + Sync {
    /// The lines, each with its CRLF, in order, and the count of those lost.
    fn gather(&self) -> (Vec<u8>, u64);
}

/// A hold in a save whose mailbox is still to be gathered from its [`Copies`].
pub struct Deferred {
    /// The hold; its `wire` and `lost` are replaced by what `copies` gathers.
    pub hold: SavedHold,
    /// Where its mailbox lines are.
    pub copies: Box<dyn Copies>,
}

impl Deferred {
    /// The hold with its mailbox.
    pub fn gather(self) -> SavedHold {
        let (wire, lost) = self.copies.gather();
        SavedHold {
            wire: Arc::new(wire),
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

/// Writes `state`, saved at `saved_at`, as the file's text.
pub fn encode(state: &Saved, saved_at: SystemTime, out: &mut impl Write) -> io::Result<()> {
    let (holds, lines, lost) = state.counts();
    writeln!(out, "{MAGIC} {VERSION}")?;
    writeln!(
        out,
        "# saved by xscpd {} at {}: {holds} holds, {lines} lines, {lost} lost",
        env!("CARGO_PKG_VERSION"),
        utc::format(saved_at)
    )?;
    for h in &state.holds {
        writeln!(
            out,
            "hold {} for {} until {} held {} lost {}",
            h.nick,
            h.ip,
            utc::format(h.until),
            h.held(),
            h.lost
        )?;
        for line in h.lines() {
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
const HOLD_SHAPE: &str = "hold <name> for <address> until <YYYY-MM-DDTHH:MM:SSZ> held <n> lost <n>";

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
    /// The mailbox lines read so far.
    found: usize,
    /// Their bytes on the wire.
    wire: Vec<u8>,
}

impl Reading {
    /// The hold, with all its lines read; `Err` if some are missing.
    fn finish(self, at: usize) -> Result<SavedHold, FormatError> {
        let Reading {
            mut hold,
            line,
            announced,
            found,
            wire,
        } = self;
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
        hold.wire = Arc::new(wire);
        Ok(hold)
    }
}

/// Parses the file's text.
pub fn decode(bytes: &[u8]) -> Result<Saved, FormatError> {
    let err = |line: usize, what: String| FormatError { line, what };
    let mut state = Saved::default();
    let mut reading: Option<Reading> = None;
    let mut names = std::collections::HashMap::<NickKey, usize>::new();
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
        let Ok(line) = std::str::from_utf8(raw) else {
            return Err(err(n, format!("not UTF-8 text: {}", quote(raw))));
        };
        if n == 1 {
            check_version(line).map_err(|what| err(1, what))?;
            continue;
        }
        if ended {
            return Err(err(n, format!("{} after the end line", quote(raw))));
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let mut words = line.split(' ');
        match words.next() {
            Some("hold") => {
                if let Some(r) = reading.take() {
                    state.holds.push(r.finish(n)?);
                }
                let (hold, announced) = parse_hold(line).map_err(|what| err(n, what))?;
                if let Some(first) = names.insert(hold.nick.key(), n) {
                    return Err(err(
                        n,
                        format!("{} is held twice (first on line {first})", hold.nick),
                    ));
                }
                reading = Some(Reading {
                    hold,
                    line: n,
                    announced,
                    found: 0,
                    wire: Vec::new(),
                });
            }
            Some("end") => {
                if let Some(r) = reading.take() {
                    state.holds.push(r.finish(n)?);
                }
                let (holds, lines, _) = state.counts();
                let want = format!("end holds {holds} lines {lines}");
                if line != want {
                    return Err(err(
                        n,
                        format!(
                            "{} does not match what came before it ('{want}'): \
                             lines are missing or were added",
                            quote(raw)
                        ),
                    ));
                }
                ended = true;
            }
            _ => {
                let Some(r) = reading.as_mut() else {
                    return Err(err(
                        n,
                        format!(
                            "{} is not a hold line ('{HOLD_SHAPE}'), and a mailbox line \
                             must follow its hold",
                            quote(raw)
                        ),
                    ));
                };
                if r.found == r.announced {
                    return Err(err(
                        n,
                        format!(
                            "{} is beyond the {} mailbox lines the hold on {} (line {}) \
                             announced",
                            quote(raw),
                            r.announced,
                            r.hold.nick,
                            r.line
                        ),
                    ));
                }
                check_mailbox_line(line).map_err(|what| err(n, what))?;
                r.wire.extend_from_slice(raw);
                r.wire.extend_from_slice(b"\r\n");
                r.found += 1;
            }
        }
    }
    if n == 0 {
        return Err(err(1, format!("the file is empty: not an {MAGIC} file")));
    }
    if !ended {
        return Err(err(
            n + 1,
            "the file ends without its end line: it is cut short".into(),
        ));
    }
    Ok(state)
}

/// The first line: `xscpd-state 1`.
fn check_version(line: &str) -> Result<(), String> {
    match line.split_once(' ') {
        Some((MAGIC, v)) if v == VERSION.to_string() => Ok(()),
        Some((MAGIC, v)) => Err(format!(
            "version '{}' is not one this xscpd reads (it reads version {VERSION})",
            text::for_log(v.as_bytes())
        )),
        _ => Err(format!(
            "not an {MAGIC} file: the first line is {}, not '{MAGIC} {VERSION}'",
            quote(line.as_bytes())
        )),
    }
}

/// `hold <name> for <address> until <time> held <n> lost <n>`: the hold (its mailbox
/// empty yet) and how many lines it announces.
fn parse_hold(line: &str) -> Result<(SavedHold, usize), String> {
    let words: Vec<&str> = line.split(' ').collect();
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
        return Err(format!(
            "{} is not a hold line: '{HOLD_SHAPE}'",
            quote(line.as_bytes())
        ));
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
        // Digits only: `parse` would take a `+`.
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| {
                format!(
                    "'{}' is not a count of {what} lines",
                    text::for_log(s.as_bytes())
                )
            })
    };
    let announced = usize::try_from(count("held", held)?)
        .map_err(|_| format!("{held} mailbox lines are more than this machine can hold"))?;
    let lost = count("lost", lost)?;
    let hold = SavedHold {
        nick,
        ip,
        until,
        lost,
        wire: Wire::default(),
    };
    Ok((hold, announced))
}

/// A mailbox line: a `chatm` or `chatr` that the server could have relayed (§1: at most
/// 510 bytes, no control bytes; a `chatm` from a nickname, since its receipt goes back to
/// that name).
fn check_mailbox_line(line: &str) -> Result<(), String> {
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
            Ok(_) => Ok(()),
            Err(_) => Err(format!(
                "the sender '{}' of a chatm is not a nickname",
                text::for_log(sender.as_bytes())
            )),
        },
        Ok(Command::Chatr { .. }) => Ok(()),
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

    fn hold(name: &str, ip: &str, lines: &[&str], lost: u64) -> SavedHold {
        let mut wire = Vec::new();
        for l in lines {
            wire.extend_from_slice(l.as_bytes());
            wire.extend_from_slice(b"\r\n");
        }
        SavedHold {
            nick: Nick::parse(name).expect("test nickname"),
            ip: ip.parse().expect("test address"),
            until: UNIX_EPOCH + Duration::from_secs(1_796_604_312),
            lost,
            wire: Arc::new(wire),
        }
    }

    fn text(state: &Saved) -> String {
        let mut out = Vec::new();
        let at = UNIX_EPOCH + Duration::from_secs(1_796_604_012);
        encode(state, at, &mut out).expect("write to a Vec");
        String::from_utf8(out).expect("UTF-8")
    }

    fn example() -> Saved {
        Saved {
            holds: vec![
                hold(
                    "alice",
                    "127.0.0.1",
                    &[
                        "chatm bob alice one",
                        "chatm bob alice two",
                        "chatr alice bob",
                    ],
                    0,
                ),
                hold("Bob_2", "2001:db8::7", &[], 1),
            ],
        }
    }

    /// The example of the module comment (and of xscpd(1)), byte for byte.
    #[test]
    fn a_state_is_written_one_record_a_line() {
        let want = format!(
            "xscpd-state 1\n\
             # saved by xscpd {} at 2026-12-07T00:40:12Z: 2 holds, 3 lines, 1 lost\n\
             hold alice for 127.0.0.1 until 2026-12-07T00:45:12Z held 3 lost 0\n\
             chatm bob alice one\n\
             chatm bob alice two\n\
             chatr alice bob\n\
             hold Bob_2 for 2001:db8::7 until 2026-12-07T00:45:12Z held 0 lost 1\n\
             end holds 2 lines 3\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(text(&example()), want);
        assert_eq!(decode(want.as_bytes()), Ok(example()));
    }

    #[test]
    fn an_empty_state_is_the_version_and_the_end() {
        let t = text(&Saved::default());
        assert!(t.starts_with("xscpd-state 1\n#"));
        assert!(t.ends_with("\nend holds 0 lines 0\n"));
        assert_eq!(decode(t.as_bytes()), Ok(Saved::default()));
    }

    #[test]
    fn comments_and_empty_lines_are_skipped() {
        let t = "xscpd-state 1\n\n# a note\nhold a for ::1 until 2026-12-07T00:45:12Z \
                 held 1 lost 0\n# between\nchatm b a hi\nend holds 1 lines 1\n";
        let state = decode(t.as_bytes()).expect("parses");
        assert_eq!(state.holds[0].wire.as_slice(), b"chatm b a hi\r\n");
    }

    /// A count of lost lines as large as the file can say does not overflow a sum.
    #[test]
    fn the_largest_lost_counts_add_up_without_overflow() {
        let hold = |name| {
            format!(
                "hold {name} for ::1 until 2026-12-07T00:45:12Z held 0 lost {}\n",
                u64::MAX
            )
        };
        let t = format!(
            "xscpd-state 1\n{}{}end holds 2 lines 0\n",
            hold("a"),
            hold("b")
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
        let (line, what) = refused(b"xscpd-state 2\nend holds 0 lines 0\n");
        assert_eq!(line, 1);
        assert!(
            what.contains("version '2'") && what.contains("reads version 1"),
            "{what}"
        );
        let (line, what) = refused(b"hello\n");
        assert_eq!(line, 1);
        assert!(what.contains("not an xscpd-state file"), "{what}");
        assert_eq!(refused(b"").0, 1);
        assert_eq!(refused(b"\xff\n").0, 1);
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
        with.insert(4, "chatm bob alice extra");
        let (line, what) = refused((with.join("\n") + "\n").as_bytes());
        assert_eq!(line, 7, "{what}");
        // A whole hold missing: the end line's counts differ.
        let mut one = lines.clone();
        one.remove(6);
        let (line, what) = refused((one.join("\n") + "\n").as_bytes());
        assert_eq!(line, 7, "{what}");
        assert!(what.contains("end holds 1 lines 3"), "{what}");
        // Anything after the end.
        let after = format!("{t}hold x for ::1 until 2026-12-07T00:45:12Z held 0 lost 0\n");
        assert_eq!(refused(after.as_bytes()).0, 9);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (
                "hold 1a for ::1 until 2026-12-07T00:45:12Z held 0 lost 0",
                "nickname",
            ),
            (
                "hold a for ::g until 2026-12-07T00:45:12Z held 0 lost 0",
                "IP address",
            ),
            (
                "hold a for ::1 until 2026-12-07T25:45:12Z held 0 lost 0",
                "UTC time",
            ),
            (
                "hold a for ::1 until 2026-12-07T00:45:12Z held -1 lost 0",
                "held",
            ),
            (
                "hold a for ::1 until 2026-12-07T00:45:12Z held 0 lost +1",
                "lost",
            ),
            (
                "hold a for ::1 until 2026-12-07T00:45:12Z held 0",
                "hold <name>",
            ),
            (
                "hold a  for ::1 until 2026-12-07T00:45:12Z held 0 lost 0",
                "hold <name>",
            ),
            ("chatm b a hi", "must follow its hold"),
        ];
        for (record, word) in cases {
            let t = format!("xscpd-state 1\n{record}\nend holds 0 lines 0\n");
            let (line, what) = refused(t.as_bytes());
            assert_eq!(line, 2, "{record}: {what}");
            assert!(what.contains(word), "{record}: {what}");
        }
    }

    #[test]
    fn bad_mailbox_lines_are_named() {
        let long = format!("chatm b a {}", "x".repeat(MAX_PDU));
        let cases = [
            ("chatm b a hi\tthere", "control byte 0x09"),
            ("users", "neither"),
            ("CHATM b a hi", "neither"),
            (" chatm b a hi", "neither"),
            ("chatm b a", "neither"),
            ("chatm 9b a hi", "sender '9b'"),
            (long.as_str(), "at most 510"),
        ];
        for (record, word) in cases {
            let t = format!(
                "xscpd-state 1\nhold a for ::1 until 2026-12-07T00:45:12Z held 1 lost 0\n\
                 {record}\nend holds 1 lines 1\n"
            );
            let (line, what) = refused(t.as_bytes());
            assert_eq!(line, 3, "{record}: {what}");
            assert!(what.contains(word), "{record}: {what}");
        }
        let t = b"xscpd-state 1\nhold a for ::1 until 2026-12-07T00:45:12Z held 1 lost 0\n\
                  chatm b a \xc3\n";
        assert_eq!(refused(t), (3, "not UTF-8 text: 'chatm b a \\xC3'".into()));
    }

    #[test]
    fn a_name_held_twice_is_refused() {
        let t = "xscpd-state 1\n\
                 hold alice for ::1 until 2026-12-07T00:45:12Z held 0 lost 0\n\
                 hold ALICE for ::2 until 2026-12-07T00:45:12Z held 0 lost 0\n\
                 end holds 2 lines 0\n";
        let (line, what) = refused(t.as_bytes());
        assert_eq!(line, 3);
        assert!(what.contains("first on line 2"), "{what}");
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
                let mut wire = Vec::new();
                for l in &lines {
                    wire.extend_from_slice(l.as_bytes());
                    wire.extend_from_slice(b"\r\n");
                }
                SavedHold {
                    nick,
                    ip,
                    until: UNIX_EPOCH + Duration::from_secs(secs),
                    lost,
                    wire: Arc::new(wire),
                }
            })
    }

    fn any_state() -> impl Strategy<Value = Saved> {
        proptest::collection::vec(any_hold(), 0..12).prop_map(|mut holds| {
            // One hold a name (the hub's map has one).
            let mut seen = std::collections::HashSet::new();
            holds.retain(|h| seen.insert(h.nick.key()));
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
        fn any_bytes_decode_or_name_a_line(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut t = b"xscpd-state 1\n".to_vec();
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
