//! The count of a `resume` run: what the bench saw happen ([`Event`]) in, figures
//! ([`Tally`]) out, a function of the events alone; and the reading of a welcome line.

use crate::stats::Merge;

/// What the bench saw happen in one pair: the input of the count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The server accepted message `seq`: relayed, or `held` for the departed receiver.
    Accepted { seq: u64, held: bool },
    /// The server refused a message: `-ERR [FULL]` (`full`) or `-ERR [NO-SUCH]`.
    Refused { full: bool },
    /// Message `seq` reached the receiver (again, if it had before); `replayed` when it came
    /// in the replay after a `welcome back`.
    Received { seq: u64, replayed: bool },
    /// A receipt (`chatr`) reached the sender.
    Receipt,
    /// The receiver is back: `+OK welcome back`, with `held` lines to replay and `lost`
    /// messages the server could not keep.
    Resumed { held: u64, lost: u64 },
    /// The receiver came back and got `+OK you are <name>`: its name had not been held.
    Fresh,
}

/// The figures of a run (or of one pair).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Messages accepted (relayed or held), each counted once.
    pub accepted: u64,
    /// Of those, accepted as held for a departed receiver.
    pub held: u64,
    /// Messages that reached the receiver at least once.
    pub received: u64,
    /// Arrivals of a message that had arrived before.
    pub duplicates: u64,
    /// Accepted and never received.
    pub lost: u64,
    /// Refusals (`FULL` and `NO-SUCH`); a refused message is tried again.
    pub refused: u64,
    pub full: u64,
    pub nosuch: u64,
    /// Receipts that reached the senders.
    pub receipts: u64,
    /// `welcome back` answers, and the lines and losses they announced.
    pub resumes: u64,
    pub replayed: u64,
    pub lost_reported: u64,
    /// Returns that found the name not held (`+OK you are`).
    pub fresh: u64,
    /// Received but never accepted, or accepted twice: the server broke its word.
    pub phantom: u64,
    pub accepted_twice: u64,
}

impl Merge for Tally {
    fn merge(&mut self, o: Tally) {
        self.accepted += o.accepted;
        self.held += o.held;
        self.received += o.received;
        self.duplicates += o.duplicates;
        self.lost += o.lost;
        self.refused += o.refused;
        self.full += o.full;
        self.nosuch += o.nosuch;
        self.receipts += o.receipts;
        self.resumes += o.resumes;
        self.replayed += o.replayed;
        self.lost_reported += o.lost_reported;
        self.fresh += o.fresh;
        self.phantom += o.phantom;
        self.accepted_twice += o.accepted_twice;
    }
}

impl Tally {
    /// A loss the server did not own up to: messages lost while no `welcome back` reported
    /// any and no mailbox was ever full.
    pub fn unreported_loss(&self) -> bool {
        self.lost > 0 && self.lost_reported == 0 && self.full == 0
    }

    /// The server delivered what it never accepted, or accepted a message twice.
    pub fn broken_promises(&self) -> u64 {
        self.phantom + self.accepted_twice
    }
}

/// The count of one pair, kept as the events come (from two threads, in any order: a
/// message may reach the receiver before its `+OK` reaches the sender).
#[derive(Debug, Default)]
pub struct Ledger {
    /// Per sequence number: accepted, and how many times it arrived.
    accepted: Vec<bool>,
    arrivals: Vec<u32>,
    /// Accepted and not (yet) arrived.
    outstanding: u64,
    t: Tally,
}

impl Ledger {
    /// Sequence numbers beyond this are not the bench's (and would cost memory).
    const MAX_SEQ: u64 = 1 << 26;

    fn slot(&mut self, seq: u64) -> Option<usize> {
        if seq >= Self::MAX_SEQ {
            return None;
        }
        let i = seq as usize;
        if i >= self.accepted.len() {
            self.accepted.resize(i + 1, false);
            self.arrivals.resize(i + 1, 0);
        }
        Some(i)
    }

    pub fn record(&mut self, e: Event) {
        match e {
            Event::Accepted { seq, held } => {
                let Some(i) = self.slot(seq) else {
                    self.t.phantom += 1;
                    return;
                };
                if self.accepted[i] {
                    self.t.accepted_twice += 1;
                    return;
                }
                self.accepted[i] = true;
                self.t.accepted += 1;
                self.t.held += u64::from(held);
                if self.arrivals[i] == 0 {
                    self.outstanding += 1;
                }
            }
            Event::Refused { full } => {
                self.t.refused += 1;
                if full {
                    self.t.full += 1;
                } else {
                    self.t.nosuch += 1;
                }
            }
            Event::Received { seq, replayed } => {
                self.t.replayed += u64::from(replayed);
                let Some(i) = self.slot(seq) else {
                    self.t.phantom += 1;
                    return;
                };
                self.arrivals[i] = self.arrivals[i].saturating_add(1);
                if self.arrivals[i] > 1 {
                    self.t.duplicates += 1;
                } else {
                    self.t.received += 1;
                    if self.accepted[i] {
                        self.outstanding -= 1;
                    }
                }
            }
            Event::Receipt => self.t.receipts += 1,
            Event::Resumed { lost, .. } => {
                // The lines announced are counted as they arrive (`replayed`).
                self.t.resumes += 1;
                self.t.lost_reported += lost;
            }
            Event::Fresh => self.t.fresh += 1,
        }
    }

