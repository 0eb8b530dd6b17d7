//! The pictures of xscp(7) §3 and §4 for the HTML pages: the state machine as SVG and the
//! legality table as an HTML table, both drawn from the library's tables
//! ([`xscp::protocol::fsm::TRANSITIONS`], [`xscp::protocol::command::legality_table`]), so
//! that the report shows the machine the server runs, not a copy of it.
//!
//! The layout is by hand: each state has a place, and an edge is a straight line between
//! two boxes (or a loop, for a state to itself). The events of the rows that join the same
//! two states share one label. The table has one CLOSED, but the picture draws two lives,
//! as `xscpd --print-fsm dot` does: the listener's (on a panel of its own, left) and a
//! connection's, each with a CLOSED of its own, so that a closed connection does not seem
//! to lead back to LISTEN.

use std::fmt::Write as _;

use xscp::protocol::command::{Legality, legality_table};
use xscp::protocol::diagram::is_listeners;
use xscp::protocol::fsm::{COMMAND_STATES, State, TRANSITIONS};

use crate::html::escape;

/// A state's box: centre and size.
const BOX_W: f64 = 150.0;
const BOX_H: f64 = 36.0;
/// The picture's size.
const WIDTH: f64 = 880.0;
const HEIGHT: f64 = 440.0;

/// The listener's panel: its right edge and bottom.
const PANEL_W: f64 = 235.0;
const PANEL_H: f64 = 405.0;

/// Where each state sits: the listener's life down the left (LISTEN, its CLOSED below),
/// a connection's way in along the top (NEGOTIATING, ESTABLISHED), its ways out below
/// (UPDATE, ABORTED) and its CLOSED between them. `listener` picks the listener's CLOSED.
fn place(s: State, listener: bool) -> (f64, f64) {
    match s {
        State::Listen => (100.0, 90.0),
        State::Negotiating => (420.0, 90.0),
        State::Established => (740.0, 90.0),
        State::Closed if listener => (100.0, 370.0),
        State::Closed => (420.0, 370.0),
        State::Update => (420.0, 250.0),
        State::Aborted => (740.0, 370.0),
    }
}

/// Where an edge's label goes, as the fraction of the way along it and an offset; the
/// default is the middle, a little above.
fn label_at(from: State, to: State) -> (f64, f64, f64, &'static str) {
    use State::*;
    match (from, to) {
        (Closed, Listen) => (0.5, 14.0, 0.0, "start"),
        (Listen, Closed) => (0.5, -14.0, 0.0, "end"),
        (Negotiating, Update) => (0.5, -8.0, 0.0, "end"),
        (Established, Update) => (0.45, 14.0, 12.0, "start"),
        // Below its line: right of it is the line of ESTABLISHED -> ABORTED.
        (Negotiating, Aborted) => (0.75, -12.0, 14.0, "end"),
        (Established, Aborted) => (0.5, 8.0, 0.0, "start"),
        (Update, Closed) => (0.5, -10.0, 4.0, "end"),
        (Aborted, Closed) => (0.5, 0.0, 18.0, "middle"),
        _ => (0.5, 0.0, -8.0, "middle"),
    }
}

/// The point where the line from the centre `c` towards `d` leaves the box around `c`.
fn border(c: (f64, f64), d: (f64, f64)) -> (f64, f64) {
    let (dx, dy) = (d.0 - c.0, d.1 - c.1);
    let sx = if dx.abs() > 0.0 {
        (BOX_W / 2.0) / dx.abs()
    } else {
        f64::INFINITY
    };
    let sy = if dy.abs() > 0.0 {
        (BOX_H / 2.0) / dy.abs()
    } else {
        f64::INFINITY
    };
    let s = sx.min(sy);
    (c.0 + dx * s, c.1 + dy * s)
}

