//! What every soak worker shares: the run's settings and stop flag ([`Soak`]), the live
//! counters ([`Live`]), and the lines the workers expect.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use crate::options::Opts;
use crate::stats::Errors;
use crate::wire::find_byte;

#[derive(Default)]
pub struct Live {
    pub chat: AtomicU64,
    pub slow: AtomicU64,
    pub resets: AtomicU64,
    pub garbage: AtomicU64,
    pub churn: AtomicU64,
    pub errors: AtomicU64,
}

/// What every soak worker shares.
pub struct Soak {
    pub opts: Opts,
    pub rid: String,
    pub seed: u64,
    pub stop: AtomicBool,
    /// `--max-retries` of the server, from its `capa`.
    pub retries: u32,
    /// Chatter nicknames are this followed by their index (`c<run>x`).
    pub chatter_prefix: String,
    pub chatters: usize,
    /// A registered client that stays for the whole soak: the name garbage clients
    /// impersonate and collide with.
    pub anchor: String,
    /// Per chatter, once it has stopped sending: how many broadcasts and direct messages
    /// it sent in all (`u64::MAX` before).
    pub final_bcast: Vec<AtomicU64>,
    pub final_direct: Vec<AtomicU64>,
    /// Chatters that failed; the others stop waiting for them.
    pub broken: AtomicUsize,
    pub live: Live,
}

/// Free text with non-ASCII UTF-8 that some chatm carry; it must arrive byte for byte.
pub const UTF8_TEXT: &str = "héllo wörld ✓ ∑ 日本";

impl Soak {
    pub fn chatter_name(&self, i: usize) -> String {
        format!("{}{i}", self.chatter_prefix)
    }

    /// Is `line` a broadcast from a chatter? Every registered client receives those, so the
    /// other soak clients skip them.
    pub fn is_broadcast(&self, line: &[u8]) -> bool {
        let Some(rest) = line.strip_prefix(b"chatm ") else {
            return false;
        };
        if !rest.starts_with(self.chatter_prefix.as_bytes()) {
            return false;
        }
        find_byte(rest, b' ').is_some_and(|sp| rest[sp + 1..].starts_with(b"* "))
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn pause(&self) {
        if self.opts.pause_ms > 0 {
            thread::sleep(Duration::from_millis(self.opts.pause_ms));
        }
    }

    /// A worker's cycles until the stop, `cycle(o, n)` for n = 0, 1, ... with a pause
    /// between them. A failed cycle is recorded in `errors_of(o)`, and the worker waits a
    /// little: it must not spin on a server that is gone or refusing.
    pub fn until_stop<O: Default>(
        &self,
        errors_of: fn(&mut O) -> &mut Errors,
        mut cycle: impl FnMut(&mut O, u64) -> Result<(), String>,
    ) -> O {
        let mut o = O::default();
        let mut n = 0u64;
        while !self.stopping() {
            if let Err(e) = cycle(&mut o, n) {
                self.error(errors_of(&mut o), e);
                thread::sleep(Duration::from_millis(10));
            }
            n += 1;
            self.pause();
        }
        o
    }

    pub fn error(&self, errors: &mut Errors, e: String) {
        self.live.errors.fetch_add(1, Ordering::Relaxed);
        errors.add(e);
    }
}
