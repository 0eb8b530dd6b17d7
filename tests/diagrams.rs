//! What `xscpd` prints without serving: the `--print-fsm` pictures render as they are, a
//! closed standard output ends the program quietly, and a log file that cannot be opened
//! is named.
//!
//! Every Graphviz choice is piped through `dot -Tsvg` and the SVG is checked to be one
//! well-formed XML document; every Mermaid choice is checked to be one diagram. Graphviz is
//! required: without `dot` these tests fail, they do not skip.
//!
//! It needs the `xscpd` binary and `dot`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::harness::run_xscpd;

const XSCPD: &str = env!("CARGO_BIN_EXE_xscpd");

/// The Graphviz choices of `--print-fsm` and the picture each one draws.
const DOT_CHOICES: [(&str, Picture); 2] = [
    ("dot", Picture::Transitions),
    ("dot-legality", Picture::Legality),
];

/// The Mermaid choices of `--print-fsm` and the diagram type each one must declare.
const MERMAID_CHOICES: [(&str, &str); 2] = [
    ("mermaid", "stateDiagram-v2"),
    ("mermaid-legality", "flowchart"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Picture {
    /// A state diagram: the listener's life and a connection's, each in a cluster.
    Transitions,
    /// A table: one node, no edges.
    Legality,
}

/// xscp(7) §3: the states, and the events of the fourteen transitions.
const STATES: [&str; 6] = [
    "CLOSED",
    "LISTEN",
    "NEGOTIATING",
    "ESTABLISHED",
    "UPDATE",
    "ABORTED",
];
const EVENTS: [&str; 9] = [
    "bind_and_listen",
    "tcp_connection_accepted",
    "close",
    "credentials_validated",
    "invalid_credentials",
    "max_retries_exceeded",
    "connection_error",
    "quit_requested",
    "server_shutdown",
];

/// xscp(7) §4, first column, as the server spells it.
const COMMANDS: [&str; 11] = [
    "uname <name>",
    "ping [token]",
    "capa",
    "cquit",
    "cname <new>",
    "chatm <sender> <recipient> <text>",
    "chatr <sender> <recipient>",
    "users",
    "notif on|off",
    "+OK pong <token>",
    "any other keyword",
];

fn print_fsm(choice: &str) -> String {
    let out = run_xscpd(&["--print-fsm", choice]);
    assert_eq!(out.status.code(), Some(0), "--print-fsm {choice}: {out:?}");
    assert!(out.stderr.is_empty(), "--print-fsm {choice}: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Renders DOT source with `dot -Tsvg`. Panics (fails the test) if `dot` is not installed.
fn dot_svg(source: &str) -> Output {
    let mut dot = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run Graphviz's dot ({e}): install graphviz to run these tests")
        });
    let mut stdin = dot.stdin.take().expect("stdin");
    stdin.write_all(source.as_bytes()).expect("feed dot");
    drop(stdin);
    dot.wait_with_output().expect("dot")
}

// ---- a small XML well-formedness check ----

/// Is `c` a character that may start an XML name?
fn name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || !c.is_ascii()
}

/// Is `c` a character of an XML name?
fn name_char(c: char) -> bool {
    name_start(c) || c.is_ascii_digit() || c == '-' || c == '.'
}

/// The name at the start of `s` and what follows it.
fn split_name(s: &str) -> Result<(&str, &str), String> {
    let end = s.find(|c: char| !name_char(c)).unwrap_or(s.len());
    match s.chars().next() {
        Some(c) if name_start(c) => Ok(s.split_at(end)),
        _ => Err(format!("expected a name at {:?}", head(s))),
    }
}

fn head(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Character data (text or an attribute value): every `&` starts a well-formed reference
/// to a predefined entity or a character, and no `<` appears.
fn check_chars(s: &str) -> Result<(), String> {
    if s.contains('<') {
        return Err(format!("'<' in character data {:?}", head(s)));
    }
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        rest = &rest[i + 1..];
        let end = rest
            .find(';')
            .ok_or_else(|| format!("unterminated reference at {:?}", head(rest)))?;
        let reference = &rest[..end];
        let ok = match reference.strip_prefix('#') {
            Some(hex) if hex.starts_with('x') => {
                hex.len() > 1 && hex[1..].chars().all(|c| c.is_ascii_hexdigit())
            }
            Some(dec) => !dec.is_empty() && dec.chars().all(|c| c.is_ascii_digit()),
            None => ["amp", "lt", "gt", "quot", "apos"].contains(&reference),
        };
        if !ok {
            return Err(format!("bad reference &{reference};"));
        }
        rest = &rest[end + 1..];
    }
    Ok(())
}

/// Checks that `doc` is one well-formed XML document: one root element, every tag closed in
/// order, attributes quoted and not repeated, references well-formed; outside the root only
/// white space, comments, processing instructions and one doctype before the root.
/// Returns the root element's name.
fn check_xml(doc: &str) -> Result<String, String> {
    let mut rest = doc;
    let mut open: Vec<&str> = Vec::new();
    let mut root: Option<String> = None;
    while !rest.is_empty() {
        let in_root = !open.is_empty();
        if let Some(pi) = rest.strip_prefix("<?") {
            if pi.starts_with("xml") && rest.len() != doc.len() {
                return Err("an XML declaration that is not at the very start".into());
            }
            let end = pi.find("?>").ok_or("unterminated processing instruction")?;
            rest = &pi[end + 2..];
        } else if let Some(comment) = rest.strip_prefix("<!--") {
            let end = comment.find("--").ok_or("unterminated comment")?;
            if !comment[end..].starts_with("-->") {
                return Err("'--' inside a comment".into());
            }
            rest = &comment[end + 3..];
        } else if let Some(cdata) = rest.strip_prefix("<![CDATA[") {
            if !in_root {
                return Err("CDATA outside the root element".into());
            }
            let end = cdata.find("]]>").ok_or("unterminated CDATA section")?;
            rest = &cdata[end + 3..];
        } else if let Some(doctype) = rest.strip_prefix("<!DOCTYPE") {
            if root.is_some() || in_root {
                return Err("a doctype after the root element started".into());
            }
            let end = doctype.find('>').ok_or("unterminated doctype")?;
            if doctype[..end].contains('[') {
                return Err("an internal DTD subset (not supported by this check)".into());
            }
            rest = &doctype[end + 1..];
        } else if let Some(close) = rest.strip_prefix("</") {
            let (name, after) = split_name(close)?;
            let after = after.trim_start();
            rest = after.strip_prefix('>').ok_or("unterminated end tag")?;
            match open.pop() {
                Some(expected) if expected == name => {}
                Some(expected) => return Err(format!("</{name}> closes <{expected}>")),
                None => return Err(format!("</{name}> closes nothing")),
            }
        } else if let Some(tag) = rest.strip_prefix('<') {
            if !in_root && root.is_some() {
                return Err(format!("a second root element <{}", head(tag)));
            }
            let (name, mut after) = split_name(tag)?;
            let mut seen: Vec<&str> = Vec::new();
            loop {
                let trimmed = after.trim_start();
                if let Some(r) = trimmed.strip_prefix("/>") {
                    rest = r;
                    break;
                }
                if let Some(r) = trimmed.strip_prefix('>') {
                    open.push(name);
                    rest = r;
                    break;
                }
                if trimmed.len() == after.len() {
                    return Err(format!("no space before an attribute in <{name}"));
                }
                let (attr, r) = split_name(trimmed)?;
                if seen.contains(&attr) {
                    return Err(format!("attribute {attr} repeated in <{name}"));
                }
                seen.push(attr);
                let r = r
                    .trim_start()
                    .strip_prefix('=')
                    .ok_or("attribute without '='")?;
                let r = r.trim_start();
                let quote = r.chars().next().filter(|q| *q == '"' || *q == '\'');
                let quote = quote.ok_or_else(|| format!("unquoted value of {attr}"))?;
                let r = &r[1..];
                let end = r.find(quote).ok_or("unterminated attribute value")?;
                check_chars(&r[..end])?;
                after = &r[end + 1..];
            }
            if root.is_none() {
                root = Some(name.to_string());
            }
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            let text = &rest[..end];
            if !in_root && !text.trim().is_empty() {
                return Err(format!("text outside the root element: {:?}", head(text)));
            }
            if text.contains("]]>") {
                return Err("']]>' in text".into());
            }
            check_chars(text)?;
            rest = &rest[end..];
        }
    }
    if let Some(name) = open.last() {
        return Err(format!("<{name}> is never closed"));
    }
    root.ok_or_else(|| "no root element".to_string())
}

/// The check finds what it is for: a second document, a tag closed out of order, a bare
/// `&`, an unquoted attribute. (A check that cannot fail proves nothing.)
#[test]
fn the_xml_check_refuses_broken_documents() {
    let good = "<?xml version=\"1.0\"?>\n<!DOCTYPE svg>\n<!-- c -->\n<svg a=\"1\" b='&lt;2&#62;'>\
                <g><text>x &amp; y</text></g><path d=\"M0\"/></svg>\n";
    assert_eq!(check_xml(good), Ok("svg".to_string()));
    let two = format!("{good}{good}");
    for (broken, why) in [
        (two.as_str(), "two documents, one after the other"),
        ("<svg><g></svg></g>", "tags closed out of order"),
        ("<svg><g></svg>", "an unclosed tag"),
        ("<svg>a & b</svg>", "a bare ampersand"),
        ("<svg a=1></svg>", "an unquoted attribute"),
        ("<svg a=\"1\" a=\"2\"></svg>", "a repeated attribute"),
        ("<svg>x</svg>y", "text after the root"),
        ("<svg>&nbsp;</svg>", "an undeclared entity"),
        ("", "no root"),
    ] {
        assert!(check_xml(broken).is_err(), "accepted {why}: {broken:?}");
    }
}

/// The SVG groups of one class (`node`, `edge`, `cluster`): each group's title and its
/// text up to the group's end.
fn svg_groups<'a>(svg: &'a str, class: &str) -> Vec<(String, &'a str)> {
    let mut out = Vec::new();
    for (i, _) in svg.match_indices("<g id=\"") {
        let rest = &svg[i..];
        let head = &rest[..rest.find('>').unwrap_or(rest.len())];
        if !head.contains(&format!("class=\"{class}\"")) {
            continue;
        }
        let body = &rest[..rest.find("</g>").unwrap_or(rest.len())];
        let title = body
            .split_once("<title>")
            .and_then(|(_, t)| t.split_once("</title>"))
            .map(|(t, _)| t.replace("&#45;", "-").replace("&gt;", ">"))
            .unwrap_or_default();
        out.push((title, body));
    }
    out
}

