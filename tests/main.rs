//! The integration tests: one crate (Cargo.toml sets `autotests = false` and names this
//! file as the only test target), one module per area, all driving the built binaries over
//! real TCP on 127.0.0.1.
//!
//! To add an area: write `tests/<area>.rs` (a `//!` line saying which sections of
//! xscp(7) it covers, then `use crate::harness::{...};` and its `#[test]`s), and add
//! `mod <area>;` below. A file not declared here is not compiled, so
//! [`every_test_file_is_a_module`] fails until it is. Put a test in the area of the rule it
//! checks, once; helpers that more than one area needs go in `harness`.
//!
//! `harness` has:
//! - `Server::start(args)` / `Server::spawn(wrapper, args, envs)`: `xscpd -l 127.0.0.1:0 -v`,
//!   its log collected; `connect`, `connect_from(ip)`, `connect_with_rcvbuf`, `register`,
//!   `register_from`, `quit`; the log: `wait_log`, `wait_peer_log`, `wait_aborted`,
//!   `wait_closed`, `wait_log_count`, `peer_log`, `log`; the process: `signal`,
//!   `wait_exit`, `exited`, `pid`.
//! - `Client`: `send`, `send_raw`, `line`, `try_line`, `pdu_line`, `expect`,
//!   `expect_prefix`, `expect_close`, `until_eof`, `multiline`, `greeted`, `drain`,
//!   `nothing_pending` (a `ping` round trip as a barrier), `nothing_pending_but_pings`,
//!   `peer` (how the log names it), `writer`, `stream`, `reset`, `shutdown_write`.
//! - Resume: `x40`, `wait_held`, `leave` (cquit, then the hold's log line), `come_back`.
//! - `run`, `try_run`, `try_run_within`, `run_xscpd`: a program run to completion within
//!   the bound.
//! - `flood_until_dropped`, `read_lines_lenient`, `any_conn_closed`, `parse_transition`.
//! - `/proc` values, which have no event: `poll_until`, `proc_status`,
//!   `thread_names`, `thread_wchan`, `open_fds`.
//! - Constants: `WAIT` (the bound of every wait), `PROC_WAIT`, `GREETING`, `BYE`,
//!   `MAX_PDU`, `SPEC_TRANSITIONS` (xscp(7) §3 as the spec writes it).

mod harness;

mod attack;
mod audit_diagram;
mod audit_log;
mod browser;
mod check;
mod check_report;
mod cli;
mod client;
mod diagrams;
mod established;
mod faults;
mod framing;
mod lifecycle;
mod limits;
mod man;
mod negotiating;
mod reliability;
mod restart;
mod resume;
mod smoke;
mod timers_and_holds;

/// Every file and folder in `tests/` is a module of this crate: Cargo compiles only this
/// file, so an area not declared above would silently never run.
#[test]
fn every_test_file_is_a_module() {
    let root = include_str!("main.rs");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read tests/") {
        let path = entry.expect("a tests/ entry").path();
        let name = match path.extension() {
            Some(ext) if ext == "rs" => path.file_stem(),
            Some(_) => continue,
            None => path.file_name(),
        };
        let name = name.and_then(|n| n.to_str()).expect("a UTF-8 name");
        if name != "main" && !root.contains(&format!("\nmod {name};\n")) {
            missing.push(path.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "not a module of tests/main.rs (add `mod <name>;` there): {missing:?}"
    );
}
