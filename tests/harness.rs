//! The test harness, the one every area uses: starts the real `xscpd` binary on
//! `127.0.0.1:0`, collects its log, talks to it over real TCP sockets, runs the programs
//! to completion, and reads the server's `/proc` values.
//!
//! Every wait has a generous upper bound ([`WAIT`]) and waits for the event itself (a line,
//! a log entry, end of stream, a process's exit), never for time to pass. Only values that
//! have no event (a child's exit status, `/proc` counters) are polled, within a bound.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, unbounded};
use parking_lot::{Condvar, Mutex};

/// The most bytes a PDU carries before its terminator (xscp(7) §1).
pub const MAX_PDU: usize = 510;

/// xscp(7) §3, row for row, as the spec writes it (written out here, not taken from
/// the code, so that the tests compare the server with the spec).
pub const SPEC_TRANSITIONS: [(&str, &str, &str); 14] = [
    ("CLOSED", "LISTEN", "bind_and_listen"),
    ("LISTEN", "NEGOTIATING", "tcp_connection_accepted"),
    ("LISTEN", "CLOSED", "close"),
    ("NEGOTIATING", "ESTABLISHED", "credentials_validated"),
    ("NEGOTIATING", "NEGOTIATING", "invalid_credentials"),
    ("NEGOTIATING", "ABORTED", "max_retries_exceeded"),
    ("NEGOTIATING", "ABORTED", "connection_error"),
    ("NEGOTIATING", "UPDATE", "quit_requested"),
    ("NEGOTIATING", "UPDATE", "server_shutdown"),
    ("ESTABLISHED", "ABORTED", "connection_error"),
    ("ESTABLISHED", "UPDATE", "quit_requested"),
    ("ESTABLISHED", "UPDATE", "server_shutdown"),
    ("UPDATE", "CLOSED", "close"),
    ("ABORTED", "CLOSED", "close"),
];

/// The upper bound of every wait: generous, so a slow machine does not fail a test.
pub const WAIT: Duration = Duration::from_secs(20);

/// The bound for waits on `/proc` values that depend on the pool's idle timeout (5 s).
pub const PROC_WAIT: Duration = Duration::from_secs(30);

/// The greeting every admitted client gets first.
pub const GREETING: &str = "+OK xscp/1 ready";

/// The answer to `cquit`.
pub const BYE: &str = "+OK terminating tasks and disconnecting";

#[derive(Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
    /// The server's standard error reached its end: every line it wrote is in `lines`.
    ended: AtomicBool,
}

/// A running `xscpd`.
pub struct Server {
    child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
    log: Arc<Log>,
}

impl Server {
    /// Starts `xscpd -l 127.0.0.1:0 -v` plus `args` and waits until it listens.
    pub fn start(args: &[&str]) -> Server {
        Server::spawn(&[], args, &[])
    }

