//! `xscpd --print-fsm`: the transition table (PROTOCOL.md §3) and the legality table (§4)
//! rendered as Markdown, Graphviz DOT or Mermaid. Both are views of the tables in
//! [`super::fsm`] and [`super::command`]; nothing here is a second copy of them.
//!
//! Each rendering is one document that its tool takes as it is: Markdown holds both tables,
//! while Graphviz and Mermaid get one picture per invocation, the transitions as a state
//! diagram and the legality table as a table.

use super::command::{Legality, OTHER_KEYWORDS, legality_table};
use super::fsm::{COMMAND_STATES, TRANSITIONS};

/// The formats `--print-fsm` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsmFormat {
    /// Both tables in Markdown, as in PROTOCOL.md (the default).
    Markdown,
    /// The transitions as a Graphviz digraph.
    Dot,
    /// The legality table as a Graphviz table (an HTML-like label).
    DotLegality,
    /// The transitions as a Mermaid state diagram.
    Mermaid,
    /// The legality table as a Mermaid block diagram laid out as a grid.
    MermaidLegality,
}

impl FsmFormat {
    /// Every format with its name on the command line, the default first.
    pub const ALL: [(&'static str, FsmFormat); 5] = [
        ("markdown", FsmFormat::Markdown),
        ("dot", FsmFormat::Dot),
        ("dot-legality", FsmFormat::DotLegality),
        ("mermaid", FsmFormat::Mermaid),
        ("mermaid-legality", FsmFormat::MermaidLegality),
    ];

    /// Parses the argument of `--print-fsm` (`md` is short for `markdown`).
    pub fn parse(s: &str) -> Option<FsmFormat> {
        if s == "md" {
            return Some(FsmFormat::Markdown);
        }
        Self::ALL
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, f)| *f)
    }
}

/// Renders `format`: one complete document.
pub fn render(format: FsmFormat) -> String {
    match format {
        FsmFormat::Markdown => render_markdown(),
        FsmFormat::Dot => render_dot(),
        FsmFormat::DotLegality => render_dot_legality(),
        FsmFormat::Mermaid => render_mermaid(),
        FsmFormat::MermaidLegality => render_mermaid_legality(),
    }
}

/// The fill colour of a legality cell in the pictures.
fn colour(cell: Legality) -> &'static str {
    match cell {
        Legality::Legal => "#d4edda",
        Legality::AnsweringPing => "#fff3cd",
        Legality::Violation => "#f8d7da",
        Legality::Syntax => "#e2e3e5",
    }
}

/// The header row of the legality table.
fn legality_header() -> impl Iterator<Item = &'static str> {
    std::iter::once("command").chain(COMMAND_STATES.iter().map(|s| s.name()))
}

/// The cells of one row of the legality table: the text and the fill colour of each state's.
fn legality_cells(
    cells: [Legality; COMMAND_STATES.len()],
) -> impl Iterator<Item = (&'static str, &'static str)> {
    COMMAND_STATES
        .iter()
        .zip(cells)
        .map(|(state, cell)| (cell.describe(*state), colour(cell)))
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
    out + "}\n"
}

/// Escapes text for a Graphviz HTML-like label.
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn render_dot_legality() -> String {
    let mut out = String::from(
        "digraph legality {\n  node [shape=none, margin=0];\n  legality [label=<\n    \
         <TABLE BORDER=\"0\" CELLBORDER=\"1\" CELLSPACING=\"0\" CELLPADDING=\"6\">\n      <TR>",
    );
    for head in legality_header() {
        out += &format!("<TD><B>{head}</B></TD>");
    }
    out += "</TR>\n";
    for (synopsis, cells) in legality_table() {
        // A synopsis in a fixed-width face; the catch-all row is prose.
        let (open, close) = match synopsis {
            OTHER_KEYWORDS => ("<I>", "</I>"),
            _ => ("<FONT FACE=\"monospace\">", "</FONT>"),
        };
        out += &format!(
            "      <TR><TD ALIGN=\"LEFT\">{open}{}{close}</TD>",
            html(synopsis)
        );
        for (text, fill) in legality_cells(cells) {
            out += &format!("<TD BGCOLOR=\"{fill}\">{}</TD>", html(text));
        }
        out += "</TR>\n";
    }
    out + "    </TABLE>\n  >];\n}\n"
}

