//! §5.9: what the hub hands the saver (holds, and connected clients' copies as the
//! mailboxes they would leave), what it takes back at start, and the save at shutdown.
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::*;
use crate::state::{NO_SENDER, SavedHold, Saver, load};

/// A fresh state file path for one test.
fn state_path(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xscp-hub-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir.join("state")
}

/// A hub with `--state path` that saves at shutdown only, after taking back `holds`;
/// names held 300 s, mailboxes of 1 KiB, `total` bytes in all.
fn hub_saving(path: &Path, holds: Vec<SavedHold>, total: usize) -> (Fixture, Saver) {
    let saver = Saver::start(path.to_path_buf(), None).expect("start the saver");
    let hold = Duration::from_secs(300);
    let persist = Persist::new(saver.handle(), Duration::ZERO, hold);
    let hub = Hub::new(HubConfig {
        hold,
        max_holds: 1024,
        max_holds_per_ip: 64,
        mailbox: 1024,
        mailbox_total: total,
    });
    let hub = hub.with_state(persist, holds, path);
    (Fixture { hub }, saver)
}

/// A saved hold of `name`, left by `session`, for here, ending in a minute, with `lines`,
/// each with the session its receipt goes to.
fn saved(name: &str, session: ConnId, lines: &[(&str, ConnId)]) -> SavedHold {
    let until = SystemTime::now() + Duration::from_secs(60);
    let mut hold = SavedHold::new(nick(name), HERE, until, session);
    for (line, sender) in lines {
        hold.push(format!("{line}\r\n").as_bytes(), *sender);
    }
    hold
}

/// `name` comes back on `conn` from here: what it got.
fn come_back(f: &mut Fixture, conn: ConnId, name: &str) -> (Mem, Vec<String>) {
    let out = f.connect(conn, HERE);
    assert_eq!(f.register(conn, name), registered(name, true));
    let lines = out.lines();
    (out, lines)
}

/// The lines of a saved hold's mailbox, without their CRLF.
fn lines_of(h: &SavedHold) -> Vec<String> {
    h.lines()
        .map(|l| String::from_utf8_lossy(l).trim_end().to_string())
        .collect()
}

#[test]
fn at_shutdown_every_client_departs_and_everything_is_saved() {
    let path = state_path("shutdown");
    let (mut f, saver) = hub_saving(&path, Vec::new(), 1 << 20);
    f.join(1, "bob");
    f.join(2, "alice");
    f.join(3, "carol");
    f.quit(3);
    f.chat(1, "chatm bob alice one");
    f.chat(1, "chatm bob alice two");
    f.chat(1, "chatm bob carol held");
    f.receipt(2, "chatr bob alice"); // "one" is delivered: not saved.
    f.hub.handle(ToHub::Shutdown);
    assert!(saver.finish(Duration::from_secs(20)));
    let state = load(&path).expect("loads").expect("saved");
    let by_name = |name: &str| {
        state
            .holds
            .iter()
            .find(|h| h.nick.as_str() == name)
            .unwrap_or_else(|| panic!("{name} not saved: {state:?}"))
    };
    assert_eq!(state.holds.len(), 3);
    assert_eq!(lines_of(by_name("alice")), ["chatm bob alice two"]);
    assert_eq!(lines_of(by_name("carol")), ["chatm bob carol held"]);
    assert!(lines_of(by_name("bob")).is_empty());
    assert!(state.holds.iter().all(|h| h.ip == HERE));
}

#[test]
fn a_periodic_save_takes_connected_clients_as_the_mailboxes_they_would_leave() {
    let path = state_path("snapshot");
    let (mut f, _saver) = hub_saving(&path, Vec::new(), 1 << 20);
    f.join(1, "bob");
    f.join(2, "alice");
    f.chat(1, "chatm bob alice one");
    let (now, wall) = (Instant::now(), SystemTime::now());
    let hold = Duration::from_secs(300);
    let (state, clients) = f.hub.snapshot(now, wall, hold);
    assert!(state.holds.is_empty());
    let mut clients: Vec<SavedHold> = clients.into_iter().map(|d| d.gather()).collect();
    clients.sort_by(|a, b| a.nick.as_str().cmp(b.nick.as_str()));
    assert_eq!(lines_of(&clients[0]), ["chatm bob alice one"]);
    // The receipt goes to bob's session, which the save names.
    assert_eq!(clients[0].senders.as_slice(), [clients[1].session]);
    assert_eq!(clients[0].until, wall + hold);
    assert!(lines_of(&clients[1]).is_empty());
    // Later lines are not in the save taken before them.
    let (_, before) = f.hub.snapshot(now, wall, hold);
    f.chat(1, "chatm bob alice two");
    let alice: Vec<SavedHold> = before.into_iter().map(|d| d.gather()).collect();
    let alice = alice.iter().find(|h| h.nick.as_str() == "alice");
    assert_eq!(lines_of(alice.expect("alice")), ["chatm bob alice one"]);
}

