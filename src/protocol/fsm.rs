//! The connection state machine (PROTOCOL.md §3) and the legality table (§4), as data.
//!
//! Both tables exist here once. The server consults them at run time, `xscpd --print-fsm`
//! prints them, and the tests walk them pair by pair. This module does no I/O.

use std::fmt;

/// A connection state, named as in PROTOCOL.md §3.
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
    /// Where the row comes from (seed number or "Decision").
    pub source: &'static str,
}

const fn row(from: State, to: State, event: Event, source: &'static str) -> Transition {
    Transition {
        from,
        to,
        event,
        source,
    }
}

/// PROTOCOL.md §3, row for row. Any (state, event) pair not listed here is impossible.
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

/// What a command kind is, for the legality table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandKind {
    /// `uname <name>`
    Uname,
    /// `ping [token]`
    Ping,
    /// `capa`
    Capa,
    /// `cquit`
    Cquit,
    /// `cname <new>`
    Cname,
    /// `chatm <sender> <recipient> <text>`
    Chatm,
    /// `chatr <sender> <recipient>`
    Chatr,
    /// `users`
    Users,
    /// `notif on|off`
    Notif,
    /// `+OK pong <token>`, the answer to a server ping
    Pong,
    /// Any other keyword.
    Unknown,
}

/// A cell of the legality table: what the server does with a command in a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Legality {
    /// The command is handled.
    Legal,
    /// Legal only as the answer to an outstanding server ping.
    AnsweringPing,
    /// `-ERR [STATE]`, `cquit protocol violation`, aborted.
    Violation,
    /// `-ERR [SYNTAX]`; in NEGOTIATING it is also a failed attempt.
    Syntax,
}

impl Legality {
    /// How the cell reads in the printed table.
    pub fn describe(self, state: State) -> &'static str {
        match (self, state) {
            (Legality::Legal, _) => "yes",
            (Legality::AnsweringPing, _) => "yes, only answering an outstanding server ping",
            (Legality::Violation, _) => "violation",
            (Legality::Syntax, State::Negotiating) => "SYNTAX, counts as a failed attempt",
            (Legality::Syntax, _) => "SYNTAX refusal",
        }
    }
}

/// One row of the legality table.
#[derive(Clone, Copy, Debug)]
pub struct LegalityRow {
    /// The command kind.
    pub kind: CommandKind,
    /// The command as the specification writes it.
    pub synopsis: &'static str,
    /// The cell for NEGOTIATING.
    pub negotiating: Legality,
    /// The cell for ESTABLISHED.
    pub established: Legality,
}

/// The states in which commands are read at all: the columns of the legality table.
pub const COMMAND_STATES: [State; 2] = [State::Negotiating, State::Established];

/// PROTOCOL.md §4, row for row.
pub const LEGALITY: &[LegalityRow] = {
    use CommandKind::*;
    use Legality::*;
    const fn r(
        kind: CommandKind,
        synopsis: &'static str,
        negotiating: Legality,
        established: Legality,
    ) -> LegalityRow {
        LegalityRow {
            kind,
            synopsis,
            negotiating,
            established,
        }
    }
    &[
        r(Uname, "uname <name>", Legal, Violation),
        r(Ping, "ping [token]", Legal, Legal),
        r(Capa, "capa", Legal, Legal),
        r(Cquit, "cquit", Legal, Legal),
        r(Cname, "cname <new>", Violation, Legal),
        r(Chatm, "chatm <sender> <recipient> <text>", Violation, Legal),
        r(Chatr, "chatr <sender> <recipient>", Violation, Legal),
        r(Users, "users", Violation, Legal),
        r(Notif, "notif on|off", Violation, Legal),
        r(Pong, "+OK pong <token>", Violation, AnsweringPing),
        r(Unknown, "any other keyword", Syntax, Syntax),
    ]
};

/// Is `kind` allowed in `state`? `None` for states in which no command is read at all
/// (the connection is not open for input there).
pub fn legality(kind: CommandKind, state: State) -> Option<Legality> {
    let row = LEGALITY.iter().find(|r| r.kind == kind)?;
    match state {
        State::Negotiating => Some(row.negotiating),
        State::Established => Some(row.established),
        _ => None,
    }
}

/// The formats `--print-fsm` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsmFormat {
    /// Two Markdown tables, as in PROTOCOL.md (the default).
    Markdown,
    /// Graphviz DOT: one digraph per table.
    Dot,
    /// Mermaid: a state diagram and a flowchart.
    Mermaid,
}

impl FsmFormat {
    /// Parses the argument of `--print-fsm`.
    pub fn parse(s: &str) -> Option<FsmFormat> {
        match s {
            "markdown" | "md" => Some(FsmFormat::Markdown),
            "dot" => Some(FsmFormat::Dot),
            "mermaid" => Some(FsmFormat::Mermaid),
            _ => None,
        }
    }
}

