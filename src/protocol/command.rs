//! Commands as data (PROTOCOL.md §1, §5): one table of keyword, kind and arity, and the
//! parser that turns a line into a [`Command`].
//!
//! The parser does not know about states: the session checks legality (§4) between
//! [`classify`] and [`parse`], so that a command in the wrong state is a violation whatever
//! its arguments are.

use super::fsm::CommandKind;

/// The longest keyword (WS_2017).
pub const MAX_KEYWORD: usize = 5;

/// The longest token a `ping` may carry (§5).
pub const MAX_PING_TOKEN: usize = 32;

/// One row of the command table.
#[derive(Clone, Copy, Debug)]
pub struct CommandSpec {
    /// The keyword, in lower case; matched case-insensitively.
    pub keyword: &'static str,
    /// What the command is.
    pub kind: CommandKind,
    /// Fewest arguments.
    pub min_args: usize,
    /// Most arguments; the last one takes the rest of the line when `rest` is set.
    pub max_args: usize,
    /// The last argument is free text: the rest of the line, kept byte for byte.
    pub rest: bool,
}

const fn spec(
    keyword: &'static str,
    kind: CommandKind,
    min_args: usize,
    max_args: usize,
    rest: bool,
) -> CommandSpec {
    CommandSpec {
        keyword,
        kind,
        min_args,
        max_args,
        rest,
    }
}

/// Every keyword the server knows.
pub const COMMANDS: &[CommandSpec] = {
    use CommandKind::*;
    &[
        spec("uname", Uname, 1, 1, false),
        spec("ping", Ping, 0, 1, false),
        spec("capa", Capa, 0, 0, false),
        spec("cquit", Cquit, 0, 0, false),
        spec("cname", Cname, 1, 1, false),
        spec("chatm", Chatm, 3, 3, true),
        spec("chatr", Chatr, 2, 2, false),
        spec("users", Users, 0, 0, false),
        spec("notif", Notif, 1, 1, false),
        // A client's answer to a server ping: `+OK pong <token>`.
        spec("+ok", Pong, 2, 2, false),
    ]
};

/// A line split into its keyword's table row and its arguments.
#[derive(Clone, Copy, Debug)]
pub struct Classified<'a> {
    /// The command kind ([`CommandKind::Unknown`] for keywords not in the table).
    pub kind: CommandKind,
    /// The keyword as the client wrote it.
    pub keyword: &'a str,
    /// Everything after the keyword and its separating spaces.
    pub args: &'a str,
    spec: Option<&'static CommandSpec>,
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
    /// `+OK pong <token>`
    Pong(&'a str),
}

/// Why the arguments do not fit the command: always a `SYNTAX` refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyntaxError(pub &'static str);

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
        kind: spec.map_or(CommandKind::Unknown, |s| s.kind),
        keyword,
        args: args.trim_start_matches(' '),
        spec,
    }
}

/// The most arguments any command takes.
const MAX_ARGS: usize = 3;

/// Splits `args` into at most `max` tokens separated by runs of spaces; with `rest` the last
/// token is the remainder of the line, kept as it is. Returns the tokens and their count.
fn split_args(
    args: &str,
    max: usize,
    rest: bool,
) -> Result<([&str; MAX_ARGS], usize), SyntaxError> {
    let mut out = [""; MAX_ARGS];
    let mut n = 0;
    let mut remaining = args;
    while !remaining.is_empty() {
        if n == max {
            return Err(SyntaxError("too many arguments"));
        }
        if rest && n + 1 == max {
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
        return Err(SyntaxError("unknown command"));
    };
    let (a, n) = split_args(c.args, spec.max_args, spec.rest)?;
    if n < spec.min_args {
        return Err(SyntaxError(match spec.kind {
            CommandKind::Chatm if n == 2 => "empty message",
            _ => "missing argument",
        }));
    }
    Ok(match spec.kind {
        CommandKind::Uname => Command::Uname(a[0]),
        CommandKind::Ping if n == 0 => Command::Ping(None),
        CommandKind::Ping if is_token(a[0]) => Command::Ping(Some(a[0])),
        CommandKind::Ping => {
            return Err(SyntaxError(
                "a ping token is at most 32 printable ASCII characters",
            ));
        }
        CommandKind::Capa => Command::Capa,
        CommandKind::Cquit => Command::Cquit,
        CommandKind::Cname => Command::Cname(a[0]),
        CommandKind::Chatm => Command::Chatm {
            sender: a[0],
            recipient: a[1],
            text: a[2],
        },
        CommandKind::Chatr => Command::Chatr {
            sender: a[0],
            recipient: a[1],
        },
        CommandKind::Users => Command::Users,
        CommandKind::Notif => match a[0] {
            s if s.eq_ignore_ascii_case("on") => Command::Notif(true),
            s if s.eq_ignore_ascii_case("off") => Command::Notif(false),
            _ => return Err(SyntaxError("notif takes on or off")),
        },
        CommandKind::Pong if a[0].eq_ignore_ascii_case("pong") => Command::Pong(a[1]),
        CommandKind::Pong => return Err(SyntaxError("expected +OK pong <token>")),
        CommandKind::Unknown => return Err(SyntaxError("unknown command")),
    })
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
        assert_eq!(p("+ok PONG t1"), Ok(Command::Pong("t1")));
    }

    #[test]
    fn keywords_longer_than_five_are_unknown() {
        assert_eq!(classify("unamex alice").kind, CommandKind::Unknown);
        assert_eq!(classify("hello").kind, CommandKind::Unknown);
        assert_eq!(p("hello"), Err(SyntaxError("unknown command")));
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
        assert_eq!(p("chatm alice bob"), Err(SyntaxError("empty message")));
        assert_eq!(p("chatm alice bob    "), Err(SyntaxError("empty message")));
        assert_eq!(p("chatm alice"), Err(SyntaxError("missing argument")));
    }

    #[test]
    fn arity_is_checked() {
        assert_eq!(p("uname"), Err(SyntaxError("missing argument")));
        assert_eq!(p("uname a b"), Err(SyntaxError("too many arguments")));
        assert_eq!(p("capa x"), Err(SyntaxError("too many arguments")));
        assert_eq!(p("cquit now"), Err(SyntaxError("too many arguments")));
        assert_eq!(p("chatr a"), Err(SyntaxError("missing argument")));
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

    #[test]
    fn pong_needs_the_word_pong_and_a_token() {
        assert!(p("+OK").is_err());
        assert!(p("+OK pong").is_err());
        assert!(p("+OK ping t").is_err());
    }
}
