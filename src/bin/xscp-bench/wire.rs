//! The bench's side of the wire: a line buffer that splits in place, connecting and
//! registering, nicknames, and reading and writing the numbers in message texts.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use xscp::protocol::reply;

/// A read buffer that yields complete lines in place (no allocation per line).
pub struct LineBuf {
    pub buf: Box<[u8]>,
    pub start: usize,
    pub end: usize,
}

impl LineBuf {
    pub fn new(cap: usize) -> LineBuf {
        LineBuf {
            buf: vec![0; cap.max(1024)].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// One `read` into the free space. `Ok(0)` is end of stream.
    pub fn fill(&mut self, r: &mut impl Read) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < 1024 {
            if self.start == 0 {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    "line longer than the read buffer",
                ));
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = r.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// The next complete line, without its LF or CRLF.
    pub fn next_line(&mut self) -> Option<&[u8]> {
        let s = self.start;
        let i = find_byte(&self.buf[s..self.end], b'\n')?;
        self.start = s + i + 1;
        let line = &self.buf[s..s + i];
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

/// The first `needle` in `hay`, eight bytes at a time (the classic "has zero byte" test:
/// the lowest flagged byte is always a true match).
pub fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let rep = LO * u64::from(needle);
    let words = hay.chunks_exact(8);
    let tail = words.remainder();
    for (k, w) in words.enumerate() {
        let Ok(w) = <[u8; 8]>::try_from(w) else { break };
        let x = u64::from_le_bytes(w) ^ rep;
        let t = x.wrapping_sub(LO) & !x & HI;
        if t != 0 {
            return Some(k * 8 + (t.trailing_zeros() / 8) as usize);
        }
    }
    let base = hay.len() - tail.len();
    tail.iter().position(|&b| b == needle).map(|p| base + p)
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Reads one line (blocking, with the socket's read timeout), for the handshakes.
pub fn read_line(stream: &mut TcpStream, lb: &mut LineBuf) -> Result<String, String> {
    loop {
        if let Some(l) = lb.next_line() {
            return Ok(String::from_utf8_lossy(l).into_owned());
        }
        match lb.fill(stream) {
            Ok(0) => return Err("server closed the connection".into()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err("no answer from the server in time".into()),
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
}

pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_nodelay(true)
        .and_then(|()| s.set_read_timeout(Some(timeout)))
        .map_err(|e| format!("socket options: {e}"))?;
    Ok(s)
}

pub fn expect_greeting(stream: &mut TcpStream, lb: &mut LineBuf) -> Result<(), String> {
    let l = read_line(stream, lb).map_err(|e| format!("greeting: {e}"))?;
    if l.starts_with(reply::GREETING.trim_end()) {
        Ok(())
    } else {
        Err(format!("unexpected greeting: {l}"))
    }
}

pub fn send_uname(stream: &mut TcpStream, name: &str) -> Result<(), String> {
    stream
        .write_all(format!("uname {name}\r\n").as_bytes())
        .map_err(|e| format!("uname {name}: write failed: {e}"))
}

pub fn expect_registered(
    stream: &mut TcpStream,
    lb: &mut LineBuf,
    name: &str,
) -> Result<(), String> {
    let l = read_line(stream, lb).map_err(|e| format!("uname {name}: {e}"))?;
    if registered_alone(&l, name) {
        Ok(())
    } else {
        Err(format!("uname {name} refused: {l}"))
    }
}

/// Whether `line` registers `name` with nothing to read after it: `+OK you are`, or a
/// welcome back whose mailbox holds nothing (a replay would follow it otherwise).
pub fn registered_alone(line: &str, name: &str) -> bool {
    matches!(parse_welcome(line, name), Some(None | Some((0, _))))
}

/// The answer to `uname <name>`: `None` if it is not a welcome;
/// `Some(None)` for `+OK you are <name>`; `Some(Some((held, lost)))` for `+OK welcome back
/// <name>` (with `(<n> held, <m> lost)` or without, which is none of either).
pub fn parse_welcome(line: &str, name: &str) -> Option<Option<(u64, u64)>> {
    let rest = line.strip_prefix("+OK ")?;
    if rest.strip_prefix("you are ") == Some(name) {
        return Some(None);
    }
    let rest = rest.strip_prefix("welcome back ")?.strip_prefix(name)?;
    if rest.is_empty() {
        return Some(Some((0, 0)));
    }
    let counts = rest.strip_prefix(" (")?.strip_suffix(" lost)")?;
    let (held, lost) = counts.split_once(" held, ")?;
    Some(Some((held.parse().ok()?, lost.parse().ok()?)))
}

/// Connects, reads the greeting, registers `name`. The socket keeps `timeout` as its read
/// timeout.
pub fn connect_registered(
    addr: SocketAddr,
    name: &str,
    timeout: Duration,
    bufsize: usize,
) -> Result<(TcpStream, LineBuf), String> {
    let mut s = connect(addr, timeout)?;
    let mut lb = LineBuf::new(bufsize);
    expect_greeting(&mut s, &mut lb)?;
    send_uname(&mut s, name)?;
    expect_registered(&mut s, &mut lb, name)?;
    Ok((s, lb))
}

/// Appends `+OK pong <token>`, the answer to the server's `ping <token>`.
pub fn push_pong(out: &mut Vec<u8>, token: &[u8]) {
    out.extend_from_slice(b"+OK pong ");
    out.extend_from_slice(token);
    out.extend_from_slice(b"\r\n");
}

/// Appends `chatr <sender> <recipient>`, the receipt for a `chatm` from `sender`.
pub fn push_receipt(out: &mut Vec<u8>, sender: &[u8], recipient: &[u8]) {
    out.extend_from_slice(b"chatr ");
    out.extend_from_slice(sender);
    out.push(b' ');
    out.extend_from_slice(recipient);
    out.extend_from_slice(b"\r\n");
}

/// A short tag that keeps this run's nicknames apart from other runs' (4 base-36 chars).
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let v = (u64::from(std::process::id()) * 7919 + nanos) % (36u64.pow(4));
    format!("{:0>4}", base36(v))
}

/// `v` in base 36 (digits and lower-case letters), for compact nicknames.
pub fn base36(mut v: u64) -> String {
    let mut out = Vec::with_capacity(13);
    loop {
        out.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

pub fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut v = 0u64;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some(v)
}

/// A relayed `chatm <sender> <recipient> [filler ]<seq> <ns>`: (sender, recipient, seq, ns).
pub fn parse_chatm(line: &[u8]) -> Option<(&[u8], &[u8], u64, u64)> {
    let rest = line.strip_prefix(b"chatm ")?;
    let a = rest.iter().position(|&b| b == b' ')?;
    let (sender, rest) = (&rest[..a], &rest[a + 1..]);
    let b = rest.iter().position(|&b| b == b' ')?;
    let (recipient, text) = (&rest[..b], &rest[b + 1..]);
    let last = text.iter().rposition(|&b| b == b' ')?;
    let ns = parse_u64(&text[last + 1..])?;
    let head = &text[..last];
    let prev = head.iter().rposition(|&b| b == b' ').map_or(0, |p| p + 1);
    let seq = parse_u64(&head[prev..])?;
    Some((sender, recipient, seq, ns))
}

/// The number after the last `x` of a bench nickname (`s1a2bx17` -> 17).
pub fn name_index(name: &[u8]) -> Option<usize> {
    let x = name.iter().rposition(|&b| b == b'x')?;
    usize::try_from(parse_u64(&name[x + 1..])?).ok()
}

/// A line for an error message: lossy, escaped, at most 100 characters.
pub fn show(line: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(line)
        .chars()
        .flat_map(char::escape_debug)
        .collect();
    if s.chars().count() > 100 {
        let cut: String = s.chars().take(100).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// `write!` into a byte vector.
pub struct StrBuf<'a>(pub &'a mut Vec<u8>);

impl std::fmt::Write for StrBuf<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welcome_lines() {
        let line = |reply: String| reply.trim_end().to_string();
        assert_eq!(
            parse_welcome(&line(reply::you_are("bob")), "bob"),
            Some(None)
        );
        assert_eq!(
            parse_welcome(&line(reply::welcome_back("bob", 0, 0)), "bob"),
            Some(Some((0, 0)))
        );
        assert_eq!(
            parse_welcome(&line(reply::welcome_back("bob", 12, 3)), "bob"),
            Some(Some((12, 3)))
        );
        assert!(registered_alone(
            &line(reply::welcome_back("bob", 0, 3)),
            "bob"
        ));
        assert!(!registered_alone(
            &line(reply::welcome_back("bob", 1, 0)),
            "bob"
        ));
        assert_eq!(parse_welcome("+OK welcome back bobby", "bob"), None);
        assert_eq!(
            parse_welcome("+OK welcome back bob (x held, 3 lost)", "bob"),
            None
        );
        assert_eq!(parse_welcome("+OK welcome back bob (1 held)", "bob"), None);
        assert_eq!(
            parse_welcome(
                "-ERR [IN-USE] bob is already taken by another client",
                "bob"
            ),
            None
        );
    }

    #[test]
    fn find_byte_matches_position() {
        let hay: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
        for needle in [0u8, 1, 10, 13, 32, 128, 250, 255] {
            for start in 0..20 {
                let h = &hay[start..];
                assert_eq!(
                    find_byte(h, needle),
                    h.iter().position(|&b| b == needle),
                    "needle {needle} start {start}"
                );
            }
        }
        assert_eq!(find_byte(b"", b'\n'), None);
        assert_eq!(find_byte(b"\x0b\x0a", b'\n'), Some(1));
    }

    #[test]
    fn lines_are_split_in_place() {
        let mut lb = LineBuf::new(1024);
        let mut input: &[u8] = b"+OK a\r\nchatm s b 1 2\r\npart";
        assert!(lb.fill(&mut input).is_ok());
        assert_eq!(lb.next_line(), Some(&b"+OK a"[..]));
        assert_eq!(lb.next_line(), Some(&b"chatm s b 1 2"[..]));
        assert_eq!(lb.next_line(), None);
    }

    #[test]
    fn chatm_fields() {
        assert_eq!(
            parse_chatm(b"chatm sabcdx3 rabcdx3 17 123456"),
            Some((&b"sabcdx3"[..], &b"rabcdx3"[..], 17, 123456))
        );
        assert_eq!(
            parse_chatm(b"chatm b1x0 * xxxx 5 9"),
            Some((&b"b1x0"[..], &b"*"[..], 5, 9))
        );
        assert_eq!(parse_chatm(b"chatm a b hello"), None);
        assert_eq!(name_index(b"sab1x42"), Some(42));
        assert_eq!(name_index(b"sx1xx42"), Some(42));
        assert_eq!(base36(0), "0");
        assert_eq!(base36(36 * 36 - 1), "zz");
        assert_eq!(run_id().len(), 4);
        let mut v = Vec::new();
        push_u64(&mut v, 0);
        v.push(b' ');
        push_u64(&mut v, u64::MAX);
        assert_eq!(v, b"0 18446744073709551615");
    }
}
