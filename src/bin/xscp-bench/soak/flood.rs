//! Floods: a victim that never reads, flooded until the server drops it as a slow consumer.

use std::fmt::Write as _;
use std::io::{ErrorKind, Write};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use super::conn::SConn;
use super::context::Soak;
use crate::stats::{Errors, Merge};
use crate::wire::{StrBuf, base36, find_byte, is_timeout, parse_u64, push_pong, show};
use xscp::protocol::reply;

#[derive(Default)]
pub struct FloodOutcome {
    pub victims: u64,
    pub dropped: u64,
    pub relayed: u64,
    pub victim_rx: u64,
    pub nosuch: u64,
    pub alive_checks: u64,
    pub drop_ms: Vec<u64>,
    pub errors: Errors,
}

impl Merge for FloodOutcome {
    fn merge(&mut self, o: FloodOutcome) {
        self.victims += o.victims;
        self.dropped += o.dropped;
        self.relayed += o.relayed;
        self.victim_rx += o.victim_rx;
        self.nosuch += o.nosuch;
        self.alive_checks += o.alive_checks;
        self.drop_ms.extend_from_slice(&o.drop_ms);
        self.errors.merge(o.errors);
    }
}

/// One flooder connection for the whole soak; each cycle a new victim registers and never
/// reads while the flooder sends it chatm until the server drops it as a slow consumer
/// (the flooder then gets `-ERR [NO-SUCH]`). Then the flooder must still work, and what the
/// victim did receive must be an unbroken prefix of what was relayed.
pub fn soak_flooder(ctx: &Soak, k: usize) -> FloodOutcome {
    let mut o = FloodOutcome::default();
    let name = format!("f{}x{k}", ctx.rid);
    let mut f = match SConn::registered(ctx, "flooder", &name) {
        Ok(f) => f,
        Err(e) => {
            ctx.error(&mut o.errors, e);
            return o;
        }
    };
    let mut n = 0u64;
    while !ctx.stopping() {
        if let Err(e) = flood_cycle(ctx, &mut f, &name, k, n, &mut o) {
            // The flooder's own connection failed: that ends this flood.
            ctx.error(&mut o.errors, e);
            return o;
        }
        n += 1;
        thread::sleep(Duration::from_millis(100));
    }
    if let Err(e) = f.s.set_read_timeout(Some(ctx.opts.timeout)) {
        ctx.error(&mut o.errors, format!("flooder: set_read_timeout: {e}"));
    }
    if let Err(e) = f.quit(ctx) {
        ctx.error(&mut o.errors, e);
    }
    o
}

