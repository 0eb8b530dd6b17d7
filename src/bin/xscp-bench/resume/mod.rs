//! `resume`: what survives a receiver's reset (xscp(7) §5.7, §5.8).
//!
//! P pairs. Each sender sends `chatm <sender> <receiver> <seq> <ns>` with at most W
//! unanswered, paced by `--chat-rate`. A `+OK message relayed` or `+OK message held for
//! <name>` accepts the message; `-ERR [FULL]` or `-ERR [NO-SUCH]` refuses it, and the sender
//! tries the same number again a little later. Each receiver answers every `chatm` with
//! `chatr` at once, and resets its connection (RST) after a random 0.1 to 1 s, stays away
//! up to 0.1 s, and comes back under the same name from the same address: `+OK welcome back
//! <name>`, or `+OK welcome back <name> (<n> held, <m> lost)` followed by the n lines
//! replayed. After `--secs` the senders stop, wait for every answer, and the receivers stay
//! until every accepted message has arrived (or `--timeout` passes without one).
//!
//! The count ([`Ledger`]) is a function of the events alone: accepted messages, received
//! (at least once), duplicates, lost (accepted, never received), refusals, receipts back
//! at the senders, resumes and the losses the server reported.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use xscp::protocol::reply;
use xscp::sys;

use crate::options::Opts;
use crate::rng::{Rng, seed_or_clock};
use crate::stats::{Errors, Merge};
use crate::system::{check_server, cpu_snap, cpu_use, join_merged, spawn};
use crate::traffic::ns_since;
use crate::wire::{
    LineBuf, StrBuf, connect, connect_registered, expect_greeting, is_timeout, parse_chatm,
    parse_welcome, push_pong, push_receipt, read_line, run_id, send_uname, show,
};

/// How long a refused message waits before the sender tries it again.
const RETRY_AFTER: Duration = Duration::from_millis(50);
/// A receiver stays connected for a random time in this range (ms) before its reset...
const CONNECTED_MS: (usize, usize) = (100, 1000);
/// ...and stays away for a random time below this (ms): meanwhile its name is held.
const AWAY_MS: usize = 100;
/// After the end, how long a sender waits for the receipts still on their way.
const RECEIPTS_SETTLE: Duration = Duration::from_secs(2);

mod ledger;

pub use ledger::{Event, Ledger, Tally};

// --- the run -------------------------------------------------------------------------------

/// One sender/receiver pair: its count and how far each side is.
#[derive(Default)]
struct Pair {
    ledger: Mutex<Ledger>,
    /// The sender has stopped and every `chatm` it sent is answered.
    sender_done: AtomicBool,
    /// The receiver has what it will get.
    receiver_done: AtomicBool,
    /// One side failed: the other stops waiting for it.
    broken: AtomicBool,
}

impl Pair {
    fn record(&self, events: &mut Vec<Event>) {
        if !events.is_empty() {
            let mut l = self.ledger.lock();
            for e in events.drain(..) {
                l.record(e);
            }
        }
    }
}

/// What every resume thread shares.
struct Ctx {
    opts: Opts,
    rid: String,
    seed: u64,
    stop: AtomicBool,
    pairs: Vec<Pair>,
}

impl Ctx {
    fn sender(&self, i: usize) -> String {
        format!("rs{}x{i}", self.rid)
    }

