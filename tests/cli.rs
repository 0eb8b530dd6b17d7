//! The command line of `xscpd`: bad options and values (exit 2 with the usage), a listen
//! address that cannot be bound (one clear line, non-zero exit), and `--print-fsm`, which
//! prints the tables of PROTOCOL.md §3 and §4 in Markdown, Graphviz and Mermaid.

use crate::harness::{SPEC_TRANSITIONS, run_xscpd};

use std::net::TcpListener;

/// PROTOCOL.md §4, row for row: the command and what each state's cell says, reduced to
/// its verdict (`yes`, `violation` or `SYNTAX`).
const SPEC_LEGALITY: [(&str, &str, &str); 11] = [
    ("uname <name>", "yes", "violation"),
    ("ping [token]", "yes", "yes"),
    ("capa", "yes", "yes"),
    ("cquit", "yes", "yes"),
    ("cname <new>", "violation", "yes"),
    ("chatm <sender> <recipient> <text>", "violation", "yes"),
    ("chatr <sender> <recipient>", "violation", "yes"),
    ("users", "violation", "yes"),
    ("notif on|off", "violation", "yes"),
    ("+OK pong <token>", "violation", "yes"),
    ("any other keyword", "SYNTAX", "SYNTAX"),
];

/// The verdict a printed cell gives: the one of `yes`, `violation`, `SYNTAX` it names.
fn verdict(cell: &str) -> &'static str {
    let c = cell.to_ascii_lowercase();
    let found: Vec<&str> = [
        ("yes", "yes"),
        ("violation", "violation"),
        ("syntax", "SYNTAX"),
    ]
    .into_iter()
    .filter(|(w, _)| c.contains(w))
    .map(|(_, v)| v)
    .collect();
    assert_eq!(found.len(), 1, "cell {cell:?} names no single verdict");
    found[0]
}

/// Every row of §4 is a line of `table` that `cells` splits into the command and the
/// verdicts of both states.
fn assert_legality_rows(table: &str, cells: impl Fn(&str) -> Vec<String>) {
    for (command, negotiating, established) in SPEC_LEGALITY {
        let row = table
            .lines()
            .map(&cells)
            .find(|r| r.first().is_some_and(|c| c == command))
            .unwrap_or_else(|| panic!("row {command:?} missing:\n{table}"));
        assert_eq!(row.len(), 3, "{row:?}");
        assert_eq!(verdict(&row[1]), negotiating, "{command} in NEGOTIATING");
        assert_eq!(verdict(&row[2]), established, "{command} in ESTABLISHED");
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// A bad command line: exit status 2, nothing on stdout, and on stderr one line naming
/// `names` followed by the usage.
fn assert_refused(args: &[&str], names: &str) {
    let out = run_xscpd(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    let err = text(&out.stderr);
    let mut lines = err.lines();
    let first = lines.next().unwrap_or_default();
    assert!(
        first.contains(names),
        "{args:?}: first line {first:?} should name {names:?}"
    );
    let second = lines.next().unwrap_or_default();
    assert!(
        second.starts_with("usage: xscpd"),
        "{args:?}: the usage should follow the one line: {err:?}"
    );
}

/// Splits a Markdown table row into its cells (GitHub Flavored Markdown: `|` separates
/// cells everywhere, also inside code spans, unless escaped as `\|`).
fn markdown_cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = vec![String::new()];
    let mut escaped = false;
    for ch in inner.chars() {
        match ch {
            '|' if !escaped => cells.push(String::new()),
            _ => cells.last_mut().unwrap().push(ch),
        }
        escaped = ch == '\\';
    }
    cells.iter().map(|c| c.trim().to_string()).collect()
}

// ---- bad command lines ----

/// Command line: an unknown option prints one line naming it plus the usage, exit 2.
#[test]
fn unknown_option_is_refused_with_usage() {
    assert_refused(&["--bogus"], "--bogus");
    assert_refused(&["-x"], "-x");
    assert_refused(&["stray"], "stray");
}

/// Command line: a bad value prints one line naming the option plus the usage, exit 2.
#[test]
fn bad_values_are_refused_with_usage() {
    assert_refused(&["--hold", "soon"], "--hold");
    assert_refused(&["--max-clients", "many"], "--max-clients");
    assert_refused(&["--max-clients", "0"], "--max-clients");
    assert_refused(&["--max-retries", "0"], "--max-retries");
    assert_refused(&["--max-per-ip", "-1"], "--max-per-ip");
    assert_refused(&["--ping-interval", "1.5s"], "--ping-interval");
    assert_refused(&["--ping-timeout", "0"], "--ping-timeout");
    assert_refused(&["--negotiate-timeout", "10x"], "--negotiate-timeout");
    assert_refused(&["--sendq", "1G"], "--sendq");
    assert_refused(&["--rate", "fast"], "--rate");
    assert_refused(&["--print-fsm", "svg"], "--print-fsm");
    assert_refused(&["--hold=later"], "--hold");
}

/// Command line: an option missing its value is refused the same way.
#[test]
fn missing_values_are_refused_with_usage() {
    assert_refused(&["--hold"], "--hold");
    assert_refused(&["-l"], "-l");
    assert_refused(&["--ping-interval"], "--ping-interval");
}

/// Command line: a port already in use gives one clear line (naming the address and the
/// reason) and a non-zero exit.
#[test]
fn port_in_use_gives_one_clear_line() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().unwrap().to_string();
    let out = run_xscpd(&["-l", &addr]);
    assert!(!out.status.success(), "{out:?}");
    assert_ne!(out.status.code(), Some(2), "not a usage error: {out:?}");
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err:?}");
    assert!(lines[0].contains(&addr), "{err:?}");
    assert!(lines[0].to_ascii_lowercase().contains("in use"), "{err:?}");
}

