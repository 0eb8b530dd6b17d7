//! `xscp check --html` (issue 22): the report a teacher hands out, as headless Chromium
//! renders it — graded, summarised by section and level, every case with its rule linked
//! to its section of xscp(7), its result, expected against actual where it failed, and its
//! exchange drawn as SVG with the failure marked; it loads nothing and it prints.
//!
//! It needs the `xscpd` and `xscp` binaries and Chromium.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::browser::{measure, pdf_pages, print_pdf, scratch, screenshot};

/// A made-up SHOULD rule that xscpd does not follow (it fails), and a two-client exchange
/// that passes.
const OWN: [(&str, &str); 2] = [
    (
        "pong-is-shouted.xt",
        "section: 5 ping\nlevel: SHOULD\nrule: a made-up rule that xscpd does not follow\n\
         a connect\na c: ping x\na s: +OK PONG x\n",
    ),
    (
        "relay-and-receipt.xt",
        "section: 5 chatm\nlevel: MUST\nrule: a message and its receipt between two clients\n\
         a connect\nb connect\na c: uname alice\na s: +OK you are alice\nb c: uname bob\n\
         b s: +OK you are bob\na c: chatm alice bob hi there\na s: +OK message relayed\n\
         b s: chatm alice bob hi there\nb c: chatr alice bob\na s: chatr alice bob\n",
    ),
];

/// Runs `xscp check --html PAGE` with `args`, a fresh xscpd per transcript.
fn check_html(args: &[&str], page: &Path) -> Output {
    let server = format!("{} -q -l {{addr}} {{options}}", env!("CARGO_BIN_EXE_xscpd"));
    Command::new(env!("CARGO_BIN_EXE_xscp"))
        .args(["check", "--server", &server, "--timeout", "10s"])
        .args(args)
        .arg("--html")
        .arg(page)
        .stdin(Stdio::null())
        .output()
        .expect("run xscp check")
}

#[test]
fn the_html_report_renders_in_chromium() {
    let dir = scratch("check-report");
    let xt = dir.join("transcripts");
    std::fs::create_dir_all(&xt).unwrap();
    for (name, text) in OWN {
        std::fs::write(xt.join(name), text).unwrap();
    }
    let page = dir.join("report.html");
    let xt = xt.display().to_string();
    let out = check_html(
        &[
            "--transcripts",
            &xt,
            "--builtin",
            "--only",
            "pong-is-shouted",
            "--only",
            "relay-and-receipt",
            "--only",
            "hold-*",
            "--only",
            "fsm-*",
        ],
        &page,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let summary = text.lines().last().expect("a summary line");
    let passed: usize = summary.split(' ').next().unwrap().parse().unwrap();
    assert!(
        summary.ends_with(" passed, 1 failed, 0 skipped"),
        "{summary}"
    );

    let r = measure(&page);
    assert_eq!(r.resources, 0, "a self-contained page loads nothing");
    // One diagram per case, every one drawn whole; the failure marked in one of them.
    let seqs = r.sequences();
    assert_eq!(seqs.len(), passed + 1, "{:?}", r.svgs);
    for s in &seqs {
        assert!(s.steps > 0 && s.drawn >= s.steps && s.height > 100, "{s:?}");
        assert_eq!((s.outside, s.squeezed), (0, 0), "{s:?}");
    }
    assert_eq!(seqs.iter().map(|s| s.fails).sum::<usize>(), 1);
    let fsm: Vec<_> = r.svgs.iter().filter(|s| s.class == "fsm").collect();
    assert_eq!(fsm.len(), 1);
    assert_eq!((fsm[0].outside, fsm[0].width), (0, 880), "{:?}", fsm[0]);

    // What a reader sees first: the grade, then the summary; the failure with its rule
    // linked to its section, expected against actual.
    let dom = &r.dom;
    assert!(
        dom.contains("<h1>xscp check: xscpd</h1>"),
        "the server graded, by name"
    );
    assert!(dom.contains("a fresh server per transcript started as"));
    let grade = dom
        .find("FAIL — the server breaks 1 rule of xscp(7) (0 MUST, 1 SHOULD)")
        .expect("the grade");
    assert!(grade < dom.find("Summary by section and level").unwrap());
    assert!(dom.contains("<a href=\"#group-5-7-name-hold\">§5.7 name hold</a>"));
    assert!(dom.contains("<span class=\"verdict fail\">FAIL</span> pong-is-shouted"));
    assert!(dom.contains("<a href=\"#sec-5\">xscp(7) §5 ping</a> · SHOULD"));
    assert!(dom.contains("<dt>expected</dt><dd>+OK PONG x</dd>"));
    assert!(dom.contains("<dd class=\"actual\">+OK pong x</dd>"));
    assert!(dom.contains("✗ FAIL: expected +OK PONG x, got +OK pong x"));
    // The manual page it sends the reader to opens on a checkout (the pages are not
    // installed): `man 7 xscp` did not.
    let man = dom
        .split("<code>man -l ")
        .nth(1)
        .and_then(|rest| rest.split(['<', ' ']).next())
        .expect("the report names the manual page to read");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join(man).is_file(),
        "{man}: no such page in the checkout"
    );
    for link in dom.split("href=\"#").skip(1) {
        let id = &link[..link.find('"').unwrap()];
        assert!(
            dom.contains(&format!("id=\"{id}\"")),
            "a link to no anchor: #{id}"
        );
    }

    let shot = screenshot(&page, 1280, 1400, Some(&dir.join("report.png")));
    assert!(shot.colours > 16 && shot.inked > 0.02, "{shot:?}");
    let pages = pdf_pages(&print_pdf(&page));
    assert!(pages >= 2, "the printed report has {pages} pages");
}

/// A flood is a run of one line: 3000 pipelined pings get 3000 `+OK pong x`. The report
/// draws that run as one counted arrow, so that the case's picture stays a picture (one
/// arrow a row drew it 90,000 pixels tall, and the slow-consumer case's 600,000).
#[test]
fn a_run_of_one_line_is_one_counted_arrow() {
    let dir = scratch("check-report-run");
    let page = dir.join("report.html");
    let out = check_html(&["--only", "limits-sendq-own-replies"], &page);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let html = std::fs::read_to_string(&page).expect("the report");
    assert!(html.contains("(×3000) +OK pong x"), "the run, counted");
    let svg = html.find("<svg class=\"seq\"").expect("the case's diagram");
    let height = html[svg..]
        .split("height=\"")
        .nth(1)
        .and_then(|h| h.split('"').next())
        .and_then(|h| h.parse::<f64>().ok())
        .expect("the diagram's height");
    assert!(height < 1000.0, "the diagram is {height} pixels tall");
}
