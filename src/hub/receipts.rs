//! The receipts a client owes (xscp(7) §5.6 chatr), and the copies of the messages that
//! await them (§5.8). Each direct `chatm` relayed to a client awaits one `chatr`, which
//! goes back to the sender. A receipt names only the sender, as the relayed `chatm` did, so
//! it matches the oldest message from that name; the same message's copy goes with it.
//!
//! What is owed is a count per sender name (with the sessions the messages came from, one
//! run per session in a row): every receipt for a message relayed and not yet receipted is
//! legal, however the senders interleave (§5.8), and a client costs one entry per name
//! that awaits its receipts, not one per message. The copies are bounded by `--mailbox`.
//!
//! Copies live in one byte ring per client (allocated with the first copy), each a span
//! of it, oldest first, numbered within its sender; past `--mailbox` bytes the oldest is
//! forgotten and counted as lost, and a receipt that comes for a forgotten copy takes it
//! off that count (it proves the message delivered). Forgetting or settling the oldest copy
//! moves no byte: the ring's front moves past it. A settled copy in the middle leaves its
//! bytes behind until the ring is compacted, which happens once the dead bytes pass a
//! quarter of the live ones (and [`SLACK`]): amortised, a copy costs its bytes and a 16-byte
//! span, and no allocation of its own.
//!
//! A save (`--state`, xscp(7) §5.9) shares a client's receipts and copies with the saver
//! rather than copying them ([`Receipts::shared`]): the hub hands them over in constant
//! time, and a client whose receipts change while the save runs copies its own then.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::Arc;

use super::fastmap::{FastMap, FxHasher};
use super::mailbox::{LINE_OVERHEAD, Mailbox, sender_of};
use crate::conn_id::ConnId;
use crate::protocol::nick::NickKey;
use crate::state::{Copies, Gathered, NO_SENDER};

/// Dead bytes the copy ring may hold beyond a quarter of its live ones.
const SLACK: usize = 4096;

/// The most sender names one client may owe receipts to at once, with `--mailbox` of
/// `mailbox` bytes: as many as the copies could hold lines (one a [`LINE_OVERHEAD`]),
/// 2,048 at the default 64 KiB. Each name costs bookkeeping that forgetting its copies
/// does not free (its count must stay, §5.8: honest receipts are never refused), so a
/// message from one more name is refused instead, before it is relayed (xscp(7) §5.5).
pub fn max_senders(mailbox: usize) -> usize {
    (mailbox / LINE_OVERHEAD).max(1)
}

/// What one client owes one sender name: `next - settled` receipts, for messages sent in
/// the sessions of `runs` (oldest first, each with how many in a row).
#[derive(Clone, Debug, Default)]
struct Owing {
    runs: VecDeque<(ConnId, u64)>,
    /// The number (within this sender) of the next message relayed.
    next: u64,
    /// The number of the oldest message awaiting its receipt.
    settled: u64,
}

impl Owing {
    /// The session of message `n` (one awaiting its receipt).
    fn session_of(&self, n: u64) -> Option<ConnId> {
        let mut first = self.settled;
        for &(session, count) in &self.runs {
            if n < first + count {
                return Some(session);
            }
            first += count;
        }
        None
    }
}

/// The copy of one message, in the ring: where, its number within its sender (the low 32
/// bits: a sender would need 2^32 messages awaiting receipts from one client for two
/// copies of it to share a number), and a fingerprint of the sender's name, so that
/// finding a receipt's copy parses only the lines of that sender, not every copy with
/// the same number (a copy from each of many names is number 0).
#[derive(Clone, Copy, Debug)]
struct Span {
    /// Its first byte's position: bytes are numbered from the ring's first copy on, so that
    /// a position stays put while the ring's front moves.
    start: usize,
    n: u32,
    /// A line is at most a PDU (512 bytes with its CRLF).
    len: u16,
    sender: u16,
}

/// A 16-bit fingerprint of a sender's name (see [`Span`]).
fn fingerprint(from: NickKey) -> u16 {
    let hash = BuildHasherDefault::<FxHasher>::default().hash_one(from);
    (hash >> 48) as u16
}

/// The receipts one client owes, with the copies of their messages. A client that was
/// never sent a message owes none: for it this is one null pointer, and the state
/// ([`Owed`]) is allocated with the first message, so that the hub's entry for an idle
/// client stays small.
#[derive(Debug, Default)]
pub struct Receipts(Option<Arc<Owed>>);

