//! The hub thread: it owns the nickname map, the name holds (§5.7) and the pending receipts,
//! and routes every message between clients (PROTOCOL.md §5, §7).
//!
//! Readers send it [`ToHub`] messages over one bounded channel; it answers the few
//! synchronous requests (registration, rename) on each reader's own channel and writes to
//! clients only through their [`Output`] sides, which never block. So the hub never waits for a
//! client, and one slow client cannot stall it: a push past `--sendq` drops that client.
//!
//! Ordering: every response to a client passes through here, in the order its reader sent
//! the commands, so responses leave in command order and `+OK message relayed` is queued to
//! the sender before the message is queued to its recipient (hence before any receipt).
//! The hub does no socket I/O.

use std::net::IpAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::conn_id::ConnId;
use crate::protocol::cause::Cause;
use crate::protocol::nick::{Nick, NickKey};
use crate::protocol::reply;

mod fastmap;
mod holds;
mod output;
mod receipts;

use fastmap::FastMap;
use holds::Holds;
pub use output::{Output, Overflow, Wake};
pub use receipts::MAX_PENDING_RECEIPTS;
use receipts::Receipts;

/// What readers (and the server) tell the hub; `O` is a client's output side.
#[derive(Debug)]
pub enum ToHub<O> {
    /// A connection was accepted (NEGOTIATING).
    Accepted {
        /// The connection.
        conn: ConnId,
        /// Its log tag (`conn=.. peer=..`).
        tag: String,
        /// The peer's address, for holds.
        ip: IpAddr,
        /// Its output side.
        outbox: O,
    },
    /// `uname`: register the nickname. Answered.
    Register {
        /// The connection.
        conn: ConnId,
        /// The nickname asked for.
        nick: Nick,
        /// Where to answer.
        answers: Sender<Answer>,
    },
    /// `cname`: change the nickname. Answered; the hub also replies to the client.
    Rename {
        /// The connection.
        conn: ConnId,
        /// The new nickname.
        nick: Nick,
        /// Where to answer.
        answers: Sender<Answer>,
    },
    /// `chatm`: relay `line`, whose bytes at `recipient` are the recipient field.
    Chat {
        /// The sender.
        conn: ConnId,
        /// The complete line to relay.
        line: String,
        /// Where in `line` the recipient (a nickname or `*`) is.
        recipient: Range<usize>,
    },
    /// `chatr`: relay the receipt `line`, whose bytes at `sender` name the original sender.
    Receipt {
        /// The receipt's author (the recipient of the original message).
        conn: ConnId,
        /// The complete line to relay.
        line: String,
        /// Where in `line` the sender field is.
        sender: Range<usize>,
    },
    /// `users`
    Users {
        /// The asking connection.
        conn: ConnId,
    },
    /// `notif on|off`
    Notif {
        /// The connection.
        conn: ConnId,
        /// On or off.
        on: bool,
    },
    /// A response the reader produced itself; it passes here to keep its place in line.
    Respond {
        /// The connection.
        conn: ConnId,
        /// The response line(s).
        line: String,
    },
    /// The connection ends: send `lines`, close, release everything it held.
    Depart {
        /// The connection.
        conn: ConnId,
        /// The last lines to send.
        lines: String,
    },
    /// The server is shutting down: every client gets `cquit server shutting down`.
    Shutdown,
}

/// The hub's answer to a synchronous request.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Registered; the hub has sent the `+OK`.
    Registered {
        /// The nickname, as spelled.
        nick: Nick,
        /// It was held for this address.
        welcome_back: bool,
    },
    /// The nickname is taken or held for another address; nothing was sent.
    InUse,
    /// Renamed; the hub has sent the `+OK`.
    Renamed(Nick),
    /// Not renamed; the hub has sent the `-ERR`.
    NotRenamed,
    /// The connection is no longer known to the hub (it was dropped or the server is
    /// shutting down); the reason is recorded in its shared state.
    Gone,
}

