//! `xscp-bench`: a load generator for a running `xscpd`, over loopback only.
//!
//! Workloads (the first argument):
//! - `direct`: P pairs; each sender sends M `chatm` to its partner with at most W in flight
//!   (sent, `+OK message relayed` not yet received). Reports relayed messages per second,
//!   one-way latency (send time to the partner's receipt of the relayed `chatm`) and lost,
//!   duplicated or reordered messages.
//! - `broadcast`: K clients, S of them senders, each sending M to `*` with window W.
//!   Reports deliveries per second (each message reaches K-1 clients) and latency.
//! - `idle`: N registered idle clients answering server pings; connect-and-register time,
//!   and with `--server-pid` the server's RSS per connection and its thread count.
//! - `churn`: C workers looping connect, `uname`, `cquit` for D seconds; cycles per second.
//! - `soak`: for D seconds (default 180) all of these at once against one server: chatter
//!   pairs (direct chatm with receipts, broadcasts; order and receipts checked), floods (a
//!   client that never reads, flooded until the server drops it as a slow consumer),
//!   resets (RST in NEGOTIATING and ESTABLISHED), garbage (random bytes, overlong lines,
//!   control bytes, invalid UTF-8, commands for the wrong state, spoofing, stray pongs: each
//!   must get its `-ERR`, `cquit` and an orderly close) and churn. Then, with everything
//!   closed, the server's health: a fresh client is the only user, threads and descriptors
//!   back to their baseline, memory before and after. Needs `--server-pid`.
//!
//! Every run prints a human-readable report, then one `RESULT key=value ...` line. The exit
//! status is 0 for a clean run, 1 when anything was lost, reordered or failed, 2 when the
//! run could not be set up (bad option, server unreachable, ...).
//!
//! Design for speed (the bench must not be the bottleneck, and reports its own CPU share):
//! one thread per socket in `direct`/`broadcast`, each doing blocking reads of up to 64 KiB,
//! parsing lines in place without allocation, and writing everything it has to send (a whole
//! window of `chatm`, pongs, receipts) in one `write`. Timestamps are nanoseconds since a
//! common start, carried in the message text as `<seq> <send-ns>`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: xscp-bench WORKLOAD [options]

Workloads:
  direct      P pairs, each sender sends M chatm to its partner (window W)
  broadcast   K clients in the room, S senders each send M chatm to * (window W)
  idle        N registered idle clients answering server pings, held --hold-secs
  churn       C workers loop connect, uname, cquit for D seconds
  soak        everything at once for D seconds (default 180): chatter pairs, floods,
              resets, garbage, churn; then the server's health (needs --server-pid)

Options:
  --addr ADDR          server address, loopback only (default 127.0.0.1:1030)
  --pairs P            direct: sender/receiver pairs (default 50); soak: chatter pairs
                       (default 8)
  --messages M         messages per sender (default 20000 direct, 2000 broadcast)
  --window W           most chatm in flight per sender (default 64; soak 16)
  --payload BYTES      extra filler bytes in each message text (default 0)
  --receipts           receivers answer every chatm with chatr (default: pure relay)
  --clients K          broadcast: clients in the room, senders included (default 100)
  --senders S          broadcast: how many of them send (default 4)
  --connections N      idle: clients to connect and register (default 10000)
  --hold-secs SECS     idle: how long to hold them once registered (default 2)
  --connect-threads T  idle: threads connecting in parallel (default 8)
  --connect-batch B    idle: connections each thread opens at once (default 16)
  --workers C          churn: worker threads (default 8); soak: churn workers (default 2)
  --secs D             churn, soak: duration in seconds (default 10; soak 180)
  --chat-rate N        soak: messages per second each chatter sends, 0 = unpaced
                       (default 1000)
  --floods N           soak: flooder/victim pairs (default 1)
  --resetters N        soak: workers resetting connections (default 2)
  --garbage N          soak: workers sending garbage (default 2)
  --pause-ms MS        soak: pause between the cycles of resetters, garbage and churn
                       workers (default 10)
  --seed S             soak: seed of the random garbage (default: from the clock)
  --timeout SECS       give up after this long without progress (default 10)
  --server-pid PID     also report the server's CPU, RSS and threads (from /proc)
  -h, --help           print this help

Exit status: 0 clean run, 1 losses/errors, 2 setup failure.
The server should run with --rate 0 --max-per-ip 0 and a --max-clients above the load;
for churn with --hold 0 so that departed names are not held; for soak also with a small
--sendq (64K) so that flood victims are dropped quickly, and --hold 0.";

// ---------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Direct,
    Broadcast,
    Idle,
    Churn,
    Soak,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Direct => "direct",
            Workload::Broadcast => "broadcast",
            Workload::Idle => "idle",
            Workload::Churn => "churn",
            Workload::Soak => "soak",
        }
    }
}

#[derive(Clone, Debug)]
struct Opts {
    workload: Workload,
    addr: SocketAddr,
    pairs: usize,
    messages: Option<usize>,
    window: usize,
    payload: usize,
    receipts: bool,
    clients: usize,
    senders: usize,
    connections: usize,
    hold_secs: f64,
    connect_threads: usize,
    connect_batch: usize,
    workers: usize,
    secs: f64,
    timeout: Duration,
    server_pid: Option<u32>,
    chat_rate: u64,
    floods: usize,
    resetters: usize,
    garbage: usize,
    pause_ms: u64,
    seed: Option<u64>,
}

fn parse_num<T>(opt: &str, v: Option<String>, min: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let v = v.ok_or_else(|| format!("option {opt} needs a value"))?;
    let n: T = v
        .parse()
        .map_err(|_| format!("invalid value '{v}' for {opt}"))?;
    if n < min {
        return Err(format!("{opt} must be at least {min}"));
    }
    Ok(n)
}

fn parse_secs(opt: &str, v: Option<String>) -> Result<f64, String> {
    let s: f64 = parse_num(opt, v, 0.0)?;
    if !s.is_finite() || s > 1e6 {
        return Err(format!("invalid value for {opt}"));
    }
    Ok(s)
}

/// `None`: help was asked for.
fn parse_args(args: Vec<String>) -> Result<Option<Opts>, String> {
    let mut args = args.into_iter();
    let workload = match args.next().as_deref() {
        None | Some("-h" | "--help") => return Ok(None),
        Some("direct") => Workload::Direct,
        Some("broadcast") => Workload::Broadcast,
        Some("idle") => Workload::Idle,
        Some("churn") => Workload::Churn,
        Some("soak") => Workload::Soak,
        Some(w) => return Err(format!("unknown workload '{w}'")),
    };
    let soak = workload == Workload::Soak;
    let mut o = Opts {
        workload,
        addr: SocketAddr::from(([127, 0, 0, 1], 1030)),
        pairs: if soak { 8 } else { 50 },
        messages: None,
        window: if soak { 16 } else { 64 },
        payload: 0,
        receipts: false,
        clients: 100,
        senders: 4,
        connections: 10_000,
        hold_secs: 2.0,
        connect_threads: 8,
        connect_batch: 16,
        workers: if soak { 2 } else { 8 },
        secs: if soak { 180.0 } else { 10.0 },
        timeout: Duration::from_secs(10),
        server_pid: None,
        chat_rate: 1000,
        floods: 1,
        resetters: 2,
        garbage: 2,
        pause_ms: 10,
        seed: None,
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (opt, mut inline) = match arg.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut next = || inline.take().or_else(|| args.next());
        match opt.as_str() {
            "--addr" => {
                let v = next().ok_or("option --addr needs a value")?;
                o.addr = resolve_loopback(&v)?;
            }
            "--pairs" => o.pairs = parse_num(&opt, next(), 1)?,
            "--messages" => o.messages = Some(parse_num(&opt, next(), 1)?),
            "--window" => o.window = parse_num(&opt, next(), 1)?,
            "--payload" => o.payload = parse_num(&opt, next(), 0)?,
            "--receipts" => o.receipts = true,
            "--clients" => o.clients = parse_num(&opt, next(), 2)?,
            "--senders" => o.senders = parse_num(&opt, next(), 1)?,
            "--connections" => o.connections = parse_num(&opt, next(), 1)?,
            "--hold-secs" => o.hold_secs = parse_secs(&opt, next())?,
            "--connect-threads" => o.connect_threads = parse_num(&opt, next(), 1)?,
            "--connect-batch" => o.connect_batch = parse_num(&opt, next(), 1)?,
            "--workers" => o.workers = parse_num(&opt, next(), usize::from(!soak))?,
            "--secs" => o.secs = parse_secs(&opt, next())?,
            "--timeout" => {
                let s = parse_secs(&opt, next())?;
                o.timeout = Duration::from_secs_f64(s.max(0.1));
            }
            "--server-pid" => o.server_pid = Some(parse_num(&opt, next(), 1)?),
            "--chat-rate" => o.chat_rate = parse_num(&opt, next(), 0)?,
            "--floods" => o.floods = parse_num(&opt, next(), 0)?,
            "--resetters" => o.resetters = parse_num(&opt, next(), 0)?,
            "--garbage" => o.garbage = parse_num(&opt, next(), 0)?,
            "--pause-ms" => o.pause_ms = parse_num(&opt, next(), 0)?,
            "--seed" => o.seed = Some(parse_num(&opt, next(), 0)?),
            "-h" | "--help" => return Ok(None),
            _ => return Err(format!("unknown option '{arg}'")),
        }
        if let Some(v) = inline {
            return Err(format!("option {opt} takes no value (got '{v}')"));
        }
    }
    if o.workload == Workload::Broadcast && o.senders > o.clients {
        return Err(format!(
            "--senders ({}) cannot exceed --clients ({})",
            o.senders, o.clients
        ));
    }
    if o.workers > 999 {
        return Err("--workers is at most 999 (nicknames are at most 16 characters)".into());
    }
    if soak
        && (o.pairs > 999 || o.floods > 99 || o.resetters > 99 || o.garbage > 99 || o.workers > 99)
    {
        return Err(
            "soak: --pairs is at most 999, --floods, --resetters, --garbage and \
                    --workers at most 99 (nicknames are at most 16 characters)"
                .into(),
        );
    }
    // The message text is `<filler> <seq> <ns>`; keep the whole line within the 510-byte PDU.
    if o.payload > 400 {
        return Err("--payload is at most 400 bytes (a PDU is at most 510 bytes)".into());
    }
    Ok(Some(o))
}

