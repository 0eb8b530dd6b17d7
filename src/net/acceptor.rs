//! The acceptor thread (`xscp-accept`): accepts, admits or refuses, starts readers.
//!
//! It never blocks on a client: a refusal is one short write into an empty socket buffer.
//! When the system runs out of descriptors or threads it refuses the one client, logs it
//! and backs off briefly instead of spinning; it recovers by itself when resources return.
//! It stops when the stop flag is set and it is woken (by a connection to itself).

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use crossbeam_channel::Sender;

use super::ToHub;
use super::admission::{Admission, Refusal};
use super::conn::{self, Accepted, ConnSettings};
use super::pool::Job;
use super::shared::ConnShared;
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
        // A descriptor kept in reserve: when the process runs out, it is given up for a
        // moment so that the waiting client can be accepted, told, and closed (instead of
        // waiting in the backlog while the acceptor spins).
        let mut reserve = File::open("/dev/null").ok();
        loop {
            let accepted = self.listener.accept();
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let id = next_id;
            match accepted {
                Ok((stream, _)) => {
                    next_id += 1;
                    self.start(id, stream);
                }
                Err(e) if out_of_resources(&e) => {
                    log::error!("accept failed: {e}; refusing one client and backing off");
                    if reserve.take().is_some() {
                        // Non-blocking: refuse the client that is waiting, if any — never
                        // one that arrives later, when descriptors may be free again.
                        let _ = self.listener.set_nonblocking(true);
                        if let Ok((stream, peer)) = self.listener.accept() {
                            next_id += 1;
                            let _ = stream.set_nonblocking(false);
                            refuse(&stream, id, &peer.to_string(), Refusal::OutOfResources);
                        }
                        let _ = self.listener.set_nonblocking(false);
                        reserve = File::open("/dev/null").ok();
                    }
                    thread::sleep(BACKOFF);
                    // Out of descriptors, accept() fails at once even with no client
                    // waiting; wait for one (which needs no descriptor) instead of spinning.
                    wait_for_client(&self.listener);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => log::warn!("accept failed: {e}"),
            }
        }
        log::debug!("acceptor stopped");
    }

    fn start(&self, id: u64, stream: TcpStream) {
        let peer = match stream.peer_addr() {
            Ok(peer) => peer,
            Err(e) => {
                // Reset before it could be served: nothing to serve, but say so.
                log::info!("conn={id} gone before it was served: {e}");
                return;
            }
        };
        let ticket = match self.admission.admit(id, peer.ip()) {
            Ok(t) => t,
            Err(why) => return refuse(&stream, id, &peer.to_string(), why),
        };
        let _ = stream.set_nodelay(true);
        let shared = ConnShared::new(stream);
        let kept = Arc::clone(&shared);
        ticket.attach(Arc::clone(&shared));
        let accepted = Accepted {
            id,
            peer,
            shared,
            ticket,
        };
        let (settings, hub) = (Arc::clone(&self.settings), self.hub.clone());
        let job = Job::new(format!("xscp-conn-{id}"), move || {
            conn::serve(accepted, settings, hub)
        });
        if let Err((e, job)) = self.settings.readers.run(job) {
            // The system is short of threads or memory: refuse this one client, back off.
            log::error!("conn={id} peer={peer} cannot start a thread: {e}");
            drop(job); // Frees the client's place.
            refuse(
                kept.socket(),
                id,
                &peer.to_string(),
                Refusal::OutOfResources,
            );
            thread::sleep(BACKOFF);
        }
    }
}

/// Refuses a client over a limit: `-ERR [FULL]`, `cquit`, FIN, close.
fn refuse(mut stream: &TcpStream, id: u64, peer: &str, why: Refusal) {
    let text = match why {
        Refusal::ServerFull => "server full",
        Refusal::TooManyFromAddress => "server full (too many connections from your address)",
        Refusal::OutOfResources => "server full (out of resources)",
    };
    log::warn!("conn={id} peer={peer} refused: {text}");
    let lines = reply::err(Code::Full, text) + &reply::cquit("server full");
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = stream.write_all(lines.as_bytes());
    let _ = stream.shutdown(Shutdown::Write);
    // Drain what the client may already have sent, so the close is not a reset.
    let _ = stream.set_nonblocking(true);
    let mut sink = [0u8; 512];
    while let Ok(n) = stream.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
}

/// Blocks until a connection is waiting on `listener` (or an error). Used when accept()
/// cannot be, because it fails at once while the process has no descriptor to spare.
#[cfg(unix)]
fn wait_for_client(listener: &TcpListener) {
    use std::ffi::{c_int, c_short, c_ulong};
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct PollFd {
        fd: c_int,
        events: c_short,
        revents: c_short,
    }
    unsafe extern "C" {
        fn poll(fds: *mut PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
    }
    const POLLIN: c_short = 1;
    let mut pfd = PollFd {
        fd: listener.as_raw_fd(),
        events: POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid, initialised pollfd that lives across the call, matching
    // nfds = 1; the descriptor belongs to `listener`, which outlives the call.
    unsafe {
        poll(&mut pfd, 1, -1);
    }
}

#[cfg(not(unix))]
fn wait_for_client(_listener: &TcpListener) {}
