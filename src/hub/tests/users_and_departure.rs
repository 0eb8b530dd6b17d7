use super::*;

#[test]
fn users_lists_established_clients_case_insensitively_sorted() {
    let (mut f, alice, _) = hub().pair("alice", "Bob");
    f.join(3, "aaron");
    f.connect(4, HERE);
    f.request(1, Request::Users);
    assert_eq!(alice.lines(), ["+OK 3 users", "aaron", "alice", "Bob", "."]);
}

#[test]
fn cquit_sends_the_last_lines_and_releases_the_name() {
    let (mut f, alice, bob) = hub_with(Duration::ZERO, 1024).pair("alice", "bob");
    f.quit(1);
    assert_eq!(
        alice.finished().as_deref(),
        Some("+OK terminating tasks and disconnecting\r\n")
    );
    f.request(2, Request::Users);
    assert_eq!(bob.lines(), ["+OK 1 users", "bob", "."]);
    f.connect(3, THERE);
    assert!(matches!(f.register(3, "alice"), Answer::Registered { .. }));
    // Gone for good: nothing more reaches it.
    f.chat(2, "chatm bob alice hi");
    assert!(alice.lines().is_empty());
}

#[test]
fn cquit_releases_the_receipts_owed() {
    let (mut f, alice, _) = hub_with(Duration::ZERO, 1024).pair("alice", "bob");
    f.chat(1, "chatm alice bob hi");
    f.quit(2);
    let bob = f.join(3, "bob"); // Not held: the receipt is not owed again.
    f.receipt(3, "chatr alice bob");
    assert_eq!(
        bob.lines(),
        ["-ERR [NO-SUCH] no message from alice awaits a receipt"]
    );
    assert_eq!(alice.lines(), ["+OK message relayed"]);
}
