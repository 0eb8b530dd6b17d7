//! Name holds (xscp(7) §5.7): a departed client's name is kept for its address for
//! `--hold`; meanwhile that address gets it back (`welcome back`) and any other is refused.
//! Holds are bounded per address first (`--max-holds-per-ip`: an address at its bound loses
//! its own oldest hold, so that no address can push out another's), then in total
//! (`--max-holds`: the oldest hold of the address holding the most goes). Each hold keeps
//! the name's mailbox (§5.8), which lives exactly as long as the hold.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use super::fastmap::FastMap;
use super::mailbox::{Full, Mailbox, cost};
use crate::clock::Utc;
use crate::conn_id::ConnId;
use crate::protocol::nick::{Nick, NickKey};
use crate::protocol::reply;
use crate::state::SavedHold;

#[derive(Debug)]
struct Hold {
    nick: Nick,
    ip: IpAddr,
    until: Instant,
    /// The departed client's session (the connection that began it).
    session: ConnId,
    /// The departed client's log tag.
    tag: String,
    mailbox: Mailbox,
}

/// The name is held for another address: which, and until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldElsewhere {
    /// The address it is held for.
    pub ip: IpAddr,
    /// The end of the hold.
    pub until: Instant,
}

impl fmt::Display for HeldElsewhere {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "held for {} {}", self.ip, Until(self.until))
    }
}

/// `for 287s more (until 22:41:07 UTC)`: how long from now, and the wall-clock time.
pub struct Until(pub Instant);

impl fmt::Display for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let left = self.0.saturating_duration_since(Instant::now());
        let left = Duration::from_millis(left.as_millis() as u64);
        let wall = Utc::at(SystemTime::now() + left).time();
        write!(f, "for {}s more (until {wall} UTC)", reply::seconds(left))
    }
}

/// A hold taken back from its address: the session it continues and its mailbox.
#[derive(Debug)]
pub struct Resumed {
    /// The departed client's session.
    pub session: ConnId,
    /// What was kept for it.
    pub mailbox: Mailbox,
}

/// What the holds keep, for the audit of a shutdown that discards them (§5.8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HoldCounts {
    /// Names held.
    pub holds: usize,
    /// Lines in their mailboxes.
    pub lines: usize,
    /// Lines their mailboxes lost.
    pub lost: u64,
}

/// Names held for the address of a client that left, bounded in number.
#[derive(Debug)]
pub struct Holds {
    /// How long a hold lasts (zero: names are not held).
    ttl: Duration,
    /// The most holds at once.
    max: usize,
    /// The most holds at once for one address.
    max_per_ip: usize,
    map: HashMap<NickKey, Hold>,
    /// The holds of each address, oldest first (at most `max_per_ip` each).
    by_ip: HashMap<IpAddr, VecDeque<NickKey>>,
    /// Insertion order, which is expiry order (every hold lasts as long). Entries of holds
    /// taken back stay until they reach the front or the queue is compacted, which keeps
    /// it within twice the live holds (plus a little).
    order: VecDeque<(NickKey, Instant)>,
    /// The held names by the session of their departed client (for receipts).
    sessions: FastMap<ConnId, NickKey>,
    /// The memory of all mailboxes as counted against `--mailbox-total`.
    counted: usize,
}

/// Stale entries the expiry queue may hold beyond as many as there are holds.
const ORDER_SLACK: usize = 64;

impl Holds {
    /// No holds; each will last `ttl`, and at most `max` are kept, `max_per_ip` for one
    /// address.
    pub fn new(ttl: Duration, max: usize, max_per_ip: usize) -> Holds {
        Holds {
            ttl,
            max: max.max(1),
            max_per_ip: max_per_ip.max(1),
            map: HashMap::new(),
            by_ip: HashMap::new(),
            order: VecDeque::new(),
            sessions: FastMap::default(),
            counted: 0,
        }
    }

