//! One connection's protocol state (PROTOCOL.md §3–§6), without I/O.
//!
//! A [`Session`] takes a line (or a timer, or a fault) and returns a [`Step`]: what the
//! connection must do next. Every change of state goes through [`Session::set_state`], which
//! consults the transition table and writes the audit line. The order of checks for a line
//! is the one of §4 and of ngIRCd's dispatcher: keyword, then legality in the current state,
//! then arguments, then the handler — handlers never re-check state.
//!
//! What needs the shared nickname map (registration, renames, relaying) is handed to the hub
//! as a step; the hub's answer comes back through [`Session::on_registered`] and friends.

use std::fmt;
use std::ops::Range;

use super::command::{self, Classified, Command, SyntaxError};
use super::framing::FrameError;
use super::fsm::{self, CommandKind, Event, Legality, State};
use super::nick::Nick;
use super::reply::{self, Code};

/// The session's limits, from the command line.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Failed attempts allowed in NEGOTIATING (`--max-retries`).
    pub max_retries: u32,
}

/// Why a connection ends in ABORTED (the `connection_error` causes of §3) or UPDATE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The peer closed its sending side.
    PeerClosed,
    /// The peer reset the connection.
    Reset,
    /// Another I/O error.
    Io(String),
    /// `--negotiate-timeout` passed without a valid `uname`.
    NegotiationTimeout,
    /// No pong within `--ping-timeout`.
    PingTimeout,
    /// A framing violation.
    Framing(FrameError),
    /// A command not allowed in the state it arrived in.
    StateViolation {
        /// The keyword as the client wrote it.
        keyword: String,
        /// The state it arrived in.
        state: State,
    },
    /// A pong answering no outstanding ping, or with another token.
    StrayPong,
    /// A `chatm`/`chatr` naming someone else as its author.
    Spoofing,
    /// The outbound queue passed `--sendq`, or a write timed out.
    SlowConsumer,
    /// Too many failed attempts in NEGOTIATING.
    TooManyAttempts,
    /// The client sent `cquit`.
    Quit,
    /// The server is shutting down.
    ServerShutdown,
}

impl Cause {
    /// Is this a violation (logged as a warning)?
    pub fn is_violation(&self) -> bool {
        matches!(
            self,
            Cause::Framing(_) | Cause::StateViolation { .. } | Cause::StrayPong | Cause::Spoofing
        )
    }

    /// The `cquit <reason>` line the client gets, if the server still can and should say
    /// anything.
    pub fn cquit_line(&self) -> Option<String> {
        let reason = match self {
            Cause::PeerClosed | Cause::Reset | Cause::Io(_) | Cause::Quit => return None,
            Cause::NegotiationTimeout => "negotiation timeout",
            Cause::PingTimeout => "ping timeout",
            Cause::Framing(_)
            | Cause::StateViolation { .. }
            | Cause::StrayPong
            | Cause::Spoofing => reply::PROTOCOL_VIOLATION,
            Cause::SlowConsumer => "slow consumer",
            Cause::TooManyAttempts => "too many failed attempts",
            Cause::ServerShutdown => "server shutting down",
        };
        Some(reply::cquit(reason))
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::PeerClosed => f.write_str("peer closed the connection"),
            Cause::Reset => f.write_str("peer reset the connection"),
            Cause::Io(e) => write!(f, "I/O error: {e}"),
            Cause::NegotiationTimeout => f.write_str("negotiation timeout"),
            Cause::PingTimeout => f.write_str("ping timeout"),
            Cause::Framing(e) => write!(f, "framing violation: {e}"),
            Cause::StateViolation { keyword, state } => write!(
                f,
                "state violation: {} in {state}",
                reply::escape(keyword.as_bytes())
            ),
            Cause::StrayPong => f.write_str("state violation: pong answers no outstanding ping"),
            Cause::Spoofing => f.write_str("spoofing"),
            Cause::SlowConsumer => f.write_str("slow consumer"),
            Cause::TooManyAttempts => f.write_str("too many failed attempts"),
            Cause::Quit => f.write_str("client quit"),
            Cause::ServerShutdown => f.write_str("server shutting down"),
        }
    }
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
    /// The pong answered the outstanding ping.
    PongAccepted,
    /// Send this response.
    Reply(String),
    /// Ask the hub to register the nickname (`uname`); answer with `on_registered` or
    /// `on_register_refused`.
    Register(Nick),
    /// Ask the hub to rename the client (`cname`); the hub replies to the client itself and
    /// the result comes back through `on_renamed`.
    Rename(Nick),
    /// Ask the hub to relay `line` (a complete `chatm`) and to reply to the sender.
    Chat {
        /// The relayed line, CRLF-terminated.
        line: String,
        /// Where the recipient field (a nickname or `*`) is in `line`.
        recipient: Range<usize>,
    },
    /// Ask the hub to relay a receipt to the author of the message acknowledged.
    Receipt {
        /// The relayed line, CRLF-terminated.
        line: String,
        /// Where the sender field (whose message is acknowledged) is in `line`.
        sender: Range<usize>,
    },
    /// Send the `capa` list (the caller knows the settings).
    Capa,
    /// Ask the hub for the `users` list.
    Users,
    /// Ask the hub to switch notifications.
    Notif(bool),
    /// Send the final lines and close.
    Close(Closing),
}

