//! A small threaded XSCP server for these tests: right about everything the checker can
//! see through a shared ADDR, except for the rules its switches break on purpose. (No
//! timers, no limits: the transcripts that need those need `--server` and are skipped
//! against an ADDR; [`process`] runs it as a server process for `--server`, with the
//! options it knows, see [`Opts`].)

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The rules to break.
#[derive(Clone, Copy, Default, Debug)]
pub struct Broken {
    /// Greets with `+OK hello` instead of `+OK xscp/1 ready` (§2).
    pub wrong_greeting: bool,
    /// Gives a name that a connected client already has (§5.1 uname).
    pub no_in_use_check: bool,
    /// Takes `chatm` before `uname` (§4).
    pub chatm_before_uname: bool,
    /// Answers `ping <token>` with a bare `+OK pong` (§5.2 ping).
    pub no_pong_token: bool,
    /// Closes at once after its last line, unread input or not: a reset (§7).
    pub no_orderly_close: bool,
    /// Relays a `chatm` whatever sender it names (§5.5 chatm).
    pub no_spoof_check: bool,
    /// Checks a line's length only once its terminator arrives (§1: buffers an overlong
    /// line without bound).
    pub waits_for_terminator: bool,
    /// Its control-byte range starts at 0x01: NUL passes (§1).
    pub nul_allowed: bool,
    /// Its control-byte range ends below 0x1F: 0x1F passes (§1).
    pub unit_separator_allowed: bool,
    /// Forgets DEL, 0x7F (§1).
    pub del_allowed: bool,
    /// Takes a tab for a space between tokens (§1).
    pub tab_is_space: bool,
    /// Separates arguments by exactly one space (§1: one or more).
    pub single_spaces: bool,
    /// A receipt frees the newest message from its sender, not the oldest (§5.8).
    pub receipt_frees_newest: bool,
    /// Shuts down its side after the last line, then closes without lingering: a reset
    /// right after the end of the stream (§7).
    pub fin_then_reset: bool,
    /// `users` gives the right count and the asking client's own name on every line.
    pub users_repeats_own_name: bool,
    /// Every line starts the negotiation deadline anew (§5.1 uname: traffic does not
    /// extend it).
    pub deadline_per_line: bool,
    /// Past its `--rate` budget it drops lines instead of reading slower (§7).
    pub rate_drops: bool,
    /// Takes `--rate` and does nothing with it (§7).
    pub rate_ignored: bool,
    /// Sends a subscriber the notifications of its own actions (§5.4 notif).
    pub notifies_self: bool,
    /// Lets `cname` onto a name held for the renaming client's own address (§5.7: a held
    /// name is reserved for the returning `uname`, from every address).
    pub cname_takes_own_hold: bool,
    /// Not a defect: takes the choices the protocol leaves open otherwise than xscpd
    /// (capa in another order with an extra item, an answer to a receipt for a
    /// broadcast, its own cquit reason for a framing violation). Nothing may fail.
    pub other_choices: bool,
    /// relayed `chatm`/`chatr` and `notif` lines end with a bare LF (§1: the
    /// server ends every line it sends with CRLF).
    pub relay_lf: bool,
    /// Hostile: answers `users` with `+OK 1 users`, then its name again every
    /// 500 ms, never the dot.
    pub users_trickle: bool,
    /// takes a correct pong silently but leaves the ping outstanding, so the
    /// client is dropped with `cquit ping timeout` although it answered (§5.2).
    pub pong_keeps_ping: bool,
    /// `users` counts and lists the names held for departed clients too (§5.4:
    /// one registered nickname a line).
    pub users_lists_held: bool,
    /// Not a defect: notices a peer's close late (a second after its end of stream) and
    /// only then releases the name and tells subscribers (§6: nothing bounds how soon).
    pub slow_close: bool,
    /// A client that closes its connection (a fault) loses its name at once: no hold
    /// (§5.7: a name is held after an abort too).
    pub no_hold_on_fault: bool,
    /// Not a defect: writes `+OK message relayed` after the relay, and late for a direct
    /// message that follows an unreceipted one to the same recipient: after that
    /// recipient's next receipt, before any other response, a second later at the
    /// latest (§5.5: each message's +OK comes before its own receipt, nothing more).
    pub late_relayed_ok: bool,
    /// Writes a direct message's `+OK message relayed` only after the receipt for it
    /// (or a second later): the receipt overtakes the +OK (§5.5).
    pub receipt_before_ok: bool,
    /// Holds a direct message until its sender's next one to the same recipient, then
    /// relays the newer first, or a second later (§5.5: messages from one sender arrive
    /// in order).
    pub swaps_messages: bool,
    /// Not a defect: after a correct pong it sends its next ping a second later, before
    /// it reads what came meanwhile: on the wire, what a correct server sends a client
    /// that pauses longer than --ping-interval after its pong (a loaded machine).
    pub busy_after_pong: bool,
    /// `cname` holds the old name for the renaming client's address, as a departure
    /// would (§5.4 cname: the old name is free; §5.7 holds a departed client's name).
    pub cname_holds_old: bool,
    /// Not a defect: ends a failed attempt's reply with the count as ` [n/max]`
    /// (§5.1 uname: the text ends with the count, in no fixed form).
    pub count_as_fraction: bool,
    /// Not a defect: ends a failed attempt's reply with ` (attempt n)`, no budget.
    pub count_without_budget: bool,
    /// A failed attempt's reply has no count at all (§5.1 uname).
    pub no_attempt_count: bool,
    /// Every failed attempt's reply says `(attempt 1 of max)`: the count does not grow.
    pub count_stuck: bool,
    /// The count comes first: `-ERR [CODE] (attempt n of max) text`, not at the end.
    pub count_first: bool,
    /// A client aborted for a violation leaves without its subscribers being told: no
    /// `notif quit` (§5.4 notif: subscribers hear of every other client that leaves).
    pub violation_not_notified: bool,
    /// The last line before it closes a connection has no CR LF: the end of the stream
    /// ends it (§1: the server ends every line it sends with CRLF).
    pub last_line_unterminated: bool,
    /// A hold lasts for ever, whatever `--hold` says (§5.7: it lasts `--hold`).
    pub hold_never_expires: bool,
    /// Takes `--max-holds-per-ip` and does nothing with it (§5.7: an address at its bound
    /// loses its own oldest hold).
    pub holds_per_ip_ignored: bool,
    /// A receipt for a copy forgotten past `--mailbox` leaves it on the lost count (§5.8:
    /// it proves the message delivered).
    pub lost_not_decremented: bool,
    /// Takes the pong of the last ping again, silently, once that ping was answered
    /// (§5.2: a pong that answers no outstanding ping is a violation).
    pub pong_twice_accepted: bool,
    /// A client that renamed is held under the name it registered with, not the one it
    /// had when it left (§5.7: its name is held).
    pub hold_keeps_first_name: bool,
    /// Makes room under `--mailbox-total` for a `chatm` to a held name, discarding other
    /// mailboxes, before it checks the line against `--mailbox` and refuses it FULL
    /// (§5.8: a refused line changes nothing anywhere).
    pub room_before_fit: bool,
    /// A receipt for a held name that its mailbox cannot take is dropped without being
    /// counted lost (§5.8: it is counted as lost).
    pub receipt_lost_uncounted: bool,
    /// `users` gives the right count, then every name and the asking client's own once
    /// more (§5.4 users: one nickname a line, `n` of them).
    pub users_lists_own_twice: bool,
}

