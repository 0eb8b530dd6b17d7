//! `xscp check`: grades an XSCP/1 server against the protocol by playing conformance
//! transcripts (`xscp-transcript(5)`) at it, like irctest or h2spec do for IRC and HTTP/2.
//!
//! Layout: [`transcript`] parses the format (with [`text`] for escapes and repeats);
//! [`runner`] plays one transcript over TCP, with [`matching`] for patterns and
//! placeholders, [`server`] for the server `--server` starts per transcript and [`sys`]
//! for the two libc calls std lacks; [`lines`] is the bounded line reader both of them
//! use (so that neither imports the other); [`results`] is what a run produced,
//! [`report`] prints it and JUnit XML, [`diagram`] makes the exchange a sequence diagram
//! (Mermaid for `--diagrams`) and [`html`] the page of `--html`;
//! [`probe`] asks first whether an XSCP server is there at all; [`builtin`] is the
//! shipped suite.
//! This file only reads the command line and wires them.

mod builtin;
mod diagram;
mod html;
mod lines;
mod matching;
mod probe;
mod report;
mod results;
mod runner;
mod server;
mod sys;
mod text;
mod transcript;

use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use xscp::config::parse_duration;

use runner::{Config, Outcome, Target};
use transcript::Transcript;

/// The largest transcript file read from `--transcripts DIR`.
const MAX_FILE: u64 = 1024 * 1024;

const USAGE: &str = "\
usage: xscp check [--server COMMAND] [--transcripts DIR [--builtin]] [--section S]...
                  [--only PATTERN]... [--without FEATURE]... [--level LEVEL]
                  [--timeout DUR] [--junit FILE] [--diagrams DIR] [--html FILE] [--list]
                  [ADDR]";

const HELP: &str = "\
xscp check - grade an XSCP/1 server against the protocol

Plays conformance transcripts (one rule of xscp(7) each) against the server at ADDR,
or against a fresh server per transcript started from --server COMMAND, and prints
PASS, FAIL or SKIP per transcript, then 'N passed, M failed, K skipped'. It probes
first (connect, greeting, capa, ping): what is no XSCP server is reported in one line.

Options:
      --server COMMAND       start a server per transcript: COMMAND is split at spaces,
                             {addr} becomes the address to listen on and a word {options}
                             the transcript's server options
      --transcripts DIR      run the .xt files of DIR instead of the built-in suite
      --builtin              with --transcripts: run the built-in suite as well
      --section S            only sections S (5.7 selects 5.7 and 5.7.x; a word matches
                             section titles); repeatable
      --only PATTERN         only names containing PATTERN (* matches anything); repeatable
      --without FEATURE      skip transcripts that require FEATURE (e.g. resume)
      --level LEVEL          must: grade MUST rules only (a failed SHOULD transcript is
                             shown as WARN and fails nothing); should (default): all
      --timeout DUR          longest wait for one expected event (default 5s),
                             beyond the server timers a transcript sets
      --junit FILE           also write the results as JUnit XML to FILE
      --diagrams DIR         write a Mermaid sequence diagram per transcript into DIR
      --html FILE            also write the report as one self-contained HTML page to
                             FILE: the grade, a summary by section and level, each
                             transcript with its rule, result and sequence diagram
      --list                 list the selected transcripts and exit
  -h, --help                 print this help and exit

DUR is 250ms, 2s, 5m, 1h or a bare number of seconds (not zero).
Exit status: 0 if no transcript failed, 1 if one did or no XSCP server answered the
probe, 2 for a bad command line, a selection that matches nothing, an output path that
cannot be written or a transcript that cannot be read.";

/// The command line of `xscp check`.
#[derive(Debug, Default)]
struct Options {
    addr: Option<String>,
    server: Option<String>,
    dir: Option<PathBuf>,
    builtin: bool,
    sections: Vec<String>,
    only: Vec<String>,
    without: Vec<String>,
    /// `--level must`: SHOULD transcripts are reported, not graded.
    must_only: bool,
    timeout: Option<Duration>,
    junit: Option<PathBuf>,
    diagrams: Option<PathBuf>,
    html: Option<PathBuf>,
    list: bool,
    help: bool,
}

