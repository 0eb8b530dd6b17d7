//! The ESTABLISHED state over real sockets: the ESTABLISHED column of the legality table
//! (§4), every command of §5 with its replies and codes, the ESTABLISHED rows of the
//! transition table (§3), and the ordering promise of §5.5 chatm under pipelining.

use crate::harness::{Client, Server, thread_names};

use std::io::Write;
use std::thread;

/// §4: `line` in ESTABLISHED ends the connection with `first` (a `-ERR`), then
/// `cquit protocol violation`; logged as a warning, ESTABLISHED -> ABORTED on
/// connection_error, then ABORTED -> CLOSED.
fn assert_aborts(server: &Server, mut c: Client, line: &str, first: &str) -> Vec<String> {
    let peer = c.peer();
    c.send(line);
    let lines = c.until_eof();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(first),
        "{lines:?} should start {first:?}"
    );
    assert_eq!(lines[1], "cquit protocol violation");
    drop(c);
    let logged = server.wait_aborted(&peer, "ESTABLISHED");
    assert!(logged.contains("WARN"), "violations are warnings: {logged}");
    lines
}

fn users(c: &mut Client) -> (String, Vec<String>) {
    c.send("users");
    let (first, mut names) = c.multiline();
    names.sort();
    (first, names)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---- §4: the ESTABLISHED column ----

/// §4 row `uname`: a violation in ESTABLISHED (handshake again).
#[test]
fn uname_in_established_is_a_violation() {
    let server = Server::start(&[]);
    let alice = server.register("alice");
    let lines = assert_aborts(
        &server,
        alice,
        "uname bob",
        "-ERR [STATE] uname is not allowed in ESTABLISHED",
    );
    assert_eq!(lines[0], "-ERR [STATE] uname is not allowed in ESTABLISHED");
}

/// §4: legality comes before arity: `uname` without its argument in ESTABLISHED is still a
/// STATE violation, and the reply names the keyword as written.
#[test]
fn uname_without_argument_in_established_is_still_a_violation() {
    let server = Server::start(&[]);
    let alice = server.register("alice");
    let lines = assert_aborts(&server, alice, "UName", "-ERR [STATE] ");
    assert_eq!(lines[0], "-ERR [STATE] UName is not allowed in ESTABLISHED");
}

/// §4 row `+OK pong` and §5.2 server ping: a pong that answers no outstanding ping is a STATE
/// violation. (The text is not fixed by §5; only the code and the close are checked.)
#[test]
fn unsolicited_pong_is_a_state_violation() {
    let server = Server::start(&[]);
    let alice = server.register("alice");
    assert_aborts(&server, alice, "+OK pong 1.1", "-ERR [STATE] ");
}

/// §4 last row: an unknown keyword in ESTABLISHED is a SYNTAX refusal: no attempt count,
/// no budget, the connection stays.
#[test]
fn unknown_keyword_in_established_is_a_plain_refusal() {
    let server = Server::start(&["--max-retries", "1"]);
    let mut alice = server.register("alice");
    for _ in 0..4 {
        alice.send("hello");
        let line = alice.expect_prefix("-ERR [SYNTAX] ");
        assert!(!line.contains("attempt"), "{line}");
    }
    assert!(alice.nothing_pending());
}

/// §4 rows `ping`, `capa`: legal in ESTABLISHED.
#[test]
fn ping_and_capa_are_legal_in_established() {
    let server = Server::start(&[]);
    let mut alice = server.register("alice");
    alice.send("ping");
    alice.expect("+OK pong");
    alice.send("capa");
    assert_eq!(alice.multiline().0, "+OK capability list follows");
}

// ---- §5.2 ping ----

/// §5.2 ping: `+OK pong` with the token if one was given; a token may be 32 characters.
#[test]
fn ping_echoes_its_token() {
    let server = Server::start(&[]);
    let mut alice = server.register("alice");
    alice.send("ping");
    alice.expect("+OK pong");
    alice.send("ping x1");
    alice.expect("+OK pong x1");
    let token = "0123456789abcdef0123456789ABCDEF";
    assert_eq!(token.len(), 32);
    alice.send(&format!("ping {token}"));
    alice.expect(&format!("+OK pong {token}"));
    alice.send("ping !\"#$%&'()*+,-./:;<=>?@[]^_`{|}~");
    alice.expect("+OK pong !\"#$%&'()*+,-./:;<=>?@[]^_`{|}~");
}

/// §5.2 ping: a token longer than 32 characters is refused (SYNTAX, reading taken here:
/// the token is an argument that does not fit); in ESTABLISHED the connection stays.
#[test]
fn ping_token_longer_than_32_is_refused() {
    let server = Server::start(&[]);
    let mut alice = server.register("alice");
    alice.send(&format!("ping {}", "t".repeat(33)));
    let line = alice.expect_prefix("-ERR [SYNTAX] ");
    assert!(!line.contains("pong"), "{line}");
    assert!(alice.nothing_pending());
}

// ---- §5.4 cname ----

/// §5.4 cname: `+OK name changed from <old> to <new>`; the new name is in `users`, the old
/// one is free again.
#[test]
fn cname_renames() {
    let server = Server::start(&["--hold", "0"]);
    let mut alice = server.register("alice");
    alice.send("cname carol");
    alice.expect("+OK name changed from alice to carol");
    assert_eq!(
        users(&mut alice),
        ("+OK 1 users".into(), strings(&["carol"]))
    );
    let mut other = server.register("alice");
    assert_eq!(
        users(&mut other),
        ("+OK 2 users".into(), strings(&["alice", "carol"]))
    );
}

/// §5.4 cname: a change of case only is allowed.
#[test]
fn cname_change_of_case_only_is_allowed() {
    let server = Server::start(&[]);
    let mut alice = server.register("alice");
    alice.send("cname ALICE");
    alice.expect("+OK name changed from alice to ALICE");
    assert_eq!(
        users(&mut alice),
        ("+OK 1 users".into(), strings(&["ALICE"]))
    );
}

/// §5.4 cname: a name in use is `-ERR [IN-USE] <name> is already taken by another client`,
/// uniqueness ignores case, and there is no retry counting here.
#[test]
fn cname_to_a_name_in_use_is_refused_without_counting() {
    let server = Server::start(&["--max-retries", "1"]);
    let _bob = server.register("bob");
    let mut alice = server.register("alice");
    alice.send("cname bob");
    alice.expect("-ERR [IN-USE] bob is already taken by another client");
    alice.send("cname BOB");
    alice.expect("-ERR [IN-USE] BOB is already taken by another client");
    assert_eq!(
        users(&mut alice),
        ("+OK 2 users".into(), strings(&["alice", "bob"]))
    );
}

/// §5.4 cname: a malformed name is `-ERR [INVALID] ...`, no retry counting, and the
/// connection stays; a missing argument is SYNTAX.
#[test]
fn cname_to_a_malformed_name_is_invalid_without_counting() {
    let server = Server::start(&["--max-retries", "1"]);
    let mut alice = server.register("alice");
    for bad in ["9lives", "a.b", "abcdefghijklmnopq", "_x"] {
        alice.send(&format!("cname {bad}"));
        let line = alice.expect_prefix("-ERR [INVALID] ");
        assert!(!line.contains("attempt"), "{line}");
    }
    alice.send("cname");
    alice.expect_prefix("-ERR [SYNTAX] ");
    assert_eq!(
        users(&mut alice),
        ("+OK 1 users".into(), strings(&["alice"]))
    );
}

/// §5.4 cname + chatm: after a rename the client's own nickname is the new one: the old one
/// is someone else's (SPOOF), the new one relays.
#[test]
fn after_cname_the_new_name_is_the_sender() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    alice.send("cname carol");
    alice.expect("+OK name changed from alice to carol");
    alice.send("chatm carol bob hi");
    alice.expect("+OK message relayed");
    bob.expect("chatm carol bob hi");
    assert_aborts(&server, alice, "chatm alice bob hi", "-ERR [SPOOF] ");
}

