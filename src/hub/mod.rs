//! The hub thread: it owns the nickname map, the name holds (§5.7), the pending receipts and
//! the mailboxes (§5.8), and routes every message between clients (PROTOCOL.md §5, §7).
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
//! network layer's outbox in the server, an in-memory record in the tests below). The
//! rules with state of their own live in their own types, which the hub's `match`
//! dispatches to:
//! - `holds.rs`: `Holds`, names held for a departed client's address (§5.7);
//! - `receipts.rs`: `Receipts`, the receipts one client owes (§5 chatr) and the copies of
//!   the messages that await them (§5.8);
//! - `mailbox.rs`: `Mailbox`, what a held name keeps for its return (§5.8);
//! - `chats.rs`: `Chats`, the `chatm` lines of one read, given to the hub as one message;
//! - `answer.rs`: the one-shot slot through which a reader gets the answer to `uname` or
//!   `cname`;
//! - `fastmap.rs`: the hasher of the hub's maps.
//!
//! Sessions (§5.8): a client that comes back to a held name continues the departed one's
//! session, so that receipts for what it sent still reach it. A session is named by the
//! connection that began it; the receipts owed to a sender record its session, which is
//! its connection unless it came back (then `resumed` maps it to the connection now).

use std::net::IpAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

use crate::conn_id::{ConnId, Tag};
use crate::protocol::cause::Cause;
use crate::protocol::nick::{Nick, NickKey};
use crate::protocol::reply::{self, Code};

mod answer;
mod chats;
mod fastmap;
mod holds;
mod mailbox;
mod output;
mod persist;
mod receipts;

