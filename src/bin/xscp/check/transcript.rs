//! The transcript format (`xscp-transcript(5)`): a conformance case as a dialogue in
//! WS_2017's `c:` / `s:` notation, with named connections. This module only parses; it
//! opens no socket. A parsed [`Transcript`] is valid: every step names a connection that
//! was opened before it, every placeholder is well formed.
//!
//! ```text
//! # One rule per file.
//! section: 5.1 uname
//! level: MUST
//! rule: a free name is taken: "+OK you are <name>", ESTABLISHED
//! options: --hold 0
//! alice connect
//! alice c: uname alice
//! alice s: +OK you are alice
//! note: alice ESTABLISHED
//! alice quiet
//! ```

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::text::{MAX_SEND, Tok, lex, repeat};

/// The longest transcript line accepted.
const MAX_LINE: usize = 64 * 1024;

/// MUST: the protocol's rule. SHOULD: a decision of the reference server that another
/// server may take differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Must,
    Should,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
        })
    }
}

/// One piece of a line to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// Bytes sent as they are (escapes already resolved).
    Bytes(Vec<u8>),
    /// `{name}`: the value captured earlier.
    Var(String),
}

/// One piece of a line the server must send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pat {
    /// These bytes, exactly.
    Lit(Vec<u8>),
    /// `{*}`: any text, possibly none.
    Any,
    /// `{name}`: one or more bytes other than space; captured the first time, the same
    /// value every later time (and in later `c:` lines).
    Var(String),
    /// `{attempt N of MAX}`: any text that ends with the count of failed attempts, N,
    /// in any form (optionally with the budget MAX after it), then only punctuation or
    /// spaces; see [`super::matching::ends_with_count`]. Always last, after literal text.
    Count { n: u64, max: u64 },
}

/// What one step of a transcript does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open a connection (from `from`, default 127.0.0.1). Unless `raw`, the server's
    /// first line (its greeting, whatever it says) is read and kept out of the way.
    Connect { from: Option<Ipv4Addr>, raw: bool },
    /// `c:` (with CRLF) or `raw:` (exactly these bytes).
    Send(Vec<Piece>),
    /// `s:` (the line without its CRLF or LF) or `sraw:` (the line with its terminator).
    Expect { pat: Vec<Pat>, raw: bool },
    /// `until:` lines that do not match are let by (at most 10000) until one does.
    Until(Vec<Pat>),
    /// Nothing more has arrived: `ping <token>` is answered `+OK pong <token>` with
    /// nothing before it.
    Quiet,
    /// `maybe:` the next line is taken if it matches, else left for the next step (where
    /// the protocol allows a line without requiring it).
    Maybe(Vec<Pat>),
    /// `collect:` lines are kept, in any order, until one matches (a list's end).
    Collect(Vec<Pat>),
    /// `listed:` one line of the last `collect:` matches (each line matches once).
    Listed(Vec<Pat>),
    /// `unlisted:` no line of the last `collect:` matches.
    Unlisted(Vec<Pat>),
    /// `every DUR:` the line is sent every DUR, while the steps after it wait, until the
    /// connection ends or is closed (or for twice `--timeout`); an `until:` on it then
    /// waits `--timeout` in all.
    Every(Duration, Vec<Piece>),
    /// The server closes the connection now: end of stream, no line before it.
    Closed,
    /// The client closes its side.
    Close,
    /// The client stops reading (the server's lines pile up in the network).
    Pause,
    /// The client reads again.
    Resume,
    /// A state the server is in now (for the diagram).
    Note(String),
    /// `@shutdown`: SIGTERM to the server (only when xscp started it).
    Shutdown,
    /// `@exit N`: the server process ends with status N.
    Exit(i32),
}

/// One step: what, on which connection, from which line of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub line: usize,
    /// The connection; `None` for steps about the server.
    pub conn: Option<String>,
    pub action: Action,
    /// The step as written (for reports).
    pub text: String,
}

