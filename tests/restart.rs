//! Restarts with `--state` (xscp(7) §5.9), over real processes: holds and mailboxes
//! saved at an orderly shutdown and every `--state-interval`, taken back at start with the
//! answers of §5.7 and §5.8; a crash loses at most what came after the last save; a file
//! that cannot be read or parsed stops the server before it listens and is left as it was.
//! Saves are waited for by their log line (`state saved to ...`), never by time.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use xscp::protocol::nick::Nick;
use xscp::state::{NO_SENDER, Saved, SavedHold, write_atomic};

use crate::harness::{
    Client, Server, come_back, come_back_from, hold, hold_from, leave, run_xscpd, x40,
};

/// A fresh directory for one test's state file.
fn state_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xscpd-restart-{test}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create the state directory");
    dir
}

/// Starts `xscpd --state <path>` plus `args`, and waits until it says what it restored
/// (also from a missing file: nothing). That line comes after the saver checked that it
/// can write beside the file (creating and removing `<path>.tmp`), so a test may then
/// change what is there; "does not exist" comes before that check.
fn start(path: &Path, args: &[&str]) -> Server {
    let mut all = vec!["--state", path.to_str().expect("a UTF-8 path")];
    all.extend_from_slice(args);
    let server = Server::start(&all);
    server.wait_log(|l| l.contains("state restored from"));
    server
}

/// Ends the server with `sig`, and waits for its last save and its exit (status 0).
fn stop(mut server: Server, sig: &str) {
    server.signal(sig);
    server.wait_log(|l| l.contains("state saved to"));
    let status = server.wait_exit();
    assert!(status.success(), "{status:?}");
}

/// A line of 58 bytes with its CRLF: `chatm bob alice ` and 40 times `c`.
fn line58(c: char) -> String {
    format!("chatm bob alice {}", x40(c))
}

/// The acceptance test of §5.9: a held name's three messages survive an orderly restart;
/// the same address gets them with the counted welcome back, another gets IN-USE; and the
/// receipts reach the sender, held at the shutdown and back after it.
#[test]
fn an_orderly_restart_keeps_a_held_name_and_its_mailbox() {
    let path = state_dir("orderly").join("state");
    let server = start(&path, &[]);
    let mut bob = server.register("bob");
    hold(&server, "alice");
    for i in 1..=3 {
        bob.send(&format!("chatm bob alice message {i}"));
        bob.expect("+OK message held for alice");
    }
    stop(server, "TERM");
    bob.expect_close(&["cquit server shutting down"]);

    let server = start(&path, &[]);
    let mut other = come_back_from(&server, "127.0.0.2", "alice");
    other.expect_prefix("-ERR [IN-USE] alice is already taken by another client");
    let mut bob = come_back(&server, "bob");
    bob.expect("+OK welcome back bob");
    let mut alice = come_back(&server, "alice");
    alice.expect("+OK welcome back alice (3 held, 0 lost)");
    for i in 1..=3 {
        alice.expect(&format!("chatm bob alice message {i}"));
    }
    for _ in 1..=3 {
        alice.send("chatr bob alice");
        bob.expect("chatr bob alice");
    }
    assert!(alice.nothing_pending());
}

/// §5.9 When: a client connected at the shutdown departs as by `cquit`: its name is held
/// with its unreceipted copies, which come back after the restart.
#[test]
fn a_client_connected_at_shutdown_gets_its_unreceipted_messages_back() {
    let path = state_dir("connected").join("state");
    let server = start(&path, &[]);
    let mut bob = server.register("bob");
    let mut carol = server.register("carol");
    for text in ["one", "two"] {
        relayed(&mut bob, &mut carol, &format!("chatm bob carol {text}"));
    }
    stop(server, "TERM");
    carol.expect_close(&["cquit server shutting down"]);

    let server = start(&path, &[]);
    let mut carol = come_back(&server, "carol");
    carol.expect("+OK welcome back carol (2 held, 0 lost)");
    carol.expect("chatm bob carol one");
    carol.expect("chatm bob carol two");
    assert!(carol.nothing_pending());
}

/// `from` sends `line`, a `chatm` to `to`, who reads it and does not receipt it.
fn relayed(from: &mut Client, to: &mut Client, line: &str) {
    from.send(line);
    from.expect("+OK message relayed");
    to.expect(line);
}