    /// Like [`Server::start`], under a `wrapper` command (e.g. `prlimit ... --`) and with
    /// extra environment variables. The log is collected byte-exact (a line that is not
    /// UTF-8 shows up with replacement characters instead of ending the collection).
    pub fn spawn(wrapper: &[&str], args: &[&str], envs: &[(&str, &str)]) -> Server {
        let bin = env!("CARGO_BIN_EXE_xscpd");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(["-l", "127.0.0.1:0", "-v"]).args(args);
        cmd.envs(envs.iter().copied());
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start xscpd");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Log::default());
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => {
                        // Under the lock, so that a waiter cannot miss the notification.
                        let _lines = sink.lines.lock();
                        sink.ended.store(true, Ordering::SeqCst);
                        sink.grew.notify_all();
                        break;
                    }
                    Ok(_) => {
                        if buf.ends_with(b"\n") {
                            buf.pop();
                        }
                        let line = String::from_utf8_lossy(&buf).into_owned();
                        sink.lines.lock().push(line);
                        sink.grew.notify_all();
                    }
                }
            }
        });
        let mut server = Server {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            log,
        };
        let line = server.wait_log(|l| l.contains("CLOSED -> LISTEN on bind_and_listen"));
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .expect("addr= in the listen line");
        server.addr = addr.parse().expect("listen address");
        server
    }

    /// Waits until `n` log lines match `pred`.
    pub fn wait_log_count(&self, n: usize, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + WAIT;
        let mut lines = self.log.lines.lock();
        let (mut counted, mut found) = (0, 0);
        loop {
            found += lines[counted..].iter().filter(|l| pred(l)).count();
            counted = lines.len();
            if found >= n {
                return;
            }
            if self.log.grew.wait_until(&mut lines, deadline).timed_out() {
                panic!(
                    "{n} log lines not found; log:\n{}",
                    lines[lines.len().saturating_sub(200)..].join("\n")
                );
            }
        }
    }

    /// Waits for a log line matching `pred` and returns it.
    pub fn wait_log(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let mut lines = self.log.lines.lock();
        let mut searched = 0;
        loop {
            if let Some(l) = lines[searched..].iter().find(|l| pred(l)) {
                return l.clone();
            }
            searched = lines.len();
            if self.log.grew.wait_until(&mut lines, deadline).timed_out() {
                panic!("log line not found; log:\n{}", lines.join("\n"));
            }
        }
    }

    /// Waits for a log line about the connection `peer` (from [`Client::peer`]) that
    /// contains `what`, and returns it.
    pub fn wait_peer_log(&self, peer: &str, what: &str) -> String {
        self.wait_log(|l| l.contains(peer) && l.contains(what))
    }

    /// Waits for the abort of the connection `peer` from the state `from` (its `<from> ->
    /// ABORTED on connection_error` line, then `ABORTED -> CLOSED on close`); returns the
    /// first line, which names the cause.
    pub fn wait_aborted(&self, peer: &str, from: &str) -> String {
        let aborted = self.wait_peer_log(peer, &format!("{from} -> ABORTED on connection_error"));
        self.wait_peer_log(peer, "ABORTED -> CLOSED on close");
        aborted
    }

    /// Waits for the close of the connection `peer` (its `-> CLOSED on close` line).
    pub fn wait_closed(&self, peer: &str) -> String {
        self.wait_peer_log(peer, " -> CLOSED on close")
    }

    /// The log lines about the connection `peer` so far.
    pub fn peer_log(&self, peer: &str) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|l| l.contains(peer))
            .collect()
    }

    /// A copy of the log so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lines.lock().clone()
    }

    /// Whether a line logged so far contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log.lines.lock().iter().any(|l| l.contains(text))
    }

    /// Connects from 127.0.0.1.
    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Connects from another loopback address (another "IP" for the server).
    pub fn connect_from(&self, ip: &str) -> Client {
        Client::connect_from(self.addr, ip.parse().unwrap())
    }

    /// Connects from `ip` with a small receive buffer (see [`Client::connect_with_rcvbuf`]).
    pub fn connect_with_rcvbuf(&self, ip: &str, rcvbuf: usize) -> Client {
        Client::connect_with_rcvbuf(self.addr, ip.parse().unwrap(), rcvbuf)
    }

    /// Connects from `ip`, reads the greeting and registers `nick`.
    pub fn register_from(&self, ip: &str, nick: &str) -> Client {
        let mut c = come_back_from(self, ip, nick);
        c.expect(&format!("+OK you are {nick}"));
        c
    }

    /// Connects from 127.0.0.1, reads the greeting and registers `nick`.
    pub fn register(&self, nick: &str) -> Client {
        self.register_from("127.0.0.1", nick)
    }

    /// `c` leaves by `cquit` (answered [`BYE`], then end of stream); returns once the
    /// server has closed the connection (`UPDATE -> CLOSED on close`).
    pub fn quit(&self, mut c: Client) {
        let peer = c.peer();
        c.send("cquit");
        c.expect_close(&[BYE]);
        drop(c);
        self.wait_peer_log(&peer, "UPDATE -> CLOSED on close");
    }

    /// Sends a signal to the server: `TERM`, `INT` or `HUP` once the server catches it
    /// (`KILL`, `STOP` and `CONT` at once): `xscpd`
    /// logs its listen line before it installs its handler, and a signal that came first
    /// would kill it. Whether the handler is installed has no event but `/proc`, which is
    /// polled within the bound.
    pub fn signal(&self, sig: &str) {
        let caught = match sig {
            "HUP" => Some(1),
            "INT" => Some(2),
            "TERM" => Some(15),
            // KILL, STOP and CONT are not caught: the kernel acts on them.
            "KILL" | "STOP" | "CONT" => None,
            _ => panic!("no signal number known for {sig}"),
        };
        if let Some(number) = caught {
            let pid = self.pid();
            poll_until(&format!("xscpd to catch SIG{sig}"), || {
                signal_caught(pid, number).then_some(())
            });
        }
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the server to exit, and for its log to be read to the end (the last
    /// lines may still be in the pipe when the process is gone).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "server did not exit");
            // Polling the child's status is the only portable way to wait with a bound.
            thread::sleep(Duration::from_millis(10));
        };
        let mut lines = self.log.lines.lock();
        while !self.log.ended.load(Ordering::SeqCst) {
            let waited = self.log.grew.wait_until(&mut lines, deadline);
            assert!(!waited.timed_out(), "the server's log never ended");
        }
        status
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Parses `... FROM -> TO on event ...` out of a log line.
pub fn parse_transition(line: &str) -> Option<(String, String, String)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let is_state = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_uppercase());
    words.windows(5).find_map(|w| {
        (w[1] == "->" && w[3] == "on" && is_state(w[0]) && is_state(w[2]))
            .then(|| (w[0].to_string(), w[2].to_string(), w[4].to_string()))
    })
}

