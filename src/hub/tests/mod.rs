//! The routing rules of xscp(7) §5 and §5.7, against an in-memory output side, one
//! group a rule. Hold expiry and bounds, and the receipts owed, are tested in `holds` and
//! `receipts`.

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::rc::Rc;

use crossbeam_channel::bounded;

use super::*;
use crate::protocol::request::Attempt;

mod notifications;
mod persist;
mod receipts;
mod registration_and_holds;
mod relay_and_order;
mod resume;
mod slow_consumer;
mod users_and_departure;

const HERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const THERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// The first of three attempts (`--max-retries 3`): a refusal of it is replied to by the
/// hub.
const FIRST_ATTEMPT: Attempt = Attempt { n: 1, max: 3 };

/// What the hub did to one client's output side.
#[derive(Debug, Default)]
struct Record {
    /// Bytes queued and not yet looked at.
    queued: String,
    /// Bytes queued in all (against the budget).
    total: usize,
    /// `--sendq`; `None`: unbounded.
    budget: Option<usize>,
    /// A wake is due (as the outbox: `Later` once until woken).
    wake_pending: bool,
    wakes: usize,
    finished: Option<String>,
    aborted: Option<Cause>,
    end: Option<Cause>,
}

/// An in-memory output side; clones share the record.
#[derive(Clone, Debug, Default)]
struct Mem(Rc<RefCell<Record>>);

impl Output for Mem {
    fn queue(&self, line: &[u8]) -> Result<Wake, Overflow> {
        let mut r = self.0.borrow_mut();
        if r.finished.is_some() || r.aborted.is_some() {
            return Ok(Wake::No);
        }
        if r.budget.is_some_and(|b| r.total + line.len() > b) {
            return Err(Overflow);
        }
        r.total += line.len();
        r.queued += std::str::from_utf8(line).unwrap_or("(not UTF-8)");
        if std::mem::replace(&mut r.wake_pending, true) {
            Ok(Wake::No)
        } else {
            Ok(Wake::Later)
        }
    }

    fn relay(&self, line: &[u8], _from: &Self) -> Result<Wake, Overflow> {
        self.queue(line)
    }

    /// A response: never refused, whatever the budget.
    fn respond(&self, line: &[u8]) -> Wake {
        let budget = self.0.borrow_mut().budget.take();
        let wake = self.queue(line).unwrap_or(Wake::No);
        self.0.borrow_mut().budget = budget;
        wake
    }

    fn handled(&self, _commands: u64) {}

    fn wake_now(&self) {
        let mut r = self.0.borrow_mut();
        r.wake_pending = false;
        r.wakes += 1;
    }

    fn finish(&self, lines: &str) {
        let mut r = self.0.borrow_mut();
        if r.finished.is_none() && r.aborted.is_none() {
            r.finished = Some(lines.to_string());
        }
    }

    fn abort(&self, cause: Cause) {
        let mut r = self.0.borrow_mut();
        assert!(r.aborted.is_none(), "aborted twice");
        r.end.get_or_insert(cause.clone());
        r.aborted = Some(cause);
    }

    fn set_end(&self, cause: Cause) {
        self.0.borrow_mut().end.get_or_insert(cause);
    }
}

impl Mem {
    /// The lines queued since the last call, without their CRLF.
    fn lines(&self) -> Vec<String> {
        let queued = std::mem::take(&mut self.0.borrow_mut().queued);
        queued.split_terminator("\r\n").map(String::from).collect()
    }

    fn wakes(&self) -> usize {
        self.0.borrow().wakes
    }

    fn finished(&self) -> Option<String> {
        self.0.borrow().finished.clone()
    }

    fn aborted(&self) -> Option<Cause> {
        self.0.borrow().aborted.clone()
    }

    fn end(&self) -> Option<Cause> {
        self.0.borrow().end.clone()
    }
}

/// Where in `line` its space-separated field `n` is.
fn field(line: &str, n: usize) -> Range<usize> {
    let start: usize = line.split(' ').take(n).map(|f| f.len() + 1).sum();
    let len = line[start..].split(' ').next().map_or(0, str::len);
    start..start + len
}

fn nick(name: &str) -> Nick {
    Nick::parse(name).expect("test nickname")
}

/// The answer to a `uname` that registered `name`.
fn registered(name: &str, welcome_back: bool) -> Answer {
    Answer::Registered {
        nick: nick(name),
        welcome_back,
    }
}

