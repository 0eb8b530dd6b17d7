//! Helpers shared by `tests/faults.rs` and `tests/limits.rs` (each test crate declares
//! `mod common; mod support_faults;`). The harness in `tests/common` is another engineer's;
//! what it cannot do is here:
//!
//! - [`Proc`]: the harness's server started with environment variables or under a wrapper
//!   such as `prlimit` (`Server::spawn`).
//! - counting waits on the harness's log, waits on `/proc` values, and a lenient line
//!   reader for clients whose connection may be cut.
//!
//! Every wait has a generous bound and waits for the event itself; only `/proc` values,
//! which have no event, are polled (with a short pause, within a bound).

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, ErrorKind};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{Client, Server, WAIT};

/// The greeting every admitted client gets first.
pub const GREETING: &str = "+OK xscp/1 ready";

/// The answer to `cquit`.
pub const BYE: &str = "+OK terminating tasks and disconnecting";

/// A connection's own close line: `conn=.. peer=<tag>.. -> CLOSED on close`.
pub fn closed_line(peer_tag: &str) -> impl Fn(&str) -> bool + '_ {
    move |l: &str| l.contains(peer_tag) && l.contains(" -> CLOSED on close")
}

/// Any connection's close line (not the listener's).
pub fn any_conn_closed(l: &str) -> bool {
    l.contains("conn=") && l.contains(" -> CLOSED on close")
}

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
    client.reset();
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

/// The harness's server; it can start under a wrapper and with environment variables.
pub type Proc = Server;