/// Runs `program` with `args` and the extra environment `envs` to completion, standard
/// input empty, both outputs collected; fails the test if it runs longer than [`WAIT`].
/// An error only if it cannot be started (e.g. it is not installed).
pub fn try_run(program: &str, args: &[&str], envs: &[(&str, &str)]) -> std::io::Result<Output> {
    try_run_within(program, args, envs, WAIT)
}

/// [`try_run`] with another bound than [`WAIT`] (a browser's cold start takes longer).
pub fn try_run_within(
    program: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    bound: Duration,
) -> std::io::Result<Output> {
    let mut child = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Read both pipes on their own threads so that a full pipe never stalls the child.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = wait_child_within(&mut child, &format!("{program} {args:?}"), bound);
    Ok(Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    })
}

/// Waits for `child` (described as `what`) to exit, at most [`WAIT`]; kills it and fails
/// the test if it does not.
pub fn wait_child(child: &mut Child, what: &str) -> ExitStatus {
    wait_child_within(child, what, WAIT)
}

/// [`wait_child`] with another bound than [`WAIT`].
pub fn wait_child_within(child: &mut Child, what: &str, bound: Duration) -> ExitStatus {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {bound:?}");
        }
        // Polling the child's status is the only portable way to wait with a bound.
        thread::sleep(Duration::from_millis(10));
    }
}

