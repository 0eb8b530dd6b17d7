//! The audit log of xscp(7) §7 at `-vv`: for each connection the log is causal. A line
//! the server sends appears where the server decided to send it, after the line that caused
//! it and before anything that came later; transitions appear when they happen.

use crate::harness::{BYE, GREETING, Server};

// `Server::start` runs `xscpd -v`; one more `-v` here makes `-vv`: every PDU, and no
// socket writes (those are `-vvv`).

/// A connection's log lines, each without its timestamp, level and `conn=N peer=ADDR` tag.
fn conn_lines(server: &Server, peer: &str) -> Vec<String> {
    server
        .peer_log(peer)
        .iter()
        .filter_map(|l| l.split_once(peer).map(|(_, rest)| rest.to_string()))
        .collect()
}

/// Input pipelined in one write (`uname mallory` and a spoofed `chatm`): the greeting is
/// logged as sent before the first line read, each reply after the line that caused it and
/// before the next line read, the registration's transition before the `+OK` it lets
/// through, the violation after the line that made it, the last lines after the violation,
/// and the close last, saying how it closed.
#[test]
fn a_pipelined_session_is_logged_in_causal_order() {
    let server = Server::start(&["-v", "--hold", "0"]);
    let mut c = server.connect();
    let peer = c.peer();
    c.send_raw(b"uname mallory\r\nchatm eve mallory hi\r\n");
    c.expect_close(&[
        GREETING,
        "+OK you are mallory",
        "-ERR [SPOOF] eve is not your nickname",
        "cquit protocol violation",
    ]);
    server.wait_closed(&peer);
    assert_eq!(
        conn_lines(&server, &peer),
        [
            "LISTEN -> NEGOTIATING on tcp_connection_accepted",
            "-> +OK xscp/1 ready",
            "<- uname mallory",
            "NEGOTIATING -> ESTABLISHED on credentials_validated nick=mallory",
            "-> +OK you are mallory",
            "<- chatm eve mallory hi",
            "ESTABLISHED -> ABORTED on connection_error cause=spoofing",
            "-> -ERR [SPOOF] eve is not your nickname",
            "-> cquit protocol violation",
            // The client keeps its end open until the test ends.
            "ABORTED -> CLOSED on close (the linger ran out)",
        ]
    );
}

/// Pipelined replies of the reader itself (`ping`, `capa`-like responses) and of the hub
/// (`users`) keep their places between the lines read, and `cquit`'s goodbye comes last.
#[test]
fn replies_are_logged_between_the_lines_that_caused_them() {
    let server = Server::start(&["-v", "--hold", "0"]);
    let mut c = server.connect();
    let peer = c.peer();
    c.send_raw(b"uname ann\r\nping a\r\nusers\r\nping b\r\ncquit\r\n");
    c.expect_close(&[
        GREETING,
        "+OK you are ann",
        "+OK pong a",
        "+OK 1 users",
        "ann",
        ".",
        "+OK pong b",
        BYE,
    ]);
    server.wait_closed(&peer);
    let lines = conn_lines(&server, &peer);
    let io: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| l.starts_with("<- ") || l.starts_with("-> "))
        .collect();
    assert_eq!(
        io,
        [
            "-> +OK xscp/1 ready",
            "<- uname ann",
            "-> +OK you are ann",
            "<- ping a",
            "-> +OK pong a",
            "<- users",
            "-> +OK 1 users",
            "-> ann",
            "-> .",
            "<- ping b",
            "-> +OK pong b",
            "<- cquit",
            &format!("-> {BYE}"),
        ]
    );
}

/// A framing violation is logged at `-vv` with the bytes that were rejected (escaped), in
/// its place: after the greeting, before the transition it causes.
#[test]
fn a_framing_violation_is_logged_with_its_bytes() {
    let server = Server::start(&["-v", "--hold", "0"]);
    let mut c = server.connect().greeted();
    let peer = c.peer();
    c.send_raw(b"uname ev\x07il\r\n");
    let _ = c.until_eof();
    server.wait_closed(&peer);
    let lines = conn_lines(&server, &peer);
    let at = |what: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(what))
            .unwrap_or_else(|| panic!("no {what:?} in {lines:#?}"))
    };
    let violation = at("<- (framing violation: control byte 0x07 in line)");
    assert!(
        lines[violation].ends_with(" uname ev\\x07"),
        "the rejected bytes: {}",
        lines[violation]
    );
    assert!(at("-> +OK xscp/1 ready") < violation);
    assert!(violation < at("NEGOTIATING -> ABORTED"));
}

