//! The acceptor thread (`xscp-accept`): accepts, admits or refuses, starts readers.
//!
//! It never blocks on a client: a refusal is one short write into an empty socket buffer,
//! and the refused connection lingers (closes in order) on a pooled thread. When the system
//! runs out of descriptors, or of threads for an admitted client, it refuses the one
//! client, logs it and backs off briefly instead of spinning (a refusal that gets no thread
//! to linger on closes at once, with no back-off: `accept` blocks until the next client);
//! it recovers by itself when resources return. It listens
//! with the largest backlog the system allows, so that a burst of connects is not lost.
//! It stops when the stop flag is set and it is woken ([`Waker`]), which needs no free
//! descriptor.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use crossbeam_channel::Sender;

use super::LINGER;
use super::admission::{Admission, Refusal};
use super::pool::{Job, Work};
use super::reader::{self, Accepted, ConnSettings, ToHub};
use super::shared::{ConnShared, linger};
use crate::protocol::reply;
use crate::sys;

/// How long the acceptor pauses after running out of a resource.
const BACKOFF: Duration = Duration::from_millis(100);

/// Most refused connections lingering at once; past it a refusal closes at once (and may
/// reset data the client sent meanwhile).
const MAX_LINGERING: usize = 64;

/// Refused connections lingering now.
static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// Arenas the allocator may use for all the connection threads: enough that they seldom
/// wait for each other, few enough that freed memory gathers where it can be given back.
const ARENA_MAX: i32 = 4;

/// What the sockets a listener accepts have from it, so that each does not cost a system
/// call for it.
#[derive(Clone, Copy, Debug, Default)]
struct Inherited {
    /// `TCP_NODELAY`.
    nodelay: bool,
}

impl Inherited {
    /// Gives `listener` the options its sockets should start with, where the system
    /// passes them on (Linux): `TCP_NODELAY`. Sockets the system made before, for clients
    /// already queued, do not have it. The read timeout is not among them: each reader sets
    /// its own, so that no reader can believe its socket has one it lacks (it would then
    /// block forever and never ping).
    fn set(listener: &TcpListener) -> Inherited {
        Inherited {
            nodelay: sys::nodelay_inherited(listener).is_ok(),
        }
    }
}

/// A descriptor kept in reserve: when the process runs out, it is given up for a moment so
/// that the waiting client can be accepted, told, and closed (instead of waiting in the
/// backlog while the acceptor spins). Another thread may take the descriptor it gave up
/// before it is taken again; then it is taken again at the next accept, when one is free,
/// instead of being lost for the rest of the run.
struct Reserve<F> {
    file: Option<File>,
    open: F,
}

impl<F: FnMut() -> std::io::Result<File>> Reserve<F> {
    fn new(open: F) -> Reserve<F> {
        let mut r = Reserve { file: None, open };
        r.keep();
        r
    }

    /// Takes the descriptor again if it is not held (a system call only then).
    fn keep(&mut self) {
        if self.file.is_none() {
            self.file = (self.open)().ok();
        }
    }

    /// Gives the descriptor up for `f`, then takes it again; `false` (and `f` not run) if
    /// none was held.
    fn spend(&mut self, f: impl FnOnce()) -> bool {
        if self.file.take().is_none() {
            return false;
        }
        f();
        self.keep();
        true
    }
}

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
    /// Set to stop; then wake the acceptor with its [`Waker`].
    pub stop: Arc<AtomicBool>,
}

