//! Reads the lines of an `xscpd -vv` audit log (xscp(7) §7): every line about a connection
//! becomes an [`Entry`]; the rest (the listener, the hub, startup) is not about a session
//! and is skipped.
//!
//! A line is `TIME [LEVEL] conn=N peer=ADDR TEXT`, where TEXT is `-> LINE` (the server sent
//! LINE), `<- LINE` (it read LINE), `FROM -> TO on EVENT ...` (a transition), or anything
//! else the server decided (a rename, a hold, a resume). The PDUs in the log are escaped by
//! the server already; nothing here unescapes them.

use xscp::protocol::fsm::State;

/// How the server rated a line: a warning is a violation or a fault (xscp(7) §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// `[INFO]`, `[DEBUG]`, `[TRACE]`.
    Normal,
    /// `[WARN]` or `[ERROR]`.
    Warning,
}

/// What a line says about its connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `-> LINE`: the server sent LINE.
    Sent(String),
    /// `<- LINE`: the server read LINE (or rejected bytes, as `(framing violation: …) …`).
    Received(String),
    /// `FROM -> TO on EVENT …`.
    Transition {
        /// The state left.
        from: State,
        /// The state entered.
        to: State,
        /// The event and what follows it (`credentials_validated nick=alice`).
        on: String,
    },
    /// Anything else, as logged (`renamed bob -> bobby`).
    Other(String),
}

/// One line about a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The line's number in the log, from 1.
    pub line: usize,
    /// The time as logged (`2026-12-07T00:04:11.719609Z`), if the line has one.
    pub time: Option<String>,
    pub level: Level,
    /// The connection number.
    pub conn: u64,
    /// The peer's address as logged.
    pub peer: String,
    pub kind: Kind,
}

impl Entry {
    /// The time of day to the millisecond (`00:04:11.719`), for a diagram's margin.
    pub fn clock(&self) -> Option<String> {
        let t = self.time.as_deref()?;
        let (_, time) = t.split_once('T')?;
        let time = time.trim_end_matches('Z');
        Some(time.chars().take(12).collect())
    }
}

/// The state named `name` as the log spells it.
fn state(name: &str) -> Option<State> {
    State::ALL.into_iter().find(|s| s.name() == name)
}

