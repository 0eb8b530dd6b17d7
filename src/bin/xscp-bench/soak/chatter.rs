//! Chatters: pairs exchanging direct messages with receipts, and broadcasts; order,
//! receipts and text checked.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{ErrorKind, Write};
use std::sync::Barrier;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::conn::SConn;
use super::context::{Soak, UTF8_TEXT};
use crate::stats::{Errors, Hist, Merge};
use crate::traffic::ns_since;
use crate::wire::{StrBuf, is_timeout, parse_u64, push_pong, push_receipt, show};
use xscp::protocol::reply;

#[derive(Default)]
pub struct ChatOutcome {
    pub direct_sent: u64,
    pub bcast_sent: u64,
    pub direct_rx: u64,
    pub bcast_rx: u64,
    pub receipts: u64,
    pub pongs: u64,
    pub lost: u64,
    pub reordered: u64,
    pub lat: Hist,
    pub errors: Errors,
}

impl Merge for ChatOutcome {
    fn merge(&mut self, o: ChatOutcome) {
        self.direct_sent += o.direct_sent;
        self.bcast_sent += o.bcast_sent;
        self.direct_rx += o.direct_rx;
        self.bcast_rx += o.bcast_rx;
        self.receipts += o.receipts;
        self.pongs += o.pongs;
        self.lost += o.lost;
        self.reordered += o.reordered;
        self.lat.merge(&o.lat);
        self.errors.merge(o.errors);
    }
}

/// What a chatter waits for, in the order of its commands.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Direct,
    Broadcast,
    Pong(u64),
}

/// The text of a soak chatm: `<kind> <seq> <ns>[ <extra>]`.
fn parse_soak_text(text: &[u8]) -> Option<(u8, u64, u64, &[u8])> {
    let mut it = text.splitn(4, |&b| b == b' ');
    let kind = it.next()?;
    if kind.len() != 1 {
        return None;
    }
    let seq = parse_u64(it.next()?)?;
    let ns = parse_u64(it.next()?)?;
    Some((kind[0], seq, ns, it.next().unwrap_or(b"")))
}

/// Checks that `seq` is the next one expected: counts gaps and messages out of order.
fn check_seq(next: &mut u64, seq: u64, o: &mut ChatOutcome, what: &str) -> Option<String> {
    if seq == *next {
        *next += 1;
        None
    } else if seq > *next {
        o.lost += seq - *next;
        let e = format!(
            "chatter: {what}: got #{seq} while #{} was due (lost messages)",
            *next
        );
        *next = seq + 1;
        Some(e)
    } else {
        o.reordered += 1;
        Some(format!(
            "chatter: {what}: got #{seq} after #{} (reordered or duplicated)",
            *next - 1
        ))
    }
}

pub fn soak_chatter(
    ctx: &Soak,
    me: usize,
    mut c: SConn,
    t0: Instant,
    start: &Barrier,
) -> ChatOutcome {
    let mut o = ChatOutcome::default();
    start.wait();
    let r = chatter_run(ctx, me, &mut c, t0, &mut o).and_then(|()| {
        if let Err(e) = c.s.set_read_timeout(Some(ctx.opts.timeout)) {
            return Err(format!("chatter: set_read_timeout: {e}"));
        }
        c.quit(ctx)
    });
    if let Err(e) = r {
        ctx.broken.fetch_add(1, Ordering::SeqCst);
        ctx.error(&mut o.errors, e);
    }
    o
}

