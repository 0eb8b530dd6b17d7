//! A connection's outgoing side as the rest of the server sees it: a byte queue for the
//! writer thread with a budget (`--sendq`), and the means to end the connection.
//!
//! The hub holds one [`Outbox`] per client and never blocks on it: a push appends bytes
//! under a short lock, and a push past the budget is refused so that the hub can drop the
//! slow consumer instead of waiting for it.
//!
//! The writer of the connection (`xscp-write-<id>`) takes everything
//! queued at once and writes it in one system call, so whatever piled up while it wrote
//! leaves together; after the close it sends FIN (§7, orderly close). It runs on a pooled
//! thread while the client has output, and gives its thread back after [`WRITER_IDLE`]
//! without any: an idle client then costs one thread (its reader), not two. The next push
//! starts it again. A write that fails or times out (`--ping-timeout`: the client's window
//! stays closed) ends the connection: the cause is recorded and the socket cut, which wakes
//! the reader.

use std::io::{ErrorKind, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::pool::{Job, Pool};
use super::shared::ConnShared;
use crate::hub::{Output, Overflow, Wake};
use crate::protocol::cause::Cause;
use crate::protocol::reply::escape;

/// Queued bytes past which a sleeping writer is woken at once rather than at the end of
/// the hub's burst.
pub const WAKE_BYTES: usize = 16 * 1024;

/// How long a writer waits for output before it gives its thread back.
pub const WRITER_IDLE: Duration = Duration::from_millis(50);

/// A batch larger than this is not kept for reuse once written.
const KEEP: usize = 64 * 1024;

/// What is waiting to be written, and who is writing it.
#[derive(Debug, Default)]
struct Queue {
    /// Bytes waiting for the writer.
    buf: Vec<u8>,
    /// Bytes the writer has taken and not yet written (they still count against `--sendq`).
    writing: usize,
    /// A close follows `buf`: nothing more is accepted.
    closing: bool,
    /// A writer thread owns the queue.
    running: bool,
    /// That writer waits for output (on `ready`).
    idle: bool,
    /// The close is done: FIN sent, or the connection failed.
    done: bool,
    /// A push left the writer to be woken later ([`Outbox::queue`]).
    wake_pending: bool,
}

/// The state behind an [`Outbox`], shared with its writer.
#[derive(Debug)]
struct Inner {
    queue: Mutex<Queue>,
    /// Output arrived for an idle writer.
    ready: Condvar,
    /// The close is done.
    finished: Condvar,
    shared: Arc<ConnShared>,
    tag: String,
    name: String,
    pool: Arc<Pool>,
    sendq: usize,
}

/// The sending end of one connection: a byte queue bounded by `--sendq`, drained by a
/// writer thread that runs only while there is output (see the module documentation).
#[derive(Clone, Debug)]
pub struct Outbox(Arc<Inner>);

impl Outbox {
    /// The outbox of connection `id`, writing to `shared`'s socket on threads of `pool`.
    /// Nothing runs until the first push.
    pub fn new(
        id: u64,
        tag: String,
        shared: Arc<ConnShared>,
        pool: Arc<Pool>,
        sendq: usize,
        write_timeout: Duration,
    ) -> Outbox {
        if let Err(e) = shared.socket().set_write_timeout(Some(write_timeout)) {
            log::warn!("{tag} cannot set write timeout: {e}");
        }
        Outbox(Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            finished: Condvar::new(),
            shared,
            tag,
            name: format!("xscp-write-{id}"),
            pool,
            sendq,
        }))
    }

    /// Queues `line` for the writer and wakes it. Refused once more than `--sendq` bytes
    /// would be waiting. Output to a connection that is closing is dropped silently: its
    /// reader reports the end.
    pub fn push(&self, line: &[u8]) -> Result<(), Overflow> {
        if self.queue(line)? != Wake::No {
            self.wake_now();
        }
        Ok(())
    }

    /// Waits until the writer has closed (FIN sent) or failed. Every way a connection
    /// ends queues a close (`finish` or `abort`), so this returns.
    pub fn wait_done(&self) {
        let mut q = self.0.queue.lock();
        while !q.done {
            self.0.finished.wait(&mut q);
        }
    }

    /// Gets the queue drained: signals the idle writer, or starts one.
    fn wake(&self, mut q: MutexGuard<'_, Queue>) {
        if q.idle {
            self.0.ready.notify_one();
            return;
        }
        if q.running {
            return;
        }
        q.running = true;
        drop(q);
        let inner = Arc::clone(&self.0);
        let job = Job::new(self.0.name.clone(), move || inner.drain());
        if let Err((e, _job)) = self.0.pool.run(job) {
            log::error!("{} cannot start its writer thread: {e}", self.0.tag);
            self.0
                .shared
                .set_end(Cause::Io("cannot start a writer thread".into()));
            self.0.shared.cut();
            let mut q = self.0.queue.lock();
            q.running = false;
            q.closing = true;
            q.done = true;
            self.0.finished.notify_all();
        }
    }
}

