//! `--state` in the hub (xscp(7) §5.9): the holds of an earlier run taken back at start, a
//! copy of the holds and of every connected client's copies handed to the saver every
//! `--state-interval`, and at shutdown every connected client departed as by `cquit` and
//! the whole state handed over once more.
//!
//! The hub only copies: encoding and the disk are the saver's ([`crate::state::Saver`]).
//! A held mailbox is handed over as [`Mailbox::shared`], a connected client's copies
//! as [`super::receipts::Receipts::shared`]: shared, not copied, so that the hub's part of
//! a save costs a few pointers a hold, whatever the mailboxes hold.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::holds::HoldCounts;
use super::mailbox::Mailbox;
use super::{Hub, Output};
use crate::conn_id::ConnId;
use crate::state::{Deferred, SaveHandle, Saved, SavedHold};

/// Restored holds continue sessions numbered from here: connection numbers (from 1, one
/// a connection) never reach it, so a restored session is never taken for a connection.
const RESTORED_SESSIONS: ConnId = 1 << 62;

/// How soon a periodic save is tried again when the saver is still writing the last one.
const RETRY: Duration = Duration::from_millis(50);

/// What the hub needs for `--state`.
#[derive(Debug)]
pub struct Persist {
    saver: SaveHandle,
    /// `--state-interval` (zero: only at shutdown).
    interval: Duration,
    /// `--hold`: how long a connected client's name would be held were it to leave now.
    hold: Duration,
    /// When the next periodic save is due.
    next: Option<Instant>,
}

impl Persist {
    /// Saves through `saver` every `interval` (zero: only at shutdown); names are held for
    /// `hold`.
    pub fn new(saver: SaveHandle, interval: Duration, hold: Duration) -> Persist {
        Persist {
            saver,
            interval,
            hold,
            next: (!interval.is_zero()).then(|| Instant::now() + interval),
        }
    }
}

impl<O: Output> Hub<O> {
    /// With `--state`: saves through `persist`, after taking back `holds` (loaded from
    /// `path` and judged by [`crate::state::prepare`], oldest first).
    pub fn with_state(mut self, persist: Persist, holds: Vec<SavedHold>, path: &Path) -> Self {
        self.persist = Some(persist);
        self.restore(holds, path);
        self
    }

    /// Takes back `holds` in order, each under a session of its own; a `chatm` kept in a
    /// mailbox awaits its receipt for the session its sender left held, if that hold was
    /// restored too (the receipt goes into its mailbox, or to it once it is back), and
    /// otherwise for nobody's (the receipt is taken and dropped). The hold bound and
    /// `--mailbox-total` apply as they would at run time (logged); one line then says
    /// what was restored.
    fn restore(&mut self, holds: Vec<SavedHold>, path: &Path) {
        let now = Instant::now();
        let wall = SystemTime::now();
        let in_file = holds.len();
        // The sessions of the file, numbered anew from RESTORED_SESSIONS.
        let sessions: std::collections::HashMap<ConnId, ConnId> = holds
            .iter()
            .zip(RESTORED_SESSIONS..)
            .map(|(h, session)| (h.session, session))
            .collect();
        // The session of a sender that was not saved: nobody's.
        let nobody = RESTORED_SESSIONS + in_file as ConnId;
        for (h, session) in holds.iter().zip(RESTORED_SESSIONS..) {
            let mut mailbox = Mailbox::with_lost(h.lost);
            for (line, sender) in h.entries() {
                // A `chatm` awaits its receipt (the file writes keywords in lower case).
                let awaits = line.starts_with(b"chatm ");
                let session = awaits.then(|| sessions.get(&sender).copied().unwrap_or(nobody));
                mailbox.keep(line, session);
            }
            let left = h.until.duration_since(wall).unwrap_or_default();
            let until = now.checked_add(left).unwrap_or(now);
            // As the acceptor knows clients: an IPv4 address saved as IPv6 (by a server
            // that listened on IPv6) is its IPv4 address.
            let ip = h.ip.to_canonical();
            (self.holds).restore(h.nick.clone(), ip, until, session, mailbox, now);
        }
        while self.copies + self.holds.counted() > self.mailbox_total {
            if !self.holds.discard_oldest(None) {
                break;
            }
        }
        let HoldCounts { holds, lines, lost } = self.holds.counts();
        log::info!(
            "state restored from {}: {holds} holds, {lines} lines, {lost} lost \
             (of {in_file} unexpired holds in the file)",
            path.display()
        );
    }

    /// The whole state as the file keeps it: every hold, and every connected client's
    /// copies as the mailbox it would leave if it departed now, held for its address from
    /// now (§5.9, What is saved); the saver gathers the latter.
    pub(super) fn snapshot(
        &self,
        now: Instant,
        wall: SystemTime,
        hold: Duration,
    ) -> (Saved, Vec<Deferred>) {
        let holds = self.holds.saved(now, wall).collect();
        let mut deferred = Vec::new();
        if !hold.is_zero() {
            for c in self.clients.values() {
                let Some(nick) = &c.nick else { continue };
                let until = wall.checked_add(hold).unwrap_or(wall);
                let hold = SavedHold::new(nick.clone(), c.ip, until, c.session);
                let copies = Box::new(c.receipts.shared());
                deferred.push(Deferred { hold, copies });
            }
        }
        (Saved { holds }, deferred)
    }

    /// When the next periodic save is due, if one is.
    pub(super) fn next_save(&self) -> Option<Instant> {
        self.persist.as_ref()?.next
    }

    /// Hands a copy of the state to the saver if a periodic save is due at `now` (and the
    /// saver is free: else it is tried again shortly).
    pub(super) fn save_if_due(&mut self, now: Instant) {
        let Some(p) = &self.persist else { return };
        if p.next.is_none_or(|next| next > now) {
            return;
        }
        let next = if p.saver.idle() {
            let started = Instant::now();
            let (state, clients) = self.snapshot(now, SystemTime::now(), p.hold);
            let copied = started.elapsed();
            let (holds, connected) = (state.holds.len(), clients.len());
            if p.saver.save(state, clients, SystemTime::now()) {
                log::debug!(
                    "hub: state copied for the saver in {:.3} ms: {holds} holds, {connected} \
                     connected clients",
                    copied.as_secs_f64() * 1000.0
                );
            }
            now + p.interval
        } else {
            log::debug!("hub: periodic save due, the last one is still being written");
            now + RETRY
        };
        if let Some(p) = &mut self.persist {
            p.next = Some(next);
        }
    }

    /// At shutdown, once every client was told `cquit server shutting down` (§5.9, When):
    /// each connected client departs as by `cquit` (its name held with its copies), and
    /// the whole state goes to the saver, which ends after writing it.
    pub(super) fn save_at_shutdown(&mut self) {
        let Some(p) = self.persist.take() else { return };
        let now = Instant::now();
        let clients = std::mem::take(&mut self.clients);
        self.names.clear();
        self.copies = 0;
        for (_, c) in clients {
            let Some(nick) = c.nick else { continue };
            let mailbox = c.receipts.into_mailbox();
            self.holds
                .hold(c.tag.as_str(), nick, c.ip, c.session, mailbox, now);
        }
        let (state, _) = self.snapshot(now, SystemTime::now(), p.hold);
        p.saver.save_last(state, SystemTime::now());
    }
}
