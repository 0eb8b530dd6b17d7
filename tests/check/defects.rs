//! Issue 20: each transcript written to catch a realistic defect fails against the fake
//! server with that one defect and passes against the same fake without it (and against
//! xscpd: `the_builtin_suite_passes_against_xscpd` runs them all). The fake runs in this
//! process behind an ADDR, or as a process of its own for `--server` when the transcript
//! needs server options or a server of its own. A fake that takes the protocol's open
//! choices otherwise than xscpd fails nothing.

use std::process::{Command, Output, Stdio};

use super::{TIMEOUT, fake, names_with, text, verdicts};

/// The wait of a run that is expected to fail: a defect often shows as a line that never
/// comes, so this bounds how long the proof takes (the passing runs use [`TIMEOUT`]).
const DEFECT_TIMEOUT: &str = "3s";

/// How the fake is reached.
#[derive(Clone, Copy, PartialEq)]
enum Via {
    Addr,
    Process,
}

/// `xscp check --only NAME` against the fake with the switches `broken` (comma-separated
/// names of `fake::Broken` fields) on.
fn check_fake(name: &str, broken: &str, via: Via, timeout: &str) -> Output {
    check_fake_all(&[name], broken, via, timeout)
}

/// The same with `--only` for each of `names`, in one run.
fn check_fake_all(names: &[&str], broken: &str, via: Via, timeout: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xscp"));
    cmd.arg("check");
    match via {
        Via::Addr => {
            let addr = fake::start(fake::Broken::from_names(broken));
            cmd.arg(addr.to_string());
        }
        Via::Process => {
            cmd.args(["--server", &fake::template()]);
            cmd.env("XSCP_FAKE", broken);
        }
    }
    for name in names {
        cmd.args(["--only", name]);
    }
    cmd.args(["--timeout", timeout])
        .stdin(Stdio::null())
        .output()
        .expect("run xscp")
}

/// The verdict of transcript `name` in a run's output.
fn verdict_of(all: &str, name: &str) -> Option<String> {
    verdicts(all)
        .into_iter()
        .find(|(_, n)| n == name)
        .map(|(v, _)| v)
}

/// `name` passes against the fake with `switches` on (none: the unbroken fake).
fn passes(name: &str, switches: &str, via: Via) {
    let all = text(&check_fake(name, switches, via, TIMEOUT));
    assert_eq!(
        verdict_of(&all, name).as_deref(),
        Some("PASS"),
        "{name} passes with {switches:?}:\n{all}"
    );
}

/// `name` fails against the fake with `defect`, and the failure report shows `shows`.
fn fails(name: &str, defect: &str, via: Via, shows: &str) {
    let out = check_fake(name, defect, via, DEFECT_TIMEOUT);
    let all = text(&out);
    assert_eq!(
        verdict_of(&all, name).as_deref(),
        Some("FAIL"),
        "{name} fails with {defect}:\n{all}"
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains(shows),
        "{name} with {defect} shows {shows:?}:\n{all}"
    );
}

/// The built-in suite against the fake with `switches` (a correct server) behind an ADDR:
/// nothing fails. Its output.
fn the_suite_passes(switches: &str) -> String {
    let out = super::check_addr(fake::start(fake::Broken::from_names(switches)), &[]);
    let all = text(&out);
    assert!(out.status.success(), "{switches:?}: {all}");
    assert!(names_with(&all, "FAIL").is_empty(), "{switches:?}: {all}");
    all
}

/// `name` passes against the unbroken fake and fails against one with `defect`, and
/// the failure report shows `shows`.
fn proves(name: &str, defect: &str, via: Via, shows: &str) {
    passes(name, "", via);
    fails(name, defect, via, shows);
}

#[test]
fn an_overlong_line_is_refused_before_its_terminator() {
    proves(
        "framing-overlong-line-refused-without-its-end",
        "waits_for_terminator",
        Via::Addr,
        "expected: -ERR [PDU] {*}\n      actual:   <nothing within 3s>",
    );
}

#[test]
fn every_kind_of_control_byte_mistake_is_seen() {
    for (name, defect) in [
        ("framing-control-byte-nul-is-a-violation", "nul_allowed"),
        (
            "framing-control-byte-1f-is-a-violation",
            "unit_separator_allowed",
        ),
        ("framing-control-byte-del-is-a-violation", "del_allowed"),
        ("framing-tab-is-not-a-separator", "tab_is_space"),
    ] {
        proves(
            name,
            defect,
            Via::Addr,
            "expected: -ERR [PDU] {*}\n      actual:   ",
        );
    }
}

