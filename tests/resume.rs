//! Resume over real sockets (xscp(7) §5.8): copies of unreceipted direct messages, the
//! held name's mailbox, the counted `welcome back` and its replay, receipts across a
//! departure, and the bounds (`--mailbox`, `--mailbox-total`, the hold's lifetime), with
//! the audit lines. Every departure is waited for in the log (the hold line) before the
//! client comes back; hold expiry is waited for by its log line.

use crate::harness::{Server, come_back, come_back_from, hold, leave, run_xscpd, wait_held, x40};

/// The acceptance test: a recipient that resets its connection with 100 unreceipted
/// messages returns from the same address and gets all 100, in order, right after the
/// counted welcome back; its receipts then reach the original sender.
#[test]
fn a_reset_recipient_gets_everything_back_and_its_receipts_reach_the_sender() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    for i in 0..100 {
        bob.send(&format!("chatm bob alice message {i}"));
    }
    for i in 0..100 {
        bob.expect("+OK message relayed");
        alice.expect(&format!("chatm bob alice message {i}"));
    }
    let peer = alice.peer();
    alice.reset();
    let held = wait_held(&server, &peer, "alice");
    assert!(held.contains("(100 held, 0 lost)"), "{held}");

    let mut again = come_back(&server, "alice");
    again.expect("+OK welcome back alice (100 held, 0 lost)");
    for i in 0..100 {
        again.expect(&format!("chatm bob alice message {i}"));
    }
    let resumed = server.wait_peer_log(&again.peer(), "resumed alice");
    assert!(resumed.contains("(100 held, 0 lost)"), "{resumed}");
    for _ in 0..100 {
        again.send("chatr bob alice");
    }
    for _ in 0..100 {
        bob.expect("chatr bob alice");
    }
    // Each was owed once: the next receipt is refused, and bob hears nothing more.
    again.send("chatr bob alice");
    again.expect("-ERR [NO-SUCH] no message from bob awaits a receipt");
    assert!(bob.nothing_pending());
}

/// A direct message to a held name goes into its mailbox: `+OK message held for <name>`.
#[test]
fn messages_to_a_held_name_are_held() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    hold(&server, "alice");
    bob.send("chatm bob alice one");
    bob.expect("+OK message held for alice");
    bob.send("chatm bob ALICE two");
    bob.expect("+OK message held for alice");
    let mut again = come_back(&server, "alice");
    again.expect("+OK welcome back alice (2 held, 0 lost)");
    again.expect("chatm bob alice one");
    again.expect("chatm bob ALICE two");
    assert!(again.nothing_pending());
}

/// Past `--mailbox` the sender gets FULL and nothing is kept.
#[test]
fn past_the_mailbox_the_sender_gets_full_and_nothing_is_kept() {
    let server = Server::start(&["--mailbox", "64"]);
    let mut bob = server.register("bob");
    hold(&server, "alice");
    bob.send(&format!("chatm bob alice {}", x40('x')));
    bob.expect("+OK message held for alice");
    bob.send(&format!("chatm bob alice {}", x40('y')));
    bob.expect("-ERR [FULL] mailbox of alice is full");
    let mut again = come_back(&server, "alice");
    again.expect("+OK welcome back alice (1 held, 0 lost)");
    again.expect(&format!("chatm bob alice {}", x40('x')));
    assert!(again.nothing_pending());
}

