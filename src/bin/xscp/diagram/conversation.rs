//! From log entries to sequence diagrams: which connections talked to each other, and the
//! diagram of a set of them.
//!
//! Two connections talk when a `chatm` or `chatr` that the server read from one is the line
//! it sent to the other (a relay, or later a mailbox replay after a resume, xscp(7) §5.8).
//! Such a pair is a [`Link`]. The connections linked to each other, directly or through
//! others, are one conversation, drawn as one diagram. A diagram can also be drawn for the
//! connections an auditor names: then their correspondents appear with only the lines they
//! exchanged with them.

use std::collections::{BTreeSet, HashMap, VecDeque};

use xscp::protocol::cause::Closed;
use xscp::protocol::fsm::{COMMAND_STATES, State};

use super::logparse::{ConnId, Entry, Kind, Level};
use crate::seqdiag::{Arrow, Diagram, Participant, Tone};

/// A relay: the entry where the server read a line, and the entry where it sent that line
/// to another connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// Index of the `<-` entry.
    pub read: usize,
    /// Index of the `->` entry.
    pub sent: usize,
}

/// What the log says about one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conn {
    pub id: ConnId,
    pub peer: String,
    /// The nicknames it went by, in order.
    pub nicks: Vec<String>,
    /// The time of its first and its last line.
    pub first: Option<String>,
    pub last: Option<String>,
    /// Lines read from it and sent to it.
    pub read: usize,
    pub sent: usize,
    /// Warnings (violations, slow consumers, connections refused).
    pub warnings: usize,
    /// The last state the log shows it in.
    pub state: Option<State>,
    /// The transition that took it out of ESTABLISHED or NEGOTIATING, if any: how it ended.
    pub ending: Option<String>,
}

impl Conn {
    /// The nicknames as `bob → bobby`.
    pub fn nick_trail(&self) -> String {
        self.nicks.join(" → ")
    }
}

/// The relay key of a line: the keyword in lower case, sender and recipient as
/// nicknames compare (case-insensitive), the text as it is. `None` for a line that is no
/// relay.
fn relay_key(line: &str) -> Option<String> {
    let line = line.trim_start();
    let (keyword, rest) = line.split_once(' ')?;
    let keyword = keyword.to_ascii_lowercase();
    if keyword != "chatm" && keyword != "chatr" {
        return None;
    }
    let rest = rest.trim_start();
    let (sender, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let rest = rest.trim_start();
    let (recipient, text) = rest.split_once(' ').unwrap_or((rest, ""));
    Some(format!(
        "{keyword} {} {} {}",
        sender.to_ascii_lowercase(),
        recipient.to_ascii_lowercase(),
        // Earlier builds of the server logged a line sent without its trailing spaces.
        text.trim_start().trim_end_matches(' ')
    ))
}

/// Every relay in the log: each `->` of a `chatm` or `chatr` is matched with the oldest
/// `<-` of the same line from another connection before it that no earlier `->` took
/// (a broadcast's one `<-` goes to all), leaving out a `<-` its connection was answered
/// `-ERR` to next (refused: never relayed).
pub fn links(entries: &[Entry]) -> Vec<Link> {
    // Reads the server accepted and has not yet delivered, oldest first, per relay key.
    let mut pending: HashMap<String, VecDeque<usize>> = HashMap::new();
    // Each connection's last relay read, until the server answers it (a refusal drops it).
    let mut last: HashMap<ConnId, (String, usize)> = HashMap::new();
    let mut links = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        match &e.kind {
            Kind::Received(l) => {
                last.remove(&e.conn);
                if let Some(key) = relay_key(l) {
                    pending.entry(key.clone()).or_default().push_back(i);
                    last.insert(e.conn, (key, i));
                }
            }
            Kind::Sent(l) if l.starts_with("-ERR") => {
                // The last line read was refused (a spoof, an unknown recipient): never relayed.
                if let Some((key, r)) = last.remove(&e.conn)
                    && let Some(q) = pending.get_mut(&key)
                {
                    q.retain(|&x| x != r);
                }
            }
            Kind::Sent(l) => {
                let Some(key) = relay_key(l) else { continue };
                let broadcast = key.split(' ').nth(2) == Some("*");
                let Some(q) = pending.get_mut(&key) else {
                    continue;
                };
                if let Some(pos) = q.iter().position(|&r| entries[r].conn != e.conn) {
                    links.push(Link {
                        read: q[pos],
                        sent: i,
                    });
                    if !broadcast {
                        q.remove(pos);
                    }
                }
            }
            _ => {}
        }
    }
    links
}

