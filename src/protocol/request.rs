//! What a session asks of the hub, and what the hub answers.
//!
//! A command that needs the state all clients share (the nickname map, the holds, the
//! receipts owed) is a [`Request`]: the session makes it ([`super::session::Step::Hub`]),
//! the reader hands it to the hub as it is, paced as [`Request::hand`] says, and the hub
//! dispatches on it. The reader never looks inside. Adding such a command is a row in
//! [`super::command::COMMANDS`], its [`super::command::Command`] variant, the session's
//! rule that turns it into a `Request` variant here, and the hub's handler for that variant.

use std::ops::Range;

use super::nick::Nick;

/// A command the hub carries out for a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `uname`: register the nickname; answered [`Answer::Registered`] (the hub has sent
    /// the `+OK`) or [`Answer::InUse`] (a failed attempt: the hub has sent the `-ERR`).
    Register {
        /// The nickname asked for.
        nick: Nick,
        /// Which failed attempt a refusal would be.
        attempt: Attempt,
    },
    /// `cname`: rename the client; the hub replies to the client itself and answers
    /// [`Answer::Renamed`] or [`Answer::NotRenamed`].
    Rename(Nick),
    /// `chatr`: relay a receipt to the author of the message acknowledged.
    Receipt {
        /// The relayed line, CRLF-terminated.
        line: String,
        /// Where the sender field (whose message is acknowledged) is in `line`.
        sender: Range<usize>,
    },
    /// `users`: the list of established clients.
    Users,
    /// `notif on|off`: switch notifications.
    Notif(bool),
}

/// Which failed attempt in NEGOTIATING a refusal would be (§6, `--max-retries`): the
/// session counts them, and the hub words the refusal of a `uname` with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// This attempt's number, from 1.
    pub n: u32,
    /// The attempts allowed.
    pub max: u32,
}

impl Attempt {
    /// A refusal now would close the connection.
    pub fn is_last(self) -> bool {
        self.n >= self.max
    }
}

/// How the reader hands a request to the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hand {
    /// The hub replies to the client; the reader reads on.
    Async,
    /// As `Async`, but the reply may be large: the next command waits until the hub has
    /// answered every earlier one.
    Drain,
    /// The session's state depends on the answer, and the hub has replied to the client
    /// whatever it is: the reader reads on, and gives the answer to
    /// [`super::session::Session::on_answer`] before anything else (a line, a timer, the
    /// end). A client that waits for the reply does not keep its reader waiting too.
    Later,
    /// The answer may end the connection (a refusal of the last attempt): the reader waits
    /// for it and gives it to [`super::session::Session::on_answer`] at once, so that it
    /// closes as soon as the hub's last lines are queued.
    Wait,
}

impl Request {
    /// How the reader hands this request to the hub.
    pub fn hand(&self) -> Hand {
        match self {
            Request::Register { attempt, .. } if attempt.is_last() => Hand::Wait,
            Request::Register { .. } | Request::Rename(_) => Hand::Later,
            Request::Users => Hand::Drain,
            Request::Receipt { .. } | Request::Notif(_) => Hand::Async,
        }
    }
}

/// The hub's answer to a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Registered; the hub has sent the `+OK`.
    Registered {
        /// The nickname, as spelled.
        nick: Nick,
        /// It was held for this address.
        welcome_back: bool,
    },
    /// The nickname is taken or held for another address: a failed attempt, which the
    /// hub has logged and replied to (the counted `-ERR [IN-USE]`, and the `cquit` after
    /// the last).
    InUse,
    /// Renamed; the hub has sent the `+OK`.
    Renamed(Nick),
    /// Not renamed; the hub has sent the `-ERR`.
    NotRenamed,
    /// Carried out; the hub has replied to the client, and the session has nothing to learn.
    Done,
    /// The connection is no longer known to the hub (it was dropped or the server is
    /// shutting down); the reason is recorded in its shared state.
    Gone,
}