#[test]
fn restored_names_are_welcomed_back_and_receipts_reach_the_restored_sender() {
    let path = state_path("restore");
    let holds = vec![
        saved("bob", 7, &[]),
        saved("alice", 8, &[("chatm bob alice hi", 7)]),
    ];
    let (mut f, _saver) = hub_saving(&path, holds, 1 << 20);
    // Another address: IN-USE.
    f.connect(1, THERE);
    assert_eq!(f.register(1, "alice"), Answer::InUse);
    let (_, lines) = come_back(&mut f, 2, "alice");
    assert_eq!(
        lines,
        [
            "+OK welcome back alice (1 held, 0 lost)",
            "chatm bob alice hi"
        ]
    );
    // bob is still held: the receipt goes into his mailbox.
    f.receipt(2, "chatr bob alice");
    let (_, lines) = come_back(&mut f, 3, "bob");
    assert_eq!(
        lines,
        ["+OK welcome back bob (1 held, 0 lost)", "chatr bob alice"]
    );
}

#[test]
fn a_restore_over_the_total_discards_the_oldest_mailbox() {
    let path = state_path("total");
    // Each line is 20 bytes with its CRLF: room for three in all.
    let total = 3 * cost(20);
    let lines = |name| [1, 2].map(|n| format!("chatm bob {name} {n} abc"));
    let [o1, o2] = lines("old");
    let mut old = saved("old", 1, &[(&o1, NO_SENDER), (&o2, NO_SENDER)]);
    old.until -= Duration::from_secs(30);
    let [n1, n2] = lines("new");
    let new = saved("new", 2, &[(&n1, NO_SENDER), (&n2, NO_SENDER)]);
    let (mut f, _saver) = hub_saving(&path, vec![old, new], total);
    let (_, lines) = come_back(&mut f, 1, "old");
    assert_eq!(lines, ["+OK welcome back old (0 held, 2 lost)"]);
    let (_, lines) = come_back(&mut f, 2, "new");
    assert_eq!(lines[0], "+OK welcome back new (2 held, 0 lost)");
}

/// A hub restored with the hold of `holder` (session 7) and alice's (session 8), whose
/// mailbox has bob's `hi`, sent in `sender`'s session; alice comes back on connection 1
/// and receipts it. The hub (with its saver) and what alice was sent after her return.
fn alice_receipts_a_restored_hi(
    test: &str,
    holder: &str,
    sender: ConnId,
) -> (Fixture, Saver, Vec<String>) {
    let holds = vec![
        saved(holder, 7, &[]),
        saved("alice", 8, &[("chatm bob alice hi", sender)]),
    ];
    let (mut f, saver) = hub_saving(&state_path(test), holds, 1 << 20);
    let (alice, _) = come_back(&mut f, 1, "alice");
    f.receipt(1, "chatr bob alice");
    (f, saver, alice.lines())
}

/// A receipt after a restart goes to the session that sent the message (§5.6 chatr), as
/// it would have without the restart: not to whoever holds the sender's name by then.
#[test]
fn a_restored_receipt_goes_to_the_senders_session_not_to_its_name() {
    // Session 5 sent the message; its hold was not saved, and another bob's (7) was.
    let (mut f, _saver, alice) = alice_receipts_a_restored_hi("session", "bob", 5);
    // Taken (no -ERR), and dropped: bob's mailbox stays empty.
    assert_eq!(alice, Vec::<String>::new());
    let (_, lines) = come_back(&mut f, 2, "bob");
    assert_eq!(lines, ["+OK welcome back bob"]);
}

/// The sender renamed itself before it left: its receipt follows its session (§5.6 chatr,
/// "also after either side renamed"), into the mailbox of the name it left under.
#[test]
fn a_restored_receipt_follows_a_sender_that_renamed_itself() {
    let (mut f, _saver, _) = alice_receipts_a_restored_hi("renamed", "bobby", 7);
    let (_, lines) = come_back(&mut f, 2, "bobby");
    assert_eq!(
        lines,
        ["+OK welcome back bobby (1 held, 0 lost)", "chatr bob alice"]
    );
}
