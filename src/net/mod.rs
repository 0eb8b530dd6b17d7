//! The network layer: it moves bytes and nothing else.
//!
//! - [`acceptor`]: the `xscp-accept` thread; admits or refuses each connection (§7 limits)
//!   and starts its reader.
//! - [`reader`]: the `xscp-conn-<id>` reader thread; blocking reads, each until the session
//!   next needs the time (its timers are the session's); feeds lines to the session and
//!   the hub ([`reader::ToHub`]).
//! - [`outbox`] (a folder): `outbox/mod.rs`, the byte-bounded queue between the hub (or
//!   reader) and the connection's writer, which is a client's output side as the hub sees
//!   it ([`crate::hub::Output`]); `outbox/writer.rs`, the writer itself
//!   (`xscp-write-<id>`), which drains the queue into as few writes as possible, then
//!   closes in order; `outbox/queue.rs`, the state the two share; `outbox/helper.rs`, the
//!   `xscp-fanout` thread that writes half of a broadcast's queues for the hub.
//! - [`shared`]: what a connection's reader, writer and outbox and the admission table
//!   share: the socket and why the connection ends.
//! - [`pool`]: reusable, renamed threads for readers and writers, within a thread budget.
//! - [`cgroup`]: the task limit of the process's cgroups (`pids.max`), which the budget
//!   counts.
//! - [`admission`]: the connection counts behind `--max-clients` and `--max-per-ip`.
//!
//! Imports run one way: `acceptor` -> `reader` -> `admission`, `outbox` -> `pool` ->
//! `cgroup`, `shared`; this file holds the constants they share and imports none of them.
//! The C library calls come from [`crate::sys`]. Protocol rules live in
//! [`crate::protocol`]; routing lives in [`crate::hub`], which this layer feeds and which
//! sees no socket.

pub mod acceptor;
pub mod admission;
pub mod cgroup;
pub mod outbox;
pub mod pool;
pub mod reader;
pub mod shared;

use std::time::Duration;

/// How long a closing connection keeps reading (and discarding) after its FIN, so that
/// unread input does not turn the close into a reset that destroys the last line (§7).
pub const LINGER: Duration = Duration::from_secs(2);

/// Stack size of a reader thread: its small read buffer, the session, and log formatting.
pub const READER_STACK: usize = 128 * 1024;

/// Stack size of a writer thread.
pub const WRITER_STACK: usize = 64 * 1024;
