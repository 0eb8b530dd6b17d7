//! Issue 20 part 3: a grader that knows when to stop. What is no XSCP server is named in
//! one line within seconds (status 1); a selection that matches nothing is status 2;
//! `--level must` reports SHOULD failures without failing; a closed pipe ends the output
//! quietly; output paths are tried before the run.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::{
    TIMEOUT, check_dir_against_xscpd, fake, scratch, text, xscp, xscp_command, xscpd_template,
};

/// The bound for "within seconds".
const QUICK: Duration = Duration::from_secs(10);

/// A listener whose connections get `answer` once they have sent something (an HTTP
/// server's way), or nothing at all when it is empty.
fn listener(answer: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            thread::spawn(move || {
                let mut buf = [0; 512];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    if !answer.is_empty() {
                        let _ = s.write_all(answer);
                    }
                }
            });
        }
    });
    addr
}

/// Runs `xscp check ADDR` (with `--timeout 10s`): status, output, how long it took.
fn probe(addr: &str) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let out = xscp(&["check", addr, "--timeout", TIMEOUT]);
    (out.status.code(), text(&out), started.elapsed())
}

#[test]
fn no_xscp_server_is_named_in_one_line_within_seconds() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string();
    let http = listener(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").to_string();
    let mute = listener(b"").to_string();
    for (addr, says) in [
        (&closed, "cannot connect to"),
        (&http, "(to capa it answered HTTP/1.1 400 Bad Request)"),
        (&mute, "no greeting from"),
    ] {
        let (code, all, took) = probe(addr);
        assert_eq!(code, Some(1), "{addr}: {all}");
        assert!(took < QUICK, "{addr}: took {took:?}");
        assert_eq!(all.lines().count(), 1, "one line: {all}");
        assert!(all.contains(says), "{addr} says {says:?}: {all}");
    }
}

#[test]
fn an_empty_selection_is_an_error_naming_it() {
    for (args, names) in [
        (&["--section", "8"][..], "--section 8"),
        (&["--only", "nosuch"], "--only nosuch"),
        (&["--list", "--only", "nosuch"], "--only nosuch"),
    ] {
        let mut all_args = vec!["check", "127.0.0.1:1"];
        all_args.extend_from_slice(args);
        let out = xscp(&all_args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("no transcript matches {names}")),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn level_must_reports_should_failures_without_failing() {
    let dir = scratch("level");
    std::fs::write(
        dir.join("shouted.xt"),
        "section: 5 ping\nlevel: SHOULD\nrule: made up\na connect\na c: ping x\n\
         a s: +OK PONG x\n",
    )
    .expect("write");
    let junit = dir.join("r.xml");
    let out = check_dir_against_xscpd(
        &dir,
        &[
            "--builtin",
            "--only",
            "shouted",
            "--only",
            "greeting-on-accept",
            "--level",
            "must",
            "--junit",
            &junit.to_string_lossy(),
        ],
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("WARN  shouted "), "{all}");
    assert!(all.contains("expected: +OK PONG x"), "{all}");
    assert_eq!(
        all.lines().last(),
        Some("1 passed, 0 failed, 1 skipped, 1 not graded (SHOULD)"),
        "{all}"
    );
    let xml = std::fs::read_to_string(&junit).expect("junit");
    assert!(
        xml.contains("<property name=\"level\" value=\"SHOULD\"/>"),
        "{xml}"
    );
    assert!(
        xml.contains("<property name=\"level\" value=\"MUST\"/>"),
        "{xml}"
    );
    assert!(xml.contains("SHOULD, not graded (--level must)"), "{xml}");
    assert!(xml.contains("failures=\"0\""), "{xml}");
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let mut child = xscp_command(&["check", "--list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run xscp");
    // `| head -0`: the reading end is gone before the first line is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(out.stderr.is_empty(), "quietly: {}", text(&out));
}

#[test]
fn output_paths_are_tried_before_the_run() {
    let missing = scratch("paths").join("no-such-dir").join("r.xml");
    let file = scratch("paths-file").join("plain");
    std::fs::write(&file, "").expect("write");
    for args in [
        ["--junit", &*missing.to_string_lossy()],
        ["--diagrams", &*file.join("d").to_string_lossy()],
    ] {
        let started = Instant::now();
        let out = xscp(&["check", "--server", &xscpd_template(), args[0], args[1]]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("cannot "), "{}", text(&out));
        assert!(out.stdout.is_empty(), "nothing ran: {}", text(&out));
        assert!(started.elapsed() < QUICK);
    }
}

/// How long a hang test lets `xscp check` run before it kills it and fails: far more than
/// the run takes with its `--timeout 1s`, far less than the hang.
const HANG_BOUND: Duration = Duration::from_secs(30);

/// `xscp check ARGS`, or `None` if it is still running after [`HANG_BOUND`] (it is killed).
fn check_within_bound(args: &[&str]) -> Option<Output> {
    let child = xscp_command(&[&["check"], args].concat())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run xscp");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx.recv_timeout(HANG_BOUND).ok();
    if out.is_none() {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    }
    out.map(|o| o.expect("wait for xscp"))
}

/// A listener that greets like XSCP, then sends a byte every 500 ms and never a LF.
fn trickler() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            thread::spawn(move || {
                let _ = s.write_all(b"+OK xscp/1 ready\r\n");
                let mut r = s.try_clone().expect("clone");
                thread::spawn(move || {
                    let mut buf = [0; 512];
                    while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
                });
                loop {
                    thread::sleep(Duration::from_millis(500));
                    if s.write_all(b"x").is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Each read of the probe used to wait `--timeout`, not each line: a server that greets
/// and then trickles a byte every 500 ms kept `xscp check --timeout 1s` reading for
/// 8 KiB of bytes, over an hour. A line must come whole within the timeout.
#[test]
fn a_server_that_trickles_bytes_cannot_hold_the_probe() {
    let addr = trickler().to_string();
    let started = Instant::now();
    let out = check_within_bound(&[&addr, "--timeout", "1s"]);
    let Some(out) = out else {
        panic!("xscp check --timeout 1s still running after {HANG_BOUND:?} (killed)");
    };
    let all = text(&out);
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("greeted but did not answer capa"), "{all}");
}

/// `until:` used to bound each line's wait, not the step's: a server that answers
/// `users` with `+OK 1 users` and then its name every 500 ms, never the dot, kept
/// `xscp check --timeout 1s` for 10,000 lines (over 80 minutes).
#[test]
fn a_server_that_trickles_lines_cannot_hold_a_step() {
    let addr = fake::start(fake::Broken::from_names("users_trickle")).to_string();
    let started = Instant::now();
    let args = [
        &*addr,
        "--only",
        "legal-established-users",
        "--timeout",
        "1s",
    ];
    let Some(out) = check_within_bound(&args) else {
        panic!("xscp check --timeout 1s still running after {HANG_BOUND:?} (killed)");
    };
    let all = text(&out);
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("actual:   <not within 1s>"), "{all}");
}
