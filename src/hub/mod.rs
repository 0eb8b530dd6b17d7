//! The hub thread: it owns the nickname map, the name holds (§5.7), the pending receipts and
//! the mailboxes (§5.8), and routes every message between clients (xscp(7) §5, §7).
//!
//! Readers send it [`ToHub`] messages over one bounded channel; it answers the few
//! synchronous requests (registration, rename) through a one-shot slot per request and writes to
//! clients only through their [`Output`] sides, which never block. So the hub never waits
//! for a client, and one slow client cannot stall it: a relayed line past the hard bound
//! (4 × `--sendq`) drops that client at once; below it the output side decides (§7: over
//! `--sendq` and its socket takes no more), and a response to the client's own command is
//! never refused.
//!
//! Ordering: every response to a client passes through here, in the order its reader sent
//! the commands, so responses leave in command order and `+OK message relayed` is queued to
//! the sender before the message is queued to its recipient (hence before any receipt).
//!
//! The hub knows no socket: [`Output`] (in `output.rs`) is the whole of what it needs from
//! a client's connection, and [`Hub`] is generic over it (statically dispatched; the
//! network layer's outbox in the server, an in-memory record in the tests, `tests/`,
//! one file a group of rules around one fixture). `handle` dispatches each message, and
//! `request` each [`Request`], to its handler; the handlers of a rule live in its file:
//! - `names.rs`: registration, a return to a held name (resume) and renames;
//! - `relay.rs`: `chatm` and `chatr`, and how a line enters a client's queue.
//!
//! The rules with state of their own live in their own types:
//! - `holds.rs`: `Holds`, names held for a departed client's address (§5.7);
//! - `receipts.rs`: `Receipts`, the receipts one client owes (§5.6 chatr) and the copies of
//!   the messages that await them (§5.8);
//! - `mailbox.rs`: `Mailbox`, what a held name keeps for its return (§5.8), and the
//!   memory `--mailbox-total` counts for a line;
//! - `unsaved.rs`: `Unsaved`, what a shutdown without `--state` discards (§5.8 Audit);
//! - `chats.rs`: `Chats`, the `chatm` lines of one read, given to the hub as one message;
//! - `answer.rs`: the one-shot slot through which a reader gets the answer to `uname` or
//!   `cname`;
//! - `fastmap.rs`: the hasher of the hub's maps;
//! - `persist.rs`: `--state` (§5.9): the holds taken back at start, and what the hub hands
//!   the saver every `--state-interval` and at shutdown.
//!
//! Sessions (§5.8): a client that comes back to a held name continues the departed one's
//! session, so that receipts for what it sent still reach it. A session is named by the
//! connection that began it; the receipts owed to a sender record its session, which is
//! its connection unless it came back (then `resumed` maps it to the connection now).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use crate::conn_id::{ConnId, Tag};
use crate::protocol::cause::Cause;
use crate::protocol::nick::{Nick, NickKey};
use crate::protocol::reply;
pub use crate::protocol::request::Answer;
use crate::protocol::request::Request;

mod answer;
mod chats;
mod fastmap;
mod holds;
mod mailbox;
mod names;
mod output;
mod persist;
mod receipts;
mod relay;
mod unsaved;

pub use answer::{Pending, Promise, slot};
pub use chats::Chats;
use fastmap::{FastMap, FastSet};
use holds::Holds;
pub use mailbox::{LINE_OVERHEAD, cost};
pub use output::{Output, Overflow, Wake};
pub use persist::Persist;
use receipts::Receipts;
pub use unsaved::Unsaved;

/// What readers (and the server) tell the hub; `O` is a client's output side.
#[derive(Debug)]
pub enum ToHub<O> {
    /// A connection was accepted (NEGOTIATING).
    Accepted {
        /// The connection.
        conn: ConnId,
        /// Its log tag (`conn=.. peer=..`).
        tag: Tag,
        /// The peer's address, for holds.
        ip: IpAddr,
        /// Its output side.
        outbox: O,
    },
    /// A command the hub carries out ([`Request`]), answered through `answer` if the
    /// session takes the answer (`Hand::Wait`, `Hand::Later`); else it counts as a command
    /// answered (see [`Output::handled`]).
    Request {
        /// The asking connection.
        conn: ConnId,
        /// What it asks.
        request: Request,
        /// Where to answer, if the session waits.
        answer: Option<Promise>,
    },
    /// `chatm`: relay each line of `chats`, in order (each is one command).
    Chat {
        /// The sender.
        conn: ConnId,
        /// The lines, with their recipient fields.
        chats: Chats,
    },
    /// A response the reader produced itself; it passes here to keep its place in line.
    Respond {
        /// The connection.
        conn: ConnId,
        /// The response line(s).
        line: String,
    },
    /// The connection ends: release everything it held, and send `lines` and close.
    Depart {
        /// The connection.
        conn: ConnId,
        /// The last lines to send; `None` when its reader sends them and closes itself
        /// (the hub owed it nothing more).
        lines: Option<String>,
        /// Answered once the departure is taken (the name held, its mailbox kept): the
        /// reader logs the close after that.
        done: Promise,
    },
    /// The server is shutting down: every client gets `cquit server shutting down`.
    Shutdown,
}

