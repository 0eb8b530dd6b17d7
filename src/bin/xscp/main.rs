//! `xscp`: the teaching client for XSCP/1 (PROTOCOL.md; man page `xscp(1)`).
//!
//! It keeps the protocol visible: every line typed (or piped) on standard input goes to the
//! server as one PDU, and every line the server sends is printed on standard output as it
//! arrives, verbatim. What WS_2017 says a client does on its own — answer the server's
//! `ping <token>` with `+OK pong <token>`, acknowledge each direct `chatm` with `chatr` — it
//! does too (unless `--manual`), and it prints every line it sends on its own behind an
//! `auto> ` tag, so that nothing reaches the wire unseen.
//!
//! Threads: one reads standard input, one reads the socket, each feeding a crossbeam
//! channel; the main thread `select!`s on both (and on Ctrl-C), owns the socket's sending
//! side and standard output, and is the only one that decides anything. No argument-parsing
//! crate: the grammar is small and the errors are ours.
//!
//! `xscp check ...` is another program in the same binary: the conformance checker of
//! [`check`], which grades a server against the protocol.

mod check;
mod diagram;
mod html;
mod report_page;
mod seqdiag;
mod statechart;

use std::convert::Infallible;
use std::fmt;
use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, bounded, never, select, unbounded};

/// The WS_2017 port, used when ADDR names no port.
const DEFAULT_PORT: u16 = 1030;

/// The longest line accepted from the server. A conforming server never sends more than
/// 512 bytes with CRLF (PROTOCOL.md §1); this bound only keeps a broken one from filling
/// memory.
const MAX_SERVER_LINE: usize = 8 * 1024;

/// The longest line accepted from standard input. Lines past 510 bytes are still sent (the
/// server's answer to them is worth seeing); this bound only keeps memory in check.
const MAX_INPUT_LINE: usize = 64 * 1024;

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The prefix of lines the client sends on its own (auto-pong, auto-receipt, `--name`,
/// `--notif`, the `cquit` at end of input or on Ctrl-C).
const AUTO: &str = "auto> ";
/// The prefix of lines produced by expanding a convenience such as `/msg`.
const EXPANDED: &str = "/msg> ";
/// The prefix of lines sent as typed, echoed with `--echo`.
const TYPED: &str = "> ";

/// The usage synopsis, printed by `--help` and after a bad option.
const USAGE: &str = "\
usage: xscp [--name NAME] [--notif] [--manual] [--timestamps] [--echo] [ADDR]
            [-h|--help] [-V|--version]
       xscp check [OPTIONS] (ADDR | --server COMMAND)   (see xscp check --help)
       xscp diagram [--conn N]... [--html FILE] [LOG]    (see xscp diagram --help)";

/// `--help`: what the client does and every option.
const HELP: &str = "\
xscp - the XSCP/1 teaching client

Connects to ADDR (default 127.0.0.1:1030; a host without a port, [::1] too, gets port
1030), sends every line of standard input as one PDU and prints every line from the server
verbatim. Lines it sends on its own are printed behind 'auto> ', /msg expansions behind
'/msg> '. 'xscp check' grades a server instead (xscp check --help); 'xscp diagram' draws
the sessions of a server's audit log (xscp diagram --help).

Options:
      --name NAME            send 'uname NAME' as soon as the server has greeted
      --notif                send 'notif on' once registered
      --manual               do not answer pings or send receipts automatically
      --timestamps           start every printed line with the UTC time (HH:MM:SS.mmm)
      --echo                 also print every typed line sent, behind '> '
  -h, --help                 print this help and exit
  -V, --version              print the version and exit

Input: '/msg NAME TEXT' sends 'chatm <me> NAME TEXT'; empty lines and lines starting
with '#' are not sent. End of input sends cquit and waits for the server to close.
Exit status: 0 after the server's +OK to cquit, 1 if the connection ended otherwise or
failed, 2 for a bad command line, 130 on a second Ctrl-C.";

/// What the command line asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Options {
    /// The server's address.
    addr: String,
    /// `--name`: register at once.
    name: Option<String>,
    /// `--notif`: subscribe once registered.
    notif: bool,
    /// `--manual`: no auto-pong, no auto-receipt.
    manual: bool,
    /// `--timestamps`
    timestamps: bool,
    /// `--echo`: print typed lines as they are sent.
    echo: bool,
}

/// The command line's verdict.
#[derive(Debug, PartialEq, Eq)]
enum Cli {
    Run(Options),
    Help,
    Version,
}

