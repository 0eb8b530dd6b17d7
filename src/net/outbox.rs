//! A connection's outgoing side as the rest of the server sees it: a byte queue for the
//! writer thread with a budget (`--sendq`), and the means to end the connection.
//!
//! The hub holds one [`Outbox`] per client and never blocks on it: a push appends bytes
//! under a short lock. The budget has two bounds (§7). Past `--sendq` (the soft bound) the
//! line is still queued and the writer woken at once; the writer offers the socket its
//! bytes without blocking, and if it takes nothing for [`STALL`] while more than `--sendq`
//! waits, the client is not reading: it is dropped as a slow consumer. A queue over
//! `--sendq` only because the writer has not run yet is not a reason to drop anyone, and a
//! relay that leaves a recipient over it holds its sender's next command back
//! ([`Outbox::wait_behind`]) so that a fast sender cannot outrun a reading recipient. Past [`HARD_SENDQ`] times
//! `--sendq` (the hard bound) a relayed line is refused whatever the cause, so that the hub
//! drops the client instead of waiting for it or holding unbounded memory.
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
//! without any: an idle client then costs one thread (its reader), not two. The next push
//! starts it again. A write that fails or times out (`--ping-timeout`: the client's window
//! stays closed) ends the connection: the cause is recorded and the socket cut, which wakes
//! the reader. The reader writes on its own thread what comes while it would only wait
//! anyway ([`Outbox::claim`]): the greeting, the hub's reply to `uname`/`cname`, and the
//! last lines and FIN; a client that connects, registers and quits then never needs a
//! writer thread. The same `write` serves both, so the slow-consumer rule is the same.
//! The socket stays blocking (its reader shares it): the writer's sends are
//! non-blocking one call at a time, and it waits for room with `poll`.

use std::io::{ErrorKind, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::SOCKET_WRITES_TARGET;
use super::pool::{Job, Pool};
use super::shared::ConnShared;
use super::sys;
use crate::conn_id::{ConnId, Tag};
use crate::hub::{Output, Overflow, Wake};
use crate::protocol::cause::Cause;
use crate::protocol::reply::escape;

/// Queued bytes past which a sleeping writer is woken at once rather than at the end of
/// the hub's burst.
pub const WAKE_BYTES: usize = 16 * 1024;

/// The hard bound on a client's queue, in multiples of `--sendq`: past it a relayed line is
/// refused and the client dropped, whatever the reason its queue is long.
pub const HARD_SENDQ: usize = 4;

/// How many of a client's commands may be with the hub, unanswered, before its reader
/// waits (see [`Outbox::wait_room`]); this bounds the responses queued behind `--sendq`.
pub const MAX_IN_FLIGHT: u64 = 64;

/// How long the socket of a client with more than `--sendq` queued may take nothing before
/// the client is a slow consumer: the client is not reading.
pub const STALL: Duration = Duration::from_millis(100);

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
    /// The reader writes what is queued itself ([`Outbox::claim`]): no writer is started.
    inline: bool,
    /// Commands of this client the hub has handled ([`Output::handled`]).
    handled: u64,
    /// Threads waiting on `room` (this client's reader, senders held back by it).
    waiters: usize,
    /// A recipient this client's last relay left over `--sendq` ([`Output::relay`]): the
    /// reader waits for it to drain before the next command.
    behind: Option<Outbox>,
}

