use super::*;

#[test]
fn a_new_name_is_registered_and_confirmed() {
    let mut f = hub();
    let out = f.connect(1, HERE);
    let answer = f.register(1, "Alice");
    assert_eq!(answer, registered("Alice", false));
    assert_eq!(out.lines(), ["+OK you are Alice"]);
}

#[test]
fn a_connected_name_is_in_use_whatever_its_case() {
    let mut f = hub();
    f.join(1, "alice");
    let out = f.connect(2, HERE);
    assert_eq!(f.register(2, "ALICE"), Answer::InUse);
    // The hub replies (the session learns of the refusal later), with the attempt count.
    assert_eq!(
        out.lines(),
        ["-ERR [IN-USE] ALICE is already taken by another client (attempt 1 of 3)"]
    );
}

#[test]
fn the_last_attempt_is_refused_with_the_cquit_that_follows() {
    let mut f = hub();
    f.join(1, "alice");
    let out = f.connect(2, HERE);
    let last = f.register_attempt(2, "alice", Attempt { n: 3, max: 3 });
    assert_eq!(last, Answer::InUse);
    // The session closes once it has the answer: the hub sends its last lines.
    assert_eq!(
        out.lines(),
        [
            "-ERR [IN-USE] alice is already taken by another client (attempt 3 of 3)",
            "cquit too many failed attempts"
        ]
    );
}

#[test]
fn an_unknown_connection_is_gone() {
    let mut f = hub();
    assert_eq!(f.register(9, "alice"), Answer::Gone);
}

#[test]
fn a_held_name_welcomes_back_the_same_address() {
    let mut f = hub();
    f.join(1, "alice");
    f.quit(1);
    let out = f.connect(2, HERE);
    assert_eq!(f.register(2, "alice"), registered("alice", true));
    assert_eq!(out.lines(), ["+OK welcome back alice"]);
}

#[test]
fn a_held_name_is_in_use_for_another_address() {
    let mut f = hub();
    f.join(1, "alice");
    f.quit(1);
    let out = f.connect(2, THERE);
    assert_eq!(f.register(2, "Alice"), Answer::InUse);
    assert_eq!(
        out.lines(),
        ["-ERR [IN-USE] Alice is already taken by another client (attempt 1 of 3)"]
    );
}

#[test]
fn a_welcome_back_ends_the_hold() {
    let mut f = hub();
    f.join(1, "alice");
    f.quit(1);
    f.join(2, "alice");
    assert!(matches!(f.rename(2, "bob"), Answer::Renamed(_)));
    // Neither connected nor held any more: free for anyone.
    f.connect(3, THERE);
    assert_eq!(f.register(3, "alice"), registered("alice", false));
}

#[test]
fn hold_zero_releases_the_name_at_once() {
    let mut f = hub_with(Duration::ZERO, 1024);
    f.join(1, "alice");
    f.quit(1);
    f.connect(2, THERE);
    assert_eq!(f.register(2, "alice"), registered("alice", false));
}

#[test]
fn holds_are_bounded_and_the_oldest_is_dropped() {
    let mut f = hub_with(Duration::from_secs(300), 2);
    for (conn, name) in [(1, "a1"), (2, "b2"), (3, "c3")] {
        f.join(conn, name);
        f.quit(conn);
    }
    f.connect(4, THERE);
    assert_eq!(f.register(4, "a1"), registered("a1", false));
    assert_eq!(f.register(4, "b2"), Answer::InUse);
    assert_eq!(f.register(4, "c3"), Answer::InUse);
}

#[test]
fn shutdown_tells_every_client_and_registers_no_one() {
    let mut f = hub();
    let out = f.join(1, "alice");
    f.hub.handle(ToHub::Shutdown);
    assert_eq!(
        out.finished().as_deref(),
        Some("cquit server shutting down\r\n")
    );
    assert_eq!(out.end(), Some(Cause::ServerShutdown));
    // A connection accepted meanwhile is told at once and never registered.
    let late = f.connect(2, THERE);
    assert_eq!(
        late.finished().as_deref(),
        Some("cquit server shutting down\r\n")
    );
    assert_eq!(f.register(2, "alice"), Answer::Gone);
}

