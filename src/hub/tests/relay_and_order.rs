use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

#[test]
fn a_direct_message_is_relayed_exactly_and_confirmed() {
    let (mut f, alice, bob) = hub().pair("alice", "bob");
    f.chat(1, "chatm alice BOB hello  there");
    assert_eq!(alice.lines(), ["+OK message relayed"]);
    assert_eq!(bob.lines(), ["chatm alice BOB hello  there"]);
}

#[test]
fn a_broadcast_reaches_every_other_established_client() {
    let (mut f, alice, bob) = hub().pair("alice", "bob");
    let carol = f.join(3, "carol");
    let negotiating = f.connect(4, HERE);
    f.chat(1, "chatm alice * hi all");
    assert_eq!(alice.lines(), ["+OK message relayed"]);
    assert_eq!(bob.lines(), ["chatm alice * hi all"]);
    assert_eq!(carol.lines(), ["chatm alice * hi all"]);
    assert!(negotiating.lines().is_empty());
}

#[test]
fn a_message_to_no_such_user_is_refused() {
    let (mut f, alice, bob) = hub().pair("alice", "bob");
    f.connect(3, HERE); // Not registered: not a recipient.
    f.chat(1, "chatm alice carol hi");
    assert_eq!(alice.lines(), ["-ERR [NO-SUCH] no such user carol"]);
    assert!(bob.lines().is_empty());
}

#[test]
fn a_departed_client_is_no_recipient_without_a_hold() {
    let (mut f, alice, _) = hub_with(Duration::ZERO, 1024).pair("alice", "bob");
    f.quit(2);
    f.chat(1, "chatm alice bob hi");
    assert_eq!(alice.lines(), ["-ERR [NO-SUCH] no such user bob"]);
}

#[test]
fn messages_from_one_sender_arrive_in_order() {
    let (mut f, _, bob) = hub().pair("alice", "bob");
    for i in 0..5 {
        f.chat(1, &format!("chatm alice bob {i}"));
    }
    f.chat(1, "chatm alice * 5");
    assert_eq!(
        bob.lines(),
        (0..6)
            .map(|i| format!("chatm alice {} {i}", if i < 5 { "bob" } else { "*" }))
            .collect::<Vec<_>>()
    );
}

#[test]
fn responses_keep_their_place_among_the_hubs() {
    let (mut f, alice, _) = hub().pair("alice", "bob");
    f.hub.handle(ToHub::Respond {
        conn: 1,
        line: "+OK pong 1\r\n".into(),
    });
    f.chat(1, "chatm alice bob hi");
    f.hub.handle(ToHub::Respond {
        conn: 1,
        line: "+OK pong 2\r\n".into(),
    });
    assert_eq!(
        alice.lines(),
        ["+OK pong 1", "+OK message relayed", "+OK pong 2"]
    );
}

#[test]
fn relayed_is_sent_before_the_receipt() {
    let (mut f, alice, _) = hub().pair("alice", "bob");
    f.chat(1, "chatm alice bob hi");
    f.receipt(2, "chatr alice bob");
    assert_eq!(alice.lines(), ["+OK message relayed", "chatr alice bob"]);
}

/// Queues the accept and `uname name` of client `conn` for a hub that runs later;
/// keep the returned half of the answer until it has run.
fn join_queued(
    tx: &crossbeam_channel::Sender<ToHub<Mem>>,
    conn: ConnId,
    name: &str,
    out: &Mem,
) -> Pending {
    let (answer, pending) = slot();
    let accepted = ToHub::Accepted {
        conn,
        tag: Tag::from(format!("conn={conn}").as_str()),
        ip: HERE,
        outbox: out.clone(),
    };
    tx.send(accepted).expect("send");
    let register = ToHub::Request {
        conn,
        request: Request::Register {
            nick: nick(name),
            attempt: FIRST_ATTEMPT,
        },
        answer: Some(answer),
    };
    tx.send(register).expect("send");
    pending
}