    fn receiver(&self, i: usize) -> String {
        format!("rr{}x{i}", self.rid)
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// The server's `capa` (from NEGOTIATING): its `HOLD` and `MAILBOX` lines.
fn capa(opts: &Opts) -> Result<Vec<String>, String> {
    let mut s = connect(opts.addr, opts.timeout)?;
    let mut lb = LineBuf::new(4096);
    expect_greeting(&mut s, &mut lb)?;
    s.write_all(b"capa\r\n")
        .map_err(|e| format!("capa: write failed: {e}"))?;
    let mut items = Vec::new();
    loop {
        let l = read_line(&mut s, &mut lb).map_err(|e| format!("capa: {e}"))?;
        if l == "." {
            return Ok(items);
        }
        if l.starts_with("HOLD ") || l.starts_with("MAILBOX ") {
            items.push(l);
        }
    }
}

pub fn run(opts: &Opts) -> Result<bool, String> {
    let p = opts.pairs;
    sys::ensure_nofile(2 * p as u64 + 64)?;
    let rid = run_id();
    let seed = seed_or_clock(opts.seed);
    let rate = if opts.chat_rate == 0 {
        "unpaced".to_string()
    } else {
        format!("{}/s", opts.chat_rate)
    };
    xscp::outln!(
        "xscp-bench resume: {p} pairs for {} s, window {}, {rate} each, server {}, run {rid}, \
         seed {seed}",
        opts.secs,
        opts.window,
        opts.addr
    );
    let capa = capa(opts)?;
    xscp::outln!("  server:      {}", capa.join(", "));
    if capa.iter().any(|l| l == "HOLD 0") {
        xscp::outln!(
            "  note:        the server holds no names: messages to a receiver away are refused"
        );
    }
    let ctx = Ctx {
        opts: opts.clone(),
        rid,
        seed,
        stop: AtomicBool::new(false),
        pairs: (0..p).map(|_| Pair::default()).collect(),
    };
    // Receivers first, so that every sender's partner exists when it starts.
    let setup = Instant::now();
    let mut receivers = Vec::with_capacity(p);
    let mut events = Vec::new();
    for i in 0..p {
        let (s, lb) = join(
            &ctx,
            i,
            &mut events,
            &mut Vec::new(),
            &mut Errors::default(),
        )?;
        receivers.push((s, lb));
    }
    events.clear();
    let mut senders = Vec::with_capacity(p);
    for i in 0..p {
        senders.push(connect_registered(
            opts.addr,
            &ctx.sender(i),
            opts.timeout,
            64 * 1024,
        )?);
    }
    xscp::outln!(
        "  setup:       {} clients registered in {:.3} s",
        2 * p,
        setup.elapsed().as_secs_f64()
    );
    let ctx = Arc::new(ctx);
    let start = Arc::new(Barrier::new(2 * p + 1));
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(2 * p);
    for (i, (s, lb)) in receivers.into_iter().enumerate() {
        let (ctx, start) = (Arc::clone(&ctx), Arc::clone(&start));
        handles.push(spawn(format!("resume-recv-{i}"), move || {
            start.wait();
            side(&ctx, i, |errors| receiver(&ctx, i, s, lb, errors))
        })?);
    }
    for (i, (s, lb)) in senders.into_iter().enumerate() {
        let (ctx, start) = (Arc::clone(&ctx), Arc::clone(&start));
        handles.push(spawn(format!("resume-send-{i}"), move || {
            start.wait();
            side(&ctx, i, |errors| sender(&ctx, i, s, lb, t0, errors))
        })?);
    }
    start.wait();
    let cpu0 = cpu_snap(opts.server_pid);
    let began = Instant::now();
    let mut next_report = 15u64;
    while began.elapsed().as_secs_f64() < opts.secs {
        thread::sleep(Duration::from_millis(100));
        let el = began.elapsed().as_secs();
        if el >= next_report {
            next_report += 15;
            let t = total(&ctx);
            xscp::outln!(
                "  [{el:>4} s] accepted {}, received {}, resumes {}, refused {}",
                t.accepted,
                t.received,
                t.resumes,
                t.refused
            );
        }
    }
    ctx.stop.store(true, Ordering::SeqCst);
    let load_secs = began.elapsed().as_secs_f64();
    let errors: Errors = join_merged(handles)?;
    let cpu = cpu_use(&cpu0, &cpu_snap(opts.server_pid));
    let t = total(&ctx);

    xscp::outln!(
        "  load ran {load_secs:.1} s (+{:.1} s for the last messages)",
        cpu.wall - load_secs
    );
    xscp::outln!(
        "  senders:     accepted {} ({} of them held), refused {} (FULL {}, NO-SUCH {}), \
         receipts back {}",
        t.accepted,
        t.held,
        t.refused,
        t.full,
        t.nosuch,
        t.receipts
    );
    xscp::outln!(
        "  receivers:   resumes {} ({} lines replayed, {} lost reported), names not held \
         on return {}",
        t.resumes,
        t.replayed,
        t.lost_reported,
        t.fresh
    );
    xscp::outln!(
        "  integrity:   received {} of {}, duplicates {}, lost {}{}",
        t.received,
        t.accepted,
        t.duplicates,
        t.lost,
        if t.broken_promises() > 0 {
            format!(
                ", received unaccepted {}, accepted twice {}",
                t.phantom, t.accepted_twice
            )
        } else {
            String::new()
        }
    );
    errors.print();
    cpu.print();
    let clean = !t.unreported_loss() && t.broken_promises() == 0 && errors.count == 0;
    xscp::outln!(
        "  verdict:     {}",
        if t.unreported_loss() {
            "LOST messages the server did not report"
        } else if !clean {
            "NOT CLEAN"
        } else if t.lost > 0 {
            "clean (every loss was reported or refused)"
        } else {
            "clean"
        }
    );
    let mut r = format!(
        "RESULT workload=resume pairs={p} secs={load_secs:.0} accepted={} received={} \
         duplicates={} lost={} refused={} receipts={} resumes={} lost_reported={} held={} \
         full={} nosuch={} replayed={} fresh={} errors={}",
        t.accepted,
        t.received,
        t.duplicates,
        t.lost,
        t.refused,
        t.receipts,
        t.resumes,
        t.lost_reported,
        t.held,
        t.full,
        t.nosuch,
        t.replayed,
        t.fresh,
        errors.count + t.broken_promises()
    );
    cpu.result_fields(&mut r);
    let alive = check_server(opts, &mut r);
    xscp::outln!("{r}");
    Ok(clean && alive)
}

/// All the pairs' figures in one.
fn total(ctx: &Ctx) -> Tally {
    let mut t = Tally::default();
    for pair in &ctx.pairs {
        t.merge(pair.ledger.lock().tally());
    }
    t
}

/// Runs one side of pair `i`; a failure marks the pair broken so that the other side stops
/// waiting for it.
fn side(ctx: &Ctx, i: usize, f: impl FnOnce(&mut Errors) -> Result<(), String>) -> Errors {
    let mut errors = Errors::default();
    if let Err(e) = f(&mut errors) {
        ctx.pairs[i].broken.store(true, Ordering::SeqCst);
        errors.add(e);
    }
    errors
}

/// A sender: sends with the window, paced, until the stop; tries refused messages again
/// after [`RETRY_AFTER`]; then waits for every answer and for the receipts.
fn sender(
    ctx: &Ctx,
    i: usize,
    mut s: TcpStream,
    mut lb: LineBuf,
    t0: Instant,
    errors: &mut Errors,
) -> Result<(), String> {
    let opts = &ctx.opts;
    let pair = &ctx.pairs[i];
    let (me, to) = (ctx.sender(i), ctx.receiver(i));
    let held = format!("+OK message held for {to}");
    let receipt = format!("chatr {me} {to}");
    s.set_read_timeout(Some(Duration::from_millis(5)))
        .and_then(|()| s.set_write_timeout(Some(opts.timeout)))
        .map_err(|e| format!("{me}: socket options: {e}"))?;
    let mut in_flight: VecDeque<u64> = VecDeque::new();
    let mut retry: VecDeque<(Instant, u64)> = VecDeque::new();
    let mut next_seq = 0u64;
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut events = Vec::new();
    let began = Instant::now();
    let mut last_rx = Instant::now();
    loop {
        let now = Instant::now();
        if !ctx.stopping() {
            let allowed = opts.paced(began);
            let ns = ns_since(t0);
            while in_flight.len() < opts.window {
                let seq = match retry.front() {
                    Some(&(at, seq)) if at <= now => {
                        retry.pop_front();
                        seq
                    }
                    _ if next_seq < allowed => {
                        next_seq += 1;
                        next_seq - 1
                    }
                    _ => break,
                };
                let _ = write!(StrBuf(&mut out), "chatm {me} {to} {seq} {ns}\r\n");
                in_flight.push_back(seq);
            }
        } else if in_flight.is_empty() && !pair.sender_done.load(Ordering::SeqCst) {
            // Refused messages not yet tried again are not accepted: nothing is owed.
            retry.clear();
            pair.sender_done.store(true, Ordering::SeqCst);
        }
        if !out.is_empty() {
            s.write_all(&out)
                .map_err(|e| format!("{me}: write failed: {e}"))?;
            out.clear();
        }
        if pair.sender_done.load(Ordering::SeqCst)
            && (pair.receiver_done.load(Ordering::SeqCst) || pair.broken.load(Ordering::SeqCst))
        {
            // Every receipt the receiver's last deliveries earned, or a quiet while.
            let l = pair.ledger.lock().tally();
            if l.receipts >= l.received || last_rx.elapsed() >= RECEIPTS_SETTLE.min(opts.timeout) {
                return Ok(());
            }
        }
        if pair.broken.load(Ordering::SeqCst) && !pair.sender_done.load(Ordering::SeqCst) {
            return Ok(());
        }
        match lb.fill(&mut s) {
            Ok(0) => return Err(format!("{me}: server closed the connection")),
            Ok(_) => last_rx = Instant::now(),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                if !in_flight.is_empty() && last_rx.elapsed() >= opts.timeout {
                    return Err(format!(
                        "{me}: nothing received for {:.0} s ({} unanswered)",
                        opts.timeout.as_secs_f64(),
                        in_flight.len()
                    ));
                }
                continue;
            }
            Err(e) => return Err(format!("{me}: read failed: {e}")),
        }
        while let Some(line) = lb.next_line() {
            let answer = if line == reply::RELAYED.trim_end().as_bytes() {
                Some(Ok(false))
            } else if line == held.as_bytes() {
                Some(Ok(true))
            } else if line.starts_with(b"-ERR [FULL] ") {
                Some(Err(true))
            } else if line.starts_with(b"-ERR [NO-SUCH] ") {
                Some(Err(false))
            } else {
                None
            };
            if let Some(answer) = answer {
                let Some(seq) = in_flight.pop_front() else {
                    return Err(format!("{me}: answer for nothing sent: {}", show(line)));
                };
                match answer {
                    Ok(held) => events.push(Event::Accepted { seq, held }),
                    Err(full) => {
                        events.push(Event::Refused { full });
                        retry.push_back((Instant::now() + RETRY_AFTER, seq));
                    }
                }
            } else if line == receipt.as_bytes() {
                events.push(Event::Receipt);
            } else if let Some(token) = line.strip_prefix(b"ping ") {
                push_pong(&mut out, token);
            } else if line.starts_with(b"cquit") {
                return Err(format!("{me}: server ended the connection: {}", show(line)));
            } else {
                if line.starts_with(b"-ERR") {
                    // It answers a chatm all the same.
                    in_flight.pop_front();
                }
                errors.add(format!("{me}: unexpected line: {}", show(line)));
            }
        }
        pair.record(&mut events);
    }
}

/// A receiver: answers every `chatm` with `chatr`; until the stop, resets its connection at
/// random moments and comes back; then stays until every accepted message has arrived.
fn receiver(
    ctx: &Ctx,
    i: usize,
    mut s: TcpStream,
    mut lb: LineBuf,
    errors: &mut Errors,
) -> Result<(), String> {
    let opts = &ctx.opts;
    let pair = &ctx.pairs[i];
    let me = ctx.receiver(i);
    let mut rng = Rng::new(ctx.seed ^ (0x7265_7375_6d65 + i as u64));
    let connected_for = |rng: &mut Rng| {
        let (lo, hi) = CONNECTED_MS;
        Duration::from_millis((lo + rng.below(hi - lo)) as u64)
    };
    let mut reset_at = Instant::now() + connected_for(&mut rng);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut events = Vec::new();
    let mut last_rx = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(20)))
        .map_err(|e| format!("{me}: socket options: {e}"))?;
    loop {
        if !ctx.stopping() && Instant::now() >= reset_at {
            // What was not written yet dies with the connection, as it would in a crash:
            // receipts for messages delivered on it must not acknowledge later ones.
            out.clear();
            sys::reset(s)?;
            thread::sleep(Duration::from_millis(rng.below(AWAY_MS) as u64));
            (s, lb) = join(ctx, i, &mut events, &mut out, errors)?;
            s.set_read_timeout(Some(Duration::from_millis(20)))
                .map_err(|e| format!("{me}: socket options: {e}"))?;
            reset_at = Instant::now() + connected_for(&mut rng);
            last_rx = Instant::now();
        }
        if !out.is_empty() {
            s.write_all(&out)
                .map_err(|e| format!("{me}: write failed: {e}"))?;
            out.clear();
        }
        pair.record(&mut events);
        if pair.sender_done.load(Ordering::SeqCst) {
            if pair.ledger.lock().outstanding() == 0 || last_rx.elapsed() >= opts.timeout {
                pair.receiver_done.store(true, Ordering::SeqCst);
                return Ok(());
            }
        } else if pair.broken.load(Ordering::SeqCst) {
            return Ok(());
        }
        match lb.fill(&mut s) {
            Ok(0) => return Err(format!("{me}: server closed the connection")),
            Ok(_) => last_rx = Instant::now(),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => continue,
            Err(e) => return Err(format!("{me}: read failed: {e}")),
        }
        while let Some(line) = lb.next_line() {
            take_line(ctx, i, line, false, &mut events, &mut out, errors);
        }
    }
}

