//! Resume under attack (xscp(7) §5, §5.7, §5.8; issue 18): what a hostile or unlucky
//! client must not cost others. A refused line changes nothing; a held name is reserved
//! for its `uname`; holds are bounded per address first; `--mailbox-total` bounds memory;
//! honest receipts are never refused; a shutdown counts what it discards.

use crate::harness::{
    BYE, Server, come_back, come_back_from, hold, hold_from, leave, proc_status, x40,
};

/// §5.8 "A refused line changes nothing": near `--mailbox-total`, a `chatm` refused
/// `FULL` for the recipient's own `--mailbox` discards no other mailbox to make room.
/// (Before issue 18 the oldest other mailbox went first, then the line was refused.)
#[test]
fn a_refused_chatm_discards_no_other_mailbox() {
    // 58-byte lines: one fits a mailbox of 64, two do not. Two held lines are counted
    // 2 x (58 + 32) = 180 of 250; the refused line of 200 bytes would pass the total.
    let server = Server::start(&["--mailbox", "64", "--mailbox-total", "250"]);
    let mut bob = server.register("bob");
    for name in ["older", "vicky"] {
        hold(&server, name);
        bob.send(&format!("chatm bob {name} {}", x40('m')));
        bob.expect(&format!("+OK message held for {name}"));
    }
    bob.send(&format!("chatm bob vicky {}", "n".repeat(182)));
    bob.expect("-ERR [FULL] mailbox of vicky is full");

    let mut older = come_back(&server, "older");
    older.expect("+OK welcome back older (1 held, 0 lost)");
    older.expect(&format!("chatm bob older {}", x40('m')));
    assert!(older.nothing_pending());
}

/// §5.8: the same for a receipt dropped because its held sender's mailbox is full: it is
/// counted lost there, and no other mailbox is discarded for it.
#[test]
fn a_receipt_dropped_for_a_full_mailbox_discards_no_other_mailbox() {
    // Counted with its bookkeeping a 58-byte line is 90: two held are 180 of 200, and the
    // 19-byte receipt (51) would pass the total.
    let server = Server::start(&["--mailbox", "64", "--mailbox-total", "200"]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    let mut sendr = server.register("sendr");
    // alice owes sendr a receipt whose copy is forgotten (pushed out by bob's line, which
    // alice then receipts): the receipt frees nothing when it comes.
    sendr.send("chatm sendr alice hi");
    sendr.expect("+OK message relayed");
    alice.expect("chatm sendr alice hi");
    bob.send(&format!("chatm bob alice {}", x40('a')));
    bob.expect("+OK message relayed");
    alice.expect(&format!("chatm bob alice {}", x40('a')));
    alice.send("chatr bob alice");
    bob.expect("chatr bob alice");
    // sendr leaves with a full mailbox (58 of 64); older is held with 58 more.
    bob.send(&format!("chatm bob sendr {}", x40('s')));
    bob.expect("+OK message relayed");
    sendr.expect(&format!("chatm bob sendr {}", x40('s')));
    let held = leave(&server, sendr, "sendr");
    assert!(held.contains("(1 held, 0 lost)"), "{held}");
    hold(&server, "older");
    bob.send(&format!("chatm bob older {}", x40('o')));
    bob.expect("+OK message held for older");

    // 19 bytes more would pass the total, but sendr's mailbox cannot take them anyway.
    alice.send("chatr sendr alice");
    server.wait_log(|l| l.contains("receipt for sendr: mailbox of sendr is full, lost"));

    let mut older = come_back(&server, "older");
    older.expect("+OK welcome back older (1 held, 0 lost)");
    older.expect(&format!("chatm bob older {}", x40('o')));
    let mut sendr = come_back(&server, "sendr");
    sendr.expect("+OK welcome back sendr (1 held, 1 lost)");
    sendr.expect(&format!("chatm bob sendr {}", x40('s')));
    assert!(older.nothing_pending() && sendr.nothing_pending());
}

/// §5.7: a held name is reserved for the returning `uname`: `cname` onto it is `IN-USE`
/// from every address, its own included, and the hold keeps its mailbox. (Before, a
/// rename from the holder's address took the name and discarded the mailbox.)
#[test]
fn cname_onto_a_held_name_is_in_use_from_every_address() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    hold(&server, "vic");
    bob.send("chatm bob vic for you");
    bob.expect("+OK message held for vic");

    for (ip, name) in [("127.0.0.1", "mal"), ("127.0.0.2", "mallory")] {
        let mut mal = server.register_from(ip, name);
        mal.send("cname vic");
        mal.expect("-ERR [IN-USE] vic is already taken by another client");
        mal.send("cname VIC");
        mal.expect("-ERR [IN-USE] VIC is already taken by another client");
    }
    let mut vic = come_back(&server, "vic");
    vic.expect("+OK welcome back vic (1 held, 0 lost)");
    vic.expect("chatm bob vic for you");
    assert!(vic.nothing_pending());
}

