//! The HTML report of `xscp check --html`: one self-contained page to hand out, laid out
//! like Autobahn TestSuite's reports — the grade and a summary by section and level first,
//! then every case with its rule and its section of xscp(7), its verdict, what was expected
//! against what arrived when it failed, and the exchange drawn as a sequence diagram; last
//! the sections the cases cite, with the state machine (§3) and the legality table (§4)
//! drawn from the server library's own tables.
//!
//! It knows nothing of how a check runs: the checker hands it [`Case`]s.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::html::{self, Page, escape};
use crate::seqdiag::{self, Diagram};
use crate::statechart;

/// A case's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Fail,
    /// A SHOULD rule that failed under `--level must`: reported, not graded.
    Warn,
    Pass,
    Skip,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Warn => "WARN",
            Verdict::Skip => "SKIP",
        }
    }

    fn class(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Warn => "warn",
            Verdict::Skip => "skip",
        }
    }
}

/// Where a case failed: the step, and what it expected against what arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The step as the transcript writes it, with its place (`file.xt:12: a s: +OK`).
    pub step: String,
    pub expected: String,
    pub actual: String,
}

/// One graded transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    pub name: String,
    /// The section of xscp(7) it checks, its number first (`5.7 name hold`).
    pub section: String,
    /// `MUST` or `SHOULD`.
    pub level: String,
    /// The rule, in a sentence.
    pub rule: String,
    /// Where the transcript comes from (a file, or the built-in suite).
    pub origin: String,
    pub verdict: Verdict,
    /// Why it was skipped.
    pub skip_reason: Option<String>,
    pub failure: Option<Failure>,
    /// The exchange that took place; none for a case that never ran.
    pub diagram: Option<Diagram>,
    /// The server's last log lines, when the checker started the server (shown for a
    /// failure).
    pub server_log: Vec<String>,
}

impl Case {
    /// The section's number (`5.7` of `5.7 name hold`).
    fn number(&self) -> &str {
        self.section.split_whitespace().next().unwrap_or("")
    }
}

/// Everything the report shows.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The server graded: its address, or its program's name.
    pub server: String,
    /// How it was reached, when that says more (the `--server` command).
    pub how: Option<String>,
    /// What the checker's first probe found broken (a failure of its own, before any
    /// transcript).
    pub probe: Option<String>,
    /// When the check ran (UTC), if known.
    pub when: Option<String>,
    pub cases: Vec<Case>,
}

/// The numbered sections of xscp(7), as its headings read: a case's section number finds
/// its title here (a unit test holds the list to the page).
const SECTIONS: &[(&str, &str)] = &[
    ("1", "Transport and framing"),
    ("2", "Lines the server sends"),
    ("3", "States and transitions"),
    ("4", "Which command is legal when"),
    ("5", "Commands"),
    ("5.1", "uname: the negotiation"),
    ("5.2", "ping and pong: keepalive"),
    (
        "5.3",
        "capa and cquit: the server's settings, the orderly end",
    ),
    ("5.4", "cname, users and notif: names"),
    ("5.5", "chatm: messages"),
    ("5.6", "chatr: receipts"),
    ("5.7", "Name hold"),
    ("5.8", "Resume"),
    ("5.9", "Restart"),
    ("6", "Error classes"),
    ("7", "Server behaviour"),
];

/// The anchor of section `number` in the report's list of sections.
fn section_anchor(number: &str) -> String {
    format!("sec-{}", html::anchor(number))
}

/// The anchor of a case.
fn case_anchor(name: &str) -> String {
    format!("case-{}", html::anchor(name))
}

/// Sorts section numbers as numbers (`5.10` after `5.9`).
fn number_key(number: &str) -> Vec<u32> {
    number
        .split('.')
        .map(|p| p.parse().unwrap_or(u32::MAX))
        .collect()
}

/// Pass, fail and skip counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    pass: usize,
    fail: usize,
    warn: usize,
    skip: usize,
}

impl Counts {
    fn add(&mut self, v: Verdict) {
        match v {
            Verdict::Pass => self.pass += 1,
            Verdict::Fail => self.fail += 1,
            Verdict::Warn => self.warn += 1,
            Verdict::Skip => self.skip += 1,
        }
    }

