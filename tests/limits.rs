//! Resource limits of xscp(7) §7: `--max-clients`, `--max-per-ip`, `--sendq`, `--rate`,
//! the bounded receipts and holds of the hub (§5, §5.7), running out of descriptors and of
//! threads, and the longest duration an option takes.
//!
//! Every wait is for an event (a line, end of stream, a log line) with a generous bound;
//! nothing here sleeps to synchronise or asserts on timing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use crate::harness::{
    BYE, Client, GREETING, Server, any_conn_closed, open_fds, poll_until, run_xscpd, thread_wchan,
    try_run,
};

const FULL: &str = "-ERR [FULL] server full";
const CQUIT_FULL: &str = "cquit server full";

/// §7 `--max-clients`: the client over the limit, from any address, gets `-ERR [FULL]
/// server full`, then `cquit server full`, then end of stream, without having to send
/// anything; a client still negotiating holds a place too. The place is free again as soon
/// as a client has left (its `-> CLOSED on close` line), and then only one more client
/// fits.
#[test]
fn max_clients_refuses_the_extra_client_and_frees_the_place_on_close() {
    let server = Server::start(&["--max-clients", "3", "--hold", "0"]);
    let ann = server.register("ann");
    let mut ben = server.register("ben");
    let mut waiting = server.connect().greeted();
    assert!(waiting.nothing_pending());

    let mut extra = server.connect();
    extra.expect_close(&[FULL, CQUIT_FULL]);
    server.wait_log(|l| l.contains(&extra.peer()) && l.contains("refused: server full"));
    let mut elsewhere = server.connect_from("127.0.0.2");
    elsewhere.expect_close(&[FULL, CQUIT_FULL]);

    server.quit(ann);

    let mut dan = server.register("dan");
    let mut extra = server.connect();
    extra.expect_close(&[FULL, CQUIT_FULL]);

    // The admitted clients are unaffected by the refusals.
    ben.send("chatm ben dan still here");
    ben.expect("+OK message relayed");
    dan.expect("chatm ben dan still here");
    assert!(waiting.nothing_pending());
}

/// §7 `--max-per-ip`: a client over the per-address limit gets the same refusal (its text
/// starts `-ERR [FULL] server full`), while a client from another address is admitted; once
/// a client of the address has left, the address is admitted again.
#[test]
fn max_per_ip_refuses_the_address_but_not_another() {
    let server = Server::start(&["--max-per-ip", "2", "--hold", "0"]);
    let ann = server.register("ann");
    let _ben = server.register("ben");

    let mut extra = server.connect();
    let first = extra.line();
    assert!(
        first.starts_with(FULL),
        "refusal from the same address: {first:?}"
    );
    assert_eq!(extra.until_eof(), [CQUIT_FULL]);
    server.wait_log(|l| {
        l.contains(&extra.peer()) && l.contains("refused: server full (too many connections")
    });

    let mut other = server.connect_from("127.0.0.2");
    other.expect(GREETING);
    other.send("uname cat");
    other.expect("+OK you are cat");

    server.quit(ann);
    let mut again = server.register("dan");
    assert!(again.nothing_pending());
}

/// §7 admission is exact under races: 8 threads connecting and disconnecting 50 times each
/// (by `cquit`, by close and by reset) against `--max-clients 4`. Every client is either
/// admitted (greeting) or refused (`-ERR [FULL]`, `cquit`, end of stream); once every
/// admitted connection has logged its close, exactly 4 new clients are admitted and the
/// fifth is refused: no place leaked or was counted twice.
#[test]
fn admission_counts_stay_exact_under_connect_and_disconnect_races() {
    const MAX: usize = 4;
    const THREADS: usize = 8;
    const CYCLES: usize = 50;
    let server = Server::start(&["--max-clients", "4", "--hold", "0", "--max-per-ip", "0"]);
    let admitted = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (server, admitted, refused) = (&server, &admitted, &refused);
            s.spawn(move || {
                for i in 0..CYCLES {
                    let mut c = server.connect();
                    let first = c.line();
                    if first != GREETING {
                        assert_eq!(first, FULL);
                        assert_eq!(c.until_eof(), [CQUIT_FULL]);
                        refused.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    admitted.fetch_add(1, Ordering::SeqCst);
                    match (t + i) % 3 {
                        0 => {
                            c.send(&format!("uname r{t}x{i}"));
                            c.expect(&format!("+OK you are r{t}x{i}"));
                            c.send("cquit");
                            c.expect_close(&[BYE]);
                        }
                        1 => drop(c),
                        _ => c.reset(),
                    }
                }
            });
        }
    });
    let (admitted, refused) = (admitted.into_inner(), refused.into_inner());
    assert_eq!(admitted + refused, THREADS * CYCLES);
    assert!(
        refused > 0,
        "no client was ever refused: the race never reached the limit"
    );
    server.wait_log_count(admitted, any_conn_closed);
    server.wait_log_count(refused, |l| l.contains("refused: server full"));

    let mut kept: Vec<Client> = (0..MAX)
        .map(|i| server.register(&format!("f{i}")))
        .collect();
    let mut extra = server.connect();
    extra.expect_close(&[FULL, CQUIT_FULL]);
    for c in &mut kept {
        assert!(c.nothing_pending());
    }
    let log = server.log();
    assert_eq!(
        log.iter().filter(|l| any_conn_closed(l)).count(),
        admitted,
        "more closes than admitted clients"
    );
}

