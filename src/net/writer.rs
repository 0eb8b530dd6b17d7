//! The writer thread (`xscp-write-<id>`): takes everything queued for one client and writes
//! it with as few syscalls as possible; on [`Out::Close`] it sends FIN (§7, orderly close).
//!
//! A write that fails or times out (`--ping-timeout`: the client's window stays closed)
//! ends the connection: the cause is recorded and the socket cut, which wakes the reader.

use std::io::{ErrorKind, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;

use super::outbox::{ConnShared, Out};
use crate::protocol::reply::escape;
use crate::protocol::session::Cause;

/// Most bytes gathered into one write.
const BATCH: usize = 64 * 1024;

/// Runs the writer until the close, an error, or the last sender is gone.
pub fn run(rx: Receiver<Out>, shared: Arc<ConnShared>, tag: String, write_timeout: Duration) {
    let mut socket = shared.socket();
    if let Err(e) = socket.set_write_timeout(Some(write_timeout)) {
        log::warn!("{tag} cannot set write timeout: {e}");
    }
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    while let Ok(first) = rx.recv() {
        let mut close = matches!(first, Out::Close);
        buf.extend_from_slice(first.bytes());
        while !close && buf.len() < BATCH {
            match rx.try_recv() {
                Ok(Out::Close) => close = true,
                Ok(out) => buf.extend_from_slice(out.bytes()),
                Err(_) => break,
            }
        }
        if !buf.is_empty() {
            if log::log_enabled!(log::Level::Trace) {
                for line in buf.split_inclusive(|&b| b == b'\n') {
                    log::trace!("{tag} -> {}", escape(line.trim_ascii_end()));
                }
            }
            if let Err(e) = socket.write_all(&buf) {
                let cause = match e.kind() {
                    ErrorKind::WouldBlock | ErrorKind::TimedOut => Cause::SlowConsumer,
                    ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => Cause::Reset,
                    _ => Cause::Io(e.to_string()),
                };
                log::debug!("{tag} write failed: {e}");
                shared.set_end(cause);
                shared.cut();
                return;
            }
            shared.written(buf.len());
            buf.clear();
            if buf.capacity() > BATCH {
                buf.shrink_to(4096);
            }
        }
        if close {
            // FIN: the client reads our last line, then end of stream.
            let _ = socket.shutdown(Shutdown::Write);
            return;
        }
    }
}
