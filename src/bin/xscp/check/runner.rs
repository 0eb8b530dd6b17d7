//! Plays a [`Transcript`] against a server: opens its connections, sends its lines, waits
//! (at most `--timeout` each) for the lines it expects and matches them, and records the
//! exchange that actually took place for the report and the diagram. With `--server` it
//! starts a fresh server per transcript on a free port and stops it afterwards.
//!
//! Nothing the server sends can make it panic or grow without bound: lines are read with a
//! length bound, what is read ahead of the transcript is bounded in bytes, every wait has
//! a deadline, every write a timeout.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};

use super::sys;
use super::transcript::{Action, Pat, Piece, Step, Transcript};

/// The longest line read from a server; a conforming one sends at most 512 bytes.
const MAX_LINE: usize = 8 * 1024;
/// Bytes from one connection read ahead of the transcript: the reader never stops
/// reading before this (so that the checker does not become a slow consumer itself while
/// it floods), and gives up past it.
const READ_AHEAD: usize = 16 * 1024 * 1024;
/// The most lines an `until:` step lets by.
const UNTIL_LINES: usize = 10_000;
/// Lines of the server's standard error kept for a failure report.
const LOG_TAIL: usize = 20;
/// How often a starting server is looked at.
const POLL: Duration = Duration::from_millis(5);

/// Where the transcripts are played.
#[derive(Clone, Debug)]
pub enum Target {
    /// A running server, shared by all transcripts.
    Addr(SocketAddr),
    /// A command template: a fresh server per transcript.
    Server(Vec<String>),
}

/// How a transcript is played.
#[derive(Clone, Debug)]
pub struct Config {
    pub target: Target,
    /// The longest wait for any one expected event.
    pub timeout: Duration,
    /// Features the server lacks (`--without resume`): transcripts requiring them skip.
    pub without: Vec<String>,
}

/// What happened on the wire (and to the server), in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Connected {
        conn: String,
        from: Option<String>,
    },
    Sent {
        conn: String,
        bytes: Vec<u8>,
    },
    Received {
        conn: String,
        bytes: Vec<u8>,
    },
    /// The server closed the connection (end of stream).
    Eof {
        conn: String,
    },
    /// The connection failed (reset, I/O error).
    Broken {
        conn: String,
        error: String,
    },
    /// The client closed its side.
    ClientClosed {
        conn: String,
    },
    Note {
        conn: Option<String>,
        text: String,
    },
    Shutdown,
    Exited(String),
    /// Where the transcript failed.
    Failed {
        conn: Option<String>,
        text: String,
    },
}

/// A failed step: what the transcript expected and what arrived instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub line: usize,
    pub step: String,
    pub expected: String,
    pub actual: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(Failure),
    Skip(String),
}

/// The result of one transcript.
#[derive(Clone, Debug)]
pub struct Run {
    pub outcome: Outcome,
    pub exchange: Vec<Event>,
    /// The last lines the server wrote on standard error (`--server` only).
    pub server_log: Vec<String>,
}

/// Why a transcript cannot run where it is asked to, if it cannot.
pub fn skip_reason(t: &Transcript, cfg: &Config) -> Option<String> {
    if let Some(r) = t.requires.iter().find(|r| cfg.without.contains(r)) {
        return Some(format!("requires {r} (excluded by --without {r})"));
    }
    let Target::Addr(addr) = &cfg.target else {
        if !t.options.is_empty() {
            if let Target::Server(words) = &cfg.target {
                if !words.iter().any(|w| w == "{options}") {
                    return Some(format!(
                        "needs server options {} and the --server template has no {{options}}",
                        t.options.join(" ")
                    ));
                }
            }
        }
        return None;
    };
    if !t.options.is_empty() {
        return Some(format!(
            "needs server options {} (use --server)",
            t.options.join(" ")
        ));
    }
    if t.needs_process() {
        return Some("signals the server (use --server)".into());
    }
    if t.fresh {
        return Some("needs a server of its own (use --server)".into());
    }
    let from_other = t
        .steps
        .iter()
        .any(|s| matches!(s.action, Action::Connect { from: Some(_), .. }));
    if from_other && !(addr.is_ipv4() && addr.ip().is_loopback()) {
        return Some("connects from another loopback address: needs a server on 127.x".into());
    }
    None
}