/// The state machine of xscp(7) §3 as an `<svg>` element.
pub fn states_svg() -> String {
    // One edge per (from, to), with the events of every row that joins them.
    let mut edges: Vec<(State, State, Vec<&str>)> = Vec::new();
    for t in TRANSITIONS {
        match edges
            .iter_mut()
            .find(|(f, to, _)| *f == t.from && *to == t.to)
        {
            Some((_, _, events)) => events.push(t.event.name()),
            None => edges.push((t.from, t.to, vec![t.event.name()])),
        }
    }
    let mut out = format!(
        "<svg class=\"fsm\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"the states and \
         transitions of xscp(7) section 3: the listener's and a connection's\" \
         font-family=\"sans-serif\" font-size=\"12\" data-states=\"{}\" data-transitions=\"{}\">\n\
         <title>xscp(7) §3: states and transitions</title>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n\
         <rect x=\"10\" y=\"40\" width=\"{}\" height=\"{}\" rx=\"8\" fill=\"#eef1f4\"/>\n\
         <text x=\"20\" y=\"58\" font-size=\"11\" fill=\"#57606a\">the listener: one per server</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"11\" fill=\"#57606a\">a connection: \
         one per client, from accept to close</text>\n",
        State::ALL.len(),
        TRANSITIONS.len(),
        PANEL_W - 10.0,
        PANEL_H - 40.0,
        WIDTH - 10.0,
        HEIGHT - 15.0
    );
    for (from, to, events) in &edges {
        let _ = write!(
            out,
            "<g class=\"edge\" data-from=\"{from}\" data-to=\"{to}\">"
        );
        let listener = is_listeners(*from, *to);
        let (a, b) = (place(*from, listener), place(*to, listener));
        let label_lines = events.len() as f64;
        let (lx, ly, anchor) = if from == to {
            // A loop over the top of the box.
            let (x, y) = (a.0, a.1 - BOX_H / 2.0);
            let _ = write!(
                out,
                "<path d=\"M{:.1},{y:.1} C{:.1},{:.1} {:.1},{:.1} {:.1},{y:.1}\" fill=\"none\" \
                 stroke=\"#444\" stroke-width=\"1.3\"/>",
                x - 30.0,
                x - 40.0,
                y - 50.0,
                x + 40.0,
                y - 50.0,
                x + 30.0
            );
            arrowhead(&mut out, (x + 36.0, y - 12.0), (x + 30.0, y));
            (x, y - 46.0, "middle")
        } else {
            // Two states joined both ways: the two lines side by side.
            let both = edges.iter().any(|(f, t, _)| f == to && t == from);
            let (nx, ny) = {
                let (dx, dy) = (b.0 - a.0, b.1 - a.1);
                let len = (dx * dx + dy * dy).sqrt().max(1.0);
                (-dy / len, dx / len)
            };
            let off = if both { 7.0 } else { 0.0 };
            let a = (a.0 + nx * off, a.1 + ny * off);
            let b = (b.0 + nx * off, b.1 + ny * off);
            let p = border(a, b);
            let q = border(b, a);
            let _ = write!(
                out,
                "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#444\" \
                 stroke-width=\"1.3\"/>",
                p.0, p.1, q.0, q.1
            );
            arrowhead(&mut out, p, q);
            let (t, dx, dy, anchor) = label_at(*from, *to);
            (
                p.0 + (q.0 - p.0) * t + dx,
                p.1 + (q.1 - p.1) * t + dy - (label_lines - 1.0) * 7.0,
                anchor,
            )
        };
        for (i, e) in events.iter().enumerate() {
            let _ = write!(
                out,
                "<text x=\"{lx:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" font-family=\"monospace\" \
                 font-size=\"11\" fill=\"#0b3d91\">{e}</text>",
                ly + i as f64 * 14.0
            );
        }
        out.push_str("</g>\n");
    }
    // Every state once, and CLOSED once more: the listener's.
    let boxes = State::ALL
        .into_iter()
        .map(|s| (s, s == State::Listen))
        .chain([(State::Closed, true)]);
    for (s, listener) in boxes {
        let (x, y) = place(s, listener);
        let life = if listener { "listener" } else { "connection" };
        let fill = match s {
            State::Established => "#d4edda",
            State::Aborted => "#f8d7da",
            State::Negotiating => "#fff3cd",
            _ => "#f6f8fa",
        };
        let _ = writeln!(
            out,
            "<g class=\"state\" data-state=\"{s}\" data-life=\"{life}\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{BOX_W}\" \
             height=\"{BOX_H}\" rx=\"18\" fill=\"{fill}\" stroke=\"#333\"/><text x=\"{x:.1}\" \
             y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"bold\">{s}</text></g>",
            x - BOX_W / 2.0,
            y - BOX_H / 2.0,
            y + 4.5
        );
    }
    out.push_str("</svg>\n");
    out
}

