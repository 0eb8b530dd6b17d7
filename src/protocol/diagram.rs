//! `xscpd --print-fsm`: the transition table (xscp(7) §3) and the legality table (§4)
//! rendered as Markdown, Graphviz DOT or Mermaid. Both are views of the tables in
//! [`super::fsm`] and [`super::command`]; nothing here is a second copy of them.
//!
//! Each rendering is one document that its tool takes as it is: Markdown holds both tables,
//! while Graphviz and Mermaid get one picture per invocation, the transitions as a state
//! diagram and the legality table as a table.

use super::command::{Legality, OTHER_KEYWORDS, legality_table};
use super::fsm::{COMMAND_STATES, SOURCES, State, TRANSITIONS, Transition};

/// The formats `--print-fsm` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsmFormat {
    /// Both tables in Markdown, as in xscp(7) (the default).
    Markdown,
    /// The transitions as a Graphviz digraph.
    Dot,
    /// The legality table as a Graphviz table (an HTML-like label).
    DotLegality,
    /// The transitions as a Mermaid state diagram.
    Mermaid,
    /// The legality table as a Mermaid flowchart laid out as a grid.
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
    out += "\nsource: ";
    let explained: Vec<String> = SOURCES
        .iter()
        .map(|(word, meaning)| format!("{word} = {meaning}"))
        .collect();
    out += &explained.join("; ");
    out += " (xscp(7), section 3).\n";
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

// ---- the transitions as a picture ----
//
// The table has one CLOSED, but the pictures draw two lives: the listener's (bound once,
// closed once) and a connection's (accepted, then closed), so that neither is mistaken for
// the other. Each life runs from a start marker to an end marker, left to right in the
// order it is lived; each reaches a CLOSED of its own at the end.

/// Whose life a transition is part of in the pictures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    /// The listening socket: bound, then closed.
    Listener,
    /// The listener accepting a connection: where a connection's life starts.
    Accept,
    /// One connection, from its accept to its close.
    Connection,
}

impl Life {
    /// The prefix of the pictures' node names for this life.
    fn prefix(self) -> &'static str {
        match self {
            Life::Listener | Life::Accept => "listener",
            Life::Connection => "connection",
        }
    }
}

fn life(t: &Transition) -> Life {
    life_of(t.from, t.to)
}

/// [`life`] of a transition from `from` to `to`.
fn life_of(from: State, to: State) -> Life {
    match (from, to) {
        (State::Closed, State::Listen) | (State::Listen, State::Closed) => Life::Listener,
        (State::Listen, _) => Life::Accept,
        _ => Life::Connection,
    }
}

/// Whether a transition from `from` to `to` is the listener's own (bound, then closed),
/// drawn apart from a connection's life in every picture of the table, `xscp`'s too.
pub fn is_listeners(from: State, to: State) -> bool {
    life_of(from, to) == Life::Listener
}

/// Is this transition part of the error path (into or out of ABORTED)?
fn is_error(t: &Transition) -> bool {
    t.from == State::Aborted || t.to == State::Aborted
}

/// The node a state is drawn as in `life`: CLOSED as a destination is the life's end, a
/// node apart from the CLOSED it starts from.
fn node(life: Life, state: State, destination: bool) -> String {
    let end = if destination && state == State::Closed {
        "_end"
    } else {
        ""
    };
    format!("{}_{}{end}", life.prefix(), state)
}

/// One edge of a picture: the transitions between one pair of nodes, merged.
struct Edge {
    from: String,
    to: String,
    events: Vec<&'static str>,
    error: bool,
}

/// The edges of `life`, parallel transitions merged into one edge with every event as its
/// label, in the order of the table.
fn edges(of: Life) -> Vec<Edge> {
    let mut out: Vec<Edge> = Vec::new();
    for t in TRANSITIONS.iter().filter(|t| life(t) == of) {
        let (from, to) = (node(of, t.from, false), node(of, t.to, true));
        match out.iter_mut().find(|e| e.from == from && e.to == to) {
            Some(e) => e.events.push(t.event.name()),
            None => out.push(Edge {
                from,
                to,
                events: vec![t.event.name()],
                error: is_error(t),
            }),
        }
    }
    out
}

