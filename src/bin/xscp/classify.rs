//! What a line from the server means to the client (xscp(7) §2, §5): a ping to answer,
//! a direct message to acknowledge, the start of a multi-line response, a name given.
//! Only classifies; no I/O and no state.

/// The keyword of a line and the rest, split at the first run of spaces.
pub fn keyword(line: &str) -> (&str, &str) {
    let line = line.trim_start_matches(' ');
    let (k, rest) = line.split_once(' ').unwrap_or((line, ""));
    (k, rest.trim_start_matches(' '))
}

/// Does the `+OK` text open a multi-line response (`capa`, `users`; xscp(7) §2, §5)?
pub fn opens_block(text: &str) -> bool {
    text == "capability list follows"
        || text
            .strip_suffix(" users")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// What a server line means to the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen<'a> {
    /// `ping <token>`: answer `+OK pong <token>`.
    Ping(&'a str),
    /// A direct `chatm` from `sender`: acknowledge with `chatr`.
    DirectChat { sender: &'a str, recipient: &'a str },
    /// A broadcast `chatm` (recipient `*`): no receipt.
    Broadcast,
    /// `cquit <reason>`: the server is about to close.
    Quit(&'a str),
    /// `+OK you are <name>` / `+OK welcome back <name>`.
    Registered(&'a str),
    /// `+OK name changed from <old> to <new>`.
    Renamed(&'a str),
    /// `+OK ...` opening a multi-line response.
    BlockStart,
    /// Anything else: printed, nothing more.
    Other,
}

/// Classifies a server line (outside a multi-line response).
pub fn classify(line: &str) -> Seen<'_> {
    if let Some(text) = line.strip_prefix("+OK ") {
        if let Some(name) = text
            .strip_prefix("you are ")
            .or_else(|| text.strip_prefix("welcome back "))
        {
            // `welcome back <name> (<n> held, <m> lost)` (xscp(7) §5.8): the name is
            // the first word; the replayed `chatm` lines that follow are ordinary ones.
            let name = name.split(' ').next().unwrap_or("");
            return Seen::Registered(name);
        }
        if let Some((_, new)) = text
            .strip_prefix("name changed from ")
            .and_then(|t| t.split_once(" to "))
        {
            return Seen::Renamed(new.trim());
        }
        if opens_block(text) {
            return Seen::BlockStart;
        }
        return Seen::Other;
    }
    let (k, rest) = keyword(line);
    if k.eq_ignore_ascii_case("ping") {
        // Exactly one token: anything else is not a server ping (xscp(7) §5).
        let token = rest.trim_end_matches(' ');
        if !token.is_empty() && !token.contains(' ') {
            return Seen::Ping(token);
        }
    } else if k.eq_ignore_ascii_case("chatm") {
        let (sender, rest) = keyword(rest);
        let (recipient, text) = keyword(rest);
        if !sender.is_empty() && !recipient.is_empty() && !text.trim().is_empty() {
            return if recipient == "*" {
                Seen::Broadcast
            } else {
                Seen::DirectChat { sender, recipient }
            };
        }
    } else if k.eq_ignore_ascii_case("cquit") {
        return Seen::Quit(rest);
    }
    Seen::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lines() {
        assert_eq!(classify("ping 7.1"), Seen::Ping("7.1"));
        assert_eq!(
            classify("chatm bob alice hi  there"),
            Seen::DirectChat {
                sender: "bob",
                recipient: "alice"
            }
        );
        assert_eq!(classify("chatm bob * hi"), Seen::Broadcast);
        assert_eq!(classify("cquit ping timeout"), Seen::Quit("ping timeout"));
        assert_eq!(classify("+OK you are alice"), Seen::Registered("alice"));
        assert_eq!(
            classify("+OK welcome back alice"),
            Seen::Registered("alice")
        );
        assert_eq!(
            classify("+OK welcome back alice (2 held, 1 lost)"),
            Seen::Registered("alice")
        );
        assert_eq!(
            classify("+OK name changed from alice to Alicia"),
            Seen::Renamed("Alicia")
        );
        assert_eq!(classify("+OK 2 users"), Seen::BlockStart);
        assert_eq!(classify("+OK capability list follows"), Seen::BlockStart);
        // Not server pings: a capa item, a pong, a bare word.
        assert_eq!(classify("PING 60 20"), Seen::Other);
        assert_eq!(classify("+OK pong 7.1"), Seen::Other);
        assert_eq!(classify("ping"), Seen::Other);
    }
}