/// A filled arrowhead at `to`, pointing along `from` → `to`.
fn arrowhead(out: &mut String, from: (f64, f64), to: (f64, f64)) {
    let (dx, dy) = (to.0 - from.0, to.1 - from.1);
    let len = (dx * dx + dy * dy).sqrt().max(1.0);
    let (ux, uy) = (dx / len, dy / len);
    let back = (to.0 - ux * 10.0, to.1 - uy * 10.0);
    let _ = write!(
        out,
        "<polygon points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\" fill=\"#444\"/>",
        to.0,
        to.1,
        back.0 - uy * 4.5,
        back.1 + ux * 4.5,
        back.0 + uy * 4.5,
        back.1 - ux * 4.5
    );
}

/// The CSS class of a legality cell.
fn cell_class(cell: Legality) -> &'static str {
    match cell {
        Legality::Legal => "pass",
        Legality::AnsweringPing => "ping",
        Legality::Violation => "fail",
        Legality::Syntax => "skip",
    }
}

/// The legality table of xscp(7) §4 as an HTML table, coloured by verdict.
pub fn legality_html() -> String {
    let mut out = String::from("<table class=\"legality\">\n<tr><th>command</th>");
    for s in COMMAND_STATES {
        let _ = write!(out, "<th>{s}</th>");
    }
    out.push_str("</tr>\n");
    for (synopsis, cells) in legality_table() {
        let _ = write!(out, "<tr><td><code>{}</code></td>", escape(synopsis));
        for (state, cell) in COMMAND_STATES.iter().zip(cells) {
            let _ = write!(
                out,
                "<td class=\"{}\">{}</td>",
                cell_class(cell),
                escape(cell.describe(*state))
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every state is drawn once, CLOSED twice (the listener's and a connection's); every
    /// transition's event is on an edge from its state to its state.
    #[test]
    fn every_state_and_transition_is_drawn() {
        let svg = states_svg();
        for s in State::ALL {
            assert_eq!(
                svg.matches(&format!("data-state=\"{s}\"")).count(),
                if s == State::Closed { 2 } else { 1 },
                "{s}"
            );
        }
        for t in TRANSITIONS {
            let edge = format!("data-from=\"{}\" data-to=\"{}\">", t.from, t.to);
            let at = svg.find(&edge).unwrap_or_else(|| panic!("{t:?}"));
            let group = &svg[at..at + svg[at..].find("</g>").unwrap()];
            assert!(group.contains(&format!(">{}</text>", t.event)), "{t:?}");
        }
    }

    /// Every state's box lies inside the picture.
    #[test]
    fn the_layout_fits_the_picture() {
        for (s, listener) in State::ALL.into_iter().flat_map(|s| [(s, false), (s, true)]) {
            let (x, y) = place(s, listener);
            assert!(x - BOX_W / 2.0 >= 0.0 && x + BOX_W / 2.0 <= WIDTH, "{s}");
            assert!(y - BOX_H / 2.0 >= 0.0 && y + BOX_H / 2.0 <= HEIGHT, "{s}");
        }
    }

    /// The value of the attribute `name` in the tag `tag`.
    fn attr(tag: &str, name: &str) -> f64 {
        let tag = format!(" {tag}");
        let at = tag.find(&format!(" {name}=\"")).expect(name) + name.len() + 3;
        tag[at..at + tag[at..].find('"').unwrap()]
            .parse()
            .expect(name)
    }

    /// Whether the segment `a`-`b` meets the rectangle `(x0, y0, x1, y1)`: sampled every
    /// pixel along it, which is fine enough for boxes of text.
    fn meets(a: (f64, f64), b: (f64, f64), r: (f64, f64, f64, f64)) -> bool {
        let steps = ((b.0 - a.0).hypot(b.1 - a.1)).ceil().max(1.0) as usize;
        (0..=steps).any(|i| {
            let t = i as f64 / steps as f64;
            let (x, y) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
            x >= r.0 && x <= r.2 && y >= r.1 && y <= r.3
        })
    }

    /// No edge's label is crossed by another edge's line, so that each label reads as its
    /// own edge's. The label of NEGOTIATING -> ABORTED was drawn right of its line, across
    /// the line of ESTABLISHED -> ABORTED, as if it were that edge's.
    #[test]
    fn no_line_crosses_another_edges_label() {
        let svg = states_svg();
        // Per edge: its lines, and its labels' boxes (11 px monospace: 0.6 em a
        // character, from the ascent above the baseline to the descent below).
        let mut edges = Vec::new();
        for group in svg.split("<g class=\"edge\"").skip(1) {
            let group = &group[..group.find("</g>").unwrap()];
            let lines: Vec<_> = group
                .split("<line ")
                .skip(1)
                .map(|l| {
                    (
                        (attr(l, "x1"), attr(l, "y1")),
                        (attr(l, "x2"), attr(l, "y2")),
                    )
                })
                .collect();
            let labels: Vec<_> = group
                .split("<text ")
                .skip(1)
                .map(|t| {
                    let tag = &t[..t.find('>').unwrap()];
                    let text = &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()];
                    let w = text.chars().count() as f64 * 0.6 * 11.0;
                    let (x, y) = (attr(tag, "x"), attr(tag, "y"));
                    let x0 = match tag.split("text-anchor=\"").nth(1) {
                        Some(a) if a.starts_with("end") => x - w,
                        Some(a) if a.starts_with("middle") => x - w / 2.0,
                        _ => x,
                    };
                    (text.to_string(), (x0, y - 9.0, x0 + w, y + 3.0))
                })
                .collect();
            edges.push((group[..group.find('>').unwrap()].to_string(), lines, labels));
        }
        for (edge, _, labels) in &edges {
            for (other, lines, _) in &edges {
                if other == edge {
                    continue;
                }
                for (text, r) in labels {
                    for (a, b) in lines {
                        assert!(
                            !meets(*a, *b, *r),
                            "the label {text} of{edge} is crossed by the line of{other}"
                        );
                    }
                }
            }
        }
    }

    /// The listener's life and a connection's are drawn apart (xscp(7) §3: the listener
    /// lends a connection nothing but its start), as `xscpd --print-fsm dot` draws them:
    /// the CLOSED that UPDATE and ABORTED close into is not the one the listener binds
    /// from, so that no path leads from a closed connection back to LISTEN.
    #[test]
    fn a_closed_connection_does_not_lead_back_to_listen() {
        let svg = states_svg();
        let closed: Vec<(f64, f64, f64, f64)> = svg
            .split("<g class=\"state\" data-state=\"CLOSED\"")
            .skip(1)
            .map(|g| {
                let r = &g[g.find("<rect ").unwrap()..];
                let (x, y) = (attr(r, "x"), attr(r, "y"));
                (x, y, x + attr(r, "width"), y + attr(r, "height"))
            })
            .collect();
        // The CLOSED box an end of the line of the edge `from` -> `to` touches.
        let touched = |from: &str, to: &str, end: usize| {
            let g = &svg[svg
                .find(&format!("data-from=\"{from}\" data-to=\"{to}\""))
                .unwrap_or_else(|| panic!("no edge {from} -> {to}"))..];
            let l = &g[g.find("<line ").unwrap() + 6..];
            let p = [
                (attr(l, "x1"), attr(l, "y1")),
                (attr(l, "x2"), attr(l, "y2")),
            ][end];
            closed
                .iter()
                .position(|b| {
                    p.0 >= b.0 - 1.0 && p.0 <= b.2 + 1.0 && p.1 >= b.1 - 1.0 && p.1 <= b.3 + 1.0
                })
                .unwrap_or_else(|| panic!("{from} -> {to} touches no CLOSED"))
        };
        let listener = touched("CLOSED", "LISTEN", 0);
        assert_eq!(touched("LISTEN", "CLOSED", 1), listener);
        for from in ["UPDATE", "ABORTED"] {
            assert_ne!(
                touched(from, "CLOSED", 1),
                listener,
                "{from} -> CLOSED ends where the listener starts"
            );
        }
    }

    /// Every row of §4 with both states' verdicts.
    #[test]
    fn the_legality_table_has_every_row() {
        let t = legality_html();
        for (synopsis, cells) in legality_table() {
            assert!(
                t.contains(&format!("<code>{}</code>", escape(synopsis))),
                "{synopsis}"
            );
            for (state, cell) in COMMAND_STATES.iter().zip(cells) {
                assert!(t.contains(cell.describe(*state)));
            }
        }
        assert_eq!(t.matches("<tr>").count(), legality_table().count() + 1);
    }
}
