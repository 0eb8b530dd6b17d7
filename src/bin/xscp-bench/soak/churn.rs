//! Churn during the soak (register, `cquit`, again), and the anchor: a client that stays
//! for the whole soak.

use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::conn::SConn;
use super::context::Soak;
use crate::stats::{Errors, Merge};
use crate::wire::{base36, is_timeout, push_pong, show};

#[derive(Default)]
pub struct SoakChurnOutcome {
    pub cycles: u64,
    pub errors: Errors,
}

impl Merge for SoakChurnOutcome {
    fn merge(&mut self, o: SoakChurnOutcome) {
        self.cycles += o.cycles;
        self.errors.merge(o.errors);
    }
}

pub fn soak_churn(ctx: &Soak, w: usize) -> SoakChurnOutcome {
    ctx.until_stop(
        |o: &mut SoakChurnOutcome| &mut o.errors,
        |o, n| {
            let name = format!("w{}{w}n{}", ctx.rid, base36(n));
            SConn::registered(ctx, "churn", &name).and_then(|c| c.quit(ctx))?;
            o.cycles += 1;
            ctx.live.churn.fetch_add(1, Ordering::Relaxed);
            Ok(())
        },
    )
}

/// The anchor reads (broadcasts reach it too), answers pings, and quits when told.
pub fn soak_anchor(ctx: &Soak, mut c: SConn, done: &AtomicBool) -> Errors {
    let mut errors = Errors::default();
    let r = (|| {
        c.s.set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| format!("anchor: set_read_timeout: {e}"))?;
        let mut out = Vec::new();
        while !done.load(Ordering::SeqCst) {
            match c.lb.fill(&mut c.s) {
                Ok(0) => return Err("anchor: server closed the connection".to_string()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted || is_timeout(&e) => {}
                Err(e) => return Err(format!("anchor: read failed: {e}")),
            }
            while let Some(l) = c.lb.next_line() {
                if let Some(token) = l.strip_prefix(b"ping ") {
                    push_pong(&mut out, token);
                } else if !ctx.is_broadcast(l) {
                    return Err(format!("anchor: unexpected line: {}", show(l)));
                }
            }
            if !out.is_empty() {
                c.send(&out)?;
                out.clear();
            }
        }
        c.s.set_read_timeout(Some(ctx.opts.timeout))
            .map_err(|e| format!("anchor: set_read_timeout: {e}"))?;
        c.quit(ctx)
    })();
    if let Err(e) = r {
        ctx.error(&mut errors, e);
    }
    errors
}
