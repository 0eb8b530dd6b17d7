//! The command line of `xscpd`: options, their defaults, the parsing of durations and
//! sizes, and the settings derived from them for the session, the hub and the writers. No
//! argument-parsing crate: the grammar is small and the errors are ours.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::hub::HubConfig;
use crate::protocol::diagram::FsmFormat;
use crate::protocol::reply::{self, Capabilities};
use crate::protocol::session;

/// The usage synopsis, printed by `--help` and after a bad option.
pub const USAGE: &str = "\
usage: xscpd [-l|--listen ADDR] [--max-clients N] [--max-per-ip N] [--max-retries N]
             [--negotiate-timeout DUR] [--ping-interval DUR] [--ping-timeout DUR] [--hold DUR]
             [--max-holds N] [--max-holds-per-ip N] [--sendq BYTES] [--mailbox BYTES]
             [--mailbox-total BYTES] [--rate N] [--state FILE] [--state-interval DUR]
             [--log-file PATH] [-v...] [-q]
             [--print-fsm [FORMAT]] [-h|--help] [-V|--version]";

/// The options `--help` lists: the option with its placeholder, and what it does with its
/// default. [`help`] lays them out in two aligned columns.
const OPTIONS: &[(&str, &str)] = &[
    (
        "-l, --listen ADDR",
        "address to listen on; a host without a port ([::1] too) gets port 1030 \
         (default 127.0.0.1:1030)",
    ),
    ("--max-clients N", "most connections at once (default 1024)"),
    (
        "--max-per-ip N",
        "most connections from one IP address, 0 = unlimited (default 64)",
    ),
    (
        "--max-retries N",
        "failed attempts allowed before a name is given (default 3)",
    ),
    (
        "--negotiate-timeout DUR",
        "time from accept to a valid uname (default 30s)",
    ),
    (
        "--ping-interval DUR",
        "silence after which the server pings a client (default 60s)",
    ),
    (
        "--ping-timeout DUR",
        "time a client has to answer a ping; also the write timeout (default 20s)",
    ),
    (
        "--hold DUR",
        "how long a departed client's name is held for its IP, 0 = off (default 300s)",
    ),
    (
        "--max-holds N",
        "most names held at once; past it the oldest hold of the address holding the \
         most is dropped (default 4 x --max-clients, at least 1024)",
    ),
    (
        "--max-holds-per-ip N",
        "most names held at once for one IP address; past it that address's own oldest \
         hold is dropped (default 64)",
    ),
    (
        "--sendq BYTES",
        "output queued for one client past which it is dropped as a slow consumer \
         if its socket takes no more; 4 x is a hard bound; suffixes K, KiB, M, MiB \
         (default 256KiB)",
    ),
    (
        "--mailbox BYTES",
        "most bytes of unreceipted direct messages kept for one client, and for its held \
         name's mailbox; a 32nd of it bounds the names a client owes receipts to; at most \
         --sendq (default 64KiB, or half --sendq if smaller)",
    ),
    (
        "--mailbox-total BYTES",
        "most memory kept in all copies and mailboxes, each line counted with its \
         bookkeeping (its bytes + 32); past it the oldest held mailbox is discarded first \
         (default 64MiB)",
    ),
    (
        "--rate N",
        "PDUs per second a client may send, 0 = unlimited (default 0)",
    ),
    (
        "--state FILE",
        "keep holds and mailboxes across restarts in FILE, read at start and saved \
         at shutdown and periodically; without it they live in memory only",
    ),
    (
        "--state-interval DUR",
        "how often the state is saved while running, 0 = only at shutdown; a crash \
         loses at most this much; needs --state (default 60s)",
    ),
    ("--log-file PATH", "also write the log to PATH (appending)"),
    (
        "-v, --verbose",
        "more log, one level a v: -v adds decisions, -vv every PDU in and out, \
         -vvv (the most) also every write to a client's socket",
    ),
    ("-q, --quiet", "only warnings and errors"),
    (
        "--print-fsm [FORMAT]",
        "print the state machine and the legality table and exit: markdown (both \
         tables; default markdown), dot or mermaid (the transitions), dot-legality or \
         mermaid-legality (the legality table); one document each",
    ),
    ("-h, --help", "print this help and exit"),
    ("-V, --version", "print the version and exit"),
];