/// §5.4 cname: the rename takes effect before the next command is read: a `chatm` pipelined
/// right after `cname` in the same write is judged under the new name.
#[test]
fn cname_takes_effect_for_pipelined_commands() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    alice.send_raw(b"cname carol\r\nchatm carol bob hi\r\nusers\r\n");
    alice.expect("+OK name changed from alice to carol");
    alice.expect("+OK message relayed");
    bob.expect("chatm carol bob hi");
    let (first, mut names) = alice.multiline();
    names.sort();
    assert_eq!(
        (first, names),
        ("+OK 2 users".into(), strings(&["bob", "carol"]))
    );
}

// ---- §5.5 chatm ----

/// §5.5 chatm: `+OK message relayed` to the sender, and the recipient gets the line exactly
/// as sent: the text is the rest of the line, byte for byte (runs of spaces, trailing
/// spaces, non-ASCII UTF-8).
#[test]
fn chatm_direct_is_relayed_byte_for_byte() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    for text in [
        "hello bob",
        "a  b   c    ",
        "grüße, 世界 ✓",
        "chatm alice bob nested",
        "*",
    ] {
        alice.send(&format!("chatm alice bob {text}"));
        alice.expect("+OK message relayed");
        bob.expect(&format!("chatm alice bob {text}"));
    }
    assert!(alice.nothing_pending());
    assert!(bob.nothing_pending());
}