/// Is this accept error a lack of resources (descriptors, memory, buffers)?
fn out_of_resources(e: &std::io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM (Linux numbers).
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

impl Acceptor {
    /// What wakes this acceptor once its stop flag is set; take it before [`Acceptor::run`].
    pub fn waker(&self) -> Waker {
        Waker {
            listener: self.listener.try_clone().ok(),
            addr: self.listener.local_addr().ok(),
        }
    }

    /// Accepts until stopped.
    pub fn run(self) {
        let backlog = sys::max_backlog();
        match sys::set_backlog(&self.listener, backlog) {
            Ok(()) => log::info!("listen backlog {backlog} (net.core.somaxconn)"),
            Err(e) => log::warn!("cannot raise the listen backlog to {backlog}: {e}"),
        }
        let inherited = Inherited::set(&self.listener);
        // Woken before it listened again, the socket listens anew: see the flag first.
        if self.stop.load(Ordering::SeqCst) {
            return log::debug!("acceptor stopped before it started");
        }
        // Before the first connection thread: threads created later share these arenas.
        if sys::cap_arenas(ARENA_MAX) {
            log::debug!("allocator arenas capped at {ARENA_MAX}");
        }
        let mut next_id = 1u64;
        let inherited = self.accept_queued(&mut next_id, inherited);
        let mut reserve = Reserve::new(|| File::open("/dev/null"));
        loop {
            let accepted = self.listener.accept();
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let id = next_id;
            match accepted {
                Ok((stream, peer)) => {
                    next_id += 1;
                    reserve.keep();
                    self.start(id, stream, peer, inherited);
                }
                Err(e) if out_of_resources(&e) => {
                    log::error!("accept failed: {e}; refusing one client and backing off");
                    let spent = reserve.spend(|| {
                        // Non-blocking: refuse the client that is waiting, if any — never
                        // one that arrives later, when descriptors may be free again.
                        let _ = self.listener.set_nonblocking(true);
                        if let Ok((stream, peer)) = self.listener.accept() {
                            next_id += 1;
                            let _ = stream.set_nonblocking(false);
                            refuse_now(&stream, id, &peer.to_string());
                        }
                        let _ = self.listener.set_nonblocking(false);
                    });
                    if !spent {
                        log::error!(
                            "no descriptor in reserve to refuse the waiting client with: \
                             it waits until one is free"
                        );
                    }
                    thread::sleep(BACKOFF);
                    // Out of descriptors, accept() fails at once even with no client
                    // waiting; wait for one (which needs no descriptor) instead of spinning.
                    sys::wait_readable(&self.listener);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => log::warn!("accept failed: {e}"),
            }
        }
        log::debug!("acceptor stopped");
    }

    /// Serves the client `peer` on `stream` (accept gives its address: no system call to ask
    /// for it), or refuses it. `inherited`: what the socket has from the listener.
    fn start(&self, id: u64, stream: TcpStream, peer: SocketAddr, inherited: Inherited) {
        // An IPv4 client of an IPv6 listener is known by its IPv4 address
        // (`::ffff:a.b.c.d` is `a.b.c.d`): the same client has the same address for the
        // per-address limits, its holds and the log, whatever the listener.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let ticket = match self.admission.admit(id, peer.ip()) {
            Ok(t) => t,
            Err(why) => return self.refuse(stream, id, &peer.to_string(), why),
        };
        if !inherited.nodelay {
            let _ = stream.set_nodelay(true);
        }
        let shared = ConnShared::new(stream);
        let kept = Arc::clone(&shared);
        ticket.attach(Arc::clone(&shared));
        let accepted = Accepted {
            id,
            peer,
            shared,
            ticket,
        };
        let work = ConnWork::Serve {
            conn: accepted,
            settings: Arc::clone(&self.settings),
            hub: self.hub.clone(),
        };
        if let Err((e, job)) = self.settings.readers.run(Job::new("xscp-conn", id, work)) {
            // The system is short of threads or memory: refuse this one client, back off.
            log::error!("conn={id} peer={peer} cannot start a thread: {e}");
            drop(job); // Frees the client's place.
            refuse_now(kept.socket(), id, &peer.to_string());
            thread::sleep(BACKOFF);
        }
    }

    /// Starts the clients that were queued before the listener had its options (their
    /// sockets were made without them, [`Inherited::set`]), setting those one by one, and
    /// says what later sockets inherit (nothing, if the listener cannot go back to
    /// blocking).
    fn accept_queued(&self, next_id: &mut u64, inherited: Inherited) -> Inherited {
        if self.listener.set_nonblocking(true).is_err() {
            return Inherited::default();
        }
        while let Ok((stream, peer)) = self.listener.accept() {
            let id = *next_id;
            *next_id += 1;
            let _ = stream.set_nonblocking(false);
            self.start(id, stream, peer, Inherited::default());
        }
        match self.listener.set_nonblocking(false) {
            Ok(()) => inherited,
            Err(e) => {
                log::warn!("cannot make the listener blocking again: {e}");
                Inherited::default()
            }
        }
    }

    /// Refuses a client over a limit: `-ERR [FULL]`, `cquit`, FIN, then the close lingers
    /// on a pooled thread like every other close (§7), so that what the client sent
    /// meanwhile does not turn it into a reset. Past [`MAX_LINGERING`] it closes at once.
    fn refuse(&self, stream: TcpStream, id: u64, peer: &str, why: Refusal) {
        let text = refusal_text(why);
        let Some(slot) = LingerSlot::take() else {
            log::warn!(
                "conn={id} peer={peer} refused: {text}; closed at once, {MAX_LINGERING} \
                 refused connections already linger"
            );
            say_full(&stream, text);
            return drain_now(&stream);
        };
        log::warn!("conn={id} peer={peer} refused: {text}");
        say_full(&stream, text);
        let job = Job::new("xscp-refuse", id, ConnWork::Refuse { stream, slot });
        if let Err((e, job)) = self.settings.readers.run(job) {
            log::warn!("conn={id} peer={peer} refusal closed at once: {e}");
            if let ConnWork::Refuse { stream, .. } = job.into_work() {
                drain_now(&stream);
            }
        }
    }
}

/// What the connection threads run.
pub enum ConnWork {
    /// Serves an admitted client (`xscp-conn-<id>`).
    Serve {
        conn: Accepted,
        settings: Arc<ConnSettings>,
        hub: Sender<ToHub>,
    },
    /// Closes a refused connection in order (`xscp-refuse-<id>`), holding its place
    /// among those that may linger at once.
    Refuse { stream: TcpStream, slot: LingerSlot },
}

impl Work for ConnWork {
    fn run(self) {
        match self {
            ConnWork::Serve {
                conn,
                settings,
                hub,
            } => reader::serve(conn, settings, hub),
            ConnWork::Refuse { stream, slot } => {
                let _ = linger(&stream, LINGER);
                drop(slot);
            }
        }
    }
}

/// Wakes the acceptor blocked in `accept` (or waiting for a client) so that it sees its
/// stop flag: shuts the listening socket's receiving side, through a second handle on it
/// taken at start, so that waking needs no free descriptor (the process may have none
/// left). Where that does not wake it, it connects to the listener.
pub struct Waker {
    listener: Option<TcpListener>,
    addr: Option<SocketAddr>,
}

impl Waker {
    /// Wakes the acceptor; it stops listening.
    pub fn wake(&self) {
        if let Some(listener) = &self.listener {
            match sys::shutdown_read(listener) {
                Ok(()) => return,
                Err(e) => log::debug!("cannot shut the listener down: {e}; connecting to it"),
            }
        }
        if let Some(addr) = self.addr {
            let _ = TcpStream::connect_timeout(&wake_address(addr), Duration::from_secs(1));
        }
    }
}

/// Where to connect to wake the acceptor: the bound address, with an unspecified IP
/// replaced by loopback.
fn wake_address(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// A place among the `MAX_LINGERING` refused connections that may linger at once. Only
/// `LingerSlot::take` makes one (its field is private), so every drop gives back a place
/// that was taken.
pub struct LingerSlot(());

impl LingerSlot {
    fn take() -> Option<LingerSlot> {
        if LINGERING.fetch_add(1, Ordering::SeqCst) >= MAX_LINGERING {
            LINGERING.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(LingerSlot(()))
    }
}

impl Drop for LingerSlot {
    fn drop(&mut self) {
        LINGERING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a refusal says.
fn refusal_text(why: Refusal) -> &'static str {
    match why {
        Refusal::ServerFull => reply::SERVER_FULL,
        Refusal::TooManyFromAddress => reply::FULL_FROM_ADDRESS,
        Refusal::OutOfResources => reply::FULL_OUT_OF_RESOURCES,
    }
}

/// Writes `-ERR [FULL] <text>` and `cquit server full`, then the FIN.
fn say_full(mut stream: &TcpStream, text: &str) {
    let lines = reply::refused_full(text);
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = stream.write_all(lines.as_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}

/// Refuses a client for lack of descriptors or threads: it cannot afford to linger (the
/// descriptor is needed back at once), so it drains what has arrived and closes.
fn refuse_now(stream: &TcpStream, id: u64, peer: &str) {
    let text = refusal_text(Refusal::OutOfResources);
    log::warn!("conn={id} peer={peer} refused: {text}");
    say_full(stream, text);
    drain_now(stream);
}

/// Reads what the client has already sent, without waiting, so that the close that
/// follows is less likely a reset.
fn drain_now(mut stream: &TcpStream) {
    let _ = stream.set_nonblocking(true);
    let mut sink = [0u8; 512];
    while let Ok(n) = stream.read(&mut sink) {
        if n == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reserve given up and not taken back (another thread took the descriptor) is
    /// taken again at the next accept: before, it stayed lost, and every client waiting
    /// while descriptors ran out stayed in the backlog unrefused.
    #[test]
    fn a_reserve_that_could_not_be_taken_back_is_taken_at_the_next_accept() {
        let opens = std::cell::Cell::new(0);
        // The second open (taking it back after the first refusal) fails.
        let mut reserve = Reserve::new(|| {
            opens.set(opens.get() + 1);
            match opens.get() {
                2 => Err(std::io::Error::from_raw_os_error(24)),
                _ => File::open("/dev/null"),
            }
        });
        let mut refused = 0;
        assert!(reserve.spend(|| refused += 1));
        assert!(!reserve.spend(|| refused += 1), "nothing held to give up");
        assert_eq!(refused, 1);
        reserve.keep(); // an accept succeeded: a descriptor is free again
        assert!(reserve.spend(|| refused += 1));
        assert_eq!(refused, 2);
        // Held: keep() opens nothing.
        assert_eq!(opens.get(), 4);
        reserve.keep();
        assert_eq!(opens.get(), 4);
    }
}
