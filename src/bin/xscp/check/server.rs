//! A server started by `--server` for one transcript: the command built from the template,
//! a free port, the wait until it listens, SIGTERM and exit status on demand, the last
//! lines of its standard error for the report, and the kill at the end.

use std::collections::VecDeque;
use std::io::{BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::lines::read_line;
use super::matching::{secs, shown, strip_terminator};
use super::sys;

/// Lines of the server's standard error kept for a failure report.
const LOG_TAIL: usize = 20;
/// How often a starting or ending server is looked at.
const POLL: Duration = Duration::from_millis(5);

/// A server started for one transcript.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    pub fn start(
        template: &[String],
        options: &[String],
        timeout: Duration,
    ) -> Result<Server, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("<no free port: {e}>"))?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut words = Vec::new();
        for w in template {
            if w == "{options}" {
                words.extend(options.iter().cloned());
            } else {
                words.push(w.replace("{addr}", &addr.to_string()));
            }
        }
        let Some((program, args)) = words.split_first() else {
            return Err("<empty --server command>".into());
        };
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("<cannot run {program}: {e}>"))?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(err) = child.stderr.take() {
            let log = Arc::clone(&log);
            let _ = thread::Builder::new()
                .name("check-server-log".into())
                .spawn(move || keep_tail(err, &log));
        }
        let mut s = Server { child, addr, log };
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = s.child.try_wait() {
                return Err(format!(
                    "<the server exited ({status}) before accepting connections: {}>",
                    s.tail().join(" | ")
                ));
            }
            let up = match sys::listening(port) {
                Some(up) => up,
                None => TcpStream::connect_timeout(&addr, POLL).is_ok(),
            };
            if up {
                return Ok(s);
            }
            if Instant::now() > deadline {
                s.stop();
                return Err(format!(
                    "<nothing listening on {addr} after {}>",
                    secs(timeout)
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// Sends SIGTERM (`@shutdown`).
    pub fn terminate(&self) -> std::io::Result<()> {
        sys::terminate(self.child.id())
    }

    /// Waits up to `timeout` for the server to end: `Some(exit code)` if it did.
    pub fn wait(&mut self, timeout: Duration) -> Option<Option<i32>> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status.code()),
                Err(_) => return Some(None),
                Ok(None) if Instant::now() > deadline => return None,
                Ok(None) => thread::sleep(POLL),
            }
        }
    }

    fn tail(&self) -> Vec<String> {
        self.log
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Kills the server if it still runs; its last log lines.
    pub fn stop(mut self) -> Vec<String> {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        self.tail()
    }
}

/// Keeps the last [`LOG_TAIL`] lines of `r` (each at most 300 bytes).
fn keep_tail<R: Read>(r: R, log: &Mutex<VecDeque<String>>) {
    let mut r = BufReader::new(r);
    while let Ok(Some(line)) = read_line(&mut r) {
        let text = line.map_or_else(
            || "<overlong line>".to_string(),
            |l| shown(strip_terminator(&l)),
        );
        if let Ok(mut log) = log.lock() {
            if log.len() == LOG_TAIL {
                log.pop_front();
            }
            log.push_back(text.chars().take(300).collect());
        }
    }
}
