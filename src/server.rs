//! Wiring: binds the listener, starts the hub and the acceptor, and runs the shutdown of
//! xscp(7) §7 (listener closed, every client told `cquit server shutting down`, orderly
//! closes, exit).

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, bounded};

use crate::config::Config;
use crate::hub::{Hub, Persist};
use crate::net::acceptor::Acceptor;
use crate::net::admission::Admission;
use crate::net::outbox::Writers;
use crate::net::pool::{Budget, Pool, readers_share};
use crate::net::reader::ConnSettings;
use crate::net::{LINGER, READER_STACK, WRITER_STACK};
use crate::protocol::fsm::{Event, State, next_state};
use crate::state::{self, Saved, Saver};

/// Capacity of the hub's inbox, in messages (one may carry up to 32 `chatm` lines): readers
/// wait (and stop reading) when it is full. Its slots become resident memory once used, so
/// it holds a burst, not a message per client.
const HUB_QUEUE: usize = 4 * 1024;

/// How often readers are woken while the server waits for connections to close.
const WAKE_EVERY: Duration = Duration::from_millis(50);

/// How long the server waits at shutdown for the last save to be written (§5.9).
const SAVE_WAIT: Duration = Duration::from_secs(120);

/// A bound server, not yet running.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    config: Config,
    /// `--state`: what the file held at start.
    restored: Saved,
    /// `--state`: the file's lock, which each save confirms.
    lock: Option<state::Lock>,
}

/// Logs a transition of the listening socket through the transition table.
fn listener_transition(addr: SocketAddr, from: State, event: Event) {
    match next_state(from, event) {
        Ok(to) => log::info!("listener addr={addr} {from} -> {to} on {event}"),
        Err(e) => log::error!("listener addr={addr} BUG: {e}"),
    }
}

impl Server {
    /// Binds the listening socket (CLOSED -> LISTEN).
    pub fn bind(config: Config) -> io::Result<Server> {
        let addrs: Vec<SocketAddr> = config.listen.to_socket_addrs()?.collect();
        let listener = TcpListener::bind(&addrs[..])?;
        let addr = listener.local_addr()?;
        listener_transition(addr, State::Closed, Event::BindAndListen);
        Ok(Server {
            listener,
            addr,
            config,
            restored: Saved::default(),
            lock: None,
        })
    }

