//! A [`Diagram`] drawn as SVG by hand: lifelines in columns, one row per step top to
//! bottom, so that a browser (or a printer) shows it with no renderer and no script.
//!
//! Layout, in one pass: every text is monospace, so a label's width is its length in
//! characters times [`CHAR_W`]; columns are spread until every arrow's label fits between
//! its two lifelines; rows stack down the page, a run of one line in one row
//! ([`Diagram::runs_counted`]). A close ends the client's lifeline with a
//! cross; a failure is a red note with a red rule across the whole diagram at its row. The
//! groups carry classes (`step message`, `step note fail`, `lifeline`) for style and tests.

use std::fmt::Write as _;

use super::{Arrow, Diagram, Tone, What};
use crate::html::escape;

/// The width of one character of the 12px monospace text, in pixels (DejaVu Sans Mono and
/// Liberation Mono advance 0.6 em; a little more keeps a label clear of its lifelines).
const CHAR_W: f64 = 7.4;
/// The font size of every label.
const FONT: f64 = 12.0;
/// The longest arrow label shown whole; a longer one is cut with `…` (its whole text is
/// the label's tooltip).
const MAX_LABEL: usize = 72;
/// Notes wrap at this many characters a line.
const NOTE_WRAP: usize = 56;
/// The space around everything.
const MARGIN: f64 = 12.0;
/// The height of a participant's box.
const BOX_H: f64 = 42.0;
/// The height of a message row.
const ROW: f64 = 30.0;
/// The height of one line of a note.
const NOTE_LINE: f64 = 15.0;
/// The width of the time column when steps carry times.
const TIME_W: f64 = 96.0;
/// Colours.
const INK: &str = "#1b1f23";
const CLIENT_INK: &str = "#0b3d91";
const FAIL_INK: &str = "#b00020";
const MUTED: &str = "#57606a";

/// A note's fill and stroke.
fn note_colours(tone: Tone) -> (&'static str, &'static str) {
    match tone {
        Tone::Info => ("#fff8c5", "#bf8700"),
        Tone::State => ("#ddf4ff", "#54aeff"),
        Tone::Fail => ("#f8d7da", FAIL_INK),
    }
}

fn tone_class(tone: Tone) -> &'static str {
    match tone {
        Tone::Info => "info",
        Tone::State => "state",
        Tone::Fail => "fail",
    }
}

/// The width of `text` in pixels.
fn width(text: &str) -> f64 {
    text.chars().count() as f64 * CHAR_W
}

/// `text` cut to `max` characters, the cut marked with `…`.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

