//! A sequence diagram as data, and its two drawings: Mermaid text ([`mermaid`]) and an SVG
//! picture that needs no renderer at all ([`svg`]).
//!
//! The model is neutral: `xscp check` builds one from the exchange a transcript played,
//! `xscp diagram` from an `xscpd -vv` audit log. It knows participants (client connections
//! and the server), the steps between them in time order (lines, connects, closes) and
//! notes (the server's transitions, a verdict, the place a check failed). It does no I/O.

pub mod mermaid;
pub mod svg;

/// The shortest run of identical arrows in a row that is drawn as one counted arrow
/// ([`Diagram::runs_counted`]); a shorter one is drawn arrow by arrow.
pub const RUN: usize = 4;

/// One sequence diagram: who takes part and what happened between them, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagram {
    /// What the diagram shows, one line (a transcript's name, `conn 7`, ...).
    pub title: String,
    /// The lifelines, left to right.
    pub participants: Vec<Participant>,
    /// What happened, top to bottom.
    pub steps: Vec<Step>,
}

/// A lifeline: a client connection or the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Participant {
    /// The name on its box (`alice`, `conn 7`, `server`).
    pub name: String,
    /// A second line under the name (a peer address, the nicknames it went by).
    pub detail: Option<String>,
    /// Whether this is the server: its lines are drawn dashed, and a close ends the
    /// other side's lifeline, never the server's.
    pub server: bool,
}

impl Participant {
    /// A client connection's lifeline.
    pub fn client(name: impl Into<String>, detail: Option<String>) -> Participant {
        Participant {
            name: name.into(),
            detail,
            server: false,
        }
    }

    /// The server's lifeline.
    pub fn server(name: impl Into<String>) -> Participant {
        Participant {
            name: name.into(),
            detail: None,
            server: true,
        }
    }
}

/// One row of the diagram, with the time it happened when that is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// A time label for the margin (`00:04:13.140`), if the source has one.
    pub at: Option<String>,
    /// What happened.
    pub what: What,
}

/// What a step shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum What {
    /// An arrow from one participant to another.
    Message {
        /// Index of the sender in [`Diagram::participants`].
        from: usize,
        /// Index of the receiver.
        to: usize,
        /// The label: a protocol line, escaped for display by whoever built the step.
        text: String,
        /// Which kind of arrow.
        arrow: Arrow,
    },
    /// A note over one participant, or stretched over two.
    Note {
        /// Index of the (first) participant it is over.
        over: usize,
        /// The second participant, for a note that spans from `over` to it.
        to: Option<usize>,
        /// The note's text.
        text: String,
        /// How it is drawn.
        tone: Tone,
    },
}

/// The kinds of arrow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrow {
    /// A protocol line (solid from a client, dashed from the server).
    Line,
    /// A TCP connection opened.
    Connect,
    /// A connection closed (end of stream, reset, or closed by the client): the client
    /// participant's lifeline ends here.
    Close,
}

/// How a note is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Plain information (a rename, a hold).
    Info,
    /// A state transition of the server's state machine (xscp(7) §3).
    State,
    /// Something went wrong here: a check's failure, a protocol violation.
    Fail,
}

impl Diagram {
    /// An empty diagram titled `title`.
    pub fn new(title: impl Into<String>) -> Diagram {
        Diagram {
            title: title.into(),
            ..Diagram::default()
        }
    }

    /// Adds a lifeline and returns its index.
    pub fn participant(&mut self, p: Participant) -> usize {
        self.participants.push(p);
        self.participants.len() - 1
    }

    /// Adds an arrow.
    pub fn message(
        &mut self,
        at: Option<String>,
        from: usize,
        to: usize,
        text: String,
        arrow: Arrow,
    ) {
        self.steps.push(Step {
            at,
            what: What::Message {
                from,
                to,
                text,
                arrow,
            },
        });
    }

    /// Adds a note over `over` (and up to `to`).
    pub fn note(
        &mut self,
        at: Option<String>,
        over: usize,
        to: Option<usize>,
        text: String,
        tone: Tone,
    ) {
        self.steps.push(Step {
            at,
            what: What::Note {
                over,
                to,
                text,
                tone,
            },
        });
    }