impl Output for Outbox {
    /// Queues `line` like [`Outbox::push`] but may leave the writer asleep: the hub wakes
    /// each writer once per burst of messages instead of once per line, which saves a
    /// context switch per relayed message. Says whether and when the caller must call
    /// [`Output::wake_now`]: once the queue holds [`WAKE_BYTES`], at once.
    fn queue(&self, line: &[u8]) -> Result<Wake, Overflow> {
        let mut q = self.0.queue.lock();
        if q.closing {
            return Ok(Wake::No);
        }
        if q.buf.len() + q.writing + line.len() > self.0.sendq {
            return Err(Overflow);
        }
        q.buf.extend_from_slice(line);
        if q.running && !q.idle {
            return Ok(Wake::No); // The writer is busy and will find it.
        }
        if q.buf.len() >= WAKE_BYTES {
            return Ok(Wake::Now);
        }
        if q.wake_pending {
            return Ok(Wake::No);
        }
        q.wake_pending = true;
        Ok(Wake::Later)
    }

    /// Wakes the writer for what [`Output::queue`] left.
    fn wake_now(&self) {
        let mut q = self.0.queue.lock();
        q.wake_pending = false;
        self.wake(q);
    }

    /// Queues the last lines and the close (FIN after them). Not subject to the budget:
    /// they are few and the connection ends anyway.
    fn finish(&self, lines: &str) {
        let mut q = self.0.queue.lock();
        if q.closing {
            return;
        }
        q.buf.extend_from_slice(lines.as_bytes());
        q.closing = true;
        self.wake(q);
    }

    /// Ends the connection at once for `cause` (a slow consumer): the socket is cut, so
    /// nothing more can be written, and whatever waits is dropped.
    fn abort(&self, cause: Cause) {
        self.0.shared.set_end(cause);
        self.0.shared.cut();
        let mut q = self.0.queue.lock();
        q.buf = Vec::new();
        q.closing = true;
        self.wake(q);
    }

    /// Records `cause` as the reason the connection ends, for its reader to log.
    fn set_end(&self, cause: Cause) {
        self.0.shared.set_end(cause);
    }
}

impl Inner {
    /// The writer (`xscp-write-<id>`): drains the queue until the close, an error, or
    /// [`WRITER_IDLE`] without output.
    fn drain(&self) {
        let mut batch: Vec<u8> = Vec::new();
        let mut q = self.queue.lock();
        loop {
            if !q.buf.is_empty() {
                // Take everything queued; the hub goes on filling the (reused) other buffer.
                std::mem::swap(&mut q.buf, &mut batch);
                q.writing = batch.len();
                let written = MutexGuard::unlocked(&mut q, || self.write(&batch));
                q.writing = 0;
                if written.is_err() {
                    q.buf = Vec::new();
                    return self.finish(q);
                }
                batch.clear();
                if batch.capacity() > KEEP {
                    batch = Vec::new();
                }
                continue;
            }
            if q.closing {
                // FIN: the client reads our last line, then end of stream.
                let _ = self.shared.socket().shutdown(Shutdown::Write);
                return self.finish(q);
            }
            q.idle = true;
            let timed_out = self.ready.wait_for(&mut q, WRITER_IDLE).timed_out();
            q.idle = false;
            if timed_out && q.buf.is_empty() && !q.closing {
                // Idle: give the thread back, and the memory of the buffer.
                q.running = false;
                q.buf = Vec::new();
                return;
            }
        }
    }

    fn finish(&self, mut q: MutexGuard<'_, Queue>) {
        q.running = false;
        q.done = true;
        self.finished.notify_all();
    }

    /// Writes one batch; on failure records why and cuts the connection.
    fn write(&self, batch: &[u8]) -> Result<(), ()> {
        if log::log_enabled!(log::Level::Trace) {
            for line in batch.split_inclusive(|&b| b == b'\n') {
                log::trace!("{} -> {}", self.tag, escape(line.trim_ascii_end()));
            }
        }
        let mut socket = self.shared.socket();
        socket.write_all(batch).map_err(|e| {
            let cause = match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut => Cause::SlowConsumer,
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => Cause::Reset,
                _ => Cause::Io(e.to_string()),
            };
            log::debug!("{} write failed: {e}", self.tag);
            self.shared.set_end(cause);
            self.shared.cut();
        })
    }
}