/// A bad command line: one line naming the problem.
#[derive(Debug, PartialEq, Eq)]
struct CliError(String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses the arguments (without the program name).
fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Cli, CliError> {
    let mut o = Options::default();
    let mut addr = None;
    let mut args = args.into_iter();
    let mut only_positional = false;
    while let Some(arg) = args.next() {
        if only_positional || !arg.starts_with('-') || arg == "-" {
            if addr.replace(arg.clone()).is_some() {
                return Err(CliError(format!("unexpected argument '{arg}'")));
            }
            continue;
        }
        // `--opt=value` is the same as `--opt value`.
        let (opt, mut inline) = match arg.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match opt.as_str() {
            "--" => only_positional = true,
            "--name" => {
                let v = inline
                    .take()
                    .or_else(|| args.next())
                    .ok_or_else(|| CliError("option --name needs a value".into()))?;
                // The server judges the name; this only keeps one argument one PDU.
                if v.is_empty() || v.chars().any(|c| c == ' ' || c.is_control()) {
                    return Err(CliError(format!("invalid value '{v}' for --name")));
                }
                o.name = Some(v);
            }
            "--notif" => o.notif = true,
            "--manual" => o.manual = true,
            "--timestamps" => o.timestamps = true,
            "--echo" => o.echo = true,
            "-h" | "--help" => return Ok(Cli::Help),
            "-V" | "--version" => return Ok(Cli::Version),
            _ => return Err(CliError(format!("unknown option '{arg}'"))),
        }
        if let Some(v) = inline {
            return Err(CliError(format!("option {opt} takes no value (got '{v}')")));
        }
    }
    o.addr = addr.unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_PORT}"));
    with_port(&o.addr).map_err(CliError)?;
    Ok(Cli::Run(o))
}

/// ADDR in `host:port` form: a host without a port (`localhost`, `[::1]`, a bare IPv6
/// address) gets [`DEFAULT_PORT`]. A port that is not a number from 0 to 65535 is a bad
/// command line, said before anything is resolved.
fn with_port(addr: &str) -> Result<String, String> {
    let port_ok = |port: &str| {
        port.parse::<u16>()
            .map(|_| addr.to_string())
            .map_err(|_| format!("invalid port '{port}' in '{addr}'"))
    };
    if addr.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(format!("[{addr}]:{DEFAULT_PORT}"));
    }
    if let Some(rest) = addr.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, "")) => Ok(format!("[{host}]:{DEFAULT_PORT}")),
            Some((_, after)) => match after.strip_prefix(':') {
                Some(port) => port_ok(port),
                None => Err(format!(
                    "invalid address '{addr}': ':PORT' expected after ']'"
                )),
            },
            None => Err(format!("invalid address '{addr}': no closing ']'")),
        };
    }
    match addr.rsplit_once(':') {
        Some((_, port)) => port_ok(port),
        None => Ok(format!("{addr}:{DEFAULT_PORT}")),
    }
}

/// Resolves ADDR (see [`with_port`]).
fn resolve(addr: &str) -> io::Result<Vec<SocketAddr>> {
    let full = with_port(addr).map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
    Ok(full.to_socket_addrs()?.collect())
}

/// Connects to the first address of ADDR that answers.
fn connect(addr: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(ErrorKind::NotFound, "no address found");
    for a in resolve(addr)? {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// One line read with a bound.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// The line's bytes without its LF (a CR before it is still there).
    Complete(Vec<u8>),
    /// The line was longer than the bound; it was skipped up to its end.
    TooLong,
}

/// Reads up to and including the next LF (or end of stream), holding at most `max` bytes.
/// `None` at end of stream.
fn read_line_bounded<R: BufRead>(r: &mut R, max: usize) -> io::Result<Option<Line>> {
    let mut buf = Vec::new();
    let mut too_long = false;
    let mut any = false;
    loop {
        let available = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            if !any {
                return Ok(None);
            }
            break;
        }
        any = true;
        let newline = available.iter().position(|&b| b == b'\n');
        let content = &available[..newline.unwrap_or(available.len())];
        if !too_long {
            if buf.len() + content.len() > max {
                too_long = true;
                buf = Vec::new();
            } else {
                buf.extend_from_slice(content);
            }
        }
        let used = newline.map_or(available.len(), |i| i + 1);
        r.consume(used);
        if newline.is_some() {
            break;
        }
    }
    Ok(Some(if too_long {
        Line::TooLong
    } else {
        Line::Complete(buf)
    }))
}

/// What the standard-input thread reports.
#[derive(Debug)]
enum FromStdin {
    /// One line, without its terminator.
    Line(Vec<u8>),
    /// A line over [`MAX_INPUT_LINE`] bytes: not sent.
    TooLong,
    /// End of input.
    Eof,
    /// Standard input failed.
    Error(String),
}

/// What the socket thread reports.
#[derive(Debug)]
enum FromServer {
    /// One line, without its terminator.
    Line(Vec<u8>),
    /// A line over [`MAX_SERVER_LINE`] bytes.
    TooLong,
    /// The server closed the connection.
    Eof,
    /// The connection failed (reset, I/O error).
    Error(String),
}

/// Reads standard input line by line. CR, LF and CRLF each end a line, as on the server's
/// side (PROTOCOL.md §1), so one line here is one PDU there.
fn stdin_thread(tx: Sender<FromStdin>) {
    let stdin = io::stdin();
    let mut r = stdin.lock();
    loop {
        let msgs = match read_line_bounded(&mut r, MAX_INPUT_LINE) {
            Ok(Some(Line::Complete(bytes))) => bytes
                .split(|&b| b == b'\r')
                .map(|l| FromStdin::Line(l.to_vec()))
                .collect(),
            Ok(Some(Line::TooLong)) => vec![FromStdin::TooLong],
            Ok(None) => vec![FromStdin::Eof],
            Err(e) => vec![FromStdin::Error(e.to_string())],
        };
        let last = matches!(msgs.last(), Some(FromStdin::Eof | FromStdin::Error(_)));
        for m in msgs {
            if tx.send(m).is_err() {
                return;
            }
        }
        if last {
            return;
        }
    }
}

