//! The server's life and the contract of §7 over real sockets: the listener's rows of the
//! transition table (§3), a whole-server check that only the rows of §3 ever happen,
//! the orderly close and shutdown by signal. (The limits of §7 are in `limits`.)

use crate::harness::{Client, SPEC_TRANSITIONS, Server, parse_transition};

use std::collections::BTreeSet;
use std::net::TcpStream;

/// Reads to end of stream, drops the client, and waits until the server closed it.
fn closed(server: &Server, mut c: Client) -> Vec<String> {
    let peer = c.peer();
    let lines = c.until_eof();
    drop(c);
    server.wait_peer_log(&peer, "-> CLOSED on close");
    lines
}

// ---- §3: the listener ----

/// §3 row CLOSED -> LISTEN on bind_and_listen: logged once, naming the address bound.
#[test]
fn binding_moves_the_listener_to_listen() {
    let server = Server::start(&[]);
    let line = server.wait_log(|l| l.contains("CLOSED -> LISTEN on bind_and_listen"));
    assert!(line.contains(&format!("addr={}", server.addr)), "{line}");
    assert!(line.contains("INFO"), "{line}");
}

/// §3: every transition the server logs, over a run that visits every row, is a row of
/// the table ("any other (state, event) pair is impossible"); every row is visited; no
/// impossible pair is ever met (no `BUG` or error line); and each transition line names
/// the connection and its peer (§7 audit log).
#[test]
fn only_the_rows_of_the_table_ever_happen() {
    let mut server = Server::start(&["--max-retries", "2"]);
    // NEGOTIATING -> NEGOTIATING, -> ESTABLISHED, ESTABLISHED -> UPDATE, UPDATE -> CLOSED.
    let mut a = server.connect().greeted();
    a.send("uname 1");
    a.line();
    a.send("uname alice");
    a.expect("+OK you are alice");
    server.quit(a);
    // NEGOTIATING -> ABORTED on max_retries_exceeded, ABORTED -> CLOSED.
    let mut b = server.connect().greeted();
    b.send("uname");
    b.send("uname");
    closed(&server, b);
    // NEGOTIATING -> ABORTED on connection_error (the peer closes).
    let c = server.connect().greeted();
    let peer = c.peer();
    drop(c);
    server.wait_peer_log(&peer, "ABORTED -> CLOSED on close");
    // NEGOTIATING -> UPDATE on quit_requested.
    let d = server.connect().greeted();
    server.quit(d);
    // ESTABLISHED -> ABORTED on connection_error.
    let mut e = server.register("eve");
    e.send("uname again");
    closed(&server, e);
    // NEGOTIATING and ESTABLISHED -> UPDATE on server_shutdown; LISTEN -> CLOSED.
    let mut f = server.connect().greeted();
    assert!(f.nothing_pending());
    let g = server.register("gus");
    server.signal("TERM");
    closed(&server, f);
    closed(&server, g);
    assert!(server.wait_exit().success());

    let log = server.log();
    let seen: BTreeSet<(String, String, String)> =
        log.iter().filter_map(|l| parse_transition(l)).collect();
    let table: BTreeSet<(String, String, String)> = SPEC_TRANSITIONS
        .iter()
        .map(|&(a, b, c)| (a.into(), b.into(), c.into()))
        .collect();
    let outside: Vec<_> = seen.difference(&table).collect();
    assert!(outside.is_empty(), "transitions outside §3: {outside:?}");
    let missed: Vec<_> = table.difference(&seen).collect();
    assert!(missed.is_empty(), "rows never seen: {missed:?}");
    for l in &log {
        assert!(
            !l.contains(" BUG") && !l.contains("[ERROR]"),
            "impossible transition met: {l}"
        );
        if let Some((from, _, _)) = parse_transition(l) {
            let named = if from == "CLOSED" || (from == "LISTEN" && l.contains("listener")) {
                l.contains("addr=")
            } else {
                l.contains("conn=") && l.contains("peer=127.0.0.1:")
            };
            assert!(named, "transition line without its connection: {l}");
        }
    }
}

// ---- §7: orderly close ----

/// §7 orderly close: `cquit` followed at once (same write) by more bytes still delivers
/// `+OK terminating tasks and disconnecting`, then end of stream; nothing after `cquit`
/// is handled.
#[test]
fn cquit_followed_by_more_bytes_still_delivers_its_reply() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    let peer = alice.peer();
    let mut bytes = b"cquit\r\nchatm alice bob after\r\n".to_vec();
    bytes.extend(b"ping x\r\n".repeat(8 * 1024));
    alice.send_raw(&bytes);
    alice.expect_close(&["+OK terminating tasks and disconnecting"]);
    assert!(bob.nothing_pending());
    // The server read the rest away until the client closed: an orderly close, not a
    // reset (which the client above could not tell from an end of stream).
    drop(alice);
    server.wait_peer_log(&peer, "UPDATE -> CLOSED on close (the peer closed)");
}

/// §7 orderly close: messages sent in the same write as `cquit`, before it, are relayed and
/// answered before the last line (the reader hands them to the hub before it closes).
#[test]
fn messages_pipelined_before_cquit_are_relayed_and_answered_first() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    let mut bytes = String::new();
    for i in 0..5 {
        bytes += &format!("chatm alice bob m{i}\r\n");
    }
    bytes += "cquit\r\n";
    alice.send_raw(bytes.as_bytes());
    let mut expected = vec!["+OK message relayed"; 5];
    expected.push("+OK terminating tasks and disconnecting");
    alice.expect_close(&expected);
    for i in 0..5 {
        bob.expect(&format!("chatm alice bob m{i}"));
    }
}