/// §7 `--sendq` (slow consumer, broadcast flood): a client that never reads is dropped as a
/// slow consumer once its queued output passes the limit (log `slow consumer`) while
/// another client floods numbered broadcasts. A third client that reads receives every
/// broadcast, in order, and keeps chatting with the flooder meanwhile; the flooder gets a
/// `+OK` for every broadcast. The flood goes in rounds of 50 broadcasts, each round read
/// by the flooder and the third client before the next, so that only the client that does
/// not read falls behind (a flood faster than any reader would rightly drop every client).
#[test]
fn sendq_drops_a_client_that_does_not_read_and_nobody_else() {
    const ROUND: usize = 50;
    const MAX_ROUNDS: usize = 2000; // 100 000 broadcasts, 32 MB: far past any buffering.
    let server = Server::start(&["--sendq", "64K", "--hold", "0"]);
    let sink = server.register("sink");
    let mut flood = server.register("flood");
    let mut carol = server.register("carol");
    let sink_tag = sink.peer();
    let padding = "x".repeat(300);
    let sink_dropped = |server: &Server| {
        server
            .log()
            .iter()
            .any(|l| l.contains(&sink_tag) && l.contains("dropping slow consumer"))
    };

    let mut n = 0;
    let mut rounds = 0;
    while !sink_dropped(&server) {
        assert!(rounds < MAX_ROUNDS, "no slow consumer after {n} broadcasts");
        let batch: String = (n..n + ROUND)
            .map(|i| format!("chatm flood * b{i} {padding}\r\n"))
            .collect();
        flood.send_raw(batch.as_bytes());
        for _ in 0..ROUND {
            flood.expect("+OK message relayed");
        }
        for i in n..n + ROUND {
            carol.expect(&format!("chatm flood * b{i} {padding}"));
        }
        carol.send(&format!("chatm carol flood c{rounds}"));
        carol.expect("+OK message relayed");
        flood.expect(&format!("chatm carol flood c{rounds}"));
        n += ROUND;
        rounds += 1;
    }
    server.wait_log(|l| {
        l.contains(&sink_tag) && l.contains("-> ABORTED on connection_error cause=slow consumer")
    });
    server.wait_closed(&sink_tag);
    // Nobody else was dropped, and both still talk.
    assert!(
        !server
            .log()
            .iter()
            .any(|l| !l.contains(&sink_tag) && l.contains("slow consumer")),
        "another client was dropped too"
    );
    flood.send("chatm flood * after");
    flood.expect("+OK message relayed");
    carol.expect("chatm flood * after");
    assert!(flood.nothing_pending());
    assert!(carol.nothing_pending());
    // The sink gets what was written before the cut, then end of stream.
    let mut sink = sink;
    let rest = sink.drain();
    assert!(rest.starts_with(b"chatm flood * b0 "));
}

/// §7 `--rate`: flood control by backpressure. With `--rate 20`, 60 pipelined pings all get
/// their pongs, in order (nothing dropped), the limiter did engage (log `over --rate`), and
/// `capa` reports `RATE 20`.
#[test]
fn rate_limit_slows_a_flood_without_dropping_anything() {
    let server = Server::start(&["--rate", "20"]);
    let mut c = server.register("fast");
    c.send("capa");
    let (first, caps) = c.multiline();
    assert_eq!(first, "+OK capability list follows");
    assert!(caps.iter().any(|l| l == "RATE 20"), "capa: {caps:?}");

    let pings: String = (0..60).map(|i| format!("ping t{i}\r\n")).collect();
    c.send_raw(pings.as_bytes());
    for i in 0..60 {
        c.expect(&format!("+OK pong t{i}"));
    }
    server.wait_log(|l| l.contains(&c.peer()) && l.contains("over --rate 20: reading paused"));
    assert!(c.nothing_pending());
}

/// §7 `--rate` and §5 ping: a client whose lines wait for the budget is not silent, and
/// nothing is dropped. With `--rate 5`, `--ping-interval 1s` and `--ping-timeout 1s`, 20
/// pipelined pings take the server 4 s to answer; the client answers any ping of the
/// server's at once all the while. It gets its 20 pongs and stays connected (before, the
/// server pinged it while it worked through the pings, and its pong, read only after them,
/// came too late: `cquit ping timeout`).
#[test]
fn a_client_over_its_rate_is_not_pinged_for_the_lines_it_waits_to_have_read() {
    let server = Server::start(&[
        "--rate",
        "5",
        "--ping-interval",
        "1s",
        "--ping-timeout",
        "1s",
    ]);
    let mut c = server.register("paced");
    let pings: String = (0..20).map(|i| format!("ping t{i}\r\n")).collect();
    c.send_raw(pings.as_bytes());
    let mut i = 0;
    while i < 20 {
        let line = c.line();
        if let Some(token) = line.strip_prefix("ping ") {
            c.send(&format!("+OK pong {token}"));
            continue;
        }
        assert_eq!(line, format!("+OK pong t{i}"));
        i += 1;
    }
    assert!(c.nothing_pending_but_pings());
    assert!(!server.logged("ping timeout"), "the client was timed out");
}

/// §7 `--rate` and §5.1's negotiation deadline: lines read ahead wait for the budget, the
/// deadline does not. At `--rate 1`, 40 pipelined pings in NEGOTIATING would take 40 s to
/// answer; the 1 s deadline ends the connection after the first few (before, the pings of
/// one read were all answered first: 13, the deadline 12 s late). The same holds for a
/// shutdown: the throttled reader sees it without working through the pings.
#[test]
fn a_client_over_its_rate_still_meets_the_negotiation_deadline() {
    let server = Server::start(&["--rate", "1", "--negotiate-timeout", "1s"]);
    let mut c = server.connect().greeted();
    let pings: String = (0..40).map(|i| format!("ping t{i}\r\n")).collect();
    c.send_raw(pings.as_bytes());
    let lines = c.until_eof();
    let (last, pongs) = lines.split_last().expect("lines before the close");
    assert_eq!(last, "cquit negotiation timeout", "{lines:?}");
    assert!(pongs.len() < 5, "{} pongs before the deadline", pongs.len());
    assert!(
        pongs.iter().all(|l| l.starts_with("+OK pong t")),
        "{pongs:?}"
    );
}

