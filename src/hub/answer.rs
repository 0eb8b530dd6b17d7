//! The hub's answer to one request whose answer the session takes (`uname`, `cname`), and
//! the hub's word that it took a departure: a one-shot slot that the reader waits on, at
//! once or when it next needs the answer.
//!
//! A slot is made per request, so an idle client keeps nothing for it (a channel kept per
//! connection would cost some 700 bytes each). Its wait is a plain futex wait, where a channel's
//! receive first spins and yields the processor while the hub works. It is built on
//! `std::sync`, not `parking_lot`: a thread that parks on a `parking_lot` primitive gets a
//! place in that crate's global table, which grows with every thread that ever parked and
//! never shrinks; most readers never need one.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::protocol::request::Answer;

#[derive(Debug, Default)]
struct Slot {
    state: Mutex<State>,
    ready: Condvar,
}

#[derive(Debug, Default)]
struct State {
    answer: Option<Answer>,
    /// The asker sleeps on `ready`: only then does the answer cost a wake (a system call
    /// with std's condition variable, waiter or not).
    waiting: bool,
}

/// A new slot: the hub's half, sent with the request, and the asker's half.
pub fn slot() -> (Promise, Pending) {
    let slot = Arc::new(Slot::default());
    (
        Promise {
            slot: Some(Arc::clone(&slot)),
        },
        Pending(slot),
    )
}

/// The hub's half: answers once. Dropped unanswered (the hub dropped the request), it
/// answers [`Answer::Gone`].
#[derive(Debug)]
pub struct Promise {
    slot: Option<Arc<Slot>>,
}

impl Promise {
    /// Gives the asker `answer`.
    pub fn answer(mut self, answer: Answer) {
        self.put(answer);
    }

    fn put(&mut self, answer: Answer) {
        if let Some(slot) = self.slot.take() {
            let mut state = slot.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.answer = Some(answer);
            let waiting = state.waiting;
            // The lock is let go before the wake: the asker, woken, would otherwise find
            // it still held and sleep once more until it is.
            drop(state);
            if waiting {
                slot.ready.notify_one();
            }
        }
    }
}

impl Drop for Promise {
    fn drop(&mut self) {
        self.put(Answer::Gone);
    }
}

/// The asker's half.
#[derive(Debug)]
pub struct Pending(Arc<Slot>);

impl Pending {
    /// Waits for the answer. Not inlined: the reader waits deep in its stack, which it
    /// keeps small (see `net::reader`).
    #[inline(never)]
    pub fn wait(self) -> Answer {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(answer) = state.answer.take() {
                return answer;
            }
            state.waiting = true;
            state = self
                .0
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_asker_gets_the_answer_given_on_another_thread() {
        let (promise, pending) = slot();
        let hub = std::thread::spawn(move || {
            // Answers only once the asker sleeps: the wake is the one tested.
            let slot = promise.slot.as_ref().map(Arc::clone).expect("unanswered");
            while !slot
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .waiting
            {
                std::thread::yield_now();
            }
            promise.answer(Answer::Done)
        });
        assert_eq!(pending.wait(), Answer::Done);
        hub.join().expect("the answering thread ran");
    }

    #[test]
    fn a_request_dropped_unanswered_answers_gone() {
        let (promise, pending) = slot();
        drop(promise);
        assert_eq!(pending.wait(), Answer::Gone);
    }
}