/// The hub's settings.
#[derive(Clone, Copy, Debug)]
pub struct HubConfig {
    /// How long a departed client's name is held for its address (zero: not at all).
    pub hold: Duration,
    /// `--max-holds`: the most names held at once; past it the oldest hold of the address
    /// holding the most is dropped.
    pub max_holds: usize,
    /// `--max-holds-per-ip`: the most names held at once for one address; past it that
    /// address's oldest hold is dropped.
    pub max_holds_per_ip: usize,
    /// `--mailbox`: the most bytes of copies one client, or one held name, keeps.
    pub mailbox: usize,
    /// `--mailbox-total`: the most memory of copies and mailboxes in all, each line counted
    /// with its bookkeeping ([`mailbox::cost`]).
    pub mailbox_total: usize,
}

#[derive(Debug)]
struct Client<O> {
    tag: Tag,
    ip: IpAddr,
    outbox: O,
    nick: Option<Nick>,
    /// Its session: the connection that began it (itself, unless it came back).
    session: ConnId,
    /// The receipts it owes, with the copies of their messages (allocated with the first
    /// message it is sent: an idle client's entry stays small, and the map keeps spare room
    /// for more entries than there are clients).
    receipts: Receipts,
}

/// Writers given output are woken at the latest after this many commands (a batch of
/// `chatm` lines counts each line; and whenever the hub's inbox runs empty, or a queue
/// holds `WAKE_BYTES`), so that output never waits long for its writer.
const WAKE_BATCH: usize = 4096;

/// A burst that gave output to at least this many clients (a broadcast, nearly always)
/// shares its writing: the hub's [`Helper`] writes half of the queues while the hub writes
/// the other half, so that a fan-out's system calls use both cores.
pub const SHARE_WAKES: usize = 64;

/// Writes, on another thread, the queues the hub hands over ([`Output::wake_now`] on each);
/// gives them back if it is still busy with earlier ones, and the hub writes them itself.
/// The hub never waits for it.
pub type Helper<O> = Box<dyn FnMut(Vec<O>) -> Result<(), Vec<O>> + Send>;

/// The hub's state. Run it with [`Hub::run`] on its own thread.
pub struct Hub<O> {
    clients: FastMap<ConnId, Client<O>>,
    names: FastMap<NickKey, ConnId>,
    holds: Holds,
    /// The sessions that came back, to the connection that continues each.
    resumed: FastMap<ConnId, ConnId>,
    /// The memory of the copies kept for all clients, as counted against `--mailbox-total`.
    copies: usize,
    /// `--mailbox`
    mailbox: usize,
    /// `--mailbox-total`
    mailbox_total: usize,
    /// The clients with notifications on (`notif on`): an event costs a pass over them,
    /// not over every client.
    subscribers: FastSet<ConnId>,
    /// Clients whose outbox overflowed while handling the current message.
    doomed: Vec<ConnId>,
    /// Clients whose queue is to be written at the end of the burst ([`Output::wake_now`]).
    wakes: Vec<ConnId>,
    /// Writes half of a large burst's queues ([`SHARE_WAKES`]); without one the hub
    /// writes them all.
    helper: Option<Helper<O>>,
    shutting_down: bool,
    /// `--state` (§5.9): saves and their timer; see `persist.rs`.
    persist: Option<Persist>,
}

impl<O: Output> Hub<O> {
    /// An empty hub.
    pub fn new(config: HubConfig) -> Hub<O> {
        Hub {
            clients: FastMap::default(),
            names: FastMap::default(),
            holds: Holds::new(config.hold, config.max_holds, config.max_holds_per_ip),
            resumed: FastMap::default(),
            copies: 0,
            mailbox: config.mailbox,
            mailbox_total: config.mailbox_total,
            subscribers: FastSet::default(),
            doomed: Vec::new(),
            wakes: Vec::new(),
            helper: None,
            shutting_down: false,
            persist: None,
        }
    }

