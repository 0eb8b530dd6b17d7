//! Framing over real sockets (xscp(7) §1): terminators, the 510-byte limit, lines split
//! across writes or packed into one, blank lines, control bytes and UTF-8. (§7's rule that
//! the log escapes what a peer sends is in `faults`.)

use crate::harness::{Client, Server};

/// §1: a framing violation is answered `-ERR [PDU] ...`, then `cquit protocol violation`,
/// and the connection is aborted (a warning naming the framing violation in the log).
fn assert_framing_violation(server: &Server, mut c: Client, bytes: &[u8], state: &str) {
    let peer = c.peer();
    c.send_raw(bytes);
    let lines = c.until_eof();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("-ERR [PDU] "), "{lines:?}");
    assert_eq!(lines[1], "cquit protocol violation");
    drop(c);
    let logged = server.wait_aborted(&peer, state);
    assert!(logged.contains("WARN"), "{logged}");
    assert!(
        logged.contains("framing"),
        "the log names the cause: {logged}"
    );
}

/// §1: the server ends every line with CRLF (checked on the raw bytes of the greeting; the
/// harness checks it on every line of every test).
#[test]
fn server_lines_end_with_crlf() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.send("cquit");
    let bytes = c.drain();
    assert!(bytes.starts_with(b"+OK xscp/1 ready"), "{bytes:?}");
    assert!(
        bytes.ends_with(b"\r\n+OK terminating tasks and disconnecting\r\n"),
        "{bytes:?}"
    );
    assert_eq!(
        bytes.iter().filter(|&&b| b == b'\n').count(),
        bytes.windows(2).filter(|w| w == b"\r\n").count()
    );
}

// §1: the 510-byte limit holds for the lines the server sends too (reading taken: "a PDU
// carries at most 510 bytes" applies in both directions, as STYLE.md's "enforced ... again
// when encoding output" says), also when a reply echoes a long field of the client's line:
// a client with a 512-byte buffer must be able to read every reply. These tests provoke
// the echoes, one each.

/// A client registered as `alice`, with `bob` connected too.
fn alice_and_bob(server: &Server) -> (Client, Client) {
    let bob = server.register("bob");
    (server.register("alice"), bob)
}

/// §1 (server side) + §5.5 chatm: `-ERR [NO-SUCH] no such user <recipient>` with a recipient
/// as long as a PDU allows still fits in 510 bytes.
#[test]
fn no_such_user_reply_fits_the_limit() {
    let server = Server::start(&[]);
    let (mut alice, _bob) = alice_and_bob(&server);
    let line = format!("chatm alice {} hi", "r".repeat(495));
    assert_eq!(line.len(), 510);
    alice.send(&line);
    let reply = alice.pdu_line();
    assert!(reply.starts_with("-ERR [NO-SUCH] "), "{reply}");
}

/// §1 (server side) + §5.6 chatr: `-ERR [NO-SUCH] no message from <sender> awaits a receipt`
/// with a long sender field still fits in 510 bytes.
#[test]
fn no_receipt_reply_fits_the_limit() {
    let server = Server::start(&[]);
    let (mut alice, _bob) = alice_and_bob(&server);
    let line = format!("chatr {} alice", "s".repeat(498));
    assert_eq!(line.len(), 510);
    alice.send(&line);
    let reply = alice.pdu_line();
    assert!(reply.starts_with("-ERR [NO-SUCH] "), "{reply}");
}

/// §1 (server side) + §5.5 chatm: the `-ERR [SPOOF]` reply to a long forged sender field
/// still fits in 510 bytes.
#[test]
fn spoof_reply_fits_the_limit() {
    let server = Server::start(&[]);
    let (mut alice, _bob) = alice_and_bob(&server);
    let line = format!("chatm {} bob hi", "t".repeat(497));
    assert_eq!(line.len(), 510);
    alice.send(&line);
    let reply = alice.pdu_line();
    assert!(reply.starts_with("-ERR [SPOOF] "), "{reply}");
    alice.expect("cquit protocol violation");
}

/// §1: a PDU of exactly 510 bytes before its terminator is accepted and relayed whole.
#[test]
fn a_line_of_510_bytes_is_a_pdu() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    let head = "chatm alice bob ";
    let line = format!("{head}{}", "x".repeat(510 - head.len()));
    assert_eq!(line.len(), 510);
    alice.send(&line);
    alice.expect("+OK message relayed");
    bob.expect(&line);
}

