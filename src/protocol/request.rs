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
    /// `uname`: register the nickname; answered [`Answer::Registered`] or
    /// [`Answer::InUse`] (the session then counts a failed attempt).
    Register(Nick),
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

/// How the reader hands a request to the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hand {
    /// The hub replies to the client; the reader reads on.
    Async,
    /// As `Async`, but the reply may be large: the next command waits until the hub has
    /// answered every earlier one.
    Drain,
    /// The session's state depends on the answer: the reader waits for it and gives it to
    /// [`super::session::Session::on_answer`].
    Wait,
}

impl Request {
    /// How the reader hands this request to the hub.
    pub fn hand(&self) -> Hand {
        match self {
            Request::Register(_) | Request::Rename(_) => Hand::Wait,
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
    /// The nickname (given back, as spelled) is taken or held for another address;
    /// nothing was sent.
    InUse(Nick),
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
