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

/// A line as read ends with a bare LF, not CR LF (xscp(7) §1: the server ends every line
/// with CR LF; a last line cut off by the end of the stream, with no terminator at all,
/// is not one).
pub fn bare_lf(line: &[u8]) -> bool {
    line.ends_with(b"\n") && !line.ends_with(b"\r\n")
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
    fn a_bare_lf_is_told_from_crlf_and_a_cut_line() {
        assert!(bare_lf(b"lf\n"));
        assert!(!bare_lf(b"ok\r\n"));
        assert!(!bare_lf(b"cut off"));
    }
}