/// §5.7: held names are bounded in number, oldest dropped first (the hub keeps at most
/// `max(4 × --max-clients, 1024)` = 1024 here, and no more per address). 1025 clients
/// from 127.0.0.1 register and leave: the first name's hold is gone (127.0.0.2 may take
/// it), the second's is not (`IN-USE` for 127.0.0.2, `welcome back` for 127.0.0.1).
#[test]
fn name_holds_are_bounded_oldest_first() {
    const HOLDS: usize = 1024;
    let server = Server::start(&[
        "--max-clients",
        "256",
        "--max-per-ip",
        "0",
        "--max-holds-per-ip",
        "2000",
    ]);
    for i in 0..=HOLDS {
        // `cquit` and end of stream: the hub has handled the departure (and made the hold)
        // before the next registration reaches it.
        let mut c = server.register(&format!("h{i}"));
        c.send("cquit");
        c.expect_close(&[BYE]);
    }
    let mut other = server.connect_from("127.0.0.2");
    other.expect(GREETING);
    other.send("uname h1");
    other.expect("-ERR [IN-USE] h1 is already taken by another client (attempt 1 of 3)");
    other.send("uname h0");
    other.expect("+OK you are h0");

    let mut same = server.connect();
    same.expect(GREETING);
    same.send("uname h1");
    same.expect("+OK welcome back h1");
}

/// §7 out of file descriptors: under `prlimit --nofile=40:40`, more clients than the
/// server has descriptors. The log shows the accept failure and the refusal; the clients
/// it cannot take get `-ERR [FULL] server full (out of resources)`, `cquit server full`
/// and end of stream; the server neither crashes nor spins (one `accept failed` line per
/// refusal, plus at most one while it waits, instead of a stream of them); after the
/// clients close, a new client is served normally.
#[test]
fn out_of_descriptors_refuses_one_client_at_a_time_and_recovers() {
    const NOFILE: usize = 40;
    let server = Server::spawn(
        &["prlimit", &format!("--nofile={NOFILE}:{NOFILE}"), "--"],
        &["--max-per-ip", "0", "--hold", "0"],
        &[],
    );
    // One client served first: the acceptor is running and its reserve is open.
    let first = server.register("first");
    let free = NOFILE.saturating_sub(open_fds(server.pid()));
    let clients: Vec<Client> = (0..free + 8).map(|_| server.connect()).collect();
    let (mut admitted, mut refused) = (vec![first], 0usize);
    for mut c in clients {
        let line = c.line();
        if line == GREETING {
            admitted.push(c);
        } else {
            assert_eq!(line, "-ERR [FULL] server full (out of resources)");
            assert_eq!(c.until_eof(), [CQUIT_FULL]);
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "nobody was refused: the server had descriptors left"
    );
    server.wait_log_count(refused, |l| {
        l.contains("refused: server full (out of resources)")
    });
    server.wait_log(|l| l.contains("accept failed") && l.contains("refusing one client"));

    // Resources stay short until the acceptor is parked: blocked waiting for the next
    // client rather than in its back-off pause (its kernel wait channel, which has no
    // event). Then the clients leave, so that descriptors are free again before the next
    // client arrives, whatever the acceptor was doing.
    let pid = server.pid();
    let parked = poll_until("the acceptor to wait for clients", || {
        let w = thread_wchan(pid, "xscp-accept")?;
        (w != "0" && !w.contains("sleep")).then_some(w)
    });
    let failures = server
        .log()
        .iter()
        .filter(|l| l.contains("accept failed"))
        .count();
    assert!(
        failures <= refused + 1,
        "{failures} accept failures for {refused} refusals: the acceptor spins"
    );
    let n = admitted.len();
    for c in &mut admitted {
        assert!(c.nothing_pending());
    }
    drop(admitted);
    server.wait_log_count(n, any_conn_closed);
    poll_until("the descriptors to be released", || {
        (open_fds(pid) < NOFILE - 8).then_some(())
    });

    let mut again = server.connect();
    let line = again.line();
    assert_eq!(
        line,
        GREETING,
        "a client after the others closed ({} descriptors open, acceptor waiting in {parked})",
        open_fds(pid)
    );
    again.send("uname again");
    again.expect("+OK you are again");
    let mut other = server.register("other");
    other.send("chatm other again hello");
    other.expect("+OK message relayed");
    again.expect("chatm other again hello");
}

/// §7 slow consumer: a queue past `--sendq` only because the server's own writer has not
/// run yet is no reason to drop a client that reads. A receiver with a large receive
/// buffer reads as fast as it can (on its own thread) while a sender pipelines 20 000
/// `chatm` to it in one go, with `--sendq 4K`: the sender gets `+OK message relayed` for
/// every one and the receiver gets every one, in order; nobody is dropped.
#[test]
fn sendq_does_not_drop_a_receiver_that_reads_a_pipelined_flood() {
    const N: usize = 20_000;
    let server = Server::start(&["--sendq", "4K", "--hold", "0"]);
    let mut rx = server.connect_with_rcvbuf("127.0.0.1", 4 << 20).greeted();
    rx.send("uname rx");
    rx.expect("+OK you are rx");
    let mut tx = server.register("tx");
    let receiver = thread::spawn(move || {
        for i in 0..N {
            match rx.try_line() {
                Some(line) => assert_eq!(line, format!("chatm tx rx m{i}")),
                None => return i,
            }
        }
        N
    });
    let flood: String = (0..N).map(|i| format!("chatm tx rx m{i}\r\n")).collect();
    let mut out = tx.writer();
    let sender = thread::spawn(move || out.write_all(flood.as_bytes()).expect("flood"));
    for i in 0..N {
        let line = tx.line();
        assert_eq!(line, "+OK message relayed", "reply to message {i}");
    }
    sender.join().expect("sender thread");
    let received = receiver.join().expect("receiver thread");
    assert_eq!(
        received, N,
        "the receiver got {received} of {N} relayed messages"
    );
    assert!(!server.logged("slow consumer"), "a client was dropped");
}

/// `tx` pipelines full-length `chatm` lines to `to` (a nickname or `*`), more than the
/// kernel's buffers hold (at most `tcp_wmem`'s maximum), so that queues build up in the
/// server, while each of `receivers` (with a small receive buffer) reads on at its own
/// pace: 100 lines, then a pause of the given milliseconds (far under the 100 ms a socket
/// may take nothing). Every message is relayed and received by each in order, and nobody
/// is dropped as a slow consumer.
fn flood_paced_receivers(server: &Server, to: &str, receivers: &[(&str, u64)]) {
    let wmem_max: usize = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20);
    let n = (wmem_max + (2 << 20)) / 512;
    // `chatm tx <to> ` + this: at most 510 bytes, a full PDU for a two-letter name.
    let text = |i: usize| format!("{i:08}{}", "x".repeat(490));
    let to = to.to_string();
    let line = move |i: usize| format!("chatm tx {to} {}", text(i));
    let readers: Vec<_> = receivers
        .iter()
        .map(|&(nick, pause)| {
            let mut rx = server.connect_with_rcvbuf("127.0.0.1", 4096).greeted();
            rx.send(&format!("uname {nick}"));
            rx.expect(&format!("+OK you are {nick}"));
            let line = line.clone();
            thread::spawn(move || {
                for i in 0..n {
                    match rx.try_line() {
                        Some(got) => assert_eq!(got, line(i)),
                        None => return i,
                    }
                    if i % 100 == 99 {
                        // Sets the receiver's pace; it synchronises nothing.
                        thread::sleep(std::time::Duration::from_millis(pause));
                    }
                }
                n
            })
        })
        .collect();
    let mut tx = server.register("tx");
    let flood: String = (0..n).map(|i| line(i) + "\r\n").collect();
    let mut out = tx.writer();
    let sender = thread::spawn(move || out.write_all(flood.as_bytes()));
    for i in 0..n {
        let line = tx.line();
        assert_eq!(line, "+OK message relayed", "reply to message {i} of {n}");
    }
    sender.join().expect("sender thread").expect("flood");
    for (reader, (nick, _)) in readers.into_iter().zip(receivers) {
        let received = reader.join().expect("receiver thread");
        assert_eq!(received, n, "{nick} got {received} of {n} messages");
    }
    assert!(!server.logged("slow consumer"), "a client was dropped");
}

