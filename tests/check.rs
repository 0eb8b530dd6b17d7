//! `xscp check` (issue 12): the built-in suite passes against `xscpd`, and it fails —
//! exactly on the broken rules — against servers that break rules on purpose. Everything
//! runs over loopback; every wait is bounded by the checker's own `--timeout`.
//! Self-contained: it shares no helper with the other test files.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The generous bound of every wait of the checker here (the suite never waits for it on
/// a passing run: it waits for the lines themselves).
const TIMEOUT: &str = "10s";

/// `xscp ARGS`, its standard input closed.
fn xscp_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xscp"));
    cmd.args(args).stdin(Stdio::null());
    cmd
}

fn xscp(args: &[&str]) -> Output {
    xscp_command(args).output().expect("run xscp")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// `--server` for the real server.
fn xscpd_template() -> String {
    format!("{} -q -l {{addr}} {{options}}", env!("CARGO_BIN_EXE_xscpd"))
}

/// `xscp check` of the transcripts in `dir` against fresh xscpd servers, with `extra`.
fn check_dir_against_xscpd(dir: &std::path::Path, extra: &[&str]) -> Output {
    let template = xscpd_template();
    let dir = dir.to_string_lossy();
    let mut args = vec![
        "check",
        "--server",
        &template,
        "--timeout",
        TIMEOUT,
        "--transcripts",
        &dir,
    ];
    args.extend_from_slice(extra);
    xscp(&args)
}

/// A fresh scratch directory under the target directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("check-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The `(verdict, name)` of each result line.
fn verdicts(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next()) {
                (Some(v @ ("PASS" | "FAIL" | "SKIP")), Some(n)) => Some((v.into(), n.into())),
                _ => None,
            }
        })
        .collect()
}

fn names_with(out: &str, verdict: &str) -> Vec<String> {
    verdicts(out)
        .into_iter()
        .filter(|(v, _)| v == verdict)
        .map(|(_, n)| n)
        .collect()
}

/// The names of the built-in transcripts that require `feature`.
fn requiring(feature: &str) -> Vec<String> {
    let out = xscp(&["check", "--list"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("requires {feature}")))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

#[test]
fn the_builtin_suite_passes_against_xscpd() {
    let junit = scratch("junit").join("results.xml");
    let diagrams = scratch("diagrams");
    let out = xscp(&[
        "check",
        "--server",
        &xscpd_template(),
        "--timeout",
        TIMEOUT,
        "--junit",
        &junit.to_string_lossy(),
        "--diagrams",
        &diagrams.to_string_lossy(),
    ]);
    let all = text(&out);
    let v = verdicts(&all);
    let failed = names_with(&all, "FAIL");
    assert!(failed.is_empty(), "every transcript passes:\n{all}");
    assert_eq!(out.status.code(), Some(0), "{all}");
    let skipped = names_with(&all, "SKIP");
    assert!(skipped.is_empty(), "nothing is skipped: {skipped:?}");
    // The resume group runs too (xscpd has it), and passes.
    let passed_names = names_with(&all, "PASS");
    let resume = requiring("resume");
    assert!(resume.len() >= 10, "{resume:?}");
    for name in &resume {
        assert!(passed_names.contains(name), "{name} passes:\n{all}");
    }
    let passed = v.len() - skipped.len() - failed.len();
    assert!(passed >= 120, "{all}");
    let summary = format!(
        "{passed} passed, {} failed, {} skipped",
        failed.len(),
        skipped.len()
    );
    assert_eq!(all.lines().last(), Some(summary.as_str()), "{all}");

    // JUnit: one testcase per transcript, counts as printed, well formed as far as a
    // tag count can tell.
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), v.len(), "{xml}");
    assert_eq!(xml.matches("<skipped ").count(), skipped.len());
    assert_eq!(xml.matches("<failure ").count(), failed.len());
    assert!(xml.contains(&format!("tests=\"{}\"", v.len())));
    assert!(xml.contains(&format!("failures=\"{}\"", failed.len())));
    assert!(xml.contains(&format!("skipped=\"{}\"", skipped.len())));
    assert_eq!(xml.matches("<testsuite ").count(), 1);
    assert_eq!(xml.matches("</testsuite>").count(), 1);

    // A diagram per transcript, each a Mermaid sequence diagram.
    for (_, name) in &v {
        let path = diagrams.join(format!("{name}.mmd"));
        let d = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert!(d.starts_with("sequenceDiagram\n"), "{d}");
    }
}

