//! Timers and name holds over real sockets: the negotiation deadline (§5.1 uname), the
//! server's ping and the client's pong (§5.2 ping, server → client), and the name hold with
//! its "welcome back" (§5.7). Every timer is made short by an option, and every test waits
//! for the event itself.

use crate::harness::{Client, Server, WAIT, thread_names};

use std::time::Instant;

/// Reads the server's `ping <token>` and returns the token; §5: at most 32 printable
/// characters.
fn expect_server_ping(c: &mut Client) -> String {
    let line = c.expect_prefix("ping ");
    let token = line["ping ".len()..].to_string();
    assert!(
        !token.is_empty() && token.len() <= 32 && token.bytes().all(|b| b.is_ascii_graphic()),
        "{line:?}"
    );
    token
}

// ---- §5.1 uname: the negotiation deadline ----

/// §5.1 uname: missing the negotiation deadline ends the connection with
/// `cquit negotiation timeout`; §3 row NEGOTIATING -> ABORTED on connection_error, the log
/// naming the cause.
#[test]
fn negotiation_deadline_ends_the_connection() {
    let server = Server::start(&["--negotiate-timeout", "300ms"]);
    let mut c = server.connect().greeted();
    let peer = c.peer();
    c.expect_close(&["cquit negotiation timeout"]);
    drop(c);
    let logged = server.wait_aborted(&peer, "NEGOTIATING");
    assert!(logged.contains("negotiation timeout"), "{logged}");
}

/// §5.1 uname: the deadline runs from accept and traffic does not extend it: a client that
/// keeps pinging without registering still gets `cquit negotiation timeout`.
#[test]
fn traffic_does_not_extend_the_negotiation_deadline() {
    let server = Server::start(&["--negotiate-timeout", "300ms"]);
    let mut c = server.connect().greeted();
    let start = Instant::now();
    let mut k = 0u64;
    loop {
        assert!(
            start.elapsed() < WAIT,
            "still negotiating after {WAIT:?} of traffic: the deadline was extended"
        );
        k += 1;
        c.send(&format!("ping {k}"));
        let line = c.line();
        if line == "cquit negotiation timeout" {
            break;
        }
        assert_eq!(line, format!("+OK pong {k}"));
    }
    assert_eq!(c.try_line(), None);
}

/// §5.1 uname: the deadline is for the negotiation only: once ESTABLISHED the client outlives
/// it (the first thing it hears is the server's ping, due well after the deadline).
#[test]
fn the_deadline_does_not_apply_once_established() {
    let server = Server::start(&["--negotiate-timeout", "300ms", "--ping-interval", "700ms"]);
    let mut c = server.register("alice");
    let token = expect_server_ping(&mut c);
    c.send(&format!("+OK pong {token}"));
    assert!(c.nothing_pending_but_pings());
}

/// §5.2 ping (server → client, ESTABLISHED): a client still negotiating is not pinged; it
/// only hears of its deadline.
#[test]
fn negotiating_clients_are_not_pinged() {
    let server = Server::start(&["--negotiate-timeout", "500ms", "--ping-interval", "100ms"]);
    let mut c = server.connect().greeted();
    c.expect_close(&["cquit negotiation timeout"]);
}

// ---- §5.2 ping, server → client ----

/// §5.2 server ping: after `--ping-interval` of silence the server sends `ping <token>`; the
/// answer `+OK pong <token>` gets no reply, and the server logs the round-trip time.
#[test]
fn server_ping_answered_gets_no_reply() {
    let server = Server::start(&["--ping-interval", "200ms"]);
    let mut c = server.register("alice");
    let peer = c.peer();
    let token = expect_server_ping(&mut c);
    c.send(&format!("+OK pong {token}"));
    assert!(c.nothing_pending_but_pings());
    server.wait_peer_log(&peer, "rtt");
}

/// §5.2 server ping: a client that answers every ping stays connected over several
/// intervals; the keyword of the answer is case-insensitive like any other.
#[test]
fn answered_pings_keep_the_connection() {
    let server = Server::start(&["--ping-interval", "150ms", "--ping-timeout", "5s"]);
    let mut c = server.register("alice");
    for i in 0..3 {
        let token = expect_server_ping(&mut c);
        if i == 1 {
            c.send(&format!("+ok PONG {token}"));
        } else {
            c.send(&format!("+OK pong {token}"));
        }
    }
    assert!(c.nothing_pending_but_pings());
}

