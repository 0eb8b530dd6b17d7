//! A connection's number and its name in the log: the acceptor assigns the number, and it
//! keys the connection in the admission table ([`crate::net::admission`]) and in the hub
//! ([`crate::hub`]); the [`Tag`] names the connection in every log line about it.
//!
//! They live at the crate's root, outside both layers, so that neither imports the other
//! for them: the network layer reaches the hub only to send it messages, and the hub knows
//! nothing of the network layer.

use std::fmt::{self, Write};
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
        // Formatted on the stack: the reader that makes it keeps no freed buffer in its
        // allocator cache for the life of an idle connection.
        let tag = |out: &mut dyn Write| write!(out, "conn={id} peer={peer}");
        let mut text = StackText::default();
        if tag(&mut text).is_ok() {
            return Tag::from(text.as_str());
        }
        // Past the buffer (no address is that long: see the test), on the heap.
        let mut text = String::new();
        let _ = tag(&mut text);
        Tag::from(text.as_str())
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Room for any tag: `conn=` and 20 digits, ` peer=` and the longest IPv6 socket address
/// (`[` 39 characters `%` 10 digits `]:65535`).
const TAG_MAX: usize = 96;

/// Text formatted into a buffer on the stack; writing past [`TAG_MAX`] fails.
struct StackText {
    bytes: [u8; TAG_MAX],
    len: usize,
}

impl Default for StackText {
    fn default() -> StackText {
        StackText {
            bytes: [0; TAG_MAX],
            len: 0,
        }
    }
}

impl StackText {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever written, so the bytes are UTF-8.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let room = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
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
        // The widest tag fits the buffer on the stack (`Tag::new` falls back to the heap
        // otherwise), and a buffer that is full refuses more.
        let widest: SocketAddr = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535"
            .parse()
            .expect("an address");
        let mut text = StackText::default();
        assert!(write!(text, "conn={} peer={widest}", u64::MAX).is_ok());
        assert_eq!(Tag::new(u64::MAX, widest).as_str(), text.as_str());
        assert!(write!(text, "{}", "x".repeat(TAG_MAX - text.len + 1)).is_err());
    }
}
