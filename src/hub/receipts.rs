//! The receipts a client owes (PROTOCOL.md §5 chatr), and the copies of the messages that
//! await them (§5.8). Each direct `chatm` relayed to a client awaits one `chatr`, which
//! goes back to the sender. A receipt names only the sender, as the relayed `chatm` did, so
//! it matches the oldest message from that name; the same message's copy goes with it.
//!
//! Copies live in one byte buffer per client (allocated with the first copy), each a span
//! of it, oldest first; they are bounded by `--mailbox` bytes, past which the oldest is
//! forgotten and counted as lost. A settled copy in the middle leaves its bytes behind
//! until the buffer is compacted, which happens once the dead bytes outweigh the live
//! ones: amortised, a copy costs its bytes once and no allocation of its own.
//!
//! A save (`--state`, xscp(7) §5.9) shares a client's receipts and copies with the saver
//! rather than copying them ([`Receipts::shared`]): the hub hands them over in constant
//! time, and a client whose receipts change while the save runs copies its own then.

use std::collections::VecDeque;
use std::sync::Arc;

use super::mailbox::Mailbox;
use crate::conn_id::ConnId;
use crate::protocol::nick::NickKey;
use crate::state::Copies;

/// The most runs of receipts one client can owe (a run: consecutive messages from one
/// sender's session); past it the oldest run is forgotten.
pub const MAX_PENDING_RECEIPTS: usize = 1024;

/// Dead bytes the copy buffer may hold beyond as many as it holds live ones.
const SLACK: usize = 4096;

/// A run of receipts a client owes: `count` messages in a row from one sender. Receipts
/// name only the sender, so a run is as good as `count` separate entries, and a recipient
/// far behind one busy sender costs one entry, not thousands.
#[derive(Clone, Debug)]
struct Run {
    /// The sender as the relayed `chatm` named it.
    from: NickKey,
    /// The sender's session (the connection that began it), where the receipt goes.
    session: ConnId,
    /// The sequence number of the oldest message of the run awaiting its receipt; the
    /// others follow it without a gap.
    first: u64,
    /// How many messages of the run await their receipt.
    count: u32,
}

/// The copy of one message, in the buffer.
#[derive(Clone, Copy, Debug)]
struct Span {
    seq: u64,
    start: usize,
    len: usize,
}

/// The receipts one client owes, oldest first, bounded by [`MAX_PENDING_RECEIPTS`] runs,
/// with the copies of their messages. A client that was never sent a message owes none:
/// for it this is one null pointer, and the state ([`Owed`]) is allocated with the first
/// message, so that the hub's entry for an idle client stays small.
#[derive(Debug, Default)]
pub struct Receipts(Option<Arc<Owed>>);

impl Receipts {
    /// Records that `line`, a message from `from` sent in `session`, awaits its receipt,
    /// and keeps its copy within `max` bytes. False if the oldest run had to be forgotten
    /// to make room.
    pub fn expect(&mut self, from: NickKey, session: ConnId, line: &[u8], max: usize) -> bool {
        Arc::make_mut(self.0.get_or_insert_with(Arc::default)).expect(from, session, line, max)
    }

    /// Forgets the oldest copy (its receipt stays owed) and counts it lost. False if there
    /// was none.
    pub fn forget_oldest(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|owed| Arc::make_mut(owed).forget_oldest())
    }

    /// Settles the oldest message from `from` awaiting a receipt (and drops its copy): the
    /// sender's session, where the receipt goes. `None` if no message from `from` awaits
    /// one.
    pub fn take(&mut self, from: NickKey) -> Option<ConnId> {
        Arc::make_mut(self.0.as_mut()?).take(from)
    }

    /// Bytes of the copies kept.
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |owed| owed.bytes)
    }

    /// The copies kept and the count of those forgotten, as a mailbox (§5.8 departure):
    /// in relay order, each `chatm` with the sender its receipt goes to.
    pub fn into_mailbox(self) -> Mailbox {
        match self.0 {
            Some(owed) => Arc::unwrap_or_clone(owed).into_mailbox(),
            None => Mailbox::with_lost(0),
        }
    }

    /// `--state`: the copies as they are now, shared with a save (no bytes are copied
    /// here; the saver gathers them).
    pub fn shared(&self) -> SharedCopies {
        SharedCopies(self.0.clone())
    }

    /// How many copies are kept, and how many were forgotten.
    #[cfg(test)]
    pub fn counts(&self) -> (usize, u64) {
        self.0
            .as_ref()
            .map_or((0, 0), |owed| (owed.spans.len(), owed.lost))
    }
}

