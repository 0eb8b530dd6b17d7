//! xscp: the reference server (and client) for XSCP/1, the line-based chat protocol of
//! `PROTOCOL.md`.
//!
//! Layers, from the wire inwards:
//! - [`net`]: the acceptor, and per connection a reader and a writer thread; moves bytes.
//! - [`hub`]: the hub thread; owns the nickname map, holds and pending receipts; routes.
//! - [`protocol`]: framing, commands, the state machine and legality table; no I/O.
//! - [`config`]: the command line.

pub mod config;
pub mod conn_id;
pub mod hub;
pub mod net;
pub mod protocol;
pub mod server;
