//! The integration tests, as one crate.
mod common;
mod support_faults;

mod cli;
mod client;
mod established;
mod faults;
mod framing;
mod lifecycle;
mod limits;
mod man;
mod negotiating;
mod smoke;
mod timers_and_holds;
