//! The man pages in `man/`: clean for `mandoc -Tlint` (and for `man -l` where it exists),
//! in step with the programs' `--help` (every option both ways, and each default), and,
//! for `xscp(7)`, with the tables the server enforces (`xscpd --print-fsm`), compared row
//! by row after parsing both. mandoc is required: without it these tests fail, they do
//! not skip (`.ci/run` installs it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::harness::{run, try_run};

const PAGES: [&str; 5] = [
    "xscpd.1",
    "xscp.1",
    "xscp.7",
    "xscp-transcript.5",
    "xscpd-state.5",
];

fn page(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("man").join(name)
}

fn source(name: &str) -> String {
    std::fs::read_to_string(page(name)).unwrap_or_else(|e| panic!("read man/{name}: {e}"))
}

fn stdout_of(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

// --- troff, as far as these pages use it -------------------------------------------------

/// The text of a piece of troff source: escapes resolved or dropped (fonts, `\-`, `\&`,
/// `\%`, `\e`, `\(em`).
fn plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('-') => out.push('-'),
            Some('e') => out.push('\\'),
            Some('&' | '%') | None => {}
            Some(' ') => out.push(' '),
            Some('f') => {
                // \fB, \fI, \fR, \fP: a font change, no text.
                chars.next();
            }
            Some('(') => {
                let name: String = chars.by_ref().take(2).collect();
                out.push_str(match name.as_str() {
                    "em" => "\u{2014}",
                    "sc" => "\u{a7}",
                    "bu" => "\u{2022}",
                    _ => "?",
                });
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    out
}

/// Splits the arguments of a macro line, honouring double quotes.
fn macro_args(s: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    args.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            _ => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        args.push(cur);
    }
    args
}

/// The text a source line contributes: font macros (`.B`, `.BR`, ...) give their
/// arguments, other requests give nothing, text lines give themselves.
fn line_text(line: &str) -> String {
    let Some(req) = line.strip_prefix('.') else {
        return plain(line);
    };
    let (name, rest) = req.split_once(' ').unwrap_or((req, ""));
    let args = macro_args(rest);
    match name {
        "B" | "I" => plain(&args.join(" ")),
        "BR" | "RB" | "BI" | "IB" | "RI" | "IR" => plain(&args.concat()),
        _ => String::new(),
    }
}

/// The source lines of each `.SH` section, by name.
fn sections(src: &str) -> Vec<(String, Vec<&str>)> {
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    for line in src.lines() {
        if let Some(name) = line.strip_prefix(".SH ") {
            out.push((plain(name.trim_matches('"')), Vec::new()));
        } else if let Some((_, lines)) = out.last_mut() {
            lines.push(line);
        }
    }
    out
}

fn section<'a>(src: &'a str, name: &str) -> Vec<&'a str> {
    sections(src)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, lines)| lines)
        .unwrap_or_else(|| panic!("no section {name}"))
}

