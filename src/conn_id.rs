//! A connection's number and its name in the log: the acceptor assigns the number, and it
//! keys the connection in the admission table ([`crate::net::admission`]) and in the hub
//! ([`crate::hub`]); the [`Tag`] names the connection in every log line about it.
//!
//! They live at the crate's root, outside both layers, so that neither imports the other
//! for them: the network layer reaches the hub only to send it messages, and the hub knows
//! nothing of the network layer.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// A connection's number, unique for the life of the server.
pub type ConnId = u64;

/// A connection's log tag, `conn=<id> peer=<addr>`: made once when the connection is
/// accepted and shared by everything that logs about it (its session, its outbox and the
/// hub), so that an idle connection keeps one copy of it, not one per holder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tag(Arc<str>);

impl Tag {
    /// The tag of connection `id` from `peer`.
    pub fn new(id: ConnId, peer: SocketAddr) -> Tag {
        Tag::from(format!("conn={id} peer={peer}").as_str())
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Tag {
    fn from(text: &str) -> Tag {
        Tag(Arc::from(text))
    }
}

impl fmt::Display for Tag {
    /// Exactly as the text would print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_names_the_connection_and_its_peer() {
        let tag = Tag::new(7, "127.0.0.2:4242".parse().expect("an address"));
        assert_eq!(tag.to_string(), "conn=7 peer=127.0.0.2:4242");
        assert_eq!(format!("{tag:>28}|"), "  conn=7 peer=127.0.0.2:4242|");
        // Clones share the text.
        assert!(std::ptr::eq(tag.clone().as_str(), tag.as_str()));
    }
}