/// The width `--help` wraps its descriptions to.
const HELP_WIDTH: usize = 80;

/// `--help`: what the server is, every option with its default and unit in two aligned
/// columns (descriptions wrapped to 80 columns), and the units.
pub fn help() -> String {
    // A long-only option is indented as if it had a short one ("-l, ").
    let name = |opt: &str| {
        if opt.starts_with("--") {
            format!("      {opt}")
        } else {
            format!("  {opt}")
        }
    };
    let column = OPTIONS
        .iter()
        .map(|(o, _)| name(o).len())
        .max()
        .unwrap_or(0)
        + 2;
    let mut out = String::from("xscpd - the XSCP/1 chat server\n\nOptions:\n");
    for (opt, text) in OPTIONS {
        let mut line = format!("{:column$}", name(opt));
        let mut empty = true;
        for word in text.split_whitespace() {
            if !empty && line.len() + 1 + word.len() > HELP_WIDTH {
                out += &line;
                out.push('\n');
                line = " ".repeat(column);
                empty = true;
            }
            if !empty {
                line.push(' ');
            }
            line += word;
            empty = false;
        }
        out += &line;
        out.push('\n');
    }
    out + "\nDUR is 250ms, 2s, 5m, 1h or a bare number of seconds; at most 876000h\n\
           (100 years).\n\
           Signals: SIGINT, SIGTERM and SIGHUP shut the server down in order; exit status 0."
}

/// The most log: `-vvv`. More `v`s are accepted and mean the same.
pub const MAX_VERBOSITY: i8 = 3;

/// The verbosity at which each write to a client's socket is logged (`-vvv`).
pub const VERBOSITY_SOCKET_WRITES: i8 = 3;

pub use crate::net::outbox::SOCKET_WRITES_TARGET;

/// Everything the server needs to know from its command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `--listen`
    pub listen: String,
    /// `--max-clients`
    pub max_clients: usize,
    /// `--max-per-ip` (0 = unlimited)
    pub max_per_ip: usize,
    /// `--max-retries`
    pub max_retries: u32,
    /// `--negotiate-timeout`
    pub negotiate_timeout: Duration,
    /// `--ping-interval`
    pub ping_interval: Duration,
    /// `--ping-timeout`
    pub ping_timeout: Duration,
    /// `--hold` (zero: names are released at once)
    pub hold: Duration,
    /// `--max-holds`; `None`: 4 × `max_clients`, at least 1024 ([`Config::max_holds`])
    pub max_holds: Option<usize>,
    /// `--max-holds-per-ip`
    pub max_holds_per_ip: usize,
    /// `--sendq`, in bytes
    pub sendq: usize,
    /// `--mailbox`, in bytes (at most `sendq`)
    pub mailbox: usize,
    /// `--mailbox-total`, in bytes
    pub mailbox_total: usize,
    /// `--rate`, PDUs per second (0 = off)
    pub rate: u32,
    /// `--state` (xscp(7) §5.9)
    pub state: Option<PathBuf>,
    /// `--state-interval` (zero: only at shutdown)
    pub state_interval: Duration,
    /// `--log-file`
    pub log_file: Option<PathBuf>,
    /// -1 with `-q`, 0 by default, 1 with `-v`, 2 with `-vv`, 3 ([`MAX_VERBOSITY`]) with
    /// `-vvv` or more.
    pub verbosity: i8,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: "127.0.0.1:1030".into(),
            max_clients: 1024,
            max_per_ip: 64,
            max_retries: 3,
            negotiate_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(60),
            ping_timeout: Duration::from_secs(20),
            hold: Duration::from_secs(300),
            max_holds: None,
            max_holds_per_ip: 64,
            sendq: 256 * 1024,
            mailbox: 64 * 1024,
            mailbox_total: 64 * 1024 * 1024,
            rate: 0,
            state: None,
            state_interval: Duration::from_secs(60),
            log_file: None,
            verbosity: 0,
        }
    }
}