/// The `.TP` entries of a section: the options named in each tag line, and the entry's
/// text (whitespace collapsed).
fn tagged_entries(lines: &[&str]) -> Vec<(Vec<String>, String)> {
    let mut entries: Vec<(Vec<String>, String)> = Vec::new();
    let mut lines = lines.iter();
    while let Some(line) = lines.next() {
        if *line == ".TP" {
            let tag = lines.next().map(|l| line_text(l)).unwrap_or_default();
            let options = tag
                .split(|c: char| c.is_whitespace() || c == ',')
                .map(|t| t.trim_matches(|c| c == '[' || c == ']'))
                .filter(|t| t.starts_with('-'))
                .map(str::to_string)
                .collect();
            entries.push((options, String::new()));
        } else if let Some((_, body)) = entries.last_mut() {
            body.push(' ');
            body.push_str(&line_text(line));
        }
    }
    for (_, body) in &mut entries {
        *body = body.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    entries
}

/// Every tbl table in the source, as rows of plain cells (the header row first). Handles
/// the `tab(x)` option and `T{ ... T}` text blocks.
fn tbl_tables(src: &str) -> Vec<Vec<Vec<String>>> {
    let mut tables = Vec::new();
    let mut lines = src.lines();
    while lines.by_ref().any(|l| l == ".TS") {
        let mut tab = '\t';
        // The options line (ending with `;`) is optional; format lines end with `.`.
        for l in lines.by_ref() {
            if let Some(opts) = l.strip_suffix(';') {
                if let Some(i) = opts.find("tab(") {
                    tab = opts[i + 4..].chars().next().unwrap_or('\t');
                }
                continue;
            }
            if l.ends_with('.') {
                break;
            }
        }
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut cells: Vec<String> = Vec::new();
        let mut block: Option<Vec<String>> = None;
        for l in lines.by_ref() {
            if l == ".TE" {
                break;
            }
            let rest = match block.take() {
                Some(mut text) => match l.strip_prefix("T}") {
                    Some(rest) => {
                        cells.push(plain(&text.join(" ")));
                        match rest.strip_prefix(tab) {
                            Some(r) => r,
                            None => {
                                rows.push(std::mem::take(&mut cells));
                                continue;
                            }
                        }
                    }
                    None => {
                        text.push(l.to_string());
                        block = Some(text);
                        continue;
                    }
                },
                None if l == "_" || l == "=" || l.starts_with('.') => continue,
                None => l,
            };
            let pieces: Vec<&str> = rest.split(tab).collect();
            for (i, piece) in pieces.iter().enumerate() {
                if *piece == "T{" && i + 1 == pieces.len() {
                    block = Some(Vec::new());
                } else {
                    cells.push(plain(piece));
                }
            }
            if block.is_none() {
                rows.push(std::mem::take(&mut cells));
            }
        }
        tables.push(rows);
    }
    tables
}

/// The table whose header row is `header`, without that row.
fn table_with_header(tables: &[Vec<Vec<String>>], header: &[&str]) -> Vec<Vec<String>> {
    let t = tables
        .iter()
        .find(|t| t.first().is_some_and(|h| h == header))
        .unwrap_or_else(|| panic!("no table with the header {header:?}"));
    t[1..].to_vec()
}

// --- --help and --print-fsm --------------------------------------------------------------

/// The options `--help` lists, each with the text describing it (continuation lines
/// included).
fn help_options(help: &str) -> Vec<(Vec<String>, String)> {
    let mut out: Vec<(Vec<String>, String)> = Vec::new();
    let body = help
        .split_once("\nOptions:\n")
        .map(|(_, b)| b)
        .expect("an Options: section in --help");
    for line in body.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            break;
        }
        if !trimmed.starts_with('-') {
            if let Some((_, text)) = out.last_mut() {
                text.push(' ');
                text.push_str(trimmed);
            }
            continue;
        }
        let mut names = Vec::new();
        let mut words = trimmed.split_whitespace().peekable();
        // Option names and their placeholders (ADDR, [FORMAT]) come first.
        while let Some(w) =
            words.next_if(|w| w.starts_with('-') || !w.chars().any(|c| c.is_ascii_lowercase()))
        {
            if w.starts_with('-') {
                names.push(w.trim_end_matches(',').to_string());
            }
        }
        out.push((names, words.collect::<Vec<_>>().join(" ")));
    }
    out
}

/// The default `--help` states in `text`, if any: the word after "default".
fn default_in(text: &str) -> Option<String> {
    let (_, after) = text.split_once("default ")?;
    let word = after.split_whitespace().next()?;
    Some(word.trim_end_matches([')', ';', ',']).to_string())
}

/// Does `text` say "default is VALUE" (VALUE not followed by more of a word)?
fn states_default(text: &str, value: &str) -> bool {
    let needle = format!("default is {value}");
    text.match_indices(&needle).any(|(i, _)| {
        !text[i + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

/// The rows of the Markdown table under `## heading` in `md`, header and separator left
/// out, cells trimmed and without backticks.
fn markdown_table(md: &str, heading: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let start = md
        .find(&format!("## {heading}\n"))
        .unwrap_or_else(|| panic!("no ## {heading} in --print-fsm"));
    let rows: Vec<Vec<String>> = md[start..]
        .lines()
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let inner = l.trim().trim_start_matches('|').trim_end_matches('|');
            // Cells are separated by " | "; a `|` inside a cell is escaped (notif on\|off).
            inner
                .split(" | ")
                .map(|c| c.trim().trim_matches('`').replace("\\|", "|"))
                .collect()
        })
        .collect();
    let header = rows[0].clone();
    assert!(rows[1].iter().all(|c| c.starts_with("---")), "{rows:?}");
    (header, rows[2..].to_vec())
}

// --- the checks --------------------------------------------------------------------------

#[test]
fn every_page_is_mandoc_lint_clean() {
    for name in PAGES {
        let path = page(name);
        let out =
            try_run("mandoc", &["-Tlint", &path.to_string_lossy()], &[]).unwrap_or_else(|e| {
                panic!("mandoc is required for the man page tests (apt-get install mandoc): {e}")
            });
        let messages = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && messages.is_empty(),
            "mandoc -Tlint man/{name}:\n{messages}"
        );
    }
}

/// Where `man` exists (man-db with groff), it renders each page at 80 columns without a
/// single warning (tables too wide, unknown macros, ...).
#[test]
fn man_renders_every_page_without_warnings() {
    if try_run("man", &["--version"], &[]).is_err() {
        eprintln!("man is not installed: only mandoc checked the pages");
        return;
    }
    for name in PAGES {
        let path = page(name);
        let out = try_run(
            "man",
            &["-l", &path.to_string_lossy()],
            &[
                ("MANWIDTH", "80"),
                ("MANPAGER", "cat"),
                ("PAGER", "cat"),
                ("LC_ALL", "C.UTF-8"),
            ],
        )
        .expect("run man");
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.is_empty(),
            "man -l man/{name}:\n{warnings}"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("NAME") && text.contains("SEE ALSO"), "{text}");
    }
}

