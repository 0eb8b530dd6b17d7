//! A connection's number: the acceptor assigns it, and it keys the connection in the
//! admission table ([`crate::net::admission`]) and in the hub ([`crate::hub`]).
//!
//! It lives at the crate's root, outside both layers, so that neither imports the other
//! for it: the network layer reaches the hub only to send it messages, and the hub knows
//! nothing of the network layer.

/// A connection's number, unique for the life of the server.
pub type ConnId = u64;
