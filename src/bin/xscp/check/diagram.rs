//! `--diagrams DIR`: the exchange that actually took place as a Mermaid `sequenceDiagram`,
//! clients and the server as participants, every line an arrow, the transcript's notes
//! (the server's states) as notes.

use std::fmt::Write as _;

use super::matching::shown;
use super::runner::{Event, Outcome, Run};
use super::transcript::Transcript;

/// The participant standing for the server.
const SERVER: &str = "server";

/// A connection's participant id: prefixed, so that no name of the transcript can be a
/// Mermaid keyword (`end`, `loop`, `note`); shown under its own name.
fn id(conn: &str) -> String {
    format!("c_{conn}")
}

/// The diagram of one run.
pub fn mermaid(t: &Transcript, run: &Run) -> String {
    let mut d = String::from("sequenceDiagram\n");
    // A comment, not a title: Mermaid versions disagree on titles in sequence diagrams.
    let about = format!("{} (§{}, {}): {}", t.name, t.section, t.level, t.rule);
    let _ = writeln!(d, "    %% {}", about.replace(['\n', '\r'], " "));
    let mut people: Vec<&str> = Vec::new();
    for e in &run.exchange {
        if let Event::Connected { conn, .. } = e {
            if !people.contains(&conn.as_str()) {
                people.push(conn);
            }
        }
    }
    for p in &people {
        let _ = writeln!(d, "    participant {} as {p}", id(p));
    }
    let _ = writeln!(d, "    participant {SERVER}");
    for e in &run.exchange {
        let _ = match e {
            Event::Connected { conn, from } => {
                let from = from
                    .as_deref()
                    .map(|f| format!(" from {f}"))
                    .unwrap_or_default();
                writeln!(d, "    {}-){SERVER}: (connect{})", id(conn), text(&from))
            }
            Event::Sent { conn, bytes } => {
                writeln!(d, "    {}->>{SERVER}: {}", id(conn), text(&shown(bytes)))
            }
            Event::Received { conn, bytes } => {
                writeln!(d, "    {SERVER}-->>{}: {}", id(conn), text(&shown(bytes)))
            }
            Event::Eof { conn } => {
                writeln!(d, "    {SERVER}--x{}: (close: end of stream)", id(conn))
            }
            Event::Broken { conn, error } => {
                writeln!(d, "    {SERVER}--x{}: (broken: {})", id(conn), text(error))
            }
            Event::ClientClosed { conn } => {
                writeln!(d, "    {}-x{SERVER}: (client closes)", id(conn))
            }
            Event::Note { conn, text: n } => match conn {
                Some(c) => writeln!(d, "    Note over {},{SERVER}: {}", id(c), text(n)),
                None => writeln!(d, "    Note over {SERVER}: {}", text(n)),
            },
            Event::Shutdown => writeln!(d, "    Note over {SERVER}: SIGTERM"),
            Event::Exited(s) => writeln!(d, "    Note over {SERVER}: server ended: {}", text(s)),
            Event::Failed { conn, text: f } => {
                let over = conn.as_deref().map_or(SERVER.to_string(), id);
                writeln!(d, "    Note over {over}: FAIL {}", text(f))
            }
        };
    }
    let _ = match &run.outcome {
        Outcome::Pass => writeln!(d, "    Note over {SERVER}: PASS"),
        Outcome::Skip(reason) => writeln!(d, "    Note over {SERVER}: SKIP {}", text(reason)),
        Outcome::Fail(_) | Outcome::Warn(_) => Ok(()),
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

    use crate::check::runner::Failure;
    use crate::check::transcript::parse;

    /// Every kind of event becomes one statement of a shape Mermaid reads.
    #[test]
    fn every_event_is_a_statement() {
        let t = parse("t", "t", "section: 1\nlevel: MUST\nrule: r\nend connect\n").unwrap();
        let conn = || "end".to_string();
        let exchange = vec![
            Event::Connected {
                conn: conn(),
                from: Some("127.0.0.2".into()),
            },
            Event::Sent {
                conn: conn(),
                bytes: b"chatm a b x;y #1 <b>\r\n".to_vec(),
            },
            Event::Received {
                conn: conn(),
                bytes: b"+OK\r\n".to_vec(),
            },
            Event::Note {
                conn: Some(conn()),
                text: "ESTABLISHED".into(),
            },
            Event::Note {
                conn: None,
                text: "LISTEN -> CLOSED".into(),
            },
            Event::ClientClosed { conn: conn() },
            Event::Eof { conn: conn() },
            Event::Broken {
                conn: conn(),
                error: "reset".into(),
            },
            Event::Shutdown,
            Event::Exited("exit status 0".into()),
            Event::Failed {
                conn: Some(conn()),
                text: "expected a, got b".into(),
            },
        ];
        let run = Run {
            outcome: Outcome::Fail(Failure {
                line: 4,
                step: "s".into(),
                expected: "a".into(),
                actual: "b".into(),
            }),
            exchange,
            server_log: Vec::new(),
        };
        let d = mermaid(&t, &run);
        let lines: Vec<&str> = d.lines().collect();
        assert_eq!(lines[0], "sequenceDiagram");
        assert!(lines[1].starts_with("    %% t (§1, MUST): r"));
        assert_eq!(
            lines[2], "    participant c_end as end",
            "a keyword as a name"
        );
        assert_eq!(lines[3], "    participant server");
        let shapes = [
            "c_end-)server: ",
            "c_end->>server: ",
            "server-->>c_end: ",
            "Note over c_end,server: ",
            "Note over server: ",
            "c_end-xserver: ",
            "server--xc_end: ",
            "Note over c_end: ",
        ];
        for l in &lines[4..] {
            let l = l.trim_start();
            assert!(shapes.iter().any(|s| l.starts_with(s)), "{l}");
            // Outside its `#code;` entities a message holds none of Mermaid's markup.
            let (_, message) = l.split_once(": ").unwrap();
            let mut bare = String::new();
            let mut rest = message;
            while let Some(i) = rest.find('#') {
                bare.push_str(&rest[..i]);
                let after = &rest[i + 1..];
                let digits = after.bytes().take_while(u8::is_ascii_digit).count();
                assert!(digits > 0 && after[digits..].starts_with(';'), "{l}");
                rest = &after[digits + 1..];
            }
            bare.push_str(rest);
            assert!(!bare.contains([';', '<', '>', '{', '}']), "{l}");
        }
        assert!(d.contains("chatm a b x#59;y #35;1 #60;b#62;"), "{d}");
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(text("a;b#c<d>"), "a#59;b#35;c#60;d#62;");
    }
}
