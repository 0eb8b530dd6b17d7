//! The hub's helper (`xscp-fanout`): a thread that writes half of the queues of a burst
//! that gave output to many clients, while the hub writes the other half
//! ([`crate::hub::SHARE_WAKES`]). A broadcast to a hundred clients is a hundred `send`
//! calls; with the helper they run on both cores, and the clients read the first of them
//! sooner.
//!
//! The hub never waits for it: the helper takes one hand-over while it writes another, and
//! gives back any more, which the hub then writes itself. Writing a queue is the same
//! [`Output::wake_now`] whoever calls it (under the queue's lock and its drain state, so a
//! line is never sent twice or out of order, and a queue that the hub wakes again
//! meanwhile, when a line fills it, is written by whichever comes first). A panic while
//! writing one queue is contained and logged, as in the pooled threads.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread;

use crossbeam_channel::bounded;

use super::Outbox;
use crate::hub::{Helper, Output};
use crate::net::WRITER_STACK;

/// Room for one hand-over besides the one the helper is writing.
const WAITING: usize = 1;

/// Starts the helper; it ends when the hub drops its [`Helper`].
pub fn start() -> io::Result<Helper<Outbox>> {
    let (tx, rx) = bounded::<Vec<Outbox>>(WAITING);
    thread::Builder::new()
        .name("xscp-fanout".into())
        .stack_size(WRITER_STACK)
        .spawn(move || {
            for outboxes in rx {
                for outbox in outboxes {
                    // A panic is a bug: it must not stop the writing of the other queues.
                    if catch_unwind(AssertUnwindSafe(|| outbox.wake_now())).is_err() {
                        log::error!("BUG: the fanout helper panicked writing a queue");
                    }
                }
            }
            log::debug!("fanout: the hub is gone, stopping");
        })?;
    Ok(Box::new(move |outboxes| {
        tx.try_send(outboxes).map_err(|e| e.into_inner())
    }))
}
