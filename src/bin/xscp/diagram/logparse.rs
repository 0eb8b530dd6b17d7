//! Reads the lines of an `xscpd -vv` audit log (xscp(7) §7): every line about a connection
//! becomes an [`Entry`]; the rest (the listener, the hub, startup) is not about a session
//! and is skipped.
//!
//! A line is `TIME [LEVEL] conn=N peer=ADDR TEXT`, where TEXT is `-> LINE` (the server sent
//! LINE), `<- LINE` (it read LINE), `FROM -> TO on EVENT ...` (a transition), or anything
//! else the server decided (a rename, a hold, a resume). The PDUs in the log are escaped by
//! the server already; nothing here unescapes them.
//!
//! A log can hold several runs of the server (`--log-file` appends), and each run numbers
//! its connections from 1: the listener's `CLOSED -> LISTEN` line starts a run, and a
//! connection is known by its run and its number ([`ConnId`]).

use xscp::protocol::fsm::State;

/// How the server rated a line: a warning is a violation (xscp(7) §7), a slow consumer
/// dropped or a connection refused; the other faults of §6 are logged at INFO.
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

/// A connection as the log knows it: its number (`conn=N`) within its server run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    /// The server run, from 1 in the order of the log; 0 when the log holds one run only,
    /// so that a connection is named as the log names it.
    pub run: u32,
    /// The number the server gave it (`conn=N`).
    pub n: u64,
}

impl ConnId {
    /// The connection `n` of a log holding one run.
    #[cfg(test)]
    pub fn only(n: u64) -> ConnId {
        ConnId { run: 0, n }
    }

    /// As `--conn` names it: `7`, or `2:7` for run 2.
    pub fn short(&self) -> String {
        match self.run {
            0 => self.n.to_string(),
            r => format!("{r}:{}", self.n),
        }
    }

    /// Its name in an HTML page's anchors: `conn-7`, or `conn-2-7` for run 2.
    pub fn anchor(&self) -> String {
        match self.run {
            0 => format!("conn-{}", self.n),
            r => format!("conn-{r}-{}", self.n),
        }
    }
}

impl std::fmt::Display for ConnId {
    /// `conn 7`, or `run 2 conn 7` in a log of several runs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.run {
            0 => write!(f, "conn {}", self.n),
            r => write!(f, "run {r} conn {}", self.n),
        }
    }
}

/// One line about a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The line's number in the log, from 1.
    pub line: usize,
    /// The time as logged (`2026-12-07T00:04:11.719609Z`), if the line has one.
    pub time: Option<String>,
    pub level: Level,
    /// The connection.
    pub conn: ConnId,
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

/// A log line: its time (if logged), its level and its text after the level.
fn split_line(line: &str) -> Option<(Option<String>, Level, &str)> {
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
    Some((time, level, &line[close + 2..]))
}

/// Whether the text of a log line is the listener's `CLOSED -> LISTEN`: a run of the
/// server begins.
fn starts_a_run(text: &str) -> bool {
    text.starts_with("listener ") && text.contains(" CLOSED -> LISTEN on ")
}

/// Parses one line of run `run`; `None` for a line that is not about a connection (or
/// not a log line).
#[cfg(test)]
pub fn parse_line(number: usize, run: u32, line: &str) -> Option<Entry> {
    let (time, level, text) = split_line(line)?;
    entry(number, run, time, level, text)
}