/// Every option `--help` prints is in the page's OPTIONS, with the same default; and every
/// option the page describes is one `--help` prints.
fn options_agree(program: &str, page_name: &str) {
    let help = stdout_of(program, &["--help"]);
    let help_opts = help_options(&help);
    let src = source(page_name);
    let entries = tagged_entries(&section(&src, "OPTIONS"));

    let in_help: BTreeSet<&str> = help_opts
        .iter()
        .flat_map(|(n, _)| n.iter().map(String::as_str))
        .collect();
    let in_page: BTreeSet<&str> = entries
        .iter()
        .flat_map(|(n, _)| n.iter().map(String::as_str))
        .collect();
    assert!(!in_help.is_empty(), "no options found in --help:\n{help}");
    let missing: Vec<_> = in_help.difference(&in_page).collect();
    let unknown: Vec<_> = in_page.difference(&in_help).collect();
    assert!(
        missing.is_empty(),
        "options of --help missing from man/{page_name}: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "options in man/{page_name} that --help does not know: {unknown:?}"
    );

    for (names, text) in &help_opts {
        let Some(value) = default_in(text) else {
            continue;
        };
        let (_, body) = entries
            .iter()
            .find(|(n, _)| n.contains(&names[names.len() - 1]))
            .expect("entry found above");
        assert!(
            states_default(body, &value),
            "man/{page_name}: {names:?} should say \"default is {value}\" as --help does; \
             it says: {body}"
        );
    }
}

#[test]
fn xscpd_options_match_its_help() {
    options_agree(env!("CARGO_BIN_EXE_xscpd"), "xscpd.1");
}

#[test]
fn xscp_options_match_its_help() {
    options_agree(env!("CARGO_BIN_EXE_xscp"), "xscp.1");
}

/// The transition table of xscp(7) is the server's, row for row (from, to, event).
#[test]
fn transition_table_matches_print_fsm() {
    let md = stdout_of(env!("CARGO_BIN_EXE_xscpd"), &["--print-fsm"]);
    let (header, fsm) = markdown_table(&md, "Transitions");
    assert_eq!(header[..3], ["from", "to", "event"]);
    let fsm: Vec<Vec<String>> = fsm.into_iter().map(|r| r[..3].to_vec()).collect();
    let man = table_with_header(&tbl_tables(&source("xscp.7")), &["from", "to", "event"]);
    for (i, (m, f)) in man.iter().zip(&fsm).enumerate() {
        assert_eq!(
            m,
            f,
            "row {} of the transition table: xscp(7) vs --print-fsm",
            i + 1
        );
    }
    assert_eq!(
        man.len(),
        fsm.len(),
        "number of transitions: xscp(7) vs --print-fsm"
    );
    assert!(!man.is_empty());
}

/// The legality table of xscp(7) is the server's, row for row and cell for cell.
#[test]
fn legality_table_matches_print_fsm() {
    let md = stdout_of(env!("CARGO_BIN_EXE_xscpd"), &["--print-fsm"]);
    let header = ["command", "NEGOTIATING", "ESTABLISHED"];
    let (md_header, fsm) = markdown_table(&md, "Legality");
    assert_eq!(md_header, header);
    let man = table_with_header(&tbl_tables(&source("xscp.7")), &header);
    for (i, (m, f)) in man.iter().zip(&fsm).enumerate() {
        assert_eq!(
            m,
            f,
            "row {} of the legality table: xscp(7) vs --print-fsm",
            i + 1
        );
    }
    assert_eq!(
        man.len(),
        fsm.len(),
        "number of commands: xscp(7) vs --print-fsm"
    );
}