impl Config {
    /// The most names held at once: `--max-holds`, by default 4 × `--max-clients`, at
    /// least 1024.
    pub fn max_holds(&self) -> usize {
        self.max_holds
            .unwrap_or_else(|| self.max_clients.saturating_mul(4).max(1024))
    }

    /// What every session needs: retries, timers and the `capa` list it announces.
    pub fn session(&self) -> session::Settings {
        session::Settings {
            max_retries: self.max_retries,
            negotiate_timeout: self.negotiate_timeout,
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
            capa: reply::capa(&Capabilities {
                max_retries: self.max_retries,
                negotiate_timeout: self.negotiate_timeout,
                ping_interval: self.ping_interval,
                ping_timeout: self.ping_timeout,
                hold: self.hold,
                mailbox: self.mailbox,
                max_holds: self.max_holds(),
                max_holds_per_ip: self.max_holds_per_ip,
                rate: self.rate,
            }),
        }
    }

    /// The hub's settings.
    pub fn hub(&self) -> HubConfig {
        HubConfig {
            hold: self.hold,
            max_holds: self.max_holds(),
            max_holds_per_ip: self.max_holds_per_ip,
            mailbox: self.mailbox,
            mailbox_total: self.mailbox_total,
        }
    }

    /// How long a write may wait for the socket before its client is a slow consumer: as
    /// long as a client has to answer a ping.
    pub fn write_timeout(&self) -> Duration {
        self.ping_timeout
    }
}

/// What the command line asks for.
// Made once per process: a `Config` unboxed costs nothing worth an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cli {
    /// Run the server.
    Run(Config),
    /// Print the tables and exit.
    PrintFsm(FsmFormat),
    /// Print the help and exit.
    Help,
    /// Print the version and exit.
    Version,
}

/// A bad command line: the message names the option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest duration taken: 100 years (876000h). Every timer adds its duration to the
/// clock; one far longer would overflow it (and stop the thread that adds it).
pub const MAX_DURATION: Duration = Duration::from_secs(876_000 * 3600);

/// Parses a duration: `250ms`, `2s`, `5m`, `1h` or a bare number of seconds, at most
/// [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Option<Duration> {
    within_bound(s)?
}

/// A well-formed duration (`None`: not one), if it is at most [`MAX_DURATION`] (`Some(None)`:
/// a well-formed one longer, however long its digits).
fn within_bound(s: &str) -> Option<Option<Duration>> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let unit: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    if digits.is_empty() {
        return None;
    }
    let ms = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .map(Duration::from_millis);
    Some(ms.filter(|d| *d <= MAX_DURATION))
}

/// A duration option's value, or an error naming the option (and the bound, for a
/// well-formed duration too long).
fn duration(opt: &str, v: Option<String>) -> Result<Duration, CliError> {
    let v = v.ok_or_else(|| CliError(format!("option {opt} needs a value")))?;
    match within_bound(&v) {
        Some(Some(d)) => Ok(d),
        Some(None) => Err(CliError(format!(
            "{opt} may not exceed 100 years (876000h), got '{v}'"
        ))),
        None => Err(CliError(format!("invalid value '{v}' for {opt}"))),
    }
}

/// Parses a size in bytes: a number with an optional `K`, `KiB`, `M` or `MiB`.
pub fn parse_size(s: &str) -> Option<usize> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: usize = digits.parse().ok()?;
    let factor = match unit {
        "" | "B" => 1,
        "K" | "k" | "KiB" => 1024,
        "M" | "MiB" => 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// The XSCP port, used when an address names no port.
pub const DEFAULT_PORT: u16 = 1030;

/// An address in `host:port` form, as `xscpd -l` and `xscp` take it: a host without a
/// port (`localhost`, `[::1]`, a bare IPv6 address) gets [`DEFAULT_PORT`]. A port that is
/// not a number from 0 to 65535 is a bad command line, said before anything is resolved.
pub fn with_port(addr: &str) -> Result<String, String> {
    let port_ok = |port: &str| {
        port.parse::<u16>()
            .map(|_| addr.to_string())
            .map_err(|_| format!("invalid port '{port}' in '{addr}'"))
    };
    if addr.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(format!("[{addr}]:{DEFAULT_PORT}"));
    }
    if let Some(rest) = addr.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, "")) => Ok(format!("[{host}]:{DEFAULT_PORT}")),
            Some((_, after)) => match after.strip_prefix(':') {
                Some(port) => port_ok(port),
                None => Err(format!(
                    "invalid address '{addr}': ':PORT' expected after ']'"
                )),
            },
            None => Err(format!("invalid address '{addr}': no closing ']'")),
        };
    }
    match addr.rsplit_once(':') {
        Some((_, port)) => port_ok(port),
        None => Ok(format!("{addr}:{DEFAULT_PORT}")),
    }
}