    /// Handles messages until every sender is gone.
    pub fn run(mut self, rx: Receiver<ToHub<O>>) {
        let mut handled = 0usize;
        loop {
            let msg = match rx.try_recv() {
                Ok(msg) => msg,
                Err(TryRecvError::Empty) => {
                    // The burst is over: wake the writers it gave work to, then wait (until
                    // the next hold expires, if any: its mailbox ends with it).
                    self.wake_writers();
                    // The next timer: a hold's expiry, or a periodic save (§5.9).
                    let next = match (self.holds.next_expiry(), self.next_save()) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    let got = match next {
                        Some(t) => rx.recv_deadline(t),
                        None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    };
                    match got {
                        Ok(msg) => msg,
                        Err(RecvTimeoutError::Timeout) => {
                            let now = Instant::now();
                            self.holds.purge(now);
                            self.save_if_due(now);
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                Err(TryRecvError::Disconnected) => break,
            };
            handled += self.handle(msg);
            if handled >= WAKE_BATCH {
                handled = 0;
                self.wake_writers();
                // A hub that never runs empty still saves on time (§5.9).
                self.save_if_due(Instant::now());
            }
        }
        self.wake_writers();
        log::debug!("hub: all readers gone, stopping");
    }

    /// This hub, sharing the writing of large bursts with `helper` ([`SHARE_WAKES`]).
    pub fn with_helper(mut self, helper: Helper<O>) -> Hub<O> {
        self.helper = Some(helper);
        self
    }

    /// Gets written every queue given output since the last call ([`Output::wake_now`]):
    /// by the hub, and if there are at least [`SHARE_WAKES`], the last half by its helper.
    fn wake_writers(&mut self) {
        let mut given_back = Vec::new();
        if let Some(helper) = &mut self.helper
            && self.wakes.len() >= SHARE_WAKES
        {
            let half = self.wakes.len() / 2;
            let theirs = self
                .wakes
                .drain(half..)
                .filter_map(|conn| self.clients.get(&conn))
                .map(|c| c.outbox.clone())
                .collect();
            // A busy helper gives them back: the hub writes them after its own half.
            given_back = helper(theirs).err().unwrap_or_default();
        }
        for conn in self.wakes.drain(..) {
            if let Some(c) = self.clients.get(&conn) {
                c.outbox.wake_now();
            }
        }
        for outbox in given_back {
            outbox.wake_now();
        }
    }

    /// Handles one message, then drops any client that overflowed meanwhile. Returns how
    /// many commands it carried (a batch of `chatm` lines counts each line).
    pub fn handle(&mut self, msg: ToHub<O>) -> usize {
        let (answered, commands) = match &msg {
            ToHub::Chat { conn, chats } => (Some(*conn), chats.len()),
            ToHub::Request {
                conn, answer: None, ..
            }
            | ToHub::Respond { conn, .. } => (Some(*conn), 1),
            _ => (None, 1),
        };
        match msg {
            ToHub::Accepted {
                conn,
                tag,
                ip,
                outbox,
            } => self.accepted(conn, tag, ip, outbox),
            ToHub::Request {
                conn,
                request,
                answer,
            } => {
                let done = self.request(conn, request);
                if let Some(answer) = answer {
                    answer.answer(done);
                }
            }
            ToHub::Chat { conn, chats } => {
                for (line, recipient) in chats.iter() {
                    self.chat(conn, line, recipient);
                    self.drop_doomed();
                }
            }
            ToHub::Respond { conn, line } => self.send(conn, &line),
            ToHub::Depart { conn, lines, done } => {
                if let (Some(c), Some(lines)) = (self.clients.get(&conn), lines) {
                    c.outbox.finish(&lines);
                }
                self.remove(conn);
                done.answer(Answer::Done);
            }
            ToHub::Shutdown => self.shutdown(),
        }
        if let Some(c) = answered.and_then(|conn| self.clients.get(&conn)) {
            c.outbox.handled(commands as u64);
        }
        self.drop_doomed();
        commands
    }

    /// Carries out what a session asks: each [`Request`] has its handler.
    fn request(&mut self, conn: ConnId, request: Request) -> Answer {
        match request {
            Request::Register { nick, attempt } => return self.register(conn, nick, attempt),
            Request::Rename(nick) => return self.rename(conn, nick),
            Request::Receipt { line, sender } => self.receipt(conn, line, sender),
            Request::Users => self.users(conn),
            Request::Notif(on) => self.notif(conn, on),
        }
        Answer::Done
    }

    /// Drops every client whose queue overflowed (the hard bound) while the hub handled the
    /// last line.
    fn drop_doomed(&mut self) {
        while let Some(conn) = self.doomed.pop() {
            if let Some(c) = self.clients.get(&conn) {
                log::warn!(
                    "{} output queue over the hard bound (4 x --sendq): dropping slow consumer",
                    c.tag
                );
                c.outbox.abort(Cause::SlowConsumer);
                self.remove(conn);
            }
        }
    }

    fn accepted(&mut self, conn: ConnId, tag: Tag, ip: IpAddr, outbox: O) {
        if self.shutting_down {
            outbox.set_end(Cause::ServerShutdown);
            outbox.finish(&Cause::ServerShutdown.cquit_line().unwrap_or_default());
            return;
        }
        let client = Client {
            tag,
            ip,
            outbox,
            nick: None,
            session: conn,
            receipts: Receipts::default(),
        };
        self.clients.insert(conn, client);
    }

    /// Queues `line` for `conn`.
    fn send(&mut self, conn: ConnId, line: &str) {
        if let Some(c) = self.clients.get(&conn) {
            c.respond(conn, line.as_bytes(), &mut self.wakes);
        }
    }

    /// Tells every subscriber except `except` about an event: `line` is its `notif`.
    fn notify(&mut self, except: ConnId, line: &str) {
        for &id in &self.subscribers {
            if id != except
                && let Some(c) = self.clients.get(&id)
            {
                c.queue(id, line.as_bytes(), None, &mut self.wakes, &mut self.doomed);
            }
        }
    }

    fn users(&mut self, conn: ConnId) {
        let mut names: Vec<&str> = self
            .clients
            .values()
            .filter_map(|c| c.nick.as_ref().map(Nick::as_str))
            .collect();
        names.sort_unstable_by_key(|n| n.to_ascii_lowercase());
        self.send(conn, &reply::users(&names));
    }

    fn notif(&mut self, conn: ConnId, on: bool) {
        if self.clients.contains_key(&conn) {
            if on {
                self.subscribers.insert(conn);
            } else {
                self.subscribers.remove(&conn);
            }
        }
        self.send(conn, &reply::notifications(on));
    }

    /// Forgets a connection: releases its name (into a hold, with its copies as the
    /// name's mailbox), its receipts and its queue.
    fn remove(&mut self, conn: ConnId) {
        let Some(c) = self.clients.remove(&conn) else {
            return;
        };
        self.subscribers.remove(&conn);
        shrink(&mut self.clients);
        if c.session != conn {
            self.resumed.remove(&c.session);
        }
        self.copies -= c.receipts.counted();
        let Some(nick) = c.nick else { return };
        self.names.remove(&nick.key());
        shrink(&mut self.names);
        if !self.shutting_down {
            let mailbox = c.receipts.into_mailbox();
            self.holds.hold(
                c.tag.as_str(),
                nick.clone(),
                c.ip,
                c.session,
                mailbox,
                Instant::now(),
            );
        }
        self.notify(conn, &reply::notif_quit(nick.as_str()));
    }

    /// What a shutdown without `--state` discards (§5.8 Audit): the holds with their
    /// mailboxes, and the connected clients' copies.
    pub fn unsaved(&self) -> Unsaved {
        Unsaved {
            holds: self.holds.counts(),
            copies: self.clients.values().map(|c| c.receipts.copies()).sum(),
        }
    }

    fn shutdown(&mut self) {
        // Holds that expired while the hub was busy end now (logged as expired): neither
        // the audit nor the save counts them.
        self.holds.purge(Instant::now());
        // Logged before anything is released (§5.8 Audit); with `--state` it is saved.
        if self.persist.is_none() {
            log::info!("hub: {}", self.unsaved());
        }
        self.shutting_down = true;
        let line = Cause::ServerShutdown.cquit_line().unwrap_or_default();
        for c in self.clients.values() {
            c.outbox.set_end(Cause::ServerShutdown);
            c.outbox.finish(&line);
        }
        // With --state, each client departs as by cquit and everything is saved (§5.9).
        self.save_at_shutdown();
        self.clients.clear();
        self.subscribers.clear();
        self.names.clear();
        self.resumed.clear();
        self.copies = 0;
        log::info!("hub: every client told to quit");
    }
}

/// Gives memory back once a map is mostly empty (a crowd came and went).
fn shrink<K: std::hash::Hash + Eq, V>(map: &mut FastMap<K, V>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

#[cfg(test)]
mod tests;
