//! A connection's outgoing side as the rest of the server sees it: a byte queue for the
//! writer thread with a budget (`--sendq`), and the means to end the connection.
//!
//! The hub holds one [`Outbox`] per client and never blocks on it: a push appends bytes
//! under a short lock. The budget has two bounds (§7). Past `--sendq` (the soft bound) the
//! line is still queued and its drainer woken at once; the socket is offered the bytes
//! without blocking, and if it takes nothing for [`STALL`] while more than `--sendq`
//! waits, the client is not reading: it is dropped as a slow consumer. A queue over
//! `--sendq` only because the writer has not run yet is not a reason to drop anyone, and a
//! relay that leaves a recipient over it holds its sender's next command back until every
//! recipient it left over drains ([`Outbox::wait_behind`]), so that a fast sender cannot
//! outrun a reading recipient. Past
//! [`HARD_SENDQ`] times `--sendq` (the hard bound) a relayed line is refused whatever the
//! cause, so that the hub drops the client instead of waiting for it or holding unbounded
//! memory.
//!
//! Responses to the client's own commands ([`Output::respond`]) are never refused: the
//! client's reader bounds them instead ([`Outbox::wait_room`]): before it takes the next
//! command it waits while more than `--sendq` is queued or too many commands are still
//! with the hub, so a client that pipelines commands without reading replies is slowed by
//! TCP, and dropped only if its queue stays over `--sendq` for the write timeout.
//!
//! The writer of the connection (`xscp-write-<id>`) takes everything
//! queued at once and writes it in one system call, so whatever piled up while it wrote
//! leaves together; after the close it sends FIN (§7, orderly close). It runs on a pooled
//! thread while the client has output, and gives its thread back after [`WRITER_IDLE`]
//! without any: an idle client then costs one thread (its reader), not two. The next wake
//! offers the socket the queue first, and starts a writer for what it does not take. A
//! write that fails or times out (`--ping-timeout`: the client's window
//! stays closed) ends the connection: the cause is recorded and the socket cut, which wakes
//! the reader.
//!
//! A writer thread starts only for what the socket does not take at once. Whoever wakes a
//! queue that nobody drains (the hub at the end of its burst, nearly always) first offers
//! the socket everything queued in one send that does not block: the hub batches across
//! clients, one send per client per burst, and never waits. The reader writes on its own
//! thread what it has to write or would only wait for anyway ([`Outbox::push_here`],
//! [`Outbox::claim`]): the greeting, its pings, the hub's reply to a last-attempt `uname`,
//! and the last lines and FIN. A close the hub queues at a shutdown goes to a writer
//! thread, which sends the FIN after the last lines; an abort needs none. A client that connects,
//! registers, idles and quits never needs a writer thread. The same `write` serves both,
//! so the slow-consumer rule is the same.
//! The socket stays blocking (its reader shares it): the writer's sends are
//! non-blocking one call at a time, and it waits for room with `poll`.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::pool::{Job, Work};
use super::shared::ConnShared;
use crate::conn_id::{ConnId, Tag};
use crate::hub::{Output, Overflow, Wake};
use crate::protocol::cause::Cause;
use crate::text::for_log;

pub mod helper;
mod queue;
mod writer;

pub use queue::Writers;
use queue::{Drain, Inner, Queue, State};
pub use writer::{SOCKET_WRITES_TARGET, STALL, WRITER_IDLE};

/// Queued bytes past which a sleeping writer is woken at once rather than at the end of
/// the hub's burst.
pub const WAKE_BYTES: usize = 16 * 1024;

/// The hard bound on a client's queue, in multiples of `--sendq`: past it a relayed line is
/// refused and the client dropped, whatever the reason its queue is long.
pub const HARD_SENDQ: usize = 4;

/// How many of a client's commands may be with the hub, unanswered, before its reader
/// waits (see [`Outbox::wait_room`]); this bounds the responses queued behind `--sendq`.
/// Fewer with a small `--sendq`: see [`max_in_flight`].
pub const MAX_IN_FLIGHT: u64 = 64;

/// The longest line a command can have relayed: a PDU and its CRLF.
const MAX_LINE: usize = crate::protocol::MAX_PDU + 2;

