//! State shared by one connection's reader, writer and outbox, and by the admission table:
//! the socket, and why the connection ends when someone other than its reader decided it;
//! and the linger of an orderly close.

use std::io::{ErrorKind, Read};
use std::net::{Shutdown, TcpStream};
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::protocol::cause::Cause;

/// State shared by a connection's reader, writer and outbox. Every connection keeps one
/// for its whole life, so what is rarely there is boxed: the cause is set once, at the end.
#[derive(Debug)]
pub struct ConnShared {
    /// Why the connection is ending, when someone other than its reader decided it.
    end: Mutex<Option<Box<Cause>>>,
    /// The socket: read by the reader, written by the writer, cut by whoever ends it.
    socket: TcpStream,
    /// The reader's thread while it serves the connection, for [`ConnShared::wake_reader`]:
    /// a pthread id, never 0 (`None` where threads cannot be woken: there the id is 0).
    reader: Mutex<Option<NonZeroU64>>,
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
        *self.reader.lock() = serving
            .then(crate::sys::this_thread)
            .and_then(NonZeroU64::new);
    }

    /// Interrupts the reader's blocking read (it sees why the connection ends), without
    /// touching the socket: the close stays orderly.
    pub fn wake_reader(&self) {
        if let Some(thread) = *self.reader.lock() {
            crate::sys::wake_thread(thread.get());
        }
    }

    /// Records why the connection ends; the first cause recorded wins.
    pub fn set_end(&self, cause: Cause) {
        self.end.lock().get_or_insert_with(|| Box::new(cause));
    }

    /// The recorded cause, if any.
    pub fn end(&self) -> Option<Cause> {
        self.end.lock().as_deref().cloned()
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

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn the_first_cause_wins_and_the_state_stays_small() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let shared = ConnShared::new(client);
        assert_eq!(shared.end(), None);
        shared.set_end(Cause::SlowConsumer);
        shared.set_end(Cause::Reset);
        assert_eq!(shared.end(), Some(Cause::SlowConsumer));
        // Five words on a 64-bit machine (eleven with the cause inline).
        assert!(std::mem::size_of::<ConnShared>() <= 5 * std::mem::size_of::<usize>());
    }
}
