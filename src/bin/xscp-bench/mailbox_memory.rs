//! `mailbox-memory`: what `--mailbox-total` bounds (xscp(7) §5.8: memory, bookkeeping
//! included). For lines of 15 and 510 bytes (with their CRLF), held (in the mailboxes of
//! held names) and connected (copies kept for connected clients that never receipt), it
//! starts a fresh `xscpd` of its own, fills copies or mailboxes up to just below the total
//! (nothing is discarded, so what the server counts is known exactly: each line's
//! [`cost`]), and reports the resident memory the server added (VmRSS of
//! /proc/PID/status, after a `ping` round trip with every client) per MiB counted.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use xscp::hub::cost;

use crate::options::Opts;
use crate::system::{proc_status_field, spawn};
use crate::wire::{LineBuf, connect, expect_greeting, read_line};

/// `--mailbox` of the held runs (the default) and of the connected ones (a few large
/// clients rather than a thousand connections, whose threads would blur the figure).
const HELD_MAILBOX: usize = 64 * 1024;
const CONNECTED_MAILBOX: usize = 4 << 20;

/// Bytes of lines pipelined before their replies are read: small, so that what the
/// server queues meanwhile (and keeps as free heap after) stays out of the figure.
const BATCH_BYTES: usize = 64 * 1024;

/// One measurement.
struct Figure {
    len: usize,
    held: bool,
    lines: usize,
    counted: usize,
    added: u64,
}

pub fn run(opts: &Opts) -> Result<bool, String> {
    let total = opts.total_mib << 20;
    let xscpd = match &opts.xscpd {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("where is xscp-bench: {e}"))?
            .with_file_name("xscpd"),
    };
    println!(
        "xscp-bench mailbox-memory: --mailbox-total {} MiB, lines of 15 and 510 bytes, \
         held and connected, a fresh {} each",
        opts.total_mib,
        xscpd.display()
    );
    let mut figures = Vec::new();
    for held in [true, false] {
        for len in [15, 510] {
            let f = measure(&xscpd, total, len, held, opts.timeout)?;
            println!(
                "  {:>3}-byte lines {:9}: {:>8} lines, {:>6.1} MiB counted, \
                 {:>6.1} MiB resident added: {:.3} MiB per MiB counted",
                f.len,
                if f.held { "held" } else { "connected" },
                f.lines,
                mib(f.counted as u64),
                mib(f.added),
                f.added as f64 / f.counted as f64
            );
            figures.push(f);
        }
    }
    let mut r = format!(
        "RESULT workload=mailbox-memory total_mib={}",
        opts.total_mib
    );
    for f in &figures {
        let kind = if f.held { "held" } else { "connected" };
        r += &format!(
            " ratio_{}_{kind}={:.3}",
            f.len,
            f.added as f64 / f.counted as f64
        );
    }
    println!("{r}");
    Ok(true)
}

fn mib(b: u64) -> f64 {
    b as f64 / f64::from(1 << 20)
}

/// A server of our own, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(xscpd: &std::path::Path, args: &[String]) -> Result<Server, String> {
    let mut child = Command::new(xscpd)
        .args(["-l", "127.0.0.1:0", "--max-per-ip", "0", "--rate", "0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", xscpd.display()))?;
    let Some(stderr) = child.stderr.take() else {
        return Err("no stderr of xscpd".into());
    };
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            return Err("xscpd ended before it listened".into());
        };
        if let Some(a) = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
        {
            break a.parse().map_err(|e| format!("listen address {a}: {e}"))?;
        }
    };
    // Keep reading its log so that it never blocks on a full pipe.
    spawn("xscpd-log".into(), move || for _ in lines {})?;
    Ok(Server { child, addr })
}

/// A client of the bench, registered as `name`.
struct Client {
    s: TcpStream,
    lb: LineBuf,
}

impl Client {
    fn register(addr: SocketAddr, name: &str, timeout: Duration) -> Result<Client, String> {
        let mut s = connect(addr, timeout)?;
        let mut lb = LineBuf::new(1 << 16);
        expect_greeting(&mut s, &mut lb)?;
        let mut c = Client { s, lb };
        c.send(format!("uname {name}\r\n").as_bytes())?;
        let l = c.line()?;
        if !l.starts_with("+OK") {
            return Err(format!("uname {name}: {l}"));
        }
        Ok(c)
    }