#[test]
fn runs_of_spaces_between_any_tokens() {
    proves(
        "framing-runs-of-spaces-between-every-token",
        "single_spaces",
        Via::Addr,
        "expected: +OK you are alice",
    );
}

#[test]
fn a_receipt_frees_the_oldest_message() {
    proves(
        "resume-receipt-frees-the-oldest",
        "receipt_frees_newest",
        Via::Addr,
        "expected: chatm bob",
    );
}

/// A reset that follows the FIN is seen when it has arrived by the time the checker
/// reads the end of the stream; the fake sends it a moment after its FIN, and on a busy
/// machine the checker can be faster (the checker then passes the server: it never fails
/// a correct one). So the defect must be caught in one of a few runs, while the fake
/// without it passes every time.
#[test]
fn a_reset_right_after_the_close_is_seen() {
    const RUNS: usize = 8;
    for name in [
        "close-cquit-then-more-input",
        "close-violation-then-more-input",
    ] {
        let all = text(&check_fake(name, "", Via::Addr, TIMEOUT));
        assert_eq!(verdict_of(&all, name).as_deref(), Some("PASS"), "{all}");
        let seen = (0..RUNS).find_map(|_| {
            let out = check_fake(name, "fin_then_reset", Via::Addr, DEFECT_TIMEOUT);
            let all = text(&out);
            (verdict_of(&all, name).as_deref() == Some("FAIL")).then_some((out, all))
        });
        let Some((out, all)) = seen else {
            panic!("{name}: the reset after the close was not seen in {RUNS} runs");
        };
        assert_eq!(out.status.code(), Some(1), "{all}");
        assert!(all.contains("the server closes the connection>"), "{all}");
    }
}

#[test]
fn users_names_are_compared_not_only_counted() {
    for name in ["users-lists-everyone", "users-lists-the-names"] {
        proves(name, "users_repeats_own_name", Via::Process, "in the list");
    }
}

#[test]
fn traffic_does_not_extend_the_negotiation_deadline() {
    proves(
        "uname-negotiation-deadline-ignores-traffic",
        "deadline_per_line",
        Via::Process,
        // --timeout 3s beyond the transcript's --negotiate-timeout 1s.
        "expected: cquit negotiation timeout\n      actual:   <not within 4s>",
    );
}

#[test]
fn rate_slows_a_flood_and_drops_nothing() {
    proves(
        "limits-rate-slows-and-drops-nothing",
        "rate_drops",
        Via::Process,
        "expected: +OK pong 6",
    );
}

#[test]
fn notifications_are_about_others() {
    proves(
        "notif-not-about-oneself",
        "notifies_self",
        Via::Addr,
        "actual:   notif cname alice",
    );
}

#[test]
fn a_held_name_is_reserved_from_its_own_address_too() {
    proves(
        "hold-cname-onto-a-held-name-is-in-use",
        "cname_takes_own_hold",
        Via::Addr,
        "actual:   +OK name changed from bob",
    );
}

#[test]
fn rate_limits_a_flood() {
    proves(
        "limits-rate-limits",
        "rate_ignored",
        Via::Process,
        "expected: no +OK pong last in the list",
    );
}

/// A server that answers a receipt for a broadcast, lists capa in its own order with an
/// item of its own, and gives its own cquit reason for a framing violation follows the
/// protocol: nothing fails (issue 20 part 2).
#[test]
fn the_protocols_open_choices_fail_nothing() {
    let all = the_suite_passes("other_choices");
    for name in [
        "capa-required-items",
        "capa-features",
        "chatr-broadcast-is-not-relayed",
        "framing-511-bytes-are-a-violation",
        "close-violation-then-more-input",
    ] {
        assert_eq!(
            verdict_of(&all, name).as_deref(),
            Some("PASS"),
            "{name}: {all}"
        );
    }
}

#[test]
fn relayed_lines_end_with_crlf() {
    proves(
        "chatm-relayed",
        "relay_lf",
        Via::Addr,
        "hello there\\n <ended with a bare LF: the server ends every line with CR LF, xscp(7) §1>",
    );
}

#[test]
fn a_last_line_cut_off_by_the_close_is_seen() {
    proves(
        "errors-violation-aborts",
        "last_line_unterminated",
        Via::Addr,
        "actual:   cquit protocol violation <ended by the end of the stream, without CR LF: \
         the server ends every line with CR LF, xscp(7) §1>",
    );
}