/// How many of a client's commands may be with the hub, unanswered or held back to be
/// given together, with `--sendq` of `sendq` bytes: [`MAX_IN_FLIGHT`], or fewer, so that
/// the lines they relay fit between `--sendq` and the hard bound. A relay that leaves its
/// recipient over `--sendq` holds the sender back from its next command on
/// ([`Outbox::wait_behind`]); the commands already with the hub are relayed all the same,
/// and must not push a recipient that reads past the hard bound (§7: a client that reads
/// is not dropped, its senders are slowed instead). At least 2 (3 at the least `--sendq`).
/// This bounds one sender: several flooding one recipient at once add up, and can take it
/// past the hard bound while it reads (some two dozen with the default `--sendq`; the
/// hard bound caps the memory whatever the cause, §7).
pub fn max_in_flight(sendq: usize) -> u64 {
    let fit = sendq.saturating_mul(HARD_SENDQ - 1) / MAX_LINE;
    u64::try_from(fit)
        .unwrap_or(MAX_IN_FLIGHT)
        .clamp(2, MAX_IN_FLIGHT)
}

/// What [`Outbox::wait_room`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Room {
    /// The reader may take the next command.
    Free,
    /// The connection is closing.
    Closing,
    /// More than `--sendq` stayed queued for the whole write timeout: a slow consumer.
    Full,
}

/// The sending end of one connection: a byte queue bounded by `--sendq`, drained by a
/// writer thread that runs only while there is output (see the module documentation).
#[derive(Clone, Debug)]
pub struct Outbox(Arc<Inner>);

/// A writer thread's job: drain one outbox (`xscp-write-<id>`).
pub struct WriterWork(Arc<Inner>);

impl Work for WriterWork {
    fn run(self) {
        self.0.drain()
    }
}

