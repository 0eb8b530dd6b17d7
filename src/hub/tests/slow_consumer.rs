use super::*;

/// `name` on `conn`, whose output side takes `budget` bytes in all.
fn join_small(f: &mut Fixture, conn: ConnId, name: &str, budget: usize) -> Mem {
    let out = Mem::default();
    out.0.borrow_mut().budget = Some(budget);
    f.connect_with(conn, HERE, out.clone());
    assert!(matches!(f.register(conn, name), Answer::Registered { .. }));
    out
}

#[test]
fn overflow_aborts_the_client_and_releases_its_name() {
    let mut f = hub_with(Duration::ZERO, 1024);
    let alice = f.join(1, "alice");
    f.notif(1, true);
    // "+OK you are bob\r\n" is 17 bytes; the message (22) does not fit in 30.
    let bob = join_small(&mut f, 2, "bob", 30);
    alice.lines();
    f.chat(1, "chatm alice bob hello!");
    assert_eq!(bob.aborted(), Some(Cause::SlowConsumer));
    assert_eq!(bob.lines(), ["+OK you are bob"]);
    assert_eq!(alice.lines(), ["+OK message relayed", "notif quit bob"]);
    f.chat(1, "chatm alice bob again");
    assert_eq!(alice.lines(), ["-ERR [NO-SUCH] no such user bob"]);
    f.connect(3, THERE);
    assert!(matches!(f.register(3, "bob"), Answer::Registered { .. }));
}

#[test]
fn one_slow_consumer_does_not_stop_a_broadcast() {
    let mut f = hub();
    let alice = f.join(1, "alice");
    let bob = join_small(&mut f, 2, "bob", 20);
    let carol = f.join(3, "carol");
    f.chat(1, "chatm alice * hello");
    assert_eq!(bob.aborted(), Some(Cause::SlowConsumer));
    assert_eq!(carol.lines(), ["chatm alice * hello"]);
    assert_eq!(alice.lines(), ["+OK message relayed"]);
    assert!(carol.aborted().is_none() && alice.aborted().is_none());
}

#[test]
fn a_client_within_its_budget_is_kept() {
    let mut f = hub();
    f.join(1, "alice");
    let bob = join_small(&mut f, 2, "bob", 17 + 23);
    f.chat(1, "chatm alice bob hello");
    assert!(bob.aborted().is_none());
    assert_eq!(bob.lines(), ["+OK you are bob", "chatm alice bob hello"]);
}