impl Broken {
    /// The switches named in `names` (comma-separated field names), for [`process`].
    pub fn from_names(names: &str) -> Broken {
        let mut b = Broken::default();
        for n in names.split(',').filter(|n| !n.is_empty()) {
            let flag = match n {
                "waits_for_terminator" => &mut b.waits_for_terminator,
                "nul_allowed" => &mut b.nul_allowed,
                "unit_separator_allowed" => &mut b.unit_separator_allowed,
                "del_allowed" => &mut b.del_allowed,
                "tab_is_space" => &mut b.tab_is_space,
                "single_spaces" => &mut b.single_spaces,
                "receipt_frees_newest" => &mut b.receipt_frees_newest,
                "fin_then_reset" => &mut b.fin_then_reset,
                "users_repeats_own_name" => &mut b.users_repeats_own_name,
                "deadline_per_line" => &mut b.deadline_per_line,
                "rate_drops" => &mut b.rate_drops,
                "rate_ignored" => &mut b.rate_ignored,
                "other_choices" => &mut b.other_choices,
                "notifies_self" => &mut b.notifies_self,
                "cname_takes_own_hold" => &mut b.cname_takes_own_hold,
                "relay_lf" => &mut b.relay_lf,
                "users_trickle" => &mut b.users_trickle,
                "pong_keeps_ping" => &mut b.pong_keeps_ping,
                "users_lists_held" => &mut b.users_lists_held,
                "slow_close" => &mut b.slow_close,
                "no_hold_on_fault" => &mut b.no_hold_on_fault,
                "late_relayed_ok" => &mut b.late_relayed_ok,
                "receipt_before_ok" => &mut b.receipt_before_ok,
                "swaps_messages" => &mut b.swaps_messages,
                "busy_after_pong" => &mut b.busy_after_pong,
                "cname_holds_old" => &mut b.cname_holds_old,
                "count_as_fraction" => &mut b.count_as_fraction,
                "count_without_budget" => &mut b.count_without_budget,
                "no_attempt_count" => &mut b.no_attempt_count,
                "count_stuck" => &mut b.count_stuck,
                "count_first" => &mut b.count_first,
                "violation_not_notified" => &mut b.violation_not_notified,
                "last_line_unterminated" => &mut b.last_line_unterminated,
                "hold_never_expires" => &mut b.hold_never_expires,
                "holds_per_ip_ignored" => &mut b.holds_per_ip_ignored,
                "lost_not_decremented" => &mut b.lost_not_decremented,
                "pong_twice_accepted" => &mut b.pong_twice_accepted,
                "hold_keeps_first_name" => &mut b.hold_keeps_first_name,
                "room_before_fit" => &mut b.room_before_fit,
                "receipt_lost_uncounted" => &mut b.receipt_lost_uncounted,
                "users_lists_own_twice" => &mut b.users_lists_own_twice,
                other => panic!("no switch {other}"),
            };
            *flag = true;
        }
        b
    }

    /// Is `b` a byte §1 forbids, as this server sees it?
    fn forbidden(self, b: u8) -> bool {
        match b {
            0 => !self.nul_allowed,
            b'\t' => !self.tab_is_space,
            0x1F => !self.unit_separator_allowed,
            0x7F => !self.del_allowed,
            b => b < 0x20,
        }
    }
}

/// The server options the fake knows.
#[derive(Clone, Copy, Debug)]
pub struct Opts {
    pub negotiate: Duration,
    /// PDUs per second, 0 = unlimited.
    pub rate: u32,
    /// `--ping-interval` (none: no server pings) and `--ping-timeout`.
    pub ping_interval: Option<Duration>,
    pub ping_timeout: Duration,
    /// `--mailbox-total`: with it, a `chatm` to a held name is kept in its mailbox.
    pub mailbox_total: Option<usize>,
    /// `--hold 0` makes it false: nothing is held.
    pub hold: bool,
    /// `--hold DUR` other than 0: how long a hold lasts (none: longer than any test).
    pub hold_for: Option<Duration>,
    /// `--max-holds-per-ip`.
    pub max_holds_per_ip: Option<usize>,
    /// `--mailbox`: the bytes of the copies kept for one client (none: no bound).
    pub mailbox: Option<usize>,
    /// `--max-retries`.
    pub max_retries: u32,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            negotiate: Duration::from_secs(30),
            rate: 0,
            ping_interval: None,
            ping_timeout: Duration::from_secs(20),
            mailbox_total: None,
            hold: true,
            hold_for: None,
            max_holds_per_ip: None,
            mailbox: None,
            max_retries: 3,
        }
    }
}