/// The hub's settings.
#[derive(Clone, Copy, Debug)]
pub struct HubConfig {
    /// How long a departed client's name is held for its address (zero: not at all).
    pub hold: Duration,
    /// The most names held at once; past it the oldest hold is dropped.
    pub max_holds: usize,
}

#[derive(Debug)]
struct Client<O> {
    tag: String,
    ip: IpAddr,
    outbox: O,
    nick: Option<Nick>,
    notif: bool,
    /// The receipts it owes.
    receipts: Receipts,
}

/// Writers given output are woken at the latest after this many messages (and whenever
/// the hub's inbox runs empty, or a queue holds `WAKE_BYTES`), so that output never waits
/// long for its writer.
const WAKE_BATCH: usize = 4096;

/// Queues `line` for client `id`, relayed from the client whose output side is `from` (if
/// any): remembers to wake its writer, or dooms it if its queue overflows (`--sendq`).
fn queue<O: Output>(
    id: ConnId,
    c: &Client<O>,
    line: &str,
    from: Option<&O>,
    wakes: &mut Vec<ConnId>,
    doomed: &mut Vec<ConnId>,
) {
    let queued = match from {
        Some(from) => c.outbox.relay(line.as_bytes(), from),
        None => c.outbox.queue(line.as_bytes()),
    };
    match queued {
        Ok(Wake::Later) => wakes.push(id),
        Ok(Wake::Now) => c.outbox.wake_now(),
        Ok(Wake::No) => {}
        Err(_) => doomed.push(id),
    }
}

/// The hub's state. Run it with [`Hub::run`] on its own thread.
pub struct Hub<O> {
    clients: FastMap<ConnId, Client<O>>,
    names: FastMap<NickKey, ConnId>,
    holds: Holds,
    /// Clients whose outbox overflowed while handling the current message.
    doomed: Vec<ConnId>,
    /// Clients whose writer is to be woken at the end of the burst.
    wakes: Vec<ConnId>,
    shutting_down: bool,
}

impl<O: Output> Hub<O> {
    /// An empty hub.
    pub fn new(config: HubConfig) -> Hub<O> {
        Hub {
            clients: FastMap::default(),
            names: FastMap::default(),
            holds: Holds::new(config.hold, config.max_holds),
            doomed: Vec::new(),
            wakes: Vec::new(),
            shutting_down: false,
        }
    }

    /// Handles messages until every sender is gone.
    pub fn run(mut self, rx: Receiver<ToHub<O>>) {
        let mut handled = 0usize;
        loop {
            let msg = match rx.try_recv() {
                Ok(msg) => msg,
                Err(TryRecvError::Empty) => {
                    // The burst is over: wake the writers it gave work to, then wait.
                    self.wake_writers();
                    match rx.recv() {
                        Ok(msg) => msg,
                        Err(_) => break,
                    }
                }
                Err(TryRecvError::Disconnected) => break,
            };
            self.handle(msg);
            handled += 1;
            if handled % WAKE_BATCH == 0 {
                self.wake_writers();
            }
        }
        self.wake_writers();
        log::debug!("hub: all readers gone, stopping");
    }

    /// Wakes every writer that was given output since the last call.
    fn wake_writers(&mut self) {
        for conn in self.wakes.drain(..) {
            if let Some(c) = self.clients.get(&conn) {
                c.outbox.wake_now();
            }
        }
    }

