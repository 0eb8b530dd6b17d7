//! Commands as data (xscp(7) §1, §4, §5): one table, one row per command, carrying its
//! keyword, its synopsis, its arity, what the server does with it in each state, and how its
//! arguments become a [`Command`]. The parser, the session's legality check and the
//! legality table that `xscpd --print-fsm` prints all read this one table.
//!
//! The parser does not decide about states: the session checks legality (§4) between
//! [`classify`] and [`parse`], so that a command in the wrong state is a violation whatever
//! its arguments are.

use super::fsm::{COMMAND_STATES, State};

/// The longest keyword (WS_2017).
pub const MAX_KEYWORD: usize = 5;

/// The longest token a `ping` may carry (§5).
pub const MAX_PING_TOKEN: usize = 32;

/// The most arguments any command takes.
const MAX_ARGS: usize = 3;

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

/// How many arguments a command takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arity {
    /// Fewest arguments.
    pub min: usize,
    /// Most arguments; the last one takes the rest of the line when `rest` is set.
    pub max: usize,
    /// The last argument is free text: the rest of the line, kept byte for byte.
    pub rest: bool,
}

impl Arity {
    /// Exactly `n` arguments, each one token.
    const fn exactly(n: usize) -> Arity {
        Arity {
            min: n,
            max: n,
            rest: false,
        }
    }

    /// At most `n` arguments, each one token.
    const fn up_to(n: usize) -> Arity {
        Arity {
            min: 0,
            max: n,
            rest: false,
        }
    }

    /// `n` arguments, the last one the rest of the line.
    const fn text(n: usize) -> Arity {
        Arity {
            min: n,
            max: n,
            rest: true,
        }
    }
}

/// The arguments of a line, split as its row's [`Arity`] says; unused slots are empty.
type Args<'a> = [&'a str; MAX_ARGS];

/// Turns the arguments (their count already checked against the [`Arity`]) into the
/// command.
type Build = for<'a> fn(Args<'a>) -> Result<Command<'a>, SyntaxError>;

/// One row of the command table.
#[derive(Clone, Copy, Debug)]
pub struct CommandSpec {
    /// The keyword: the synopsis's first word, matched case-insensitively.
    pub keyword: &'static str,
    /// The command as the specification writes it.
    pub synopsis: &'static str,
    /// How many arguments it takes.
    pub arity: Arity,
    /// What the server does with it in each of [`COMMAND_STATES`], in that order.
    pub legality: [Legality; COMMAND_STATES.len()],
    build: Build,
}

/// Is `state`'s cell in `cells`? `None` for states in which no command is read at all.
fn cell(cells: [Legality; COMMAND_STATES.len()], state: State) -> Option<Legality> {
    let i = COMMAND_STATES.iter().position(|s| *s == state)?;
    Some(cells[i])
}

impl CommandSpec {
    /// The command's name: the synopsis up to its first argument (`uname`, `+OK pong`).
    pub fn name(&self) -> &'static str {
        let literal = |w: &str| !w.starts_with(['<', '[']) && !w.contains('|');
        let words = self.synopsis.split(' ').take_while(|w| literal(w));
        let len = words.map(|w| w.len() + 1).sum::<usize>().saturating_sub(1);
        &self.synopsis[..len]
    }

    /// The synopsis's name for argument `i` (from 0), e.g. `<name>`.
    fn argument(&self, i: usize) -> &'static str {
        self.synopsis.split(' ').nth(1 + i).unwrap_or("argument")
    }

    /// What the server does with this command in `state`; `None` for states in which no
    /// command is read at all (the connection is not open for input there).
    pub fn legality_in(&self, state: State) -> Option<Legality> {
        cell(self.legality, state)
    }
}

const fn row(
    synopsis: &'static str,
    arity: Arity,
    legality: [Legality; COMMAND_STATES.len()],
    build: Build,
) -> CommandSpec {
    let keyword = first_word(synopsis);
    CommandSpec {
        keyword,
        synopsis,
        arity,
        legality,
        build,
    }
}