/// Plays `t` as `cfg` says.
pub fn run(t: &Transcript, cfg: &Config) -> Run {
    if let Some(reason) = skip_reason(t, cfg) {
        return Run {
            outcome: Outcome::Skip(reason),
            exchange: Vec::new(),
            server_log: Vec::new(),
        };
    }
    let mut server = None;
    let addr = match &cfg.target {
        Target::Addr(a) => *a,
        Target::Server(template) => match Server::start(template, &t.options, start_bound(cfg)) {
            Ok(s) => {
                let a = s.addr;
                server = Some(s);
                a
            }
            Err(e) => {
                return Run {
                    outcome: Outcome::Fail(Failure {
                        line: 0,
                        step: "start the server".into(),
                        expected: "a server accepting connections".into(),
                        actual: e,
                    }),
                    exchange: Vec::new(),
                    server_log: Vec::new(),
                };
            }
        },
    };
    let suffix = match cfg.target {
        Target::Addr(_) => Some(run_suffix()),
        Target::Server(_) => None,
    };
    let mut p = Player {
        addr,
        timeout: cfg.timeout,
        conns: HashMap::new(),
        vars: HashMap::new(),
        exchange: Vec::new(),
        server: server.as_mut(),
        names: t.names.clone(),
        suffix,
        pings: 0,
    };
    let mut outcome = Outcome::Pass;
    for step in &t.steps {
        if let Err(f) = p.step(step) {
            p.exchange.push(Event::Failed {
                conn: step.conn.clone(),
                text: format!("expected {}, got {}", f.expected, f.actual),
            });
            outcome = Outcome::Fail(f);
            break;
        }
    }
    let exchange = std::mem::take(&mut p.exchange);
    for c in p.conns.values() {
        let _ = c.stream.shutdown(Shutdown::Both);
    }
    drop(p);
    let server_log = server.map(Server::stop).unwrap_or_default();
    Run {
        outcome,
        exchange,
        server_log,
    }
}

/// How long a started server may take to listen: returned from as soon as it does, so
/// it is generous (a loaded machine may take seconds to start a process).
fn start_bound(cfg: &Config) -> Duration {
    cfg.timeout.max(Duration::from_secs(30))
}

/// Six random letters and digits (for nicknames against a shared server: holds left by
/// earlier transcripts and runs must not meet this one's names).
fn run_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the system's randomness: no crate needed for this.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let mut n = h.finish();
    let mut s = String::new();
    for _ in 0..6 {
        let d = u32::try_from(n % 36).unwrap_or(0);
        s.push(char::from_digit(d, 36).unwrap_or('x'));
        n /= 36;
    }
    s
}

/// What a connection's reader reports.
enum FromServer {
    /// A line with its terminator (if it had one: the last bytes before EOF may not).
    Line(Vec<u8>),
    TooLong,
    Eof,
    Error(String),
}

struct Conn {
    stream: TcpStream,
    rx: Receiver<FromServer>,
    /// `true` pauses the reader, `false` lets it read again.
    gate: Sender<bool>,
    /// Bytes read and not yet taken by the transcript.
    queued: Arc<AtomicUsize>,
    /// The reader has reported the end.
    ended: bool,
}

struct Player<'a> {
    addr: SocketAddr,
    timeout: Duration,
    conns: HashMap<String, Conn>,
    vars: HashMap<String, Vec<u8>>,
    exchange: Vec<Event>,
    server: Option<&'a mut Server>,
    names: Vec<String>,
    suffix: Option<String>,
    pings: u32,
}

/// What `recv` got.
enum Got {
    Line(Vec<u8>),
    Eof,
    Broken(String),
    Timeout,
}

impl Got {
    fn describe(&self, timeout: Duration) -> String {
        match self {
            Got::Line(l) => shown(l),
            Got::Eof => "<end of stream: the server closed the connection>".into(),
            Got::Broken(e) => format!("<connection broken: {e}>"),
            Got::Timeout => format!("<nothing within {}>", secs(timeout)),
        }
    }
}