/// A chatter: sends direct messages (with receipts) to its partner and broadcasts, paced
/// by `--chat-rate` with at most `--window` commands unanswered; checks everything it
/// receives. After the stop it waits until its own messages are all answered and received,
/// then until it has every message the others sent.
fn chatter_run(
    ctx: &Soak,
    me: usize,
    c: &mut SConn,
    t0: Instant,
    o: &mut ChatOutcome,
) -> Result<(), String> {
    let opts = &ctx.opts;
    let partner = me ^ 1;
    let my = ctx.chatter_name(me);
    let their = ctx.chatter_name(partner);
    let prefix = ctx.chatter_prefix.as_bytes();
    c.s.set_read_timeout(Some(Duration::from_millis(5)))
        .map_err(|e| format!("chatter: set_read_timeout: {e}"))?;
    let receipt = format!("{my} {their}");
    let mut exp: VecDeque<Expect> = VecDeque::new();
    let mut direct_acked = 0u64;
    let mut next_direct = 0u64;
    let mut next_bcast = vec![0u64; ctx.chatters];
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let (mut sent, mut pings) = (0u64, 0u64);
    let mut phase = 0; // 0 sending, 1 draining its own, 2 receiving the others' last
    let began = Instant::now();
    let mut last_rx = Instant::now();
    let mut counted = 0u64;
    loop {
        if phase == 0 && ctx.stopping() {
            phase = 1;
        }
        if phase == 0 {
            let allowed = opts.paced(began);
            let now = ns_since(t0);
            while sent < allowed && exp.len() < opts.window {
                if sent % 8 == 7 {
                    let _ = write!(
                        StrBuf(&mut out),
                        "chatm {my} * b {} {now}\r\n",
                        o.bcast_sent
                    );
                    o.bcast_sent += 1;
                    exp.push_back(Expect::Broadcast);
                } else {
                    let seq = o.direct_sent;
                    let _ = write!(StrBuf(&mut out), "chatm {my} {their} d {seq} {now}");
                    if seq.is_multiple_of(16) {
                        out.push(b' ');
                        out.extend_from_slice(UTF8_TEXT.as_bytes());
                    }
                    out.extend_from_slice(b"\r\n");
                    o.direct_sent += 1;
                    exp.push_back(Expect::Direct);
                }
                sent += 1;
                if sent % 256 == 0 {
                    let _ = write!(StrBuf(&mut out), "ping c{pings}\r\n");
                    exp.push_back(Expect::Pong(pings));
                    pings += 1;
                }
            }
        }
        if phase == 1 && exp.is_empty() && o.receipts == o.direct_sent {
            ctx.final_bcast[me].store(o.bcast_sent, Ordering::SeqCst);
            ctx.final_direct[me].store(o.direct_sent, Ordering::SeqCst);
            phase = 2;
        }
        if !out.is_empty() {
            c.s.write_all(&out)
                .map_err(|e| format!("chatter: write failed: {e}"))?;
            out.clear();
        }
        if phase == 2 {
            let all_in = (0..ctx.chatters)
                .all(|j| j == me || ctx.final_bcast[j].load(Ordering::SeqCst) == next_bcast[j])
                && ctx.final_direct[partner].load(Ordering::SeqCst) == next_direct;
            if all_in {
                ctx.live
                    .chat
                    .fetch_add(o.direct_rx + o.bcast_rx - counted, Ordering::Relaxed);
                return Ok(());
            }
            if ctx.broken.load(Ordering::SeqCst) > 0 {
                return Err(
                    "chatter: gave up waiting for the last messages: another chatter \
                            failed"
                        .into(),
                );
            }
        }
        match c.lb.fill(&mut c.s) {
            Ok(0) => return Err("chatter: server closed the connection".into()),
            Ok(_) => last_rx = Instant::now(),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                if (!exp.is_empty() || phase > 0) && last_rx.elapsed() >= opts.timeout {
                    return Err(format!(
                        "chatter: nothing received for {:.0} s (phase {phase}, {} unanswered, \
                         receipts {} of {})",
                        opts.timeout.as_secs_f64(),
                        exp.len(),
                        o.receipts,
                        o.direct_sent
                    ));
                }
                continue;
            }
            Err(e) => return Err(format!("chatter: read failed: {e}")),
        }
        let now = ns_since(t0);
        while let Some(line) = c.lb.next_line() {
            if let Some(rest) = line.strip_prefix(b"chatm ") {
                let mut f = rest.splitn(3, |&b| b == b' ');
                let (sender, recipient, text) = (f.next(), f.next(), f.next());
                let (Some(sender), Some(recipient), Some(text)) = (sender, recipient, text) else {
                    ctx.error(
                        &mut o.errors,
                        format!("chatter: malformed chatm: {}", show(line)),
                    );
                    continue;
                };
                let from = sender
                    .strip_prefix(prefix)
                    .and_then(parse_u64)
                    .map(|j| j as usize)
                    .filter(|&j| j < ctx.chatters && j != me);
                let parsed = parse_soak_text(text);
                let (Some(j), Some((kind, seq, ns, extra))) = (from, parsed) else {
                    ctx.error(
                        &mut o.errors,
                        format!("chatter: unexpected chatm: {}", show(line)),
                    );
                    continue;
                };
                o.lat.record(now.saturating_sub(ns) / 1000);
                if recipient == b"*" && kind == b'b' {
                    o.bcast_rx += 1;
                    if let Some(e) = check_seq(&mut next_bcast[j], seq, o, "broadcast") {
                        ctx.error(&mut o.errors, e);
                    }
                    // A receipt for a broadcast is accepted and not relayed: no answer.
                    // One in 16 (the server logs each at -v).
                    if seq % 16 == 0 {
                        push_receipt(&mut out, sender, b"*");
                    }
                } else if recipient == my.as_bytes() && kind == b'd' && j == partner {
                    o.direct_rx += 1;
                    if let Some(e) = check_seq(&mut next_direct, seq, o, "direct") {
                        ctx.error(&mut o.errors, e);
                    }
                    let want: &[u8] = if seq % 16 == 0 {
                        UTF8_TEXT.as_bytes()
                    } else {
                        b""
                    };
                    if extra != want {
                        ctx.error(
                            &mut o.errors,
                            format!("chatter: text altered in transit: {}", show(line)),
                        );
                    }
                    push_receipt(&mut out, sender, my.as_bytes());
                } else {
                    ctx.error(
                        &mut o.errors,
                        format!("chatter: unexpected chatm: {}", show(line)),
                    );
                }
            } else if line == reply::RELAYED.trim_end().as_bytes() {
                match exp.pop_front() {
                    Some(Expect::Direct) => direct_acked += 1,
                    Some(Expect::Broadcast) => {}
                    other => {
                        return Err(format!(
                            "chatter: '+OK message relayed' while {other:?} was due"
                        ));
                    }
                }
            } else if let Some(r) = line.strip_prefix(b"chatr ") {
                if r != receipt.as_bytes() {
                    ctx.error(
                        &mut o.errors,
                        format!("chatter: unexpected receipt: {}", show(line)),
                    );
                    continue;
                }
                o.receipts += 1;
                if o.receipts > direct_acked {
                    ctx.error(
                        &mut o.errors,
                        "chatter: a receipt arrived before its '+OK message relayed'".into(),
                    );
                }
            } else if let Some(tok) = line.strip_prefix(b"+OK pong c") {
                let k = parse_u64(tok);
                match exp.pop_front() {
                    Some(Expect::Pong(p)) if Some(p) == k => o.pongs += 1,
                    other => {
                        return Err(format!("chatter: '{}' while {other:?} was due", show(line)));
                    }
                }
            } else if let Some(token) = line.strip_prefix(b"ping ") {
                push_pong(&mut out, token);
            } else if line.starts_with(b"cquit") {
                return Err(format!(
                    "chatter: server ended the connection: {}",
                    show(line)
                ));
            } else {
                return Err(format!("chatter: unexpected line: {}", show(line)));
            }
        }
        let total = o.direct_rx + o.bcast_rx;
        if total - counted >= 1024 {
            ctx.live.chat.fetch_add(total - counted, Ordering::Relaxed);
            counted = total;
        }
    }
}