/// The first word of a synopsis: the keyword.
const fn first_word(synopsis: &str) -> &str {
    let bytes = synopsis.as_bytes();
    let mut end = 0;
    while end < bytes.len() && bytes[end] != b' ' {
        end += 1;
    }
    match std::str::from_utf8(bytes.split_at(end).0) {
        Ok(word) => word,
        Err(_) => panic!("a synopsis starts with an ASCII keyword"),
    }
}

/// Every command the server knows: xscp(7) §4 and §5, row for row. Adding a command is
/// a row here, a [`Command`] variant and its rule in the session; if the hub answers it,
/// the rule makes a [`super::request::Request`] variant, which the hub's handler takes.
///
/// A row: the synopsis (its first word is the keyword), the arity, the legality in
/// NEGOTIATING and in ESTABLISHED (the order of [`COMMAND_STATES`]), and the function that
/// builds the [`Command`] from its arguments.
pub const COMMANDS: &[CommandSpec] = {
    use Legality::*;
    &[
        row("uname <name>", Arity::exactly(1), [Legal, Violation], |a| {
            Ok(Command::Uname(a[0]))
        }),
        row(
            "ping [token]",
            Arity::up_to(1),
            [Legal, Legal],
            |a| match a[0] {
                "" => Ok(Command::Ping(None)),
                t if is_token(t) => Ok(Command::Ping(Some(t))),
                _ => Err(SyntaxError::Invalid(Expected::Token)),
            },
        ),
        row("capa", Arity::exactly(0), [Legal, Legal], |_| {
            Ok(Command::Capa)
        }),
        row("cquit", Arity::exactly(0), [Legal, Legal], |_| {
            Ok(Command::Cquit)
        }),
        row("cname <new>", Arity::exactly(1), [Violation, Legal], |a| {
            Ok(Command::Cname(a[0]))
        }),
        row(
            "chatm <sender> <recipient> <text>",
            Arity::text(3),
            [Violation, Legal],
            |a| {
                Ok(Command::Chatm {
                    sender: a[0],
                    recipient: a[1],
                    text: a[2],
                })
            },
        ),
        row(
            "chatr <sender> <recipient>",
            Arity::exactly(2),
            [Violation, Legal],
            |a| {
                Ok(Command::Chatr {
                    sender: a[0],
                    recipient: a[1],
                })
            },
        ),
        row("users", Arity::exactly(0), [Violation, Legal], |_| {
            Ok(Command::Users)
        }),
        row(
            "notif on|off",
            Arity::exactly(1),
            [Violation, Legal],
            |a| match a[0] {
                s if s.eq_ignore_ascii_case("on") => Ok(Command::Notif(true)),
                s if s.eq_ignore_ascii_case("off") => Ok(Command::Notif(false)),
                _ => Err(SyntaxError::Invalid(Expected::OnOrOff)),
            },
        ),
        // A client's answer to a server ping. Its token is checked by the session, which
        // knows the outstanding ping and can say what was expected.
        row(
            "+OK pong <token>",
            Arity::up_to(2),
            [Violation, AnsweringPing],
            |a| match a {
                [w, token, _] if w.eq_ignore_ascii_case("pong") => {
                    Ok(Command::Pong((!token.is_empty()).then_some(token)))
                }
                _ => Err(SyntaxError::Invalid(Expected::Pong)),
            },
        ),
    ]
};

// Every row's arity fits the argument array `split_args` fills (`out[n]` with
// `n < arity.max`): checked when the crate compiles, not when a client sends the command.
const _: () = {
    let mut i = 0;
    while i < COMMANDS.len() {
        assert!(
            COMMANDS[i].arity.max <= MAX_ARGS,
            "a row's arity exceeds MAX_ARGS"
        );
        i += 1;
    }
};

/// The last row of the legality table: a keyword that is not in [`COMMANDS`].
pub const OTHER_KEYWORDS: &str = "any other keyword";

