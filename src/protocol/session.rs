//! One connection's protocol state (xscp(7) §3–§6), without I/O.
//!
//! A [`Session`] takes a line (or the passing of time, or a fault) and returns a [`Step`]:
//! what the connection must do next. Every change of state goes through `Session::set_state`, which
//! consults the transition table and writes the audit line. The order of checks for a line
//! is the one of §4 and of ngIRCd's dispatcher: keyword, then legality in the current state,
//! then arguments, then the handler — handlers never re-check state.
//!
//! The session owns every timer of §5 and §7, in the manner of smoltcp's `poll_at`: it says
//! when it next needs time to pass ([`Session::poll_at`]), and turns an expiry into a step
//! like any other input ([`Session::on_time`]: a ping to send, or a close with its cause).
//! Time is passed in, never read from the clock, so the timer rules are tested without
//! waiting. The caller only sleeps until then and reads.
//!
//! What needs the state all clients share (registration, renames, receipts, the user list)
//! is handed to the hub as a [`Request`] ([`Step::Hub`]); an answer the session waits for
//! comes back through [`Session::on_answer`]. Relaying a `chatm` is the one exception, a
//! step of its own ([`Step::Chat`]), as the reader batches those lines.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cause::{Cause, Closed};
use super::command::{self, Classified, Command, Legality, SyntaxError};
use super::framing::FrameError;
use super::fsm::{self, Event, State};
use super::nick::Nick;
use super::reply::{self, Code};
use super::request::{Answer, Attempt, Request};
use crate::conn_id::{ConnId, Tag};
use crate::text;

/// What every session needs from the command line, shared by all of them.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Failed attempts allowed in NEGOTIATING (`--max-retries`).
    pub max_retries: u32,
    /// Deadline for `uname` from accept (`--negotiate-timeout`).
    pub negotiate_timeout: Duration,
    /// Silence before the server pings (`--ping-interval`).
    pub ping_interval: Duration,
    /// Time to answer a ping (`--ping-timeout`).
    pub ping_timeout: Duration,
    /// The `capa` response ([`reply::capa`]), built once.
    pub capa: String,
}

/// The end of a connection: the last lines to send, then the orderly close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closing {
    /// The final lines (possibly none), CRLF-terminated.
    pub lines: String,
    /// Why the connection ends.
    pub cause: Cause,
}

/// What the connection must do after an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to send (an accepted pong, a broadcast receipt).
    Nothing,
    /// The pong answered the outstanding ping, sent at this instant.
    PongAccepted(Instant),
    /// Send this response.
    Reply(String),
    /// Send this line of the server's own (a ping): it answers no command.
    Send(String),
    /// Hand the hub this request, as [`Request::hand`] says; an answer awaited goes to
    /// [`Session::on_answer`].
    Hub(Request),
    /// Ask the hub to relay `line` (a complete `chatm`) and to reply to the sender.
    Chat {
        /// The relayed line, CRLF-terminated.
        line: String,
        /// Where the recipient field (a nickname or `*`) is in `line`.
        recipient: Range<usize>,
    },
    /// Send the final lines and close.
    Close(Closing),
}

/// A per-connection timer: the one running decides when the session next needs the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// `--negotiate-timeout` since accept, until a name is registered: closes.
    Negotiation,
    /// A registration's answer is awaited: nothing fires until it is given. Due at the
    /// earlier of the negotiation deadline and the ping the name, once registered, would
    /// be owed, so that the caller is awake to give the answer by then.
    Answer,
    /// `--ping-timeout` since the server's ping, until its pong: closes.
    Pong,
    /// `--ping-interval` since the last input: sends a ping.
    Ping,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Session {
    tag: Tag,
    state: State,
    nick: Option<Nick>,
    failed_attempts: u32,
    /// A `uname` is with the hub and its answer not yet given ([`super::request::Hand::Later`]): which
    /// timer runs depends on it.
    registering: bool,
    settings: Arc<Settings>,
    clock: Clock,
}