/// Resolves `v` and insists on a loopback address: the bench never loads another host.
fn resolve_loopback(v: &str) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = v
        .to_socket_addrs()
        .map_err(|e| format!("invalid address '{v}': {e}"))?
        .collect();
    match addrs.iter().find(|a| a.ip().is_loopback()) {
        Some(a) => Ok(*a),
        None => Err(format!(
            "refusing '{v}': xscp-bench only connects to loopback (127.0.0.1)"
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Descriptor limit: getrlimit/setrlimit, declared here (no libc dependency)
// ---------------------------------------------------------------------------------------

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod rlimit {
    use std::ffi::c_int;

    /// `struct rlimit` of 64-bit Linux: two `rlim_t`, which is `unsigned long`, 64 bits.
    #[repr(C)]
    struct RLimit {
        cur: u64,
        max: u64,
    }

    /// `RLIMIT_NOFILE` on Linux (generic and x86 numbering).
    #[cfg(not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64")))]
    const RLIMIT_NOFILE: c_int = 7;
    #[cfg(any(target_arch = "mips", target_arch = "mips64"))]
    const RLIMIT_NOFILE: c_int = 5;
    #[cfg(target_arch = "sparc64")]
    const RLIMIT_NOFILE: c_int = 6;

    unsafe extern "C" {
        fn getrlimit(resource: c_int, rlim: *mut RLimit) -> c_int;
        fn setrlimit(resource: c_int, rlim: *const RLimit) -> c_int;
    }

    fn get() -> Result<(u64, u64), String> {
        let mut r = RLimit { cur: 0, max: 0 };
        // SAFETY: `getrlimit` is the libc function of that name (libc is linked by std);
        // `r` is a valid, writable `struct rlimit` (repr(C), two `unsigned long`) that lives
        // for the whole call, and the function writes only into it.
        let rc = unsafe { getrlimit(RLIMIT_NOFILE, &mut r) };
        if rc != 0 {
            return Err(format!(
                "getrlimit(NOFILE): {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok((r.cur, r.max))
    }

    /// Makes sure at least `need` descriptors can be open: raises the soft limit (up to the
    /// hard one) if it is lower. Returns the soft limit now in force.
    pub fn ensure_nofile(need: u64) -> Result<u64, String> {
        let (cur, max) = get()?;
        if cur >= need {
            return Ok(cur);
        }
        if max < need {
            return Err(format!(
                "need {need} file descriptors but the hard limit is {max}: \
                 raise it (as root: ulimit -Hn {need}) or use fewer connections"
            ));
        }
        let r = RLimit { cur: max, max };
        // SAFETY: `setrlimit` is the libc function of that name; `r` is a valid
        // `struct rlimit` that lives for the whole call and is only read.
        let rc = unsafe { setrlimit(RLIMIT_NOFILE, &r) };
        if rc != 0 {
            return Err(format!(
                "setrlimit(NOFILE, {max}): {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(max)
    }
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod rlimit {
    /// Not 64-bit Linux: leave the limit alone and hope it suffices.
    pub fn ensure_nofile(_need: u64) -> Result<u64, String> {
        Ok(u64::MAX)
    }
}

// ---------------------------------------------------------------------------------------
// CPU, memory and thread figures from /proc
// ---------------------------------------------------------------------------------------

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
fn proc_status_field(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Is process `pid` still running (neither gone nor a zombie)?
fn process_alive(pid: u32) -> bool {
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
fn check_server(opts: &Opts, r: &mut String) -> bool {
    let Some(pid) = opts.server_pid else {
        return true;
    };
    let alive = process_alive(pid);
    if !alive {
        println!("  SERVER GONE: process {pid} exited during the run (crashed?)");
    }
    let _ = write!(r, " server_alive={}", u8::from(alive));
    alive
}

#[derive(Clone, Copy)]
struct CpuSnap {
    at: Instant,
    bench: Option<u64>,
    server: Option<u64>,
    machine: Option<(u64, u64)>,
}

fn cpu_snap(server_pid: Option<u32>) -> CpuSnap {
    CpuSnap {
        at: Instant::now(),
        bench: proc_cpu_ticks("self"),
        server: server_pid.and_then(|p| proc_cpu_ticks(&p.to_string())),
        machine: machine_ticks(),
    }
}

/// CPU use between two snapshots, as percentages of one core (200% = two cores busy).
struct CpuUse {
    wall: f64,
    bench_secs: Option<f64>,
    bench_pct: Option<f64>,
    server_pct: Option<f64>,
    machine_pct: Option<f64>,
    cores: usize,
}

fn cpu_use(a: &CpuSnap, b: &CpuSnap) -> CpuUse {
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
    fn print(&self) {
        let c = self.cores;
        match (self.bench_secs, self.bench_pct) {
            (Some(s), Some(p)) => println!(
                "  bench CPU:   {s:.2} s user+sys over {:.2} s wall = {p:.0}% of one core \
                 ({:.0}% of {c} cores)",
                self.wall,
                p / c as f64
            ),
            _ => println!("  bench CPU:   n/a"),
        }
        if let Some(p) = self.server_pct {
            println!(
                "  server CPU:  {p:.0}% of one core ({:.0}% of {c} cores)",
                p / c as f64
            );
        }
        if let Some(p) = self.machine_pct {
            let others = match (self.bench_pct, self.server_pct) {
                (Some(b), Some(s)) => format!(", others ~{:.0}%", (p - b - s).max(0.0)),
                _ => String::new(),
            };
            println!("  machine:     {p:.0}% busy of {}00%{others}", c);
        }
    }

    fn result_fields(&self, out: &mut String) {
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

// ---------------------------------------------------------------------------------------
// Lines and connections
// ---------------------------------------------------------------------------------------

/// A read buffer that yields complete lines in place (no allocation per line).
struct LineBuf {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl LineBuf {
    fn new(cap: usize) -> LineBuf {
        LineBuf {
            buf: vec![0; cap.max(1024)].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// One `read` into the free space. `Ok(0)` is end of stream.
    fn fill(&mut self, r: &mut impl Read) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < 1024 {
            if self.start == 0 {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    "line longer than the read buffer",
                ));
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = r.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// The next complete line, without its LF or CRLF.
    fn next_line(&mut self) -> Option<&[u8]> {
        let s = self.start;
        let i = find_byte(&self.buf[s..self.end], b'\n')?;
        self.start = s + i + 1;
        let line = &self.buf[s..s + i];
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

/// The first `needle` in `hay`, eight bytes at a time (the classic "has zero byte" test:
/// the lowest flagged byte is always a true match).
fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let rep = LO * u64::from(needle);
    let words = hay.chunks_exact(8);
    let tail = words.remainder();
    for (k, w) in words.enumerate() {
        let Ok(w) = <[u8; 8]>::try_from(w) else { break };
        let x = u64::from_le_bytes(w) ^ rep;
        let t = x.wrapping_sub(LO) & !x & HI;
        if t != 0 {
            return Some(k * 8 + (t.trailing_zeros() / 8) as usize);
        }
    }
    let base = hay.len() - tail.len();
    tail.iter().position(|&b| b == needle).map(|p| base + p)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Reads one line (blocking, with the socket's read timeout), for the handshakes.
fn read_line(stream: &mut TcpStream, lb: &mut LineBuf) -> Result<String, String> {
    loop {
        if let Some(l) = lb.next_line() {
            return Ok(String::from_utf8_lossy(l).into_owned());
        }
        match lb.fill(stream) {
            Ok(0) => return Err("server closed the connection".into()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err("no answer from the server in time".into()),
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
}

fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_nodelay(true)
        .and_then(|()| s.set_read_timeout(Some(timeout)))
        .map_err(|e| format!("socket options: {e}"))?;
    Ok(s)
}

fn expect_greeting(stream: &mut TcpStream, lb: &mut LineBuf) -> Result<(), String> {
    let l = read_line(stream, lb).map_err(|e| format!("greeting: {e}"))?;
    if l.starts_with("+OK xscp/1 ready") {
        Ok(())
    } else {
        Err(format!("unexpected greeting: {l}"))
    }
}

fn send_uname(stream: &mut TcpStream, name: &str) -> Result<(), String> {
    stream
        .write_all(format!("uname {name}\r\n").as_bytes())
        .map_err(|e| format!("uname {name}: write failed: {e}"))
}

fn expect_registered(stream: &mut TcpStream, lb: &mut LineBuf, name: &str) -> Result<(), String> {
    let l = read_line(stream, lb).map_err(|e| format!("uname {name}: {e}"))?;
    match l.strip_prefix("+OK ") {
        Some(rest) if rest == format!("you are {name}") => Ok(()),
        Some(rest) if rest == format!("welcome back {name}") => Ok(()),
        _ => Err(format!("uname {name} refused: {l}")),
    }
}

/// Connects, reads the greeting, registers `name`. The socket keeps `timeout` as its read
/// timeout.
fn connect_registered(
    addr: SocketAddr,
    name: &str,
    timeout: Duration,
    bufsize: usize,
) -> Result<(TcpStream, LineBuf), String> {
    let mut s = connect(addr, timeout)?;
    let mut lb = LineBuf::new(bufsize);
    expect_greeting(&mut s, &mut lb)?;
    send_uname(&mut s, name)?;
    expect_registered(&mut s, &mut lb, name)?;
    Ok((s, lb))
}

/// A short tag that keeps this run's nicknames apart from other runs' (4 base-36 chars).
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let v = (u64::from(std::process::id()) * 7919 + nanos) % (36u64.pow(4));
    format!("{:0>4}", base36(v))
}

/// `v` in base 36 (digits and lower-case letters), for compact nicknames.
fn base36(mut v: u64) -> String {
    let mut out = Vec::with_capacity(13);
    loop {
        out.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut v = 0u64;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some(v)
}

/// A relayed `chatm <sender> <recipient> [filler ]<seq> <ns>`: (sender, recipient, seq, ns).
fn parse_chatm(line: &[u8]) -> Option<(&[u8], &[u8], u64, u64)> {
    let rest = line.strip_prefix(b"chatm ")?;
    let a = rest.iter().position(|&b| b == b' ')?;
    let (sender, rest) = (&rest[..a], &rest[a + 1..]);
    let b = rest.iter().position(|&b| b == b' ')?;
    let (recipient, text) = (&rest[..b], &rest[b + 1..]);
    let last = text.iter().rposition(|&b| b == b' ')?;
    let ns = parse_u64(&text[last + 1..])?;
    let head = &text[..last];
    let prev = head.iter().rposition(|&b| b == b' ').map_or(0, |p| p + 1);
    let seq = parse_u64(&head[prev..])?;
    Some((sender, recipient, seq, ns))
}

/// The number after the last `x` of a bench nickname (`s1a2bx17` -> 17).
fn name_index(name: &[u8]) -> Option<usize> {
    let x = name.iter().rposition(|&b| b == b'x')?;
    usize::try_from(parse_u64(&name[x + 1..])?).ok()
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Errors of one run: a count, and counts by kind (the message without its digits, so that
/// the same failure on many clients of a run is one kind) with a first example each.
#[derive(Default)]
struct Errors {
    count: u64,
    kinds: Vec<(String, u64, String)>,
}

impl Errors {
    /// Most kinds kept; the rest are counted under the last one.
    const KINDS: usize = 12;

    fn add(&mut self, msg: String) {
        self.add_n(msg, 1);
    }

    fn add_n(&mut self, msg: String, n: u64) {
        self.count += n;
        let key: String = msg.chars().filter(|c| !c.is_ascii_digit()).collect();
        if let Some(k) = self.kinds.iter_mut().find(|k| k.0 == key) {
            k.1 += n;
        } else if self.kinds.len() < Self::KINDS {
            self.kinds.push((key, n, msg));
        } else if let Some(k) = self.kinds.last_mut() {
            k.1 += n;
            k.2 = "(other errors)".into();
        }
    }

    fn merge(&mut self, other: Errors) {
        for (_, n, msg) in other.kinds {
            self.add_n(msg, n);
        }
    }

    fn print(&self) {
        if self.count > 0 {
            println!("  errors:      {}", self.count);
            for (_, n, example) in &self.kinds {
                println!("    {n:>8} x {example}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// direct and broadcast: one thread per socket
// ---------------------------------------------------------------------------------------

/// What a client thread sends.
struct SendPlan {
    /// The recipient field: a nickname or `*`.
    to: String,
    messages: usize,
    window: usize,
    payload: usize,
}

/// What a client thread expects to receive: `messages` from each sender whose index is in
/// `from`, except `skip` (itself).
struct RecvPlan {
    from: std::ops::Range<usize>,
    skip: Option<usize>,
    messages: usize,
}

impl RecvPlan {
    fn senders(&self) -> usize {
        self.from.len() - usize::from(self.skip.is_some_and(|s| self.from.contains(&s)))
    }
}

struct Job {
    name: String,
    stream: TcpStream,
    lb: LineBuf,
    send: Option<SendPlan>,
    recv: RecvPlan,
    /// Answer every `chatm` with `chatr`.
    receipts: bool,
    /// `chatr` lines this (sending) client waits for.
    expect_receipts: usize,
}

#[derive(Default)]
struct Outcome {
    sent: u64,
    acked: u64,
    expected: u64,
    received: u64,
    dup: u64,
    reordered: u64,
    receipts: u64,
    pongs: u64,
    /// Nanoseconds since the common start at which the last message arrived.
    last_rx_ns: u64,
    lat: Vec<u64>,
    errors: Errors,
}

fn ns_since(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// One client socket: sends its plan with the window, receives and checks what arrives.
fn run_job(job: Job, t0: Instant, timeout: Duration, start: &Barrier) -> Outcome {
    let Job {
        name,
        mut stream,
        mut lb,
        send,
        recv,
        receipts,
        expect_receipts,
    } = job;
    let mut o = Outcome::default();
    let slots = recv.from.len();
    let words = recv.messages.div_ceil(64);
    let mut seen = vec![0u64; slots * words];
    let mut next_seq = vec![0u64; slots];
    o.expected = (recv.senders() * recv.messages) as u64;
    o.lat = Vec::with_capacity(o.expected as usize);
    let to_send = send.as_ref().map_or(0, |s| s.messages as u64);
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    let filler: Vec<u8> = send.as_ref().map_or(Vec::new(), |s| {
        let mut f = vec![b'x'; s.payload];
        if !f.is_empty() {
            f.push(b' ');
        }
        f
    });
    // A short timeout so a silent socket is noticed; the stall limit is `timeout`.
    if let Err(e) = stream.set_read_timeout(Some(Duration::from_millis(100))) {
        o.errors.add(format!("{name}: set_read_timeout: {e}"));
    }
    start.wait();
    let mut last_progress = Instant::now();
    let mut closing = false;
    loop {
        if let Some(s) = &send {
            let room = (s.window as u64).saturating_sub(o.sent - o.acked);
            let batch = room.min(to_send - o.sent);
            if batch > 0 {
                let now = ns_since(t0);
                for _ in 0..batch {
                    out.extend_from_slice(b"chatm ");
                    out.extend_from_slice(name.as_bytes());
                    out.push(b' ');
                    out.extend_from_slice(s.to.as_bytes());
                    out.push(b' ');
                    out.extend_from_slice(&filler);
                    push_u64(&mut out, o.sent);
                    out.push(b' ');
                    push_u64(&mut out, now);
                    out.extend_from_slice(b"\r\n");
                    o.sent += 1;
                }
            }
        }
        if !out.is_empty() {
            if let Err(e) = stream.write_all(&out) {
                o.errors.add(format!("{name}: write failed: {e}"));
                break;
            }
            out.clear();
        }
        if closing
            || (o.acked >= to_send
                && o.received + o.dup >= o.expected
                && o.receipts >= expect_receipts as u64)
        {
            break;
        }
        match lb.fill(&mut stream) {
            Ok(0) => {
                o.errors
                    .add(format!("{name}: server closed the connection"));
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                if last_progress.elapsed() >= timeout {
                    o.errors.add(format!(
                        "{name}: nothing received for {:.0} s (sent {}, acked {}, received {} \
                         of {}): gave up",
                        timeout.as_secs_f64(),
                        o.sent,
                        o.acked,
                        o.received,
                        o.expected
                    ));
                    break;
                }
                continue;
            }
            Err(e) => {
                o.errors.add(format!("{name}: read failed: {e}"));
                break;
            }
        }
        last_progress = Instant::now();
        let now = ns_since(t0);
        while let Some(line) = lb.next_line() {
            if line.starts_with(b"chatm ") {
                let Some((sender, recipient, seq, ts)) = parse_chatm(line) else {
                    o.errors.add(format!(
                        "{name}: malformed chatm: {}",
                        String::from_utf8_lossy(line)
                    ));
                    continue;
                };
                let slot = name_index(sender)
                    .filter(|i| recv.from.contains(i) && recv.skip != Some(*i))
                    .map(|i| i - recv.from.start);
                let Some(slot) = slot.filter(|_| (seq as usize) < recv.messages) else {
                    o.errors.add(format!(
                        "{name}: unexpected chatm: {}",
                        String::from_utf8_lossy(line)
                    ));
                    continue;
                };
                let (w, bit) = (slot * words + seq as usize / 64, 1u64 << (seq % 64));
                if seen[w] & bit != 0 {
                    o.dup += 1;
                } else {
                    seen[w] |= bit;
                    o.received += 1;
                    o.lat.push(now.saturating_sub(ts));
                    o.last_rx_ns = now;
                    if seq < next_seq[slot] {
                        o.reordered += 1;
                    } else {
                        next_seq[slot] = seq + 1;
                    }
                }
                if receipts {
                    out.extend_from_slice(b"chatr ");
                    out.extend_from_slice(sender);
                    out.push(b' ');
                    out.extend_from_slice(recipient);
                    out.extend_from_slice(b"\r\n");
                }
            } else if line == b"+OK message relayed" {
                if o.acked < o.sent {
                    o.acked += 1;
                } else {
                    o.errors
                        .add(format!("{name}: '+OK message relayed' for nothing sent"));
                }
            } else if line.starts_with(b"chatr ") {
                o.receipts += 1;
            } else if let Some(token) = line.strip_prefix(b"ping ") {
                out.extend_from_slice(b"+OK pong ");
                out.extend_from_slice(token);
                out.extend_from_slice(b"\r\n");
                o.pongs += 1;
            } else if line.starts_with(b"-ERR") {
                // A response to one of our commands: it ends that command (a chatm refused).
                if o.acked < o.sent {
                    o.acked += 1;
                }
                o.errors.add(format!(
                    "{name}: server refused: {}",
                    String::from_utf8_lossy(line)
                ));
            } else if line.starts_with(b"cquit") {
                o.errors.add(format!(
                    "{name}: server ended the connection: {}",
                    String::from_utf8_lossy(line)
                ));
                closing = true;
            } else {
                o.errors.add(format!(
                    "{name}: unexpected line: {}",
                    String::from_utf8_lossy(line)
                ));
            }
        }
    }
    o
}

/// What a direct or broadcast run measured.
struct Traffic {
    outcomes: Vec<Outcome>,
    cpu: CpuUse,
    /// Seconds from the start to the last delivery.
    wall: f64,
}

/// Runs the jobs (registered clients), one thread each, from a common start; gathers the
/// outcomes and the CPU used from the start until the last thread is done.
fn run_traffic(opts: &Opts, jobs: Vec<Job>, t0: Instant) -> Result<Traffic, String> {
    let start = Arc::new(Barrier::new(jobs.len() + 1));
    let mut handles = Vec::with_capacity(jobs.len());
    let timeout = opts.timeout;
    for job in jobs {
        let start = Arc::clone(&start);
        let name = job.name.clone();
        let h = thread::Builder::new()
            .name(format!("bench-{name}"))
            .stack_size(256 * 1024)
            .spawn(move || run_job(job, t0, timeout, &start));
        match h {
            Ok(h) => handles.push(h),
            // The threads already started wait at the barrier forever: nothing to recover.
            Err(e) => return Err(format!("cannot start a client thread: {e}")),
        }
    }
    start.wait();
    let start_ns = ns_since(t0);
    let cpu0 = cpu_snap(opts.server_pid);
    let mut outcomes = Vec::with_capacity(handles.len());
    for h in handles {
        match h.join() {
            Ok(o) => outcomes.push(o),
            Err(_) => return Err("a client thread panicked (a bench bug)".into()),
        }
    }
    let cpu1 = cpu_snap(opts.server_pid);
    let end_ns = outcomes.iter().map(|o| o.last_rx_ns).max().unwrap_or(0);
    let wall = end_ns.saturating_sub(start_ns) as f64 / 1e9;
    Ok(Traffic {
        outcomes,
        cpu: cpu_use(&cpu0, &cpu1),
        wall,
    })
}

struct Totals {
    sent: u64,
    expected: u64,
    received: u64,
    lost: u64,
    dup: u64,
    reordered: u64,
    receipts: u64,
    pongs: u64,
    lat: Vec<u64>,
    errors: Errors,
}

fn totals(outcomes: Vec<Outcome>) -> Totals {
    let mut t = Totals {
        sent: 0,
        expected: 0,
        received: 0,
        lost: 0,
        dup: 0,
        reordered: 0,
        receipts: 0,
        pongs: 0,
        lat: Vec::with_capacity(outcomes.iter().map(|o| o.lat.len()).sum()),
        errors: Errors::default(),
    };
    for o in outcomes {
        t.sent += o.sent;
        t.expected += o.expected;
        t.received += o.received;
        t.lost += o.expected.saturating_sub(o.received);
        t.dup += o.dup;
        t.reordered += o.reordered;
        t.receipts += o.receipts;
        t.pongs += o.pongs;
        t.lat.extend_from_slice(&o.lat);
        t.errors.merge(o.errors);
    }
    t.lat.sort_unstable();
    t
}

/// Prints the figures common to direct and broadcast; returns the RESULT fields.
fn report_traffic(what: &str, t: &Totals, wall: f64, cpu: &CpuUse) -> String {
    let rate = if wall > 0.0 {
        t.received as f64 / wall
    } else {
        0.0
    };
    let us = |p: f64| percentile(&t.lat, p) / 1000;
    let max = t.lat.last().copied().unwrap_or(0) / 1000;
    println!(
        "  {what}: {} of {} in {wall:.3} s = {rate:.0}/s",
        t.received, t.expected
    );
    println!(
        "  latency:     p50 {} us, p90 {} us, p99 {} us, max {max} us",
        us(50.0),
        us(90.0),
        us(99.0)
    );
    println!(
        "  integrity:   lost {}, reordered {}, duplicated {}",
        t.lost, t.reordered, t.dup
    );
    if t.receipts > 0 || t.pongs > 0 {
        println!("  receipts:    {}, pongs: {}", t.receipts, t.pongs);
    }
    t.errors.print();
    cpu.print();
    let mut r = format!(
        " sent={} delivered={} wall_s={wall:.3} per_sec={rate:.0} p50_us={} p90_us={} \
         p99_us={} max_us={max} lost={} reordered={} dup={} errors={}",
        t.sent,
        t.received,
        us(50.0),
        us(90.0),
        us(99.0),
        t.lost,
        t.reordered,
        t.dup,
        t.errors.count
    );
    if t.receipts > 0 {
        let _ = write!(r, " receipts={}", t.receipts);
    }
    cpu.result_fields(&mut r);
    r
}

fn clean(t: &Totals) -> bool {
    t.lost == 0 && t.reordered == 0 && t.dup == 0 && t.errors.count == 0
}

fn direct(opts: &Opts) -> Result<bool, String> {
    let (p, m, w) = (opts.pairs, opts.messages.unwrap_or(20_000), opts.window);
    rlimit::ensure_nofile(2 * p as u64 + 64)?;
    let rid = run_id();
    println!(
        "xscp-bench direct: {p} pairs x {m} messages, window {w}{}, server {}",
        if opts.receipts { ", with receipts" } else { "" },
        opts.addr
    );
    let setup = Instant::now();
    let mut jobs = Vec::with_capacity(2 * p);
    // Receivers first, so every sender's partner exists when it starts.
    for i in 0..p {
        let name = format!("r{rid}x{i}");
        let (stream, lb) = connect_registered(opts.addr, &name, opts.timeout, 64 * 1024)?;
        jobs.push(Job {
            name,
            stream,
            lb,
            send: None,
            recv: RecvPlan {
                from: i..i + 1,
                skip: None,
                messages: m,
            },
            receipts: opts.receipts,
            expect_receipts: 0,
        });
    }
    for i in 0..p {
        let name = format!("s{rid}x{i}");
        let (stream, lb) = connect_registered(opts.addr, &name, opts.timeout, 64 * 1024)?;
        jobs.push(Job {
            name,
            stream,
            lb,
            send: Some(SendPlan {
                to: format!("r{rid}x{i}"),
                messages: m,
                window: w,
                payload: opts.payload,
            }),
            recv: RecvPlan {
                from: 0..0,
                skip: None,
                messages: 0,
            },
            receipts: false,
            expect_receipts: if opts.receipts { m } else { 0 },
        });
    }
    println!(
        "  setup:       {} clients registered in {:.3} s",
        2 * p,
        setup.elapsed().as_secs_f64()
    );
    let tr = run_traffic(opts, jobs, Instant::now())?;
    let t = totals(tr.outcomes);
    let mut r = format!(
        "RESULT workload=direct pairs={p} messages={m} window={w} receipts={}",
        u8::from(opts.receipts)
    );
    r += &report_traffic("relayed", &t, tr.wall, &tr.cpu);
    let alive = check_server(opts, &mut r);
    println!("{r}");
    Ok(clean(&t) && alive)
}

fn broadcast(opts: &Opts) -> Result<bool, String> {
    let (k, s, m, w) = (
        opts.clients,
        opts.senders,
        opts.messages.unwrap_or(2_000),
        opts.window,
    );
    rlimit::ensure_nofile(k as u64 + 64)?;
    let rid = run_id();
    println!(
        "xscp-bench broadcast: {k} clients, {s} senders x {m} messages to *, window {w}, \
         server {}",
        opts.addr
    );
    let setup = Instant::now();
    let mut jobs = Vec::with_capacity(k);
    for i in 0..k {
        let name = format!("b{rid}x{i}");
        let (stream, lb) = connect_registered(opts.addr, &name, opts.timeout, 64 * 1024)?;
        let send = (i < s).then(|| SendPlan {
            to: "*".into(),
            messages: m,
            window: w,
            payload: opts.payload,
        });
        jobs.push(Job {
            name,
            stream,
            lb,
            send,
            recv: RecvPlan {
                from: 0..s,
                skip: Some(i),
                messages: m,
            },
            receipts: opts.receipts,
            expect_receipts: 0,
        });
    }
    println!(
        "  setup:       {k} clients registered in {:.3} s",
        setup.elapsed().as_secs_f64()
    );
    let tr = run_traffic(opts, jobs, Instant::now())?;
    let t = totals(tr.outcomes);
    let mut r =
        format!("RESULT workload=broadcast clients={k} senders={s} messages={m} window={w}");
    r += &report_traffic("deliveries", &t, tr.wall, &tr.cpu);
    let alive = check_server(opts, &mut r);
    println!("{r}");
    Ok(clean(&t) && alive)
}

// ---------------------------------------------------------------------------------------
// idle
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct IdleOutcome {
    registered: usize,
    slowest: Duration,
    pongs: u64,
    dropped: u64,
    errors: Errors,
}

struct IdleConn {
    stream: TcpStream,
    lb: LineBuf,
    name: String,
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
                answers.extend_from_slice(b"+OK pong ");
                answers.extend_from_slice(token);
                answers.extend_from_slice(b"\r\n");
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

fn idle(opts: &Opts) -> Result<bool, String> {
    let n = opts.connections;
    rlimit::ensure_nofile(n as u64 + 64)?;
    let rid = run_id();
    let threads = opts.connect_threads.min(n);
    println!(
        "xscp-bench idle: {n} clients ({threads} threads, batches of {}), hold {} s, server {}",
        opts.connect_batch, opts.hold_secs, opts.addr
    );
    let pid = opts.server_pid;
    let rss0 = pid.and_then(|p| proc_status_field(p, "VmRSS"));
    let thr0 = pid.and_then(|p| proc_status_field(p, "Threads"));
    if pid.is_some() && rss0.is_none() {
        eprintln!("xscp-bench: warning: cannot read /proc/{:?}/status", pid);
    }
    let registered = Arc::new(Barrier::new(threads + 1));
    let held = Arc::new(Barrier::new(threads + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let opts_arc = Arc::new(opts.clone());
    let cpu0 = cpu_snap(pid);
    let start = Instant::now();
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        // Interleave the names so every thread has about as many.
        let names: Vec<String> = (t..n)
            .step_by(threads)
            .map(|i| format!("i{rid}x{i}"))
            .collect();
        let (registered, held, stop, o) = (
            Arc::clone(&registered),
            Arc::clone(&held),
            Arc::clone(&stop),
            Arc::clone(&opts_arc),
        );
        let h = thread::Builder::new()
            .name(format!("bench-idle-{t}"))
            .spawn(move || idle_worker(&o, names, &registered, &held, &stop))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        handles.push(h);
    }
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
    let mut o = IdleOutcome::default();
    for h in handles {
        match h.join() {
            Ok(x) => {
                o.registered += x.registered;
                o.slowest = o.slowest.max(x.slowest);
                o.pongs += x.pongs;
                o.dropped += x.dropped;
                o.errors.merge(x.errors);
            }
            Err(_) => return Err("an idle thread panicked (a bench bug)".into()),
        }
    }
    let cpu = cpu_use(&cpu0, &cpu1);
    println!(
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
        println!(
            "  server RSS:  {r0} kB before, {r1} kB registered, {r2} kB after the hold \
             = {:.1} / {:.1} KiB per connection",
            per_reg.unwrap_or(0.0),
            per_hold.unwrap_or(0.0)
        );
    }
    if let (Some(t0), Some(t1), Some(t2)) = (thr0, thr1, thr2) {
        println!("  server threads: {t0} before, {t1} registered, {t2} after the hold");
    }
    println!(
        "  hold:        {} s, pongs sent {}, connections dropped {}",
        opts.hold_secs, o.pongs, o.dropped
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
    println!("{r}");
    Ok(o.errors.count == 0 && o.registered == n && alive)
}

// ---------------------------------------------------------------------------------------
// churn
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct ChurnOutcome {
    cycles: u64,
    lat_us: Vec<u64>,
    errors: Errors,
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

fn churn(opts: &Opts) -> Result<bool, String> {
    let c = opts.workers;
    rlimit::ensure_nofile(c as u64 + 64)?;
    let rid = run_id();
    println!(
        "xscp-bench churn: {c} workers, {} s of connect/uname/cquit, server {}",
        opts.secs, opts.addr
    );
    let pid = opts.server_pid;
    let thr0 = pid.and_then(|p| proc_status_field(p, "Threads"));
    let start = Arc::new(Barrier::new(c + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let opts_arc = Arc::new(opts.clone());
    let mut handles = Vec::with_capacity(c);
    for w in 0..c {
        let (start, stop, o) = (Arc::clone(&start), Arc::clone(&stop), Arc::clone(&opts_arc));
        let rid = rid.clone();
        let h = thread::Builder::new()
            .name(format!("bench-churn-{w}"))
            .spawn(move || {
                let mut out = ChurnOutcome::default();
                let mut n = 0u64;
                start.wait();
                while !stop.load(Ordering::Relaxed) {
                    // w<run><worker>n<count in base 36>: at most 16 characters for
                    // 36^7 (78 billion) cycles per worker.
                    let name = format!("w{rid}{w}n{}", base36(n));
                    n += 1;
                    let began = Instant::now();
                    match churn_cycle(&o, &name) {
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
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        handles.push(h);
    }
    start.wait();
    let cpu0 = cpu_snap(pid);
    thread::sleep(Duration::from_secs_f64(opts.secs));
    stop.store(true, Ordering::Relaxed);
    let mut o = ChurnOutcome::default();
    for h in handles {
        match h.join() {
            Ok(x) => {
                o.cycles += x.cycles;
                o.lat_us.extend_from_slice(&x.lat_us);
                o.errors.merge(x.errors);
            }
            Err(_) => return Err("a churn thread panicked (a bench bug)".into()),
        }
    }
    let cpu1 = cpu_snap(pid);
    let cpu = cpu_use(&cpu0, &cpu1);
    let rate = o.cycles as f64 / cpu.wall;
    o.lat_us.sort_unstable();
    let p = |q: f64| percentile(&o.lat_us, q);
    println!(
        "  cycles:      {} in {:.2} s = {rate:.0}/s",
        o.cycles, cpu.wall
    );
    println!(
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
            println!("  server threads: {t0} before, {t1} after (5 s at most for closes)");
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
    println!("{r}");
    Ok(o.errors.count == 0 && alive)
}

// ---------------------------------------------------------------------------------------
// soak: every kind of client at once for a long while, then the server's health
// ---------------------------------------------------------------------------------------

/// Closing a socket with a reset (RST) instead of an orderly FIN: `SO_LINGER` on with a
/// zero timeout, set with `setsockopt`, declared here (no libc dependency).
#[cfg(target_os = "linux")]
mod abort {
    use std::ffi::{c_int, c_void};
    use std::net::TcpStream;
    use std::os::fd::AsRawFd;

    /// `struct linger` of Linux: two `int`.
    #[repr(C)]
    struct Linger {
        onoff: c_int,
        linger: c_int,
    }

    #[cfg(not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64")))]
    const SOL_SOCKET: c_int = 1;
    #[cfg(not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64")))]
    const SO_LINGER: c_int = 13;
    #[cfg(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64"))]
    const SOL_SOCKET: c_int = 0xffff;
    #[cfg(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64"))]
    const SO_LINGER: c_int = 0x0080;

    unsafe extern "C" {
        fn setsockopt(
            fd: c_int,
            level: c_int,
            name: c_int,
            value: *const c_void,
            len: u32,
        ) -> c_int;
    }

    /// Closes `stream` abortively: the peer gets a RST and whatever is queued is dropped.
    pub fn reset(stream: TcpStream) -> Result<(), String> {
        let l = Linger {
            onoff: 1,
            linger: 0,
        };
        // SAFETY: `setsockopt` is the libc function of that name (libc is linked by std).
        // The descriptor belongs to `stream`, which stays open for the whole call; `value`
        // points to a valid `struct linger` (repr(C), two `int`) that lives across the
        // call, and `len` is its exact size (`socklen_t` is 32 bits on Linux). The
        // function only reads from `value`.
        let rc = unsafe {
            setsockopt(
                stream.as_raw_fd(),
                SOL_SOCKET,
                SO_LINGER,
                (&raw const l).cast::<c_void>(),
                size_of::<Linger>() as u32,
            )
        };
        if rc != 0 {
            return Err(format!(
                "setsockopt(SO_LINGER): {}",
                std::io::Error::last_os_error()
            ));
        }
        // Closing now sends the RST.
        drop(stream);
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod abort {
    /// Not Linux: the option numbering is not known here.
    pub fn reset(_stream: std::net::TcpStream) -> Result<(), String> {
        Err("resets are only implemented for Linux".into())
    }
}

/// xorshift64*: the soak's random choices, reproducible from `--seed` per worker.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }

    /// `s` with the case of each ASCII letter chosen at random (keywords are
    /// case-insensitive, and the server echoes them as written).
    fn mixed_case(&mut self, s: &str) -> String {
        s.chars()
            .map(|c| {
                if self.below(2) == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    }

    /// `len` random lower-case letters.
    fn letters(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'a' + self.below(26) as u8))
            .collect()
    }
}

/// Latencies in microseconds in buckets about 3% wide: a soak has too many samples to keep.
#[derive(Clone)]
struct Hist {
    counts: Vec<u64>,
    n: u64,
    max: u64,
}

impl Default for Hist {
    fn default() -> Hist {
        Hist {
            counts: vec![0; 32 + 59 * 32],
            n: 0,
            max: 0,
        }
    }
}

impl Hist {
    fn index(v: u64) -> usize {
        if v < 32 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros() as usize; // 5..=63
        let sub = ((v >> (e - 5)) & 31) as usize;
        32 + (e - 5) * 32 + sub
    }

    /// The highest value of bucket `i`.
    fn high(i: usize) -> u64 {
        if i < 32 {
            return i as u64;
        }
        let (e, sub) = ((i - 32) / 32 + 5, ((i - 32) % 32) as u64);
        ((32 + sub + 1) << (e - 5)) - 1
    }

    fn record(&mut self, v: u64) {
        self.counts[Hist::index(v)] += 1;
        self.n += 1;
        self.max = self.max.max(v);
    }

    fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.max = self.max.max(other.max);
    }

    /// Nearest-rank percentile (the top of its bucket, at most the maximum).
    fn percentile(&self, p: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = (((p / 100.0) * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Hist::high(i).min(self.max);
            }
        }
        self.max
    }
}

/// Live counters of a soak, for the progress lines.
#[derive(Default)]
struct Live {
    chat: AtomicU64,
    slow: AtomicU64,
    resets: AtomicU64,
    garbage: AtomicU64,
    churn: AtomicU64,
    errors: AtomicU64,
}

/// What every soak worker shares.
struct Soak {
    opts: Opts,
    rid: String,
    seed: u64,
    stop: AtomicBool,
    /// `--max-retries` of the server, from its `capa`.
    retries: u32,
    /// Chatter nicknames are this followed by their index (`c<run>x`).
    chatter_prefix: String,
    chatters: usize,
    /// A registered client that stays for the whole soak: the name garbage clients
    /// impersonate and collide with.
    anchor: String,
    /// Per chatter, once it has stopped sending: how many broadcasts and direct messages
    /// it sent in all (`u64::MAX` before).
    final_bcast: Vec<AtomicU64>,
    final_direct: Vec<AtomicU64>,
    /// Chatters that failed; the others stop waiting for them.
    broken: AtomicUsize,
    live: Live,
}

/// Free text with non-ASCII UTF-8 that some chatm carry; it must arrive byte for byte.
const UTF8_TEXT: &str = "héllo wörld ✓ ∑ 日本";
const QUIT_OK: &str = "+OK terminating tasks and disconnecting";
const RELAYED: &[u8] = b"+OK message relayed";
const VIOLATION: &str = "cquit protocol violation";

impl Soak {
    fn chatter_name(&self, i: usize) -> String {
        format!("{}{i}", self.chatter_prefix)
    }

    /// Is `line` a broadcast from a chatter? Every registered client receives those, so the
    /// other soak clients skip them.
    fn is_broadcast(&self, line: &[u8]) -> bool {
        let Some(rest) = line.strip_prefix(b"chatm ") else {
            return false;
        };
        if !rest.starts_with(self.chatter_prefix.as_bytes()) {
            return false;
        }
        find_byte(rest, b' ').is_some_and(|sp| rest[sp + 1..].starts_with(b"* "))
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn pause(&self) {
        if self.opts.pause_ms > 0 {
            thread::sleep(Duration::from_millis(self.opts.pause_ms));
        }
    }

    fn error(&self, errors: &mut Errors, e: String) {
        self.live.errors.fetch_add(1, Ordering::Relaxed);
        errors.add(e);
    }
}

/// A line for an error message: lossy, escaped, at most 100 characters.
fn show(line: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(line)
        .chars()
        .flat_map(char::escape_debug)
        .collect();
    if s.chars().count() > 100 {
        let cut: String = s.chars().take(100).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// One soak connection, with blocking reads and writes bounded by `--timeout`.
struct SConn {
    s: TcpStream,
    lb: LineBuf,
    what: &'static str,
}

impl SConn {
    /// Connects and reads the greeting.
    fn open(ctx: &Soak, what: &'static str) -> Result<SConn, String> {
        let s = connect(ctx.opts.addr, ctx.opts.timeout).map_err(|e| format!("{what}: {e}"))?;
        s.set_write_timeout(Some(ctx.opts.timeout))
            .map_err(|e| format!("{what}: socket options: {e}"))?;
        let mut c = SConn {
            s,
            lb: LineBuf::new(4096),
            what,
        };
        let g = c.line(ctx)?;
        if !g.starts_with("+OK xscp/1 ready") {
            return Err(format!(
                "{what}: unexpected greeting: {}",
                show(g.as_bytes())
            ));
        }
        Ok(c)
    }

    /// Connects and registers `name`.
    fn registered(ctx: &Soak, what: &'static str, name: &str) -> Result<SConn, String> {
        let mut c = SConn::open(ctx, what)?;
        c.send(format!("uname {name}\r\n").as_bytes())?;
        let l = c.line(ctx)?;
        if l == format!("+OK you are {name}") || l == format!("+OK welcome back {name}") {
            Ok(c)
        } else {
            Err(format!("{what}: uname refused: {}", show(l.as_bytes())))
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.s
            .write_all(bytes)
            .map_err(|e| format!("{}: write failed: {e}", self.what))
    }

    /// The next line that is not a chatter's broadcast.
    fn line(&mut self, ctx: &Soak) -> Result<String, String> {
        loop {
            while let Some(l) = self.lb.next_line() {
                if !ctx.is_broadcast(l) {
                    return Ok(String::from_utf8_lossy(l).into_owned());
                }
            }
            match self.lb.fill(&mut self.s) {
                Ok(0) => return Err(format!("{}: server closed the connection", self.what)),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    return Err(format!("{}: no answer from the server in time", self.what));
                }
                Err(e) => return Err(format!("{}: read failed: {e}", self.what)),
            }
        }
    }

    /// The next line must be `want`.
    fn expect(&mut self, ctx: &Soak, want: &str) -> Result<(), String> {
        let l = self.line(ctx)?;
        if l == want {
            Ok(())
        } else {
            Err(format!(
                "{}: expected '{}', got '{}'",
                self.what,
                show(want.as_bytes()),
                show(l.as_bytes())
            ))
        }
    }

    /// A multi-line response's items, up to its `.`.
    fn items(&mut self, ctx: &Soak) -> Result<Vec<String>, String> {
        let mut v = Vec::new();
        loop {
            let l = self.line(ctx)?;
            if l == "." {
                return Ok(v);
            }
            v.push(l);
        }
    }

    /// The server's orderly close: end of stream, nothing but broadcasts before it, and no
    /// reset.
    fn expect_close(&mut self, ctx: &Soak) -> Result<(), String> {
        loop {
            while let Some(l) = self.lb.next_line() {
                if !ctx.is_broadcast(l) {
                    return Err(format!(
                        "{}: unexpected line before the close: '{}'",
                        self.what,
                        show(l)
                    ));
                }
            }
            match self.lb.fill(&mut self.s) {
                Ok(0) if self.lb.start != self.lb.end => {
                    return Err(format!("{}: stream ended inside a line", self.what));
                }
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    return Err(format!("{}: the server did not close in time", self.what));
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                    return Err(format!(
                        "{}: connection reset instead of an orderly close",
                        self.what
                    ));
                }
                Err(e) => return Err(format!("{}: read failed: {e}", self.what)),
            }
        }
    }

    /// `cquit`, its answer, the orderly close.
    fn quit(mut self, ctx: &Soak) -> Result<(), String> {
        self.send(b"cquit\r\n")?;
        self.expect(ctx, QUIT_OK)?;
        self.expect_close(ctx)
    }
}

// --- chatters --------------------------------------------------------------------------

#[derive(Default)]
struct ChatOutcome {
    direct_sent: u64,
    bcast_sent: u64,
    direct_rx: u64,
    bcast_rx: u64,
    receipts: u64,
    pongs: u64,
    lost: u64,
    reordered: u64,
    lat: Hist,
    errors: Errors,
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

fn soak_chatter(ctx: &Soak, me: usize, mut c: SConn, t0: Instant, start: &Barrier) -> ChatOutcome {
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
            let allowed = if opts.chat_rate == 0 {
                u64::MAX
            } else {
                (began.elapsed().as_secs_f64() * opts.chat_rate as f64) as u64 + 1
            };
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
                    if seq % 16 == 0 {
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
                        out.extend_from_slice(b"chatr ");
                        out.extend_from_slice(sender);
                        out.extend_from_slice(b" *\r\n");
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
                    out.extend_from_slice(b"chatr ");
                    out.extend_from_slice(sender);
                    out.push(b' ');
                    out.extend_from_slice(my.as_bytes());
                    out.extend_from_slice(b"\r\n");
                } else {
                    ctx.error(
                        &mut o.errors,
                        format!("chatter: unexpected chatm: {}", show(line)),
                    );
                }
            } else if line == RELAYED {
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
                out.extend_from_slice(b"+OK pong ");
                out.extend_from_slice(token);
                out.extend_from_slice(b"\r\n");
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

/// `write!` into a byte vector.
struct StrBuf<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for StrBuf<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

// --- floods ----------------------------------------------------------------------------

#[derive(Default)]
struct FloodOutcome {
    victims: u64,
    dropped: u64,
    relayed: u64,
    victim_rx: u64,
    nosuch: u64,
    alive_checks: u64,
    drop_ms: Vec<u64>,
    errors: Errors,
}

/// One flooder connection for the whole soak; each cycle a new victim registers and never
/// reads while the flooder sends it chatm until the server drops it as a slow consumer
/// (the flooder then gets `-ERR [NO-SUCH]`). Then the flooder must still work, and what the
/// victim did receive must be an unbroken prefix of what was relayed.
fn soak_flooder(ctx: &Soak, k: usize) -> FloodOutcome {
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
            if line == RELAYED || line == nosuch.as_bytes() {
                if in_flight == 0 {
                    return Err(format!("flooder: answer for nothing sent: {}", show(line)));
                }
                in_flight -= 1;
                if line == RELAYED {
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
                out.extend_from_slice(b"+OK pong ");
                out.extend_from_slice(token);
                out.extend_from_slice(b"\r\n");
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
    f.expect(ctx, "+OK message relayed")?;
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

// --- resets ----------------------------------------------------------------------------

const RESET_KINDS: [&str; 6] = [
    "NEGOTIATING, at once",
    "NEGOTIATING, inside a line",
    "NEGOTIATING, answers unread",
    "ESTABLISHED, idle",
    "ESTABLISHED, output queued",
    "ESTABLISHED, sender reset before the receipt",
];

#[derive(Default)]
struct ResetOutcome {
    by_kind: [u64; 6],
    resets: u64,
    late_receipts: u64,
    errors: Errors,
}

fn soak_resetter(ctx: &Soak, w: usize) -> ResetOutcome {
    let mut o = ResetOutcome::default();
    let mut n = 0u64;
    while !ctx.stopping() {
        let kind = (n % 6) as usize;
        match reset_cycle(ctx, w, n, kind, &mut o) {
            Ok(()) => o.by_kind[kind] += 1,
            Err(e) => {
                ctx.error(&mut o.errors, format!("reset [{}]: {e}", RESET_KINDS[kind]));
                thread::sleep(Duration::from_millis(10));
            }
        }
        n += 1;
        ctx.pause();
    }
    o
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
            abort::reset(s)?;
        }
        1 => {
            let mut c = SConn::open(ctx, "resetter")?;
            c.send(b"uname zpart")?;
            abort::reset(c.s)?;
        }
        2 => {
            let mut c = SConn::open(ctx, "resetter")?;
            c.send(b"capa\r\nping x\r\n")?;
            abort::reset(c.s)?;
        }
        3 => {
            let c = SConn::registered(ctx, "resetter", &name)?;
            abort::reset(c.s)?;
        }
        4 => {
            let mut c = SConn::registered(ctx, "resetter", &name)?;
            c.send(format!("chatm {name} {name} bye\r\nusers\r\ncapa\r\n").as_bytes())?;
            abort::reset(c.s)?;
        }
        _ => {
            // A receipt whose sender has reset: accepted and dropped, nothing answered.
            let other = format!("y{}{w}n{}", ctx.rid, base36(n));
            let mut a = SConn::registered(ctx, "resetter", &name)?;
            let mut b = SConn::registered(ctx, "resetter (receiver)", &other)?;
            a.send(format!("chatm {name} {other} hello {n}\r\n").as_bytes())?;
            a.expect(ctx, "+OK message relayed")?;
            abort::reset(a.s)?;
            count(o);
            b.expect(ctx, &format!("chatm {name} {other} hello {n}"))?;
            b.send(format!("chatr {name} {other}\r\nping r{n}\r\n").as_bytes())?;
            b.expect(ctx, &format!("+OK pong r{n}"))?;
            o.late_receipts += 1;
            abort::reset(b.s)?;
        }
    }
    count(o);
    Ok(())
}

// --- garbage ---------------------------------------------------------------------------

const GARBAGE_CASES: [&str; 16] = [
    "random bytes/NEGOTIATING",
    "random bytes/ESTABLISHED",
    "overlong line/NEGOTIATING",
    "overlong line/ESTABLISHED",
    "510-byte lines, then 511/ESTABLISHED",
    "control byte/NEGOTIATING",
    "control byte/ESTABLISHED",
    "invalid UTF-8/NEGOTIATING",
    "invalid UTF-8/ESTABLISHED",
    "command for the wrong state/NEGOTIATING",
    "command for the wrong state/ESTABLISHED",
    "spoofed chatm/ESTABLISHED",
    "spoofed chatr/ESTABLISHED",
    "unsolicited pong/ESTABLISHED",
    "failed attempts/NEGOTIATING",
    "pipelined commands, then garbage/ESTABLISHED",
];

#[derive(Default)]
struct GarbageOutcome {
    by_case: [u64; 16],
    errors: Errors,
}

fn soak_garbage(ctx: &Soak, w: usize) -> GarbageOutcome {
    let mut o = GarbageOutcome::default();
    let mut rng = Rng::new(ctx.seed ^ (0x6761_7262 + w as u64));
    let mut n = 0u64;
    while !ctx.stopping() {
        let case = ((n as usize) * ctx.opts.garbage + w) % GARBAGE_CASES.len();
        let name = format!("g{}{w}n{}", ctx.rid, base36(n));
        match garbage_case(ctx, &mut rng, case, &name) {
            Ok(()) => {
                o.by_case[case] += 1;
                ctx.live.garbage.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                ctx.error(
                    &mut o.errors,
                    format!("garbage [{}]: {e}", GARBAGE_CASES[case]),
                );
                thread::sleep(Duration::from_millis(10));
            }
        }
        n += 1;
        ctx.pause();
    }
    o
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7F
}

/// A control byte other than CR and LF.
fn control_byte(rng: &mut Rng) -> u8 {
    loop {
        let b = match rng.below(33) {
            32 => 0x7F,
            i => i as u8,
        };
        if b != b'\r' && b != b'\n' {
            return b;
        }
    }
}

/// Sends `payload` in one to three pieces, so that the server's framing sees it split.
fn send_split(c: &mut SConn, rng: &mut Rng, payload: &[u8]) -> Result<(), String> {
    let mut rest = payload;
    for _ in 0..rng.below(3) {
        if rest.len() < 2 {
            break;
        }
        let (a, b) = rest.split_at(1 + rng.below(rest.len() - 1));
        c.send(a)?;
        thread::sleep(Duration::from_millis(1));
        rest = b;
    }
    c.send(rest)
}

/// Sends a violation (followed by a command that must stay unanswered) and expects
/// `err`, `cquit protocol violation` and the orderly close.
fn violation(
    ctx: &Soak,
    mut c: SConn,
    rng: &mut Rng,
    payload: &[u8],
    err: &str,
) -> Result<(), String> {
    let mut p = payload.to_vec();
    p.extend_from_slice(b"\r\nping after\r\n");
    send_split(&mut c, rng, &p)?;
    c.expect(ctx, err)?;
    c.expect(ctx, VIOLATION)?;
    c.expect_close(ctx)
}

fn garbage_case(ctx: &Soak, rng: &mut Rng, case: usize, name: &str) -> Result<(), String> {
    let established = GARBAGE_CASES[case].ends_with("/ESTABLISHED");
    let c = if established {
        SConn::registered(ctx, "garbage", name)?
    } else {
        SConn::open(ctx, "garbage")?
    };
    let state = if established {
        "ESTABLISHED"
    } else {
        "NEGOTIATING"
    };
    const INVALID_UTF8: [&[u8]; 7] = [
        b"\xff",
        b"\xc3",
        b"\xc0\xaf",
        b"\xed\xa0\x80",
        b"\xf8\x88\x80\x80\x80",
        b"\xe2\x82",
        b"\x80",
    ];
    match case {
        0 | 1 => {
            // Random bytes without a terminator, with at least one control byte among the
            // first 510: the first control byte decides.
            let len = 1 + rng.below(2048);
            let mut p: Vec<u8> = (0..len)
                .map(|_| match rng.byte() {
                    b'\r' | b'\n' => b'x',
                    b => b,
                })
                .collect();
            let at = rng.below(len.min(510));
            p[at] = control_byte(rng);
            let first = p.iter().copied().find(|&b| is_control(b)).unwrap_or(p[at]);
            let err = format!("-ERR [PDU] control byte 0x{first:02X} in line");
            violation(ctx, c, rng, &p, &err)
        }
        2 | 3 => {
            let len = 511 + rng.below(4000);
            let p: Vec<u8> = (0..len).map(|_| 0x21 + rng.below(0x5E) as u8).collect();
            violation(ctx, c, rng, &p, "-ERR [PDU] line longer than 510 bytes")
        }
        4 => {
            let mut c = c;
            // 510 bytes: the longest PDU. An unknown keyword is refused, the connection
            // stays; a chatm of 510 bytes is relayed whole.
            let junk = rng.letters(510);
            c.send(format!("{junk}\r\n").as_bytes())?;
            c.expect(ctx, "-ERR [SYNTAX] unknown command")?;
            let head = format!("chatm {name} {name} ");
            let text = rng.letters(510 - head.len());
            let line = format!("{head}{text}");
            c.send(format!("{line}\r\n").as_bytes())?;
            c.expect(ctx, "+OK message relayed")?;
            c.expect(ctx, &line)?;
            let p = format!("{line}x");
            violation(
                ctx,
                c,
                rng,
                p.as_bytes(),
                "-ERR [PDU] line longer than 510 bytes",
            )
        }
        5 | 6 => {
            let b = control_byte(rng);
            let p = if established {
                let mut p = format!("chatm {name} * hello").into_bytes();
                p.push(b);
                p.extend_from_slice(b"there");
                p
            } else {
                vec![b'p', b'i', b'n', b'g', b' ', b'a', b, b'b']
            };
            violation(
                ctx,
                c,
                rng,
                &p,
                &format!("-ERR [PDU] control byte 0x{b:02X} in line"),
            )
        }
        7 | 8 => {
            let bad = INVALID_UTF8[rng.below(INVALID_UTF8.len())];
            let mut p = if established {
                format!("chatm {name} * caf").into_bytes()
            } else {
                b"uname caf".to_vec()
            };
            p.extend_from_slice(bad);
            p.extend_from_slice(b" ok");
            violation(ctx, c, rng, &p, "-ERR [PDU] line is not valid UTF-8")
        }
        9 | 10 => {
            const NEG: [&str; 6] = [
                "cname newname",
                "chatm a b hello",
                "chatr a b",
                "users",
                "notif on",
                "+ok pong tok",
            ];
            let cmd = if established {
                format!("uname {}", rng.letters(6))
            } else {
                NEG[rng.below(NEG.len())].to_string()
            };
            let (kw, args) = cmd.split_once(' ').unwrap_or((&cmd, ""));
            let kw = rng.mixed_case(kw);
            let p = if args.is_empty() {
                kw.clone()
            } else {
                format!("{kw} {args}")
            };
            let err = format!("-ERR [STATE] {kw} is not allowed in {state}");
            violation(ctx, c, rng, p.as_bytes(), &err)
        }
        11 => {
            let who = &ctx.anchor;
            let p = format!("chatm {who} {name} spoofed");
            let err = format!("-ERR [SPOOF] {who} is not your nickname");
            violation(ctx, c, rng, p.as_bytes(), &err)
        }
        12 => {
            let who = &ctx.anchor;
            let p = format!("chatr {name} {who}");
            let err = format!("-ERR [SPOOF] {who} is not your nickname");
            violation(ctx, c, rng, p.as_bytes(), &err)
        }
        13 => {
            let p = format!("+OK pong {}", rng.letters(8));
            violation(
                ctx,
                c,
                rng,
                p.as_bytes(),
                "-ERR [STATE] pong does not answer an outstanding ping",
            )
        }
        14 => {
            // --max-retries failed attempts, pipelined: unknown keyword, invalid name,
            // name in use (the anchor's, in another case).
            let mut c = c;
            let r = ctx.retries.max(1);
            let mut p = String::new();
            let mut want: Vec<(String, String)> = Vec::new();
            for k in 1..=r {
                let tail = format!(" (attempt {k} of {r})");
                match k % 3 {
                    1 => {
                        let len = 6 + rng.below(7);
                        p += &format!("{}\r\n", rng.letters(len));
                        want.push((
                            format!("-ERR [SYNTAX] unknown command{tail}"),
                            String::new(),
                        ));
                    }
                    2 => {
                        p += "uname 9bad\r\n";
                        want.push(("-ERR [INVALID] ".into(), tail));
                    }
                    _ => {
                        let spelled = rng.mixed_case(&ctx.anchor);
                        p += &format!("uname {spelled}\r\n");
                        want.push((
                            format!(
                                "-ERR [IN-USE] {spelled} is already taken by another client{tail}"
                            ),
                            String::new(),
                        ));
                    }
                }
            }
            p += "ping after\r\n";
            c.send(p.as_bytes())?;
            for (head, tail) in want {
                let l = c.line(ctx)?;
                let ok = if tail.is_empty() {
                    l == head
                } else {
                    l.starts_with(&head) && l.ends_with(&tail)
                };
                if !ok {
                    return Err(format!(
                        "expected '{head}...{tail}', got '{}'",
                        show(l.as_bytes())
                    ));
                }
            }
            c.expect(ctx, "cquit too many failed attempts")?;
            c.expect_close(ctx)
        }
        _ => {
            // Valid commands pipelined with a violation: all answered in order, then the
            // violation, and nothing after it.
            let mut c = c;
            let b = control_byte(rng);
            let mut p = b"ping p1\r\ncapa\r\nusers\r\nchatm ".to_vec();
            p.extend_from_slice(name.as_bytes());
            p.extend_from_slice(b" * hi");
            p.push(b);
            p.extend_from_slice(b"there\r\nping after\r\n");
            c.send(&p)?;
            c.expect(ctx, "+OK pong p1")?;
            c.expect(ctx, "+OK capability list follows")?;
            let capa = c.items(ctx)?;
            if !capa.iter().any(|l| l == "XSCP 1") {
                return Err("capa without 'XSCP 1'".into());
            }
            let head = c.line(ctx)?;
            let users = c.items(ctx)?;
            if head != format!("+OK {} users", users.len()) || !users.iter().any(|u| u == name) {
                return Err(format!(
                    "users: '{}' with {} names, itself {}",
                    show(head.as_bytes()),
                    users.len(),
                    if users.iter().any(|u| u == name) {
                        "listed"
                    } else {
                        "missing"
                    }
                ));
            }
            c.expect(ctx, &format!("-ERR [PDU] control byte 0x{b:02X} in line"))?;
            c.expect(ctx, VIOLATION)?;
            c.expect_close(ctx)
        }
    }
}

// --- churn and the anchor -------------------------------------------------------------

#[derive(Default)]
struct SoakChurnOutcome {
    cycles: u64,
    errors: Errors,
}

fn soak_churn(ctx: &Soak, w: usize) -> SoakChurnOutcome {
    let mut o = SoakChurnOutcome::default();
    let mut n = 0u64;
    while !ctx.stopping() {
        let name = format!("w{}{w}n{}", ctx.rid, base36(n));
        match SConn::registered(ctx, "churn", &name).and_then(|c| c.quit(ctx)) {
            Ok(()) => {
                o.cycles += 1;
                ctx.live.churn.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                ctx.error(&mut o.errors, e);
                thread::sleep(Duration::from_millis(10));
            }
        }
        n += 1;
        ctx.pause();
    }
    o
}

/// The anchor reads (broadcasts reach it too), answers pings, and quits when told.
fn soak_anchor(ctx: &Soak, mut c: SConn, done: &AtomicBool) -> Errors {
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
                    out.extend_from_slice(b"+OK pong ");
                    out.extend_from_slice(token);
                    out.extend_from_slice(b"\r\n");
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

// --- the soak itself -------------------------------------------------------------------

/// Open descriptors of process `pid`.
fn proc_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// The names of process `pid`'s threads, digits dropped, with counts (for a report on
/// threads that did not go away).
fn proc_thread_names(pid: u32) -> String {
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

/// The server's `capa`, from a client in NEGOTIATING, which then quits.
fn soak_capa(ctx: &Soak) -> Result<Vec<String>, String> {
    let mut c = SConn::open(ctx, "capa probe")?;
    c.send(b"capa\r\n")?;
    c.expect(ctx, "+OK capability list follows")?;
    let items = c.items(ctx)?;
    c.quit(ctx)?;
    Ok(items)
}

/// A fresh client registers and asks `users`: the names listed (itself included).
fn soak_users(ctx: &Soak, name: &str) -> Result<Vec<String>, String> {
    let mut c = SConn::registered(ctx, "health client", name)?;
    c.send(b"users\r\n")?;
    let head = c.line(ctx)?;
    let users = c.items(ctx)?;
    if head != format!("+OK {} users", users.len()) {
        return Err(format!(
            "health client: users: '{}' followed by {} names",
            show(head.as_bytes()),
            users.len()
        ));
    }
    c.quit(ctx)?;
    Ok(users)
}

#[derive(Default)]
struct Health {
    users: Option<usize>,
    users_secs: f64,
    strays: Vec<String>,
    threads: (Option<u64>, Option<u64>),
    fds: (Option<u64>, Option<u64>),
    back_secs: f64,
    leftover: String,
    rss: (Option<u64>, Option<u64>),
    hwm: Option<u64>,
    alive: bool,
}

impl Health {
    fn ok(&self) -> bool {
        let back = |p: (Option<u64>, Option<u64>)| matches!(p, (Some(a), Some(b)) if b <= a);
        self.users == Some(1) && back(self.threads) && back(self.fds) && self.alive
    }
}

fn soak(opts: &Opts) -> Result<bool, String> {
    let pid = opts
        .server_pid
        .ok_or("soak needs --server-pid PID (the server's health is part of the result)")?;
    if !process_alive(pid) {
        return Err(format!("no running process {pid}"));
    }
    let clients =
        2 * opts.pairs + opts.floods * 2 + opts.resetters * 2 + opts.garbage + opts.workers + 8;
    rlimit::ensure_nofile(clients as u64 + 64)?;
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
    let seed = opts.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
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
    println!(
        "xscp-bench soak: {} s against {} (pid {pid}), run {rid}, seed {seed}",
        opts.secs, opts.addr
    );
    println!(
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
    println!(
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
    let spawn = |name: String| thread::Builder::new().name(name).stack_size(256 * 1024);
    let anchor_h = {
        let (ctx, done) = (Arc::clone(&ctx), Arc::clone(&anchor_done));
        spawn("soak-anchor".into())
            .spawn(move || soak_anchor(&ctx, anchor, &done))
            .map_err(|e| format!("cannot start a thread: {e}"))?
    };
    let start = Arc::new(Barrier::new(chatters + 1));
    let t0 = Instant::now();
    let mut chat_h = Vec::new();
    for (i, c) in chat_conns.into_iter().enumerate() {
        let (ctx, start) = (Arc::clone(&ctx), Arc::clone(&start));
        let h = spawn(format!("soak-chat-{i}"))
            .spawn(move || soak_chatter(&ctx, i, c, t0, &start))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        chat_h.push(h);
    }
    start.wait();
    let cpu0 = cpu_snap(Some(pid));
    let began = Instant::now();
    let mut flood_h = Vec::new();
    for k in 0..opts.floods {
        let ctx = Arc::clone(&ctx);
        flood_h.push(
            spawn(format!("soak-flood-{k}"))
                .spawn(move || soak_flooder(&ctx, k))
                .map_err(|e| format!("cannot start a thread: {e}"))?,
        );
    }
    let mut reset_h = Vec::new();
    for w in 0..opts.resetters {
        let ctx = Arc::clone(&ctx);
        reset_h.push(
            spawn(format!("soak-reset-{w}"))
                .spawn(move || soak_resetter(&ctx, w))
                .map_err(|e| format!("cannot start a thread: {e}"))?,
        );
    }
    let mut garbage_h = Vec::new();
    for w in 0..opts.garbage {
        let ctx = Arc::clone(&ctx);
        garbage_h.push(
            spawn(format!("soak-garbage-{w}"))
                .spawn(move || soak_garbage(&ctx, w))
                .map_err(|e| format!("cannot start a thread: {e}"))?,
        );
    }
    let mut churn_h = Vec::new();
    for w in 0..opts.workers {
        let ctx = Arc::clone(&ctx);
        churn_h.push(
            spawn(format!("soak-churn-{w}"))
                .spawn(move || soak_churn(&ctx, w))
                .map_err(|e| format!("cannot start a thread: {e}"))?,
        );
    }
    // The load runs; a progress line every 15 s.
    let mut died = false;
    let mut next_report = 15u64;
    while began.elapsed().as_secs_f64() < opts.secs {
        thread::sleep(Duration::from_millis(250));
        if !process_alive(pid) {
            println!("  SERVER GONE after {:.1} s", began.elapsed().as_secs_f64());
            died = true;
            break;
        }
        let el = began.elapsed().as_secs();
        if el >= next_report {
            next_report += 15;
            let l = &ctx.live;
            println!(
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
    let panicked = || "a soak thread panicked (a bench bug)".to_string();
    let mut errors = Errors::default();
    let mut chat = ChatOutcome::default();
    for h in chat_h {
        let o = h.join().map_err(|_| panicked())?;
        chat.direct_sent += o.direct_sent;
        chat.bcast_sent += o.bcast_sent;
        chat.direct_rx += o.direct_rx;
        chat.bcast_rx += o.bcast_rx;
        chat.receipts += o.receipts;
        chat.pongs += o.pongs;
        chat.lost += o.lost;
        chat.reordered += o.reordered;
        chat.lat.merge(&o.lat);
        errors.merge(o.errors);
    }
    let mut flood = FloodOutcome::default();
    for h in flood_h {
        let o = h.join().map_err(|_| panicked())?;
        flood.victims += o.victims;
        flood.dropped += o.dropped;
        flood.relayed += o.relayed;
        flood.victim_rx += o.victim_rx;
        flood.nosuch += o.nosuch;
        flood.alive_checks += o.alive_checks;
        flood.drop_ms.extend_from_slice(&o.drop_ms);
        errors.merge(o.errors);
    }
    let mut resets = ResetOutcome::default();
    for h in reset_h {
        let o = h.join().map_err(|_| panicked())?;
        for (a, b) in resets.by_kind.iter_mut().zip(o.by_kind) {
            *a += b;
        }
        resets.resets += o.resets;
        resets.late_receipts += o.late_receipts;
        errors.merge(o.errors);
    }
    let mut garbage = GarbageOutcome::default();
    for h in garbage_h {
        let o = h.join().map_err(|_| panicked())?;
        for (a, b) in garbage.by_case.iter_mut().zip(o.by_case) {
            *a += b;
        }
        errors.merge(o.errors);
    }
    let mut churn = SoakChurnOutcome::default();
    for h in churn_h {
        let o = h.join().map_err(|_| panicked())?;
        churn.cycles += o.cycles;
        errors.merge(o.errors);
    }
    anchor_done.store(true, Ordering::SeqCst);
    errors.merge(anchor_h.join().map_err(|_| panicked())?);
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
    println!(
        "  load ran {load_secs:.1} s (+{:.1} s to wind down)",
        all_secs - load_secs
    );
    println!(
        "  chatters:    direct sent {}, received {}, receipts back {}; broadcasts sent {}, \
         deliveries {}; pongs {}",
        chat.direct_sent, chat.direct_rx, chat.receipts, chat.bcast_sent, chat.bcast_rx, chat.pongs
    );
    println!(
        "               lost {}, reordered {}; latency p50 {} us, p99 {} us, max {} us",
        chat.lost,
        chat.reordered,
        chat.lat.percentile(50.0),
        chat.lat.percentile(99.0),
        chat.lat.max
    );
    let mut drop_ms = flood.drop_ms.clone();
    drop_ms.sort_unstable();
    println!(
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
    println!(
        "  resets:      {} ({} in NEGOTIATING, {} in ESTABLISHED); receipts after the \
         sender's reset {}",
        resets.resets, resets_neg, resets_est, resets.late_receipts
    );
    for (k, n) in RESET_KINDS.iter().zip(resets.by_kind) {
        println!("    {n:>8} x {k}");
    }
    println!("  garbage:     {garbage_n} connections, each answered and closed as required");
    for (k, n) in GARBAGE_CASES.iter().zip(garbage.by_case) {
        println!("    {n:>8} x {k}");
    }
    println!(
        "  churn:       {} cycles ({:.0}/s)",
        churn.cycles,
        churn.cycles as f64 / load_secs.max(1e-9)
    );
    errors.print();
    cpu.print();
    let opt = |v: Option<u64>| v.map_or("n/a".into(), |v| v.to_string());
    println!("  health (all load stopped, every bench socket closed):");
    println!(
        "    users:     {} after {:.1} s (a fresh client, itself the only one){}",
        h.users.map_or("n/a".into(), |v| v.to_string()),
        h.users_secs,
        if h.strays.is_empty() {
            String::new()
        } else {
            format!("; others listed: {}", h.strays.join(" "))
        }
    );
    println!(
        "    threads:   {} before, {} after; fds: {} before, {} after ({:.1} s to get back)",
        opt(h.threads.0),
        opt(h.threads.1),
        opt(h.fds.0),
        opt(h.fds.1),
        h.back_secs
    );
    if !h.leftover.is_empty() {
        println!("    server threads now: {}", h.leftover);
    }
    println!(
        "    VmRSS:     {} kB before, {} kB after (peak VmHWM {} kB)",
        opt(h.rss.0),
        opt(h.rss.1),
        opt(h.hwm)
    );
    println!("    server:    {}", if h.alive { "alive" } else { "GONE" });
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
        println!("  NO PROGRESS: {}", idle_parts.join(", "));
    }
    let ok = errors.count == 0
        && h.ok()
        && idle_parts.is_empty()
        && chat.lost == 0
        && chat.reordered == 0;
    println!("  verdict:     {}", if ok { "clean" } else { "NOT CLEAN" });
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
    println!("{r}");
    Ok(ok && alive)
}

// ---------------------------------------------------------------------------------------

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("xscp-bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match opts.workload {
        Workload::Direct => direct(&opts),
        Workload::Broadcast => broadcast(&opts),
        Workload::Idle => idle(&opts),
        Workload::Churn => churn(&opts),
        Workload::Soak => soak(&opts),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("xscp-bench: {}: run was not clean", opts.workload.name());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("xscp-bench: {}: {e}", opts.workload.name());
            println!(
                "RESULT workload={} error=\"{}\"",
                opts.workload.name(),
                e.replace('"', "'")
            );
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_byte_matches_position() {
        let hay: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
        for needle in [0u8, 1, 10, 13, 32, 128, 250, 255] {
            for start in 0..20 {
                let h = &hay[start..];
                assert_eq!(
                    find_byte(h, needle),
                    h.iter().position(|&b| b == needle),
                    "needle {needle} start {start}"
                );
            }
        }
        assert_eq!(find_byte(b"", b'\n'), None);
        assert_eq!(find_byte(b"\x0b\x0a", b'\n'), Some(1));
    }

    #[test]
    fn lines_are_split_in_place() {
        let mut lb = LineBuf::new(1024);
        let mut input: &[u8] = b"+OK a\r\nchatm s b 1 2\r\npart";
        assert!(lb.fill(&mut input).is_ok());
        assert_eq!(lb.next_line(), Some(&b"+OK a"[..]));
        assert_eq!(lb.next_line(), Some(&b"chatm s b 1 2"[..]));
        assert_eq!(lb.next_line(), None);
    }

    #[test]
    fn chatm_fields() {
        assert_eq!(
            parse_chatm(b"chatm sabcdx3 rabcdx3 17 123456"),
            Some((&b"sabcdx3"[..], &b"rabcdx3"[..], 17, 123456))
        );
        assert_eq!(
            parse_chatm(b"chatm b1x0 * xxxx 5 9"),
            Some((&b"b1x0"[..], &b"*"[..], 5, 9))
        );
        assert_eq!(parse_chatm(b"chatm a b hello"), None);
        assert_eq!(name_index(b"sab1x42"), Some(42));
        assert_eq!(name_index(b"sx1xx42"), Some(42));
        assert_eq!(base36(0), "0");
        assert_eq!(base36(36 * 36 - 1), "zz");
        assert_eq!(run_id().len(), 4);
        let mut v = Vec::new();
        push_u64(&mut v, 0);
        v.push(b' ');
        push_u64(&mut v, u64::MAX);
        assert_eq!(v, b"0 18446744073709551615");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn only_loopback_is_accepted() {
        assert!(resolve_loopback("127.0.0.1:1030").is_ok());
        assert!(resolve_loopback("10.0.0.1:1030").is_err());
    }
}