impl Player<'_> {
    fn step(&mut self, step: &Step) -> Result<(), Failure> {
        let fail = |expected: String, actual: String| Failure {
            line: step.line,
            step: step.text.clone(),
            expected,
            actual,
        };
        let name = step.conn.clone().unwrap_or_default();
        match &step.action {
            Action::Connect { from, raw } => {
                let stream = self.connect(*from).map_err(|e| {
                    fail(
                        format!("to connect to {}", self.addr),
                        format!("<cannot connect: {e}>"),
                    )
                })?;
                self.open(&name, stream, from.map(|f| f.to_string()))
                    .map_err(|e| fail("a connection".into(), format!("<{e}>")))?;
                if !raw {
                    match self.recv(&name) {
                        Got::Line(_) => {}
                        other => {
                            let actual = other.describe(self.timeout);
                            return Err(fail("a greeting".into(), actual));
                        }
                    }
                }
            }
            Action::Send(pieces) => {
                let bytes = self.expand(pieces);
                self.send(&name, &bytes)
                    .map_err(|e| fail(format!("to send {}", shown(&bytes)), format!("<{e}>")))?;
            }
            Action::Expect { pat, raw } => {
                let pat = self.localize_pat(pat);
                let got = self.recv(&name);
                let ok = match &got {
                    Got::Line(l) => {
                        let line = if *raw { &l[..] } else { strip_terminator(l) };
                        let mut caps = Vec::new();
                        let ok = matches(&pat, line, &self.vars, &mut caps);
                        for (k, v) in caps {
                            self.vars.insert(k, v);
                        }
                        ok
                    }
                    _ => false,
                };
                if !ok {
                    let expected = describe_pat(&pat, &self.vars, *raw);
                    let actual = match (&got, raw) {
                        (Got::Line(l), true) => shown_raw(l),
                        _ => got.describe(self.timeout),
                    };
                    return Err(fail(expected, actual));
                }
            }
            Action::Until(pat) => {
                let pat = self.localize_pat(pat);
                for _ in 0..UNTIL_LINES {
                    let got = self.recv(&name);
                    let Got::Line(l) = &got else {
                        let expected = describe_pat(&pat, &self.vars, false);
                        return Err(fail(expected, got.describe(self.timeout)));
                    };
                    let mut caps = Vec::new();
                    if matches(&pat, strip_terminator(l), &self.vars, &mut caps) {
                        self.vars.extend(caps);
                        return Ok(());
                    }
                }
                let expected = describe_pat(&pat, &self.vars, false);
                return Err(fail(expected, format!("<not in {UNTIL_LINES} lines>")));
            }
            Action::Quiet => {
                self.pings += 1;
                let token = format!("xscp-check-{}", self.pings);
                self.send(&name, format!("ping {token}\r\n").as_bytes())
                    .map_err(|e| fail("to send a ping barrier".into(), format!("<{e}>")))?;
                let want = format!("+OK pong {token}");
                let got = self.recv(&name);
                if !matches!(&got, Got::Line(l) if strip_terminator(l) == want.as_bytes()) {
                    let expected = format!("nothing more, then {want} (the ping barrier)");
                    return Err(fail(expected, got.describe(self.timeout)));
                }
            }
            Action::Closed => {
                let got = self.recv(&name);
                if !matches!(got, Got::Eof) {
                    let expected = "<end of stream: the server closes the connection>";
                    return Err(fail(expected.into(), got.describe(self.timeout)));
                }
            }
            Action::Close => {
                if let Some(c) = self.conns.get(&name) {
                    let _ = c.stream.shutdown(Shutdown::Both);
                }
                self.exchange.push(Event::ClientClosed { conn: name });
            }
            Action::Pause | Action::Resume => {
                let pause = step.action == Action::Pause;
                if let Some(c) = self.conns.get(&name) {
                    let _ = c.gate.send(pause);
                }
                let text = if pause {
                    "stops reading"
                } else {
                    "reads again"
                };
                self.exchange.push(Event::Note {
                    conn: step.conn.clone(),
                    text: format!("client {text}"),
                });
            }
            Action::Note(text) => self.exchange.push(Event::Note {
                conn: step.conn.clone(),
                text: text.clone(),
            }),
            Action::Shutdown => {
                let Some(server) = self.server.as_deref_mut() else {
                    return Err(fail("a server to signal".into(), "<none>".into()));
                };
                self.exchange.push(Event::Shutdown);
                sys::terminate(server.child.id())
                    .map_err(|e| fail("to send SIGTERM".into(), format!("<{e}>")))?;
            }
            Action::Exit(code) => {
                let Some(server) = self.server.as_deref_mut() else {
                    return Err(fail("a server to watch".into(), "<none>".into()));
                };
                let status = server.wait(self.timeout);
                let actual = match status {
                    Some(Some(c)) => format!("exit status {c}"),
                    Some(None) => "<killed by a signal>".into(),
                    None => format!("<still running after {}>", secs(self.timeout)),
                };
                self.exchange.push(Event::Exited(actual.clone()));
                if status != Some(Some(*code)) {
                    return Err(fail(format!("exit status {code}"), actual));
                }
            }
        }
        Ok(())
    }

    fn connect(&self, from: Option<std::net::Ipv4Addr>) -> io::Result<TcpStream> {
        match (from, self.addr) {
            (None, a) => TcpStream::connect_timeout(&a, self.timeout),
            (Some(f), SocketAddr::V4(a)) => sys::connect_from(f, a),
            (Some(_), SocketAddr::V6(_)) => Err(io::Error::new(
                ErrorKind::Unsupported,
                "connecting from an IPv4 address to an IPv6 server",
            )),
        }
    }

    fn open(&mut self, name: &str, stream: TcpStream, from: Option<String>) -> io::Result<()> {
        let reading = stream.try_clone()?;
        // A server that stops reading must not block the checker for ever.
        stream.set_write_timeout(Some(self.timeout))?;
        let (tx, rx) = unbounded();
        let (gate, gate_rx) = unbounded::<bool>();
        let queued = Arc::new(AtomicUsize::new(0));
        let ahead = Arc::clone(&queued);
        thread::Builder::new()
            .name(format!("check-{name}"))
            .spawn(move || {
                let mut r = BufReader::new(reading);
                let mut paused = false;
                loop {
                    // `pause`: read nothing until `resume` (or the end of the run).
                    while let Ok(p) = gate_rx.try_recv() {
                        paused = p;
                    }
                    while paused {
                        match gate_rx.recv() {
                            Ok(p) => paused = p,
                            Err(_) => return,
                        }
                    }
                    let msg = match read_line(&mut r) {
                        Ok(Some(Some(l))) => FromServer::Line(l),
                        Ok(Some(None)) => FromServer::TooLong,
                        Ok(None) => FromServer::Eof,
                        Err(e) => FromServer::Error(e.to_string()),
                    };
                    let mut end = !matches!(msg, FromServer::Line(_));
                    let mut msg = msg;
                    if let FromServer::Line(l) = &msg {
                        if ahead.fetch_add(l.len(), Ordering::SeqCst) + l.len() > READ_AHEAD {
                            msg = FromServer::Error(format!(
                                "more than {READ_AHEAD} bytes the transcript does not read"
                            ));
                            end = true;
                        }
                    }
                    if tx.send(msg).is_err() || end {
                        return;
                    }
                }
            })?;
        self.exchange.push(Event::Connected {
            conn: name.to_string(),
            from,
        });
        self.conns.insert(
            name.to_string(),
            Conn {
                stream,
                rx,
                gate,
                queued,
                ended: false,
            },
        );
        Ok(())
    }

    fn send(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let c = self
            .conns
            .get_mut(name)
            .ok_or_else(|| io::Error::other("no such connection"))?;
        self.exchange.push(Event::Sent {
            conn: name.to_string(),
            bytes: bytes.to_vec(),
        });
        c.stream.write_all(bytes).and_then(|()| c.stream.flush())
    }

    fn recv(&mut self, name: &str) -> Got {
        let Some(c) = self.conns.get_mut(name) else {
            return Got::Broken("no such connection".into());
        };
        if c.ended {
            return Got::Eof;
        }
        let conn = name.to_string();
        let (got, event) = match c.rx.recv_timeout(self.timeout) {
            Ok(FromServer::Line(l)) => {
                c.queued.fetch_sub(l.len(), Ordering::SeqCst);
                (
                    Got::Line(l.clone()),
                    Some(Event::Received { conn, bytes: l }),
                )
            }
            Ok(FromServer::TooLong) => {
                let e = format!("a line longer than {MAX_LINE} bytes");
                (
                    Got::Broken(e.clone()),
                    Some(Event::Broken { conn, error: e }),
                )
            }
            Ok(FromServer::Eof) | Err(RecvTimeoutError::Disconnected) => {
                (Got::Eof, Some(Event::Eof { conn }))
            }
            Ok(FromServer::Error(e)) => (
                Got::Broken(e.clone()),
                Some(Event::Broken { conn, error: e }),
            ),
            Err(RecvTimeoutError::Timeout) => (Got::Timeout, None),
        };
        if !matches!(got, Got::Line(_) | Got::Timeout) {
            // As any client does at the end of the stream: close our side too (a server
            // that lingers for unread input is not kept waiting).
            c.ended = true;
            let _ = c.stream.shutdown(Shutdown::Both);
        }
        self.exchange.extend(event);
        got
    }

    /// The bytes of a `c:` line: captured values filled in, nicknames localized.
    fn expand(&self, pieces: &[Piece]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in pieces {
            match p {
                Piece::Bytes(b) => out.extend_from_slice(&self.localize(b)),
                Piece::Var(v) => out.extend_from_slice(self.vars.get(v).map_or(&[][..], |b| b)),
            }
        }
        out
    }

    fn localize_pat(&self, pat: &[Pat]) -> Vec<Pat> {
        pat.iter()
            .map(|p| match p {
                Pat::Lit(b) => Pat::Lit(self.localize(b)),
                other => other.clone(),
            })
            .collect()
    }

    /// Against a shared server each declared nickname (any case) gets the run's suffix.
    fn localize(&self, bytes: &[u8]) -> Vec<u8> {
        match &self.suffix {
            Some(s) if !self.names.is_empty() => suffix_names(bytes, &self.names, s),
            _ => bytes.to_vec(),
        }
    }
}