/// §1 + §5.5 chatm: tokens are separated by runs of spaces; the text starts at its first
/// non-space byte.
#[test]
fn chatm_fields_may_be_separated_by_runs_of_spaces() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    alice.send("chatm   alice    bob     hi  there");
    alice.expect("+OK message relayed");
    bob.expect("chatm alice bob hi  there");
}

/// §5.5 chatm: the recipient is matched ignoring case, and its field is relayed as sent.
#[test]
fn chatm_recipient_ignores_case() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    alice.send("chatm alice BOB hi");
    alice.expect("+OK message relayed");
    bob.expect("chatm alice BOB hi");
}

/// §5.5 chatm: the sender must be the client's own nickname, case-insensitively: another
/// case of it is accepted, and the recipient gets the line as it was written, names and
/// text (the text byte for byte, its spaces included).
#[test]
fn chatm_sender_ignores_case_and_is_relayed_as_written() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    alice.send("chatm ALICE BOB hi  there ");
    alice.expect("+OK message relayed");
    bob.expect("chatm ALICE BOB hi  there ");
    // The receipt names the sender as the relayed chatm did; it is passed on as written.
    bob.send("chatr ALICE BOB");
    alice.expect("chatr ALICE BOB");
}

/// §5.5 chatm: `*` reaches every other established client, with the recipient field `*`;
/// not the sender, not a client still negotiating.
#[test]
fn chatm_broadcast_reaches_every_other_established_client() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut carol = server.register("carol");
    let mut stranger = server.connect().greeted();
    assert!(stranger.nothing_pending());
    let mut alice = server.register("alice");
    alice.send("chatm alice * hello all");
    alice.expect("+OK message relayed");
    bob.expect("chatm alice * hello all");
    carol.expect("chatm alice * hello all");
    assert!(alice.nothing_pending());
    assert!(stranger.nothing_pending());
}

/// §5.5 chatm: an unknown recipient is `-ERR [NO-SUCH] no such user <recipient>`; a client
/// still negotiating has no name; the connection stays.
#[test]
fn chatm_to_unknown_user_is_no_such() {
    let server = Server::start(&[]);
    let mut alice = server.register("alice");
    let _stranger = server.connect().greeted();
    alice.send("chatm alice zed hi");
    alice.expect("-ERR [NO-SUCH] no such user zed");
    alice.send("chatm alice 9x hi");
    alice.expect("-ERR [NO-SUCH] no such user 9x");
    assert!(alice.nothing_pending());
}

/// §5.5 chatm: empty text is `-ERR [SYNTAX]`, also when only spaces follow the recipient;
/// nothing is relayed and the connection stays.
#[test]
fn chatm_with_empty_text_is_syntax() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    alice.send("chatm alice bob");
    alice.expect_prefix("-ERR [SYNTAX] ");
    alice.send("chatm alice bob    ");
    alice.expect_prefix("-ERR [SYNTAX] ");
    alice.send("chatm alice");
    alice.expect_prefix("-ERR [SYNTAX] ");
    assert!(bob.nothing_pending());
    assert!(alice.nothing_pending());
}