/// The texts drawn in an SVG group.
fn svg_texts(body: &str) -> Vec<&str> {
    body.split("<text")
        .skip(1)
        .filter_map(|t| t.split_once('>').and_then(|(_, t)| t.split_once("</text>")))
        .map(|(t, _)| t)
        .collect()
}

/// `--print-fsm dot | dot -Tsvg` (the man page's example) and every other Graphviz
/// choice give one well-formed SVG document, without a warning from Graphviz. The
/// legality table is one node and no edges (a table, not edges between commands and
/// states). The transitions are drawn to teach (xscp(7) §3): see
/// `the_state_picture_separates_the_two_lives`.
#[test]
fn every_graphviz_choice_renders_to_one_svg_document() {
    for (choice, picture) in DOT_CHOICES {
        let source = print_fsm(choice);
        let out = dot_svg(&source);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "dot -Tsvg on --print-fsm {choice}: {err}"
        );
        assert!(
            err.trim().is_empty(),
            "dot warns on --print-fsm {choice}: {err}"
        );
        let svg = String::from_utf8(out.stdout).expect("UTF-8 SVG");
        assert_eq!(
            check_xml(&svg),
            Ok("svg".to_string()),
            "--print-fsm {choice}"
        );
        let nodes = svg.matches("class=\"node\"").count();
        let edges = svg.matches("class=\"edge\"").count();
        match picture {
            Picture::Transitions => assert!(nodes >= STATES.len() && edges > 0, "{choice}"),
            Picture::Legality => {
                assert_eq!((nodes, edges), (1, 0), "{choice}");
                for command in COMMANDS {
                    let text = command.replace('<', "&lt;").replace('>', "&gt;");
                    assert!(
                        svg.contains(&format!(">{text}</text>")),
                        "{command} in {choice}"
                    );
                }
            }
        }
    }
}

