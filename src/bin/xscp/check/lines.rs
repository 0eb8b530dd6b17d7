//! The checker's bounded line reader, shared by the runner (lines from the server under
//! test) and the server starter (lines of its standard error). It imports neither of them.

use std::io::{self, BufRead};

/// The longest line read from a server; a conforming one sends at most 512 bytes.
pub const MAX_LINE: usize = 8 * 1024;

/// Reads one line with its LF (the client's bounded reader), at most [`MAX_LINE`] bytes:
/// `Some(None)` for a longer one (skipped to its end), `None` at end of stream. A last
/// line cut off by the end of the stream has no terminator.
pub fn read_line<R: BufRead>(r: &mut R) -> io::Result<Option<Option<Vec<u8>>>> {
    Ok(
        crate::reader::read_line_ended(r, MAX_LINE)?.map(|l| match l {
            (crate::reader::Line::Complete(mut bytes), ended) => {
                if ended {
                    bytes.push(b'\n');
                }
                Some(bytes)
            }
            (crate::reader::Line::TooLong, _) => None,
        }),
    )
}

/// How a line as read breaks §1 of xscp(7) (the server ends every line it sends with
/// CR LF), if it does: it ends with a bare LF, or the end of the stream cut it off
/// before any LF (a server that wrote its last line without its terminator and closed).
pub fn bad_end(line: &[u8]) -> Option<&'static str> {
    if line.ends_with(b"\r\n") {
        None
    } else if line.ends_with(b"\n") {
        Some("ended with a bare LF")
    } else {
        Some("ended by the end of the stream, without CR LF")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_bounded() {
        let mut r: &[u8] = b"ok\r\n";
        assert_eq!(read_line(&mut r).unwrap(), Some(Some(b"ok\r\n".to_vec())));
        let mut r: &[u8] = b"lf\n";
        assert_eq!(read_line(&mut r).unwrap(), Some(Some(b"lf\n".to_vec())));
        assert_eq!(read_line(&mut r).unwrap(), None);
        let long = vec![b'a'; MAX_LINE + 10];
        let mut r: &[u8] = &[&long[..], b"\nend"].concat();
        assert_eq!(read_line(&mut r).unwrap(), Some(None));
        assert_eq!(read_line(&mut r).unwrap(), Some(Some(b"end".to_vec())));
    }

    #[test]
    fn a_bare_lf_and_a_cut_line_are_told_from_crlf() {
        assert_eq!(bad_end(b"lf\n"), Some("ended with a bare LF"));
        assert_eq!(bad_end(b"ok\r\n"), None);
        let cut = Some("ended by the end of the stream, without CR LF");
        assert_eq!(bad_end(b"cut off"), cut);
        assert_eq!(bad_end(b"cut off\r"), cut);
    }
}
