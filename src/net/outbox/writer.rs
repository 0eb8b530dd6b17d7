//! The writer of a connection (`xscp-write-<id>`), the writing the reader does itself
//! ([`super::Outbox::claim`]) and the hub's one-send offer of a queue nobody drains
//! ([`Inner::offer`]): everything queued is taken at once and written in as few system
//! calls as the socket allows; after the close the FIN follows (§7).

use std::io::{ErrorKind, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use parking_lot::MutexGuard;

use super::queue::{Drain, Inner, Queue, State};
use crate::protocol::cause::Cause;
use crate::sys;

/// The log target for socket writes: log them at TRACE with this target
/// (`log::trace!(target: SOCKET_WRITES_TARGET, ...)`) and they appear only from `-vvv` on.
pub const SOCKET_WRITES_TARGET: &str = "xscp::socket_writes";

/// How long the socket of a client with more than `--sendq` queued may take nothing before
/// the client is a slow consumer: the client is not reading.
pub const STALL: Duration = Duration::from_millis(100);

/// What one send that does not block did ([`Inner::send_once`]).
enum Sent {
    /// The socket took this many bytes.
    Took(usize),
    /// It takes nothing now: its buffer is full.
    NotNow,
    /// No send here can be made non-blocking (outside Linux): only a blocking write is.
    OnlyBlocking,
    /// The connection failed: the cause is recorded and the socket cut.
    Failed,
}

/// How long a writer waits for output before it gives its thread back.
pub const WRITER_IDLE: Duration = Duration::from_millis(50);

/// A batch larger than this is not kept for reuse once written.
const KEEP: usize = 64 * 1024;

impl Inner {
    /// The writer (`xscp-write-<id>`): drains the queue until the close, an error, or
    /// [`WRITER_IDLE`] without output.
    pub(super) fn drain(&self) {
        drop(self.drain_from(self.queue.lock(), Some(WRITER_IDLE)));
    }

    /// Drains the queue, which the calling thread owns ([`Drain::Writing`]), until the
    /// close, an error, or `idle` without output (`None`: as soon as it is empty).
    pub(super) fn drain_from<'a>(
        &'a self,
        mut q: MutexGuard<'a, Queue>,
        idle: Option<Duration>,
    ) -> MutexGuard<'a, Queue> {
        let mut batch: Vec<u8> = Vec::new();
        loop {
            if !q.buf.is_empty() {
                if self.write_batch(&mut q, &mut batch).is_err() {
                    return q;
                }
                continue;
            }
            if q.state.closing() {
                // FIN: the client reads our last line, then end of stream.
                let _ = self.shared.socket().shutdown(Shutdown::Write);
                self.finish(&mut q);
                return q;
            }
            let Some(idle) = idle else {
                q.state.set_drain(Drain::Nobody);
                return q;
            };
            q.state.set_drain(Drain::Waiting);
            let timed_out = self.ready.wait_for(&mut q, idle).timed_out();
            q.state.set_drain(Drain::Writing);
            if timed_out && q.buf.is_empty() && !q.state.closing() {
                // Idle: give the thread back, and the memory of the buffer.
                q.state.set_drain(Drain::Nobody);
                q.buf = Vec::new();
                return q;
            }
        }
    }

    /// Takes everything queued and writes it with the lock released (the hub goes on
    /// filling the reused other buffer). On failure the close is done and `Err` returned.
    pub(super) fn write_batch(
        &self,
        q: &mut MutexGuard<'_, Queue>,
        batch: &mut Vec<u8>,
    ) -> Result<(), ()> {
        std::mem::swap(&mut q.buf, batch);
        // Closing, nothing can be queued after this batch: the FIN leaves with its end.
        let last = q.state.closing();
        self.write_unlocked(q, batch, last)?;
        batch.clear();
        if batch.capacity() > KEEP {
            *batch = Vec::new();
        }
        Ok(())
    }

    /// Writes `bytes`, which count as queued meanwhile, with the lock released; the
    /// calling thread owns the queue ([`Drain::Writing`]). On failure the close is done
    /// and `Err` returned.
    pub(super) fn write_unlocked(
        &self,
        q: &mut MutexGuard<'_, Queue>,
        bytes: &[u8],
        last: bool,
    ) -> Result<(), ()> {
        q.writing = bytes.len();
        let written = MutexGuard::unlocked(q, || self.write(bytes, last));
        q.writing = 0;
        if q.waiters > 0 {
            self.room.notify_all();
        }
        if written.is_err() {
            self.failed_close(q);
            return Err(());
        }
        Ok(())
    }

    /// Offers the socket everything queued in one system call that does not block, on the
    /// calling thread; true if it took it all and nothing came meanwhile (not even the
    /// close, whose FIN is its drainer's to send). What it did not
    /// take stays queued ahead of anything that came meanwhile. The queue must be open
    /// and drained by nobody; so it is again on return, unless the write failed (then the
    /// close is done, and true returned: there is nothing left to write).
    pub(super) fn offer(&self, q: &mut MutexGuard<'_, Queue>) -> bool {
        q.state.set_drain(Drain::Writing);
        let mut batch = std::mem::take(&mut q.buf);
        q.writing = batch.len();
        let sent = MutexGuard::unlocked(q, || self.send_once(&batch, false));
        q.writing = 0;
        let taken = match sent {
            Sent::Took(n) => n,
            Sent::NotNow | Sent::OnlyBlocking => 0,
            Sent::Failed => {
                self.failed_close(q);
                return true;
            }
        };
        if q.waiters > 0 {
            self.room.notify_all();
        }
        q.state.set_drain(Drain::Nobody);
        if taken < batch.len() {
            // The rest goes first, before anything queued meanwhile.
            batch.drain(..taken);
            batch.extend_from_slice(&q.buf);
            q.buf = batch;
            return false;
        }
        q.buf.is_empty() && !q.state.closing()
    }

    /// A write failed or the connection was aborted (its cause is recorded, the socket
    /// cut): nothing more is written, and whoever waits for the close goes on.
    pub(super) fn failed_close(&self, q: &mut Queue) {
        q.buf = Vec::new();
        self.close(q);
        self.finish(q);
    }

    /// Offers the socket `bytes` in one send that does not block. `last`: the FIN follows
    /// (see [`Inner::write`]). A failure is recorded and the connection cut.
    fn send_once(&self, bytes: &[u8], last: bool) -> Sent {
        let sent = loop {
            match sys::send_now(self.shared.socket(), bytes, last) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                sent => break sent,
            }
        };
        match sent {
            Ok(n) => {
                log::trace!(
                    target: SOCKET_WRITES_TARGET,
                    "{} socket write: {n} of {} bytes",
                    self.tag,
                    bytes.len()
                );
                Sent::Took(n)
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => Sent::NotNow,
            Err(e) if e.kind() == ErrorKind::Unsupported => Sent::OnlyBlocking,
            Err(e) => {
                self.failed(&e);
                Sent::Failed
            }
        }
    }

    /// The queue takes nothing more (the close is queued, or the connection cut): a
    /// sender waiting for room behind this client, or its reader, goes on.
    pub(super) fn close(&self, q: &mut Queue) {
        q.state.close();
        q.behind = None;
        self.room.notify_all();
    }

    /// The close is done: whoever waits for it goes on.
    fn finish(&self, q: &mut Queue) {
        q.state = State::Done;
        self.finished.notify_all();
    }

    /// Writes one batch; on failure records why and cuts the connection. The socket is
    /// offered the bytes without blocking; while it takes nothing the writer waits for
    /// room, and the client is a slow consumer (§7) once more than `--sendq` is queued
    /// and the socket has taken nothing for [`STALL`], or once the socket has taken
    /// nothing for the write timeout (its window stayed closed). A client that reads,
    /// however slowly, is not timed out. `last`: the FIN follows, and leaves with the
    /// batch's end in one segment (a segment less per connection for the client to take
    /// in). What the socket took no longer counts as queued.
    fn write(&self, batch: &[u8], last: bool) -> Result<(), ()> {
        let socket = self.shared.socket();
        // The clock is read only once the socket takes nothing: a batch it takes at once
        // (nearly every one) costs no clock read. Both the write timeout and the stall
        // count from the first wait since the socket last took bytes; they differ in
        // that the stall drops a client only while more than `--sendq` is queued.
        let mut waiting_since: Option<Instant> = None;
        let mut rest = batch;
        while !rest.is_empty() {
            match self.send_once(rest, last) {
                Sent::Took(n) => {
                    rest = &rest[n..];
                    waiting_since = None;
                    if !rest.is_empty() {
                        let mut q = self.queue.lock();
                        q.writing = rest.len();
                        if q.waiters > 0 {
                            self.room.notify_all();
                        }
                    }
                    continue;
                }
                Sent::OnlyBlocking => {
                    log::trace!(
                        target: SOCKET_WRITES_TARGET,
                        "{} socket write: {} bytes",
                        self.tag,
                        rest.len()
                    );
                    // Where a send cannot be made non-blocking, the socket's own timeout
                    // bounds the blocking write (on Linux no write blocks: no system call
                    // per connection for it).
                    let mut socket = socket;
                    return socket
                        .set_write_timeout(Some(self.writers.write_timeout))
                        .and_then(|()| socket.write_all(rest))
                        .map_err(|e| self.failed(&e));
                }
                Sent::Failed => return Err(()),
                Sent::NotNow => {}
            }
            let now = Instant::now();
            let started = *waiting_since.get_or_insert(now);
            let queued = self.queue.lock().queued();
            if queued > self.writers.sendq && now.duration_since(started) >= STALL {
                log::warn!(
                    "{} {queued} bytes queued (over --sendq {}) and the socket takes no \
                     more: dropping slow consumer",
                    self.tag,
                    self.writers.sendq
                );
                self.shared.set_end(Cause::SlowConsumer);
                self.shared.cut();
                return Err(());
            }
            let left = (started + self.writers.write_timeout).saturating_duration_since(now);
            if left.is_zero() {
                self.failed(&std::io::Error::from(ErrorKind::TimedOut));
                return Err(());
            }
            sys::wait_writable(socket, left.min(STALL));
        }
        Ok(())
    }

    /// Records why a write failed and cuts the connection.
    fn failed(&self, e: &std::io::Error) {
        let cause = match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => Cause::SlowConsumer,
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => Cause::Reset,
            _ => Cause::Io(e.to_string()),
        };
        if cause == Cause::SlowConsumer {
            log::warn!(
                "{} write failed: {e} (blocked for the write timeout, {:?}): dropping slow \
                 consumer",
                self.tag,
                self.writers.write_timeout
            );
        } else {
            log::debug!("{} write failed: {e}", self.tag);
        }
        self.shared.set_end(cause);
        self.shared.cut();
    }
}