/// §5.7: holds are bounded per address first. 1,100 holds made from 127.0.0.2 (more than
/// the total bound of 1,024 here) push out only that address's own holds: the victim's
/// name stays held for 127.0.0.1 with its mailbox, and 127.0.0.2 cannot take it. (Before,
/// the oldest hold of all went first: the victim's.)
#[test]
fn holds_from_another_address_cannot_push_a_hold_out() {
    const HOLDS: usize = 1100;
    let server = Server::start(&["--max-clients", "64", "--max-per-ip", "0"]);
    let mut bob = server.register("bob");
    hold(&server, "vic");
    bob.send("chatm bob vic for you");
    bob.expect("+OK message held for vic");

    for i in 0..HOLDS {
        // `cquit` and end of stream: the hub has handled the departure (and made the hold)
        // before the next registration reaches it.
        let mut c = server.register_from("127.0.0.2", &format!("h{i}"));
        c.send("cquit");
        c.expect_close(&[BYE]);
    }
    let mut mal = come_back_from(&server, "127.0.0.2", "vic");
    mal.expect("-ERR [IN-USE] vic is already taken by another client (attempt 1 of 3)");
    // The attacker's own newest holds are still there; its oldest went first (logged,
    // with its mailbox counts).
    let mut here = come_back(&server, &format!("h{}", HOLDS - 1));
    here.expect(&format!(
        "-ERR [IN-USE] h{} is already taken by another client (attempt 1 of 3)",
        HOLDS - 1
    ));
    let dropped = server.wait_log(|l| l.contains("hold on h0 for 127.0.0.2 dropped"));
    assert!(dropped.contains("(0 held, 0 lost)"), "{dropped}");

    let mut vic = come_back(&server, "vic");
    vic.expect("+OK welcome back vic (1 held, 0 lost)");
    vic.expect("chatm bob vic for you");
}

/// §5.7: past the total bound (`--max-holds`) the oldest hold of the address holding the
/// most goes first, not the oldest of all.
#[test]
fn past_the_total_the_address_holding_the_most_loses_first() {
    let server = Server::start(&["--max-holds", "4", "--max-holds-per-ip", "3"]);
    hold(&server, "vic");
    for name in ["ma", "mb", "mc"] {
        hold_from(&server, "127.0.0.2", name);
    }
    // A fifth hold, from a third address: 127.0.0.2 holds the most, its oldest goes.
    hold_from(&server, "127.0.0.3", "nu");
    server.wait_log(|l| l.contains("hold on ma for 127.0.0.2 dropped"));
    let mut vic = come_back(&server, "vic");
    vic.expect("+OK welcome back vic");
}

/// §5.7, xscpd(1) `--max-holds`: past the total, an address that catches up with another
/// (holding as many once its new hold is counted) loses its own oldest hold, not the
/// other's, however much older the other's holds are. (Before, of two holding as many the
/// older hold went: the address that was there first.)
#[test]
fn past_the_total_an_address_that_catches_up_loses_its_own_hold() {
    let server = Server::start(&["--max-holds", "3", "--max-holds-per-ip", "3"]);
    let mut bob = server.register_from("127.0.0.3", "bob");
    for name in ["vic1", "vic2"] {
        hold(&server, name);
    }
    bob.send("chatm bob vic1 for you");
    bob.expect("+OK message held for vic1");
    hold_from(&server, "127.0.0.2", "ma");
    // 127.0.0.2 catches up: two holds each once this one is counted.
    hold_from(&server, "127.0.0.2", "mb");
    let dropped = server.wait_log(|l| l.contains(" dropped: too many holds (--max-holds)"));
    assert!(
        dropped.contains("hold on ma for 127.0.0.2 dropped"),
        "{dropped}"
    );
    let mut vic = come_back(&server, "vic1");
    vic.expect("+OK welcome back vic1 (1 held, 0 lost)");
    vic.expect("chatm bob vic1 for you");
}

/// `capa` shows both hold bounds, after `MAILBOX`; the `HOLD <secs>` line is unchanged.
#[test]
fn capa_shows_both_hold_bounds() {
    let server = Server::start(&[
        "--hold",
        "9",
        "--max-holds",
        "500",
        "--max-holds-per-ip",
        "7",
    ]);
    let mut c = server.connect().greeted();
    c.send("capa");
    let (_, items) = c.multiline();
    let mailbox = items.iter().position(|i| i.starts_with("MAILBOX "));
    let holds = items.iter().position(|i| i == "HOLDS 500 7");
    assert!(items.iter().any(|i| i == "HOLD 9"), "{items:?}");
    assert!(
        holds.is_some() && holds == mailbox.map(|m| m + 1),
        "{items:?}"
    );
}