/// Copies past `--mailbox` are forgotten oldest first and reported lost on return; after
/// the return only the replayed message awaits a receipt (xscp(7) §5.8 Return): the lost
/// one is settled by the count the welcome back gave, and a receipt for it is refused.
#[test]
fn copies_past_the_mailbox_are_reported_lost() {
    let server = Server::start(&["--mailbox", "64"]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    for c in ['x', 'y'] {
        bob.send(&format!("chatm bob alice {}", x40(c)));
        bob.expect("+OK message relayed");
        alice.expect(&format!("chatm bob alice {}", x40(c)));
    }
    let held = leave(&server, alice, "alice");
    assert!(held.contains("(1 held, 1 lost)"), "{held}");
    let mut again = come_back(&server, "alice");
    again.expect("+OK welcome back alice (1 held, 1 lost)");
    again.expect(&format!("chatm bob alice {}", x40('y')));
    assert!(again.nothing_pending());
    again.send("chatr bob alice");
    bob.expect("chatr bob alice");
    again.send("chatr bob alice");
    again.expect("-ERR [NO-SUCH] no message from bob awaits a receipt");
    assert!(bob.nothing_pending());
}

/// A receipt for a message whose sender has left reaches that sender on its return.
#[test]
fn a_receipt_for_a_departed_sender_reaches_it_on_return() {
    let server = Server::start(&[]);
    let mut alice = server.register("alice");
    let mut bob = server.register("bob");
    alice.send("chatm alice bob hi");
    alice.expect("+OK message relayed");
    bob.expect("chatm alice bob hi");
    leave(&server, alice, "alice");
    bob.send("chatr alice bob");
    assert!(bob.nothing_pending(), "no reply to a receipt");
    let mut again = come_back(&server, "alice");
    again.expect("+OK welcome back alice (1 held, 0 lost)");
    again.expect("chatr alice bob");
    assert!(again.nothing_pending());
}

/// Per-sender order across the resume: what was replayed comes before what is newer.
#[test]
fn per_sender_order_holds_across_a_resume() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    bob.send("chatm bob alice one");
    bob.expect("+OK message relayed");
    alice.expect("chatm bob alice one");
    leave(&server, alice, "alice");
    bob.send("chatm bob alice two");
    bob.expect("+OK message held for alice");
    let mut again = come_back(&server, "alice");
    // bob writes while alice's uname is on its way: whatever the hub sees first, three
    // comes after one and two.
    bob.send("chatm bob alice three");
    let first = again.line();
    assert!(first.starts_with("+OK welcome back alice ("), "{first}");
    let rest: Vec<String> = (0..3).map(|_| again.line()).collect();
    assert_eq!(
        rest,
        [
            "chatm bob alice one",
            "chatm bob alice two",
            "chatm bob alice three"
        ]
    );
    let relayed = bob.line();
    assert!(
        relayed == "+OK message relayed" || relayed == "+OK message held for alice",
        "{relayed}"
    );
}

/// Another address gets IN-USE (the log says for which address the name is held, and
/// until when, with the connection's tag) and the mailbox stays intact for its owner.
#[test]
fn another_address_is_refused_and_the_mailbox_stays() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    hold(&server, "alice");
    bob.send("chatm bob alice hi");
    bob.expect("+OK message held for alice");

    let mut other = come_back_from(&server, "127.0.0.2", "alice");
    other.expect("-ERR [IN-USE] alice is already taken by another client (attempt 1 of 3)");
    let logged = server.wait_peer_log(&other.peer(), "uname alice: held for 127.0.0.1 for ");
    assert!(logged.contains("s more (until "), "{logged}");
    other.send("cquit");
    other.expect_close(&["+OK terminating tasks and disconnecting"]);

    let mut again = come_back(&server, "alice");
    again.expect("+OK welcome back alice (1 held, 0 lost)");
    again.expect("chatm bob alice hi");
}

/// A name in use by a connected client: the log names both connections.
#[test]
fn in_use_is_logged_with_both_tags() {
    let server = Server::start(&[]);
    let alice = server.register("alice");
    let mut other = come_back(&server, "alice");
    other.expect_prefix("-ERR [IN-USE] alice is already taken by another client");
    let logged = server.wait_peer_log(&other.peer(), "uname alice: in use by ");
    assert!(logged.ends_with(alice.peer().trim_end()), "{logged}");
}