/// Command line: an address that cannot be resolved gives one line and a non-zero exit.
#[test]
fn unusable_address_gives_one_line() {
    let out = run_xscpd(&["-l", "not an address"]);
    assert!(!out.status.success(), "{out:?}");
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains("not an address"), "{err:?}");
}

/// Command line: `--help` prints the usage and every option, exit 0; `--version` prints
/// the version, exit 0.
#[test]
fn help_and_version() {
    let out = run_xscpd(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(help.starts_with("usage: xscpd"), "{help}");
    for opt in [
        "--listen",
        "--max-clients",
        "--max-per-ip",
        "--max-retries",
        "--negotiate-timeout",
        "--ping-interval",
        "--ping-timeout",
        "--hold",
        "--sendq",
        "--rate",
        "--print-fsm",
    ] {
        assert!(help.contains(opt), "{opt} missing from --help");
    }
    // §7: the limits have documented defaults (an entry may wrap onto more lines).
    let lines: Vec<&str> = help.lines().collect();
    for opt in [
        "--max-clients",
        "--max-per-ip",
        "--rate",
        "--sendq",
        "--max-retries",
    ] {
        let start = lines
            .iter()
            .position(|l| l.trim_start().starts_with(opt))
            .unwrap_or_else(|| panic!("{opt} not described"));
        let entry: Vec<&str> = std::iter::once(lines[start])
            .chain(
                lines[start + 1..]
                    .iter()
                    .copied()
                    .take_while(|l| l.starts_with("   ") && !l.trim_start().starts_with('-')),
            )
            .collect();
        let entry = entry.join(" ");
        assert!(
            entry.contains("default"),
            "{opt} has no documented default: {entry}"
        );
    }
    let out = run_xscpd(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("xscpd "), "{out:?}");
}

// ---- --print-fsm ----

/// §3, §4: `--print-fsm` (Markdown, the default) exits 0 and prints every transition row
/// and every legality row, each with the verdicts of §4.
#[test]
fn print_fsm_markdown_prints_every_row() {
    for args in [&["--print-fsm"][..], &["--print-fsm", "markdown"]] {
        let out = run_xscpd(args);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let md = text(&out.stdout);
        let rows: Vec<Vec<String>> = md
            .lines()
            .filter(|l| l.starts_with('|'))
            .map(markdown_cells)
            .collect();
        for (from, to, event) in SPEC_TRANSITIONS {
            assert!(
                rows.iter()
                    .any(|r| r.len() >= 3 && r[..3] == [from, to, event]),
                "row {from} {to} {event} missing:\n{md}"
            );
        }
        for (command, negotiating, established) in SPEC_LEGALITY {
            // Found by its first cell, whether or not a `|` in it is escaped (the
            // well-formedness of the table is checked on its own below).
            let code = format!("`{}`", command.replace('|', "\\|"));
            let line = md
                .lines()
                .find(|l| {
                    let l = l
                        .replace(&code, "`x`")
                        .replace(&format!("`{command}`"), "`x`");
                    l.starts_with("| `x` |")
                })
                .unwrap_or_else(|| panic!("legality row {command:?} missing:\n{md}"));
            let cells = markdown_cells(line);
            let [.., neg, est] = &cells[..] else {
                panic!("{line}")
            };
            assert_eq!(verdict(neg), negotiating, "{command} in NEGOTIATING");
            assert_eq!(verdict(est), established, "{command} in ESTABLISHED");
        }
    }
}

/// `--print-fsm` Markdown is well-formed: every row of a table has as many cells as its
/// header (a `|` inside a cell must be escaped, GitHub Flavored Markdown).
#[test]
fn print_fsm_markdown_tables_are_well_formed() {
    let md = text(&run_xscpd(&["--print-fsm"]).stdout);
    for table in md.split("\n\n").filter(|b| b.trim_start().starts_with('|')) {
        let mut rows = table.lines().map(markdown_cells);
        let width = rows.next().expect("header").len();
        for (i, row) in rows.enumerate() {
            assert_eq!(row.len(), width, "row {} of a table: {row:?}", i + 2);
        }
    }
}

/// §3, §4: `--print-fsm dot` exits 0 and prints every transition as an edge;
/// `--print-fsm dot-legality` prints every command with both states' verdicts, one table
/// row a command.
#[test]
fn print_fsm_dot_prints_every_row() {
    let out = run_xscpd(&["--print-fsm", "dot"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let dot = text(&out.stdout);
    assert!(dot.trim_start().starts_with("digraph"), "{dot}");
    assert_eq!(dot.matches('{').count(), dot.matches('}').count(), "{dot}");
    // Edges as (from state, to state, label). A node is named for its life and its state
    // (`connection_NEGOTIATING`, `listener_CLOSED_end`); a connection's start marker stands
    // for the state whose dotted arrow leads to it (LISTEN accepts the connection).
    let state = |node: &str| -> String {
        let node = node.trim().trim_end_matches("_end");
        let state = node.split_once('_').map_or(node, |(_, s)| s);
        match state {
            "start" => dot
                .lines()
                .filter_map(|l| l.split_once(" -> "))
                .find(|(_, to)| to.trim_start().starts_with(node.trim()))
                .map_or(String::new(), |(from, _)| from.trim().to_string()),
            s => s.to_string(),
        }
    };
    let edges: Vec<(String, String, String)> = dot
        .lines()
        .filter_map(|l| l.split_once(" -> "))
        .filter_map(|(from, rest)| {
            let (to, attrs) = rest.split_once(" [label=\"")?;
            let label = attrs.split_once('"')?.0.replace("\\n", " ");
            Some((state(from), state(to), label))
        })
        .map(|(f, t, l)| (state(&f), t, l))
        .collect();
    for (from, to, event) in SPEC_TRANSITIONS {
        assert!(
            edges
                .iter()
                .any(|(f, t, label)| f == from && t == to && label.split(' ').any(|e| e == event)),
            "{from} -> {to} on {event} missing: {edges:?}\n{dot}"
        );
    }
    let out = run_xscpd(&["--print-fsm", "dot-legality"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let dot = text(&out.stdout);
    assert!(dot.trim_start().starts_with("digraph"), "{dot}");
    // The text of each cell of a row: tags dropped, HTML escapes undone.
    let cells = |row: &str| -> Vec<String> {
        row.split("<TD")
            .skip(1)
            .map(|cell| {
                let mut text = String::new();
                let mut in_tag = true;
                for c in cell.chars() {
                    match c {
                        '<' => in_tag = true,
                        '>' => in_tag = false,
                        c if !in_tag => text.push(c),
                        _ => {}
                    }
                }
                text.replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&")
            })
            .collect()
    };
    assert_legality_rows(&dot, cells);
}

/// §3, §4: `--print-fsm mermaid` exits 0 and prints every transition;
/// `--print-fsm mermaid-legality` prints every command with both states' verdicts, one
/// line of nodes a row.
#[test]
fn print_fsm_mermaid_prints_every_row() {
    for args in [&["--print-fsm", "mermaid"][..], &["--print-fsm=mermaid"]] {
        let out = run_xscpd(args);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let mm = text(&out.stdout);
        assert!(mm.contains("stateDiagram"), "{mm}");
        // `life_STATE --> life_STATE: event, event`; a connection's start `[*]` names the
        // state that accepts it: `[*] --> connection_NEGOTIATING: event (by LISTEN)`.
        let state = |node: &str| -> String {
            let node = node.trim().trim_end_matches("_end");
            node.split_once('_').map_or(node, |(_, s)| s).to_string()
        };
        let edges: Vec<(String, String, String)> = mm
            .lines()
            .filter_map(|l| l.trim().split_once(" --> "))
            .filter_map(|(from, rest)| {
                let (to, label) = rest.split_once(": ")?;
                let from = match label.split_once(" (by ") {
                    Some((_, by)) if from == "[*]" => by.trim_end_matches(')').to_string(),
                    _ => state(from),
                };
                Some((from, state(to), label.to_string()))
            })
            .collect();
        for (from, to, event) in SPEC_TRANSITIONS {
            assert!(
                edges.iter().any(|(f, t, label)| f == from
                    && t == to
                    && label.split([',', ' ']).any(|e| e == event)),
                "{from} --> {to}: {event} missing: {edges:?}\n{mm}"
            );
        }
    }
    let out = run_xscpd(&["--print-fsm", "mermaid-legality"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let mm = text(&out.stdout);
    // The labels of the nodes on a line, Mermaid's entity codes undone.
    let cells = |line: &str| -> Vec<String> {
        line.split("[\"")
            .skip(1)
            .filter_map(|b| b.split_once("\"]"))
            .map(|(label, _)| {
                label
                    .replace("#lt;", "<")
                    .replace("#gt;", ">")
                    .replace("#124;", "|")
            })
            .collect()
    };
    assert_legality_rows(&mm, cells);
}
