//! The NEGOTIATING state over real sockets: the greeting (§2), the NEGOTIATING rows of the
//! transition table (§3), the NEGOTIATING column of the legality table (§4), and `uname`
//! with its retry budget (§5.1 uname, §6 failed attempts).

use crate::harness::{Client, Server};

/// Reads the next line, checks it is `-ERR [code] ... (attempt k of n)`, returns it.
fn expect_attempt(c: &mut Client, code: &str, k: u32, n: u32) -> String {
    let line = c.expect_prefix(&format!("-ERR [{code}] "));
    let tail = format!(" (attempt {k} of {n})");
    assert!(line.ends_with(&tail), "{line:?} should end with {tail:?}");
    line
}

/// A fresh connection in NEGOTIATING, greeting read.
fn negotiating(server: &Server) -> Client {
    server.connect().greeted()
}

/// §4: `line` in NEGOTIATING is a violation: `-ERR [STATE] <keyword> is not allowed in
/// NEGOTIATING`, `cquit protocol violation`, the server closes; logged as a warning,
/// NEGOTIATING -> ABORTED on connection_error.
fn assert_violation(line: &str, keyword: &str) {
    let server = Server::start(&[]);
    let mut c = negotiating(&server);
    let peer = c.peer();
    c.send(line);
    c.expect_close(&[
        &format!("-ERR [STATE] {keyword} is not allowed in NEGOTIATING"),
        "cquit protocol violation",
    ]);
    drop(c);
    let logged = server.wait_aborted(&peer, "NEGOTIATING");
    assert!(logged.contains("WARN"), "violations are warnings: {logged}");
    assert!(logged.contains("state violation"), "{logged}");
}

// ---- §2, §3: accept and registration ----

/// §2: on accept the server greets with `+OK xscp/1 ready`; §3 row
/// LISTEN -> NEGOTIATING on tcp_connection_accepted.
#[test]
fn accept_greets_and_enters_negotiating() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let greeting = c.line();
    assert!(
        greeting == "+OK xscp/1 ready" || greeting.starts_with("+OK xscp/1 ready "),
        "{greeting:?}"
    );
    server.wait_peer_log(
        &c.peer(),
        "LISTEN -> NEGOTIATING on tcp_connection_accepted",
    );
}

/// §5.1 uname, §3 row NEGOTIATING -> ESTABLISHED on credentials_validated: a new name gets
/// `+OK you are <name>` and the audit line names it.
#[test]
fn new_name_is_accepted_and_establishes() {
    let server = Server::start(&[]);
    let mut c = negotiating(&server);
    c.send("uname alice");
    c.expect("+OK you are alice");
    server.wait_peer_log(
        &c.peer(),
        "NEGOTIATING -> ESTABLISHED on credentials_validated nick=alice",
    );
    // Now ESTABLISHED: a session command is legal.
    c.send("users");
    assert_eq!(
        c.multiline(),
        ("+OK 1 users".to_string(), vec!["alice".to_string()])
    );
}

/// §1: the keyword is case-insensitive.
#[test]
fn keywords_are_case_insensitive() {
    let server = Server::start(&[]);
    let mut c = negotiating(&server);
    c.send("PiNg t1");
    c.expect("+OK pong t1");
    c.send("UNAME alice");
    c.expect("+OK you are alice");
}

/// §1: tokens are separated by one or more spaces; leading spaces do not matter.
#[test]
fn runs_of_spaces_separate_tokens() {
    let server = Server::start(&[]);
    let mut c = negotiating(&server);
    c.send("   uname     alice");
    c.expect("+OK you are alice");
}

/// §1: a keyword is at most five characters; a longer one is not a known command, even
/// if it starts like one (SYNTAX, a failed attempt in NEGOTIATING).
#[test]
fn keyword_longer_than_five_is_unknown() {
    let server = Server::start(&[]);
    let mut c = negotiating(&server);
    c.send("unamex alice");
    expect_attempt(&mut c, "SYNTAX", 1, 3);
    c.send("uname alice");
    c.expect("+OK you are alice");
}