    /// Holds `nick`, the name of the client `tag` (of `session`) that left, for `ip` from
    /// `now`, with `mailbox`, dropping a hold past the bounds (the oldest of `ip` at its
    /// own bound, else past the total the oldest of the address holding the most). With
    /// `--hold 0` nothing is held and the mailbox is discarded. Logs the decision and the
    /// counts.
    pub fn hold(
        &mut self,
        tag: &str,
        nick: Nick,
        ip: IpAddr,
        session: ConnId,
        mailbox: Mailbox,
        now: Instant,
    ) {
        let (held, lost) = (mailbox.held(), mailbox.lost());
        if self.ttl.is_zero() {
            if held > 0 || lost > 0 {
                log::info!(
                    "{tag} name {nick} not held (--hold 0): mailbox discarded \
                     ({held} held, {lost} lost)"
                );
            }
            return;
        }
        let until = now + self.ttl;
        log::info!(
            "{tag} name {nick} held for {ip} {}: mailbox of {nick} ({held} held, {lost} lost)",
            Until(until)
        );
        let hold = Hold {
            nick,
            ip,
            until,
            session,
            tag: tag.to_string(),
            mailbox,
        };
        self.insert(hold, now);
    }

    /// Adds `hold`, which ends no earlier than every hold already kept, dropping a hold
    /// past the bounds first (the oldest of its address at its own bound, else past the
    /// total the oldest of the address holding the most).
    fn insert(&mut self, hold: Hold, now: Instant) {
        let (key, ip) = (hold.nick.key(), hold.ip);
        self.purge(now);
        // §5.7: the address's own oldest first, so that no address pushes out another's.
        if self
            .by_ip
            .get(&ip)
            .is_some_and(|q| q.len() >= self.max_per_ip)
        {
            let oldest = self.by_ip.get(&ip).and_then(|q| q.front().copied());
            if let Some(oldest) = oldest {
                self.drop_early(
                    oldest,
                    "too many holds for its address (--max-holds-per-ip)",
                );
            }
        }
        if self.map.len() >= self.max {
            // Past the total: the oldest hold of the address holding the most once this
            // one is added; of two holding as many, the one adding it (an address that
            // catches up with another pushes out its own), else the one whose oldest
            // hold is older.
            let map = &self.map;
            let most = self
                .by_ip
                .iter()
                .filter_map(|(at, q)| {
                    let front = *q.front()?;
                    let adding = *at == ip;
                    let held = q.len() + usize::from(adding);
                    let age = std::cmp::Reverse(map.get(&front)?.until);
                    Some((held, adding, age, front))
                })
                .max();
            if let Some((_, _, _, oldest)) = most {
                self.drop_early(
                    oldest,
                    "too many holds (--max-holds), its address holds the most",
                );
            }
        }
        self.order.push_back((key, hold.until));
        self.sessions.insert(hold.session, key);
        self.counted += hold.mailbox.counted();
        self.by_ip.entry(ip).or_default().push_back(key);
        if let Some(old) = self.map.insert(key, hold) {
            // Cannot happen (a held name has no client), but keep the books right.
            self.forget(&old);
        }
    }

    /// Ends the hold on `key` before its term, discarding its mailbox (logged with `why`
    /// and the counts).
    fn drop_early(&mut self, key: NickKey, why: &str) {
        self.end(key, format_args!("dropped: {why}"));
    }

    /// Ends the hold on `key`, discarding its mailbox: logged with `how` and the counts.
    fn end(&mut self, key: NickKey, how: fmt::Arguments<'_>) {
        let Some(h) = self.map.remove(&key) else {
            return;
        };
        self.forget(&h);
        log::info!(
            "{} hold on {} for {} {how}: mailbox of {} discarded ({} held, {} lost)",
            h.tag,
            h.nick,
            h.ip,
            h.nick,
            h.mailbox.held(),
            h.mailbox.lost()
        );
    }

