//! The protocol layer: framing, commands, the state machine and legality table, replies
//! and the per-connection session logic of xscp(7).
//!
//! Nothing here does I/O: no `std::net`, no threads, no channels. It takes bytes or lines
//! and returns what to do, which is what makes it testable line by line.

pub mod cause;
pub mod command;
pub mod diagram;
pub mod framing;
pub mod fsm;
pub mod nick;
pub mod reply;
pub mod request;
pub mod session;

/// The most bytes a PDU carries before its terminator (512 with CRLF, as in IRC; xscp(7)
/// §1): the framer enforces it on input ([`framing`]), and every line the server sends is
/// cut to it ([`reply`]).
pub const MAX_PDU: usize = 510;