    fn cells(&self) -> String {
        let cell = |n: usize, class: &str| {
            if n == 0 {
                "<td class=\"num\"></td>".to_string()
            } else {
                format!("<td class=\"num {class}\">{n}</td>")
            }
        };
        // A warning is a failure reported, not graded: it shows in the failures' column.
        let fails = match (self.fail, self.warn) {
            (f, 0) => cell(f, "fail"),
            (0, w) => format!("<td class=\"num warn\">{w} warn</td>"),
            (f, w) => format!("<td class=\"num fail\">{f} + {w} warn</td>"),
        };
        cell(self.pass, "pass") + &fails + &cell(self.skip, "skip")
    }
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut p = Page::new(&format!("xscp check: {}", r.server));
    let mut all = Counts::default();
    let mut must_fail = 0;
    for c in &r.cases {
        all.add(c.verdict);
        if c.verdict == Verdict::Fail && c.level == "MUST" {
            must_fail += 1;
        }
    }
    let graded = all.pass + all.fail;
    let (class, grade) = if let Some(probe) = &r.probe {
        (
            "fail",
            format!(
                "FAIL — before any rule: {probe}; {} of {graded} graded rules kept",
                all.pass
            ),
        )
    } else if all.fail == 0 && graded > 0 {
        (
            "pass",
            format!(
                "PASS — the server keeps every rule of xscp(7) that was graded ({graded} of {graded})"
            ),
        )
    } else if graded == 0 {
        ("skip", "NOT GRADED — every case was skipped".to_string())
    } else {
        (
            "fail",
            format!(
                "FAIL — the server breaks {} of xscp(7) ({must_fail} MUST, {} SHOULD); {} of {graded} graded rules kept ({:.0}%)",
                html::count(all.fail, "rule"),
                all.fail - must_fail,
                all.pass,
                100.0 * all.pass as f64 / graded as f64
            ),
        )
    };
    p.push(&format!(
        "<p class=\"grade {class}\"><strong>{}</strong></p>\n",
        escape(&grade)
    ));
    let when = r
        .when
        .as_deref()
        .map(|w| format!(" on {w}"))
        .unwrap_or_default();
    let how = r
        .how
        .as_deref()
        .map(|h| format!(", {h}"))
        .unwrap_or_default();
    p.paragraph(
        "meta",
        &format!(
            "Graded by xscp check {}{when}{how}: {} passed, {} failed, {} skipped{}. Each case \
             plays one rule of xscp(7) over TCP; its diagram shows the exchange that took place.",
            env!("CARGO_PKG_VERSION"),
            all.pass,
            all.fail,
            all.skip,
            match all.warn {
                0 => String::new(),
                w => format!(
                    ", {} of level SHOULD failed, reported only (WARN under --level must)",
                    html::count(w, "rule")
                ),
            }
        ),
    );
    p.push(&summary(r));
    p.push(&failures(r));
    p.push(&cases(r));
    p.push(&sections(r));
    p.finish()
}

/// The summary: one row per section the cases cite, MUST and SHOULD counts apart.
fn summary(r: &Report) -> String {
    let mut rows: BTreeMap<(Vec<u32>, String), BTreeMap<String, Counts>> = BTreeMap::new();
    for c in &r.cases {
        rows.entry((number_key(c.number()), c.section.clone()))
            .or_default()
            .entry(c.level.clone())
            .or_default()
            .add(c.verdict);
    }
    let mut t = String::from(
        "<h2 id=\"summary\">Summary by section and level</h2>\n<table class=\"summary\">\n\
         <tr><th rowspan=\"2\">xscp(7) section</th><th colspan=\"3\">MUST</th>\
         <th colspan=\"3\">SHOULD</th></tr>\n<tr><th>pass</th><th>fail</th><th>skip</th>\
         <th>pass</th><th>fail</th><th>skip</th></tr>\n",
    );
    let mut totals: BTreeMap<&str, Counts> = BTreeMap::new();
    for ((_, section), levels) in &rows {
        let must = levels.get("MUST").copied().unwrap_or_default();
        let should = levels.get("SHOULD").copied().unwrap_or_default();
        for (level, c) in [("MUST", must), ("SHOULD", should)] {
            let t = totals.entry(level).or_default();
            t.pass += c.pass;
            t.fail += c.fail;
            t.warn += c.warn;
            t.skip += c.skip;
        }
        let _ = writeln!(
            t,
            "<tr><td><a href=\"#{}\">§{}</a></td>{}{}</tr>",
            html::anchor(&format!("group {section}")),
            escape(section),
            must.cells(),
            should.cells()
        );
    }
    let must = totals.get("MUST").copied().unwrap_or_default();
    let should = totals.get("SHOULD").copied().unwrap_or_default();
    let _ = writeln!(
        t,
        "<tr><th>all</th>{}{}</tr>\n</table>",
        must.cells(),
        should.cells()
    );
    t
}

