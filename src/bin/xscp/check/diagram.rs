//! The exchange that actually took place, as a sequence diagram ([`crate::seqdiag`]):
//! the transcript's connections around the server, every line an arrow, the transcript's
//! notes (the server's states) as notes, the failure marked where it happened. `--diagrams
//! DIR` writes it as Mermaid; `--html` draws the same model in SVG.

use crate::seqdiag::{self, Arrow, Diagram, Participant, Tone};

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
    // The title is the diagram's first line in Mermaid (a comment) and its tooltip in SVG.
    let about = format!("{} (§{}, {}): {}", t.name, t.section, t.level, t.rule);
    let mut d = Diagram::new(about);
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

/// `--diagrams DIR`: the diagram of one run as a Mermaid `sequenceDiagram`, with the
/// verdict of a run that did not fail as a last note.
pub fn mermaid(t: &Transcript, run: &Run) -> String {
    let mut d = diagram(t, run);
    let server = d.participants.iter().position(|p| p.server).unwrap_or(0);
    match &run.outcome {
        Outcome::Pass => d.note(None, server, None, "PASS".into(), Tone::Info),
        Outcome::Skip(reason) => d.note(None, server, None, format!("SKIP {reason}"), Tone::Info),
        Outcome::Fail(_) | Outcome::Warn(_) => {}
    }
    seqdiag::mermaid::render(&d)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use crate::check::runner::Failure;
    use crate::check::transcript::parse;
    use crate::seqdiag::What;

    /// A one-connection transcript of §5.7 (for the tests of the report too).
    pub fn transcript() -> Transcript {
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
            outcome: Outcome::Fail(Failure::at_line_4("b s: x")),
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
    }

    /// Mermaid: the rule as the first comment, a keyword as a name kept out of the syntax,
    /// the verdict of a pass as the last note.
    #[test]
    fn the_mermaid_of_a_run() {
        let t = parse("t", "t", "section: 1\nlevel: MUST\nrule: r\nend connect\n").unwrap();
        let run = Run {
            outcome: Outcome::Pass,
            exchange: vec![
                Event::Connected {
                    conn: "end".into(),
                    from: None,
                },
                Event::Sent {
                    conn: "end".into(),
                    bytes: b"chatm a b x;y #1 <b>\r\n".to_vec(),
                },
            ],
            server_log: Vec::new(),
        };
        let m = mermaid(&t, &run);
        let lines: Vec<&str> = m.lines().collect();
        assert_eq!(lines[0], "sequenceDiagram");
        assert_eq!(lines[1], "    %% t (§1, MUST): r");
        assert_eq!(lines[2], "    participant p0 as end");
        assert_eq!(lines[3], "    participant p1 as server");
        assert!(
            m.contains("p0->>p1: chatm a b x#59;y #35;1 #60;b#62;"),
            "{m}"
        );
        assert_eq!(lines.last(), Some(&"    Note over p1: PASS"));
    }
}
