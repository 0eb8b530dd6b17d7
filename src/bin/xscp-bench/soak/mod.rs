//! `soak`: every kind of client at once for a long while against one server, then the
//! server's health. The workers are in [`chatter`], [`flood`], [`reset`], [`garbage`] and
//! [`churn`] (with the anchor); [`health`] checks the server once they are all gone. What
//! they share is in [`context`], so that they import it and not this file, which imports
//! them.

mod chatter;
mod churn;
mod conn;
mod context;
mod flood;
mod garbage;
mod health;
mod reset;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::options::Opts;
use crate::rng::seed_or_clock;
use crate::stats::{Errors, Merge, percentile};
use crate::system::{
    check_server, cpu_snap, cpu_use, join_merged, proc_fds, proc_status_field, proc_thread_names,
    process_alive, spawn, spawn_n,
};
use crate::wire::run_id;
use chatter::{ChatOutcome, soak_chatter};
use churn::{SoakChurnOutcome, soak_anchor, soak_churn};
use conn::SConn;
use context::{Live, Soak};
use flood::{FloodOutcome, soak_flooder};
use garbage::{GARBAGE_CASES, GarbageOutcome, soak_garbage};
use health::{Health, soak_capa, soak_users};
use reset::{RESET_KINDS, ResetOutcome, soak_resetter};

/// Starts `n` soak workers `<name>-<i>`, worker `i` running `f(ctx, i)`.
fn workers<T: Send + 'static>(
    ctx: &Arc<Soak>,
    name: &str,
    n: usize,
    f: fn(&Soak, usize) -> T,
) -> Result<Vec<JoinHandle<T>>, String> {
    let ctx = Arc::clone(ctx);
    spawn_n(name, n, move |w| f(&ctx, w))
}