    /// Handles one message, then drops any client that overflowed meanwhile.
    pub fn handle(&mut self, msg: ToHub<O>) {
        let answered = match msg {
            ToHub::Chat { conn, .. }
            | ToHub::Receipt { conn, .. }
            | ToHub::Users { conn }
            | ToHub::Notif { conn, .. }
            | ToHub::Respond { conn, .. } => Some(conn),
            _ => None,
        };
        match msg {
            ToHub::Accepted {
                conn,
                tag,
                ip,
                outbox,
            } => self.accepted(conn, tag, ip, outbox),
            ToHub::Register {
                conn,
                nick,
                answers,
            } => {
                let answer = self.register(conn, nick);
                // The reader waits for this answer; if it is gone there is no one to tell.
                let _ = answers.send(answer);
            }
            ToHub::Rename {
                conn,
                nick,
                answers,
            } => {
                let answer = self.rename(conn, nick);
                let _ = answers.send(answer);
            }
            ToHub::Chat {
                conn,
                line,
                recipient,
            } => self.chat(conn, line, recipient),
            ToHub::Receipt { conn, line, sender } => self.receipt(conn, line, sender),
            ToHub::Users { conn } => self.users(conn),
            ToHub::Notif { conn, on } => self.notif(conn, on),
            ToHub::Respond { conn, line } => self.send(conn, &line),
            ToHub::Depart { conn, lines } => {
                if let Some(c) = self.clients.get(&conn) {
                    c.outbox.finish(&lines);
                }
                self.remove(conn);
            }
            ToHub::Shutdown => self.shutdown(),
        }
        if let Some(c) = answered.and_then(|conn| self.clients.get(&conn)) {
            c.outbox.handled();
        }
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

    fn accepted(&mut self, conn: ConnId, tag: String, ip: IpAddr, outbox: O) {
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
            notif: false,
            receipts: Receipts::default(),
        };
        self.clients.insert(conn, client);
    }

    /// Queues `line`, a response to `conn`'s own command, for `conn`.
    fn send(&mut self, conn: ConnId, line: &str) {
        if let Some(c) = self.clients.get(&conn) {
            match c.outbox.respond(line.as_bytes()) {
                Wake::Later => self.wakes.push(conn),
                Wake::Now => c.outbox.wake_now(),
                Wake::No => {}
            }
        }
    }

    /// Tells every subscriber except `except` about `event`.
    fn notify(&mut self, except: ConnId, event: std::fmt::Arguments<'_>) {
        let line = format!("notif {event}\r\n");
        for (&id, c) in &self.clients {
            if c.notif && id != except {
                queue(id, c, &line, None, &mut self.wakes, &mut self.doomed);
            }
        }
    }

    /// Is `key` free for `conn`, or held for its address (`true`: welcome back)? `Err`
    /// if a connected client has it or it is held for another address.
    fn claim(&mut self, conn: ConnId, key: NickKey, ip: IpAddr) -> Result<bool, ()> {
        if self.names.get(&key).is_some_and(|&owner| owner != conn) {
            return Err(());
        }
        self.holds.take(key, ip, Instant::now()).map_err(|_| ())
    }

    fn register(&mut self, conn: ConnId, nick: Nick) -> Answer {
        let Some(ip) = self.clients.get(&conn).map(|c| c.ip) else {
            return Answer::Gone;
        };
        let key = nick.key();
        let Ok(welcome_back) = self.claim(conn, key, ip) else {
            log::debug!("conn={conn} uname {nick}: in use");
            return Answer::InUse;
        };
        self.names.insert(key, conn);
        let text = if welcome_back {
            format!("welcome back {nick}")
        } else {
            format!("you are {nick}")
        };
        self.send(conn, &reply::ok(text));
        if let Some(c) = self.clients.get_mut(&conn) {
            c.nick = Some(nick.clone());
        }
        self.notify(conn, format_args!("join {nick}"));
        Answer::Registered { nick, welcome_back }
    }

    fn rename(&mut self, conn: ConnId, new: Nick) -> Answer {
        let Some((ip, Some(old))) = self.clients.get(&conn).map(|c| (c.ip, c.nick.clone())) else {
            return Answer::Gone;
        };
        let key = new.key();
        if self.claim(conn, key, ip).is_err() {
            log::debug!("conn={conn} cname {old} -> {new}: in use");
            self.send(conn, &reply::in_use(new.as_str()));
            return Answer::NotRenamed;
        }
        self.names.remove(&old.key());
        self.names.insert(key, conn);
        if let Some(c) = self.clients.get_mut(&conn) {
            log::info!("{} renamed {old} -> {new}", c.tag);
            c.nick = Some(new.clone());
        }
        self.send(conn, &reply::name_changed(old.as_str(), new.as_str()));
        self.notify(conn, format_args!("cname {old} {new}"));
        Answer::Renamed(new)
    }