/// Reads `r` line by line into a channel; the channel closes at end of stream.
pub fn lines_of(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = unbounded();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs `program` with `args` to completion (see [`try_run`]); it must start.
pub fn run(program: &str, args: &[&str]) -> Output {
    try_run(program, args, &[]).unwrap_or_else(|e| panic!("start {program}: {e}"))
}

/// Runs `xscpd` with `args` (and nothing else) to completion: the command-line tests.
pub fn run_xscpd(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_xscpd"), args)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain TCP client that speaks in lines.
pub struct Client {
    reader: BufReader<TcpStream>,
    local: SocketAddr,
}

impl Client {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// Connects to `addr` from the local address `ip`.
    pub fn connect_from(addr: SocketAddr, ip: IpAddr) -> Client {
        Client::connect_with(addr, ip, None)
    }

    /// Connects to `addr` from `ip` with a receive buffer of about `rcvbuf` bytes (the
    /// kernel may round it), so that a client that stops reading fills up quickly.
    pub fn connect_with_rcvbuf(addr: SocketAddr, ip: IpAddr, rcvbuf: usize) -> Client {
        Client::connect_with(addr, ip, Some(rcvbuf))
    }

    fn connect_with(addr: SocketAddr, ip: IpAddr, rcvbuf: Option<usize>) -> Client {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        if let Some(rcvbuf) = rcvbuf {
            socket.set_recv_buffer_size(rcvbuf).expect("SO_RCVBUF");
        }
        socket
            .bind(&SocketAddr::new(ip, 0).into())
            .expect("bind client address");
        socket.connect(&addr.into()).expect("connect");
        Client::from_stream(socket.into())
    }

    fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let local = stream.local_addr().expect("local address");
        Client {
            reader: BufReader::new(stream),
            local,
        }
    }

    /// How the server's log names this connection: `peer=<ip>:<port> ` (with the space,
    /// so that port 4000 does not match port 40001). Keep it to look for the connection's
    /// log lines after the client is dropped.
    pub fn peer(&self) -> String {
        format!("peer={} ", self.local)
    }

    /// A second handle on the socket, for writing from another thread while this client
    /// reads.
    pub fn writer(&self) -> TcpStream {
        self.stream().try_clone().expect("clone the socket")
    }

    /// Closes the connection with a reset (RST) instead of an orderly FIN.
    pub fn reset(self) {
        let socket = socket2::SockRef::from(self.stream());
        socket
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
        drop(self);
    }

    /// Closes our sending side only (FIN); the client can still read.
    pub fn shutdown_write(&self) {
        self.stream()
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
    }

    /// The underlying stream.
    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// Sends `line` with CRLF.
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("send");
    }

    /// Reads the next line (without its CRLF). Panics at end of stream or after [`WAIT`].
    pub fn line(&mut self) -> String {
        match self.try_line() {
            Some(l) => l,
            None => panic!("end of stream while a line was expected"),
        }
    }

    /// Reads the next line, or `None` at end of stream.
    pub fn try_line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => {
                assert!(buf.ends_with(b"\r\n"), "line not ended by CRLF: {buf:?}");
                buf.truncate(buf.len() - 2);
                Some(String::from_utf8(buf).expect("UTF-8 from the server"))
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => None,
            Err(e) => panic!("no line within {WAIT:?}: {e}"),
        }
    }

    /// Reads the next line and checks that it fits in a PDU (§1: at most [`MAX_PDU`] bytes
    /// before its terminator).
    pub fn pdu_line(&mut self) -> String {
        let line = self.line();
        assert!(
            line.len() <= MAX_PDU,
            "the server sent a line of {} bytes (limit {MAX_PDU}): {line:?}",
            line.len()
        );
        line
    }

    /// Reads the next line and checks it.
    pub fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want);
    }

    /// Reads lines until end of stream; returns them.
    pub fn until_eof(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(l) = self.try_line() {
            lines.push(l);
        }
        lines
    }

    /// Checks that the server closed the connection after exactly `want` more lines.
    pub fn expect_close(&mut self, want: &[&str]) {
        assert_eq!(self.until_eof(), want);
    }

    /// Reads a multi-line response: the `+OK` line and the items up to the `.`.
    pub fn multiline(&mut self) -> (String, Vec<String>) {
        let first = self.line();
        let mut items = Vec::new();
        loop {
            let l = self.line();
            if l == "." {
                return (first, items);
            }
            items.push(l);
        }
    }

    /// True if nothing at all arrives before the server answers a `ping` sent now: a way to
    /// show that no line is pending without waiting for time to pass.
    pub fn nothing_pending(&mut self) -> bool {
        self.send("ping probe");
        self.line() == "+OK pong probe"
    }

    /// Like [`Client::nothing_pending`], but answers any server `ping <token>` that comes
    /// first with `+OK pong <token>` (for servers started with a short `--ping-interval`).
    pub fn nothing_pending_but_pings(&mut self) -> bool {
        self.send("ping probe");
        loop {
            let l = self.line();
            if l == "+OK pong probe" {
                return true;
            }
            match l.strip_prefix("ping ") {
                Some(token) => {
                    let pong = format!("+OK pong {token}");
                    self.send(&pong);
                }
                None => return false,
            }
        }
    }

    /// Reads the next line and checks that it starts with `prefix`; returns it.
    pub fn expect_prefix(&mut self, prefix: &str) -> String {
        let got = self.line();
        assert!(
            got.starts_with(prefix),
            "expected a line starting with {prefix:?}, got {got:?}"
        );
        got
    }

    /// Reads the greeting.
    pub fn greeted(mut self) -> Client {
        self.expect(GREETING);
        self
    }

    /// Reads whatever bytes remain until end of stream.
    pub fn drain(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        let _ = self.reader.read_to_end(&mut rest);
        rest
    }
}

/// `from` floods `to` with 420-byte `chatm` lines (100 per write, with `pause` between
/// writes to set a rate) until `to` is dropped, reading `from`'s replies meanwhile so that
/// they never pile up. Returns once every reply is read: all are `+OK message relayed`
/// until the first `-ERR [NO-SUCH] no such user <to>`, which all later ones are.
pub fn flood_until_dropped(from: &mut Client, from_nick: &str, to: &str, pause: Option<Duration>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut out = from.writer();
    let stop = Arc::new(AtomicBool::new(false));
    let chunk = format!("chatm {from_nick} {to} {}\r\n", "x".repeat(400)).repeat(100);
    let flood = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut sent = 0usize;
            while !stop.load(Ordering::SeqCst) {
                out.write_all(chunk.as_bytes()).expect("flood");
                sent += 100;
                if let Some(pause) = pause {
                    // Sets a rate; it synchronises nothing.
                    thread::sleep(pause);
                }
            }
            sent
        })
    };
    let gone = format!("-ERR [NO-SUCH] no such user {to}");
    let mut read = 0usize;
    loop {
        let line = from.line();
        read += 1;
        if line == gone {
            break;
        }
        assert_eq!(line, "+OK message relayed");
    }
    stop.store(true, Ordering::SeqCst);
    let sent = flood.join().expect("flood thread");
    for _ in read..sent {
        let line = from.line();
        assert!(line == "+OK message relayed" || line == gone, "{line}");
    }
}