/// The state picture a teacher puts on a slide (`--print-fsm dot`, rendered): two
/// clusters, the listener's life and a connection's, each with a start and an end marker
/// and a CLOSED of its own; every state and every event drawn; one edge per pair of
/// states, parallel transitions merged into one label; ABORTED filled and outlined apart
/// from the other states, and every edge into or out of it dashed in its colour; the
/// `invalid_credentials` loop drawn above NEGOTIATING, away from the edges that leave it.
#[test]
fn the_state_picture_separates_the_two_lives() {
    let source = print_fsm("dot");
    let out = dot_svg(&source);
    let svg = String::from_utf8(out.stdout).expect("UTF-8 SVG");

    let clusters = svg_groups(&svg, "cluster");
    let titles: Vec<&str> = clusters.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(titles, ["cluster_connection", "cluster_listener"], "{svg}");
    for (title, body) in &clusters {
        let life = title.trim_start_matches("cluster_");
        let texts = svg_texts(body).concat();
        assert!(!texts.is_empty(), "{title} has a caption");
        let nodes: Vec<String> = svg_groups(&svg, "node")
            .into_iter()
            .map(|(t, _)| t)
            .filter(|t| t.starts_with(&format!("{life}_")))
            .collect();
        for marker in ["start", "end", "CLOSED_end"] {
            assert!(
                nodes.contains(&format!("{life}_{marker}")),
                "{life} has no {marker}: {nodes:?}"
            );
        }
    }

    let nodes = svg_groups(&svg, "node");
    let drawn: Vec<&str> = nodes.iter().flat_map(|(_, b)| svg_texts(b)).collect();
    for state in STATES {
        assert!(drawn.contains(&state), "{state} is not drawn: {drawn:?}");
    }
    // Three CLOSED: where the listener starts and ends, and where a connection ends.
    assert_eq!(drawn.iter().filter(|t| **t == "CLOSED").count(), 3);

    let edges = svg_groups(&svg, "edge");
    let mut pairs: Vec<&str> = edges.iter().map(|(t, _)| t.as_str()).collect();
    pairs.sort_unstable();
    let before = pairs.len();
    pairs.dedup();
    assert_eq!(
        pairs.len(),
        before,
        "parallel edges are not merged: {pairs:?}"
    );
    let labels: Vec<&str> = edges.iter().flat_map(|(_, b)| svg_texts(b)).collect();
    for event in EVENTS {
        assert!(labels.contains(&event), "{event} is on no edge: {labels:?}");
    }
    assert!(
        edges.iter().any(|(_, b)| {
            let t = svg_texts(b);
            t.contains(&"quit_requested") && t.contains(&"server_shutdown")
        }),
        "quit_requested and server_shutdown share one edge"
    );

    let (_, aborted) = nodes
        .iter()
        .find(|(t, _)| t == "connection_ABORTED")
        .expect("an ABORTED node");
    let (_, update) = nodes
        .iter()
        .find(|(t, _)| t == "connection_UPDATE")
        .expect("an UPDATE node");
    let fill = |b: &str| b.split("fill=\"").nth(1).map(|f| f[..7].to_string());
    assert_ne!(fill(aborted), fill(update), "ABORTED looks like UPDATE");
    // ABORTED's outline colour (#c0392b) is the error path's. Graphviz draws
    // `style=dashed` as the dash array 5,2 (`dotted`, the arrow from LISTEN to a
    // connection's start, is 1,5).
    for (title, body) in &edges {
        let error = title.contains("ABORTED");
        assert_eq!(
            body.contains("stroke-dasharray=\"5,2\""),
            error,
            "{title}: dashed exactly when it is an error transition"
        );
        assert_eq!(
            body.contains("stroke=\"#c0392b\""),
            error,
            "{title}: in the error colour exactly when it is an error transition"
        );
    }
    assert!(
        source.contains("connection_NEGOTIATING -> connection_NEGOTIATING [label=\"invalid_credentials\", tailport=n, headport=n"),
        "the loop is drawn above NEGOTIATING:\n{source}"
    );
}