/// §5.1 uname: a nickname is 1–16 ASCII characters, a letter first, then letters, digits,
/// `-` or `_`. Each valid form is accepted.
#[test]
fn valid_nicknames_are_accepted() {
    let server = Server::start(&[]);
    for nick in ["a", "Z", "Bob_2", "x-y", "abcdefghijklmnop", "a1-_b"] {
        let mut c = negotiating(&server);
        c.send(&format!("uname {nick}"));
        c.expect(&format!("+OK you are {nick}"));
    }
}

/// §5.1 uname: a malformed nickname is `-ERR [INVALID] ...` and a failed attempt, with the
/// count in the text; §3 row NEGOTIATING -> NEGOTIATING on invalid_credentials.
#[test]
fn malformed_nicknames_are_invalid_and_counted() {
    let bad = [
        "1abc",
        "_a",
        "-a",
        "a.b",
        "a*",
        "abcdefghijklmnopq",
        "é",
        "ab/c",
        "a+b",
    ];
    let n = bad.len() as u32 + 1;
    let server = Server::start(&["--max-retries", &n.to_string()]);
    let mut c = negotiating(&server);
    for (i, nick) in bad.iter().enumerate() {
        c.send(&format!("uname {nick}"));
        expect_attempt(&mut c, "INVALID", i as u32 + 1, n);
    }
    let peer = c.peer();
    let logged = server.wait_peer_log(&peer, "NEGOTIATING -> NEGOTIATING on invalid_credentials");
    assert!(!logged.contains("ESTABLISHED"), "{logged}");
    // Still negotiating, with one attempt left.
    c.send("uname alice");
    c.expect("+OK you are alice");
}

/// §5.1 uname: a name in use by a connected client is
/// `-ERR [IN-USE] <name> is already taken by another client (attempt k of n)`.
#[test]
fn name_in_use_is_refused_with_the_attempt_count() {
    let server = Server::start(&[]);
    let _bob = server.register("bob");
    let mut c = negotiating(&server);
    c.send("uname 9");
    expect_attempt(&mut c, "INVALID", 1, 3);
    c.send("uname bob");
    c.expect("-ERR [IN-USE] bob is already taken by another client (attempt 2 of 3)");
    server.wait_peer_log(&c.peer(), "cause=[IN-USE]");
    c.send("uname carol");
    c.expect("+OK you are carol");
}

/// §5.1 uname: uniqueness is case-insensitive, and the spelling given is kept.
#[test]
fn uniqueness_ignores_case_and_spelling_is_kept() {
    let server = Server::start(&[]);
    let mut alice = server.register("Alice");
    let mut c = negotiating(&server);
    c.send("uname aLICE");
    c.expect("-ERR [IN-USE] aLICE is already taken by another client (attempt 1 of 3)");
    alice.send("users");
    assert_eq!(
        alice.multiline(),
        ("+OK 1 users".to_string(), vec!["Alice".to_string()])
    );
}

/// §5.1 uname: a missing argument is `-ERR [SYNTAX]`, a failed attempt.
#[test]
fn uname_without_argument_is_syntax_and_counted() {
    let server = Server::start(&[]);
    let mut c = negotiating(&server);
    c.send("uname");
    expect_attempt(&mut c, "SYNTAX", 1, 3);
    c.send("uname a b");
    expect_attempt(&mut c, "SYNTAX", 2, 3);
    c.send("uname alice");
    c.expect("+OK you are alice");
}

/// §4 last row: any other keyword in NEGOTIATING is SYNTAX and counts as a failed attempt.
#[test]
fn unknown_keyword_is_syntax_and_counted() {
    let server = Server::start(&[]);
    let mut c = negotiating(&server);
    c.send("hello there");
    expect_attempt(&mut c, "SYNTAX", 1, 3);
    c.send("login alice");
    expect_attempt(&mut c, "SYNTAX", 2, 3);
    server.wait_peer_log(
        &c.peer(),
        "NEGOTIATING -> NEGOTIATING on invalid_credentials",
    );
    c.send("uname alice");
    c.expect("+OK you are alice");
}

