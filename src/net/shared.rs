//! State shared by one connection's reader, writer and outbox, and by the admission table:
//! the socket, and why the connection ends when someone other than its reader decided it;
//! and the linger of an orderly close.

use std::io::{ErrorKind, Read};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::protocol::cause::Cause;

/// State shared by a connection's reader, writer and outbox.
#[derive(Debug)]
pub struct ConnShared {
    /// Why the connection is ending, when someone other than its reader decided it.
    end: Mutex<Option<Cause>>,
    /// The socket: read by the reader, written by the writer, cut by whoever ends it.
    socket: TcpStream,
    /// The reader's thread while it serves the connection, for [`ConnShared::wake_reader`].
    reader: Mutex<Option<u64>>,
}

impl ConnShared {
    /// Shared state around the connection's `socket`.
    pub fn new(socket: TcpStream) -> Arc<ConnShared> {
        Arc::new(ConnShared {
            end: Mutex::new(None),
            socket,
            reader: Mutex::new(None),
        })
    }

    /// The calling thread serves the connection (`Some`) or no longer does (`None`).
    pub fn set_reader(&self, serving: bool) {
        *self.reader.lock() = serving.then(super::sys::this_thread);
    }

    /// Interrupts the reader's blocking read (it sees why the connection ends), without
    /// touching the socket: the close stays orderly.
    pub fn wake_reader(&self) {
        if let Some(thread) = *self.reader.lock() {
            super::sys::wake_thread(thread);
        }
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
}

/// Reads and discards input until end of stream or `limit` passes, so that data the client
/// sent after our last line does not make the close a reset.
pub fn linger(mut stream: &TcpStream, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut sink = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}
