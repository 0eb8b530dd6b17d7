//! Why a connection ends (xscp(7) §3: the causes of `connection_error`, the quit and
//! the shutdown), what the client is told, and how the log names it. The session, the
//! reader, the writer and the hub all speak of an ending in these terms.

use std::fmt;

use super::framing::FrameError;
use super::fsm::State;
use super::reply;
use crate::text;

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
    StrayPong {
        /// The pong's token.
        token: String,
        /// The outstanding ping's token, if a ping is outstanding.
        expected: Option<String>,
    },
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

/// How a connection's socket came to be closed: the `-> CLOSED on close` line says it, so
/// that an auditor tells an orderly close from one that timed out (§7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The peer closed its side (during the linger, or before it, as the connection's end).
    PeerClosed,
    /// The linger ran out before the peer closed its side; the server closed anyway.
    LingerRanOut,
    /// Reading during the linger failed (a reset, most often).
    LingerFailed,
    /// Closed at once, without a linger: the connection had failed (a reset, an I/O error,
    /// a slow consumer's queue dropped).
    NoLinger,
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Closed::PeerClosed => "the peer closed",
            Closed::LingerRanOut => "the linger ran out",
            Closed::LingerFailed => "the linger failed",
            Closed::NoLinger => "no linger after a failure",
        })
    }
}

impl Cause {
    /// The `cquit <reason>` line the client gets, if the server still can and should say
    /// anything.
    pub fn cquit_line(&self) -> Option<String> {
        let reason = match self {
            Cause::PeerClosed | Cause::Reset | Cause::Io(_) | Cause::Quit => return None,
            Cause::NegotiationTimeout => reply::NEGOTIATION_TIMEOUT,
            Cause::PingTimeout => reply::PING_TIMEOUT,
            Cause::Framing(_)
            | Cause::StateViolation { .. }
            | Cause::StrayPong { .. }
            | Cause::Spoofing => reply::PROTOCOL_VIOLATION,
            Cause::SlowConsumer => reply::SLOW_CONSUMER,
            Cause::TooManyAttempts => reply::TOO_MANY_ATTEMPTS,
            Cause::ServerShutdown => reply::SERVER_SHUTTING_DOWN,
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
            Cause::NegotiationTimeout => f.write_str(reply::NEGOTIATION_TIMEOUT),
            Cause::PingTimeout => f.write_str(reply::PING_TIMEOUT),
            Cause::Framing(e) => write!(f, "framing violation: {e}"),
            Cause::StateViolation { keyword, state } => write!(
                f,
                "state violation: {} in {state}",
                text::for_log(keyword.as_bytes())
            ),
            Cause::StrayPong { token, expected } => {
                let escaped = |t: &String| text::for_log(t.as_bytes());
                let why = reply::PongMismatch {
                    token: Some(escaped(token)),
                    expected: expected.as_ref().map(escaped),
                };
                write!(f, "state violation: {why}")
            }
            Cause::Spoofing => f.write_str("spoofing"),
            Cause::SlowConsumer => f.write_str(reply::SLOW_CONSUMER),
            Cause::TooManyAttempts => f.write_str(reply::TOO_MANY_ATTEMPTS),
            Cause::Quit => f.write_str("client quit"),
            Cause::ServerShutdown => f.write_str(reply::SERVER_SHUTTING_DOWN),
        }
    }
}
