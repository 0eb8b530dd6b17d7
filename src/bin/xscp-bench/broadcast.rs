//! `broadcast`: K clients in the room, S of them sending M `chatm` to `*` with a window.

use std::time::Instant;

use xscp::sys;

use crate::options::Opts;
use crate::system::check_server;
use crate::traffic::{Job, RecvPlan, SendPlan, clean, report_traffic, run_traffic};
use crate::wire::run_id;

pub fn run(opts: &Opts) -> Result<bool, String> {
    let (k, s, m, w) = (
        opts.clients,
        opts.senders,
        opts.messages.unwrap_or(2_000),
        opts.window,
    );
    sys::ensure_nofile(k as u64 + 64)?;
    let rid = run_id();
    xscp::outln!(
        "xscp-bench broadcast: {k} clients, {s} senders x {m} messages to *, window {w}, \
         server {}",
        opts.addr
    );
    let setup = Instant::now();
    let mut jobs = Vec::with_capacity(k);
    for i in 0..k {
        let name = format!("b{rid}x{i}");
        let send = (i < s).then(|| SendPlan {
            to: "*".into(),
            messages: m,
            window: w,
            payload: opts.payload,
        });
        let recv = RecvPlan {
            from: 0..s,
            skip: Some(i),
            messages: m,
        };
        jobs.push(Job::registered(opts, name, send, recv, opts.receipts, 0)?);
    }
    xscp::outln!(
        "  setup:       {k} clients registered in {:.3} s",
        setup.elapsed().as_secs_f64()
    );
    let tr = run_traffic(opts, jobs, Instant::now())?;
    let t = tr.total;
    let mut r =
        format!("RESULT workload=broadcast clients={k} senders={s} messages={m} window={w}");
    r += &report_traffic("deliveries", &t, tr.wall, &tr.cpu);
    let alive = check_server(opts, &mut r);
    xscp::outln!("{r}");
    Ok(clean(&t) && alive)
}