/// After the restart alice comes back to bob's `hi` and receipts it; the receipt is taken.
fn receipt_hi(server: &Server) {
    let mut alice = come_back(server, "alice");
    alice.expect("+OK welcome back alice (1 held, 0 lost)");
    alice.expect("chatm bob alice hi");
    alice.send("chatr bob alice");
    assert!(alice.nothing_pending(), "the receipt is taken");
}

/// §5.6 chatr across a restart: a receipt goes to the session that sent the message, not
/// to whoever has the sender's name by the save. bob's hold is pushed out (one hold an
/// address) and carol takes the name; after the restart alice's receipt for bob's
/// message is taken and dropped, as it would have been without the restart.
#[test]
fn a_receipt_after_a_restart_does_not_reach_a_new_owner_of_the_name() {
    let path = state_dir("new-owner").join("state");
    let server = start(&path, &["--max-holds-per-ip", "1"]);
    let mut alice = server.register("alice");
    let mut bob = server.register_from("127.0.0.2", "bob");
    relayed(&mut bob, &mut alice, "chatm bob alice hi");
    leave(&server, bob, "bob");
    // Another name held for the same address pushes bob's hold out.
    hold_from(&server, "127.0.0.2", "dave");
    let carol = server.register_from("127.0.0.3", "bob");
    stop(server, "TERM");
    alice.expect_close(&["cquit server shutting down"]);
    drop(carol);

    let server = start(&path, &[]);
    receipt_hi(&server);
    let mut carol = come_back_from(&server, "127.0.0.3", "bob");
    carol.expect("+OK welcome back bob");
    assert!(carol.nothing_pending());
}

/// §5.6 chatr ("also after either side renamed") across a restart: bob renamed himself
/// after sending; the receipt reaches him under his new name.
#[test]
fn a_receipt_after_a_restart_follows_a_sender_that_renamed_itself() {
    let path = state_dir("renamed").join("state");
    let server = start(&path, &[]);
    let mut alice = server.register("alice");
    let mut bob = server.register("bob");
    relayed(&mut bob, &mut alice, "chatm bob alice hi");
    bob.send("cname bobby");
    bob.expect_prefix("+OK");
    stop(server, "TERM");
    bob.expect_close(&["cquit server shutting down"]);

    let server = start(&path, &[]);
    receipt_hi(&server);
    let mut bob = come_back(&server, "bobby");
    bob.expect("+OK welcome back bobby (1 held, 0 lost)");
    bob.expect("chatr bob alice");
    assert!(bob.nothing_pending());
}

/// SIGINT and SIGHUP shut the server down in order too, and save.
#[test]
fn sigint_and_sighup_save_as_sigterm_does() {
    for sig in ["INT", "HUP"] {
        let path = state_dir(&format!("sig{sig}")).join("state");
        let server = start(&path, &[]);
        let _dave = server.register("dave");
        stop(server, sig);
        let server = start(&path, &[]);
        come_back(&server, "dave").expect("+OK welcome back dave");
    }
}

/// §5.9 When: with `--state-interval`, what was held before the last save survives a
/// SIGKILL.
#[test]
fn messages_held_before_the_last_save_survive_a_crash() {
    let path = state_dir("crash").join("state");
    let server = start(&path, &["--state-interval", "200ms"]);
    let mut bob = server.register("bob");
    hold(&server, "alice");
    bob.send("chatm bob alice before the save");
    bob.expect("+OK message held for alice");
    bob.send("chatm bob alice also before");
    bob.expect("+OK message held for alice");
    // A save that has both (bob's own hold is his, empty).
    server.wait_log(|l| l.contains("state saved to") && l.contains(", 2 lines,"));
    server.signal("KILL");
    // Reaped before the next start: until the killed process is gone it holds the state
    // file's lock, and the next server would refuse the file as locked by another xscpd.
    drop(server);

    let server = start(&path, &[]);
    let mut alice = come_back(&server, "alice");
    alice.expect("+OK welcome back alice (2 held, 0 lost)");
    alice.expect("chatm bob alice before the save");
    alice.expect("chatm bob alice also before");
}