/// Renders both tables in `format`.
pub fn render(format: FsmFormat) -> String {
    match format {
        FsmFormat::Markdown => render_markdown(),
        FsmFormat::Dot => render_dot(),
        FsmFormat::Mermaid => render_mermaid(),
    }
}

fn render_markdown() -> String {
    let mut out =
        String::from("## Transitions\n\n| from | to | event | source |\n|---|---|---|---|\n");
    for t in TRANSITIONS {
        out += &format!("| {} | {} | {} | {} |\n", t.from, t.to, t.event, t.source);
    }
    out += "\n## Legality\n\n| command | NEGOTIATING | ESTABLISHED |\n|---|---|---|\n";
    for r in LEGALITY {
        out += &format!(
            "| `{}` | {} | {} |\n",
            r.synopsis.replace('|', "\\|"),
            r.negotiating.describe(State::Negotiating),
            r.established.describe(State::Established)
        );
    }
    out
}

fn render_dot() -> String {
    let mut out = String::from("digraph transitions {\n  rankdir=LR;\n");
    for t in TRANSITIONS {
        out += &format!("  {} -> {} [label=\"{}\"];\n", t.from, t.to, t.event);
    }
    out += "}\n\ndigraph legality {\n  rankdir=LR;\n";
    for r in LEGALITY {
        for (state, cell) in [
            (State::Negotiating, r.negotiating),
            (State::Established, r.established),
        ] {
            out += &format!(
                "  \"{}\" -> {} [label=\"{}\"];\n",
                r.synopsis,
                state,
                cell.describe(state)
            );
        }
    }
    out + "}\n"
}

fn render_mermaid() -> String {
    let mut out = String::from("stateDiagram-v2\n    [*] --> CLOSED\n");
    for t in TRANSITIONS {
        out += &format!("    {} --> {}: {}\n", t.from, t.to, t.event);
    }
    out += "\nflowchart LR\n";
    for (i, r) in LEGALITY.iter().enumerate() {
        out += &format!("    c{i}[\"{}\"]\n", r.synopsis.replace('|', "#124;"));
        for (state, cell) in [
            (State::Negotiating, r.negotiating),
            (State::Established, r.established),
        ] {
            out += &format!("    c{i} -- \"{}\" --> {}\n", cell.describe(state), state);
        }
    }
    out
}

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

    mod negotiating {
        use super::super::*;

        #[test]
        fn handshake_commands_are_legal() {
            for kind in [
                CommandKind::Uname,
                CommandKind::Ping,
                CommandKind::Capa,
                CommandKind::Cquit,
            ] {
                assert_eq!(legality(kind, State::Negotiating), Some(Legality::Legal));
            }
        }

        #[test]
        fn session_commands_are_violations() {
            for kind in [
                CommandKind::Cname,
                CommandKind::Chatm,
                CommandKind::Chatr,
                CommandKind::Users,
                CommandKind::Notif,
                CommandKind::Pong,
            ] {
                assert_eq!(
                    legality(kind, State::Negotiating),
                    Some(Legality::Violation)
                );
            }
        }

        #[test]
        fn unknown_keyword_is_a_syntax_error() {
            assert_eq!(
                legality(CommandKind::Unknown, State::Negotiating),
                Some(Legality::Syntax)
            );
        }
    }

    mod established {
        use super::super::*;

        #[test]
        fn uname_again_is_a_violation() {
            assert_eq!(
                legality(CommandKind::Uname, State::Established),
                Some(Legality::Violation)
            );
        }

        #[test]
        fn pong_only_answers_a_ping() {
            assert_eq!(
                legality(CommandKind::Pong, State::Established),
                Some(Legality::AnsweringPing)
            );
        }

        #[test]
        fn session_commands_are_legal() {
            for kind in [
                CommandKind::Ping,
                CommandKind::Capa,
                CommandKind::Cquit,
                CommandKind::Cname,
                CommandKind::Chatm,
                CommandKind::Chatr,
                CommandKind::Users,
                CommandKind::Notif,
            ] {
                assert_eq!(legality(kind, State::Established), Some(Legality::Legal));
            }
        }
    }

    #[test]
    fn no_command_is_read_outside_the_two_open_states() {
        for state in [State::Closed, State::Listen, State::Update, State::Aborted] {
            assert_eq!(legality(CommandKind::Ping, state), None);
        }
    }

    #[test]
    fn every_format_prints_every_row() {
        for format in [FsmFormat::Markdown, FsmFormat::Dot, FsmFormat::Mermaid] {
            let text = render(format);
            for t in TRANSITIONS {
                assert!(text.contains(t.event.name()));
            }
            assert!(text.contains("chatm <sender> <recipient> <text>"));
        }
    }
}