/// The connections of the log in the order they first appear.
pub fn connections(entries: &[Entry]) -> Vec<Conn> {
    let mut conns: Vec<Conn> = Vec::new();
    let mut at: HashMap<ConnId, usize> = HashMap::new();
    for e in entries {
        let i = *at.entry(e.conn).or_insert_with(|| {
            conns.push(Conn {
                id: e.conn,
                peer: e.peer.clone(),
                nicks: Vec::new(),
                first: e.time.clone(),
                last: None,
                read: 0,
                sent: 0,
                warnings: 0,
                state: None,
                ending: None,
            });
            conns.len() - 1
        });
        let c = &mut conns[i];
        c.last = e.time.clone();
        if e.level == Level::Warning {
            c.warnings += 1;
        }
        match &e.kind {
            Kind::Sent(_) => c.sent += 1,
            Kind::Received(_) => c.read += 1,
            Kind::Transition { from, to, on } => {
                c.state = Some(*to);
                if let Some(nick) = on.split(' ').find_map(|w| w.strip_prefix("nick=")) {
                    c.nicks.push(nick.to_string());
                }
                if COMMAND_STATES.contains(from) && matches!(to, State::Aborted | State::Update) {
                    c.ending = Some(format!("{from} -> {to} on {on}"));
                }
            }
            Kind::Other(text) => {
                if let Some((_, new)) = text
                    .strip_prefix("renamed ")
                    .and_then(|r| r.split_once(" -> "))
                {
                    c.nicks.push(new.to_string());
                }
            }
        }
    }
    conns
}

/// The conversations: sets of connections linked by relays, each listed by connection
/// number, in the order of their first connection.
pub fn conversations(entries: &[Entry], conns: &[Conn], links: &[Link]) -> Vec<Vec<ConnId>> {
    // Union-find over the connections' indices.
    let index: HashMap<ConnId, usize> = conns.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
    let mut parent: Vec<usize> = (0..conns.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for l in links {
        let a = root(&mut parent, index[&entries[l.read].conn]);
        let b = root(&mut parent, index[&entries[l.sent].conn]);
        parent[a.max(b)] = a.min(b);
    }
    let mut groups: Vec<Vec<ConnId>> = Vec::new();
    let mut group_of: HashMap<usize, usize> = HashMap::new();
    for (i, c) in conns.iter().enumerate() {
        let r = root(&mut parent, i);
        let g = *group_of.entry(r).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(c.id);
    }
    groups
}

/// Where each connection's lines, relays and record are, so that drawing one
/// conversation looks at its own only: drawing each of many by scanning the whole log
/// took time growing with the square of the connections (32 s for 32,000).
pub struct Index {
    lines: HashMap<ConnId, Vec<usize>>,
    links: HashMap<ConnId, Vec<Link>>,
    conns: HashMap<ConnId, usize>,
}

impl Index {
    pub fn new(entries: &[Entry], conns: &[Conn], links: &[Link]) -> Index {
        let mut lines: HashMap<ConnId, Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            lines.entry(e.conn).or_default().push(i);
        }
        let mut by_conn: HashMap<ConnId, Vec<Link>> = HashMap::new();
        for &l in links {
            let (r, s) = (entries[l.read].conn, entries[l.sent].conn);
            by_conn.entry(r).or_default().push(l);
            if s != r {
                by_conn.entry(s).or_default().push(l);
            }
        }
        let conns = conns.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
        Index {
            lines,
            links: by_conn,
            conns,
        }
    }
}