    fn chat(&mut self, conn: ConnId, line: String, recipient: Range<usize>) {
        let Some(from) = self.clients.get(&conn).and_then(|c| c.nick.as_ref()) else {
            return;
        };
        let from = from.key();
        let to = line.get(recipient).unwrap_or_default();
        if to == "*" {
            self.send(conn, reply::RELAYED);
            let sender = self.clients.get(&conn).map(|c| &c.outbox);
            for (&id, c) in &self.clients {
                if id != conn && c.nick.is_some() {
                    queue(id, c, &line, sender, &mut self.wakes, &mut self.doomed);
                }
            }
            return;
        }
        let target = NickKey::of(to).and_then(|k| self.names.get(&k).copied());
        let Some(target) = target else {
            log::debug!(
                "conn={conn} chatm to {}: no such user",
                reply::escape(to.as_bytes())
            );
            let err = reply::no_such_user(to);
            return self.send(conn, &err);
        };
        self.send(conn, reply::RELAYED);
        let sender = self.clients.get(&conn).map(|c| &c.outbox);
        if let Some(c) = self.clients.get(&target) {
            queue(target, c, &line, sender, &mut self.wakes, &mut self.doomed);
        }
        // Record the receipt the recipient owes.
        let Some(c) = self.clients.get_mut(&target) else {
            return;
        };
        if !c.receipts.expect(from, conn) {
            log::debug!("{} owes too many receipts: oldest run forgotten", c.tag);
        }
    }

    fn receipt(&mut self, conn: ConnId, line: String, sender: Range<usize>) {
        let Some(c) = self.clients.get_mut(&conn) else {
            return;
        };
        let name = line.get(sender).unwrap_or_default();
        let Some(to) = NickKey::of(name).and_then(|key| c.receipts.take(key)) else {
            let err = reply::no_receipt_awaited(name);
            return self.send(conn, &err);
        };
        if let Some(c) = self.clients.get(&to) {
            let author = self.clients.get(&conn).map(|c| &c.outbox);
            queue(to, c, &line, author, &mut self.wakes, &mut self.doomed);
        } else {
            let name = reply::escape(name.as_bytes());
            log::debug!("conn={conn} receipt for {name}: sender has left, dropped");
        }
    }

    fn users(&mut self, conn: ConnId) {
        let mut names: Vec<&str> = self
            .clients
            .values()
            .filter_map(|c| c.nick.as_ref().map(Nick::as_str))
            .collect();
        names.sort_unstable_by_key(|n| n.to_ascii_lowercase());
        let text = reply::multiline(format_args!("{} users", names.len()), names);
        self.send(conn, &text);
    }

    fn notif(&mut self, conn: ConnId, on: bool) {
        if let Some(c) = self.clients.get_mut(&conn) {
            c.notif = on;
        }
        let text = reply::ok(if on {
            "notifications on"
        } else {
            "notifications off"
        });
        self.send(conn, &text);
    }

    /// Forgets a connection: releases its name (into a hold), its receipts and its queue.
    fn remove(&mut self, conn: ConnId) {
        let Some(c) = self.clients.remove(&conn) else {
            return;
        };
        let Some(nick) = c.nick else { return };
        self.names.remove(&nick.key());
        if !self.shutting_down {
            self.holds.hold(&c.tag, nick.clone(), c.ip, Instant::now());
        }
        self.notify(conn, format_args!("quit {nick}"));
    }

    fn shutdown(&mut self) {
        self.shutting_down = true;
        let line = Cause::ServerShutdown.cquit_line().unwrap_or_default();
        for c in self.clients.values() {
            c.outbox.set_end(Cause::ServerShutdown);
            c.outbox.finish(&line);
        }
        self.clients.clear();
        self.names.clear();
        log::info!("hub: every client told to quit");
    }
}