// ---- Mermaid ----

/// The diagram types Mermaid knows, as the first word of a diagram's header line.
const MERMAID_TYPES: [&str; 24] = [
    "graph",
    "flowchart",
    "sequenceDiagram",
    "classDiagram",
    "classDiagram-v2",
    "stateDiagram",
    "stateDiagram-v2",
    "erDiagram",
    "journey",
    "gantt",
    "pie",
    "quadrantChart",
    "requirementDiagram",
    "gitGraph",
    "C4Context",
    "mindmap",
    "timeline",
    "zenuml",
    "sankey-beta",
    "xychart-beta",
    "block-beta",
    "packet-beta",
    "kanban",
    "architecture-beta",
];

/// Checks that `text` is one Mermaid diagram: its first line that is not blank or a
/// `%%` comment declares the type, and no other line declares one. Returns the type.
fn check_mermaid(text: &str) -> Result<&str, String> {
    let mut headers = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("%%"))
        .enumerate()
        .filter_map(|(i, l)| {
            let word = l.split_whitespace().next()?;
            MERMAID_TYPES.contains(&word).then_some((i, word))
        });
    match (headers.next(), headers.next()) {
        (Some((0, kind)), None) => Ok(kind),
        (Some((0, _)), Some((_, second))) => Err(format!("a second diagram: {second}")),
        (Some((_, kind)), _) => Err(format!("{kind} is not the first line")),
        (None, _) => Err("no diagram type".into()),
    }
}

