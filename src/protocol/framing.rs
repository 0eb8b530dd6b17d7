//! Framing (xscp(7) §1): bytes in, lines out.
//!
//! A line ends with CR, LF or CRLF (CRLF is one terminator). Its content is at most
//! [`MAX_PDU`] bytes, valid UTF-8 and free of control bytes. The limit is enforced while
//! buffering: the framer never holds more than `MAX_PDU` bytes of one line, so an endless
//! line costs nothing. Empty lines and lines of spaces only are not PDUs and are skipped.

use std::fmt;

pub use super::MAX_PDU;
use crate::text;

/// The most bytes of a rejected line kept for the log (see [`Framer::rejected`]).
pub const MAX_REJECTED: usize = 48;

/// Why a stream of bytes is not a stream of PDUs. Each is a framing violation (§6). Its
/// text, which the `-ERR [PDU]` carries, is written in `reply.rs` with every other reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// More than [`MAX_PDU`] bytes before a terminator.
    TooLong,
    /// A control byte (0x00–0x1F or 0x7F) other than the terminator.
    ControlByte(u8),
    /// The line is not valid UTF-8.
    InvalidUtf8,
}

/// Splits a byte stream into lines. Feed it whatever `read` returned; it keeps at most one
/// partial line between calls.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    /// `buf` holds a line already handed out: clear it before the next one.
    complete: bool,
    /// The last byte seen was a CR: an LF right after it belongs to the same terminator.
    after_cr: bool,
    /// A framing violation was found: `buf` holds the end of the rejected line.
    failed: bool,
    /// Bytes of the rejected line before those in `buf` were dropped.
    cut: bool,
}

/// The bytes of a rejected line that led to the violation, for the log: escaped (see
/// [`text::for_log`]) and at most [`MAX_REJECTED`] of them, `...` first when more came
/// before.
#[derive(Clone, Copy, Debug)]
pub struct Rejected<'a> {
    bytes: &'a [u8],
    cut: bool,
}

impl Rejected<'_> {
    /// The bytes kept, unescaped.
    pub fn bytes(&self) -> &[u8] {
        self.bytes
    }
}

impl fmt::Display for Rejected<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cut {
            f.write_str("...")?;
        }
        f.write_str(&text::for_log(self.bytes))
    }
}

/// A control byte (0x00–0x1F or 0x7F): never part of a PDU (§1).
pub fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7F
}

impl Framer {
    /// A framer with nothing buffered.
    pub fn new() -> Framer {
        Framer {
            buf: Vec::new(),
            complete: false,
            after_cr: false,
            failed: false,
            cut: false,
        }
    }