/// `--hold 0`: nothing is kept (the log says how much was discarded), and a message to
/// the departed name is NO-SUCH.
#[test]
fn hold_zero_keeps_nothing() {
    let server = Server::start(&["--hold", "0"]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    bob.send("chatm bob alice hi");
    bob.expect("+OK message relayed");
    alice.expect("chatm bob alice hi");
    let peer = alice.peer();
    server.quit(alice);
    let logged = server.wait_peer_log(&peer, "name alice not held (--hold 0)");
    assert!(
        logged.contains("mailbox discarded (1 held, 0 lost)"),
        "{logged}"
    );
    bob.send("chatm bob alice again");
    bob.expect("-ERR [NO-SUCH] no such user alice");
    let mut again = come_back(&server, "alice");
    again.expect("+OK you are alice");
    assert!(again.nothing_pending());
}

/// A hold that expires discards its mailbox, logged with its counts, on time (no traffic
/// needed to notice it).
#[test]
fn an_expired_hold_discards_its_mailbox() {
    let server = Server::start(&["--hold", "300ms"]);
    let mut bob = server.register("bob");
    let alice = server.register("alice");
    let peer = alice.peer();
    leave(&server, alice, "alice");
    bob.send("chatm bob alice hi");
    let reply = bob.line();
    if reply == "+OK message held for alice" {
        let logged = server.wait_peer_log(&peer, "hold on alice for 127.0.0.1 expired");
        assert!(
            logged.contains("mailbox of alice discarded (1 held, 0 lost)"),
            "{logged}"
        );
    } else {
        // The hold was over before the message (a slow machine): nothing was kept.
        assert_eq!(reply, "-ERR [NO-SUCH] no such user alice");
        server.wait_peer_log(&peer, "hold on alice for 127.0.0.1 expired");
    }
    bob.send("chatm bob alice again");
    bob.expect("-ERR [NO-SUCH] no such user alice");
}

/// `--mailbox-total`: past it the oldest held mailbox is discarded first (logged), and its
/// owner hears what was lost.
#[test]
fn past_the_total_the_oldest_held_mailbox_goes_first() {
    // Two lines of 58 bytes do not fit in 100.
    let server = Server::start(&["--mailbox-total", "100"]);
    let mut bob = server.register("bob");
    for name in ["older", "newer"] {
        hold(&server, name);
    }
    bob.send(&format!("chatm bob older {}", x40('o')));
    bob.expect("+OK message held for older");
    bob.send(&format!("chatm bob newer {}", x40('n')));
    bob.expect("+OK message held for newer");
    let logged = server.wait_log(|l| l.contains("mailbox of older held for 127.0.0.1 discarded"));
    assert!(
        logged.contains("over --mailbox-total (1 held, 0 lost)"),
        "{logged}"
    );
    let mut older = come_back(&server, "older");
    older.expect("+OK welcome back older (0 held, 1 lost)");
    assert!(older.nothing_pending());
    let mut newer = come_back(&server, "newer");
    newer.expect("+OK welcome back newer (1 held, 0 lost)");
    newer.expect(&format!("chatm bob newer {}", x40('n')));
}

/// `--mailbox` larger than `--sendq` is refused at start: exit 2, a message naming both.
#[test]
fn a_mailbox_larger_than_the_sendq_is_refused() {
    let out = run_xscpd(&["--mailbox", "1M", "--sendq", "512K"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--mailbox (1048576 bytes) may not exceed --sendq (524288 bytes)"),
        "{err}"
    );
}

/// `capa` lists `MAILBOX <bytes>` after `HOLD`.
#[test]
fn capa_lists_the_mailbox_after_the_hold() {
    let server = Server::start(&["--mailbox", "1K"]);
    let mut c = server.connect().greeted();
    c.send("capa");
    let (_, items) = c.multiline();
    let hold = items.iter().position(|i| i.starts_with("HOLD "));
    let mailbox = items.iter().position(|i| i == "MAILBOX 1024");
    assert!(
        hold.is_some() && mailbox == hold.map(|h| h + 1),
        "{items:?}"
    );
}