/// §5.5 chatm: a sender field that is not the client's own nickname is
/// `-ERR [SPOOF] ...`, `cquit protocol violation`, aborted (cause logged); nothing is
/// relayed.
#[test]
fn chatm_with_spoofed_sender_is_a_violation() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let _carol = server.register("carol");
    let alice = server.register("alice");
    let peer = alice.peer();
    assert_aborts(
        &server,
        alice,
        "chatm carol bob I am carol",
        "-ERR [SPOOF] ",
    );
    let logged = server.wait_peer_log(&peer, "ESTABLISHED -> ABORTED on connection_error");
    assert!(logged.contains("spoof"), "{logged}");
    assert!(bob.nothing_pending());
}

// ---- §5.6 chatr ----

/// §5.6 chatr: the receipt is relayed to the original sender as `chatr <sender>
/// <recipient>`, and its author gets no reply.
#[test]
fn chatr_is_relayed_to_the_sender_without_reply() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    alice.send("chatm alice bob hi");
    alice.expect("+OK message relayed");
    bob.expect("chatm alice bob hi");
    bob.send("chatr alice bob");
    alice.expect("chatr alice bob");
    assert!(bob.nothing_pending());
    assert!(alice.nothing_pending());
}

/// §5.6 chatr: without a relayed message awaiting its receipt:
/// `-ERR [NO-SUCH] no message from <sender> awaits a receipt`; each message takes one
/// receipt only.
#[test]
fn chatr_without_awaited_message_is_no_such() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    bob.send("chatr alice bob");
    bob.expect("-ERR [NO-SUCH] no message from alice awaits a receipt");
    for i in 0..2 {
        alice.send(&format!("chatm alice bob m{i}"));
        alice.expect("+OK message relayed");
        bob.expect(&format!("chatm alice bob m{i}"));
    }
    bob.send("chatr alice bob");
    bob.send("chatr alice bob");
    bob.send("chatr alice bob");
    bob.expect("-ERR [NO-SUCH] no message from alice awaits a receipt");
    alice.expect("chatr alice bob");
    alice.expect("chatr alice bob");
    assert!(alice.nothing_pending());
    // A message from someone else does not make a receipt for alice legal.
    let mut carol = server.register("carol");
    carol.send("chatm carol bob yo");
    carol.expect("+OK message relayed");
    bob.expect("chatm carol bob yo");
    bob.send("chatr alice bob");
    bob.expect("-ERR [NO-SUCH] no message from alice awaits a receipt");
    bob.send("chatr carol bob");
    carol.expect("chatr carol bob");
}

/// §5.6 chatr: a recipient field that is neither the client's own nickname nor `*` is a
/// SPOOF violation.
#[test]
fn chatr_with_spoofed_recipient_is_a_violation() {
    let server = Server::start(&[]);
    let mut alice = server.register("alice");
    let _carol = server.register("carol");
    let mut bob = server.register("bob");
    alice.send("chatm alice bob hi");
    alice.expect("+OK message relayed");
    bob.expect("chatm alice bob hi");
    let peer = bob.peer();
    assert_aborts(&server, bob, "chatr alice carol", "-ERR [SPOOF] ");
    let logged = server.wait_peer_log(&peer, "ESTABLISHED -> ABORTED on connection_error");
    assert!(logged.contains("spoof"), "{logged}");
    assert!(alice.nothing_pending());
}

/// §5.6 chatr: a receipt for a broadcast (`*`) is accepted and not relayed: no reply to its
/// author, nothing to the sender.
#[test]
fn chatr_for_a_broadcast_is_accepted_silently() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    alice.send("chatm alice * hi all");
    alice.expect("+OK message relayed");
    bob.expect("chatm alice * hi all");
    bob.send("chatr alice *");
    assert!(bob.nothing_pending());
    assert!(alice.nothing_pending());
    // A broadcast is not a direct message: it leaves no direct receipt to give.
    bob.send("chatr alice bob");
    bob.expect("-ERR [NO-SUCH] no message from alice awaits a receipt");
}

/// §5.6 chatr: after the original sender renamed, the receipt still names the sender as the
/// relayed `chatm` did, and reaches the renamed sender's connection.
#[test]
fn chatr_after_the_sender_renamed_reaches_it() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    alice.send("chatm alice bob hi");
    alice.expect("+OK message relayed");
    bob.expect("chatm alice bob hi");
    alice.send("cname carol");
    alice.expect("+OK name changed from alice to carol");
    bob.send("chatr alice bob");
    alice.expect("chatr alice bob");
    assert!(bob.nothing_pending());
}