#[test]
fn writers_are_woken_once_a_burst() {
    let f = hub();
    let (tx, rx) = bounded(64);
    let (alice, bob) = (Mem::default(), Mem::default());
    let _pending = [
        join_queued(&tx, 1, "alice", &alice),
        join_queued(&tx, 2, "bob", &bob),
    ];
    for i in 0..10 {
        let line = format!("chatm alice bob {i}\r\n");
        let mut chats = Chats::default();
        chats.push(&line, field(&line, 2), 1);
        tx.send(ToHub::Chat { conn: 1, chats }).expect("send");
    }
    drop(tx);
    f.hub.run(rx);
    assert_eq!(bob.lines().len(), 1 + 10); // `+OK you are bob`, the messages.
    assert_eq!(bob.wakes(), 1);
    assert_eq!(alice.wakes(), 1);
}

#[test]
fn a_long_burst_wakes_writers_every_wake_batch_lines() {
    let f = hub();
    let (tx, rx) = bounded(1024);
    let (alice, bob) = (Mem::default(), Mem::default());
    let _pending = [
        join_queued(&tx, 1, "alice", &alice),
        join_queued(&tx, 2, "bob", &bob),
    ];
    // WAKE_BATCH lines in batches of 32, then one more line: within one burst, the
    // writers are woken once the hub has handled WAKE_BATCH lines, and at its end.
    let line = "chatm alice bob x\r\n";
    for _ in 0..WAKE_BATCH / 32 {
        let mut chats = Chats::default();
        for _ in 0..32 {
            chats.push(line, field(line, 2), 32);
        }
        tx.send(ToHub::Chat { conn: 1, chats }).expect("send");
    }
    let mut last = Chats::default();
    last.push(line, field(line, 2), 1);
    tx.send(ToHub::Chat {
        conn: 1,
        chats: last,
    })
    .expect("send");
    drop(tx);
    f.hub.run(rx);
    assert_eq!(bob.lines().len(), 1 + WAKE_BATCH + 1);
    assert_eq!(bob.wakes(), 2);
}

/// `clients` clients join in one burst, and the first broadcasts in the next, to a hub
/// whose helper writes the queues handed to it or, if `busy`, gives them back. Checks that
/// every client got the broadcast (the sender its `+OK`) and was woken exactly once for
/// it; returns how many queues of the broadcast's burst were handed to the helper.
fn one_broadcast_burst(clients: usize, busy: bool) -> usize {
    let handed = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&handed);
    let helper: Helper<Mem> = Box::new(move |outs: Vec<Mem>| {
        counted.fetch_add(outs.len(), Ordering::SeqCst);
        if busy {
            return Err(outs);
        }
        for out in &outs {
            out.wake_now();
        }
        Ok(())
    });
    let mut hub = hub().hub.with_helper(helper);
    let (tx, rx) = bounded(2 * clients);
    let outs: Vec<Mem> = (0..clients).map(|_| Mem::default()).collect();
    let _pending: Vec<Pending> = (1..)
        .zip(&outs)
        .map(|(conn, out)| join_queued(&tx, conn, &format!("c{conn}"), out))
        .collect();
    // The joins' burst, as `Hub::run` ends it.
    while let Ok(msg) = rx.try_recv() {
        hub.handle(msg);
    }
    hub.wake_writers();
    assert!(
        outs.iter().all(|out| out.wakes() == 1),
        "a join's reply unwritten"
    );
    let before = handed.load(Ordering::SeqCst);
    // The broadcast's burst.
    let line = "chatm c1 * hi\r\n";
    let mut chats = Chats::default();
    chats.push(line, field(line, 2), 1);
    hub.handle(ToHub::Chat { conn: 1, chats });
    hub.wake_writers();
    for (conn, out) in (1..).zip(&outs) {
        let want = if conn == 1 {
            "+OK message relayed"
        } else {
            "chatm c1 * hi"
        };
        let lines = out.lines();
        assert_eq!(lines.last().map(String::as_str), Some(want), "c{conn}");
        assert_eq!(out.wakes(), 2, "c{conn}");
    }
    handed.load(Ordering::SeqCst) - before
}

#[test]
fn a_burst_that_reaches_many_clients_shares_their_writing_with_the_helper() {
    assert_eq!(one_broadcast_burst(SHARE_WAKES, false), SHARE_WAKES / 2);
}

#[test]
fn what_a_busy_helper_gives_back_the_hub_writes_itself() {
    assert_eq!(one_broadcast_burst(SHARE_WAKES, true), SHARE_WAKES / 2);
}

#[test]
fn a_smaller_burst_is_written_by_the_hub_alone() {
    assert_eq!(one_broadcast_burst(SHARE_WAKES - 1, false), 0);
}