/// A client's copies at the moment of a save (see [`Receipts::shared`]).
#[derive(Debug)]
pub struct SharedCopies(Option<Arc<Owed>>);

impl Copies for SharedCopies {
    /// The mailbox the client would leave if it departed at the save: the copies kept, in
    /// relay order, and the count of those forgotten.
    fn gather(&self) -> (Vec<u8>, u64) {
        let Some(owed) = &self.0 else {
            return (Vec::new(), 0);
        };
        let mut wire = Vec::with_capacity(owed.bytes);
        for s in &owed.spans {
            wire.extend_from_slice(&owed.buf[s.start..s.start + s.len]);
        }
        (wire, owed.lost)
    }
}

/// What [`Receipts`] holds once the client was sent a message.
#[derive(Clone, Debug, Default)]
struct Owed {
    runs: VecDeque<Run>,
    /// The sequence number of the next message.
    next: u64,
    /// The copies' bytes (live and dead), in relay order.
    buf: Vec<u8>,
    /// The live copies, by sequence number.
    spans: VecDeque<Span>,
    /// Bytes of live copies.
    bytes: usize,
    /// Copies forgotten past the bound.
    lost: u64,
}

impl Owed {
    fn expect(&mut self, from: NickKey, session: ConnId, line: &[u8], max: usize) -> bool {
        let seq = self.next;
        self.next += 1;
        let mut room = true;
        match self.runs.back_mut() {
            Some(run)
                if run.from == from
                    && run.session == session
                    && run.first + u64::from(run.count) == seq
                    && run.count < u32::MAX =>
            {
                run.count += 1;
            }
            _ => {
                if self.runs.len() >= MAX_PENDING_RECEIPTS {
                    room = false;
                    if let Some(old) = self.runs.pop_front() {
                        let end = old.first + u64::from(old.count);
                        while self.spans.front().is_some_and(|s| s.seq < end) {
                            self.forget_oldest();
                        }
                    }
                }
                self.runs.push_back(Run {
                    from,
                    session,
                    first: seq,
                    count: 1,
                });
            }
        }
        self.copy(seq, line, max);
        room
    }

    /// Keeps a copy of message `seq`, forgetting the oldest past `max` bytes.
    fn copy(&mut self, seq: u64, line: &[u8], max: usize) {
        if line.len() > max {
            self.lost += 1;
            return;
        }
        while self.bytes + line.len() > max {
            self.forget_oldest();
        }
        if self.buf.len() - self.bytes > self.bytes.max(SLACK) {
            self.compact();
        }
        self.spans.push_back(Span {
            seq,
            start: self.buf.len(),
            len: line.len(),
        });
        self.buf.extend_from_slice(line);
        self.bytes += line.len();
    }

    /// Moves the live copies to the front of the buffer.
    fn compact(&mut self) {
        let mut end = 0;
        for s in &mut self.spans {
            self.buf.copy_within(s.start..s.start + s.len, end);
            s.start = end;
            end += s.len;
        }
        self.buf.truncate(end);
    }

    fn forget_oldest(&mut self) -> bool {
        let Some(s) = self.spans.pop_front() else {
            return false;
        };
        self.bytes -= s.len;
        self.lost += 1;
        self.release_if_empty();
        true
    }

    /// With no copy left, the buffer is emptied (and freed if it grew large).
    fn release_if_empty(&mut self) {
        if self.spans.is_empty() {
            self.buf.clear();
            if self.buf.capacity() > SLACK {
                self.buf = Vec::new();
            }
        }
    }

    fn take(&mut self, from: NickKey) -> Option<ConnId> {
        let i = self.runs.iter().position(|r| r.from == from)?;
        let run = &mut self.runs[i];
        let (seq, session) = (run.first, run.session);
        run.first += 1;
        run.count -= 1;
        if run.count == 0 {
            self.runs.remove(i);
        }
        self.uncopy(seq);
        Some(session)
    }