/// `text` in lines of at most `max` characters, broken at spaces where it can be.
fn wrap(text: &str, max: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let chars: Vec<char> = word.chars().collect();
        // A word longer than a line is broken where it must be, in pieces of a line each
        // (taken from the front one by one, a long word would be copied once a piece).
        let mut pieces = chars.chunks(max.max(1));
        let last = pieces.next_back().unwrap_or_default();
        for piece in pieces {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            lines.push(piece.iter().collect());
        }
        let word: String = last.iter().collect();
        let len = line.chars().count();
        if len > 0 && len + 1 + word.chars().count() > max {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// The columns' centres, before the margins are added: each participant's box fits, and
/// every message's label fits between its two lifelines.
fn columns(d: &Diagram, boxes: &[f64]) -> Vec<f64> {
    let n = d.participants.len();
    let mut gaps: Vec<f64> = (1..n)
        .map(|i| (boxes[i - 1] + boxes[i]) / 2.0 + 24.0)
        .collect();
    let mut spans: Vec<(usize, usize, f64)> = d
        .steps
        .iter()
        .filter_map(|s| match &s.what {
            What::Message { from, to, text, .. } if from != to && *from < n && *to < n => Some((
                (*from).min(*to),
                (*from).max(*to),
                width(&cut(text, MAX_LABEL)) + 32.0,
            )),
            _ => None,
        })
        .collect();
    // Short spans first: widening for a long span never undoes a short one.
    spans.sort_by_key(|(a, b, _)| b - a);
    for (a, b, need) in spans {
        let have: f64 = gaps[a..b].iter().sum();
        if have < need {
            let more = (need - have) / (b - a) as f64;
            for g in &mut gaps[a..b] {
                *g += more;
            }
        }
    }
    let mut x = vec![0.0];
    for g in gaps {
        x.push(x[x.len() - 1] + g);
    }
    x
}

/// One laid-out row: where it starts and how tall it is.
struct Row {
    y: f64,
    height: f64,
}

/// The diagram as an `<svg>` element (no XML prolog: it is meant to be inlined in HTML).
pub fn render(d: &Diagram) -> String {
    let d = &d.runs_counted();
    let n = d.participants.len();
    let boxes: Vec<f64> = d
        .participants
        .iter()
        .map(|p| {
            let chars = p
                .name
                .chars()
                .count()
                .max(p.detail.as_deref().map_or(0, |s| s.chars().count()));
            (chars as f64 * CHAR_W + 20.0).max(80.0)
        })
        .collect();
    let mut xs = columns(d, &boxes);
    let timed = d.steps.iter().any(|s| s.at.is_some());
    let left = MARGIN + if timed { TIME_W } else { 0.0 };

    // Rows, and the horizontal extent of everything, to place the columns.
    let top = MARGIN + BOX_H + 14.0;
    let mut rows = Vec::with_capacity(d.steps.len());
    let mut y = top;
    let (mut min_x, mut max_x) = (0.0f64, 0.0f64);
    for (i, b) in boxes.iter().enumerate() {
        min_x = min_x.min(xs[i] - b / 2.0);
        max_x = max_x.max(xs[i] + b / 2.0);
    }
    for s in &d.steps {
        let height = match &s.what {
            What::Message { from, to, text, .. } => {
                if from == to && *from < n {
                    max_x = max_x.max(xs[*from] + 40.0 + width(&cut(text, MAX_LABEL)));
                }
                ROW
            }
            What::Note { over, to, .. } => {
                let lines = wrap(&note_text(s), NOTE_WRAP);
                let w = lines.iter().map(|l| width(l)).fold(0.0, f64::max) + 16.0;
                let (a, b) = note_span(&xs, *over, *to);
                let w = w.max(b - a + 40.0);
                min_x = min_x.min((a + b) / 2.0 - w / 2.0);
                max_x = max_x.max((a + b) / 2.0 + w / 2.0);
                lines.len() as f64 * NOTE_LINE + 18.0
            }
        };
        rows.push(Row { y, height });
        y += height;
    }
    let bottom = y + 10.0;
    let shift = left - min_x;
    for x in &mut xs {
        *x += shift;
    }
    let w = (max_x + shift + MARGIN).ceil();
    let h = (bottom + MARGIN).ceil();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg class=\"seq\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" \
         width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{title}\" \
         data-participants=\"{n}\" data-steps=\"{steps}\" font-family=\"monospace\" \
         font-size=\"{FONT}\" xml:space=\"preserve\">\n<title>{title}</title>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>",
        title = escape(&d.title),
        steps = d.steps.len(),
    );

    // Failure rules first, behind everything: a red band across the diagram.
    for (s, r) in d.steps.iter().zip(&rows) {
        if let What::Note {
            tone: Tone::Fail, ..
        } = s.what
        {
            let _ = writeln!(
                out,
                "<rect class=\"fail-band\" x=\"0\" y=\"{:.1}\" width=\"{w}\" height=\"{:.1}\" \
                 fill=\"#fdecee\"/>",
                r.y, r.height
            );
        }
    }

    lifelines(&mut out, d, &xs, &rows, top, bottom);

    for (i, p) in d.participants.iter().enumerate() {
        let (fill, stroke) = if p.server {
            ("#ddf4ff", "#0969da")
        } else {
            ("#f6f8fa", MUTED)
        };
        let x = xs[i] - boxes[i] / 2.0;
        let _ = write!(
            out,
            "<g class=\"participant{}\"><rect x=\"{x:.1}\" y=\"{MARGIN}\" width=\"{:.1}\" \
             height=\"{BOX_H}\" rx=\"4\" fill=\"{fill}\" stroke=\"{stroke}\"/>",
            if p.server { " server" } else { "" },
            boxes[i]
        );
        let name_y = if p.detail.is_some() {
            MARGIN + 17.0
        } else {
            MARGIN + 26.0
        };
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{name_y}\" text-anchor=\"middle\" font-weight=\"bold\" \
             fill=\"{INK}\">{}</text>",
            xs[i],
            escape(&p.name)
        );
        if let Some(detail) = &p.detail {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" \
                 fill=\"{MUTED}\">{}</text>",
                xs[i],
                MARGIN + 33.0,
                escape(detail)
            );
        }
        out.push_str("</g>\n");
    }

    for (s, r) in d.steps.iter().zip(&rows) {
        if let Some(at) = &s.at {
            let _ = write!(
                out,
                "<text class=\"time\" x=\"{MARGIN}\" y=\"{:.1}\" font-size=\"10\" \
                 fill=\"{MUTED}\">{}</text>",
                r.y + 17.0,
                escape(at)
            );
        }
        match &s.what {
            What::Message {
                from,
                to,
                text,
                arrow,
            } if *from < n && *to < n => {
                let server = d.participants[*from].server;
                message(&mut out, xs[*from], xs[*to], r.y, text, *arrow, server);
            }
            What::Note { over, to, tone, .. } if *over < n && to.is_none_or(|t| t < n) => {
                note(&mut out, &xs, *over, *to, &note_text(s), *tone, r);
            }
            // A step naming no participant of the diagram is a bug of its builder;
            // it is left out rather than drawn somewhere wrong.
            _ => {}
        }
    }
    out.push_str("</svg>\n");
    out
}

