//! §5.8: copies, mailboxes, the counted welcome back and its replay.
use super::*;

fn hub_mailbox(mailbox: usize, mailbox_total: usize) -> Fixture {
    hub_config(HubConfig {
        hold: Duration::from_secs(300),
        max_holds: 1024,
        max_holds_per_ip: 1024,
        mailbox,
        mailbox_total,
    })
}

/// `name` comes back on `conn` from here: the `uname` answer, and what it got.
fn come_back(f: &mut Fixture, conn: ConnId, name: &str) -> (Mem, Vec<String>) {
    let out = f.connect(conn, HERE);
    assert_eq!(f.register(conn, name), registered(name, true));
    let lines = out.lines();
    (out, lines)
}

#[test]
fn unreceipted_messages_are_replayed_after_a_counted_welcome_back() {
    let (mut f, bob, _) = hub().pair("bob", "alice");
    for i in 0..3 {
        f.chat(1, &format!("chatm bob alice {i}"));
    }
    f.receipt(2, "chatr bob alice"); // The first is delivered: not replayed.
    f.quit(2);
    let (_, lines) = come_back(&mut f, 3, "alice");
    assert_eq!(
        lines,
        [
            "+OK welcome back alice (2 held, 0 lost)",
            "chatm bob alice 1",
            "chatm bob alice 2"
        ]
    );
    assert_eq!(bob.lines().len(), 3 + 1);
}

#[test]
fn an_empty_mailbox_is_the_plain_welcome_back() {
    let (mut f, _, _) = hub().pair("bob", "alice");
    f.chat(1, "chatm bob alice hi");
    f.receipt(2, "chatr bob alice");
    f.quit(2);
    assert_eq!(come_back(&mut f, 3, "alice").1, ["+OK welcome back alice"]);
}

#[test]
fn a_message_to_a_held_name_is_held() {
    let (mut f, bob, _) = hub().pair("bob", "Alice");
    f.quit(2);
    f.chat(1, "chatm bob ALICE one");
    f.chat(1, "chatm bob alice two");
    assert_eq!(
        bob.lines(),
        ["+OK message held for Alice", "+OK message held for Alice"]
    );
    let (_, lines) = come_back(&mut f, 3, "alice");
    assert_eq!(
        lines,
        [
            "+OK welcome back alice (2 held, 0 lost)",
            "chatm bob ALICE one",
            "chatm bob alice two"
        ]
    );
}

#[test]
fn a_message_the_mailbox_cannot_take_is_refused_and_not_kept() {
    let (mut f, bob, _) = hub_mailbox(64, 1 << 20).pair("bob", "alice");
    f.quit(2);
    let (x, y) = ("x".repeat(40), "y".repeat(40));
    f.chat(1, &format!("chatm bob alice {x}"));
    f.chat(1, &format!("chatm bob alice {y}"));
    assert_eq!(
        bob.lines(),
        [
            "+OK message held for alice",
            "-ERR [FULL] mailbox of alice is full"
        ]
    );
    let (_, lines) = come_back(&mut f, 3, "alice");
    assert_eq!(
        lines,
        [
            "+OK welcome back alice (1 held, 0 lost)".to_string(),
            format!("chatm bob alice {x}")
        ]
    );
}

#[test]
fn copies_past_the_mailbox_are_counted_lost_on_return() {
    let (mut f, bob, _) = hub_mailbox(64, 1 << 20).pair("bob", "alice");
    let (x, y) = ("x".repeat(40), "y".repeat(40));
    f.chat(1, &format!("chatm bob alice {x}"));
    f.chat(1, &format!("chatm bob alice {y}"));
    f.quit(2);
    let (again, lines) = come_back(&mut f, 3, "alice");
    assert_eq!(
        lines,
        [
            "+OK welcome back alice (1 held, 1 lost)".to_string(),
            format!("chatm bob alice {y}")
        ]
    );
    // Only what was replayed awaits a receipt now.
    bob.lines();
    for _ in 0..2 {
        f.receipt(3, "chatr bob alice");
    }
    assert_eq!(bob.lines(), ["chatr bob alice"]);
    assert_eq!(
        again.lines(),
        ["-ERR [NO-SUCH] no message from bob awaits a receipt"]
    );
}

