//! `--html FILE`: the results as the page of [`crate::report_page`], each run's exchange
//! as a [`crate::seqdiag`] diagram (the same exchange `--diagrams` writes as Mermaid).

use crate::report_page::{self, Case, Report, Verdict};
use crate::seqdiag::{Arrow, Diagram, Participant, Tone};

use super::matching::shown;
use super::runner::{Event, Outcome, Run};
use super::transcript::Transcript;

/// The connection an event concerns, if one.
fn conn_of(e: &Event) -> Option<&str> {
    match e {
        Event::Connected { conn, .. }
        | Event::Sent { conn, .. }
        | Event::Received { conn, .. }
        | Event::Eof { conn }
        | Event::Broken { conn, .. }
        | Event::ClientClosed { conn } => Some(conn),
        Event::Note { conn, .. } | Event::Failed { conn, .. } => conn.as_deref(),
        Event::Shutdown | Event::Exited(_) => None,
    }
}

/// The exchange of one run as a sequence diagram: the transcript's connections around the
/// server, in the order they first appear, every event a step.
pub fn diagram(t: &Transcript, run: &Run) -> Diagram {
    let mut conns: Vec<&str> = Vec::new();
    for c in run.exchange.iter().filter_map(conn_of) {
        if !conns.contains(&c) {
            conns.push(c);
        }
    }
    let mut d = Diagram::new(format!("{} (xscp(7) §{}, {})", t.name, t.section, t.level));
    let left = conns.len().div_ceil(2);
    let mut index = Vec::with_capacity(conns.len());
    let mut server = 0;
    for (k, c) in conns.iter().enumerate() {
        if k == left {
            server = d.participant(Participant::server("server"));
        }
        index.push((*c, d.participant(Participant::client(*c, None))));
    }
    if conns.len() == left {
        server = d.participant(Participant::server("server"));
    }
    let at = |c: &str| {
        index
            .iter()
            .find(|(n, _)| *n == c)
            .map_or(server, |(_, i)| *i)
    };
    for e in &run.exchange {
        match e {
            Event::Connected { conn, from } => {
                let text = match from {
                    Some(f) => format!("(connect from {f})"),
                    None => "(connect)".into(),
                };
                d.message(None, at(conn), server, text, Arrow::Connect);
            }
            Event::Sent { conn, bytes } => {
                d.message(None, at(conn), server, shown(bytes), Arrow::Line)
            }
            Event::Received { conn, bytes } => {
                d.message(None, server, at(conn), shown(bytes), Arrow::Line)
            }
            Event::Eof { conn } => d.message(
                None,
                server,
                at(conn),
                "(close: end of stream)".into(),
                Arrow::Close,
            ),
            Event::Broken { conn, error } => d.message(
                None,
                server,
                at(conn),
                format!("(broken: {error})"),
                Arrow::Close,
            ),
            Event::ClientClosed { conn } => d.message(
                None,
                at(conn),
                server,
                "(client closes)".into(),
                Arrow::Close,
            ),
            Event::Note {
                conn: Some(c),
                text,
            } => d.note(None, at(c), Some(server), text.clone(), Tone::State),
            Event::Note { conn: None, text } => {
                d.note(None, server, None, text.clone(), Tone::Info)
            }
            Event::Shutdown => d.note(None, server, None, "SIGTERM".into(), Tone::Info),
            Event::Exited(s) => {
                d.note(None, server, None, format!("server ended: {s}"), Tone::Info)
            }
            Event::Failed { conn, text } => {
                let over = conn.as_deref().map_or(server, at);
                d.note(None, over, None, text.clone(), Tone::Fail)
            }
        }
    }
    d
}

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
        when: None,
        cases: results.iter().map(|(t, run)| case(t, run)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::runner::Failure;
    use crate::check::transcript::parse;
    use crate::seqdiag::What;

    fn transcript() -> Transcript {
        parse(
            "t",
            "t.xt",
            "section: 5.7 name hold\nlevel: MUST\nrule: r\na connect\n",
        )
        .unwrap()
    }

    /// Every event is a step, in order; the clients around the server; the failure a
    /// failure note over its connection.
    #[test]
    fn every_event_is_a_step() {
        let conn = |c: &str| c.to_string();
        let exchange = vec![
            Event::Connected {
                conn: conn("a"),
                from: None,
            },
            Event::Connected {
                conn: conn("b"),
                from: Some("127.0.0.2".into()),
            },
            Event::Sent {
                conn: conn("a"),
                bytes: b"uname a\r\n".to_vec(),
            },
            Event::Received {
                conn: conn("a"),
                bytes: b"+OK you are a\r\n".to_vec(),
            },
            Event::Note {
                conn: Some(conn("a")),
                text: "ESTABLISHED".into(),
            },
            Event::Failed {
                conn: Some(conn("b")),
                text: "expected x, got y".into(),
            },
            Event::ClientClosed { conn: conn("b") },
            Event::Eof { conn: conn("a") },
            Event::Shutdown,
        ];
        let run = Run {
            outcome: Outcome::Fail(Failure {
                line: 4,
                step: "b s: x".into(),
                expected: "x".into(),
                actual: "y".into(),
            }),
            exchange,
            server_log: vec!["log line".into()],
        };
        let t = transcript();
        let d = diagram(&t, &run);
        let names: Vec<&str> = d.participants.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "server", "b"]);
        assert_eq!(d.steps.len(), run.exchange.len());
        assert!(
            matches!(&d.steps[3].what, What::Message { from: 1, to: 0, text, .. } if text == "+OK you are a")
        );
        assert!(matches!(
            &d.steps[5].what,
            What::Note {
                over: 2,
                tone: Tone::Fail,
                ..
            }
        ));
        assert!(matches!(
            &d.steps[6].what,
            What::Message {
                from: 2,
                to: 1,
                arrow: Arrow::Close,
                ..
            }
        ));
        let c = case(&t, &run);
        assert_eq!(c.verdict, Verdict::Fail);
        assert_eq!(c.failure.unwrap().step, "t.xt:4: b s: x");
        assert_eq!(c.section, "5.7 name hold");
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