/// `holds` holds of `lines` lines each, held for 127.0.0.1 and ::1 by turns, unexpired.
fn big_state(holds: usize, lines: usize) -> Saved {
    let until = SystemTime::now() + Duration::from_secs(3600);
    let holds = (0..holds)
        .map(|i| {
            let nick = Nick::parse(&format!("user{i}")).expect("nickname");
            let ip: IpAddr = if i % 2 == 0 { "127.0.0.1" } else { "::1" }
                .parse()
                .expect("ip");
            let mut hold = SavedHold::new(nick, ip, until, i as u64 + 1);
            hold.lost = i as u64;
            for j in 0..lines {
                let line = format!("chatm bob {} line {j} {}\r\n", hold.nick, "z".repeat(60));
                hold.push(line.as_bytes(), NO_SENDER);
            }
            hold
        })
        .collect();
    Saved { holds }
}

/// §5.9 How: the file is always a complete save. The server is killed while it saves
/// (every millisecond, a few MiB each time), again and again; every start after a kill
/// restores everything, never part of it.
#[test]
fn a_kill_during_a_save_never_leaves_a_partial_file() {
    let path = state_dir("kill-loop").join("state");
    let (holds, lines) = (500, 40);
    write_atomic(&path, &big_state(holds, lines), SystemTime::now()).expect("write the state");
    let restored = format!("{holds} holds, {} lines,", holds * lines);
    let bounds = ["--max-holds-per-ip", "1000"];
    for round in 0..6 {
        let server = start(&path, &["--state-interval", "1ms", bounds[0], bounds[1]]);
        let line = server.wait_log(|l| l.contains("state restored from"));
        assert!(line.contains(&restored), "round {round}: {line}");
        // Killed while the next save is being written, or between two.
        server.wait_log_count(round % 3 + 1, |l| l.contains("state saved to"));
        server.signal("KILL");
    }
    let server = start(&path, &bounds);
    let line = server.wait_log(|l| l.contains("state restored from"));
    assert!(line.contains(&restored), "{line}");
}

/// Runs `xscpd --state <path>` (on a port of its own) to its exit.
fn run_with_state(path: &Path) -> std::process::Output {
    run_xscpd(&[
        "-l",
        "127.0.0.1:0",
        "--state",
        path.to_str().expect("UTF-8"),
    ])
}

/// Runs `xscpd --state <path>` to its exit, which must be status 2 before it listens, with
/// one message on stderr naming the file and `what`; the file must be byte for byte as it
/// was.
fn refused(path: &Path, what: &str) {
    let before = fs::read(path).ok();
    let out = run_with_state(path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("LISTEN"), "listened: {err}");
    let message = err
        .lines()
        .find(|l| l.starts_with("xscpd: "))
        .unwrap_or_else(|| panic!("no message: {err}"));
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains(what), "{message} should say {what:?}");
    assert_eq!(fs::read(path).ok(), before, "the file changed");
}

/// §5.9 Start: a corrupt, truncated, wrong-version or unreadable file stops the server
/// with status 2 before it listens, naming the file and the line, and leaves it as it was.
#[test]
fn a_bad_state_file_stops_the_server_before_it_listens() {
    let dir = state_dir("bad");
    let path = dir.join("state");
    write_atomic(&path, &big_state(3, 2), SystemTime::now()).expect("write the state");
    let good = fs::read_to_string(&path).expect("read");

    // Corrupt: a mailbox line that is no chatm.
    let corrupt = good.replacen("from - chatm bob user1 line 0", "hello there", 1);
    fs::write(&path, &corrupt).expect("write");
    refused(&path, "line 7: 'hello there");

    // Truncated in the middle of a line, and at a line's end.
    fs::write(&path, &good[..good.len() / 2]).expect("write");
    refused(&path, "cut short");
    let whole_lines = &good[..good.rfind("\nhold ").expect("a hold") + 1];
    fs::write(&path, whole_lines).expect("write");
    refused(&path, "cut short");

    // Another version.
    fs::write(&path, good.replacen("xscpd-state 2", "xscpd-state 3", 1)).expect("write");
    refused(&path, "line 1: version '3'");

    // Unreadable: a directory where the file should be.
    let not_a_file = dir.join("dir");
    fs::create_dir_all(&not_a_file).expect("mkdir");
    refused(&not_a_file, "cannot read state file");

    // Not a file: a named pipe nobody writes to (a read would wait forever, before the
    // server listens, deaf to SIGTERM). Not read here either, for the same reason.
    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo");
    let out = run_with_state(&fifo);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("LISTEN"), "listened: {err}");
    let named = format!(
        "cannot read state file {}: not a regular file",
        fifo.display()
    );
    assert!(err.contains(&named), "{err}");
    let meta = fs::symlink_metadata(&fifo).expect("the pipe");
    assert!(
        std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()),
        "the pipe was replaced"
    );

    // Unreadable: no permission (unless the tests run as root, who reads anyway).
    fs::write(&path, &good).expect("write");
    set_mode(&path, 0o000);
    if fs::read(&path).is_err() {
        refused(&path, "cannot read state file");
    }
    set_mode(&path, 0o600);
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// §5.9 Start: a missing file is an empty state, and the log says so.
#[test]
fn a_missing_state_file_is_an_empty_state() {
    let path = state_dir("missing").join("state");
    let server = start(&path, &[]);
    server.wait_log(|l| l.contains(&format!("state file {} does not exist", path.display())));
    let mut alice = come_back(&server, "alice");
    alice.expect("+OK you are alice");
}