#[derive(Debug)]
struct Usage(String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn parse_args(args: &[String]) -> Result<Options, Usage> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (opt, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| Usage(format!("option {name} needs a value")))
        };
        match opt {
            "--server" => o.server = Some(value(opt)?),
            "--transcripts" => o.dir = Some(value(opt)?.into()),
            "--section" => o.sections.push(value(opt)?),
            "--only" => o.only.push(value(opt)?),
            "--without" => o.without.push(value(opt)?),
            "--level" => {
                let v = value(opt)?;
                o.must_only = match v.to_ascii_lowercase().as_str() {
                    "must" => true,
                    "should" => false,
                    _ => return Err(Usage(format!("--level '{v}': must or should"))),
                };
            }
            "--timeout" => {
                let v = value(opt)?;
                // The server's own duration syntax; a zero wait would fail every step.
                let d = parse_duration(&v).filter(|d| !d.is_zero());
                o.timeout = Some(d.ok_or_else(|| Usage(format!("invalid duration '{v}'")))?);
            }
            "--junit" => o.junit = Some(value(opt)?.into()),
            "--diagrams" => o.diagrams = Some(value(opt)?.into()),
            "--html" => o.html = Some(value(opt)?.into()),
            "--builtin" | "--list" | "-h" | "--help" if inline.is_some() => {
                return Err(Usage(format!("option {opt} takes no value")));
            }
            "--builtin" => o.builtin = true,
            "--list" => o.list = true,
            "-h" | "--help" => o.help = true,
            _ if opt.starts_with('-') => return Err(Usage(format!("unknown option '{arg}'"))),
            _ => {
                if o.addr.replace(arg.clone()).is_some() {
                    return Err(Usage(format!("unexpected argument '{arg}'")));
                }
            }
        }
    }
    if o.help || o.list {
        return Ok(o);
    }
    match (&o.addr, &o.server) {
        (None, None) => return Err(Usage("give ADDR or --server COMMAND".into())),
        (Some(_), Some(_)) => return Err(Usage("give ADDR or --server, not both".into())),
        _ => {}
    }
    if o.server.as_deref().is_some_and(|c| !c.contains("{addr}")) {
        return Err(Usage(
            "--server COMMAND must say where to listen: {addr}".into(),
        ));
    }
    if o.builtin && o.dir.is_none() {
        return Err(Usage("--builtin goes with --transcripts".into()));
    }
    Ok(o)
}

/// Does a transcript belong to the selection?
fn selected(t: &Transcript, o: &Options) -> bool {
    let section_ok = o.sections.is_empty()
        || o.sections.iter().any(|s| {
            let n = t.section_number();
            if s.starts_with(|c: char| c.is_ascii_digit()) {
                n == s || n.starts_with(&format!("{s}."))
            } else {
                t.section.to_lowercase().contains(&s.to_lowercase())
            }
        });
    let name_ok = o.only.is_empty() || o.only.iter().any(|p| glob(p, &t.name));
    section_ok && name_ok
}

/// `*` matches any text; without one, PATTERN matches as a substring.
fn glob(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return name.contains(pattern);
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

/// The transcripts to run, in order: built-in ones first, then DIR's, sorted by name.
fn load(o: &Options) -> Result<Vec<Transcript>, String> {
    let mut all = Vec::new();
    if o.dir.is_none() || o.builtin {
        for (name, text) in builtin::SUITE {
            let t = transcript::parse(name, &format!("builtin:{name}.xt"), text)
                .map_err(|e| e.to_string())?;
            all.push(t);
        }
    }
    if let Some(dir) = &o.dir {
        all.extend(load_dir(dir)?);
    }
    Ok(all)
}

fn load_dir(dir: &Path) -> Result<Vec<Transcript>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "xt"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let origin = p.display().to_string();
        let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        if size > MAX_FILE {
            return Err(format!("{origin}: larger than {MAX_FILE} bytes"));
        }
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{origin}: {e}"))?;
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(transcript::parse(&name, &origin, &text).map_err(|e| e.to_string())?);
    }
    if out.is_empty() {
        return Err(format!("{}: no .xt files", dir.display()));
    }
    Ok(out)
}

/// ADDR as the client reads it (a host without a port gets 1030): its first address.
fn resolve(addr: &str) -> Result<SocketAddr, String> {
    crate::reader::resolve(addr)
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .into_iter()
        .next()
        .ok_or_else(|| format!("cannot resolve {addr}"))
}