/// §5.8: `--mailbox-total` bounds memory, bookkeeping included: a held mailbox filled
/// with 15-byte lines up to the total adds at most the total plus the documented margin
/// (a quarter, and 2 MiB for the process's own noise) to the server's resident memory.
/// (Before, only the lines' bytes were counted: 16 MiB of them cost over 60 MiB.)
#[test]
fn the_mailbox_total_bounds_memory_for_short_lines() {
    const TOTAL: u64 = 16 << 20;
    let server = Server::start(&[
        "--sendq",
        "16M",
        "--mailbox",
        "16M",
        "--mailbox-total",
        "16M",
    ]);
    let mut a = server.register("a");
    hold(&server, "v");
    assert!(a.nothing_pending());
    let before = proc_status(server.pid(), "VmRSS");
    // 15 bytes with CRLF, pipelined in batches until the mailbox is full.
    const BATCH: usize = 2000;
    let batch = "chatm a v xyz\r\n".repeat(BATCH);
    let mut kept = 0u64;
    'fill: loop {
        a.send_raw(batch.as_bytes());
        let mut full = false;
        for _ in 0..BATCH {
            match a.line().as_str() {
                "+OK message held for v" => kept += 1,
                "-ERR [FULL] mailbox of v is full" => full = true,
                other => panic!("unexpected reply {other}"),
            }
        }
        if full {
            break 'fill;
        }
        assert!(kept * 15 <= TOTAL, "more lines kept than their bytes allow");
    }
    let added = proc_status(server.pid(), "VmRSS").saturating_sub(before) * 1024;
    assert!(
        added <= TOTAL + TOTAL / 4 + (2 << 20),
        "{kept} lines of 15 bytes held: resident memory grew by {added} bytes for a \
         --mailbox-total of {TOTAL}"
    );
}

/// §5 and §5.8: honest receipts are never refused, however senders interleave: two
/// senders alternating 1,100 messages each, all read and receipted by their recipient,
/// which gets no `-ERR`, and every receipt reaches its sender. (Before, the pending
/// receipts were bounded at 1,024 runs and most of these were refused `NO-SUCH`.)
#[test]
fn honest_receipts_are_never_refused_however_senders_interleave() {
    const EACH: usize = 1100;
    let server = Server::start(&[]);
    let mut ann = server.register("ann");
    let mut ben = server.register("ben");
    let mut rcv = server.register("rcv");
    for i in 0..EACH {
        ann.send(&format!("chatm ann rcv a{i}"));
        ann.expect("+OK message relayed");
        rcv.expect(&format!("chatm ann rcv a{i}"));
        ben.send(&format!("chatm ben rcv b{i}"));
        ben.expect("+OK message relayed");
        rcv.expect(&format!("chatm ben rcv b{i}"));
    }
    let receipts = "chatr ann rcv\r\nchatr ben rcv\r\n".repeat(EACH);
    rcv.send_raw(receipts.as_bytes());
    assert!(rcv.nothing_pending(), "a receipt was refused");
    for _ in 0..EACH {
        ann.expect("chatr ann rcv");
        ben.expect("chatr ben rcv");
    }
    rcv.send("chatr ann rcv");
    rcv.expect("-ERR [NO-SUCH] no message from ann awaits a receipt");
}

