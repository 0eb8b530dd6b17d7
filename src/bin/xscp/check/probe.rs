//! The probe before a run: is there an XSCP server at all (connect, greeting, `capa`),
//! and does the ping barrier that `quiet` steps rely on work? A non-XSCP endpoint (a
//! closed port, an HTTP server, a server that never greets) is reported in one line
//! within seconds instead of failing every transcript; a broken barrier is reported once
//! as the root cause of the transcripts that use it.

use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::lines::read_line;
use super::matching::{secs, shown, strip_terminator};

/// The longest wait for a greeting: a server greets at once, so this is generous, and it
/// keeps a server that never greets from costing more than seconds.
const GREETING_WAIT: Duration = Duration::from_secs(5);
/// After no greeting: how long whatever is there may take to answer `capa` (an HTTP
/// server says `400 Bad Request`), to name what was found.
const IDENTIFY_WAIT: Duration = Duration::from_secs(2);
/// The most lines of a `capa` list read.
const CAPA_LINES: usize = 1000;
/// The token of the probe's barrier.
pub const TOKEN: &str = "xscp-check-probe";

/// What the probe found at an address that greets like an XSCP server.
pub struct Found {
    /// `Some(what went wrong)` when `ping TOKEN` is not answered `+OK pong TOKEN`.
    pub broken_barrier: Option<String>,
    /// The items of its `capa` list, as sent (without their terminators).
    pub capa: Vec<String>,
}

/// The probe's connection: each read waits only for what is left of the time a whole line
/// may take, so that a server that trickles bytes without ending its line cannot keep
/// the probe reading.
struct Timed {
    stream: TcpStream,
    deadline: Instant,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(ErrorKind::TimedOut, "no whole line in time"));
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

type Reader = BufReader<Timed>;

/// The next line, read within `wait` as a whole.
fn line_within(r: &mut Reader, wait: Duration) -> io::Result<Option<Option<Vec<u8>>>> {
    line_by(r, Instant::now() + wait)
}

/// The next line, read by `deadline`.
fn line_by(r: &mut Reader, deadline: Instant) -> io::Result<Option<Option<Vec<u8>>>> {
    r.get_mut().deadline = deadline;
    read_line(r)
}

/// Connects and reads the greeting; `Err` says in one line what is there instead.
fn greeted(addr: SocketAddr, timeout: Duration) -> Result<Reader, String> {
    let s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let wait = timeout.min(GREETING_WAIT);
    s.set_write_timeout(Some(timeout))
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut r = BufReader::new(Timed {
        stream: s,
        deadline: Instant::now(),
    });
    match line_within(&mut r, wait) {
        Ok(Some(Some(l))) if l.starts_with(b"+OK") => Ok(r),
        Ok(Some(Some(l))) if l.starts_with(b"-ERR") => Err(format!(
            "{addr} refused the connection: {}",
            shown(strip_terminator(&l))
        )),
        Ok(Some(Some(l))) => Err(format!(
            "not an XSCP server at {addr}: its first line is {}, not a greeting +OK ...",
            shown(strip_terminator(&l))
        )),
        Ok(Some(None)) => Err(format!(
            "not an XSCP server at {addr}: its first line is longer than 8 KiB"
        )),
        Ok(None) => Err(format!("{addr} closed the connection without a greeting")),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Err(identify(r, addr, wait))
        }
        Err(e) => Err(format!("{addr}: connection broken before a greeting: {e}")),
    }
}

/// No greeting within `waited`: says so, with what `capa` brings out if anything.
fn identify(mut r: Reader, addr: SocketAddr, waited: Duration) -> String {
    let base = format!(
        "no greeting from {addr} within {}: not an XSCP server",
        secs(waited)
    );
    if r.get_mut().stream.write_all(b"capa\r\n").is_err() {
        return base;
    }
    match line_within(&mut r, IDENTIFY_WAIT) {
        Ok(Some(Some(l))) => format!(
            "{base} (to capa it answered {})",
            shown(strip_terminator(&l))
        ),
        _ => base,
    }
}

/// Sends `line` and reads the next line, within `timeout`, without its terminator.
fn ask(r: &mut Reader, line: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    r.get_mut()
        .stream
        .write_all(format!("{line}\r\n").as_bytes())
        .map_err(|e| format!("<cannot send: {e}>"))?;
    match line_within(r, timeout) {
        Ok(Some(Some(l))) => Ok(strip_terminator(&l).to_vec()),
        Ok(Some(None)) => Err("<a line longer than 8 KiB>".into()),
        Ok(None) => Err("<end of stream>".into()),
        Err(e) => Err(format!("<{e}>")),
    }
}

/// Probes `addr`: `Err` is the one line to print when it is no XSCP server.
pub fn probe(addr: SocketAddr, timeout: Duration) -> Result<Found, String> {
    let mut r = greeted(addr, timeout)?;
    let first = ask(&mut r, "capa", timeout)
        .map_err(|e| format!("{addr} greeted but did not answer capa: {e}"))?;
    if !first.starts_with(b"+OK") && !first.starts_with(b"-ERR") {
        return Err(format!(
            "not an XSCP server at {addr}: to capa it answered {}",
            shown(&first)
        ));
    }
    // The rest of the list, so that it does not stand before the barrier's answer (a
    // broken list is the capa transcripts' business, not the probe's), within `timeout`
    // as a whole.
    let mut capa = Vec::new();
    if first.starts_with(b"+OK") {
        let by = Instant::now() + timeout;
        for _ in 0..CAPA_LINES {
            match line_by(&mut r, by) {
                Ok(Some(Some(l))) if strip_terminator(&l) != b"." => {
                    capa.push(String::from_utf8_lossy(strip_terminator(&l)).into_owned());
                }
                _ => break,
            }
        }
    }
    let broken_barrier = match ask(&mut r, &format!("ping {TOKEN}"), timeout) {
        Ok(l) if l == format!("+OK pong {TOKEN}").as_bytes() => None,
        Ok(l) => Some(shown(&l)),
        Err(e) => Some(e),
    }
    .map(|got| {
        format!(
            "the ping barrier is broken: 'ping {TOKEN}' was answered {got}, \
             not '+OK pong {TOKEN}' (xscp(7) §5.2 ping)"
        )
    });
    let _ = r.get_mut().stream.write_all(b"cquit\r\n");
    Ok(Found {
        broken_barrier,
        capa,
    })
}