impl Queue {
    /// Bytes queued and not yet written.
    fn queued(&self) -> usize {
        self.buf.len() + self.writing
    }
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

/// The state behind an [`Outbox`], shared with its writer.
#[derive(Debug)]
struct Inner {
    queue: Mutex<Queue>,
    /// Output arrived for an idle writer.
    ready: Condvar,
    /// The close is done, or there is output for a reader that writes it itself.
    finished: Condvar,
    /// The queue went down or the hub handled a command (for a reader in `wait_room`).
    room: Condvar,
    shared: Arc<ConnShared>,
    tag: Tag,
    /// The connection's number, which names its writer (`xscp-write-<id>`).
    id: ConnId,
    /// The writers' pool and limits, shared by every outbox.
    writers: Arc<Writers>,
}

/// What the outboxes of all connections have in common: the pool their writers run on and
/// their limits.
#[derive(Debug)]
pub struct Writers {
    /// Threads for writers.
    pub pool: Arc<Pool>,
    /// Output budget in bytes (`--sendq`).
    pub sendq: usize,
    /// The write timeout (`--ping-timeout`).
    pub write_timeout: Duration,
}

/// The sending end of one connection: a byte queue bounded by `--sendq`, drained by a
/// writer thread that runs only while there is output (see the module documentation).
#[derive(Clone, Debug)]
pub struct Outbox(Arc<Inner>);

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
            if q.closing {
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
        if q.closing {
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

    /// The sender's side of [`Output::relay`]: if this client's last relay left a recipient
    /// over `--sendq`, waits (at most the write timeout) until that recipient's queue is
    /// back under it or closes. Called by this client's reader, never by the hub.
    pub fn wait_behind(&self) {
        let Some(to) = self.0.queue.lock().behind.take() else {
            return;
        };
        let deadline = std::time::Instant::now() + to.0.writers.write_timeout;
        let mut q = to.0.queue.lock();
        while !q.closing && q.queued() > to.0.writers.sendq {
            q.waiters += 1;
            let timed_out = to.0.room.wait_until(&mut q, deadline).timed_out();
            q.waiters -= 1;
            if timed_out {
                log::debug!(
                    "{} still over --sendq after {:?}: {} goes on",
                    to.0.tag,
                    to.0.writers.write_timeout,
                    self.0.tag
                );
                return;
            }
        }
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

    /// Queues `line` and writes it on the calling thread (the reader's) unless a writer
    /// runs: the greeting costs no writer thread.
    pub fn push_here(&self, line: &[u8]) -> Result<(), Overflow> {
        self.claim();
        let pushed = self.push(line);
        self.release();
        pushed
    }

    /// The calling reader is about to wait for the hub and will write what the hub queues
    /// meanwhile itself ([`Outbox::release`]): until then no writer thread is started for
    /// this client.
    pub fn claim(&self) {
        self.0.queue.lock().inline = true;
    }

    /// Ends a [`Outbox::claim`]: writes one batch of what was queued meanwhile on the
    /// calling thread, unless a writer runs; whatever comes later goes to a writer.
    pub fn release(&self) {
        let mut q = self.0.queue.lock();
        q.inline = false;
        if !q.running && !q.buf.is_empty() && !q.closing {
            q.running = true;
            if self.0.write_batch(&mut q, &mut Vec::new()).is_err() {
                return;
            }
            q.running = false;
        }
        self.wake(q);
    }

    /// Waits until the close is done (FIN sent) or failed, writing the last lines and the
    /// FIN on the calling thread (the reader's) unless a writer runs. Every way a
    /// connection ends queues a close (`finish` or `abort`), so this returns.
    pub fn wait_done(&self) {
        let mut q = self.0.queue.lock();
        q.inline = true;
        while !q.done {
            if !q.running && (q.closing || !q.buf.is_empty()) {
                q.running = true;
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
        if q.running && !q.idle {
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

    /// Gets the queue drained: signals the idle writer, or the reader that writes itself,
    /// or starts a writer.
    fn wake(&self, mut q: MutexGuard<'_, Queue>) {
        if q.idle {
            self.0.ready.notify_one();
            return;
        }
        if q.running || (q.buf.is_empty() && !q.closing) {
            return;
        }
        if q.inline {
            self.0.finished.notify_all();
            return;
        }
        q.running = true;
        drop(q);
        let inner = Arc::clone(&self.0);
        let job = Job::new("xscp-write", self.0.id, move || inner.drain());
        if let Err((e, _job)) = self.0.writers.pool.run(job) {
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
    /// Refused past the hard bound ([`HARD_SENDQ`] times `--sendq`); past `--sendq` the
    /// writer is woken at once, to find out whether the client still reads.
    fn queue(&self, line: &[u8]) -> Result<Wake, Overflow> {
        let q = self.0.queue.lock();
        if q.closing {
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
        if q.closing {
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
        if q.closing {
            return Ok(Wake::No);
        }
        if q.queued() + line.len() > self.0.writers.sendq.saturating_mul(HARD_SENDQ) {
            return Err(Overflow);
        }
        let over = q.queued() + line.len() > self.0.writers.sendq;
        let wake = self.append(q, line);
        if over && !Arc::ptr_eq(&self.0, &from.0) {
            let mut f = from.0.queue.lock();
            if !f.closing && f.behind.is_none() {
                f.behind = Some(self.clone());
            }
        }
        Ok(wake)
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
        self.0.log_sent(lines.as_bytes());
        q.buf.extend_from_slice(lines.as_bytes());
        q.closing = true;
        q.behind = None;
        self.0.room.notify_all();
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
        q.behind = None;
        self.0.room.notify_all();
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
                log::trace!("{} -> {}", self.tag, escape(line.trim_ascii_end()));
            }
        }
    }

    /// The writer (`xscp-write-<id>`): drains the queue until the close, an error, or
    /// [`WRITER_IDLE`] without output.
    fn drain(&self) {
        drop(self.drain_from(self.queue.lock(), Some(WRITER_IDLE)));
    }

    /// Drains the queue, which the calling thread owns (`running`), until the close, an
    /// error, or `idle` without output (`None`: as soon as it is empty).
    fn drain_from<'a>(
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
            if q.closing {
                // FIN: the client reads our last line, then end of stream.
                let _ = self.shared.socket().shutdown(Shutdown::Write);
                self.finish(&mut q);
                return q;
            }
            let Some(idle) = idle else {
                q.running = false;
                return q;
            };
            q.idle = true;
            let timed_out = self.ready.wait_for(&mut q, idle).timed_out();
            q.idle = false;
            if timed_out && q.buf.is_empty() && !q.closing {
                // Idle: give the thread back, and the memory of the buffer.
                q.running = false;
                q.buf = Vec::new();
                return q;
            }
        }
    }

    /// Takes everything queued and writes it with the lock released (the hub goes on
    /// filling the reused other buffer). On failure the close is done and `Err` returned.
    fn write_batch(&self, q: &mut MutexGuard<'_, Queue>, batch: &mut Vec<u8>) -> Result<(), ()> {
        std::mem::swap(&mut q.buf, batch);
        q.writing = batch.len();
        let written = MutexGuard::unlocked(q, || self.write(batch));
        q.writing = 0;
        if q.waiters > 0 {
            self.room.notify_all();
        }
        if written.is_err() {
            q.buf = Vec::new();
            q.closing = true;
            q.behind = None;
            self.room.notify_all();
            self.finish(q);
            return Err(());
        }
        batch.clear();
        if batch.capacity() > KEEP {
            *batch = Vec::new();
        }
        Ok(())
    }

    fn finish(&self, q: &mut Queue) {
        q.running = false;
        q.done = true;
        self.finished.notify_all();
    }

    /// Writes one batch; on failure records why and cuts the connection. The socket is
    /// offered the bytes without blocking; while it takes nothing the writer waits for
    /// room, and the client is a slow consumer (§7) once more than `--sendq` is queued
    /// and the socket has taken nothing for [`STALL`], or once the write has taken the
    /// write timeout.
    fn write(&self, batch: &[u8]) -> Result<(), ()> {
        let socket = self.shared.socket();
        let started = Instant::now();
        let mut progress = started;
        let mut rest = batch;
        while !rest.is_empty() {
            match sys::send_now(socket, rest) {
                Ok(n) => {
                    log::trace!(
                        target: SOCKET_WRITES_TARGET,
                        "{} socket write: {n} of {} bytes",
                        self.tag,
                        rest.len()
                    );
                    rest = &rest[n..];
                    progress = Instant::now();
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::Unsupported => {
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
                Err(e) if e.kind() != ErrorKind::WouldBlock => {
                    self.failed(&e);
                    return Err(());
                }
                Err(_) => {}
            }
            let now = Instant::now();
            let queued = self.queue.lock().queued();
            if queued > self.writers.sendq && now.duration_since(progress) >= STALL {
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

#[cfg(test)]
mod tests {
    //! A reader that writes its own output starts no writer thread: with a pool that may
    //! start none, a writer start would cut the connection.

    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    use super::*;
    use crate::net::pool::Budget;

    /// An outbox whose pool can start no thread, and the client's end of its socket.
    fn threadless() -> (Outbox, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let writers = Arc::new(Writers {
            pool: Pool::new(64 * 1024, Budget::new(0)),
            sendq: 1024,
            write_timeout: Duration::from_secs(20),
        });
        let outbox = Outbox::new(1, "conn=1".into(), ConnShared::new(server), writers);
        (outbox, client)
    }

    fn read_exactly(client: &mut TcpStream, n: usize) -> String {
        let mut buf = vec![0; n];
        client.read_exact(&mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    /// Every connection keeps its outbox for its whole life: what all of them share is
    /// behind one pointer (seventeen words on a 64-bit machine; it was twenty).
    #[test]
    fn an_outbox_is_small() {
        assert!(std::mem::size_of::<Inner>() <= 17 * std::mem::size_of::<usize>());
    }

    /// The check below can fail: without the reader, output needs a writer thread.
    #[test]
    fn a_push_needs_a_writer_thread() {
        let (outbox, _client) = threadless();
        outbox.push(b"+OK hello\r\n").unwrap();
        assert!(matches!(outbox.0.shared.end(), Some(Cause::Io(_))));
    }

    /// Connect, `uname`, `cquit`: the greeting, the hub's reply and the last lines with
    /// the FIN are all written by the reader.
    #[test]
    fn the_reader_writes_the_greeting_the_hubs_reply_and_the_close_itself() {
        let (outbox, mut client) = threadless();
        outbox.push_here(b"+OK hello\r\n").unwrap();
        assert_eq!(read_exactly(&mut client, 11), "+OK hello\r\n");
        // The hub queues its reply while the reader waits for the answer.
        outbox.claim();
        assert_eq!(outbox.respond(b"+OK you are a\r\n"), Wake::Later);
        outbox.handled(1);
        outbox.wake_now();
        outbox.release();
        assert_eq!(read_exactly(&mut client, 15), "+OK you are a\r\n");
        // The hub queues the last lines while (or before) the reader waits for the close.
        outbox.claim();
        let hub = outbox.clone();
        let departing = std::thread::spawn(move || hub.finish("cquit bye\r\n"));
        outbox.wait_done();
        departing.join().unwrap();
        let mut rest = String::new();
        client.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "cquit bye\r\n");
        assert_eq!(outbox.0.shared.end(), None);
    }

    /// The reader goes on at once, or hands over the lines it holds back before it waits:
    /// too many commands with the hub, a queue over `--sendq`, a recipient behind.
    #[test]
    fn room_now_says_when_the_reader_would_wait() {
        let (outbox, _client) = threadless();
        assert_eq!(outbox.room_now(32, 32), Some(Room::Free));
        assert_eq!(outbox.room_now(33, 32), None);
        outbox.handled(1);
        assert_eq!(outbox.room_now(33, 32), Some(Room::Free));
        outbox.claim(); // No writer: the queue stays as queued.
        outbox.respond(&[b'x'; 1025]);
        assert_eq!(outbox.room_now(33, 32), None);
        outbox.release();
        assert_eq!(outbox.room_now(33, 32), Some(Room::Free));
        let (recipient, _other) = threadless();
        recipient.claim();
        recipient.relay(&[b'y'; 1025], &outbox).unwrap();
        assert_eq!(outbox.room_now(33, 32), None);
        outbox.finish("");
        assert_eq!(outbox.room_now(40, 32), Some(Room::Closing));
    }
}
