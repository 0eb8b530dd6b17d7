//! Consecutive `chatm` lines of one client, given to the hub as one message.
//!
//! A client that pipelines messages has many complete lines in one read; its reader hands
//! them over together, so that the hub's inbox, the allocator and the sender's queue lock
//! are paid once a batch instead of once a line. The hub relays them in order, exactly as
//! if they had come one by one.

use std::ops::Range;

/// One or more complete `chatm` lines (CRLF-terminated), in the order the client sent them,
/// each with where its recipient field is.
#[derive(Debug, Default)]
pub struct Chats {
    text: String,
    lines: Vec<Line>,
}

#[derive(Debug)]
struct Line {
    /// Where the line ends in `text` (it starts where the previous one ends).
    end: usize,
    /// Where its recipient field is in `text`.
    recipient: Range<usize>,
}

impl Chats {
    /// Adds `line`, whose recipient field is at `recipient` within it. The first line
    /// makes room for `expected` lines like it: a batch is allocated once, not grown line
    /// by line (it is freed on the hub's thread, so the reader's allocator cache cannot
    /// serve the next one).
    pub fn push(&mut self, line: &str, recipient: Range<usize>, expected: usize) {
        if self.lines.is_empty() {
            self.text.reserve(line.len() * expected);
            self.lines.reserve(expected);
        }
        let start = self.text.len();
        self.text.push_str(line);
        self.lines.push(Line {
            end: self.text.len(),
            recipient: start + recipient.start..start + recipient.end,
        });
    }

    /// How many lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// No lines.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Each line, in order, with its recipient field's place within the line.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Range<usize>)> {
        let mut start = 0;
        self.lines.iter().map(move |l| {
            let line = self.text.get(start..l.end).unwrap_or_default();
            let recipient = l.recipient.start - start..l.recipient.end - start;
            start = l.end;
            (line, recipient)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_back_in_order_with_their_recipients() {
        let mut c = Chats::default();
        c.push("chatm a bob hi\r\n", 8..11, 2);
        c.push("chatm a * all\r\n", 8..9, 2);
        let got: Vec<(&str, &str)> = c.iter().map(|(l, r)| (l, &l[r])).collect();
        assert_eq!(
            got,
            [("chatm a bob hi\r\n", "bob"), ("chatm a * all\r\n", "*")]
        );
        assert_eq!(c.len(), 2);
    }
}