/// Reads CRLF lines from `stream` until end of stream or any error (a reset, a cut),
/// calling `each` on every complete line; stops early when `each` returns false. Returns
/// whether the stream ended cleanly (end of stream rather than an error) and any bytes of
/// an unfinished last line. For clients whose connection may legitimately be cut.
pub fn read_lines_lenient(
    stream: TcpStream,
    mut each: impl FnMut(&str) -> bool,
) -> (bool, Vec<u8>) {
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => return (true, buf),
            Ok(_) if buf.ends_with(b"\r\n") => {
                let line = String::from_utf8_lossy(&buf[..buf.len() - 2]).into_owned();
                if !each(&line) {
                    return (true, Vec::new());
                }
            }
            Ok(_) => return (true, buf),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                assert!(
                    !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                    "no line within {WAIT:?}"
                );
                return (false, buf);
            }
        }
    }
}

/// Any connection's close line (not the listener's): for counting closes with
/// [`Server::wait_log_count`].
pub fn any_conn_closed(l: &str) -> bool {
    l.contains("conn=") && l.contains(" -> CLOSED on close")
}

// ---- values without an event: the server's /proc entries ----------------------------------

/// Waits (polling, with a short pause, within [`PROC_WAIT`]) until `probe` returns `Some`.
/// Only for values that have no event, such as `/proc` counters.
pub fn poll_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PROC_WAIT;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

// --- Resume (§5.7, §5.8): holds and mailboxes -------------------------------------------

/// 40 bytes of `c`: `chatm bob <to> ` + this + CRLF is 58 bytes for a five-letter name.
pub fn x40(c: char) -> String {
    c.to_string().repeat(40)
}

/// Waits until the departure of the client `peer` has left its name held (§5.7), and
/// returns the hold's log line (with its mailbox counts).
pub fn wait_held(server: &Server, peer: &str, name: &str) -> String {
    server.wait_peer_log(peer, &format!("name {name} held for "))
}

/// `c`, named `name`, leaves by `cquit`; returns once its name is held, with the hold's
/// log line.
pub fn leave(server: &Server, c: Client, name: &str) -> String {
    let peer = c.peer();
    server.quit(c);
    wait_held(server, &peer, name)
}

/// A client from `ip` registers `name` and leaves: returns once the name is held, with
/// the hold's log line.
pub fn hold_from(server: &Server, ip: &str, name: &str) -> String {
    let c = server.register_from(ip, name);
    leave(server, c, name)
}

/// [`hold_from`] 127.0.0.1.
pub fn hold(server: &Server, name: &str) -> String {
    hold_from(server, "127.0.0.1", name)
}

/// Connects from `ip` and sends `uname name`; the greeting is read.
pub fn come_back_from(server: &Server, ip: &str, name: &str) -> Client {
    let mut c = server.connect_from(ip).greeted();
    c.send(&format!("uname {name}"));
    c
}

/// [`come_back_from`] 127.0.0.1.
pub fn come_back(server: &Server, name: &str) -> Client {
    come_back_from(server, "127.0.0.1", name)
}

/// A numeric field of `/proc/<pid>/status` (`Threads`, `VmRSS` in kB, ...).
pub fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Does the process catch signal `number` (bit `number - 1` of `SigCgt` in
/// `/proc/<pid>/status`)?
fn signal_caught(pid: u32, number: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or_else(|| panic!("no SigCgt in /proc/{pid}/status"));
    mask & (1 << (number - 1)) != 0
}

/// The names of the process's threads (`/proc/<pid>/task/*/comm`).
pub fn thread_names(pid: u32) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim_end().to_string())
        .collect()
}

/// Where the process's thread named `name` waits in the kernel (`/proc/<pid>/task/*/wchan`:
/// `inet_csk_accept`, `hrtimer_nanosleep`, ...; `0` while it runs), if there is one.
pub fn thread_wchan(pid: u32, name: &str) -> Option<String> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    dir.filter_map(|e| e.ok().map(|e| e.path()))
        .find(|t| std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim_end() == name))
        .and_then(|t| std::fs::read_to_string(t.join("wchan")).ok())
}

/// How many descriptors the process has open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read fd dir")
        .count()
}