/// The state diagrams of xscp(7) (the listener's life and a connection's) show every
/// state and every event of the table, and every command of the legality table opens with
/// its synopsis in a subsection of 5 COMMANDS.
#[test]
fn diagram_and_command_sections_cover_the_tables() {
    let md = stdout_of(env!("CARGO_BIN_EXE_xscpd"), &["--print-fsm"]);
    let src = source("xscp.7");
    let states = section(&src, "3 STATES AND TRANSITIONS");
    let mut diagram = String::new();
    let mut inside = false;
    for l in &states {
        match *l {
            ".EX" => inside = true,
            ".EE" => inside = false,
            _ if inside => diagram += &(plain(l) + "\n"),
            _ => {}
        }
    }
    let (_, transitions) = markdown_table(&md, "Transitions");
    for row in &transitions {
        for word in &row[..3] {
            assert!(
                diagram.contains(word.as_str()),
                "{word} is not in the diagrams"
            );
        }
    }
    let commands = section(&src, "5 COMMANDS");
    // A command's synopsis is a line of its own, a paragraph's first: `.PP`, `.B uname \fIname\fP`.
    let synopses: Vec<String> = commands
        .windows(2)
        .filter(|w| w[0] == ".PP" || w[0].starts_with(".SS "))
        .map(|w| line_text(w[1]))
        .collect();
    let (_, legality) = markdown_table(&md, "Legality");
    for row in legality.iter().filter(|r| r[0] != "any other keyword") {
        let synopsis = row[0].replace(['<', '>'], "");
        assert!(
            synopses.contains(&synopsis),
            "no paragraph opens with {synopsis:?} under 5 COMMANDS; there are {synopses:?}"
        );
    }
}

// --- section numbers --------------------------------------------------------------------

/// The numbers of xscp(7)'s numbered headings: `.SH "5 COMMANDS"` gives 5, `.SS "5.8
/// Resume"` gives 5.8.
fn numbered_headings() -> BTreeSet<String> {
    source("xscp.7")
        .lines()
        .filter_map(|l| l.strip_prefix(".SH ").or_else(|| l.strip_prefix(".SS ")))
        .filter_map(|h| {
            let number = h.trim_matches('"').split_whitespace().next()?;
            number
                .starts_with(|c: char| c.is_ascii_digit())
                .then(|| number.to_string())
        })
        .collect()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The files whose citations a reader follows: the sources (with the built-in transcripts
/// of `xscp check`), the man pages, the README and src/ARCHITECTURE.md.
fn citing_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md"), root.join("src/ARCHITECTURE.md")];
    files_under(&root.join("src"), &mut files);
    files_under(&root.join("man"), &mut files);
    files
}

/// The citing files and the tests, whose comments cite the rule each test checks (this
/// file left out: its examples of wrong citations are wrong on purpose).
fn citing_files_and_tests() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = citing_files();
    files_under(&root.join("tests"), &mut files);
    files.retain(|p| !p.ends_with("tests/man.rs"));
    files
}

/// The section numbers `text` cites: `§5.8` (in troff `\(sc5.8`), and the `section: 5.8
/// resume` header of a transcript, which `xscp check` prints as `§5.8`.
fn cited_sections(text: &str) -> Vec<String> {
    let number = |rest: &str| -> Option<String> {
        let n: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let n = n.trim_end_matches('.');
        (!n.is_empty()).then(|| n.to_string())
    };
    let mut out = Vec::new();
    for mark in ["§", "\\(sc"] {
        out.extend(
            text.match_indices(mark)
                .filter_map(|(i, _)| number(&text[i + mark.len()..])),
        );
    }
    out.extend(
        text.lines()
            .filter_map(|l| l.strip_prefix("section: "))
            .filter_map(number),
    );
    out
}

/// Every section number the project cites or prints exists in xscp(7) as a numbered
/// heading: a reader who meets `§5.8` in a report, a comment or a page finds 5.8 there.
#[test]
fn every_cited_section_exists_in_xscp_7() {
    let headings = numbered_headings();
    for n in ["1", "2", "3", "4", "5", "6", "7", "5.7", "5.8", "5.9"] {
        assert!(
            headings.contains(n),
            "xscp(7) has no section {n}: {headings:?}"
        );
    }
    let mut missing = Vec::new();
    let mut cited = 0;
    for path in citing_files_and_tests() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for n in cited_sections(&text) {
            cited += 1;
            if !headings.contains(&n) {
                missing.push(format!("{}: §{n}", path.display()));
            }
        }
    }
    assert!(
        cited > 100,
        "only {cited} citations found: is the scan right?"
    );
    assert!(
        missing.is_empty(),
        "cited but not a section of xscp(7) ({headings:?}):\n{}",
        missing.join("\n")
    );
}