/// §7 orderly close (seed 003): the last line must survive even when it is still in the
/// server's send queue at the close and unread input follows `cquit`. The client sends a
/// burst of pings, `cquit` and more input, then its FIN, and reads nothing until the server
/// has closed: the replies overflow the client's small receive buffer, so the tail of them
/// and the `+OK` are still queued in the server when it closes. A close without the linger
/// (reading the unread input away) would be a reset, which destroys them.
#[test]
fn cquit_reply_survives_a_backlog_and_unread_input() {
    const PINGS: usize = 1000;
    let server = Server::start(&[]);
    let mut c = server.connect_with_rcvbuf("127.0.0.1", 2048).greeted();
    let peer = c.peer();
    let mut bytes = b"ping x\r\n".repeat(PINGS);
    bytes.extend_from_slice(b"cquit\r\n");
    // More than one read of the server takes: some of it stays unread in its socket.
    bytes.extend(b"ping y\r\n".repeat(2048));
    c.send_raw(&bytes);
    c.shutdown_write();
    server.wait_peer_log(&peer, "UPDATE -> CLOSED on close");
    let lines = c.until_eof();
    assert_eq!(lines.len(), PINGS + 1, "lines lost: {:?}", lines.last());
    assert!(lines[..PINGS].iter().all(|l| l == "+OK pong x"));
    assert_eq!(lines[PINGS], "+OK terminating tasks and disconnecting");
}

/// §7 orderly close, in NEGOTIATING: the same.
#[test]
fn cquit_in_negotiating_followed_by_more_bytes_still_delivers_its_reply() {
    let server = Server::start(&[]);
    let mut c = server.connect().greeted();
    let mut bytes = b"cquit\r\n".to_vec();
    bytes.extend(b"uname alice\r\n".repeat(4 * 1024));
    c.send_raw(&bytes);
    c.expect_close(&["+OK terminating tasks and disconnecting"]);
}

/// §7 orderly close after a violation: the `-ERR` and the `cquit` survive unread input
/// that follows them.
#[test]
fn violation_followed_by_more_bytes_still_delivers_its_lines() {
    let server = Server::start(&[]);
    let mut c = server.connect().greeted();
    let peer = c.peer();
    let mut bytes = b"users\r\n".to_vec();
    bytes.extend(b"ping x\r\n".repeat(8 * 1024));
    c.send_raw(&bytes);
    c.expect_close(&[
        "-ERR [STATE] users is not allowed in NEGOTIATING",
        "cquit protocol violation",
    ]);
    drop(c);
    server.wait_peer_log(&peer, "-> CLOSED on close (the peer closed)");
}

/// §7: after its last line the server shuts down its sending side and keeps reading for a
/// linger: a client may still write after seeing end of stream without provoking a reset,
/// and the connection is then closed.
#[test]
fn the_server_reads_on_after_its_fin() {
    let server = Server::start(&[]);
    let mut c = server.connect().greeted();
    let peer = c.peer();
    c.send("cquit");
    c.expect_close(&["+OK terminating tasks and disconnecting"]);
    c.send_raw(b"ping late\r\n");
    c.shutdown_write();
    assert_eq!(c.drain(), b"");
    // Read away, then the client's end of stream: not a close without the linger.
    server.wait_peer_log(&peer, "UPDATE -> CLOSED on close (the peer closed)");
}

// ---- §7: shutdown ----

/// §7 shutdown: on `sig` the listener closes (LISTEN -> CLOSED), every client in either
/// state gets `cquit server shutting down` and an orderly close (-> UPDATE on
/// server_shutdown, UPDATE -> CLOSED), and the process exits 0.
fn shutdown_by(sig: &str) {
    let mut server = Server::start(&[]);
    let mut negotiating = server.connect().greeted();
    // A round trip: the server has taken the connection in.
    assert!(negotiating.nothing_pending());
    let alice = server.register("alice");
    let bob = server.register("bob");
    let (np, ap, bp) = (negotiating.peer(), alice.peer(), bob.peer());

    server.signal(sig);
    for c in [negotiating, alice, bob] {
        let mut c = c;
        c.expect_close(&["cquit server shutting down"]);
    }
    let line = server.wait_log(|l| l.contains("LISTEN -> CLOSED on close"));
    assert!(line.contains(&format!("addr={}", server.addr)), "{line}");
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "the listener is closed"
    );
    server.wait_peer_log(&np, "NEGOTIATING -> UPDATE on server_shutdown");
    for p in [&ap, &bp] {
        server.wait_peer_log(p, "ESTABLISHED -> UPDATE on server_shutdown");
    }
    for p in [&np, &ap, &bp] {
        server.wait_peer_log(p, "UPDATE -> CLOSED on close");
    }
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// §7 shutdown on SIGTERM.
#[test]
fn sigterm_shuts_down_in_order() {
    shutdown_by("TERM");
}

/// §7 shutdown on SIGINT.
#[test]
fn sigint_shuts_down_in_order() {
    shutdown_by("INT");
}

/// §7 shutdown with nobody connected: the listener closes and the process exits 0.
#[test]
fn shutdown_without_clients_exits_zero() {
    let mut server = Server::start(&[]);
    server.signal("TERM");
    server.wait_log(|l| l.contains("LISTEN -> CLOSED on close"));
    assert_eq!(server.wait_exit().code(), Some(0));
}