/// §7 slow consumer: a relay that leaves its recipient over `--sendq` holds the sender
/// back, so a fast sender cannot push a reading recipient past the hard bound (4 x
/// `--sendq`), however small `--sendq` is: the commands a sender has with the hub when its
/// recipient passes `--sendq` must fit under the hard bound. With `--sendq 1K`, one
/// receiver reading at its pace gets a full-length flood (see [`flood_paced_receivers`]).
#[test]
fn a_full_length_flood_does_not_push_a_reading_receiver_past_the_hard_bound() {
    let server = Server::start(&["--sendq", "1K", "--hold", "0"]);
    flood_paced_receivers(&server, "rx", &[("rx", 10)]);
}

/// §7 slow consumer: a broadcast holds its sender back until every recipient it left over
/// `--sendq` is back under it, not only the first: two receivers reading at different
/// paces (10 and 20 ms a hundred lines) get a full-length broadcast flood with `--sendq
/// 4K`, and neither is pushed past the hard bound while the sender waits for the other.
#[test]
fn a_broadcast_flood_holds_its_sender_back_for_every_reading_receiver() {
    let server = Server::start(&["--sendq", "4K", "--hold", "0"]);
    flood_paced_receivers(&server, "*", &[("r1", 10), ("r2", 20)]);
}

/// §7: a response to the client's own command never makes it a slow consumer by itself:
/// with `--sendq 1K`, `users` with 100 users of 16-character names (about 1.8 KB) is
/// answered in full and the asker stays connected.
#[test]
fn a_users_list_longer_than_sendq_is_answered() {
    const USERS: usize = 100;
    let server = Server::start(&["--sendq", "1K", "--max-per-ip", "200"]);
    let others: Vec<Client> = (0..USERS - 1)
        .map(|i| server.register(&format!("user{i:012}")))
        .collect();
    let mut asker = server.register("askerxxxxxxxxxxx");
    asker.send("users");
    let (first, names) = asker.multiline();
    assert_eq!(first, format!("+OK {USERS} users"));
    assert_eq!(names.len(), USERS);
    assert!(asker.nothing_pending());
    assert!(!server.logged("slow consumer"), "a client was dropped");
    drop(others);
}

/// §7: responses never drop their asker by themselves, but a client that pipelines
/// commands and never reads the replies is still a slow consumer: its replies pile up past
/// `--sendq` while its socket takes no more, and it is dropped (log `dropping slow
/// consumer`), while another client is served meanwhile.
#[test]
fn a_client_that_never_reads_its_replies_is_still_dropped() {
    let server = Server::start(&["--sendq", "1K", "--ping-timeout", "2s"]);
    let mut deaf = server.connect_with_rcvbuf("127.0.0.1", 4096).greeted();
    deaf.send("uname deaf");
    deaf.expect("+OK you are deaf");
    let peer = deaf.peer();
    let mut out = deaf.writer();
    let pings = "ping xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n".repeat(1000);
    let flood = thread::spawn(move || {
        // Until the server cuts the connection.
        while out.write_all(pings.as_bytes()).is_ok() {}
    });
    server.wait_peer_log(&peer, "dropping slow consumer");
    server.wait_closed(&peer);
    flood.join().expect("flood thread");
    let mut other = server.register("other");
    assert!(other.nothing_pending());
}