    /// After a framing violation: the end of the rejected line, up to and including the
    /// offending byte (for an invalid UTF-8 sequence, up to and including the sequence).
    /// Empty before any violation.
    pub fn rejected(&self) -> Rejected<'_> {
        if self.failed {
            return Rejected {
                bytes: &self.buf,
                cut: self.cut,
            };
        }
        // A complete line that is not UTF-8 is still whole in `buf`: found here, off the
        // path of valid lines.
        if let (true, Err(e)) = (self.complete, std::str::from_utf8(&self.buf)) {
            let bad = e.error_len().unwrap_or(self.buf.len() - e.valid_up_to());
            let end = e.valid_up_to() + bad;
            let start = end.saturating_sub(MAX_REJECTED);
            return Rejected {
                bytes: &self.buf[start..end],
                cut: start > 0,
            };
        }
        Rejected {
            bytes: &[],
            cut: false,
        }
    }

    /// Keeps the last [`MAX_REJECTED`] bytes of the line buffered so far followed by
    /// `tail`, for [`Framer::rejected`]; the framer is useless from here on.
    fn reject(&mut self, tail: &[u8], error: FrameError) -> Option<Result<&str, FrameError>> {
        let total = self.buf.len() + tail.len();
        let from_buf = MAX_REJECTED.saturating_sub(tail.len()).min(self.buf.len());
        self.buf.drain(..self.buf.len() - from_buf);
        self.buf
            .extend_from_slice(&tail[tail.len().saturating_sub(MAX_REJECTED)..]);
        self.cut = total > self.buf.len();
        self.failed = true;
        self.complete = false;
        Some(Err(error))
    }

    /// How many bytes of a partial line are buffered (never more than [`MAX_PDU`]).
    pub fn buffered(&self) -> usize {
        if self.complete { 0 } else { self.buf.len() }
    }

    /// Gives the buffer's memory back unless it holds a partial line (or a rejected one),
    /// for a connection gone quiet; the next line allocates it again.
    pub fn release(&mut self) {
        if self.buffered() == 0 && !self.failed {
            self.buf = Vec::new();
            self.complete = false;
        }
    }

    /// Takes bytes from the front of `input` up to and including the next complete PDU and
    /// returns it. Returns `None` once `input` is used up without completing a PDU (the
    /// partial line is kept for the next call). After an error the framer is useless: the
    /// connection is to be aborted.
    pub fn next_line(&mut self, input: &mut &[u8]) -> Option<Result<&str, FrameError>> {
        if self.complete {
            self.buf.clear();
            self.complete = false;
        }
        loop {
            if self.after_cr {
                if let Some((&b'\n', rest)) = input.split_first() {
                    *input = rest;
                }
                if input.is_empty() {
                    // Keep `after_cr`: the LF may come with the next read.
                    return None;
                }
                self.after_cr = false;
            }
            let data = *input;
            // One pass finds the first control byte: CR or LF ends the line, any other is a
            // violation. The first offending byte decides, however the input was split: a
            // control byte within the first MAX_PDU bytes, else the byte that makes the line
            // too long. Enforced while buffering (§1): an overlong line is never held.
            let room = MAX_PDU - self.buf.len();
            let stop = data.iter().position(|&b| is_control(b));
            let end = stop.filter(|&i| data[i] == b'\r' || data[i] == b'\n');
            if let (Some(i), None) = (stop, end) {
                if i < room {
                    return self.reject(&data[..=i], FrameError::ControlByte(data[i]));
                }
                return self.reject(&data[..=room], FrameError::TooLong);
            }
            let content = &data[..end.unwrap_or(data.len())];
            if content.len() > room {
                return self.reject(&content[..=room], FrameError::TooLong);
            }
            self.buf.extend_from_slice(content);
            let Some(end) = end else {
                *input = &[];
                return None;
            };
            self.after_cr = data[end] == b'\r';
            *input = &data[end + 1..];
            if self.buf.iter().all(|&b| b == b' ') {
                // Empty lines and lines of spaces only are not PDUs (§1).
                self.buf.clear();
                continue;
            }
            self.complete = true;
            return Some(std::str::from_utf8(&self.buf).map_err(|_| FrameError::InvalidUtf8));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_frees_the_buffer_but_keeps_a_partial_line() {
        let mut framer = Framer::new();
        let mut input: &[u8] = b"uname alice\r\nchatm alice bob h";
        assert_eq!(framer.next_line(&mut input), Some(Ok("uname alice")));
        assert_eq!(framer.next_line(&mut input), None);
        framer.release();
        assert_eq!(framer.buffered(), 17);
        let mut rest: &[u8] = b"i\r";
        assert_eq!(framer.next_line(&mut rest), Some(Ok("chatm alice bob hi")));
        assert!(framer.buf.capacity() > 0);
        framer.release();
        assert_eq!((framer.buffered(), framer.buf.capacity()), (0, 0));
        // The LF of the CRLF split across reads is still recognised after a release.
        let mut rest: &[u8] = b"\nping x\r\n";
        assert_eq!(framer.next_line(&mut rest), Some(Ok("ping x")));
    }

    /// Feeds `input` in one piece and collects every outcome.
    fn lines(input: &[u8]) -> Vec<Result<String, FrameError>> {
        let mut framer = Framer::new();
        let mut rest = input;
        let mut out = Vec::new();
        while let Some(r) = framer.next_line(&mut rest) {
            let failed = r.is_err();
            out.push(r.map(str::to_owned));
            if failed {
                break;
            }
        }
        out
    }

    #[test]
    fn cr_lf_and_crlf_each_end_one_line() {
        assert_eq!(
            lines(b"a\rb\nc\r\nd\n"),
            vec![
                Ok("a".into()),
                Ok("b".into()),
                Ok("c".into()),
                Ok("d".into())
            ]
        );
    }

    #[test]
    fn lf_after_cr_split_across_reads_is_one_terminator() {
        let mut framer = Framer::new();
        let mut first: &[u8] = b"ping\r";
        assert_eq!(framer.next_line(&mut first), Some(Ok("ping")));
        assert_eq!(framer.next_line(&mut first), None);
        let mut second: &[u8] = b"\ncapa\r\n";
        assert_eq!(framer.next_line(&mut second), Some(Ok("capa")));
        assert_eq!(framer.next_line(&mut second), None);
    }

    #[test]
    fn a_line_split_byte_by_byte_is_reassembled() {
        let mut framer = Framer::new();
        let mut got = Vec::new();
        for b in b"uname alice\r\n" {
            let mut one: &[u8] = std::slice::from_ref(b);
            while let Some(r) = framer.next_line(&mut one) {
                got.push(r.map(str::to_owned));
            }
        }
        assert_eq!(got, vec![Ok("uname alice".to_string())]);
    }

    #[test]
    fn empty_and_blank_lines_are_skipped() {
        assert_eq!(lines(b"\r\n\n   \r\nping\r\n"), vec![Ok("ping".into())]);
    }

    #[test]
    fn exactly_510_bytes_is_a_pdu_and_511_is_not() {
        let ok = [vec![b'x'; MAX_PDU], b"\r\n".to_vec()].concat();
        assert_eq!(lines(&ok), vec![Ok("x".repeat(MAX_PDU))]);
        let long = [vec![b'x'; MAX_PDU + 1], b"\r\n".to_vec()].concat();
        assert_eq!(lines(&long), vec![Err(FrameError::TooLong)]);
    }

    #[test]
    fn an_overlong_line_is_refused_before_its_terminator_arrives() {
        let mut framer = Framer::new();
        let mut chunk: &[u8] = &[b'y'; 400];
        assert_eq!(framer.next_line(&mut chunk), None);
        let mut more: &[u8] = &[b'y'; 400];
        assert_eq!(framer.next_line(&mut more), Some(Err(FrameError::TooLong)));
        assert!(framer.buffered() <= MAX_PDU);
    }

    #[test]
    fn the_first_offending_byte_decides() {
        let late_control = [vec![b'a'; 600], vec![0]].concat();
        assert_eq!(lines(&late_control), vec![Err(FrameError::TooLong)]);
        let early_control = [b"ab\x01".to_vec(), vec![b'a'; 600]].concat();
        assert_eq!(lines(&early_control), vec![Err(FrameError::ControlByte(1))]);
    }

    #[test]
    fn control_bytes_are_violations() {
        assert_eq!(lines(b"pi\0ng\r\n"), vec![Err(FrameError::ControlByte(0))]);
        assert_eq!(lines(b"a\tb\n"), vec![Err(FrameError::ControlByte(9))]);
        assert_eq!(lines(b"a\x7fb\n"), vec![Err(FrameError::ControlByte(0x7F))]);
    }

    #[test]
    fn invalid_utf8_is_a_violation_and_valid_utf8_passes() {
        assert_eq!(
            lines(b"chatm a b \xff\n"),
            vec![Err(FrameError::InvalidUtf8)]
        );
        assert_eq!(
            lines("chatm a b grüße\n".as_bytes()),
            vec![Ok("chatm a b grüße".into())]
        );
    }

    /// The bytes kept for the log after a violation `input` causes.
    fn rejected(input: &[u8]) -> String {
        let mut framer = Framer::new();
        let mut rest = input;
        while let Some(r) = framer.next_line(&mut rest) {
            if r.is_err() {
                return framer.rejected().to_string();
            }
        }
        panic!("no violation in {input:?}")
    }

    #[test]
    fn a_violation_keeps_the_end_of_the_line_up_to_the_offending_byte_escaped() {
        assert_eq!(rejected(b"ok\r\nhello\x1b[31m red\r\n"), "hello\\x1B");
        assert_eq!(
            rejected(b"caf\xc3\xa9 \xff\xfe tail\n"),
            "caf\\xC3\\xA9 \\xFF"
        );
        // Bounded: only the last MAX_REJECTED bytes, "..." first when more came before.
        let long = [b"x".repeat(600), b"\r\n".to_vec()].concat();
        assert_eq!(rejected(&long), format!("...{}", "x".repeat(MAX_REJECTED)));
        let mut control = b"a".repeat(100);
        control.push(0x07);
        let kept = rejected(&control);
        assert!(
            kept.starts_with("...") && kept.ends_with("a\\x07"),
            "{kept}"
        );
        assert_eq!(kept.len(), 3 + MAX_REJECTED - 1 + 4);
    }

    /// The same bytes, however the input was split across reads.
    #[test]
    fn the_rejected_bytes_do_not_depend_on_the_reads() {
        let input = [b"y".repeat(30), b"z".repeat(30), vec![0x01]].concat();
        let whole = rejected(&input);
        let mut framer = Framer::new();
        let mut found = None;
        for chunk in input.chunks(7) {
            let mut rest = chunk;
            if let Some(Err(_)) = framer.next_line(&mut rest) {
                found = Some(framer.rejected().to_string());
                break;
            }
        }
        assert_eq!(found.as_deref(), Some(whole.as_str()));
        assert_eq!(
            whole,
            format!("...{}{}\\x01", "y".repeat(17), "z".repeat(30))
        );
    }

    #[test]
    fn nothing_is_rejected_before_a_violation() {
        let mut framer = Framer::new();
        let mut input: &[u8] = b"fine\r\n";
        assert!(matches!(framer.next_line(&mut input), Some(Ok("fine"))));
        assert_eq!(framer.rejected().bytes(), b"");
    }

    #[test]
    fn several_pdus_in_one_read() {
        assert_eq!(
            lines(b"ping 1\r\nping 2\r\nping 3\r\n"),
            vec![
                Ok("ping 1".into()),
                Ok("ping 2".into()),
                Ok("ping 3".into())
            ]
        );
    }
}

/// Property tests: arbitrary bytes in, never a panic, never more than `MAX_PDU` buffered,
/// and every outcome a line that obeys §1 or one of the framing violations.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `chunks` one after the other; returns every outcome, stopping at an error.
    fn feed(chunks: &[Vec<u8>]) -> Vec<Result<String, FrameError>> {
        let mut framer = Framer::new();
        let mut out = Vec::new();
        for chunk in chunks {
            let mut input = chunk.as_slice();
            while let Some(r) = framer.next_line(&mut input) {
                let failed = r.is_err();
                out.push(r.map(str::to_owned));
                if failed {
                    return out;
                }
            }
            assert!(framer.buffered() <= MAX_PDU);
        }
        out
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        // Biased towards the interesting bytes: terminators, spaces, controls, UTF-8 parts.
        let byte = prop_oneof![
            4 => b'a'..=b'z',
            2 => Just(b' '),
            2 => Just(b'\r'),
            2 => Just(b'\n'),
            1 => any::<u8>(),
            1 => Just(0xC3u8),
            1 => Just(0xA9u8),
        ];
        let short = proptest::collection::vec(byte.clone(), 0..64);
        let long = proptest::collection::vec(byte, 400..1200);
        prop_oneof![short, long]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_frame_into_valid_lines_or_violations(
            chunks in proptest::collection::vec(bytes(), 1..8)
        ) {
            for outcome in feed(&chunks) {
                match outcome {
                    Ok(line) => {
                        prop_assert!(line.len() <= MAX_PDU);
                        prop_assert!(!line.bytes().any(is_control));
                        prop_assert!(!line.bytes().all(|b| b == b' '));
                    }
                    Err(FrameError::TooLong | FrameError::ControlByte(_) | FrameError::InvalidUtf8) => {}
                }
            }
        }

        #[test]
        fn splitting_the_input_never_changes_the_outcome(
            data in bytes(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let whole = feed(std::slice::from_ref(&data));
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(data[last..p].to_vec());
                last = p;
            }
            chunks.push(data[last..].to_vec());
            // The framer may report a too-long line earlier than the full line arrives,
            // never later and never differently.
            prop_assert_eq!(feed(&chunks), whole);
        }
    }
}