#[test]
fn a_receipt_for_a_held_sender_goes_into_its_mailbox() {
    let (mut f, _, bob) = hub().pair("alice", "bob");
    f.chat(1, "chatm alice bob hi");
    f.quit(1);
    f.receipt(2, "chatr alice bob");
    assert!(
        bob.lines().len() == 1,
        "the message; no reply to the receipt"
    );
    let (_, lines) = come_back(&mut f, 3, "alice");
    assert_eq!(
        lines,
        ["+OK welcome back alice (1 held, 0 lost)", "chatr alice bob"]
    );
}

#[test]
fn a_receipt_the_mailbox_cannot_take_is_counted_lost() {
    let (mut f, _, _) = hub_mailbox(20, 1 << 20).pair("alice", "bob");
    f.chat(1, "chatm alice bob hi");
    f.chat(1, "chatm alice bob hi");
    f.quit(1);
    f.receipt(2, "chatr alice bob"); // 17 bytes: fits in 20.
    f.receipt(2, "chatr alice bob"); // Does not: lost.
    let (_, lines) = come_back(&mut f, 3, "alice");
    assert_eq!(
        lines,
        ["+OK welcome back alice (1 held, 1 lost)", "chatr alice bob"]
    );
}

#[test]
fn a_replayed_message_awaits_its_receipt_for_its_sender() {
    let (mut f, bob, _) = hub().pair("bob", "alice");
    f.chat(1, "chatm bob alice hi");
    f.quit(2);
    let (again, _) = come_back(&mut f, 3, "alice");
    bob.lines();
    f.receipt(3, "chatr bob alice");
    assert_eq!(bob.lines(), ["chatr bob alice"]);
    f.receipt(3, "chatr bob alice");
    assert_eq!(
        again.lines(),
        ["-ERR [NO-SUCH] no message from bob awaits a receipt"]
    );
}

#[test]
fn a_replayed_message_is_copied_again() {
    let (mut f, _, _) = hub().pair("bob", "alice");
    f.chat(1, "chatm bob alice hi");
    f.quit(2);
    come_back(&mut f, 3, "alice");
    f.quit(3);
    let (_, lines) = come_back(&mut f, 4, "alice");
    assert_eq!(
        lines,
        [
            "+OK welcome back alice (1 held, 0 lost)",
            "chatm bob alice hi"
        ]
    );
}

#[test]
fn a_receipt_reaches_a_sender_that_came_back() {
    let (mut f, _, _) = hub().pair("alice", "bob");
    f.chat(1, "chatm alice bob hi");
    f.quit(1);
    let (again, _) = come_back(&mut f, 3, "alice");
    f.receipt(2, "chatr alice bob");
    assert_eq!(again.lines(), ["chatr alice bob"]);
    // And after a second departure, into the mailbox again.
    f.chat(3, "chatm alice bob two");
    f.quit(3);
    f.receipt(2, "chatr alice bob");
    let (_, lines) = come_back(&mut f, 4, "alice");
    assert_eq!(
        lines,
        ["+OK welcome back alice (1 held, 0 lost)", "chatr alice bob"]
    );
}

#[test]
fn per_sender_order_holds_across_the_resume() {
    let (mut f, _, _) = hub().pair("bob", "alice");
    f.chat(1, "chatm bob alice one");
    f.quit(2);
    f.chat(1, "chatm bob alice two");
    let (again, lines) = come_back(&mut f, 3, "alice");
    f.chat(1, "chatm bob alice three");
    assert_eq!(
        lines,
        [
            "+OK welcome back alice (2 held, 0 lost)",
            "chatm bob alice one",
            "chatm bob alice two"
        ]
    );
    assert_eq!(again.lines(), ["chatm bob alice three"]);
}

#[test]
fn another_address_is_refused_and_the_mailbox_kept() {
    let (mut f, _, _) = hub().pair("bob", "alice");
    f.chat(1, "chatm bob alice hi");
    f.quit(2);
    f.connect(3, THERE);
    assert_eq!(f.register(3, "alice"), Answer::InUse);
    let (_, lines) = come_back(&mut f, 4, "alice");
    assert_eq!(
        lines,
        [
            "+OK welcome back alice (1 held, 0 lost)",
            "chatm bob alice hi"
        ]
    );
}