/// A parsed transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript {
    /// The file name without `.xt`.
    pub name: String,
    /// Where it came from (`builtin:NAME.xt` or a path), for messages.
    pub origin: String,
    /// The section of xscp(7): its number, then optionally a title (`5.1 uname`).
    pub section: String,
    pub level: Level,
    /// The rule, in one line.
    pub rule: String,
    /// Server options the transcript needs, as words.
    pub options: Vec<String>,
    /// Features the server must have (`requires: resume`).
    pub requires: Vec<String>,
    /// `server: fresh`: the transcript needs a server of its own (it counts users or
    /// listens to notifications), so it cannot run against a shared ADDR.
    pub fresh: bool,
    /// `names:` the nicknames it registers. Against a shared ADDR they get a
    /// suffix of six letters and digits unique to the run, so that earlier runs' name holds do not get in the way.
    pub names: Vec<String>,
    pub steps: Vec<Step>,
}

impl Transcript {
    /// The section number (`5.7` of `5.7 name hold`).
    pub fn section_number(&self) -> &str {
        self.section.split_whitespace().next().unwrap_or("")
    }

    /// Does it need the server to be started by xscp (`@shutdown`, `@exit`)?
    pub fn needs_process(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.action, Action::Shutdown | Action::Exit(_)))
    }
}

/// A transcript that cannot be read: where and why.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    pub origin: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.origin, self.line, self.message)
    }
}

/// Parses the transcript `text`, named `name`, read from `origin`.
pub fn parse(name: &str, origin: &str, text: &str) -> Result<Transcript, ParseError> {
    let mut p = Parser {
        t: Transcript {
            name: name.to_string(),
            origin: origin.to_string(),
            section: String::new(),
            level: Level::Must,
            rule: String::new(),
            options: Vec::new(),
            requires: Vec::new(),
            fresh: false,
            names: Vec::new(),
            steps: Vec::new(),
        },
        level_seen: false,
        opened: HashSet::new(),
        vars: HashSet::new(),
        current: None,
    };
    let mut last = 0;
    for (i, raw) in text.lines().enumerate() {
        last = i + 1;
        p.line(i + 1, raw)
            .map_err(|message| p.error(i + 1, message))?;
    }
    let missing = [
        ("section", p.t.section.is_empty()),
        ("level", !p.level_seen),
        ("rule", p.t.rule.is_empty()),
    ];
    if let Some((h, _)) = missing.iter().find(|(_, m)| *m) {
        return Err(p.error(last.max(1), format!("missing header '{h}:'")));
    }
    if p.t.steps.is_empty() {
        return Err(p.error(last.max(1), "no steps".into()));
    }
    Ok(p.t)
}

struct Parser {
    t: Transcript,
    level_seen: bool,
    /// Connections opened so far.
    opened: HashSet<String>,
    /// Placeholders captured so far (by an `s:` line).
    vars: HashSet<String>,
    /// The connection the last step named: the default for `c:`/`s:` without a name.
    current: Option<String>,
}

const HEADERS: [&str; 7] = [
    "section", "level", "rule", "options", "requires", "server", "names",
];

/// What a step's verb does; the action it becomes is built from it in [`Parser::line`].
#[derive(Clone, Copy, PartialEq)]
enum Verb {
    Connect,
    /// `c:` (with CRLF added), `raw:`, and `every DUR:` (with CRLF, repeated).
    Send {
        crlf: bool,
        every: bool,
    },
    /// `s:` and `sraw:`.
    Expect {
        raw: bool,
    },
    Until,
    Maybe,
    Collect,
    Listed,
    Unlisted,
    Quiet,
    Closed,
    Close,
    Pause,
    Resume,
}

impl Verb {
    /// Is it written `VERB: TEXT`?
    fn takes_text(self) -> bool {
        !matches!(
            self,
            Verb::Connect | Verb::Quiet | Verb::Closed | Verb::Close | Verb::Pause | Verb::Resume
        )
    }
}

