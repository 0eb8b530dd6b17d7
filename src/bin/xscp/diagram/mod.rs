//! `xscp diagram`: what happened on a connection, drawn from an `xscpd -vv` audit log.
//!
//! [`logparse`] reads the log's lines about connections; [`conversation`] links the
//! connections that talked to each other and builds a sequence diagram per conversation (or
//! of the connections named); [`crate::seqdiag`] draws it as Mermaid text or SVG, and
//! [`crate::html`] makes the page. This file reads the command line and wires them.

mod conversation;
mod logparse;

use logparse::ConnId;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::html::{self, Page, escape};
use crate::seqdiag::{self, Diagram};
use crate::statechart;

/// The largest log read: an auditor's question is about a morning, not a year.
const MAX_LOG: u64 = 256 * 1024 * 1024;

const USAGE: &str = "usage: xscp diagram [--conn [RUN:]N]... [--html FILE] [LOG]";

const HELP: &str = "\
xscp diagram - sequence diagrams of real sessions, from an xscpd -vv audit log

Reads the audit log LOG (standard input without LOG, or with -) of a server run with -vv,
and draws each conversation as a sequence diagram: the connections that exchanged
messages (a chatm relayed from one to another, its receipt, a mailbox replayed after a
resume) share one diagram, the server's transitions are notes where they happened, and
a violation is marked. Prints one Mermaid sequenceDiagram per conversation, separated by
a blank line.

Options:
      --conn [RUN:]N
                    only connection N (as the log numbers it, conn=N): its whole
                    exchange, and the lines its correspondents exchanged with it;
                    repeatable, the connections named share one diagram. A log of
                    several server runs (--log-file appends) numbers each run's
                    connections from 1: name one there as RUN:N (run 1 is the first
                    in the log); the diagrams call it `run RUN conn N`
      --html FILE   write one self-contained HTML page with the diagrams drawn as SVG
                    to FILE instead of printing Mermaid
  -h, --help        print this help and exit

Exit status: 0 if there was something to draw, 1 if the log holds no connection (or
none named), 2 for a bad command line or a log that cannot be read.";

/// A connection named on the command line: `N`, or `RUN:N` in a log of several runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Named {
    run: Option<u32>,
    n: u64,
}

impl Named {
    fn parse(v: &str) -> Option<Named> {
        let v = v.strip_prefix("conn=").unwrap_or(v);
        match v.split_once(':') {
            Some((run, n)) => Some(Named {
                run: Some(run.parse().ok().filter(|&r| r > 0)?),
                n: n.parse().ok()?,
            }),
            None => Some(Named {
                run: None,
                n: v.parse().ok()?,
            }),
        }
    }

    /// The connection of `conns` it names, or why none.
    fn find(&self, conns: &[conversation::Conn], source: &str) -> Result<ConnId, String> {
        let n = self.n;
        let mut found = conns.iter().map(|c| c.id).filter(|id| id.n == n);
        match self.run {
            // In a log of one run, its connections' run is 0: run 1 names them too.
            Some(run) => found
                .find(|id| id.run == run || (id.run == 0 && run == 1))
                .ok_or_else(|| format!("{source} has no connection {n} in run {run}")),
            None => {
                let all: Vec<ConnId> = found.collect();
                match all[..] {
                    [id] => Ok(id),
                    [] => Err(format!("{source} has no connection {n}")),
                    _ => {
                        let runs: Vec<String> = all.iter().map(|id| id.run.to_string()).collect();
                        Err(format!(
                            "{source} holds several server runs with a connection {n} (runs {}): \
                             name one as --conn RUN:{n}",
                            runs.join(", ")
                        ))
                    }
                }
            }
        }
    }
}

/// The command line of `xscp diagram`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    conns: Vec<Named>,
    html: Option<PathBuf>,
    log: Option<PathBuf>,
    help: bool,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag {
            "-h" | "--help" => o.help = true,
            "--conn" => {
                let v = value("--conn")?;
                let n = Named::parse(&v)
                    .ok_or_else(|| format!("--conn: '{v}' is not a connection number"))?;
                o.conns.push(n);
            }
            "--html" => o.html = Some(PathBuf::from(value("--html")?)),
            "-" => o.log = None,
            f if f.starts_with('-') => return Err(format!("unknown option '{f}'")),
            _ if o.log.is_some() => return Err(format!("more than one log: '{a}'")),
            _ => o.log = Some(PathBuf::from(a)),
        }
    }
    Ok(o)
}

