//! What a shutdown without `--state` discards (xscp(7) §5.8 Audit): counted by the hub
//! before it lets anything go, and logged as one line.

use std::fmt;

use super::holds::HoldCounts;

/// The holds and copies the hub keeps only in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unsaved {
    /// The held names, the lines in their mailboxes and the lines those lost.
    pub holds: HoldCounts,
    /// The copies kept for connected clients (unreceipted direct messages).
    pub copies: usize,
}

impl fmt::Display for Unsaved {
    /// `discarded at shutdown (no --state): 2 holds (3 lines held, 0 lost), 5 copies of
    /// connected clients`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.holds;
        write!(
            f,
            "discarded at shutdown (no --state): {} holds ({} lines held, {} lost), \
             {} copies of connected clients",
            h.holds, h.lines, h.lost, self.copies
        )
    }
}
