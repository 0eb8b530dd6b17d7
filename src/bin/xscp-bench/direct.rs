//! `direct`: P pairs; each sender sends M `chatm` to its partner with a window.

use std::time::Instant;

use xscp::sys;

use crate::options::Opts;
use crate::system::check_server;
use crate::traffic::{Job, RecvPlan, SendPlan, clean, report_traffic, run_traffic};
use crate::wire::run_id;

pub fn run(opts: &Opts) -> Result<bool, String> {
    let (p, m, w) = (opts.pairs, opts.messages.unwrap_or(20_000), opts.window);
    sys::ensure_nofile(2 * p as u64 + 64)?;
    let rid = run_id();
    xscp::outln!(
        "xscp-bench direct: {p} pairs x {m} messages, window {w}{}, server {}",
        if opts.receipts { ", with receipts" } else { "" },
        opts.addr
    );
    let setup = Instant::now();
    let mut jobs = Vec::with_capacity(2 * p);
    // Receivers first, so every sender's partner exists when it starts.
    for i in 0..p {
        let recv = RecvPlan {
            from: i..i + 1,
            skip: None,
            messages: m,
        };
        let name = format!("r{rid}x{i}");
        jobs.push(Job::registered(opts, name, None, recv, opts.receipts, 0)?);
    }
    for i in 0..p {
        let send = SendPlan {
            to: format!("r{rid}x{i}"),
            messages: m,
            window: w,
            payload: opts.payload,
        };
        let expect_receipts = if opts.receipts { m } else { 0 };
        let name = format!("s{rid}x{i}");
        let job = Job::registered(
            opts,
            name,
            Some(send),
            RecvPlan::NOTHING,
            false,
            expect_receipts,
        );
        jobs.push(job?);
    }
    xscp::outln!(
        "  setup:       {} clients registered in {:.3} s",
        2 * p,
        setup.elapsed().as_secs_f64()
    );
    let tr = run_traffic(opts, jobs, Instant::now())?;
    let t = tr.total;
    let mut r = format!(
        "RESULT workload=direct pairs={p} messages={m} window={w} receipts={}",
        u8::from(opts.receipts)
    );
    r += &report_traffic("relayed", &t, tr.wall, &tr.cpu);
    let alive = check_server(opts, &mut r);
    xscp::outln!("{r}");
    Ok(clean(&t) && alive)
}