impl Opts {
    /// `--negotiate-timeout 1s` (ms or s), `--rate N`, `--ping-interval`, `--ping-timeout`,
    /// `--mailbox-total`, `--hold`, `--max-holds-per-ip`, `--mailbox` (bytes) and
    /// `--max-retries`; other options are ignored.
    fn parse(args: &[String]) -> Opts {
        let mut o = Opts::default();
        for w in args.windows(2) {
            match w[0].as_str() {
                "--negotiate-timeout" => {
                    o.negotiate = match w[1].strip_suffix("ms") {
                        Some(ms) => Duration::from_millis(ms.parse().expect("ms")),
                        None => {
                            Duration::from_secs(w[1].trim_end_matches('s').parse().expect("secs"))
                        }
                    }
                }
                "--rate" => o.rate = w[1].parse().expect("rate"),
                "--ping-interval" => o.ping_interval = Some(dur(&w[1])),
                "--ping-timeout" => o.ping_timeout = dur(&w[1]),
                "--mailbox-total" => o.mailbox_total = Some(w[1].parse().expect("bytes")),
                "--hold" => {
                    o.hold = w[1] != "0";
                    o.hold_for = o.hold.then(|| dur(&w[1]));
                }
                "--max-holds-per-ip" => {
                    o.max_holds_per_ip = Some(w[1].parse().expect("holds"));
                }
                "--mailbox" => o.mailbox = Some(w[1].parse().expect("bytes")),
                "--max-retries" => o.max_retries = w[1].parse().expect("retries"),
                _ => {}
            }
        }
        o
    }
}

/// `200ms` or `2s`.
fn dur(w: &str) -> Duration {
    match w.strip_suffix("ms") {
        Some(ms) => Duration::from_millis(ms.parse().expect("ms")),
        None => Duration::from_secs(w.trim_end_matches('s').parse().expect("secs")),
    }
}

/// The fake as a server process, for `xscp check --server`: this test binary run as
/// `--ignored --exact check::fake::process -- ADDR OPTIONS...`, with the switches to
/// break in the environment variable `XSCP_FAKE` (see [`Broken::from_names`]).
/// Without that variable it returns at once.
#[test]
#[ignore = "the fake server's process, started by xscp check --server"]
fn process() {
    let Ok(names) = std::env::var("XSCP_FAKE") else {
        return;
    };
    let args: Vec<String> = std::env::args().skip_while(|a| a != "--").skip(1).collect();
    let addr: SocketAddr = args.first().expect("ADDR").parse().expect("an address");
    let listener = TcpListener::bind(addr).expect("bind");
    accept(
        listener,
        Broken::from_names(&names),
        Opts::parse(&args[1..]),
    );
}

/// The `--server` template that runs [`process`] (set `XSCP_FAKE` beside it).
pub fn template() -> String {
    let exe = std::env::current_exe().expect("the test binary");
    format!(
        "{} --ignored --exact --nocapture --test-threads 1 check::fake::process -- {{addr}} {{options}}",
        exe.display()
    )
}

struct Client {
    nick: Option<String>,
    /// The name it registered with (`hold_keeps_first_name`).
    first: Option<String>,
    out: TcpStream,
    notif: bool,
}

#[derive(Default)]
struct State {
    next_id: u64,
    clients: HashMap<u64, Client>,
    /// Held names (lower case): the address they are held for, the mailbox.
    holds: HashMap<String, (IpAddr, Vec<Pending>)>,
    /// Direct messages awaiting a receipt, oldest first.
    pending: Vec<Pending>,
    /// When each held name was held (a count): the oldest mailbox is discarded first.
    held_at: HashMap<String, u64>,
    holds_taken: u64,
    /// Lines of a held name's mailbox discarded past `--mailbox-total`.
    lost: HashMap<String, usize>,
    /// When each hold with a term (`--hold DUR`) ends.
    held_until: HashMap<String, Instant>,
    /// Copies forgotten past `--mailbox`, by the connection they were relayed to.
    copies_lost: HashMap<u64, usize>,
    /// The held name (lower case) of each departed connection that left one.
    held_sessions: HashMap<u64, String>,
    /// `+OK message relayed` lines owed to a connection (`late_relayed_ok`,
    /// `receipt_before_ok`).
    owed: HashMap<u64, usize>,
    /// A direct message held back by `swaps_messages`, by (sender, recipient) connection.
    held_back: HashMap<(u64, u64), String>,
}

/// A relayed direct message awaiting its receipt.
#[derive(Clone)]
struct Pending {
    /// The sender's connection.
    sid: u64,
    /// The sender as relayed.
    from: String,
    /// The recipient's connection.
    rid: u64,
    /// The `chatm` line as relayed.
    line: String,
    /// Its `+OK message relayed` is still owed to the sender.
    ok_owed: bool,
    /// Its copy was forgotten past `--mailbox`: it still awaits its receipt.
    forgotten: bool,
}

type Shared = Arc<Mutex<State>>;

/// Starts the server on 127.0.0.1, port 0; it runs until the test process ends.
pub fn start(broken: Broken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || accept(listener, broken, Opts::default()));
    addr
}

fn accept(listener: TcpListener, broken: Broken, opts: Opts) {
    let state: Shared = Arc::default();
    for stream in listener.incoming().flatten() {
        let state = Arc::clone(&state);
        thread::spawn(move || serve(stream, &state, broken, opts));
    }
}

/// A relayed line: CRLF, or a bare LF with `relay_lf`.
fn relay(mut out: &TcpStream, line: &str, broken: Broken) {
    let end = if broken.relay_lf { "\n" } else { "\r\n" };
    let _ = out.write_all(format!("{line}{end}").as_bytes());
}

