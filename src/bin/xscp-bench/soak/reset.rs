//! Resets: connections closed with a RST in NEGOTIATING and ESTABLISHED.

use std::sync::atomic::Ordering;

use super::conn::SConn;
use super::context::Soak;
use crate::stats::{Errors, Merge};
use crate::wire::{base36, connect};
use xscp::protocol::reply;
use xscp::sys;

pub const RESET_KINDS: [&str; 6] = [
    "NEGOTIATING, at once",
    "NEGOTIATING, inside a line",
    "NEGOTIATING, answers unread",
    "ESTABLISHED, idle",
    "ESTABLISHED, output queued",
    "ESTABLISHED, sender reset before the receipt",
];

#[derive(Default)]
pub struct ResetOutcome {
    pub by_kind: [u64; 6],
    pub resets: u64,
    pub late_receipts: u64,
    pub errors: Errors,
}

impl Merge for ResetOutcome {
    fn merge(&mut self, o: ResetOutcome) {
        for (a, b) in self.by_kind.iter_mut().zip(o.by_kind) {
            *a += b;
        }
        self.resets += o.resets;
        self.late_receipts += o.late_receipts;
        self.errors.merge(o.errors);
    }
}

pub fn soak_resetter(ctx: &Soak, w: usize) -> ResetOutcome {
    ctx.until_stop(
        |o: &mut ResetOutcome| &mut o.errors,
        |o, n| {
            let kind = (n % 6) as usize;
            reset_cycle(ctx, w, n, kind, o)
                .map_err(|e| format!("reset [{}]: {e}", RESET_KINDS[kind]))?;
            o.by_kind[kind] += 1;
            Ok(())
        },
    )
}

fn reset_cycle(
    ctx: &Soak,
    w: usize,
    n: u64,
    kind: usize,
    o: &mut ResetOutcome,
) -> Result<(), String> {
    let name = format!("z{}{w}n{}", ctx.rid, base36(n));
    let count = |o: &mut ResetOutcome| {
        o.resets += 1;
        ctx.live.resets.fetch_add(1, Ordering::Relaxed);
    };
    match kind {
        0 => {
            let s = connect(ctx.opts.addr, ctx.opts.timeout)?;
            sys::reset(s)?;
        }
        1 => {
            let mut c = SConn::open(ctx, "resetter")?;
            c.send(b"uname zpart")?;
            sys::reset(c.s)?;
        }
        2 => {
            let mut c = SConn::open(ctx, "resetter")?;
            c.send(b"capa\r\nping x\r\n")?;
            sys::reset(c.s)?;
        }
        3 => {
            let c = SConn::registered(ctx, "resetter", &name)?;
            sys::reset(c.s)?;
        }
        4 => {
            let mut c = SConn::registered(ctx, "resetter", &name)?;
            c.send(format!("chatm {name} {name} bye\r\nusers\r\ncapa\r\n").as_bytes())?;
            sys::reset(c.s)?;
        }
        _ => {
            // A receipt whose sender has reset: accepted and dropped, nothing answered.
            let other = format!("y{}{w}n{}", ctx.rid, base36(n));
            let mut a = SConn::registered(ctx, "resetter", &name)?;
            let mut b = SConn::registered(ctx, "resetter (receiver)", &other)?;
            a.send(format!("chatm {name} {other} hello {n}\r\n").as_bytes())?;
            a.expect(ctx, reply::RELAYED.trim_end())?;
            sys::reset(a.s)?;
            count(o);
            b.expect(ctx, &format!("chatm {name} {other} hello {n}"))?;
            b.send(format!("chatr {name} {other}\r\nping r{n}\r\n").as_bytes())?;
            b.expect(ctx, &format!("+OK pong r{n}"))?;
            o.late_receipts += 1;
            sys::reset(b.s)?;
        }
    }
    count(o);
    Ok(())
}
