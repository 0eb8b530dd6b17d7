//! What of a loaded state comes back at start (xscp(7) §5.9, Start): holds whose expiry
//! has passed are discarded, and the bounds in force now apply to the rest. This file
//! applies those a hold can be judged by alone (`--hold`, `--mailbox`); the bounds on all
//! holds together (their number, `--mailbox-total`) are the hub's, which applies them as
//! it takes the holds in, oldest first. Every hold or line that does not come back is
//! logged.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::format::{Saved, SavedHold};
use super::utc;

/// The bounds in force now that a hold is judged by alone.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// `--hold`: no hold lasts longer from now (zero: nothing is held).
    pub hold: Duration,
    /// `--mailbox`: the most bytes one mailbox keeps (each line with its CRLF).
    pub mailbox: usize,
}

/// The holds of `state` that come back at `now` within `bounds`, in expiry order: expired
/// ones discarded, each expiry at most `--hold` from now, each mailbox within `--mailbox`
/// (its oldest lines counted lost).
pub fn prepare(state: Saved, now: SystemTime, bounds: Bounds) -> Vec<SavedHold> {
    let mut holds = Vec::with_capacity(state.holds.len());
    for mut h in state.holds {
        let (held, lost) = (h.held(), h.lost);
        if bounds.hold.is_zero() {
            log::info!(
                "state: name {} not held (--hold 0): mailbox of {} discarded \
                 ({held} held, {lost} lost)",
                h.nick,
                h.nick
            );
            continue;
        }
        if h.until <= now {
            log::info!(
                "state: hold on {} for {} expired at {}: mailbox of {} discarded \
                 ({held} held, {lost} lost)",
                h.nick,
                h.ip,
                utc::format(h.until),
                h.nick
            );
            continue;
        }
        if let Some(latest) = now.checked_add(bounds.hold) {
            h.until = h.until.min(latest);
        }
        trim(&mut h, bounds.mailbox);
        holds.push(h);
    }
    holds.sort_by_key(|h| h.until);
    holds
}

/// Drops the oldest lines of `h`'s mailbox past `max` bytes, counting them lost.
fn trim(h: &mut SavedHold, max: usize) {
    let mut bytes = h.wire.len();
    if bytes <= max {
        return;
    }
    let before = h.held();
    let mut cut = 0;
    let mut dropped = 0u64;
    for line in h.lines() {
        if bytes <= max {
            break;
        }
        cut += line.len();
        bytes -= line.len();
        dropped += 1;
    }
    h.wire = Arc::new(h.wire[cut..].to_vec());
    h.senders = Arc::new(
        h.senders
            .get(dropped as usize..)
            .unwrap_or_default()
            .to_vec(),
    );
    h.lost = h.lost.saturating_add(dropped);
    log::info!(
        "state: mailbox of {} over --mailbox ({max} bytes): {dropped} of its {before} lines \
         counted lost, oldest first",
        h.nick
    );
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::protocol::nick::Nick;

    const T0: Duration = Duration::from_secs(2_000_000_000);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + T0 + Duration::from_secs(secs)
    }

    /// A hold that lost a line, the receipt of its line `i` going to session `i + 1`.
    fn hold(name: &str, until: u64, lines: &[&str]) -> SavedHold {
        let nick = Nick::parse(name).expect("nickname");
        let mut hold = SavedHold::new(nick, IpAddr::from([127, 0, 0, 1]), at(until), 9);
        hold.lost = 1;
        for (line, sender) in lines.iter().zip(1..) {
            hold.push(format!("{line}\r\n").as_bytes(), sender);
        }
        hold
    }

    const BOUNDS: Bounds = Bounds {
        hold: Duration::from_secs(300),
        mailbox: 1024,
    };

    fn names(holds: &[SavedHold]) -> Vec<&str> {
        holds.iter().map(|h| h.nick.as_str()).collect()
    }

    #[test]
    fn expired_holds_are_discarded_and_the_rest_come_back_in_expiry_order() {
        let state = Saved {
            holds: vec![
                hold("late", 200, &[]),
                hold("gone", 100, &["chatm a gone x"]),
                hold("soon", 150, &[]),
            ],
        };
        let back = prepare(state, at(100), BOUNDS);
        assert_eq!(names(&back), ["soon", "late"]);
    }

    #[test]
    fn no_hold_lasts_longer_than_hold_from_now() {
        let state = Saved {
            holds: vec![hold("far", 10_000, &[])],
        };
        let back = prepare(state, at(0), BOUNDS);
        assert_eq!(back[0].until, at(300));
        let none = prepare(
            Saved {
                holds: vec![hold("any", 10, &[])],
            },
            at(0),
            Bounds {
                hold: Duration::ZERO,
                ..BOUNDS
            },
        );
        assert!(none.is_empty());
    }

    #[test]
    fn a_smaller_mailbox_counts_the_oldest_lines_lost() {
        // Each line is 16 bytes with its CRLF.
        let state = Saved {
            holds: vec![hold(
                "a",
                10,
                &["chatm b a one-1", "chatm b a two-2", "chatm b a thr-3"],
            )],
        };
        let back = prepare(
            state,
            at(0),
            Bounds {
                mailbox: 40,
                ..BOUNDS
            },
        );
        assert_eq!(
            back[0].wire.as_slice(),
            b"chatm b a two-2\r\nchatm b a thr-3\r\n"
        );
        // Each line keeps its sender.
        assert_eq!(back[0].senders.as_slice(), [2, 3]);
        assert_eq!((back[0].held(), back[0].lost), (2, 2));
        let state = Saved {
            holds: vec![hold("a", 10, &["chatm b a one-1"])],
        };
        let back = prepare(
            state,
            at(0),
            Bounds {
                mailbox: 8,
                ..BOUNDS
            },
        );
        assert_eq!((back[0].held(), back[0].lost), (0, 2));
        assert!(back[0].senders.is_empty());
    }
}