/// §6: any SYNTAX refusal in NEGOTIATING is a failed attempt, also for a legal command
/// with bad arguments (a ping token longer than 32 characters).
#[test]
fn bad_arguments_to_a_legal_command_count_in_negotiating() {
    let server = Server::start(&[]);
    let mut c = negotiating(&server);
    c.send(&format!("ping {}", "t".repeat(33)));
    expect_attempt(&mut c, "SYNTAX", 1, 3);
    c.send("capa now");
    expect_attempt(&mut c, "SYNTAX", 2, 3);
}

/// §5.1 uname: when the counter reaches `--max-retries` (default 3) the failing attempt still
/// gets its `-ERR`, then `cquit too many failed attempts`; §3 row NEGOTIATING -> ABORTED on
/// max_retries_exceeded, then ABORTED -> CLOSED. Refusals of every kind count together.
#[test]
fn third_failed_attempt_aborts_with_default_budget() {
    let server = Server::start(&[]);
    let _bob = server.register("bob");
    let mut c = negotiating(&server);
    let peer = c.peer();
    c.send("uname 1x");
    expect_attempt(&mut c, "INVALID", 1, 3);
    c.send("bogus");
    expect_attempt(&mut c, "SYNTAX", 2, 3);
    c.send("uname BOB");
    let rest = c.until_eof();
    assert_eq!(
        rest,
        [
            "-ERR [IN-USE] BOB is already taken by another client (attempt 3 of 3)",
            "cquit too many failed attempts",
        ]
    );
    drop(c);
    server.wait_peer_log(&peer, "NEGOTIATING -> ABORTED on max_retries_exceeded");
    server.wait_peer_log(&peer, "ABORTED -> CLOSED on close");
}

/// §5.1 uname: the budget is `--max-retries`; attempts below it leave the connection open.
#[test]
fn max_retries_option_sets_the_budget() {
    let server = Server::start(&["--max-retries", "5"]);
    let mut c = negotiating(&server);
    for k in 1..5 {
        c.send("uname 0");
        expect_attempt(&mut c, "INVALID", k, 5);
    }
    c.send("uname 0");
    let line = c.line();
    assert!(line.ends_with("(attempt 5 of 5)"), "{line}");
    c.expect_close(&["cquit too many failed attempts"]);
}

/// §5.1 uname: with a budget of one, the first failure ends the connection.
#[test]
fn budget_of_one_aborts_on_the_first_failure() {
    let server = Server::start(&["--max-retries", "1"]);
    let mut c = negotiating(&server);
    c.send("uname");
    let line = c.line();
    assert!(line.starts_with("-ERR [SYNTAX] ") && line.ends_with("(attempt 1 of 1)"));
    c.expect_close(&["cquit too many failed attempts"]);
}

/// §4: `ping` and `capa` are legal in NEGOTIATING and are not failed attempts: with a
/// budget of one, they leave the single attempt unspent.
#[test]
fn legal_commands_do_not_spend_the_budget() {
    let server = Server::start(&["--max-retries", "1"]);
    let mut c = negotiating(&server);
    c.send("ping");
    c.expect("+OK pong");
    c.send("ping abc");
    c.expect("+OK pong abc");
    c.send("capa");
    let (first, items) = c.multiline();
    assert_eq!(first, "+OK capability list follows");
    assert!(items.iter().any(|i| i == "XSCP 1"), "{items:?}");
    c.send("uname alice");
    c.expect("+OK you are alice");
}

/// §4 + §5.3 cquit: `cquit` is legal in NEGOTIATING: `+OK terminating tasks and
/// disconnecting`, then end of stream; §3 rows NEGOTIATING -> UPDATE on quit_requested and
/// UPDATE -> CLOSED on close.
#[test]
fn cquit_in_negotiating_is_an_orderly_quit() {
    let server = Server::start(&[]);
    let mut c = negotiating(&server);
    let peer = c.peer();
    c.send("cquit");
    c.expect_close(&["+OK terminating tasks and disconnecting"]);
    drop(c);
    server.wait_peer_log(&peer, "NEGOTIATING -> UPDATE on quit_requested");
    server.wait_peer_log(&peer, "UPDATE -> CLOSED on close");
}