/// §1: 510 bytes counts bytes, not characters: a line of 510 bytes with multi-byte UTF-8
/// text is accepted.
#[test]
fn the_limit_counts_bytes() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    let head = "chatm alice bob ";
    let text = "é".repeat((510 - head.len()) / 2);
    let line = format!("{head}{text}");
    assert_eq!(line.len(), 510);
    alice.send(&line);
    alice.expect("+OK message relayed");
    bob.expect(&line);
    // One more byte, still fewer characters than 510: too long.
    assert_framing_violation(
        &server,
        alice,
        format!("{line}x\r\n").as_bytes(),
        "ESTABLISHED",
    );
}

/// §1, §6: 511 bytes before the terminator is a framing violation.
#[test]
fn a_line_of_511_bytes_is_a_violation() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let alice = server.register("alice");
    let head = "chatm alice bob ";
    let line = format!("{head}{}\r\n", "x".repeat(511 - head.len()));
    assert_framing_violation(&server, alice, line.as_bytes(), "ESTABLISHED");
    assert!(bob.nothing_pending(), "nothing of the long line is relayed");
}

/// §1: the same limit in NEGOTIATING (§3 row NEGOTIATING -> ABORTED on connection_error).
#[test]
fn a_line_of_511_bytes_in_negotiating_is_a_violation() {
    let server = Server::start(&[]);
    let c = server.connect().greeted();
    let line = format!("{}\r\n", "p".repeat(511));
    assert_framing_violation(&server, c, line.as_bytes(), "NEGOTIATING");
}

/// §1: "an overlong line must not be buffered without bound": the violation is detected
/// before any terminator arrives.
#[test]
fn an_overlong_line_is_refused_before_its_terminator() {
    let server = Server::start(&[]);
    let alice = server.register("alice");
    assert_framing_violation(&server, alice, &[b'y'; 600], "ESTABLISHED");
}