/// §5.8: a receipt that arrives for a forgotten copy proves it delivered: it comes off
/// the lost count the departure reports.
#[test]
fn a_receipt_for_a_forgotten_copy_takes_it_off_the_lost_count() {
    let server = Server::start(&["--mailbox", "64"]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    for c in ['x', 'y'] {
        bob.send(&format!("chatm bob alice {}", x40(c)));
        bob.expect("+OK message relayed");
        alice.expect(&format!("chatm bob alice {}", x40(c)));
    }
    // The first copy was forgotten (two do not fit in 64); its receipt comes anyway.
    alice.send("chatr bob alice");
    bob.expect("chatr bob alice");
    let held = leave(&server, alice, "alice");
    assert!(held.contains("(1 held, 0 lost)"), "{held}");
}

/// §5.8 Audit: a shutdown without `--state` logs one line counting what it discards:
/// holds, their lines, and the connected clients' copies.
#[test]
fn shutdown_counts_what_it_discards() {
    let mut server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    for name in ["vic", "val"] {
        hold(&server, name);
    }
    for i in 0..3 {
        bob.send(&format!("chatm bob vic m{i}"));
        bob.expect("+OK message held for vic");
        bob.send(&format!("chatm bob alice c{i}"));
        bob.expect("+OK message relayed");
        alice.expect(&format!("chatm bob alice c{i}"));
    }
    server.signal("TERM");
    let line = server.wait_log(|l| l.contains("discarded at shutdown"));
    assert!(
        line.contains("2 holds (3 lines held, 0 lost), 3 copies of connected clients"),
        "{line}"
    );
    assert!(server.wait_exit().success());
}

/// Hostile: a sender that renames itself before each direct message to a client that never
/// sends receipts. Each name owed a receipt costs bookkeeping that forgetting copies does
/// not free (a receipt for it stays legal, §5.8), so the names one client owes are bounded
/// (`--mailbox 4KiB`: 128): past them a message from a new name is refused with FULL and
/// relayed nowhere (before, every one was relayed and the recipient's bookkeeping grew
/// about 180 bytes a message, past --mailbox-total). Every receipt owed is still taken.
#[test]
fn a_sender_renaming_itself_cannot_grow_a_recipients_receipts_without_bound() {
    const ROUNDS: usize = 300;
    const OWED: usize = 128;
    let server = Server::start(&["--mailbox", "4KiB"]);
    let mut rcv = server.register("rcv");
    let mut snd = server.register("n0");
    let rounds: String = (1..=ROUNDS)
        .map(|i| format!("cname n{i}\r\nchatm n{i} rcv x\r\n"))
        .collect();
    snd.send_raw(rounds.as_bytes());
    for i in 1..=ROUNDS {
        snd.expect(&format!("+OK name changed from n{} to n{i}", i - 1));
        if i <= OWED {
            snd.expect("+OK message relayed");
        } else {
            snd.expect("-ERR [FULL] rcv owes receipts to too many senders");
        }
    }
    for i in 1..=OWED {
        rcv.expect(&format!("chatm n{i} rcv x"));
    }
    assert!(rcv.nothing_pending(), "nothing past the bound was relayed");
    server.wait_log(|l| l.contains("chatm to rcv: rcv owes receipts to 128 senders already"));
    let receipts: String = (1..=OWED).map(|i| format!("chatr n{i} rcv\r\n")).collect();
    rcv.send_raw(receipts.as_bytes());
    for i in 1..=OWED {
        snd.expect(&format!("chatr n{i} rcv"));
    }
    assert!(rcv.nothing_pending(), "every receipt owed was taken");
}

/// Hostile: the same renaming sender, writing to a held name instead. What a held mailbox
/// keeps, its owner owes receipts for once back (every replayed `chatm` awaits one,
/// §5.8), so the sender names of a mailbox are bounded as a client's are (`--mailbox
/// 1KiB`: 32): a message from one more name is refused with FULL and kept nowhere, one
/// from a name already there is held. (Before, all were held, and the returning client
/// owed receipts to more names than the bound allows.) Every receipt owed is taken.
#[test]
fn a_renaming_sender_cannot_make_a_held_name_owe_receipts_past_the_bound() {
    const OWED: usize = 32;
    let server = Server::start(&["--mailbox", "1KiB"]);
    hold(&server, "rcv");
    let mut snd = server.register("n0");
    let rounds: String = (1..=OWED + 1)
        .map(|i| format!("cname n{i}\r\nchatm n{i} rcv x\r\n"))
        .collect();
    snd.send_raw(rounds.as_bytes());
    for i in 1..=OWED + 1 {
        snd.expect(&format!("+OK name changed from n{} to n{i}", i - 1));
        if i <= OWED {
            snd.expect("+OK message held for rcv");
        } else {
            snd.expect("-ERR [FULL] rcv owes receipts to too many senders");
        }
    }
    server.wait_log(|l| l.contains("chatm to rcv: rcv owes receipts to 32 senders already"));
    // A name the mailbox holds lines from is no new debt.
    snd.send(&format!("cname n{OWED}"));
    snd.expect(&format!("+OK name changed from n{} to n{OWED}", OWED + 1));
    snd.send(&format!("chatm n{OWED} rcv y"));
    snd.expect("+OK message held for rcv");

    let mut rcv = come_back(&server, "rcv");
    rcv.expect(&format!("+OK welcome back rcv ({} held, 0 lost)", OWED + 1));
    for i in 1..=OWED {
        rcv.expect(&format!("chatm n{i} rcv x"));
    }
    rcv.expect(&format!("chatm n{OWED} rcv y"));
    let receipts: String = (1..=OWED)
        .map(|i| format!("chatr n{i} rcv\r\n"))
        .chain([format!("chatr n{OWED} rcv\r\n")])
        .collect();
    rcv.send_raw(receipts.as_bytes());
    assert!(rcv.nothing_pending(), "every receipt owed was taken");
    for i in 1..=OWED {
        snd.expect(&format!("chatr n{i} rcv"));
    }
    snd.expect(&format!("chatr n{OWED} rcv"));
}