/// The failed cases, linked, before the details.
fn failures(r: &Report) -> String {
    let failed: Vec<&Case> = r
        .cases
        .iter()
        .filter(|c| matches!(c.verdict, Verdict::Fail | Verdict::Warn))
        .collect();
    if failed.is_empty() {
        return String::new();
    }
    let mut s = String::from("<h2 id=\"failures\">Failures</h2>\n<ul class=\"failures\">\n");
    for c in failed {
        let _ = writeln!(
            s,
            "<li><a href=\"#{}\">{}</a> — xscp(7) §{} {}: {}</li>",
            case_anchor(&c.name),
            escape(&c.name),
            escape(&c.section),
            escape(&c.level),
            escape(&c.rule)
        );
    }
    s.push_str("</ul>\n");
    s
}

/// Every case, grouped by section in the order of the summary.
fn cases(r: &Report) -> String {
    let mut groups: BTreeMap<(Vec<u32>, String), Vec<&Case>> = BTreeMap::new();
    for c in &r.cases {
        groups
            .entry((number_key(c.number()), c.section.clone()))
            .or_default()
            .push(c);
    }
    let mut s = String::from("<h2 id=\"cases\">Cases</h2>\n");
    for ((_, section), cases) in &groups {
        let number = cases[0].number();
        let title = SECTIONS
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, t)| format!(" — {t}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "<h3 class=\"group\" id=\"{}\">§{}{}</h3>",
            html::anchor(&format!("group {section}")),
            escape(section),
            escape(&title)
        );
        for c in cases {
            s.push_str(&case(c));
        }
    }
    s
}

/// One case.
fn case(c: &Case) -> String {
    let v = c.verdict;
    let mut s = format!(
        "<section class=\"case {}\" id=\"{}\">\n<h3><span class=\"verdict {}\">{}</span> {}</h3>\n",
        v.class(),
        case_anchor(&c.name),
        v.class(),
        v.word(),
        escape(&c.name)
    );
    let _ = writeln!(
        s,
        "<p class=\"meta\"><a href=\"#{}\">xscp(7) §{}</a> · {} · {}</p>\n<p class=\"rule\">{}</p>",
        section_anchor(c.number()),
        escape(&c.section),
        escape(&c.level),
        escape(&c.origin),
        escape(&c.rule)
    );
    if let Some(reason) = &c.skip_reason {
        let _ = writeln!(
            s,
            "<p class=\"skip-reason\">Skipped: {}</p>",
            escape(reason)
        );
    }
    if let Some(f) = &c.failure {
        let _ = writeln!(
            s,
            "<dl class=\"expect\"><dt>step</dt><dd>{}</dd><dt>expected</dt><dd>{}</dd>\
             <dt>actual</dt><dd class=\"actual\">{}</dd></dl>",
            escape(&f.step),
            escape(&f.expected),
            escape(&f.actual)
        );
    }
    if let Some(d) = &c.diagram {
        let caption = match v {
            Verdict::Fail | Verdict::Warn => {
                "The exchange that took place, the failure marked in red where it happened."
            }
            _ => "The exchange that took place.",
        };
        s.push_str(&html::figure(
            &format!("diagram {}", c.name),
            &seqdiag::svg::render(d),
            caption,
        ));
    }
    // The server's log explains a failure; beside a pass it is noise.
    if matches!(v, Verdict::Fail | Verdict::Warn) && !c.server_log.is_empty() {
        let _ = writeln!(
            s,
            "<div class=\"server-log\"><p class=\"meta\">The server's last log lines:</p>\n\
             <pre>{}</pre></div>",
            escape(&c.server_log.join("\n"))
        );
    }
    s.push_str("</section>\n");
    s
}