impl Outbox {
    /// The outbox of connection `id`, writing to `shared`'s socket on threads of
    /// `writers`. Nothing runs until the first push.
    pub fn new(id: ConnId, tag: Tag, shared: Arc<ConnShared>, writers: Arc<Writers>) -> Outbox {
        Outbox(Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            finished: Condvar::new(),
            room: Condvar::new(),
            shared,
            tag,
            id,
            writers,
        }))
    }

    /// The reader's backpressure: waits until at most `in_flight` of the `sent` commands
    /// the reader gave the hub are unhandled and at most `--sendq` bytes are queued, or the
    /// connection closes. [`Room::Full`] when the queue stays over `--sendq` for the write
    /// timeout (the client does not read its replies). Never called by the hub.
    pub fn wait_room(&self, sent: u64, in_flight: u64) -> Room {
        let inner = &self.0;
        let mut q = inner.queue.lock();
        // Read the clock only when there is something to wait for: this runs per command.
        let mut until = None;
        loop {
            if q.state.closing() {
                return Room::Closing;
            }
            let over = q.queued() > inner.writers.sendq;
            if !over && sent.saturating_sub(q.handled) <= in_flight {
                return Room::Free;
            }
            let deadline =
                *until.get_or_insert_with(|| Instant::now() + inner.writers.write_timeout);
            q.waiters += 1;
            let timed_out = inner.room.wait_until(&mut q, deadline).timed_out();
            q.waiters -= 1;
            if timed_out {
                if q.queued() > inner.writers.sendq {
                    return Room::Full;
                }
                // Only the hub is behind: it answers in the end.
                until = None;
            }
        }
    }

    /// What [`Outbox::wait_behind`] and [`Outbox::wait_room`] would find now, without
    /// waiting: `None` if either would wait. One lock for the common case, where the reader
    /// goes on at once.
    pub fn room_now(&self, sent: u64, in_flight: u64) -> Option<Room> {
        let q = self.0.queue.lock();
        if q.state.closing() {
            return Some(Room::Closing);
        }
        let free = q.behind.is_none()
            && q.queued() <= self.0.writers.sendq
            && sent.saturating_sub(q.handled) <= in_flight;
        free.then_some(Room::Free)
    }

    /// Whether the hub has handled all `sent` commands the reader gave it (see
    /// [`Output::handled`]): nothing it owes the client in answer is still to come.
    pub fn answered(&self, sent: u64) -> bool {
        self.0.queue.lock().handled >= sent
    }

    /// The sender's side of [`Output::relay`]: if this client's relays left recipients
    /// over `--sendq` since it last waited, waits (at most the write timeout in all) until
    /// each of them is back under it or closes. Every one, not only the first: a recipient
    /// the sender goes on past while it is still over (the slower of two that read a
    /// broadcast) would be pushed past the hard bound. Called by this client's reader,
    /// never by the hub.
    pub fn wait_behind(&self) {
        let Some(behind) = self.0.queue.lock().behind.take() else {
            return;
        };
        let deadline = Instant::now() + self.0.writers.write_timeout;
        // A recipient that is gone holds nobody back.
        for to in behind.recipients() {
            let mut q = to.queue.lock();
            while !q.state.closing() && q.queued() > to.writers.sendq {
                q.waiters += 1;
                let timed_out = to.room.wait_until(&mut q, deadline).timed_out();
                q.waiters -= 1;
                if timed_out {
                    log::debug!(
                        "{} still over --sendq after {:?}: {} goes on",
                        to.tag,
                        to.writers.write_timeout,
                        self.0.tag
                    );
                    return;
                }
            }
        }
    }

    /// Queues `line` and gets it written ([`Output::wake_now`]). Refused past the hard
    /// bound ([`HARD_SENDQ`] times `--sendq`). Output to a connection that is closing is dropped silently: its
    /// reader reports the end.
    pub fn push(&self, line: &[u8]) -> Result<(), Overflow> {
        if self.queue(line)? != Wake::No {
            self.wake_now();
        }
        Ok(())
    }

    /// Writes `line` on the calling thread (the reader's) unless a writer runs: the
    /// greeting and a ping cost no writer thread. With nothing queued (nearly always) it
    /// goes from the caller's buffer to the socket, not through the queue: the reader
    /// allocates nothing for it.
    pub fn push_here(&self, line: &[u8]) -> Result<(), Overflow> {
        let mut q = self.0.queue.lock();
        if q.state == State::Open(Drain::Nobody) && q.buf.is_empty() {
            self.0.log_sent(line);
            q.state.set_drain(Drain::Writing);
            if self.0.write_unlocked(&mut q, line, false).is_ok() {
                q.state.set_drain(Drain::Nobody);
            }
            // Whatever the hub queued meanwhile goes to a writer (or to a claiming reader).
            self.wake(q);
            return Ok(());
        }
        drop(q);
        self.claim();
        let pushed = self.push(line);
        self.release();
        pushed
    }

    /// The calling reader is about to wait for the hub and will write what the hub queues
    /// meanwhile itself ([`Outbox::release`]): until then no writer thread is started for
    /// this client.
    pub fn claim(&self) {
        self.0.queue.lock().claimed = true;
    }

    /// Ends a [`Outbox::claim`]: writes one batch of what was queued meanwhile on the
    /// calling thread, unless a writer runs; whatever comes later goes to a writer.
    pub fn release(&self) {
        let mut q = self.0.queue.lock();
        q.claimed = false;
        if q.state == State::Open(Drain::Nobody) && !q.buf.is_empty() {
            q.state = State::Open(Drain::Writing);
            if self.0.write_batch(&mut q, &mut Vec::new()).is_err() {
                return;
            }
            // A close may have come meanwhile: the wake below drains it.
            q.state.set_drain(Drain::Nobody);
        }
        self.wake(q);
    }

    /// Waits until the close is done (FIN sent) or failed, writing the last lines and the
    /// FIN on the calling thread (the reader's) unless a writer runs. Every way a
    /// connection ends queues a close (`finish` or `abort`), so this returns.
    pub fn wait_done(&self) {
        let mut q = self.0.queue.lock();
        q.claimed = true;
        while q.state != State::Done {
            if q.state.drain() == Drain::Nobody && (q.state.closing() || !q.buf.is_empty()) {
                q.state.set_drain(Drain::Writing);
                q = self.0.drain_from(q, None);
                continue;
            }
            self.0.finished.wait(&mut q);
        }
    }

    /// Appends `line` and says when the writer must be woken (see [`Output::queue`]).
    fn append(&self, mut q: MutexGuard<'_, Queue>, line: &[u8]) -> Wake {
        self.0.log_sent(line);
        q.buf.extend_from_slice(line);
        if q.state.drain() == Drain::Writing {
            return Wake::No; // The writer is busy and will find it.
        }
        if q.buf.len() >= WAKE_BYTES || q.queued() > self.0.writers.sendq {
            return Wake::Now;
        }
        if q.wake_pending {
            return Wake::No;
        }
        q.wake_pending = true;
        Wake::Later
    }

    /// Gets the queue drained: signals the idle writer, or the reader that writes itself;
    /// else offers the socket the queue on the calling thread ([`Inner::offer`]) and starts
    /// a writer for what it does not take.
    fn wake(&self, mut q: MutexGuard<'_, Queue>) {
        match q.state.drain() {
            Drain::Waiting => {
                self.0.ready.notify_one();
                return;
            }
            Drain::Writing => return,
            Drain::Nobody => {}
        }
        if q.state == State::Done || (q.buf.is_empty() && !q.state.closing()) {
            return;
        }
        // Nobody drains the queue: the calling thread (the hub, at the end of its burst)
        // offers the socket what is queued, without blocking; a writer thread starts only
        // for what it does not take at once. The reply to a `uname` costs no thread.
        if !q.claimed && !q.state.closing() && self.0.offer(&mut q) {
            return;
        }
        // (The reader may have claimed the queue while the lock was released.)
        if q.claimed {
            self.0.finished.notify_all();
            return;
        }
        q.state.set_drain(Drain::Writing);
        drop(q);
        let job = Job::new("xscp-write", self.0.id, WriterWork(Arc::clone(&self.0)));
        if let Err((e, _job)) = self.0.writers.pool.run(job) {
            log::error!("{} cannot start its writer thread: {e}", self.0.tag);
            self.0
                .shared
                .set_end(Cause::Io("cannot start a writer thread".into()));
            self.0.shared.cut();
            // Nothing more is written: whoever waits for room or for the close goes on.
            self.0.failed_close(&mut self.0.queue.lock());
        }
    }
}

