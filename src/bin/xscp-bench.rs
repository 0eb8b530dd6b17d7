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

use std::fmt::Write as _;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
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

Options:
  --addr ADDR          server address, loopback only (default 127.0.0.1:1030)
  --pairs P            direct: sender/receiver pairs (default 50)
  --messages M         messages per sender (default 20000 direct, 2000 broadcast)
  --window W           most chatm in flight per sender (default 64)
  --payload BYTES      extra filler bytes in each message text (default 0)
  --receipts           receivers answer every chatm with chatr (default: pure relay)
  --clients K          broadcast: clients in the room, senders included (default 100)
  --senders S          broadcast: how many of them send (default 4)
  --connections N      idle: clients to connect and register (default 10000)
  --hold-secs SECS     idle: how long to hold them once registered (default 2)
  --connect-threads T  idle: threads connecting in parallel (default 8)
  --connect-batch B    idle: connections each thread opens at once (default 16)
  --workers C          churn: worker threads (default 8)
  --secs D             churn: duration in seconds (default 10)
  --timeout SECS       give up after this long without progress (default 10)
  --server-pid PID     also report the server's CPU, RSS and threads (from /proc)
  -h, --help           print this help

Exit status: 0 clean run, 1 losses/errors, 2 setup failure.
The server should run with --rate 0 --max-per-ip 0 and a --max-clients above the load;
for churn with --hold 0 so that departed names are not held.";

// ---------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Direct,
    Broadcast,
    Idle,
    Churn,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Direct => "direct",
            Workload::Broadcast => "broadcast",
            Workload::Idle => "idle",
            Workload::Churn => "churn",
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
        Some(w) => return Err(format!("unknown workload '{w}'")),
    };
    let mut o = Opts {
        workload,
        addr: SocketAddr::from(([127, 0, 0, 1], 1030)),
        pairs: 50,
        messages: None,
        window: 64,
        payload: 0,
        receipts: false,
        clients: 100,
        senders: 4,
        connections: 10_000,
        hold_secs: 2.0,
        connect_threads: 8,
        connect_batch: 16,
        workers: 8,
        secs: 10.0,
        timeout: Duration::from_secs(10),
        server_pid: None,
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
            "--workers" => o.workers = parse_num(&opt, next(), 1)?,
            "--secs" => o.secs = parse_secs(&opt, next())?,
            "--timeout" => {
                let s = parse_secs(&opt, next())?;
                o.timeout = Duration::from_secs_f64(s.max(0.1));
            }
            "--server-pid" => o.server_pid = Some(parse_num(&opt, next(), 1)?),
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
