//! `xscp check` (issue 12): the built-in suite passes against `xscpd`, and it fails —
//! exactly on the broken rules — against servers that break rules on purpose. Everything
//! runs over loopback; every wait is bounded by the checker's own `--timeout`.
//! Self-contained: it shares no helper with the other test files.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The generous bound of every wait of the checker here (the suite never waits for it on
/// a passing run: it waits for the lines themselves).
const TIMEOUT: &str = "10s";

fn xscp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xscp"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run xscp")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// `--server` for the real server.
fn xscpd_template() -> String {
    format!("{} -q -l {{addr}} {{options}}", env!("CARGO_BIN_EXE_xscpd"))
}

/// A fresh scratch directory under the target directory.
fn scratch(name: &str) -> PathBuf {
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
            // Every transcript that expects a pong with a token: the barrier of `quiet`
            // is one (computed below).
            Vec::new(),
            [
                "expected: nothing more, then +OK pong xscp-check-1 (the ping barrier)",
                "actual:   +OK pong",
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
            expected = transcripts_containing(&[" quiet\n", "s: +OK pong ", "sraw: +OK pong "])
                .into_iter()
                .filter(|n| runnable.contains(n))
                .collect();
            assert!(expected.len() > 60, "{expected:?}");
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
        "section: 5 ping\nlevel: SHOULD\nrule: a made-up rule that xscpd does not follow\n\
         a connect\na c: ping x\na s: +OK PONG x\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("pong.xt"),
        "section: 5 ping\nlevel: MUST\nrule: ping gets pong\na connect\na c: ping x\n\
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
    assert!(
        d.contains("c_a->>server: ping x") && d.contains("server-->>c_a: +OK pong x"),
        "{d}"
    );
    assert!(
        d.contains("Note over c_a: FAIL expected +OK PONG x, got +OK pong x"),
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
    let out = xscp(&[
        "check",
        "--server",
        &xscpd_template(),
        "--timeout",
        TIMEOUT,
        "--transcripts",
        &dir.to_string_lossy(),
    ]);
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

// --- A deliberately wrong server ---------------------------------------------------------

/// A small threaded XSCP server for these tests: right about everything the checker can
/// see through a shared ADDR, except for the rules its switches break on purpose. (No
/// timers, no limits: the transcripts that need those need `--server` and are skipped
/// against an ADDR.)
mod fake {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::Duration;

    /// The rules to break.
    #[derive(Clone, Copy, Default, Debug)]
    pub struct Broken {
        /// Greets with `+OK hello` instead of `+OK xscp/1 ready` (§2).
        pub wrong_greeting: bool,
        /// Gives a name that a connected client already has (§5 uname).
        pub no_in_use_check: bool,
        /// Takes `chatm` before `uname` (§4).
        pub chatm_before_uname: bool,
        /// Answers `ping <token>` with a bare `+OK pong` (§5 ping).
        pub no_pong_token: bool,
        /// Closes at once after its last line, unread input or not: a reset (§7).
        pub no_orderly_close: bool,
        /// Relays a `chatm` whatever sender it names (§5 chatm).
        pub no_spoof_check: bool,
    }

    struct Client {
        nick: Option<String>,
        out: TcpStream,
        notif: bool,
    }

    #[derive(Default)]
    struct State {
        next_id: u64,
        clients: HashMap<u64, Client>,
        /// Held names (lower case) and the address they are held for.
        holds: HashMap<String, IpAddr>,
        /// Direct messages awaiting a receipt: (sender's connection, sender as relayed,
        /// recipient's connection).
        pending: Vec<(u64, String, u64)>,
    }

    type Shared = Arc<Mutex<State>>;

    /// Starts the server on 127.0.0.1, port 0; it runs until the test process ends.
    pub fn start(broken: Broken) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state: Shared = Arc::default();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&state);
                thread::spawn(move || serve(stream, &state, broken));
            }
        });
        addr
    }

    fn send(mut out: &TcpStream, lines: &[String]) {
        let mut bytes = String::new();
        for l in lines {
            bytes.push_str(l);
            bytes.push_str("\r\n");
        }
        let _ = out.write_all(bytes.as_bytes());
    }

    enum Read1 {
        Line(Vec<u8>),
        TooLong,
        End,
    }

    /// One line ended by CR or LF, at most 510 bytes.
    fn next_line(r: &mut impl BufRead) -> Read1 {
        let mut buf = Vec::new();
        loop {
            let Ok(avail) = r.fill_buf() else {
                return Read1::End;
            };
            if avail.is_empty() {
                return Read1::End;
            }
            let end = avail.iter().position(|&b| b == b'\r' || b == b'\n');
            let take = end.unwrap_or(avail.len());
            buf.extend_from_slice(&avail[..take]);
            r.consume(end.map_or(take, |i| i + 1));
            if buf.len() > 510 {
                return Read1::TooLong;
            }
            if end.is_some() {
                return Read1::Line(buf);
            }
        }
    }

    fn valid_nick(n: &str) -> bool {
        (1..=16).contains(&n.len())
            && n.starts_with(|c: char| c.is_ascii_alphabetic())
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    /// What a line leads to.
    enum Next {
        Stay(Vec<String>),
        Close(Vec<String>),
    }

    fn serve(stream: TcpStream, state: &Shared, broken: Broken) {
        let Ok(peer) = stream.peer_addr() else {
            return;
        };
        let Ok(out) = stream.try_clone() else {
            return;
        };
        let greeting = if broken.wrong_greeting {
            "+OK hello"
        } else {
            "+OK xscp/1 ready"
        };
        send(&out, &[greeting.into()]);
        let id = {
            let mut s = state.lock().unwrap();
            s.next_id += 1;
            let id = s.next_id;
            let out = out.try_clone().expect("clone");
            s.clients.insert(
                id,
                Client {
                    nick: None,
                    out,
                    notif: false,
                },
            );
            id
        };
        let mut reader = BufReader::new(stream);
        let mut attempts = 0;
        let last = loop {
            let line = match next_line(&mut reader) {
                Read1::End => break Vec::new(),
                Read1::TooLong => {
                    break vec![
                        "-ERR [PDU] line too long".into(),
                        "cquit protocol violation".into(),
                    ];
                }
                Read1::Line(l) => l,
            };
            let Ok(text) = String::from_utf8(line) else {
                break vec![
                    "-ERR [PDU] not UTF-8".into(),
                    "cquit protocol violation".into(),
                ];
            };
            if text.chars().any(char::is_control) {
                break vec![
                    "-ERR [PDU] control character".into(),
                    "cquit protocol violation".into(),
                ];
            }
            if text.trim().is_empty() {
                continue;
            }
            let mut s = state.lock().unwrap();
            match command(&mut s, id, peer.ip(), &text, &mut attempts, broken) {
                Next::Stay(lines) => send(&out, &lines),
                Next::Close(lines) => break lines,
            }
        };
        {
            let mut s = state.lock().unwrap();
            release(&mut s, id, peer.ip());
        }
        send(&out, &last);
        if broken.no_orderly_close {
            return; // Both handles drop here: unread input turns this into a reset.
        }
        let _ = out.shutdown(Shutdown::Write);
        let mut inner = reader.into_inner();
        let _ = inner.set_read_timeout(Some(Duration::from_secs(2)));
        let mut sink = [0; 4096];
        while matches!(inner.read(&mut sink), Ok(n) if n > 0) {}
    }

    /// The client leaves: its name is held for its address, subscribers are told.
    fn release(s: &mut State, id: u64, ip: IpAddr) {
        let Some(c) = s.clients.remove(&id) else {
            return;
        };
        if let Some(nick) = c.nick {
            s.holds.insert(nick.to_lowercase(), ip);
            notify(s, id, &format!("notif quit {nick}"));
        }
    }

    fn notify(s: &State, except: u64, line: &str) {
        for (cid, c) in &s.clients {
            if *cid != except && c.notif && c.nick.is_some() {
                send(&c.out, &[line.to_string()]);
            }
        }
    }

    fn find(s: &State, nick: &str) -> Option<u64> {
        s.clients.iter().find_map(|(id, c)| {
            c.nick
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(nick))
                .then_some(*id)
        })
    }

    /// A refusal; while negotiating a failed attempt, counted, the third one fatal.
    fn refusal(negotiating: bool, attempts: &mut u32, err: String) -> Next {
        if !negotiating {
            return Next::Stay(vec![err]);
        }
        *attempts += 1;
        let err = format!("{err} (attempt {attempts} of 3)");
        if *attempts >= 3 {
            Next::Close(vec![err, "cquit too many failed attempts".into()])
        } else {
            Next::Stay(vec![err])
        }
    }

    fn violation(code: &str, text: &str) -> Next {
        Next::Close(vec![
            format!("-ERR [{code}] {text}"),
            "cquit protocol violation".into(),
        ])
    }

    fn command(
        s: &mut State,
        id: u64,
        ip: IpAddr,
        line: &str,
        attempts: &mut u32,
        broken: Broken,
    ) -> Next {
        let line = line.trim_start_matches(' ');
        let (kw, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim_start_matches(' ');
        let args: Vec<&str> = rest.split(' ').filter(|a| !a.is_empty()).collect();
        let kw = kw.to_ascii_lowercase();
        let me = s.clients.get(&id).and_then(|c| c.nick.clone());
        let state = if me.is_some() {
            "ESTABLISHED"
        } else {
            "NEGOTIATING"
        };
        let one = |l: String| Next::Stay(vec![l]);
        match (kw.as_str(), &me) {
            ("ping", _) => match args.first() {
                Some(t) if t.len() > 32 => refusal(
                    me.is_none(),
                    attempts,
                    "-ERR [SYNTAX] token too long".into(),
                ),
                Some(t) if !broken.no_pong_token => one(format!("+OK pong {t}")),
                _ => one("+OK pong".into()),
            },
            ("capa", _) => Next::Stay(
                [
                    "+OK capability list follows",
                    "XSCP 1",
                    "PDU 512",
                    "RETRIES 3",
                    "NEGOTIATE 30",
                    "PING 60 20",
                    "HOLD 300",
                    "BROADCAST",
                    "RECEIPTS",
                    "USERS",
                    "NOTIF",
                    ".",
                ]
                .map(String::from)
                .to_vec(),
            ),
            ("cquit", Some(_)) if !args.is_empty() => {
                one("-ERR [SYNTAX] cquit takes nothing".into())
            }
            ("cquit", _) => Next::Close(vec!["+OK terminating tasks and disconnecting".into()]),
            ("uname", None) => {
                let refused = match args.first() {
                    None => Some("SYNTAX] uname: missing argument".to_string()),
                    Some(n) if !valid_nick(n) => Some("INVALID] bad nickname".to_string()),
                    Some(n)
                        if (!broken.no_in_use_check && find(s, n).is_some())
                            || s.holds.get(&n.to_lowercase()).is_some_and(|h| *h != ip) =>
                    {
                        Some(format!("IN-USE] {n} is already taken by another client"))
                    }
                    Some(_) => None,
                };
                if let Some(r) = refused {
                    return refusal(true, attempts, format!("-ERR [{r}"));
                }
                let name = args[0].to_string();
                let back = s.holds.remove(&name.to_lowercase()).is_some();
                if let Some(c) = s.clients.get_mut(&id) {
                    c.nick = Some(name.clone());
                }
                notify(s, id, &format!("notif join {name}"));
                if back {
                    one(format!("+OK welcome back {name}"))
                } else {
                    one(format!("+OK you are {name}"))
                }
            }
            ("chatm", None) if broken.chatm_before_uname => one("+OK message relayed".into()),
            ("uname" | "cname" | "chatm" | "chatr" | "users" | "notif" | "+ok", _)
                if me.is_none() || kw == "uname" || kw == "+ok" =>
            {
                violation("STATE", &format!("{kw} is not allowed in {state}"))
            }
            ("cname", Some(old)) => match args.first() {
                None => one("-ERR [SYNTAX] cname: missing argument".into()),
                Some(n) if !valid_nick(n) => one("-ERR [INVALID] bad nickname".into()),
                Some(n) if find(s, n).is_some_and(|other| other != id) => one(format!(
                    "-ERR [IN-USE] {n} is already taken by another client"
                )),
                Some(n) => {
                    let new = n.to_string();
                    if let Some(c) = s.clients.get_mut(&id) {
                        c.nick = Some(new.clone());
                    }
                    notify(s, id, &format!("notif cname {old} {new}"));
                    one(format!("+OK name changed from {old} to {new}"))
                }
            },
            ("chatm", Some(me)) => {
                let mut parts = rest.splitn(3, ' ');
                let (Some(from), Some(to), Some(text)) = (parts.next(), parts.next(), parts.next())
                else {
                    return one("-ERR [SYNTAX] chatm: sender, recipient and text".into());
                };
                let text = text.trim_start_matches(' ');
                if text.is_empty() {
                    return one("-ERR [SYNTAX] chatm: empty text".into());
                }
                if !from.eq_ignore_ascii_case(me) && !broken.no_spoof_check {
                    return violation("SPOOF", &format!("{from} is not your nickname"));
                }
                let relayed = format!("chatm {from} {to} {text}");
                if to == "*" {
                    let me_out = &s.clients[&id].out;
                    send(me_out, &["+OK message relayed".into()]);
                    for (cid, c) in &s.clients {
                        if *cid != id && c.nick.is_some() {
                            send(&c.out, std::slice::from_ref(&relayed));
                        }
                    }
                    return Next::Stay(Vec::new());
                }
                let Some(rid) = find(s, to) else {
                    return one(format!("-ERR [NO-SUCH] no such user {to}"));
                };
                send(&s.clients[&id].out, &["+OK message relayed".into()]);
                send(&s.clients[&rid].out, &[relayed]);
                s.pending.push((id, from.to_string(), rid));
                Next::Stay(Vec::new())
            }
            ("chatr", Some(me)) => {
                let (Some(from), Some(to)) = (args.first(), args.get(1)) else {
                    return one("-ERR [SYNTAX] chatr: sender and recipient".into());
                };
                if *to != "*" && !to.eq_ignore_ascii_case(me) {
                    return violation("SPOOF", &format!("{to} is not your nickname"));
                }
                if *to == "*" {
                    return Next::Stay(Vec::new());
                }
                let Some(i) = s
                    .pending
                    .iter()
                    .position(|(_, f, r)| *r == id && f.eq_ignore_ascii_case(from))
                else {
                    return one(format!(
                        "-ERR [NO-SUCH] no message from {from} awaits a receipt"
                    ));
                };
                let (sid, _, _) = s.pending.remove(i);
                if let Some(c) = s.clients.get(&sid) {
                    send(&c.out, &[format!("chatr {from} {to}")]);
                }
                Next::Stay(Vec::new())
            }
            ("users", Some(_)) => {
                let mut names: Vec<String> =
                    s.clients.values().filter_map(|c| c.nick.clone()).collect();
                names.sort();
                let mut lines = vec![format!("+OK {} users", names.len())];
                lines.extend(names);
                lines.push(".".into());
                Next::Stay(lines)
            }
            ("notif", Some(_)) => match args.first().copied() {
                Some(v @ ("on" | "off")) => {
                    if let Some(c) = s.clients.get_mut(&id) {
                        c.notif = v == "on";
                    }
                    one(format!("+OK notifications {v}"))
                }
                _ => one("-ERR [SYNTAX] notif on|off".into()),
            },
            _ => refusal(
                me.is_none(),
                attempts,
                "-ERR [SYNTAX] unknown command".into(),
            ),
        }
    }
}