    fn send(&mut self, b: &[u8]) -> Result<(), String> {
        self.s.write_all(b).map_err(|e| format!("write: {e}"))
    }

    fn line(&mut self) -> Result<String, String> {
        read_line(&mut self.s, &mut self.lb)
    }

    /// Reads until `want`, discarding what comes before it; how many lines those were.
    fn until(&mut self, want: &str) -> Result<usize, String> {
        let mut n = 0;
        loop {
            if self.line()? == want {
                return Ok(n);
            }
            n += 1;
        }
    }

    /// A `ping` round trip: everything sent before has been handled.
    fn barrier(&mut self) -> Result<usize, String> {
        self.send(b"ping barrier\r\n")?;
        self.until("+OK pong barrier")
    }

    fn quit(mut self) -> Result<(), String> {
        self.send(b"cquit\r\n")?;
        self.until("+OK terminating tasks and disconnecting")?;
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut self.s, &mut rest);
        Ok(())
    }
}

/// A three-character name for recipient `i` (a letter, then letters or digits).
fn name(i: usize) -> String {
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let a = (b'a' + (i / (36 * 36) % 26) as u8) as char;
    let b = ALNUM[i / 36 % 36] as char;
    let c = ALNUM[i % 36] as char;
    format!("{a}{b}{c}")
}

/// The line `chatm s <to> <text>` of `len` bytes with its CRLF (`to` is 3 characters).
fn line(to: &str, len: usize) -> String {
    let text = "x".repeat(len - "chatm s abc \r\n".len());
    format!("chatm s {to} {text}\r\n")
}

fn measure(
    xscpd: &std::path::Path,
    total: usize,
    len: usize,
    held: bool,
    timeout: Duration,
) -> Result<Figure, String> {
    let mailbox = if held {
        HELD_MAILBOX
    } else {
        CONNECTED_MAILBOX
    };
    let per = mailbox / len;
    let boxes = total / (per * cost(len));
    let args: Vec<String> = [
        "--sendq".to_string(),
        format!("{}", mailbox.max(256 * 1024)),
        "--mailbox".into(),
        mailbox.to_string(),
        "--mailbox-total".into(),
        total.to_string(),
        "--max-holds".into(),
        (boxes + 16).to_string(),
        "--max-holds-per-ip".into(),
        (boxes + 16).to_string(),
        "--max-clients".into(),
        "4096".into(),
    ]
    .into();
    let server = start(xscpd, &args)?;
    let pid = server.child.id();
    let rss = || proc_status_field(pid, "VmRSS:").map(|kb| kb * 1024);
    let mut sender = Client::register(server.addr, "s", timeout)?;
    let mut receivers = Vec::new();
    for i in 0..boxes {
        let c = Client::register(server.addr, &name(i), timeout)?;
        if held {
            c.quit()?;
        } else {
            receivers.push(c);
        }
    }
    sender.barrier()?;
    let before = rss().ok_or("no VmRSS for the server")?;
    // The receivers read on their own threads while the sender fills their copies.
    let readers: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            spawn(format!("recv{i}"), move || -> Result<Client, String> {
                let mut n = 0;
                while n < per {
                    let l = c.line()?;
                    if l.starts_with("chatm ") {
                        n += 1;
                    }
                }
                Ok(c)
            })
        })
        .collect::<Result<_, _>>()?;
    let want = if held {
        "+OK message held for "
    } else {
        "+OK message relayed"
    };
    for i in 0..boxes {
        let l = line(&name(i), len);
        let mut left = per;
        while left > 0 {
            let n = left.min(BATCH_BYTES / len);
            sender.send(l.repeat(n).as_bytes())?;
            for _ in 0..n {
                let r = sender.line()?;
                if !r.starts_with(want) {
                    return Err(format!("to {}: {r}", name(i)));
                }
            }
            left -= n;
        }
    }
    for r in readers {
        let mut c = r.join().map_err(|_| "a receiver panicked".to_string())??;
        c.barrier()?;
    }
    sender.barrier()?;
    let after = rss().ok_or("no VmRSS for the server")?;
    Ok(Figure {
        len,
        held,
        lines: boxes * per,
        counted: boxes * per * cost(len),
        added: after.saturating_sub(before),
    })
}
