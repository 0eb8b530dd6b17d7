//! Plays a [`Transcript`] against a server: opens its connections, sends its lines, waits
//! (at most `--timeout` each) for the lines it expects and matches them, and records the
//! exchange that actually took place for the report and the diagram. With `--server` it
//! starts a fresh server per transcript on a free port and stops it afterwards.
//!
//! Nothing the server sends can make it panic or grow without bound: lines are read with a
//! length bound, what is read ahead of the transcript is bounded in bytes, every wait has
//! a deadline, every write a timeout.

use std::collections::HashMap;
use std::io::{self, BufReader, ErrorKind, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};
use xscp::config::parse_duration;

use super::lines::{MAX_LINE, bad_end, read_line};
use super::matching::{
    describe_pat, matches, secs, shown, shown_raw, strip_terminator, suffix_names,
};
pub use super::results::{Event, Failure, Outcome, Run};
use super::server::Server;
use super::sys;
use super::transcript::{Action, Pat, Piece, Step, Transcript};

/// Bytes from one connection read ahead of the transcript: the reader never stops
/// reading before this (so that the checker does not become a slow consumer itself while
/// it floods), and gives up past it.
const READ_AHEAD: usize = 16 * 1024 * 1024;
/// The most lines an `until:` step lets by.
const UNTIL_LINES: usize = 10_000;

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
    /// Features the probe found the server without, each with what showed it (see
    /// [`lacking`]): transcripts requiring them skip too.
    pub lacks: Vec<(String, String)>,
}

/// The features that `capa` (the probe's) shows a server to lack, each with the item that
/// shows it: `hold` when it holds no names (`HOLD 0`, xscp(7) §5.7), `retries-3` when its
/// failed-attempt budget is not xscpd's default of 3 (`RETRIES 5`, §5.1). A server set
/// so keeps the protocol; the transcripts that assume the default cannot grade it.
pub fn lacking(capa: &[String]) -> Vec<(String, String)> {
    let said = |item: &str| format!("the server's capa says {item}");
    let mut out = Vec::new();
    for item in capa {
        let mut words = item.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some(k), Some("0"), None) if k.eq_ignore_ascii_case("HOLD") => {
                out.push(("hold".to_string(), said(item)));
            }
            (Some(k), Some(n), None) if k.eq_ignore_ascii_case("RETRIES") && n != "3" => {
                out.push(("retries-3".to_string(), said(item)));
            }
            _ => {}
        }
    }
    out
}