/// One victim. `Err` when the flooder's connection is in trouble; the victim's troubles
/// are recorded in `o`.
fn flood_cycle(
    ctx: &Soak,
    f: &mut SConn,
    name: &str,
    k: usize,
    n: u64,
    o: &mut FloodOutcome,
) -> Result<(), String> {
    let vname = format!("v{}{k}n{}", ctx.rid, base36(n));
    let mut v = match SConn::registered(ctx, "flood victim", &vname) {
        Ok(v) => v,
        Err(e) => {
            ctx.error(&mut o.errors, e);
            return Ok(());
        }
    };
    o.victims += 1;
    let nosuch = format!("-ERR [NO-SUCH] no such user {vname}");
    let filler = "f".repeat(400);
    const WINDOW: usize = 128;
    const GIVE_UP: Duration = Duration::from_secs(30);
    f.s.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| format!("flooder: set_read_timeout: {e}"))?;
    let (mut in_flight, mut seq, mut relayed) = (0usize, 0u64, 0u64);
    let mut dropped_at: Option<Instant> = None;
    let mut gave_up = false;
    let began = Instant::now();
    let mut last_rx = Instant::now();
    let mut out: Vec<u8> = Vec::with_capacity(WINDOW * 480);
    loop {
        if dropped_at.is_none() && !gave_up {
            while in_flight < WINDOW {
                let _ = write!(StrBuf(&mut out), "chatm {name} {vname} {seq} {filler}\r\n");
                seq += 1;
                in_flight += 1;
            }
        }
        if !out.is_empty() {
            f.s.write_all(&out)
                .map_err(|e| format!("flooder: write failed: {e}"))?;
            out.clear();
        }
        if (dropped_at.is_some() || gave_up) && in_flight == 0 {
            break;
        }
        if !gave_up && dropped_at.is_none() && began.elapsed() > GIVE_UP {
            ctx.error(
                &mut o.errors,
                format!(
                    "flood: victim not dropped as a slow consumer within {} s",
                    GIVE_UP.as_secs()
                ),
            );
            gave_up = true;
        }
        match f.lb.fill(&mut f.s) {
            Ok(0) => return Err("flooder: server closed the connection".into()),
            Ok(_) => last_rx = Instant::now(),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                if last_rx.elapsed() >= ctx.opts.timeout {
                    return Err(format!(
                        "flooder: nothing received for {:.0} s ({in_flight} unanswered)",
                        ctx.opts.timeout.as_secs_f64()
                    ));
                }
                continue;
            }
            Err(e) => return Err(format!("flooder: read failed: {e}")),
        }
        while let Some(line) = f.lb.next_line() {
            if line == reply::RELAYED.trim_end().as_bytes() || line == nosuch.as_bytes() {
                if in_flight == 0 {
                    return Err(format!("flooder: answer for nothing sent: {}", show(line)));
                }
                in_flight -= 1;
                if line == reply::RELAYED.trim_end().as_bytes() {
                    relayed += 1;
                    if dropped_at.is_some() {
                        ctx.error(
                            &mut o.errors,
                            "flood: a chatm relayed to a victim already dropped".into(),
                        );
                    }
                } else {
                    o.nosuch += 1;
                    dropped_at.get_or_insert_with(Instant::now);
                }
            } else if ctx.is_broadcast(line) {
            } else if let Some(token) = line.strip_prefix(b"ping ") {
                push_pong(&mut out, token);
            } else {
                return Err(format!("flooder: unexpected line: {}", show(line)));
            }
        }
    }
    f.s.set_read_timeout(Some(ctx.opts.timeout))
        .map_err(|e| format!("flooder: set_read_timeout: {e}"))?;
    o.relayed += relayed;
    if let Some(at) = dropped_at {
        o.dropped += 1;
        o.drop_ms.push(at.duration_since(began).as_millis() as u64);
        ctx.live.slow.fetch_add(1, Ordering::Relaxed);
    }
    // The flooder still works: a message to itself, its receipt, a ping.
    f.send(format!("chatm {name} {name} alive {n}\r\n").as_bytes())?;
    f.expect(ctx, reply::RELAYED.trim_end())?;
    f.expect(ctx, &format!("chatm {name} {name} alive {n}"))?;
    f.send(format!("chatr {name} {name}\r\nping f{n}\r\n").as_bytes())?;
    f.expect(ctx, &format!("chatr {name} {name}"))?;
    f.expect(ctx, &format!("+OK pong f{n}"))?;
    o.alive_checks += 1;
    // The victim: an unbroken prefix of what was relayed, then the end of the stream.
    let head = format!("chatm {name} {vname} ");
    let mut next = 0u64;
    loop {
        while let Some(line) = v.lb.next_line() {
            if let Some(rest) = line.strip_prefix(head.as_bytes()) {
                let s = find_byte(rest, b' ').and_then(|sp| parse_u64(&rest[..sp]));
                if s == Some(next) {
                    next += 1;
                } else {
                    ctx.error(
                        &mut o.errors,
                        format!(
                            "flood victim: got '{}' while #{next} was due",
                            show(&line[..line.len().min(60)])
                        ),
                    );
                    next = s.map_or(next, |s| s + 1);
                }
            } else if !ctx.is_broadcast(line) && line != b"cquit slow consumer" {
                ctx.error(
                    &mut o.errors,
                    format!("flood victim: unexpected line: {}", show(line)),
                );
            }
        }
        match v.lb.fill(&mut v.s) {
            // A last line may be cut short: the server cuts a slow consumer mid-write.
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                if dropped_at.is_some() {
                    ctx.error(
                        &mut o.errors,
                        "flood victim: dropped, but its connection was not closed".into(),
                    );
                }
                break;
            }
            Err(e) => {
                ctx.error(&mut o.errors, format!("flood victim: read failed: {e}"));
                break;
            }
        }
    }
    if next > relayed {
        ctx.error(
            &mut o.errors,
            format!("flood victim: received {next} messages, only {relayed} relayed"),
        );
    }
    o.victim_rx += next;
    Ok(())
}
