//! The relay rule of the hub (xscp(7) §5.5 chatm, §5.6 chatr; §5.8): a message to a
//! client, to everyone or to a held name's mailbox, a receipt to the author of the message
//! it acknowledges, and the two ways a line enters a client's queue (relayed, or a
//! response to its own command).

use std::ops::Range;
use std::time::Instant;

use super::mailbox::cost;
use super::{Client, Hub, Output, Wake};
use crate::conn_id::ConnId;
use crate::protocol::nick::NickKey;
use crate::protocol::reply;
use crate::text;

impl<O: Output> Client<O> {
    /// Queues `line` for client `id`, relayed from the client whose output side is `from` (if
    /// any): remembers to wake its writer, or dooms it if its queue overflows (the hard bound,
    /// see [`Output::queue`]).
    pub(super) fn queue(
        &self,
        id: ConnId,
        line: &[u8],
        from: Option<&O>,
        wakes: &mut Vec<ConnId>,
        doomed: &mut Vec<ConnId>,
    ) {
        let queued = match from {
            Some(from) => self.outbox.relay(line, from),
            None => self.outbox.queue(line),
        };
        match queued {
            Ok(Wake::Later) => wakes.push(id),
            Ok(Wake::Now) => self.outbox.wake_now(),
            Ok(Wake::No) => {}
            Err(_) => doomed.push(id),
        }
    }

    /// Queues `line`, a response to client `id`'s own command: never refused (§7: a response
    /// never makes its asker a slow consumer; its reader waits for room instead).
    pub(super) fn respond(&self, id: ConnId, line: &[u8], wakes: &mut Vec<ConnId>) {
        match self.outbox.respond(line) {
            Wake::Later => wakes.push(id),
            Wake::Now => self.outbox.wake_now(),
            Wake::No => {}
        }
    }
}

impl<O: Output> Hub<O> {
    pub(super) fn chat(&mut self, conn: ConnId, line: &str, recipient: Range<usize>) {
        // The sender is looked up once: this runs for every relayed line.
        let Hub {
            clients,
            names,
            wakes,
            doomed,
            mailbox,
            ..
        } = self;
        let Some(c) = clients.get(&conn) else {
            return;
        };
        let Some(from) = c.nick.as_ref() else {
            return;
        };
        let (from, session) = (from.key(), c.session);
        let to = line.get(recipient).unwrap_or_default();
        if to == "*" {
            c.respond(conn, reply::RELAYED.as_bytes(), wakes);
            for (&id, r) in clients.iter() {
                if id != conn && r.nick.is_some() {
                    r.queue(id, line.as_bytes(), Some(&c.outbox), wakes, doomed);
                }
            }
            return;
        }
        let key = NickKey::of(to);
        let Some(target) = key.and_then(|k| names.get(&k).copied()) else {
            return self.chat_held(conn, key, line, to, (from, session));
        };
        let recipient = clients.get(&target);
        if let Some(r) = recipient
            && r.receipts.full_for(from, *mailbox)
        {
            log::info!(
                "{} chatm to {to}: {to} owes receipts to {} senders already, refused",
                c.tag,
                r.receipts.senders()
            );
            return c.respond(conn, reply::receipts_full(to).as_bytes(), wakes);
        }
        c.respond(conn, reply::RELAYED.as_bytes(), wakes);
        if let Some(r) = recipient {
            r.queue(target, line.as_bytes(), Some(&c.outbox), wakes, doomed);
        }
        // Record the receipt the recipient owes and keep its copy.
        let Some(c) = self.clients.get_mut(&target) else {
            return;
        };
        let before = c.receipts.counted();
        c.receipts
            .expect(from, session, line.as_bytes(), self.mailbox);
        self.copies = self.copies + c.receipts.counted() - before;
        if self.copies + self.holds.counted() > self.mailbox_total {
            self.over_total(target);
        }
    }

    /// Past `--mailbox-total` after a copy for `conn`: the oldest held mailbox goes first;
    /// with none left, `conn`'s own oldest copies.
    fn over_total(&mut self, conn: ConnId) {
        while self.copies + self.holds.counted() > self.mailbox_total {
            if self.holds.discard_oldest(None) {
                continue;
            }
            let Some(c) = self.clients.get_mut(&conn) else {
                return;
            };
            let before = c.receipts.counted();
            if !c.receipts.forget_oldest() {
                return;
            }
            log::debug!("{} oldest copy forgotten: over --mailbox-total", c.tag);
            self.copies -= before - c.receipts.counted();
        }
    }

