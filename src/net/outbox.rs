//! A connection's outgoing side as the rest of the server sees it: a byte queue for the
//! writer thread with a budget (`--sendq`), and the means to end the connection.
//!
//! The hub holds one [`Outbox`] per client and never blocks on it: a push appends bytes
//! under a short lock, and a push past the budget is refused so that the hub can drop the
//! slow consumer instead of waiting for it. The writer takes everything queued at once, so
//! whatever piled up while it wrote leaves in one system call.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::pool::{Job, Pool};
use super::shared::ConnShared;
use super::writer;
use crate::protocol::session::Cause;

/// What a caller of [`Outbox::queue`] must do about the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Nothing: it is awake, or a wake is already due.
    No,
    /// Call [`Outbox::wake_now`] at the end of the burst.
    Later,
    /// Call [`Outbox::wake_now`] now: enough is queued.
    Now,
}

/// Queued bytes past which a sleeping writer is woken at once rather than at the end of
/// the hub's burst.
pub const WAKE_BYTES: usize = 16 * 1024;

/// The output queue passed `--sendq`: the client is a slow consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow;

/// What is waiting to be written, and who is writing it.
#[derive(Debug, Default)]
pub(super) struct Queue {
    /// Bytes waiting for the writer.
    pub(super) buf: Vec<u8>,
    /// Bytes the writer has taken and not yet written (they still count against `--sendq`).
    pub(super) writing: usize,
    /// A close follows `buf`: nothing more is accepted.
    pub(super) closing: bool,
    /// A writer thread owns the queue.
    pub(super) running: bool,
    /// That writer waits for output (on `ready`).
    pub(super) idle: bool,
    /// The close is done: FIN sent, or the connection failed.
    pub(super) done: bool,
    /// A push left the writer to be woken later ([`Outbox::queue`]).
    pub(super) wake_pending: bool,
}

/// The state behind an [`Outbox`], shared with the writer.
#[derive(Debug)]
pub(super) struct Inner {
    pub(super) queue: Mutex<Queue>,
    /// Output arrived for an idle writer.
    pub(super) ready: Condvar,
    /// The close is done.
    pub(super) finished: Condvar,
    pub(super) shared: Arc<ConnShared>,
    pub(super) tag: String,
    name: String,
    pool: Arc<Pool>,
    sendq: usize,
}

/// The sending end of one connection: a byte queue bounded by `--sendq`, drained by a
/// writer thread that runs only while there is output (see [`super::writer`]).
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

    /// Queues `line` like [`Outbox::push`] but may leave the writer asleep: the hub wakes
    /// each writer once per burst of messages instead of once per line, which saves a
    /// context switch per relayed message. Says whether and when the caller must call
    /// [`Outbox::wake_now`]: once the queue holds [`WAKE_BYTES`], at once.
    pub fn queue(&self, line: &[u8]) -> Result<Wake, Overflow> {
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

    /// Wakes the writer for what [`Outbox::queue`] left.
    pub fn wake_now(&self) {
        let mut q = self.0.queue.lock();
        q.wake_pending = false;
        self.wake(q);
    }

    /// Queues the last lines and the close (FIN after them). Not subject to the budget:
    /// they are few and the connection ends anyway.
    pub fn finish(&self, lines: &str) {
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
    pub fn abort(&self, cause: Cause) {
        self.0.shared.set_end(cause);
        self.0.shared.cut();
        let mut q = self.0.queue.lock();
        q.buf = Vec::new();
        q.closing = true;
        self.wake(q);
    }

    /// Records `cause` as the reason the connection ends, for its reader to log.
    pub fn set_end(&self, cause: Cause) {
        self.0.shared.set_end(cause);
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
        let job = Job::new(self.0.name.clone(), move || writer::run(&inner));
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