impl Output for Outbox {
    /// Queues `line` like [`Outbox::push`] but may leave the writer asleep: the hub wakes
    /// each writer once per burst of messages instead of once per line, which saves a
    /// context switch per relayed message. Says whether and when the caller must call
    /// [`Output::wake_now`]: once the queue holds [`WAKE_BYTES`], at once.
    /// Refused past the hard bound ([`HARD_SENDQ`] times `--sendq`); past `--sendq` the
    /// writer is woken at once, to find out whether the client still reads.
    fn queue(&self, line: &[u8]) -> Result<Wake, Overflow> {
        let q = self.0.queue.lock();
        if q.state.closing() {
            return Ok(Wake::No);
        }
        if q.queued() + line.len() > self.0.writers.sendq.saturating_mul(HARD_SENDQ) {
            return Err(Overflow);
        }
        Ok(self.append(q, line))
    }

    /// Queues a response to the client's own command: never refused (the reader bounds
    /// these, see [`Outbox::wait_room`]).
    fn respond(&self, line: &[u8]) -> Wake {
        let q = self.0.queue.lock();
        if q.state.closing() {
            return Wake::No;
        }
        self.append(q, line)
    }

    /// More of the client's commands are handled: lets a waiting reader go on.
    fn handled(&self, commands: u64) {
        let mut q = self.0.queue.lock();
        q.handled += commands;
        if q.waiters > 0 {
            self.0.room.notify_all();
        }
    }

    fn relay(&self, line: &[u8], from: &Self) -> Result<Wake, Overflow> {
        let q = self.0.queue.lock();
        if q.state.closing() {
            return Ok(Wake::No);
        }
        if q.queued() + line.len() > self.0.writers.sendq.saturating_mul(HARD_SENDQ) {
            return Err(Overflow);
        }
        let over = q.queued() + line.len() > self.0.writers.sendq;
        let wake = self.append(q, line);
        if over && !Arc::ptr_eq(&self.0, &from.0) {
            let mut f = from.0.queue.lock();
            if !f.state.closing() {
                f.behind.get_or_insert_with(Box::default).add(&self.0);
            }
        }
        Ok(wake)
    }

    /// Gets written what [`Output::queue`] left (see `Outbox::wake`).
    fn wake_now(&self) {
        let mut q = self.0.queue.lock();
        q.wake_pending = false;
        self.wake(q);
    }

    /// Queues the last lines and the close (FIN after them). Not subject to the budget:
    /// they are few and the connection ends anyway.
    fn finish(&self, lines: &str) {
        let mut q = self.0.queue.lock();
        if q.state.closing() {
            return;
        }
        self.0.log_sent(lines.as_bytes());
        q.buf.extend_from_slice(lines.as_bytes());
        self.0.close(&mut q);
        self.wake(q);
    }

    /// Ends the connection at once for `cause` (a slow consumer): the socket is cut, so
    /// nothing more can be written, and whatever waits is dropped. With nobody draining
    /// the queue the close is done here: no writer is started to send a FIN on a socket
    /// already cut.
    fn abort(&self, cause: Cause) {
        self.0.shared.set_end(cause);
        self.0.shared.cut();
        let mut q = self.0.queue.lock();
        if q.state.drain() == Drain::Nobody {
            self.0.failed_close(&mut q);
            return;
        }
        q.buf = Vec::new();
        self.0.close(&mut q);
        self.wake(q);
    }

    /// Records `cause` as the reason the connection ends, for its reader to log.
    fn set_end(&self, cause: Cause) {
        self.0.shared.set_end(cause);
    }
}

impl Inner {
    /// The audit log of what the server sends (`-vv`): each line where it is queued, by
    /// whichever thread decided to send it, under the queue's lock; so a connection's log
    /// shows every line it is sent after the line that caused it, in the order sent.
    fn log_sent(&self, lines: &[u8]) {
        if log::log_enabled!(log::Level::Trace) {
            for line in lines.split_inclusive(|&b| b == b'\n') {
                // Without its CR LF only: a text's own trailing spaces were sent too.
                let line = line.strip_suffix(b"\r\n").unwrap_or(line);
                log::trace!("{} -> {}", self.tag, for_log(line));
            }
        }
    }
}

#[cfg(test)]
mod tests;