/// §5.9 Start: the bounds in force now apply; a smaller `--mailbox` than at the save
/// counts the oldest lines that no longer fit as lost.
#[test]
fn a_smaller_mailbox_at_restore_counts_the_overflow_lost() {
    let path = state_dir("smaller").join("state");
    let server = start(&path, &[]);
    let mut bob = server.register("bob");
    hold(&server, "alice");
    for c in ['x', 'y', 'z'] {
        bob.send(&line58(c));
        bob.expect("+OK message held for alice");
    }
    stop(server, "TERM");

    // Two 58-byte lines fit in 128 bytes, three do not.
    let server = start(&path, &["--mailbox", "128"]);
    server.wait_log(|l| l.contains("mailbox of alice over --mailbox (128 bytes)"));
    let mut alice = come_back(&server, "alice");
    alice.expect("+OK welcome back alice (2 held, 1 lost)");
    alice.expect(&line58('y'));
    alice.expect(&line58('z'));
}

/// §5.9 Start: a hold whose expiry passed while the server was stopped is discarded, and
/// logged with its counts; the others come back.
#[test]
fn expired_holds_are_discarded_at_start() {
    let path = state_dir("expired").join("state");
    let mut state = big_state(2, 1);
    state.holds[0].until = SystemTime::now() - Duration::from_secs(60);
    write_atomic(&path, &state, SystemTime::now()).expect("write the state");
    let server = start(&path, &[]);
    server.wait_log(|l| {
        l.contains("hold on user0 for 127.0.0.1 expired at") && l.contains("(1 held, 0 lost)")
    });
    let line = server.wait_log(|l| l.contains("state restored from"));
    assert!(line.contains("1 holds, 1 lines, 1 lost"), "{line}");
    come_back(&server, "user0").expect("+OK you are user0");
    // Held for ::1: this address is another one.
    come_back(&server, "user1")
        .expect_prefix("-ERR [IN-USE] user1 is already taken by another client");
}

/// Two servers never share a state file (each would overwrite the other's saves): the
/// second exits with status 1 before it listens, naming the lock, and the first's file is
/// as it was.
#[test]
fn a_second_server_on_the_same_state_file_does_not_start() {
    let path = state_dir("shared").join("state");
    let first = start(&path, &[]);
    refused_as_locked(&path);
    stop(first, "TERM");
}

/// A lock file removed while its server runs lets a second server start on the same
/// state file; from then on the first saves nothing (each would overwrite the other's
/// saves): its last save is refused, logged, and the exit status is 1; the file keeps the
/// second server's save. (Before, the first server's last save replaced the file, and the
/// second's then replaced that.)
#[test]
fn a_server_whose_lock_was_taken_over_saves_nothing_more() {
    let path = state_dir("lock-removed").join("state");
    let first = start(&path, &[]);
    hold(&first, "alice");
    fs::remove_file(path.with_file_name("state.lock")).expect("remove the lock file");
    let second = start(&path, &[]);
    hold(&second, "bob");
    let mut first = first;
    first.signal("TERM");
    first.wait_log(|l| l.contains("cannot save state to"));
    assert!(
        first.logged("another xscpd uses this state file"),
        "the log names why the save was refused"
    );
    let status = first.wait_exit();
    assert_eq!(status.code(), Some(1), "{status:?}");
    stop(second, "TERM");
    let saved = fs::read_to_string(&path).expect("the second server's save");
    assert!(saved.contains("bob") && !saved.contains("alice"), "{saved}");
}