/// An IPv4 client of an IPv6 listener is known by its IPv4 address (`::ffff:127.0.0.1` is
/// 127.0.0.1): in the log, for the per-address limits and for its name's hold, so that
/// the same client is the same address whatever the listener (and across a restart on
/// another one).
#[test]
fn an_ipv4_client_of_an_ipv6_listener_is_known_by_its_ipv4_address() {
    let server = Server::start(&["-l", "[::ffff:127.0.0.1]:0"]);
    let mut c = server.connect();
    c.expect(GREETING);
    let local = c.peer();
    let port = local
        .trim_end()
        .rsplit(':')
        .next()
        .expect("a port")
        .to_string();
    c.send("uname alice");
    c.expect("+OK you are alice");
    c.send("cquit");
    c.expect_close(&[BYE]);
    let tag = format!("peer=127.0.0.1:{port} ");
    server.wait_log(|l| l.contains(&tag) && l.contains("name alice held for 127.0.0.1 "));
    // (The listener's own lines name the address it listens on.)
    let mapped = server
        .log()
        .into_iter()
        .find(|l| l.contains("conn=") && l.contains("::ffff:"));
    assert_eq!(mapped, None, "a client known by its mapped address");
}

/// §7 out of threads: the server runs as an unprivileged user under `prlimit --nproc`, so
/// that the kernel lets it have few threads; [`refuses_then_serves_a_burst`] shows what a
/// client sees. Before, the readers took every thread the system allowed, the writer could
/// not start and the client that reads was cut (log `cannot start its writer thread`).
/// Needs root and `setpriv` (to run the server as another user: the limit does not hold
/// for root); skipped otherwise.
#[test]
fn out_of_threads_refuses_new_clients_and_never_cuts_one_that_reads() {
    const NPROC: usize = 24;
    // A user of its own, so that no other process counts against its limit.
    let Some((_, as_user)) = as_a_user_of_its_own(0) else {
        eprintln!("skipped: running the server as another user needs root and setpriv");
        return;
    };
    let server = under_nproc(NPROC, &as_user);
    refuses_then_serves_a_burst(&server, NPROC);
}

/// The server, run by `as_user` (from [`as_a_user_of_its_own`]) under `RLIMIT_NPROC`
/// `nproc`.
fn under_nproc(nproc: usize, as_user: &[String]) -> Server {
    let limit = format!("--nproc={nproc}:{nproc}");
    let as_user: Vec<&str> = as_user.iter().map(String::as_str).collect();
    Server::spawn(
        &[&["prlimit", &limit, "--"], &as_user[..]].concat(),
        &THREADS_ARGS,
        &[],
    )
}

/// The command prefix that runs a program as a user of this test's own (`setpriv`), and
/// its id, or `None` where that cannot be done (not root, no `setpriv`). `salt` makes the
/// user differ between tests that run at once.
fn as_a_user_of_its_own(salt: u32) -> Option<(u32, Vec<String>)> {
    let uid = 40_000 + (std::process::id() + salt * 7_919) % 20_000;
    let as_user = vec![
        "setpriv".to_string(),
        format!("--reuid={uid}"),
        format!("--regid={uid}"),
        "--clear-groups".to_string(),
    ];
    let args: Vec<&str> = as_user[1..]
        .iter()
        .map(String::as_str)
        .chain(["true"])
        .collect();
    try_run(&as_user[0], &args, &[])
        .is_ok_and(|out| out.status.success())
        .then_some((uid, as_user))
}

/// Processes that end when dropped.
struct Sleepers(Vec<std::process::Child>);

impl Drop for Sleepers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// §7 out of threads, as [`out_of_threads_refuses_new_clients_and_never_cuts_one_that_reads`],
/// with other processes of the server's user running: the kernel counts their tasks
/// against the user's limit too. Before, the budget ignored them: with 6 of the 24 tasks
/// taken, the readers took more threads than were left and the writer of a client that
/// reads could not start (the client was cut).
#[test]
fn out_of_threads_counts_the_users_other_processes() {
    const NPROC: usize = 24;
    const OTHERS: usize = 6;
    let Some((uid, as_user)) = as_a_user_of_its_own(1) else {
        eprintln!("skipped: running the server as another user needs root and setpriv");
        return;
    };
    let sleepers = Sleepers(
        (0..OTHERS)
            .map(|_| {
                std::process::Command::new(&as_user[0])
                    .args(&as_user[1..])
                    .args(["sleep", "600"])
                    .spawn()
                    .expect("a process of the user")
            })
            .collect(),
    );
    // Each counts once it runs as the user (setpriv changes its ids, then runs sleep).
    let deadline = std::time::Instant::now() + crate::harness::WAIT;
    for c in &sleepers.0 {
        let status = format!("/proc/{}/status", c.id());
        let theirs = format!("Uid:\t{uid}\t");
        while !std::fs::read_to_string(&status).is_ok_and(|s| s.contains(&theirs)) {
            assert!(
                std::time::Instant::now() < deadline,
                "{status} never showed uid {uid}"
            );
            thread::yield_now();
        }
    }
    let server = under_nproc(NPROC, &as_user);
    refuses_then_serves_a_burst(&server, NPROC);
    drop(server);
    drop(sleepers);
}