    /// The diagram with each run of [`RUN`] or more identical arrows in a row (the same
    /// line between the same two participants, as a flood or a pipelined batch makes it)
    /// as one arrow whose label counts them first: `(×3000) +OK pong x`. The run keeps its
    /// first step's time. Both drawings draw this: one arrow a row made a flood's picture
    /// hundreds of thousands of pixels tall, and no reader counts 3000 equal arrows.
    pub fn runs_counted(&self) -> Diagram {
        let mut steps: Vec<Step> = Vec::with_capacity(self.steps.len());
        let mut rest = self.steps.as_slice();
        while let Some((first, after)) = rest.split_first() {
            let same = match first.what {
                What::Message { .. } => after.iter().take_while(|s| s.what == first.what).count(),
                What::Note { .. } => 0,
            };
            let mut step = first.clone();
            let run = same + 1;
            if run >= RUN {
                if let What::Message { text, .. } = &mut step.what {
                    *text = format!("(×{run}) {text}");
                }
                rest = &after[same..];
            } else {
                rest = after;
            }
            steps.push(step);
        }
        Diagram {
            title: self.title.clone(),
            participants: self.participants.clone(),
            steps,
        }
    }

    /// Whether any step is marked as a failure.
    pub fn failed(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(
                s.what,
                What::Note {
                    tone: Tone::Fail,
                    ..
                }
            )
        })
    }
}

/// Text with every control character replaced by `\xNN` (the project's one escape,
/// [`xscp::text::escape`]): whatever a line held, a drawing shows it on one line and
/// neither Mermaid nor XML can be handed a raw control byte.
pub fn printable(text: &str) -> String {
    xscp::text::escape(text.as_bytes(), xscp::text::Keep::Text)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small diagram with every kind of step: a client, the server, a connect, lines
    /// both ways, a transition, a failure and a close.
    pub fn sample() -> Diagram {
        let mut d = Diagram::new("sample <&>");
        let c = d.participant(Participant::client("end", Some("127.0.0.1:5000".into())));
        let s = d.participant(Participant::server("server"));
        d.message(None, c, s, "(connect)".into(), Arrow::Connect);
        d.message(
            Some("00:00:01.000".into()),
            s,
            c,
            "+OK xscp/1 ready".into(),
            Arrow::Line,
        );
        d.message(
            None,
            c,
            s,
            "chatm a b x;y #1 <b> & %% end".into(),
            Arrow::Line,
        );
        d.note(
            None,
            c,
            Some(s),
            "ESTABLISHED -> ABORTED".into(),
            Tone::State,
        );
        d.note(None, c, None, "expected a, got b".into(), Tone::Fail);
        d.note(None, s, None, "renamed a -> b".into(), Tone::Info);
        d.message(None, s, c, "(close)".into(), Arrow::Close);
        d
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(printable("a\x07b\u{7f}c\td"), "a\\x07b\\x7Fc\\x09d");
        assert_eq!(printable("héllo"), "héllo");
    }

    /// A run of one line is one arrow that counts it; a short run, a note or another
    /// line in between, or the same line between other participants, is not one run.
    #[test]
    fn runs_of_one_line_are_counted() {
        let mut d = Diagram::new("flood");
        let c = d.participant(Participant::client("a", None));
        let s = d.participant(Participant::server("server"));
        for _ in 0..3000 {
            d.message(Some("t".into()), s, c, "+OK pong x".into(), Arrow::Line);
        }
        d.message(None, c, s, "+OK pong x".into(), Arrow::Line);
        for _ in 0..RUN - 1 {
            d.message(None, s, c, "+OK pong x".into(), Arrow::Line);
        }
        d.note(None, c, None, "n".into(), Tone::Info);
        d.note(None, c, None, "n".into(), Tone::Info);
        let r = d.runs_counted();
        let labels: Vec<&str> = r
            .steps
            .iter()
            .map(|s| match &s.what {
                What::Message { text, .. } | What::Note { text, .. } => text.as_str(),
            })
            .collect();
        let mut want = vec!["(×3000) +OK pong x"];
        want.extend(["+OK pong x"; RUN]);
        want.extend(["n", "n"]);
        assert_eq!(labels, want);
        assert_eq!(r.steps[0].at.as_deref(), Some("t"));
        assert_eq!(sample().runs_counted(), sample());
    }

    #[test]
    fn a_failure_note_marks_the_diagram_failed() {
        assert!(sample().failed());
        assert!(!Diagram::new("x").failed());
    }
}