/// §5.6 chatr: after the recipient renamed, it acknowledges under its new name (its own
/// nickname now) and the receipt is relayed.
#[test]
fn chatr_after_the_recipient_renamed_is_relayed() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    alice.send("chatm alice bob hi");
    alice.expect("+OK message relayed");
    bob.expect("chatm alice bob hi");
    bob.send("cname robert");
    bob.expect("+OK name changed from bob to robert");
    bob.send("chatr alice robert");
    alice.expect("chatr alice robert");
    assert!(bob.nothing_pending());
}

/// §5.6 chatr: if the original sender has left and its name is not held, the receipt is
/// accepted and dropped: no reply to its author, and the server logs it.
#[test]
fn chatr_after_the_sender_left_is_dropped() {
    // Not held: with a hold the receipt would go into the name's mailbox (§5.8).
    let server = Server::start(&["--hold", "0"]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    alice.send("chatm alice bob hi");
    alice.expect("+OK message relayed");
    bob.expect("chatm alice bob hi");
    alice.send("cquit");
    alice.expect_close(&["+OK terminating tasks and disconnecting"]);
    drop(alice);
    bob.send("chatr alice bob");
    assert!(bob.nothing_pending());
    server.wait_log(|l| l.contains("receipt") && l.contains("dropped"));
}

// ---- §5.4 users, notif; §5.3 capa, cquit ----

/// §5.4 users: `+OK <n> users`, one nickname a line (spelled as given), `.`; clients still
/// negotiating are not users.
#[test]
fn users_lists_established_clients() {
    let server = Server::start(&[]);
    let _b = server.register("Bob");
    let _c = server.register("carol");
    let _stranger = server.connect().greeted();
    let mut alice = server.register("alice");
    assert_eq!(
        users(&mut alice),
        ("+OK 3 users".into(), strings(&["Bob", "alice", "carol"]))
    );
}

/// §5.4 notif: `+OK notifications on|off`; notifications are off by default, so a plain
/// client sees no line when someone joins.
#[test]
fn notif_is_off_by_default_and_switches() {
    let server = Server::start(&[]);
    let mut alice = server.register("alice");
    let _bob = server.register("bob");
    assert!(alice.nothing_pending());
    alice.send("notif on");
    alice.expect("+OK notifications on");
    alice.send("notif off");
    alice.expect("+OK notifications off");
    let _carol = server.register("carol");
    assert!(alice.nothing_pending());
    alice.send("notif maybe");
    alice.expect_prefix("-ERR [SYNTAX] ");
}

/// §5.4 notif: while on, a client gets `notif join`, `notif cname` and `notif quit` for
/// other clients (quit by `cquit` and by abort), and nothing about itself.
#[test]
fn notif_reports_join_cname_and_quit_of_others() {
    let server = Server::start(&[]);
    let mut alice = server.register("alice");
    alice.send("notif on");
    alice.expect("+OK notifications on");
    let mut carol = server.register("carol");
    alice.expect("notif join carol");
    carol.send("cname carla");
    carol.expect("+OK name changed from carol to carla");
    alice.expect("notif cname carol carla");
    carol.send("cquit");
    carol.expect_close(&["+OK terminating tasks and disconnecting"]);
    alice.expect("notif quit carla");
    let dave = server.register("dave");
    alice.expect("notif join dave");
    drop(dave);
    alice.expect("notif quit dave");
    // A client that never had a name leaves without a notification.
    let stranger = server.connect().greeted();
    let peer = stranger.peer();
    drop(stranger);
    server.wait_peer_log(&peer, "-> CLOSED on close");
    // Its own changes are not reported to the subscriber itself.
    alice.send("cname alicia");
    alice.expect("+OK name changed from alice to alicia");
    assert!(alice.nothing_pending());
}

/// §5.4 notif: subscribing is per client: a subscriber that renames keeps getting
/// notifications, a non-subscriber gets none.
#[test]
fn notif_is_per_client() {
    let server = Server::start(&[]);
    let mut quiet = server.register("quiet");
    let mut loud = server.register("loud");
    loud.send("notif on");
    loud.expect("+OK notifications on");
    let _eve = server.register("eve");
    loud.expect("notif join eve");
    loud.send("cname louder");
    loud.expect("+OK name changed from loud to louder");
    let _mallory = server.register("mallory");
    loud.expect("notif join mallory");
    assert!(quiet.nothing_pending());
    assert!(loud.nothing_pending());
}

/// §5.3 capa: `+OK capability list follows`, one capability a line with its setting, `.`;
/// at least XSCP 1, PDU 512, RETRIES, NEGOTIATE, PING, HOLD, BROADCAST, RECEIPTS, USERS,
/// NOTIF, with the settings of the command line; in both states.
#[test]
fn capa_lists_capabilities_with_settings() {
    let server = Server::start(&[
        "--max-retries",
        "5",
        "--negotiate-timeout",
        "45s",
        "--ping-interval",
        "90s",
        "--ping-timeout",
        "15s",
        "--hold",
        "10m",
    ]);
    let mut c = server.connect().greeted();
    for state in ["NEGOTIATING", "ESTABLISHED"] {
        c.send("capa");
        let (first, items) = c.multiline();
        assert_eq!(first, "+OK capability list follows", "{state}");
        for want in [
            "XSCP 1",
            "PDU 512",
            "RETRIES 5",
            "NEGOTIATE 45",
            "PING 90 15",
            "HOLD 600",
            "BROADCAST",
            "RECEIPTS",
            "USERS",
            "NOTIF",
        ] {
            assert!(
                items.iter().any(|i| i == want),
                "{want:?} missing in {state}: {items:?}"
            );
        }
        if state == "NEGOTIATING" {
            c.send("uname alice");
            c.expect("+OK you are alice");
        }
    }
}

/// §5.3 capa: the defaults are what the command line documents.
#[test]
fn capa_shows_the_defaults() {
    let server = Server::start(&[]);
    let mut c = server.connect().greeted();
    c.send("capa");
    let (_, items) = c.multiline();
    for want in [
        "RETRIES 3",
        "NEGOTIATE 30",
        "PING 60 20",
        "HOLD 300",
        "PDU 512",
    ] {
        assert!(items.iter().any(|i| i == want), "{want:?}: {items:?}");
    }
}

/// §5.3 cquit in ESTABLISHED: `+OK terminating tasks and disconnecting`, end of stream; §3
/// rows ESTABLISHED -> UPDATE on quit_requested, UPDATE -> CLOSED on close; the name is
/// released.
#[test]
fn cquit_in_established_is_an_orderly_quit() {
    let server = Server::start(&["--hold", "0"]);
    let mut alice = server.register("alice");
    let peer = alice.peer();
    alice.send("cquit");
    alice.expect_close(&["+OK terminating tasks and disconnecting"]);
    drop(alice);
    server.wait_peer_log(&peer, "ESTABLISHED -> UPDATE on quit_requested");
    server.wait_peer_log(&peer, "UPDATE -> CLOSED on close");
    let mut bob = server.register("bob");
    assert_eq!(users(&mut bob), ("+OK 1 users".into(), strings(&["bob"])));
}

/// §3 row ESTABLISHED -> ABORTED on connection_error, cause: the peer closed the connection.
/// The name is released and subscribers are told.
#[test]
fn peer_closing_in_established_is_a_connection_error() {
    let server = Server::start(&[]);
    let mut watcher = server.register("watcher");
    watcher.send("notif on");
    watcher.expect("+OK notifications on");
    let alice = server.register("alice");
    watcher.expect("notif join alice");
    let peer = alice.peer();
    drop(alice);
    let logged = server.wait_aborted(&peer, "ESTABLISHED");
    assert!(
        logged.contains("closed"),
        "the log names the cause: {logged}"
    );
    watcher.expect("notif quit alice");
}

/// §3 row ESTABLISHED -> ABORTED on connection_error, cause: the peer reset the connection.
#[test]
fn peer_reset_in_established_is_a_connection_error() {
    let server = Server::start(&[]);
    let alice = server.register("alice");
    let peer = alice.peer();
    alice.reset();
    let logged = server.wait_aborted(&peer, "ESTABLISHED");
    assert!(
        logged.contains("reset"),
        "the log names the cause: {logged}"
    );
}

// ---- §2 and §5.5 chatm: ordering ----

/// §2: a response to each command, in order — many commands pipelined in one write are
/// answered one by one in the order sent.
#[test]
fn pipelined_commands_are_answered_in_order() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    let mut batch = String::new();
    for i in 0..50 {
        batch += &format!("ping p{i}\r\nchatm alice bob m{i}\r\nchatm alice zed m{i}\r\nusers\r\n");
    }
    alice.send_raw(batch.as_bytes());
    for i in 0..50 {
        alice.expect(&format!("+OK pong p{i}"));
        alice.expect("+OK message relayed");
        alice.expect("-ERR [NO-SUCH] no such user zed");
        assert_eq!(alice.multiline().0, "+OK 2 users");
    }
    for i in 0..50 {
        bob.expect(&format!("chatm alice bob m{i}"));
    }
}