/// The step verbs of `xscp-transcript(5)`, each once.
const VERBS: [(&str, Verb); 16] = [
    ("connect", Verb::Connect),
    (
        "c",
        Verb::Send {
            crlf: true,
            every: false,
        },
    ),
    (
        "raw",
        Verb::Send {
            crlf: false,
            every: false,
        },
    ),
    (
        "every",
        Verb::Send {
            crlf: true,
            every: true,
        },
    ),
    ("s", Verb::Expect { raw: false }),
    ("sraw", Verb::Expect { raw: true }),
    ("until", Verb::Until),
    ("maybe", Verb::Maybe),
    ("collect", Verb::Collect),
    ("listed", Verb::Listed),
    ("unlisted", Verb::Unlisted),
    ("quiet", Verb::Quiet),
    ("closed", Verb::Closed),
    ("close", Verb::Close),
    ("pause", Verb::Pause),
    ("resume", Verb::Resume),
];

fn verb_named(name: &str) -> Option<Verb> {
    VERBS.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
}

impl Parser {
    fn error(&self, line: usize, message: String) -> ParseError {
        ParseError {
            origin: self.t.origin.clone(),
            line,
            message,
        }
    }

    fn line(&mut self, n: usize, raw: &str) -> Result<(), String> {
        if raw.len() > MAX_LINE {
            return Err(format!("line longer than {MAX_LINE} bytes"));
        }
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(());
        }
        // Headers and notes: `key: value`.
        if let Some((key, value)) = trimmed.split_once(':') {
            let value = value.trim();
            if HEADERS.contains(&key) {
                if !self.t.steps.is_empty() {
                    return Err(format!("header '{key}:' after the first step"));
                }
                return self.header(key, value);
            }
            if key == "note" {
                let (conn, text) = match value.split_once(' ') {
                    Some((c, t)) if self.opened.contains(c) => (Some(c.to_string()), t),
                    _ => (None, value),
                };
                if text.is_empty() {
                    return Err("empty note".into());
                }
                return self.push(n, conn, Action::Note(text.trim().to_string()), trimmed);
            }
        }
        if let Some(directive) = trimmed.strip_prefix('@') {
            let mut words = directive.split_whitespace();
            let action = match (words.next(), words.next(), words.next()) {
                (Some("shutdown"), None, _) => Action::Shutdown,
                (Some("exit"), Some(code), None) => Action::Exit(
                    code.parse()
                        .map_err(|_| format!("'@exit' needs a status number, not '{code}'"))?,
                ),
                _ => return Err(format!("unknown directive '@{directive}'")),
            };
            return self.push(n, None, action, trimmed);
        }
        // Steps: `[CONN] VERB[: TEXT]` or `[CONN] connect [ARGS]`.
        let first = trimmed.split([' ', ':']).next().unwrap_or("");
        let (conn, after) =
            if trimmed[first.len()..].starts_with(':') && verb_named(first).is_some() {
                let conn = self
                    .current
                    .clone()
                    .ok_or_else(|| format!("'{first}:' before any connection is named"))?;
                (conn, trimmed)
            } else {
                (first.to_string(), trimmed[first.len()..].trim_start())
            };
        let verb_len = after
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(after.len());
        let (verb, tail) = after.split_at(verb_len);
        // `every DUR: LINE`: the period sits between the verb and the colon.
        let kind = verb_named(verb);
        let every = kind
            == Some(Verb::Send {
                crlf: true,
                every: true,
            });
        let (period, tail) = match (every, tail.split_once(':')) {
            (true, Some((dur, _))) => {
                let d = xscp::config::parse_duration(dur.trim()).filter(|d| !d.is_zero());
                let d = d.ok_or_else(|| format!("'every' needs a period, not '{}'", dur.trim()))?;
                (Some(d), &tail[dur.len()..])
            }
            (true, None) => return Err("'every' needs 'every DUR: LINE'".into()),
            _ => (None, tail),
        };
        let (text, rest) = match tail.strip_prefix(':') {
            Some(t) => (Some(t.strip_prefix(' ').unwrap_or(t)), ""),
            None => (None, tail.trim()),
        };
        if verb.is_empty() {
            return Err(format!(
                "cannot read '{trimmed}': expected 'NAME VERB', 'VERB: TEXT' or a header"
            ));
        }
        let Some(kind) = kind else {
            let names: Vec<&str> = VERBS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown step '{verb}' (one of: {})",
                names.join(", ")
            ));
        };
        match (kind.takes_text(), text) {
            (true, None) => return Err(format!("'{verb}' needs ': TEXT'")),
            (false, Some(_)) => {
                return Err(format!("'{verb}' takes no text"));
            }
            _ => {}
        }
        if !valid_name(&conn) {
            return Err(format!(
                "connection name '{conn}': letters, digits and '_' only, first a letter"
            ));
        }
        if kind == Verb::Connect {
            if self.opened.contains(&conn) {
                return Err(format!("connection '{conn}' is already open"));
            }
            let action = connect_args(rest)?;
            self.opened.insert(conn.clone());
            return self.push(n, Some(conn), action, trimmed);
        }
        if !self.opened.contains(&conn) {
            return Err(format!(
                "connection '{conn}' is not open ('{conn} connect' first)"
            ));
        }
        if !rest.is_empty() {
            return Err(format!("unexpected '{rest}' after '{verb}'"));
        }
        let text = text.unwrap_or("");
        let action = match kind {
            Verb::Send { crlf, .. } => {
                let mut pieces = self.send_pieces(text)?;
                if crlf {
                    match pieces.last_mut() {
                        Some(Piece::Bytes(b)) => b.extend_from_slice(b"\r\n"),
                        _ => pieces.push(Piece::Bytes(b"\r\n".to_vec())),
                    }
                }
                match period {
                    Some(d) => Action::Every(d, pieces),
                    None => Action::Send(pieces),
                }
            }
            Verb::Expect { raw } => Action::Expect {
                pat: self.pattern(text)?,
                raw,
            },
            Verb::Until => Action::Until(self.pattern(text)?),
            Verb::Maybe => Action::Maybe(self.pattern(text)?),
            Verb::Collect => Action::Collect(self.pattern(text)?),
            Verb::Listed => Action::Listed(self.pattern(text)?),
            Verb::Unlisted => Action::Unlisted(self.pattern(text)?),
            Verb::Quiet => Action::Quiet,
            Verb::Closed => Action::Closed,
            Verb::Pause => Action::Pause,
            Verb::Resume => Action::Resume,
            // `connect` returned its action above, before the connection had to be open.
            Verb::Close | Verb::Connect => Action::Close,
        };
        self.push(n, Some(conn), action, trimmed)
    }

    fn push(
        &mut self,
        line: usize,
        conn: Option<String>,
        action: Action,
        text: &str,
    ) -> Result<(), String> {
        if conn.is_some() {
            self.current.clone_from(&conn);
        }
        self.t.steps.push(Step {
            line,
            conn,
            action,
            text: text.to_string(),
        });
        Ok(())
    }

    fn header(&mut self, key: &str, value: &str) -> Result<(), String> {
        if value.is_empty() {
            return Err(format!("empty header '{key}:'"));
        }
        match key {
            "section" => {
                let number = value.split_whitespace().next().unwrap_or("");
                if !number
                    .split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                {
                    return Err(format!(
                        "section '{value}' must start with a section number such as 5.7"
                    ));
                }
                self.t.section = value.to_string();
            }
            "level" => {
                self.t.level = match value {
                    "MUST" => Level::Must,
                    "SHOULD" => Level::Should,
                    _ => return Err(format!("level '{value}': MUST or SHOULD")),
                };
                self.level_seen = true;
            }
            "rule" => self.t.rule = value.to_string(),
            "options" => self.t.options = value.split_whitespace().map(String::from).collect(),
            "server" if value == "fresh" => self.t.fresh = true,
            "server" => return Err(format!("server '{value}': only 'fresh'")),
            "names" => {
                self.t.names = value.split_whitespace().map(String::from).collect();
                if let Some(bad) = self.t.names.iter().find(|n| !valid_name(n) || n.len() > 10) {
                    return Err(format!("name '{bad}': at most 10 letters, digits or '_'"));
                }
            }
            _ => self.t.requires = value.split_whitespace().map(String::from).collect(),
        }
        Ok(())
    }

    /// A `c:`/`raw:` text: escapes, `{N*C}` repeats, `{name}` captured before.
    fn send_pieces(&self, text: &str) -> Result<Vec<Piece>, String> {
        let mut pieces = Vec::new();
        let mut bytes = Vec::new();
        let mut size = 0;
        for tok in lex(text)? {
            match tok {
                Tok::Bytes(b) => bytes.extend_from_slice(&b),
                Tok::Brace(inner) => {
                    if inner.contains('*') {
                        bytes.extend(repeat(&inner)?);
                    } else if self.vars.contains(&inner) {
                        pieces.push(Piece::Bytes(std::mem::take(&mut bytes)));
                        pieces.push(Piece::Var(inner));
                    } else {
                        return Err(format!(
                            "'{{{inner}}}' is sent before an 's:' line captured it"
                        ));
                    }
                }
            }
            size += bytes.len();
            if size > MAX_SEND {
                return Err(format!("line expands to more than {MAX_SEND} bytes"));
            }
        }
        pieces.push(Piece::Bytes(bytes));
        pieces.retain(|p| !matches!(p, Piece::Bytes(b) if b.is_empty()));
        Ok(pieces)
    }

    /// An `s:`/`sraw:` text: escapes, `{*}`, `{name}`.
    fn pattern(&mut self, text: &str) -> Result<Vec<Pat>, String> {
        let mut pat = Vec::new();
        for tok in lex(text)? {
            match tok {
                Tok::Bytes(b) if b.is_empty() => {}
                Tok::Bytes(b) => match pat.last_mut() {
                    Some(Pat::Lit(l)) => l.extend_from_slice(&b),
                    _ => pat.push(Pat::Lit(b)),
                },
                Tok::Brace(inner) if inner == "*" => pat.push(Pat::Any),
                Tok::Brace(inner) if inner.contains('*') => {
                    let b = repeat(&inner)?;
                    match pat.last_mut() {
                        Some(Pat::Lit(l)) => l.extend_from_slice(&b),
                        _ => pat.push(Pat::Lit(b)),
                    }
                }
                Tok::Brace(inner) if inner.starts_with("attempt ") => {
                    if !matches!(pat.last(), None | Some(Pat::Lit(_))) {
                        return Err(format!(
                            "'{{{inner}}}' takes any text before the count: it follows literal text, not {{*}} or {{name}}"
                        ));
                    }
                    pat.push(count(&inner)?);
                }
                Tok::Brace(inner) if valid_name(&inner) => {
                    self.vars.insert(inner.clone());
                    pat.push(Pat::Var(inner));
                }
                Tok::Brace(inner) => {
                    return Err(format!(
                        "'{{{inner}}}': a placeholder is {{*}}, {{name}} (letters, digits, _) or {{attempt N of MAX}}"
                    ));
                }
            }
            if matches!(
                pat[..pat.len().saturating_sub(1)].last(),
                Some(Pat::Count { .. })
            ) {
                return Err("'{attempt N of MAX}' ends the pattern".into());
            }
        }
        Ok(pat)
    }
}

