//! The command line: the workload, its options and their defaults, and the help text.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use xscp::protocol::framing::MAX_PDU;
use xscp::protocol::nick::MAX_NICK;

pub const USAGE: &str = "\
usage: xscp-bench WORKLOAD [options]

Workloads:
  direct      P pairs, each sender sends M chatm to its partner (window W)
  broadcast   K clients in the room, S senders each send M chatm to * (window W)
  idle        N registered idle clients answering server pings, held --hold-secs
  churn       C workers loop connect, uname, cquit for D seconds
  soak        everything at once for D seconds (default 180): chatter pairs, floods,
              resets, garbage, churn; then the server's health (needs --server-pid)
  resume      P pairs for D seconds (default 60), receivers answering every chatm with
              chatr and resetting their connections at random moments, then coming back
              under the same name; counts what was accepted, received, duplicated and
              lost (needs a server with --hold above 0)
  mailbox-memory
              for lines of 15 and 510 bytes, held and connected, starts a fresh xscpd
              and fills its copies or mailboxes up to --total-mib: the resident memory
              the server added per MiB that --mailbox-total counts

Options:
  --addr ADDR          server address, loopback only (default 127.0.0.1:1030)
  --pairs P            direct: sender/receiver pairs (default 50); soak: chatter pairs
                       (default 8); resume: sender/receiver pairs (default 8)
  --messages M         messages per sender (default 20000 direct, 2000 broadcast)
  --window W           most chatm in flight per sender (default 64; soak, resume 16)
  --payload BYTES      extra filler bytes in each message text (default 0)
  --receipts           receivers answer every chatm with chatr (default: pure relay)
  --clients K          broadcast: clients in the room, senders included (default 100)
  --senders S          broadcast: how many of them send (default 4)
  --connections N      idle: clients to connect and register (default 10000)
  --hold-secs SECS     idle: how long to hold them once registered (default 2)
  --connect-threads T  idle: threads connecting in parallel (default 8)
  --connect-batch B    idle: connections each thread opens at once (default 16)
  --workers C          churn: worker threads (default 8); soak: churn workers (default 2)
  --secs D             churn, soak, resume: duration in seconds (default 10; soak 180;
                       resume 60)
  --chat-rate N        soak, resume: messages per second each chatter or sender sends,
                       0 = unpaced (default 1000)
  --floods N           soak: flooder/victim pairs (default 1)
  --resetters N        soak: workers resetting connections (default 2)
  --garbage N          soak: workers sending garbage (default 2)
  --pause-ms MS        soak: pause between the cycles of resetters, garbage and churn
                       workers (default 10)
  --seed S             soak: seed of the random garbage; resume: of the moments of the
                       resets (default: from the clock)
  --timeout SECS       give up after this long without progress (default 10); resume:
                       how long receivers wait for the last messages after the senders
                       stop
  --total-mib N        mailbox-memory: the --mailbox-total to fill, in MiB (default 64)
  --xscpd PATH         mailbox-memory: the server to start (default: xscpd beside
                       xscp-bench)
  --server-pid PID     also report the server's CPU, RSS and threads (from /proc)
  -h, --help           print this help

Exit status: 0 clean run, 1 losses/errors, 2 setup failure.
The server should run with --rate 0 --max-per-ip 0 and a --max-clients above the load;
for churn with --hold 0 so that departed names are not held; for soak also with a small
--sendq (64K) so that flood victims are dropped quickly, and --hold 0; for resume with
--hold above 0 (the default 300s) so that departed receivers' names are held.";