fn render_mermaid() -> String {
    let mut out = String::from("stateDiagram-v2\n    [*] --> CLOSED\n");
    for t in TRANSITIONS {
        out += &format!("    {} --> {}: {}\n", t.from, t.to, t.event);
    }
    out
}

/// Escapes text for a quoted Mermaid label: Mermaid's `#name;` entity codes for the
/// characters its parser or its HTML labels would take as syntax.
fn mermaid_text(text: &str) -> String {
    text.replace('#', "#35;")
        .replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
        .replace('|', "#124;")
}

/// The legality table as a grid: a block diagram of one block a cell, one column a
/// table column, each verdict filled with its colour.
fn render_mermaid_legality() -> String {
    let columns = 1 + COMMAND_STATES.len();
    let mut out = format!("block-beta\n    columns {columns}\n   ");
    for (i, head) in legality_header().enumerate() {
        out += &format!(" h{i}[\"{head}\"]");
    }
    out += "\n";
    let mut classes: Vec<(&str, Vec<String>)> = Vec::new();
    for (r, (synopsis, cells)) in legality_table().enumerate() {
        out += &format!("    r{r}c0[\"{}\"]", mermaid_text(synopsis));
        for (c, (text, fill)) in legality_cells(cells).enumerate() {
            let id = format!("r{r}c{}", c + 1);
            out += &format!(" {id}[\"{}\"]", mermaid_text(text));
            match classes.iter_mut().find(|(f, _)| *f == fill) {
                Some((_, ids)) => ids.push(id),
                None => classes.push((fill, vec![id])),
            }
        }
        out += "\n";
    }
    for (i, (fill, ids)) in classes.iter().enumerate() {
        out += &format!(
            "    classDef v{i} fill:{fill}\n    class {} v{i}\n",
            ids.join(",")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_to_its_format() {
        for (name, format) in FsmFormat::ALL {
            assert_eq!(FsmFormat::parse(name), Some(format));
        }
        assert_eq!(FsmFormat::parse("md"), Some(FsmFormat::Markdown));
        assert_eq!(FsmFormat::parse("svg"), None);
    }

    /// The transition renderings hold every transition; the legality renderings every row,
    /// every cell, and nothing of the other table.
    #[test]
    fn every_format_prints_every_row_of_its_table() {
        for (name, format) in FsmFormat::ALL {
            let text = render(format);
            let transitions = !name.ends_with("-legality");
            let legality = format == FsmFormat::Markdown || !transitions;
            for t in TRANSITIONS {
                assert_eq!(text.contains(t.event.name()), transitions, "{name}: {t:?}");
            }
            for (synopsis, cells) in legality_table() {
                let shown = match format {
                    FsmFormat::Markdown => synopsis.replace('|', "\\|"),
                    FsmFormat::DotLegality => html(synopsis),
                    _ => mermaid_text(synopsis),
                };
                assert_eq!(text.contains(&shown), legality, "{name}: {synopsis}");
                for (state, cell) in COMMAND_STATES.iter().zip(cells) {
                    let verdict = cell.describe(*state);
                    assert!(!legality || text.contains(verdict), "{name}: {verdict}");
                }
            }
        }
    }

    #[test]
    fn labels_escape_what_their_tool_would_read_as_markup() {
        assert_eq!(html("a <b> & \"c\""), "a &lt;b&gt; &amp; &quot;c&quot;");
        assert_eq!(
            mermaid_text("on|off <t> #1 \"q\""),
            "on#124;off #lt;t#gt; #35;1 #quot;q#quot;"
        );
    }
}