    /// With `--state`: the holds to take back, as loaded from the file (§5.9), and the
    /// file's lock.
    pub fn restoring(mut self, state: Saved, lock: Option<state::Lock>) -> Server {
        self.restored = state;
        self.lock = lock;
        self
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` receives (or all its senders are gone), then shuts down in
    /// order and returns. False if it could not run (no hub thread, or with `--state` no
    /// saver), or if the state could not be saved at the end: the exit status says so.
    pub fn run(self, shutdown: Receiver<()>) -> bool {
        let c = &self.config;
        crate::sys::install_wake();
        let budget = Budget::from_system();
        let readers = readers_share(budget.max());
        log::debug!(
            "thread budget: {} threads, {readers} of them for readers (by {})",
            budget.max(),
            budget.source()
        );
        let settings = Arc::new(ConnSettings {
            session: Arc::new(c.session()),
            rate: c.rate,
            // An eighth of the budget is kept for the writers of connections behind.
            readers: Pool::limited(READER_STACK, Arc::clone(&budget), readers),
            writers: Arc::new(Writers {
                pool: Pool::new(WRITER_STACK, budget),
                sendq: c.sendq,
                write_timeout: c.write_timeout(),
            }),
        });
        let (hub_tx, hub_rx) = bounded(HUB_QUEUE);
        let mut hub = Hub::new(c.hub());
        match crate::net::outbox::helper::start() {
            Ok(helper) => hub = hub.with_helper(helper),
            Err(e) => log::warn!("cannot start the fanout helper ({e}): the hub writes alone"),
        }
        // --state (§5.9): the holds of the last run come back, and a saver writes the file.
        let mut saver = None;
        if let Some(path) = &c.state {
            let s = match Saver::start(path.clone(), self.lock) {
                Ok(s) => s,
                Err(e) => {
                    log::error!("cannot save state to {}: {e}", path.display());
                    return false;
                }
            };
            let bounds = state::Bounds {
                hold: c.hold,
                mailbox: c.mailbox,
            };
            let holds = state::prepare(self.restored, SystemTime::now(), bounds);
            let persist = Persist::new(s.handle(), c.state_interval, c.hold);
            hub = hub.with_state(persist, holds, path);
            saver = Some(s);
        }
        let hub_thread = thread::Builder::new()
            .name("xscp-hub".into())
            .spawn(move || hub.run(hub_rx));
        let hub_thread = match hub_thread {
            Ok(t) => t,
            Err(e) => {
                log::error!("cannot start the hub thread: {e}");
                return false;
            }
        };
        let admission = Admission::new(c.max_clients, c.max_per_ip);
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = Acceptor {
            listener: self.listener,
            admission: Arc::clone(&admission),
            settings,
            hub: hub_tx.clone(),
            stop: Arc::clone(&stop),
        };
        let waker = acceptor.waker();
        let acceptor_thread = thread::Builder::new()
            .name("xscp-accept".into())
            .spawn(move || acceptor.run());

        let _ = shutdown.recv();
        log::info!("shutting down: {} connections live", admission.live());

        // LISTEN -> CLOSED: stop accepting; wake the acceptor (needs no free descriptor).
        stop.store(true, Ordering::SeqCst);
        if let Ok(t) = acceptor_thread {
            waker.wake();
            let _ = t.join();
        }
        listener_transition(self.addr, State::Listen, Event::Close);

        // Every client: `cquit server shutting down`, FIN; wait for the orderly closes.
        // A reader blocked in a read is woken so that it logs its transition now, not when
        // its client closes; the hub tells the connections meanwhile, so a reader woken
        // before is woken again.
        let _ = hub_tx.send(crate::net::reader::ToHub::Shutdown);
        let deadline = Instant::now() + LINGER + Duration::from_secs(1);
        let mut closed = false;
        while !closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            admission.wake_all();
            closed = admission.wait_empty(left.min(WAKE_EVERY));
        }
        if !closed {
            log::warn!(
                "{} connections did not close in time: cutting them",
                admission.live()
            );
            admission.cut_all();
            admission.wait_empty(Duration::from_secs(2));
        }
        drop(hub_tx);
        if admission.live() == 0 {
            let _ = hub_thread.join();
        }
        let saved = saver.is_none_or(|saver| saver.finish(SAVE_WAIT));
        log::info!("server stopped");
        saved
    }
}

#[cfg(test)]
mod tests {
    //! A server in this process, over loopback sockets: what needs a fault no client can
    //! cause, a reader that panics ([`crate::net::reader::PANIC_NICK`]).

    use std::io::{BufRead, BufReader, Write};
    use std::net::{IpAddr, TcpStream};

    use crossbeam_channel::bounded;
    use parking_lot::{Condvar, Mutex};
    use socket2::{Domain, Socket, Type};

    use super::*;
    use crate::net::reader::PANIC_NICK;
    use crate::protocol::reply;

    /// How long a test waits for a line or a log line before it fails.
    const WAIT: Duration = Duration::from_secs(10);

    /// The log of this test process, for the test that reads it.
    struct Capture {
        lines: Mutex<Vec<String>>,
        added: Condvar,
    }

    static LOG: Capture = Capture {
        lines: Mutex::new(Vec::new()),
        added: Condvar::new(),
    };

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }

        fn log(&self, record: &log::Record<'_>) {
            self.lines.lock().push(record.args().to_string());
            self.added.notify_all();
        }

        fn flush(&self) {}
    }

    /// Waits until a log line satisfies `pred`.
    fn wait_log(pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + WAIT;
        let mut lines = LOG.lines.lock();
        while !lines.iter().any(|l| pred(l)) {
            assert!(
                !LOG.added.wait_until(&mut lines, deadline).timed_out(),
                "no such log line"
            );
        }
    }

    /// A client over loopback.
    struct Client {
        reader: BufReader<TcpStream>,
        peer: String,
    }

    impl Client {
        /// Connects from `ip` and reads the greeting.
        fn connect(addr: SocketAddr, ip: IpAddr) -> Client {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
            socket
                .bind(&SocketAddr::new(ip, 0).into())
                .expect("bind the client");
            socket.connect(&addr.into()).expect("connect");
            let stream = TcpStream::from(socket);
            stream.set_read_timeout(Some(WAIT)).expect("timeout");
            let peer = format!("peer={} ", stream.local_addr().expect("address"));
            let mut c = Client {
                reader: BufReader::new(stream),
                peer,
            };
            assert_eq!(c.line().as_deref(), Some(reply::GREETING.trim_end()));
            c
        }

        /// Connects from `ip` and registers `name`.
        fn register(addr: SocketAddr, ip: IpAddr, name: &str) -> Client {
            let mut c = Client::connect(addr, ip);
            c.send(&format!("uname {name}"));
            c.expect(&format!("+OK you are {name}"));
            c
        }

        fn send(&mut self, line: &str) {
            let stream = self.reader.get_mut();
            stream
                .write_all(format!("{line}\r\n").as_bytes())
                .expect("send");
        }

        /// The next line, without its CRLF; `None` at end of stream.
        fn line(&mut self) -> Option<String> {
            let mut line = String::new();
            match self.reader.read_line(&mut line).expect("read") {
                0 => None,
                _ => Some(line.trim_end_matches("\r\n").to_string()),
            }
        }

        fn expect(&mut self, want: &str) {
            assert_eq!(self.line().as_deref(), Some(want));
        }

        fn until_eof(&mut self) -> Vec<String> {
            std::iter::from_fn(|| self.line()).collect()
        }
    }

    fn still_chatting(ann: &mut Client, ben: &mut Client, text: &str) {
        ann.send(&format!("chatm ann ben {text}"));
        ann.expect(reply::RELAYED.trim_end());
        ben.expect(&format!("chatm ann ben {text}"));
        ben.send("chatr ann ben");
        ann.expect("chatr ann ben");
    }

    /// §7 a panic inside one client's thread does not take the server down: the log shows
    /// `BUG: reader panicked`, that connection closes (after its `+OK you are boom`), the
    /// name is freed (`--hold 0`: `boom` registers again, and panics again; `Boom` from
    /// another address stays), and other clients keep chatting. The reader takes the
    /// hub's answer to `uname` (and panics) when the next line comes, or when the client
    /// ends its side: both are tried.
    #[test]
    fn a_panic_in_a_connection_thread_is_contained_and_frees_the_name() {
        log::set_logger(&LOG).expect("the only logger of the unit tests");
        log::set_max_level(log::LevelFilter::Info);
        let config = Config {
            listen: "127.0.0.1:0".into(),
            hold: Duration::ZERO,
            ..Config::default()
        };
        let server = Server::bind(config).expect("bind");
        let addr = server.local_addr();
        let (stop, shutdown) = bounded(1);
        let running = thread::spawn(move || server.run(shutdown));
        let here: IpAddr = [127, 0, 0, 1].into();
        let mut ann = Client::register(addr, here, "ann");
        let mut ben = Client::register(addr, here, "ben");

        for ends_its_side in [false, true] {
            let mut boom = Client::connect(addr, here);
            let t = boom.peer.clone();
            boom.send(&format!("uname {PANIC_NICK}"));
            if ends_its_side {
                let _ = boom.reader.get_mut().shutdown(std::net::Shutdown::Write);
            } else {
                boom.send("ping next");
            }
            assert_eq!(boom.until_eof(), [format!("+OK you are {PANIC_NICK}")]);
            wait_log(|l| l.contains(&t) && l.contains("BUG: reader panicked"));
            wait_log(|l| l.contains(&t) && l.contains("ESTABLISHED -> ABORTED"));
            wait_log(|l| l.contains(&t) && l.contains(" -> CLOSED on close"));
            still_chatting(&mut ann, &mut ben, "after a panic");
        }

        let mut again = Client::connect(addr, [127, 0, 0, 2].into());
        again.send("uname Boom");
        again.expect("+OK you are Boom");
        again.send("users");
        for line in ["+OK 3 users", "ann", "ben", "Boom", "."] {
            again.expect(line);
        }
        assert!(!running.is_finished(), "the server stopped");
        stop.send(()).expect("the server waits for the shutdown");
        running.join().expect("the server ran to its end");
    }
}