/// What the server does with a keyword that is not in [`COMMANDS`], per state.
pub const OTHER_KEYWORDS_LEGALITY: [Legality; COMMAND_STATES.len()] =
    [Legality::Syntax, Legality::Syntax];

/// The legality table of §4 as `(synopsis, cells)` rows: every command, then any other
/// keyword.
pub fn legality_table() -> impl Iterator<Item = (&'static str, [Legality; COMMAND_STATES.len()])> {
    COMMANDS
        .iter()
        .map(|c| (c.synopsis, c.legality))
        .chain(std::iter::once((OTHER_KEYWORDS, OTHER_KEYWORDS_LEGALITY)))
}

/// A line split into its keyword's table row and its arguments.
#[derive(Clone, Copy, Debug)]
pub struct Classified<'a> {
    /// The keyword's row; `None` for a keyword not in [`COMMANDS`].
    pub spec: Option<&'static CommandSpec>,
    /// The keyword as the client wrote it.
    pub keyword: &'a str,
    /// Everything after the keyword and its separating spaces.
    pub args: &'a str,
}

impl Classified<'_> {
    /// The command's name as the legality table has it, with the keyword as the client
    /// wrote it (`UName`, `+ok pong`); for an unknown keyword the keyword.
    pub fn name(&self) -> String {
        match self.spec {
            Some(spec) => format!("{}{}", self.keyword, &spec.name()[spec.keyword.len()..]),
            None => self.keyword.to_string(),
        }
    }

    /// What the server does with this line in `state`; `None` for states in which no
    /// command is read at all.
    pub fn legality_in(&self, state: State) -> Option<Legality> {
        match self.spec {
            Some(spec) => spec.legality_in(state),
            None => cell(OTHER_KEYWORDS_LEGALITY, state),
        }
    }
}

/// A command with its arguments, ready for its handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `uname <name>`; the name is not validated yet.
    Uname(&'a str),
    /// `ping [token]`
    Ping(Option<&'a str>),
    /// `capa`
    Capa,
    /// `cquit`
    Cquit,
    /// `cname <new>`; the name is not validated yet.
    Cname(&'a str),
    /// `chatm <sender> <recipient> <text>`
    Chatm {
        /// Who claims to send.
        sender: &'a str,
        /// A nickname or `*`.
        recipient: &'a str,
        /// The message, byte for byte.
        text: &'a str,
    },
    /// `chatr <sender> <recipient>`
    Chatr {
        /// The author of the message being acknowledged.
        sender: &'a str,
        /// The acknowledging client, or `*`.
        recipient: &'a str,
    },
    /// `users`
    Users,
    /// `notif on|off`
    Notif(bool),
    /// `+OK pong <token>`; `None` if the token is missing.
    Pong(Option<&'a str>),
}

/// Why a line is not a command, or its arguments do not fit it: always a `SYNTAX` refusal.
/// Its text is written in `reply.rs` with every other reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyntaxError {
    /// The keyword is not in [`COMMANDS`].
    Unknown,
    /// More arguments than the command takes.
    TooMany,
    /// The first argument missing, as the synopsis names it (`<name>`).
    Missing(&'static str),
    /// A `chatm` without its text.
    EmptyMessage,
    /// An argument the command does not accept, and what it does accept.
    Invalid(Expected),
}

/// What a command accepts where it found an argument it does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// `ping`: a token (see [`is_token`]).
    Token,
    /// `notif`: `on` or `off`.
    OnOrOff,
    /// `+OK`: only `+OK pong <token>`.
    Pong,
}

/// Splits off the keyword and finds its row in [`COMMANDS`].
pub fn classify(line: &str) -> Classified<'_> {
    let line = line.trim_start_matches(' ');
    let (keyword, args) = line.split_once(' ').unwrap_or((line, ""));
    let spec = if keyword.len() <= MAX_KEYWORD {
        COMMANDS
            .iter()
            .find(|s| s.keyword.eq_ignore_ascii_case(keyword))
    } else {
        None
    };
    Classified {
        spec,
        keyword,
        args: args.trim_start_matches(' '),
    }
}

/// Splits `args` into at most `arity.max` tokens separated by runs of spaces; with
/// `arity.rest` the last token is the remainder of the line, kept as it is. Returns the
/// tokens and their count.
fn split_args(args: &str, arity: Arity) -> Result<(Args<'_>, usize), SyntaxError> {
    let mut out = [""; MAX_ARGS];
    let mut n = 0;
    let mut remaining = args;
    while !remaining.is_empty() {
        if n == arity.max {
            return Err(SyntaxError::TooMany);
        }
        if arity.rest && n + 1 == arity.max {
            out[n] = remaining;
            return Ok((out, n + 1));
        }
        let (token, tail) = remaining.split_once(' ').unwrap_or((remaining, ""));
        out[n] = token;
        n += 1;
        remaining = tail.trim_start_matches(' ');
    }
    Ok((out, n))
}

/// Parses the arguments of a classified line.
pub fn parse<'a>(c: &Classified<'a>) -> Result<Command<'a>, SyntaxError> {
    let Some(spec) = c.spec else {
        return Err(SyntaxError::Unknown);
    };
    let (args, n) = split_args(c.args, spec.arity)?;
    if n < spec.arity.min {
        // Only the free text is missing: the message of a `chatm`.
        return Err(if spec.arity.rest && n + 1 == spec.arity.min {
            SyntaxError::EmptyMessage
        } else {
            SyntaxError::Missing(spec.argument(n))
        });
    }
    (spec.build)(args)
}