fn send(mut out: &TcpStream, lines: &[String]) {
    let mut bytes = String::new();
    for l in lines {
        bytes.push_str(l);
        bytes.push_str("\r\n");
    }
    let _ = out.write_all(bytes.as_bytes());
}

enum Read1 {
    Line(Vec<u8>),
    TooLong,
    TimedOut,
    End,
}

/// One line ended by CR or LF, at most 510 bytes.
fn next_line(r: &mut impl BufRead, broken: Broken) -> Read1 {
    let mut buf = Vec::new();
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Read1::TimedOut,
            Err(_) => return Read1::End,
        };
        if avail.is_empty() {
            return Read1::End;
        }
        let end = avail.iter().position(|&b| b == b'\r' || b == b'\n');
        let take = end.unwrap_or(avail.len());
        buf.extend_from_slice(&avail[..take]);
        r.consume(end.map_or(take, |i| i + 1));
        if buf.len() > 510 && (end.is_some() || !broken.waits_for_terminator) {
            return Read1::TooLong;
        }
        if end.is_some() {
            return Read1::Line(buf);
        }
    }
}

fn valid_nick(n: &str) -> bool {
    (1..=16).contains(&n.len())
        && n.starts_with(|c: char| c.is_ascii_alphabetic())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What a line leads to.
enum Next {
    Stay(Vec<String>),
    Close(Vec<String>),
}

fn serve(stream: TcpStream, state: &Shared, broken: Broken, opts: Opts) {
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    let Ok(out) = stream.try_clone() else {
        return;
    };
    let greeting = if broken.wrong_greeting {
        "+OK hello"
    } else {
        "+OK xscp/1 ready"
    };
    send(&out, &[greeting.into()]);
    let id = {
        let mut s = state.lock().unwrap();
        s.next_id += 1;
        let id = s.next_id;
        let out = out.try_clone().expect("clone");
        s.clients.insert(
            id,
            Client {
                nick: None,
                first: None,
                out,
                notif: false,
            },
        );
        id
    };
    let mut reader = BufReader::new(stream);
    let mut attempts = 0;
    let deadline = Instant::now() + opts.negotiate;
    let mut budget = f64::from(opts.rate);
    let mut refilled = Instant::now();
    // The outstanding server ping (token, deadline) and the count of pings.
    let mut outstanding: Option<(String, Instant)> = None;
    // The token of the last ping answered (`pong_twice_accepted`).
    let mut answered: Option<String> = None;
    let mut pings = 0u32;
    let mut peer_gone = false;
    let last = loop {
        let negotiating = state.lock().unwrap().clients[&id].nick.is_none();
        let wait = match (negotiating, broken.deadline_per_line) {
            (false, _) => match (&outstanding, opts.ping_interval) {
                (Some((_, due)), _) => Some(due.saturating_duration_since(Instant::now())),
                (None, Some(interval)) => Some(interval),
                (None, None) => None,
            },
            (true, true) => Some(opts.negotiate),
            (true, false) => Some(deadline.saturating_duration_since(Instant::now())),
        };
        let _ = reader
            .get_ref()
            .set_read_timeout(wait.map(|w| w.max(Duration::from_millis(1))));
        let line = match next_line(&mut reader, broken) {
            Read1::End => {
                peer_gone = true;
                if broken.slow_close {
                    thread::sleep(LATE);
                }
                break Vec::new();
            }
            Read1::TimedOut if negotiating => break vec!["cquit negotiation timeout".into()],
            Read1::TimedOut => {
                if outstanding.is_some() {
                    break vec!["cquit ping timeout".into()];
                }
                outstanding = Some(server_ping(&out, id, &mut pings, opts));
                continue;
            }
            Read1::TooLong => {
                break vec![
                    "-ERR [PDU] line too long".into(),
                    if broken.other_choices {
                        "cquit line too long".into()
                    } else {
                        "cquit protocol violation".into()
                    },
                ];
            }
            Read1::Line(l) => l,
        };
        let Ok(text) = String::from_utf8(line) else {
            break vec![
                "-ERR [PDU] not UTF-8".into(),
                "cquit protocol violation".into(),
            ];
        };
        if text.bytes().any(|b| broken.forbidden(b)) {
            break vec![
                "-ERR [PDU] control character".into(),
                "cquit protocol violation".into(),
            ];
        }
        let text = text.replace('\t', " ");
        if text.trim().is_empty() {
            continue;
        }
        if opts.rate > 0 && !broken.rate_ignored {
            // A token bucket: past it, read nothing until it refills (or drop the line).
            let rate = f64::from(opts.rate);
            budget = (budget + refilled.elapsed().as_secs_f64() * rate).min(rate);
            refilled = Instant::now();
            if budget < 1.0 {
                if broken.rate_drops {
                    continue;
                }
                thread::sleep(Duration::from_secs_f64((1.0 - budget) / rate));
                budget = 1.0;
                refilled = Instant::now();
            }
            budget -= 1.0;
        }
        // Lines that keep coming do not keep a negotiation alive.
        if negotiating && !broken.deadline_per_line && Instant::now() >= deadline {
            break vec!["cquit negotiation timeout".into()];
        }
        // A pong answers the outstanding ping (established only).
        if !negotiating && opts.ping_interval.is_some() {
            let mut w = text.split(' ').filter(|w| !w.is_empty());
            if let (Some(ok), Some("pong")) = (w.next(), w.next())
                && ok.eq_ignore_ascii_case("+ok")
            {
                let tok = w.next().unwrap_or_default().to_string();
                match &outstanding {
                    Some((t, _)) if *t == tok => {
                        if !broken.pong_keeps_ping {
                            outstanding = None;
                        }
                        answered = Some(tok);
                        if broken.busy_after_pong && opts.ping_interval.is_some_and(|i| i <= LATE) {
                            // Busy for a moment; the ping timer, which runs on its own,
                            // fires meanwhile: its ping goes out before the lines that
                            // arrived in that moment are read.
                            thread::sleep(LATE);
                            outstanding = Some(server_ping(&out, id, &mut pings, opts));
                        }
                        continue;
                    }
                    None if broken.pong_twice_accepted && answered.as_ref() == Some(&tok) => {
                        continue;
                    }
                    _ => {
                        break vec![
                            format!("-ERR [STATE] pong {tok} answers no outstanding ping"),
                            "cquit protocol violation".into(),
                        ];
                    }
                }
            }
        }
        let mut s = state.lock().unwrap();
        let next = command(&mut s, id, peer.ip(), &text, &mut attempts, broken, opts);
        if let Next::Stay(lines) | Next::Close(lines) = &next
            && !lines.is_empty()
        {
            flush_owed(&mut s, id);
        }
        if s.owed.get(&id).is_some_and(|n| *n > 0) || s.held_back.keys().any(|k| k.0 == id) {
            // The late +OKs and held-back messages go out a moment later at the latest.
            let state = Arc::clone(state);
            thread::spawn(move || {
                thread::sleep(LATE);
                let mut s = state.lock().unwrap();
                flush_owed(&mut s, id);
                flush_held_back(&mut s, id, broken);
            });
        }
        match next {
            Next::Stay(lines) => send(&out, &lines),
            Next::Close(lines) => break lines,
        }
    };
    {
        let mut s = state.lock().unwrap();
        let hold = opts.hold && !(peer_gone && broken.no_hold_on_fault);
        // A violation is the only close that begins with an -ERR of an established client.
        let violation = last.first().is_some_and(|l| l.starts_with("-ERR"));
        let told = !(violation && broken.violation_not_notified);
        release(&mut s, id, peer.ip(), hold, told, broken, opts);
    }
    if broken.last_line_unterminated {
        let _ = (&out).write_all(last.join("\r\n").as_bytes());
    } else {
        send(&out, &last);
    }
    if broken.no_orderly_close {
        return; // Both handles drop here: unread input turns this into a reset.
    }
    let _ = out.shutdown(Shutdown::Write);
    if broken.fin_then_reset {
        return; // The same, one FIN later.
    }
    let mut inner = reader.into_inner();
    let _ = inner.set_read_timeout(Some(Duration::from_secs(2)));
    let mut sink = [0; 4096];
    while matches!(inner.read(&mut sink), Ok(n) if n > 0) {}
}

/// A server ping to connection `id`, the next of its `pings`: the token and when the
/// pong is due.
fn server_ping(out: &TcpStream, id: u64, pings: &mut u32, opts: Opts) -> (String, Instant) {
    *pings += 1;
    let token = format!("{id}.{pings}");
    send(out, &[format!("ping {token}")]);
    (token, Instant::now() + opts.ping_timeout)
}

/// How late `slow_close`, `late_relayed_ok`, `receipt_before_ok` and `busy_after_pong` are.
const LATE: Duration = Duration::from_secs(1);

/// The `+OK message relayed` lines owed to connection `id` go out now.
fn flush_owed(s: &mut State, id: u64) {
    let Some(n) = s.owed.remove(&id) else {
        return;
    };
    for p in s.pending.iter_mut().filter(|p| p.sid == id) {
        p.ok_owed = false;
    }
    if let Some(c) = s.clients.get(&id) {
        send(&c.out, &vec!["+OK message relayed".to_string(); n]);
    }
}

/// The direct messages from connection `id` that `swaps_messages` held back are relayed.
fn flush_held_back(s: &mut State, id: u64, broken: Broken) {
    let keys: Vec<(u64, u64)> = s.held_back.keys().filter(|k| k.0 == id).copied().collect();
    for k in keys {
        if let (Some(line), Some(c)) = (s.held_back.remove(&k), s.clients.get(&k.1)) {
            relay(&c.out, &line, broken);
        }
    }
}

/// The client leaves: its name is held for its address (unless `hold` is false: then it
/// is free at once), subscribers are told (unless `notify` is false).
fn release(
    s: &mut State,
    id: u64,
    ip: IpAddr,
    hold: bool,
    notify_them: bool,
    broken: Broken,
    opts: Opts,
) {
    let Some(c) = s.clients.remove(&id) else {
        return;
    };
    let lost = s.copies_lost.remove(&id).unwrap_or(0);
    let nick = if broken.hold_keeps_first_name {
        c.first.or(c.nick)
    } else {
        c.nick
    };
    if let Some(nick) = nick {
        // Its unreceipted messages, in the order relayed, become the name's mailbox (the
        // copies it still has; the forgotten ones are counted lost).
        let (mine, rest): (Vec<Pending>, _) = std::mem::take(&mut s.pending)
            .into_iter()
            .partition(|p| p.rid == id);
        s.pending = rest;
        let mailbox = mine.into_iter().filter(|p| !p.forgotten).collect();
        if hold {
            let key = nick.to_lowercase();
            // §5.7: an address at its bound loses its own oldest hold first.
            if let Some(max) = opts
                .max_holds_per_ip
                .filter(|_| !broken.holds_per_ip_ignored)
            {
                while s.holds.values().filter(|h| h.0 == ip).count() >= max {
                    let oldest = (s.holds.iter().filter(|(_, h)| h.0 == ip))
                        .min_by_key(|(n, _)| s.held_at.get(*n).copied().unwrap_or(0))
                        .map(|(n, _)| n.clone());
                    let Some(n) = oldest else { break };
                    end_hold(s, &n);
                }
            }
            s.holds.insert(key.clone(), (ip, mailbox));
            s.held_sessions.insert(id, key.clone());
            s.holds_taken += 1;
            let at = s.holds_taken;
            s.held_at.insert(key.clone(), at);
            if lost > 0 {
                *s.lost.entry(key.clone()).or_default() += lost;
            }
            if let Some(term) = opts.hold_for {
                s.held_until.insert(key, Instant::now() + term);
            }
        }
        if notify_them {
            notify(s, id, &format!("notif quit {nick}"));
        }
    }
}

/// A `chatm` to a held name goes into its mailbox (§5.8); past `total` the oldest held
/// mailbox is discarded, counted lost for its owner's return. Each line counts its bytes
/// with CR LF and the fake's bookkeeping: 32 bytes, as xscpd's, or 100 with
/// `other_choices` (§5.8 lets a server count what it spends).
fn hold_message(
    s: &mut State,
    sid: u64,
    from: &str,
    to: &str,
    line: String,
    (total, max): (usize, Option<usize>),
    broken: Broken,
) -> Next {
    let overhead = if broken.other_choices { 100 } else { 32 };
    let key = to.to_lowercase();
    let cost = |s: &State| -> usize {
        let lines = s.holds.values().flat_map(|h| &h.1);
        lines.map(|p| p.line.len() + 2 + overhead).sum()
    };
    if broken.room_before_fit {
        let extra = line.len() + 2 + overhead;
        while cost(s) + extra > total && discard_oldest(s, Some(&key)) {}
    }
    // Past `--mailbox` the line is refused, and nothing else changes (§5.8).
    let kept: usize = (s.holds.get(&key)).map_or(0, |h| h.1.iter().map(|p| p.line.len() + 2).sum());
    if max.is_some_and(|max| kept + line.len() + 2 > max) {
        return Next::Stay(vec![format!("-ERR [FULL] mailbox of {to} is full")]);
    }
    if let Some((_, mailbox)) = s.holds.get_mut(&key) {
        mailbox.push(Pending {
            sid,
            from: from.to_string(),
            rid: u64::MAX,
            line,
            ok_owed: false,
            forgotten: false,
        });
    }
    while cost(s) > total && discard_oldest(s, None) {}
    Next::Stay(vec![format!("+OK message held for {to}")])
}

/// Discards the oldest held mailbox that holds anything (not `except`'s), counted lost
/// for its owner's return; false if there is none.
fn discard_oldest(s: &mut State, except: Option<&str>) -> bool {
    let oldest = (s.holds.iter())
        .filter(|(n, h)| !h.1.is_empty() && Some(n.as_str()) != except)
        .min_by_key(|(n, _)| s.held_at.get(*n).copied().unwrap_or(0))
        .map(|(n, _)| n.clone());
    let Some(n) = oldest else {
        return false;
    };
    let dropped = (s.holds.get_mut(&n)).map_or(0, |h| std::mem::take(&mut h.1).len());
    *s.lost.entry(n).or_default() += dropped;
    true
}

/// A receipt for the departed connection `sid`: into its held name's mailbox if that
/// takes it within `max` bytes, else dropped and counted lost (§5.8); dropped if nothing
/// is held for it.
fn receipt_held(s: &mut State, sid: u64, line: String, max: Option<usize>, broken: Broken) {
    let Some(key) = s.held_sessions.get(&sid).cloned() else {
        return;
    };
    let Some((_, mailbox)) = s.holds.get_mut(&key) else {
        return;
    };
    let kept: usize = mailbox.iter().map(|p| p.line.len() + 2).sum();
    if max.is_some_and(|max| kept + line.len() + 2 > max) {
        if !broken.receipt_lost_uncounted {
            *s.lost.entry(key).or_default() += 1;
        }
        return;
    }
    mailbox.push(Pending {
        sid: u64::MAX,
        from: String::new(),
        rid: u64::MAX,
        line,
        ok_owed: false,
        forgotten: false,
    });
}

/// The hold on `key` ends: its mailbox and counts go with it.
fn end_hold(s: &mut State, key: &str) {
    s.holds.remove(key);
    s.held_at.remove(key);
    s.held_until.remove(key);
    s.lost.remove(key);
}

/// The holds whose term has passed end (unless `hold_never_expires`).
fn purge_holds(s: &mut State, broken: Broken) {
    if broken.hold_never_expires {
        return;
    }
    let now = Instant::now();
    let ended: Vec<String> = (s.held_until.iter())
        .filter(|(_, until)| **until <= now)
        .map(|(n, _)| n.clone())
        .collect();
    for n in ended {
        end_hold(s, &n);
    }
}

/// Past `max` bytes of copies kept for connection `rid`, the oldest are forgotten and
/// counted lost; they still await their receipts (§5.8).
fn forget_past(s: &mut State, rid: u64, max: usize) {
    let kept = |s: &State| -> usize {
        (s.pending.iter())
            .filter(|p| p.rid == rid && !p.forgotten)
            .map(|p| p.line.len() + 2)
            .sum()
    };
    while kept(s) > max {
        let Some(p) = (s.pending.iter_mut()).find(|p| p.rid == rid && !p.forgotten) else {
            break;
        };
        p.forgotten = true;
        *s.copies_lost.entry(rid).or_default() += 1;
    }
}

fn notify(s: &State, except: u64, line: &str) {
    for (cid, c) in &s.clients {
        if *cid != except && c.notif && c.nick.is_some() {
            send(&c.out, &[line.to_string()]);
        }
    }
}

fn find(s: &State, nick: &str) -> Option<u64> {
    s.clients.iter().find_map(|(id, c)| {
        c.nick
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(nick))
            .then_some(*id)
    })
}