/// Nothing the project ships sends its reader to a file it does not ship: citations name
/// xscp(7), not the protocol's source text.
#[test]
fn nothing_cites_a_file_the_project_does_not_ship() {
    let mut found = Vec::new();
    for path in citing_files() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            if line.contains("PROTOCOL.md") {
                found.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "PROTOCOL.md cited:\n{}", found.join("\n"));
}

#[test]
fn citation_parser_reads_marks_and_transcript_headers() {
    assert_eq!(
        cited_sections("see §5.8. And \\(sc3, §7\nsection: 5 uname\n(§5.7)"),
        ["5.8", "7", "5.7", "3", "5"]
    );
}

// --- what a citation says it finds -------------------------------------------------------

/// The numbered headings of xscp(7) with their titles, in the page's order: `("5.8",
/// "Resume")`, `("1", "TRANSPORT AND FRAMING")`.
fn numbered_titles() -> Vec<(String, String)> {
    source("xscp.7")
        .lines()
        .filter_map(|l| l.strip_prefix(".SH ").or_else(|| l.strip_prefix(".SS ")))
        .filter_map(|h| {
            let (number, title) = h.trim_matches('"').split_once(' ')?;
            number
                .starts_with(|c: char| c.is_ascii_digit())
                .then(|| (number.to_string(), plain(title)))
        })
        .collect()
}

/// Is `sub` section `n` or one of its subsections (`5.8` of `5`)?
fn within(sub: &str, n: &str) -> bool {
    sub == n || sub.starts_with(&format!("{n}."))
}

/// The words of `text`, lower case: runs of letters, digits, `-` and `_`.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The text of each numbered section of xscp(7), headings included, lower case; a
/// section's text holds its subsections' (5 holds 5.1 to 5.9).
fn section_texts() -> Vec<(String, String)> {
    let src = source("xscp.7");
    let mut own: Vec<(Option<String>, String)> = vec![(None, String::new())];
    for line in src.lines() {
        let heading = line
            .strip_prefix(".SH ")
            .or_else(|| line.strip_prefix(".SS "));
        if let Some(h) = heading {
            let h = plain(h.trim_matches('"'));
            let number = h.split(' ').next().unwrap_or("").to_string();
            let numbered = number.starts_with(|c: char| c.is_ascii_digit());
            own.push((numbered.then_some(number), h.clone()));
        }
        let (_, text) = own.last_mut().expect("a first entry");
        text.push(' ');
        text.push_str(&line_text(line));
    }
    let numbered: Vec<(String, String)> = (own.into_iter())
        .filter_map(|(n, text)| Some((n?, text.to_lowercase())))
        .collect();
    (numbered.iter())
        .map(|(n, _)| {
            let text = (numbered.iter())
                .filter(|(sub, _)| within(sub, n))
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            (n.clone(), text)
        })
        .collect()
}

/// The command keywords of the legality table of xscp(7): `uname`, `ping`, ...
fn command_keywords() -> BTreeSet<String> {
    let header = ["command", "NEGOTIATING", "ESTABLISHED"];
    let rows = table_with_header(&tbl_tables(&source("xscp.7")), &header);
    (rows.iter())
        .filter_map(|r| r[0].split(' ').next())
        .filter(|w| w.chars().all(|c| c.is_ascii_lowercase()))
        .filter(|w| *w != "any")
        .map(str::to_string)
        .collect()
}

/// What each citation of `text` says it finds there: `(number, words)` for `§5.4 cname`,
/// `§5.4 users, notif`, `\(sc5.6 chatr`, `§5, `uname``, and the transcript header
/// `section: 5.2 server ping` (all of its title). The words stop at the first that is not
/// a command keyword, except in a transcript header.
fn cited_words(text: &str, keywords: &BTreeSet<String>) -> Vec<(String, Vec<String>)> {
    let number_len = |rest: &str| -> usize {
        let n = rest
            .char_indices()
            .take_while(|(_, c)| c.is_ascii_digit() || *c == '.')
            .last()
            .map_or(0, |(i, c)| i + c.len_utf8());
        rest[..n].trim_end_matches('.').len()
    };
    let mut out = Vec::new();
    for mark in ["§", "\\(sc"] {
        for (i, _) in text.match_indices(mark) {
            let rest = &text[i + mark.len()..];
            let len = number_len(rest);
            if len == 0 {
                continue;
            }
            let n = rest[..len].to_string();
            let mut rest = &rest[len..];
            let mut found = Vec::new();
            while let Some(r) = rest.strip_prefix(", ").or_else(|| rest.strip_prefix(' ')) {
                let r = r.strip_prefix('`').unwrap_or(r);
                let end = r.find(|c: char| !c.is_ascii_lowercase()).unwrap_or(r.len());
                if !keywords.contains(&r[..end]) {
                    break;
                }
                found.push(r[..end].to_string());
                rest = r[end..].strip_prefix('`').unwrap_or(&r[end..]);
            }
            if !found.is_empty() {
                out.push((n, found));
            }
        }
    }
    for line in text.lines() {
        if let Some((n, title)) = (line.strip_prefix("section: ")).and_then(|h| h.split_once(' ')) {
            out.push((n.to_string(), words(title)));
        }
    }
    out
}