/// The text a note shows: a failure says so in words too, for a black and white print.
fn note_text(s: &super::Step) -> String {
    match &s.what {
        What::Note {
            text,
            tone: Tone::Fail,
            ..
        } => format!("✗ FAIL: {text}"),
        What::Note { text, .. } => text.clone(),
        What::Message { text, .. } => text.clone(),
    }
}

/// The left and right lifelines a note spans (the same one for a note over one).
fn note_span(xs: &[f64], over: usize, to: Option<usize>) -> (f64, f64) {
    let a = xs.get(over).copied().unwrap_or(0.0);
    let b = to.and_then(|t| xs.get(t).copied()).unwrap_or(a);
    (a.min(b), a.max(b))
}

/// The dashed lifelines: the server's from top to bottom, a client's from the top (or the
/// step where it reappears) to the step that closed it.
fn lifelines(out: &mut String, d: &Diagram, xs: &[f64], rows: &[Row], top: f64, bottom: f64) {
    let n = d.participants.len();
    // For each participant, the y where its current segment started, if it is open.
    let mut open: Vec<Option<f64>> = vec![Some(top - 14.0); n];
    let mut segments: Vec<(usize, f64, f64)> = Vec::new();
    for (s, r) in d.steps.iter().zip(rows) {
        let involved: Vec<usize> = match &s.what {
            What::Message { from, to, .. } => vec![*from, *to],
            What::Note { over, to, .. } => std::iter::once(*over).chain(*to).collect(),
        };
        for &p in &involved {
            if p < n && open[p].is_none() {
                open[p] = Some(r.y);
            }
        }
        if let What::Message {
            from,
            to,
            arrow: Arrow::Close,
            ..
        } = s.what
            && let Some(c) = [from, to]
                .into_iter()
                .find(|&p| p < n && !d.participants[p].server)
            && let Some(start) = open[c].take()
        {
            segments.push((c, start, r.y + 18.0));
        }
    }
    for (p, start) in open.into_iter().enumerate() {
        if let Some(start) = start {
            segments.push((p, start, bottom));
        }
    }
    for (p, a, b) in segments {
        let _ = writeln!(
            out,
            "<line class=\"lifeline\" x1=\"{x:.1}\" y1=\"{a:.1}\" x2=\"{x:.1}\" y2=\"{b:.1}\" \
             stroke=\"#8c959f\" stroke-dasharray=\"4 4\"/>",
            x = xs[p]
        );
    }
}