#[test]
fn an_answered_ping_keeps_the_connection() {
    proves(
        "server-ping-answered-keeps-the-connection",
        "pong_keeps_ping",
        Via::Process,
        "actual:   cquit ping timeout",
    );
}

#[test]
fn users_lists_no_held_names() {
    proves(
        "users-not-held-names",
        "users_lists_held",
        Via::Process,
        "expected: +OK 1 users",
    );
}

/// §5.8 lets a server count what it spends to keep a line, its bookkeeping as well as its
/// bytes: a fake that counts 100 bytes a line besides them (xscpd counts 32) passes.
#[test]
fn the_mailbox_total_may_count_any_bookkeeping() {
    for choices in ["", "other_choices"] {
        let name = "resume-mailbox-total";
        let all = text(&check_fake(name, choices, Via::Process, TIMEOUT));
        assert_eq!(
            verdict_of(&all, name).as_deref(),
            Some("PASS"),
            "{choices:?}: {all}"
        );
    }
}

/// §6 and §5.7: a client that closes is in the way of its name until the server notices
/// the close, and held for its address after: either way another address gets IN-USE. So
/// a server that notices late (`slow_close`) passes, and the transcript waits for the
/// close to be noticed (a subscriber's `notif quit`) before it asks, so that a server
/// that frees the name at once fails however late it notices.
#[test]
fn a_fault_holds_the_name_however_late_it_is_noticed() {
    let name = "errors-fault-holds-the-name";
    for correct in ["", "slow_close"] {
        passes(name, correct, Via::Addr);
    }
    for broken in ["no_hold_on_fault", "no_hold_on_fault,slow_close"] {
        fails(name, broken, Via::Addr, "actual:   +OK you are alice");
    }
}

/// §5.5 orders a sender's messages to one recipient and puts each message's +OK before
/// its own receipt, nothing more: a server that writes the +OK after the relay, and
/// late, passes (`late_relayed_ok`); one that swaps two messages, or lets a receipt
/// overtake the +OK of its message, fails.
#[test]
fn chatm_order_is_per_sender_and_each_ok_precedes_its_receipt() {
    let name = "chatm-order-per-sender";
    for correct in ["", "late_relayed_ok"] {
        passes(name, correct, Via::Addr);
    }
    for (broken, shows) in [
        ("swaps_messages", "actual:   chatm alice"),
        ("receipt_before_ok", "actual:   chatr alice"),
    ] {
        fails(name, broken, Via::Addr, shows);
    }
}

/// A server that notices a peer's close late and writes a relayed message's +OK late
/// (both within what §5.5 and §6 allow) fails nothing.
#[test]
fn a_late_but_correct_server_fails_nothing() {
    the_suite_passes("slow_close,late_relayed_ok");
}

/// §5.2: after a pong the next ping follows the next --ping-interval of silence, and a
/// client that pauses that long (a checker on a loaded machine) gets it before the answer
/// to its next line: a transcript that answers a ping lets one more by.
#[test]
fn a_ping_may_follow_the_pong_before_the_barrier() {
    for name in [
        "legal-established-pong-answers-a-ping",
        "server-ping-after-silence",
        "server-ping-answered-keeps-the-connection",
    ] {
        passes(name, "busy_after_pong", Via::Process);
    }
}

/// §5.4 cname: the old name is free at once. A server that holds it for the renaming
/// client's address, as if its client had left, fails; under --hold 0 it would not.
#[test]
fn cname_frees_the_old_name() {
    proves(
        "cname-changes-the-name",
        "cname_holds_old",
        Via::Process,
        "actual:   +OK welcome back alice",
    );
}

/// The transcripts that check the count of failed attempts (§5.1 uname), all but
/// `uname-max-retries-option` (which needs `--max-retries`, so a server process).
const COUNTED: [&str; 11] = [
    "errors-failed-attempts-add-up",
    "fsm-negotiating-aborted-on-max-retries",
    "hold-other-ip-in-use",
    "legal-negotiating-unknown-is-a-failed-attempt",
    "ping-token-over-32-characters-is-refused",
    "uname-bad-character-is-invalid",
    "uname-bad-first-character-is-invalid",
    "uname-in-use",
    "uname-in-use-ignores-case",
    "uname-missing-argument-is-syntax",
    "uname-too-long-is-invalid",
];

