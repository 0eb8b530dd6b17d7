//! State shared by one connection's reader, writer and outbox, and by the admission table:
//! the socket, and why the connection ends when someone other than its reader decided it.

use std::net::{Shutdown, TcpStream};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::protocol::cause::Cause;

/// State shared by a connection's reader, writer and outbox.
#[derive(Debug)]
pub struct ConnShared {
    /// Why the connection is ending, when someone other than its reader decided it.
    end: Mutex<Option<Cause>>,
    /// The socket: read by the reader, written by the writer, cut by whoever ends it.
    socket: TcpStream,
}

impl ConnShared {
    /// Shared state around the connection's `socket`.
    pub fn new(socket: TcpStream) -> Arc<ConnShared> {
        Arc::new(ConnShared {
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
}