/// The selection as given on the command line, for messages.
fn selection(o: &Options) -> String {
    let mut words = Vec::new();
    for s in &o.sections {
        words.push(format!("--section {s}"));
    }
    for p in &o.only {
        words.push(format!("--only {p}"));
    }
    words.join(" ")
}

/// `--junit FILE`, `--html FILE` and `--diagrams DIR` are tried before the run, so that an
/// hour of results is not lost to a typo.
fn writable(o: &Options) -> Result<(), String> {
    for path in o.junit.iter().chain(&o.html) {
        std::fs::write(path, "").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(dir) = &o.diagrams {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let probe = dir.join(".xscp-check-probe");
        std::fs::write(&probe, "")
            .map_err(|e| format!("cannot write into {}: {e}", dir.display()))?;
        let _ = std::fs::remove_file(probe);
    }
    Ok(())
}

/// Probes the target (a server of its own with `--server`): `Err` is the one line that
/// says what is there instead of an XSCP server; `Ok` what the probe found.
fn probe_target(cfg: &Config) -> Result<probe::Found, String> {
    match &cfg.target {
        Target::Addr(a) => probe::probe(*a, cfg.timeout),
        Target::Server(template) => {
            let server = server::Server::start(template, &[], runner::start_bound(cfg))
                .map_err(|e| format!("the server did not start: {e}"))?;
            let found = probe::probe(server.addr, cfg.timeout);
            let log = server.stop();
            found.map_err(|e| {
                if log.is_empty() {
                    e
                } else {
                    format!("{e} (its log: {})", log.join(" | "))
                }
            })
        }
    }
}

/// `xscp check ARGS...` (the arguments after `check`).
pub fn main(args: &[String]) -> ExitCode {
    let o = match parse_args(args) {
        Ok(o) => o,
        Err(e) => {
            xscp::errln!("xscp check: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut out = io::stdout().lock();
    if o.help {
        xscp::outln!("{USAGE}\n\n{HELP}");
        return ExitCode::SUCCESS;
    }
    let suite = match load(&o) {
        Ok(s) => s,
        Err(e) => {
            xscp::errln!("xscp check: {e}");
            return ExitCode::from(2);
        }
    };
    let chosen: Vec<&Transcript> = suite.iter().filter(|t| selected(t, &o)).collect();
    if chosen.is_empty() {
        xscp::errln!("xscp check: no transcript matches {}", selection(&o));
        return ExitCode::from(2);
    }
    if o.list {
        for t in &chosen {
            let req = if t.requires.is_empty() {
                String::new()
            } else {
                format!("  requires {}", t.requires.join(" "))
            };
            xscp::outln!(
                "{:<44} §{:<16} {}  {}{req}",
                t.name,
                t.section,
                t.level,
                t.rule
            );
        }
        return ExitCode::SUCCESS;
    }
    if let Err(e) = writable(&o) {
        xscp::errln!("xscp check: {e}");
        return ExitCode::from(2);
    }
    let target = match (&o.addr, &o.server) {
        (_, Some(cmd)) => Target::Server(cmd.split_whitespace().map(String::from).collect()),
        (Some(a), None) => match resolve(a) {
            Ok(a) => Target::Addr(a),
            Err(e) => {
                xscp::errln!("xscp check: {e}");
                return ExitCode::from(2);
            }
        },
        (None, None) => return ExitCode::from(2),
    };
    let mut cfg = Config {
        target,
        timeout: o.timeout.unwrap_or(Duration::from_secs(5)),
        without: o.without.clone(),
        lacks: Vec::new(),
    };
    let found = match probe_target(&cfg) {
        Ok(f) => f,
        Err(e) => {
            xscp::errln!("xscp check: {e}");
            return ExitCode::from(1);
        }
    };
    cfg.lacks = runner::lacking(&found.capa);
    let broken_barrier = found.broken_barrier;
    if let Some(b) = &broken_barrier {
        // The root cause, once: the transcripts that rely on the barrier are not run.
        let _ = writeln!(out, "FAIL  (probe) {b}");
    }
    let mut results = Vec::with_capacity(chosen.len());
    for t in chosen {
        let uses_barrier = t
            .steps
            .iter()
            .any(|s| s.action == transcript::Action::Quiet);
        let mut run = match &broken_barrier {
            Some(_) if uses_barrier => runner::Run {
                outcome: Outcome::Skip("not run: it needs the ping barrier (see the probe)".into()),
                exchange: Vec::new(),
                server_log: Vec::new(),
            },
            _ => runner::run(t, &cfg),
        };
        if o.must_only
            && t.level == transcript::Level::Should
            && let Outcome::Fail(f) = run.outcome
        {
            run.outcome = Outcome::Warn(f);
        }
        let mut text = report::line(t, &run) + "\n";
        text += &report::failure(t, &run);
        if let Err(e) = write!(out, "{text}").and_then(|()| out.flush()) {
            // A reader that has gone (`| head`) ends the run quietly (console).
            return output_failed(&e);
        }
        if let Some(dir) = &o.diagrams {
            let path = dir.join(format!("{}.mmd", t.name));
            if let Err(e) = std::fs::write(&path, diagram::mermaid(t, &run)) {
                xscp::errln!("xscp check: cannot write {}: {e}", path.display());
            }
        }
        results.push((t, run));
    }
    let extra = usize::from(broken_barrier.is_some());
    if let Err(e) = writeln!(out, "{}", report::summary(&results, extra)).and_then(|()| out.flush())
    {
        return output_failed(&e);
    }
    if let Some(path) = &o.junit
        && let Err(e) = std::fs::write(path, report::junit(&results, broken_barrier.as_deref()))
    {
        xscp::errln!("xscp check: cannot write {}: {e}", path.display());
        return ExitCode::from(2);
    }
    if let Some(path) = &o.html {
        let page = html::page(
            o.addr.as_deref(),
            o.server.as_deref(),
            broken_barrier.as_deref(),
            &results,
        );
        if let Err(e) = std::fs::write(path, page) {
            xscp::errln!("xscp check: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    let failed = results
        .iter()
        .any(|(_, r)| matches!(r.outcome, Outcome::Fail(_)));
    if failed || broken_barrier.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Standard output failed while grading: status 0 without a word if its reader has gone,
/// else 2 with the reason. (Returning, not exiting, stops a server xscp started.)
fn output_failed(e: &io::Error) -> ExitCode {
    if xscp::console::is_closed(e) {
        return ExitCode::SUCCESS;
    }
    xscp::errln!("xscp check: cannot write to standard output: {e}");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Options, Usage> {
        parse_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn command_lines() {
        let o = args(&[
            "--server",
            "x {addr}",
            "--section=5.7",
            "--timeout",
            "250ms",
        ])
        .unwrap();
        assert_eq!(o.server.as_deref(), Some("x {addr}"));
        assert_eq!(o.timeout, Some(Duration::from_millis(250)));
        assert!(args(&[]).is_err());
        assert!(args(&["a:1", "--server", "x"]).is_err());
        assert!(args(&["a:1", "--builtin"]).is_err());
        assert!(args(&["--server", "xscpd -l 127.0.0.1:1030"]).is_err());
        assert!(args(&["a:1", "--timeout", "soon"]).is_err());
        assert!(args(&["a:1", "--timeout", "0s"]).is_err());
        assert!(args(&["--list"]).is_ok());
    }

    #[test]
    fn globs_and_sections() {
        assert!(glob("uname", "negotiating-uname-new"));
        assert!(glob("neg*new", "negotiating-uname-new"));
        assert!(!glob("neg*old", "negotiating-uname-new"));
        assert!(glob("*", "x"));
        let t = transcript::parse(
            "n",
            "n",
            "section: 5.7 hold\nlevel: MUST\nrule: r\na connect\n",
        )
        .unwrap();
        let with = |s: &str| Options {
            sections: vec![s.into()],
            ..Options::default()
        };
        assert!(selected(&t, &with("5.7")));
        assert!(selected(&t, &with("5")));
        assert!(!selected(&t, &with("5.8")));
        assert!(!selected(&t, &with("7")));
        assert!(selected(&t, &with("hold")));
    }

    #[test]
    fn the_builtin_suite_parses_and_lists_every_file() {
        for (name, text) in builtin::SUITE {
            if let Err(e) = transcript::parse(name, name, text) {
                panic!("{e}");
            }
        }
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin/xscp/transcripts");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "xt"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = builtin::SUITE.iter().map(|(n, _)| n.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed, "builtin.rs lists every transcript file");
    }
}