    /// Claims `key` for a client from `ip` at `now`: `Ok(Some(..))` if it was held for
    /// `ip` (the hold ends: welcome back, with the mailbox), `Ok(None)` if it was not held,
    /// `Err` if it is held for another address.
    pub fn take(
        &mut self,
        key: NickKey,
        ip: IpAddr,
        now: Instant,
    ) -> Result<Option<Resumed>, HeldElsewhere> {
        self.purge(now);
        match self.map.get(&key) {
            Some(h) if h.ip != ip => Err(HeldElsewhere {
                ip: h.ip,
                until: h.until,
            }),
            Some(_) => {
                let Some(h) = self.map.remove(&key) else {
                    return Ok(None);
                };
                self.forget(&h);
                Ok(Some(Resumed {
                    session: h.session,
                    mailbox: h.mailbox,
                }))
            }
            None => Ok(None),
        }
    }

    /// Takes the books of a hold that ends.
    fn forget(&mut self, h: &Hold) {
        self.sessions.remove(&h.session);
        self.counted -= h.mailbox.counted();
        let key = h.nick.key();
        if let Some(q) = self.by_ip.get_mut(&h.ip) {
            if let Some(i) = q.iter().position(|&k| k == key) {
                q.remove(i);
            }
            if q.is_empty() {
                self.by_ip.remove(&h.ip);
            }
        }
        if self.order.len() > 2 * self.map.len() + ORDER_SLACK {
            let map = &self.map;
            self.order
                .retain(|(k, until)| map.get(k).is_some_and(|h| h.until == *until));
        }
    }

    /// Ends the holds expired at `now`, discarding their mailboxes (logged).
    pub fn purge(&mut self, now: Instant) {
        while let Some(&(key, until)) = self.order.front() {
            if until > now {
                break;
            }
            self.order.pop_front();
            if self.map.get(&key).is_none_or(|h| h.until != until) {
                continue; // Taken back before.
            }
            self.end(key, format_args!("expired"));
        }
    }

    /// Moves the expiry of `name`'s hold (all holds: `None`) `by` earlier, as if that
    /// much time had passed for it (tests; a single hold must be the oldest, so that the
    /// expiry order stays true).
    #[cfg(test)]
    pub fn backdate(&mut self, name: Option<&str>, by: Duration) {
        let key = name.and_then(|n| Nick::parse(n).ok()).map(|n| n.key());
        let earlier = |t: Instant| t.checked_sub(by).unwrap_or(t);
        for (k, hold) in &mut self.map {
            if key.is_none_or(|key| key == *k) {
                hold.until = earlier(hold.until);
            }
        }
        for (k, until) in &mut self.order {
            if key.is_none_or(|key| key == *k) {
                *until = earlier(*until);
            }
        }
    }

