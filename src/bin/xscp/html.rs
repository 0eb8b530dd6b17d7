//! Hand-written HTML for the pages `xscp` writes (`xscp check --html`, `xscp diagram
//! --html`): escaping, and one self-contained page.
//!
//! A page loads nothing: its style sheet is inline, its pictures are inline SVG, it has no
//! script and names no font but the reader's own `sans-serif` and `monospace`, so that it
//! opens from a USB stick as it opened here. It prints as it reads (print CSS: no
//! navigation, no case split across pages where it fits on one, colours kept).

use std::fmt::Write as _;

/// Text safe in HTML and SVG, as element content and inside a quoted attribute; control
/// characters, which XML cannot carry even escaped, are shown as `\xNN`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in crate::seqdiag::printable(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A value for an `id` attribute (and the `#fragment` that links to it): letters, digits
/// and `-`; everything else becomes `-`.
pub fn anchor(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// `n` things in words: `1 rule`, `2 rules` (English plurals in `s`).
pub fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The style sheet of every page.
const CSS: &str = r#"
:root { --pass: #1e7e34; --fail: #b00020; --skip: #6c757d; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font-family: sans-serif; font-size: 15px; line-height: 1.45; color: #1b1f23;
  max-width: 78rem; margin: 0 auto; padding: 1.5rem; }
h1 { font-size: 1.6rem; margin: 0 0 .3rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .6rem; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.05rem; margin: 0 0 .4rem; }
code, pre, .mono { font-family: monospace; font-size: .9em; }
pre { background: #f6f8fa; border: 1px solid var(--line); padding: .5rem .7rem;
  overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
table { border-collapse: collapse; margin: .4rem 0 1rem; }
th, td { border: 1px solid var(--line); padding: .25rem .6rem; text-align: left;
  vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.grade { font-size: 1.15rem; padding: .6rem .9rem; border-left: 6px solid var(--skip);
  background: #f6f8fa; margin: .8rem 0; }
.grade.pass { border-color: var(--pass); }
.grade.fail { border-color: var(--fail); }
.verdict { display: inline-block; min-width: 3.6em; text-align: center; font-weight: bold;
  color: #fff; border-radius: 3px; padding: 0 .35em; font-size: .85em; }
.verdict.pass { background: var(--pass); }
.verdict.fail { background: var(--fail); }
.verdict.warn { background: #9a6700; }
.verdict.skip { background: var(--skip); }
td.pass { background: #d4edda; } td.fail { background: #f8d7da; } td.skip { background: #e2e3e5; }
td.warn { background: #fff3cd; }
td.ping { background: #fff3cd; }
.case { border: 1px solid var(--line); border-radius: 4px; padding: .8rem 1rem;
  margin: 1rem 0; }
.case h2, .case h3 { margin-top: 0; }
td.mono, .nowrap { white-space: nowrap; }
.case.fail { border-left: 6px solid var(--fail); }
.case.warn { border-left: 6px solid #9a6700; }
.case.pass { border-left: 6px solid var(--pass); }
.case.skip { border-left: 6px solid var(--skip); }
.meta { color: #57606a; margin: 0 0 .5rem; }
dl.expect { display: grid; grid-template-columns: max-content 1fr; gap: .2rem .8rem; }
dl.expect dt { font-weight: bold; }
dl.expect dd { margin: 0; font-family: monospace; white-space: pre-wrap; word-break: break-all; }
dl.expect dd.actual { color: var(--fail); }
figure { margin: .6rem 0; overflow-x: auto; }
figure svg { display: block; max-width: none; height: auto; }
figcaption { color: #57606a; font-size: .85em; }
nav ul { columns: 2; padding-left: 1.2rem; }
.legend span { margin-right: 1rem; }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  nav, .screen-only { display: none; }
  figure, table, dl, .meta, .server-log { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  .case { padding: .4rem .6rem; margin: .6rem 0; }
  .case.pass figure svg { max-width: 60%; }
  figure { overflow: visible; }
  figure svg { max-width: 100%; }
  a { color: inherit; text-decoration: none; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;

/// One self-contained page, built up in order.
#[derive(Debug)]
pub struct Page {
    title: String,
    body: String,
}

impl Page {
    /// An empty page whose `<title>` and first heading are `title`.
    pub fn new(title: &str) -> Page {
        Page {
            title: title.to_string(),
            body: format!("<h1>{}</h1>\n", escape(title)),
        }
    }

    /// Appends markup (already escaped by whoever wrote it).
    pub fn push(&mut self, html: &str) {
        self.body.push_str(html);
    }

    /// Appends a paragraph of plain text.
    pub fn paragraph(&mut self, class: &str, text: &str) {
        let _ = writeln!(self.body, "<p class=\"{class}\">{}</p>", escape(text));
    }

    /// The whole document.
    pub fn finish(self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"generator\" content=\"xscp {}\">\n<title>{}</title>\n\
             <style>{CSS}</style>\n</head>\n<body>\n{}</body>\n</html>\n",
            env!("CARGO_PKG_VERSION"),
            escape(&self.title),
            self.body
        )
    }
}

/// A figure: an inline picture with a caption under it.
pub fn figure(id: &str, svg: &str, caption: &str) -> String {
    format!(
        "<figure id=\"{}\">\n{svg}<figcaption>{}</figcaption>\n</figure>\n",
        anchor(id),
        escape(caption)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("bell\x07"), "bell\\x07");
    }

    #[test]
    fn counts_read_as_english() {
        assert_eq!(count(1, "diagram"), "1 diagram");
        assert_eq!(count(3, "connection"), "3 connections");
        assert_eq!(count(0, "rule"), "0 rules");
    }

    #[test]
    fn anchors_are_plain() {
        assert_eq!(anchor("sec 5.7"), "sec-5-7");
        assert_eq!(anchor("conn=7"), "conn-7");
    }

    /// The page loads nothing from elsewhere: no script, no external style sheet, font,
    /// image or link; its style is inline and carries print rules.
    #[test]
    fn a_page_is_self_contained() {
        let mut p = Page::new("report <1>");
        p.paragraph("meta", "a & b");
        p.push(&figure("f 1", "<svg></svg>\n", "cap"));
        let html = p.finish();
        assert!(html.starts_with("<!DOCTYPE html>\n"));
        assert!(html.contains("<title>report &lt;1&gt;</title>"));
        assert!(html.contains("<h1>report &lt;1&gt;</h1>"));
        assert!(html.contains("<p class=\"meta\">a &amp; b</p>"));
        assert!(html.contains("<figure id=\"f-1\">"));
        assert!(html.contains("@media print"));
        for outside in [
            "<script", "<link", "src=", "@import", "url(", "http:", "https:",
        ] {
            assert!(!html.contains(outside), "{outside}");
        }
    }
}
