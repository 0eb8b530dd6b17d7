//! `idle`: N registered clients that only answer pings; how fast they register and what
//! they cost the server.

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use xscp::sys;

use crate::options::Opts;
use crate::stats::{Errors, Merge};
use crate::system::{check_server, cpu_snap, cpu_use, join_merged, proc_status_field, spawn_n};
use crate::wire::{
    LineBuf, connect, expect_greeting, expect_registered, is_timeout, push_pong, run_id, send_uname,
};

#[derive(Default)]
struct IdleOutcome {
    pub registered: usize,
    pub slowest: Duration,
    pub pongs: u64,
    pub dropped: u64,
    pub errors: Errors,
}

impl Merge for IdleOutcome {
    fn merge(&mut self, x: IdleOutcome) {
        self.registered += x.registered;
        self.slowest = self.slowest.max(x.slowest);
        self.pongs += x.pongs;
        self.dropped += x.dropped;
        self.errors.merge(x.errors);
    }
}

struct IdleConn {
    pub stream: TcpStream,
    pub lb: LineBuf,
    pub name: String,
}

/// Connects and registers `names` in batches, then (after everyone has) holds them until
/// `hold_until`, answering pings.
fn idle_worker(
    opts: &Opts,
    names: Vec<String>,
    registered: &Barrier,
    held: &Barrier,
    stop: &AtomicBool,
) -> IdleOutcome {
    let mut o = IdleOutcome::default();
    let mut conns: Vec<IdleConn> = Vec::with_capacity(names.len());
    for batch in names.chunks(opts.connect_batch) {
        let began = Instant::now();
        let mut pending: Vec<IdleConn> = Vec::with_capacity(batch.len());
        for name in batch {
            match connect(opts.addr, opts.timeout) {
                Ok(stream) => pending.push(IdleConn {
                    stream,
                    lb: LineBuf::new(1024),
                    name: name.clone(),
                }),
                Err(e) => o.errors.add(e),
            }
        }
        pending.retain_mut(|c| {
            let r = expect_greeting(&mut c.stream, &mut c.lb)
                .and_then(|()| send_uname(&mut c.stream, &c.name));
            r.map_err(|e| o.errors.add(e)).is_ok()
        });
        pending.retain_mut(|c| {
            let r = expect_registered(&mut c.stream, &mut c.lb, &c.name);
            r.map_err(|e| o.errors.add(e)).is_ok()
        });
        o.slowest = o.slowest.max(began.elapsed());
        o.registered += pending.len();
        conns.extend(pending);
    }
    registered.wait();
    // Hold: sweep the sockets without blocking, answer pings, notice disconnections.
    for c in &conns {
        if let Err(e) = c.stream.set_nonblocking(true) {
            o.errors.add(format!("{}: set_nonblocking: {e}", c.name));
        }
    }
    let mut alive = vec![true; conns.len()];
    while !stop.load(Ordering::Relaxed) {
        for (c, alive) in conns.iter_mut().zip(alive.iter_mut()) {
            if *alive {
                *alive = idle_sweep(c, &mut o);
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    held.wait();
    // Dropping the sockets closes them (FIN): the server sees the peer close.
    o
}

/// Reads what one idle socket has; answers pings. False once the connection has ended.
fn idle_sweep(c: &mut IdleConn, o: &mut IdleOutcome) -> bool {
    loop {
        match c.lb.fill(&mut c.stream) {
            Ok(0) => {
                o.dropped += 1;
                o.errors
                    .add(format!("{}: server closed an idle connection", c.name));
                return false;
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => return true,
            Err(e) => {
                o.dropped += 1;
                o.errors
                    .add(format!("{}: idle connection failed: {e}", c.name));
                return false;
            }
        }
        let mut answers = Vec::new();
        while let Some(line) = c.lb.next_line() {
            if let Some(token) = line.strip_prefix(b"ping ") {
                push_pong(&mut answers, token);
                o.pongs += 1;
            } else {
                let l = String::from_utf8_lossy(line);
                o.errors
                    .add(format!("{}: unexpected line while idle: {l}", c.name));
            }
        }
        if !answers.is_empty() {
            // A pong is tiny and the socket's send buffer is empty: a short write or
            // WouldBlock here means the connection is in trouble.
            match c.stream.write(&answers) {
                Ok(n) if n == answers.len() => {}
                Ok(_) | Err(_) => {
                    o.errors.add(format!("{}: could not send a pong", c.name));
                }
            }
        }
    }
}

pub fn run(opts: &Opts) -> Result<bool, String> {
    let n = opts.connections;
    sys::ensure_nofile(n as u64 + 64)?;
    let rid = run_id();
    let threads = opts.connect_threads.min(n);
    xscp::outln!(
        "xscp-bench idle: {n} clients ({threads} threads, batches of {}), hold {} s, server {}",
        opts.connect_batch,
        opts.hold_secs,
        opts.addr
    );
    let pid = opts.server_pid;
    let rss0 = pid.and_then(|p| proc_status_field(p, "VmRSS"));
    let thr0 = pid.and_then(|p| proc_status_field(p, "Threads"));
    if pid.is_some() && rss0.is_none() {
        xscp::errln!("xscp-bench: warning: cannot read /proc/{:?}/status", pid);
    }
    let registered = Arc::new(Barrier::new(threads + 1));
    let held = Arc::new(Barrier::new(threads + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let opts_arc = Arc::new(opts.clone());
    let cpu0 = cpu_snap(pid);
    let start = Instant::now();
    let handles = {
        let (registered, held, stop) = (
            Arc::clone(&registered),
            Arc::clone(&held),
            Arc::clone(&stop),
        );
        spawn_n("bench-idle", threads, move |t| {
            // Interleave the names so every thread has about as many.
            let names: Vec<String> = (t..n)
                .step_by(threads)
                .map(|i| format!("i{rid}x{i}"))
                .collect();
            idle_worker(&opts_arc, names, &registered, &held, &stop)
        })?
    };
    registered.wait();
    let reg_secs = start.elapsed().as_secs_f64();
    let cpu1 = cpu_snap(pid);
    let rss1 = pid.and_then(|p| proc_status_field(p, "VmRSS"));
    let thr1 = pid.and_then(|p| proc_status_field(p, "Threads"));
    thread::sleep(Duration::from_secs_f64(opts.hold_secs));
    let rss2 = pid.and_then(|p| proc_status_field(p, "VmRSS"));
    let thr2 = pid.and_then(|p| proc_status_field(p, "Threads"));
    stop.store(true, Ordering::Relaxed);
    held.wait();
    let o: IdleOutcome = join_merged(handles)?;
    let cpu = cpu_use(&cpu0, &cpu1);
    xscp::outln!(
        "  registered:  {} of {n} in {reg_secs:.3} s = {:.0} connections/s (slowest batch \
         {:.0} ms)",
        o.registered,
        o.registered as f64 / reg_secs.max(1e-9),
        o.slowest.as_secs_f64() * 1e3
    );
    let per_conn = |a: Option<u64>, b: Option<u64>| -> Option<f64> {
        Some(b?.saturating_sub(a?) as f64 / o.registered.max(1) as f64)
    };
    let per_reg = per_conn(rss0, rss1);
    let per_hold = per_conn(rss0, rss2);
    if let (Some(r0), Some(r1), Some(r2)) = (rss0, rss1, rss2) {
        xscp::outln!(
            "  server RSS:  {r0} kB before, {r1} kB registered, {r2} kB after the hold \
             = {:.1} / {:.1} KiB per connection",
            per_reg.unwrap_or(0.0),
            per_hold.unwrap_or(0.0)
        );
    }
    if let (Some(t0), Some(t1), Some(t2)) = (thr0, thr1, thr2) {
        xscp::outln!("  server threads: {t0} before, {t1} registered, {t2} after the hold");
    }
    xscp::outln!(
        "  hold:        {} s, pongs sent {}, connections dropped {}",
        opts.hold_secs,
        o.pongs,
        o.dropped
    );
    o.errors.print();
    cpu.print();
    let mut r = format!(
        "RESULT workload=idle connections={n} registered={} register_s={reg_secs:.3} \
         per_sec={:.0} rss_per_conn_kib={} rss_per_conn_kib_registered={} \
         server_threads={} pongs={} dropped={} errors={}",
        o.registered,
        o.registered as f64 / reg_secs.max(1e-9),
        per_hold.map_or("n/a".into(), |v| format!("{v:.1}")),
        per_reg.map_or("n/a".into(), |v| format!("{v:.1}")),
        thr1.map_or("n/a".into(), |v| v.to_string()),
        o.pongs,
        o.dropped,
        o.errors.count
    );
    cpu.result_fields(&mut r);
    let alive = check_server(opts, &mut r);
    xscp::outln!("{r}");
    Ok(o.errors.count == 0 && o.registered == n && alive)
}
