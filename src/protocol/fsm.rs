//! The connection state machine (xscp(7) §3), as data.
//!
//! The transition table exists here once. The server consults it at run time, `xscpd
//! --print-fsm` prints it, and the tests walk it pair by pair. The legality table (§4) is a
//! view of the command table in [`super::command`]. This module does no I/O.

use std::fmt;

/// A connection state, named as in xscp(7) §3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// No resources; the first and the last state.
    Closed,
    /// The listening socket is bound.
    Listen,
    /// Accepted; the client has not yet given a valid nickname.
    Negotiating,
    /// Registered under a nickname; the whole command set is open.
    Established,
    /// Orderly quit: resources are released, then the connection closes in order.
    Update,
    /// Violation or fault: emergency cleanup before the close.
    Aborted,
}

impl State {
    /// Every state, in the order of the specification.
    pub const ALL: [State; 6] = [
        State::Closed,
        State::Listen,
        State::Negotiating,
        State::Established,
        State::Update,
        State::Aborted,
    ];

    /// The state's name as the specification spells it.
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::Listen => "LISTEN",
            State::Negotiating => "NEGOTIATING",
            State::Established => "ESTABLISHED",
            State::Update => "UPDATE",
            State::Aborted => "ABORTED",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An event that moves a connection from one state to another (§3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// The server bound its listening socket.
    BindAndListen,
    /// The operating system completed a TCP handshake.
    TcpConnectionAccepted,
    /// The socket (listening or connected) is closed.
    Close,
    /// `uname` named a free, valid nickname (or one held for this IP).
    CredentialsValidated,
    /// A failed attempt in NEGOTIATING: the retry counter grows.
    InvalidCredentials,
    /// The failed attempt that exhausted `--max-retries`.
    MaxRetriesExceeded,
    /// A fault or a violation; the log names the cause.
    ConnectionError,
    /// The client sent `cquit`.
    QuitRequested,
    /// The server is shutting down (SIGINT/SIGTERM).
    ServerShutdown,
}

impl Event {
    /// Every event, in the order of the specification.
    pub const ALL: [Event; 9] = [
        Event::BindAndListen,
        Event::TcpConnectionAccepted,
        Event::Close,
        Event::CredentialsValidated,
        Event::InvalidCredentials,
        Event::MaxRetriesExceeded,
        Event::ConnectionError,
        Event::QuitRequested,
        Event::ServerShutdown,
    ];

    /// The event's name as the specification spells it.
    pub fn name(self) -> &'static str {
        match self {
            Event::BindAndListen => "bind_and_listen",
            Event::TcpConnectionAccepted => "tcp_connection_accepted",
            Event::Close => "close",
            Event::CredentialsValidated => "credentials_validated",
            Event::InvalidCredentials => "invalid_credentials",
            Event::MaxRetriesExceeded => "max_retries_exceeded",
            Event::ConnectionError => "connection_error",
            Event::QuitRequested => "quit_requested",
            Event::ServerShutdown => "server_shutdown",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One row of the transition table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The state the row starts from.
    pub from: State,
    /// The state the row leads to.
    pub to: State,
    /// The event that takes it.
    pub event: Event,
    /// Where the row comes from: words of [`SOURCES`], with a reason in parentheses.
    pub source: &'static str,
}

/// What the words of the `source` column stand for, as `--print-fsm` explains them under
/// the table and xscp(7) section 3 does in prose.
pub const SOURCES: [(&str, &str); 3] = [
    (
        "000",
        "the XSCP connection life cycle this protocol starts from",
    ),
    (
        "004",
        "WS_2017, the course protocol whose command set it keeps",
    ),
    (
        "Decision",
        "a choice this protocol made where those two are silent or disagree",
    ),
];

const fn row(from: State, to: State, event: Event, source: &'static str) -> Transition {
    Transition {
        from,
        to,
        event,
        source,
    }
}

/// xscp(7) §3, row for row. Any (state, event) pair not listed here is impossible.
pub const TRANSITIONS: &[Transition] = {
    use Event::*;
    use State::*;
    &[
        row(Closed, Listen, BindAndListen, "000"),
        row(Listen, Negotiating, TcpConnectionAccepted, "000"),
        row(Listen, Closed, Close, "000"),
        row(Negotiating, Established, CredentialsValidated, "000"),
        row(Negotiating, Negotiating, InvalidCredentials, "000"),
        row(Negotiating, Aborted, MaxRetriesExceeded, "000"),
        row(Negotiating, Aborted, ConnectionError, "000"),
        row(
            Negotiating,
            Update,
            QuitRequested,
            "004, Decision (POP3 allows QUIT before login)",
        ),
        row(Negotiating, Update, ServerShutdown, "Decision"),
        row(Established, Aborted, ConnectionError, "000"),
        row(Established, Update, QuitRequested, "004"),
        row(Established, Update, ServerShutdown, "Decision"),
        row(Update, Closed, Close, "004"),
        row(Aborted, Closed, Close, "000"),
    ]
};

/// A (state, event) pair that the transition table does not allow. Meeting one is a bug in
/// the server, never something a client can cause; it carries what was expected and what
/// arrived, so the log says exactly which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImpossibleTransition {
    /// The state the connection was in.
    pub state: State,
    /// The event that arrived.
    pub event: Event,
}

impl fmt::Display for ImpossibleTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no transition from {} on {}", self.state, self.event)
    }
}

/// Looks up the state that `event` leads to from `state`.
pub fn next_state(state: State, event: Event) -> Result<State, ImpossibleTransition> {
    TRANSITIONS
        .iter()
        .find(|t| t.from == state && t.event == event)
        .map(|t| t.to)
        .ok_or(ImpossibleTransition { state, event })
}

/// The states in which commands are read at all: the columns of the legality table.
pub const COMMAND_STATES: [State; 2] = [State::Negotiating, State::Established];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row of §3 leads where the table says.
    #[test]
    fn every_row_is_a_legal_transition() {
        for t in TRANSITIONS {
            assert_eq!(next_state(t.from, t.event), Ok(t.to), "{t:?}");
        }
        assert_eq!(TRANSITIONS.len(), 14);
    }

    /// Every word of every `source` cell is explained in [`SOURCES`]: the printed table
    /// never leaves a reader guessing what "000" is.
    #[test]
    fn every_source_is_explained() {
        for t in TRANSITIONS {
            let words = t.source.split(" (").next().unwrap_or(t.source);
            for word in words.split(", ") {
                assert!(SOURCES.iter().any(|(w, _)| *w == word), "{t:?}: {word}");
            }
        }
    }

    /// §3: "Any other (state, event) pair is impossible."
    #[test]
    fn every_other_pair_is_refused() {
        let mut allowed = 0;
        for state in State::ALL {
            for event in Event::ALL {
                let listed = TRANSITIONS
                    .iter()
                    .any(|t| t.from == state && t.event == event);
                match next_state(state, event) {
                    Ok(_) => {
                        assert!(listed);
                        allowed += 1;
                    }
                    Err(e) => {
                        assert!(!listed);
                        assert_eq!(e, ImpossibleTransition { state, event });
                    }
                }
            }
        }
        assert_eq!(allowed, TRANSITIONS.len(), "no pair is listed twice");
    }
}