impl Receipts {
    /// Records that `line`, a message from `from` sent in `session`, awaits its receipt,
    /// and keeps its copy within `max` bytes (forgetting the oldest past it).
    pub fn expect(&mut self, from: NickKey, session: ConnId, line: &[u8], max: usize) {
        Arc::make_mut(self.0.get_or_insert_with(Arc::default)).expect(from, session, line, max);
    }

    /// Forgets the oldest copy (its receipt stays owed) and counts it lost. False if there
    /// was none.
    pub fn forget_oldest(&mut self) -> bool {
        self.0
            .as_mut()
            .is_some_and(|owed| Arc::make_mut(owed).forget_oldest())
    }

    /// Settles the oldest message from `from` awaiting a receipt (and drops its copy, or
    /// takes it off the lost count if it was forgotten): the sender's session, where the
    /// receipt goes. `None` if no message from `from` awaits one.
    pub fn take(&mut self, from: NickKey) -> Option<ConnId> {
        Arc::make_mut(self.0.as_mut()?).take(from)
    }

    /// The memory of the copies kept as counted against `--mailbox-total` (each copy's
    /// [`super::mailbox::cost`]).
    pub fn counted(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |owed| owed.bytes + owed.spans.len() * LINE_OVERHEAD)
    }

    /// Whether a new message from `from` is refused (§5.5): this client owes receipts to
    /// as many names as `--mailbox` of `mailbox` bytes allows ([`max_senders`]), `from`
    /// not among them. The count first: below the bound a message costs no lookup.
    pub fn full_for(&self, from: NickKey, mailbox: usize) -> bool {
        self.0.as_ref().is_some_and(|owed| {
            owed.senders.len() >= max_senders(mailbox) && !owed.senders.contains_key(&from)
        })
    }

    /// How many sender names await this client's receipts (see [`max_senders`]).
    pub fn senders(&self) -> usize {
        self.0.as_ref().map_or(0, |owed| owed.senders.len())
    }

    /// How many copies are kept.
    pub fn copies(&self) -> usize {
        self.0.as_ref().map_or(0, |owed| owed.spans.len())
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
    /// relay order, each with its sender's session, and the count of those forgotten.
    fn gather(&self) -> Gathered {
        let Some(owed) = &self.0 else {
            return Gathered {
                wire: Vec::new(),
                senders: Vec::new(),
                lost: 0,
            };
        };
        let mut wire = Vec::with_capacity(owed.bytes);
        let mut senders = Vec::with_capacity(owed.spans.len());
        for s in &owed.spans {
            let line = owed.line(s);
            senders.push(owed.session(s, &line).unwrap_or(NO_SENDER));
            wire.extend_from_slice(&line);
        }
        Gathered {
            wire,
            senders,
            lost: owed.lost,
        }
    }
}

/// What [`Receipts`] holds once the client was sent a message.
#[derive(Clone, Debug, Default)]
struct Owed {
    /// What is owed, by sender name; a name is removed once nothing from it is owed.
    senders: FastMap<NickKey, Owing>,
    /// The copies' bytes (live and dead), in relay order, from the oldest live copy on.
    ring: VecDeque<u8>,
    /// The position of the ring's first byte.
    front: usize,
    /// The live copies, in relay order.
    spans: VecDeque<Span>,
    /// Bytes of live copies.
    bytes: usize,
    /// Copies forgotten past the bound (and not receipted since).
    lost: u64,
}

impl Owed {
    fn expect(&mut self, from: NickKey, session: ConnId, line: &[u8], max: usize) {
        let owing = self.senders.entry(from).or_default();
        let n = owing.next;
        owing.next += 1;
        match owing.runs.back_mut() {
            Some((s, count)) if *s == session => *count += 1,
            _ => owing.runs.push_back((session, 1)),
        }
        self.copy(from, n, line, max);
    }