/// A ping token: 1–32 printable ASCII characters.
pub fn is_token(t: &str) -> bool {
    !t.is_empty() && t.len() <= MAX_PING_TOKEN && t.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Command<'_>, SyntaxError> {
        parse(&classify(line))
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(p("UNAME alice"), Ok(Command::Uname("alice")));
        assert_eq!(p("CaPa"), Ok(Command::Capa));
        assert_eq!(p("+ok PONG t1"), Ok(Command::Pong(Some("t1"))));
    }

    #[test]
    fn keywords_longer_than_five_are_unknown() {
        assert!(classify("unamex alice").spec.is_none());
        assert!(classify("hello").spec.is_none());
        assert_eq!(p("hello"), Err(SyntaxError::Unknown));
    }

    #[test]
    fn runs_of_spaces_separate_tokens() {
        assert_eq!(p("  uname    bob  "), Ok(Command::Uname("bob")));
        assert_eq!(
            p("chatr  a   b"),
            Ok(Command::Chatr {
                sender: "a",
                recipient: "b"
            })
        );
    }

    #[test]
    fn chatm_text_is_the_rest_of_the_line_byte_for_byte() {
        assert_eq!(
            p("chatm alice bob  hello   wörld  "),
            Ok(Command::Chatm {
                sender: "alice",
                recipient: "bob",
                text: "hello   wörld  "
            })
        );
        assert_eq!(p("chatm alice bob"), Err(SyntaxError::EmptyMessage));
        assert_eq!(p("chatm alice bob    "), Err(SyntaxError::EmptyMessage));
        assert_eq!(p("chatm alice"), Err(SyntaxError::Missing("<recipient>")));
    }

    #[test]
    fn arity_is_checked() {
        assert_eq!(p("uname"), Err(SyntaxError::Missing("<name>")));
        assert_eq!(p("uname a b"), Err(SyntaxError::TooMany));
        assert_eq!(p("capa x"), Err(SyntaxError::TooMany));
        assert_eq!(p("cquit now"), Err(SyntaxError::TooMany));
        assert_eq!(p("chatr a"), Err(SyntaxError::Missing("<recipient>")));
        assert_eq!(p("notif"), Err(SyntaxError::Missing("on|off")));
        assert_eq!(p("chatm"), Err(SyntaxError::Missing("<sender>")));
    }

    #[test]
    fn ping_tokens() {
        assert_eq!(p("ping"), Ok(Command::Ping(None)));
        assert_eq!(p("ping abc"), Ok(Command::Ping(Some("abc"))));
        assert!(p(&format!("ping {}", "t".repeat(32))).is_ok());
        assert!(p(&format!("ping {}", "t".repeat(33))).is_err());
        assert!(p("ping é").is_err());
    }

    #[test]
    fn notif_takes_on_or_off() {
        assert_eq!(p("notif ON"), Ok(Command::Notif(true)));
        assert_eq!(p("notif off"), Ok(Command::Notif(false)));
        assert!(p("notif maybe").is_err());
    }

    /// `+OK` is read only as `+OK pong`; a missing token is left to the session, which
    /// knows which token it expects.
    #[test]
    fn pong_needs_the_word_pong() {
        let not_a_pong = Err(SyntaxError::Invalid(Expected::Pong));
        assert_eq!(p("+OK"), not_a_pong);
        assert_eq!(p("+OK foo"), not_a_pong);
        assert_eq!(p("+OK ping t"), not_a_pong);
        assert_eq!(p("+OK pong"), Ok(Command::Pong(None)));
        assert_eq!(p("+OK pong t u"), Err(SyntaxError::TooMany));
    }

    #[test]
    fn a_command_is_named_by_its_synopsis_up_to_the_first_argument() {
        let name = |keyword: &str| classify(keyword).spec.map(CommandSpec::name);
        assert_eq!(name("uname"), Some("uname"));
        assert_eq!(name("notif"), Some("notif"));
        assert_eq!(name("capa"), Some("capa"));
        assert_eq!(name("+ok"), Some("+OK pong"));
    }

    /// The cell of §4 for the command `keyword` in `state`.
    fn legality(keyword: &str, state: State) -> Option<Legality> {
        classify(keyword).legality_in(state)
    }

    /// Each of `keywords` has the cell `expected` in `state`.
    fn assert_cells(state: State, expected: Legality, keywords: &[&str]) {
        for keyword in keywords {
            assert_eq!(
                legality(keyword, state),
                Some(expected),
                "{keyword} in {state}"
            );
        }
    }

    mod negotiating {
        use super::*;
        use Legality::*;

        const IN: State = State::Negotiating;

        #[test]
        fn handshake_commands_are_legal() {
            assert_cells(IN, Legal, &["uname", "ping", "capa", "cquit"]);
        }

        #[test]
        fn session_commands_are_violations() {
            let session = ["cname", "chatm", "chatr", "users", "notif", "+OK"];
            assert_cells(IN, Violation, &session);
        }

        #[test]
        fn unknown_keyword_is_a_syntax_error() {
            assert_cells(IN, Syntax, &["hello", "unamex"]);
        }
    }

    mod established {
        use super::*;
        use Legality::*;

        const IN: State = State::Established;

        #[test]
        fn uname_again_is_a_violation() {
            assert_cells(IN, Violation, &["uname", "UNAME"]);
        }

        #[test]
        fn pong_only_answers_a_ping() {
            assert_cells(IN, AnsweringPing, &["+ok", "+OK"]);
        }

        #[test]
        fn session_commands_are_legal() {
            let session = [
                "ping", "capa", "cquit", "cname", "chatm", "chatr", "users", "notif",
            ];
            assert_cells(IN, Legal, &session);
        }

        #[test]
        fn unknown_keyword_is_a_syntax_error() {
            assert_cells(IN, Syntax, &["hello", "pong"]);
        }
    }

    #[test]
    fn no_command_is_read_outside_the_two_open_states() {
        for state in [State::Closed, State::Listen, State::Update, State::Aborted] {
            assert_eq!(legality("ping", state), None);
            assert_eq!(legality("hello", state), None);
        }
    }

    #[test]
    fn the_legality_table_has_every_command_then_any_other_keyword() {
        let rows: Vec<_> = legality_table().map(|(synopsis, _)| synopsis).collect();
        assert_eq!(rows.len(), COMMANDS.len() + 1);
        assert_eq!(rows[0], "uname <name>");
        assert_eq!(rows[rows.len() - 1], OTHER_KEYWORDS);
    }
}