pub fn run(opts: &Opts) -> Result<bool, String> {
    let pid = opts
        .server_pid
        .ok_or("soak needs --server-pid PID (the server's health is part of the result)")?;
    if !process_alive(pid) {
        return Err(format!("no running process {pid}"));
    }
    let clients =
        2 * opts.pairs + opts.floods * 2 + opts.resetters * 2 + opts.garbage + opts.workers + 8;
    xscp::sys::ensure_nofile(clients as u64 + 64)?;
    // The baseline, before the soak opens anything.
    let thr0 = proc_status_field(pid, "Threads");
    let fds0 = proc_fds(pid);
    let rss0 = proc_status_field(pid, "VmRSS");
    if thr0.is_none() || fds0.is_none() {
        return Err(format!(
            "cannot read /proc/{pid}/status or /proc/{pid}/fd (another user's process?)"
        ));
    }
    let rid = run_id();
    let seed = seed_or_clock(opts.seed);
    let chatters = 2 * opts.pairs;
    let mut ctx = Soak {
        opts: opts.clone(),
        rid: rid.clone(),
        seed,
        stop: AtomicBool::new(false),
        retries: 3,
        chatter_prefix: format!("c{rid}x"),
        chatters,
        anchor: format!("a{rid}anchor"),
        final_bcast: (0..chatters).map(|_| AtomicU64::new(u64::MAX)).collect(),
        final_direct: (0..chatters).map(|_| AtomicU64::new(u64::MAX)).collect(),
        broken: AtomicUsize::new(0),
        live: Live::default(),
    };
    let capa = soak_capa(&ctx)?;
    match capa
        .iter()
        .find_map(|l| l.strip_prefix("RETRIES "))
        .and_then(|v| v.trim().parse().ok())
    {
        Some(r) => ctx.retries = r,
        None => return Err("capa lists no RETRIES".into()),
    }
    let hold = capa.iter().find(|l| l.starts_with("HOLD ")).cloned();
    xscp::outln!(
        "xscp-bench soak: {} s against {} (pid {pid}), run {rid}, seed {seed}",
        opts.secs,
        opts.addr
    );
    xscp::outln!(
        "  load:        {} chatter pairs ({}/s each, window {}), {} flood pair(s), {} reset \
         workers, {} garbage workers, {} churn workers, pause {} ms",
        opts.pairs,
        if opts.chat_rate == 0 {
            "unpaced".to_string()
        } else {
            opts.chat_rate.to_string()
        },
        opts.window,
        opts.floods,
        opts.resetters,
        opts.garbage,
        opts.workers,
        opts.pause_ms
    );
    xscp::outln!(
        "  baseline:    threads {}, fds {}, VmRSS {} kB; capa RETRIES {}{}",
        thr0.unwrap_or(0),
        fds0.unwrap_or(0),
        rss0.map_or("n/a".into(), |v| v.to_string()),
        ctx.retries,
        hold.map_or(String::new(), |h| format!(", {h}"))
    );
    // Everyone registered before the load starts.
    let anchor = SConn::registered(&ctx, "anchor", &ctx.anchor)?;
    let mut chat_conns = Vec::with_capacity(chatters);
    for i in 0..chatters {
        chat_conns.push(SConn::registered(&ctx, "chatter", &ctx.chatter_name(i))?);
    }
    let ctx = Arc::new(ctx);
    let anchor_done = Arc::new(AtomicBool::new(false));
    let anchor_h = {
        let (ctx, done) = (Arc::clone(&ctx), Arc::clone(&anchor_done));
        spawn("soak-anchor".into(), move || {
            soak_anchor(&ctx, anchor, &done)
        })?
    };
    let start = Arc::new(Barrier::new(chatters + 1));
    let t0 = Instant::now();
    let mut chat_h = Vec::new();
    for (i, c) in chat_conns.into_iter().enumerate() {
        let (ctx, start) = (Arc::clone(&ctx), Arc::clone(&start));
        chat_h.push(spawn(format!("soak-chat-{i}"), move || {
            soak_chatter(&ctx, i, c, t0, &start)
        })?);
    }
    start.wait();
    let cpu0 = cpu_snap(Some(pid));
    let began = Instant::now();
    let flood_h = workers(&ctx, "soak-flood", opts.floods, soak_flooder)?;
    let reset_h = workers(&ctx, "soak-reset", opts.resetters, soak_resetter)?;
    let garbage_h = workers(&ctx, "soak-garbage", opts.garbage, soak_garbage)?;
    let churn_h = workers(&ctx, "soak-churn", opts.workers, soak_churn)?;
    // The load runs; a progress line every 15 s.
    let mut died = false;
    let mut next_report = 15u64;
    while began.elapsed().as_secs_f64() < opts.secs {
        thread::sleep(Duration::from_millis(250));
        if !process_alive(pid) {
            xscp::outln!("  SERVER GONE after {:.1} s", began.elapsed().as_secs_f64());
            died = true;
            break;
        }
        let el = began.elapsed().as_secs();
        if el >= next_report {
            next_report += 15;
            let l = &ctx.live;
            xscp::outln!(
                "  [{el:>4} s] chat {} received, slow consumers {}, resets {}, garbage {}, \
                 churn {}, errors {}, server threads {}, VmRSS {} kB",
                l.chat.load(Ordering::Relaxed),
                l.slow.load(Ordering::Relaxed),
                l.resets.load(Ordering::Relaxed),
                l.garbage.load(Ordering::Relaxed),
                l.churn.load(Ordering::Relaxed),
                l.errors.load(Ordering::Relaxed),
                proc_status_field(pid, "Threads").map_or("n/a".into(), |v| v.to_string()),
                proc_status_field(pid, "VmRSS").map_or("n/a".into(), |v| v.to_string()),
            );
        }
    }
    ctx.stop.store(true, Ordering::SeqCst);
    let load_secs = began.elapsed().as_secs_f64();
    let mut chat: ChatOutcome = join_merged(chat_h)?;
    let mut flood: FloodOutcome = join_merged(flood_h)?;
    let mut resets: ResetOutcome = join_merged(reset_h)?;
    let mut garbage: GarbageOutcome = join_merged(garbage_h)?;
    let mut churn: SoakChurnOutcome = join_merged(churn_h)?;
    anchor_done.store(true, Ordering::SeqCst);
    let anchor: Errors = join_merged(vec![anchor_h])?;
    let mut errors = Errors::default();
    for e in [
        &mut chat.errors,
        &mut flood.errors,
        &mut resets.errors,
        &mut garbage.errors,
        &mut churn.errors,
    ] {
        errors.merge(std::mem::take(e));
    }
    errors.merge(anchor);
    let cpu1 = cpu_snap(Some(pid));
    let cpu = cpu_use(&cpu0, &cpu1);
    let all_secs = began.elapsed().as_secs_f64();

    // Health: every bench socket is closed now.
    let mut h = Health {
        threads: (thr0, None),
        fds: (fds0, None),
        rss: (rss0, None),
        ..Health::default()
    };
    let hc = Instant::now();
    let deadline = hc + Duration::from_secs(15);
    for k in 0u64.. {
        match soak_users(&ctx, &format!("h{rid}n{k}")) {
            Ok(users) => {
                h.users = Some(users.len());
                h.strays = users
                    .into_iter()
                    .filter(|u| !u.starts_with(&format!("h{rid}n")))
                    .collect();
                if h.users == Some(1) {
                    break;
                }
            }
            Err(e) => ctx.error(&mut errors, e),
        }
        if Instant::now() >= deadline || !process_alive(pid) {
            break;
        }
        thread::sleep(Duration::from_millis(500));
    }
    h.users_secs = hc.elapsed().as_secs_f64();
    let back = Instant::now();
    let deadline = back + Duration::from_secs(15);
    loop {
        h.threads.1 = proc_status_field(pid, "Threads");
        h.fds.1 = proc_fds(pid);
        let done = matches!((h.threads, h.fds), ((Some(t0), Some(t1)), (Some(f0), Some(f1))) if t1 <= t0 && f1 <= f0);
        if done || Instant::now() >= deadline || !process_alive(pid) {
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    h.back_secs = back.elapsed().as_secs_f64();
    h.rss.1 = proc_status_field(pid, "VmRSS");
    h.hwm = proc_status_field(pid, "VmHWM");
    h.alive = !died && process_alive(pid);
    if !h.ok() {
        h.leftover = proc_thread_names(pid);
    }

    // Report.
    let resets_neg: u64 = resets.by_kind[..3].iter().sum();
    let resets_est = resets.resets - resets_neg;
    let garbage_n: u64 = garbage.by_case.iter().sum();
    let chat_msgs = chat.direct_rx + chat.bcast_rx;
    xscp::outln!(
        "  load ran {load_secs:.1} s (+{:.1} s to wind down)",
        all_secs - load_secs
    );
    xscp::outln!(
        "  chatters:    direct sent {}, received {}, receipts back {}; broadcasts sent {}, \
         deliveries {}; pongs {}",
        chat.direct_sent,
        chat.direct_rx,
        chat.receipts,
        chat.bcast_sent,
        chat.bcast_rx,
        chat.pongs
    );
    xscp::outln!(
        "               lost {}, reordered {}; latency p50 {} us, p99 {} us, max {} us",
        chat.lost,
        chat.reordered,
        chat.lat.percentile(50.0),
        chat.lat.percentile(99.0),
        chat.lat.max
    );
    let mut drop_ms = flood.drop_ms.clone();
    drop_ms.sort_unstable();
    xscp::outln!(
        "  floods:      {} victims, {} dropped as slow consumers (after p50 {} ms, max {} \
         ms); chatm relayed to victims {}, received by them in order {}, discarded {}; \
         NO-SUCH answers {}; flooder checks passed {}",
        flood.victims,
        flood.dropped,
        percentile(&drop_ms, 50.0),
        drop_ms.last().copied().unwrap_or(0),
        flood.relayed,
        flood.victim_rx,
        flood.relayed.saturating_sub(flood.victim_rx),
        flood.nosuch,
        flood.alive_checks
    );
    xscp::outln!(
        "  resets:      {} ({} in NEGOTIATING, {} in ESTABLISHED); receipts after the \
         sender's reset {}",
        resets.resets,
        resets_neg,
        resets_est,
        resets.late_receipts
    );
    for (k, n) in RESET_KINDS.iter().zip(resets.by_kind) {
        xscp::outln!("    {n:>8} x {k}");
    }
    xscp::outln!("  garbage:     {garbage_n} connections, each answered and closed as required");
    for (k, n) in GARBAGE_CASES.iter().zip(garbage.by_case) {
        xscp::outln!("    {n:>8} x {k}");
    }
    xscp::outln!(
        "  churn:       {} cycles ({:.0}/s)",
        churn.cycles,
        churn.cycles as f64 / load_secs.max(1e-9)
    );
    errors.print();
    cpu.print();
    let opt = |v: Option<u64>| v.map_or("n/a".into(), |v| v.to_string());
    xscp::outln!("  health (all load stopped, every bench socket closed):");
    xscp::outln!(
        "    users:     {} after {:.1} s (a fresh client, itself the only one){}",
        h.users.map_or("n/a".into(), |v| v.to_string()),
        h.users_secs,
        if h.strays.is_empty() {
            String::new()
        } else {
            format!("; others listed: {}", h.strays.join(" "))
        }
    );
    xscp::outln!(
        "    threads:   {} before, {} after; fds: {} before, {} after ({:.1} s to get back)",
        opt(h.threads.0),
        opt(h.threads.1),
        opt(h.fds.0),
        opt(h.fds.1),
        h.back_secs
    );
    if !h.leftover.is_empty() {
        xscp::outln!("    server threads now: {}", h.leftover);
    }
    xscp::outln!(
        "    VmRSS:     {} kB before, {} kB after (peak VmHWM {} kB)",
        opt(h.rss.0),
        opt(h.rss.1),
        opt(h.hwm)
    );
    xscp::outln!("    server:    {}", if h.alive { "alive" } else { "GONE" });
    // Every activity that ran must have done something.
    let mut idle_parts = Vec::new();
    if chat_msgs == 0 {
        idle_parts.push("chatters");
    }
    if opts.floods > 0 && flood.dropped == 0 {
        idle_parts.push("floods");
    }
    if opts.resetters > 0 && resets.resets == 0 {
        idle_parts.push("resets");
    }
    if opts.garbage > 0 && garbage_n == 0 {
        idle_parts.push("garbage");
    }
    if opts.workers > 0 && churn.cycles == 0 {
        idle_parts.push("churn");
    }
    if !idle_parts.is_empty() {
        xscp::outln!("  NO PROGRESS: {}", idle_parts.join(", "));
    }
    let ok = errors.count == 0
        && h.ok()
        && idle_parts.is_empty()
        && chat.lost == 0
        && chat.reordered == 0;
    xscp::outln!("  verdict:     {}", if ok { "clean" } else { "NOT CLEAN" });
    let mut r = format!(
        "RESULT workload=soak secs={load_secs:.0} chat_msgs={chat_msgs} chat_direct={} \
         chat_bcast_deliveries={} receipts={} lost={} reordered={} chat_p50_us={} \
         chat_p99_us={} chat_max_us={} slow_consumers={} flood_victims={} flood_relayed={} \
         resets={} resets_neg={resets_neg} resets_est={resets_est} garbage={garbage_n} \
         churn={} errors={} users_after={} threads_before={} threads_after={} \
         fds_before={} fds_after={} rss_before_kib={} rss_after_kib={} rss_peak_kib={} \
         health={}",
        chat.direct_rx,
        chat.bcast_rx,
        chat.receipts,
        chat.lost,
        chat.reordered,
        chat.lat.percentile(50.0),
        chat.lat.percentile(99.0),
        chat.lat.max,
        flood.dropped,
        flood.victims,
        flood.relayed,
        resets.resets,
        churn.cycles,
        errors.count,
        h.users.map_or("n/a".into(), |v| v.to_string()),
        opt(h.threads.0),
        opt(h.threads.1),
        opt(h.fds.0),
        opt(h.fds.1),
        opt(h.rss.0),
        opt(h.rss.1),
        opt(h.hwm),
        if h.ok() { "ok" } else { "FAIL" }
    );
    cpu.result_fields(&mut r);
    let alive = check_server(opts, &mut r);
    xscp::outln!("{r}");
    Ok(ok && alive)
}