    /// Keeps a copy of message `n` from `from`, forgetting the oldest past `max` bytes.
    fn copy(&mut self, from: NickKey, n: u64, line: &[u8], max: usize) {
        let Ok(len) = u16::try_from(line.len()) else {
            self.lost = self.lost.saturating_add(1);
            return;
        };
        if line.len() > max {
            self.lost = self.lost.saturating_add(1);
            return;
        }
        while self.bytes + line.len() > max {
            self.forget_oldest();
        }
        if self.ring.len() - self.bytes > self.bytes / 4 + SLACK {
            self.compact();
        }
        self.grow_for(line.len(), max);
        self.spans.push_back(Span {
            start: self.front.wrapping_add(self.ring.len()),
            n: n as u32,
            len,
            sender: fingerprint(from),
        });
        self.ring.extend(line);
        self.bytes += line.len();
    }

    /// Room in the ring for `more` bytes. It doubles as it grows, but never past what the
    /// bound lets it hold: `max` live bytes, a quarter of them dead and [`SLACK`]. A ring
    /// comes round through all its capacity, so capacity is memory used.
    fn grow_for(&mut self, more: usize, max: usize) {
        let need = self.ring.len() + more;
        if need > self.ring.capacity() {
            let most = (max + max / 4 + SLACK).max(need);
            let size = (2 * self.ring.capacity()).clamp(need, most);
            self.ring.reserve_exact(size - self.ring.len());
        }
    }

    /// Where copy `s` begins in the ring.
    fn offset(&self, s: &Span) -> usize {
        s.start.wrapping_sub(self.front)
    }