/// A session's timers (§5.1 uname, §5.2 ping; §7).
#[derive(Debug)]
struct Clock {
    /// The connection, whose number begins each ping token.
    conn: ConnId,
    /// `--negotiate-timeout` after accept: traffic does not move it.
    negotiation_deadline: Instant,
    /// When input last arrived: the ping interval counts from it.
    last_input: Instant,
    /// Pings sent so far (the token's second half).
    pings: u64,
    /// When the server's ping that awaits its pong was sent: the last one, whose token
    /// [`Session::ping_token`] makes again. Other traffic does not replace the pong.
    ping_sent: Option<Instant>,
}

impl Session {
    /// A session for connection `conn`, accepted at `now`: LISTEN -> NEGOTIATING. `tag`
    /// names the connection in the log (`conn=<id> peer=<addr>`).
    pub fn accept(conn: ConnId, tag: Tag, settings: Arc<Settings>, now: Instant) -> Session {
        let clock = Clock {
            conn,
            negotiation_deadline: now + settings.negotiate_timeout,
            last_input: now,
            pings: 0,
            ping_sent: None,
        };
        let mut s = Session {
            tag,
            state: State::Listen,
            nick: None,
            failed_attempts: 0,
            registering: false,
            settings,
            clock,
        };
        s.set_state(Event::TcpConnectionAccepted, format_args!(""));
        s
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The nickname, once ESTABLISHED.
    pub fn nick(&self) -> Option<&Nick> {
        self.nick.as_ref()
    }

    /// The connection's log tag.
    pub fn tag(&self) -> &Tag {
        &self.tag
    }

    /// Is the connection still reading commands?
    pub fn is_open(&self) -> bool {
        fsm::COMMAND_STATES.contains(&self.state)
    }

    /// When the server's ping that awaits its pong was sent, if one does.
    #[cfg(test)]
    fn ping_outstanding(&self) -> Option<Instant> {
        self.clock.ping_sent
    }

    /// Sends the server's ping at `at`, as its timer would; its token.
    #[cfg(test)]
    fn ping_now(&mut self, at: Instant) -> String {
        let _ = self.ping(at);
        self.ping_token()
    }

    /// The token of the server's last ping: the connection's number in hex, a dot, the
    /// ping's number (`1f.3`), unique in the server's run.
    fn ping_token(&self) -> String {
        format!("{:x}.{}", self.clock.conn, self.clock.pings)
    }

    /// Input arrived at `now` (any bytes): the ping interval counts from here. It moves
    /// neither the negotiation deadline nor the pong's.
    pub fn on_input(&mut self, now: Instant) {
        self.clock.last_input = now;
    }

    /// The timer running and when it fires: the negotiation deadline until a name is
    /// registered, then the pong's deadline while a ping awaits it, else the next ping.
    /// `None` once the session reads no more.
    fn next_timer(&self) -> Option<(Instant, Timer)> {
        if !self.is_open() {
            return None;
        }
        let (s, c) = (&self.settings, &self.clock);
        Some(if self.nick.is_none() && self.registering {
            let ping = c.last_input + s.ping_interval;
            (c.negotiation_deadline.min(ping), Timer::Answer)
        } else if self.nick.is_none() {
            (c.negotiation_deadline, Timer::Negotiation)
        } else if let Some(sent) = c.ping_sent {
            (sent + s.ping_timeout, Timer::Pong)
        } else {
            (c.last_input + s.ping_interval, Timer::Ping)
        })
    }

    /// When the session next needs [`Session::on_time`], if no input comes first.
    pub fn poll_at(&self) -> Option<Instant> {
        self.next_timer().map(|(at, _)| at)
    }

    /// Time has passed until `now`: the timer due by then, if any, fires. NEGOTIATING
    /// past its deadline, or a ping unanswered past `--ping-timeout`, closes; silence past
    /// `--ping-interval` sends a ping.
    pub fn on_time(&mut self, now: Instant) -> Step {
        match self.next_timer() {
            Some((at, Timer::Negotiation)) if now >= at => {
                Step::Close(self.expired(Cause::NegotiationTimeout))
            }
            Some((at, Timer::Pong)) if now >= at => Step::Close(self.expired(Cause::PingTimeout)),
            Some((at, Timer::Ping)) if now >= at => self.ping(now),
            // The answer comes first (see `Timer::Answer`).
            Some((_, Timer::Answer)) => Step::Nothing,
            _ => Step::Nothing,
        }
    }

    /// Silence past `--ping-interval`: the server's ping, its token recorded.
    fn ping(&mut self, now: Instant) -> Step {
        self.clock.pings += 1;
        let token = self.ping_token();
        log::debug!("{} sends ping {token}", self.tag);
        self.clock.ping_sent = Some(now);
        Step::Send(reply::ping(&token))
    }

    /// The one place a state changes: looks the move up in the transition table and logs
    /// it (`conn=.. peer=.. FROM -> TO on event cause`). Violations are logged as warnings.
    fn set_state(&mut self, event: Event, detail: fmt::Arguments<'_>) {
        self.set_state_at(TRANSITIONS, event, detail);
    }

    fn set_state_at(&mut self, level: log::Level, event: Event, detail: fmt::Arguments<'_>) {
        if let Some(to) = log_transition(level, &self.tag, self.state, event, detail) {
            self.state = to;
        }
    }

    /// Handles one PDU.
    pub fn on_line(&mut self, line: &str) -> Step {
        let c = command::classify(line);
        match c.legality_in(self.state) {
            Some(Legality::Violation) => {
                let name = c.name();
                let line = reply::not_allowed(&name, self.state);
                let cause = Cause::StateViolation {
                    keyword: name,
                    state: self.state,
                };
                Step::Close(self.abort(line, cause))
            }
            Some(Legality::Legal | Legality::AnsweringPing | Legality::Syntax) => {
                match command::parse(&c) {
                    Ok(cmd) => self.handle(cmd),
                    Err(e) => self.syntax_error(&c, e),
                }
            }
            None => Step::Nothing,
        }
    }

    fn syntax_error(&mut self, c: &Classified<'_>, e: SyntaxError) -> Step {
        let text = match e {
            SyntaxError::Unknown => e.to_string(),
            _ => reply::about(c.keyword, e),
        };
        self.refuse(Code::Syntax, text)
    }

    /// A refusal: in NEGOTIATING a failed attempt (counted, maybe the last), else just the
    /// `-ERR` (§6).
    fn refuse(&mut self, code: Code, text: impl fmt::Display) -> Step {
        if self.state != State::Negotiating {
            log::debug!(
                "{} refused: [{code}] {}",
                self.tag,
                text::for_log(text.to_string().as_bytes())
            );
            return Step::Reply(reply::err(code, text));
        }
        let attempt = self.attempt();
        let lines = failed_attempt(&self.tag, code, text, attempt);
        self.count_failed(lines)
    }

    /// Counts a failed attempt whose audit line is written and whose `lines` are given
    /// (none if the hub sent them): NEGOTIATING stays, or after the last one moves to
    /// ABORTED and the connection closes.
    fn count_failed(&mut self, lines: String) -> Step {
        let last = self.attempt().is_last();
        self.failed_attempts += 1;
        if !last {
            return if lines.is_empty() {
                Step::Nothing
            } else {
                Step::Reply(lines)
            };
        }
        self.move_logged(Event::MaxRetriesExceeded);
        Step::Close(Closing {
            lines,
            cause: Cause::TooManyAttempts,
        })
    }

    /// Moves on `event` whose audit line is already written (by [`log_registration`] or
    /// [`failed_attempt`], which the hub calls too).
    fn move_logged(&mut self, event: Event) {
        match fsm::next_state(self.state, event) {
            Ok(to) => self.state = to,
            Err(e) => log::error!("{} BUG: {e}", self.tag),
        }
    }

    /// What the next failed attempt in NEGOTIATING would be.
    fn attempt(&self) -> Attempt {
        Attempt {
            n: self.failed_attempts + 1,
            max: self.settings.max_retries,
        }
    }

    /// A violation: `-ERR`, `cquit protocol violation`, ABORTED.
    fn abort(&mut self, err: String, cause: Cause) -> Closing {
        self.set_state_at(
            log::Level::Warn,
            Event::ConnectionError,
            format_args!(" cause={cause}"),
        );
        let lines = err + &cause.cquit_line().unwrap_or_default();
        Closing { lines, cause }
    }

    fn handle(&mut self, cmd: Command<'_>) -> Step {
        match cmd {
            Command::Uname(name) => match Nick::parse(name) {
                Ok(nick) => {
                    self.registering = true;
                    Step::Hub(Request::Register {
                        nick,
                        attempt: self.attempt(),
                    })
                }
                Err(e) => self.refuse(Code::Invalid, e),
            },
            Command::Ping(token) => Step::Reply(reply::pong(token)),
            Command::Capa => Step::Reply(self.settings.capa.clone()),
            Command::Cquit => {
                self.set_state(Event::QuitRequested, format_args!(""));
                Step::Close(Closing {
                    lines: reply::QUIT_OK.to_string(),
                    cause: Cause::Quit,
                })
            }
            Command::Cname(name) => match Nick::parse(name) {
                Ok(nick) => Step::Hub(Request::Rename(nick)),
                Err(e) => self.refuse(Code::Invalid, e),
            },
            Command::Chatm {
                sender,
                recipient,
                text,
            } => {
                if self.own(sender).is_none() {
                    let line = reply::not_your_nickname(sender);
                    return Step::Close(self.abort(line, Cause::Spoofing));
                }
                // Relayed as written (§5.5), the sender's name in the case the client chose.
                let (line, recipient) = reply::chatm(sender, recipient, text);
                Step::Chat { line, recipient }
            }
            Command::Chatr { sender, recipient } => {
                if recipient != "*" && self.own(recipient).is_none() {
                    let line = reply::not_your_nickname(recipient);
                    return Step::Close(self.abort(line, Cause::Spoofing));
                }
                if recipient == "*" {
                    // A broadcast has no single receipt: accepted, not relayed (§5).
                    log::debug!(
                        "{} broadcast receipt for {} accepted",
                        self.tag,
                        text::for_log(sender.as_bytes())
                    );
                    return Step::Nothing;
                }
                let (line, sender) = reply::chatr(sender, recipient);
                Step::Hub(Request::Receipt { line, sender })
            }
            Command::Users => Step::Hub(Request::Users),
            Command::Notif(on) => Step::Hub(Request::Notif(on)),
            Command::Pong(token) => self.on_pong(token),
        }
    }

    /// A pong: it must carry the outstanding ping's token (§5). Without a token it is a
    /// SYNTAX refusal; answering no ping, or another one, a violation.
    fn on_pong(&mut self, token: Option<&str>) -> Step {
        let expected = self.clock.ping_sent.map(|sent| (self.ping_token(), sent));
        if let (Some(t), Some((expected, sent))) = (token, &expected)
            && t == expected
        {
            let sent = *sent;
            self.clock.ping_sent = None;
            return Step::PongAccepted(sent);
        }
        let expected = expected.map(|(t, _)| t);
        let why = reply::PongMismatch {
            token,
            expected: expected.as_deref(),
        };
        let Some(token) = token else {
            return self.refuse(Code::Syntax, why);
        };
        let line = reply::err(Code::State, why);
        let cause = Cause::StrayPong {
            token: token.to_string(),
            expected,
        };
        Step::Close(self.abort(line, cause))
    }

    /// Own nickname, if `name` names it.
    fn own(&self, name: &str) -> Option<&Nick> {
        self.nick.as_ref().filter(|n| n.matches(name))
    }

    /// The hub registered the nickname (and sent the `+OK`, so that nothing relayed to the
    /// new name can overtake it): NEGOTIATING -> ESTABLISHED.
    ///
    /// The hub logged the transition already, where it happened ([`log_registration`]):
    /// the state moves here without a second line.
    fn on_registered(&mut self, nick: Nick) {
        self.move_logged(Event::CredentialsValidated);
        self.nick = Some(nick);
    }

    /// The hub answered a request the session waits on ([`Request::hand`]). The answer
    /// carries what the session needs (the nickname, refused or given), so the reader
    /// keeps no copy of the request.
    pub fn on_answer(&mut self, answer: Answer) -> Step {
        self.registering = false;
        match answer {
            Answer::Registered { nick, .. } => {
                self.on_registered(nick);
                Step::Nothing
            }
            Answer::InUse => self.on_register_refused(),
            Answer::Renamed(nick) => {
                self.on_renamed(nick);
                Step::Nothing
            }
            Answer::NotRenamed | Answer::Done | Answer::Gone => Step::Nothing,
        }
    }

    /// The hub refused the nickname: it is in use or held for another address. The hub
    /// has logged the failed attempt and replied ([`failed_attempt`]); the session counts
    /// it, and closes after the last.
    fn on_register_refused(&mut self) -> Step {
        self.count_failed(String::new())
    }

    /// The hub renamed the client.
    fn on_renamed(&mut self, nick: Nick) {
        self.nick = Some(nick);
    }

    /// A timer that closes fired, for `cause`.
    fn expired(&mut self, cause: Cause) -> Closing {
        self.set_state(Event::ConnectionError, format_args!(" cause={cause}"));
        Closing {
            lines: cause.cquit_line().unwrap_or_default(),
            cause,
        }
    }

    /// A framing violation on the input.
    pub fn on_frame_error(&mut self, e: FrameError) -> Closing {
        self.abort(reply::err(Code::Pdu, e), Cause::Framing(e))
    }

    /// The connection ended from outside the protocol: a fault (-> ABORTED) or the server's
    /// shutdown (-> UPDATE). Does nothing if the session already left the open states.
    pub fn on_end(&mut self, cause: &Cause) {
        if !self.is_open() {
            return;
        }
        match cause {
            Cause::ServerShutdown => self.set_state(Event::ServerShutdown, format_args!("")),
            _ => self.set_state(Event::ConnectionError, format_args!(" cause={cause}")),
        }
    }

    /// The socket is closed: UPDATE or ABORTED -> CLOSED, saying how (the peer closed, or
    /// the linger ran out).
    pub fn on_closed(&mut self, how: Closed) {
        self.set_state(Event::Close, format_args!(" ({how})"));
    }
}

/// The level of a state transition's audit line (violations aside, which are warnings):
/// work ordered only so that the log reads causally need not be when it is not written.
pub const TRANSITIONS: log::Level = log::Level::Info;

/// Looks the move from `from` on `event` up in the transition table and writes its audit
/// line (`conn=.. peer=.. FROM -> TO on event detail`); the state it leads to, or `None`
/// (and an error line) for a pair the table does not have.
fn log_transition(
    level: log::Level,
    tag: &Tag,
    from: State,
    event: Event,
    detail: fmt::Arguments<'_>,
) -> Option<State> {
    match fsm::next_state(from, event) {
        Ok(to) => {
            log::log!(level, "{tag} {from} -> {to} on {event}{detail}");
            Some(to)
        }
        Err(e) => {
            log::error!("{tag} BUG: {e}");
            None
        }
    }
}

/// The audit line of a registration, `NEGOTIATING -> ESTABLISHED on credentials_validated
/// nick=..` (with ` (welcome back)` for a return, §5.7). The hub writes it: a registration
/// happens in the hub, which queues the `+OK` (and a resume's replay, §5.8) at once so that
/// nothing relayed to the new name overtakes them, and the log is causal only if the
/// transition comes before the lines it lets through. `Session::on_registered` then moves
/// the session's state without a second line.
pub fn log_registration(tag: &Tag, nick: &Nick, welcome_back: bool) {
    log_transition(
        TRANSITIONS,
        tag,
        State::Negotiating,
        Event::CredentialsValidated,
        format_args!(
            " nick={nick}{}",
            if welcome_back { " (welcome back)" } else { "" }
        ),
    );
}

/// A failed attempt in NEGOTIATING (§6): writes its audit line (`NEGOTIATING ->
/// NEGOTIATING on invalid_credentials`, or `-> ABORTED on max_retries_exceeded` for the
/// last, with `cause=[CODE] attempt n of max`) and returns its lines: the counted `-ERR`,
/// and the `cquit` after the last. The session calls it for the refusals it decides; the
/// hub for a name in use, which it replies to before the session learns of it (so that
/// the log is causal, as for a registration: [`log_registration`]).
pub fn failed_attempt(tag: &Tag, code: Code, text: impl fmt::Display, attempt: Attempt) -> String {
    let Attempt { n, max } = attempt;
    let event = if attempt.is_last() {
        Event::MaxRetriesExceeded
    } else {
        Event::InvalidCredentials
    };
    log_transition(
        TRANSITIONS,
        tag,
        State::Negotiating,
        event,
        format_args!(" cause=[{code}] attempt {n} of {max}"),
    );
    let lines = reply::failed_attempt(code, text, n, max);
    match attempt.is_last() {
        true => lines + &Cause::TooManyAttempts.cquit_line().unwrap_or_default(),
        false => lines,
    }
}

#[cfg(test)]
mod tests;