/// The transition that starts a connection's life (LISTEN -> NEGOTIATING).
fn accept() -> Option<&'static Transition> {
    TRANSITIONS.iter().find(|t| life(t) == Life::Accept)
}

/// The states drawn in `life`, each once, in the order the table first names them.
fn states_of(of: Life) -> Vec<(String, State)> {
    let mut out: Vec<(String, State)> = Vec::new();
    for t in TRANSITIONS.iter().filter(|t| life(t) == of) {
        for (id, state) in [
            (node(of, t.from, false), t.from),
            (node(of, t.to, true), t.to),
        ] {
            if !out.iter().any(|(i, _)| *i == id) {
                out.push((id, state));
            }
        }
    }
    out
}

/// The colours of the error path: ABORTED and every transition into or out of it.
const ERROR_LINE: &str = "#c0392b";
const ERROR_FILL: &str = "#f8d7da";

fn render_dot() -> String {
    let mut out = String::from(
        "digraph transitions {\n  rankdir=LR;\n  newrank=true;\n  nodesep=0.5;\n  \
         node [shape=box, style=\"rounded,filled\", fillcolor=\"#eef3fb\", \
         fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    let marker = |id: &str, end: bool| {
        if end {
            format!(
                "    {id} [shape=doublecircle, label=\"\", width=0.15, style=filled, \
                 fillcolor=black];\n"
            )
        } else {
            format!(
                "    {id} [shape=circle, label=\"\", width=0.2, style=filled, \
                 fillcolor=black];\n"
            )
        }
    };
    // The connection's cluster first: Graphviz then draws the listener's above it.
    // Its title on the right, clear of the arrow from LISTEN that enters on the left.
    for (of, title, just) in [
        (
            Life::Connection,
            "a connection: one per client, from accept to close",
            "r",
        ),
        (Life::Listener, "the listener: one per server", "l"),
    ] {
        let prefix = of.prefix();
        out += &format!(
            "  subgraph cluster_{prefix} {{\n    label=\"{title}\";\n    labeljust={just};\n    \
             fontname=\"Helvetica\";\n    style=rounded;\n    color=\"#999999\";\n"
        );
        out += &marker(&format!("{prefix}_start"), false);
        out += &marker(&format!("{prefix}_end"), true);
        for (id, state) in states_of(of) {
            let style = if state == State::Aborted {
                format!(", color=\"{ERROR_LINE}\", fillcolor=\"{ERROR_FILL}\", penwidth=2")
            } else {
                String::new()
            };
            out += &format!("    {id} [label=\"{state}\"{style}];\n");
        }
        // The life starts at its first state and ends at its CLOSED.
        let first = states_of(of).first().map(|(id, _)| id.clone());
        if let Some(first) = first {
            let label = match (of, accept()) {
                (Life::Connection, Some(t)) => format!(" [label=\"{}\"]", t.event),
                _ => String::new(),
            };
            out += &format!("    {prefix}_start -> {first}{label};\n");
        }
        for e in edges(of) {
            let mut attrs = format!("label=\"{}\"", e.events.join("\\n"));
            if e.from == e.to {
                // Above the node, away from the edges that leave it to the right.
                attrs += ", tailport=n, headport=n";
            }
            if e.error {
                attrs +=
                    &format!(", style=dashed, color=\"{ERROR_LINE}\", fontcolor=\"{ERROR_LINE}\"");
            }
            out += &format!("    {} -> {} [{attrs}];\n", e.from, e.to);
        }
        out += &format!(
            "    {} -> {prefix}_end;\n  }}\n",
            node(of, State::Closed, true)
        );
    }
    // The listener's part in a connection: LISTEN accepts it (the table's LISTEN ->
    // NEGOTIATING row, whose event labels the connection's first step). A dotted arrow
    // straight down from LISTEN to the connection's start, not an edge of either life.
    if let Some(t) = accept() {
        let listen = node(Life::Listener, t.from, false);
        out += &format!(
            "  {listen} -> connection_start [style=dotted, color=\"#777777\", arrowhead=vee];\n  \
             {{ rank=same; {listen}; connection_start; }}\n"
        );
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

/// The transitions as a Mermaid state diagram: the listener's life boxed as a composite
/// state with its own start and end, a connection's life beside it with the diagram's
/// start and end, parallel transitions merged, and ABORTED styled as the error sink.
/// (Mermaid styles states, not transitions: the note on ABORTED says which lead there.
/// It styles no state inside a composite state either, hence the connection's life is
/// the one outside.)
fn render_mermaid() -> String {
    let mut out = String::from("stateDiagram-v2\n    direction LR\n");
    let state_lines = |of: Life, indent: &str| -> String {
        let mut s = String::new();
        for (id, state) in states_of(of) {
            s += &format!("{indent}state \"{state}\" as {id}\n");
        }
        s
    };
    let edge_lines = |of: Life, indent: &str| -> String {
        edges(of)
            .iter()
            .map(|e| format!("{indent}{} --> {}: {}\n", e.from, e.to, e.events.join(", ")))
            .collect()
    };
    let listener = Life::Listener;
    out += "    state \"the listener, one per server\" as listener {\n        direction LR\n";
    out += &state_lines(listener, "        ");
    if let Some((first, _)) = states_of(listener).first() {
        out += &format!("        [*] --> {first}\n");
    }
    out += &edge_lines(listener, "        ");
    out += &format!(
        "        {} --> [*]\n    }}\n",
        node(listener, State::Closed, true)
    );
    let connection = Life::Connection;
    out += "    %% a connection, one per client, from accept to close\n";
    out += &state_lines(connection, "    ");
    if let (Some((first, _)), Some(t)) = (states_of(connection).first(), accept()) {
        out += &format!("    [*] --> {first}: {} (by LISTEN)\n", t.event);
    }
    out += &edge_lines(connection, "    ");
    out += &format!("    {} --> [*]\n", node(connection, State::Closed, true));
    let aborted = node(connection, State::Aborted, false);
    out += &format!(
        "    note right of {aborted}\n        the error sink, entered on a violation or a fault\n    end note\n    \
         classDef errorSink fill:{ERROR_FILL},stroke:{ERROR_LINE},stroke-width:2px\n    \
         class {aborted} errorSink\n"
    );
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

/// The legality table as a grid in a Mermaid flowchart (block diagrams are still in beta):
/// one line a row, its cells chained left to right by invisible links. Chains that run in
/// parallel share their ranks, so the cells of a column line up, and the rows stack in the
/// order given; each verdict is filled with its colour, the header row is bold.
fn render_mermaid_legality() -> String {
    let mut out = String::from("flowchart LR\n");
    let header: Vec<String> = legality_header()
        .enumerate()
        .map(|(c, head)| format!("h{c}[\"{head}\"]"))
        .collect();
    out += &format!("    {}\n", header.join(" ~~~ "));
    let mut classes: Vec<(&str, Vec<String>)> = Vec::new();
    for (r, (synopsis, cells)) in legality_table().enumerate() {
        let mut row = vec![format!("r{r}c0[\"{}\"]", mermaid_text(synopsis))];
        for (c, (text, fill)) in legality_cells(cells).enumerate() {
            let id = format!("r{r}c{}", c + 1);
            row.push(format!("{id}[\"{}\"]", mermaid_text(text)));
            match classes.iter_mut().find(|(f, _)| *f == fill) {
                Some((_, ids)) => ids.push(id),
                None => classes.push((fill, vec![id])),
            }
        }
        out += &format!("    {}\n", row.join(" ~~~ "));
    }
    let heads: Vec<String> = (0..header.len()).map(|c| format!("h{c}")).collect();
    out += &format!(
        "    classDef head font-weight:bold\n    class {} head\n",
        heads.join(",")
    );
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
