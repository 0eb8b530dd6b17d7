//! Connection counts: `--max-clients` and `--max-per-ip` (xscp(7) §7).
//!
//! One mutex guards both counts and the table of live connections, so admission is exact
//! under any race of connects and disconnects. A [`Ticket`] is a client's place; dropping it
//! (when the connection has closed) frees the place at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::shared::ConnShared;
use crate::conn_id::ConnId;

/// Why a connection is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `--max-clients` connections are open.
    ServerFull,
    /// `--max-per-ip` connections are open from this address.
    TooManyFromAddress,
    /// The process is out of descriptors, memory or threads.
    OutOfResources,
}

#[derive(Default)]
struct Table {
    per_ip: HashMap<IpAddr, usize>,
    live: HashMap<ConnId, Option<Arc<ConnShared>>>,
}

/// The live connections and their limits.
pub struct Admission {
    max_clients: usize,
    max_per_ip: usize,
    table: Mutex<Table>,
    emptied: Condvar,
}

/// A client's place among the live connections; dropping it frees the place.
pub struct Ticket {
    admission: Arc<Admission>,
    conn: ConnId,
    ip: IpAddr,
}

impl Admission {
    /// Limits of `max_clients` in all (at least 1: the configuration refuses 0) and
    /// `max_per_ip` per address (0: unlimited).
    pub fn new(max_clients: usize, max_per_ip: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max_clients,
            max_per_ip,
            table: Mutex::new(Table::default()),
            emptied: Condvar::new(),
        })
    }

    /// Takes a place for `conn` from `ip`, or says why not.
    pub fn admit(self: &Arc<Self>, conn: ConnId, ip: IpAddr) -> Result<Ticket, Refusal> {
        let mut t = self.table.lock();
        if t.live.len() >= self.max_clients {
            return Err(Refusal::ServerFull);
        }
        let n = t.per_ip.entry(ip).or_insert(0);
        if self.max_per_ip != 0 && *n >= self.max_per_ip {
            return Err(Refusal::TooManyFromAddress);
        }
        *n += 1;
        t.live.insert(conn, None);
        Ok(Ticket {
            admission: Arc::clone(self),
            conn,
            ip,
        })
    }

    /// How many connections are live.
    pub fn live(&self) -> usize {
        self.table.lock().live.len()
    }

    /// Waits until no connection is live, or until `timeout`. True if none is.
    pub fn wait_empty(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut t = self.table.lock();
        while !t.live.is_empty() {
            if self.emptied.wait_until(&mut t, deadline).timed_out() {
                return t.live.is_empty();
            }
        }
        true
    }

    /// Wakes every connection's reader from its blocking read, so that it sees the
    /// shutdown at once rather than when its client closes.
    pub fn wake_all(&self) {
        for shared in self.table.lock().live.values().flatten() {
            shared.wake_reader();
        }
    }

    /// Cuts every live connection (both directions), waking its threads.
    pub fn cut_all(&self) {
        for shared in self.table.lock().live.values().flatten() {
            shared.cut();
        }
    }
}

impl Ticket {
    /// Registers the connection's shared state so that `cut_all` can reach it.
    pub fn attach(&self, shared: Arc<ConnShared>) {
        if let Some(slot) = self.admission.table.lock().live.get_mut(&self.conn) {
            *slot = Some(shared);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut t = self.admission.table.lock();
        t.live.remove(&self.conn);
        // After a spike of connections, give the table's memory back.
        if t.live.capacity() > 64 && t.live.len() < t.live.capacity() / 4 {
            let keep = (t.live.len() * 2).max(64);
            t.live.shrink_to(keep);
        }
        if let Some(n) = t.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.per_ip.remove(&self.ip);
            }
        }
        if t.live.is_empty() {
            self.admission.emptied.notify_all();
        }
    }
}
