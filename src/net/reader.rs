//! The reader thread of one connection (`xscp-conn-<id>`).
//!
//! It owns the connection's [`Session`]. It reads with a timeout set to when the session
//! next needs time to pass ([`Session::poll_at`]), frames what arrives, hands each line (and
//! each expiry) to the session and carries out the step it returns: a response or a request goes to the
//! hub, which keeps responses in command order. When the session ends the connection, the
//! reader queues the last lines and the close (through the hub if it still owes answers,
//! so that they come first), tells the hub the client departs, writes them and the FIN,
//! drains the input for a short linger and closes (§7).

use std::io::{ErrorKind, Read};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{SendError, Sender};

use super::LINGER;
use super::acceptor::ConnWork;
use super::admission::Ticket;
use super::outbox::{Outbox, Room, Writers, max_in_flight};
use super::pool::Pool;
use super::shared::{ConnShared, linger};
use crate::conn_id::{ConnId, Tag};
use crate::hub::{Chats, Output, Pending, slot};
use crate::protocol::cause::{Cause, Closed};
use crate::protocol::framing::Framer;
use crate::protocol::reply;
use crate::protocol::request::{Answer, Hand, Request};
use crate::protocol::session::{self, Closing, Session, Step};
use crate::text::for_log;

/// The hub's messages, carrying this layer's output side of a client.
pub type ToHub = crate::hub::ToHub<Outbox>;

/// The read buffer every connection starts with (on the reader's stack): room for the
/// lines of a client that types, and small, since every call the reader makes sits below
/// it and an idle reader's stack stays two pages only while the deepest stays above 8 KiB
/// (see [`serve`]).
const SMALL_READ: usize = 128;

/// The read buffer of a connection whose reads fill the small one.
const LARGE_READ: usize = 16 * 1024;

/// The most `chatm` lines a reader holds back to give the hub in one message, with
/// `--sendq` of `sendq` bytes: half of [`max_in_flight`] (which is
/// [`super::outbox::MAX_IN_FLIGHT`] but for a small `--sendq`). The reader takes a command
/// only while at most the other half are with the hub, so at most that many are ever
/// unanswered, held back or not.
fn chat_batch(sendq: usize) -> usize {
    usize::try_from(max_in_flight(sendq) / 2).unwrap_or(1)
}

/// How late a timer may fire (see `run_timers`).
const TIMER_TOLERANCE: Duration = Duration::from_millis(5);

/// In the unit tests only, the reader of a client that registers this name panics once it
/// is registered, to show that a panic is contained (see the tests in `server.rs`): no
/// client can make a reader panic otherwise.
#[cfg(test)]
pub const PANIC_NICK: &str = "boom";

/// What every connection needs to know from the configuration.
#[derive(Clone, Debug)]
pub struct ConnSettings {
    /// What every session needs (retries, timers).
    pub session: Arc<session::Settings>,
    /// PDUs per second (0: unlimited).
    pub rate: u32,
    /// Threads for readers.
    pub readers: Arc<Pool<ConnWork>>,
    /// Threads and limits for writers.
    pub writers: Arc<Writers>,
}

/// A freshly accepted connection, ready for its reader thread.
pub struct Accepted {
    /// Its number.
    pub id: ConnId,
    /// The peer.
    pub peer: SocketAddr,
    /// The shared socket state.
    pub shared: Arc<ConnShared>,
    /// Its place among the live connections.
    pub ticket: Ticket,
}

/// How the read loop ended.
enum Ending {
    /// The session decided: send these lines, then close.
    Closing(Closing),
    /// The connection failed or was ended from outside (hub, writer, shutdown).
    Fault(Cause),
}

struct Reader {
    id: ConnId,
    shared: Arc<ConnShared>,
    settings: Arc<ConnSettings>,
    hub: Sender<ToHub>,
    outbox: Outbox,
    session: Session,
    /// The read timeout currently set on the socket.
    armed: Option<Duration>,
    /// Commands given to the hub for it to answer (see [`Outbox::wait_room`]).
    sent: u64,
    /// The next command waits until the hub has answered every earlier one.
    sync_next: bool,
    /// Flood control: PDUs that may still be read before waiting (`--rate`).
    budget: f64,
    budget_at: Instant,
    peer_ip: IpAddr,
    /// The outbox is claimed ([`Outbox::claim`]): the reader writes what the hub queued.
    claimed: bool,
    /// `chatm` lines read and checked, not yet given to the hub (see [`chat_batch`]).
    chats: Chats,
    /// The hub knows the connection (see [`Reader::announce`]).
    announced: bool,
    /// The answer to a request handed over [`Hand::Later`], for the session before
    /// anything else (see [`Reader::collect`]).
    later: Option<Pending>,
}

