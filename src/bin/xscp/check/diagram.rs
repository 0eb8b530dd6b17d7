//! `--diagrams DIR`: the exchange that actually took place as a Mermaid `sequenceDiagram`,
//! clients and the server as participants, every line an arrow, the transcript's notes
//! (the server's states) as notes.

use std::fmt::Write as _;

use super::runner::{Event, Outcome, Run, shown};
use super::transcript::Transcript;

/// The participant standing for the server.
const SERVER: &str = "server";

/// The diagram of one run.
pub fn mermaid(t: &Transcript, run: &Run) -> String {
    let mut d = String::from("sequenceDiagram\n");
    let _ = writeln!(
        d,
        "    title {}",
        text(&format!("{} (§{}, {})", t.name, t.section, t.level))
    );
    let mut people: Vec<&str> = Vec::new();
    for e in &run.exchange {
        if let Event::Connected { conn, .. } = e {
            if !people.contains(&conn.as_str()) {
                people.push(conn);
            }
        }
    }
    for p in &people {
        let _ = writeln!(d, "    participant {p}");
    }
    let _ = writeln!(d, "    participant {SERVER}");
    for e in &run.exchange {
        let _ = match e {
            Event::Connected { conn, from } => {
                let from = from
                    .as_deref()
                    .map(|f| format!(" from {f}"))
                    .unwrap_or_default();
                writeln!(d, "    {conn}-)+{SERVER}: (connect{})", text(&from))
            }
            Event::Sent { conn, bytes } => {
                writeln!(d, "    {conn}->>{SERVER}: {}", text(&shown(bytes)))
            }
            Event::Received { conn, bytes } => {
                writeln!(d, "    {SERVER}-->>{conn}: {}", text(&shown(bytes)))
            }
            Event::Eof { conn } => writeln!(d, "    {SERVER}--x-{conn}: (close: end of stream)"),
            Event::Broken { conn, error } => {
                writeln!(d, "    {SERVER}--x-{conn}: (broken: {})", text(error))
            }
            Event::ClientClosed { conn } => writeln!(d, "    {conn}-x{SERVER}: (client closes)"),
            Event::Note { conn, text: n } => match conn {
                Some(c) => writeln!(d, "    Note over {c},{SERVER}: {}", text(n)),
                None => writeln!(d, "    Note over {SERVER}: {}", text(n)),
            },
            Event::Shutdown => writeln!(d, "    Note over {SERVER}: SIGTERM"),
            Event::Exited(s) => writeln!(d, "    Note over {SERVER}: server ended: {}", text(s)),
            Event::Failed { conn, text: f } => {
                let over = conn.as_deref().unwrap_or(SERVER);
                writeln!(d, "    Note over {over}: FAIL {}", text(f))
            }
        };
    }
    let _ = match &run.outcome {
        Outcome::Pass => writeln!(d, "    Note over {SERVER}: PASS"),
        Outcome::Skip(reason) => writeln!(d, "    Note over {SERVER}: SKIP {}", text(reason)),
        Outcome::Fail(_) => Ok(()),
    };
    d
}

/// Text safe inside a Mermaid message: `#`, `;`, `<`, `>`, `&` and `%` (which Mermaid
/// reads as markup, statement ends or comments) as its `#code;` entities.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '#' | ';' | '<' | '>' | '&' | '%' | '{' | '}' | ':' => {
                let _ = write!(out, "#{};", c as u32);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(text("a;b#c<d>"), "a#59;b#35;c#60;d#62;");
    }
}
