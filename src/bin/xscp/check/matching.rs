//! Lines and patterns: does a line from the server match an `s:` pattern (capturing its
//! placeholders), how lines and patterns are shown in reports and diagrams, and the
//! nickname suffix used against a shared server. No I/O.

use std::collections::HashMap;
use std::time::Duration;

use xscp::text::{self, Keep};

use super::transcript::Pat;

/// Appends `suffix` to every whole-word occurrence of one of `names` (ASCII case ignored).
pub fn suffix_names(bytes: &[u8], names: &[String], suffix: &str) -> Vec<u8> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let mut out = Vec::with_capacity(bytes.len() + 8);
    let mut i = 0;
    while i < bytes.len() {
        let at_start = i == 0 || !word(bytes[i - 1]);
        let hit = at_start.then(|| {
            names.iter().find(|n| {
                let end = i + n.len();
                end <= bytes.len()
                    && bytes[i..end].eq_ignore_ascii_case(n.as_bytes())
                    && (end == bytes.len() || !word(bytes[end]))
            })
        });
        if let Some(Some(n)) = hit {
            out.extend_from_slice(&bytes[i..i + n.len()]);
            out.extend_from_slice(suffix.as_bytes());
            i += n.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

pub fn strip_terminator(l: &[u8]) -> &[u8] {
    let l = l.strip_suffix(b"\n").unwrap_or(l);
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// Does `line` match `pat`? Captures of unbound placeholders go to `caps`.
pub fn matches(
    pat: &[Pat],
    line: &[u8],
    vars: &HashMap<String, Vec<u8>>,
    caps: &mut Vec<(String, Vec<u8>)>,
) -> bool {
    let Some((first, rest)) = pat.split_first() else {
        return line.is_empty();
    };
    match first {
        Pat::Lit(l) => {
            let Some(after) = line.strip_prefix(l.as_slice()) else {
                return false;
            };
            match rest {
                // A number counts only as a whole word, so the literal's last byte matters
                // to the count (the `2` of `bob2`).
                [Pat::Count { n, max }] => {
                    ends_with_count_after(l.last().copied(), after, *n, *max)
                }
                _ => matches(rest, after, vars, caps),
            }
        }
        Pat::Any => (0..=line.len()).any(|i| matches(rest, &line[i..], vars, caps)),
        Pat::Count { n, max } => rest.is_empty() && ends_with_count(line, *n, *max),
        Pat::Var(v) => {
            let bound = vars
                .get(v)
                .or_else(|| caps.iter().find(|(k, _)| k == v).map(|(_, b)| b))
                .cloned();
            if let Some(b) = bound {
                return line.starts_with(&b) && matches(rest, &line[b.len()..], vars, caps);
            }
            let run = line.iter().take_while(|&&b| b != b' ').count();
            (1..=run).rev().any(|n| {
                caps.push((v.clone(), line[..n].to_vec()));
                if matches(rest, &line[n..], vars, caps) {
                    return true;
                }
                caps.pop();
                false
            })
        }
    }
}

/// The longest text between the count and the budget: ` of `, `/`, ` out of `.
const MAX_BETWEEN: usize = 8;

/// Does `text` end with the count of failed attempts `n` (xscp(7) §5.1 uname), in any
/// form? Its last number, after which come only ASCII punctuation and spaces, is `n` on
/// its own (`(attempt 2)`), or it is the budget `max` and the number before it, at most
/// [`MAX_BETWEEN`] bytes and no digit away, is `n` (`(attempt 2 of 3)`, `(2 of 3)`,
/// `[2/3]`, `attempt 2/3`). A number counts only as a whole word: the `7` of `bob7` is
/// part of a name. So `(attempt 1 of 3)` is no count of 3, a budget other than `max` is
/// wrong, and a count followed by more words is not at the end.
pub fn ends_with_count(text: &[u8], n: u64, max: u64) -> bool {
    ends_with_count_after(None, text, n, max)
}

/// [`ends_with_count`] of `text` that comes after the byte `prev` (a number at the start
/// of `text` is a whole word only if `prev` is not a letter or digit).
fn ends_with_count_after(prev: Option<u8>, text: &[u8], n: u64, max: u64) -> bool {
    let trailing = text
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_punctuation() || **b == b' ')
        .count();
    let Some((last, before)) = last_number(prev, &text[..text.len() - trailing]) else {
        return false;
    };
    let gap = before
        .iter()
        .rev()
        .take_while(|b| !b.is_ascii_digit())
        .count();
    let first = (1..=MAX_BETWEEN)
        .contains(&gap)
        .then(|| last_number(prev, &before[..before.len() - gap]))
        .flatten();
    match first {
        Some((first, _)) => first == Some(n) && last == Some(max),
        None => last == Some(n),
    }
}

/// The number that ends `t`, if it is a whole word (its value, None past u64), and the
/// text before it; `prev` is the byte before `t`.
fn last_number(prev: Option<u8>, t: &[u8]) -> Option<(Option<u64>, &[u8])> {
    let len = t.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let (before, number) = t.split_at(t.len() - len);
    let whole = before
        .last()
        .copied()
        .or(prev)
        .is_none_or(|b| !b.is_ascii_alphanumeric());
    let value = std::str::from_utf8(number)
        .ok()
        .and_then(|v| v.parse().ok());
    (len > 0 && whole).then_some((value, before))
}

/// A pattern as the report shows it: known values filled in.
pub fn describe_pat(pat: &[Pat], vars: &HashMap<String, Vec<u8>>, raw: bool) -> String {
    let mut bytes = Vec::new();
    for p in pat {
        match p {
            Pat::Lit(l) => bytes.extend_from_slice(l),
            Pat::Any => bytes.extend_from_slice(b"{*}"),
            Pat::Count { n, max } => {
                bytes.extend_from_slice(format!("{{attempt {n} of {max}}}").as_bytes());
            }
            Pat::Var(v) => match vars.get(v) {
                Some(b) => bytes.extend_from_slice(b),
                None => bytes.extend_from_slice(format!("{{{v}}}").as_bytes()),
            },
        }
    }
    if raw {
        shown_raw(&bytes)
    } else {
        shown(&bytes)
    }
}

/// Bytes with every control byte, CR and LF included, as an escape (for `sraw:`).
pub fn shown_raw(bytes: &[u8]) -> String {
    text::escape(bytes, Keep::Ascii)
}

/// A line as printed: CR and LF at the end dropped, control bytes as `\xNN` (so a server
/// cannot drive the terminal), at most 200 characters.
pub fn shown(line: &[u8]) -> String {
    let body = strip_terminator(line);
    let mut out = text::escape(body, Keep::Text);
    let tail = &line[body.len()..];
    if tail != b"\r\n" && !tail.is_empty() {
        out.push_str(if tail == b"\n" { "\\n" } else { "\\r" });
    }
    if out.chars().count() > 200 {
        let cut: String = out.chars().take(120).collect();
        return format!("{cut}... ({} bytes)", body.len());
    }
    out
}

pub fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pat: &[Pat], line: &str) -> Option<Vec<(String, Vec<u8>)>> {
        let mut caps = Vec::new();
        matches(pat, line.as_bytes(), &HashMap::new(), &mut caps).then_some(caps)
    }

    fn lit(s: &str) -> Pat {
        Pat::Lit(s.as_bytes().to_vec())
    }

    #[test]
    fn placeholders() {
        let any = [lit("-ERR [STATE] "), Pat::Any];
        assert!(m(&any, "-ERR [STATE] whatever text").is_some());
        assert!(m(&any, "-ERR [STATE] ").is_some());
        assert!(m(&any, "-ERR [SYNTAX] x").is_none());
        let tok = [lit("ping "), Pat::Var("t".into())];
        assert_eq!(
            m(&tok, "ping 12.3").unwrap(),
            [("t".into(), b"12.3".to_vec())]
        );
        assert!(m(&tok, "ping ").is_none(), "a placeholder is never empty");
        assert!(m(&tok, "ping a b").is_none(), "nor holds a space");
        let twice = [Pat::Var("a".into()), lit(" "), Pat::Var("a".into())];
        assert!(m(&twice, "x x").is_some());
        assert!(m(&twice, "x y").is_none());
        let mut vars = HashMap::new();
        vars.insert("a".to_string(), b"bob".to_vec());
        assert!(matches(&twice, b"bob bob", &vars, &mut Vec::new()));
        assert!(!matches(&twice, b"eve eve", &vars, &mut Vec::new()));
    }

    #[test]
    fn a_count_after_a_literal_is_a_whole_word_with_it() {
        let pat = [lit("-ERR bob"), Pat::Count { n: 2, max: 3 }];
        let ok = |t: &str| matches(&pat, t.as_bytes(), &HashMap::new(), &mut Vec::new());
        assert!(!ok("-ERR bob2"), "the 2 of bob2 is part of the name");
        assert!(!ok("-ERR bob2 of 3"));
        assert!(ok("-ERR bob (attempt 2 of 3)"));
        assert!(ok("-ERR bob [2/3]"));
        assert!(!ok("-ERR eve (attempt 2 of 3)"));
    }

    #[test]
    fn the_count_ends_the_text_in_any_form() {
        let ok = |t: &str, n, max| ends_with_count(t.as_bytes(), n, max);
        for t in [
            "bob is taken (attempt 2 of 3)",
            "bob is taken (2 of 3)",
            "bob is taken [2/3]",
            "bob is taken, attempt 2/3",
            "bob is taken (attempt 2 / 3).",
            "bob is taken (2 out of 3)",
            "bob is taken (attempt 2)",
            "bob7 is taken: 2",
            "2 of 3",
        ] {
            assert!(ok(t, 2, 3), "{t}");
        }
        for t in [
            "bob is taken",
            "bob is taken (attempt 1 of 3)",
            "bob is taken (attempt 3 of 2)",
            "bob is taken (attempt 2 of 5)",
            "bob is taken (attempt 12 of 3)",
            "bob is taken (attempt 2 of 3) try again",
            "(attempt 2 of 3) bob is taken",
            "bob is taken (2 attempts)",
            "bad nickname bob2",
            "bad nickname 2x",
            "taken 2 of 3x",
            "",
        ] {
            assert!(!ok(t, 2, 3), "{t}");
        }
        assert!(ok("(attempt 3 of 3)", 3, 3));
        assert!(!ok("(attempt 1 of 3)", 3, 3), "the budget is no count");
        assert!(ok("(attempt 1 of 1)", 1, 1));
        assert!(
            ok("token longer than 32 characters (attempt 1)", 1, 3),
            "a number far before the count is no count"
        );
        assert!(!ok("(attempt 99999999999999999999 of 3)", 2, 3));
    }

    #[test]
    fn names_get_the_suffix_as_whole_words_in_any_case() {
        let names = ["alice".to_string(), "bob".to_string()];
        assert_eq!(
            suffix_names(b"chatm Alice bob hi bobby alice-x", &names, "42"),
            b"chatm Alice42 bob42 hi bobby alice-x".to_vec()
        );
    }

    #[test]
    fn lines_are_shown_safely() {
        assert_eq!(shown(b"a\x1b[1m\r\n"), "a\\x1B[1m");
        assert_eq!(shown(b"lf only\n"), "lf only\\n");
        assert_eq!(shown(b"\xff"), "\\xFF");
        assert!(shown(&[b'x'; 600]).ends_with("... (600 bytes)"));
        assert_eq!(shown_raw(b"a\r\n\x00"), "a\\r\\n\\x00");
    }
}
