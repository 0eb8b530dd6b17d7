//! The text of a transcript step (`xscp-transcript(5)`, TEXT AND PLACEHOLDERS): escapes,
//! `{{` and `}}`, `{...}` braces and `{COUNT*TEXT}` repeats. Pure functions for the
//! parser in [`super::transcript`]; no I/O.

/// The most bytes one step may expand to with `{COUNT*TEXT}` (a flood for `--sendq`).
pub const MAX_SEND: usize = 4 * 1024 * 1024;

/// `{COUNT*TEXT}`: TEXT (escapes resolved, repeats inside it expanded) COUNT times.
pub fn repeat(inner: &str) -> Result<Vec<u8>, String> {
    let (count, text) = inner.split_once('*').unwrap_or((inner, ""));
    let count: usize = count
        .parse()
        .map_err(|_| format!("'{{{inner}}}': a repeat is {{COUNT*TEXT}}"))?;
    let mut what = Vec::new();
    for tok in lex(text)? {
        match tok {
            Tok::Bytes(b) => what.extend_from_slice(&b),
            Tok::Brace(nested) if nested.contains('*') => what.extend(repeat(&nested)?),
            Tok::Brace(nested) => {
                return Err(format!("'{{{nested}}}': only repeats inside a repeat"));
            }
        }
    }
    if what.is_empty() || count.saturating_mul(what.len()) > MAX_SEND {
        return Err(format!("'{{{inner}}}': empty or too long"));
    }
    Ok(what.repeat(count))
}

/// The arguments of `connect`: `[from ADDR] [raw]`.
pub enum Tok {
    Bytes(Vec<u8>),
    /// The text between `{` and `}`.
    Brace(String),
}

/// Splits a text into bytes (escapes resolved, `{{` and `}}` for braces) and `{...}`.
pub fn lex(text: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut rest = text;
    let mut lit = String::new();
    while let Some(i) = rest.find(['{', '}']) {
        lit.push_str(&rest[..i]);
        let (c, after) = (&rest[i..i + 1], &rest[i + 1..]);
        if after.starts_with(c) {
            lit.push_str(c);
            rest = &after[1..];
            continue;
        }
        if c == "}" {
            return Err("a lone '}' (write '}}')".into());
        }
        // The matching brace: repeats may nest (`{2000*chatm a * {400*x}\r\n}`).
        let mut depth = 1;
        let end = after
            .char_indices()
            .find(|&(_, ch)| {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .ok_or("'{' without '}' (write '{{' for a brace)")?;
        toks.push(Tok::Bytes(unescape(&std::mem::take(&mut lit))?));
        toks.push(Tok::Brace(after[..end].to_string()));
        rest = &after[end + 1..];
    }
    lit.push_str(rest);
    toks.push(Tok::Bytes(unescape(&lit)?));
    Ok(toks)
}

/// Resolves `\r`, `\n`, `\t`, `\s` (a space, for trailing ones), `\\` and `\xNN`.
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('s') => out.push(b' '),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let b = u8::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 2)
                    .ok_or_else(|| format!("'\\x{hex}': two hex digits expected"))?;
                out.push(b);
            }
            Some(o) => return Err(format!("unknown escape '\\{o}'")),
            None => return Err("a lone '\\' at the end (write '\\\\')".into()),
        }
    }
    Ok(out)
}