/// A refusal; while negotiating a failed attempt, counted, the `max`th one fatal.
fn refusal(negotiating: bool, attempts: &mut u32, err: String, broken: Broken, max: u32) -> Next {
    if !negotiating {
        return Next::Stay(vec![err]);
    }
    *attempts += 1;
    let n = if broken.count_stuck { 1 } else { *attempts };
    let err = if broken.count_as_fraction {
        format!("{err} [{n}/{max}]")
    } else if broken.count_without_budget {
        format!("{err} (attempt {n})")
    } else if broken.no_attempt_count {
        err
    } else if broken.count_first {
        let (code, text) = err.split_once("] ").expect("-ERR [CODE] text");
        format!("{code}] (attempt {n} of {max}) {text}")
    } else {
        format!("{err} (attempt {n} of {max})")
    };
    if *attempts >= max {
        Next::Close(vec![err, "cquit too many failed attempts".into()])
    } else {
        Next::Stay(vec![err])
    }
}

fn violation(code: &str, text: &str) -> Next {
    Next::Close(vec![
        format!("-ERR [{code}] {text}"),
        "cquit protocol violation".into(),
    ])
}

fn command(
    s: &mut State,
    id: u64,
    ip: IpAddr,
    line: &str,
    attempts: &mut u32,
    broken: Broken,
    opts: Opts,
) -> Next {
    let single = broken.single_spaces;
    let (kw, rest) = token(line.trim_start_matches(' '), single);
    let args: Vec<&str> = if single {
        rest.split(' ').collect()
    } else {
        rest.split(' ').filter(|a| !a.is_empty()).collect()
    };
    let kw = kw.to_ascii_lowercase();
    purge_holds(s, broken);
    let me = s.clients.get(&id).and_then(|c| c.nick.clone());
    let state = if me.is_some() {
        "ESTABLISHED"
    } else {
        "NEGOTIATING"
    };
    let one = |l: String| Next::Stay(vec![l]);
    match (kw.as_str(), &me) {
        ("ping", _) => match args.first() {
            Some(t) if t.len() > 32 => refusal(
                me.is_none(),
                attempts,
                "-ERR [SYNTAX] token too long".into(),
                broken,
                opts.max_retries,
            ),
            Some(t) if !broken.no_pong_token => one(format!("+OK pong {t}")),
            _ => one("+OK pong".into()),
        },
        ("capa", _) => {
            let mut items = [
                "XSCP 1",
                "PDU 512",
                "RETRIES 3",
                "NEGOTIATE 30",
                "PING 60 20",
                "HOLD 300",
                "BROADCAST",
                "RECEIPTS",
                "USERS",
                "NOTIF",
            ]
            .map(String::from)
            .to_vec();
            if broken.other_choices {
                items.reverse();
                items.insert(3, "X-FAKE 1".into());
            }
            items.insert(0, "+OK capability list follows".into());
            items.push(".".into());
            Next::Stay(items)
        }
        ("cquit", Some(_)) if !args.is_empty() => one("-ERR [SYNTAX] cquit takes nothing".into()),
        ("cquit", _) => Next::Close(vec!["+OK terminating tasks and disconnecting".into()]),
        ("uname", None) => {
            let refused = match args.first() {
                None => Some("SYNTAX] uname: missing argument".to_string()),
                Some(n) if !valid_nick(n) => Some(format!("INVALID] bad nickname {n}")),
                Some(n)
                    if (!broken.no_in_use_check && find(s, n).is_some())
                        || s.holds.get(&n.to_lowercase()).is_some_and(|h| h.0 != ip) =>
                {
                    Some(format!("IN-USE] {n} is already taken by another client"))
                }
                Some(_) => None,
            };
            if let Some(r) = refused {
                return refusal(
                    true,
                    attempts,
                    format!("-ERR [{r}"),
                    broken,
                    opts.max_retries,
                );
            }
            let name = args[0].to_string();
            let back = s.holds.remove(&name.to_lowercase());
            if let Some(c) = s.clients.get_mut(&id) {
                c.nick = Some(name.clone());
                c.first = Some(name.clone());
            }
            notify(s, id, &format!("notif join {name}"));
            if let Some((_, mailbox)) = back {
                let lost = s.lost.remove(&name.to_lowercase()).unwrap_or(0);
                if mailbox.is_empty() && lost == 0 {
                    return one(format!("+OK welcome back {name}"));
                }
                // The replay, each message awaiting its receipt again.
                let mut lines = vec![format!(
                    "+OK welcome back {name} ({} held, {lost} lost)",
                    mailbox.len()
                )];
                for p in mailbox {
                    lines.push(p.line.clone());
                    // A replayed receipt awaits no receipt of its own.
                    if !p.line.starts_with("chatr ") {
                        s.pending.push(Pending { rid: id, ..p });
                    }
                }
                Next::Stay(lines)
            } else {
                one(format!("+OK you are {name}"))
            }
        }
        ("chatm", None) if broken.chatm_before_uname => one("+OK message relayed".into()),
        ("uname" | "cname" | "chatm" | "chatr" | "users" | "notif" | "+ok", _)
            if me.is_none() || kw == "uname" || kw == "+ok" =>
        {
            violation("STATE", &format!("{kw} is not allowed in {state}"))
        }
        ("cname", Some(old)) => match args.first() {
            None => one("-ERR [SYNTAX] cname: missing argument".into()),
            Some(n) if !valid_nick(n) => one("-ERR [INVALID] bad nickname".into()),
            Some(n)
                if find(s, n).is_some_and(|other| other != id)
                    || s.holds
                        .get(&n.to_lowercase())
                        .is_some_and(|h| !(broken.cname_takes_own_hold && h.0 == ip)) =>
            {
                one(format!(
                    "-ERR [IN-USE] {n} is already taken by another client"
                ))
            }
            Some(n) => {
                let new = n.to_string();
                if let Some(c) = s.clients.get_mut(&id) {
                    c.nick = Some(new.clone());
                }
                if broken.cname_holds_old && opts.hold {
                    s.holds.insert(old.to_lowercase(), (ip, Vec::new()));
                    s.holds_taken += 1;
                    let at = s.holds_taken;
                    s.held_at.insert(old.to_lowercase(), at);
                }
                let except = if broken.notifies_self { u64::MAX } else { id };
                notify(s, except, &format!("notif cname {old} {new}"));
                one(format!("+OK name changed from {old} to {new}"))
            }
        },
        ("chatm", Some(me)) => {
            let (from, after) = token(rest, single);
            let (to, text) = token(after, single);
            if to.is_empty() {
                return one("-ERR [SYNTAX] chatm: sender, recipient and text".into());
            }
            if text.is_empty() {
                return one("-ERR [SYNTAX] chatm: empty text".into());
            }
            if !from.eq_ignore_ascii_case(me) && !broken.no_spoof_check {
                return violation("SPOOF", &format!("{from} is not your nickname"));
            }
            let relayed = format!("chatm {from} {to} {text}");
            if to == "*" {
                flush_owed(s, id);
                let me_out = &s.clients[&id].out;
                send(me_out, &["+OK message relayed".into()]);
                for (cid, c) in &s.clients {
                    if *cid != id && c.nick.is_some() {
                        relay(&c.out, &relayed, broken);
                    }
                }
                return Next::Stay(Vec::new());
            }
            let Some(rid) = find(s, to) else {
                // With a mailbox option the fake has mailboxes (§5.8).
                let total = (opts.mailbox_total).or_else(|| opts.mailbox.map(|_| usize::MAX));
                if let (Some(total), Some(_)) = (total, s.holds.get(&to.to_lowercase())) {
                    let bounds = (total, opts.mailbox);
                    return hold_message(s, id, from, to, relayed, bounds, broken);
                }
                return one(format!("-ERR [NO-SUCH] no such user {to}"));
            };
            let late = broken.receipt_before_ok
                || (broken.late_relayed_ok
                    && s.pending.iter().any(|p| p.sid == id && p.rid == rid));
            if broken.swaps_messages {
                match s.held_back.remove(&(id, rid)) {
                    Some(older) => {
                        relay(&s.clients[&rid].out, &relayed, broken);
                        relay(&s.clients[&rid].out, &older, broken);
                    }
                    None => {
                        s.held_back.insert((id, rid), relayed.clone());
                    }
                }
            } else {
                relay(&s.clients[&rid].out, &relayed, broken);
            }
            if late {
                *s.owed.entry(id).or_default() += 1;
            } else {
                flush_owed(s, id);
                send(&s.clients[&id].out, &["+OK message relayed".into()]);
            }
            s.pending.push(Pending {
                sid: id,
                from: from.to_string(),
                rid,
                line: relayed,
                ok_owed: late,
                forgotten: false,
            });
            if let Some(max) = opts.mailbox {
                forget_past(s, rid, max);
            }
            Next::Stay(Vec::new())
        }
        ("chatr", Some(me)) => {
            let (Some(from), Some(to)) = (args.first(), args.get(1)) else {
                return one("-ERR [SYNTAX] chatr: sender and recipient".into());
            };
            if *to != "*" && !to.eq_ignore_ascii_case(me) {
                return violation("SPOOF", &format!("{to} is not your nickname"));
            }
            if *to == "*" && broken.other_choices {
                return one("+OK receipt for a broadcast accepted".into());
            }
            if *to == "*" {
                return Next::Stay(Vec::new());
            }
            let awaits = |p: &Pending| p.rid == id && p.from.eq_ignore_ascii_case(from);
            let found = if broken.receipt_frees_newest {
                s.pending.iter().rposition(awaits)
            } else {
                s.pending.iter().position(awaits)
            };
            let Some(i) = found else {
                return one(format!(
                    "-ERR [NO-SUCH] no message from {from} awaits a receipt"
                ));
            };
            let p = s.pending.remove(i);
            if p.forgotten && !broken.lost_not_decremented {
                // The receipt proves it delivered (§5.8).
                if let Some(n) = s.copies_lost.get_mut(&id) {
                    *n = n.saturating_sub(1);
                }
            }
            // Its +OK first (unless the receipt is to overtake it).
            if p.ok_owed && !broken.receipt_before_ok {
                flush_owed(s, p.sid);
            }
            let receipt = format!("chatr {from} {to}");
            match s.clients.get(&p.sid) {
                Some(c) => relay(&c.out, &receipt, broken),
                None => receipt_held(s, p.sid, receipt, opts.mailbox, broken),
            }
            if broken.receipt_before_ok {
                flush_owed(s, p.sid);
            }
            Next::Stay(Vec::new())
        }
        ("users", Some(_)) => {
            let mut names: Vec<String> =
                s.clients.values().filter_map(|c| c.nick.clone()).collect();
            if broken.users_lists_held {
                names.extend(s.holds.keys().cloned());
            }
            names.sort();
            if broken.users_repeats_own_name {
                names.fill(me.clone().unwrap_or_default());
            }
            if broken.users_trickle {
                let out = s.clients[&id].out.try_clone().expect("clone");
                let name = me.clone().unwrap_or_default();
                send(&out, &["+OK 1 users".into()]);
                thread::spawn(move || {
                    loop {
                        thread::sleep(Duration::from_millis(500));
                        if (&out).write_all(format!("{name}\r\n").as_bytes()).is_err() {
                            return;
                        }
                    }
                });
                return Next::Stay(Vec::new());
            }
            let mut lines = vec![format!("+OK {} users", names.len())];
            lines.extend(names);
            if broken.users_lists_own_twice {
                lines.extend(me.clone());
            }
            lines.push(".".into());
            Next::Stay(lines)
        }
        ("notif", Some(_)) => match args.first().copied() {
            Some(v @ ("on" | "off")) => {
                if let Some(c) = s.clients.get_mut(&id) {
                    c.notif = v == "on";
                }
                one(format!("+OK notifications {v}"))
            }
            _ => one("-ERR [SYNTAX] notif on|off".into()),
        },
        _ => refusal(
            me.is_none(),
            attempts,
            "-ERR [SYNTAX] unknown command".into(),
            broken,
            opts.max_retries,
        ),
    }
}

/// The first token of `s` and the rest after the spaces that follow it (exactly one
/// with `single`).
fn token(s: &str, single: bool) -> (&str, &str) {
    match s.split_once(' ') {
        Some((t, rest)) if single => (t, rest),
        Some((t, rest)) => (t, rest.trim_start_matches(' ')),
        None => (s, ""),
    }
}