/// §7 out of threads under a cgroup's task limit (`pids.max`, systemd's `TasksMax=`): the
/// server runs in a cgroup of its own that allows 24 tasks, and [`refuses_then_serves_a_burst`]
/// holds as under `RLIMIT_NPROC`. Before, the budget ignored the cgroup (some 15,000
/// threads from `vm.max_map_count`): the readers took every task the cgroup allowed, the
/// writer could not start and the client that reads was cut (log `cannot start its writer
/// thread`). Needs root and a pids controller (cgroup v2, else v1's); skipped otherwise.
/// The cgroup is removed at the end, failed or not.
#[test]
fn out_of_cgroup_tasks_refuses_new_clients_and_never_cuts_one_that_reads() {
    const PIDS_MAX: usize = 24;
    let cgroup = match PidsCgroup::create(PIDS_MAX) {
        Ok(c) => c,
        Err(why) => {
            eprintln!("skipped: no cgroup with a pids controller: {why}");
            return;
        }
    };
    // The shell moves itself into the cgroup, then becomes the server.
    let script = r#"echo $$ > "$0/cgroup.procs" && exec "$@""#;
    let dir = cgroup.dir.to_string_lossy().into_owned();
    let server = Server::spawn(&["sh", "-c", script, &dir], &THREADS_ARGS, &[]);
    refuses_then_serves_a_burst(&server, PIDS_MAX);
    drop(server);
}