/// A per-connection timer that fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// `--negotiate-timeout` since accept.
    Negotiation,
    /// `--ping-timeout` since the server's ping.
    Pong,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Session {
    tag: String,
    state: State,
    nick: Option<Nick>,
    failed_attempts: u32,
    limits: Limits,
    outstanding_ping: Option<String>,
}

impl Session {
    /// A session for a connection just accepted: LISTEN -> NEGOTIATING. `tag` names the
    /// connection in the log (`conn=<id> peer=<addr>`).
    pub fn accept(tag: String, limits: Limits) -> Session {
        let mut s = Session {
            tag,
            state: State::Listen,
            nick: None,
            failed_attempts: 0,
            limits,
            outstanding_ping: None,
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
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Is the connection still reading commands?
    pub fn is_open(&self) -> bool {
        fsm::legality(CommandKind::Ping, self.state).is_some()
    }

    /// Is a server ping waiting for its pong?
    pub fn ping_outstanding(&self) -> bool {
        self.outstanding_ping.is_some()
    }

    /// Records the token of the ping the server just sent.
    pub fn ping_sent(&mut self, token: String) {
        self.outstanding_ping = Some(token);
    }

    /// The one place a state changes: looks the move up in the transition table and logs
    /// it (`conn=.. peer=.. FROM -> TO on event cause`). Violations are logged as warnings.
    fn set_state(&mut self, event: Event, detail: fmt::Arguments<'_>) {
        self.set_state_at(log::Level::Info, event, detail);
    }

    fn set_state_at(&mut self, level: log::Level, event: Event, detail: fmt::Arguments<'_>) {
        match fsm::next_state(self.state, event) {
            Ok(to) => {
                log::log!(
                    level,
                    "{} {} -> {} on {}{}",
                    self.tag,
                    self.state,
                    to,
                    event,
                    detail
                );
                self.state = to;
            }
            Err(e) => log::error!("{} BUG: {e}", self.tag),
        }
    }

    /// Handles one PDU.
    pub fn on_line(&mut self, line: &str) -> Step {
        if !self.is_open() {
            return Step::Nothing;
        }
        let c = command::classify(line);
        match fsm::legality(c.kind, self.state) {
            Some(Legality::Violation) => {
                let text = format!("{} is not allowed in {}", c.keyword, self.state);
                let cause = Cause::StateViolation {
                    keyword: c.keyword.to_string(),
                    state: self.state,
                };
                Step::Close(self.abort(reply::err(Code::State, text), cause))
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
        let text = match c.kind {
            CommandKind::Unknown => e.0.to_string(),
            _ => format!("{}: {}", c.keyword.to_ascii_lowercase(), e.0),
        };
        self.refuse(Code::Syntax, text)
    }

    /// A refusal: in NEGOTIATING a failed attempt (counted, maybe the last), else just the
    /// `-ERR` (§6).
    fn refuse(&mut self, code: Code, text: impl fmt::Display) -> Step {
        if self.state != State::Negotiating {
            log::debug!("{} refused: [{code}] {text}", self.tag);
            return Step::Reply(reply::err(code, text));
        }
        self.failed_attempts += 1;
        let (n, max) = (self.failed_attempts, self.limits.max_retries);
        let line = reply::err(code, format_args!("{text} (attempt {n} of {max})"));
        if n >= max {
            self.set_state(
                Event::MaxRetriesExceeded,
                format_args!(" cause=[{code}] attempt {n} of {max}"),
            );
            let cause = Cause::TooManyAttempts;
            let lines = line + &cause.cquit_line().unwrap_or_default();
            return Step::Close(Closing { lines, cause });
        }
        self.set_state(
            Event::InvalidCredentials,
            format_args!(" cause=[{code}] attempt {n} of {max}"),
        );
        Step::Reply(line)
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
                Ok(nick) => Step::Register(nick),
                Err(e) => self.refuse(Code::Invalid, e),
            },
            Command::Ping(token) => Step::Reply(match token {
                Some(t) => reply::ok(format_args!("pong {t}")),
                None => reply::ok("pong"),
            }),
            Command::Capa => Step::Capa,
            Command::Cquit => {
                self.set_state(Event::QuitRequested, format_args!(""));
                Step::Close(Closing {
                    lines: reply::QUIT_OK.to_string(),
                    cause: Cause::Quit,
                })
            }
            Command::Cname(name) => match Nick::parse(name) {
                Ok(nick) => Step::Rename(nick),
                Err(e) => self.refuse(Code::Invalid, e),
            },
            Command::Chatm {
                sender,
                recipient,
                text,
            } => {
                let Some(me) = self.own(sender) else {
                    let text = format!("{sender} is not your nickname");
                    return Step::Close(self.abort(reply::err(Code::Spoof, text), Cause::Spoofing));
                };
                let line = format!("chatm {me} {recipient} {text}\r\n");
                let start = "chatm ".len() + me.as_str().len() + 1;
                let recipient = start..start + recipient.len();
                Step::Chat { line, recipient }
            }
            Command::Chatr { sender, recipient } => {
                if recipient != "*" && self.own(recipient).is_none() {
                    let text = format!("{recipient} is not your nickname");
                    return Step::Close(self.abort(reply::err(Code::Spoof, text), Cause::Spoofing));
                }
                if recipient == "*" {
                    // A broadcast has no single receipt: accepted, not relayed (§5).
                    log::debug!("{} broadcast receipt for {sender} accepted", self.tag);
                    return Step::Nothing;
                }
                let line = format!("chatr {sender} {recipient}\r\n");
                let sender = "chatr ".len().."chatr ".len() + sender.len();
                Step::Receipt { line, sender }
            }
            Command::Users => Step::Users,
            Command::Notif(on) => Step::Notif(on),
            Command::Pong(token) => {
                if self.outstanding_ping.as_deref() == Some(token) {
                    self.outstanding_ping = None;
                    Step::PongAccepted
                } else {
                    Step::Close(self.abort(
                        reply::err(Code::State, "pong does not answer an outstanding ping"),
                        Cause::StrayPong,
                    ))
                }
            }
        }
    }

    /// Own nickname, if `name` names it.
    fn own(&self, name: &str) -> Option<&Nick> {
        self.nick.as_ref().filter(|n| n.matches(name))
    }

    /// The hub registered the nickname (and sent the `+OK`, so that nothing relayed to the
    /// new name can overtake it): NEGOTIATING -> ESTABLISHED.
    pub fn on_registered(&mut self, nick: Nick, welcome_back: bool) {
        self.set_state(
            Event::CredentialsValidated,
            format_args!(
                " nick={nick}{}",
                if welcome_back { " (welcome back)" } else { "" }
            ),
        );
        self.nick = Some(nick);
    }

    /// The hub refused the nickname: it is in use or held for another address.
    pub fn on_register_refused(&mut self, nick: &Nick) -> Step {
        self.refuse(Code::InUse, reply::in_use_text(nick.as_str()))
    }

    /// The hub renamed the client.
    pub fn on_renamed(&mut self, nick: Nick) {
        self.nick = Some(nick);
    }

    /// A timer fired.
    pub fn on_timer(&mut self, timer: Timer) -> Closing {
        let cause = match timer {
            Timer::Negotiation => Cause::NegotiationTimeout,
            Timer::Pong => Cause::PingTimeout,
        };
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

    /// The socket is closed: UPDATE or ABORTED -> CLOSED.
    pub fn on_closed(&mut self) {
        self.set_state(Event::Close, format_args!(""));
    }
}

/// The `capa` response for the given settings (§5).
pub fn capa(settings: &[(&str, String)]) -> String {
    reply::multiline(
        "capability list follows",
        settings.iter().map(|(k, v)| {
            if v.is_empty() {
                k.to_string()
            } else {
                format!("{k} {v}")
            }
        }),
    )
}
