//! The writer of one connection (`xscp-write-<id>`): takes everything queued for the client
//! and writes it in one system call; after the close it sends FIN (§7, orderly close).
//!
//! The writer runs on a pooled thread while the client has output, and gives its thread
//! back after [`WRITER_IDLE`] without any: an idle client then costs one thread (its
//! reader), not two. The next push starts it again.
//!
//! A write that fails or times out (`--ping-timeout`: the client's window stays closed)
//! ends the connection: the cause is recorded and the socket cut, which wakes the reader.

use std::io::{ErrorKind, Write};
use std::net::Shutdown;
use std::time::Duration;

use parking_lot::MutexGuard;

use super::outbox::{Inner, Queue};
use crate::protocol::cause::Cause;
use crate::protocol::reply::escape;

/// How long a writer waits for output before it gives its thread back.
pub const WRITER_IDLE: Duration = Duration::from_millis(50);

/// A batch larger than this is not kept for reuse once written.
const KEEP: usize = 64 * 1024;

/// Drains `inner`'s queue until the close, an error, or [`WRITER_IDLE`] without output.
pub(super) fn run(inner: &Inner) {
    let mut batch: Vec<u8> = Vec::new();
    let mut q = inner.queue.lock();
    loop {
        if !q.buf.is_empty() {
            // Take everything queued; the hub goes on filling the (reused) other buffer.
            std::mem::swap(&mut q.buf, &mut batch);
            q.writing = batch.len();
            let written = MutexGuard::unlocked(&mut q, || write(inner, &batch));
            q.writing = 0;
            if written.is_err() {
                q.buf = Vec::new();
                return finish(inner, q);
            }
            batch.clear();
            if batch.capacity() > KEEP {
                batch = Vec::new();
            }
            continue;
        }
        if q.closing {
            // FIN: the client reads our last line, then end of stream.
            let _ = inner.shared.socket().shutdown(Shutdown::Write);
            return finish(inner, q);
        }
        q.idle = true;
        let timed_out = inner.ready.wait_for(&mut q, WRITER_IDLE).timed_out();
        q.idle = false;
        if timed_out && q.buf.is_empty() && !q.closing {
            // Idle: give the thread back, and the memory of the buffer.
            q.running = false;
            q.buf = Vec::new();
            return;
        }
    }
}

fn finish(inner: &Inner, mut q: MutexGuard<'_, Queue>) {
    q.running = false;
    q.done = true;
    inner.finished.notify_all();
}

/// Writes one batch; on failure records why and cuts the connection.
fn write(inner: &Inner, batch: &[u8]) -> Result<(), ()> {
    if log::log_enabled!(log::Level::Trace) {
        for line in batch.split_inclusive(|&b| b == b'\n') {
            log::trace!("{} -> {}", inner.tag, escape(line.trim_ascii_end()));
        }
    }
    let mut socket = inner.shared.socket();
    socket.write_all(batch).map_err(|e| {
        let cause = match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => Cause::SlowConsumer,
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => Cause::Reset,
            _ => Cause::Io(e.to_string()),
        };
        log::debug!("{} write failed: {e}", inner.tag);
        inner.shared.set_end(cause);
        inner.shared.cut();
    })
}
