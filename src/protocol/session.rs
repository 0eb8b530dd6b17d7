//! One connection's protocol state (PROTOCOL.md §3–§6), without I/O.
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

use super::cause::Cause;
use super::command::{self, Classified, Command, Legality, SyntaxError};
use super::framing::FrameError;
use super::fsm::{self, Event, State};
use super::nick::Nick;
use super::reply::{self, Code};
use super::request::{Answer, Request};
use crate::conn_id::{ConnId, Tag};

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

/// A per-connection timer that fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// `--negotiate-timeout` since accept.
    Negotiation,
    /// `--ping-timeout` since the server's ping.
    Pong,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Session {
    tag: Tag,
    state: State,
    nick: Option<Nick>,
    failed_attempts: u32,
    settings: Arc<Settings>,
    /// Boxed: every session keeps one for its whole life, and a session stays small.
    clock: Box<Clock>,
}

/// A session's timers (§5 uname, ping; §7).
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
    /// The token of the server's ping awaiting its pong, and when it was sent. Other
    /// traffic does not replace the pong.
    outstanding_ping: Option<(String, Instant)>,
}

impl Session {
    /// A session for connection `conn`, accepted at `now`: LISTEN -> NEGOTIATING. `tag`
    /// names the connection in the log (`conn=<id> peer=<addr>`).
    pub fn accept(conn: ConnId, tag: Tag, settings: Arc<Settings>, now: Instant) -> Session {
        let clock = Box::new(Clock {
            conn,
            negotiation_deadline: now + settings.negotiate_timeout,
            last_input: now,
            pings: 0,
            outstanding_ping: None,
        });
        let mut s = Session {
            tag,
            state: State::Listen,
            nick: None,
            failed_attempts: 0,
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
    pub fn ping_outstanding(&self) -> Option<Instant> {
        self.clock.outstanding_ping.as_ref().map(|(_, sent)| *sent)
    }

    /// Records the token of the ping the server sent at `at`.
    fn ping_sent(&mut self, token: String, at: Instant) {
        self.clock.outstanding_ping = Some((token, at));
    }

    /// Input arrived at `now` (any bytes): the ping interval counts from here. It moves
    /// neither the negotiation deadline nor the pong's.
    pub fn on_input(&mut self, now: Instant) {
        self.clock.last_input = now;
    }

    /// When the session next needs [`Session::on_time`], if no input comes first: the
    /// negotiation deadline, the pong's deadline, or when the next ping is due. `None` once
    /// the session reads no more.
    pub fn poll_at(&self) -> Option<Instant> {
        if !self.is_open() {
            return None;
        }
        let (s, c) = (&self.settings, &self.clock);
        Some(if self.nick.is_none() {
            c.negotiation_deadline
        } else if let Some((_, sent)) = &c.outstanding_ping {
            *sent + s.ping_timeout
        } else {
            c.last_input + s.ping_interval
        })
    }

    /// Time has passed until `now`: the timer due by then, if any, fires. NEGOTIATING
    /// past its deadline, or a ping unanswered past `--ping-timeout`, closes; silence past
    /// `--ping-interval` sends a ping.
    pub fn on_time(&mut self, now: Instant) -> Step {
        match self.poll_at() {
            Some(due) if now >= due => {}
            _ => return Step::Nothing,
        }
        if self.nick.is_none() {
            return Step::Close(self.on_timer(Timer::Negotiation));
        }
        if self.clock.outstanding_ping.is_some() {
            return Step::Close(self.on_timer(Timer::Pong));
        }
        self.clock.pings += 1;
        let token = format!("{:x}.{}", self.clock.conn, self.clock.pings);
        log::debug!("{} sends ping {token}", self.tag);
        let line = reply::ping(&token);
        self.ping_sent(token, now);
        Step::Send(line)
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
                reply::escape(text.to_string().as_bytes())
            );
            return Step::Reply(reply::err(code, text));
        }
        self.failed_attempts += 1;
        let (n, max) = (self.failed_attempts, self.settings.max_retries);
        let line = reply::failed_attempt(code, text, n, max);
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
                Ok(nick) => Step::Hub(Request::Register(nick)),
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
                let Some(me) = self.own(sender) else {
                    let line = reply::not_your_nickname(sender);
                    return Step::Close(self.abort(line, Cause::Spoofing));
                };
                let (line, recipient) = reply::chatm(me.as_str(), recipient, text);
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
                        reply::escape(sender.as_bytes())
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
        let outstanding = &mut self.clock.outstanding_ping;
        if let (Some(t), Some((expected, sent))) = (token, outstanding.as_ref()) {
            if t == expected {
                let sent = *sent;
                *outstanding = None;
                return Step::PongAccepted(sent);
            }
        }
        let expected = outstanding.as_ref().map(|(t, _)| t.clone());
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

    /// The hub answered `asked`, a request the session waits on ([`Request::hand`]).
    pub fn on_answer(&mut self, asked: &Request, answer: Answer) -> Step {
        match (asked, answer) {
            (Request::Register(_), Answer::Registered { nick, welcome_back }) => {
                self.on_registered(nick, welcome_back);
                Step::Nothing
            }
            (Request::Register(nick), _) => self.on_register_refused(nick),
            (Request::Rename(_), Answer::Renamed(nick)) => {
                self.on_renamed(nick);
                Step::Nothing
            }
            _ => Step::Nothing,
        }
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
    fn on_timer(&mut self, timer: Timer) -> Closing {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Arc<Settings> {
        Arc::new(Settings {
            max_retries: 3,
            negotiate_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(60),
            ping_timeout: Duration::from_secs(20),
            capa: reply::multiline("capability list follows", ["XSCP 1"]),
        })
    }

    /// Every connection keeps its session for its whole life: seven words on a 64-bit
    /// machine (eleven with the outstanding ping inline, or with a tag of its own).
    #[test]
    fn a_session_is_small() {
        assert!(std::mem::size_of::<Session>() <= 7 * std::mem::size_of::<usize>());
    }

    /// A session just accepted.
    fn session_negotiating() -> Session {
        session_accepted_at(Instant::now())
    }

    /// A session accepted at `now`.
    fn session_accepted_at(now: Instant) -> Session {
        Session::accept(0, "conn=0 peer=test".into(), settings(), now)
    }

    /// A session registered as `alice`.
    fn session_established() -> Session {
        let mut s = session_negotiating();
        let Step::Hub(Request::Register(nick)) = s.on_line("uname alice") else {
            panic!("uname must ask the hub")
        };
        s.on_registered(nick, false);
        assert_eq!(s.state(), State::Established);
        s
    }

    fn closing(step: Step) -> Closing {
        match step {
            Step::Close(c) => c,
            other => panic!("expected a close, got {other:?}"),
        }
    }

    mod negotiating {
        use super::*;

        #[test]
        fn accept_enters_negotiating() {
            assert_eq!(session_negotiating().state(), State::Negotiating);
        }

        #[test]
        fn valid_uname_asks_the_hub() {
            let mut s = session_negotiating();
            assert_eq!(
                s.on_line("uname Bob_1"),
                Step::Hub(Request::Register(Nick::parse("Bob_1").unwrap()))
            );
        }

        #[test]
        fn invalid_name_is_a_counted_attempt() {
            let mut s = session_negotiating();
            let Step::Reply(r) = s.on_line("uname 9lives") else {
                panic!()
            };
            assert!(r.starts_with("-ERR [INVALID] "), "{r}");
            assert!(r.ends_with("(attempt 1 of 3)\r\n"), "{r}");
            assert_eq!(s.state(), State::Negotiating);
        }

        #[test]
        fn in_use_from_the_hub_is_a_counted_attempt() {
            let mut s = session_negotiating();
            let nick = Nick::parse("bob").unwrap();
            assert_eq!(
                s.on_register_refused(&nick),
                Step::Reply(
                    "-ERR [IN-USE] bob is already taken by another client (attempt 1 of 3)\r\n"
                        .into()
                )
            );
        }

        #[test]
        fn unknown_keyword_and_missing_argument_are_counted() {
            let mut s = session_negotiating();
            let Step::Reply(a) = s.on_line("hello") else {
                panic!()
            };
            assert!(a.starts_with("-ERR [SYNTAX] ") && a.contains("attempt 1 of 3"));
            let Step::Reply(b) = s.on_line("uname") else {
                panic!()
            };
            assert!(b.starts_with("-ERR [SYNTAX] ") && b.contains("attempt 2 of 3"));
        }

        #[test]
        fn the_last_failed_attempt_aborts() {
            let mut s = session_negotiating();
            s.on_line("x");
            s.on_line("y");
            let c = closing(s.on_line("z"));
            assert_eq!(
                c.lines,
                "-ERR [SYNTAX] unknown command (attempt 3 of 3)\r\ncquit too many failed attempts\r\n"
            );
            assert_eq!(c.cause, Cause::TooManyAttempts);
            assert_eq!(s.state(), State::Aborted);
        }

        #[test]
        fn session_commands_are_violations() {
            for (line, name) in [
                ("cname bob", "cname"),
                ("chatm a b c", "chatm"),
                ("chatr a b", "chatr"),
                ("users", "users"),
                ("Notif on", "Notif"),
                // Named as in the legality table, the keyword as the client wrote it.
                ("+OK pong x", "+OK pong"),
                ("+ok PONG x", "+ok pong"),
                ("+OK", "+OK pong"),
            ] {
                let mut s = session_negotiating();
                let c = closing(s.on_line(line));
                assert_eq!(
                    c.lines,
                    format!(
                        "-ERR [STATE] {name} is not allowed in NEGOTIATING\r\ncquit protocol violation\r\n"
                    )
                );
                assert_eq!(
                    c.cause,
                    Cause::StateViolation {
                        keyword: name.into(),
                        state: State::Negotiating
                    }
                );
                assert_eq!(s.state(), State::Aborted);
            }
        }

        #[test]
        fn ping_capa_and_cquit_are_legal() {
            let mut s = session_negotiating();
            assert_eq!(s.on_line("ping"), Step::Reply("+OK pong\r\n".into()));
            assert_eq!(s.on_line("PING t"), Step::Reply("+OK pong t\r\n".into()));
            assert_eq!(s.on_line("capa"), Step::Reply(settings().capa.clone()));
            let c = closing(s.on_line("cquit"));
            assert_eq!(c.lines, "+OK terminating tasks and disconnecting\r\n");
            assert_eq!(s.state(), State::Update);
        }

        #[test]
        fn negotiation_timeout_aborts() {
            let mut s = session_negotiating();
            let c = s.on_timer(Timer::Negotiation);
            assert_eq!(c.lines, "cquit negotiation timeout\r\n");
            assert_eq!(s.state(), State::Aborted);
        }
    }

    mod established {
        use super::*;

        #[test]
        fn uname_again_is_a_violation() {
            let mut s = session_established();
            let c = closing(s.on_line("uname bob"));
            assert!(
                c.lines
                    .starts_with("-ERR [STATE] uname is not allowed in ESTABLISHED\r\n")
            );
            assert_eq!(s.state(), State::Aborted);
        }

        #[test]
        fn syntax_errors_are_refusals_not_attempts() {
            let mut s = session_established();
            for _ in 0..5 {
                let Step::Reply(r) = s.on_line("bogus") else {
                    panic!()
                };
                assert_eq!(r, "-ERR [SYNTAX] unknown command\r\n");
            }
            assert_eq!(s.state(), State::Established);
        }

        #[test]
        fn chatm_with_own_name_is_relayed_with_the_registered_spelling() {
            let mut s = session_established();
            let Step::Chat { line, recipient } = s.on_line("chatm ALICE bob hi  there") else {
                panic!()
            };
            assert_eq!(line, "chatm alice bob hi  there\r\n");
            assert_eq!(&line[recipient], "bob");
        }

        #[test]
        fn chatm_with_another_sender_is_spoofing() {
            let mut s = session_established();
            let c = closing(s.on_line("chatm mallory bob hi"));
            assert!(c.lines.starts_with("-ERR [SPOOF] "));
            assert!(c.lines.ends_with("cquit protocol violation\r\n"));
            assert_eq!(c.cause, Cause::Spoofing);
        }

        #[test]
        fn chatm_without_text_is_syntax() {
            let mut s = session_established();
            let Step::Reply(r) = s.on_line("chatm alice bob") else {
                panic!()
            };
            assert!(r.starts_with("-ERR [SYNTAX] "));
        }

        #[test]
        fn chatr_must_name_self_or_star() {
            let mut s = session_established();
            let Step::Hub(Request::Receipt { line, sender }) = s.on_line("chatr bob alice") else {
                panic!()
            };
            assert_eq!(line, "chatr bob alice\r\n");
            assert_eq!(&line[sender], "bob");
            assert_eq!(s.on_line("chatr bob *"), Step::Nothing);
            let c = closing(s.on_line("chatr bob carol"));
            assert!(c.lines.starts_with("-ERR [SPOOF] "));
        }

        #[test]
        fn pong_must_answer_the_outstanding_ping() {
            let mut s = session_established();
            let sent = Instant::now();
            s.ping_sent("t1".into(), sent);
            assert_eq!(s.on_line("+OK pong t1"), Step::PongAccepted(sent));
            assert_eq!(s.ping_outstanding(), None);
            // A second pong answers nothing.
            let c = closing(s.on_line("+OK pong t1"));
            assert_eq!(
                c.cause,
                Cause::StrayPong {
                    token: "t1".into(),
                    expected: None
                }
            );
        }

        #[test]
        fn pong_with_another_token_is_a_violation_naming_the_expected_one() {
            let mut s = session_established();
            s.ping_sent("t1".into(), Instant::now());
            let c = closing(s.on_line("+OK pong t2"));
            assert_eq!(
                c.lines,
                "-ERR [STATE] pong t2 does not match the outstanding ping: expected +OK pong t1\r\n\
                 cquit protocol violation\r\n"
            );
            assert_eq!(
                c.cause,
                Cause::StrayPong {
                    token: "t2".into(),
                    expected: Some("t1".into())
                }
            );
            assert_eq!(
                c.cause.to_string(),
                "state violation: pong t2 does not match the outstanding ping: expected +OK pong t1"
            );
            assert_eq!(s.state(), State::Aborted);
        }

        #[test]
        fn pong_without_an_outstanding_ping_is_a_violation_saying_so() {
            let mut s = session_established();
            let c = closing(s.on_line("+OK pong 1.1"));
            assert_eq!(
                c.lines,
                "-ERR [STATE] pong 1.1 answers no ping: none is outstanding\r\n\
                 cquit protocol violation\r\n"
            );
            assert_eq!(
                c.cause.to_string(),
                "state violation: pong 1.1 answers no ping: none is outstanding"
            );
            assert_eq!(s.state(), State::Aborted);
        }

        /// A pong without a token stays a SYNTAX refusal (the connection stays); the text
        /// says what was expected, and the outstanding ping still awaits its pong.
        #[test]
        fn pong_without_a_token_is_a_syntax_refusal_saying_what_was_expected() {
            let mut s = session_established();
            assert_eq!(
                s.on_line("+OK pong"),
                Step::Reply(
                    "-ERR [SYNTAX] pong without a token, and no ping is outstanding\r\n".into()
                )
            );
            let sent = Instant::now();
            s.ping_sent("t1".into(), sent);
            assert_eq!(
                s.on_line("+ok PONG"),
                Step::Reply("-ERR [SYNTAX] pong without a token: expected +OK pong t1\r\n".into())
            );
            assert_eq!(s.state(), State::Established);
            assert_eq!(s.on_line("+OK pong t1"), Step::PongAccepted(sent));
        }

        /// `+OK` other than a pong is SYNTAX, with the keyword as the client wrote it.
        #[test]
        fn ok_that_is_not_a_pong_is_a_syntax_refusal() {
            let mut s = session_established();
            for (line, keyword) in [("+OK foo", "+OK"), ("+ok", "+ok"), ("+Ok ping t", "+Ok")] {
                assert_eq!(
                    s.on_line(line),
                    Step::Reply(format!(
                        "-ERR [SYNTAX] {keyword}: a client sends +OK only as +OK pong <token>\r\n"
                    ))
                );
            }
            assert_eq!(s.state(), State::Established);
        }

        /// SYNTAX refusals echo the keyword as written and name what is wrong.
        #[test]
        fn syntax_refusals_echo_the_keyword_and_name_the_missing_argument() {
            let mut s = session_established();
            for (line, text) in [
                ("CNAME", "CNAME: missing <new>"),
                ("ChatR alice", "ChatR: missing <recipient>"),
                ("chatm alice bob", "chatm: empty message"),
                ("Users now", "Users: too many arguments"),
                ("NOTIF maybe", "NOTIF: expected on or off"),
            ] {
                assert_eq!(
                    s.on_line(line),
                    Step::Reply(format!("-ERR [SYNTAX] {text}\r\n")),
                    "{line}"
                );
            }
        }

        #[test]
        fn cname_users_notif_go_to_the_hub() {
            let mut s = session_established();
            assert_eq!(
                s.on_line("cname Alice2"),
                Step::Hub(Request::Rename(Nick::parse("Alice2").unwrap()))
            );
            assert_eq!(s.on_line("users"), Step::Hub(Request::Users));
            assert_eq!(s.on_line("notif OFF"), Step::Hub(Request::Notif(false)));
            let Step::Reply(r) = s.on_line("cname 2x") else {
                panic!()
            };
            assert!(r.starts_with("-ERR [INVALID] ") && !r.contains("attempt"));
        }

        #[test]
        fn ping_timeout_aborts_and_shutdown_updates() {
            let mut s = session_established();
            let c = s.on_timer(Timer::Pong);
            assert_eq!(c.lines, "cquit ping timeout\r\n");
            assert_eq!(s.state(), State::Aborted);
            s.on_closed();
            assert_eq!(s.state(), State::Closed);

            let mut s = session_established();
            s.on_end(&Cause::ServerShutdown);
            assert_eq!(s.state(), State::Update);
            s.on_closed();
            assert_eq!(s.state(), State::Closed);
        }

        #[test]
        fn framing_violation_aborts() {
            let mut s = session_established();
            let c = s.on_frame_error(FrameError::TooLong);
            assert_eq!(
                c.lines,
                "-ERR [PDU] line longer than 510 bytes\r\ncquit protocol violation\r\n"
            );
        }
    }

    /// The timers of §5 (uname, ping) and §7, with time passed in.
    mod timers {
        use super::*;

        const MS: Duration = Duration::from_millis(1);

        /// A session registered as `alice`, accepted at `t0`, its last input at `t0`.
        fn established_at(t0: Instant) -> Session {
            let mut s = session_accepted_at(t0);
            let Step::Hub(Request::Register(nick)) = s.on_line("uname alice") else {
                panic!("uname must ask the hub")
            };
            s.on_registered(nick, false);
            s
        }

        /// The ping a session sends at `now`, with its token.
        fn ping(s: &mut Session, now: Instant) -> String {
            let Step::Send(line) = s.on_time(now) else {
                panic!("a ping was due at {now:?}")
            };
            let token = line
                .strip_prefix("ping ")
                .and_then(|t| t.strip_suffix("\r\n"));
            token.expect("a ping line").to_string()
        }

        #[test]
        fn the_negotiation_deadline_runs_from_accept() {
            let t0 = Instant::now();
            let mut s = session_accepted_at(t0);
            let deadline = t0 + settings().negotiate_timeout;
            assert_eq!(s.poll_at(), Some(deadline));
            assert_eq!(s.on_time(deadline - MS), Step::Nothing);
            let c = closing(s.on_time(deadline));
            assert_eq!(c.cause, Cause::NegotiationTimeout);
            assert_eq!(c.lines, "cquit negotiation timeout\r\n");
            assert_eq!(s.state(), State::Aborted);
            assert_eq!(s.poll_at(), None);
        }

        #[test]
        fn traffic_does_not_extend_the_negotiation_deadline() {
            let t0 = Instant::now();
            let mut s = session_accepted_at(t0);
            let deadline = t0 + settings().negotiate_timeout;
            s.on_input(deadline - MS);
            let Step::Reply(_) = s.on_line("uname 9lives") else {
                panic!("a refusal")
            };
            assert_eq!(s.poll_at(), Some(deadline));
            assert_eq!(
                closing(s.on_time(deadline)).cause,
                Cause::NegotiationTimeout
            );
        }

        #[test]
        fn a_ping_follows_ping_interval_of_silence() {
            let t0 = Instant::now();
            let mut s = established_at(t0);
            let due = t0 + settings().ping_interval;
            assert_eq!(s.poll_at(), Some(due));
            assert_eq!(s.on_time(due - MS), Step::Nothing);
            assert_eq!(ping(&mut s, due), "0.1");
            assert_eq!(s.ping_outstanding(), Some(due));
            assert_eq!(s.state(), State::Established);
        }

        #[test]
        fn input_postpones_the_ping() {
            let t0 = Instant::now();
            let mut s = established_at(t0);
            let later = t0 + 10 * MS;
            s.on_input(later);
            let due = later + settings().ping_interval;
            assert_eq!(s.poll_at(), Some(due));
            assert_eq!(s.on_time(due - MS), Step::Nothing);
            assert_eq!(ping(&mut s, due), "0.1");
        }

        #[test]
        fn a_pong_within_ping_timeout_keeps_the_connection() {
            let t0 = Instant::now();
            let mut s = established_at(t0);
            let sent = t0 + settings().ping_interval;
            let token = ping(&mut s, sent);
            let deadline = sent + settings().ping_timeout;
            assert_eq!(s.poll_at(), Some(deadline));
            assert_eq!(s.on_time(deadline - MS), Step::Nothing);
            s.on_input(deadline - MS);
            let pong = format!("+OK pong {token}");
            assert_eq!(s.on_line(&pong), Step::PongAccepted(sent));
            assert_eq!(s.on_time(deadline), Step::Nothing);
            // The next ping: an interval after the pong, with the next token.
            let next = deadline - MS + settings().ping_interval;
            assert_eq!(s.poll_at(), Some(next));
            assert_eq!(ping(&mut s, next), "0.2");
        }

        #[test]
        fn no_pong_within_ping_timeout_closes() {
            let t0 = Instant::now();
            let mut s = established_at(t0);
            let sent = t0 + settings().ping_interval;
            ping(&mut s, sent);
            let c = closing(s.on_time(sent + settings().ping_timeout));
            assert_eq!(c.cause, Cause::PingTimeout);
            assert_eq!(c.lines, "cquit ping timeout\r\n");
            assert_eq!(s.state(), State::Aborted);
        }

        #[test]
        fn other_traffic_does_not_replace_the_pong() {
            let t0 = Instant::now();
            let mut s = established_at(t0);
            let sent = t0 + settings().ping_interval;
            ping(&mut s, sent);
            s.on_input(sent + MS);
            assert_eq!(
                s.on_line("ping mine"),
                Step::Reply("+OK pong mine\r\n".into())
            );
            let deadline = sent + settings().ping_timeout;
            assert_eq!(s.poll_at(), Some(deadline));
            assert_eq!(closing(s.on_time(deadline)).cause, Cause::PingTimeout);
        }
    }

    mod closed {
        use super::*;

        #[test]
        fn no_input_is_read_after_the_close_began() {
            let mut s = session_established();
            closing(s.on_line("cquit"));
            assert_eq!(s.on_line("users"), Step::Nothing);
            assert_eq!(s.state(), State::Update);
        }
    }

    /// Property tests: random command sequences against the tables of §3 and §4.
    mod properties {
        use super::*;
        use crate::protocol::fsm::TRANSITIONS;
        use proptest::prelude::*;

        fn any_line() -> impl Strategy<Value = String> {
            let keyword = prop_oneof![
                Just("uname".to_string()),
                Just("ping".to_string()),
                Just("capa".to_string()),
                Just("cquit".to_string()),
                Just("cname".to_string()),
                Just("chatm".to_string()),
                Just("chatr".to_string()),
                Just("users".to_string()),
                Just("notif".to_string()),
                Just("+OK".to_string()),
                "[a-zA-Z+*-]{1,7}",
            ];
            let arg = prop_oneof![
                Just("alice".to_string()),
                Just("ALICE".to_string()),
                Just("bob".to_string()),
                Just("*".to_string()),
                Just("on".to_string()),
                Just("pong".to_string()),
                Just("p1".to_string()),
                "[ -~]{0,40}",
            ];
            (keyword, proptest::collection::vec(arg, 0..4))
                .prop_map(|(k, args)| std::iter::once(k).chain(args).collect::<Vec<_>>().join(" "))
        }

        /// Every line sent back is `+OK ...`, `-ERR [CODE] ...` with a code of §2, or
        /// `cquit <reason>`; after `+OK ... follows` (`capa`), items up to `.`.
        fn check_lines(text: &str) {
            const CODES: [&str; 8] = [
                "SYNTAX", "INVALID", "IN-USE", "NO-SUCH", "STATE", "PDU", "SPOOF", "FULL",
            ];
            let mut items = false;
            for l in text.split_terminator("\r\n") {
                if items {
                    items = l != ".";
                    continue;
                }
                let ok = l.starts_with("+OK ")
                    || l.starts_with("cquit ")
                    || CODES.iter().any(|c| l.starts_with(&format!("-ERR [{c}] ")));
                assert!(ok, "unexpected line {l:?}");
                items = l.starts_with("+OK ") && l.ends_with(" follows");
            }
            assert!(!items, "a list without its end: {text:?}");
        }

        proptest! {
            #[test]
            fn sessions_follow_the_tables(
                lines in proptest::collection::vec(any_line(), 1..40),
                hub_says_yes in any::<bool>(),
            ) {
                let mut s = session_negotiating();
                let mut failed = 0;
                for line in &lines {
                    let before = s.state();
                    let classified = command::classify(line);
                    let cell = classified.legality_in(before);
                    let step = s.on_line(line);
                    let after = s.state();
                    // Every state change is a row of §3.
                    if before != after {
                        prop_assert!(TRANSITIONS.iter().any(|t| t.from == before && t.to == after));
                    }
                    match (&step, cell) {
                        // Closed states read nothing.
                        (_, None) => prop_assert_eq!(&step, &Step::Nothing),
                        // §4: a violation is a STATE error, then cquit, then ABORTED.
                        (Step::Close(c), Some(Legality::Violation)) => {
                            prop_assert!(c.lines.starts_with("-ERR [STATE] "));
                            prop_assert!(c.lines.ends_with("cquit protocol violation\r\n"));
                            prop_assert_eq!(after, State::Aborted);
                        }
                        (other, Some(Legality::Violation)) => {
                            prop_assert!(false, "violation not enforced: {:?}", other);
                        }
                        (Step::Close(c), Some(_)) => {
                            // A legal command may close: quit, a spoof, a stray pong or the
                            // last failed attempt — never with a STATE error for the keyword.
                            check_lines(&c.lines);
                            prop_assert!(matches!(after, State::Update | State::Aborted));
                        }
                        (Step::Reply(r), Some(_)) => {
                            check_lines(r);
                            prop_assert!(!r.starts_with("-ERR [STATE]"));
                            if r.starts_with("-ERR") && before == State::Negotiating {
                                failed += 1;
                                let attempt = format!("(attempt {failed} of 3)");
                                prop_assert!(r.contains(&attempt));
                            }
                        }
                        (Step::Hub(Request::Register(nick)), Some(Legality::Legal)) => {
                            prop_assert_eq!(classified.spec.map(|c| c.keyword), Some("uname"));
                            if hub_says_yes {
                                s.on_registered(nick.clone(), false);
                                prop_assert_eq!(s.state(), State::Established);
                            } else {
                                match s.on_register_refused(nick) {
                                    Step::Reply(r) => { failed += 1; check_lines(&r) }
                                    Step::Close(c) => {
                                        check_lines(&c.lines);
                                        prop_assert_eq!(s.state(), State::Aborted);
                                    }
                                    other => prop_assert!(false, "{:?}", other),
                                }
                            }
                        }
                        (_, Some(_)) => {}
                    }
                    prop_assert!(failed < 3 || s.state() != State::Negotiating);
                }
            }

        }
    }
}