/// Reads the server's lines. Ends at end of stream or on an error.
fn socket_thread(stream: TcpStream, tx: Sender<FromServer>) {
    let mut r = BufReader::new(stream);
    loop {
        let msg = match read_line_bounded(&mut r, MAX_SERVER_LINE) {
            Ok(Some(Line::Complete(mut bytes))) => {
                if bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
                FromServer::Line(bytes)
            }
            Ok(Some(Line::TooLong)) => FromServer::TooLong,
            Ok(None) => FromServer::Eof,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                FromServer::Error("connection reset by the server".into())
            }
            Err(e) => FromServer::Error(e.to_string()),
        };
        let end = !matches!(msg, FromServer::Line(_));
        if tx.send(msg).is_err() || end {
            return;
        }
    }
}

/// The time of day in UTC as `HH:MM:SS.mmm` (`--timestamps`; UTC like the server's log, and
/// no time-zone database needed).
fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        now.subsec_millis()
    )
}

/// A server line as printed: verbatim, except that control bytes (which a conforming
/// server never sends, PROTOCOL.md §1) are shown as `\xNN` so they cannot drive the
/// terminal.
fn printable(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    for &b in line {
        if b < 0x20 || b == 0x7F {
            out.extend_from_slice(format!("\\x{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out
}

/// The keyword of a line and the rest, split at the first run of spaces.
fn keyword(line: &str) -> (&str, &str) {
    let line = line.trim_start_matches(' ');
    let (k, rest) = line.split_once(' ').unwrap_or((line, ""));
    (k, rest.trim_start_matches(' '))
}

/// Does the `+OK` text open a multi-line response (`capa`, `users`; PROTOCOL.md §2, §5)?
fn opens_block(text: &str) -> bool {
    text == "capability list follows"
        || text
            .strip_suffix(" users")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// What a server line means to the client.
#[derive(Debug, PartialEq, Eq)]
enum Seen<'a> {
    /// `ping <token>`: answer `+OK pong <token>`.
    Ping(&'a str),
    /// A direct `chatm` from `sender`: acknowledge with `chatr`.
    DirectChat { sender: &'a str, recipient: &'a str },
    /// A broadcast `chatm` (recipient `*`): no receipt.
    Broadcast,
    /// `cquit <reason>`: the server is about to close.
    Quit(&'a str),
    /// `+OK you are <name>` / `+OK welcome back <name>`.
    Registered(&'a str),
    /// `+OK name changed from <old> to <new>`.
    Renamed(&'a str),
    /// `+OK ...` opening a multi-line response.
    BlockStart,
    /// Anything else: printed, nothing more.
    Other,
}

/// Classifies a server line (outside a multi-line response).
fn classify(line: &str) -> Seen<'_> {
    if let Some(text) = line.strip_prefix("+OK ") {
        if let Some(name) = text
            .strip_prefix("you are ")
            .or_else(|| text.strip_prefix("welcome back "))
        {
            // `welcome back <name> (<n> held, <m> lost)` (PROTOCOL.md §5.8): the name is
            // the first word; the replayed `chatm` lines that follow are ordinary ones.
            let name = name.split(' ').next().unwrap_or("");
            return Seen::Registered(name);
        }
        if let Some((_, new)) = text
            .strip_prefix("name changed from ")
            .and_then(|t| t.split_once(" to "))
        {
            return Seen::Renamed(new.trim());
        }
        if opens_block(text) {
            return Seen::BlockStart;
        }
        return Seen::Other;
    }
    let (k, rest) = keyword(line);
    if k.eq_ignore_ascii_case("ping") {
        // Exactly one token: anything else is not a server ping (PROTOCOL.md §5).
        let token = rest.trim_end_matches(' ');
        if !token.is_empty() && !token.contains(' ') {
            return Seen::Ping(token);
        }
    } else if k.eq_ignore_ascii_case("chatm") {
        let (sender, rest) = keyword(rest);
        let (recipient, text) = keyword(rest);
        if !sender.is_empty() && !recipient.is_empty() && !text.trim().is_empty() {
            return if recipient == "*" {
                Seen::Broadcast
            } else {
                Seen::DirectChat { sender, recipient }
            };
        }
    } else if k.eq_ignore_ascii_case("cquit") {
        return Seen::Quit(rest);
    }
    Seen::Other
}

/// Why the client stops, and with which status.
#[derive(Debug)]
enum Exit {
    /// The server closed after its `+OK` to our `cquit`.
    Done,
    /// A one-line reason, status 1.
    Failed(String),
    /// A second Ctrl-C.
    Interrupted,
}

/// The client's state, owned by the main thread. `S` is the socket's sending side, `W`
/// standard output (both plain writers, so that the logic can be tested without either).
struct Client<S: Write, W: Write> {
    opts: Options,
    sock: S,
    out: W,
    /// Our current nickname, from the server's replies to `uname` and `cname`.
    me: Option<String>,
    /// The name asked for by a `uname`/`cname` sent but not answered yet: the name the
    /// server will know us by when it reads our next line, if all goes well (for `/msg`).
    asked: Option<String>,
    /// Senders of direct messages that arrived while a name change was unanswered: their
    /// receipts wait for the answer, which says which name the server will expect in them.
    deferred: Vec<String>,
    /// `--notif` has been acted on.
    notif_sent: bool,
    /// The server's first line (its greeting) has arrived. Nothing is sent before it, so
    /// that `--name` goes first and a transcript reads in protocol order.
    greeted: bool,
    /// A `cquit` has gone out: nothing more is sent.
    quit_sent: bool,
    /// Inside a multi-line response: its lines are items, not server-initiated lines.
    in_block: bool,
    /// The last line the server sent.
    last_line: Option<String>,
    /// The reason of the server's own `cquit <reason>`.
    server_quit: Option<String>,
    /// Sending failed (the reason); what the server still says is read to the end.
    send_failed: Option<String>,
}

impl<S: Write, W: Write> Client<S, W> {
    fn new(opts: Options, sock: S, out: W) -> Client<S, W> {
        Client {
            opts,
            sock,
            out,
            me: None,
            asked: None,
            deferred: Vec::new(),
            notif_sent: false,
            greeted: false,
            quit_sent: false,
            in_block: false,
            last_line: None,
            server_quit: None,
            send_failed: None,
        }
    }

    /// Prints one line on standard output, with the timestamp and `prefix` if any.
    fn print(&mut self, prefix: &str, line: &[u8]) -> Result<(), Exit> {
        let mut buf = Vec::with_capacity(line.len() + 24);
        if self.opts.timestamps {
            buf.extend_from_slice(timestamp().as_bytes());
            buf.push(b' ');
        }
        buf.extend_from_slice(prefix.as_bytes());
        buf.extend_from_slice(line);
        buf.push(b'\n');
        self.out
            .write_all(&buf)
            .and_then(|()| self.out.flush())
            .map_err(|e| Exit::Failed(format!("cannot write to standard output: {e}")))
    }

    /// Sends one PDU (with CRLF) and prints it behind `echo` if that is given.
    fn send(&mut self, line: &[u8], echo: Option<&str>) -> Result<(), Exit> {
        let text = String::from_utf8_lossy(line);
        let (k, arg) = keyword(&text);
        if k.eq_ignore_ascii_case("cquit") && arg.trim_end_matches(' ').is_empty() {
            // (`cquit` with an argument is only refused: the connection stays.)
            self.quit_sent = true;
        } else if k.eq_ignore_ascii_case("uname") || k.eq_ignore_ascii_case("cname") {
            let name = arg.trim_end_matches(' ');
            if !name.is_empty() && !name.contains(' ') {
                self.asked = Some(name.to_string());
            }
        }
        if self.send_failed.is_some() {
            // (A quit still counts as said: a second Ctrl-C must end the client.)
            return Ok(());
        }
        let mut pdu = Vec::with_capacity(line.len() + 2);
        pdu.extend_from_slice(line);
        pdu.extend_from_slice(b"\r\n");
        if let Err(e) = self.sock.write_all(&pdu).and_then(|()| self.sock.flush()) {
            // Keep reading: the server's last lines (a `cquit <reason>`) say why.
            self.send_failed = Some(e.to_string());
            return Ok(());
        }
        match echo {
            Some(prefix) => self.print(prefix, line),
            None => Ok(()),
        }
    }

    /// Sends a line the client makes on its own, unless either side has already said
    /// `cquit` (the server reads nothing after it).
    fn send_auto(&mut self, line: &str) -> Result<(), Exit> {
        if self.quit_sent || self.server_quit.is_some() {
            return Ok(());
        }
        self.send(line.as_bytes(), Some(AUTO))
    }

    /// The server's greeting: `--name` registers now, and input may flow. A refusal such
    /// as `-ERR [FULL]` is only printed; the server closes next.
    fn on_greeting(&mut self, line: &str) -> Result<(), Exit> {
        self.greeted = true;
        if line.starts_with("+OK") {
            if let Some(name) = self.opts.name.clone() {
                self.send_auto(&format!("uname {name}"))?;
            }
        }
        Ok(())
    }

    /// A line from the server: print it, then do what a client does on its own.
    fn on_server_line(&mut self, raw: &[u8]) -> Result<(), Exit> {
        self.print("", &printable(raw))?;
        let line = String::from_utf8_lossy(raw).into_owned();
        self.last_line = Some(line.clone());
        if !self.greeted {
            return self.on_greeting(&line);
        }
        if self.in_block {
            self.in_block = line != ".";
            return Ok(());
        }
        if line.starts_with("-ERR") && self.asked.is_some() {
            // Most likely the refusal of the name asked for: the name stays as it was.
            self.asked = None;
            self.send_deferred()?;
        }
        match classify(&line) {
            Seen::Ping(token) if !self.opts.manual => {
                self.send_auto(&format!("+OK pong {token}"))?;
            }
            Seen::DirectChat { sender, recipient } if !self.opts.manual => {
                if self.asked.is_some() {
                    // The server reads the receipt after the name change: wait for its
                    // answer to know which name it will expect.
                    self.deferred.push(sender.to_string());
                } else {
                    let me = self.me.clone().unwrap_or_else(|| recipient.to_string());
                    self.send_auto(&format!("chatr {sender} {me}"))?;
                }
            }
            Seen::Quit(reason) => self.server_quit = Some(reason.to_string()),
            Seen::Registered(name) => {
                self.me = Some(name.to_string());
                self.asked = None;
                self.send_deferred()?;
                if self.opts.notif && !self.notif_sent {
                    self.notif_sent = true;
                    self.send_auto("notif on")?;
                }
            }
            Seen::Renamed(name) => {
                self.me = Some(name.to_string());
                self.asked = None;
                self.send_deferred()?;
            }
            Seen::BlockStart => self.in_block = true,
            Seen::Ping(_) | Seen::DirectChat { .. } | Seen::Broadcast | Seen::Other => {}
        }
        Ok(())
    }

    /// Sends the receipts that waited for a name change to be answered.
    fn send_deferred(&mut self) -> Result<(), Exit> {
        let Some(me) = self.me.clone() else {
            return Ok(());
        };
        for sender in std::mem::take(&mut self.deferred) {
            self.send_auto(&format!("chatr {sender} {me}"))?;
        }
        Ok(())
    }

    /// A line from standard input: one PDU, or a convenience.
    fn on_input(&mut self, line: &[u8]) -> Result<(), Exit> {
        let text = String::from_utf8_lossy(line);
        let trimmed = text.trim_start_matches(' ');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(()); // Not PDUs (PROTOCOL.md §1) / script comments.
        }
        if self.quit_sent {
            eprintln!("xscp: not sent, cquit already sent: {}", text.trim_end());
            return Ok(());
        }
        if let Some(args) = trimmed.strip_prefix("/msg") {
            if args.is_empty() || args.starts_with(' ') {
                return self.msg(args.trim_start_matches(' '));
            }
        }
        let echo = self.opts.echo.then_some(TYPED);
        self.send(line, echo)
    }

    /// `/msg NAME TEXT` -> `chatm <me> NAME TEXT`, echoed.
    fn msg(&mut self, args: &str) -> Result<(), Exit> {
        let (name, text) = keyword(args);
        if name.is_empty() || text.is_empty() {
            eprintln!("xscp: usage: /msg NAME TEXT");
            return Ok(());
        }
        // A script may say `uname alice` and `/msg bob hi` in one breath: the server reads
        // them in order, so the name asked for is the one to send as.
        let Some(me) = self.asked.clone().or_else(|| self.me.clone()) else {
            eprintln!("xscp: /msg needs a nickname first (uname NAME)");
            return Ok(());
        };
        self.send(
            format!("chatm {me} {name} {text}").as_bytes(),
            Some(EXPANDED),
        )
    }

    /// End of standard input (or Ctrl-C): say `cquit`, then wait for the server to close.
    fn quit(&mut self) -> Result<(), Exit> {
        self.send_auto("cquit")
    }

    /// The server closed the connection (or it failed): how the client ends.
    fn on_end(&self, error: Option<String>) -> Exit {
        let last = self.last_line.as_deref().unwrap_or("");
        if self.quit_sent && last.starts_with("+OK") {
            return Exit::Done;
        }
        let reason = if let Some(reason) = &self.server_quit {
            format!("server closed the connection: {reason}")
        } else if let Some(e) = error {
            format!("connection lost: {e}")
        } else if last.starts_with("-ERR") {
            format!("server closed the connection after: {last}")
        } else if let Some(e) = &self.send_failed {
            format!("server closed the connection (sending failed: {e})")
        } else {
            "server closed the connection".to_string()
        };
        Exit::Failed(reason)
    }
}

/// Connects and runs the session until the server closes the connection.
fn run(opts: Options) -> Exit {
    let sock = match connect(&opts.addr) {
        Ok(s) => s,
        Err(e) => return Exit::Failed(format!("cannot connect to {}: {e}", opts.addr)),
    };
    let reading = match sock.try_clone() {
        Ok(s) => s,
        Err(e) => return Exit::Failed(format!("cannot use the connection: {e}")),
    };
    let (server_tx, server_rx) = unbounded();
    // Small: a long script is read as it is sent, not all at once.
    let (stdin_tx, stdin_rx) = bounded(16);
    let (signal_tx, signal_rx) = bounded(4);
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = signal_tx.try_send(());
    }) {
        eprintln!("xscp: Ctrl-C will not send cquit: {e}");
    }
    let started = thread::Builder::new()
        .name("xscp-socket".into())
        .spawn(move || socket_thread(reading, server_tx))
        .and_then(|_| {
            thread::Builder::new()
                .name("xscp-stdin".into())
                .spawn(move || stdin_thread(stdin_tx))
        });
    if let Err(e) = started {
        return Exit::Failed(format!("cannot start a thread: {e}"));
    }
    let mut client = Client::new(opts, sock, io::stdout().lock());
    let Err(exit) = session(&mut client, &server_rx, &stdin_rx, &signal_rx);
    exit
}

/// The main loop: every event in the order it comes, until the connection ends. It only
/// returns through `Err`, with how it ends (the good end, [`Exit::Done`], included).
fn session<S: Write, W: Write>(
    client: &mut Client<S, W>,
    server_rx: &Receiver<FromServer>,
    stdin_rx: &Receiver<FromStdin>,
    signal_rx: &Receiver<()>,
) -> Result<Infallible, Exit> {
    let closed = never();
    let mut input_open = true;
    loop {
        // Input waits for the greeting, so that nothing overtakes `--name`.
        let input = if input_open && client.greeted {
            stdin_rx
        } else {
            &closed
        };
        select! {
            recv(server_rx) -> msg => match msg {
                Ok(FromServer::Line(l)) => client.on_server_line(&l)?,
                Ok(FromServer::Eof) | Err(_) => return Err(client.on_end(None)),
                Ok(FromServer::Error(e)) => return Err(client.on_end(Some(e))),
                Ok(FromServer::TooLong) => {
                    return Err(Exit::Failed(format!(
                        "the server sent a line longer than {MAX_SERVER_LINE} bytes"
                    )));
                }
            },
            recv(input) -> msg => match msg {
                Ok(FromStdin::Line(l)) => client.on_input(&l)?,
                Ok(FromStdin::TooLong) => {
                    eprintln!("xscp: not sent: input line longer than {MAX_INPUT_LINE} bytes");
                }
                Ok(FromStdin::Eof) | Err(_) => {
                    input_open = false;
                    client.quit()?;
                }
                Ok(FromStdin::Error(e)) => {
                    eprintln!("xscp: cannot read standard input: {e}");
                    input_open = false;
                    client.quit()?;
                }
            },
            recv(signal_rx) -> _ => {
                if client.quit_sent {
                    return Err(Exit::Interrupted);
                }
                client.quit()?;
            },
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "check") {
        return check::main(&args[1..]);
    }
    if args.first().is_some_and(|a| a == "diagram") {
        return diagram::main(&args[1..]);
    }
    let opts = match parse_args(args) {
        Ok(Cli::Run(o)) => o,
        Ok(Cli::Help) => {
            println!("{USAGE}\n\n{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(Cli::Version) => {
            println!("xscp {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("xscp: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(opts) {
        Exit::Done => ExitCode::SUCCESS,
        Exit::Failed(reason) => {
            eprintln!("xscp: {reason}");
            ExitCode::from(1)
        }
        Exit::Interrupted => {
            eprintln!("xscp: interrupted");
            ExitCode::from(130)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Cli, CliError> {
        parse_args(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults() {
        let Ok(Cli::Run(o)) = args(&[]) else { panic!() };
        assert_eq!(o.addr, "127.0.0.1:1030");
        assert!(o.name.is_none() && !o.notif && !o.manual && !o.timestamps && !o.echo);
    }

    #[test]
    fn options_and_address() {
        let Ok(Cli::Run(o)) = args(&["--name=alice", "--manual", "h:1", "--notif"]) else {
            panic!()
        };
        assert_eq!((o.addr.as_str(), o.name.as_deref()), ("h:1", Some("alice")));
        assert!(o.manual && o.notif);
        assert_eq!(args(&["-V"]), Ok(Cli::Version));
        assert_eq!(args(&["--help"]), Ok(Cli::Help));
    }

    #[test]
    fn bad_command_lines_name_the_problem() {
        assert_eq!(
            args(&["--bogus"]),
            Err(CliError("unknown option '--bogus'".into()))
        );
        assert_eq!(
            args(&["a:1", "b:2"]),
            Err(CliError("unexpected argument 'b:2'".into()))
        );
        assert_eq!(
            args(&["--name"]),
            Err(CliError("option --name needs a value".into()))
        );
        assert!(args(&["--name", "a b"]).is_err());
        assert!(args(&["--manual=yes"]).is_err());
        // A port that is not a number is a bad command line (issue 11).
        assert_eq!(
            args(&["127.0.0.1:17999x"]),
            Err(CliError(
                "invalid port '17999x' in '127.0.0.1:17999x'".into()
            ))
        );
        assert!(args(&["[::1]:x"]).is_err());
        assert!(args(&["[::1"]).is_err());
    }

    #[test]
    fn addresses_without_a_port_get_the_default_one() {
        assert_eq!(with_port("[::1]").unwrap(), "[::1]:1030");
        assert_eq!(with_port("::1").unwrap(), "[::1]:1030");
        assert_eq!(with_port("[::1]:7").unwrap(), "[::1]:7");
        assert_eq!(with_port("localhost").unwrap(), "localhost:1030");
        assert_eq!(with_port("127.0.0.1:7").unwrap(), "127.0.0.1:7");
        assert_eq!(resolve("[::1]").unwrap(), ["[::1]:1030".parse().unwrap()]);
    }

    #[test]
    fn bounded_lines() {
        let mut r: &[u8] = b"ab\r\ncd\nxyz";
        let mut lines = Vec::new();
        while let Some(l) = read_line_bounded(&mut r, 4).unwrap() {
            lines.push(l);
        }
        assert_eq!(
            lines,
            vec![
                Line::Complete(b"ab\r".to_vec()),
                Line::Complete(b"cd".to_vec()),
                Line::Complete(b"xyz".to_vec())
            ]
        );
        let mut r: &[u8] = b"toolong\nok\n";
        assert_eq!(read_line_bounded(&mut r, 4).unwrap(), Some(Line::TooLong));
        assert_eq!(
            read_line_bounded(&mut r, 4).unwrap(),
            Some(Line::Complete(b"ok".to_vec()))
        );
        assert_eq!(read_line_bounded(&mut r, 4).unwrap(), None);
    }

    #[test]
    fn server_lines() {
        assert_eq!(classify("ping 7.1"), Seen::Ping("7.1"));
        assert_eq!(
            classify("chatm bob alice hi  there"),
            Seen::DirectChat {
                sender: "bob",
                recipient: "alice"
            }
        );
        assert_eq!(classify("chatm bob * hi"), Seen::Broadcast);
        assert_eq!(classify("cquit ping timeout"), Seen::Quit("ping timeout"));
        assert_eq!(classify("+OK you are alice"), Seen::Registered("alice"));
        assert_eq!(
            classify("+OK welcome back alice"),
            Seen::Registered("alice")
        );
        assert_eq!(
            classify("+OK welcome back alice (2 held, 1 lost)"),
            Seen::Registered("alice")
        );
        assert_eq!(
            classify("+OK name changed from alice to Alicia"),
            Seen::Renamed("Alicia")
        );
        assert_eq!(classify("+OK 2 users"), Seen::BlockStart);
        assert_eq!(classify("+OK capability list follows"), Seen::BlockStart);
        // Not server pings: a capa item, a pong, a bare word.
        assert_eq!(classify("PING 60 20"), Seen::Other);
        assert_eq!(classify("+OK pong 7.1"), Seen::Other);
        assert_eq!(classify("ping"), Seen::Other);
    }

    #[test]
    fn control_bytes_are_shown_not_obeyed() {
        assert_eq!(printable(b"a\x1b[31mb"), b"a\\x1B[31mb".to_vec());
        assert_eq!(printable("wörld".as_bytes()), "wörld".as_bytes().to_vec());
    }

    /// A client on in-memory "socket" and "stdout", already greeted.
    fn client(opts: Options) -> Client<Vec<u8>, Vec<u8>> {
        let mut c = Client::new(opts, Vec::new(), Vec::new());
        c.on_server_line(b"+OK xscp/1 ready").unwrap();
        c
    }

    fn registered(name: &str, opts: Options) -> Client<Vec<u8>, Vec<u8>> {
        let mut c = client(opts);
        c.on_input(format!("uname {name}").as_bytes()).unwrap();
        c.on_server_line(format!("+OK you are {name}").as_bytes())
            .unwrap();
        take_sent(&mut c);
        c
    }

    /// The PDUs sent since the last call.
    fn take_sent(c: &mut Client<Vec<u8>, Vec<u8>>) -> Vec<String> {
        let sent = String::from_utf8(std::mem::take(&mut c.sock)).unwrap();
        sent.split_terminator("\r\n").map(str::to_string).collect()
    }

    fn printed(c: &Client<Vec<u8>, Vec<u8>>) -> Vec<&str> {
        std::str::from_utf8(&c.out).unwrap().lines().collect()
    }

    fn server(c: &mut Client<Vec<u8>, Vec<u8>>, lines: &[&str]) {
        for l in lines {
            c.on_server_line(l.as_bytes()).unwrap();
        }
    }

    mod automatic_lines {
        use super::*;

        #[test]
        fn name_is_sent_after_the_greeting() {
            let opts = Options {
                name: Some("alice".into()),
                ..Options::default()
            };
            let mut c = Client::new(opts, Vec::new(), Vec::new());
            assert!(take_sent(&mut c).is_empty());
            server(&mut c, &["+OK xscp/1 ready"]);
            assert_eq!(take_sent(&mut c), ["uname alice"]);
            assert_eq!(printed(&c), ["+OK xscp/1 ready", "auto> uname alice"]);
        }

        #[test]
        fn no_name_after_a_refusal_instead_of_a_greeting() {
            let opts = Options {
                name: Some("alice".into()),
                ..Options::default()
            };
            let mut c = Client::new(opts, Vec::new(), Vec::new());
            server(&mut c, &["-ERR [FULL] server full", "cquit server full"]);
            assert!(take_sent(&mut c).is_empty());
        }

        #[test]
        fn pings_are_answered_unless_manual() {
            let mut c = registered("alice", Options::default());
            server(&mut c, &["ping 1.1"]);
            assert_eq!(take_sent(&mut c), ["+OK pong 1.1"]);
            let mut m = registered(
                "alice",
                Options {
                    manual: true,
                    ..Options::default()
                },
            );
            server(&mut m, &["ping 1.1"]);
            assert!(take_sent(&mut m).is_empty());
        }

        #[test]
        fn direct_messages_get_receipts_broadcasts_do_not() {
            let mut c = registered("alice", Options::default());
            server(&mut c, &["chatm bob alice hi", "chatm bob * hi all"]);
            assert_eq!(take_sent(&mut c), ["chatr bob alice"]);
            assert!(printed(&c).ends_with(&[
                "chatm bob alice hi",
                "auto> chatr bob alice",
                "chatm bob * hi all"
            ]));
        }

        #[test]
        fn replayed_messages_after_welcome_back_get_receipts() {
            let mut c = client(Options::default());
            c.on_input(b"uname alice").unwrap();
            server(
                &mut c,
                &[
                    "+OK welcome back alice (2 held, 0 lost)",
                    "chatm bob alice one",
                    "chatm carol alice two",
                ],
            );
            assert_eq!(
                take_sent(&mut c),
                ["uname alice", "chatr bob alice", "chatr carol alice"]
            );
            assert!(printed(&c).contains(&"+OK welcome back alice (2 held, 0 lost)"));
        }

        #[test]
        fn items_of_a_multiline_response_are_not_commands() {
            let mut c = registered("alice", Options::default());
            server(&mut c, &["+OK capability list follows", "ping 60", "."]);
            assert!(take_sent(&mut c).is_empty());
            server(&mut c, &["ping 1.1"]);
            assert_eq!(take_sent(&mut c), ["+OK pong 1.1"]);
        }

        #[test]
        fn a_receipt_waits_for_a_pending_rename() {
            let mut c = registered("alice", Options::default());
            c.on_input(b"cname alicia").unwrap();
            server(&mut c, &["chatm bob alice hi"]);
            assert_eq!(take_sent(&mut c), ["cname alicia"]);
            server(&mut c, &["+OK name changed from alice to alicia"]);
            assert_eq!(take_sent(&mut c), ["chatr bob alicia"]);
        }

        #[test]
        fn a_refused_rename_releases_the_receipt_under_the_old_name() {
            let mut c = registered("alice", Options::default());
            c.on_input(b"cname bob").unwrap();
            server(&mut c, &["chatm bob alice hi"]);
            take_sent(&mut c);
            server(
                &mut c,
                &["-ERR [IN-USE] bob is already taken by another client"],
            );
            assert_eq!(take_sent(&mut c), ["chatr bob alice"]);
        }

        #[test]
        fn nothing_automatic_after_either_cquit() {
            let mut c = registered("alice", Options::default());
            server(&mut c, &["cquit ping timeout", "ping 1.2"]);
            assert!(take_sent(&mut c).is_empty());
            let mut c = registered("alice", Options::default());
            c.quit().unwrap();
            server(&mut c, &["chatm bob alice hi"]);
            assert_eq!(take_sent(&mut c), ["cquit"]);
        }
    }

    mod input {
        use super::*;

        #[test]
        fn blank_lines_and_comments_are_not_sent() {
            let mut c = client(Options::default());
            for l in ["", "   ", "# note", "  # note", "ping"] {
                c.on_input(l.as_bytes()).unwrap();
            }
            assert_eq!(take_sent(&mut c), ["ping"]);
        }

        #[test]
        fn msg_expands_with_the_current_or_pending_name() {
            let mut c = client(Options::default());
            c.on_input(b"/msg bob hi").unwrap();
            assert!(take_sent(&mut c).is_empty(), "no name yet");
            c.on_input(b"uname alice").unwrap();
            c.on_input(b"/msg bob hi  there").unwrap();
            assert_eq!(
                take_sent(&mut c),
                ["uname alice", "chatm alice bob hi  there"]
            );
            assert_eq!(printed(&c).last(), Some(&"/msg> chatm alice bob hi  there"));
            c.on_input(b"/msg bob").unwrap();
            c.on_input(b"/message").unwrap();
            assert_eq!(take_sent(&mut c), ["/message"]);
        }

        #[test]
        fn cquit_with_an_argument_is_not_a_quit() {
            let mut c = client(Options::default());
            c.on_input(b"cquit now").unwrap();
            assert!(!c.quit_sent);
            c.on_input(b"CQUIT").unwrap();
            assert!(c.quit_sent);
            c.on_input(b"ping").unwrap();
            assert_eq!(take_sent(&mut c), ["cquit now", "CQUIT"]);
        }
    }

    mod ending {
        use super::*;

        #[test]
        fn the_reply_to_our_cquit_is_success() {
            let mut c = registered("alice", Options::default());
            c.quit().unwrap();
            server(&mut c, &["+OK terminating tasks and disconnecting"]);
            assert!(matches!(c.on_end(None), Exit::Done));
        }

        #[test]
        fn the_servers_own_cquit_is_the_reason() {
            let mut c = registered("alice", Options::default());
            c.quit().unwrap();
            server(&mut c, &["cquit server shutting down"]);
            let Exit::Failed(reason) = c.on_end(None) else {
                panic!()
            };
            assert_eq!(reason, "server closed the connection: server shutting down");
        }

        #[test]
        fn a_close_without_our_cquit_is_failure() {
            let c = registered("alice", Options::default());
            assert!(matches!(c.on_end(None), Exit::Failed(_)));
        }
    }

    #[test]
    fn timestamps_look_like_clock_times() {
        let t = timestamp();
        assert_eq!(t.len(), 12, "{t}");
        assert_eq!((&t[2..3], &t[5..6], &t[8..9]), (":", ":", "."));
    }
}