/// Why a transcript cannot run where it is asked to, if it cannot.
pub fn skip_reason(t: &Transcript, cfg: &Config) -> Option<String> {
    if let Some(r) = t.requires.iter().find(|r| cfg.without.contains(r)) {
        return Some(format!("requires {r} (excluded by --without {r})"));
    }
    let lacked = (cfg.lacks.iter()).find(|(f, _)| t.requires.contains(f));
    if let Some((r, why)) = lacked {
        return Some(format!("requires {r} ({why})"));
    }
    let Target::Addr(addr) = &cfg.target else {
        if !t.options.is_empty()
            && let Target::Server(words) = &cfg.target
            && !words.iter().any(|w| w == "{options}")
        {
            return Some(format!(
                "needs server options {} and the --server template has no {{options}}",
                t.options.join(" ")
            ));
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
        timeout: cfg.timeout.saturating_add(timers(t)),
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

/// How much later than any other event one that the server's own timers bring about may
/// come (a negotiation deadline, a ping, a hold's end): the durations among `t`'s server
/// options, the values written with their unit (`300ms`, `1s`), added up. Every wait of
/// `t` is `--timeout` beyond them, so that no `--timeout` fails a server for keeping the
/// timers it was told to keep; a passing run waits for the events, not for this.
fn timers(t: &Transcript) -> Duration {
    t.options
        .iter()
        .filter(|w| w.ends_with(|c: char| c.is_ascii_alphabetic()))
        .filter_map(|w| parse_duration(w))
        .fold(Duration::ZERO, Duration::saturating_add)
}

/// How long a started server may take to listen: returned from as soon as it does, so
/// it is generous (a loaded machine may take seconds to start a process).
pub fn start_bound(cfg: &Config) -> Duration {
    cfg.timeout.max(Duration::from_secs(30))
}

/// `notif join|quit NAME` or `notif cname OLD NEW` in which no name ends with `suffix`
/// (ASCII case-insensitive): about clients of another run on a shared server.
fn about_others(line: &[u8], suffix: &str) -> bool {
    let Ok(line) = std::str::from_utf8(line) else {
        return false;
    };
    let mut words = line.split(' ');
    if words.next() != Some("notif") || words.next().is_none() {
        return false;
    }
    let suffix = suffix.to_ascii_lowercase();
    let mut names = words.peekable();
    names.peek().is_some() && names.all(|n| !n.to_ascii_lowercase().ends_with(&suffix))
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
    /// A `maybe:` line: the next `s:` or `quiet` lets one line that matches it by.
    optional: Option<Vec<Pat>>,
    /// The lines of the last `collect:` not yet matched by a `listed:`.
    list: Vec<Vec<u8>>,
    /// Dropped to stop an `every` step's sender.
    every: Option<Sender<()>>,
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
    /// A line that does not end with CR LF (xscp(7) §1): a bare LF, or the end of the
    /// stream before its terminator. Wrong whatever it says; the reason.
    BadEnd(Vec<u8>, &'static str),
    Eof,
    Broken(String),
    Timeout,
}

impl Got {
    fn describe(&self, timeout: Duration) -> String {
        match self {
            Got::Line(l) => shown(l),
            Got::BadEnd(l, why) => format!(
                "{} <{why}: the server ends every line with CR LF, xscp(7) §1>",
                shown(l)
            ),
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
                let vars = self.vars.clone();
                let got =
                    self.recv_past_optional(&name, |l| matches(&pat, l, &vars, &mut Vec::new()));
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
                // The wait is bounded as a whole, not line by line: lines that keep coming
                // (answers to `every`, or a server that trickles them) cannot stretch it.
                let deadline = Instant::now() + self.timeout;
                for _ in 0..UNTIL_LINES {
                    let got = self.recv_by(&name, deadline);
                    let Got::Line(l) = &got else {
                        let expected = describe_pat(&pat, &self.vars, false);
                        return Err(fail(expected, self.describe_step(&got)));
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
            Action::Maybe(pat) => {
                let pat = self.localize_pat(pat);
                if let Some(c) = self.conns.get_mut(&name) {
                    c.optional = Some(pat);
                }
            }
            Action::Collect(end) => {
                let end = self.localize_pat(end);
                let mut list = Vec::new();
                // Bounded as a whole, as `until:` is: lines that keep coming cannot stretch it.
                let deadline = Instant::now() + self.timeout;
                loop {
                    let got = self.recv_by(&name, deadline);
                    let Got::Line(l) = &got else {
                        let expected = describe_pat(&end, &self.vars, false);
                        return Err(fail(expected, self.describe_step(&got)));
                    };
                    if matches(&end, strip_terminator(l), &self.vars, &mut Vec::new()) {
                        break;
                    }
                    if list.len() == UNTIL_LINES {
                        let expected = describe_pat(&end, &self.vars, false);
                        return Err(fail(expected, format!("<not in {UNTIL_LINES} lines>")));
                    }
                    list.push(strip_terminator(l).to_vec());
                }
                if let Some(c) = self.conns.get_mut(&name) {
                    c.list = list;
                }
            }
            Action::Listed(pat) => {
                let pat = self.localize_pat(pat);
                let list = self.conns.get_mut(&name).map(|c| &mut c.list);
                let list = list.ok_or_else(|| fail("a list".into(), "<none>".into()))?;
                let mut caps = Vec::new();
                let Some(i) = list.iter().position(|l| {
                    caps.clear();
                    matches(&pat, l, &self.vars, &mut caps)
                }) else {
                    let items: Vec<String> = list.iter().map(|l| shown(l)).collect();
                    let expected = format!("{} in the list", describe_pat(&pat, &self.vars, false));
                    return Err(fail(expected, format!("<the list: {}>", items.join(" | "))));
                };
                list.remove(i);
                self.vars.extend(caps);
            }
            Action::Unlisted(pat) => {
                let pat = self.localize_pat(pat);
                let list = self.conns.get(&name).map_or(&[][..], |c| &c.list[..]);
                let vars = &self.vars;
                if let Some(l) = list
                    .iter()
                    .find(|l| matches(&pat, l, vars, &mut Vec::new()))
                {
                    let expected = format!("no {} in the list", describe_pat(&pat, vars, false));
                    return Err(fail(expected, shown(l)));
                }
            }
            Action::Every(period, pieces) => {
                let bytes = self.expand(pieces);
                self.every(&name, *period, bytes)
                    .map_err(|e| fail("to send a line repeatedly".into(), format!("<{e}>")))?;
            }
            Action::Quiet => {
                self.pings += 1;
                let token = format!("xscp-check-{}", self.pings);
                self.send(&name, format!("ping {token}\r\n").as_bytes())
                    .map_err(|e| fail("to send a ping barrier".into(), format!("<{e}>")))?;
                let want = format!("+OK pong {token}");
                let got = self.recv_past_optional(&name, |l| l == want.as_bytes());
                if !matches!(&got, Got::Line(l) if strip_terminator(l) == want.as_bytes()) {
                    let expected = format!("nothing more, then {want} (the ping barrier)");
                    return Err(fail(expected, got.describe(self.timeout)));
                }
            }
            Action::Closed => {
                if let Some(c) = self.conns.get_mut(&name) {
                    c.every = None;
                }
                let got = self.recv(&name);
                let expected = "<end of stream: the server closes the connection>";
                if !matches!(got, Got::Eof) {
                    return Err(fail(expected.into(), got.describe(self.timeout)));
                }
                // An orderly close followed at once by a reset reads like one; the socket's
                // pending error tells them apart (std reports SO_ERROR on every platform it
                // supports; a reset that has not arrived yet cannot be seen).
                if let Some(Ok(Some(e))) = self.conns.get(&name).map(|c| c.stream.take_error()) {
                    let actual = format!(
                        "<end of stream, then a reset ({e}): the server closed without \
                         lingering for unread input>"
                    );
                    self.exchange.push(Event::Broken {
                        conn: name,
                        error: format!("reset after the close: {e}"),
                    });
                    return Err(fail(format!("{expected} (orderly, §7)"), actual));
                }
            }
            Action::Close => {
                if let Some(c) = self.conns.get_mut(&name) {
                    c.every = None;
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
                server
                    .terminate()
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
                    if let FromServer::Line(l) = &msg
                        && ahead.fetch_add(l.len(), Ordering::SeqCst) + l.len() > READ_AHEAD
                    {
                        msg = FromServer::Error(format!(
                            "more than {READ_AHEAD} bytes the transcript does not read"
                        ));
                        end = true;
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
                optional: None,
                list: Vec::new(),
                every: None,
            },
        );
        Ok(())
    }

    /// The next line, but first a line that the pending `maybe:` pattern matches and
    /// `wanted` does not is let by (once: the pattern is used up either way).
    fn recv_past_optional(&mut self, name: &str, wanted: impl Fn(&[u8]) -> bool) -> Got {
        let optional = self.conns.get_mut(name).and_then(|c| c.optional.take());
        let got = self.recv(name);
        match (&got, optional) {
            (Got::Line(l), Some(opt)) => {
                let line = strip_terminator(l);
                let mut caps = Vec::new();
                if !wanted(line) && matches(&opt, line, &self.vars, &mut caps) {
                    self.vars.extend(caps);
                    return self.recv(name);
                }
                got
            }
            _ => got,
        }
    }

    /// `every`: a thread sends `bytes` every `period` until the step's connection is
    /// closed or ends, or twice `--timeout` has passed (the exchange notes it once).
    fn every(&mut self, name: &str, period: Duration, bytes: Vec<u8>) -> io::Result<()> {
        let c = self
            .conns
            .get_mut(name)
            .ok_or_else(|| io::Error::other("no such connection"))?;
        let mut out = c.stream.try_clone()?;
        let text = format!("client sends {} every {}", shown(&bytes), secs(period));
        let (stop, stopped) = bounded::<()>(0);
        // Longer than an `until:` waits for the event it brings about.
        let until = Instant::now() + 2 * self.timeout;
        thread::Builder::new()
            .name(format!("check-every-{name}"))
            .spawn(move || {
                // The stop channel's timeout paces the sends; dropping its sender ends them.
                while out.write_all(&bytes).is_ok() && Instant::now() < until {
                    if !matches!(stopped.recv_timeout(period), Err(RecvTimeoutError::Timeout)) {
                        return;
                    }
                }
            })?;
        c.every = Some(stop);
        self.exchange.push(Event::Note {
            conn: Some(name.to_string()),
            text,
        });
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

    /// What a step that reads many lines (`until:`) got instead of its line:
    /// a timeout there is the step's whole wait, not one line's.
    fn describe_step(&self, got: &Got) -> String {
        match got {
            Got::Timeout => format!("<not within {}>", secs(self.timeout)),
            other => other.describe(self.timeout),
        }
    }

    /// The next line from the server on `name`, within `--timeout`.
    fn recv(&mut self, name: &str) -> Got {
        self.recv_by(name, Instant::now() + self.timeout)
    }

    /// The next line from the server on `name`, by `deadline`. Against a shared server, a
    /// notification about clients of other runs (no name in it carries this run's suffix)
    /// is part of no transcript: it is noted and let by, as a subscribed client ignores
    /// strangers.
    fn recv_by(&mut self, name: &str, deadline: Instant) -> Got {
        loop {
            let got = self.recv_one(name, deadline);
            match (&got, &self.suffix) {
                (Got::Line(l), Some(suffix)) if about_others(strip_terminator(l), suffix) => {
                    self.exchange.push(Event::Note {
                        conn: Some(name.to_string()),
                        text: "a notification about a client of another run, let by".into(),
                    });
                }
                _ => return got,
            }
        }
    }

    fn recv_one(&mut self, name: &str, deadline: Instant) -> Got {
        let Some(c) = self.conns.get_mut(name) else {
            return Got::Broken("no such connection".into());
        };
        if c.ended {
            return Got::Eof;
        }
        let conn = name.to_string();
        let (got, event) = match c.rx.recv_deadline(deadline) {
            Ok(FromServer::Line(l)) => {
                c.queued.fetch_sub(l.len(), Ordering::SeqCst);
                let got = match bad_end(&l) {
                    Some(why) => Got::BadEnd(l.clone(), why),
                    None => Got::Line(l.clone()),
                };
                (got, Some(Event::Received { conn, bytes: l }))
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
        if !matches!(got, Got::Line(_) | Got::BadEnd(..) | Got::Timeout) {
            // As any client does at the end of the stream: close our side too (a server
            // that lingers for unread input is not kept waiting).
            c.ended = true;
            c.every = None;
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

#[cfg(test)]
mod tests {
    use super::{about_others, lacking};

    #[test]
    fn capa_shows_which_defaults_a_server_lacks() {
        let capa = |items: &[&str]| items.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        assert!(lacking(&capa(&["XSCP 1", "RETRIES 3", "HOLD 300"])).is_empty());
        let found = lacking(&capa(&["RETRIES 5", "HOLD 0"]));
        let features: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(features, ["retries-3", "hold"]);
        assert_eq!(found[1].1, "the server's capa says HOLD 0");
        assert!(lacking(&capa(&["HOLD 0 extra", "RETRIES"])).is_empty());
    }

    #[test]
    fn notifications_about_other_runs_are_told_apart() {
        let s = "k7geh7";
        assert!(about_others(b"notif quit bobz0m0e5", s));
        assert!(about_others(b"notif cname aaz0m0e5 bbz0m0e5", s));
        assert!(!about_others(b"notif quit bobk7geh7", s));
        assert!(!about_others(b"notif join BOBK7GEH7", s));
        assert!(!about_others(b"notif cname aliceK7geh7 other", s));
        assert!(!about_others(b"+OK notifications off", s));
        assert!(!about_others(b"notif", s));
        assert!(!about_others(b"chatm bobz0m0e5 x hi", s));
    }
}