/// §5.2 server ping: the reader writes its own pings, as it writes the greeting (and the
/// hub the answer to `uname`): pinging an idle client starts no writer thread. (A writer would be
/// a thread of the writers' pool, named `xscp-write-<id>` until 50 ms after it wrote the
/// ping and 20 ms more, then kept as `xscp-idle` for 5 s.)
#[test]
fn a_ping_starts_no_writer_thread() {
    let server = Server::start(&["--ping-interval", "150ms"]);
    let mut c = server.register("alice");
    let before = thread_names(server.pid()).len();
    let token = expect_server_ping(&mut c);
    let names = thread_names(server.pid());
    let writers: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("xscp-write"))
        .collect();
    assert!(writers.is_empty(), "{writers:?}");
    assert!(
        names.len() <= before,
        "{before} threads before the ping: {names:?}"
    );
    c.send(&format!("+OK pong {token}"));
    assert!(c.nothing_pending_but_pings());
}

/// §5.2 server ping: a pong with another token than the outstanding ping's is a state
/// violation: `-ERR [STATE] ...`, `cquit protocol violation`, aborted.
#[test]
fn pong_with_wrong_token_is_a_violation() {
    let server = Server::start(&["--ping-interval", "200ms"]);
    let mut c = server.register("alice");
    let peer = c.peer();
    let token = expect_server_ping(&mut c);
    c.send(&format!("+OK pong {token}x"));
    let lines = c.until_eof();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let why =
        format!("pong {token}x does not match the outstanding ping: expected +OK pong {token}");
    assert_eq!(lines[0], format!("-ERR [STATE] {why}"));
    assert_eq!(lines[1], "cquit protocol violation");
    drop(c);
    let logged = server.wait_peer_log(&peer, "ESTABLISHED -> ABORTED on connection_error");
    assert!(logged.contains("WARN"), "{logged}");
    assert!(logged.contains(&why), "{logged}");
}

/// §5.2 server ping: a pong that answers no outstanding ping — here a second pong for a ping
/// already answered — is a state violation.
#[test]
fn pong_answering_no_outstanding_ping_is_a_violation() {
    let server = Server::start(&["--ping-interval", "200ms", "--ping-timeout", "5s"]);
    let mut c = server.register("alice");
    let token = expect_server_ping(&mut c);
    c.send_raw(format!("+OK pong {token}\r\n+OK pong {token}\r\n").as_bytes());
    let lines = c.until_eof();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        lines[0],
        format!("-ERR [STATE] pong {token} answers no ping: none is outstanding")
    );
    assert_eq!(lines[1], "cquit protocol violation");
}

/// §5.2 server ping: no answer within `--ping-timeout` ends the connection with
/// `cquit ping timeout`; §3 row ESTABLISHED -> ABORTED on connection_error naming the cause.
#[test]
fn unanswered_ping_times_out() {
    let server = Server::start(&["--ping-interval", "200ms", "--ping-timeout", "300ms"]);
    let mut c = server.register("alice");
    let peer = c.peer();
    expect_server_ping(&mut c);
    c.expect_close(&["cquit ping timeout"]);
    drop(c);
    let logged = server.wait_aborted(&peer, "ESTABLISHED");
    assert!(logged.contains("ping timeout"), "{logged}");
}

/// §5.2 server ping: other traffic while the ping is outstanding is processed normally but
/// does not replace the pong.
#[test]
fn other_traffic_does_not_replace_the_pong() {
    let server = Server::start(&["--ping-interval", "200ms", "--ping-timeout", "700ms"]);
    let mut bob = server.register("bob");
    let mut c = server.register("alice");
    expect_server_ping(&mut c);
    c.send("ping mine");
    c.send("chatm alice bob still here");
    let lines = c.until_eof();
    assert_eq!(
        lines,
        ["+OK pong mine", "+OK message relayed", "cquit ping timeout"]
    );
    // Bob is silent too, so the server may ping him first.
    let mut got = bob.line();
    while got.starts_with("ping ") {
        got = bob.line();
    }
    assert_eq!(got, "chatm alice bob still here");
}

// ---- §5.7 name hold ----

/// Registers `nick` from 127.0.0.1 and leaves with `cquit`, waiting until the server has
/// closed the connection.
fn join_and_quit(server: &Server, nick: &str) {
    server.quit(server.register(nick));
}