/// One arrow with its label above it.
fn message(out: &mut String, x1: f64, x2: f64, y: f64, text: &str, arrow: Arrow, server: bool) {
    let ink = if server { INK } else { CLIENT_INK };
    let ay = y + 20.0;
    let shown = cut(text, MAX_LABEL);
    let kind = match arrow {
        Arrow::Line => "line",
        Arrow::Connect => "connect",
        Arrow::Close => "close",
    };
    let _ = write!(out, "<g class=\"step message {kind}\">");
    let title = if shown != text {
        format!("<title>{}</title>", escape(text))
    } else {
        String::new()
    };
    if (x1 - x2).abs() < 1.0 {
        // To itself: a small loop to the right, the label beside it.
        let _ = writeln!(
            out,
            "<path d=\"M{x1:.1},{:.1} h30 v12 h-30\" fill=\"none\" stroke=\"{ink}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{ink}\">{title}{}</text></g>",
            ay - 8.0,
            x1 + 36.0,
            ay,
            escape(&shown)
        );
        return;
    }
    let dir = if x2 > x1 { 1.0 } else { -1.0 };
    // Solid from a client, dashed from the server, whatever the arrow: as the legend says
    // and as Mermaid draws the same diagram.
    let dash = if server {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    };
    let end = x2 - dir * 1.0;
    let _ = write!(
        out,
        "<line x1=\"{x1:.1}\" y1=\"{ay:.1}\" x2=\"{end:.1}\" y2=\"{ay:.1}\" stroke=\"{ink}\" \
         stroke-width=\"1.4\"{dash}/>"
    );
    let back = end - dir * 9.0;
    match arrow {
        Arrow::Line => {
            let _ = write!(
                out,
                "<polygon points=\"{end:.1},{ay:.1} {back:.1},{:.1} {back:.1},{:.1}\" fill=\"{ink}\"/>",
                ay - 4.5,
                ay + 4.5
            );
        }
        Arrow::Connect => {
            let _ = write!(
                out,
                "<polyline points=\"{back:.1},{:.1} {end:.1},{ay:.1} {back:.1},{:.1}\" \
                 fill=\"none\" stroke=\"{ink}\" stroke-width=\"1.4\"/>",
                ay - 5.0,
                ay + 5.0
            );
        }
        Arrow::Close => {
            // On the client's lifeline, which ends here: the far end of the server's close,
            // the near end of the client's own.
            let x = if server { x2 } else { x1 };
            let _ = write!(
                out,
                "<path class=\"cross\" d=\"M{:.1},{:.1} l12,12 m0,-12 l-12,12\" stroke=\"{ink}\" \
                 stroke-width=\"2\"/>",
                x - 6.0,
                ay - 6.0
            );
        }
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{ink}\">{title}{}</text></g>",
        (x1 + x2) / 2.0,
        ay - 5.0,
        escape(&shown)
    );
}