/// §7 out of threads when process ids run out: `kernel.pid_max` caps the tasks of the
/// whole pid namespace, whoever runs them. The server runs in a pid namespace of its own
/// whose `pid_max` is 400 (per namespace since Linux 6.14), with 6 other processes in it;
/// [`refuses_then_serves_a_burst`] holds as under `RLIMIT_NPROC`. Before, the budget
/// ignored `pid_max` (31,741 threads from `vm.max_map_count`, since pooled threads cost
/// two mappings, within 1,027 of the default `pid_max` of 32,768 that every process of
/// the machine shares): the readers took every process id left, the writer could not
/// start and the client that reads was cut (log `cannot start its writer thread`). Needs
/// `unshare` and user and pid namespaces, and a kernel that lets such a namespace set its
/// own `pid_max` (never the machine's: the user namespace has no right to it); skipped
/// otherwise.
#[test]
fn out_of_process_ids_refuses_new_clients_and_never_cuts_one_that_reads() {
    const PID_MAX: usize = 400;
    const OTHERS: usize = 6;
    // A user namespace (so that an older kernel, whose pid_max is the machine's, refuses
    // the write), a pid namespace, its own /proc, and the server killed with `unshare`.
    let unshare = [
        "unshare",
        "--user",
        "--map-root-user",
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child",
        "sh",
        "-c",
    ];
    let set = format!("echo {PID_MAX} > /proc/sys/kernel/pid_max");
    let probe = try_run(unshare[0], &[&unshare[1..], &[set.as_str()]].concat(), &[]);
    if !probe.is_ok_and(|out| out.status.success()) {
        eprintln!("skipped: no pid namespace with a pid_max of its own here");
        return;
    }
    let script = format!(r#"{set} && for i in $(seq {OTHERS}); do sleep 600 & done; exec "$@""#);
    let wrapper = [&unshare[..], &[script.as_str(), "sh"]].concat();
    let server = Server::spawn(&wrapper, &THREADS_ARGS, &[]);
    refuses_then_serves_a_burst(&server, PID_MAX);
}

/// A writer thread starts whatever static TLS the C library must place on its stack: a
/// library preloaded with 80 KiB of initial-exec TLS (as a profiler or an allocator
/// may have) leaves the writers' 64 KiB no room, and a pooled thread's stack is raised to
/// the least the C library takes (`__pthread_get_minstack`), as `std::thread` does. Before,
/// pooled threads started by `pthread_create` asked for 64 KiB as it was, the C library
/// refused it (EINVAL), and a client that reads was cut (`cannot start its writer thread:
/// Invalid argument`); on aarch64, where glibc's `PTHREAD_STACK_MIN` is 128 KiB, that
/// happens to every writer, preloaded library or not. Needs a C compiler (`cc`) to build
/// the library; skipped otherwise.
#[test]
fn a_writer_starts_whatever_the_static_tls_takes_of_its_stack() {
    let dir = std::env::temp_dir().join(format!("xscpd-test-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let (source, library) = (dir.join("big_tls.c"), dir.join("libbig_tls.so"));
    std::fs::write(
        &source,
        "__attribute__((tls_model(\"initial-exec\"))) __thread char xscp_big_tls[81920];\n\
         char *xscp_big_tls_at(void) { return xscp_big_tls; }\n",
    )
    .expect("the library's source");
    let (src, lib) = (source.to_string_lossy(), library.to_string_lossy());
    let built = try_run("cc", &["-shared", "-fPIC", "-o", &lib, &src], &[]);
    if !built.is_ok_and(|out| out.status.success()) {
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!("skipped: no C compiler to build a library with static TLS");
        return;
    }
    let server = Server::spawn(&[], &THREADS_ARGS, &[("LD_PRELOAD", &lib)]);
    let mut tx = server.connect().greeted();
    tx.send("uname c0");
    tx.expect("+OK you are c0");
    let mut rx = server.connect_with_rcvbuf("127.0.0.1", 4096).greeted();
    rx.send("uname c1");
    rx.expect("+OK you are c1");
    serves_a_burst(&server, tx, rx, 2);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The options of the out-of-threads tests: any number of clients from one address, a
/// `--sendq` that holds a burst.
const THREADS_ARGS: [&str; 6] = ["--max-per-ip", "0", "--hold", "0", "--sendq", "4M"];

/// What a client of a server short of threads (`limit` tasks in all) sees: clients are
/// admitted until one is refused `-ERR [FULL] server full (out of resources)`; then one of
/// the admitted clients, which reads, gets a burst of 12 000 messages (5 MB), more than its
/// socket holds at once: it needs a writer thread, and must get every message (xscpd(1):
/// running out of threads refuses the one client; a client that reads is not dropped).
fn refuses_then_serves_a_burst(server: &Server, limit: usize) {
    let mut admitted = Vec::new();
    loop {
        assert!(
            admitted.len() <= limit,
            "nobody refused: threads never ran out"
        );
        let mut c = server.connect_with_rcvbuf("127.0.0.1", 4096);
        let first = c.line();
        if first != GREETING {
            assert_eq!(first, "-ERR [FULL] server full (out of resources)");
            assert_eq!(c.until_eof(), [CQUIT_FULL]);
            break;
        }
        let nick = format!("c{}", admitted.len());
        c.send(&format!("uname {nick}"));
        c.expect(&format!("+OK you are {nick}"));
        admitted.push(c);
    }
    assert!(admitted.len() >= 2, "fewer than two clients admitted");
    eprintln!("{} clients admitted before a refusal", admitted.len());
    let rx = admitted.swap_remove(1);
    let tx = admitted.swap_remove(0);
    serves_a_burst(server, tx, rx, admitted.len() + 2);
}

/// Client `c0` (`tx`) sends `c1` (`rx`, which reads, with a receive buffer of 4096 bytes)
/// 12,000 messages (5 MB), more than its socket holds at once: `rx` needs a writer thread,
/// and must get every message. `admitted`: the clients connected, for the failure messages.
fn serves_a_burst(server: &Server, mut tx: Client, mut rx: Client, admitted: usize) {
    // More than the kernel's largest send buffer (4 MB by default) and the receiver's.
    const N: usize = 12_000;
    let flood: String = (0..N)
        .map(|i| format!("chatm c0 c1 m{i} {}\r\n", "x".repeat(400)))
        .collect();
    let mut out = tx.writer();
    let sender = thread::spawn(move || out.write_all(flood.as_bytes()).is_ok());
    // What the server said about its threads, for the failure messages.
    let threads_log = || {
        let log = server.log();
        log.into_iter()
            .filter(|l| l.contains("thread"))
            .collect::<Vec<_>>()
    };
    for i in 0..N {
        let reply = tx.line();
        assert_eq!(
            reply,
            "+OK message relayed",
            "reply to message {i} of {N} ({admitted} clients admitted); log: {:?}",
            threads_log()
        );
    }
    assert!(sender.join().expect("sender thread"), "the sender was cut");
    for i in 0..N {
        let line = rx.try_line();
        assert!(
            line.as_deref()
                .is_some_and(|l| l.starts_with(&format!("chatm c0 c1 m{i} "))),
            "message {i} of {N}: {line:?}; log: {:?}",
            threads_log()
        );
    }
    assert!(rx.nothing_pending());
}

/// A cgroup of the test's own with a task limit (`pids.max`), removed when dropped (after
/// the processes in it: declare it before them). Under cgroup v2 if its hierarchy has the
/// pids controller (enabled for the root's children if it was not, and disabled again
/// after), else under cgroup v1's pids hierarchy.
struct PidsCgroup {
    dir: PathBuf,
    /// The `cgroup.subtree_control` where the test enabled `pids`, to disable it again.
    enabled_in: Option<PathBuf>,
}

impl PidsCgroup {
    fn create(max: usize) -> Result<PidsCgroup, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
        // (mount point, filesystem type, super options) of each cgroup mount.
        let mounts: Vec<(&str, &str, &str)> = mountinfo
            .lines()
            .filter_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                let point = left.split(' ').nth(4)?;
                let mut right = right.split(' ');
                let (fstype, options) = (right.next()?, right.nth(1)?);
                fstype
                    .starts_with("cgroup")
                    .then_some((point, fstype, options))
            })
            .collect();
        let name = format!("xscpd-test-{}", std::process::id());
        let v2 = mounts
            .iter()
            .find(|m| m.1 == "cgroup2")
            .map(|m| Path::new(m.0));
        let mut why = Vec::new();
        if let Some(root) = v2 {
            match Self::in_v2(root, &name, max) {
                Ok(c) => return Ok(c),
                Err(e) => why.push(format!("cgroup v2 at {}: {e}", root.display())),
            }
        } else {
            why.push("no cgroup v2 mounted".to_string());
        }
        let v1 = mounts
            .iter()
            .find(|m| m.1 == "cgroup" && m.2.split(',').any(|o| o == "pids"));
        let Some(&(root, _, _)) = v1 else {
            why.push("no cgroup v1 pids hierarchy mounted".to_string());
            return Err(why.join("; "));
        };
        let cgroup = PidsCgroup {
            dir: Path::new(root).join(&name),
            enabled_in: None,
        };
        cgroup
            .make(max)
            .map_err(|e| format!("{}; cgroup v1 at {root}: {e}", why.join("; ")))?;
        eprintln!(
            "in {}: cgroup v1 ({})",
            cgroup.dir.display(),
            why.join("; ")
        );
        Ok(cgroup)
    }

    fn in_v2(root: &Path, name: &str, max: usize) -> Result<PidsCgroup, String> {
        let read = |f: &str| std::fs::read_to_string(root.join(f)).map_err(|e| format!("{f}: {e}"));
        let has_pids = |text: String| text.split_whitespace().any(|c| c == "pids");
        if !has_pids(read("cgroup.controllers")?) {
            return Err("no pids controller (bound to cgroup v1?)".to_string());
        }
        let subtree = root.join("cgroup.subtree_control");
        let mut enabled_in = None;
        if !has_pids(read("cgroup.subtree_control")?) {
            std::fs::write(&subtree, "+pids").map_err(|e| format!("enabling pids: {e}"))?;
            enabled_in = Some(subtree);
        }
        let cgroup = PidsCgroup {
            dir: root.join(name),
            enabled_in,
        };
        cgroup.make(max)?;
        eprintln!("in {}: cgroup v2", cgroup.dir.display());
        Ok(cgroup)
    }

    /// Creates the directory and sets its limit.
    fn make(&self, max: usize) -> Result<(), String> {
        std::fs::create_dir(&self.dir).map_err(|e| format!("mkdir {}: {e}", self.dir.display()))?;
        std::fs::write(self.dir.join("pids.max"), max.to_string())
            .map_err(|e| format!("pids.max: {e}"))
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // Empty once its processes are reaped: the harness waits for the server it kills.
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!(
                "cannot remove the test's cgroup {}: {e}",
                self.dir.display()
            );
        }
        if let Some(subtree) = &self.enabled_in
            && let Err(e) = std::fs::write(subtree, "-pids")
        {
            eprintln!("cannot disable pids in {}: {e}", subtree.display());
        }
    }
}

