//! What playing a transcript produced: the exchange as events, and the outcome (a
//! failure with what was expected and what arrived). Plain data for the runner that
//! makes it and the report and diagram that print it.

/// What happened on the wire (and to the server), in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Connected {
        conn: String,
        from: Option<String>,
    },
    Sent {
        conn: String,
        bytes: Vec<u8>,
    },
    Received {
        conn: String,
        bytes: Vec<u8>,
    },
    /// The server closed the connection (end of stream).
    Eof {
        conn: String,
    },
    /// The connection failed (reset, I/O error).
    Broken {
        conn: String,
        error: String,
    },
    /// The client closed its side.
    ClientClosed {
        conn: String,
    },
    Note {
        conn: Option<String>,
        text: String,
    },
    Shutdown,
    Exited(String),
    /// Where the transcript failed.
    Failed {
        conn: Option<String>,
        text: String,
    },
}

/// A failed step: what the transcript expected and what arrived instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub line: usize,
    pub step: String,
    pub expected: String,
    pub actual: String,
}

#[cfg(test)]
impl Failure {
    /// The tests' failure: at line 4 of a transcript, in `step`, `x` expected, `y` read.
    pub fn at_line_4(step: &str) -> Failure {
        Failure {
            line: 4,
            step: step.into(),
            expected: "x".into(),
            actual: "y".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail(Failure),
    Skip(String),
    /// A SHOULD transcript failed under `--level must`: reported, not graded.
    Warn(Failure),
}

/// The result of one transcript.
#[derive(Clone, Debug)]
pub struct Run {
    pub outcome: Outcome,
    pub exchange: Vec<Event>,
    /// The last lines the server wrote on standard error (`--server` only).
    pub server_log: Vec<String>,
}