#[test]
fn hold_zero_keeps_nothing() {
    let (mut f, bob, _) = hub_with(Duration::ZERO, 1024).pair("bob", "alice");
    f.chat(1, "chatm bob alice hi");
    f.quit(2);
    bob.lines();
    f.chat(1, "chatm bob alice again");
    assert_eq!(bob.lines(), ["-ERR [NO-SUCH] no such user alice"]);
    assert_eq!(f.hub.copies + f.hub.holds.counted(), 0);
}

#[test]
fn a_broadcast_is_never_held() {
    let (mut f, bob, _) = hub().pair("bob", "alice");
    f.quit(2);
    f.chat(1, "chatm bob * hi");
    assert_eq!(bob.lines(), ["+OK message relayed"]);
    assert_eq!(come_back(&mut f, 3, "alice").1, ["+OK welcome back alice"]);
}

#[test]
fn the_mailbox_ends_with_its_hold() {
    let (mut f, bob, _) = hub().pair("bob", "alice");
    f.chat(1, "chatm bob alice hi");
    f.quit(2);
    assert!(f.hub.holds.counted() > 0);
    f.hub.holds.purge(Instant::now() + Duration::from_secs(301));
    assert_eq!(f.hub.holds.counted(), 0);
    bob.lines();
    f.chat(1, "chatm bob alice again");
    assert_eq!(bob.lines(), ["-ERR [NO-SUCH] no such user alice"]);
}

#[test]
fn past_the_total_the_oldest_held_mailbox_goes_first() {
    // Each line is 20 bytes (and its bookkeeping); room for three in all.
    let mut f = hub_mailbox(1024, 3 * cost(20));
    f.join(1, "bob");
    for (conn, name) in [(2, "old"), (3, "mid")] {
        f.join(conn, name);
        f.quit(conn);
    }
    f.chat(1, "chatm bob old 1 ab");
    f.chat(1, "chatm bob mid 1 ab");
    f.chat(1, "chatm bob mid 2 ab");
    f.join(4, "new");
    f.chat(1, "chatm bob new 1 ab"); // A copy: past the total.
    assert_eq!(f.hub.copies + f.hub.holds.counted(), 3 * cost(20));
    let (_, lines) = come_back(&mut f, 5, "old");
    assert_eq!(lines, ["+OK welcome back old (0 held, 1 lost)"]);
    let (_, lines) = come_back(&mut f, 6, "mid");
    assert_eq!(lines[0], "+OK welcome back mid (2 held, 0 lost)");
}

#[test]
fn a_rename_cannot_take_a_held_name_nor_its_mailbox() {
    let (mut f, _, _) = hub().pair("bob", "alice");
    f.chat(1, "chatm bob alice hi");
    f.quit(2);
    let carol = f.join(3, "carol");
    assert_eq!(f.rename(3, "alice"), Answer::NotRenamed);
    assert_eq!(
        carol.lines(),
        ["-ERR [IN-USE] alice is already taken by another client"]
    );
    assert_eq!(f.hub.holds.counted(), cost(20));
}

/// §7: the welcome back and its replay answer the client's own `uname`, so they
/// never make it a slow consumer, however small its budget.
#[test]
fn a_replay_larger_than_the_queue_budget_is_delivered() {
    let (mut f, _, _) = hub().pair("bob", "alice");
    f.chat(1, "chatm bob alice hi");
    f.quit(2);
    // Room for the 41-byte welcome back, not for the line after it.
    let small = Mem::default();
    small.0.borrow_mut().budget = Some(45);
    f.connect_with(3, HERE, small.clone());
    assert_eq!(f.register(3, "alice"), registered("alice", true));
    assert_eq!(small.aborted(), None);
    assert_eq!(
        small.lines(),
        [
            "+OK welcome back alice (1 held, 0 lost)",
            "chatm bob alice hi"
        ]
    );
}

#[test]
fn the_books_balance_when_everyone_has_gone() {
    let mut f = hub_with(Duration::ZERO, 1024);
    for conn in 1..=200 {
        f.join(conn, &format!("u{conn}"));
    }
    for conn in 2..=200 {
        f.chat(1, &format!("chatm u1 u{conn} hi"));
    }
    assert!(f.hub.copies > 0);
    for conn in 1..=200 {
        f.quit(conn);
    }
    assert_eq!(f.hub.copies, 0);
    assert!(
        f.hub.clients.capacity() <= 64,
        "{}",
        f.hub.clients.capacity()
    );
    assert!(f.hub.names.capacity() <= 64, "{}", f.hub.names.capacity());
}
