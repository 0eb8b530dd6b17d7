//! Name holds (PROTOCOL.md §5.7): a departed client's name is kept for its address for
//! `--hold`; meanwhile that address gets it back (`welcome back`) and any other is refused.
//! Holds are bounded in number: past the bound the oldest is dropped.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::protocol::nick::{Nick, NickKey};

#[derive(Debug)]
struct Hold {
    nick: Nick,
    ip: IpAddr,
    until: Instant,
}

/// The name is held for another address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldElsewhere;

/// Names held for the address of a client that left, bounded in number.
#[derive(Debug)]
pub struct Holds {
    /// How long a hold lasts (zero: names are not held).
    ttl: Duration,
    /// The most holds at once.
    max: usize,
    map: HashMap<NickKey, Hold>,
    /// Insertion order, which is expiry order (every hold lasts as long).
    order: VecDeque<(NickKey, Instant)>,
}

impl Holds {
    /// No holds; each will last `ttl`, and at most `max` are kept.
    pub fn new(ttl: Duration, max: usize) -> Holds {
        Holds {
            ttl,
            max,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Holds `nick`, the name of the client `tag` that left, for `ip` from `now`, dropping
    /// the oldest hold past the bound. Nothing with `--hold 0`.
    pub fn hold(&mut self, tag: &str, nick: Nick, ip: IpAddr, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        log::debug!("{tag} name {nick} held for {ip} until expiry");
        let key = nick.key();
        let until = now + self.ttl;
        self.order.push_back((key, until));
        self.map.insert(key, Hold { nick, ip, until });
        self.purge(now);
    }

    /// Claims `key` for a client from `ip` at `now`: `Ok(true)` if it was held for `ip`
    /// (the hold ends: welcome back), `Ok(false)` if it was not held, `Err` if it is held
    /// for another address.
    pub fn take(&mut self, key: NickKey, ip: IpAddr, now: Instant) -> Result<bool, HeldElsewhere> {
        self.purge(now);
        match self.map.get(&key) {
            Some(h) if h.ip != ip => Err(HeldElsewhere),
            Some(_) => {
                self.map.remove(&key);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Ends the holds expired at `now`, and the oldest past the bound.
    pub fn purge(&mut self, now: Instant) {
        while let Some(&(key, until)) = self.order.front() {
            if until > now && self.map.len() <= self.max {
                break;
            }
            self.order.pop_front();
            if self.map.get(&key).is_some_and(|h| h.until == until) {
                let h = self.map.remove(&key);
                if let Some(h) = h.filter(|h| h.until > now) {
                    log::debug!("hold on {} for {} dropped: too many holds", h.nick, h.ip);
                }
            }
        }
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

    #[test]
    fn a_hold_is_for_its_address_until_it_expires() {
        let t0 = Instant::now();
        let mut holds = Holds::new(TTL, 8);
        holds.hold("test", nick("alice"), HERE, t0);
        assert_eq!(holds.take(key("ALICE"), THERE, t0), Err(HeldElsewhere));
        assert_eq!(
            holds.take(key("alice"), THERE, t0 + TTL - Duration::from_millis(1)),
            Err(HeldElsewhere)
        );
        // Expired: free for anyone, no welcome back.
        assert_eq!(holds.take(key("alice"), THERE, t0 + TTL), Ok(false));
        assert_eq!(holds.take(key("alice"), HERE, t0 + TTL), Ok(false));
    }

    #[test]
    fn taking_a_hold_from_its_address_ends_it() {
        let t0 = Instant::now();
        let mut holds = Holds::new(TTL, 8);
        holds.hold("test", nick("alice"), HERE, t0);
        assert_eq!(holds.take(key("Alice"), HERE, t0 + TTL / 2), Ok(true));
        assert_eq!(holds.take(key("alice"), HERE, t0 + TTL / 2), Ok(false));
        assert_eq!(holds.take(key("alice"), THERE, t0 + TTL / 2), Ok(false));
    }

    #[test]
    fn hold_zero_holds_nothing() {
        let t0 = Instant::now();
        let mut holds = Holds::new(Duration::ZERO, 8);
        holds.hold("test", nick("alice"), HERE, t0);
        assert_eq!(holds.take(key("alice"), THERE, t0), Ok(false));
    }

    #[test]
    fn past_the_bound_the_oldest_hold_is_dropped() {
        let t0 = Instant::now();
        let mut holds = Holds::new(TTL, 2);
        for (i, name) in ["a1", "b2", "c3"].into_iter().enumerate() {
            holds.hold("test", nick(name), HERE, t0 + Duration::from_secs(i as u64));
        }
        let now = t0 + Duration::from_secs(3);
        assert_eq!(holds.take(key("a1"), THERE, now), Ok(false));
        assert_eq!(holds.take(key("b2"), THERE, now), Err(HeldElsewhere));
        assert_eq!(holds.take(key("c3"), THERE, now), Err(HeldElsewhere));
    }

    #[test]
    fn a_name_held_again_lasts_its_new_term() {
        // The first hold's expiry must not end the second (its order entry is stale).
        let t0 = Instant::now();
        let mut holds = Holds::new(TTL, 8);
        holds.hold("test", nick("alice"), HERE, t0);
        assert_eq!(holds.take(key("alice"), HERE, t0 + TTL / 2), Ok(true));
        holds.hold("test", nick("alice"), HERE, t0 + TTL / 2);
        assert_eq!(
            holds.take(key("alice"), THERE, t0 + TTL),
            Err(HeldElsewhere)
        );
        assert_eq!(holds.take(key("alice"), THERE, t0 + TTL * 3 / 2), Ok(false));
    }
}