/// Runs the built-in suite (without the resume group) against a running server.
fn check_addr(addr: std::net::SocketAddr, extra: &[&str]) -> Output {
    let addr = addr.to_string();
    let mut args = vec![
        "check",
        addr.as_str(),
        "--without",
        "resume",
        "--timeout",
        TIMEOUT,
    ];
    args.extend_from_slice(extra);
    xscp(&args)
}

/// The built-in transcripts whose source contains one of `needles`.
fn transcripts_containing(needles: &[&str]) -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/bin/xscp/transcripts");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .expect("transcripts dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            needles.iter().any(|n| text.contains(n))
        })
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    out.sort();
    out
}

/// The fake server as built, with nothing broken, passes everything it is graded on:
/// the reference against which the broken ones below are compared.
#[test]
fn an_unbroken_fake_passes_and_option_needing_transcripts_skip() {
    let addr = fake::start(fake::Broken::default());
    let out = check_addr(addr, &[]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(names_with(&all, "FAIL").is_empty(), "{all}");
    assert!(names_with(&all, "PASS").len() >= 80, "{all}");
    // Against a plain ADDR, what needs server options, signals or a server of its own is
    // SKIP, with the reason.
    let skip_line = |name: &str| {
        all.lines()
            .find(|l| l.starts_with("SKIP") && l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("{name} not skipped:\n{all}"))
            .to_string()
    };
    assert!(
        skip_line("server-ping-timeout").ends_with(
            "(needs server options --ping-interval 200ms --ping-timeout 300ms (use --server))"
        ),
        "{all}"
    );
    assert!(
        skip_line("shutdown-notice-to-every-client")
            .ends_with("(signals the server (use --server))")
    );
    assert!(skip_line("users-lists-everyone").contains("needs a server of its own"));
    assert!(skip_line("resume-message-held-for").contains("requires resume"));
}

/// Each switch breaks one rule; exactly the transcripts of that rule fail, and the report
/// shows the expected and the actual line.
#[test]
fn exactly_the_broken_rules_fail() {
    let cases: Vec<(&str, fake::Broken, Vec<String>, [&str; 2])> = vec![
        (
            "wrong greeting",
            fake::Broken {
                wrong_greeting: true,
                ..Default::default()
            },
            vec!["greeting-on-accept".into()],
            ["expected: +OK xscp/1 ready{*}", "actual:   +OK hello"],
        ),
        (
            "no IN-USE check",
            fake::Broken {
                no_in_use_check: true,
                ..Default::default()
            },
            vec![
                "errors-failed-attempts-add-up".into(),
                "uname-in-use".into(),
                "uname-in-use-ignores-case".into(),
            ],
            [
                "expected: -ERR [IN-USE] alice",
                "actual:   +OK you are alice",
            ],
        ),
        (
            "chatm before uname",
            fake::Broken {
                chatm_before_uname: true,
                ..Default::default()
            },
            vec!["legal-negotiating-chatm-is-a-violation".into()],
            [
                "expected: -ERR [STATE] chatm is not allowed in NEGOTIATING",
                "actual:   +OK message relayed",
            ],
        ),
        (
            "no pong token",
            fake::Broken {
                no_pong_token: true,
                ..Default::default()
            },
            // The probe reports the broken barrier once; the transcripts that expect a
            // pong with a token themselves fail, those that only use the barrier are not
            // run (computed below).
            Vec::new(),
            [
                "FAIL  (probe) the ping barrier is broken: 'ping xscp-check-probe' was \
                 answered +OK pong, not '+OK pong xscp-check-probe'",
                "(not run: it needs the ping barrier (see the probe))",
            ],
        ),
        (
            "no orderly close",
            fake::Broken {
                no_orderly_close: true,
                ..Default::default()
            },
            vec![
                "close-cquit-then-more-input".into(),
                "close-violation-then-more-input".into(),
            ],
            [
                "<end of stream: the server closes the connection>",
                "<connection broken: ",
            ],
        ),
        (
            "no spoof check",
            fake::Broken {
                no_spoof_check: true,
                ..Default::default()
            },
            vec!["chatm-spoofed-sender-is-a-violation".into()],
            [
                "expected: -ERR [SPOOF] {*}",
                "actual:   +OK message relayed",
            ],
        ),
    ];
    for (what, broken, mut expected, shows) in cases {
        if expected.is_empty() {
            let runnable = names_with(
                &text(&check_addr(fake::start(fake::Broken::default()), &[])),
                "PASS",
            );
            let barrier = transcripts_containing(&[" quiet\n"]);
            expected = transcripts_containing(&["s: +OK pong ", "sraw: +OK pong "])
                .into_iter()
                .filter(|n| runnable.contains(n) && !barrier.contains(n))
                .collect();
            assert!(!expected.is_empty(), "{expected:?}");
            expected.push("(probe)".into());
            expected.sort();
        }
        let out = check_addr(fake::start(broken), &[]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {all}");
        let mut failed = names_with(&all, "FAIL");
        failed.sort();
        assert_eq!(failed, expected, "{what}: exactly these fail\n{all}");
        for s in shows {
            assert!(all.contains(s), "{what}: the report shows {s:?}\n{all}");
        }
        let summary = all.lines().last().unwrap_or_default();
        assert!(
            summary.contains(&format!(", {} failed, ", expected.len())),
            "{summary}"
        );
    }
}

/// JUnit records a failure with its text escaped; the counts match the summary.
#[test]
fn junit_records_failures_escaped() {
    let dir = scratch("junit-fail");
    let junit = dir.join("r.xml");
    let addr = fake::start(fake::Broken {
        no_spoof_check: true,
        ..Default::default()
    });
    let out = check_addr(
        addr,
        &["--junit", &junit.to_string_lossy(), "--only", "chatm-"],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    assert!(xml.contains("failures=\"1\""), "{xml}");
    assert!(
        xml.contains("expected -ERR [SPOOF] {*}, got +OK message relayed"),
        "{xml}"
    );
    assert!(
        !xml.contains("<connection") && !xml.contains("& "),
        "escaped: {xml}"
    );
    assert_eq!(
        xml.matches("<testcase ").count(),
        verdicts(&all).len(),
        "{xml}"
    );
}

/// Against a running xscpd (a plain ADDR), twice in a row: what can run passes both times
/// (the nicknames' run suffix keeps the first run's name holds out of the second's way),
/// the rest is SKIP.
#[test]
fn the_suite_runs_twice_against_one_running_xscpd() {
    use std::io::BufRead;
    let mut server = Command::new(env!("CARGO_BIN_EXE_xscpd"))
        .args(["-l", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xscpd");
    let mut log = std::io::BufReader::new(server.stderr.take().expect("stderr"));
    // The log's first transition names the address (CLOSED -> LISTEN).
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() && log.read_line(&mut line).is_ok_and(|n| n > 0) {
        addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok());
        line.clear();
    }
    let addr = addr.expect("xscpd logs its address");
    // Keep the log flowing so that the server never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
    for run in 1..=2 {
        let out = check_addr(addr, &[]);
        let all = text(&out);
        assert!(out.status.success(), "run {run}: {all}");
        assert!(names_with(&all, "PASS").len() >= 80, "run {run}: {all}");
        assert!(names_with(&all, "FAIL").is_empty(), "run {run}: {all}");
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// A transcript file that cannot be read stops the run before anything is played: its
/// file and line, status 2.
#[test]
fn a_bad_transcript_names_its_file_and_line() {
    let dir = scratch("bad");
    let path = dir.join("typo.xt");
    std::fs::write(
        &path,
        "section: 1\nlevel: MUST\nrule: r\na connect\na sned: ping\n",
    )
    .expect("write");
    let out = xscp(&[
        "check",
        "--transcripts",
        &dir.to_string_lossy(),
        "127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:5: unknown step 'sned'", path.display())),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing played");
}

/// Command lines: neither ADDR nor --server, or both, is a usage error; --list selects
/// by section and by name.
#[test]
fn command_line_and_selection() {
    for args in [
        &["check"][..],
        &["check", "a:1", "--server", "x"],
        &["check", "--bogus"],
    ] {
        let out = xscp(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: xscp check"));
    }
    let list = |extra: &[&str]| {
        let mut args = vec!["check", "--list"];
        args.extend_from_slice(extra);
        let out = xscp(&args);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(String::from))
            .collect::<Vec<_>>()
    };
    let hold = list(&["--section", "5.7"]);
    assert!(
        !hold.is_empty() && hold.iter().all(|n| n.starts_with("hold-")),
        "{hold:?}"
    );
    let five = list(&["--section", "5"]);
    assert!(five.len() > hold.len() && hold.iter().all(|n| five.contains(n)));
    assert_eq!(list(&["--only", "greeting-on-*"]), ["greeting-on-accept"]);
    assert!(list(&[]).len() > 100);
}

/// Own transcripts run alone or beside the built-in ones; a failing one is drawn with
/// its failure, and the summary and status say so.
#[test]
fn own_transcripts_and_diagrams_of_a_failure() {
    let dir = scratch("own");
    std::fs::write(
        dir.join("pong-is-shouted.xt"),
        "section: 5.2 ping\nlevel: SHOULD\nrule: a made-up rule that xscpd does not follow\n\
         a connect\na c: ping x\na s: +OK PONG x\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("pong.xt"),
        "section: 5.2 ping\nlevel: MUST\nrule: ping gets pong\na connect\na c: ping x\n\
         a s: +OK pong {t}\na c: ping {t}{t}\na s: +OK pong xx\na quiet\n",
    )
    .expect("write");
    let diagrams = dir.join("diagrams");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "check".to_string(),
            "--server".into(),
            xscpd_template(),
            "--timeout".into(),
            TIMEOUT.into(),
            "--transcripts".into(),
            dir.to_string_lossy().into_owned(),
            "--diagrams".into(),
            diagrams.to_string_lossy().into_owned(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        xscp(&refs)
    };
    let out = run(&[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(names_with(&all, "FAIL"), ["pong-is-shouted"], "{all}");
    assert_eq!(names_with(&all, "PASS"), ["pong"], "{all}");
    assert!(
        all.contains("expected: +OK PONG x\n      actual:   +OK pong x"),
        "{all}"
    );
    assert!(
        all.contains("a > ping x\n        a < +OK pong x"),
        "the exchange: {all}"
    );
    assert_eq!(all.lines().last(), Some("1 passed, 1 failed, 0 skipped"));
    let d = std::fs::read_to_string(diagrams.join("pong-is-shouted.mmd")).expect("diagram");
    assert!(d.starts_with("sequenceDiagram\n"), "{d}");
    // Connection a is p0, the server p1 (ids, so that no name is a Mermaid keyword).
    assert!(
        d.contains("    participant p0 as a\n    participant p1 as server\n"),
        "{d}"
    );
    assert!(
        d.contains("p0->>p1: ping x") && d.contains("p1-->>p0: +OK pong x"),
        "{d}"
    );
    // The failure, shaded, where it happened (entity codes for Mermaid's `:`).
    assert!(
        d.contains("    rect rgb(248, 215, 218)\n        Note over p0: FAIL#58; expected +OK PONG x, got +OK pong x\n    end"),
        "{d}"
    );

    let out = run(&[
        "--builtin",
        "--only",
        "p*ng",
        "--only",
        "greeting-on-accept",
    ]);
    let all = text(&out);
    assert_eq!(
        names_with(&all, "PASS"),
        ["greeting-on-accept", "pong"],
        "{all}"
    );
}

/// The examples of xscp-transcript(5) are transcripts that parse and pass.
#[test]
fn the_man_page_examples_pass() {
    let page = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("man/xscp-transcript.5"),
    )
    .expect("man page");
    let dir = scratch("man-examples");
    let mut n = 0;
    for block in page.split(".EX\n").skip(1) {
        let body = block.split(".EE").next().unwrap_or_default();
        if !body.contains("section: ") {
            continue;
        }
        n += 1;
        let text = body.replace("\\-", "-").replace("\\e", "\\");
        std::fs::write(dir.join(format!("example-{n}.xt")), text).expect("write");
    }
    assert_eq!(n, 3, "the page's examples");
    let out = check_dir_against_xscpd(&dir, &[]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert_eq!(
        all.lines().last(),
        Some("3 passed, 0 failed, 0 skipped"),
        "{all}"
    );
}

/// Every option of `xscp check --help` is described in xscp(1).
#[test]
fn check_options_are_in_the_man_page() {
    let help = String::from_utf8_lossy(&xscp(&["check", "--help"]).stdout).into_owned();
    let page =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("man/xscp.1"))
            .expect("man page");
    let options = help
        .split_once("\nOptions:\n")
        .map(|(_, o)| o)
        .expect("Options: in --help");
    let mut seen = 0;
    for line in options.lines().take_while(|l| !l.trim().is_empty()) {
        let Some(opt) = line.split_whitespace().find(|w| w.starts_with("--")) else {
            continue;
        };
        seen += 1;
        let troff = format!("\\fB{}\\fR", opt.replace('-', "\\-"));
        assert!(
            page.contains(&troff),
            "xscp.1 should describe {opt} ({troff})"
        );
    }
    assert!(seen >= 10, "{help}");
}

mod defects;
mod fake;
mod probe;

/// The server's own timers that a transcript sets are not part of `--timeout`: with the
/// shortest wait, shorter than those timers, xscpd still passes every transcript that
/// waits for one (a negotiation deadline, a ping, a hold's end).
#[test]
fn a_timeout_shorter_than_the_transcripts_timers_fails_nothing() {
    let timed = transcripts_containing(&[
        "--negotiate-timeout ",
        "--ping-interval ",
        "--ping-timeout ",
        "--hold ",
    ]);
    assert!(timed.len() >= 10, "{timed:?}");
    let template = xscpd_template();
    let mut args = vec!["check", "--server", &template, "--timeout", "250ms"];
    for name in &timed {
        args.extend(["--only", name.as_str()]);
    }
    let out = xscp(&args);
    let all = text(&out);
    assert!(names_with(&all, "FAIL").is_empty(), "{all}");
    assert_eq!(out.status.code(), Some(0), "{all}");
}

/// A server whose settings differ from xscpd's defaults, within the protocol (another
/// failed-attempt budget, no holds), fails nothing: the transcripts that assume a default
/// the probe's capa contradicts are SKIP, with the capa item as the reason.
#[test]
fn other_legal_settings_fail_nothing() {
    let template = format!(
        "{} -q -l {{addr}} --max-retries 5 --hold 0 {{options}}",
        env!("CARGO_BIN_EXE_xscpd")
    );
    let out = xscp(&["check", "--server", &template, "--timeout", TIMEOUT]);
    let all = text(&out);
    assert!(names_with(&all, "FAIL").is_empty(), "{all}");
    assert_eq!(out.status.code(), Some(0), "{all}");
    let skip_line = |name: &str| {
        all.lines()
            .find(|l| l.starts_with("SKIP") && l.contains(name))
            .unwrap_or_else(|| panic!("{name} is SKIP:\n{all}"))
            .to_string()
    };
    assert!(skip_line("uname-in-use ").contains("(the server's capa says RETRIES 5)"));
    assert!(skip_line("hold-welcome-back-same-ip").contains("(the server's capa says HOLD 0)"));
    assert!(skip_line("resume-lost-count").contains("HOLD 0"));
    // What does not depend on them still runs, the options of its own included.
    for name in [
        "uname-new-name",
        "uname-max-retries-option",
        "hold-zero-releases-at-once",
    ] {
        assert!(
            names_with(&all, "PASS").iter().any(|n| n == name),
            "{name}:\n{all}"
        );
    }
}
