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
    ("mermaid-legality", "block-beta"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Picture {
    /// A state diagram: one node a state, one edge a transition.
    Transitions,
    /// A table: one node, no edges.
    Legality,
}

/// PROTOCOL.md §3: six states, fourteen transitions.
const STATES: usize = 6;
const TRANSITIONS: usize = 14;

/// PROTOCOL.md §4, first column, as the server spells it.
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

/// `--print-fsm dot | dot -Tsvg` (the man page's example) and every other Graphviz
/// choice give one well-formed SVG document, without a warning from Graphviz. The
/// transitions are a graph of six states and fourteen edges; the legality table is one
/// node and no edges (a table, not edges between commands and states).
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
            Picture::Transitions => assert_eq!((nodes, edges), (STATES, TRANSITIONS), "{choice}"),
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

/// A grid of blocks: after `columns N`, every line of blocks holds exactly N of them.
fn check_grid(text: &str) -> Result<usize, String> {
    let mut lines = text.lines().map(str::trim).skip(1);
    let columns: usize = lines
        .next()
        .and_then(|l| l.strip_prefix("columns "))
        .and_then(|n| n.parse().ok())
        .ok_or("no 'columns N' line")?;
    let mut rows = 0;
    for line in lines.filter(|l| !l.starts_with("class")) {
        let blocks = line.matches("[\"").count();
        if blocks != columns {
            return Err(format!("{blocks} blocks, not {columns}: {line}"));
        }
        rows += 1;
    }
    Ok(rows)
}

/// The Mermaid checks find what they are for: the old output of `--print-fsm mermaid`
/// (a state diagram and a flowchart in one) and a ragged grid.
#[test]
fn the_mermaid_checks_refuse_two_diagrams_and_a_ragged_grid() {
    let two = "stateDiagram-v2\n    [*] --> CLOSED\n\nflowchart LR\n    c0[\"capa\"]\n";
    assert!(check_mermaid(two).is_err());
    assert!(check_mermaid("    A --> B\n").is_err());
    assert_eq!(
        check_mermaid("%% x\nblock-beta\n  a[\"1\"]\n"),
        Ok("block-beta")
    );
    assert!(check_grid("block-beta\ncolumns 2\na[\"1\"] b[\"2\"]\nc[\"3\"]\n").is_err());
    assert_eq!(
        check_grid("block-beta\ncolumns 1\na[\"1\"]\nclass a x\n"),
        Ok(1)
    );
}

/// Each Mermaid choice is exactly one diagram of the type it promises; the legality table
/// is a grid of a header row and one row a command, three columns wide.
#[test]
fn every_mermaid_choice_is_one_diagram() {
    for (choice, kind) in MERMAID_CHOICES {
        let text = print_fsm(choice);
        assert_eq!(
            check_mermaid(&text),
            Ok(kind),
            "--print-fsm {choice}:\n{text}"
        );
    }
    let grid = print_fsm("mermaid-legality");
    assert_eq!(check_grid(&grid), Ok(1 + COMMANDS.len()), "{grid}");
    let transitions = print_fsm("mermaid");
    assert_eq!(transitions.matches(" --> ").count(), 1 + TRANSITIONS);
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
