//! The server's health once the load has stopped: its `capa`, who is still listed.

use super::conn::SConn;
use super::context::Soak;
use crate::wire::show;

/// The server's `capa`, from a client in NEGOTIATING, which then quits.
pub fn soak_capa(ctx: &Soak) -> Result<Vec<String>, String> {
    let mut c = SConn::open(ctx, "capa probe")?;
    c.send(b"capa\r\n")?;
    c.expect(ctx, "+OK capability list follows")?;
    let items = c.items(ctx)?;
    c.quit(ctx)?;
    Ok(items)
}

/// A fresh client registers and asks `users`: the names listed (itself included).
pub fn soak_users(ctx: &Soak, name: &str) -> Result<Vec<String>, String> {
    let mut c = SConn::registered(ctx, "health client", name)?;
    c.send(b"users\r\n")?;
    let head = c.line(ctx)?;
    let users = c.items(ctx)?;
    if head != format!("+OK {} users", users.len()) {
        return Err(format!(
            "health client: users: '{}' followed by {} names",
            show(head.as_bytes()),
            users.len()
        ));
    }
    c.quit(ctx)?;
    Ok(users)
}

#[derive(Default)]
pub struct Health {
    pub users: Option<usize>,
    pub users_secs: f64,
    pub strays: Vec<String>,
    pub threads: (Option<u64>, Option<u64>),
    pub fds: (Option<u64>, Option<u64>),
    pub back_secs: f64,
    pub leftover: String,
    pub rss: (Option<u64>, Option<u64>),
    pub hwm: Option<u64>,
    pub alive: bool,
}

impl Health {
    pub fn ok(&self) -> bool {
        let back = |p: (Option<u64>, Option<u64>)| matches!(p, (Some(a), Some(b)) if b <= a);
        self.users == Some(1) && back(self.threads) && back(self.fds) && self.alive
    }
}
