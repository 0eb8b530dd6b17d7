//! Wiring: binds the listener, starts the hub and the acceptor, and runs the shutdown of
//! PROTOCOL.md §7 (listener closed, every client told `cquit server shutting down`, orderly
//! closes, exit).

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, bounded};

use crate::config::Config;
use crate::hub::{Hub, HubConfig, Persist};
use crate::net::acceptor::Acceptor;
use crate::net::admission::Admission;
use crate::net::conn::ConnSettings;
use crate::net::outbox::Writers;
use crate::net::pool::{Budget, Pool};
use crate::net::{LINGER, READER_STACK, WRITER_STACK};
use crate::protocol::framing::MAX_PDU;
use crate::protocol::fsm::{Event, State, next_state};
use crate::protocol::reply::{self, capa};
use crate::protocol::session::Limits;
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
        })
    }

    /// With `--state`: the holds to take back, as loaded from the file (§5.9).
    pub fn restoring(mut self, state: Saved) -> Server {
        self.restored = state;
        self
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` receives (or all its senders are gone), then shuts down in
    /// order and returns.
    pub fn run(self, shutdown: Receiver<()>) {
        let c = &self.config;
        crate::net::sys::install_wake();
        let budget = Budget::from_system();
        log::debug!("thread budget: {} threads", budget.max());
        let settings = Arc::new(ConnSettings {
            limits: Limits {
                max_retries: c.max_retries,
            },
            negotiate_timeout: c.negotiate_timeout,
            ping_interval: c.ping_interval,
            ping_timeout: c.ping_timeout,
            sendq: c.sendq,
            rate: c.rate,
            capa: capa(&[
                ("XSCP", "1".into()),
                ("PDU", (MAX_PDU + 2).to_string()),
                ("RETRIES", c.max_retries.to_string()),
                ("NEGOTIATE", reply::seconds(c.negotiate_timeout)),
                (
                    "PING",
                    format!(
                        "{} {}",
                        reply::seconds(c.ping_interval),
                        reply::seconds(c.ping_timeout)
                    ),
                ),
                ("HOLD", reply::seconds(c.hold)),
                ("MAILBOX", c.mailbox.to_string()),
                ("RATE", c.rate.to_string()),
                ("BROADCAST", String::new()),
                ("RECEIPTS", String::new()),
                ("USERS", String::new()),
                ("NOTIF", String::new()),
            ]),
            readers: Pool::new(READER_STACK, Arc::clone(&budget)),
            writers: Arc::new(Writers {
                pool: Pool::new(WRITER_STACK, budget),
                sendq: c.sendq,
                write_timeout: c.ping_timeout,
            }),
            panic_nick: std::env::var("XSCPD_TEST_PANIC_NICK").ok(),
        });
        let (hub_tx, hub_rx) = bounded(HUB_QUEUE);
        let mut hub = Hub::new(HubConfig {
            hold: c.hold,
            max_holds: c.max_clients.saturating_mul(4).max(1024),
            mailbox: c.mailbox,
            mailbox_total: c.mailbox_total,
        });
        // --state (§5.9): the holds of the last run come back, and a saver writes the file.
        let mut saver = None;
        if let Some(path) = &c.state {
            let s = match Saver::start(path.clone()) {
                Ok(s) => s,
                Err(e) => {
                    log::error!("cannot save state to {}: {e}", path.display());
                    return;
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
                return;
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
        let _ = hub_tx.send(crate::net::ToHub::Shutdown);
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
        if let Some(saver) = saver {
            if !saver.finish(SAVE_WAIT) {
                log::error!("the state was not saved within {SAVE_WAIT:?}");
            }
        }
        log::info!("server stopped");
    }
}
