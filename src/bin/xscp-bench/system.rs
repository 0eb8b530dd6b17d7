//! What the bench asks of the operating system: the CPU, memory, thread and descriptor
//! figures of /proc, and the worker threads. (The descriptor limit and resets are C calls,
//! declared with the others in [`xscp::sys`].)

use std::fmt::Write as _;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crate::options::Opts;
use crate::stats::Merge;

// --- CPU, memory and thread figures from /proc -------------------------------------------

/// Clock ticks per second of /proc (USER_HZ, 100 on Linux).
const CLK_TCK: f64 = 100.0;

/// utime + stime of a process, in ticks (all its threads).
fn proc_cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Machine-wide (busy, total) ticks from /proc/stat.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// A `Key: value` field of /proc/PID/status, as a number (VmRSS in kB, Threads).
pub fn proc_status_field(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    xscp::sys::status_field(&s, key)?.parse().ok()
}

/// Is process `pid` still running (neither gone nor a zombie)?
pub fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    state.is_some_and(|s| s != "Z" && s != "X")
}

/// With `--server-pid`: reports whether the server survived the run and adds
/// `server_alive=0|1` to the RESULT fields. True without a pid.
pub fn check_server(opts: &Opts, r: &mut String) -> bool {
    let Some(pid) = opts.server_pid else {
        return true;
    };
    let alive = process_alive(pid);
    if !alive {
        xscp::outln!("  SERVER GONE: process {pid} exited during the run (crashed?)");
    }
    let _ = write!(r, " server_alive={}", u8::from(alive));
    alive
}

#[derive(Clone, Copy)]
pub struct CpuSnap {
    pub at: Instant,
    pub bench: Option<u64>,
    pub server: Option<u64>,
    pub machine: Option<(u64, u64)>,
}

pub fn cpu_snap(server_pid: Option<u32>) -> CpuSnap {
    CpuSnap {
        at: Instant::now(),
        bench: proc_cpu_ticks("self"),
        server: server_pid.and_then(|p| proc_cpu_ticks(&p.to_string())),
        machine: machine_ticks(),
    }
}

/// CPU use between two snapshots, as percentages of one core (200% = two cores busy).
pub struct CpuUse {
    pub wall: f64,
    pub bench_secs: Option<f64>,
    pub bench_pct: Option<f64>,
    pub server_pct: Option<f64>,
    pub machine_pct: Option<f64>,
    pub cores: usize,
}

pub fn cpu_use(a: &CpuSnap, b: &CpuSnap) -> CpuUse {
    let wall = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let secs = |x: Option<u64>, y: Option<u64>| Some(y?.saturating_sub(x?) as f64 / CLK_TCK);
    let bench_secs = secs(a.bench, b.bench);
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let machine_pct = match (a.machine, b.machine) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
            Some(100.0 * cores as f64 * (b1 - b0) as f64 / (t1 - t0) as f64)
        }
        _ => None,
    };
    CpuUse {
        wall,
        bench_secs,
        bench_pct: bench_secs.map(|s| 100.0 * s / wall),
        server_pct: secs(a.server, b.server).map(|s| 100.0 * s / wall),
        machine_pct,
        cores,
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.0}"))
}

impl CpuUse {
    pub fn print(&self) {
        let c = self.cores;
        match (self.bench_secs, self.bench_pct) {
            (Some(s), Some(p)) => xscp::outln!(
                "  bench CPU:   {s:.2} s user+sys over {:.2} s wall = {p:.0}% of one core \
                 ({:.0}% of {c} cores)",
                self.wall,
                p / c as f64
            ),
            _ => xscp::outln!("  bench CPU:   n/a"),
        }
        if let Some(p) = self.server_pct {
            xscp::outln!(
                "  server CPU:  {p:.0}% of one core ({:.0}% of {c} cores)",
                p / c as f64
            );
        }
        if let Some(p) = self.machine_pct {
            let others = match (self.bench_pct, self.server_pct) {
                (Some(b), Some(s)) => format!(", others ~{:.0}%", (p - b - s).max(0.0)),
                _ => String::new(),
            };
            xscp::outln!("  machine:     {p:.0}% busy of {}00%{others}", c);
        }
    }

    pub fn result_fields(&self, out: &mut String) {
        let _ = write!(
            out,
            " bench_cpu_pct={} server_cpu_pct={} machine_busy_pct={} cores={}",
            pct(self.bench_pct),
            pct(self.server_pct),
            pct(self.machine_pct),
            self.cores
        );
    }
}

/// Open descriptors of process `pid`.
pub fn proc_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// The names of process `pid`'s threads, digits dropped, with counts (for a report on
/// threads that did not go away).
pub fn proc_thread_names(pid: u32) -> String {
    let mut names: Vec<(String, u64)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in dir.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            let key: String = comm
                .trim()
                .chars()
                .filter(|c| !c.is_ascii_digit())
                .collect();
            match names.iter_mut().find(|n| n.0 == key) {
                Some(n) => n.1 += 1,
                None => names.push((key, 1)),
            }
        }
    }
    names
        .iter()
        .map(|(n, c)| format!("{n} x{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// --- worker threads ----------------------------------------------------------------------

/// Starts a named worker thread. The stack is small: a run may have thousands of them, and
/// none recurses or keeps much on its stack.
pub fn spawn<T, F>(name: String, f: F) -> Result<JoinHandle<T>, String>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    thread::Builder::new()
        .name(name)
        .stack_size(256 * 1024)
        .spawn(f)
        .map_err(|e| format!("cannot start a thread: {e}"))
}

/// Starts `n` workers named `<name>-<i>`, worker `i` running `f(i)`.
pub fn spawn_n<T, F>(name: &str, n: usize, f: F) -> Result<Vec<JoinHandle<T>>, String>
where
    F: Fn(usize) -> T + Send + Sync + 'static,
    T: Send + 'static,
{
    let f = Arc::new(f);
    (0..n)
        .map(|i| {
            let f = Arc::clone(&f);
            spawn(format!("{name}-{i}"), move || f(i))
        })
        .collect()
}

/// Waits for every worker; their results in the order started. A panic is a bench bug.
fn join_all<T>(handles: Vec<JoinHandle<T>>) -> Result<Vec<T>, String> {
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .map_err(|_| "a worker thread panicked (a bench bug)".to_string())
        })
        .collect()
}

/// Waits for every worker and adds up what they found.
pub fn join_merged<T: Merge>(handles: Vec<JoinHandle<T>>) -> Result<T, String> {
    let mut all = T::default();
    for o in join_all(handles)? {
        all.merge(o);
    }
    Ok(all)
}