/// §1: an endless line (far more than any buffer) ends with the violation, not with the
/// server collecting it.
#[test]
fn an_endless_line_is_cut_short() {
    let server = Server::start(&[]);
    let mut c = server.connect().greeted();
    let mut out = c.writer();
    let peer = c.peer();
    // Keep writing in the background until the server stops reading; the writes fail or
    // end once it has closed.
    let flood = std::thread::spawn(move || {
        use std::io::Write;
        let chunk = [b'z'; 4096];
        for _ in 0..256 {
            if out.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let first = c.line();
    assert!(first.starts_with("-ERR [PDU] "), "{first}");
    c.expect("cquit protocol violation");
    assert_eq!(c.try_line(), None);
    drop(c);
    flood.join().expect("flood thread");
    server.wait_peer_log(&peer, "NEGOTIATING -> ABORTED on connection_error");
}

/// §1: a PDU may arrive split into pieces of one byte each (also inside a UTF-8 sequence).
#[test]
fn a_pdu_split_byte_by_byte_is_reassembled() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.connect().greeted();
    for b in b"uname alice\r\n" {
        alice.send_raw(std::slice::from_ref(b));
    }
    alice.expect("+OK you are alice");
    for b in "chatm alice bob grüße\r\n".as_bytes() {
        alice.send_raw(std::slice::from_ref(b));
    }
    alice.expect("+OK message relayed");
    bob.expect("chatm alice bob grüße");
    assert!(alice.nothing_pending());
}

/// §1: several PDUs in one write are handled one after the other, in order.
#[test]
fn several_pdus_in_one_write() {
    let server = Server::start(&[]);
    let mut c = server.connect().greeted();
    c.send_raw(b"ping 1\r\nping 2\r\ncapa\r\nping 3\r\n");
    c.expect("+OK pong 1");
    c.expect("+OK pong 2");
    assert_eq!(c.multiline().0, "+OK capability list follows");
    c.expect("+OK pong 3");
    assert!(c.nothing_pending());
}

/// §1: a line may end with CR, LF or CRLF; CRLF is one terminator.
#[test]
fn cr_lf_and_crlf_each_end_one_line() {
    // A budget of one: a spurious (non-blank) line would end the connection.
    let server = Server::start(&["--max-retries", "1"]);
    let mut c = server.connect().greeted();
    c.send_raw(b"ping a\rping b\nping c\r\nping d\r");
    for t in ["a", "b", "c", "d"] {
        c.expect(&format!("+OK pong {t}"));
    }
    c.send_raw(b"\nuname alice\r");
    c.expect("+OK you are alice");
    c.send_raw(b"\n");
    assert!(c.nothing_pending());
}

/// §1: a CR at the end of one write and an LF at the start of the next are one terminator.
/// (On the wire this is indistinguishable from a CR line end followed by a blank line,
/// which is skipped too: the test checks that the LF yields no reply and does not disturb
/// the next line.)
#[test]
fn cr_and_lf_in_separate_writes_count_once() {
    let server = Server::start(&["--max-retries", "1"]);
    let mut c = server.connect().greeted();
    c.send_raw(b"ping a\r");
    c.expect("+OK pong a");
    c.send_raw(b"\nping b\r");
    c.expect("+OK pong b");
    c.send_raw(b"\n");
    c.send_raw(b"uname alice\r\n");
    c.expect("+OK you are alice");
    assert!(c.nothing_pending());
}

/// §1: empty lines and lines of spaces only are not PDUs: skipped without reply, and in
/// NEGOTIATING they are not failed attempts.
#[test]
fn blank_lines_are_skipped() {
    let server = Server::start(&["--max-retries", "1"]);
    let mut c = server.connect().greeted();
    c.send_raw(b"\r\n\n\r   \r\n \n\r\n\r\n");
    assert!(c.nothing_pending());
    c.send_raw(b"     \r\nuname alice\r\n\r\n");
    c.expect("+OK you are alice");
    c.send_raw(b"\r\n   \n");
    assert!(c.nothing_pending());
}

/// §1: a control byte (0x00–0x1F other than the terminator, and 0x7F) in a line is a
/// framing violation.
#[test]
fn control_bytes_are_framing_violations() {
    let server = Server::start(&[]);
    for (i, b) in [0x00u8, 0x01, 0x08, b'\t', 0x0B, 0x0C, 0x1B, 0x1F, 0x7F]
        .into_iter()
        .enumerate()
    {
        let c = server.register(&format!("user{i}"));
        let mut line = b"chatm ".to_vec();
        line.extend_from_slice(format!("user{i} user{i} a").as_bytes());
        line.push(b);
        line.extend_from_slice(b"b\r\n");
        assert_framing_violation(&server, c, &line, "ESTABLISHED");
    }
}

/// §1: a control byte in NEGOTIATING too.
#[test]
fn control_byte_in_negotiating_is_a_framing_violation() {
    let server = Server::start(&[]);
    let c = server.connect().greeted();
    assert_framing_violation(&server, c, b"uname al\x00ice\r\n", "NEGOTIATING");
}

/// §1: a PDU must be valid UTF-8: a stray byte, a truncated sequence, an overlong
/// encoding and an encoded surrogate are framing violations.
#[test]
fn invalid_utf8_is_a_framing_violation() {
    let server = Server::start(&[]);
    let bad: [&[u8]; 4] = [b"\xff", b"gr\xc3", b"\xc0\xaf", b"\xed\xa0\x80"];
    for (i, bytes) in bad.into_iter().enumerate() {
        let c = server.register(&format!("user{i}"));
        let mut line = format!("chatm user{i} user{i} ").into_bytes();
        line.extend_from_slice(bytes);
        line.extend_from_slice(b"\r\n");
        assert_framing_violation(&server, c, &line, "ESTABLISHED");
    }
}

/// §1: keywords and nicknames are ASCII; only the free text of `chatm` may be non-ASCII
/// UTF-8 (a non-ASCII nickname is INVALID, a non-ASCII ping token is refused).
#[test]
fn only_chatm_text_may_be_non_ascii() {
    let server = Server::start(&["--max-retries", "5"]);
    let mut bob = server.register("bob");
    let mut c = server.connect().greeted();
    c.send("uname zoë");
    c.expect_prefix("-ERR [INVALID] ");
    c.send("ping é");
    c.expect_prefix("-ERR [SYNTAX] ");
    c.send("uname zoe");
    c.expect("+OK you are zoe");
    c.send("cname zoë");
    c.expect_prefix("-ERR [INVALID] ");
    c.send("chatm zoe bob ¡hola, señor! 🙂");
    c.expect("+OK message relayed");
    bob.expect("chatm zoe bob ¡hola, señor! 🙂");
}
