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
        "--without",
        "resume",
        "--timeout",
        TIMEOUT,
        "--junit",
        &junit.to_string_lossy(),
        "--diagrams",
        &diagrams.to_string_lossy(),
    ]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let v = verdicts(&all);
    let skipped = names_with(&all, "SKIP");
    let mut resume = requiring("resume");
    resume.sort();
    let mut skipped_sorted = skipped.clone();
    skipped_sorted.sort();
    assert_eq!(skipped_sorted, resume, "only the resume group is skipped");
    let passed = v.len() - skipped.len();
    assert!(passed >= 25, "{all}");
    let summary = format!("{passed} passed, 0 failed, {} skipped", skipped.len());
    assert_eq!(all.lines().last(), Some(summary.as_str()), "{all}");

    // JUnit: one testcase per transcript, counts as printed, well formed as far as a
    // tag count can tell.
    let xml = std::fs::read_to_string(&junit).expect("junit written");
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), v.len(), "{xml}");
    assert_eq!(xml.matches("<skipped ").count(), skipped.len());
    assert!(!xml.contains("<failure"));
    assert!(xml.contains(&format!("tests=\"{}\"", v.len())));
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
