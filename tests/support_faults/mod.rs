//! Helpers shared by `tests/faults.rs` and `tests/limits.rs` (each test crate declares
//! `mod common; mod support_faults;`). The harness in `tests/common` is another engineer's;
//! what it cannot do is here:
//!
//! - [`Proc`]: starts `xscpd` itself, with environment variables or under a wrapper such as
//!   `prlimit`, and collects its log the way the harness does (but byte-exact, so that a
//!   log line that is not UTF-8 is seen instead of ending the collection).
//! - counting waits on the harness's log, waits on `/proc` values, and a lenient line
//!   reader for clients whose connection may be cut.
//!
//! Every wait has a generous bound and waits for the event itself; only `/proc` values,
//! which have no event, are polled (with a short pause, within a bound).

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, ErrorKind};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::common::{Client, Server, WAIT};

/// The greeting every admitted client gets first.
pub const GREETING: &str = "+OK xscp/1 ready";

/// The bound for waits on `/proc` values that depend on the pool's idle timeout (5 s).
pub const PROC_WAIT: Duration = Duration::from_secs(30);

/// How a connection appears in the log: `peer=<its address> ` (with the space, so that
/// port 4000 does not match port 40001).
pub fn tag(client: &Client) -> String {
    format!(
        "peer={} ",
        client.stream().local_addr().expect("local addr")
    )
}

/// Resets the connection: SO_LINGER 0, then close (RST instead of FIN).
pub fn reset(client: Client) {
    socket2::SockRef::from(client.stream())
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(client);
}

/// Waits until the harness's log holds `n` distinct lines matching `pred`. The lines counted
/// must be distinct (e.g. they name their connection), since equal lines count once.
pub fn wait_log_count(server: &Server, n: usize, pred: impl Fn(&str) -> bool) {
    let seen = RefCell::new(HashSet::new());
    server.wait_log(|l| {
        if pred(l) {
            seen.borrow_mut().insert(l.to_string());
        }
        seen.borrow().len() >= n
    });
}

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

/// Does `line` start with the timestamp every log line starts with
/// (`2026-11-22T12:01:28.178752194Z [`, RFC 3339 with a fraction of any length)?
pub fn starts_with_timestamp(line: &str) -> bool {
    let b = line.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < shape.len() + 3 {
        return false;
    }
    let date_ok = shape.iter().zip(b).all(|(&s, &c)| match s {
        b'd' => c.is_ascii_digit(),
        _ => c == s,
    });
    let mut i = shape.len();
    if b[i] == b'.' {
        i += 1;
        let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        i += digits;
    }
    let zone = if b[i] == b'Z' {
        1
    } else if matches!(b[i], b'+' | b'-') && b.len() > i + 6 {
        6
    } else {
        return false;
    };
    date_ok && b[i + zone..].starts_with(b" [")
}

#[derive(Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

/// An `xscpd` started by these tests rather than by the harness: with environment
/// variables, or under a wrapper command such as `prlimit`. The log is collected as the
/// harness collects it, except that a line that is not UTF-8 is kept (lossily converted,
/// so that it contains U+FFFD) instead of stopping the collection.
pub struct Proc {
    child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
    log: Arc<Log>,
}

impl Proc {
    /// Starts `wrapper... xscpd -l 127.0.0.1:0 -v args...` with `envs` added to the
    /// environment, and waits until it listens. The wrapper must exec the server (as
    /// `prlimit` does), so that the child's pid is the server's.
    pub fn spawn(wrapper: &[&str], args: &[&str], envs: &[(&str, &str)]) -> Proc {
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
                    Ok(0) | Err(_) => break,
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
        let mut proc = Proc {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            log,
        };
        let line = proc.wait_log(|l| l.contains("CLOSED -> LISTEN on bind_and_listen"));
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .expect("addr= in the listen line");
        proc.addr = addr.parse().expect("listen address");
        proc
    }

    /// Waits for a log line matching `pred` and returns it.
    pub fn wait_log(&self, pred: impl Fn(&str) -> bool) -> String {
        self.wait_log_count(1, &pred);
        self.log().into_iter().find(|l| pred(l)).expect("found")
    }

    /// Waits until `n` log lines match `pred`.
    pub fn wait_log_count(&self, n: usize, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + WAIT;
        let mut lines = self.log.lines.lock();
        loop {
            if lines.iter().filter(|l| pred(l)).count() >= n {
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

    /// A copy of the log so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lines.lock().clone()
    }

    /// Connects from 127.0.0.1.
    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Connects from another loopback address.
    pub fn connect_from(&self, ip: &str) -> Client {
        Client::connect_from(self.addr, ip.parse().unwrap())
    }

    /// Connects, reads the greeting and registers `nick`.
    pub fn register(&self, nick: &str) -> Client {
        let mut c = self.connect();
        c.expect(GREETING);
        c.send(&format!("uname {nick}"));
        c.expect(&format!("+OK you are {nick}"));
        c
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Has the server exited (without waiting)?
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