/// A table as a flowchart (a diagram type out of beta): after the header line, one line a
/// row, each holding as many nodes as the header, chained by invisible links (`~~~`) and
/// by nothing else. Returns the header's labels and the number of rows.
fn check_grid(text: &str) -> Result<(Vec<String>, usize), String> {
    let label = |node: &str| -> Option<String> {
        let (_, rest) = node.trim().split_once("[\"")?;
        Some(rest.strip_suffix("\"]")?.to_string())
    };
    let mut lines = text
        .lines()
        .map(str::trim)
        .skip(1)
        .filter(|l| !l.starts_with("class"));
    let header: Vec<String> = lines
        .next()
        .ok_or("no header line")?
        .split(" ~~~ ")
        .map(|n| label(n).ok_or(format!("not a node: {n}")))
        .collect::<Result<_, _>>()?;
    let mut rows = 0;
    for line in lines {
        let nodes: Vec<&str> = line.split(" ~~~ ").collect();
        if nodes.len() != header.len() || nodes.iter().any(|n| label(n).is_none()) {
            return Err(format!("not a row of {} nodes: {line}", header.len()));
        }
        rows += 1;
    }
    Ok((header, rows))
}

/// The Mermaid checks find what they are for: the old output of `--print-fsm mermaid`
/// (a state diagram and a flowchart in one) and a ragged table.
#[test]
fn the_mermaid_checks_refuse_two_diagrams_and_a_ragged_table() {
    let two = "stateDiagram-v2\n    [*] --> CLOSED\n\nflowchart LR\n    c0[\"capa\"]\n";
    assert!(check_mermaid(two).is_err());
    assert!(check_mermaid("    A --> B\n").is_err());
    assert_eq!(
        check_mermaid("%% x\nflowchart LR\n  a[\"1\"]\n"),
        Ok("flowchart")
    );
    let ragged = "flowchart LR\na[\"x\"] ~~~ b[\"y\"]\nc[\"1\"] ~~~ d[\"2\"]\ne[\"3\"]\n";
    assert!(check_grid(ragged).is_err());
    assert!(check_grid("flowchart LR\na[\"x\"] ~~~ b[\"y\"]\nc[\"1\"] --> d[\"2\"]\n").is_err());
    assert_eq!(
        check_grid("flowchart LR\na[\"x\"]\nb[\"1\"]\nclass b v0\n"),
        Ok((vec!["x".to_string()], 1))
    );
}