/// §5.5 chatm, Order: messages from one sender to one recipient arrive in the order sent,
/// and the sender always receives `+OK message relayed` before any receipt for that
/// message — with many `chatm` pipelined in one write and the recipient answering receipts
/// as fast as it can.
#[test]
fn relayed_ok_precedes_its_receipt_under_pipelining() {
    const N: usize = 500;
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    let mut bob_out = bob.writer();
    let answering = thread::spawn(move || {
        for i in 0..N {
            bob.expect(&format!("chatm alice bob {i}"));
            bob_out.write_all(b"chatr alice bob\r\n").expect("receipt");
        }
        bob
    });
    let mut batch = String::new();
    for i in 0..N {
        batch += &format!("chatm alice bob {i}\r\n");
    }
    alice.send_raw(batch.as_bytes());
    let (mut oks, mut receipts) = (0, 0);
    while oks < N || receipts < N {
        match alice.line().as_str() {
            "+OK message relayed" => oks += 1,
            "chatr alice bob" => {
                receipts += 1;
                assert!(
                    receipts <= oks,
                    "receipt {receipts} arrived before +OK message relayed {receipts}"
                );
            }
            other => panic!("unexpected line {other:?}"),
        }
    }
    let mut bob = answering.join().expect("bob's thread");
    assert!(bob.nothing_pending());
    assert!(alice.nothing_pending());
}