/// xscpd(1) OPTIONS: a DUR is at most 100 years (876000h). A longer one is refused at
/// start (exit status 2, naming the option and the bound). Before, the server took it and
/// broke on it: with `--hold 10000000000000000000` (seconds) the hub panicked at the first
/// departure ("overflow when adding duration to instant") and no client was served after
/// it; with a `--negotiate-timeout` as long every reader panicked before its greeting, and
/// with such a `--ping-interval` every reader panicked once its client registered. The
/// longest accepted serves: a client registers and leaves (its name held), another
/// registers and pings.
#[test]
fn a_duration_past_100_years_is_refused_and_the_longest_serves() {
    let huge = "10000000000000000000";
    for opt in [
        "--negotiate-timeout",
        "--ping-interval",
        "--ping-timeout",
        "--hold",
    ] {
        let out = run_xscpd(&["-l", "127.0.0.1:0", opt, huge]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{opt} {huge}: {err}");
        assert!(
            err.contains(opt) && err.contains("100 years"),
            "{opt} {huge}: {err}"
        );
    }
    let longest = "876000h";
    let server = Server::start(&[
        "--negotiate-timeout",
        longest,
        "--ping-interval",
        longest,
        "--ping-timeout",
        longest,
        "--hold",
        longest,
    ]);
    let mut ann = server.register("ann");
    ann.send("cquit");
    ann.expect_close(&[BYE]);
    server.wait_log(|l| l.contains("name ann held for 127.0.0.1"));
    let mut ben = server.register("ben");
    assert!(ben.nothing_pending());
}

/// §5 ping and §7: a sender held back behind a recipient over `--sendq` has sent plenty; it
/// is not silent, and a ping sent for the wait would be answered behind its own backlog,
/// too late. With `--ping-interval 30ms`, a receiver that pauses 80 ms every 100 lines
/// (and sends a ping of its own each time, so that it is not pinged) holds the sender back
/// longer than the interval again and again; the sender answers any ping at once (behind
/// what it wrote before), and must not be dropped for a ping timeout.
#[test]
fn a_sender_held_back_by_a_reading_recipient_is_not_pinged_for_the_wait() {
    let server = Server::start(&[
        "--sendq",
        "4K",
        "--hold",
        "0",
        "--ping-interval",
        "30ms",
        "--ping-timeout",
        "2s",
    ]);
    let n = 12000;
    let line = |i: usize| format!("chatm tx rx {i:08}{}", "x".repeat(400));
    let mut rx = server.connect_with_rcvbuf("127.0.0.1", 4096).greeted();
    rx.send("uname rx");
    rx.expect("+OK you are rx");
    rx.send("ping r");
    let reader = thread::spawn(move || {
        let mut got = 0;
        while got < n {
            match rx.try_line() {
                Some(l) if l == "+OK pong r" => continue,
                Some(l) => assert_eq!(l, line(got)),
                None => return got,
            }
            got += 1;
            if got % 100 == 0 {
                for _ in 0..4 {
                    // Input of its own more often than the ping interval, so that the
                    // server has no reason to ping it (its ping would wait behind the
                    // backlog queued for it).
                    rx.send("ping r");
                    // Sets the receiver's pace; it synchronises nothing.
                    thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
        got
    });
    let mut tx = server.register("tx");
    let (pongs, asked) = std::sync::mpsc::channel::<String>();
    let mut out = tx.writer();
    let writer = thread::spawn(move || {
        for chunk in 0..n / 100 {
            let lines: String = (chunk * 100..chunk * 100 + 100)
                .map(|i| line(i) + "\r\n")
                .collect();
            out.write_all(lines.as_bytes())?;
            while let Ok(token) = asked.try_recv() {
                out.write_all(format!("+OK pong {token}\r\n").as_bytes())?;
            }
        }
        // Pongs asked for after the last chunk.
        while let Ok(token) = asked.recv() {
            out.write_all(format!("+OK pong {token}\r\n").as_bytes())?;
        }
        Ok::<(), std::io::Error>(())
    });
    let mut relayed = 0;
    while relayed < n {
        let l = tx.line();
        if let Some(token) = l.strip_prefix("ping ") {
            let _ = pongs.send(token.to_string());
            continue;
        }
        assert_eq!(l, "+OK message relayed", "after {relayed} of {n}");
        relayed += 1;
    }
    drop(pongs);
    writer.join().expect("writer").expect("flood");
    assert_eq!(reader.join().expect("reader"), n);
}
