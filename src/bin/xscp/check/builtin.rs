//! The built-in suite: every transcript in `src/bin/xscp/transcripts/`, compiled into the
//! binary, in the order of PROTOCOL.md's sections. A unit test checks that this list and
//! the directory agree.

macro_rules! suite {
    ($($name:literal),* $(,)?) => {
        /// (name, text) of each built-in transcript.
        pub const SUITE: &[(&str, &str)] = &[
            $(($name, include_str!(concat!("../transcripts/", $name, ".xt")))),*
        ];
    };
}

suite![
    "framing-crlf-ends-a-line",
    "framing-lf-ends-a-line",
    "framing-cr-ends-a-line",
    "framing-server-sends-crlf",
    "framing-510-bytes-are-a-pdu",
    "framing-511-bytes-are-a-violation",
    "framing-long-blank-line-is-a-violation",
    "framing-invalid-utf8-is-a-violation",
    "framing-control-byte-is-a-violation",
    "framing-blank-lines-are-skipped",
    "framing-keyword-is-case-insensitive",
    "framing-spaces-separate-tokens",
    "framing-chatm-text-kept-byte-for-byte",
    "greeting-on-accept",
    "replies-in-command-order",
    "replies-err-carries-a-code",
    "replies-multiline-ends-with-dot",
    "fsm-closed-listen-bind-and-listen",
    "fsm-listen-negotiating-on-accept",
    "fsm-negotiating-established-on-credentials",
    "fsm-negotiating-stays-on-invalid-credentials",
    "fsm-negotiating-aborted-on-max-retries",
    "fsm-negotiating-aborted-on-timeout",
    "fsm-negotiating-update-on-quit",
    "fsm-negotiating-update-on-shutdown",
    "fsm-established-aborted-on-error",
    "fsm-established-update-on-quit",
    "fsm-established-update-on-shutdown",
    "fsm-update-closed-releases-the-name",
    "fsm-aborted-closed-releases-the-name",
    "fsm-listen-closed-on-shutdown",
];