/// The most filler bytes in a message text. The whole line, `chatm <sender> <recipient>
/// <filler> <seq> <ns>`, stays within a PDU with the longest nicknames and numbers.
const MAX_PAYLOAD: usize = 400;
const _: () = assert!(
    "chatm   ".len() + 2 * MAX_NICK + MAX_PAYLOAD + " ".len() + 2 * 20 + " ".len() <= MAX_PDU
);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Direct,
    Broadcast,
    Idle,
    Churn,
    Soak,
    Resume,
    MailboxMemory,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Direct => "direct",
            Workload::Broadcast => "broadcast",
            Workload::Idle => "idle",
            Workload::Churn => "churn",
            Workload::Soak => "soak",
            Workload::Resume => "resume",
            Workload::MailboxMemory => "mailbox-memory",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Opts {
    pub workload: Workload,
    pub addr: SocketAddr,
    pub pairs: usize,
    pub messages: Option<usize>,
    pub window: usize,
    pub payload: usize,
    pub receipts: bool,
    pub clients: usize,
    pub senders: usize,
    pub connections: usize,
    pub hold_secs: f64,
    pub connect_threads: usize,
    pub connect_batch: usize,
    pub workers: usize,
    pub secs: f64,
    pub timeout: Duration,
    pub server_pid: Option<u32>,
    pub chat_rate: u64,
    pub floods: usize,
    pub resetters: usize,
    pub garbage: usize,
    pub pause_ms: u64,
    pub seed: Option<u64>,
    pub total_mib: usize,
    pub xscpd: Option<std::path::PathBuf>,
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

impl Opts {
    /// How many messages a sender paced by `--chat-rate` may have sent `began.elapsed()`
    /// after it began (the first at once); unbounded when unpaced.
    pub fn paced(&self, began: Instant) -> u64 {
        if self.chat_rate == 0 {
            u64::MAX
        } else {
            (began.elapsed().as_secs_f64() * self.chat_rate as f64) as u64 + 1
        }
    }
}

/// `None`: help was asked for.
pub fn parse_args(args: Vec<String>) -> Result<Option<Opts>, String> {
    let mut args = args.into_iter();
    let workload = match args.next().as_deref() {
        None | Some("-h" | "--help") => return Ok(None),
        Some("direct") => Workload::Direct,
        Some("broadcast") => Workload::Broadcast,
        Some("idle") => Workload::Idle,
        Some("churn") => Workload::Churn,
        Some("soak") => Workload::Soak,
        Some("resume") => Workload::Resume,
        Some("mailbox-memory") => Workload::MailboxMemory,
        Some(w) => return Err(format!("unknown workload '{w}'")),
    };
    let soak = workload == Workload::Soak;
    let resume = workload == Workload::Resume;
    let mut o = Opts {
        workload,
        addr: SocketAddr::from(([127, 0, 0, 1], 1030)),
        pairs: if soak || resume { 8 } else { 50 },
        messages: None,
        window: if soak || resume { 16 } else { 64 },
        payload: 0,
        receipts: false,
        clients: 100,
        senders: 4,
        connections: 10_000,
        hold_secs: 2.0,
        connect_threads: 8,
        connect_batch: 16,
        workers: if soak { 2 } else { 8 },
        secs: match workload {
            Workload::Soak => 180.0,
            Workload::Resume => 60.0,
            _ => 10.0,
        },
        timeout: Duration::from_secs(10),
        server_pid: None,
        chat_rate: 1000,
        floods: 1,
        resetters: 2,
        garbage: 2,
        pause_ms: 10,
        seed: None,
        total_mib: 64,
        xscpd: None,
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
            "--total-mib" => o.total_mib = parse_num(&opt, next(), 1)?,
            "--xscpd" => o.xscpd = next().map(std::path::PathBuf::from),
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
        return Err(format!(
            "--workers is at most 999 (nicknames are at most {MAX_NICK} characters)"
        ));
    }
    if soak
        && (o.pairs > 999 || o.floods > 99 || o.resetters > 99 || o.garbage > 99 || o.workers > 99)
    {
        return Err(format!(
            "soak: --pairs is at most 999, --floods, --resetters, --garbage and \
                    --workers at most 99 (nicknames are at most {MAX_NICK} characters)"
        ));
    }
    if resume && o.pairs > 999 {
        return Err(format!(
            "resume: --pairs is at most 999 (nicknames are at most {MAX_NICK} characters)"
        ));
    }
    if o.payload > MAX_PAYLOAD {
        return Err(format!(
            "--payload is at most {MAX_PAYLOAD} bytes (a PDU is at most {MAX_PDU} bytes)"
        ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_accepted() {
        assert!(resolve_loopback("127.0.0.1:1030").is_ok());
        assert!(resolve_loopback("10.0.0.1:1030").is_err());
    }
}
