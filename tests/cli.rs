//! The command line of `xscpd`: bad options and values (exit 2 with the usage), a listen
//! address that cannot be bound (one clear line, non-zero exit), and `--print-fsm`, which
//! prints the tables of xscp(7) §3 and §4 in Markdown, Graphviz and Mermaid. And what
//! no program of the project does on any command line: panic when an output is closed or
//! full, or serve on while its audit log silently fails.

use crate::harness::{
    Client, GREETING, SPEC_TRANSITIONS, Server, WAIT, lines_of, run, run_xscpd, wait_child,
};

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;

use crossbeam_channel::{RecvTimeoutError, unbounded};

/// xscp(7) §4, row for row: the command and what each state's cell says, reduced to
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

// ---- addresses: the same forms in the server and the client ----

const XSCPD: &str = env!("CARGO_BIN_EXE_xscpd");
const XSCP: &str = env!("CARGO_BIN_EXE_xscp");
const BENCH: &str = env!("CARGO_BIN_EXE_xscp-bench");

/// Command line: `xscpd -l HOST` listens on port 1030, as `xscp HOST` connects to it. The
/// first line names 127.0.0.1:1030 either way: the listen line, or (when another program
/// has the port) why it cannot listen there.
#[test]
fn a_listen_address_without_a_port_gets_1030() {
    let mut child = Command::new(XSCPD)
        .args(["-l", "127.0.0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xscpd");
    let lines = lines_of(child.stderr.take().expect("stderr"));
    let first = lines.recv_timeout(WAIT).expect("a first line from xscpd");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        first.contains("127.0.0.1:1030")
            && (first.contains("CLOSED -> LISTEN") || first.contains("cannot listen")),
        "{first}"
    );
}

/// Command line: a port past 65535 is a usage error (exit 2) in the server and the client.
#[test]
fn an_out_of_range_port_is_a_usage_error_in_both() {
    assert_refused(&["-l", "127.0.0.1:65536"], "65536");
    assert_refused(&["--listen=[::1]:99999"], "99999");
    let out = run(XSCP, &["127.0.0.1:65536"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.lines().next().unwrap_or("").contains("65536"), "{err}");
    assert!(
        err.lines().nth(1).unwrap_or("").starts_with("usage: xscp"),
        "{err}"
    );
}

/// Command line: `--print-fsm` prints one document; a second word is a usage error.
#[test]
fn print_fsm_takes_no_second_format() {
    assert_refused(&["--print-fsm", "markdown", "dot"], "dot");
    assert_refused(&["--print-fsm=dot", "mermaid"], "mermaid");
}

// ---- closed and full outputs ----

/// Reads `r` up to the first line that `pred` accepts (within the bound) and returns that
/// line and the reader, so that the caller can close the pipe by dropping it.
fn first_line<R: Read + Send + 'static>(
    r: R,
    pred: impl Fn(&str) -> bool + Send + 'static,
) -> (String, BufReader<R>) {
    let (tx, rx) = unbounded();
    thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if pred(line.trim_end()) => {
                    let _ = tx.send((line.trim_end().to_string(), r));
                    return;
                }
                Ok(_) => {}
            }
        }
    });
    rx.recv_timeout(WAIT).expect("the line looked for")
}

/// Everything `child` still writes on standard error, until it closes (within the bound),
/// then its exit status.
fn finish(mut child: Child, what: &str) -> (ExitStatus, String) {
    let mut err = String::new();
    if let Some(stderr) = child.stderr.take() {
        let lines = lines_of(stderr);
        loop {
            match lines.recv_timeout(WAIT) {
                Ok(l) => err += &(l + "\n"),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!("{what}: standard error did not close; so far: {err}");
                }
            }
        }
    }
    (wait_child(&mut child, what), err)
}

/// Runs `program args` with standard output a pipe whose reader has gone before the
/// program writes (`... | head -0`).
fn into_closed_pipe(program: &str, args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    drop(child.stdout.take());
    finish(child, &format!("{program} {args:?}"))
}

/// Runs `program args` with `stdout` and `stderr` as given.
fn with_outputs(program: &str, args: &[&str], stdout: Stdio, stderr: Stdio) -> ExitStatus {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start");
    wait_child(&mut child, &format!("{program} {args:?}"))
}

fn dev_full() -> Stdio {
    Stdio::from(
        File::options()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full"),
    )
}

