use super::*;

#[test]
fn off_by_default() {
    let (mut f, alice, _) = hub().pair("alice", "bob");
    assert!(matches!(f.rename(2, "carol"), Answer::Renamed(_)));
    f.quit(2);
    assert!(alice.lines().is_empty());
}

#[test]
fn on_tells_joins_renames_and_quits_of_others() {
    let mut f = hub();
    let alice = f.join(1, "alice");
    f.notif(1, true);
    assert_eq!(alice.lines(), ["+OK notifications on"]);
    f.join(2, "bob");
    assert!(matches!(f.rename(2, "Carol"), Answer::Renamed(_)));
    f.quit(2);
    assert_eq!(
        alice.lines(),
        [
            "notif join bob",
            "notif cname bob Carol",
            "notif quit Carol"
        ]
    );
}

#[test]
fn a_subscriber_is_not_told_its_own_events() {
    let mut f = hub();
    let alice = f.join(1, "alice");
    f.notif(1, true);
    assert!(matches!(f.rename(1, "ALICE"), Answer::Renamed(_)));
    assert_eq!(
        alice.lines(),
        [
            "+OK notifications on",
            "+OK name changed from alice to ALICE"
        ]
    );
}

#[test]
fn refusals_and_negotiating_clients_are_not_events() {
    let mut f = hub();
    let alice = f.join(1, "alice");
    f.notif(1, true);
    alice.lines();
    f.connect(2, HERE);
    assert_eq!(f.register(2, "alice"), Answer::InUse);
    f.quit(2);
    f.join(3, "bob");
    assert_eq!(f.rename(3, "alice"), Answer::NotRenamed);
    assert_eq!(alice.lines(), ["notif join bob"]);
}

#[test]
fn off_stops_them() {
    let mut f = hub();
    let alice = f.join(1, "alice");
    f.notif(1, true);
    f.notif(1, false);
    assert_eq!(
        alice.lines(),
        ["+OK notifications on", "+OK notifications off"]
    );
    f.join(2, "bob");
    f.quit(2);
    assert!(alice.lines().is_empty());
}

#[test]
fn subscribers_who_leave_or_repeat_on_are_counted_once() {
    let mut f = hub();
    let alice = f.join(1, "alice");
    f.join(2, "bob");
    // `notif on` twice is one subscriber; bob leaves subscribed, alice stays.
    f.notif(1, true);
    f.notif(1, true);
    f.notif(2, true);
    f.quit(2);
    alice.lines();
    f.join(3, "carol");
    f.notif(1, false);
    // No one listens now (bob left the hub's subscribers with his connection, alice by
    // `notif off`): carol's join was told to alice once, her departure to no one.
    f.quit(3);
    assert_eq!(alice.lines(), ["notif join carol", "+OK notifications off"]);
}
