//! The engine of `direct` and `broadcast`: one thread per registered socket, each sending
//! its plan with a window and checking what arrives; then the totals and their report.

use std::fmt::Write as _;
use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::options::Opts;
use crate::stats::{Errors, Merge, percentile};
use crate::system::{CpuUse, cpu_snap, cpu_use, join_merged, spawn};
use crate::wire::{
    LineBuf, connect_registered, is_timeout, name_index, parse_chatm, push_pong, push_receipt,
    push_u64,
};

/// What a client thread sends.
pub struct SendPlan {
    /// The recipient field: a nickname or `*`.
    pub to: String,
    pub messages: usize,
    pub window: usize,
    pub payload: usize,
}

/// What a client thread expects to receive: `messages` from each sender whose index is in
/// `from`, except `skip` (itself).
pub struct RecvPlan {
    pub from: std::ops::Range<usize>,
    pub skip: Option<usize>,
    pub messages: usize,
}

impl RecvPlan {
    /// A client that receives nothing.
    pub const NOTHING: RecvPlan = RecvPlan {
        from: 0..0,
        skip: None,
        messages: 0,
    };

    pub fn senders(&self) -> usize {
        self.from.len() - usize::from(self.skip.is_some_and(|s| self.from.contains(&s)))
    }
}

pub struct Job {
    pub name: String,
    pub stream: TcpStream,
    pub lb: LineBuf,
    pub send: Option<SendPlan>,
    pub recv: RecvPlan,
    /// Answer every `chatm` with `chatr`.
    pub receipts: bool,
    /// `chatr` lines this (sending) client waits for.
    pub expect_receipts: usize,
}

impl Job {
    /// Connects and registers `name`, to follow the plans once started.
    pub fn registered(
        opts: &Opts,
        name: String,
        send: Option<SendPlan>,
        recv: RecvPlan,
        receipts: bool,
        expect_receipts: usize,
    ) -> Result<Job, String> {
        let (stream, lb) = connect_registered(opts.addr, &name, opts.timeout, 64 * 1024)?;
        Ok(Job {
            name,
            stream,
            lb,
            send,
            recv,
            receipts,
            expect_receipts,
        })
    }
}

#[derive(Default)]
pub struct Outcome {
    pub sent: u64,
    pub acked: u64,
    pub expected: u64,
    pub received: u64,
    pub dup: u64,
    pub reordered: u64,
    pub receipts: u64,
    pub pongs: u64,
    /// Nanoseconds since the common start at which the last message arrived.
    pub last_rx_ns: u64,
    pub lat: Vec<u64>,
    pub errors: Errors,
}

impl Outcome {
    /// Messages expected and never received (each client receives each at most once).
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }
}

impl Merge for Outcome {
    fn merge(&mut self, o: Outcome) {
        self.sent += o.sent;
        self.acked += o.acked;
        self.expected += o.expected;
        self.received += o.received;
        self.dup += o.dup;
        self.reordered += o.reordered;
        self.receipts += o.receipts;
        self.pongs += o.pongs;
        self.last_rx_ns = self.last_rx_ns.max(o.last_rx_ns);
        self.lat.extend_from_slice(&o.lat);
        self.errors.merge(o.errors);
    }
}

pub fn ns_since(t0: Instant) -> u64 {
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
                    push_receipt(&mut out, sender, recipient);
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
                push_pong(&mut out, token);
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
pub struct Traffic {
    /// All the clients' outcomes in one, latencies sorted.
    pub total: Outcome,
    pub cpu: CpuUse,
    /// Seconds from the start to the last delivery.
    pub wall: f64,
}

/// Runs the jobs (registered clients), one thread each, from a common start; gathers the
/// outcomes and the CPU used from the start until the last thread is done.
pub fn run_traffic(opts: &Opts, jobs: Vec<Job>, t0: Instant) -> Result<Traffic, String> {
    let start = Arc::new(Barrier::new(jobs.len() + 1));
    let mut handles = Vec::with_capacity(jobs.len());
    let timeout = opts.timeout;
    for job in jobs {
        let start = Arc::clone(&start);
        // On failure the threads already started wait at the barrier forever: nothing to
        // recover, the run ends.
        handles.push(spawn(format!("bench-{}", job.name), move || {
            run_job(job, t0, timeout, &start)
        })?);
    }
    start.wait();
    let start_ns = ns_since(t0);
    let cpu0 = cpu_snap(opts.server_pid);
    let mut total: Outcome = join_merged(handles)?;
    let cpu1 = cpu_snap(opts.server_pid);
    total.lat.sort_unstable();
    let wall = total.last_rx_ns.saturating_sub(start_ns) as f64 / 1e9;
    Ok(Traffic {
        total,
        cpu: cpu_use(&cpu0, &cpu1),
        wall,
    })
}

/// Prints the figures common to direct and broadcast; returns the RESULT fields.
pub fn report_traffic(what: &str, t: &Outcome, wall: f64, cpu: &CpuUse) -> String {
    let rate = if wall > 0.0 {
        t.received as f64 / wall
    } else {
        0.0
    };
    let us = |p: f64| percentile(&t.lat, p) / 1000;
    let max = t.lat.last().copied().unwrap_or(0) / 1000;
    xscp::outln!(
        "  {what}: {} of {} in {wall:.3} s = {rate:.0}/s",
        t.received,
        t.expected
    );
    xscp::outln!(
        "  latency:     p50 {} us, p90 {} us, p99 {} us, max {max} us",
        us(50.0),
        us(90.0),
        us(99.0)
    );
    xscp::outln!(
        "  integrity:   lost {}, reordered {}, duplicated {}",
        t.lost(),
        t.reordered,
        t.dup
    );
    if t.receipts > 0 || t.pongs > 0 {
        xscp::outln!("  receipts:    {}, pongs: {}", t.receipts, t.pongs);
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
        t.lost(),
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

pub fn clean(t: &Outcome) -> bool {
    t.lost() == 0 && t.reordered == 0 && t.dup == 0 && t.errors.count == 0
}
