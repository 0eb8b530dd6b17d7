//! What an outbox shares with its writer: the queue, who drains it and how far its close
//! has come, under one lock, and the condition variables they wait on. Both
//! `outbox/mod.rs` and `outbox/writer.rs` import this file; it imports neither.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::conn_id::{ConnId, Tag};
use crate::net::pool::Pool;
use crate::net::shared::ConnShared;

/// Who drains a connection's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Drain {
    /// No thread: the next wake offers the socket the queue and starts a writer for the
    /// rest, unless the reader has claimed the queue.
    Nobody,
    /// A thread owns the queue and writes, with the lock released: a writer, the reader
    /// itself, or the thread offering it (the hub). It finds whatever is pushed meanwhile.
    Writing,
    /// A writer owns the queue and waits for output (on `ready`).
    Waiting,
}

/// How far a connection's close has come, and who drains its queue meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// Lines are accepted.
    Open(Drain),
    /// A close follows `buf`: nothing more is accepted. Its drainer writes `buf`, then the
    /// FIN.
    Closing(Drain),
    /// The close is done (FIN sent, or the connection failed): nothing drains the queue.
    Done,
}

impl State {
    /// Whether a close is queued or done: nothing more is accepted.
    pub(super) fn closing(self) -> bool {
        !matches!(self, State::Open(_))
    }

    pub(super) fn drain(self) -> Drain {
        match self {
            State::Open(drain) | State::Closing(drain) => drain,
            State::Done => Drain::Nobody,
        }
    }

    /// The same stage of the close, drained by `drain`. Nothing drains a done queue.
    pub(super) fn set_drain(&mut self, drain: Drain) {
        match self {
            State::Open(d) | State::Closing(d) => *d = drain,
            State::Done => debug_assert_eq!(drain, Drain::Nobody, "a done queue is not drained"),
        }
    }

    /// Queues the close; its drainer stays.
    pub(super) fn close(&mut self) {
        if let State::Open(drain) = *self {
            *self = State::Closing(drain);
        }
    }
}

/// What is waiting to be written, who is writing it, and how far its close has come.
///
/// Besides [`State`], two facts about other threads, each possible in every state: the
/// reader's claim and the hub's pending wake.
#[derive(Debug)]
pub(super) struct Queue {
    /// Bytes waiting for the writer.
    pub(super) buf: Vec<u8>,
    /// Bytes the writer has taken and not yet written (they still count against `--sendq`).
    pub(super) writing: usize,
    /// Who drains the queue, and whether it is closing.
    pub(super) state: State,
    /// The reader writes what is queued itself (`Outbox::claim`): when nobody drains the
    /// queue, no writer is started. The claim outlasts a writer that runs meanwhile.
    pub(super) claimed: bool,
    /// A push left the writer to be woken later (`Output::queue`): the hub will call
    /// `Output::wake_now`, whoever drains the queue meanwhile.
    pub(super) wake_pending: bool,
    /// Commands of this client the hub has handled (`Output::handled`).
    pub(super) handled: u64,
    /// Threads waiting on `room` (this client's reader, senders held back by it).
    pub(super) waiters: usize,
    /// The recipients this client's relays left over `--sendq` (`Output::relay`) since its
    /// reader last waited for them: it waits for all of them to drain before the next
    /// command. Allocated only then (an idle client's queue stays small).
    pub(super) behind: Option<Box<Behind>>,
}

impl Default for Queue {
    fn default() -> Queue {
        Queue {
            buf: Vec::new(),
            writing: 0,
            state: State::Open(Drain::Nobody),
            claimed: false,
            wake_pending: false,
            handled: 0,
            waiters: 0,
            behind: None,
        }
    }
}

impl Queue {
    /// Bytes queued and not yet written.
    pub(super) fn queued(&self) -> usize {
        self.buf.len() + self.writing
    }
}

/// The recipients a client's relays left over `--sendq`, each once, in the order it met
/// them (see [`Queue::behind`]). Not kept alive by it: a recipient that departs is released
/// (its socket closed) even while this client sends nothing more.
#[derive(Debug, Default)]
pub(super) struct Behind {
    recipients: Vec<Weak<Inner>>,
    /// Their addresses: a broadcast meets each recipient once per line, and adding one is
    /// a lookup, not a pass over the others.
    seen: HashSet<usize>,
}

impl Behind {
    /// Adds `to`, unless it is in already.
    pub(super) fn add(&mut self, to: &Arc<Inner>) {
        if self.seen.insert(Arc::as_ptr(to) as usize) {
            self.recipients.push(Arc::downgrade(to));
        }
    }

    /// The recipients still there.
    pub(super) fn recipients(&self) -> impl Iterator<Item = Arc<Inner>> + '_ {
        self.recipients.iter().filter_map(Weak::upgrade)
    }
}

/// The state behind an outbox, shared with its writer.
#[derive(Debug)]
pub(super) struct Inner {
    pub(super) queue: Mutex<Queue>,
    /// Output arrived for an idle writer.
    pub(super) ready: Condvar,
    /// The close is done, or there is output for a reader that writes it itself.
    pub(super) finished: Condvar,
    /// The queue went down or the hub handled a command (for a reader in `wait_room`).
    pub(super) room: Condvar,
    pub(super) shared: Arc<ConnShared>,
    pub(super) tag: Tag,
    /// The connection's number, which names its writer (`xscp-write-<id>`).
    pub(super) id: ConnId,
    /// The writers' pool and limits, shared by every outbox.
    pub(super) writers: Arc<Writers>,
}

/// What the outboxes of all connections have in common: the pool their writers run on and
/// their limits.
#[derive(Debug)]
pub struct Writers {
    /// Threads for writers.
    pub pool: Arc<Pool<super::WriterWork>>,
    /// Output budget in bytes (`--sendq`).
    pub sendq: usize,
    /// The write timeout (`--ping-timeout`).
    pub write_timeout: Duration,
}