/// `attempt N of MAX`, 1 <= N <= MAX.
fn count(inner: &str) -> Result<Pat, String> {
    let words: Vec<&str> = inner.split(' ').collect();
    let num = |w: &str| {
        w.parse::<u64>()
            .ok()
            .filter(|&v| v > 0 && w.bytes().all(|b| b.is_ascii_digit()))
    };
    match words[..] {
        ["attempt", n, "of", max] => match (num(n), num(max)) {
            (Some(n), Some(max)) if n <= max => Ok(Pat::Count { n, max }),
            _ => Err(format!(
                "'{{{inner}}}': N and MAX are numbers, 1 <= N <= MAX"
            )),
        },
        _ => Err(format!("'{{{inner}}}': the count is {{attempt N of MAX}}")),
    }
}

fn connect_args(args: &str) -> Result<Action, String> {
    let mut from = None;
    let mut raw = false;
    let mut words = args.split_whitespace();
    while let Some(w) = words.next() {
        match w {
            "raw" => raw = true,
            "from" => {
                let a = words.next().ok_or("'from' needs an IPv4 address")?;
                let ip: Ipv4Addr = a
                    .parse()
                    .map_err(|_| format!("'from {a}': not an IPv4 address"))?;
                if !ip.is_loopback() {
                    return Err(format!("'from {a}': only loopback addresses (127.x.y.z)"));
                }
                from = Some(ip);
            }
            _ => return Err(format!("'connect' does not know '{w}' (from ADDR, raw)")),
        }
    }
    Ok(Action::Connect { from, raw })
}

