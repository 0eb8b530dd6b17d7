//! Test harness: starts the real `xscpd` binary on `127.0.0.1:0`, collects its log, and
//! talks to it over real TCP sockets. Every wait has a generous upper bound and waits for
//! the event itself (a line, a log entry, end of stream), never for time to pass.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// The upper bound of every wait: generous, so a slow machine does not fail a test.
pub const WAIT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
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
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xscpd"));
        cmd.args(["-l", "127.0.0.1:0", "-v"]).args(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start xscpd");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Log::default());
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lines.lock().push(line);
                sink.grew.notify_all();
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

    /// Waits for a log line matching `pred` and returns it.
    pub fn wait_log(&self, pred: impl Fn(&str) -> bool) -> String {
        self.wait_log_from(0, pred)
    }

    /// Waits for a log line matching `pred` among the lines from index `from` on.
    pub fn wait_log_from(&self, from: usize, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let mut lines = self.log.lines.lock();
        loop {
            if let Some(l) = lines.iter().skip(from).find(|l| pred(l)) {
                return l.clone();
            }
            if self.log.grew.wait_until(&mut lines, deadline).timed_out() {
                panic!("log line not found; log:\n{}", lines.join("\n"));
            }
        }
    }

    /// How many log lines there are so far (a mark for `wait_log_from`).
    pub fn log_mark(&self) -> usize {
        self.log.lines.lock().len()
    }

    /// A copy of the log so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lines.lock().clone()
    }

    /// Connects from 127.0.0.1.
    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Connects from another loopback address (another "IP" for the server).
    pub fn connect_from(&self, ip: &str) -> Client {
        Client::connect_from(self.addr, ip.parse().unwrap())
    }

    /// Connects, reads the greeting and registers `nick`.
    pub fn register(&self, nick: &str) -> Client {
        let mut c = self.connect();
        c.expect("+OK xscp/1 ready");
        c.send(&format!("uname {nick}"));
        c.expect(&format!("+OK you are {nick}"));
        c
    }

    /// Sends a signal (`TERM`, `INT`, ...) to the server.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the server to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit");
            // Polling the child's status is the only portable way to wait with a bound.
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
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
}

impl Client {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// Connects to `addr` from the local address `ip`.
    pub fn connect_from(addr: SocketAddr, ip: IpAddr) -> Client {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket
            .bind(&SocketAddr::new(ip, 0).into())
            .expect("bind client address");
        socket.connect(&addr.into()).expect("connect");
        Client::from_stream(socket.into())
    }

    fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Client {
            reader: BufReader::new(stream),
        }
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

    /// Reads whatever bytes remain until end of stream.
    pub fn drain(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        let _ = self.reader.read_to_end(&mut rest);
        rest
    }
}