    /// The bytes of copy `s` (copied only if the ring wraps in the middle of them).
    fn line(&self, s: &Span) -> Cow<'_, [u8]> {
        let at = self.offset(s);
        let range = at..at + s.len as usize;
        let (head, tail) = self.ring.as_slices();
        if range.end <= head.len() {
            Cow::Borrowed(head.get(range).unwrap_or_default())
        } else if range.start >= head.len() {
            let range = range.start - head.len()..range.end - head.len();
            Cow::Borrowed(tail.get(range).unwrap_or_default())
        } else {
            Cow::Owned(self.ring.range(range).copied().collect())
        }
    }

    /// Moves the live copies together, from the ring's front on.
    fn compact(&mut self) {
        let (front, mut end) = (self.front, 0);
        let bytes = self.ring.make_contiguous();
        for s in &mut self.spans {
            let (from, len) = (s.start.wrapping_sub(front), s.len as usize);
            bytes.copy_within(from..from + len, end);
            s.start = front.wrapping_add(end);
            end += len;
        }
        self.ring.truncate(end);
    }

    fn forget_oldest(&mut self) -> bool {
        let Some(s) = self.spans.pop_front() else {
            return false;
        };
        self.bytes -= s.len as usize;
        self.lost = self.lost.saturating_add(1);
        self.drop_front();
        true
    }

    /// After the oldest copy went: the ring's front moves to the next live copy, past the
    /// dead bytes before it. With no copy left, the ring is emptied (and freed if it grew
    /// large).
    fn drop_front(&mut self) {
        match self.spans.front() {
            Some(s) => {
                let dead = self.offset(s);
                self.ring.drain(..dead);
                self.front = s.start;
            }
            None => {
                self.front = self.front.wrapping_add(self.ring.len());
                self.ring.clear();
                if self.ring.capacity() > SLACK {
                    self.ring = VecDeque::new();
                    self.spans = VecDeque::new();
                }
            }
        }
    }

    fn take(&mut self, from: NickKey) -> Option<ConnId> {
        let owing = self.senders.get_mut(&from)?;
        let n = owing.settled;
        let (session, count) = owing.runs.front_mut()?;
        let session = *session;
        *count -= 1;
        if *count == 0 {
            owing.runs.pop_front();
        }
        owing.settled += 1;
        if owing.settled == owing.next {
            self.senders.remove(&from);
            super::shrink(&mut self.senders);
        }
        self.uncopy(from, n);
        Some(session)
    }

    /// Drops the copy of message `n` from `from`; if it was forgotten (no live copy from
    /// `from` has number `n`), takes it off the lost count.
    fn uncopy(&mut self, from: NickKey, n: u64) {
        let (n, sender) = (n as u32, fingerprint(from));
        let i = (self.spans.iter())
            .position(|s| s.n == n && s.sender == sender && sender_of(&self.line(s)) == Some(from));
        match i {
            Some(i) => {
                if let Some(s) = self.spans.remove(i) {
                    self.bytes -= s.len as usize;
                    if i == 0 {
                        self.drop_front();
                    }
                }
            }
            None => self.lost = self.lost.saturating_sub(1),
        }
    }

    fn into_mailbox(self) -> Mailbox {
        let mut mailbox = Mailbox::with_capacity(self.lost, self.spans.len(), self.bytes);
        for s in &self.spans {
            let line = self.line(s);
            mailbox.keep(&line, self.session(s, &line));
        }
        mailbox
    }

    /// The session the receipt of copy `s`, whose bytes are `line`, goes to.
    fn session(&self, s: &Span, line: &[u8]) -> Option<ConnId> {
        let owing = self.senders.get(&sender_of(line)?)?;
        // The copy's full number: the first awaiting one whose low bits match.
        let n = owing.settled + u64::from(s.n.wrapping_sub(owing.settled as u32));
        owing.session_of(n)
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
    fn expect(r: &mut Receipts, from: &str, session: ConnId) {
        let line = format!("chatm {from} bob m\r\n");
        r.expect(key(from), session, line.as_bytes(), BIG);
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
        let want = Gathered {
            wire: b"chatm alice bob m\r\n".to_vec(),
            senders: vec![1],
            lost: 0,
        };
        assert_eq!(saved.gather(), want);
        assert_eq!(r.counts(), (1, 0));
        let nothing = Gathered {
            wire: Vec::new(),
            senders: Vec::new(),
            lost: 0,
        };
        assert_eq!(Receipts::default().shared().gather(), nothing);
    }

    #[test]
    fn each_message_awaits_one_receipt_back_to_its_connection() {
        let mut r = Receipts::default();
        expect(&mut r, "alice", 1);
        expect(&mut r, "alice", 1);
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
    fn a_sender_costs_one_entry_however_many_it_sent() {
        let mut r = Receipts::default();
        for _ in 0..10_000 {
            expect(&mut r, "alice", 1);
        }
        assert_eq!(owed(&r).senders.len(), 1);
        assert_eq!(owed(&r).senders[&key("alice")].runs.len(), 1);
        for _ in 0..10_000 {
            assert_eq!(r.take(key("alice")), Some(1));
        }
        assert_eq!(r.take(key("alice")), None);
        assert!(owed(&r).senders.is_empty());
        assert_eq!(r.counted(), 0);
    }

    /// Issue 18: however senders interleave, every receipt owed stays legal (before,
    /// 1,024 runs were kept and the oldest forgotten).
    #[test]
    fn interleaved_senders_never_lose_a_receipt() {
        let mut r = Receipts::default();
        let senders = ["alice", "bob", "carol"];
        for i in 0..30_000 {
            expect(&mut r, senders[i % 3], (i % 3) as ConnId);
        }
        assert_eq!(owed(&r).senders.len(), 3);
        for i in (0..30_000).rev() {
            assert_eq!(r.take(key(senders[i % 3])), Some((i % 3) as ConnId));
        }
        assert_eq!(r.counts(), (0, 0));
    }

    #[test]
    fn sessions_of_one_name_are_kept_in_order() {
        let mut r = Receipts::default();
        expect(&mut r, "alice", 1);
        expect(&mut r, "alice", 1);
        expect(&mut r, "alice", 7);
        let line = b"chatm alice bob m\r\n";
        let m = std::mem::take(&mut r).into_mailbox();
        let sessions: Vec<_> = m
            .entries()
            .map(|(l, f)| (l == line, f.map(|f| f.1)))
            .collect();
        assert_eq!(
            sessions,
            [(true, Some(1)), (true, Some(1)), (true, Some(7))]
        );
    }

    /// Issue 18: a receipt for a forgotten copy proves it delivered: off the lost count.
    #[test]
    fn a_receipt_for_a_forgotten_copy_is_no_longer_lost() {
        let mut r = Receipts::default();
        for i in 0..3 {
            let line = format!("chatm alice bob {i}\r\n");
            r.expect(key("alice"), 1, line.as_bytes(), 40);
        }
        // 19 bytes a line: two fit in 40; the first was forgotten.
        assert_eq!(r.counts(), (2, 1));
        assert_eq!(r.take(key("alice")), Some(1));
        assert_eq!(r.counts(), (2, 0));
        assert_eq!(r.take(key("alice")), Some(1));
        assert_eq!(r.counts(), (1, 0));
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
        assert_eq!(r.counted(), 57 + 3 * LINE_OVERHEAD);
        // Forgetting changes no receipt: four are owed; the first settles no copy, and
        // proves it delivered.
        for _ in 0..4 {
            assert_eq!(r.take(key("alice")), Some(1));
        }
        assert_eq!(r.take(key("alice")), None);
        assert_eq!(r.counts(), (0, 0));
        assert_eq!(r.counted(), 0);
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
        assert!(owed(&r).ring.len() <= 2 * SLACK, "{}", owed(&r).ring.len());
        assert_eq!(copies(r), [("chatm alice carol keep".to_string(), Some(1))]);
    }

    /// Copies forgotten or settled oldest first leave no dead byte behind (the ring's front
    /// moves past them; nothing is compacted), and the ring never holds more than the bound
    /// lets it use, however long it runs.
    #[test]
    fn the_oldest_copies_go_without_a_trace_and_the_ring_stays_bounded() {
        const MAX: usize = 64 * 1024;
        let mut r = Receipts::default();
        for i in 0..100_000 {
            let line = format!("chatm alice bob {i}\r\n");
            r.expect(key("alice"), 1, line.as_bytes(), MAX);
            if i % 3 == 0 {
                assert_eq!(r.take(key("alice")), Some(1));
            }
            let o = owed(&r);
            assert_eq!(o.ring.len(), o.bytes, "dead bytes after {i} lines");
            assert!(
                o.ring.capacity() <= MAX + MAX / 4 + SLACK,
                "{}",
                o.ring.capacity()
            );
        }
        let kept = copies(r);
        assert_eq!(
            kept.last().map(|c| c.0.as_str()),
            Some("chatm alice bob 99999")
        );
    }

    /// A model of the copies: what is owed per sender, and the live copies in relay order
    /// (sender, number, line); the oldest are forgotten past `max` bytes.
    #[derive(Default)]
    struct Model {
        owed: [(u64, u64); 3],
        live: VecDeque<(usize, u64, Vec<u8>)>,
        lost: u64,
    }

    const SENDERS: [&str; 3] = ["al", "bo", "cy"];

    proptest::proptest! {
        /// Whatever the order of messages, receipts and forgotten copies (holes in the
        /// buffer and compactions included), the copies kept are the model's, byte for
        /// byte, in relay order.
        #[test]
        fn the_copies_kept_are_the_models(
            ops in proptest::collection::vec((0..3usize, proptest::bool::weighted(0.6), 0..40usize), 1..400)
        ) {
            const MAX: usize = 300;
            let mut r = Receipts::default();
            let mut m = Model::default();
            for (i, (who, send, pad)) in ops.into_iter().enumerate() {
                let from = SENDERS[who];
                if send {
                    let line = format!("chatm {from} dee {i}{}\r\n", "x".repeat(pad)).into_bytes();
                    r.expect(key(from), 1, &line, MAX);
                    let n = m.owed[who].1;
                    m.owed[who].1 += 1;
                    while m.live.iter().map(|c| c.2.len()).sum::<usize>() + line.len() > MAX {
                        m.live.pop_front();
                        m.lost = m.lost.saturating_add(1);
                    }
                    m.live.push_back((who, n, line));
                } else {
                    let (settled, next) = m.owed[who];
                    let expected = (settled < next).then_some(1);
                    proptest::prop_assert_eq!(r.take(key(from)), expected);
                    if settled < next {
                        m.owed[who].0 += 1;
                        match m.live.iter().position(|c| c.0 == who && c.1 == settled) {
                            Some(at) => drop(m.live.remove(at)),
                            None => m.lost -= 1,
                        }
                    }
                }
                let kept: Vec<Vec<u8>> = r
                    .0
                    .as_deref()
                    .map(|o| o.spans.iter().map(|s| o.line(s).into_owned()).collect())
                    .unwrap_or_default();
                let model: Vec<Vec<u8>> = m.live.iter().map(|c| c.2.clone()).collect();
                proptest::prop_assert_eq!(kept, model);
                proptest::prop_assert_eq!(r.counts(), (m.live.len(), m.lost));
            }
        }
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
            (r.take(key("alice")), r.forget_oldest(), r.counted()),
            (None, false, 0)
        );
        assert!(r.0.is_none());
        for _ in 0..1000 {
            expect(&mut r, "alice", 1);
        }
        for _ in 0..1000 {
            r.take(key("alice"));
        }
        assert_eq!(owed(&r).ring.capacity(), 0);
    }
}
