//! A client's output side as the hub sees it: the one interface between routing and the
//! connection that carries its lines. The network layer implements it
//! (`crate::net::outbox::Outbox`); the hub's tests implement it in memory. The hub is
//! generic over it, so calls on the relay path are static and can be inlined.

use crate::protocol::cause::Cause;

/// What a caller of [`Output::queue`] must do about the client's writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Nothing: it is awake, or a wake is already due.
    No,
    /// Call [`Output::wake_now`] at the end of the burst.
    Later,
    /// Call [`Output::wake_now`] now: enough is queued.
    Now,
}

/// The output queue would pass its hard bound (`HARD_SENDQ` times `--sendq`): the client
/// is a slow consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow;

/// Where the hub puts a client's lines, and how it ends the client's connection. None of
/// these may block: the hub never waits for a client. A clone is the same client's output
/// side (the hub hands clones to its [`Helper`](super::Helper)).
pub trait Output: Clone {
    /// Queues `line`, which may leave the writer asleep: says whether and when the caller
    /// must call [`Output::wake_now`]. Refused once more than the hard bound (four times
    /// `--sendq`) would be waiting; past `--sendq` the writer is woken at once, to find
    /// out whether the client still reads. Output to a connection that is closing is
    /// dropped silently.
    fn queue(&self, line: &[u8]) -> Result<Wake, Overflow>;

    /// Queues `line`, relayed from the client whose output side is `from`, like
    /// [`Output::queue`]. If it leaves this queue over `--sendq`, and no other recipient
    /// already holds `from` back, `from`'s next command waits until this queue is under
    /// `--sendq` again (or closes, or the write timeout passes): the sender is slowed by
    /// TCP rather than a reading recipient dropped because the hub outran its writer
    /// (§7). One recipient at a time holds a sender back: a broadcast waits for the first
    /// it left over `--sendq`.
    fn relay(&self, line: &[u8], from: &Self) -> Result<Wake, Overflow>;

    /// Queues a response to the client's own command like [`Output::queue`], but never
    /// refuses it: a response never makes its asker a slow consumer by itself (§7).
    fn respond(&self, line: &[u8]) -> Wake;

    /// The hub has handled `commands` more of the client's commands that it answers itself.
    fn handled(&self, commands: u64);

    /// Gets written what [`Output::queue`] left: offered to the client's socket at once
    /// without blocking, on the calling thread, if no writer drains the queue; else its
    /// writer is woken.
    fn wake_now(&self);

    /// Queues the last lines and the close (FIN after them); not subject to the budget.
    fn finish(&self, lines: &str);

    /// Ends the connection at once for `cause` (a slow consumer): whatever waits is dropped.
    fn abort(&self, cause: Cause);

    /// Records `cause` as the reason the connection ends, for its reader to log.
    fn set_end(&self, cause: Cause);
}
