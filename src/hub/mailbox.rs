//! A held name's mailbox (xscp(7) §5.8): what the returning client gets back. The
//! departed client's copies become its first lines; while the name is held, direct
//! `chatm`s to it and receipts for what it sent are added; the `uname` that gets
//! `welcome back` delivers it all in one go. Bounded by `--mailbox` bytes (each line with
//! its CRLF), it is one byte buffer with a compact entry (16 bytes) beside each line. The
//! buffer is shared with a save in progress (`--state`, xscp(7) §5.9) rather than copied:
//! the hub hands it over in constant time, and a mailbox that changes while the save runs
//! copies its own bytes then (at most `--mailbox`).
//!
//! `--mailbox-total` bounds memory, not bytes (§5.8): every line kept, here or as a
//! connected client's copy, counts [`cost`], its bytes plus [`LINE_OVERHEAD`].

use crate::conn_id::ConnId;
use crate::protocol::nick::NickKey;
use crate::state::Wire;

/// What the server spends to keep one line besides its bytes, as counted against
/// `--mailbox-total`: the line's entry (16 bytes, here and in a client's copies) and the
/// growth room of the vectors that hold lines and entries. The limits section of
/// `src/ARCHITECTURE.md` gives the resident memory measured against it
/// (`xscp-bench mailbox-memory`).
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

/// The session of an entry that awaits no receipt (a `chatr`; conn ids are counted up
/// from 1 and never reach it).
const NO_RECEIPT: ConnId = ConnId::MAX;

/// One line of a mailbox: its length, and for a `chatm` the session of its sender, where
/// the receipt goes once the line is replayed (the sender's name is in the line).
#[derive(Clone, Copy, Debug)]
struct Entry {
    session: ConnId,
    len: u32,
}

/// The lines kept for a held name, in the order the server accepted them, and how many
/// were lost.
#[derive(Debug, Default)]
pub struct Mailbox {
    buf: Wire,
    entries: Vec<Entry>,
    lost: u64,
}

impl Mailbox {
    /// An empty mailbox that lost `lost` lines already, with room for `lines` lines of
    /// `bytes` bytes in all (a departing client's copies: allocated once, exactly).
    pub fn with_capacity(lost: u64, lines: usize, bytes: usize) -> Mailbox {
        Mailbox {
            buf: Wire::new(Vec::with_capacity(bytes)),
            entries: Vec::with_capacity(lines),
            lost,
        }
    }

    /// An empty mailbox that lost `lost` lines already.
    pub fn with_lost(lost: u64) -> Mailbox {
        Mailbox {
            lost,
            ..Mailbox::default()
        }
    }

    /// Adds `line` without a bound (the departed client's copies, bounded already).
    pub fn keep(&mut self, line: &[u8], from: Option<(NickKey, ConnId)>) {
        Wire::make_mut(&mut self.buf).extend_from_slice(line);
        self.entries.push(Entry {
            session: from.map_or(NO_RECEIPT, |(_, session)| session),
            // A line is at most a PDU (512 bytes).
            len: u32::try_from(line.len()).unwrap_or(u32::MAX),
        });
    }

    /// Would `line_len` more bytes stay within `max`?
    pub fn fits(&self, line_len: usize, max: usize) -> bool {
        self.buf.len() + line_len <= max
    }

    /// Adds `line` if the mailbox stays within `max` bytes.
    pub fn put(
        &mut self,
        line: &[u8],
        from: Option<(NickKey, ConnId)>,
        max: usize,
    ) -> Result<(), Full> {
        if !self.fits(line.len(), max) {
            return Err(Full);
        }
        self.keep(line, from);
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
        self.lost = self.lost.saturating_add(self.entries.len() as u64);
        self.buf = Wire::default();
        self.entries = Vec::new();
    }

    /// Lines held.
    pub fn held(&self) -> usize {
        self.entries.len()
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
        self.buf.len() + self.entries.len() * LINE_OVERHEAD
    }

    /// Every line held, one after the other, as they go on the wire.
    pub fn wire(&self) -> &[u8] {
        &self.buf
    }

    /// The lines held, as [`wire`](Self::wire), shared with the state file's saver
    /// (`--state`): no bytes are copied.
    pub fn shared_wire(&self) -> Wire {
        Wire::clone(&self.buf)
    }

    /// Each line with the sender its receipt goes to (`None` for a `chatr`).
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], Option<(NickKey, ConnId)>)> {
        let mut start = 0;
        self.entries.iter().map(move |e| {
            let end = start + e.len as usize;
            let line = self.buf.get(start..end).unwrap_or_default();
            start = end;
            let from = match e.session {
                NO_RECEIPT => None,
                session => sender_of(line).map(|key| (key, session)),
            };
            (line, from)
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
        m.keep(b"chatm bob alice one\r\n", Some((key("bob"), 2)));
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
        let saved = m.shared_wire();
        assert!(std::ptr::eq(saved.as_slice(), m.wire()));
        m.keep(b"b\r\n", None);
        assert_eq!(saved.as_slice(), b"a\r\n");
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