/// Runs `xscp diagram ARGS`.
pub fn main(args: &[String]) -> ExitCode {
    let o = match parse_args(args) {
        Ok(o) => o,
        Err(e) => {
            xscp::errln!("xscp diagram: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if o.help {
        xscp::outln!("{USAGE}\n\n{HELP}");
        return ExitCode::SUCCESS;
    }
    let (text, source) = match read_log(o.log.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            xscp::errln!("xscp diagram: {e}");
            return ExitCode::from(2);
        }
    };
    let entries = logparse::parse(&text);
    let conns = conversation::connections(&entries);
    let links = conversation::links(&entries);
    let groups = if o.conns.is_empty() {
        conversation::conversations(&entries, &conns, &links)
    } else {
        let named: Result<Vec<ConnId>, String> =
            o.conns.iter().map(|n| n.find(&conns, &source)).collect();
        match named {
            Ok(ids) => vec![ids],
            Err(e) => {
                xscp::errln!("xscp diagram: {e}");
                return ExitCode::from(1);
            }
        }
    };
    if groups.is_empty() {
        xscp::errln!(
            "xscp diagram: {source} has no line about a connection (was it written with -vv?)"
        );
        return ExitCode::from(1);
    }
    let index = conversation::Index::new(&entries, &conns, &links);
    let diagrams: Vec<Diagram> = groups
        .iter()
        .map(|g| conversation::diagram_with(&index, &entries, &conns, g))
        .collect();
    let written = match &o.html {
        Some(path) => {
            let page = page(&source, &conns, &groups, &diagrams);
            std::fs::write(path, page).map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        None => {
            let mut out = String::new();
            for (i, d) in diagrams.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(&seqdiag::mermaid::render(d));
            }
            match io::stdout().lock().write_all(out.as_bytes()) {
                // A closed standard output (`| head`) ends the program quietly.
                Err(e) if xscp::console::is_closed(&e) => Ok(()),
                r => r.map_err(|e| format!("cannot write: {e}")),
            }
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            xscp::errln!("xscp diagram: {e}");
            ExitCode::from(2)
        }
    }
}

/// The log's text (invalid UTF-8 replaced) and how to name it in messages.
fn read_log(path: Option<&PathBuf>) -> Result<(String, String), String> {
    let mut bytes = Vec::new();
    let source = match path {
        Some(p) => {
            let f =
                std::fs::File::open(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            f.take(MAX_LOG + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            p.display().to_string()
        }
        None => {
            io::stdin()
                .lock()
                .take(MAX_LOG + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            "standard input".to_string()
        }
    };
    if bytes.len() as u64 > MAX_LOG {
        return Err(format!(
            "{source} is larger than {} MiB: cut out the time of interest first",
            MAX_LOG >> 20
        ));
    }
    Ok((String::from_utf8_lossy(&bytes).into_owned(), source))
}

/// The HTML page: the connections in a table, then each diagram.
fn page(
    source: &str,
    conns: &[conversation::Conn],
    groups: &[Vec<ConnId>],
    diagrams: &[Diagram],
) -> String {
    let mut p = Page::new(&format!("xscpd audit log: {source}"));
    let span = match (
        conns.first().and_then(|c| c.first.clone()),
        conns.iter().filter_map(|c| c.last.clone()).max(),
    ) {
        (Some(a), Some(b)) => format!(", from {a} to {b}"),
        _ => String::new(),
    };
    p.paragraph(
        "meta",
        &format!(
            "{} in the log, {} drawn{span}. Drawn by xscp diagram from the server's -vv log; \
             the states and transitions are those of xscp(7) §3.",
            html::count(conns.len(), "connection"),
            html::count(diagrams.len(), "diagram")
        ),
    );
    let mut t = String::from(
        "<h2 id=\"connections\">Connections</h2>\n<table class=\"conns\">\n<tr><th>conn</th><th>peer</th>\
         <th>nicknames</th><th>first line</th><th>last line</th><th>read</th><th>sent</th>\
         <th>warnings</th><th>how it ended</th></tr>\n",
    );
    // The connections drawn in full here (all, without --conn): the others have no anchor
    // on the page. A set: a log may hold many thousands.
    let drawn: HashSet<ConnId> = groups.iter().flatten().copied().collect();
    for c in conns {
        let ending = match (&c.ending, c.state) {
            (Some(e), _) => e.clone(),
            (None, Some(s)) => format!("last seen {s}"),
            (None, None) => String::new(),
        };
        let class = if c.warnings > 0 {
            " class=\"fail\""
        } else {
            ""
        };
        let number = if drawn.contains(&c.id) {
            format!("<a href=\"#{}\">{}</a>", c.id.anchor(), c.id.short())
        } else {
            c.id.short()
        };
        let _ = writeln!(
            t,
            "<tr><td>{number}</td><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td>\
             <td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\"{class}>{}</td><td>{}</td></tr>",
            escape(&c.peer),
            escape(&c.nick_trail()),
            escape(&clock(c.first.as_deref())),
            escape(&clock(c.last.as_deref())),
            c.read,
            c.sent,
            c.warnings,
            escape(&ending)
        );
    }
    t.push_str("</table>\n");
    p.push(&t);
    p.push(LEGEND);
    for (i, (d, group)) in diagrams.iter().zip(groups).enumerate() {
        // Each connection drawn in full can be linked to by its number.
        let mut anchors = String::new();
        for id in group {
            let _ = write!(anchors, "<span id=\"{}\"></span>", id.anchor());
        }
        let class = if d.failed() { "case fail" } else { "case" };
        p.push(&format!(
            "<section class=\"{class}\">{anchors}\n<h2>{}. {}</h2>\n{}</section>\n",
            i + 1,
            escape(&d.title),
            html::figure(
                &format!("diagram-{}", i + 1),
                &seqdiag::svg::render(d),
                &d.title
            )
        ));
    }
    p.push(&format!(
        "<h2 id=\"states\">xscp(7) §3: states and transitions</h2>\n{}\
         <h2 id=\"legality\">xscp(7) §4: which command is legal when</h2>\n{}",
        html::figure(
            "fsm",
            &statechart::states_svg(),
            "The state machine the server runs, drawn from its own table."
        ),
        statechart::legality_html()
    ));
    p.finish()
}

/// A logged time (`2026-12-07T00:04:11.719609Z`) shown to the millisecond with its date.
fn clock(time: Option<&str>) -> String {
    let t = time.unwrap_or("");
    match t.split_once('T') {
        Some((date, time)) => format!(
            "{date} {}",
            time.trim_end_matches('Z')
                .chars()
                .take(12)
                .collect::<String>()
        ),
        None => t.to_string(),
    }
}

/// How to read the pictures.
const LEGEND: &str = "<p class=\"legend\"><span>solid arrow: a line the client sent</span>\
<span>dashed arrow: a line the server sent</span><span>blue note: a transition (xscp(7) §3)</span>\
<span>yellow note: what the server decided</span><span>red: a warning in the log (a violation, a slow consumer, a connection refused)</span>\
<span>cross: the connection closed</span></p>\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_command_line() {
        assert_eq!(parse_args(&[]).unwrap(), Options::default());
        let o = parse_args(&args(&[
            "--conn",
            "7",
            "--conn=conn=9",
            "--html",
            "x.html",
            "log",
        ]))
        .unwrap();
        let only = |n| Named { run: None, n };
        assert_eq!(o.conns, [only(7), only(9)]);
        let named = |run, n| Named { run: Some(run), n };
        let runs = parse_args(&args(&["--conn", "2:7", "--conn=conn=1:9"])).unwrap();
        assert_eq!(runs.conns, [named(2, 7), named(1, 9)]);
        for bad in ["x", "0:7", "2:", ":7", "-1:7"] {
            assert!(
                parse_args(&args(&["--conn", bad]))
                    .unwrap_err()
                    .contains("not a connection number"),
                "{bad}"
            );
        }
        assert_eq!(o.html, Some(PathBuf::from("x.html")));
        assert_eq!(o.log, Some(PathBuf::from("log")));
        assert_eq!(parse_args(&args(&["-"])).unwrap().log, None);
        assert!(
            parse_args(&args(&["--conn", "x"]))
                .unwrap_err()
                .contains("not a connection number")
        );
        assert!(
            parse_args(&args(&["--conn"]))
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            parse_args(&args(&["--bogus"]))
                .unwrap_err()
                .contains("unknown option")
        );
        assert!(
            parse_args(&args(&["a", "b"]))
                .unwrap_err()
                .contains("more than one log")
        );
    }
}
