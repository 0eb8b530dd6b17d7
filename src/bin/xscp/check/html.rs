//! `--html FILE`: the results as the page of [`crate::report_page`], each run's exchange
//! drawn from the model [`super::diagram`] builds (the one `--diagrams` writes as Mermaid).

use crate::report_page::{self, Case, Report, Verdict};

use super::diagram::diagram;
use super::runner::{Outcome, Run};
use super::transcript::Transcript;

/// One result as a case of the report.
fn case(t: &Transcript, run: &Run) -> Case {
    let (verdict, skip_reason, failure) = match &run.outcome {
        Outcome::Pass => (Verdict::Pass, None, None),
        Outcome::Skip(reason) => (Verdict::Skip, Some(reason.clone()), None),
        Outcome::Fail(f) | Outcome::Warn(f) => {
            let step = if f.line == 0 {
                format!("{}: ({})", t.origin, f.step)
            } else {
                format!("{}:{}: {}", t.origin, f.line, f.step)
            };
            let failure = report_page::Failure {
                step,
                expected: f.expected.clone(),
                actual: f.actual.clone(),
            };
            let verdict = match run.outcome {
                Outcome::Warn(_) => Verdict::Warn,
                _ => Verdict::Fail,
            };
            (verdict, None, Some(failure))
        }
    };
    Case {
        name: t.name.clone(),
        section: t.section.clone(),
        level: t.level.to_string(),
        rule: t.rule.clone(),
        origin: t.origin.clone(),
        verdict,
        skip_reason,
        failure,
        // A transcript skipped before it ran has no exchange to draw.
        diagram: (!run.exchange.is_empty()).then(|| diagram(t, run)),
        server_log: run.server_log.clone(),
    }
}

/// The page for the results of a check of the server at `addr`, or started per transcript
/// by the `--server` command `command`; `probe` is what the probe found broken, if it did.
pub fn page(
    addr: Option<&str>,
    command: Option<&str>,
    probe: Option<&str>,
    results: &[(&Transcript, Run)],
) -> String {
    let program = command.and_then(|c| c.split_whitespace().next()).map(|p| {
        std::path::Path::new(p)
            .file_name()
            .map_or(p.to_string(), |f| f.to_string_lossy().into_owned())
    });
    report_page::render(&Report {
        server: program.or(addr.map(String::from)).unwrap_or_default(),
        how: command.map(|c| format!("a fresh server per transcript started as '{c}'")),
        probe: probe.map(String::from),
        when: Some(xscp::clock::Utc::now().minute()),
        cases: results.iter().map(|(t, run)| case(t, run)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::diagram::tests::transcript;
    use crate::check::runner::{Event, Failure};

    /// A failed run is a failed case, with its step and place; a skipped one has no
    /// diagram.
    #[test]
    fn results_become_cases() {
        let t = transcript();
        let run = Run {
            outcome: Outcome::Fail(Failure::at_line_4("b s: x")),
            exchange: vec![Event::Eof { conn: "a".into() }],
            server_log: vec!["log line".into()],
        };
        let c = case(&t, &run);
        assert_eq!(c.verdict, Verdict::Fail);
        assert_eq!(c.failure.unwrap().step, "t.xt:4: b s: x");
        assert_eq!(c.section, "5.7 name hold");
        assert!(c.diagram.is_some());
        let warned = Run {
            outcome: Outcome::Warn(Failure::at_line_4("s")),
            ..run
        };
        assert_eq!(case(&t, &warned).verdict, Verdict::Warn);
        let skipped = Run {
            outcome: Outcome::Skip("why".into()),
            exchange: Vec::new(),
            server_log: Vec::new(),
        };
        let c = case(&t, &skipped);
        assert_eq!(
            (c.verdict, c.skip_reason.as_deref(), c.diagram),
            (Verdict::Skip, Some("why"), None)
        );
    }
}
