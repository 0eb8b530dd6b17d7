//! The acceptor thread (`xscp-accept`): accepts, admits or refuses, starts readers.
//!
//! It never blocks on a client: a refusal is one short write into an empty socket buffer.
//! When the system runs out of descriptors or threads it refuses the one client, logs it
//! and backs off briefly instead of spinning; it recovers by itself when resources return.
//! It stops when the stop flag is set and it is woken (by a connection to itself).

use std::io::{ErrorKind, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use crossbeam_channel::Sender;

use super::READER_STACK;
use super::admission::{Admission, Refusal};
use super::conn::{self, Accepted, ConnSettings};
use super::outbox::ConnShared;
use crate::hub::ToHub;
use crate::protocol::reply::{self, Code};

/// How long the acceptor pauses after running out of a resource.
const BACKOFF: Duration = Duration::from_millis(100);

/// Everything the acceptor needs.
pub struct Acceptor {
    /// The listening socket.
    pub listener: TcpListener,
    /// Connection counts and limits.
    pub admission: Arc<Admission>,
    /// Settings handed to every connection.
    pub settings: Arc<ConnSettings>,
    /// The hub's inbox.
    pub hub: Sender<ToHub>,
    /// Set to stop; then wake the acceptor by connecting to it.
    pub stop: Arc<AtomicBool>,
}

/// Is this accept error a lack of resources (descriptors, memory, buffers)?
fn out_of_resources(e: &std::io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM (Linux numbers).
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

impl Acceptor {
    /// Accepts until stopped.
    pub fn run(self) {
        let mut next_id = 1u64;
        for incoming in self.listener.incoming() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let stream = match incoming {
                Ok(s) => s,
                Err(e) if out_of_resources(&e) => {
                    log::error!("accept failed, backing off: {e}");
                    thread::sleep(BACKOFF);
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    continue;
                }
            };
            let id = next_id;
            next_id += 1;
            self.start(id, stream);
        }
        log::debug!("acceptor stopped");
    }

    fn start(&self, id: u64, stream: TcpStream) {
        let Ok(peer) = stream.peer_addr() else {
            return; // Gone before we looked: nothing to serve.
        };
        let ticket = match self.admission.admit(id, peer.ip()) {
            Ok(t) => t,
            Err(why) => return refuse(stream, id, &peer.to_string(), why),
        };
        let _ = stream.set_nodelay(true);
        let shared = ConnShared::new(stream);
        ticket.attach(Arc::clone(&shared));
        let accepted = Accepted {
            id,
            peer,
            shared,
            ticket,
        };
        let (settings, hub) = (Arc::clone(&self.settings), self.hub.clone());
        let spawned = thread::Builder::new()
            .name(format!("xscp-conn-{id}"))
            .stack_size(READER_STACK)
            .spawn(move || conn::serve(accepted, settings, hub));
        if let Err(e) = spawned {
            // The closure (socket and ticket) is dropped: the client is closed and its place
            // freed. Back off: the system is short of threads or memory.
            log::error!("conn={id} peer={peer} refused: cannot start a thread: {e}");
            thread::sleep(BACKOFF);
        }
    }
}

/// Refuses a client over a limit: `-ERR [FULL]`, `cquit`, FIN, close.
fn refuse(mut stream: TcpStream, id: u64, peer: &str, why: Refusal) {
    let text = match why {
        Refusal::ServerFull => "server full".to_string(),
        Refusal::TooManyFromAddress => {
            "server full (too many connections from your address)".into()
        }
    };
    log::warn!("conn={id} peer={peer} refused: {text}");
    let lines = reply::err(Code::Full, &text) + &reply::cquit("server full");
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = stream.write_all(lines.as_bytes());
    let _ = stream.shutdown(Shutdown::Write);
    // Drain what the client may already have sent, so the close is not a reset.
    let _ = stream.set_nonblocking(true);
    let mut sink = [0u8; 512];
    while let Ok(n) = std::io::Read::read(&mut stream, &mut sink) {
        if n == 0 {
            break;
        }
    }
}