fn value<T>(
    opt: &str,
    v: Option<String>,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, CliError> {
    let v = v.ok_or_else(|| CliError(format!("option {opt} needs a value")))?;
    parse(&v).ok_or_else(|| CliError(format!("invalid value '{v}' for {opt}")))
}

/// Does `path` name a file (`--state`)? Its last component, as written, is a name: not
/// empty (`dir/state/`), `.` or `..`, which can only name a directory, where no save could
/// ever be renamed to.
fn names_a_file(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or_default();
    !matches!(last, "" | "." | "..")
}

fn at_least<T: PartialOrd + fmt::Debug>(opt: &str, v: T, min: T) -> Result<T, CliError> {
    if v < min {
        return Err(CliError(format!("{opt} must be at least {min:?}")));
    }
    Ok(v)
}

/// Is `arg` a run of `v`s (`-v`, `-vv`, `-vvv`, ...)?
fn is_vs(arg: &str) -> bool {
    arg.strip_prefix('-')
        .is_some_and(|vs| !vs.is_empty() && vs.bytes().all(|b| b == b'v'))
}

/// `verbosity` raised by `levels` (from the default if `-q` lowered it), at most
/// [`MAX_VERBOSITY`].
fn more_verbose(verbosity: i8, levels: usize) -> i8 {
    let levels = i8::try_from(levels).unwrap_or(MAX_VERBOSITY);
    verbosity.max(0).saturating_add(levels).min(MAX_VERBOSITY)
}

/// Parses the arguments (without the program name).
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Cli, CliError> {
    let mut c = Config::default();
    let mut mailbox = None;
    let mut interval_given = false;
    let mut args = args.into_iter().peekable();
    while let Some(arg) = args.next() {
        // `--opt=value` is the same as `--opt value`.
        let (opt, mut inline) = match arg.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut next = || inline.take().or_else(|| args.next());
        match opt.as_str() {
            "-l" | "--listen" => {
                let v = next().ok_or_else(|| CliError(format!("option {opt} needs a value")))?;
                c.listen = with_port(&v).map_err(CliError)?;
            }
            "--max-clients" => {
                c.max_clients = at_least(&opt, value(&opt, next(), |v| v.parse().ok())?, 1)?
            }
            "--max-per-ip" => c.max_per_ip = value(&opt, next(), |v| v.parse().ok())?,
            "--max-retries" => {
                c.max_retries = at_least(&opt, value(&opt, next(), |v| v.parse().ok())?, 1)?
            }
            "--negotiate-timeout" => {
                c.negotiate_timeout =
                    at_least(&opt, duration(&opt, next())?, Duration::from_millis(1))?
            }
            "--ping-interval" => {
                c.ping_interval = at_least(&opt, duration(&opt, next())?, Duration::from_millis(1))?
            }
            "--ping-timeout" => {
                c.ping_timeout = at_least(&opt, duration(&opt, next())?, Duration::from_millis(1))?
            }
            "--hold" => c.hold = duration(&opt, next())?,
            "--max-holds" => {
                c.max_holds = Some(at_least(&opt, value(&opt, next(), |v| v.parse().ok())?, 1)?)
            }
            "--max-holds-per-ip" => {
                c.max_holds_per_ip = at_least(&opt, value(&opt, next(), |v| v.parse().ok())?, 1)?
            }
            "--sendq" => c.sendq = at_least(&opt, value(&opt, next(), parse_size)?, 512)?,
            "--mailbox" => mailbox = Some(value(&opt, next(), parse_size)?),
            "--mailbox-total" => c.mailbox_total = value(&opt, next(), parse_size)?,
            "--rate" => c.rate = value(&opt, next(), |v| v.parse().ok())?,
            "--state" => {
                c.state = Some(value(&opt, next(), |v| {
                    names_a_file(v).then(|| PathBuf::from(v))
                })?)
            }
            "--state-interval" => {
                c.state_interval = duration(&opt, next())?;
                interval_given = true;
            }
            "--log-file" => c.log_file = Some(value(&opt, next(), |v| Some(PathBuf::from(v)))?),
            "-q" | "--quiet" => c.verbosity = -1,
            "--verbose" => c.verbosity = more_verbose(c.verbosity, 1),
            v if is_vs(v) => c.verbosity = more_verbose(c.verbosity, v.len() - 1),
            "--print-fsm" => {
                let format = match inline
                    .take()
                    .or_else(|| args.next_if(|a| !a.starts_with('-')))
                {
                    None => FsmFormat::Markdown,
                    Some(f) => FsmFormat::parse(&f)
                        .ok_or_else(|| CliError(format!("invalid value '{f}' for --print-fsm")))?,
                };
                // Nothing may follow: `--print-fsm markdown dot` prints one document.
                if let Some(extra) = args.next() {
                    return Err(CliError(format!("unexpected argument '{extra}'")));
                }
                return Ok(Cli::PrintFsm(format));
            }
            "-h" | "--help" => return Ok(Cli::Help),
            "-V" | "--version" => return Ok(Cli::Version),
            _ => return Err(CliError(format!("unknown option '{arg}'"))),
        }
        if let Some(v) = inline {
            return Err(CliError(format!("option {opt} takes no value (got '{v}')")));
        }
    }
    // A mailbox is replayed at once on return (xscp(7) §5.8): it must fit in a queue,
    // and by default with room to spare for the welcome back and what else is queued.
    c.mailbox = mailbox.unwrap_or(c.mailbox.min(c.sendq / 2));
    if c.mailbox > c.sendq {
        return Err(CliError(format!(
            "--mailbox ({} bytes) may not exceed --sendq ({} bytes)",
            c.mailbox, c.sendq
        )));
    }
    // Saves every interval of no file would be no saves at all, silently.
    if interval_given && c.state.is_none() {
        return Err(CliError("--state-interval needs --state".into()));
    }
    Ok(Cli::Run(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Cli, CliError> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_match_the_documentation() {
        let Ok(Cli::Run(c)) = run(&[]) else { panic!() };
        assert_eq!(c.listen, "127.0.0.1:1030");
        assert_eq!((c.max_clients, c.max_per_ip, c.max_retries), (1024, 64, 3));
        assert_eq!(c.negotiate_timeout, Duration::from_secs(30));
        assert_eq!(c.ping_interval, Duration::from_secs(60));
        assert_eq!(c.ping_timeout, Duration::from_secs(20));
        assert_eq!(c.hold, Duration::from_secs(300));
        assert_eq!((c.sendq, c.rate), (256 * 1024, 0));
        assert_eq!((c.mailbox, c.mailbox_total), (64 * 1024, 64 * 1024 * 1024));
        assert_eq!((c.state, c.state_interval), (None, Duration::from_secs(60)));
    }

    #[test]
    fn state_takes_a_file_and_an_interval() {
        let Ok(Cli::Run(c)) = run(&["--state", "/var/lib/xscpd/state", "--state-interval=0"])
        else {
            panic!()
        };
        assert_eq!(c.state, Some(PathBuf::from("/var/lib/xscpd/state")));
        assert_eq!(c.state_interval, Duration::ZERO);
        assert!(run(&["--state", "s", "--state-interval", "soon"]).is_err());
        let alone = run(&["--state-interval", "10s"]).map(|_| ()).unwrap_err();
        assert_eq!(alone.to_string(), "--state-interval needs --state");
        assert!(run(&["--state"]).is_err());
        assert!(run(&["--state", ""]).is_err());
        for dir in ["/var/lib/xscpd/", "state/", ".", "..", "/", "a/.", "a/.."] {
            assert!(run(&["--state", dir]).is_err(), "{dir}");
        }
        assert!(run(&["--state", ".state"]).is_ok());
    }

    #[test]
    fn the_mailbox_may_not_exceed_the_sendq() {
        let Ok(Cli::Run(c)) = run(&["--mailbox", "64", "--mailbox-total=1K"]) else {
            panic!()
        };
        assert_eq!((c.mailbox, c.mailbox_total), (64, 1024));
        assert!(matches!(
            run(&["--mailbox", "512K", "--sendq", "512K"]),
            Ok(Cli::Run(_))
        ));
        assert_eq!(
            run(&["--mailbox", "1M", "--sendq", "512K"]),
            Err(CliError(
                "--mailbox (1048576 bytes) may not exceed --sendq (524288 bytes)".into()
            ))
        );
        // Whatever the order of the options.
        assert!(run(&["--sendq", "1K", "--mailbox", "2K"]).is_err());
        // Not given, it is the default or half --sendq, whichever is smaller.
        let Ok(Cli::Run(c)) = run(&["--sendq", "16K"]) else {
            panic!()
        };
        assert_eq!(c.mailbox, 8 * 1024);
        assert!(run(&["--mailbox", "big"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        for bad in ["", "s", "1x", "-1", "1.5s", "ms"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        // At most 100 years: the clock cannot take some longer ones.
        assert_eq!(parse_duration("876000h"), Some(MAX_DURATION));
        assert_eq!(parse_duration("876001h"), None);
        assert_eq!(parse_duration("10000000000000000000"), None);
        let too_long = |v: &str| match run(&["--hold", v]) {
            Err(e) => e.0,
            Ok(other) => panic!("{other:?}"),
        };
        assert_eq!(
            too_long("3153600001"),
            "--hold may not exceed 100 years (876000h), got '3153600001'"
        );
        assert_eq!(
            too_long("99999999999999999999999999999999999999999999"),
            "--hold may not exceed 100 years (876000h), got \
             '99999999999999999999999999999999999999999999'"
        );
        assert_eq!(too_long("1x"), "invalid value '1x' for --hold");
        assert_eq!(too_long(""), "invalid value '' for --hold");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256KiB"), Some(262144));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("1G"), None);
    }

    #[test]
    fn options_and_values() {
        let Ok(Cli::Run(c)) = run(&[
            "-l",
            "127.0.0.1:0",
            "--hold=0",
            "--ping-interval",
            "250ms",
            "-vv",
            "--rate",
            "10",
        ]) else {
            panic!()
        };
        assert_eq!(c.listen, "127.0.0.1:0");
        assert_eq!(c.hold, Duration::ZERO);
        assert_eq!(c.ping_interval, Duration::from_millis(250));
        assert_eq!((c.verbosity, c.rate), (2, 10));
    }

    fn verbosity(args: &[&str]) -> i8 {
        match run(args) {
            Ok(Cli::Run(c)) => c.verbosity,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    /// `-v...`: each `v` is a level, written apart or together, up to `-vvv`.
    #[test]
    fn repeated_v_raises_the_verbosity_up_to_three() {
        assert_eq!(verbosity(&[]), 0);
        assert_eq!(verbosity(&["-v"]), 1);
        assert_eq!(verbosity(&["--verbose"]), 1);
        assert_eq!(verbosity(&["-vv"]), 2);
        assert_eq!(verbosity(&["-v", "-v"]), 2);
        assert_eq!(verbosity(&["-vvv"]), 3);
        assert_eq!(verbosity(&["-v", "--verbose", "-v"]), 3);
        assert_eq!(verbosity(&["-vvvvvvv"]), MAX_VERBOSITY);
        assert_eq!(
            verbosity(&[&format!("-{}", "v".repeat(300))]),
            MAX_VERBOSITY
        );
        assert_eq!(verbosity(&["-q"]), -1);
        assert_eq!(verbosity(&["-q", "-vv"]), 2);
        assert_eq!(verbosity(&["-vv", "-q"]), -1);
        for bad in ["-", "-vx", "-vq", "--vv", "-V2"] {
            assert!(run(&[bad]).is_err(), "{bad}");
        }
    }

    /// `--help`: every description starts in the same column, whatever the length of the
    /// option; no line is wider than 80 columns; and a wrapped line never starts with `-`
    /// (it would read as another option).
    #[test]
    fn help_columns_are_aligned() {
        let help = help();
        let options = help.split_once("Options:\n").map_or("", |(_, o)| o);
        let options = options.split("\n\n").next().unwrap_or_default();
        let indent = |s: &str| s.len() - s.trim_start().len();
        let mut columns = Vec::new();
        for line in options.lines() {
            assert!(line.len() <= HELP_WIDTH, "too wide: {line:?}");
            let start = indent(line);
            let column = if start < 8 {
                // An option: its description follows after a run of two or more spaces.
                let end = start + line[start..].find("  ").unwrap_or(line.len() - start);
                end + indent(&line[end..])
            } else {
                assert!(!line.trim_start().starts_with('-'), "{line:?}");
                start
            };
            columns.push((column, line));
        }
        assert_eq!(
            columns.iter().filter(|(_, l)| indent(l) < 8).count(),
            OPTIONS.len()
        );
        for (column, line) in &columns {
            assert_eq!(*column, columns[0].0, "misaligned: {line:?}");
        }
    }

    #[test]
    fn bad_options_name_themselves() {
        assert_eq!(
            run(&["--bogus"]),
            Err(CliError("unknown option '--bogus'".into()))
        );
        assert_eq!(
            run(&["--hold", "soon"]),
            Err(CliError("invalid value 'soon' for --hold".into()))
        );
        assert_eq!(
            run(&["--max-clients"]),
            Err(CliError("option --max-clients needs a value".into()))
        );
        assert!(run(&["--max-retries", "0"]).is_err());
        assert!(run(&["-q=1"]).is_err());
    }

    #[test]
    fn a_listen_address_without_a_port_gets_1030() {
        let listen = |a: &str| match run(&["-l", a]) {
            Ok(Cli::Run(c)) => Ok(c.listen),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.0),
        };
        assert_eq!(listen("127.0.0.1"), Ok("127.0.0.1:1030".into()));
        assert_eq!(listen("localhost"), Ok("localhost:1030".into()));
        assert_eq!(listen("::1"), Ok("[::1]:1030".into()));
        assert_eq!(listen("[::1]"), Ok("[::1]:1030".into()));
        assert_eq!(listen("[::1]:7"), Ok("[::1]:7".into()));
        assert_eq!(
            listen("127.0.0.1:65536"),
            Err("invalid port '65536' in '127.0.0.1:65536'".into())
        );
        assert!(listen("[::1]:x").is_err());
        assert!(listen("[::1").is_err());
        assert!(listen("[::1]7").is_err());
    }

    #[test]
    fn print_fsm_takes_one_optional_format_and_nothing_after_it() {
        assert_eq!(
            run(&["--print-fsm", "markdown", "dot"]),
            Err(CliError("unexpected argument 'dot'".into()))
        );
        assert!(run(&["--print-fsm=dot", "-v"]).is_err());
    }

    #[test]
    fn print_fsm_takes_an_optional_format() {
        assert_eq!(
            run(&["--print-fsm"]),
            Ok(Cli::PrintFsm(FsmFormat::Markdown))
        );
        assert_eq!(
            run(&["--print-fsm", "dot"]),
            Ok(Cli::PrintFsm(FsmFormat::Dot))
        );
        assert_eq!(
            run(&["--print-fsm=mermaid"]),
            Ok(Cli::PrintFsm(FsmFormat::Mermaid))
        );
        assert_eq!(
            run(&["--print-fsm", "dot-legality"]),
            Ok(Cli::PrintFsm(FsmFormat::DotLegality))
        );
        assert_eq!(
            run(&["--print-fsm=mermaid-legality"]),
            Ok(Cli::PrintFsm(FsmFormat::MermaidLegality))
        );
        assert!(run(&["--print-fsm", "svg"]).is_err());
    }

    /// `--help` names every format `--print-fsm` takes.
    #[test]
    fn help_names_every_print_fsm_format() {
        for (name, _) in FsmFormat::ALL {
            assert!(help().contains(name), "{name}");
        }
    }
}