/// The diagram of the connections `focus`: all of their lines, and of every other
/// connection the lines it exchanged with them (so that a relay shows both ends).
#[cfg(test)]
pub fn diagram(entries: &[Entry], conns: &[Conn], links: &[Link], focus: &[ConnId]) -> Diagram {
    let index = Index::new(entries, conns, links);
    diagram_with(&index, entries, conns, focus)
}

/// [`diagram`], looking the connections up in `index` (made once for the whole log).
pub fn diagram_with(index: &Index, entries: &[Entry], conns: &[Conn], focus: &[ConnId]) -> Diagram {
    let focus: BTreeSet<ConnId> = focus.iter().copied().collect();
    // The entries shown: the focus's own, and the other end of each of their relays.
    let mut shown: BTreeSet<usize> = BTreeSet::new();
    for id in &focus {
        shown.extend(index.lines.get(id).into_iter().flatten());
        for l in index.links.get(id).into_iter().flatten() {
            shown.insert(l.read);
            shown.insert(l.sent);
        }
    }
    let conn = |id: &ConnId| index.conns.get(id).and_then(|&i| conns.get(i));
    let mut present: Vec<ConnId> = shown.iter().map(|&i| entries[i].conn).collect();
    present.sort_unstable();
    present.dedup();

    let names: Vec<String> = present
        .iter()
        .map(|id| {
            let c = conn(id);
            match c.map(Conn::nick_trail).filter(|n| !n.is_empty()) {
                Some(nicks) => format!("{id} ({nicks})"),
                None => id.to_string(),
            }
        })
        .collect();
    let mut d = Diagram::new(names.join(", "));
    // Clients on both sides of the server: a relay reads left to right.
    let left = present.len().div_ceil(2);
    let mut column: HashMap<ConnId, usize> = HashMap::new();
    let mut server = 0;
    for (k, id) in present.iter().enumerate() {
        if k == left {
            server = d.participant(Participant::server("xscpd"));
        }
        let c = conn(id);
        let mut name = id.to_string();
        if let Some(nicks) = c.map(Conn::nick_trail).filter(|n| !n.is_empty()) {
            name = format!("{name} {nicks}");
        }
        let detail = c.map(|c| c.peer.clone());
        let mut p = Participant::client(name, detail);
        if !focus.contains(id) {
            // A correspondent: only the lines it exchanged with the focus are shown.
            p.detail = Some(format!("{} (relays only)", p.detail.unwrap_or_default()));
        }
        column.insert(*id, d.participant(p));
    }
    if present.len() == left {
        server = d.participant(Participant::server("xscpd"));
    }

    // In a log of several runs, where the lines of a later run begin: a restart.
    let mut run = shown.first().map(|&i| entries[i].conn.run);
    for &i in &shown {
        let e = &entries[i];
        let c = column[&e.conn];
        let at = e.clock();
        if run.is_some_and(|r| r != e.conn.run) {
            let text = format!("xscpd run {} (the server restarted)", e.conn.run);
            d.note(at.clone(), server, None, text, Tone::Info);
        }
        run = Some(e.conn.run);
        match &e.kind {
            Kind::Sent(l) => d.message(at, server, c, l.clone(), Arrow::Line),
            Kind::Received(l) => d.message(at, c, server, l.clone(), Arrow::Line),
            Kind::Transition { from, to, on } => {
                let tone = match e.level {
                    Level::Warning => Tone::Fail,
                    Level::Normal => Tone::State,
                };
                if *from == State::Listen && *to == State::Negotiating {
                    d.message(
                        at.clone(),
                        c,
                        server,
                        format!("(connect from {})", e.peer),
                        Arrow::Connect,
                    );
                }
                d.note(
                    at.clone(),
                    c,
                    Some(server),
                    format!("{from} → {to} on {on}"),
                    tone,
                );
                if *to == State::Closed {
                    // Who ended the TCP connection, when the log says so.
                    if on.contains(&Closed::PeerClosed.to_string()) {
                        d.message(at, c, server, "(closed by the client)".into(), Arrow::Close);
                    } else {
                        d.message(at, server, c, "(connection closed)".into(), Arrow::Close);
                    }
                }
            }
            Kind::Other(text) => {
                let tone = match e.level {
                    Level::Warning => Tone::Fail,
                    Level::Normal => Tone::Info,
                };
                d.note(at, c, None, text.clone(), tone);
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagram::logparse::parse;
    use crate::seqdiag::What;

    /// Connection `n` of a log of one run.
    fn c(n: u64) -> ConnId {
        ConnId::only(n)
    }

    /// Two clients: alice (conn 1) writes to bob (conn 2), who renames himself and sends the
    /// receipt; mallory (conn 3) alone spoofs and is aborted.
    const LOG: &str = "\
2026-12-07T00:04:11.719609Z [INFO] conn=1 peer=127.0.0.1:1 LISTEN -> NEGOTIATING on tcp_connection_accepted
2026-12-07T00:04:11.719626Z [TRACE] conn=1 peer=127.0.0.1:1 -> +OK xscp/1 ready
2026-12-07T00:04:11.926010Z [TRACE] conn=1 peer=127.0.0.1:1 <- uname alice
2026-12-07T00:04:11.926092Z [INFO] conn=1 peer=127.0.0.1:1 NEGOTIATING -> ESTABLISHED on credentials_validated nick=alice
2026-12-07T00:04:11.926130Z [TRACE] conn=1 peer=127.0.0.1:1 -> +OK you are alice
2026-12-07T00:04:12.133887Z [INFO] conn=2 peer=127.0.0.1:2 LISTEN -> NEGOTIATING on tcp_connection_accepted
2026-12-07T00:04:12.333960Z [INFO] conn=2 peer=127.0.0.1:2 NEGOTIATING -> ESTABLISHED on credentials_validated nick=bob
2026-12-07T00:04:12.740506Z [TRACE] conn=2 peer=127.0.0.1:2 <- cname bobby
2026-12-07T00:04:12.740542Z [INFO] conn=2 peer=127.0.0.1:2 renamed bob -> bobby
2026-12-07T00:04:13.140922Z [TRACE] conn=1 peer=127.0.0.1:1 <- chatm alice bobby hello bob
2026-12-07T00:04:13.140965Z [TRACE] conn=1 peer=127.0.0.1:1 -> +OK message relayed
2026-12-07T00:04:13.140970Z [TRACE] conn=2 peer=127.0.0.1:2 -> chatm alice bobby hello bob
2026-12-07T00:04:13.541374Z [TRACE] conn=2 peer=127.0.0.1:2 <- chatr alice bobby
2026-12-07T00:04:13.541417Z [TRACE] conn=1 peer=127.0.0.1:1 -> chatr alice bobby
2026-12-07T00:04:17.650584Z [INFO] conn=3 peer=127.0.0.1:3 LISTEN -> NEGOTIATING on tcp_connection_accepted
2026-12-07T00:04:17.850779Z [INFO] conn=3 peer=127.0.0.1:3 NEGOTIATING -> ESTABLISHED on credentials_validated nick=mallory
2026-12-07T00:04:17.850802Z [TRACE] conn=3 peer=127.0.0.1:3 <- chatm eve bob hi
2026-12-07T00:04:17.850808Z [WARN] conn=3 peer=127.0.0.1:3 ESTABLISHED -> ABORTED on connection_error cause=spoofing
2026-12-07T00:04:17.850813Z [TRACE] conn=3 peer=127.0.0.1:3 -> -ERR [SPOOF] eve is not your nickname
2026-12-07T00:04:18.482255Z [INFO] conn=3 peer=127.0.0.1:3 ABORTED -> CLOSED on close
2026-12-07T00:04:18.482256Z [TRACE] conn=2 peer=127.0.0.1:2 -> notif join mallory
";

    #[test]
    fn relays_link_the_two_ends() {
        let entries = parse(LOG);
        let links = links(&entries);
        let pairs: Vec<(u64, u64)> = links
            .iter()
            .map(|l| (entries[l.read].conn.n, entries[l.sent].conn.n))
            .collect();
        assert_eq!(pairs, [(1, 2), (2, 1)], "the chatm and its receipt");
        assert_eq!(
            relay_key("CHATM Alice  Bob hi  there"),
            Some("chatm alice bob hi  there".into())
        );
        assert_eq!(relay_key("notif join x"), None);
    }

    #[test]
    fn connections_with_their_names_and_endings() {
        let entries = parse(LOG);
        let conns = connections(&entries);
        let ids: Vec<ConnId> = conns.iter().map(|c| c.id).collect();
        assert_eq!(ids, [c(1), c(2), c(3)]);
        assert_eq!(conns[1].nick_trail(), "bob → bobby");
        assert_eq!(conns[2].warnings, 1);
        assert_eq!(conns[2].state, Some(State::Closed));
        assert_eq!(
            conns[2].ending.as_deref(),
            Some("ESTABLISHED -> ABORTED on connection_error cause=spoofing")
        );
        assert_eq!((conns[0].read, conns[0].sent), (2, 4));
    }

    /// A conversation between two clients is one group; a client that talked to nobody is
    /// its own.
    #[test]
    fn a_conversation_is_one_group() {
        let entries = parse(LOG);
        let conns = connections(&entries);
        assert_eq!(
            conversations(&entries, &conns, &links(&entries)),
            [vec![c(1), c(2)], vec![c(3)]]
        );
    }

    /// The diagram of the conversation: both clients around the server, every line in log
    /// order, transitions as notes, the rename as a note.
    #[test]
    fn the_conversation_diagram_has_both_clients() {
        let entries = parse(LOG);
        let conns = connections(&entries);
        let d = diagram(&entries, &conns, &links(&entries), &[c(1), c(2)]);
        let names: Vec<&str> = d.participants.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["conn 1 alice", "xscpd", "conn 2 bob → bobby"]);
        assert_eq!(d.title, "conn 1 (alice), conn 2 (bob → bobby)");
        // Every line of conns 1 and 2 is a step; the two accepts add their connect arrows.
        let own = entries.iter().filter(|e| e.conn != c(3)).count();
        assert_eq!(d.steps.len(), own + 2);
        let relay = d
            .steps
            .iter()
            .position(|s| matches!(&s.what, What::Message { from: 1, to: 2, text, .. } if text == "chatm alice bobby hello bob"))
            .expect("the relay to conn 2");
        let sent = d
            .steps
            .iter()
            .position(|s| matches!(&s.what, What::Message { from: 0, to: 1, text, .. } if text == "chatm alice bobby hello bob"))
            .expect("alice's chatm");
        assert!(sent < relay);
        assert!(d.steps.iter().any(|s| matches!(&s.what, What::Note { over: 2, text, tone: Tone::Info, .. } if text == "renamed bob -> bobby")));
        assert!(!d.failed());
        assert_eq!(d.steps[0].at.as_deref(), Some("00:04:11.719"));
    }

    /// A violation is marked as a failure where it happened, and the close ends the lifeline.
    #[test]
    fn a_violation_is_marked_and_the_close_drawn() {
        let entries = parse(LOG);
        let conns = connections(&entries);
        let d = diagram(&entries, &conns, &links(&entries), &[c(3)]);
        assert_eq!(d.participants.len(), 2);
        let fail = d
            .steps
            .iter()
            .position(|s| {
                matches!(
                    &s.what,
                    What::Note {
                        tone: Tone::Fail,
                        ..
                    }
                )
            })
            .unwrap();
        assert!(
            matches!(&d.steps[fail - 1].what, What::Message { text, .. } if text == "chatm eve bob hi")
        );
        assert!(matches!(
            d.steps.last().map(|s| &s.what),
            Some(What::Message {
                arrow: Arrow::Close,
                ..
            })
        ));
    }

    /// Naming one connection shows its correspondent with only the relays between them.
    #[test]
    fn a_named_connection_shows_its_correspondents_relays_only() {
        let entries = parse(LOG);
        let conns = connections(&entries);
        let d = diagram(&entries, &conns, &links(&entries), &[c(1)]);
        assert_eq!(d.participants.len(), 3);
        assert!(
            d.participants[2]
                .detail
                .as_deref()
                .unwrap()
                .ends_with("(relays only)")
        );
        let of_2: Vec<&str> = d
            .steps
            .iter()
            .filter_map(|s| match &s.what {
                What::Message { from: 2, text, .. } | What::Message { to: 2, text, .. } => {
                    Some(text.as_str())
                }
                What::Note { over: 2, text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(of_2, ["chatm alice bobby hello bob", "chatr alice bobby"]);
    }

    /// A chatm whose text ends in a space: the server relays it with the space; earlier
    /// builds logged the line they sent without it. The two ends are one relay all the
    /// same.
    #[test]
    fn a_relay_with_a_trailing_space_is_still_one_conversation() {
        let log = "\
2026-12-07T19:24:22.933826Z [INFO] conn=1 peer=127.0.0.1:35612 LISTEN -> NEGOTIATING on tcp_connection_accepted
2026-12-07T19:24:22.933950Z [INFO] conn=1 peer=127.0.0.1:35612 NEGOTIATING -> ESTABLISHED on credentials_validated nick=alice
2026-12-07T19:24:23.084201Z [INFO] conn=2 peer=127.0.0.1:35624 LISTEN -> NEGOTIATING on tcp_connection_accepted
2026-12-07T19:24:23.084337Z [INFO] conn=2 peer=127.0.0.1:35624 NEGOTIATING -> ESTABLISHED on credentials_validated nick=bob
2026-12-07T19:24:23.234428Z [TRACE] conn=1 peer=127.0.0.1:35612 <- chatm alice bob hi 
2026-12-07T19:24:23.234487Z [TRACE] conn=1 peer=127.0.0.1:35612 -> +OK message relayed
2026-12-07T19:24:23.234493Z [TRACE] conn=2 peer=127.0.0.1:35624 -> chatm alice bob hi
";
        let entries = parse(log);
        let conns = connections(&entries);
        assert_eq!(
            conversations(&entries, &conns, &links(&entries)),
            [vec![c(1), c(2)]],
            "alice's chatm reached bob: one conversation"
        );
    }

    /// bob is away (held); alice's chatm is held for him; mallory then sends the same line
    /// and is aborted for spoofing; bob returns and gets alice's copy. The replay must be
    /// linked to alice's read, not to mallory's rejected one.
    #[test]
    fn a_rejected_spoof_is_not_the_source_of_a_held_message() {
        let log = "\
2026-12-07T19:24:29.542415Z [INFO] conn=2 peer=127.0.0.1:35648 NEGOTIATING -> ESTABLISHED on credentials_validated nick=alice
2026-12-07T19:24:29.692586Z [TRACE] conn=2 peer=127.0.0.1:35648 <- chatm alice bob see you at 5
2026-12-07T19:24:29.692641Z [DEBUG] conn=2 peer=127.0.0.1:35648 chatm to bob: held in its mailbox
2026-12-07T19:24:29.692648Z [TRACE] conn=2 peer=127.0.0.1:35648 -> +OK message held for bob
2026-12-07T19:24:29.843306Z [INFO] conn=3 peer=127.0.0.1:47482 NEGOTIATING -> ESTABLISHED on credentials_validated nick=mallory
2026-12-07T19:24:29.993480Z [TRACE] conn=3 peer=127.0.0.1:47482 <- chatm alice bob see you at 5
2026-12-07T19:24:29.993522Z [WARN] conn=3 peer=127.0.0.1:47482 ESTABLISHED -> ABORTED on connection_error cause=spoofing
2026-12-07T19:24:29.993577Z [TRACE] conn=3 peer=127.0.0.1:47482 -> -ERR [SPOOF] alice is not your nickname
2026-12-07T19:24:29.993581Z [TRACE] conn=3 peer=127.0.0.1:47482 -> cquit protocol violation
2026-12-07T19:24:30.143720Z [INFO] conn=3 peer=127.0.0.1:47482 ABORTED -> CLOSED on close (the linger failed)
2026-12-07T19:24:30.294216Z [INFO] conn=4 peer=127.0.0.1:47490 NEGOTIATING -> ESTABLISHED on credentials_validated nick=bob (welcome back)
2026-12-07T19:24:30.294222Z [INFO] conn=4 peer=127.0.0.1:47490 resumed bob: mailbox of bob delivered (1 held, 0 lost)
2026-12-07T19:24:30.294226Z [TRACE] conn=4 peer=127.0.0.1:47490 -> +OK welcome back bob (1 held, 0 lost)
2026-12-07T19:24:30.294229Z [TRACE] conn=4 peer=127.0.0.1:47490 -> chatm alice bob see you at 5
";
        let entries = parse(log);
        let pairs: Vec<(u64, u64)> = links(&entries)
            .iter()
            .map(|l| (entries[l.read].conn.n, entries[l.sent].conn.n))
            .collect();
        assert_eq!(
            pairs,
            [(2, 4)],
            "bob's copy came from alice (conn 2), not mallory"
        );
    }

    /// Two identical chatm held for bob are replayed to him: `--conn` of bob's new
    /// connection must show alice sending both, not one.
    #[test]
    fn each_replayed_copy_shows_its_own_read() {
        let log = "\
2026-12-07T19:30:50.879550Z [INFO] conn=2 peer=127.0.0.1:41376 NEGOTIATING -> ESTABLISHED on credentials_validated nick=alice
2026-12-07T19:30:51.029726Z [TRACE] conn=2 peer=127.0.0.1:41376 <- chatm alice bob are you there?
2026-12-07T19:30:51.029789Z [DEBUG] conn=2 peer=127.0.0.1:41376 chatm to bob: held in its mailbox
2026-12-07T19:30:51.029795Z [TRACE] conn=2 peer=127.0.0.1:41376 -> +OK message held for bob
2026-12-07T19:30:51.179986Z [TRACE] conn=2 peer=127.0.0.1:41376 <- chatm alice bob are you there?
2026-12-07T19:30:51.180049Z [DEBUG] conn=2 peer=127.0.0.1:41376 chatm to bob: held in its mailbox
2026-12-07T19:30:51.180055Z [TRACE] conn=2 peer=127.0.0.1:41376 -> +OK message held for bob
2026-12-07T19:30:51.330834Z [INFO] conn=3 peer=127.0.0.1:41388 NEGOTIATING -> ESTABLISHED on credentials_validated nick=bob (welcome back)
2026-12-07T19:30:51.330854Z [TRACE] conn=3 peer=127.0.0.1:41388 -> +OK welcome back bob (2 held, 0 lost)
2026-12-07T19:30:51.330859Z [TRACE] conn=3 peer=127.0.0.1:41388 -> chatm alice bob are you there?
2026-12-07T19:30:51.330863Z [TRACE] conn=3 peer=127.0.0.1:41388 -> chatm alice bob are you there?
";
        let entries = parse(log);
        let conns = connections(&entries);
        let d = diagram(&entries, &conns, &links(&entries), &[c(3)]);
        let from_alice = d
            .steps
            .iter()
            .filter(|s| matches!(&s.what, What::Message { from: 0, text, .. } if text.starts_with("chatm")))
            .count();
        assert_eq!(from_alice, 2, "alice sent two, bob got two");
    }
}