/// Runs `xscpd --state <path>` while another server holds the lock of the file it names:
/// status 1 before it listens, naming the lock (`state.lock`).
fn refused_as_locked(path: &Path) {
    let out = run_with_state(path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("LISTEN"), "listened: {err}");
    assert!(err.contains("state.lock is locked"), "{err}");
}

/// A save at shutdown that cannot be written is an error the exit status shows (1), not
/// only the log.
#[test]
fn a_last_save_that_fails_ends_with_status_one() {
    let path = state_dir("last-fails").join("state");
    let mut server = start(&path, &[]);
    // The temporary file's name is taken by a directory: no save can be written.
    fs::create_dir(xscp::state::temp_path(&path)).expect("mkdir");
    server.signal("TERM");
    server.wait_log(|l| l.contains("cannot save state to"));
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(1), "{status:?}");
}

/// A hold saved for an IPv4 client of an IPv6 listener (`::ffff:127.0.0.1`) is its IPv4
/// address's: after a restart on an IPv4 listener the same client is welcomed back.
#[test]
fn a_hold_saved_for_a_mapped_address_is_its_ipv4_address() {
    let path = state_dir("mapped").join("state");
    let nick = Nick::parse("alice").expect("nickname");
    let ip = "::ffff:127.0.0.1".parse().expect("ip");
    let until = SystemTime::now() + Duration::from_secs(3600);
    let mut hold = SavedHold::new(nick, ip, until, 1);
    hold.push(b"chatm bob alice hi\r\n", NO_SENDER);
    let state = Saved { holds: vec![hold] };
    write_atomic(&path, &state, SystemTime::now()).expect("write the state");
    let server = start(&path, &[]);
    let mut alice = come_back(&server, "alice");
    alice.expect("+OK welcome back alice (1 held, 0 lost)");
    alice.expect("chatm bob alice hi");
}

/// A state file given as a symbolic link is the file it points to (xscpd-state(5)): the
/// lock is that file's, so a second server given the file itself while a first runs on
/// the link does not start; a link to a file that does not exist yet is a missing file,
/// which the first save creates where the link points; and the link stays a link, so the
/// state stays where the operator put it.
#[test]
fn a_state_file_given_as_a_link_is_the_file_it_points_to() {
    let dir = state_dir("link");
    fs::create_dir_all(dir.join("data")).expect("mkdir");
    let path = dir.join("data").join("state");
    let link = dir.join("link");
    std::os::unix::fs::symlink("data/state", &link).expect("symlink");
    let server = start(&link, &[]);
    let _dave = server.register("dave");
    refused_as_locked(&path);
    stop(server, "TERM");
    let meta = fs::symlink_metadata(&link).expect("the link");
    assert!(meta.file_type().is_symlink(), "the save replaced the link");
    let server = start(&path, &[]);
    come_back(&server, "dave").expect("+OK welcome back dave");
}

/// `--state` names a file: a path that can only name a directory (`dir/state/`, `.`)
/// could never be saved to (the rename onto it fails), so the server would run and lose
/// every hold at the next start. It is refused before the server listens (status 2,
/// naming the value), and nothing is created for it.
#[test]
fn a_state_path_that_names_no_file_is_refused() {
    let dir = state_dir("not-a-file");
    for given in [
        format!("{}/state/", dir.display()),
        format!("{}/.", dir.display()),
    ] {
        let out = run_xscpd(&["-l", "127.0.0.1:0", "--state", &given]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{given}: {err}");
        assert!(!err.contains("LISTEN"), "listened: {err}");
        assert!(err.contains(&format!("'{given}' for --state")), "{err}");
    }
    let left: Vec<_> = fs::read_dir(&dir).expect("the directory").collect();
    assert!(left.is_empty(), "created: {left:?}");
}