pub use answer::{Pending, Promise, slot};
pub use chats::Chats;
use fastmap::FastMap;
use holds::{HeldElsewhere, Holds, Resumed};
pub use output::{Output, Overflow, Wake};
pub use persist::Persist;
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
        tag: Tag,
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
        answer: Promise,
    },
    /// `cname`: change the nickname. Answered; the hub also replies to the client.
    Rename {
        /// The connection.
        conn: ConnId,
        /// The new nickname.
        nick: Nick,
        /// Where to answer.
        answer: Promise,
    },
    /// `chatm`: relay each line of `chats`, in order (each is one command).
    Chat {
        /// The sender.
        conn: ConnId,
        /// The lines, with their recipient fields.
        chats: Chats,
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
    /// The connection ends: release everything it held, and send `lines` and close.
    Depart {
        /// The connection.
        conn: ConnId,
        /// The last lines to send; `None` when its reader sends them and closes itself
        /// (the hub owed it nothing more).
        lines: Option<String>,
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
    /// `--mailbox`: the most bytes of copies one client, or one held name, keeps.
    pub mailbox: usize,
    /// `--mailbox-total`: the most bytes of copies and mailboxes in all.
    pub mailbox_total: usize,
}

#[derive(Debug)]
struct Client<O> {
    tag: Tag,
    ip: IpAddr,
    outbox: O,
    nick: Option<Nick>,
    notif: bool,
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

/// Queues `line` for client `id`, relayed from the client whose output side is `from` (if
/// any): remembers to wake its writer, or dooms it if its queue overflows (the hard bound,
/// see [`Output::queue`]).
fn queue<O: Output>(
    id: ConnId,
    c: &Client<O>,
    line: &[u8],
    from: Option<&O>,
    wakes: &mut Vec<ConnId>,
    doomed: &mut Vec<ConnId>,
) {
    let queued = match from {
        Some(from) => c.outbox.relay(line, from),
        None => c.outbox.queue(line),
    };
    match queued {
        Ok(Wake::Later) => wakes.push(id),
        Ok(Wake::Now) => c.outbox.wake_now(),
        Ok(Wake::No) => {}
        Err(_) => doomed.push(id),
    }
}

/// Queues `line`, a response to client `id`'s own command: never refused (§7: a response
/// never makes its asker a slow consumer; its reader waits for room instead).
fn respond<O: Output>(id: ConnId, c: &Client<O>, line: &[u8], wakes: &mut Vec<ConnId>) {
    match c.outbox.respond(line) {
        Wake::Later => wakes.push(id),
        Wake::Now => c.outbox.wake_now(),
        Wake::No => {}
    }
}

/// The hub's state. Run it with [`Hub::run`] on its own thread.
pub struct Hub<O> {
    clients: FastMap<ConnId, Client<O>>,
    names: FastMap<NickKey, ConnId>,
    holds: Holds,
    /// The sessions that came back, to the connection that continues each.
    resumed: FastMap<ConnId, ConnId>,
    /// Bytes of copies kept for all clients.
    copies: usize,
    /// `--mailbox`
    mailbox: usize,
    /// `--mailbox-total`
    mailbox_total: usize,
    /// Clients whose outbox overflowed while handling the current message.
    doomed: Vec<ConnId>,
    /// Clients whose writer is to be woken at the end of the burst.
    wakes: Vec<ConnId>,
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
            holds: Holds::new(config.hold, config.max_holds),
            resumed: FastMap::default(),
            copies: 0,
            mailbox: config.mailbox,
            mailbox_total: config.mailbox_total,
            doomed: Vec::new(),
            wakes: Vec::new(),
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

    /// Wakes every writer that was given output since the last call.
    fn wake_writers(&mut self) {
        for conn in self.wakes.drain(..) {
            if let Some(c) = self.clients.get(&conn) {
                c.outbox.wake_now();
            }
        }
    }

    /// Handles one message, then drops any client that overflowed meanwhile. Returns how
    /// many commands it carried (a batch of `chatm` lines counts each line).
    pub fn handle(&mut self, msg: ToHub<O>) -> usize {
        let (answered, commands) = match &msg {
            ToHub::Chat { conn, chats } => (Some(*conn), chats.len()),
            ToHub::Receipt { conn, .. }
            | ToHub::Users { conn }
            | ToHub::Notif { conn, .. }
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
            ToHub::Register { conn, nick, answer } => answer.answer(self.register(conn, nick)),
            ToHub::Rename { conn, nick, answer } => answer.answer(self.rename(conn, nick)),
            ToHub::Chat { conn, chats } => {
                for (line, recipient) in chats.iter() {
                    self.chat(conn, line, recipient);
                    self.drop_doomed();
                }
            }
            ToHub::Receipt { conn, line, sender } => self.receipt(conn, line, sender),
            ToHub::Users { conn } => self.users(conn),
            ToHub::Notif { conn, on } => self.notif(conn, on),
            ToHub::Respond { conn, line } => self.send(conn, &line),
            ToHub::Depart { conn, lines } => {
                if let (Some(c), Some(lines)) = (self.clients.get(&conn), lines) {
                    c.outbox.finish(&lines);
                }
                self.remove(conn);
            }
            ToHub::Shutdown => self.shutdown(),
        }
        if let Some(c) = answered.and_then(|conn| self.clients.get(&conn)) {
            c.outbox.handled(commands as u64);
        }
        self.drop_doomed();
        commands
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
            notif: false,
            session: conn,
            receipts: Receipts::default(),
        };
        self.clients.insert(conn, client);
    }

    /// Queues `line` for `conn`.
    fn send(&mut self, conn: ConnId, line: &str) {
        if let Some(c) = self.clients.get(&conn) {
            respond(conn, c, line.as_bytes(), &mut self.wakes);
        }
    }

    /// Tells every subscriber except `except` about `event`.
    fn notify(&mut self, except: ConnId, event: std::fmt::Arguments<'_>) {
        let line = format!("notif {event}\r\n");
        for (&id, c) in &self.clients {
            if c.notif && id != except {
                queue(
                    id,
                    c,
                    line.as_bytes(),
                    None,
                    &mut self.wakes,
                    &mut self.doomed,
                );
            }
        }
    }

    /// Is `key` free for `conn`, or held for its address (`Some`: welcome back, with the
    /// session and mailbox it resumes)? `Err` if a connected client has it or it is held
    /// for another address.
    fn claim(&mut self, conn: ConnId, key: NickKey, ip: IpAddr) -> Result<Option<Resumed>, Taken> {
        if let Some(&owner) = self.names.get(&key).filter(|&&owner| owner != conn) {
            return Err(Taken::Connected(owner));
        }
        self.holds
            .take(key, ip, Instant::now())
            .map_err(Taken::Held)
    }

    /// Why a name is taken, for the log: `by conn=.. peer=..`, or `held for .. for ..`.
    fn taken_text(&self, taken: Taken) -> String {
        match taken {
            Taken::Connected(owner) => match self.clients.get(&owner) {
                Some(c) => format!("in use by {}", c.tag),
                None => format!("in use by conn={owner}"),
            },
            Taken::Held(h) => h.to_string(),
        }
    }

    fn register(&mut self, conn: ConnId, nick: Nick) -> Answer {
        let Some(ip) = self.clients.get(&conn).map(|c| c.ip) else {
            return Answer::Gone;
        };
        let key = nick.key();
        let resumed = match self.claim(conn, key, ip) {
            Ok(resumed) => resumed,
            Err(taken) => {
                if let Some(c) = self.clients.get(&conn) {
                    log::debug!("{} uname {nick}: {}", c.tag, self.taken_text(taken));
                }
                return Answer::InUse;
            }
        };
        self.names.insert(key, conn);
        if let Some(c) = self.clients.get_mut(&conn) {
            c.nick = Some(nick.clone());
        }
        let welcome_back = resumed.is_some();
        match resumed {
            Some(r) => self.resume(conn, &nick, r),
            None => self.send(conn, &reply::ok(format_args!("you are {nick}"))),
        }
        self.notify(conn, format_args!("join {nick}"));
        Answer::Registered { nick, welcome_back }
    }

    /// `conn` came back to `nick`, held for its address: it continues the departed
    /// client's session, and gets the mailbox at once after its `welcome back` (§5.8).
    /// Every replayed `chatm` awaits its receipt (and is copied) again.
    fn resume(&mut self, conn: ConnId, nick: &Nick, r: Resumed) {
        let Resumed { session, mailbox } = r;
        let (held, lost) = (mailbox.held(), mailbox.lost());
        let text = reply::welcome_back(nick.as_str(), held, lost);
        self.resumed.insert(session, conn);
        let Some(c) = self.clients.get_mut(&conn) else {
            return;
        };
        log::info!(
            "{} resumed {nick}: mailbox of {nick} delivered ({held} held, {lost} lost)",
            c.tag
        );
        c.session = session;
        // The welcome back and the replay answer the client's own `uname`.
        respond(conn, c, text.as_bytes(), &mut self.wakes);
        if held == 0 {
            return;
        }
        respond(conn, c, mailbox.wire(), &mut self.wakes);
        for (line, from) in mailbox.entries() {
            if let Some((from, sender)) = from {
                c.receipts.expect(from, sender, line, self.mailbox);
            }
        }
        self.copies += c.receipts.bytes();
    }

    fn rename(&mut self, conn: ConnId, new: Nick) -> Answer {
        let Some((ip, Some(old))) = self.clients.get(&conn).map(|c| (c.ip, c.nick.clone())) else {
            return Answer::Gone;
        };
        let key = new.key();
        let resumed = match self.claim(conn, key, ip) {
            Ok(resumed) => resumed,
            Err(taken) => {
                if let Some(c) = self.clients.get(&conn) {
                    log::debug!("{} cname {old} -> {new}: {}", c.tag, self.taken_text(taken));
                }
                self.send(conn, &reply::in_use(new.as_str()));
                return Answer::NotRenamed;
            }
        };
        self.names.remove(&old.key());
        self.names.insert(key, conn);
        if let Some(c) = self.clients.get_mut(&conn) {
            log::info!("{} renamed {old} -> {new}", c.tag);
            if let Some(r) = resumed {
                // Only a `uname` resumes (§5.8): a rename takes the name, not the session.
                let (held, lost) = (r.mailbox.held(), r.mailbox.lost());
                log::info!(
                    "{} took held name {new} by a rename: mailbox of {new} discarded \
                     ({held} held, {lost} lost)",
                    c.tag
                );
            }
            c.nick = Some(new.clone());
        }
        self.send(conn, &reply::name_changed(old.as_str(), new.as_str()));
        self.notify(conn, format_args!("cname {old} {new}"));
        Answer::Renamed(new)
    }

    fn chat(&mut self, conn: ConnId, line: &str, recipient: Range<usize>) {
        // The sender is looked up once: this runs for every relayed line.
        let Hub {
            clients,
            names,
            wakes,
            doomed,
            ..
        } = self;
        let Some(c) = clients.get(&conn) else {
            return;
        };
        let Some(from) = c.nick.as_ref() else {
            return;
        };
        let (from, session) = (from.key(), c.session);
        let to = line.get(recipient).unwrap_or_default();
        if to == "*" {
            respond(conn, c, reply::RELAYED.as_bytes(), wakes);
            for (&id, r) in clients.iter() {
                if id != conn && r.nick.is_some() {
                    queue(id, r, line.as_bytes(), Some(&c.outbox), wakes, doomed);
                }
            }
            return;
        }
        let key = NickKey::of(to);
        let Some(target) = key.and_then(|k| names.get(&k).copied()) else {
            return self.chat_held(conn, key, line, to, (from, session));
        };
        respond(conn, c, reply::RELAYED.as_bytes(), wakes);
        if let Some(r) = clients.get(&target) {
            queue(target, r, line.as_bytes(), Some(&c.outbox), wakes, doomed);
        }
        // Record the receipt the recipient owes and keep its copy.
        let Some(c) = self.clients.get_mut(&target) else {
            return;
        };
        let before = c.receipts.bytes();
        if !c
            .receipts
            .expect(from, session, line.as_bytes(), self.mailbox)
        {
            log::debug!("{} owes too many receipts: oldest run forgotten", c.tag);
        }
        self.copies = self.copies + c.receipts.bytes() - before;
        if self.copies + self.holds.bytes() > self.mailbox_total {
            self.over_total(target);
        }
    }

    /// Past `--mailbox-total` after a copy for `conn`: the oldest held mailbox goes first;
    /// with none left, `conn`'s own oldest copies.
    fn over_total(&mut self, conn: ConnId) {
        while self.copies + self.holds.bytes() > self.mailbox_total {
            if self.holds.discard_oldest(None) {
                continue;
            }
            let Some(c) = self.clients.get_mut(&conn) else {
                return;
            };
            let before = c.receipts.bytes();
            if !c.receipts.forget_oldest() {
                return;
            }
            log::debug!("{} oldest copy forgotten: over --mailbox-total", c.tag);
            self.copies -= before - c.receipts.bytes();
        }
    }

    /// Makes room under `--mailbox-total` for `bytes` more in the mailbox of `key`,
    /// discarding other mailboxes, oldest first. False if there is no room.
    fn room_for(&mut self, key: NickKey, bytes: usize) -> bool {
        while self.copies + self.holds.bytes() + bytes > self.mailbox_total {
            if !self.holds.discard_oldest(Some(key)) {
                return false;
            }
        }
        true
    }

    /// A direct `chatm` to a name no client has: into its mailbox if it is held (§5.8),
    /// else NO-SUCH.
    fn chat_held(
        &mut self,
        conn: ConnId,
        key: Option<NickKey>,
        line: &str,
        to: &str,
        from: (NickKey, ConnId),
    ) {
        let now = Instant::now();
        let held = key.and_then(|k| Some((k, self.holds.nick(k, now)?.clone())));
        let tag = self
            .clients
            .get(&conn)
            .map(|c| c.tag.as_str())
            .unwrap_or("");
        let Some((key, nick)) = held else {
            log::debug!(
                "{tag} chatm to {}: no such user",
                reply::escape(to.as_bytes())
            );
            let err = reply::no_such_user(to);
            return self.send(conn, &err);
        };
        let kept = self.room_for(key, line.len())
            && self
                .holds
                .put(key, line.as_bytes(), from, self.mailbox)
                .is_ok();
        let tag = self
            .clients
            .get(&conn)
            .map(|c| c.tag.as_str())
            .unwrap_or("");
        if kept {
            log::debug!("{tag} chatm to {nick}: held in its mailbox");
            self.send(conn, &reply::ok(format_args!("message held for {nick}")));
        } else {
            log::info!("{tag} chatm to {nick}: mailbox of {nick} is full, nothing kept");
            let err = reply::err(Code::Full, format_args!("mailbox of {nick} is full"));
            self.send(conn, &err);
        }
    }

    fn receipt(&mut self, conn: ConnId, line: String, sender: Range<usize>) {
        let Some(c) = self.clients.get_mut(&conn) else {
            return;
        };
        let name = line.get(sender).unwrap_or_default();
        let before = c.receipts.bytes();
        let Some(session) = NickKey::of(name).and_then(|key| c.receipts.take(key)) else {
            let err = reply::no_receipt_awaited(name);
            return self.send(conn, &err);
        };
        self.copies -= before - c.receipts.bytes();
        // The original sender: connected, or back under a new connection (§5.8).
        let to = match self.resumed.get(&session) {
            Some(&back) => back,
            None => session,
        };
        if let Some(c) = self.clients.get(&to) {
            let author = self.clients.get(&conn).map(|a| &a.outbox);
            return queue(
                to,
                c,
                line.as_bytes(),
                author,
                &mut self.wakes,
                &mut self.doomed,
            );
        }
        self.receipt_held(conn, &line, name, session);
    }

    /// A receipt for a sender that left: into the mailbox of its held name (§5.8), else
    /// dropped (logged).
    fn receipt_held(&mut self, conn: ConnId, line: &str, name: &str, session: ConnId) {
        let name = reply::escape(name.as_bytes());
        let tag = self
            .clients
            .get(&conn)
            .map(|c| c.tag.clone())
            .unwrap_or_default();
        let Some(key) = self.holds.session_name(session) else {
            return log::debug!("{tag} receipt for {name}: sender has left, dropped");
        };
        // No room in all (`--mailbox-total`) is no room in the mailbox.
        let max = if self.room_for(key, line.len()) {
            self.mailbox
        } else {
            0
        };
        match self.holds.put_receipt(session, line.as_bytes(), max) {
            Some((true, held)) => log::debug!("{tag} receipt for {name}: held for {held}"),
            Some((false, held)) => {
                log::info!("{tag} receipt for {name}: mailbox of {held} is full, lost")
            }
            None => log::debug!("{tag} receipt for {name}: sender has left, dropped"),
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

    /// Forgets a connection: releases its name (into a hold, with its copies as the
    /// name's mailbox), its receipts and its queue.
    fn remove(&mut self, conn: ConnId) {
        let Some(c) = self.clients.remove(&conn) else {
            return;
        };
        shrink(&mut self.clients);
        if c.session != conn {
            self.resumed.remove(&c.session);
        }
        self.copies -= c.receipts.bytes();
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
        self.notify(conn, format_args!("quit {nick}"));
    }

    fn shutdown(&mut self) {
        self.shutting_down = true;
        let line = Cause::ServerShutdown.cquit_line().unwrap_or_default();
        for c in self.clients.values() {
            c.outbox.set_end(Cause::ServerShutdown);
            c.outbox.finish(&line);
        }
        // With --state, each client departs as by cquit and everything is saved (§5.9).
        self.save_at_shutdown();
        self.clients.clear();
        self.names.clear();
        self.resumed.clear();
        self.copies = 0;
        log::info!("hub: every client told to quit");
    }
}

/// Why a name cannot be claimed.
#[derive(Clone, Copy, Debug)]
enum Taken {
    /// A connected client has it.
    Connected(ConnId),
    /// It is held for another address.
    Held(HeldElsewhere),
}

/// Gives memory back once a map is mostly empty (a crowd came and went).
fn shrink<K: std::hash::Hash + Eq, V>(map: &mut FastMap<K, V>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    //! The routing rules of PROTOCOL.md §5 and §5.7, against an in-memory output side, one
    //! group a rule. Hold expiry and the receipt runs are tested in `holds` and `receipts`.

    use std::cell::RefCell;
    use std::net::Ipv4Addr;
    use std::rc::Rc;

    use crossbeam_channel::bounded;

    use super::*;

    const HERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    const THERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

    /// What the hub did to one client's output side.
    #[derive(Debug, Default)]
    struct Record {
        /// Bytes queued and not yet looked at.
        queued: String,
        /// Bytes queued in all (against the budget).
        total: usize,
        /// `--sendq`; `None`: unbounded.
        budget: Option<usize>,
        /// A wake is due (as the outbox: `Later` once until woken).
        wake_pending: bool,
        wakes: usize,
        finished: Option<String>,
        aborted: Option<Cause>,
        end: Option<Cause>,
    }

    /// An in-memory output side; clones share the record.
    #[derive(Clone, Debug, Default)]
    struct Mem(Rc<RefCell<Record>>);

    impl Output for Mem {
        fn queue(&self, line: &[u8]) -> Result<Wake, Overflow> {
            let mut r = self.0.borrow_mut();
            if r.finished.is_some() || r.aborted.is_some() {
                return Ok(Wake::No);
            }
            if r.budget.is_some_and(|b| r.total + line.len() > b) {
                return Err(Overflow);
            }
            r.total += line.len();
            r.queued += std::str::from_utf8(line).unwrap_or("(not UTF-8)");
            if std::mem::replace(&mut r.wake_pending, true) {
                Ok(Wake::No)
            } else {
                Ok(Wake::Later)
            }
        }

        fn relay(&self, line: &[u8], _from: &Self) -> Result<Wake, Overflow> {
            self.queue(line)
        }

        /// A response: never refused, whatever the budget.
        fn respond(&self, line: &[u8]) -> Wake {
            let budget = self.0.borrow_mut().budget.take();
            let wake = self.queue(line).unwrap_or(Wake::No);
            self.0.borrow_mut().budget = budget;
            wake
        }

        fn handled(&self, _commands: u64) {}

        fn wake_now(&self) {
            let mut r = self.0.borrow_mut();
            r.wake_pending = false;
            r.wakes += 1;
        }

        fn finish(&self, lines: &str) {
            let mut r = self.0.borrow_mut();
            if r.finished.is_none() && r.aborted.is_none() {
                r.finished = Some(lines.to_string());
            }
        }

        fn abort(&self, cause: Cause) {
            let mut r = self.0.borrow_mut();
            assert!(r.aborted.is_none(), "aborted twice");
            r.end.get_or_insert(cause.clone());
            r.aborted = Some(cause);
        }

        fn set_end(&self, cause: Cause) {
            self.0.borrow_mut().end.get_or_insert(cause);
        }
    }

    impl Mem {
        /// The lines queued since the last call, without their CRLF.
        fn lines(&self) -> Vec<String> {
            let queued = std::mem::take(&mut self.0.borrow_mut().queued);
            queued.split_terminator("\r\n").map(String::from).collect()
        }

        fn wakes(&self) -> usize {
            self.0.borrow().wakes
        }

        fn finished(&self) -> Option<String> {
            self.0.borrow().finished.clone()
        }

        fn aborted(&self) -> Option<Cause> {
            self.0.borrow().aborted.clone()
        }

        fn end(&self) -> Option<Cause> {
            self.0.borrow().end.clone()
        }
    }

    /// Where in `line` its space-separated field `n` is.
    fn field(line: &str, n: usize) -> Range<usize> {
        let start: usize = line.split(' ').take(n).map(|f| f.len() + 1).sum();
        let len = line[start..].split(' ').next().map_or(0, str::len);
        start..start + len
    }

    fn nick(name: &str) -> Nick {
        Nick::parse(name).expect("test nickname")
    }

    /// The answer to a `uname` that registered `name`.
    fn registered(name: &str, welcome_back: bool) -> Answer {
        Answer::Registered {
            nick: nick(name),
            welcome_back,
        }
    }

    /// A hub under test.
    struct Fixture {
        hub: Hub<Mem>,
    }

    fn hub_with(hold: Duration, max_holds: usize) -> Fixture {
        hub_config(HubConfig {
            hold,
            max_holds,
            mailbox: 64 * 1024,
            mailbox_total: 64 * 1024 * 1024,
        })
    }

    fn hub_config(config: HubConfig) -> Fixture {
        Fixture {
            hub: Hub::new(config),
        }
    }

    /// The server's defaults: names held for 300 s, up to 1024.
    fn hub() -> Fixture {
        hub_with(Duration::from_secs(300), 1024)
    }

    impl Fixture {
        /// Connection `conn` from `ip` is accepted (NEGOTIATING).
        fn connect(&mut self, conn: ConnId, ip: IpAddr) -> Mem {
            self.connect_with(conn, ip, Mem::default())
        }

        fn connect_with(&mut self, conn: ConnId, ip: IpAddr, outbox: Mem) -> Mem {
            let tag = Tag::from(format!("conn={conn} peer=test").as_str());
            self.hub.handle(ToHub::Accepted {
                conn,
                tag,
                ip,
                outbox: outbox.clone(),
            });
            outbox
        }

        /// Hands the hub a request and takes its answer (the hub handles it before
        /// returning, so the answer is there: `Gone` if it dropped the request).
        fn ask(&mut self, msg: impl FnOnce(Promise) -> ToHub<Mem>) -> Answer {
            let (answer, pending) = slot();
            self.hub.handle(msg(answer));
            pending.wait()
        }

        /// `uname name` on `conn`.
        fn register(&mut self, conn: ConnId, name: &str) -> Answer {
            self.ask(|answer| ToHub::Register {
                conn,
                nick: nick(name),
                answer,
            })
        }

        /// `cname name` on `conn`.
        fn rename(&mut self, conn: ConnId, name: &str) -> Answer {
            self.ask(|answer| ToHub::Rename {
                conn,
                nick: nick(name),
                answer,
            })
        }

        /// A client `name` on `conn` from `ip`, registered, its `+OK` taken.
        fn join_from(&mut self, conn: ConnId, name: &str, ip: IpAddr) -> Mem {
            let out = self.connect(conn, ip);
            let answer = self.register(conn, name);
            assert!(
                matches!(answer, Answer::Registered { .. }),
                "{name}: {answer:?}"
            );
            out.lines();
            out
        }

        fn join(&mut self, conn: ConnId, name: &str) -> Mem {
            self.join_from(conn, name, HERE)
        }

        /// `chatm ...` (the whole line, without CRLF) from `conn`.
        fn chat(&mut self, conn: ConnId, line: &str) {
            let mut chats = Chats::default();
            chats.push(&format!("{line}\r\n"), field(line, 2), 1);
            self.hub.handle(ToHub::Chat { conn, chats });
        }

        /// `chatr ...` (the whole line, without CRLF) from `conn`.
        fn receipt(&mut self, conn: ConnId, line: &str) {
            self.hub.handle(ToHub::Receipt {
                conn,
                sender: field(line, 1),
                line: format!("{line}\r\n"),
            });
        }

        fn notif(&mut self, conn: ConnId, on: bool) {
            self.hub.handle(ToHub::Notif { conn, on });
        }

        /// The connection ends with `cquit` (its reader's last line).
        fn quit(&mut self, conn: ConnId) {
            let lines = Some(reply::QUIT_OK.to_string());
            self.hub.handle(ToHub::Depart { conn, lines });
        }
    }

    mod registration_and_holds {
        use super::*;

        #[test]
        fn a_new_name_is_registered_and_confirmed() {
            let mut f = hub();
            let out = f.connect(1, HERE);
            let answer = f.register(1, "Alice");
            assert_eq!(answer, registered("Alice", false));
            assert_eq!(out.lines(), ["+OK you are Alice"]);
        }

        #[test]
        fn a_connected_name_is_in_use_whatever_its_case() {
            let mut f = hub();
            f.join(1, "alice");
            let out = f.connect(2, HERE);
            assert_eq!(f.register(2, "ALICE"), Answer::InUse);
            // The reader sends the -ERR with the attempt count; the hub sends nothing.
            assert!(out.lines().is_empty());
        }

        #[test]
        fn an_unknown_connection_is_gone() {
            let mut f = hub();
            assert_eq!(f.register(9, "alice"), Answer::Gone);
        }

        #[test]
        fn a_held_name_welcomes_back_the_same_address() {
            let mut f = hub();
            f.join(1, "alice");
            f.quit(1);
            let out = f.connect(2, HERE);
            assert_eq!(f.register(2, "alice"), registered("alice", true));
            assert_eq!(out.lines(), ["+OK welcome back alice"]);
        }

        #[test]
        fn a_held_name_is_in_use_for_another_address() {
            let mut f = hub();
            f.join(1, "alice");
            f.quit(1);
            let out = f.connect(2, THERE);
            assert_eq!(f.register(2, "Alice"), Answer::InUse);
            assert!(out.lines().is_empty());
        }

        #[test]
        fn a_welcome_back_ends_the_hold() {
            let mut f = hub();
            f.join(1, "alice");
            f.quit(1);
            f.join(2, "alice");
            assert!(matches!(f.rename(2, "bob"), Answer::Renamed(_)));
            // Neither connected nor held any more: free for anyone.
            f.connect(3, THERE);
            assert_eq!(f.register(3, "alice"), registered("alice", false));
        }

        #[test]
        fn hold_zero_releases_the_name_at_once() {
            let mut f = hub_with(Duration::ZERO, 1024);
            f.join(1, "alice");
            f.quit(1);
            f.connect(2, THERE);
            assert_eq!(f.register(2, "alice"), registered("alice", false));
        }

        #[test]
        fn holds_are_bounded_and_the_oldest_is_dropped() {
            let mut f = hub_with(Duration::from_secs(300), 2);
            for (conn, name) in [(1, "a1"), (2, "b2"), (3, "c3")] {
                f.join(conn, name);
                f.quit(conn);
            }
            f.connect(4, THERE);
            assert_eq!(f.register(4, "a1"), registered("a1", false));
            assert_eq!(f.register(4, "b2"), Answer::InUse);
            assert_eq!(f.register(4, "c3"), Answer::InUse);
        }

        #[test]
        fn shutdown_tells_every_client_and_registers_no_one() {
            let mut f = hub();
            let out = f.join(1, "alice");
            f.hub.handle(ToHub::Shutdown);
            assert_eq!(
                out.finished().as_deref(),
                Some("cquit server shutting down\r\n")
            );
            assert_eq!(out.end(), Some(Cause::ServerShutdown));
            // A connection accepted meanwhile is told at once and never registered.
            let late = f.connect(2, THERE);
            assert_eq!(
                late.finished().as_deref(),
                Some("cquit server shutting down\r\n")
            );
            assert_eq!(f.register(2, "alice"), Answer::Gone);
        }

        #[test]
        fn cname_renames_and_frees_the_old_name() {
            let mut f = hub();
            let out = f.join(1, "alice");
            assert_eq!(f.rename(1, "bob"), Answer::Renamed(nick("bob")));
            assert_eq!(out.lines(), ["+OK name changed from alice to bob"]);
            f.connect(2, HERE);
            assert_eq!(f.register(2, "alice"), registered("alice", false));
            f.connect(3, HERE);
            assert_eq!(f.register(3, "BOB"), Answer::InUse);
        }

        #[test]
        fn cname_to_a_name_in_use_is_refused_by_the_hub() {
            let mut f = hub();
            let out = f.join(1, "alice");
            f.join(2, "bob");
            assert_eq!(f.rename(1, "Bob"), Answer::NotRenamed);
            assert_eq!(
                out.lines(),
                ["-ERR [IN-USE] Bob is already taken by another client"]
            );
            // Still alice.
            f.connect(3, HERE);
            assert_eq!(f.register(3, "alice"), Answer::InUse);
        }

        #[test]
        fn cname_may_change_the_case_only() {
            let mut f = hub();
            let out = f.join(1, "alice");
            assert_eq!(f.rename(1, "ALICE"), Answer::Renamed(nick("ALICE")));
            assert_eq!(out.lines(), ["+OK name changed from alice to ALICE"]);
            f.connect(2, HERE);
            assert_eq!(f.register(2, "Alice"), Answer::InUse);
        }

        #[test]
        fn cname_respects_holds() {
            let mut f = hub();
            f.join_from(1, "alice", HERE);
            f.quit(1);
            let out = f.join_from(2, "bob", THERE);
            assert_eq!(f.rename(2, "alice"), Answer::NotRenamed);
            assert_eq!(
                out.lines(),
                ["-ERR [IN-USE] alice is already taken by another client"]
            );
            // The held name's own address may take it by a rename.
            f.join_from(3, "carol", HERE);
            assert!(matches!(f.rename(3, "alice"), Answer::Renamed(_)));
        }
    }

    mod relay_and_order {
        use super::*;

        #[test]
        fn a_direct_message_is_relayed_exactly_and_confirmed() {
            let mut f = hub();
            let alice = f.join(1, "alice");
            let bob = f.join(2, "bob");
            f.chat(1, "chatm alice BOB hello  there");
            assert_eq!(alice.lines(), ["+OK message relayed"]);
            assert_eq!(bob.lines(), ["chatm alice BOB hello  there"]);
        }

        #[test]
        fn a_broadcast_reaches_every_other_established_client() {
            let mut f = hub();
            let alice = f.join(1, "alice");
            let bob = f.join(2, "bob");
            let carol = f.join(3, "carol");
            let negotiating = f.connect(4, HERE);
            f.chat(1, "chatm alice * hi all");
            assert_eq!(alice.lines(), ["+OK message relayed"]);
            assert_eq!(bob.lines(), ["chatm alice * hi all"]);
            assert_eq!(carol.lines(), ["chatm alice * hi all"]);
            assert!(negotiating.lines().is_empty());
        }

        #[test]
        fn a_message_to_no_such_user_is_refused() {
            let mut f = hub();
            let alice = f.join(1, "alice");
            let bob = f.join(2, "bob");
            f.connect(3, HERE); // Not registered: not a recipient.
            f.chat(1, "chatm alice carol hi");
            assert_eq!(alice.lines(), ["-ERR [NO-SUCH] no such user carol"]);
            assert!(bob.lines().is_empty());
        }

        #[test]
        fn a_departed_client_is_no_recipient_without_a_hold() {
            let mut f = hub_with(Duration::ZERO, 1024);
            let alice = f.join(1, "alice");
            f.join(2, "bob");
            f.quit(2);
            f.chat(1, "chatm alice bob hi");
            assert_eq!(alice.lines(), ["-ERR [NO-SUCH] no such user bob"]);
        }

        #[test]
        fn messages_from_one_sender_arrive_in_order() {
            let mut f = hub();
            f.join(1, "alice");
            let bob = f.join(2, "bob");
            for i in 0..5 {
                f.chat(1, &format!("chatm alice bob {i}"));
            }
            f.chat(1, "chatm alice * 5");
            assert_eq!(
                bob.lines(),
                (0..6)
                    .map(|i| format!("chatm alice {} {i}", if i < 5 { "bob" } else { "*" }))
                    .collect::<Vec<_>>()
            );
        }

        #[test]
        fn responses_keep_their_place_among_the_hubs() {
            let mut f = hub();
            let alice = f.join(1, "alice");
            f.join(2, "bob");
            f.hub.handle(ToHub::Respond {
                conn: 1,
                line: "+OK pong 1\r\n".into(),
            });
            f.chat(1, "chatm alice bob hi");
            f.hub.handle(ToHub::Respond {
                conn: 1,
                line: "+OK pong 2\r\n".into(),
            });
            assert_eq!(
                alice.lines(),
                ["+OK pong 1", "+OK message relayed", "+OK pong 2"]
            );
        }

        #[test]
        fn relayed_is_sent_before_the_receipt() {
            let mut f = hub();
            let alice = f.join(1, "alice");
            f.join(2, "bob");
            f.chat(1, "chatm alice bob hi");
            f.receipt(2, "chatr alice bob");
            assert_eq!(alice.lines(), ["+OK message relayed", "chatr alice bob"]);
        }

        /// Queues the accept and `uname name` of client `conn` for a hub that runs later;
        /// keep the returned half of the answer until it has run.
        fn join_queued(
            tx: &crossbeam_channel::Sender<ToHub<Mem>>,
            conn: ConnId,
            name: &str,
            out: &Mem,
        ) -> Pending {
            let (answer, pending) = slot();
            let accepted = ToHub::Accepted {
                conn,
                tag: Tag::from(format!("conn={conn}").as_str()),
                ip: HERE,
                outbox: out.clone(),
            };
            tx.send(accepted).expect("send");
            let register = ToHub::Register {
                conn,
                nick: nick(name),
                answer,
            };
            tx.send(register).expect("send");
            pending
        }

        #[test]
        fn writers_are_woken_once_a_burst() {
            let f = hub();
            let (tx, rx) = bounded(64);
            let (alice, bob) = (Mem::default(), Mem::default());
            let _pending = [
                join_queued(&tx, 1, "alice", &alice),
                join_queued(&tx, 2, "bob", &bob),
            ];
            for i in 0..10 {
                let line = format!("chatm alice bob {i}\r\n");
                let mut chats = Chats::default();
                chats.push(&line, field(&line, 2), 1);
                tx.send(ToHub::Chat { conn: 1, chats }).expect("send");
            }
            drop(tx);
            f.hub.run(rx);
            assert_eq!(bob.lines().len(), 1 + 10); // `+OK you are bob`, the messages.
            assert_eq!(bob.wakes(), 1);
            assert_eq!(alice.wakes(), 1);
        }

        #[test]
        fn a_long_burst_wakes_writers_every_wake_batch_lines() {
            let f = hub();
            let (tx, rx) = bounded(1024);
            let (alice, bob) = (Mem::default(), Mem::default());
            let _pending = [
                join_queued(&tx, 1, "alice", &alice),
                join_queued(&tx, 2, "bob", &bob),
            ];
            // WAKE_BATCH lines in batches of 32, then one more line: within one burst, the
            // writers are woken once the hub has handled WAKE_BATCH lines, and at its end.
            let line = "chatm alice bob x\r\n";
            for _ in 0..WAKE_BATCH / 32 {
                let mut chats = Chats::default();
                for _ in 0..32 {
                    chats.push(line, field(line, 2), 32);
                }
                tx.send(ToHub::Chat { conn: 1, chats }).expect("send");
            }
            let mut last = Chats::default();
            last.push(line, field(line, 2), 1);
            tx.send(ToHub::Chat {
                conn: 1,
                chats: last,
            })
            .expect("send");
            drop(tx);
            f.hub.run(rx);
            assert_eq!(bob.lines().len(), 1 + WAKE_BATCH + 1);
            assert_eq!(bob.wakes(), 2);
        }
    }

    mod receipts {
        use super::*;

        /// An idle client's entry holds no receipts state: ten words on a 64-bit machine
        /// (it was 24 when every client carried its receipts' queues inline).
        #[test]
        fn an_idle_clients_entry_is_small() {
            assert!(std::mem::size_of::<Client<Mem>>() <= 10 * std::mem::size_of::<usize>());
        }

        #[test]
        fn a_receipt_goes_to_the_sender_and_nothing_to_its_author() {
            let mut f = hub();
            let alice = f.join(1, "alice");
            let bob = f.join(2, "bob");
            f.chat(1, "chatm alice bob hi");
            alice.lines();
            bob.lines();
            f.receipt(2, "chatr ALICE bob");
            assert_eq!(alice.lines(), ["chatr ALICE bob"]);
            assert!(bob.lines().is_empty());
        }

        #[test]
        fn a_receipt_nothing_awaits_is_refused() {
            let mut f = hub();
            let alice = f.join(1, "alice");
            let bob = f.join(2, "bob");
            f.receipt(2, "chatr alice bob");
            assert_eq!(
                bob.lines(),
                ["-ERR [NO-SUCH] no message from alice awaits a receipt"]
            );
            assert!(alice.lines().is_empty());
        }

        #[test]
        fn one_receipt_a_message() {
            let mut f = hub();
            let alice = f.join(1, "alice");
            let bob = f.join(2, "bob");
            f.chat(1, "chatm alice bob one");
            f.chat(1, "chatm alice bob two");
            alice.lines();
            bob.lines();
            for _ in 0..3 {
                f.receipt(2, "chatr alice bob");
            }
            assert_eq!(alice.lines(), ["chatr alice bob", "chatr alice bob"]);
            assert_eq!(
                bob.lines(),
                ["-ERR [NO-SUCH] no message from alice awaits a receipt"]
            );
        }

        #[test]
        fn a_broadcast_awaits_no_receipt() {
            let mut f = hub();
            f.join(1, "alice");
            let bob = f.join(2, "bob");
            f.chat(1, "chatm alice * hi");
            bob.lines();
            f.receipt(2, "chatr alice bob");
            assert_eq!(
                bob.lines(),
                ["-ERR [NO-SUCH] no message from alice awaits a receipt"]
            );
        }

        #[test]
        fn receipts_from_several_senders_match_their_own() {
            let mut f = hub();
            let alice = f.join(1, "alice");
            let bob = f.join(2, "bob");
            let carol = f.join(3, "carol");
            f.chat(1, "chatm alice bob a");
            f.chat(3, "chatm carol bob c");
            f.chat(1, "chatm alice bob a");
            alice.lines();
            carol.lines();
            f.receipt(2, "chatr carol bob");
            f.receipt(2, "chatr alice bob");
            f.receipt(2, "chatr alice bob");
            assert_eq!(carol.lines(), ["chatr carol bob"]);
            assert_eq!(alice.lines(), ["chatr alice bob", "chatr alice bob"]);
            assert_eq!(bob.lines().len(), 3); // The three messages; no error.
        }

        #[test]
        fn a_receipt_names_the_sender_as_the_message_did_after_renames() {
            let mut f = hub();
            let alice = f.join(1, "alice");
            let bob = f.join(2, "bob");
            f.chat(1, "chatm alice bob one");
            f.chat(1, "chatm alice bob two");
            assert!(matches!(f.rename(1, "carol"), Answer::Renamed(_)));
            assert!(matches!(f.rename(2, "dave"), Answer::Renamed(_)));
            alice.lines();
            bob.lines();
            // The new name awaits nothing; the old one reaches the renamed sender.
            f.receipt(2, "chatr carol dave");
            f.receipt(2, "chatr alice dave");
            assert_eq!(
                bob.lines(),
                ["-ERR [NO-SUCH] no message from carol awaits a receipt"]
            );
            assert_eq!(alice.lines(), ["chatr alice dave"]);
        }

        #[test]
        fn a_receipt_to_a_departed_sender_is_accepted_and_dropped() {
            let mut f = hub_with(Duration::ZERO, 1024);
            let alice = f.join(1, "alice");
            let bob = f.join(2, "bob");
            let carol = f.join(3, "carol");
            f.chat(1, "chatm alice bob hi");
            f.quit(1);
            // Not held: a newcomer takes the name, and is not the same sender.
            let again = f.join(4, "alice");
            bob.lines();
            carol.lines();
            f.receipt(2, "chatr alice bob");
            assert!(bob.lines().is_empty(), "no reply to the receipt's author");
            assert!(again.lines().is_empty());
            assert!(carol.lines().is_empty());
            assert_eq!(alice.lines(), ["+OK message relayed"]);
        }
    }

    mod notifications {
        use super::*;

        #[test]
        fn off_by_default() {
            let mut f = hub();
            let alice = f.join(1, "alice");
            f.join(2, "bob");
            assert!(matches!(f.rename(2, "carol"), Answer::Renamed(_)));
            f.quit(2);
            assert!(alice.lines().is_empty());
        }

        #[test]
        fn on_tells_joins_renames_and_quits_of_others() {
            let mut f = hub();
            let alice = f.join(1, "alice");
            f.notif(1, true);
            assert_eq!(alice.lines(), ["+OK notifications on"]);
            f.join(2, "bob");
            assert!(matches!(f.rename(2, "Carol"), Answer::Renamed(_)));
            f.quit(2);
            assert_eq!(
                alice.lines(),
                [
                    "notif join bob",
                    "notif cname bob Carol",
                    "notif quit Carol"
                ]
            );
        }

        #[test]
        fn a_subscriber_is_not_told_its_own_events() {
            let mut f = hub();
            let alice = f.join(1, "alice");
            f.notif(1, true);
            assert!(matches!(f.rename(1, "ALICE"), Answer::Renamed(_)));
            assert_eq!(
                alice.lines(),
                [
                    "+OK notifications on",
                    "+OK name changed from alice to ALICE"
                ]
            );
        }

        #[test]
        fn refusals_and_negotiating_clients_are_not_events() {
            let mut f = hub();
            let alice = f.join(1, "alice");
            f.notif(1, true);
            alice.lines();
            f.connect(2, HERE);
            assert_eq!(f.register(2, "alice"), Answer::InUse);
            f.quit(2);
            f.join(3, "bob");
            assert_eq!(f.rename(3, "alice"), Answer::NotRenamed);
            assert_eq!(alice.lines(), ["notif join bob"]);
        }

        #[test]
        fn off_stops_them() {
            let mut f = hub();
            let alice = f.join(1, "alice");
            f.notif(1, true);
            f.notif(1, false);
            assert_eq!(
                alice.lines(),
                ["+OK notifications on", "+OK notifications off"]
            );
            f.join(2, "bob");
            f.quit(2);
            assert!(alice.lines().is_empty());
        }
    }

    mod users_and_departure {
        use super::*;

        #[test]
        fn users_lists_established_clients_case_insensitively_sorted() {
            let mut f = hub();
            let alice = f.join(1, "alice");
            f.join(2, "Bob");
            f.join(3, "aaron");
            f.connect(4, HERE);
            f.hub.handle(ToHub::Users { conn: 1 });
            assert_eq!(alice.lines(), ["+OK 3 users", "aaron", "alice", "Bob", "."]);
        }

        #[test]
        fn cquit_sends_the_last_lines_and_releases_the_name() {
            let mut f = hub_with(Duration::ZERO, 1024);
            let alice = f.join(1, "alice");
            let bob = f.join(2, "bob");
            f.quit(1);
            assert_eq!(
                alice.finished().as_deref(),
                Some("+OK terminating tasks and disconnecting\r\n")
            );
            f.hub.handle(ToHub::Users { conn: 2 });
            assert_eq!(bob.lines(), ["+OK 1 users", "bob", "."]);
            f.connect(3, THERE);
            assert!(matches!(f.register(3, "alice"), Answer::Registered { .. }));
            // Gone for good: nothing more reaches it.
            f.chat(2, "chatm bob alice hi");
            assert!(alice.lines().is_empty());
        }

        #[test]
        fn cquit_releases_the_receipts_owed() {
            let mut f = hub_with(Duration::ZERO, 1024);
            let alice = f.join(1, "alice");
            f.join(2, "bob");
            f.chat(1, "chatm alice bob hi");
            f.quit(2);
            let bob = f.join(3, "bob"); // Not held: the receipt is not owed again.
            f.receipt(3, "chatr alice bob");
            assert_eq!(
                bob.lines(),
                ["-ERR [NO-SUCH] no message from alice awaits a receipt"]
            );
            assert_eq!(alice.lines(), ["+OK message relayed"]);
        }
    }

    mod resume {
        //! §5.8: copies, mailboxes, the counted welcome back and its replay.
        use super::*;

        fn hub_mailbox(mailbox: usize, mailbox_total: usize) -> Fixture {
            hub_config(HubConfig {
                hold: Duration::from_secs(300),
                max_holds: 1024,
                mailbox,
                mailbox_total,
            })
        }

        /// `name` comes back on `conn` from here: the `uname` answer, and what it got.
        fn come_back(f: &mut Fixture, conn: ConnId, name: &str) -> (Mem, Vec<String>) {
            let out = f.connect(conn, HERE);
            assert_eq!(f.register(conn, name), registered(name, true));
            let lines = out.lines();
            (out, lines)
        }

        #[test]
        fn unreceipted_messages_are_replayed_after_a_counted_welcome_back() {
            let mut f = hub();
            let bob = f.join(1, "bob");
            f.join(2, "alice");
            for i in 0..3 {
                f.chat(1, &format!("chatm bob alice {i}"));
            }
            f.receipt(2, "chatr bob alice"); // The first is delivered: not replayed.
            f.quit(2);
            let (_, lines) = come_back(&mut f, 3, "alice");
            assert_eq!(
                lines,
                [
                    "+OK welcome back alice (2 held, 0 lost)",
                    "chatm bob alice 1",
                    "chatm bob alice 2"
                ]
            );
            assert_eq!(bob.lines().len(), 3 + 1);
        }

        #[test]
        fn an_empty_mailbox_is_the_plain_welcome_back() {
            let mut f = hub();
            f.join(1, "bob");
            f.join(2, "alice");
            f.chat(1, "chatm bob alice hi");
            f.receipt(2, "chatr bob alice");
            f.quit(2);
            assert_eq!(come_back(&mut f, 3, "alice").1, ["+OK welcome back alice"]);
        }

        #[test]
        fn a_message_to_a_held_name_is_held() {
            let mut f = hub();
            let bob = f.join(1, "bob");
            f.join(2, "Alice");
            f.quit(2);
            f.chat(1, "chatm bob ALICE one");
            f.chat(1, "chatm bob alice two");
            assert_eq!(
                bob.lines(),
                ["+OK message held for Alice", "+OK message held for Alice"]
            );
            let (_, lines) = come_back(&mut f, 3, "alice");
            assert_eq!(
                lines,
                [
                    "+OK welcome back alice (2 held, 0 lost)",
                    "chatm bob ALICE one",
                    "chatm bob alice two"
                ]
            );
        }

        #[test]
        fn a_message_the_mailbox_cannot_take_is_refused_and_not_kept() {
            let mut f = hub_mailbox(64, 1 << 20);
            let bob = f.join(1, "bob");
            f.join(2, "alice");
            f.quit(2);
            let (x, y) = ("x".repeat(40), "y".repeat(40));
            f.chat(1, &format!("chatm bob alice {x}"));
            f.chat(1, &format!("chatm bob alice {y}"));
            assert_eq!(
                bob.lines(),
                [
                    "+OK message held for alice",
                    "-ERR [FULL] mailbox of alice is full"
                ]
            );
            let (_, lines) = come_back(&mut f, 3, "alice");
            assert_eq!(
                lines,
                [
                    "+OK welcome back alice (1 held, 0 lost)".to_string(),
                    format!("chatm bob alice {x}")
                ]
            );
        }

        #[test]
        fn copies_past_the_mailbox_are_counted_lost_on_return() {
            let mut f = hub_mailbox(64, 1 << 20);
            let bob = f.join(1, "bob");
            f.join(2, "alice");
            let (x, y) = ("x".repeat(40), "y".repeat(40));
            f.chat(1, &format!("chatm bob alice {x}"));
            f.chat(1, &format!("chatm bob alice {y}"));
            f.quit(2);
            let (again, lines) = come_back(&mut f, 3, "alice");
            assert_eq!(
                lines,
                [
                    "+OK welcome back alice (1 held, 1 lost)".to_string(),
                    format!("chatm bob alice {y}")
                ]
            );
            // Only what was replayed awaits a receipt now.
            bob.lines();
            for _ in 0..2 {
                f.receipt(3, "chatr bob alice");
            }
            assert_eq!(bob.lines(), ["chatr bob alice"]);
            assert_eq!(
                again.lines(),
                ["-ERR [NO-SUCH] no message from bob awaits a receipt"]
            );
        }

        #[test]
        fn a_receipt_for_a_held_sender_goes_into_its_mailbox() {
            let mut f = hub();
            f.join(1, "alice");
            let bob = f.join(2, "bob");
            f.chat(1, "chatm alice bob hi");
            f.quit(1);
            f.receipt(2, "chatr alice bob");
            assert!(
                bob.lines().len() == 1,
                "the message; no reply to the receipt"
            );
            let (_, lines) = come_back(&mut f, 3, "alice");
            assert_eq!(
                lines,
                ["+OK welcome back alice (1 held, 0 lost)", "chatr alice bob"]
            );
        }

        #[test]
        fn a_receipt_the_mailbox_cannot_take_is_counted_lost() {
            let mut f = hub_mailbox(20, 1 << 20);
            f.join(1, "alice");
            f.join(2, "bob");
            f.chat(1, "chatm alice bob hi");
            f.chat(1, "chatm alice bob hi");
            f.quit(1);
            f.receipt(2, "chatr alice bob"); // 17 bytes: fits in 20.
            f.receipt(2, "chatr alice bob"); // Does not: lost.
            let (_, lines) = come_back(&mut f, 3, "alice");
            assert_eq!(
                lines,
                ["+OK welcome back alice (1 held, 1 lost)", "chatr alice bob"]
            );
        }

        #[test]
        fn a_replayed_message_awaits_its_receipt_for_its_sender() {
            let mut f = hub();
            let bob = f.join(1, "bob");
            f.join(2, "alice");
            f.chat(1, "chatm bob alice hi");
            f.quit(2);
            let (again, _) = come_back(&mut f, 3, "alice");
            bob.lines();
            f.receipt(3, "chatr bob alice");
            assert_eq!(bob.lines(), ["chatr bob alice"]);
            f.receipt(3, "chatr bob alice");
            assert_eq!(
                again.lines(),
                ["-ERR [NO-SUCH] no message from bob awaits a receipt"]
            );
        }

        #[test]
        fn a_replayed_message_is_copied_again() {
            let mut f = hub();
            f.join(1, "bob");
            f.join(2, "alice");
            f.chat(1, "chatm bob alice hi");
            f.quit(2);
            come_back(&mut f, 3, "alice");
            f.quit(3);
            let (_, lines) = come_back(&mut f, 4, "alice");
            assert_eq!(
                lines,
                [
                    "+OK welcome back alice (1 held, 0 lost)",
                    "chatm bob alice hi"
                ]
            );
        }

        #[test]
        fn a_receipt_reaches_a_sender_that_came_back() {
            let mut f = hub();
            f.join(1, "alice");
            f.join(2, "bob");
            f.chat(1, "chatm alice bob hi");
            f.quit(1);
            let (again, _) = come_back(&mut f, 3, "alice");
            f.receipt(2, "chatr alice bob");
            assert_eq!(again.lines(), ["chatr alice bob"]);
            // And after a second departure, into the mailbox again.
            f.chat(3, "chatm alice bob two");
            f.quit(3);
            f.receipt(2, "chatr alice bob");
            let (_, lines) = come_back(&mut f, 4, "alice");
            assert_eq!(
                lines,
                ["+OK welcome back alice (1 held, 0 lost)", "chatr alice bob"]
            );
        }

        #[test]
        fn per_sender_order_holds_across_the_resume() {
            let mut f = hub();
            f.join(1, "bob");
            f.join(2, "alice");
            f.chat(1, "chatm bob alice one");
            f.quit(2);
            f.chat(1, "chatm bob alice two");
            let (again, lines) = come_back(&mut f, 3, "alice");
            f.chat(1, "chatm bob alice three");
            assert_eq!(
                lines,
                [
                    "+OK welcome back alice (2 held, 0 lost)",
                    "chatm bob alice one",
                    "chatm bob alice two"
                ]
            );
            assert_eq!(again.lines(), ["chatm bob alice three"]);
        }

        #[test]
        fn another_address_is_refused_and_the_mailbox_kept() {
            let mut f = hub();
            f.join(1, "bob");
            f.join(2, "alice");
            f.chat(1, "chatm bob alice hi");
            f.quit(2);
            f.connect(3, THERE);
            assert_eq!(f.register(3, "alice"), Answer::InUse);
            let (_, lines) = come_back(&mut f, 4, "alice");
            assert_eq!(
                lines,
                [
                    "+OK welcome back alice (1 held, 0 lost)",
                    "chatm bob alice hi"
                ]
            );
        }

        #[test]
        fn hold_zero_keeps_nothing() {
            let mut f = hub_with(Duration::ZERO, 1024);
            let bob = f.join(1, "bob");
            f.join(2, "alice");
            f.chat(1, "chatm bob alice hi");
            f.quit(2);
            bob.lines();
            f.chat(1, "chatm bob alice again");
            assert_eq!(bob.lines(), ["-ERR [NO-SUCH] no such user alice"]);
            assert_eq!(f.hub.copies + f.hub.holds.bytes(), 0);
        }

        #[test]
        fn a_broadcast_is_never_held() {
            let mut f = hub();
            let bob = f.join(1, "bob");
            f.join(2, "alice");
            f.quit(2);
            f.chat(1, "chatm bob * hi");
            assert_eq!(bob.lines(), ["+OK message relayed"]);
            assert_eq!(come_back(&mut f, 3, "alice").1, ["+OK welcome back alice"]);
        }

        #[test]
        fn the_mailbox_ends_with_its_hold() {
            let mut f = hub();
            let bob = f.join(1, "bob");
            f.join(2, "alice");
            f.chat(1, "chatm bob alice hi");
            f.quit(2);
            assert!(f.hub.holds.bytes() > 0);
            f.hub.holds.purge(Instant::now() + Duration::from_secs(301));
            assert_eq!(f.hub.holds.bytes(), 0);
            bob.lines();
            f.chat(1, "chatm bob alice again");
            assert_eq!(bob.lines(), ["-ERR [NO-SUCH] no such user alice"]);
        }

        #[test]
        fn past_the_total_the_oldest_held_mailbox_goes_first() {
            // Each line is 20 bytes; room for three in all.
            let mut f = hub_mailbox(1024, 60);
            f.join(1, "bob");
            for (conn, name) in [(2, "old"), (3, "mid")] {
                f.join(conn, name);
                f.quit(conn);
            }
            f.chat(1, "chatm bob old 1 ab");
            f.chat(1, "chatm bob mid 1 ab");
            f.chat(1, "chatm bob mid 2 ab");
            f.join(4, "new");
            f.chat(1, "chatm bob new 1 ab"); // A copy: past the total.
            assert_eq!(f.hub.copies + f.hub.holds.bytes(), 60);
            let (_, lines) = come_back(&mut f, 5, "old");
            assert_eq!(lines, ["+OK welcome back old (0 held, 1 lost)"]);
            let (_, lines) = come_back(&mut f, 6, "mid");
            assert_eq!(lines[0], "+OK welcome back mid (2 held, 0 lost)");
        }

        #[test]
        fn a_rename_takes_a_held_name_but_not_its_mailbox() {
            let mut f = hub();
            f.join(1, "bob");
            f.join(2, "alice");
            f.chat(1, "chatm bob alice hi");
            f.quit(2);
            let carol = f.join(3, "carol");
            assert!(matches!(f.rename(3, "alice"), Answer::Renamed(_)));
            assert_eq!(carol.lines(), ["+OK name changed from carol to alice"]);
            assert_eq!(f.hub.holds.bytes(), 0);
        }

        /// §7: the welcome back and its replay answer the client's own `uname`, so they
        /// never make it a slow consumer, however small its budget.
        #[test]
        fn a_replay_larger_than_the_queue_budget_is_delivered() {
            let mut f = hub();
            f.join(1, "bob");
            f.join(2, "alice");
            f.chat(1, "chatm bob alice hi");
            f.quit(2);
            // Room for the 41-byte welcome back, not for the line after it.
            let small = Mem::default();
            small.0.borrow_mut().budget = Some(45);
            f.connect_with(3, HERE, small.clone());
            assert_eq!(f.register(3, "alice"), registered("alice", true));
            assert_eq!(small.aborted(), None);
            assert_eq!(
                small.lines(),
                [
                    "+OK welcome back alice (1 held, 0 lost)",
                    "chatm bob alice hi"
                ]
            );
        }

        #[test]
        fn the_books_balance_when_everyone_has_gone() {
            let mut f = hub_with(Duration::ZERO, 1024);
            for conn in 1..=200 {
                f.join(conn, &format!("u{conn}"));
            }
            for conn in 2..=200 {
                f.chat(1, &format!("chatm u1 u{conn} hi"));
            }
            assert!(f.hub.copies > 0);
            for conn in 1..=200 {
                f.quit(conn);
            }
            assert_eq!(f.hub.copies, 0);
            assert!(
                f.hub.clients.capacity() <= 64,
                "{}",
                f.hub.clients.capacity()
            );
            assert!(f.hub.names.capacity() <= 64, "{}", f.hub.names.capacity());
        }
    }

    mod slow_consumer {
        use super::*;

        /// `name` on `conn`, whose output side takes `budget` bytes in all.
        fn join_small(f: &mut Fixture, conn: ConnId, name: &str, budget: usize) -> Mem {
            let out = Mem::default();
            out.0.borrow_mut().budget = Some(budget);
            f.connect_with(conn, HERE, out.clone());
            assert!(matches!(f.register(conn, name), Answer::Registered { .. }));
            out
        }

        #[test]
        fn overflow_aborts_the_client_and_releases_its_name() {
            let mut f = hub_with(Duration::ZERO, 1024);
            let alice = f.join(1, "alice");
            f.notif(1, true);
            // "+OK you are bob\r\n" is 17 bytes; the message (22) does not fit in 30.
            let bob = join_small(&mut f, 2, "bob", 30);
            alice.lines();
            f.chat(1, "chatm alice bob hello!");
            assert_eq!(bob.aborted(), Some(Cause::SlowConsumer));
            assert_eq!(bob.lines(), ["+OK you are bob"]);
            assert_eq!(alice.lines(), ["+OK message relayed", "notif quit bob"]);
            f.chat(1, "chatm alice bob again");
            assert_eq!(alice.lines(), ["-ERR [NO-SUCH] no such user bob"]);
            f.connect(3, THERE);
            assert!(matches!(f.register(3, "bob"), Answer::Registered { .. }));
        }

        #[test]
        fn one_slow_consumer_does_not_stop_a_broadcast() {
            let mut f = hub();
            let alice = f.join(1, "alice");
            let bob = join_small(&mut f, 2, "bob", 20);
            let carol = f.join(3, "carol");
            f.chat(1, "chatm alice * hello");
            assert_eq!(bob.aborted(), Some(Cause::SlowConsumer));
            assert_eq!(carol.lines(), ["chatm alice * hello"]);
            assert_eq!(alice.lines(), ["+OK message relayed"]);
            assert!(carol.aborted().is_none() && alice.aborted().is_none());
        }

        #[test]
        fn a_client_within_its_budget_is_kept() {
            let mut f = hub();
            f.join(1, "alice");
            let bob = join_small(&mut f, 2, "bob", 17 + 23);
            f.chat(1, "chatm alice bob hello");
            assert!(bob.aborted().is_none());
            assert_eq!(bob.lines(), ["+OK you are bob", "chatm alice bob hello"]);
        }
    }
}