/// Appends `suffix` to every whole-word occurrence of one of `names` (ASCII case ignored).
fn suffix_names(bytes: &[u8], names: &[String], suffix: &str) -> Vec<u8> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let mut out = Vec::with_capacity(bytes.len() + 8);
    let mut i = 0;
    while i < bytes.len() {
        let at_start = i == 0 || !word(bytes[i - 1]);
        let hit = at_start.then(|| {
            names.iter().find(|n| {
                let end = i + n.len();
                end <= bytes.len()
                    && bytes[i..end].eq_ignore_ascii_case(n.as_bytes())
                    && (end == bytes.len() || !word(bytes[end]))
            })
        });
        if let Some(Some(n)) = hit {
            out.extend_from_slice(&bytes[i..i + n.len()]);
            out.extend_from_slice(suffix.as_bytes());
            i += n.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Reads one line with its LF (the client's bounded reader), at most [`MAX_LINE`] bytes:
/// `Some(None)` for a longer one (skipped to its end), `None` at end of stream. (A last
/// line cut off by the end of the stream reads as if it had its LF.)
fn read_line<R: BufRead>(r: &mut R) -> io::Result<Option<Option<Vec<u8>>>> {
    Ok(crate::read_line_bounded(r, MAX_LINE)?.map(|l| match l {
        crate::Line::Complete(mut bytes) => {
            bytes.push(b'\n');
            Some(bytes)
        }
        crate::Line::TooLong => None,
    }))
}

fn strip_terminator(l: &[u8]) -> &[u8] {
    let l = l.strip_suffix(b"\n").unwrap_or(l);
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// Does `line` match `pat`? Captures of unbound placeholders go to `caps`.
fn matches(
    pat: &[Pat],
    line: &[u8],
    vars: &HashMap<String, Vec<u8>>,
    caps: &mut Vec<(String, Vec<u8>)>,
) -> bool {
    let Some((first, rest)) = pat.split_first() else {
        return line.is_empty();
    };
    match first {
        Pat::Lit(l) => line.starts_with(l) && matches(rest, &line[l.len()..], vars, caps),
        Pat::Any => (0..=line.len()).any(|i| matches(rest, &line[i..], vars, caps)),
        Pat::Var(v) => {
            let bound = vars
                .get(v)
                .or_else(|| caps.iter().find(|(k, _)| k == v).map(|(_, b)| b))
                .cloned();
            if let Some(b) = bound {
                return line.starts_with(&b) && matches(rest, &line[b.len()..], vars, caps);
            }
            let run = line.iter().take_while(|&&b| b != b' ').count();
            (1..=run).rev().any(|n| {
                caps.push((v.clone(), line[..n].to_vec()));
                if matches(rest, &line[n..], vars, caps) {
                    return true;
                }
                caps.pop();
                false
            })
        }
    }
}

/// A pattern as the report shows it: known values filled in.
fn describe_pat(pat: &[Pat], vars: &HashMap<String, Vec<u8>>, raw: bool) -> String {
    let mut bytes = Vec::new();
    for p in pat {
        match p {
            Pat::Lit(l) => bytes.extend_from_slice(l),
            Pat::Any => bytes.extend_from_slice(b"{*}"),
            Pat::Var(v) => match vars.get(v) {
                Some(b) => bytes.extend_from_slice(b),
                None => bytes.extend_from_slice(format!("{{{v}}}").as_bytes()),
            },
        }
    }
    if raw {
        shown_raw(&bytes)
    } else {
        shown(&bytes)
    }
}

/// Bytes with every control byte, CR and LF included, as an escape (for `sraw:`).
pub fn shown_raw(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02X}")),
        }
    }
    out
}

/// A line as printed: CR and LF at the end dropped, control bytes as `\xNN` (so a server
/// cannot drive the terminal), at most 200 characters.
pub fn shown(line: &[u8]) -> String {
    let mut out = String::new();
    let body = strip_terminator(line);
    for chunk in body.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.push_str(&format!("\\x{:02X}", c as u32));
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    let tail = &line[body.len()..];
    if tail != b"\r\n" && !tail.is_empty() {
        out.push_str(if tail == b"\n" { "\\n" } else { "\\r" });
    }
    if out.chars().count() > 200 {
        let cut: String = out.chars().take(120).collect();
        return format!("{cut}... ({} bytes)", body.len());
    }
    out
}

pub fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// A server started for one transcript.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    fn start(template: &[String], options: &[String], timeout: Duration) -> Result<Server, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("<no free port: {e}>"))?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut words = Vec::new();
        for w in template {
            if w == "{options}" {
                words.extend(options.iter().cloned());
            } else {
                words.push(w.replace("{addr}", &addr.to_string()));
            }
        }
        let Some((program, args)) = words.split_first() else {
            return Err("<empty --server command>".into());
        };
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("<cannot run {program}: {e}>"))?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(err) = child.stderr.take() {
            let log = Arc::clone(&log);
            let _ = thread::Builder::new()
                .name("check-server-log".into())
                .spawn(move || keep_tail(err, &log));
        }
        let mut s = Server { child, addr, log };
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = s.child.try_wait() {
                return Err(format!(
                    "<the server exited ({status}) before accepting connections: {}>",
                    s.tail().join(" | ")
                ));
            }
            let up = match sys::listening(port) {
                Some(up) => up,
                None => TcpStream::connect_timeout(&addr, POLL).is_ok(),
            };
            if up {
                return Ok(s);
            }
            if Instant::now() > deadline {
                s.stop();
                return Err(format!(
                    "<nothing listening on {addr} after {}>",
                    secs(timeout)
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// Waits up to `timeout` for the server to end: `Some(exit code)` if it did.
    fn wait(&mut self, timeout: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status.code()),
                Err(_) => return Some(None),
                Ok(None) if Instant::now() > deadline => return None,
                Ok(None) => thread::sleep(POLL),
            }
        }
    }

    fn tail(&self) -> Vec<String> {
        self.log
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Kills the server if it still runs; its last log lines.
    fn stop(mut self) -> Vec<String> {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        self.tail()
    }
}