/// §5.7: after a client leaves by `cquit`, its name is held for its IP: the same IP gets
/// `+OK welcome back <name>` (ESTABLISHED, announced as a join), another IP gets IN-USE.
#[test]
fn name_is_held_after_cquit() {
    let server = Server::start(&[]);
    let mut watcher = server.register_from("127.0.0.2", "watcher");
    watcher.send("notif on");
    watcher.expect("+OK notifications on");
    join_and_quit(&server, "alice");
    watcher.expect("notif join alice");
    watcher.expect("notif quit alice");

    let mut other = server.connect_from("127.0.0.2").greeted();
    other.send("uname alice");
    other.expect("-ERR [IN-USE] alice is already taken by another client (attempt 1 of 3)");
    other.send("uname ALICE");
    other.expect("-ERR [IN-USE] ALICE is already taken by another client (attempt 2 of 3)");

    let mut back = server.connect().greeted();
    let peer = back.peer();
    back.send("uname alice");
    back.expect("+OK welcome back alice");
    server.wait_peer_log(&peer, "NEGOTIATING -> ESTABLISHED on credentials_validated");
    watcher.expect("notif join alice");
    back.send("users");
    assert_eq!(back.multiline().0, "+OK 2 users");
}

/// §5.7: the name is held also when the client left by an abort (its connection dropped,
/// or ended for a violation).
#[test]
fn name_is_held_after_an_abort() {
    let server = Server::start(&[]);
    let alice = server.register("alice");
    let peer = alice.peer();
    drop(alice);
    server.wait_peer_log(&peer, "ABORTED -> CLOSED on close");

    let mut bob = server.register("bob");
    let peer = bob.peer();
    bob.send("uname again");
    bob.until_eof();
    drop(bob);
    server.wait_peer_log(&peer, "ABORTED -> CLOSED on close");

    for nick in ["alice", "bob"] {
        let mut other = server.connect_from("127.0.0.2").greeted();
        other.send(&format!("uname {nick}"));
        other.expect_prefix("-ERR [IN-USE] ");
        let mut back = server.connect().greeted();
        back.send(&format!("uname {nick}"));
        back.expect(&format!("+OK welcome back {nick}"));
    }
}

/// §5.7: the hold is for the address the client had, whichever it is: a name left from
/// 127.0.0.2 is welcomed back there and refused on 127.0.0.1.
#[test]
fn hold_belongs_to_the_departed_clients_address() {
    let server = Server::start(&[]);
    let mut c = server.register_from("127.0.0.2", "zed");
    let peer = c.peer();
    c.send("cquit");
    c.until_eof();
    drop(c);
    server.wait_peer_log(&peer, "UPDATE -> CLOSED on close");
    let mut here = server.connect().greeted();
    here.send("uname zed");
    here.expect("-ERR [IN-USE] zed is already taken by another client (attempt 1 of 3)");
    let mut back = server.connect_from("127.0.0.2").greeted();
    back.send("uname zed");
    back.expect("+OK welcome back zed");
}

/// §5.7 + §5.4 cname: a name held for another IP cannot be taken by a rename either.
#[test]
fn held_name_is_in_use_for_cname_from_another_address() {
    let server = Server::start(&[]);
    join_and_quit(&server, "alice");
    let mut other = server.register_from("127.0.0.2", "bob");
    other.send("cname alice");
    other.expect("-ERR [IN-USE] alice is already taken by another client");
}

/// §5.7: `--hold 0` releases the name at once: another IP gets it as a new name, and the
/// same IP is not "welcomed back".
#[test]
fn hold_zero_releases_at_once() {
    let server = Server::start(&["--hold", "0"]);
    join_and_quit(&server, "alice");
    let mut other = server.connect_from("127.0.0.2").greeted();
    other.send("uname alice");
    other.expect("+OK you are alice");
    other.send("cquit");
    other.until_eof();
    let peer = other.peer();
    drop(other);
    server.wait_peer_log(&peer, "UPDATE -> CLOSED on close");
    let mut again = server.connect().greeted();
    again.send("uname alice");
    again.expect("+OK you are alice");
}

/// §5.7: a hold lasts `--hold`, then the name is free for any address. (The expiry itself
/// is the event: the test asks again until it is free, within the harness's bound.)
#[test]
fn hold_expires_after_its_time() {
    let server = Server::start(&["--hold", "300ms", "--max-retries", "1"]);
    // Before the departure: the hold cannot end sooner than 300 ms after this.
    let start = Instant::now();
    join_and_quit(&server, "alice");
    loop {
        let mut other = server.connect_from("127.0.0.2").greeted();
        other.send("uname alice");
        let line = other.line();
        if line == "+OK you are alice" {
            // A name that was never held would be free at once.
            let held = start.elapsed();
            assert!(
                held >= std::time::Duration::from_millis(300),
                "held {held:?}"
            );
            break;
        }
        assert!(line.starts_with("-ERR [IN-USE] "), "{line}");
        other.until_eof();
        assert!(start.elapsed() < WAIT, "the hold never expired");
        // Ask again a little later rather than in a tight loop.
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}
