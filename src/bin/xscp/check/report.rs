//! What `xscp check` prints, and the JUnit XML of `--junit`. Only formatting: the results
//! come from the runner.

use std::fmt::Write as _;

use super::matching::shown;
use super::runner::{Event, Outcome, Run};
use super::transcript::Transcript;

/// The exchange a failure shows: its first and its last lines (the whole of it is in
/// the diagram).
const EXCHANGE_HEAD: usize = 20;
const EXCHANGE_TAIL: usize = 40;

/// One result line: `PASS  name  §5.1 uname  MUST` (SKIP with its reason).
pub fn line(t: &Transcript, run: &Run) -> String {
    let verdict = match run.outcome {
        Outcome::Pass => "PASS",
        Outcome::Fail(_) => "FAIL",
        Outcome::Skip(_) => "SKIP",
        Outcome::Warn(_) => "WARN",
    };
    let mut s = format!("{verdict}  {:<44} §{:<16} {}", t.name, t.section, t.level);
    if let Outcome::Skip(reason) = &run.outcome {
        let _ = write!(s, "  ({reason})");
    }
    s.trim_end().to_string()
}

/// The details of a failure: the rule, the step, expected and actual, the exchange.
pub fn failure(t: &Transcript, run: &Run) -> String {
    let (Outcome::Fail(f) | Outcome::Warn(f)) = &run.outcome else {
        return String::new();
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "      rule:     {} (xscp(7) §{}, {})",
        t.rule, t.section, t.level
    );
    if f.line == 0 {
        let _ = writeln!(s, "      step:     {}: ({})", t.origin, f.step);
    } else {
        let _ = writeln!(s, "      step:     {}:{}: {}", t.origin, f.line, f.step);
    }
    let _ = writeln!(s, "      expected: {}", f.expected);
    let _ = writeln!(s, "      actual:   {}", f.actual);
    let lines: Vec<String> = run.exchange.iter().filter_map(exchange_line).collect();
    if !lines.is_empty() {
        let _ = writeln!(s, "      exchange so far:");
        // A flood would bury the end, where it failed: its first lines and its last.
        let cut = lines.len() > EXCHANGE_HEAD + EXCHANGE_TAIL;
        for (i, l) in lines.iter().enumerate() {
            if cut && i == EXCHANGE_HEAD {
                let left = lines.len() - EXCHANGE_HEAD - EXCHANGE_TAIL;
                let _ = writeln!(s, "        ({left} more lines)");
            }
            if !cut || i < EXCHANGE_HEAD || i >= lines.len() - EXCHANGE_TAIL {
                let _ = writeln!(s, "        {l}");
            }
        }
    }
    if !run.server_log.is_empty() {
        let _ = writeln!(s, "      server's last log lines:");
        for l in &run.server_log {
            let _ = writeln!(s, "        | {l}");
        }
    }
    s
}

/// One event of the exchange as text: `alice > uname alice`, `alice < +OK you are alice`.
fn exchange_line(e: &Event) -> Option<String> {
    Some(match e {
        Event::Connected { conn, from } => match from {
            Some(f) => format!("{conn}   (connected from {f})"),
            None => format!("{conn}   (connected)"),
        },
        Event::Sent { conn, bytes } => format!("{conn} > {}", shown(bytes)),
        Event::Received { conn, bytes } => format!("{conn} < {}", shown(bytes)),
        Event::Eof { conn } => format!("{conn} < (end of stream)"),
        Event::Broken { conn, error } => format!("{conn} < (broken: {error})"),
        Event::ClientClosed { conn } => format!("{conn}   (closed by the client)"),
        Event::Note { .. } | Event::Failed { .. } => return None,
        Event::Shutdown => "(SIGTERM sent to the server)".into(),
        Event::Exited(s) => format!("(server ended: {s})"),
    })
}

/// The closing line, exactly `N passed, M failed, K skipped`, then `, W not graded
/// (SHOULD)` if `--level must` left failures ungraded. `extra` failures are the probe's
/// (a broken ping barrier), which no transcript carries.
pub fn summary(runs: &[(&Transcript, Run)], extra: usize) -> String {
    let (p, f, s, w) = counts(runs);
    let f = f + extra;
    let mut line = format!("{p} passed, {f} failed, {s} skipped");
    if w > 0 {
        let _ = write!(line, ", {w} not graded (SHOULD)");
    }
    line
}