fn valid_name(s: &str) -> bool {
    s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "section: 5 uname\nlevel: MUST\nrule: r\n";

    fn ok(body: &str) -> Transcript {
        parse("t", "t.xt", &format!("{HEAD}{body}")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(body: &str) -> String {
        parse("t", "t.xt", &format!("{HEAD}{body}"))
            .expect_err("a bad transcript")
            .to_string()
    }

    #[test]
    fn headers_and_steps() {
        let t = parse(
            "uname-new",
            "x.xt",
            "# c\nsection: 5.7 hold\nlevel: SHOULD\nrule: the rule\noptions: --hold 0\n\
             requires: resume\nalice connect from 127.0.0.2\nalice c: uname alice\n\
             s: +OK you are {me}\nnote: alice ESTABLISHED\nc: chatm {me} * hi\nalice quiet\n\
             alice closed\n@shutdown\n@exit 0\n",
        )
        .unwrap();
        assert_eq!((t.section_number(), t.level), ("5.7", Level::Should));
        assert_eq!(t.options, ["--hold", "0"]);
        assert_eq!(t.requires, ["resume"]);
        let actions: Vec<_> = t.steps.iter().map(|s| s.action.clone()).collect();
        assert_eq!(
            actions[0],
            Action::Connect {
                from: Some(Ipv4Addr::new(127, 0, 0, 2)),
                raw: false
            }
        );
        assert_eq!(
            actions[1],
            Action::Send(vec![Piece::Bytes(b"uname alice\r\n".to_vec())])
        );
        assert_eq!(
            actions[2],
            Action::Expect {
                pat: vec![Pat::Lit(b"+OK you are ".to_vec()), Pat::Var("me".into())],
                raw: false
            }
        );
        assert_eq!(actions[3], Action::Note("ESTABLISHED".into()));
        assert_eq!(t.steps[3].conn.as_deref(), Some("alice"));
        assert_eq!(
            actions[4],
            Action::Send(vec![
                Piece::Bytes(b"chatm ".to_vec()),
                Piece::Var("me".into()),
                Piece::Bytes(b" * hi\r\n".to_vec())
            ])
        );
        assert_eq!(
            actions[5..],
            [
                Action::Quiet,
                Action::Closed,
                Action::Shutdown,
                Action::Exit(0)
            ]
        );
        assert!(t.needs_process());
    }

    #[test]
    fn lists_optional_lines_and_repeats() {
        let t = ok(
            "a connect\na maybe: +OK {*}\na collect: .\na listed: bob\na unlisted: x\n\
                    a every 250ms: ping x\n",
        );
        assert_eq!(
            t.steps[1].action,
            Action::Maybe(vec![Pat::Lit(b"+OK ".to_vec()), Pat::Any])
        );
        assert_eq!(
            t.steps[2].action,
            Action::Collect(vec![Pat::Lit(b".".to_vec())])
        );
        assert_eq!(
            t.steps[3].action,
            Action::Listed(vec![Pat::Lit(b"bob".to_vec())])
        );
        assert_eq!(
            t.steps[4].action,
            Action::Unlisted(vec![Pat::Lit(b"x".to_vec())])
        );
        assert_eq!(
            t.steps[5].action,
            Action::Every(
                Duration::from_millis(250),
                vec![Piece::Bytes(b"ping x\r\n".to_vec())]
            )
        );
        assert!(err("a connect\na every: x\n").contains("needs a period"));
        assert!(err("a connect\na every soon: x\n").contains("needs a period"));
    }

    #[test]
    fn escapes_repeats_and_braces() {
        let t = ok("a connect raw\na raw: {3*ab}\\r\\x00{{}}\\s\na sraw: x{*}\\r\\n\n");
        assert_eq!(
            t.steps[1].action,
            Action::Send(vec![Piece::Bytes(b"ababab\r\x00{} ".to_vec())])
        );
        assert_eq!(
            t.steps[2].action,
            Action::Expect {
                pat: vec![
                    Pat::Lit(b"x".to_vec()),
                    Pat::Any,
                    Pat::Lit(b"\r\n".to_vec())
                ],
                raw: true
            }
        );
    }

    #[test]
    fn the_attempt_count_ends_a_pattern() {
        let t = ok("a connect\na s: -ERR [SYNTAX] {attempt 2 of 3}\n");
        assert_eq!(
            t.steps[1].action,
            Action::Expect {
                pat: vec![
                    Pat::Lit(b"-ERR [SYNTAX] ".to_vec()),
                    Pat::Count { n: 2, max: 3 }
                ],
                raw: false
            }
        );
        assert!(err("a connect\na s: x {attempt 1 of 3})\n").contains("ends the pattern"));
        assert!(err("a connect\na s: {attempt 1 of 3}{x}\n").contains("ends the pattern"));
        assert!(err("a connect\na s: x{*}{attempt 1 of 3}\n").contains("follows literal text"));
        assert!(err("a connect\na s: {x}{attempt 1 of 3}\n").contains("follows literal text"));
        assert!(err("a connect\na s: {attempt 4 of 3}\n").contains("1 <= N <= MAX"));
        assert!(err("a connect\na s: {attempt 0 of 3}\n").contains("1 <= N <= MAX"));
        assert!(err("a connect\na s: {attempt 2/3}\n").contains("{attempt N of MAX}"));
    }

    #[test]
    fn bad_files_say_where_and_why() {
        assert_eq!(
            err("a c: hi\n"),
            "t.xt:4: connection 'a' is not open ('a connect' first)"
        );
        assert_eq!(
            err("c: hi\n"),
            "t.xt:4: 'c:' before any connection is named"
        );
        assert!(err("a connect\na shout: x\n").starts_with("t.xt:5: unknown step 'shout'"));
        assert!(err("a connect\na c: {tok}\n").starts_with("t.xt:5: '{tok}' is sent before"));
        assert!(err("a connect\na s: {a b}\n").contains("a placeholder is"));
        assert!(err("a connect\na s: x}\n").contains("lone '}'"));
        assert!(err("a connect\na c: \\q\n").contains("unknown escape"));
        assert!(err("a connect\na c: \\x4\n").contains("two hex digits"));
        assert!(err("a connect from 10.0.0.1\n").contains("only loopback"));
        assert!(err("a connect\na connect\n").contains("already open"));
        assert!(err("a connect\na quiet: x\n").contains("takes no text"));
        assert!(err("a connect\na c\n").contains("needs ': TEXT'"));
        assert!(err("a connect\nsection: 5\n").contains("after the first step"));
        assert!(err("@reboot\n").contains("unknown directive"));
        assert!(err("a connect\na c: {99999999*a}\n").contains("too long"));
        assert!(err("a connect\na c: {9000*{1000*a}}\n").contains("too long"));
        assert!(err("a connect\na c: {2*{x}}\n").contains("only repeats inside a repeat"));
        let t = ok("a connect\na raw: {2*a{3*b}\\n}\n");
        assert_eq!(
            t.steps[1].action,
            Action::Send(vec![Piece::Bytes(b"abbb\nabbb\n".to_vec())])
        );
        assert_eq!(
            parse("t", "t.xt", "level: MUST\nrule: r\na connect\n")
                .unwrap_err()
                .to_string(),
            "t.xt:3: missing header 'section:'"
        );
        assert!(
            parse("t", "t.xt", "section: five\n")
                .unwrap_err()
                .to_string()
                .starts_with("t.xt:1: section 'five'")
        );
        assert_eq!(err("").to_string(), "t.xt:3: no steps");
    }
}