    /// Drops the copy of message `seq`, if it is still kept.
    fn uncopy(&mut self, seq: u64) {
        let front = match self.spans.front() {
            Some(s) if s.seq <= seq => s.seq,
            _ => return, // Forgotten already.
        };
        let s = if front == seq {
            self.spans.pop_front()
        } else {
            match self.spans.binary_search_by_key(&seq, |s| s.seq) {
                Ok(i) => self.spans.remove(i),
                Err(_) => None,
            }
        };
        if let Some(s) = s {
            self.bytes -= s.len;
            self.release_if_empty();
        }
    }

    fn into_mailbox(self) -> Mailbox {
        let mut mailbox = Mailbox::with_lost(self.lost);
        let mut runs = self.runs.iter().peekable();
        for s in &self.spans {
            // Runs and copies are both in relay order, and every copy is in a run.
            while runs
                .peek()
                .is_some_and(|r| r.first + u64::from(r.count) <= s.seq)
            {
                runs.next();
            }
            let from = runs.peek().map(|r| (r.from, r.session));
            mailbox.keep(&self.buf[s.start..s.start + s.len], from);
        }
        mailbox
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> NickKey {
        NickKey::of(name).expect("test nickname")
    }

    const BIG: usize = 1 << 20;

    /// The state of receipts owed (there is some once a message was expected).
    fn owed(r: &Receipts) -> &Owed {
        r.0.as_deref().expect("receipts owed")
    }

    /// `expect` with a copy of a line naming `from`, unbounded copies.
    fn expect(r: &mut Receipts, from: &str, session: ConnId) -> bool {
        let line = format!("chatm {from} bob m\r\n");
        r.expect(key(from), session, line.as_bytes(), BIG)
    }

    /// The copies in relay order, as text, with their senders' sessions.
    fn copies(r: Receipts) -> Vec<(String, Option<ConnId>)> {
        r.into_mailbox()
            .entries()
            .map(|(line, from)| {
                let text = String::from_utf8_lossy(line).trim_end().to_string();
                (text, from.map(|(_, s)| s))
            })
            .collect()
    }

    /// `--state`: a save sees the copies as they were when it was taken.
    #[test]
    fn a_save_keeps_the_copies_of_its_moment() {
        let mut r = Receipts::default();
        expect(&mut r, "alice", 1);
        let saved = r.shared();
        expect(&mut r, "alice", 1);
        assert_eq!(r.take(key("alice")), Some(1));
        assert_eq!(saved.gather(), (b"chatm alice bob m\r\n".to_vec(), 0));
        assert_eq!(r.counts(), (1, 0));
        assert_eq!(Receipts::default().shared().gather(), (Vec::new(), 0));
    }

    #[test]
    fn each_message_awaits_one_receipt_back_to_its_connection() {
        let mut r = Receipts::default();
        assert!(expect(&mut r, "alice", 1));
        assert!(expect(&mut r, "alice", 1));
        assert_eq!(r.take(key("ALICE")), Some(1));
        assert_eq!(r.take(key("alice")), Some(1));
        assert_eq!(r.take(key("alice")), None);
    }

    #[test]
    fn a_receipt_settles_the_oldest_message_from_that_name() {
        let mut r = Receipts::default();
        // alice on conn 1 left, a new alice on conn 7 wrote too; bob in between.
        expect(&mut r, "alice", 1);
        expect(&mut r, "bob", 2);
        expect(&mut r, "alice", 7);
        assert_eq!(r.take(key("bob")), Some(2));
        assert_eq!(r.take(key("alice")), Some(1));
        assert_eq!(r.take(key("alice")), Some(7));
        assert_eq!(r.take(key("bob")), None);
    }

    #[test]
    fn a_run_from_one_sender_costs_one_entry() {
        let mut r = Receipts::default();
        for _ in 0..10 * MAX_PENDING_RECEIPTS {
            assert!(expect(&mut r, "alice", 1));
        }
        assert_eq!(owed(&r).runs.len(), 1);
        for _ in 0..10 * MAX_PENDING_RECEIPTS {
            assert_eq!(r.take(key("alice")), Some(1));
        }
        assert_eq!(r.take(key("alice")), None);
        assert!(owed(&r).runs.is_empty());
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn past_the_bound_the_oldest_run_is_forgotten_with_its_copies() {
        let mut r = Receipts::default();
        let senders = ["alice", "bob"];
        for i in 0..MAX_PENDING_RECEIPTS {
            assert!(expect(&mut r, senders[i % 2], i as ConnId));
        }
        // One run more: the oldest (alice on conn 0) goes, and its copy is lost.
        assert!(!expect(&mut r, "alice", 9999));
        assert_eq!(owed(&r).runs.len(), MAX_PENDING_RECEIPTS);
        assert_eq!(r.counts(), (MAX_PENDING_RECEIPTS, 1));
        assert_eq!(r.take(key("alice")), Some(2));
        assert_eq!(r.take(key("bob")), Some(1));
    }

    #[test]
    fn copies_follow_their_receipts_and_keep_relay_order() {
        let mut r = Receipts::default();
        for (from, text) in [
            ("alice", "a1"),
            ("bob", "b1"),
            ("alice", "a2"),
            ("carol", "c1"),
        ] {
            let line = format!("chatm {from} dave {text}\r\n");
            r.expect(key(from), from.len() as ConnId, line.as_bytes(), BIG);
        }
        // bob's receipt drops bob's copy (in the middle); alice's the oldest of hers.
        assert_eq!(r.take(key("bob")), Some(3));
        assert_eq!(r.take(key("alice")), Some(5));
        assert_eq!(
            copies(r),
            [
                ("chatm alice dave a2".to_string(), Some(5)),
                ("chatm carol dave c1".to_string(), Some(5)),
            ]
        );
    }

    #[test]
    fn copies_past_the_bound_are_forgotten_oldest_first_and_counted() {
        let mut r = Receipts::default();
        // 19 bytes a line: three fit in 60, the fourth pushes out the first.
        for i in 0..4 {
            let line = format!("chatm alice bob {i}\r\n");
            r.expect(key("alice"), 1, line.as_bytes(), 60);
        }
        assert_eq!(r.counts(), (3, 1));
        assert_eq!(r.bytes(), 57);
        // Forgetting changes no receipt: four are owed; the first settles no copy.
        for _ in 0..4 {
            assert_eq!(r.take(key("alice")), Some(1));
        }
        assert_eq!(r.take(key("alice")), None);
        assert_eq!(r.counts(), (0, 1));
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn a_line_larger_than_the_bound_is_lost_at_once() {
        let mut r = Receipts::default();
        r.expect(key("alice"), 1, b"chatm alice bob long\r\n", 10);
        assert_eq!(r.counts(), (0, 1));
        assert_eq!(r.take(key("alice")), Some(1));
    }

    #[test]
    fn dead_bytes_are_compacted_away() {
        // alice's message is never settled; bob's always are: the buffer stays bounded.
        let mut r = Receipts::default();
        r.expect(key("alice"), 1, b"chatm alice carol keep\r\n", BIG);
        for i in 0..100_000 {
            let line = format!("chatm bob carol {i}\r\n");
            r.expect(key("bob"), 2, line.as_bytes(), BIG);
            assert_eq!(r.take(key("bob")), Some(2));
        }
        assert!(owed(&r).buf.len() <= 2 * SLACK, "{}", owed(&r).buf.len());
        assert_eq!(copies(r), [("chatm alice carol keep".to_string(), Some(1))]);
    }

    #[test]
    fn an_idle_client_holds_no_buffer() {
        let mut r = Receipts::default();
        // Never sent a message: nothing is allocated, and it is one pointer.
        assert!(r.0.is_none());
        assert_eq!(
            std::mem::size_of::<Receipts>(),
            std::mem::size_of::<usize>()
        );
        assert_eq!(
            (r.take(key("alice")), r.forget_oldest(), r.bytes()),
            (None, false, 0)
        );
        assert!(r.0.is_none());
        for _ in 0..1000 {
            expect(&mut r, "alice", 1);
        }
        for _ in 0..1000 {
            r.take(key("alice"));
        }
        assert_eq!(owed(&r).buf.capacity(), 0);
    }
}