/// Every command a citation names is one that section's heading, or a subsection's,
/// names: `§5.5 cname` sends the reader to chatm. And every word of a transcript's
/// `section:` title is in that section of xscp(7): `xscp check` prints `§2 replies`, and
/// section 2 speaks of replies.
#[test]
fn every_citation_finds_what_it_names_in_its_section() {
    let keywords = command_keywords();
    assert!(
        ["uname", "cname", "chatm", "chatr", "capa"]
            .iter()
            .all(|k| keywords.contains(*k)),
        "{keywords:?}"
    );
    let titles = numbered_titles();
    let texts = section_texts();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut wrong = Vec::new();
    let mut checked = 0;
    for path in citing_files_and_tests() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for (n, cited) in cited_words(&text, &keywords) {
            checked += 1;
            let headings: Vec<String> = (titles.iter())
                .filter(|(sub, _)| within(sub, &n))
                .flat_map(|(_, t)| words(t))
                .collect();
            let body = (texts.iter()).find(|(m, _)| *m == n).map(|(_, t)| words(t));
            for w in &cited {
                let ok = if keywords.contains(w) {
                    headings.contains(w)
                } else {
                    body.as_ref()
                        .is_some_and(|b| b.iter().any(|b| b.starts_with(w.as_str())))
                };
                if !ok {
                    let shown = path.strip_prefix(root).unwrap_or(&path);
                    wrong.push(format!("{}: §{n} {w}", shown.display()));
                }
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} citations checked: is the scan right?"
    );
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "cited in a section of xscp(7) that does not name it:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn cited_words_reads_commands_after_a_number() {
    let keywords: BTreeSet<String> = ["uname", "ping", "cname", "chatm", "notif"]
        .map(String::from)
        .into();
    assert_eq!(
        cited_words(
            "(§5.1 uname, ping; §7) §5.5 cname + chatm \\(sc5.4 notif. §5, `uname`\n\
             §5.8 Copies §6\nsection: 2 replies",
            &keywords
        ),
        [
            ("5.1".to_string(), vec!["uname".to_string(), "ping".into()]),
            ("5.5".into(), vec!["cname".into()]),
            ("5".into(), vec!["uname".into()]),
            ("5.4".into(), vec!["notif".into()]),
            ("2".into(), vec!["replies".into()]),
        ]
    );
}

/// The index of sections in xscp(7)'s DESCRIPTION names every numbered heading, and each
/// by the start of its title: renumbering a subsection cannot leave the index behind.
#[test]
fn the_index_of_sections_matches_the_headings() {
    let src = source("xscp.7");
    let description: String = section(&src, "DESCRIPTION")
        .iter()
        .map(|l| line_text(l) + "\n")
        .collect();
    let titles = numbered_titles();
    for (n, title) in &titles {
        let entry = if n.contains('.') {
            // "5.8 resume," in the entry of 5.
            let at = description
                .find(&format!(" {n} "))
                .unwrap_or_else(|| panic!("the index of xscp(7) has no {n}"));
            description[at + n.len() + 2..]
                .split([',', '\n'])
                .next()
                .unwrap_or("")
                .to_string()
        } else {
            // A tag line "5", then its title on the next line.
            let mut lines = description.lines().skip_while(|l| l.trim() != n);
            lines.next();
            let next = lines.next().unwrap_or("");
            next.split(':').next().unwrap_or("").to_string()
        };
        let entry = entry.trim().to_lowercase();
        assert!(
            !entry.is_empty() && title.to_lowercase().starts_with(&entry),
            "the index of xscp(7) calls {n} {entry:?}, its heading is {title:?}"
        );
    }
}

