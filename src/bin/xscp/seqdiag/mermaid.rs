//! A [`Diagram`] as a Mermaid `sequenceDiagram`: for a reader who has a Mermaid renderer
//! (a Markdown viewer, the live editor) and wants text to paste or diff.

use std::fmt::Write as _;

use super::{Arrow, Diagram, Tone, What};

/// The diagram as Mermaid text, ending with a newline.
pub fn render(d: &Diagram) -> String {
    let d = &d.runs_counted();
    let mut out = String::from("sequenceDiagram\n");
    // A comment, not a title: Mermaid versions disagree on titles in sequence diagrams.
    let _ = writeln!(out, "    %% {}", super::printable(&d.title));
    for (i, p) in d.participants.iter().enumerate() {
        let label = match &p.detail {
            Some(detail) => format!("{} ({detail})", p.name),
            None => p.name.clone(),
        };
        let _ = writeln!(out, "    participant {} as {}", id(i), text(&label));
    }
    let mut last_at = None;
    for step in &d.steps {
        // The time as a comment, when it moved on.
        if step.at.is_some() && step.at != last_at {
            let at = step.at.as_deref().unwrap_or_default();
            let _ = writeln!(out, "    %% {}", super::printable(at));
            last_at = step.at.clone();
        }
        match &step.what {
            What::Message {
                from,
                to,
                text: t,
                arrow,
            } => {
                let server = d.participants.get(*from).is_some_and(|p| p.server);
                let shape = match (arrow, server) {
                    (Arrow::Line, false) => "->>",
                    (Arrow::Line, true) => "-->>",
                    (Arrow::Connect, _) => "-)",
                    (Arrow::Close, false) => "-x",
                    (Arrow::Close, true) => "--x",
                };
                let _ = writeln!(out, "    {}{shape}{}: {}", id(*from), id(*to), text(t));
            }
            What::Note {
                over,
                to,
                text: t,
                tone,
            } => {
                let over = match to {
                    Some(to) => format!("{},{}", id(*over), id(*to)),
                    None => id(*over),
                };
                let note = format!(
                    "Note over {over}: {}",
                    text(&format!("{}{t}", prefix(*tone)))
                );
                match tone {
                    // A failure stands out: Mermaid shades a `rect` block behind it.
                    Tone::Fail => {
                        let _ =
                            writeln!(out, "    rect rgb(248, 215, 218)\n        {note}\n    end");
                    }
                    _ => {
                        let _ = writeln!(out, "    {note}");
                    }
                }
            }
        }
    }
    out
}

/// The words a note's tone puts before its text, so the text reads the same in black and
/// white.
fn prefix(tone: Tone) -> &'static str {
    match tone {
        Tone::Fail => "FAIL: ",
        Tone::Info | Tone::State => "",
    }
}

/// A participant's id: by index, so that no name (a nickname such as `end` or `note`) can
/// be a Mermaid keyword; the name is shown through `as`.
fn id(i: usize) -> String {
    format!("p{i}")
}

/// Text safe inside a Mermaid message: the characters Mermaid reads as markup, statement
/// ends or comments as its `#code;` entities, control characters escaped.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in super::printable(s).chars() {
        match c {
            '#' | ';' | '<' | '>' | '&' | '%' | '{' | '}' | ':' => {
                let _ = write!(out, "#{};", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seqdiag::tests::sample;

    /// Every step is one statement of a shape Mermaid reads, in the order of the steps.
    #[test]
    fn every_step_is_one_statement() {
        let m = render(&sample());
        let lines: Vec<&str> = m.lines().collect();
        assert_eq!(lines[0], "sequenceDiagram");
        assert_eq!(lines[1], "    %% sample <&>");
        assert_eq!(lines[2], "    participant p0 as end (127.0.0.1#58;5000)");
        assert_eq!(lines[3], "    participant p1 as server");
        let body: Vec<&str> = lines[4..]
            .iter()
            .map(|l| l.trim_start())
            .filter(|l| !l.starts_with("%%"))
            .collect();
        assert_eq!(
            body,
            [
                "p0-)p1: (connect)",
                "p1-->>p0: +OK xscp/1 ready",
                "p0->>p1: chatm a b x#59;y #35;1 #60;b#62; #38; #37;#37; end",
                "Note over p0,p1: ESTABLISHED -> ABORTED"
                    .replace("->", "-#62;")
                    .as_str(),
                "rect rgb(248, 215, 218)",
                "Note over p0: FAIL#58; expected a, got b",
                "end",
                "Note over p1: renamed a -#62; b",
                "p1--xp0: (close)",
            ]
        );
        assert!(m.contains("    %% 00:00:01.000\n"), "{m}");
    }

    /// Outside its `#code;` entities no message holds Mermaid's markup.
    #[test]
    fn markup_is_escaped() {
        assert_eq!(text("a;b#c<d>"), "a#59;b#35;c#60;d#62;");
        assert_eq!(text("x\ny"), "x\\x0Ay");
    }
}
