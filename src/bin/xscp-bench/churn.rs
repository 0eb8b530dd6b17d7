//! `churn`: C workers looping connect, `uname`, `cquit` for D seconds.

use std::fmt::Write as _;
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use xscp::sys;

use crate::options::Opts;
use crate::stats::{Errors, Merge, percentile};
use crate::system::{check_server, cpu_snap, cpu_use, join_merged, proc_status_field, spawn_n};
use crate::wire::{
    LineBuf, base36, connect, expect_greeting, expect_registered, is_timeout, read_line, run_id,
    send_uname,
};

#[derive(Default)]
struct ChurnOutcome {
    pub cycles: u64,
    pub lat_us: Vec<u64>,
    pub errors: Errors,
}

impl Merge for ChurnOutcome {
    fn merge(&mut self, x: ChurnOutcome) {
        self.cycles += x.cycles;
        self.lat_us.extend_from_slice(&x.lat_us);
        self.errors.merge(x.errors);
    }
}

/// One cycle: connect, greeting, `uname`, `+OK you are`, `cquit`, its `+OK`, end of stream.
fn churn_cycle(opts: &Opts, name: &str) -> Result<(), String> {
    let mut s = connect(opts.addr, opts.timeout)?;
    let mut lb = LineBuf::new(1024);
    expect_greeting(&mut s, &mut lb)?;
    send_uname(&mut s, name)?;
    expect_registered(&mut s, &mut lb, name)?;
    s.write_all(b"cquit\r\n")
        .map_err(|e| format!("cquit: write failed: {e}"))?;
    let l = read_line(&mut s, &mut lb).map_err(|e| format!("cquit: {e}"))?;
    if l != "+OK terminating tasks and disconnecting" {
        return Err(format!("cquit answered: {l}"));
    }
    // The server closes in order: FIN after its last line. Wait for it, so the close is
    // clean on both sides.
    loop {
        match lb.fill(&mut s) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                if let Some(l) = lb.next_line() {
                    return Err(format!(
                        "after cquit: unexpected line: {}",
                        String::from_utf8_lossy(l)
                    ));
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err("after cquit: no FIN in time".into()),
            Err(e) => return Err(format!("after cquit: {e} (not an orderly close)")),
        }
    }
}

/// Worker `w`: cycles until `stop`.
fn churn_worker(opts: &Opts, rid: &str, w: usize, stop: &AtomicBool) -> ChurnOutcome {
    let mut out = ChurnOutcome::default();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // w<run><worker>n<count in base 36>: at most 16 characters for
        // 36^7 (78 billion) cycles per worker.
        let name = format!("w{rid}{w}n{}", base36(n));
        n += 1;
        let began = Instant::now();
        match churn_cycle(opts, &name) {
            Ok(()) => {
                out.cycles += 1;
                out.lat_us.push(began.elapsed().as_micros() as u64);
            }
            Err(e) => {
                out.errors.add(e);
                // Do not spin on a server that is gone or refusing.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    out
}

pub fn run(opts: &Opts) -> Result<bool, String> {
    let c = opts.workers;
    sys::ensure_nofile(c as u64 + 64)?;
    let rid = run_id();
    xscp::outln!(
        "xscp-bench churn: {c} workers, {} s of connect/uname/cquit, server {}",
        opts.secs,
        opts.addr
    );
    let pid = opts.server_pid;
    let thr0 = pid.and_then(|p| proc_status_field(p, "Threads"));
    let start = Arc::new(Barrier::new(c + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let handles = {
        let (start, stop, opts) = (Arc::clone(&start), Arc::clone(&stop), opts.clone());
        spawn_n("bench-churn", c, move |w| {
            start.wait();
            churn_worker(&opts, &rid, w, &stop)
        })?
    };
    start.wait();
    let cpu0 = cpu_snap(pid);
    thread::sleep(Duration::from_secs_f64(opts.secs));
    stop.store(true, Ordering::Relaxed);
    let mut o: ChurnOutcome = join_merged(handles)?;
    let cpu1 = cpu_snap(pid);
    let cpu = cpu_use(&cpu0, &cpu1);
    let rate = o.cycles as f64 / cpu.wall;
    o.lat_us.sort_unstable();
    let p = |q: f64| percentile(&o.lat_us, q);
    xscp::outln!(
        "  cycles:      {} in {:.2} s = {rate:.0}/s",
        o.cycles,
        cpu.wall
    );
    xscp::outln!(
        "  cycle time:  p50 {} us, p99 {} us, max {} us",
        p(50.0),
        p(99.0),
        o.lat_us.last().copied().unwrap_or(0)
    );
    o.errors.print();
    cpu.print();
    // Every connection should be gone shortly: the server's threads return to their count.
    let mut thr_after = None;
    if let (Some(pid), Some(t0)) = (pid, thr0) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            thr_after = proc_status_field(pid, "Threads");
            if thr_after.is_none_or(|t| t <= t0) || Instant::now() >= deadline {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        if let Some(t1) = thr_after {
            xscp::outln!("  server threads: {t0} before, {t1} after (5 s at most for closes)");
        }
    }
    let mut r = format!(
        "RESULT workload=churn workers={c} secs={} cycles={} per_sec={rate:.0} p50_us={} \
         p99_us={} errors={}",
        opts.secs,
        o.cycles,
        p(50.0),
        p(99.0),
        o.errors.count
    );
    if let Some(t) = thr_after {
        let _ = write!(r, " server_threads_after={t}");
    }
    cpu.result_fields(&mut r);
    let alive = check_server(opts, &mut r);
    xscp::outln!("{r}");
    Ok(o.errors.count == 0 && alive)
}