/// A hub under test.
struct Fixture {
    hub: Hub<Mem>,
}

fn hub_with(hold: Duration, max_holds: usize) -> Fixture {
    hub_config(HubConfig {
        hold,
        max_holds,
        max_holds_per_ip: max_holds,
        mailbox: 64 * 1024,
        mailbox_total: 64 * 1024 * 1024,
    })
}

fn hub_config(config: HubConfig) -> Fixture {
    Fixture {
        hub: Hub::new(config),
    }
}

/// The server's defaults: names held for 300 s, up to 1024.
fn hub() -> Fixture {
    hub_with(Duration::from_secs(300), 1024)
}

impl Fixture {
    /// Connection `conn` from `ip` is accepted (NEGOTIATING).
    fn connect(&mut self, conn: ConnId, ip: IpAddr) -> Mem {
        self.connect_with(conn, ip, Mem::default())
    }

    fn connect_with(&mut self, conn: ConnId, ip: IpAddr, outbox: Mem) -> Mem {
        let tag = Tag::from(format!("conn={conn} peer=test").as_str());
        self.hub.handle(ToHub::Accepted {
            conn,
            tag,
            ip,
            outbox: outbox.clone(),
        });
        outbox
    }

    /// Hands the hub a request and takes its answer (the hub handles it before
    /// returning, so the answer is there: `Gone` if it dropped the request).
    fn ask(&mut self, msg: impl FnOnce(Promise) -> ToHub<Mem>) -> Answer {
        let (answer, pending) = slot();
        self.hub.handle(msg(answer));
        pending.wait()
    }

    /// `uname name` on `conn`, its first attempt.
    fn register(&mut self, conn: ConnId, name: &str) -> Answer {
        self.register_attempt(conn, name, FIRST_ATTEMPT)
    }

    /// `uname name` on `conn`, as `attempt`.
    fn register_attempt(&mut self, conn: ConnId, name: &str, attempt: Attempt) -> Answer {
        self.ask(|answer| ToHub::Request {
            conn,
            request: Request::Register {
                nick: nick(name),
                attempt,
            },
            answer: Some(answer),
        })
    }

    /// `cname name` on `conn`.
    fn rename(&mut self, conn: ConnId, name: &str) -> Answer {
        self.ask(|answer| ToHub::Request {
            conn,
            request: Request::Rename(nick(name)),
            answer: Some(answer),
        })
    }

    /// A client `name` on `conn` from `ip`, registered, its `+OK` taken.
    fn join_from(&mut self, conn: ConnId, name: &str, ip: IpAddr) -> Mem {
        let out = self.connect(conn, ip);
        let answer = self.register(conn, name);
        assert!(
            matches!(answer, Answer::Registered { .. }),
            "{name}: {answer:?}"
        );
        out.lines();
        out
    }

    fn join(&mut self, conn: ConnId, name: &str) -> Mem {
        self.join_from(conn, name, HERE)
    }

    /// This hub with two clients registered from here, their `+OK` taken: `first` on
    /// connection 1, `second` on 2.
    fn pair(mut self, first: &str, second: &str) -> (Fixture, Mem, Mem) {
        let one = self.join(1, first);
        let two = self.join(2, second);
        (self, one, two)
    }

    /// `chatm ...` (the whole line, without CRLF) from `conn`.
    fn chat(&mut self, conn: ConnId, line: &str) {
        let mut chats = Chats::default();
        chats.push(&format!("{line}\r\n"), field(line, 2), 1);
        self.hub.handle(ToHub::Chat { conn, chats });
    }

    /// `chatr ...` (the whole line, without CRLF) from `conn`.
    fn receipt(&mut self, conn: ConnId, line: &str) {
        self.request(
            conn,
            Request::Receipt {
                sender: field(line, 1),
                line: format!("{line}\r\n"),
            },
        );
    }

    fn notif(&mut self, conn: ConnId, on: bool) {
        self.request(conn, Request::Notif(on));
    }

    /// `conn` asks what the hub answers only to the client.
    fn request(&mut self, conn: ConnId, request: Request) {
        self.hub.handle(ToHub::Request {
            conn,
            request,
            answer: None,
        });
    }

    /// The connection ends with `cquit` (its reader's last line).
    fn quit(&mut self, conn: ConnId) {
        let lines = Some(reply::QUIT_OK.to_string());
        let (done, _) = crate::hub::slot();
        self.hub.handle(ToHub::Depart { conn, lines, done });
    }
}
