//! One soak connection, with blocking reads and writes bounded by `--timeout`.

use std::io::{ErrorKind, Write};
use std::net::TcpStream;

use super::context::Soak;
use crate::wire::{LineBuf, connect, is_timeout, registered_alone, show};
use xscp::protocol::reply;

/// One soak connection, with blocking reads and writes bounded by `--timeout`.
pub struct SConn {
    pub s: TcpStream,
    pub lb: LineBuf,
    pub what: &'static str,
}

impl SConn {
    /// Connects and reads the greeting.
    pub fn open(ctx: &Soak, what: &'static str) -> Result<SConn, String> {
        let s = connect(ctx.opts.addr, ctx.opts.timeout).map_err(|e| format!("{what}: {e}"))?;
        s.set_write_timeout(Some(ctx.opts.timeout))
            .map_err(|e| format!("{what}: socket options: {e}"))?;
        let mut c = SConn {
            s,
            lb: LineBuf::new(4096),
            what,
        };
        let g = c.line(ctx)?;
        if !g.starts_with(reply::GREETING.trim_end()) {
            return Err(format!(
                "{what}: unexpected greeting: {}",
                show(g.as_bytes())
            ));
        }
        Ok(c)
    }

    /// Connects and registers `name`.
    pub fn registered(ctx: &Soak, what: &'static str, name: &str) -> Result<SConn, String> {
        let mut c = SConn::open(ctx, what)?;
        c.send(format!("uname {name}\r\n").as_bytes())?;
        let l = c.line(ctx)?;
        if registered_alone(&l, name) {
            Ok(c)
        } else {
            Err(format!("{what}: uname refused: {}", show(l.as_bytes())))
        }
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.s
            .write_all(bytes)
            .map_err(|e| format!("{}: write failed: {e}", self.what))
    }

    /// The next line that is not a chatter's broadcast.
    pub fn line(&mut self, ctx: &Soak) -> Result<String, String> {
        loop {
            while let Some(l) = self.lb.next_line() {
                if !ctx.is_broadcast(l) {
                    return Ok(String::from_utf8_lossy(l).into_owned());
                }
            }
            match self.lb.fill(&mut self.s) {
                Ok(0) => return Err(format!("{}: server closed the connection", self.what)),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    return Err(format!("{}: no answer from the server in time", self.what));
                }
                Err(e) => return Err(format!("{}: read failed: {e}", self.what)),
            }
        }
    }

    /// The next line must be `want`.
    pub fn expect(&mut self, ctx: &Soak, want: &str) -> Result<(), String> {
        let l = self.line(ctx)?;
        if l == want {
            Ok(())
        } else {
            Err(format!(
                "{}: expected '{}', got '{}'",
                self.what,
                show(want.as_bytes()),
                show(l.as_bytes())
            ))
        }
    }

    /// A multi-line response's items, up to its `.`.
    pub fn items(&mut self, ctx: &Soak) -> Result<Vec<String>, String> {
        let mut v = Vec::new();
        loop {
            let l = self.line(ctx)?;
            if l == "." {
                return Ok(v);
            }
            v.push(l);
        }
    }

    /// The server's orderly close: end of stream, nothing but broadcasts before it, and no
    /// reset.
    pub fn expect_close(&mut self, ctx: &Soak) -> Result<(), String> {
        loop {
            while let Some(l) = self.lb.next_line() {
                if !ctx.is_broadcast(l) {
                    return Err(format!(
                        "{}: unexpected line before the close: '{}'",
                        self.what,
                        show(l)
                    ));
                }
            }
            match self.lb.fill(&mut self.s) {
                Ok(0) if self.lb.start != self.lb.end => {
                    return Err(format!("{}: stream ended inside a line", self.what));
                }
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    return Err(format!("{}: the server did not close in time", self.what));
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                    return Err(format!(
                        "{}: connection reset instead of an orderly close",
                        self.what
                    ));
                }
                Err(e) => return Err(format!("{}: read failed: {e}", self.what)),
            }
        }
    }

    /// `cquit`, its answer, the orderly close.
    pub fn quit(mut self, ctx: &Soak) -> Result<(), String> {
        self.send(b"cquit\r\n")?;
        self.expect(ctx, reply::QUIT_OK.trim_end())?;
        self.expect_close(ctx)
    }
}