    /// When the oldest hold expires, if any is held.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.order.front().map(|&(_, until)| until)
    }

    /// The name held under `key`, if held at `now`.
    pub fn nick(&mut self, key: NickKey, now: Instant) -> Option<&Nick> {
        self.purge(now);
        self.map.get(&key).map(|h| &h.nick)
    }

    /// The address and term of the hold on `key`, if held at `now`.
    pub fn held(&mut self, key: NickKey, now: Instant) -> Option<HeldElsewhere> {
        self.purge(now);
        self.map.get(&key).map(|h| HeldElsewhere {
            ip: h.ip,
            until: h.until,
        })
    }

    /// Would the mailbox of the held name `key` take `line_len` more bytes within `max`?
    pub fn fits(&self, key: NickKey, line_len: usize, max: usize) -> bool {
        self.map
            .get(&key)
            .is_some_and(|h| h.mailbox.fits(line_len, max))
    }

    /// Whether the mailbox of the held name `key` refuses a `chatm` from `from`: its
    /// returning client would owe receipts to too many names (see [`Mailbox::full_for`]).
    /// The count of names it comes from, if so.
    pub fn full_for(&self, key: NickKey, from: NickKey, max: usize) -> Option<usize> {
        let h = self.map.get(&key)?;
        h.mailbox.full_for(from, max).then(|| h.mailbox.names())
    }

    /// What every hold keeps: names, lines and lost lines.
    pub fn counts(&self) -> HoldCounts {
        self.map
            .values()
            .fold(HoldCounts::default(), |c, h| HoldCounts {
                holds: c.holds + 1,
                lines: c.lines + h.mailbox.held(),
                lost: c.lost.saturating_add(h.mailbox.lost()),
            })
    }

    /// Puts the `chatm` `line`, sent in `session`, into the mailbox of the held name
    /// `key`, within `max` bytes.
    pub fn put(
        &mut self,
        key: NickKey,
        line: &[u8],
        session: ConnId,
        max: usize,
    ) -> Result<(), Full> {
        let h = self.map.get_mut(&key).ok_or(Full)?;
        h.mailbox.put(line, Some(session), max)?;
        self.counted += cost(line.len());
        Ok(())
    }

    /// Puts the receipt `line` into the mailbox of the name held for `session`'s departed
    /// client, within `max` bytes (else counted lost there). `None` if no name is held for
    /// it; else whether it was kept, and for which name.
    pub fn put_receipt(
        &mut self,
        session: ConnId,
        line: &[u8],
        max: usize,
    ) -> Option<(bool, &Nick)> {
        let key = self.sessions.get(&session)?;
        let h = self.map.get_mut(key)?;
        let kept = h.mailbox.put_receipt(line, max);
        if kept {
            self.counted += cost(line.len());
        }
        Some((kept, &h.nick))
    }

    /// Is a name held for `session`'s departed client?
    #[cfg(test)]
    pub fn holds_session(&self, session: ConnId) -> bool {
        self.sessions.contains_key(&session)
    }

    /// The name held at `now` for `session`'s departed client, if any.
    pub fn session_name(&mut self, session: ConnId, now: Instant) -> Option<NickKey> {
        self.purge(now);
        self.sessions.get(&session).copied()
    }

    /// Discards the oldest non-empty mailbox other than `except`'s (`--mailbox-total`),
    /// keeping its hold; its lines count as lost. False if there was none.
    pub fn discard_oldest(&mut self, except: Option<NickKey>) -> bool {
        let found = self.order.iter().find_map(|&(key, until)| {
            let h = self.map.get(&key)?;
            (h.until == until && h.mailbox.held() > 0 && Some(key) != except).then_some(key)
        });
        let Some(h) = found.and_then(|key| self.map.get_mut(&key)) else {
            return false;
        };
        log::warn!(
            "{} mailbox of {} held for {} discarded: over --mailbox-total ({} held, {} lost)",
            h.tag,
            h.nick,
            h.ip,
            h.mailbox.held(),
            h.mailbox.lost()
        );
        self.counted -= h.mailbox.counted();
        h.mailbox.discard();
        true
    }

    /// The memory of all mailboxes as counted against `--mailbox-total`.
    pub fn counted(&self) -> usize {
        self.counted
    }

    /// The memory of the mailboxes other than `key`'s as counted against
    /// `--mailbox-total`: what discarding them could free.
    pub fn counted_except(&self, key: NickKey) -> usize {
        self.counted - self.map.get(&key).map_or(0, |h| h.mailbox.counted())
    }

    /// `--state` (xscp(7) §5.9): every hold as the state file keeps it, its expiry as
    /// wall-clock time (`now` and `wall` being the same moment).
    pub fn saved(&self, now: Instant, wall: SystemTime) -> impl Iterator<Item = SavedHold> {
        self.map.values().map(move |h| {
            let (wire, senders) = h.mailbox.shared();
            SavedHold {
                nick: h.nick.clone(),
                ip: h.ip,
                until: wall + h.until.saturating_duration_since(now),
                session: h.session,
                lost: h.mailbox.lost(),
                wire,
                senders,
            }
        })
    }

    /// `--state`: takes back a hold saved by an earlier run, under `session`, until
    /// `until`. Restored oldest first, they keep the expiry queue in order (none lasts past
    /// `--hold` from now, as a new hold would); the bounds apply as to any new hold
    /// (logged).
    pub fn restore(
        &mut self,
        nick: Nick,
        ip: IpAddr,
        until: Instant,
        session: ConnId,
        mailbox: Mailbox,
        now: Instant,
    ) {
        let hold = Hold {
            nick,
            ip,
            until,
            session,
            tag: "state:".to_string(),
            mailbox,
        };
        self.insert(hold, now);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const HERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    const THERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    const TTL: Duration = Duration::from_secs(10);

    fn nick(name: &str) -> Nick {
        Nick::parse(name).expect("test nickname")
    }

    fn key(name: &str) -> NickKey {
        nick(name).key()
    }

    fn hold(holds: &mut Holds, name: &str, ip: IpAddr, now: Instant) {
        holds.hold("test", nick(name), ip, 1, Mailbox::default(), now);
    }

    /// Holds each of `names` for its address, a second apart from `t0` on; says when the
    /// next second begins.
    fn hold_in_turn(holds: &mut Holds, t0: Instant, names: &[(&str, IpAddr)]) -> Instant {
        let mut at = t0;
        for (name, ip) in names {
            hold(holds, name, *ip, at);
            at += Duration::from_secs(1);
        }
        at
    }

    /// `take`, with the welcome back as a bool.
    fn take(holds: &mut Holds, name: &str, ip: IpAddr, now: Instant) -> Result<bool, IpAddr> {
        holds
            .take(key(name), ip, now)
            .map(|r| r.is_some())
            .map_err(|e| e.ip)
    }

    #[test]
    fn a_hold_is_for_its_address_until_it_expires() {
        let t0 = Instant::now();
        let mut holds = Holds::new(TTL, 8, 8);
        hold(&mut holds, "alice", HERE, t0);
        assert_eq!(take(&mut holds, "ALICE", THERE, t0), Err(HERE));
        let before = t0 + TTL - Duration::from_millis(1);
        assert_eq!(take(&mut holds, "alice", THERE, before), Err(HERE));
        // Expired: free for anyone, no welcome back.
        assert_eq!(take(&mut holds, "alice", THERE, t0 + TTL), Ok(false));
        assert_eq!(take(&mut holds, "alice", HERE, t0 + TTL), Ok(false));
    }

    #[test]
    fn taking_a_hold_from_its_address_ends_it() {
        let t0 = Instant::now();
        let mut holds = Holds::new(TTL, 8, 8);
        hold(&mut holds, "alice", HERE, t0);
        assert_eq!(take(&mut holds, "Alice", HERE, t0 + TTL / 2), Ok(true));
        assert_eq!(take(&mut holds, "alice", HERE, t0 + TTL / 2), Ok(false));
        assert_eq!(take(&mut holds, "alice", THERE, t0 + TTL / 2), Ok(false));
    }

    #[test]
    fn hold_zero_holds_nothing() {
        let t0 = Instant::now();
        let mut holds = Holds::new(Duration::ZERO, 8, 8);
        hold(&mut holds, "alice", HERE, t0);
        assert_eq!(take(&mut holds, "alice", THERE, t0), Ok(false));
    }

    #[test]
    fn past_the_bound_the_oldest_hold_is_dropped() {
        let t0 = Instant::now();
        let mut holds = Holds::new(TTL, 2, 2);
        for (i, name) in ["a1", "b2", "c3"].into_iter().enumerate() {
            hold(&mut holds, name, HERE, t0 + Duration::from_secs(i as u64));
        }
        let now = t0 + Duration::from_secs(3);
        assert_eq!(take(&mut holds, "a1", THERE, now), Ok(false));
        assert_eq!(take(&mut holds, "b2", THERE, now), Err(HERE));
        assert_eq!(take(&mut holds, "c3", THERE, now), Err(HERE));
    }

    #[test]
    fn a_name_held_again_lasts_its_new_term() {
        // The first hold's expiry must not end the second (its order entry is stale).
        let t0 = Instant::now();
        let mut holds = Holds::new(TTL, 8, 8);
        hold(&mut holds, "alice", HERE, t0);
        assert_eq!(take(&mut holds, "alice", HERE, t0 + TTL / 2), Ok(true));
        hold(&mut holds, "alice", HERE, t0 + TTL / 2);
        assert_eq!(take(&mut holds, "alice", THERE, t0 + TTL), Err(HERE));
        assert_eq!(
            take(&mut holds, "alice", THERE, t0 + TTL * 3 / 2),
            Ok(false)
        );
    }

    /// Issue 9: hold, welcome back, hold again... must not grow the expiry queue (before,
    /// every hold taken back left its entry until it expired).
    #[test]
    fn taking_holds_back_keeps_the_expiry_queue_bounded() {
        let t0 = Instant::now();
        let mut holds = Holds::new(TTL, 8, 8);
        hold(&mut holds, "other", HERE, t0);
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i));
            hold(&mut holds, "same0", HERE, now);
            assert_eq!(take(&mut holds, "same0", HERE, now), Ok(true));
            assert!(holds.order.len() <= 2 * holds.map.len() + ORDER_SLACK + 1);
        }
        assert_eq!(holds.map.len(), 1);
        assert!(holds.sessions.len() <= 1);
    }

    #[test]
    fn the_mailbox_comes_back_with_the_hold_and_ends_with_it() {
        let t0 = Instant::now();
        let mut holds = Holds::new(TTL, 8, 8);
        let mut m = Mailbox::with_lost(1);
        m.keep(b"chatm bob alice hi\r\n", None);
        holds.hold("test", nick("alice"), HERE, 7, m, t0);
        assert_eq!(holds.counted(), cost(20));
        assert!(holds.holds_session(7));
        let back = holds.take(key("alice"), HERE, t0).expect("held here");
        let back = back.expect("welcome back");
        assert_eq!(back.session, 7);
        assert_eq!((back.mailbox.held(), back.mailbox.lost()), (1, 1));
        assert_eq!((holds.counted(), holds.holds_session(7)), (0, false));
        // Expiry ends another one's mailbox with its hold.
        holds.hold("test", nick("bob"), HERE, 8, Mailbox::default(), t0);
        assert!(holds.put(key("bob"), b"x\r\n", 3, 64).is_ok());
        assert_eq!(holds.counted(), cost(3));
        holds.purge(t0 + TTL);
        assert_eq!((holds.counted(), holds.holds_session(8)), (0, false));
        assert!(holds.nick(key("bob"), t0 + TTL).is_none());
    }

    #[test]
    fn mailboxes_take_lines_within_the_bound() {
        let t0 = Instant::now();
        let mut holds = Holds::new(TTL, 8, 8);
        hold(&mut holds, "alice", HERE, t0);
        let from = 2;
        assert_eq!(holds.put(key("alice"), &[b'x'; 40], from, 64), Ok(()));
        assert_eq!(holds.put(key("alice"), &[b'y'; 40], from, 64), Err(Full));
        assert_eq!(holds.put(key("nobody"), b"x", from, 64), Err(Full));
        // The held client's session 1: a receipt for it.
        assert!(matches!(
            holds.put_receipt(1, &[b'r'; 24], 64),
            Some((true, _))
        ));
        assert!(matches!(holds.put_receipt(1, b"r", 64), Some((false, _))));
        assert!(holds.put_receipt(99, b"r", 64).is_none());
        assert_eq!(holds.counted(), cost(40) + cost(24));
        let m = holds
            .take(key("alice"), HERE, t0)
            .ok()
            .flatten()
            .expect("back");
        assert_eq!((m.mailbox.held(), m.mailbox.lost()), (2, 1));
    }

    #[test]
    fn the_oldest_mailbox_is_discarded_first_and_the_hold_kept() {
        let t0 = Instant::now();
        let mut holds = Holds::new(TTL, 8, 8);
        for (i, name) in ["a1", "b2", "c3"].into_iter().enumerate() {
            hold(&mut holds, name, HERE, t0 + Duration::from_secs(i as u64));
        }
        let from = 2;
        for name in ["b2", "c3"] {
            assert_eq!(holds.put(key(name), b"m\r\n", from, 64), Ok(()));
        }
        // a1 has nothing to discard; b2 is the oldest with lines, unless excepted.
        assert!(holds.discard_oldest(Some(key("b2"))));
        assert!(holds.discard_oldest(None));
        assert!(!holds.discard_oldest(None));
        assert_eq!(holds.counted(), 0);
        let now = t0 + Duration::from_secs(3);
        for name in ["b2", "c3"] {
            let back = holds
                .take(key(name), HERE, now)
                .ok()
                .flatten()
                .expect("held");
            assert_eq!((back.mailbox.held(), back.mailbox.lost()), (0, 1), "{name}");
        }
    }

    /// Issue 18: an address at its bound loses its own oldest hold, never another's.
    #[test]
    fn an_address_at_its_bound_loses_its_own_oldest() {
        let t0 = Instant::now();
        let mut holds = Holds::new(TTL, 100, 2);
        hold(&mut holds, "vic", HERE, t0);
        for (i, name) in ["m1", "m2", "m3"].into_iter().enumerate() {
            hold(
                &mut holds,
                name,
                THERE,
                t0 + Duration::from_secs(i as u64 + 1),
            );
        }
        let now = t0 + Duration::from_secs(5);
        assert_eq!(take(&mut holds, "m1", HERE, now), Ok(false));
        assert_eq!(take(&mut holds, "m2", HERE, now), Err(THERE));
        assert_eq!(take(&mut holds, "vic", THERE, now), Err(HERE));
        assert_eq!(holds.counts().holds, 3);
    }

    /// Issue 18: past the total the oldest hold of the address holding the most goes.
    #[test]
    fn past_the_total_the_address_holding_the_most_loses_first() {
        let mut holds = Holds::new(TTL, 3, 3);
        let third = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
        let in_turn = [("vic", HERE), ("m1", THERE), ("m2", THERE), ("nu", third)];
        let now = hold_in_turn(&mut holds, Instant::now(), &in_turn);
        assert_eq!(take(&mut holds, "m1", HERE, now), Ok(false));
        assert_eq!(take(&mut holds, "vic", THERE, now), Err(HERE));
        assert_eq!(take(&mut holds, "m2", HERE, now), Err(THERE));
        assert_eq!(take(&mut holds, "nu", HERE, now), Err(third));
    }

    /// Past the total, an address that only catches up with another (as many holds once
    /// its new one is counted) loses its own oldest hold, though the other's is older.
    #[test]
    fn an_address_that_draws_level_pushes_out_its_own_hold() {
        let mut holds = Holds::new(TTL, 3, 64);
        let in_turn = [("vic1", HERE), ("vic2", HERE), ("m1", THERE), ("m2", THERE)];
        let now = hold_in_turn(&mut holds, Instant::now(), &in_turn);
        assert_eq!(take(&mut holds, "vic1", THERE, now), Err(HERE));
        assert_eq!(take(&mut holds, "vic2", THERE, now), Err(HERE));
        assert_eq!(take(&mut holds, "m1", HERE, now), Ok(false));
        assert_eq!(take(&mut holds, "m2", HERE, now), Err(THERE));
    }

    /// Past the total, an address that catches up with another counts the hold it adds:
    /// it then holds the most, and its own oldest hold goes, not the other's (§5.7: no
    /// address pushes out another's holds).
    #[test]
    fn an_address_that_catches_up_pushes_out_its_own_hold() {
        let mut holds = Holds::new(TTL, 4, 64);
        let in_turn = [
            ("vic1", HERE),
            ("vic2", HERE),
            ("m1", THERE),
            ("m2", THERE),
            ("m3", THERE),
        ];
        let now = hold_in_turn(&mut holds, Instant::now(), &in_turn);
        assert_eq!(take(&mut holds, "vic1", THERE, now), Err(HERE));
        assert_eq!(take(&mut holds, "vic2", THERE, now), Err(HERE));
        assert_eq!(
            take(&mut holds, "m1", HERE, now),
            Ok(false),
            "m1 is still held"
        );
    }
}