/// The entry of log line `number` of run `run`, from its time, level and text after the
/// level; `None` if it is not about a connection.
fn entry(number: usize, run: u32, time: Option<String>, level: Level, text: &str) -> Option<Entry> {
    let rest = text.strip_prefix("conn=")?;
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
        conn: ConnId { run, n: conn },
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

/// Every connection line of a log, in order, each with its run (all 0 if the log holds
/// one run).
pub fn parse(text: &str) -> Vec<Entry> {
    // The run the lines belong to: each listener start begins one; lines before the first
    // (a log that begins in the middle of a run) are a run of their own.
    let mut run = 0;
    let mut entries: Vec<Entry> = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let Some((time, level, rest)) = split_line(l) else {
            continue;
        };
        if starts_a_run(rest) {
            run += 1;
        } else if let Some(e) = entry(i + 1, run.max(1), time, level, rest) {
            run = run.max(1);
            entries.push(e);
        }
    }
    let first = entries.first().map(|e| e.conn.run);
    if entries.iter().all(|e| Some(e.conn.run) == first) {
        for e in &mut entries {
            e.conn.run = 0;
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "conn=7 peer=127.0.0.1:50312";

    fn kind(text: &str) -> Kind {
        let line = format!("2026-12-07T00:04:11.719609Z [TRACE] {TAG} {text}");
        parse_line(1, 0, &line).expect("a connection line").kind
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
            0,
            "2026-12-07T00:04:17.850808Z [WARN] conn=4 peer=[::1]:50970 ESTABLISHED -> ABORTED on connection_error cause=spoofing",
        )
        .unwrap();
        assert_eq!(e.line, 3);
        assert_eq!(e.level, Level::Warning);
        assert_eq!((e.conn, e.peer.as_str()), (ConnId::only(4), "[::1]:50970"));
        assert_eq!(e.time.as_deref(), Some("2026-12-07T00:04:17.850808Z"));
        assert_eq!(e.clock().as_deref(), Some("00:04:17.850"));
        // Without a time (a log written by another logger) the line still reads.
        let e = parse_line(1, 0, "[INFO] conn=4 peer=1.2.3.4:5 renamed a -> b").unwrap();
        assert_eq!((e.time, e.conn), (None, ConnId::only(4)));
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
            assert_eq!(parse_line(1, 0, l), None, "{l}");
        }
        let log = "2026-12-07T00:04:10Z [INFO] hub: up\n\
                   2026-12-07T00:04:11Z [TRACE] conn=1 peer=127.0.0.1:1 -> +OK xscp/1 ready\r\n";
        let entries = parse(log);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].line, 2);
        assert_eq!(entries[0].kind, Kind::Sent("+OK xscp/1 ready".into()));
    }

    /// A log of two runs (`--log-file` appends) numbers each run's connections from 1: they
    /// stay two connections, named by their run; a log of one run names them as it does.
    #[test]
    fn each_run_of_the_server_numbers_its_own_connections() {
        let listen = "2026-12-07T00:04:10Z [INFO] listener addr=127.0.0.1:1 CLOSED -> LISTEN on bind_and_listen";
        let conn1 = "2026-12-07T00:04:11Z [TRACE] conn=1 peer=127.0.0.1:9 -> +OK xscp/1 ready";
        let runs = |log: &[&str]| -> Vec<(u32, u64)> {
            parse(&log.join("\n"))
                .iter()
                .map(|e| (e.conn.run, e.conn.n))
                .collect()
        };
        assert_eq!(runs(&[listen, conn1, conn1]), [(0, 1), (0, 1)]);
        assert_eq!(runs(&[listen, conn1, listen, conn1]), [(1, 1), (2, 1)]);
        // A log that begins in the middle of a run: those lines are the first run.
        assert_eq!(runs(&[conn1, listen, conn1]), [(1, 1), (2, 1)]);
        // A run in which nobody connected still counts.
        assert_eq!(
            runs(&[listen, conn1, listen, listen, conn1]),
            [(1, 1), (3, 1)]
        );
        let two = ConnId { run: 2, n: 7 };
        let names = |id: ConnId| (id.to_string(), id.short(), id.anchor());
        assert_eq!(
            names(two),
            ("run 2 conn 7".into(), "2:7".into(), "conn-2-7".into())
        );
        assert_eq!(
            names(ConnId::only(7)),
            ("conn 7".into(), "7".into(), "conn-7".into())
        );
    }
}