/// §3 row NEGOTIATING -> ABORTED on connection_error, cause: the peer closed the connection.
#[test]
fn peer_closing_in_negotiating_is_a_connection_error() {
    let server = Server::start(&[]);
    let c = negotiating(&server);
    let peer = c.peer();
    drop(c);
    let logged = server.wait_aborted(&peer, "NEGOTIATING");
    assert!(
        logged.contains("closed"),
        "the log names the cause: {logged}"
    );
}

/// §3 row NEGOTIATING -> ABORTED on connection_error, cause: the peer reset the connection.
#[test]
fn peer_reset_in_negotiating_is_a_connection_error() {
    let server = Server::start(&[]);
    let mut c = negotiating(&server);
    // Make sure the server is reading this connection before the reset.
    assert!(c.nothing_pending());
    let peer = c.peer();
    c.reset();
    let logged = server.wait_aborted(&peer, "NEGOTIATING");
    assert!(
        logged.contains("reset"),
        "the log names the cause: {logged}"
    );
}

/// §5.1 uname → ESTABLISHED at once: a command pipelined right after `uname` in the same
/// write is judged in ESTABLISHED.
#[test]
fn commands_pipelined_after_uname_are_established() {
    let server = Server::start(&[]);
    let mut c = negotiating(&server);
    c.send_raw(b"uname alice\r\nusers\r\nnotif on\r\n");
    c.expect("+OK you are alice");
    assert_eq!(
        c.multiline(),
        ("+OK 1 users".to_string(), vec!["alice".to_string()])
    );
    c.expect("+OK notifications on");
}

// ---- §4: violations in NEGOTIATING, one test per row ----

/// §4 row `cname <new>`: a violation in NEGOTIATING.
#[test]
fn cname_in_negotiating_is_a_violation() {
    assert_violation("cname bob", "cname");
}

/// §4 row `chatm`: a violation in NEGOTIATING.
#[test]
fn chatm_in_negotiating_is_a_violation() {
    assert_violation("chatm alice bob hello", "chatm");
}

/// §4 row `chatr`: a violation in NEGOTIATING.
#[test]
fn chatr_in_negotiating_is_a_violation() {
    assert_violation("chatr alice bob", "chatr");
}

/// §4 row `users`: a violation in NEGOTIATING.
#[test]
fn users_in_negotiating_is_a_violation() {
    assert_violation("users", "users");
}

/// §4 row `notif on|off`: a violation in NEGOTIATING.
#[test]
fn notif_in_negotiating_is_a_violation() {
    assert_violation("notif on", "notif");
}

/// §4 row `+OK pong <token>`: a violation in NEGOTIATING.
#[test]
fn pong_in_negotiating_is_a_violation() {
    assert_violation("+OK pong 1.1", "+OK pong");
}

/// §4: legality is judged before the arguments — a session command with wrong arguments
/// is still a STATE violation, not a SYNTAX refusal — and the reply names the keyword as
/// the client wrote it.
#[test]
fn legality_comes_before_arguments() {
    assert_violation("chatm", "chatm");
    assert_violation("USERS a b c", "USERS");
}

/// §4: "No partial handling": after a violation nothing else of the same write is handled.
#[test]
fn nothing_after_a_violation_is_handled() {
    let server = Server::start(&[]);
    let mut c = negotiating(&server);
    c.send_raw(b"users\r\nping after\r\nuname alice\r\n");
    c.expect_close(&[
        "-ERR [STATE] users is not allowed in NEGOTIATING",
        "cquit protocol violation",
    ]);
    let mut other = server.register("alice");
    other.send("users");
    assert_eq!(other.multiline().0, "+OK 1 users");
}