/// One note: a box over its lifeline(s), its text wrapped.
fn note(
    out: &mut String,
    xs: &[f64],
    over: usize,
    to: Option<usize>,
    text: &str,
    tone: Tone,
    r: &Row,
) {
    let lines = wrap(text, NOTE_WRAP);
    let (a, b) = note_span(xs, over, to);
    let w = (lines.iter().map(|l| width(l)).fold(0.0, f64::max) + 16.0).max(b - a + 40.0);
    let x = (a + b) / 2.0 - w / 2.0;
    let (fill, stroke) = note_colours(tone);
    let h = r.height - 10.0;
    let _ = write!(
        out,
        "<g class=\"step note {}\"><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" \
         height=\"{h:.1}\" rx=\"3\" fill=\"{fill}\" stroke=\"{stroke}\"/>",
        tone_class(tone),
        r.y + 5.0
    );
    let (ink, weight) = match tone {
        Tone::Fail => (FAIL_INK, " font-weight=\"bold\""),
        _ => (INK, ""),
    };
    for (i, l) in lines.iter().enumerate() {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{ink}\"{weight}>{}</text>",
            (a + b) / 2.0,
            r.y + 5.0 + 16.0 + i as f64 * NOTE_LINE,
            escape(l)
        );
    }
    out.push_str("</g>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seqdiag::tests::sample;
    use crate::seqdiag::{Participant, Step};

    fn count(haystack: &str, needle: &str) -> usize {
        haystack.matches(needle).count()
    }

    /// Every step is drawn once, in order, with its kind; lifelines and boxes for each
    /// participant; the failure as a band and a red note that says FAIL in words.
    #[test]
    fn every_step_is_drawn_once_in_order() {
        let d = sample();
        let s = render(&d);
        assert!(s.starts_with("<svg class=\"seq\""), "{s}");
        assert!(s.trim_end().ends_with("</svg>"));
        assert_eq!(count(&s, "class=\"step "), d.steps.len());
        assert_eq!(count(&s, "<g class=\"participant"), 2);
        assert_eq!(count(&s, "class=\"step message line\""), 2);
        assert_eq!(count(&s, "class=\"step message connect\""), 1);
        assert_eq!(count(&s, "class=\"step message close\""), 1);
        assert_eq!(count(&s, "class=\"cross\""), 1);
        assert_eq!(count(&s, "class=\"fail-band\""), 1);
        assert!(s.contains("✗ FAIL: expected a, got b"));
        let order = [
            "(connect)",
            "+OK xscp/1 ready",
            "chatm a b",
            "ESTABLISHED",
            "FAIL",
            "renamed",
            "(close)",
        ];
        let at: Vec<usize> = order.iter().map(|t| s.find(t).expect(t)).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
        assert!(s.contains("chatm a b x;y #1 &lt;b&gt; &amp; %% end"));
        assert!(s.contains("<title>sample &lt;&amp;&gt;</title>"));
        assert!(s.contains(">00:00:01.000</text>"), "the time column");
    }

    /// A close ends the client's lifeline at its row; the server's runs to the bottom.
    #[test]
    fn a_close_ends_the_clients_lifeline() {
        let s = render(&sample());
        let ends: Vec<f64> = s
            .lines()
            .filter(|l| l.starts_with("<line class=\"lifeline\""))
            .map(|l| {
                let y2 = l.split("y2=\"").nth(1).unwrap();
                y2[..y2.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        assert_eq!(ends.len(), 2);
        assert!(ends[0] < ends[1], "the client's ends first: {ends:?}");
    }

    /// A diagram titled `title` of the clients a and b around a server: it and the three.
    fn a_server_b(title: &str) -> (Diagram, usize, usize, usize) {
        let mut d = Diagram::new(title);
        let a = d.participant(Participant::client("a", None));
        let s = d.participant(Participant::server("server"));
        let b = d.participant(Participant::client("b", None));
        (d, a, s, b)
    }

    /// a connects, registers and closes; then b connects and the server closes it.
    fn two_closes() -> Diagram {
        let (mut d, a, s, b) = a_server_b("closes");
        d.message(None, a, s, "(connect)".into(), Arrow::Connect);
        d.message(None, a, s, "uname a".into(), Arrow::Line);
        d.message(None, s, a, "+OK you are a".into(), Arrow::Line);
        d.message(None, a, s, "(closed by the client)".into(), Arrow::Close);
        d.message(None, b, s, "(connect)".into(), Arrow::Connect);
        d.message(None, s, b, "(connection closed)".into(), Arrow::Close);
        d
    }

    /// An arrow is solid from a client and dashed from the server, as the page's legend
    /// says and as the Mermaid text of the same diagram draws it (`-)` and `-x` solid,
    /// `--x` dashed): a client's connect and own close too, which were drawn dashed, in
    /// the legend's words "a line the server sent".
    #[test]
    fn arrows_from_a_client_are_solid() {
        let svg = render(&two_closes());
        let dashed: Vec<(&str, bool)> = svg
            .split("<g class=\"step message ")
            .skip(1)
            .map(|g| {
                let line = &g[g.find("<line ").unwrap()..];
                let line = &line[..line.find("/>").unwrap()];
                let label = &g[..g.find("</text>").unwrap()];
                (
                    &label[label.rfind('>').unwrap() + 1..],
                    line.contains("dasharray"),
                )
            })
            .collect();
        assert_eq!(
            dashed,
            [
                ("(connect)", false),
                ("uname a", false),
                ("+OK you are a", true),
                ("(closed by the client)", false),
                ("(connect)", false),
                ("(connection closed)", true),
            ]
        );
    }

    /// The cross of a close sits on the client's lifeline, where that lifeline ends,
    /// whoever closed: `xscp diagram` draws a client's own close as an arrow from the client
    /// to the server, whose cross was drawn on the server's lifeline, which goes on.
    #[test]
    fn a_close_is_crossed_on_the_clients_lifeline() {
        let svg = render(&two_closes());
        let number = |l: &str, key: &str| -> f64 {
            let v = l.split(key).nth(1).unwrap();
            v[..v.find(|c: char| c != '.' && !c.is_ascii_digit()).unwrap()]
                .parse()
                .unwrap()
        };
        let lifelines: Vec<f64> = svg
            .lines()
            .filter(|l| l.starts_with("<line class=\"lifeline\""))
            .map(|l| number(l, "x1=\""))
            .collect();
        let crosses: Vec<f64> = svg
            .split("<path class=\"cross\" d=\"M")
            .skip(1)
            .map(|p| p[..p.find(',').unwrap()].parse::<f64>().unwrap() + 6.0)
            .collect();
        assert_eq!(crosses.len(), 2);
        // The lifelines of a, b (ended by their closes), then the server's.
        let (a, b) = (lifelines[0], lifelines[1]);
        assert!(
            (crosses[0] - a).abs() < 0.1,
            "a's close: {crosses:?} {lifelines:?}"
        );
        assert!(
            (crosses[1] - b).abs() < 0.1,
            "b's close: {crosses:?} {lifelines:?}"
        );
    }

    /// Every label fits between its two lifelines, and every box and note inside the
    /// picture: the layout never draws outside its own viewBox.
    #[test]
    fn labels_fit_between_their_lifelines() {
        let (mut d, a, s, b) = a_server_b("wide");
        let long = "chatm alice bob ".to_string() + &"x".repeat(50);
        d.message(None, a, s, long.clone(), Arrow::Line);
        d.message(None, s, b, long.clone(), Arrow::Line);
        d.message(None, a, b, "y".repeat(200), Arrow::Line);
        d.note(None, a, None, "z ".repeat(100), Tone::Info);
        let boxes = vec![80.0; 3];
        let xs = columns(&d, &boxes);
        let need = width(&long) + 32.0;
        assert!(
            xs[1] - xs[0] >= need - 0.01 && xs[2] - xs[1] >= need - 0.01,
            "{xs:?}"
        );
        assert!(xs[2] - xs[0] >= width(&cut(&"y".repeat(200), MAX_LABEL)));
        let svg = render(&d);
        let vb = svg.split("viewBox=\"0 0 ").nth(1).unwrap();
        let w: f64 = vb.split(' ').next().unwrap().parse().unwrap();
        for x in svg.split(" x=\"").skip(1) {
            let x: f64 = x[..x.find('"').unwrap()].parse().unwrap();
            assert!((0.0..w).contains(&x), "x={x} outside 0..{w}");
        }
        assert!(
            svg.contains(&format!("{}…", "y".repeat(MAX_LABEL - 1))),
            "cut long labels"
        );
        assert!(
            svg.contains(&format!("<title>{}</title>", "y".repeat(200))),
            "whole in the tooltip"
        );
    }

    #[test]
    fn notes_wrap_at_spaces_and_break_long_words() {
        assert_eq!(wrap("a bb ccc", 4), ["a bb", "ccc"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("x abcdefgh", 4), ["x", "abcd", "efgh"]);
        // A hostile log's one long word: each piece in its place (taking pieces from the
        // front of the word copied the rest each time: 20 s for a 4 MB line).
        let long: String = (0..200_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let lines = wrap(&long, 40);
        assert_eq!(lines.len(), 5_000);
        assert_eq!(lines.concat(), long);
        assert_eq!(wrap("", 4), [""]);
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abcd", 4), "abcd");
    }

    /// A step that names a participant the diagram does not have is left out, not a panic.
    #[test]
    fn a_step_naming_no_participant_is_left_out() {
        let mut d = Diagram::new("x");
        d.participant(Participant::server("server"));
        d.steps.push(Step {
            at: None,
            what: What::Message {
                from: 0,
                to: 5,
                text: "t".into(),
                arrow: Arrow::Line,
            },
        });
        d.note(None, 9, None, "n".into(), Tone::Info);
        let s = render(&d);
        assert_eq!(count(&s, "class=\"step "), 0);
    }
}