/// Each Mermaid choice is exactly one diagram of the type it promises, none of them a
/// type still in beta. The legality table is a header row and a row a command, three
/// nodes wide; the state
/// diagram draws the listener's life as a composite state with its own start and end,
/// a connection's life with the diagram's, one transition line per pair of states, and
/// ABORTED styled apart.
#[test]
fn every_mermaid_choice_is_one_diagram() {
    for (choice, kind) in MERMAID_CHOICES {
        let text = print_fsm(choice);
        assert_eq!(
            check_mermaid(&text),
            Ok(kind),
            "--print-fsm {choice}:\n{text}"
        );
        assert!(!kind.ends_with("-beta"), "{choice}: {kind}");
    }
    let table = print_fsm("mermaid-legality");
    assert_eq!(
        check_grid(&table),
        Ok((
            ["command", "NEGOTIATING", "ESTABLISHED"]
                .map(String::from)
                .to_vec(),
            COMMANDS.len()
        )),
        "{table}"
    );
    let transitions = print_fsm("mermaid");
    assert!(transitions.contains("state \"the listener, one per server\" as listener {"));
    assert_eq!(transitions.matches("[*] -->").count(), 2, "two starts");
    assert_eq!(transitions.matches("--> [*]").count(), 2, "two ends");
    let mut pairs: Vec<(&str, &str)> = transitions
        .lines()
        .filter_map(|l| l.trim().split_once(" --> "))
        .filter(|(from, _)| *from != "[*]")
        .map(|(from, to)| (from, to.split(':').next().unwrap_or(to)))
        .collect();
    let before = pairs.len();
    pairs.sort_unstable();
    pairs.dedup();
    assert_eq!(pairs.len(), before, "parallel transitions are not merged");
    for event in EVENTS {
        assert!(transitions.contains(event), "{event}");
    }
    assert!(transitions.contains("class connection_ABORTED errorSink"));
}

// ---- a closed standard output ----

/// Every choice of `--print-fsm`.
const ALL_CHOICES: [&str; 5] = [
    "markdown",
    "dot",
    "dot-legality",
    "mermaid",
    "mermaid-legality",
];

/// Runs `xscpd args` with its standard output on a pipe whose reader has already gone:
/// the reader is a process that ended before `xscpd` started, so the first write fails
/// with a broken pipe every time.
fn run_with_reader_gone(args: &[&str]) -> Output {
    let mut reader = Command::new(XSCPD)
        .arg("--version")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start the reader");
    let pipe = reader.stdin.take().expect("the pipe's write end");
    assert!(reader.wait().expect("reader").success());
    Command::new(XSCPD)
        .args(args)
        .stdout(Stdio::from(pipe))
        .stderr(Stdio::piped())
        .output()
        .expect("run xscpd")
}

