//! xscp: the reference server (and client) for XSCP/1, the line-based chat protocol of
//! xscp(7), `man/xscp.7`.
//!
//! Layers, from the wire inwards; each imports only the layers after it:
//! - [`net`]: the acceptor, and per connection a reader (`net/reader.rs`) and a writer
//!   thread (`net/outbox/`); moves bytes.
//! - [`hub`]: the hub thread; owns the nickname map, holds and pending receipts; routes. It
//!   reaches a client through the [`hub::Output`] trait, which [`net`]'s outbox implements,
//!   and knows no socket. Its rules are files of their own (`hub/names.rs`,
//!   `hub/relay.rs`), and so are its tests (`hub/tests/`).
//! - [`state`]: the state file of `--state` (holds and mailboxes across restarts): its
//!   format, the restore at start, and the saver thread; knows the protocol, not the hub.
//! - [`protocol`]: framing, commands, the state machine and legality tables, every reply
//!   text (`protocol/reply.rs`), what a session asks of the hub (`protocol/request.rs`),
//!   and the session with its timers; no I/O.
//! - [`conn_id`]: the connection number that `net` assigns and `hub` keys clients by, and
//!   the connection's log tag they share.
//! - [`config`]: the command line, and the settings derived from it.
//!
//! [`server`] wires them together. Leaves any layer (and the binaries) may use, which
//! import nothing of the crate:
//! - [`sys`]: every C library call of the project, declared once per OS.
//! - [`text`]: the one escaping of peer bytes, for the log and for a terminal.
//! - [`clock`]: the wall clock in UTC, broken down once.
//! - [`console`]: printing for the programs; a closed output is no panic.

pub mod clock;
pub mod config;
pub mod conn_id;
pub mod console;
pub mod hub;
pub mod net;
pub mod protocol;
pub mod server;
pub mod state;
pub mod sys;
pub mod text;