/// On shutdown (SIGTERM) a connection's transition is logged when the server tells it
/// `cquit server shutting down`, not when its client closes: the client here keeps its
/// end open, and the transition and the close still come before the server gives up
/// waiting.
#[test]
fn a_shutdown_is_logged_when_the_server_makes_it() {
    let mut server = Server::start(&["-v", "--hold", "0"]);
    let mut c = server.connect().greeted();
    let peer = c.peer();
    c.send("uname bob");
    c.expect("+OK you are bob");
    server.signal("TERM");
    c.expect("cquit server shutting down");
    assert!(c.try_line().is_none(), "end of stream after the cquit");
    assert!(server.wait_exit().success());
    let lines = conn_lines(&server, &peer);
    assert_eq!(
        lines[lines.len() - 3..],
        [
            "-> cquit server shutting down",
            "ESTABLISHED -> UPDATE on server_shutdown",
            "UPDATE -> CLOSED on close (the linger ran out)",
        ]
    );
    assert!(
        !server.logged("did not close in time"),
        "the server gave up waiting"
    );
    drop(c);
}

/// §5.8 a resume, in order: the registration's transition (welcome back) before the
/// `+OK welcome back` and the replayed mailbox, and before the other clients hear of it.
/// §5.7 a departure: ABORTED, then the name held, then the close, which says the peer
/// closed.
#[test]
fn a_departure_and_a_resume_are_logged_in_causal_order() {
    let server = Server::start(&["-v", "--hold", "60"]);
    let mut alice = server.register("alice");
    alice.send("notif on");
    alice.expect("+OK notifications on");
    let mut bob = server.register("bob");
    let bob_peer = bob.peer();
    alice.expect("notif join bob");
    alice.send("chatm alice bob hi");
    alice.expect("+OK message relayed");
    // bob reads it (nothing unread: his close is a FIN, not a reset) and leaves without a
    // receipt: his copy becomes his mailbox.
    bob.expect("chatm alice bob hi");
    drop(bob);
    alice.expect("notif quit bob");
    server.wait_closed(&bob_peer);
    let gone = conn_lines(&server, &bob_peer);
    let at = |lines: &[String], what: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(what))
            .unwrap_or_else(|| panic!("no {what:?} in {lines:#?}"))
    };
    let aborted = at(
        &gone,
        "ESTABLISHED -> ABORTED on connection_error cause=peer closed",
    );
    let held = at(&gone, "name bob held for 127.0.0.1");
    let closed = at(&gone, "ABORTED -> CLOSED on close (the peer closed)");
    assert!(aborted < held && held < closed, "{gone:#?}");
    assert_eq!(closed, gone.len() - 1, "the close last: {gone:#?}");

    let mut back = server.connect().greeted();
    let back_peer = back.peer();
    back.send("uname bob");
    back.expect("+OK welcome back bob (1 held, 0 lost)");
    back.expect("chatm alice bob hi");
    alice.expect("notif join bob");
    assert!(back.nothing_pending());
    let lines = conn_lines(&server, &back_peer);
    let established = at(
        &lines,
        "NEGOTIATING -> ESTABLISHED on credentials_validated nick=bob (welcome back)",
    );
    let welcome = at(&lines, "-> +OK welcome back bob");
    let replay = at(&lines, "-> chatm alice bob hi");
    assert!(established < welcome && welcome < replay, "{lines:#?}");
    // Across connections the log is one sequence: alice hears of the return after it
    // (her last `notif join bob`; the first was bob's first registration).
    let log = server.log();
    let returned = log
        .iter()
        .position(|l| l.contains(&back_peer) && l.contains("(welcome back)"))
        .expect("the return");
    let told = log
        .iter()
        .rposition(|l| l.contains(&alice.peer()) && l.contains("-> notif join bob"))
        .expect("alice told");
    assert!(returned < told, "{log:#?}");
}

/// §7: the log shows each line sent as it was sent, a text's trailing spaces included
/// (the log used to drop them, and `xscp diagram` then could not pair the relayed line
/// with the line read).
#[test]
fn a_line_sent_is_logged_with_its_trailing_spaces() {
    let server = Server::start(&["-v"]);
    let mut alice = server.register("alice");
    let mut bob = server.register("bob");
    alice.send("chatm alice bob hi ");
    alice.expect("+OK message relayed");
    bob.expect("chatm alice bob hi ");
    let line = server.wait_peer_log(&bob.peer(), "-> chatm alice bob hi");
    assert!(line.ends_with("-> chatm alice bob hi "), "{line:?}");
}
