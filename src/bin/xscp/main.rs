//! `xscp`: the teaching client for XSCP/1 (xscp(7); man page `xscp(1)`).
//!
//! It keeps the protocol visible: every line typed (or piped) on standard input goes to the
//! server as one PDU, and every line the server sends is printed on standard output as it
//! arrives, verbatim. What WS_2017 says a client does on its own — answer the server's
//! `ping <token>` with `+OK pong <token>`, acknowledge each direct `chatm` with `chatr` — it
//! does too (unless `--manual`), and it prints every line it sends on its own behind an
//! `auto> ` tag, so that nothing reaches the wire unseen.
//!
//! - [`cli`]: the command line (no argument-parsing crate: the grammar is small and the
//!   errors are ours).
//! - [`reader`]: the threads that read standard input and the socket, and the connection.
//! - [`classify`]: what a server line means to the client.
//! - [`client`]: the client's state: what it sends on its own and what it prints.
//! - [`session`]: the loop that feeds every event to the client.
//!
//! `xscp check ...` is another program in the same binary: the conformance checker of
//! [`check`], which grades a server against the protocol.

mod check;
mod classify;
mod cli;
mod client;
mod reader;
mod session;

use std::process::ExitCode;

use cli::{Cli, HELP, USAGE, parse_args};
use client::Exit;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "check") {
        return check::main(&args[1..]);
    }
    let opts = match parse_args(args) {
        Ok(Cli::Run(o)) => o,
        Ok(Cli::Help) => {
            xscp::outln!("{USAGE}\n\n{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(Cli::Version) => {
            xscp::outln!("xscp {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            xscp::errln!("xscp: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match session::run(opts) {
        Exit::Done => ExitCode::SUCCESS,
        Exit::Failed(reason) => {
            xscp::errln!("xscp: {reason}");
            ExitCode::from(1)
        }
        Exit::OutputClosed => ExitCode::SUCCESS,
        Exit::Interrupted => {
            xscp::errln!("xscp: interrupted");
            ExitCode::from(130)
        }
    }
}