/// §5.1 uname: a failed attempt's reply "ends with the count", in no fixed form: a server
/// that writes `[2/3]` or `(attempt 2)` passes every transcript that counts.
#[test]
fn the_attempt_count_may_take_any_form_at_the_end() {
    for correct in ["", "count_as_fraction", "count_without_budget"] {
        let all = text(&check_fake_all(&COUNTED, correct, Via::Addr, TIMEOUT));
        for name in COUNTED {
            assert_eq!(
                verdict_of(&all, name).as_deref(),
                Some("PASS"),
                "{name} passes with {correct:?}:\n{all}"
            );
        }
        passes("uname-max-retries-option", correct, Via::Process);
    }
}

/// §5.1 uname: no count, a count that does not grow, or one that is not at the end of
/// the text fails the transcripts that see it. (An INVALID reply that echoes the name
/// `1` is no count of 1.)
#[test]
fn a_missing_stuck_or_misplaced_count_fails() {
    for (broken, fail) in [
        ("no_attempt_count", &COUNTED[..]),
        (
            "count_stuck",
            &[
                "errors-failed-attempts-add-up",
                "fsm-negotiating-aborted-on-max-retries",
                "legal-negotiating-unknown-is-a-failed-attempt",
            ][..],
        ),
        ("count_first", &COUNTED[..]),
    ] {
        let out = check_fake_all(fail, broken, Via::Addr, DEFECT_TIMEOUT);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{broken}: {all}");
        for name in fail {
            assert_eq!(
                verdict_of(&all, name).as_deref(),
                Some("FAIL"),
                "{name} fails with {broken}:\n{all}"
            );
        }
        fails(
            "uname-max-retries-option",
            broken,
            Via::Process,
            "expected: -ERR [INVALID]",
        );
    }
}

/// §5.4 notif: subscribers hear of every other client that leaves, and §5.7 counts an
/// abort as leaving: a client aborted for a violation is no exception. A server that
/// tells them only of quits and faults fails.
#[test]
fn an_abort_for_a_violation_is_notified() {
    proves(
        "errors-violation-notifies",
        "violation_not_notified",
        Via::Addr,
        "expected: notif quit alice",
    );
}

#[test]
fn a_hold_ends_after_its_term() {
    proves(
        "hold-ends-after-its-term",
        "hold_never_expires",
        Via::Process,
        // --timeout 3s beyond the transcript's --hold 300ms.
        "expected: +OK you are alice\n      actual:   <not within 3.3s>",
    );
}

#[test]
fn an_address_at_its_hold_bound_loses_its_oldest() {
    proves(
        "hold-bound-per-address",
        "holds_per_ip_ignored",
        Via::Process,
        "expected: +OK you are alice\n      actual:   -ERR [IN-USE] alice",
    );
}

#[test]
fn a_receipt_for_a_forgotten_copy_is_no_longer_lost() {
    proves(
        "resume-receipt-for-a-lost-copy",
        "lost_not_decremented",
        Via::Process,
        &welcome_back("alice", "1 held, 0 lost", "1 held, 1 lost"),
    );
}

#[test]
fn a_pong_answers_its_ping_once() {
    proves(
        "server-ping-pong-answers-once",
        "pong_twice_accepted",
        Via::Process,
        "expected: -ERR [STATE] {*}",
    );
}

#[test]
fn a_renamed_client_is_held_under_its_new_name() {
    proves(
        "hold-under-the-new-name",
        "hold_keeps_first_name",
        Via::Addr,
        "expected: +OK welcome back alicia",
    );
}

#[test]
fn a_line_refused_full_discards_no_other_mailbox() {
    proves(
        "resume-full-mailbox-discards-nothing",
        "room_before_fit",
        Via::Process,
        &welcome_back("older", "1 held, 0 lost", "0 held, 1 lost"),
    );
}

#[test]
fn a_receipt_past_the_mailbox_is_counted_lost() {
    proves(
        "resume-receipt-past-the-mailbox-is-lost",
        "receipt_lost_uncounted",
        Via::Process,
        &welcome_back("alice", "1 held, 1 lost", "1 held, 0 lost"),
    );
}

#[test]
fn users_lists_n_names_no_more() {
    for name in ["users-lists-everyone", "users-lists-the-names"] {
        proves(
            name,
            "users_lists_own_twice",
            Via::Process,
            "expected: no {*} in the list",
        );
    }
}

/// A failure report's welcome back of `name` with the counts `expected` and `actual`.
fn welcome_back(name: &str, expected: &str, actual: &str) -> String {
    format!(
        "expected: +OK welcome back {name} ({expected})\n      \
         actual:   +OK welcome back {name} ({actual})"
    )
}