/// `xscpd --print-fsm ... | true` and `xscpd --help | true`: a reader that has gone ends
/// the program quietly with status 0 (nothing on standard error, no panic).
#[test]
fn a_closed_standard_output_ends_the_program_quietly() {
    let mut runs: Vec<Vec<&str>> = vec![vec!["--help"], vec!["--version"], vec!["--print-fsm"]];
    runs.extend(ALL_CHOICES.iter().map(|c| vec!["--print-fsm", c]));
    for args in runs {
        let out = run_with_reader_gone(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

// ---- a log file that cannot be opened ----

/// `--log-file` naming a directory: exit status 1 and one line on standard error that
/// names the path and the reason, before anything is bound.
#[test]
fn a_log_file_that_cannot_be_opened_is_named() {
    let dir = std::env::temp_dir();
    let out = Command::new(XSCPD)
        .args(["--listen", "127.0.0.1:0", "--log-file"])
        .arg(&dir)
        .output()
        .expect("run xscpd");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    let expected = format!("xscpd: cannot open log file {}: ", dir.display());
    assert!(lines[0].starts_with(&expected), "{err}");
}

// ---- the log on standard error and in --log-file ----

/// How long to wait for the server before the test fails.
const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Is `line` stamped `YYYY-MM-DDTHH:MM:SS.ffffffZ ` (27 characters and a space)?
fn stamped(line: &str) -> bool {
    let shape = b"dddd-dd-ddTdd:dd:dd.ddddddZ ";
    line.len() > shape.len()
        && shape.iter().zip(line.bytes()).all(|(&s, c)| match s {
            b'd' => c.is_ascii_digit(),
            _ => c == s,
        })
}

/// `--log-file` and standard error carry the same lines, in the same order, with the same
/// times, each stamped with a timestamp of fixed width: a server runs at -vv, a client
/// registers and quits, the server is stopped with SIGTERM, and the two logs are compared
/// byte for byte.
#[test]
fn the_log_file_and_standard_error_are_the_same_lines() {
    use std::io::{BufRead, BufReader, Read};
    use std::net::TcpStream;
    use std::sync::mpsc;

    let path = std::env::temp_dir().join(format!("xscpd-diagrams-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut child = Command::new(XSCPD)
        .args(["--listen", "127.0.0.1:0", "-vv", "--log-file"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xscpd");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines: Vec<String> = Vec::new();
    let wait_for = |lines: &mut Vec<String>, what: &str| -> String {
        loop {
            let line = rx.recv_timeout(WAIT).unwrap_or_else(|e| {
                panic!(
                    "no log line with {what:?} ({e}); log:\n{}",
                    lines.join("\n")
                )
            });
            lines.push(line.clone());
            if line.contains(what) {
                return line;
            }
        }
    };
    let listening = wait_for(&mut lines, "CLOSED -> LISTEN on bind_and_listen");
    let addr = listening
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .expect("addr= in the listen line");
    let mut client = TcpStream::connect(addr).expect("connect");
    client.set_read_timeout(Some(WAIT)).expect("timeout");
    client
        .write_all(b"uname alice\r\nusers\r\ncquit\r\n")
        .expect("send");
    let mut replies = String::new();
    client
        .read_to_string(&mut replies)
        .expect("read to the close");
    assert!(replies.contains("+OK terminating"), "{replies}");
    wait_for(&mut lines, "UPDATE -> CLOSED on close");
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.expect("kill").success());
    assert!(child.wait().expect("wait").success());
    // The reader ends at EOF, once the server has exited.
    lines.extend(rx.iter());

    let file = std::fs::read_to_string(&path).expect("the log file");
    let _ = std::fs::remove_file(&path);
    let on_stderr = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    assert_eq!(on_stderr, file, "standard error vs --log-file");
    assert!(lines.len() >= 10, "{on_stderr}");
    assert!(on_stderr.contains(" <- uname alice"), "{on_stderr}");
    for line in &lines {
        assert!(
            stamped(line),
            "not stamped with a fixed-width time: {line:?}"
        );
    }
}