/// Serves one connection on the calling thread until it is closed.
///
/// The memory a reader's stack keeps is every page its deepest call ever reached: an idle
/// client costs two pages if no call below the read loop goes further than its first
/// request's (`ask_later` or `wait_answer`, waking the hub). So setting up, reading and closing are
/// functions that are not inlined here, and the steps of the read loop that need room
/// are functions of their own, called one after the other rather than nested.
pub fn serve(conn: Accepted, settings: Arc<ConnSettings>, hub: Sender<ToHub>) {
    conn.shared.set_reader(true);
    let (ticket, mut reader) = Reader::start(conn, settings, hub);
    // A panic here is a bug; it must still not take the server down nor keep the client's
    // name: contain it and close the connection like any fault.
    let ending =
        catch_unwind(AssertUnwindSafe(|| reader.run())).unwrap_or_else(|_| reader.panicked());
    let (how, departed) = reader.finish(ending);
    reader.shared.set_reader(false);
    drop(ticket);
    // The hub has taken the departure (and logged the name's hold) before the close is
    // logged: the log reads in the order things happened (§7). Unless the close is not
    // logged (`-q`): then nothing waits for the hub, and the thread goes back to its pool.
    if log::log_enabled!(session::TRANSITIONS) {
        departed.wait();
    }
    reader.session.on_closed(how);
}

/// Whether the socket's read timeout, `armed`, must be set again for a read that should
/// end within `wait`. The timeout applies to each read from its start, so the one set is
/// kept if a read starting now would not overshoot by more than [`TIMER_TOLERANCE`]: this
/// saves a system call per read while data flows (the deadline moves on with every
/// read); waking early is harmless, the timers are checked again. But one much shorter
/// than needed is set again: left as it is, a timeout set a few milliseconds before one
/// deadline (a `uname` just before `--negotiate-timeout`) would wake the reader every
/// few milliseconds for the rest of the connection.
fn rearm(armed: Option<Duration>, wait: Duration) -> bool {
    armed.is_none_or(|armed| armed > wait + TIMER_TOLERANCE || armed * 2 < wait)
}

/// The hub's inbox is closed: the server is stopping.
fn hub_stopped() -> Ending {
    Ending::Fault(Cause::Io("hub stopped".into()))
}

impl Reader {
    /// Greets the client: LISTEN -> NEGOTIATING.
    #[inline(never)]
    fn start(
        conn: Accepted,
        settings: Arc<ConnSettings>,
        hub: Sender<ToHub>,
    ) -> (Ticket, Box<Reader>) {
        let Accepted {
            id,
            peer,
            shared,
            ticket,
        } = conn;
        let tag = Tag::new(id, peer);
        let outbox = Outbox::new(
            id,
            tag.clone(),
            Arc::clone(&shared),
            Arc::clone(&settings.writers),
        );
        let now = Instant::now();
        let reader = Box::new(Reader {
            id,
            shared,
            session: Session::accept(id, tag, Arc::clone(&settings.session), now),
            budget: f64::from(settings.rate),
            settings,
            hub,
            outbox,
            armed: None,
            sent: 0,
            sync_next: false,
            budget_at: now,
            peer_ip: peer.ip(),
            claimed: false,
            chats: Chats::default(),
            announced: false,
            later: None,
        });
        // After the session's LISTEN -> NEGOTIATING, which it follows from. Written by this
        // thread: the hub does not know the client yet, so nothing can come before it.
        let _ = reader.outbox.push_here(reply::GREETING.as_bytes());
        (ticket, reader)
    }

    /// The read loop panicked.
    #[cold]
    fn panicked(&self) -> Ending {
        log::error!("{} BUG: reader panicked; closing", self.session.tag());
        Ending::Fault(Cause::Io("internal error".into()))
    }