fn counts(runs: &[(&Transcript, Run)]) -> (usize, usize, usize, usize) {
    let count = |want: fn(&Outcome) -> bool| runs.iter().filter(|(_, r)| want(&r.outcome)).count();
    (
        count(|o| matches!(o, Outcome::Pass)),
        count(|o| matches!(o, Outcome::Fail(_))),
        count(|o| matches!(o, Outcome::Skip(_) | Outcome::Warn(_))),
        count(|o| matches!(o, Outcome::Warn(_))),
    )
}

/// JUnit XML: one testsuite, a testcase per transcript (classname: its section and
/// level; the level also as a property), with `<failure>` or `<skipped>` (a SHOULD
/// failure not graded under `--level must` is skipped, with what failed). A broken ping
/// barrier, which the probe found, is a testcase of its own: the root cause.
pub fn junit(runs: &[(&Transcript, Run)], barrier: Option<&str>) -> String {
    let (_, f, s, _) = counts(runs);
    let extra = usize::from(barrier.is_some());
    let (f, n) = (f + extra, runs.len() + extra);
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"xscp check\" tests=\"{n}\" failures=\"{f}\" skipped=\"{s}\">"
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"xscp check\" tests=\"{n}\" failures=\"{f}\" errors=\"0\" skipped=\"{s}\">"
    );
    if let Some(b) = barrier {
        let _ = writeln!(
            x,
            "    <testcase classname=\"probe\" name=\"ping-barrier\">\n      \
             <failure message=\"{}\"/>\n    </testcase>",
            xml(b)
        );
    }
    for (t, run) in runs {
        let _ = write!(
            x,
            "    <testcase classname=\"{}\" name=\"{}\"",
            xml(&format!("§{} {}", t.section, t.level)),
            xml(&t.name)
        );
        let _ = writeln!(
            x,
            ">\n      <properties><property name=\"level\" value=\"{}\"/></properties>",
            t.level
        );
        match &run.outcome {
            Outcome::Pass => {}
            Outcome::Skip(reason) => {
                let _ = writeln!(x, "      <skipped message=\"{}\"/>", xml(reason));
            }
            Outcome::Warn(fl) => {
                let _ = writeln!(
                    x,
                    "      <skipped message=\"{}\"/>",
                    xml(&format!(
                        "SHOULD, not graded (--level must): expected {}, got {}",
                        fl.expected, fl.actual
                    ))
                );
            }
            Outcome::Fail(fl) => {
                let _ = writeln!(
                    x,
                    "      <failure message=\"{}\">{}</failure>",
                    xml(&format!("expected {}, got {}", fl.expected, fl.actual)),
                    xml(&failure(t, run))
                );
            }
        }
        x.push_str("    </testcase>\n");
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// Text escaped for XML attributes and content; characters XML 1.0 cannot carry at all
/// (most control characters) become `\xNN`.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => {
                let _ = write!(out, "&#{};", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::check::runner::Failure;
    use crate::check::transcript::parse;

    #[test]
    fn a_long_exchange_keeps_its_start_and_its_end() {
        let t = parse("t", "t.xt", "section: 7\nlevel: MUST\nrule: r\na connect\n").unwrap();
        let exchange = (0..100)
            .map(|i| Event::Received {
                conn: "a".into(),
                bytes: format!("line {i}\r\n").into_bytes(),
            })
            .collect();
        let run = Run {
            outcome: Outcome::Fail(Failure::at_line_4("a connect")),
            exchange,
            server_log: vec!["boom".into()],
        };
        let text = failure(&t, &run);
        assert!(text.contains("step:     t.xt:4: a connect\n"), "{text}");
        assert!(text.contains("expected: x\n      actual:   y\n"), "{text}");
        assert!(
            text.contains("        a < line 19\n        (40 more lines)\n        a < line 60\n"),
            "{text}"
        );
        assert!(
            text.contains("a < line 99\n") && !text.contains("line 20\n"),
            "{text}"
        );
        assert!(text.ends_with("        | boom\n"), "{text}");
        let run_again = run.clone();
        let xml = junit(&[(&t, run)], Some("barrier <broken>"));
        assert!(xml.contains("failures=\"2\"") && xml.contains("tests=\"2\""));
        assert!(xml.contains(
            "name=\"ping-barrier\">\n      <failure message=\"barrier &lt;broken&gt;\"/>"
        ));
        assert!(xml.contains("<failure message=\"expected x, got y\">"));
        let xml = junit(&[(&t, run_again)], None);
        assert!(xml.contains("failures=\"1\"") && !xml.contains("ping-barrier"));
    }

    #[test]
    fn xml_escapes_markup_and_controls() {
        assert_eq!(xml("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;\\x01");
    }
}
