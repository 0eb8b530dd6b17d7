//! A connection's outgoing side as the rest of the server sees it: a channel to the writer
//! thread with a byte budget (`--sendq`), and the means to end the connection.
//!
//! The hub holds one [`Outbox`] per client and never blocks on it: the channel is unbounded
//! in items but bounded in bytes, and a push past the budget is refused so that the hub can
//! drop the slow consumer instead of waiting for it.

use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use crate::protocol::session::Cause;

/// One item for the writer thread.
#[derive(Debug)]
pub enum Out {
    /// A line (or several) built for this client.
    Text(String),
    /// A constant line.
    Static(&'static str),
    /// A line shared by many recipients (a broadcast).
    Shared(Arc<str>),
    /// Nothing more follows: send FIN and stop.
    Close,
}

impl Out {
    fn len(&self) -> usize {
        match self {
            Out::Text(s) => s.len(),
            Out::Static(s) => s.len(),
            Out::Shared(s) => s.len(),
            Out::Close => 0,
        }
    }

    /// The bytes to write.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Out::Text(s) => s.as_bytes(),
            Out::Static(s) => s.as_bytes(),
            Out::Shared(s) => s.as_bytes(),
            Out::Close => &[],
        }
    }
}

/// State shared by a connection's reader, writer and outbox.
#[derive(Debug)]
pub struct ConnShared {
    /// Bytes pushed but not yet written.
    queued: AtomicUsize,
    /// Why the connection is ending, when someone other than its reader decided it.
    end: Mutex<Option<Cause>>,
    /// The socket: read by the reader, written by the writer, cut by whoever ends it.
    socket: TcpStream,
}

impl ConnShared {
    /// Shared state around the connection's `socket`.
    pub fn new(socket: TcpStream) -> Arc<ConnShared> {
        Arc::new(ConnShared {
            queued: AtomicUsize::new(0),
            end: Mutex::new(None),
            socket,
        })
    }

    /// Records why the connection ends; the first cause recorded wins.
    pub fn set_end(&self, cause: Cause) {
        self.end.lock().get_or_insert(cause);
    }

    /// The recorded cause, if any.
    pub fn end(&self) -> Option<Cause> {
        self.end.lock().clone()
    }

    /// The connection's socket (reader and writer use it through `&TcpStream`).
    pub fn socket(&self) -> &TcpStream {
        &self.socket
    }

    /// Cuts the connection in both directions: wakes a reader blocked in `read` and a writer
    /// blocked in `write`.
    pub fn cut(&self) {
        let _ = self.socket.shutdown(Shutdown::Both);
    }

    /// The writer wrote `n` bytes.
    pub fn written(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::Relaxed);
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

/// The output queue passed `--sendq`: the client is a slow consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow;

/// The sending end of one connection.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: Sender<Out>,
    shared: Arc<ConnShared>,
    sendq: usize,
}

impl Outbox {
    /// An outbox feeding `tx`, refusing pushes beyond `sendq` queued bytes.
    pub fn new(tx: Sender<Out>, shared: Arc<ConnShared>, sendq: usize) -> Outbox {
        Outbox { tx, shared, sendq }
    }

    /// Queues `out` for the writer. Refused once more than `sendq` bytes would be waiting.
    /// A writer that is already gone is not an error here: its reader reports the end.
    pub fn push(&self, out: Out) -> Result<(), Overflow> {
        let n = out.len();
        let before = self.shared.queued.fetch_add(n, Ordering::Relaxed);
        if before + n > self.sendq {
            self.shared.written(n);
            return Err(Overflow);
        }
        if self.tx.send(out).is_err() {
            self.shared.written(n);
        }
        Ok(())
    }

    /// Queues the last lines and the close (FIN after them). Not subject to the budget:
    /// they are few and the connection ends anyway.
    pub fn finish(&self, lines: String) {
        if !lines.is_empty() {
            self.shared.queued.fetch_add(lines.len(), Ordering::Relaxed);
            if self.tx.send(Out::Text(lines)).is_err() {
                return;
            }
        }
        let _ = self.tx.send(Out::Close);
    }

    /// Ends the connection at once for `cause` (a slow consumer): nothing more is written.
    pub fn abort(&self, cause: Cause) {
        self.shared.set_end(cause);
        self.shared.cut();
    }

    /// Records `cause` as the reason the connection ends, for its reader to log.
    pub fn set_end(&self, cause: Cause) {
        self.shared.set_end(cause);
    }
}
