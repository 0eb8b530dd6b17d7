//! The two reading threads: one reads standard input, one reads the socket, each feeding
//! the main loop's channel one line at a time, with a bound on a line's length; and the
//! connection itself.

use std::io::{self, BufRead, BufReader, ErrorKind};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crossbeam_channel::Sender;
use xscp::config::with_port;

/// The longest line accepted from the server. A conforming server never sends more than
/// 512 bytes with CRLF (xscp(7) §1); this bound only keeps a broken one from filling
/// memory.
pub const MAX_SERVER_LINE: usize = 8 * 1024;

/// The longest line accepted from standard input. Lines past 510 bytes are still sent (the
/// server's answer to them is worth seeing); this bound only keeps memory in check.
pub const MAX_INPUT_LINE: usize = 64 * 1024;

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves ADDR (see [`xscp::config::with_port`]).
pub fn resolve(addr: &str) -> io::Result<Vec<SocketAddr>> {
    let full = with_port(addr).map_err(|e| io::Error::new(ErrorKind::InvalidInput, e))?;
    Ok(full.to_socket_addrs()?.collect())
}

/// Connects to the first address of ADDR that answers.
pub fn connect(addr: &str) -> io::Result<TcpStream> {
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
pub enum Line {
    /// The line's bytes without its LF (a CR before it is still there).
    Complete(Vec<u8>),
    /// The line was longer than the bound; it was skipped up to its end.
    TooLong,
}

/// Reads up to and including the next LF (or end of stream), holding at most `max` bytes.
/// `None` at end of stream.
pub fn read_line_bounded<R: BufRead>(r: &mut R, max: usize) -> io::Result<Option<Line>> {
    Ok(read_line_ended(r, max)?.map(|(line, _)| line))
}

/// [`read_line_bounded`], and whether the line ended with its LF (`false`: the end of the
/// stream cut it off).
pub fn read_line_ended<R: BufRead>(r: &mut R, max: usize) -> io::Result<Option<(Line, bool)>> {
    let mut buf = Vec::new();
    let mut too_long = false;
    let mut any = false;
    let mut ended = false;
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
            ended = true;
            break;
        }
    }
    let line = if too_long {
        Line::TooLong
    } else {
        Line::Complete(buf)
    };
    Ok(Some((line, ended)))
}

/// What the standard-input thread reports.
#[derive(Debug)]
pub enum FromStdin {
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
pub enum FromServer {
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
/// side (xscp(7) §1), so one line here is one PDU there.
pub fn stdin_thread(tx: Sender<FromStdin>) {
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
pub fn socket_thread(stream: TcpStream, tx: Sender<FromServer>) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