/// Parses one line; `None` for a line that is not about a connection (or not a log line).
pub fn parse_line(number: usize, line: &str) -> Option<Entry> {
    let line = line.trim_end_matches(['\r', '\n']);
    // The level in brackets; before it, the time (absent when the log was written
    // without one).
    let open = line
        .find(" [")
        .map(|i| i + 1)
        .or_else(|| line.starts_with('[').then_some(0))?;
    let close = open + line[open..].find("] ")?;
    let level = match &line[open + 1..close] {
        "WARN" | "ERROR" => Level::Warning,
        "INFO" | "DEBUG" | "TRACE" => Level::Normal,
        _ => return None,
    };
    let time = (open > 0).then(|| line[..open].trim().to_string());
    let rest = &line[close + 2..];
    let rest = rest.strip_prefix("conn=")?;
    let (conn, rest) = rest.split_once(' ')?;
    let conn: u64 = conn.parse().ok()?;
    let rest = rest.strip_prefix("peer=")?;
    let (peer, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let kind = if let Some(l) = text.strip_prefix("-> ") {
        Kind::Sent(l.to_string())
    } else if let Some(l) = text.strip_prefix("<- ") {
        Kind::Received(l.to_string())
    } else if text.starts_with("socket write") {
        // `-vvv`'s socket writes say how bytes left, not what the session did.
        return None;
    } else {
        transition(text).unwrap_or_else(|| Kind::Other(text.to_string()))
    };
    Some(Entry {
        line: number,
        time,
        level,
        conn,
        peer: peer.to_string(),
        kind,
    })
}

/// `FROM -> TO on EVENT …` as a transition.
fn transition(text: &str) -> Option<Kind> {
    let mut words = text.splitn(5, ' ');
    let from = state(words.next()?)?;
    (words.next()? == "->").then_some(())?;
    let to = state(words.next()?)?;
    (words.next()? == "on").then_some(())?;
    Some(Kind::Transition {
        from,
        to,
        on: words.next().unwrap_or("").to_string(),
    })
}

/// Every connection line of a log, in order.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| parse_line(i + 1, l))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "conn=7 peer=127.0.0.1:50312";

    fn kind(text: &str) -> Kind {
        let line = format!("2026-12-07T00:04:11.719609Z [TRACE] {TAG} {text}");
        parse_line(1, &line).expect("a connection line").kind
    }

    #[test]
    fn pdus_both_ways() {
        assert_eq!(
            kind("-> +OK xscp/1 ready"),
            Kind::Sent("+OK xscp/1 ready".into())
        );
        assert_eq!(kind("<- uname alice"), Kind::Received("uname alice".into()));
        assert_eq!(
            kind("<- (framing violation: control byte 0x07 in line) uname ev\\x07"),
            Kind::Received("(framing violation: control byte 0x07 in line) uname ev\\x07".into())
        );
    }

    #[test]
    fn transitions_with_their_event_and_cause() {
        assert_eq!(
            kind("NEGOTIATING -> ESTABLISHED on credentials_validated nick=alice"),
            Kind::Transition {
                from: State::Negotiating,
                to: State::Established,
                on: "credentials_validated nick=alice".into()
            }
        );
        assert_eq!(
            kind("ESTABLISHED -> ABORTED on connection_error cause=peer closed the connection"),
            Kind::Transition {
                from: State::Established,
                to: State::Aborted,
                on: "connection_error cause=peer closed the connection".into()
            }
        );
        // Not a transition: a rename names nicknames, not states.
        assert_eq!(
            kind("renamed bob -> bobby"),
            Kind::Other("renamed bob -> bobby".into())
        );
    }

    #[test]
    fn the_line_its_time_level_and_connection() {
        let e = parse_line(
            3,
            "2026-12-07T00:04:17.850808Z [WARN] conn=4 peer=[::1]:50970 ESTABLISHED -> ABORTED on connection_error cause=spoofing",
        )
        .unwrap();
        assert_eq!(e.line, 3);
        assert_eq!(e.level, Level::Warning);
        assert_eq!((e.conn, e.peer.as_str()), (4, "[::1]:50970"));
        assert_eq!(e.time.as_deref(), Some("2026-12-07T00:04:17.850808Z"));
        assert_eq!(e.clock().as_deref(), Some("00:04:17.850"));
        // Without a time (a log written by another logger) the line still reads.
        let e = parse_line(1, "[INFO] conn=4 peer=1.2.3.4:5 renamed a -> b").unwrap();
        assert_eq!((e.time, e.conn), (None, 4));
    }

    /// Lines that are not about a connection, and lines that are not log lines, are skipped.
    #[test]
    fn other_lines_are_skipped() {
        for l in [
            "2026-12-07T00:04:10.751152Z [INFO] listener addr=127.0.0.1:17321 CLOSED -> LISTEN on bind_and_listen",
            "2026-12-07T00:04:18.494978Z [INFO] hub: every client told to quit",
            "usage: xscpd",
            "",
            "2026-12-07T00:04:10Z [NOISE] conn=1 peer=x hi",
            "2026-12-07T00:04:10Z [INFO] conn=x peer=y hi",
            "2026-12-07T00:04:10Z [TRACE] conn=1 peer=127.0.0.1:1 socket write: 5 of 5 bytes",
        ] {
            assert_eq!(parse_line(1, l), None, "{l}");
        }
        let log = "2026-12-07T00:04:10Z [INFO] hub: up\n\
                   2026-12-07T00:04:11Z [TRACE] conn=1 peer=127.0.0.1:1 -> +OK xscp/1 ready\r\n";
        let entries = parse(log);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].line, 2);
        assert_eq!(entries[0].kind, Kind::Sent("+OK xscp/1 ready".into()));
    }
}
