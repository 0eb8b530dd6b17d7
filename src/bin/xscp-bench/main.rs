//! `xscp-bench`: a load generator for a running `xscpd`, over loopback only.
//!
//! Workloads (the first argument):
//! - `direct`: P pairs; each sender sends M `chatm` to its partner with at most W in flight
//!   (sent, `+OK message relayed` not yet received). Reports relayed messages per second,
//!   one-way latency (send time to the partner's receipt of the relayed `chatm`) and lost,
//!   duplicated or reordered messages.
//! - `broadcast`: K clients, S of them senders, each sending M to `*` with window W.
//!   Reports deliveries per second (each message reaches K-1 clients) and latency.
//! - `idle`: N registered idle clients answering server pings; connect-and-register time,
//!   and with `--server-pid` the server's RSS per connection and its thread count.
//! - `churn`: C workers looping connect, `uname`, `cquit` for D seconds; cycles per second.
//! - `resume`: P pairs for D seconds (default 60); receivers answer every `chatm` with
//!   `chatr`, reset their connections at random moments and come back under the same name
//!   (xscp(7) §5.8). Counts what the server accepted (relayed or held), what arrived,
//!   duplicates, losses, refusals, receipts and resumes.
//! - `mailbox-memory`: for lines of 15 and 510 bytes, held and connected, a fresh `xscpd`
//!   filled up to `--mailbox-total`; the resident memory it added per MiB counted.
//! - `soak`: for D seconds (default 180) all of these at once against one server: chatter
//!   pairs (direct chatm with receipts, broadcasts; order and receipts checked), floods (a
//!   client that never reads, flooded until the server drops it as a slow consumer),
//!   resets (RST in NEGOTIATING and ESTABLISHED), garbage (random bytes, overlong lines,
//!   control bytes, invalid UTF-8, commands for the wrong state, spoofing, stray pongs: each
//!   must get its `-ERR`, `cquit` and an orderly close) and churn. Then, with everything
//!   closed, the server's health: a fresh client is the only user, threads and descriptors
//!   back to their baseline, memory before and after. Needs `--server-pid`.
//!
//! Every run prints a human-readable report, then one `RESULT key=value ...` line. The exit
//! status is 0 for a clean run, 1 when anything was lost, reordered or failed, 2 when the
//! run could not be set up (bad option, server unreachable, ...).
//!
//! Design for speed (the bench must not be the bottleneck, and reports its own CPU share):
//! one thread per socket in `direct`/`broadcast`, each doing blocking reads of up to 64 KiB,
//! parsing lines in place without allocation, and writing everything it has to send (a whole
//! window of `chatm`, pongs, receipts) in one `write`. Timestamps are nanoseconds since a
//! common start, carried in the message text as `<seq> <send-ns>`.
//!
//! Layout: [`options`] (the command line), [`system`] (descriptor limit, resets, /proc,
//! CPU use, worker threads), [`wire`] (lines, connections, registration), [`stats`] and
//! [`rng`] (errors, percentiles, histograms, random choices), [`traffic`] (the engine of
//! `direct` and `broadcast`), then one module per workload.

mod broadcast;
mod churn;
mod direct;
mod idle;
mod mailbox_memory;
mod options;
mod resume;
mod rng;
mod soak;
mod stats;
mod system;
mod traffic;
mod wire;

use std::process::ExitCode;

use options::{USAGE, Workload, parse_args};

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Some(o)) => o,
        Ok(None) => {
            xscp::outln!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            xscp::errln!("xscp-bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match opts.workload {
        Workload::Direct => direct::run(&opts),
        Workload::Broadcast => broadcast::run(&opts),
        Workload::Idle => idle::run(&opts),
        Workload::Churn => churn::run(&opts),
        Workload::Soak => soak::run(&opts),
        Workload::Resume => resume::run(&opts),
        Workload::MailboxMemory => mailbox_memory::run(&opts),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            xscp::errln!("xscp-bench: {}: run was not clean", opts.workload.name());
            ExitCode::from(1)
        }
        Err(e) => {
            xscp::errln!("xscp-bench: {}: {e}", opts.workload.name());
            xscp::outln!(
                "RESULT workload={} error=\"{}\"",
                opts.workload.name(),
                e.replace('"', "'")
            );
            ExitCode::from(2)
        }
    }
}
