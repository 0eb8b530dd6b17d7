//! What the checker asks of the system: connect *from* a chosen loopback address
//! (127.0.0.2 is "another IP" for holds and per-IP limits, xscp(7) §5.7, §7) and send
//! SIGTERM to a server it started (§7 shutdown), both declared in [`xscp::sys`]; and
//! whether a port is listening, read from /proc.

pub use xscp::sys::{connect_from, terminate};
/// Is something listening on TCP `port` (IPv4 or IPv6)? `None` when the system does not
/// say (no /proc): the caller then probes with a connection.
pub fn listening(port: u16) -> Option<bool> {
    let mut known = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        known = true;
        let hit = text.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local_address is ADDR:PORT in hex; state 0A is LISTEN.
            f.len() > 3
                && f[3] == "0A"
                && f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    == Some(port)
        });
        if hit {
            return Some(true);
        }
    }
    known.then_some(false)
}