/// The run of the built-in suite that xscp(1) shows counts as many transcripts as the
/// suite has: adding transcripts cannot leave the example behind.
#[test]
fn the_example_run_of_xscp_check_counts_the_builtin_suite() {
    let listed = stdout_of(env!("CARGO_BIN_EXE_xscp"), &["check", "--list"]);
    let builtin = listed.lines().filter(|l| !l.trim().is_empty()).count();
    let src = source("xscp.1");
    let shown = (src.lines())
        .find_map(|l| l.strip_suffix(" passed, 0 failed, 0 skipped"))
        .expect("an example run of xscp check in xscp(1)");
    assert_eq!(
        shown,
        builtin.to_string(),
        "xscp(1) shows a run of {shown} transcripts; the built-in suite has {builtin}"
    );
}

/// The failure xscp(1) shows is what `xscp check` prints for that built-in transcript: the
/// rule as the transcript states it, with its section and level (`(xscp(7) §7 limits,
/// MUST)`), and the step as the line of the transcript that holds it. A transcript
/// that changes cannot leave the example behind.
#[test]
fn the_example_failure_of_xscp_check_is_the_builtin_transcript() {
    let src = source("xscp.1");
    let lines: Vec<String> = src.lines().map(plain).collect();
    let fail = (lines.iter())
        .position(|l| l.starts_with("FAIL  "))
        .expect("an example failure of xscp check in xscp(1)");
    let name = lines[fail]
        .split_whitespace()
        .nth(1)
        .expect("a transcript name");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/bin/xscp/transcripts")
        .join(format!("{name}.xt"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let header = |key: &str| {
        (text.lines())
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("{path:?}: no {key}"))
            .trim()
            .to_string()
    };
    let (section, level) = (header("section:"), header("level:"));
    assert!(
        lines[fail].contains(&format!("\u{a7}{section} ")) && lines[fail].ends_with(&level),
        "xscp(1): {} should show \u{a7}{section} and {level}",
        lines[fail]
    );

    // The rule, as wrapped in the page, up to the step.
    let details: Vec<&str> = lines[fail + 1..].iter().map(|l| l.trim()).collect();
    let step_at = (details.iter())
        .position(|l| l.starts_with("step:"))
        .expect("the step of the failure");
    let rule = details[..step_at].join(" ");
    let rule = rule.strip_prefix("rule:").expect("the rule of the failure");
    let shown: Vec<&str> = rule.split_whitespace().collect();
    let printed = format!("{} (xscp(7) \u{a7}{section}, {level})", header("rule:"));
    assert_eq!(
        shown,
        printed.split_whitespace().collect::<Vec<_>>(),
        "xscp(1): the rule of the example failure is not what xscp check prints"
    );

    // `builtin:NAME.xt:N: STEP`: line N of the transcript is STEP.
    let step = details[step_at].strip_prefix("step:").unwrap().trim();
    let rest = step
        .strip_prefix(&format!("builtin:{name}.xt:"))
        .unwrap_or_else(|| panic!("xscp(1): step {step:?} is not builtin:{name}.xt:N: ..."));
    let (n, shown_step) = rest.split_once(": ").expect("N: STEP");
    let n: usize = n.parse().expect("a line number");
    assert_eq!(
        text.lines().nth(n - 1).map(str::trim),
        Some(shown_step),
        "xscp(1): line {n} of {name}.xt is not the step the example shows"
    );
}

/// No sentence ends inside a font escape (`.BI "ping " token\fR.\fP`): mandoc then
/// does not see its end and sets one space after it, not two; `.IR token .` ends it.
#[test]
fn no_sentence_ends_inside_a_font_escape() {
    let found =
        source_lines_where(|line| line.ends_with("\\fR.\\fP") || line.ends_with("\\fP.\\fR"));
    assert!(
        found.is_empty(),
        "a sentence that ends in a font escape:\n{}",
        found.join("\n")
    );
}

/// In running text `-ERR` and its code stay on one line (`\-ERR\ [FULL]`): a reader who
/// meets `-ERR` at the end of a line and `[FULL] server full` on the next reads two
/// things. Examples (`.EX`) and tables are not filled, and keep plain spaces.
#[test]
fn err_and_its_code_are_never_split() {
    // (Every page closes what it opens: the state does not run on into the next.)
    let mut unfilled = false;
    let found = source_lines_where(|line| match line {
        ".EX" | ".TS" => {
            unfilled = true;
            false
        }
        ".EE" | ".TE" => {
            unfilled = false;
            false
        }
        _ => !unfilled && !line.starts_with(".\\\"") && line.contains("\\-ERR ["),
    });
    assert!(
        found.is_empty(),
        "write \\-ERR\\ [ (a space that does not break):\n{}",
        found.join("\n")
    );
}

/// The man pages' sources are ASCII outside comments: a `§` or `—` typed as such comes out
/// as `Â§` from `groff -man` or `nroff -man` without preconv; `\(sc`, `\(em` are portable.
#[test]
fn man_sources_are_ascii() {
    let found = source_lines_where(|line| !line.starts_with(".\\\"") && !line.is_ascii());
    assert!(
        found.is_empty(),
        "non-ASCII in man sources (write \\(sc for §, \\(em for —):\n{}",
        found.join("\n")
    );
}

/// The source lines of the man pages that `bad` picks, each as `man/<page>:<n>: <line>`,
/// pages and lines in order.
fn source_lines_where(mut bad: impl FnMut(&str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for name in PAGES {
        for (i, line) in source(name).lines().enumerate() {
            if bad(line) {
                found.push(format!("man/{name}:{}: {line}", i + 1));
            }
        }
    }
    found
}

// --- the parsers themselves ---------------------------------------------------------------

#[test]
fn tbl_parser_reads_text_blocks() {
    let src = ".TS\ntab(@) box;\nl l.\na@b\n_\nT{\nlong\ntext\nT}@x\ny@T{\nz\nT}\n.TE\n";
    assert_eq!(
        tbl_tables(src),
        vec![vec![
            vec!["a".to_string(), "b".into()],
            vec!["long text".into(), "x".into()],
            vec!["y".into(), "z".into()],
        ]]
    );
}

#[test]
fn help_parser_reads_names_and_defaults() {
    let help = "x\n\nOptions:\n  -l, --listen ADDR   where (default 1.2.3.4:5)\n      \
                --print-fsm [FORMAT]  print (markdown or\n                 dot; default \
                markdown) and exit\n  -q                  quiet\n\nmore";
    let opts = help_options(help);
    assert_eq!(opts.len(), 3);
    assert_eq!(opts[0].0, ["-l", "--listen"]);
    assert_eq!(default_in(&opts[0].1).as_deref(), Some("1.2.3.4:5"));
    assert_eq!(opts[1].0, ["--print-fsm"]);
    assert_eq!(default_in(&opts[1].1).as_deref(), Some("markdown"));
    assert_eq!(default_in(&opts[2].1), None);
    assert!(states_default("The default is 3.", "3"));
    assert!(!states_default("The default is 30s.", "3"));
}

/// The state file of an example in `page`'s `section`, as the file would hold it.
fn state_example(page: &str, section_name: &str) -> String {
    let src = source(page);
    let lines = section(&src, section_name);
    let start = (lines.iter())
        .position(|l| l.starts_with("xscpd\\-state "))
        .unwrap_or_else(|| panic!("no state file in {page} {section_name}"));
    let end = start
        + (lines[start..].iter())
            .position(|l| *l == ".EE")
            .expect("the end");
    lines[start..end].iter().map(|l| plain(l) + "\n").collect()
}

/// `text` loaded by the server and written back: the records it writes (its comment,
/// which names the time of the save, left out) and the state.
fn load_and_save(text: &str) -> (Vec<String>, xscp::state::Saved) {
    let dir = std::env::temp_dir().join(format!("xscp-man-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a directory");
    let path = dir.join("state");
    std::fs::write(&path, text).expect("write the example");
    let state = xscp::state::load(&path)
        .unwrap_or_else(|e| panic!("the example does not load: {e}\n{text}"))
        .expect("a state");
    xscp::state::write_atomic(&path, &state, std::time::SystemTime::now()).expect("save");
    let written = std::fs::read_to_string(&path).expect("read it back");
    let _ = std::fs::remove_dir_all(&dir);
    let records = written.lines().filter(|l| !l.starts_with('#'));
    (records.map(String::from).collect(), state)
}

/// The records of `text` (its comments left out).
fn records(text: &str) -> Vec<String> {
    let records = text.lines().filter(|l| !l.starts_with('#'));
    records.map(String::from).collect()
}

/// The example files of xscpd-state(5) and xscpd(1) are what the server writes: loaded
/// and saved again, their records come out the same; and the senders are as the page
/// explains them.
#[test]
fn the_state_file_examples_are_what_the_server_writes() {
    let text = state_example("xscpd.1", "FILES");
    assert_eq!(load_and_save(&text).0, records(&text));
    let text = state_example("xscpd-state.5", "EXAMPLES");
    let (written, state) = load_and_save(&text);
    assert_eq!(written, records(&text));
    let names: Vec<&str> = state.holds.iter().map(|h| h.nick.as_str()).collect();
    assert_eq!(names, ["alice", "Bob_2"]);
    // "one" from Bob_2's session, "two" from a session not saved, the receipt from none.
    let bob = state.holds[1].session;
    let none = xscp::state::NO_SENDER;
    assert_eq!(state.holds[0].senders.as_slice(), [bob, none, none]);
}
