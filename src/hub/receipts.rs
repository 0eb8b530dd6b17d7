//! The receipts a client owes (PROTOCOL.md §5 chatr): each direct `chatm` relayed to it
//! awaits one `chatr`, which goes back to the sender's connection. A receipt names only the
//! sender, as the relayed `chatm` did, so it matches the oldest message from that name.

use std::collections::VecDeque;

use crate::conn_id::ConnId;
use crate::protocol::nick::NickKey;

/// The most runs of receipts one client can owe (a run: consecutive messages from one
/// sender's connection); past it the oldest run is forgotten.
pub const MAX_PENDING_RECEIPTS: usize = 1024;

/// A run of receipts a client owes: `count` messages in a row from one sender. Receipts
/// name only the sender, so a run is as good as `count` separate entries, and a recipient
/// far behind one busy sender costs one entry, not thousands.
#[derive(Debug)]
struct Run {
    /// The sender as the relayed `chatm` named it.
    from: NickKey,
    /// The sender's connection.
    conn: ConnId,
    /// How many messages of the run await their receipt.
    count: u32,
}

/// The receipts one client owes, oldest first, bounded by [`MAX_PENDING_RECEIPTS`] runs.
#[derive(Debug, Default)]
pub struct Receipts {
    runs: VecDeque<Run>,
}

impl Receipts {
    /// Records that a message from `from`, sent on `conn`, awaits its receipt. False if the
    /// oldest run had to be forgotten to make room.
    pub fn expect(&mut self, from: NickKey, conn: ConnId) -> bool {
        if let Some(run) = self.runs.back_mut() {
            if run.from == from && run.conn == conn {
                run.count = run.count.saturating_add(1);
                return true;
            }
        }
        let room = self.runs.len() < MAX_PENDING_RECEIPTS;
        if !room {
            self.runs.pop_front();
        }
        self.runs.push_back(Run {
            from,
            conn,
            count: 1,
        });
        room
    }

    /// Settles the oldest message from `from` awaiting a receipt: the connection it was
    /// sent on, where the receipt goes. `None` if no message from `from` awaits one.
    pub fn take(&mut self, from: NickKey) -> Option<ConnId> {
        let i = self.runs.iter().position(|r| r.from == from)?;
        let run = &mut self.runs[i];
        let conn = run.conn;
        run.count -= 1;
        if run.count == 0 {
            self.runs.remove(i);
        }
        Some(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> NickKey {
        NickKey::of(name).expect("test nickname")
    }

    #[test]
    fn each_message_awaits_one_receipt_back_to_its_connection() {
        let mut r = Receipts::default();
        assert!(r.expect(key("alice"), 1));
        assert!(r.expect(key("alice"), 1));
        assert_eq!(r.take(key("ALICE")), Some(1));
        assert_eq!(r.take(key("alice")), Some(1));
        assert_eq!(r.take(key("alice")), None);
    }

    #[test]
    fn a_receipt_settles_the_oldest_message_from_that_name() {
        let mut r = Receipts::default();
        // alice on conn 1 left, a new alice on conn 7 wrote too; bob in between.
        r.expect(key("alice"), 1);
        r.expect(key("bob"), 2);
        r.expect(key("alice"), 7);
        assert_eq!(r.take(key("bob")), Some(2));
        assert_eq!(r.take(key("alice")), Some(1));
        assert_eq!(r.take(key("alice")), Some(7));
        assert_eq!(r.take(key("bob")), None);
    }

    #[test]
    fn a_run_from_one_sender_costs_one_entry() {
        let mut r = Receipts::default();
        for _ in 0..10 * MAX_PENDING_RECEIPTS {
            assert!(r.expect(key("alice"), 1));
        }
        assert_eq!(r.runs.len(), 1);
        for _ in 0..10 * MAX_PENDING_RECEIPTS {
            assert_eq!(r.take(key("alice")), Some(1));
        }
        assert_eq!(r.take(key("alice")), None);
        assert!(r.runs.is_empty());
    }

    #[test]
    fn past_the_bound_the_oldest_run_is_forgotten() {
        let mut r = Receipts::default();
        let senders = [key("alice"), key("bob")];
        for i in 0..MAX_PENDING_RECEIPTS {
            assert!(r.expect(senders[i % 2], i as ConnId));
        }
        // One run more: the oldest (alice on conn 0) goes.
        assert!(!r.expect(senders[0], 9999));
        assert_eq!(r.runs.len(), MAX_PENDING_RECEIPTS);
        assert_eq!(r.take(key("alice")), Some(2));
        assert_eq!(r.take(key("bob")), Some(1));
    }
}
