use super::*;

/// An idle client's entry holds no receipts state: ten words on a 64-bit machine
/// (24 with its receipts' queues inline).
#[test]
fn an_idle_clients_entry_is_small() {
    assert!(std::mem::size_of::<Client<Mem>>() <= 10 * std::mem::size_of::<usize>());
}

#[test]
fn a_receipt_goes_to_the_sender_and_nothing_to_its_author() {
    let (mut f, alice, bob) = hub().pair("alice", "bob");
    f.chat(1, "chatm alice bob hi");
    alice.lines();
    bob.lines();
    f.receipt(2, "chatr ALICE bob");
    assert_eq!(alice.lines(), ["chatr ALICE bob"]);
    assert!(bob.lines().is_empty());
}

#[test]
fn a_receipt_nothing_awaits_is_refused() {
    let (mut f, alice, bob) = hub().pair("alice", "bob");
    f.receipt(2, "chatr alice bob");
    assert_eq!(
        bob.lines(),
        ["-ERR [NO-SUCH] no message from alice awaits a receipt"]
    );
    assert!(alice.lines().is_empty());
}

#[test]
fn one_receipt_a_message() {
    let (mut f, alice, bob) = hub().pair("alice", "bob");
    f.chat(1, "chatm alice bob one");
    f.chat(1, "chatm alice bob two");
    alice.lines();
    bob.lines();
    for _ in 0..3 {
        f.receipt(2, "chatr alice bob");
    }
    assert_eq!(alice.lines(), ["chatr alice bob", "chatr alice bob"]);
    assert_eq!(
        bob.lines(),
        ["-ERR [NO-SUCH] no message from alice awaits a receipt"]
    );
}

#[test]
fn a_broadcast_awaits_no_receipt() {
    let (mut f, _, bob) = hub().pair("alice", "bob");
    f.chat(1, "chatm alice * hi");
    bob.lines();
    f.receipt(2, "chatr alice bob");
    assert_eq!(
        bob.lines(),
        ["-ERR [NO-SUCH] no message from alice awaits a receipt"]
    );
}

#[test]
fn receipts_from_several_senders_match_their_own() {
    let (mut f, alice, bob) = hub().pair("alice", "bob");
    let carol = f.join(3, "carol");
    f.chat(1, "chatm alice bob a");
    f.chat(3, "chatm carol bob c");
    f.chat(1, "chatm alice bob a");
    alice.lines();
    carol.lines();
    f.receipt(2, "chatr carol bob");
    f.receipt(2, "chatr alice bob");
    f.receipt(2, "chatr alice bob");
    assert_eq!(carol.lines(), ["chatr carol bob"]);
    assert_eq!(alice.lines(), ["chatr alice bob", "chatr alice bob"]);
    assert_eq!(bob.lines().len(), 3); // The three messages; no error.
}

#[test]
fn a_receipt_names_the_sender_as_the_message_did_after_renames() {
    let (mut f, alice, bob) = hub().pair("alice", "bob");
    f.chat(1, "chatm alice bob one");
    f.chat(1, "chatm alice bob two");
    assert!(matches!(f.rename(1, "carol"), Answer::Renamed(_)));
    assert!(matches!(f.rename(2, "dave"), Answer::Renamed(_)));
    alice.lines();
    bob.lines();
    // The new name awaits nothing; the old one reaches the renamed sender.
    f.receipt(2, "chatr carol dave");
    f.receipt(2, "chatr alice dave");
    assert_eq!(
        bob.lines(),
        ["-ERR [NO-SUCH] no message from carol awaits a receipt"]
    );
    assert_eq!(alice.lines(), ["chatr alice dave"]);
}

#[test]
fn a_receipt_to_a_departed_sender_is_accepted_and_dropped() {
    let (mut f, alice, bob) = hub_with(Duration::ZERO, 1024).pair("alice", "bob");
    let carol = f.join(3, "carol");
    f.chat(1, "chatm alice bob hi");
    f.quit(1);
    // Not held: a newcomer takes the name, and is not the same sender.
    let again = f.join(4, "alice");
    bob.lines();
    carol.lines();
    f.receipt(2, "chatr alice bob");
    assert!(bob.lines().is_empty(), "no reply to the receipt's author");
    assert!(again.lines().is_empty());
    assert!(carol.lines().is_empty());
    assert_eq!(alice.lines(), ["+OK message relayed"]);
}

/// §5.5, §5.8: the sender names a client owes receipts to are bounded (a name costs
/// bookkeeping that forgetting copies does not free): a message from one more name is
/// refused with FULL and relayed nowhere; one from a name already owed still goes; every
/// receipt owed stays legal, and one that settles a name makes room for another.
#[test]
fn the_senders_a_client_owes_receipts_to_are_bounded() {
    // --mailbox 1 KiB: room for 32 names (one a LINE_OVERHEAD).
    let mut f = hub_config(HubConfig {
        hold: Duration::from_secs(300),
        max_holds: 1024,
        max_holds_per_ip: 1024,
        mailbox: 1024,
        mailbox_total: 64 * 1024 * 1024,
    });
    let alice = f.join(1, "alice");
    let bob = f.join(2, "bob");
    let max = crate::hub::receipts::max_senders(1024);
    assert_eq!(max, 32);
    // alice renames herself `n<n>` and sends bob a message under that name.
    let renamed = |f: &mut Fixture, n: usize| {
        let name = format!("n{n}");
        assert!(matches!(f.rename(1, &name), Answer::Renamed { .. }));
        alice.lines();
        f.chat(1, &format!("chatm {name} bob hi"));
        name
    };
    for n in 0..max {
        renamed(&mut f, n);
    }
    assert_eq!(bob.lines().len(), max);
    alice.lines();
    let name = renamed(&mut f, max);
    assert_eq!(
        alice.lines(),
        ["-ERR [FULL] bob owes receipts to too many senders"]
    );
    assert!(bob.lines().is_empty(), "refused: relayed nowhere");
    // A name already owed: relayed. (alice renames back to the first name.)
    assert!(matches!(f.rename(1, "n0"), Answer::Renamed { .. }));
    alice.lines();
    f.chat(1, "chatm n0 bob again");
    assert_eq!(alice.lines(), ["+OK message relayed"]);
    assert_eq!(bob.lines(), ["chatm n0 bob again"]);
    // Every receipt owed is legal; settling n1 makes room for one more name.
    f.receipt(2, "chatr n1 bob");
    assert_eq!(alice.lines(), ["chatr n1 bob"]);
    assert!(matches!(f.rename(1, &name), Answer::Renamed { .. }));
    alice.lines();
    f.chat(1, &format!("chatm {name} bob hi"));
    assert_eq!(alice.lines(), ["+OK message relayed"]);
    assert_eq!(bob.lines(), [format!("chatm {name} bob hi")]);
    for n in (2..max).chain([0, 0, max]) {
        f.receipt(2, &format!("chatr n{n} bob"));
    }
    let refused = bob.lines();
    assert!(refused.is_empty(), "no receipt refused: {refused:?}");
}
