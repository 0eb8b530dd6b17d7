//! A held name's mailbox (xscp(7) §5.8): what the returning client gets back. The
//! departed client's copies become its first lines; while the name is held, direct
//! `chatm`s to it and receipts for what it sent are added; the `uname` that gets
//! `welcome back` delivers it all in one go. Bounded by `--mailbox` bytes (each line with
//! its CRLF), it is one byte buffer with the session of each line's sender (8 bytes)
//! beside it. Both are shared with a save in progress (`--state`, xscp(7) §5.9) rather
//! than copied: the hub hands them over in constant time, and a mailbox that changes
//! while the save runs copies its own then (at most `--mailbox`).
//!
//! `--mailbox-total` bounds memory, not bytes (§5.8): every line kept, here or as a
//! connected client's copy, counts [`cost`], its bytes plus [`LINE_OVERHEAD`].

use super::receipts::max_senders;
use crate::conn_id::ConnId;
use crate::protocol::nick::NickKey;
use crate::state::{NO_SENDER, Senders, Wire};

/// What the server spends to keep one line besides its bytes, as counted against
/// `--mailbox-total`: the line's entry (its sender's session here, 8 bytes; a span of 16
/// bytes in a client's copies) and the growth room of the vectors that hold them. The
/// limits section of `src/ARCHITECTURE.md` gives the resident memory measured against
/// it (`xscp-bench mailbox-memory`).
pub const LINE_OVERHEAD: usize = 32;

/// The memory counted against `--mailbox-total` for keeping a line of `len` bytes.
pub const fn cost(len: usize) -> usize {
    len + LINE_OVERHEAD
}

/// The sender named by a `chatm` line (its second field), as a key.
pub fn sender_of(line: &[u8]) -> Option<NickKey> {
    let rest = line.strip_prefix(b"chatm ")?;
    let end = rest.iter().position(|&b| b == b' ')?;
    NickKey::of(std::str::from_utf8(&rest[..end]).ok()?)
}

/// The mailbox cannot take the line within `--mailbox`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// The lines kept for a held name, in the order the server accepted them, with the
/// session of each line's sender (where the receipt of a replayed `chatm` goes; the
/// sender's name is in the line; [`NO_SENDER`] for a `chatr`), and how many were lost.
/// The lines are one buffer: each ends with the line's only LF.
#[derive(Debug, Default)]
pub struct Mailbox {
    buf: Wire,
    senders: Senders,
    lost: u64,
    /// The names the `chatm` lines come from, sorted: the returning client owes each a
    /// receipt, and the names one client owes are bounded ([`max_senders`]). A name, not
    /// a line: 17 bytes each.
    names: Vec<NickKey>,
}

impl Mailbox {
    /// An empty mailbox that lost `lost` lines already, with room for `lines` lines of
    /// `bytes` bytes in all (a departing client's copies: allocated once, exactly).
    pub fn with_capacity(lost: u64, lines: usize, bytes: usize) -> Mailbox {
        Mailbox {
            buf: Wire::new(Vec::with_capacity(bytes)),
            senders: Senders::new(Vec::with_capacity(lines)),
            lost,
            names: Vec::new(),
        }
    }

    /// An empty mailbox that lost `lost` lines already.
    pub fn with_lost(lost: u64) -> Mailbox {
        Mailbox {
            lost,
            ..Mailbox::default()
        }
    }

    /// Adds `line` without a bound (the departed client's copies, bounded already); for a
    /// `chatm`, `sender` is the session its receipt goes to (the name is in the line).
    pub fn keep(&mut self, line: &[u8], sender: Option<ConnId>) {
        Wire::make_mut(&mut self.buf).extend_from_slice(line);
        Senders::make_mut(&mut self.senders).push(sender.unwrap_or(NO_SENDER));
        if let Some(from) = sender.and(sender_of(line))
            && let Err(at) = self.names.binary_search(&from)
        {
            self.names.insert(at, from);
        }
    }

    /// Whether a `chatm` from `from` is refused (xscp(7) §5.5, §5.8): its returning client
    /// would owe receipts to as many names as `--mailbox` of `mailbox` bytes allows
    /// ([`max_senders`], as for a connected client), `from` not among them.
    pub fn full_for(&self, from: NickKey, mailbox: usize) -> bool {
        self.names.len() >= max_senders(mailbox) && self.names.binary_search(&from).is_err()
    }

    /// How many sender names the `chatm` lines come from.
    pub fn names(&self) -> usize {
        self.names.len()
    }

    /// Would `line_len` more bytes stay within `max`?
    pub fn fits(&self, line_len: usize, max: usize) -> bool {
        self.buf.len() + line_len <= max
    }