/// Every program: a standard output whose reader has gone ends it quietly, with status
/// 0, as if everything had been read (`xscp check --list | head -1`).
#[test]
fn a_closed_standard_output_ends_every_program_quietly() {
    for (program, args) in [
        (XSCPD, &["--help"][..]),
        (XSCPD, &["--print-fsm", "dot"]),
        (XSCP, &["--help"]),
        (XSCP, &["check", "--list"]),
        (XSCP, &["check", "--help"]),
        (BENCH, &["--help"]),
    ] {
        let (status, err) = into_closed_pipe(program, args);
        assert_eq!(status.code(), Some(0), "{program} {args:?}: {err}");
        assert_eq!(err, "", "{program} {args:?}");
    }
}

/// Every program: a full standard error does not turn a usage error into a panic (101).
#[test]
fn a_full_standard_error_is_no_panic() {
    for (program, args) in [
        (XSCPD, &["--bogus"][..]),
        (XSCP, &["--bogus"]),
        (XSCP, &["check", "--bogus"]),
        (BENCH, &["--bogus"]),
    ] {
        let status = with_outputs(program, args, Stdio::null(), dev_full());
        assert_eq!(status.code(), Some(2), "{program} {args:?}");
    }
}

/// Every program: a full standard output is said on standard error, status 1 (2 for the
/// checker, whose 1 means a failed transcript).
#[test]
fn a_full_standard_output_is_said_not_a_panic() {
    for (program, args, code) in [
        (XSCPD, &["--help"][..], 1),
        (XSCP, &["--version"], 1),
        (XSCP, &["check", "--list"], 1),
        (BENCH, &["--help"], 1),
    ] {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(dev_full())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start");
        let what = format!("{program} {args:?}");
        let lines = lines_of(child.stderr.take().expect("stderr"));
        let status = wait_child(&mut child, &what);
        let err: Vec<String> = lines.iter().collect();
        assert_eq!(status.code(), Some(code), "{what}: {err:?}");
        assert_eq!(err.len(), 1, "{what}: {err:?}");
        assert!(
            err[0].contains("cannot write to standard output"),
            "{what}: {err:?}"
        );
    }
}

/// The client: when its output's reader goes (`xscp ADDR | head -1`), the next line it
/// would print ends it quietly, with status 0.
#[test]
fn the_client_ends_quietly_when_its_output_closes() {
    let server = Server::start(&[]);
    let mut child = Command::new(XSCP)
        .arg(server.addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xscp");
    let (greeting, out) = first_line(child.stdout.take().expect("stdout"), |_| true);
    assert_eq!(greeting, GREETING);
    drop(out);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"uname alice\n").expect("type");
    // `+OK you are alice` cannot be printed: the client ends, saying nothing.
    let (status, err) = finish(child, "xscp");
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(err, "");
    drop(stdin);
}

// ---- a failing audit log ----

fn failing(l: &str) -> bool {
    l.contains("the audit log is failing")
}

/// The log: a log file that cannot be written (`--log-file /dev/full`) is said once, on
/// standard error, and the server serves on.
#[test]
fn a_failing_log_file_is_said_once_on_standard_error() {
    let server = Server::start(&["--log-file", "/dev/full"]);
    let line = server.wait_log(failing);
    assert!(line.contains("/dev/full"), "{line}");
    let alice = server.register("alice");
    server.quit(alice);
    let bob = server.register("bob");
    server.quit(bob);
    assert_eq!(server.log().iter().filter(|l| failing(l)).count(), 1);
}

/// The log: a log pipe whose reader goes (`xscpd -v 2>&1 | head -2`) is said once on what
/// is left, standard output; the server serves on.
#[test]
fn a_log_pipe_that_closes_is_said_once_on_standard_output() {
    let mut child = Command::new(XSCPD)
        .args(["-l", "127.0.0.1:0", "-v"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xscpd");
    let out = lines_of(child.stdout.take().expect("stdout"));
    let (listen, log) = first_line(child.stderr.take().expect("stderr"), |l| {
        l.contains("CLOSED -> LISTEN")
    });
    let addr = listen
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .expect("addr=")
        .parse()
        .expect("listen address");
    drop(log);
    let first = Client::connect(addr).greeted();
    let said = out.recv_timeout(WAIT).expect("a line on standard output");
    assert!(failing(&said) && said.contains("standard error"), "{said}");
    let second = Client::connect(addr).greeted();
    drop((first, second));
    let _ = child.kill();
    let _ = child.wait();
    let rest: Vec<String> = out.iter().collect();
    assert!(!rest.iter().any(|l| failing(l)), "said twice: {rest:?}");
}