/// Keeps the last [`LOG_TAIL`] lines of `r` (each at most 300 bytes).
fn keep_tail<R: Read>(r: R, log: &Mutex<VecDeque<String>>) {
    let mut r = BufReader::new(r);
    while let Ok(Some(line)) = read_line(&mut r) {
        let text = line.map_or_else(|| "<overlong line>".to_string(), |l| shown(&l));
        if let Ok(mut log) = log.lock() {
            if log.len() == LOG_TAIL {
                log.pop_front();
            }
            log.push_back(text.chars().take(300).collect());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pat: &[Pat], line: &str) -> Option<Vec<(String, Vec<u8>)>> {
        let mut caps = Vec::new();
        matches(pat, line.as_bytes(), &HashMap::new(), &mut caps).then_some(caps)
    }

    fn lit(s: &str) -> Pat {
        Pat::Lit(s.as_bytes().to_vec())
    }

    #[test]
    fn placeholders() {
        let any = [lit("-ERR [STATE] "), Pat::Any];
        assert!(m(&any, "-ERR [STATE] whatever text").is_some());
        assert!(m(&any, "-ERR [STATE] ").is_some());
        assert!(m(&any, "-ERR [SYNTAX] x").is_none());
        let tok = [lit("ping "), Pat::Var("t".into())];
        assert_eq!(
            m(&tok, "ping 12.3").unwrap(),
            [("t".into(), b"12.3".to_vec())]
        );
        assert!(m(&tok, "ping ").is_none(), "a placeholder is never empty");
        assert!(m(&tok, "ping a b").is_none(), "nor holds a space");
        let twice = [Pat::Var("a".into()), lit(" "), Pat::Var("a".into())];
        assert!(m(&twice, "x x").is_some());
        assert!(m(&twice, "x y").is_none());
        let mut vars = HashMap::new();
        vars.insert("a".to_string(), b"bob".to_vec());
        assert!(matches(&twice, b"bob bob", &vars, &mut Vec::new()));
        assert!(!matches(&twice, b"eve eve", &vars, &mut Vec::new()));
    }

    #[test]
    fn names_get_the_suffix_as_whole_words_in_any_case() {
        let names = ["alice".to_string(), "bob".to_string()];
        assert_eq!(
            suffix_names(b"chatm Alice bob hi bobby alice-x", &names, "42"),
            b"chatm Alice42 bob42 hi bobby alice-x".to_vec()
        );
    }

    #[test]
    fn lines_are_bounded_and_shown_safely() {
        let mut r: &[u8] = b"ok\r\n";
        assert_eq!(read_line(&mut r).unwrap(), Some(Some(b"ok\r\n".to_vec())));
        let mut r: &[u8] = b"lf\n";
        assert_eq!(read_line(&mut r).unwrap(), Some(Some(b"lf\n".to_vec())));
        assert_eq!(read_line(&mut r).unwrap(), None);
        let long = vec![b'a'; MAX_LINE + 10];
        let mut r: &[u8] = &[&long[..], b"\nend"].concat();
        assert_eq!(read_line(&mut r).unwrap(), Some(None));
        assert_eq!(read_line(&mut r).unwrap(), Some(Some(b"end\n".to_vec())));
        assert_eq!(shown(b"a\x1b[1m\r\n"), "a\\x1B[1m");
        assert_eq!(shown(b"lf only\n"), "lf only\\n");
        assert_eq!(shown(b"\xff"), "\\xFF");
        assert!(shown(&[b'x'; 600]).ends_with("... (600 bytes)"));
    }
}