    /// Adds `line` if the mailbox stays within `max` bytes.
    pub fn put(&mut self, line: &[u8], sender: Option<ConnId>, max: usize) -> Result<(), Full> {
        if !self.fits(line.len(), max) {
            return Err(Full);
        }
        self.keep(line, sender);
        Ok(())
    }

    /// Adds the receipt `line`, or counts it lost if it does not fit within `max` bytes.
    /// True if it was kept.
    pub fn put_receipt(&mut self, line: &[u8], max: usize) -> bool {
        let kept = self.put(line, None, max).is_ok();
        if !kept {
            self.lost = self.lost.saturating_add(1);
        }
        kept
    }

    /// Empties the mailbox, counting its lines lost (`--mailbox-total`).
    pub fn discard(&mut self) {
        self.lost = self.lost.saturating_add(self.senders.len() as u64);
        self.buf = Wire::default();
        self.senders = Senders::default();
        self.names = Vec::new();
    }

    /// Lines held.
    pub fn held(&self) -> usize {
        self.senders.len()
    }

    /// Lines lost.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Bytes held (the lines with their CRLF: what `--mailbox` bounds).
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// The memory counted against `--mailbox-total`: every line's [`cost`].
    pub fn counted(&self) -> usize {
        self.buf.len() + self.senders.len() * LINE_OVERHEAD
    }

    /// Every line held, one after the other, as they go on the wire.
    pub fn wire(&self) -> &[u8] {
        &self.buf
    }

    /// The lines held and their senders, shared with the state file's saver (`--state`):
    /// no bytes are copied.
    pub fn shared(&self) -> (Wire, Senders) {
        (Wire::clone(&self.buf), Senders::clone(&self.senders))
    }

    /// Each line with the sender its receipt goes to (`None` for a `chatr`).
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], Option<(NickKey, ConnId)>)> {
        let lines = self.buf.split_inclusive(|&b| b == b'\n');
        lines
            .zip(self.senders.iter())
            .map(|(line, &session)| match session {
                NO_SENDER => (line, None),
                session => (line, sender_of(line).map(|key| (key, session))),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> NickKey {
        NickKey::of(name).expect("test nickname")
    }

    #[test]
    fn lines_are_kept_in_order_with_their_senders() {
        let mut m = Mailbox::with_lost(2);
        m.keep(b"chatm bob alice one\r\n", Some(2));
        assert_eq!(m.put(b"chatr alice carol\r\n", None, 100), Ok(()));
        assert_eq!((m.held(), m.lost(), m.bytes()), (2, 2, 40));
        assert_eq!(m.wire(), b"chatm bob alice one\r\nchatr alice carol\r\n");
        let senders: Vec<_> = m.entries().map(|(_, f)| f).collect();
        assert_eq!(senders, [Some((key("bob"), 2)), None]);
    }

    #[test]
    fn a_chatm_past_the_bound_is_refused_and_nothing_counted() {
        let mut m = Mailbox::default();
        assert_eq!(m.put(&[b'x'; 40], None, 64), Ok(()));
        assert_eq!(m.put(&[b'y'; 25], None, 64), Err(Full));
        assert_eq!(m.put(&[b'y'; 24], None, 64), Ok(()));
        assert_eq!((m.held(), m.lost(), m.bytes()), (2, 0, 64));
    }

    #[test]
    fn a_receipt_past_the_bound_is_dropped_and_counted_lost() {
        let mut m = Mailbox::default();
        assert!(m.put_receipt(b"chatr alice bob\r\n", 20));
        assert!(!m.put_receipt(b"chatr alice bob\r\n", 20));
        assert_eq!((m.held(), m.lost()), (1, 1));
    }

    /// `--state`: a save shares the bytes; a line added meanwhile is the mailbox's own.
    #[test]
    fn a_save_shares_the_lines_and_later_ones_are_not_in_it() {
        let mut m = Mailbox::default();
        m.keep(b"a\r\n", None);
        let (saved, senders) = m.shared();
        assert!(std::ptr::eq(saved.as_slice(), m.wire()));
        m.keep(b"b\r\n", None);
        assert_eq!(
            (saved.as_slice(), senders.as_slice()),
            (&b"a\r\n"[..], &[NO_SENDER][..])
        );
        assert_eq!(m.wire(), b"a\r\nb\r\n");
    }

    #[test]
    fn a_discarded_mailbox_counts_its_lines_lost() {
        let mut m = Mailbox::with_lost(1);
        m.keep(b"a\r\n", None);
        m.keep(b"b\r\n", None);
        m.discard();
        assert_eq!((m.held(), m.lost(), m.bytes()), (0, 3, 0));
    }
}