/// The sections of xscp(7) the cases cite (every one, so that each case's link lands),
/// with the pictures of §3 and §4.
fn sections(r: &Report) -> String {
    let mut cited: Vec<&str> = r.cases.iter().map(Case::number).collect();
    cited.extend(["3", "4"]);
    cited.sort_by_key(|n| number_key(n));
    cited.dedup();
    let mut s = String::from(
        "<h2 id=\"sections\">The sections of xscp(7) cited</h2>\n<p class=\"meta\">The \
         protocol is described in the manual page xscp(7) (<code>man -l man/xscp.7</code> in \
         the project's checkout), \
         section by section under these numbers.</p>\n",
    );
    for n in cited {
        let title = SECTIONS
            .iter()
            .find(|(num, _)| *num == n)
            .map_or("", |(_, t)| *t);
        let _ = writeln!(
            s,
            "<h3 id=\"{}\">xscp(7) §{} {}</h3>",
            section_anchor(n),
            escape(n),
            escape(title)
        );
        match n {
            "3" => s.push_str(&html::figure(
                "fsm",
                &statechart::states_svg(),
                "The transition table of xscp(7) §3, drawn from the server library's own table.",
            )),
            "4" => s.push_str(&statechart::legality_html()),
            _ => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seqdiag::tests::sample;

    fn case(name: &str, section: &str, level: &str, verdict: Verdict) -> Case {
        Case {
            name: name.into(),
            section: section.into(),
            level: level.into(),
            rule: format!("rule of {name}"),
            origin: format!("{name}.xt"),
            verdict,
            skip_reason: (verdict == Verdict::Skip).then(|| "needs --server".into()),
            failure: (verdict == Verdict::Fail).then(|| Failure {
                step: format!("{name}.xt:7: a s: +OK <x>"),
                expected: "+OK <x>".into(),
                actual: "-ERR [STATE] & more".into(),
            }),
            diagram: (verdict != Verdict::Skip).then(sample),
            server_log: vec![format!("log of {name}")],
        }
    }

    fn report() -> Report {
        Report {
            server: "127.0.0.1:1030".into(),
            how: None,
            probe: None,
            when: Some("2026-12-07 00:00 UTC".into()),
            cases: vec![
                case("uname-ok", "5 uname", "MUST", Verdict::Pass),
                case("hold-ip", "5.7 name hold", "MUST", Verdict::Fail),
                case("framing-crlf", "1 framing", "MUST", Verdict::Pass),
                case("capa-order", "5 capa", "SHOULD", Verdict::Fail),
                case("limits-rate", "7 limits", "MUST", Verdict::Skip),
                case("restart", "5.9 restart", "MUST", Verdict::Pass),
            ],
        }
    }

    /// The grade says how many rules broke, MUST and SHOULD apart.
    #[test]
    fn the_grade_comes_first() {
        let page = render(&report());
        let grade = page.find("class=\"grade fail\"").expect("a failing grade");
        assert!(grade < page.find("id=\"summary\"").unwrap());
        assert!(page.contains(
            "breaks 2 rules of xscp(7) (1 MUST, 1 SHOULD); 3 of 5 graded rules kept (60%)"
        ));
        let mut r = report();
        r.cases.retain(|c| c.verdict != Verdict::Fail);
        assert!(render(&r).contains("class=\"grade pass\""));
        r.cases.retain(|c| c.verdict == Verdict::Skip);
        assert!(render(&r).contains("NOT GRADED"));
        // What the probe found broken fails the grade before any rule.
        let mut r = report();
        r.cases.retain(|c| c.verdict != Verdict::Fail);
        r.probe = Some("the ping barrier is broken".into());
        let page = render(&r);
        assert!(page.contains("class=\"grade fail\""));
        assert!(page.contains("FAIL — before any rule: the ping barrier is broken"));
    }

    /// A SHOULD failure under `--level must` is a warning: listed, shown with its
    /// expectation, counted apart and not graded.
    #[test]
    fn a_warning_is_reported_not_graded() {
        let mut r = report();
        r.cases.retain(|c| c.verdict != Verdict::Fail);
        let mut warned = case("capa-order", "5 capa", "SHOULD", Verdict::Fail);
        warned.verdict = Verdict::Warn;
        r.cases.push(warned);
        let page = render(&r);
        assert!(page.contains("class=\"grade pass\""), "not graded");
        assert!(page.contains("<span class=\"verdict warn\">WARN</span> capa-order"));
        assert!(page.contains("<td class=\"num warn\">1 warn</td>"));
        assert!(page.contains("1 rule of level SHOULD failed, reported only"));
        assert!(page.contains("<dd class=\"actual\">-ERR [STATE] &amp; more</dd>"));
    }

    /// Sections in numeric order, a row each with MUST and SHOULD counts,
    /// and a total.
    #[test]
    fn the_summary_has_a_row_per_section() {
        let s = summary(&report());
        let order = [
            "§1 framing",
            "§5 capa",
            "§5 uname",
            "§5.7 name hold",
            "§5.9 restart",
            "§7 limits",
            ">all<",
        ];
        let at: Vec<usize> = order
            .iter()
            .map(|o| s.find(o).unwrap_or_else(|| panic!("{o}")))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{s}");
        assert!(
            number_key("5.10") > number_key("5.9"),
            "numbers sort as numbers"
        );
        assert!(s.contains("§5 capa</a></td><td class=\"num\"></td><td class=\"num\"></td><td class=\"num\"></td><td class=\"num\"></td><td class=\"num fail\">1</td>"), "{s}");
    }

    /// Each case: its verdict, its rule linked to its section in the report, expected
    /// against actual on failure, its diagram; every link lands on an anchor of the page.
    #[test]
    fn each_case_shows_its_rule_result_and_exchange() {
        let page = render(&report());
        assert!(page.contains("<span class=\"verdict fail\">FAIL</span> hold-ip"));
        assert!(page.contains("<a href=\"#sec-5-7\">xscp(7) §5.7 name hold</a> · MUST"));
        assert!(page.contains("<dt>expected</dt><dd>+OK &lt;x&gt;</dd>"));
        assert!(page.contains("<dd class=\"actual\">-ERR [STATE] &amp; more</dd>"));
        assert!(page.contains("Skipped: needs --server"));
        assert!(
            page.contains("<pre>log of hold-ip</pre>"),
            "a failure's server log"
        );
        assert!(!page.contains("log of uname-ok"), "not beside a pass");
        assert_eq!(
            page.matches("<svg class=\"seq\"").count(),
            5,
            "one per case that ran"
        );
        assert_eq!(page.matches("<svg class=\"fsm\"").count(), 1);
        assert!(page.contains("<table class=\"legality\">"));
        for link in page.split("href=\"#").skip(1) {
            let id = &link[..link.find('"').unwrap()];
            assert!(page.contains(&format!("id=\"{id}\"")), "no anchor {id}");
        }
        // Failures listed before the cases, the cases grouped by section.
        assert!(page.find("id=\"failures\"").unwrap() < page.find("id=\"cases\"").unwrap());
        assert!(page.contains(
            "<h3 class=\"group\" id=\"group-5-7-name-hold\">§5.7 name hold — Name hold</h3>"
        ));
    }

    /// Every section listed is a numbered heading of xscp(7), titled as there.
    #[test]
    fn the_section_titles_are_those_of_xscp_7() {
        let page = include_str!("../../../man/xscp.7");
        let headings: Vec<String> = page
            .lines()
            .filter_map(|l| l.strip_prefix(".SH ").or_else(|| l.strip_prefix(".SS ")))
            .map(|h| h.trim_matches('"').to_lowercase())
            .collect();
        for (number, title) in SECTIONS {
            let heading = format!("{number} {}", title.to_lowercase());
            assert!(
                headings.contains(&heading),
                "xscp(7) has no heading {heading:?}"
            );
        }
    }
}