    /// Makes room under `--mailbox-total` for a line of `len` bytes that the mailbox of
    /// `key` will keep (the caller checked `--mailbox`), discarding other mailboxes, oldest
    /// first. False, with nothing discarded, if that cannot make room: a refused line
    /// changes nothing (§5.8).
    fn room_for(&mut self, key: NickKey, len: usize) -> bool {
        let need =
            (self.copies + self.holds.counted() + cost(len)).saturating_sub(self.mailbox_total);
        if need > self.holds.counted_except(key) {
            return false;
        }
        while self.copies + self.holds.counted() + cost(len) > self.mailbox_total {
            if !self.holds.discard_oldest(Some(key)) {
                return false;
            }
        }
        true
    }

    /// A direct `chatm` from `from` (its name, its session) to a name no client has: into
    /// its mailbox if it is held (§5.8), else NO-SUCH.
    fn chat_held(
        &mut self,
        conn: ConnId,
        key: Option<NickKey>,
        line: &str,
        to: &str,
        (from, session): (NickKey, ConnId),
    ) {
        let now = Instant::now();
        let held = key.and_then(|k| Some((k, self.holds.nick(k, now)?.clone())));
        let tag = self
            .clients
            .get(&conn)
            .map(|c| c.tag.as_str())
            .unwrap_or("");
        let Some((key, nick)) = held else {
            log::debug!(
                "{tag} chatm to {}: no such user",
                text::for_log(to.as_bytes())
            );
            let err = reply::no_such_user(to);
            return self.send(conn, &err);
        };
        // What the mailbox keeps its client owes receipts for once back: the names it
        // would owe are bounded as a connected client's are (§5.5), before any room is made.
        if let Some(names) = self.holds.full_for(key, from, self.mailbox) {
            log::info!(
                "{tag} chatm to {to}: {to} owes receipts to {names} senders already, refused"
            );
            return self.send(conn, &reply::receipts_full(to));
        }
        let kept = self.holds.fits(key, line.len(), self.mailbox)
            && self.room_for(key, line.len())
            && self
                .holds
                .put(key, line.as_bytes(), session, self.mailbox)
                .is_ok();
        let tag = self
            .clients
            .get(&conn)
            .map(|c| c.tag.as_str())
            .unwrap_or("");
        if kept {
            log::debug!("{tag} chatm to {nick}: held in its mailbox");
            self.send(conn, &reply::held_for(nick.as_str()));
        } else {
            log::info!("{tag} chatm to {nick}: mailbox of {nick} is full, nothing kept");
            self.send(conn, &reply::mailbox_full(nick.as_str()));
        }
    }

    pub(super) fn receipt(&mut self, conn: ConnId, line: String, sender: Range<usize>) {
        let Some(c) = self.clients.get_mut(&conn) else {
            return;
        };
        let name = line.get(sender).unwrap_or_default();
        let before = c.receipts.counted();
        let Some(session) = NickKey::of(name).and_then(|key| c.receipts.take(key)) else {
            let err = reply::no_receipt_awaited(name);
            return self.send(conn, &err);
        };
        self.copies -= before - c.receipts.counted();
        // The original sender: connected, or back under a new connection (§5.8).
        let to = match self.resumed.get(&session) {
            Some(&back) => back,
            None => session,
        };
        if let Some(c) = self.clients.get(&to) {
            let author = self.clients.get(&conn).map(|a| &a.outbox);
            return c.queue(
                to,
                line.as_bytes(),
                author,
                &mut self.wakes,
                &mut self.doomed,
            );
        }
        self.receipt_held(conn, &line, name, session);
    }

    /// A receipt for a sender that left: into the mailbox of its held name (§5.8), else
    /// dropped (logged).
    fn receipt_held(&mut self, conn: ConnId, line: &str, name: &str, session: ConnId) {
        let name = text::for_log(name.as_bytes());
        let tag = self
            .clients
            .get(&conn)
            .map(|c| c.tag.clone())
            .unwrap_or_default();
        // Not an expired hold, even one the hub (busy) has not ended yet: it would take
        // room from live mailboxes (`--mailbox-total`).
        let Some(key) = self.holds.session_name(session, Instant::now()) else {
            return log::debug!("{tag} receipt for {name}: sender has left, dropped");
        };
        // No room in all (`--mailbox-total`) is no room in the mailbox; and room is made
        // only for a receipt the mailbox will keep.
        let max =
            if self.holds.fits(key, line.len(), self.mailbox) && self.room_for(key, line.len()) {
                self.mailbox
            } else {
                0
            };
        match self.holds.put_receipt(session, line.as_bytes(), max) {
            Some((true, held)) => log::debug!("{tag} receipt for {name}: held for {held}"),
            Some((false, held)) => {
                log::info!("{tag} receipt for {name}: mailbox of {held} is full, lost")
            }
            None => log::debug!("{tag} receipt for {name}: sender has left, dropped"),
        }
    }
}