/// §5.5 chatm, Order, with many recipients: a broadcast that reaches more clients than the
/// hub writes alone (its `xscp-fanout` helper writes half of their queues) reaches each
/// other client exactly once, each sender's messages in order, with several senders
/// pipelining at once.
#[test]
fn broadcasts_to_many_clients_arrive_once_and_in_order() {
    const CLIENTS: usize = 80;
    const SENDERS: usize = 4;
    const LINES: usize = 50;
    let server = Server::start(&["--max-per-ip", "0"]);
    let mut clients: Vec<Client> = (0..CLIENTS)
        .map(|i| server.register(&format!("c{i}")))
        .collect();
    // (Started before the hub, which has registered the clients.)
    assert!(
        thread_names(server.pid())
            .iter()
            .any(|n| n == "xscp-fanout"),
        "the server runs its fanout helper"
    );
    for (s, sender) in clients.iter_mut().take(SENDERS).enumerate() {
        let batch: String = (0..LINES)
            .map(|n| format!("chatm c{s} * m{n}\r\n"))
            .collect();
        sender.send_raw(batch.as_bytes());
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let mine = if i < SENDERS { LINES } else { 0 };
        let others = if i < SENDERS { SENDERS - 1 } else { SENDERS };
        let (mut oks, mut next) = (0, [0; SENDERS]);
        for _ in 0..mine + others * LINES {
            let line = c.line();
            if line == "+OK message relayed" {
                oks += 1;
                continue;
            }
            let fields: Vec<&str> = line.split(' ').collect();
            let (from, n) = match fields[..] {
                ["chatm", from, "*", n] => (from, n),
                _ => panic!("c{i}: unexpected line {line:?}"),
            };
            let s: usize = from[1..].parse().expect("sender number");
            assert!(s < SENDERS && s != i, "c{i}: {line:?}");
            assert_eq!(n, format!("m{}", next[s]), "c{i}: from {from} out of order");
            next[s] += 1;
        }
        assert_eq!(oks, mine, "c{i}");
        assert!(c.nothing_pending(), "c{i}: more than each message once");
    }
}