    /// Reads until the connection ends, then gives the session an answer it still awaits
    /// ([`Hand::Later`]: the client ended before its next line), so that it learns what the
    /// hub did before its end is logged. Everything the session does happens in here, where
    /// a panic is contained (see [`serve`]); the connection ends for the reason the read
    /// loop found.
    #[inline(always)]
    fn run(&mut self) -> Ending {
        let ending = self.read_loop();
        let _ = self.collect();
        ending
    }

    /// Reads until the connection ends.
    #[inline(never)]
    fn read_loop(&mut self) -> Ending {
        // A small buffer serves a client that types; one whose reads fill it gets a large
        // one (until it goes quiet), so that a pipelining client is read in few system
        // calls while an idle client costs little memory.
        let mut small = [0u8; SMALL_READ];
        let mut large: Vec<u8> = Vec::new();
        let mut framer = Framer::new();
        loop {
            if let Some(end) = self.run_timers() {
                return end;
            }
            let buf: &mut [u8] = if large.is_empty() {
                &mut small
            } else {
                &mut large
            };
            let n = match self.shared.socket().read(buf) {
                Ok(0) => {
                    if framer.buffered() > 0 {
                        // Not a line (xscp(7) §1): nothing of it is carried out.
                        log::info!(
                            "{} closed in the middle of a line: {} bytes without CR LF discarded",
                            self.session.tag(),
                            framer.buffered()
                        );
                    }
                    return Ending::Fault(self.outside_cause(Cause::PeerClosed));
                }
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    // Quiet until a timer: an idle client keeps no read buffers.
                    framer.release();
                    large = Vec::new();
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => match self.shared.end() {
                    // Woken by the server (shutdown): the transition is logged now.
                    Some(cause) => return Ending::Fault(cause),
                    // A shutdown reaches the clients through the hub: it must know this one.
                    None => match self.announce() {
                        Some(end) => return end,
                        None => continue,
                    },
                },
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                    return Ending::Fault(self.outside_cause(Cause::Reset));
                }
                Err(e) => return Ending::Fault(self.outside_cause(Cause::Io(e.to_string()))),
            };
            if let Some(cause) = self.shared.end() {
                // The hub or the writer ended the connection meanwhile.
                return Ending::Fault(cause);
            }
            self.session.on_input(Instant::now());
            let full = n == buf.len();
            let mut input = &buf[..n];
            while let Some(line) = framer.next_line(&mut input) {
                // The session takes the hub's answer before the next line or violation.
                if self.later.is_some()
                    && let Some(end) = self.collect()
                {
                    return end;
                }
                let line = match line {
                    Ok(line) => line,
                    Err(e) => {
                        log::trace!(
                            "{} <- (framing violation: {e}) {}",
                            self.session.tag(),
                            framer.rejected()
                        );
                        return Ending::Closing(self.session.on_frame_error(e));
                    }
                };
                if !self.announced
                    && let Some(end) = self.announce()
                {
                    return end;
                }
                if let Some(end) = self.wait_room() {
                    return end;
                }
                log::trace!("{} <- {}", self.session.tag(), for_log(line.as_bytes()));
                if let Some(end) = self.throttle() {
                    return end;
                }
                // Lines like this one the rest of the read may hold: what a new batch of
                // `chatm` lines makes room for.
                let ahead = (1 + input.len() / (line.len() + 2))
                    .min(chat_batch(self.settings.writers.sendq));
                let step = self.session.on_line(line);
                let end = self.execute(step, ahead);
                if self.claimed {
                    // Here rather than deeper down, so that an idle client's reader
                    // stack stays two pages (see [`serve`]).
                    self.claimed = false;
                    self.outbox.release();
                }
                if let Some(end) = end {
                    return end;
                }
            }
            // Before the next read, which may wait: the hub gets what this one brought.
            if let Some(end) = self.give_chats() {
                return end;
            }
            if full && large.is_empty() {
                large = vec![0; LARGE_READ];
            }
        }
    }

    /// Backpressure before the next command (§7): waits while more than `--sendq` of this
    /// client's output is queued or too many of its commands are still with the hub, so a
    /// client that pipelines commands without reading the replies is slowed by TCP and its
    /// replies stay bounded. A `users` list, or a log that must show each reply before the
    /// next command (`-vv`), waits for every earlier command to be answered. Past the write
    /// timeout with the queue still over `--sendq`, the client is a slow consumer. Not
    /// inlined: its locals would stay in the read loop's frame, below which every call of
    /// the reader sits (see [`serve`]).
    #[inline(never)]
    fn wait_room(&mut self) -> Option<Ending> {
        let in_flight = if self.sync_next || log::log_enabled!(log::Level::Trace) {
            // Every earlier command answered: those held back go to the hub first.
            if let Some(end) = self.give_chats() {
                return Some(end);
            }
            0
        } else {
            let window = max_in_flight(self.settings.writers.sendq);
            window - window / 2
        };
        self.sync_next = false;
        // Looked at again after every wait: while the reader waited, the hub may have
        // relayed its commands and left a recipient over `--sendq`, which holds the next
        // command back too (or the commands with the hub could push that recipient past
        // the hard bound, see [`max_in_flight`]).
        let room = loop {
            if let Some(room) = self.outbox.room_now(self.sent, in_flight) {
                break room;
            }
            // The reader is about to wait: the lines it holds back do not wait with it.
            if let Some(end) = self.give_chats() {
                return Some(end);
            }
            self.outbox.wait_behind();
            let room = self.outbox.wait_room(self.sent, in_flight);
            self.line_waited();
            match room {
                Room::Free => continue,
                other => break other,
            }
        };
        match room {
            Room::Free => None,
            Room::Closing => Some(self.gone()),
            Room::Full => {
                log::warn!(
                    "{} replies over --sendq {} unread for {:?}: dropping slow consumer",
                    self.session.tag(),
                    self.settings.writers.sendq,
                    self.settings.writers.write_timeout
                );
                self.outbox.abort(Cause::SlowConsumer);
                Some(Ending::Fault(Cause::SlowConsumer))
            }
        }
    }

    /// Gives the hub a command it answers (counted for [`Reader::wait_room`]).
    fn ask_hub_async(&mut self, msg: ToHub) -> Option<Ending> {
        self.sent += 1;
        self.give_hub(msg)
    }

    /// A fault seen by the reader, unless someone else recorded why the connection ends.
    fn outside_cause(&self, seen: Cause) -> Cause {
        self.shared.end().unwrap_or(seen)
    }

    /// Tells the session the time, carries out what a timer that fired asks, and sets the
    /// read timeout to when the session next needs the time. Not inlined, as `throttle`:
    /// their locals then stay out of the read loop's frame, which is on the stack whenever
    /// the reader writes (see `release` there).
    #[inline(never)]
    fn run_timers(&mut self) -> Option<Ending> {
        let mut now = Instant::now();
        // A timer that depends on an answer still awaited waits for it (`Hand::Later`).
        if self.later.is_some() && self.session.poll_at().is_some_and(|at| at <= now) {
            if let Some(end) = self.collect() {
                return Some(end);
            }
            now = Instant::now();
        }
        let step = self.session.on_time(now);
        if let Some(end) = self.execute(step, 1) {
            return Some(end);
        }
        let deadline = self.session.poll_at()?;
        let wait = deadline
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        if rearm(self.armed, wait) {
            if let Err(e) = self.shared.socket().set_read_timeout(Some(wait)) {
                return Some(Ending::Fault(Cause::Io(e.to_string())));
            }
            self.armed = Some(wait);
        }
        None
    }

    /// A line the client sent waited (for the budget of `--rate`, or for room under
    /// `--sendq`): it is input the server has not handled yet, so the client is not
    /// silent and is not pinged for the wait (its pong would come after the lines it sent
    /// first, too late).
    fn line_waited(&mut self) {
        self.session.on_input(Instant::now());
    }

    /// Flood control (`--rate`): past the budget, stop reading until it refills. The client
    /// is slowed by TCP backpressure; nothing is dropped. The lines of the last read wait
    /// too, but the session's timers do not: a deadline that falls due meanwhile (the
    /// negotiation deadline, the pong's of a ping sent before) is kept, as is the end of
    /// the connection from outside (a shutdown, a slow-consumer abort), at the latest once
    /// the wait is over. The wait is not silence: no ping is sent for it.
    #[inline(never)]
    fn throttle(&mut self) -> Option<Ending> {
        let rate = f64::from(self.settings.rate);
        if rate == 0.0 {
            return None;
        }
        let now = Instant::now();
        let refill = now.duration_since(self.budget_at).as_secs_f64() * rate;
        self.budget = (self.budget + refill).min(rate);
        self.budget_at = now;
        if self.budget < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - self.budget) / rate);
            log::debug!(
                "{} over --rate {}: reading paused for {wait:?}",
                self.session.tag(),
                self.settings.rate
            );
            // The lines held back do not wait with the reader.
            if let Some(end) = self.give_chats() {
                return Some(end);
            }
            let until = now + wait;
            loop {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                let next = self.session.poll_at().map_or(until, |at| at.min(until));
                thread::sleep(next.saturating_duration_since(now));
                if let Some(cause) = self.shared.end() {
                    return Some(Ending::Fault(cause));
                }
                self.line_waited();
                if let Some(end) = self.run_timers() {
                    return Some(end);
                }
            }
            self.budget = 1.0;
            self.budget_at = Instant::now();
        }
        self.budget -= 1.0;
        None
    }

    /// Gives the hub `msg`, after the `chatm` lines held back (they came first).
    fn give_hub(&mut self, msg: ToHub) -> Option<Ending> {
        if let Some(end) = self.give_chats() {
            return Some(end);
        }
        self.send_to_hub(msg)
    }

    /// Tells the hub of the connection, once: before its first line is handled (or when
    /// the shutdown wakes the reader), so that the hub learns of it right before its first
    /// request and is woken once for both, while a client that leaves without a line costs
    /// the hub nothing. Called from the read loop, at the top of the stack: on the way of
    /// that request it would take the room an idle client's stack has (see [`serve`]).
    #[inline(never)]
    fn announce(&mut self) -> Option<Ending> {
        if self.announced {
            return None;
        }
        self.announced = true;
        let accepted = ToHub::Accepted {
            conn: self.id,
            tag: self.session.tag().clone(),
            ip: self.peer_ip,
            outbox: self.outbox.clone(),
        };
        self.send_to_hub(accepted)
    }

    /// Gives the hub `msg` (once it knows the connection: [`Reader::announce`]).
    fn send_to_hub(&self, msg: ToHub) -> Option<Ending> {
        self.hub.send(msg).err().map(|_| hub_stopped())
    }

    /// Holds back a `chatm` line to give the hub with the next ones from the same read,
    /// which may hold `ahead` lines like it (this one included).
    fn hold_chat(&mut self, line: &str, recipient: Range<usize>, ahead: usize) -> Option<Ending> {
        self.chats.push(line, recipient, ahead);
        if self.chats.len() >= chat_batch(self.settings.writers.sendq) {
            return self.give_chats();
        }
        None
    }

    /// Gives the hub the `chatm` lines held back, as one message (each counts as a command
    /// for [`Reader::wait_room`]).
    #[inline(never)]
    fn give_chats(&mut self) -> Option<Ending> {
        if self.chats.is_empty() {
            return None;
        }
        let chats = std::mem::take(&mut self.chats);
        self.sent += chats.len() as u64;
        self.send_to_hub(ToHub::Chat {
            conn: self.id,
            chats,
        })
    }

    /// Carries out a step; `Some` when the connection ends. `ahead`: how many lines like
    /// this one the rest of the read may hold (see [`Reader::hold_chat`]). The answer to a
    /// request the session waits for is the next step, carried out in the same loop.
    /// Inlined: a frame of its own would sit between the read loop and `wait_answer`.
    #[inline(always)]
    fn execute(&mut self, mut step: Step, ahead: usize) -> Option<Ending> {
        loop {
            step = match step {
                Step::Hub(request) if request.hand() == Hand::Wait => {
                    match self.wait_answer(request) {
                        Ok(next) => next,
                        Err(end) => return Some(end),
                    }
                }
                Step::Hub(request) if request.hand() == Hand::Later => {
                    return self.ask_later(request);
                }
                other => return self.carry_out(other, ahead),
            };
        }
    }

    /// Carries out a step that does not wait for the hub.
    #[inline(never)]
    fn carry_out(&mut self, step: Step, ahead: usize) -> Option<Ending> {
        let conn = self.id;
        match step {
            Step::Nothing => None,
            Step::PongAccepted(sent) => {
                log::debug!("{} pong, rtt {:?}", self.session.tag(), sent.elapsed());
                None
            }
            Step::Reply(line) => self.ask_hub_async(ToHub::Respond { conn, line }),
            Step::Send(line) => self.send_own(&line),
            Step::Hub(request) => {
                if request.hand() == Hand::Drain {
                    self.sync_next = true;
                }
                self.ask_hub_async(ToHub::Request {
                    conn,
                    request,
                    answer: None,
                })
            }
            Step::Chat { line, recipient } => self.hold_chat(&line, recipient, ahead),
            Step::Close(closing) => Some(Ending::Closing(closing)),
        }
    }

    /// Sends a line of the server's own (a ping), written by this thread unless a writer
    /// runs: pinging an idle client starts no thread. A client with no room for it is a
    /// slow consumer.
    #[inline(never)]
    fn send_own(&mut self, line: &str) -> Option<Ending> {
        if self.outbox.push_here(line.as_bytes()).is_ok() {
            return None;
        }
        log::warn!(
            "{} output queue full, no room for {}: dropping slow consumer",
            self.session.tag(),
            for_log(line.trim_end().as_bytes())
        );
        self.outbox.abort(Cause::SlowConsumer);
        Some(Ending::Fault(Cause::SlowConsumer))
    }

    /// Gives the hub a request the session waits for ([`Hand::Wait`]: a `uname` whose
    /// refusal would be the last attempt), waits for the answer and gives it to
    /// the session: the step it returns is carried out next. The hub's reply is the
    /// reader's to write (`claimed`), once back in the read loop: no writer thread is
    /// started for it. Called right under the read loop (`execute` is inlined): the hub's
    /// channel, waking the hub, needs more room below it than any other call an idle
    /// client causes (see [`serve`]).
    #[inline(never)]
    fn wait_answer(&mut self, request: Request) -> Result<Step, Ending> {
        self.outbox.claim();
        self.claimed = true;
        let pending = self.hand_over(request)?;
        self.answered(pending.wait())
    }

    /// Gives the hub `request` with a one-shot slot for its answer (after the `chatm`
    /// lines held back); the asker's half of the slot.
    #[inline(always)]
    fn hand_over(&mut self, request: Request) -> Result<Pending, Ending> {
        let (answer, pending) = slot();
        let msg = ToHub::Request {
            conn: self.id,
            request,
            answer: Some(answer),
        };
        match self.give_hub(msg) {
            Some(end) => Err(end),
            None => Ok(pending),
        }
    }

    /// Gives the hub a request whose answer the session takes later ([`Hand::Later`]):
    /// the hub replies to the client itself, and the reader reads on, without waiting for
    /// the hub. Called right under the read loop, like [`Reader::wait_answer`].
    #[inline(never)]
    fn ask_later(&mut self, request: Request) -> Option<Ending> {
        match self.hand_over(request) {
            Ok(pending) => {
                self.later = Some(pending);
                None
            }
            Err(end) => Some(end),
        }
    }

    /// Gives the session the answer to the request handed over [`Hand::Later`], before
    /// the next line, timer or end: waits for it if the hub has not answered yet (nearly
    /// always it has, by the time the client's next line is read), and carries out the
    /// step it leads to.
    #[inline(never)]
    fn collect(&mut self) -> Option<Ending> {
        let pending = self.later.take()?;
        match self.answered(pending.wait()) {
            Ok(step) => self.execute(step, 1),
            Err(end) => Some(end),
        }
    }

    /// The session takes the hub's answer; `Err` if the hub dropped the request.
    fn answered(&mut self, answer: Answer) -> Result<Step, Ending> {
        match answer {
            Answer::Gone => Err(self.gone()),
            answer => {
                let step = self.session.on_answer(answer);
                #[cfg(test)]
                if self
                    .session
                    .nick()
                    .is_some_and(|n| n.as_str() == PANIC_NICK)
                {
                    panic!("the unit tests' panic: {PANIC_NICK} registered");
                }
                Ok(step)
            }
        }
    }

    /// The hub ended the connection, or is stopping (it dropped a request unanswered, or
    /// the outbox is closing).
    #[cold]
    fn gone(&self) -> Ending {
        Ending::Fault(self.outside_cause(Cause::ServerShutdown))
    }

    /// Sends the last lines, waits for the writer's FIN, lingers, closes; says how the
    /// socket closed, and gives the wait for the hub to have taken the departure.
    #[inline(never)]
    fn finish(&mut self, ending: Ending) -> (Closed, Pending) {
        let (lines, cause, fault) = match ending {
            Ending::Closing(c) => (c.lines, c.cause, false),
            Ending::Fault(cause) => (String::new(), cause, true),
        };
        // A fault moves the session to ABORTED now, before the hub hears of the departure
        // (and holds the name): the log reads in the order things happened. End of stream
        // may be the echo of a reset the writer met first; the log names the real cause
        // when the writer has said so by now.
        if fault {
            let seen = match &cause {
                Cause::PeerClosed => self.outside_cause(Cause::PeerClosed),
                other => other.clone(),
            };
            self.session.on_end(&seen);
        }
        // Lines read before the end are relayed before it (and answered before the last
        // lines). If the hub is gone there is no one to relay them to.
        let _ = self.give_chats();
        // This thread writes the last lines and the FIN itself (in `wait_done`) unless a
        // writer runs: no writer thread is started for them.
        self.outbox.claim();
        // Once the hub has answered every command, nothing it owes this client can come
        // before the last lines: the reader queues them itself and need not wait for the
        // hub to take the departure (one hand-off less per connection). The departure is
        // in the hub's inbox before they are, so before the FIN can leave: a client that
        // reconnects at once finds its name released. Otherwise the hub queues them after
        // its last answers.
        let answered = self.outbox.answered(self.sent);
        let (for_hub, here) = if answered {
            (None, lines)
        } else {
            (Some(lines), String::new())
        };
        let (done, departed) = slot();
        let depart = ToHub::Depart {
            conn: self.id,
            lines: for_hub,
            done,
        };
        // A connection the hub never knew holds nothing there: no departure to record.
        let sent = if self.announced {
            self.hub.send(depart)
        } else {
            Ok(())
        };
        match sent {
            // No hub (the server is stopping): say goodbye directly.
            Err(SendError(ToHub::Depart {
                lines: Some(lines), ..
            })) => self.outbox.finish(&lines),
            _ if answered => self.outbox.finish(&here),
            _ => {}
        }
        // Every way a connection ends queues a close (here, in the hub's
        // Depart, shutdown or slow-consumer abort), so this wait ends.
        self.outbox.wait_done();
        // By now the writer has said whether the end of stream was the echo of a reset.
        let cause = match cause {
            Cause::PeerClosed if fault => self.outside_cause(Cause::PeerClosed),
            other => other,
        };
        let orderly = !matches!(
            cause,
            Cause::PeerClosed | Cause::Reset | Cause::Io(_) | Cause::SlowConsumer
        ) && !matches!(self.shared.end(), Some(Cause::SlowConsumer | Cause::Reset));
        let how = if orderly {
            linger(self.shared.socket(), LINGER)
        } else if cause == Cause::PeerClosed {
            Closed::PeerClosed
        } else {
            Closed::NoLinger
        };
        (how, departed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_read_timeout_is_set_again_only_when_it_is_far_off() {
        // None set yet.
        assert!(rearm(None, 60_000 * MS));
        // Data flows: the deadline moves on with each read; the one set stays, within
        // the tolerance, and when somewhat shorter (it only wakes the reader early).
        assert!(!rearm(Some(60_000 * MS), 60_000 * MS));
        assert!(!rearm(Some(60_000 * MS), 59_997 * MS));
        assert!(!rearm(Some(59_000 * MS), 60_000 * MS));
        // It would overshoot the deadline: set again.
        assert!(rearm(Some(60_000 * MS), 10_000 * MS));
        // Far shorter than needed (set just before an earlier deadline): set again, or the
        // reader would wake every 15 ms for the rest of the connection.
        assert!(rearm(Some(15 * MS), 60_000 * MS));
    }
}