/// One line to receiver `i`: a `chatm` from its sender is recorded and answered with its
/// receipt, a `ping` with its pong; anything else is an error.
fn take_line(
    ctx: &Ctx,
    i: usize,
    line: &[u8],
    replayed: bool,
    events: &mut Vec<Event>,
    out: &mut Vec<u8>,
    errors: &mut Errors,
) {
    let (from, me) = (ctx.sender(i), ctx.receiver(i));
    match parse_chatm(line) {
        Some((sender, recipient, seq, _))
            if sender == from.as_bytes() && recipient == me.as_bytes() =>
        {
            events.push(Event::Received { seq, replayed });
            push_receipt(out, sender, recipient);
        }
        _ => {
            if let Some(token) = line.strip_prefix(b"ping ") {
                push_pong(out, token);
            }
            let what = if replayed {
                "in the replay"
            } else {
                "unexpected line"
            };
            errors.add(format!("{me}: {what}: {}", show(line)));
        }
    }
}

/// Connects and registers receiver `i`, the first time or back after a reset, from the same
/// address. `-ERR [IN-USE]` (the server has not yet seen the old connection go) is tried
/// again on a new connection until `--timeout`. A `welcome back` is recorded with the lines
/// replayed after it, whose receipts go into `out`.
fn join(
    ctx: &Ctx,
    i: usize,
    events: &mut Vec<Event>,
    out: &mut Vec<u8>,
    errors: &mut Errors,
) -> Result<(TcpStream, LineBuf), String> {
    let opts = &ctx.opts;
    let me = ctx.receiver(i);
    let deadline = Instant::now() + opts.timeout;
    loop {
        let mut s = connect(opts.addr, opts.timeout).map_err(|e| format!("{me}: {e}"))?;
        s.set_write_timeout(Some(opts.timeout))
            .map_err(|e| format!("{me}: socket options: {e}"))?;
        let mut lb = LineBuf::new(64 * 1024);
        expect_greeting(&mut s, &mut lb).map_err(|e| format!("{me}: {e}"))?;
        send_uname(&mut s, &me)?;
        let l = read_line(&mut s, &mut lb).map_err(|e| format!("{me}: uname: {e}"))?;
        match parse_welcome(&l, &me) {
            Some(None) => {
                events.push(Event::Fresh);
                return Ok((s, lb));
            }
            Some(Some((held, lost))) => {
                events.push(Event::Resumed { held, lost });
                for _ in 0..held {
                    let line =
                        read_line(&mut s, &mut lb).map_err(|e| format!("{me}: replay: {e}"))?;
                    take_line(ctx, i, line.as_bytes(), true, events, out, errors);
                }
                return Ok((s, lb));
            }
            None if l.starts_with("-ERR [IN-USE] ") && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10));
            }
            None => return Err(format!("{me}: uname refused: {}", show(l.as_bytes()))),
        }
    }
}