    /// Accepted messages that have not arrived yet.
    pub fn outstanding(&self) -> u64 {
        self.outstanding
    }

    /// The figures so far: what has not arrived counts as lost.
    pub fn tally(&self) -> Tally {
        let phantom = self
            .accepted
            .iter()
            .zip(&self.arrivals)
            .filter(|&(&a, &n)| !a && n > 0)
            .count() as u64;
        Tally {
            lost: self.outstanding,
            phantom: self.t.phantom + phantom,
            ..self.t.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Event::*;

    /// The count of a sequence of events.
    fn count(events: impl IntoIterator<Item = Event>) -> Tally {
        let mut l = Ledger::default();
        for e in events {
            l.record(e);
        }
        l.tally()
    }

    #[test]
    fn losses_duplicates_and_receipts_are_counted() {
        let t = count([
            Accepted {
                seq: 0,
                held: false,
            },
            Received {
                seq: 0,
                replayed: false,
            },
            Receipt,
            Accepted {
                seq: 1,
                held: false,
            },
            Received {
                seq: 1,
                replayed: false,
            },
            // The receiver reset before its receipt left: the copy is replayed.
            Resumed { held: 1, lost: 0 },
            Received {
                seq: 1,
                replayed: true,
            },
            Receipt,
            Accepted { seq: 2, held: true },
            Accepted {
                seq: 3,
                held: false,
            },
            Received {
                seq: 3,
                replayed: false,
            },
        ]);
        assert_eq!(
            t,
            Tally {
                accepted: 4,
                held: 1,
                received: 3,
                duplicates: 1,
                lost: 1,
                receipts: 2,
                resumes: 1,
                replayed: 1,
                ..Tally::default()
            }
        );
        assert!(t.unreported_loss());
    }

    #[test]
    fn arrival_before_the_ok_is_no_loss() {
        // The chatm can reach the receiver before its +OK reaches the sender.
        let t = count([
            Received {
                seq: 5,
                replayed: false,
            },
            Accepted {
                seq: 5,
                held: false,
            },
        ]);
        assert_eq!((t.accepted, t.received, t.lost, t.phantom), (1, 1, 0, 0));
    }

    #[test]
    fn refused_messages_are_owed_nothing_until_accepted() {
        let t = count([
            Refused { full: false },
            Refused { full: true },
            Accepted { seq: 7, held: true },
            Received {
                seq: 7,
                replayed: true,
            },
        ]);
        assert_eq!((t.refused, t.full, t.nosuch), (2, 1, 1));
        assert_eq!((t.accepted, t.received, t.lost), (1, 1, 0));
        // A refusal alone owes nothing.
        assert_eq!(count([Refused { full: false }]).lost, 0);
    }

    #[test]
    fn a_reported_loss_or_a_full_mailbox_explains_a_loss() {
        let lost = [Accepted {
            seq: 0,
            held: false,
        }];
        assert!(count(lost).unreported_loss());
        let reported = count([lost[0], Resumed { held: 0, lost: 1 }]);
        assert_eq!((reported.lost, reported.lost_reported), (1, 1));
        assert!(!reported.unreported_loss());
        let full = count([lost[0], Refused { full: true }]);
        assert!(!full.unreported_loss());
        // No loss: nothing to explain.
        assert!(
            !count([
                lost[0],
                Received {
                    seq: 0,
                    replayed: false
                }
            ])
            .unreported_loss()
        );
    }

    #[test]
    fn the_server_breaking_its_word_is_counted() {
        let t = count([
            Received {
                seq: 9,
                replayed: false,
            },
            Accepted {
                seq: 4,
                held: false,
            },
            Accepted {
                seq: 4,
                held: false,
            },
            Received {
                seq: 4,
                replayed: false,
            },
            Received {
                seq: u64::MAX,
                replayed: false,
            },
        ]);
        assert_eq!((t.phantom, t.accepted_twice), (2, 1));
        assert_eq!(t.broken_promises(), 3);
        assert_eq!((t.accepted, t.received, t.lost), (1, 2, 0));
    }

    #[test]
    fn pair_tallies_add_up() {
        let mut t = count([
            Accepted {
                seq: 0,
                held: false,
            },
            Resumed { held: 0, lost: 2 },
        ]);
        t.merge(count([Fresh, Receipt, Refused { full: false }]));
        assert_eq!((t.accepted, t.lost, t.lost_reported), (1, 1, 2));
        assert_eq!((t.fresh, t.receipts, t.nosuch, t.refused), (1, 1, 1, 1));
    }
}
