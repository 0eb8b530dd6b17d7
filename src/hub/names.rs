//! The names rule of the hub (xscp(7) §5.1 uname, §5.4 cname; §5.7, §5.8): claiming a
//! name, a registration (or a return to a name held for the address, which resumes its
//! session) and a rename.

use std::net::IpAddr;
use std::time::Instant;

use super::holds::{HeldElsewhere, Resumed};
use super::{Answer, Hub, Output};
use crate::conn_id::ConnId;
use crate::protocol::nick::{Nick, NickKey};
use crate::protocol::reply::{self, Code};
use crate::protocol::request::Attempt;
use crate::protocol::session;

impl<O: Output> Hub<O> {
    /// Is `key` free for `conn`, or held for its address (`Some`: welcome back, with the
    /// session and mailbox it resumes)? `Err` if a connected client has it or it is held
    /// for another address.
    fn claim(&mut self, conn: ConnId, key: NickKey, ip: IpAddr) -> Result<Option<Resumed>, Taken> {
        if let Some(&owner) = self.names.get(&key).filter(|&&owner| owner != conn) {
            return Err(Taken::Connected(owner));
        }
        self.holds
            .take(key, ip, Instant::now())
            .map_err(Taken::Held)
    }

    /// Why a name is taken, for the log: `by conn=.. peer=..`, or `held for .. for ..`.
    fn taken_text(&self, taken: Taken) -> String {
        match taken {
            Taken::Connected(owner) => match self.clients.get(&owner) {
                Some(c) => format!("in use by {}", c.tag),
                None => format!("in use by conn={owner}"),
            },
            Taken::Held(h) => h.to_string(),
        }
    }

    /// `uname`: registers `nick` for `conn` and sends the `+OK` (or the welcome back and the
    /// mailbox). A name taken is a failed `attempt`, logged and replied to here, before the
    /// session learns of it (§6); after the last the session closes.
    pub(super) fn register(&mut self, conn: ConnId, nick: Nick, attempt: Attempt) -> Answer {
        let Some(ip) = self.clients.get(&conn).map(|c| c.ip) else {
            return Answer::Gone;
        };
        let key = nick.key();
        let resumed = match self.claim(conn, key, ip) {
            Ok(resumed) => resumed,
            Err(taken) => {
                if let Some(c) = self.clients.get(&conn) {
                    log::debug!("{} uname {nick}: {}", c.tag, self.taken_text(taken));
                    let text = reply::in_use_text(nick.as_str());
                    let lines = session::failed_attempt(&c.tag, Code::InUse, text, attempt);
                    c.respond(conn, lines.as_bytes(), &mut self.wakes);
                }
                return Answer::InUse;
            }
        };
        self.names.insert(key, conn);
        let welcome_back = resumed.is_some();
        if let Some(c) = self.clients.get_mut(&conn) {
            c.nick = Some(nick.clone());
            // The transition first, then the lines it lets through (§7: a causal log).
            session::log_registration(&c.tag, &nick, welcome_back);
        }
        match resumed {
            Some(r) => self.resume(conn, &nick, r),
            None => self.send(conn, &reply::you_are(nick.as_str())),
        }
        self.notify(conn, &reply::notif_join(nick.as_str()));
        Answer::Registered { nick, welcome_back }
    }

    /// `conn` came back to `nick`, held for its address: it continues the departed
    /// client's session, and gets the mailbox at once after its `welcome back` (§5.8).
    /// Every replayed `chatm` awaits its receipt (and is copied) again.
    fn resume(&mut self, conn: ConnId, nick: &Nick, r: Resumed) {
        let Resumed { session, mailbox } = r;
        let (held, lost) = (mailbox.held(), mailbox.lost());
        let text = reply::welcome_back(nick.as_str(), held, lost);
        self.resumed.insert(session, conn);
        let Some(c) = self.clients.get_mut(&conn) else {
            return;
        };
        log::info!(
            "{} resumed {nick}: mailbox of {nick} delivered ({held} held, {lost} lost)",
            c.tag
        );
        c.session = session;
        // The welcome back and the replay answer the client's own `uname`.
        c.respond(conn, text.as_bytes(), &mut self.wakes);
        if held == 0 {
            return;
        }
        c.respond(conn, mailbox.wire(), &mut self.wakes);
        // A replayed `chatr` awaits no receipt: it is delivered at most once (§5.8).
        for (line, from) in mailbox.entries() {
            if let Some((from, sender)) = from {
                c.receipts.expect(from, sender, line, self.mailbox);
            }
        }
        self.copies += c.receipts.counted();
    }

    pub(super) fn rename(&mut self, conn: ConnId, new: Nick) -> Answer {
        let Some(Some(old)) = self.clients.get(&conn).map(|c| c.nick.clone()) else {
            return Answer::Gone;
        };
        let key = new.key();
        // A held name is reserved for its returning `uname` (§5.7): IN-USE from every
        // address, the holder's own included.
        let taken = match self.names.get(&key) {
            Some(&owner) if owner != conn => Some(Taken::Connected(owner)),
            _ => self.holds.held(key, Instant::now()).map(Taken::Held),
        };
        if let Some(taken) = taken {
            if let Some(c) = self.clients.get(&conn) {
                log::debug!("{} cname {old} -> {new}: {}", c.tag, self.taken_text(taken));
            }
            self.send(conn, &reply::in_use(new.as_str()));
            return Answer::NotRenamed;
        }
        self.names.remove(&old.key());
        self.names.insert(key, conn);
        if let Some(c) = self.clients.get_mut(&conn) {
            log::info!("{} renamed {old} -> {new}", c.tag);
            c.nick = Some(new.clone());
        }
        self.send(conn, &reply::name_changed(old.as_str(), new.as_str()));
        self.notify(conn, &reply::notif_cname(old.as_str(), new.as_str()));
        Answer::Renamed(new)
    }
}

/// Why a name cannot be claimed.
#[derive(Clone, Copy, Debug)]
enum Taken {
    /// A connected client has it.
    Connected(ConnId),
    /// It is held (for another address, or for a `cname` for any).
    Held(HeldElsewhere),
}
