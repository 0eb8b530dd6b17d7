//! `xscpd --print-fsm`: the transition table (PROTOCOL.md §3) and the legality table (§4)
//! rendered as Markdown, Graphviz DOT or Mermaid. Both are views of the tables in
//! [`super::fsm`] and [`super::command`]; nothing here is a second copy of them.

use super::command::legality_table;
use super::fsm::{COMMAND_STATES, TRANSITIONS};

/// The formats `--print-fsm` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsmFormat {
    /// Two Markdown tables, as in PROTOCOL.md (the default).
    Markdown,
    /// Graphviz DOT: one digraph per table.
    Dot,
    /// Mermaid: a state diagram and a flowchart.
    Mermaid,
}

impl FsmFormat {
    /// Parses the argument of `--print-fsm`.
    pub fn parse(s: &str) -> Option<FsmFormat> {
        match s {
            "markdown" | "md" => Some(FsmFormat::Markdown),
            "dot" => Some(FsmFormat::Dot),
            "mermaid" => Some(FsmFormat::Mermaid),
            _ => None,
        }
    }
}

/// Renders both tables in `format`.
pub fn render(format: FsmFormat) -> String {
    match format {
        FsmFormat::Markdown => render_markdown(),
        FsmFormat::Dot => render_dot(),
        FsmFormat::Mermaid => render_mermaid(),
    }
}

fn render_markdown() -> String {
    let mut out =
        String::from("## Transitions\n\n| from | to | event | source |\n|---|---|---|---|\n");
    for t in TRANSITIONS {
        out += &format!("| {} | {} | {} | {} |\n", t.from, t.to, t.event, t.source);
    }
    out += "\n## Legality\n\n| command | NEGOTIATING | ESTABLISHED |\n|---|---|---|\n";
    for (synopsis, cells) in legality_table() {
        out += &format!("| `{}` |", synopsis.replace('|', "\\|"));
        for (state, cell) in COMMAND_STATES.iter().zip(cells) {
            out += &format!(" {} |", cell.describe(*state));
        }
        out += "\n";
    }
    out
}

fn render_dot() -> String {
    let mut out = String::from("digraph transitions {\n  rankdir=LR;\n");
    for t in TRANSITIONS {
        out += &format!("  {} -> {} [label=\"{}\"];\n", t.from, t.to, t.event);
    }
    out += "}\n\ndigraph legality {\n  rankdir=LR;\n";
    for (synopsis, cells) in legality_table() {
        for (state, cell) in COMMAND_STATES.iter().zip(cells) {
            out += &format!(
                "  \"{synopsis}\" -> {state} [label=\"{}\"];\n",
                cell.describe(*state)
            );
        }
    }
    out + "}\n"
}

fn render_mermaid() -> String {
    let mut out = String::from("stateDiagram-v2\n    [*] --> CLOSED\n");
    for t in TRANSITIONS {
        out += &format!("    {} --> {}: {}\n", t.from, t.to, t.event);
    }
    out += "\nflowchart LR\n";
    for (i, (synopsis, cells)) in legality_table().enumerate() {
        out += &format!("    c{i}[\"{}\"]\n", synopsis.replace('|', "#124;"));
        for (state, cell) in COMMAND_STATES.iter().zip(cells) {
            out += &format!("    c{i} -- \"{}\" --> {state}\n", cell.describe(*state));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_prints_every_row() {
        for format in [FsmFormat::Markdown, FsmFormat::Dot, FsmFormat::Mermaid] {
            let text = render(format);
            for t in TRANSITIONS {
                assert!(text.contains(t.event.name()));
            }
            assert!(text.contains("chatm <sender> <recipient> <text>"));
        }
    }
}