#[test]
fn cname_renames_and_frees_the_old_name() {
    let mut f = hub();
    let out = f.join(1, "alice");
    assert_eq!(f.rename(1, "bob"), Answer::Renamed(nick("bob")));
    assert_eq!(out.lines(), ["+OK name changed from alice to bob"]);
    f.connect(2, HERE);
    assert_eq!(f.register(2, "alice"), registered("alice", false));
    f.connect(3, HERE);
    assert_eq!(f.register(3, "BOB"), Answer::InUse);
}

#[test]
fn cname_to_a_name_in_use_is_refused_by_the_hub() {
    let (mut f, out, _) = hub().pair("alice", "bob");
    assert_eq!(f.rename(1, "Bob"), Answer::NotRenamed);
    assert_eq!(
        out.lines(),
        ["-ERR [IN-USE] Bob is already taken by another client"]
    );
    // Still alice.
    f.connect(3, HERE);
    assert_eq!(f.register(3, "alice"), Answer::InUse);
}

#[test]
fn cname_may_change_the_case_only() {
    let mut f = hub();
    let out = f.join(1, "alice");
    assert_eq!(f.rename(1, "ALICE"), Answer::Renamed(nick("ALICE")));
    assert_eq!(out.lines(), ["+OK name changed from alice to ALICE"]);
    f.connect(2, HERE);
    assert_eq!(f.register(2, "Alice"), Answer::InUse);
}

#[test]
fn cname_respects_holds() {
    let mut f = hub();
    f.join_from(1, "alice", HERE);
    f.quit(1);
    let out = f.join_from(2, "bob", THERE);
    assert_eq!(f.rename(2, "alice"), Answer::NotRenamed);
    assert_eq!(
        out.lines(),
        ["-ERR [IN-USE] alice is already taken by another client"]
    );
    // Issue 18: not even from the held name's own address (§5.7).
    let out = f.join_from(3, "carol", HERE);
    assert_eq!(f.rename(3, "alice"), Answer::NotRenamed);
    assert_eq!(
        out.lines(),
        ["-ERR [IN-USE] alice is already taken by another client"]
    );
}

/// A receipt for a sender whose hold has expired, but which the hub, busy, has not ended
/// yet, goes nowhere: it takes no room from a live mailbox (§5.7, §5.8).
#[test]
fn a_receipt_for_an_expired_hold_takes_no_room_from_a_live_one() {
    let mut f = hub_config(HubConfig {
        hold: Duration::from_secs(300),
        max_holds: 1024,
        max_holds_per_ip: 64,
        mailbox: 60,
        mailbox_total: 100,
    });
    f.join(1, "bob");
    f.join(2, "alice");
    f.join(3, "carol");
    let dave = f.join(4, "dave");
    // Longer than --mailbox: no copy is kept, but its receipt is owed to alice.
    f.chat(2, &format!("chatm alice bob {}", "x".repeat(70)));
    f.quit(2);
    f.quit(3);
    f.chat(4, "chatm dave carol xxxx");
    assert_eq!(dave.lines(), ["+OK message held for carol"]);
    // alice's hold expires; nothing since has made the hub end it.
    f.hub
        .holds
        .backdate(Some("alice"), Duration::from_secs(301));
    f.receipt(1, "chatr alice bob");
    let out = f.connect(5, HERE);
    assert_eq!(f.register(5, "carol"), registered("carol", true));
    assert_eq!(
        out.lines(),
        [
            "+OK welcome back carol (1 held, 0 lost)",
            "chatm dave carol xxxx"
        ]
    );
}

/// The shutdown audit (§5.8) counts the holds still live: one that expired while the
/// hub was busy is ended as expired, not counted as discarded at shutdown.
#[test]
fn the_shutdown_audit_does_not_count_expired_holds() {
    let mut f = hub();
    f.join(1, "bob");
    f.join(2, "alice");
    f.chat(1, "chatm bob alice hi");
    f.quit(2);
    assert_eq!(f.hub.unsaved().holds.holds, 1);
    f.hub.holds.backdate(None, Duration::from_secs(301));
    f.hub.shutdown();
    let unsaved = f.hub.unsaved();
    assert_eq!(
        (unsaved.holds.holds, unsaved.holds.lines),
        (0, 0),
        "{unsaved}"
    );
}
