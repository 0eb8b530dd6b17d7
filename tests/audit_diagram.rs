//! `xscp diagram` (issue 22) on a real `xscpd -vv` log: a session with a rename, a
//! conversation between two clients, a departure and a resume with its mailbox replayed
//! (xscp(7) §5.7, §5.8), and a spoofing violation (§5.5 chatm) turn into sequence diagrams,
//! as Mermaid text and as an HTML page that headless Chromium renders.
//!
//! It needs the `xscpd` and `xscp` binaries and Chromium.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::browser::{measure, scratch, screenshot};
use crate::harness::{Client, Server};

fn xscp_diagram(args: &[&str], stdin: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xscp"));
    cmd.arg("diagram").args(args);
    match stdin {
        Some(p) => cmd.stdin(std::fs::File::open(p).expect("the log")),
        None => cmd.stdin(Stdio::null()),
    };
    cmd.output().expect("run xscp diagram")
}

/// The connection number the log gives the client `c`.
fn conn_of(server: &Server, c: &Client) -> u64 {
    let line = server.wait_peer_log(&c.peer(), "LISTEN -> NEGOTIATING");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("conn="))
        .and_then(|n| n.parse().ok())
        .expect("conn= in the accept line")
}

/// The numbers of the connections of the session, and its log.
struct Session {
    alice: u64,
    bob: u64,
    bob_again: u64,
    mallory: u64,
    log: String,
}

/// alice and bob talk, bob renames himself to bobby, leaves with one message unreceipted,
/// comes back to two (one held while he was away); mallory spoofs alone.
fn session() -> Session {
    let server = Server::start(&["-v", "--hold", "60"]);
    let mut alice = server.register("alice");
    let mut bob = server.register("bob");
    let (alice_id, bob_id) = (conn_of(&server, &alice), conn_of(&server, &bob));
    bob.send("cname bobby");
    bob.expect("+OK name changed from bob to bobby");
    alice.send("chatm alice bobby hello bob");
    alice.expect("+OK message relayed");
    bob.expect("chatm alice bobby hello bob");
    bob.send("chatr alice bobby");
    alice.expect("chatr alice bobby");
    alice.send("chatm alice bobby second");
    alice.expect("+OK message relayed");
    bob.expect("chatm alice bobby second");
    // bob goes without a receipt: the message is kept for his return.
    let bob_peer = bob.peer();
    drop(bob);
    server.wait_peer_log(&bob_peer, "name bobby held");
    alice.send("chatm alice bobby third");
    alice.expect("+OK message held for bobby");
    let mut again = server.connect().greeted();
    let again_id = conn_of(&server, &again);
    again.send("uname bobby");
    again.expect("+OK welcome back bobby (2 held, 0 lost)");
    again.expect("chatm alice bobby second");
    again.expect("chatm alice bobby third");
    again.send("chatr alice bobby");
    alice.expect("chatr alice bobby");
    let mut mallory = server.register("mallory");
    let mallory_id = conn_of(&server, &mallory);
    let mallory_peer = mallory.peer();
    mallory.send("chatm eve bobby hi");
    mallory.expect_close(&[
        "-ERR [SPOOF] eve is not your nickname",
        "cquit protocol violation",
    ]);
    server.wait_closed(&mallory_peer);
    server.quit(alice);
    server.quit(again);
    Session {
        alice: alice_id,
        bob: bob_id,
        bob_again: again_id,
        mallory: mallory_id,
        log: server.log().join("\n") + "\n",
    }
}

/// The diagrams of a Mermaid output: each `sequenceDiagram` with its lines.
fn diagrams(mermaid: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for l in mermaid.lines() {
        if l == "sequenceDiagram" {
            out.push(Vec::new());
        } else if let Some(d) = out.last_mut().filter(|_| !l.trim().is_empty()) {
            d.push(l.trim().to_string());
        }
    }
    out
}

/// The participant id (`p0`, ...) of connection `n` in a diagram.
fn participant(d: &[String], n: u64) -> String {
    let prefix = format!(" as conn {n} ");
    d.iter()
        .find(|l| l.starts_with("participant ") && l.contains(&prefix))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no conn {n} in {d:#?}"))
        .to_string()
}

/// The index of the first line of `d` that contains every one of `parts`.
fn at(d: &[String], parts: &[&str]) -> usize {
    d.iter()
        .position(|l| parts.iter().all(|p| l.contains(p)))
        .unwrap_or_else(|| panic!("no line with {parts:?} in {d:#?}"))
}

/// The index of the arrow that closes participant `p`'s connection, whichever side closed.
fn close_of(d: &[String], p: &str) -> usize {
    d.iter()
        .position(|l| l.contains(&format!("--x{p}:")) || l.starts_with(&format!("{p}-x")))
        .unwrap_or_else(|| panic!("no close of {p} in {d:#?}"))
}

/// One conversation for alice, bob and bob's return; one diagram for mallory alone; each
/// line where it happened, the rename and the transitions as notes, the violation marked.
#[test]
fn a_logged_session_becomes_its_diagrams() {
    let s = session();
    let dir = scratch("audit-diagram");
    let log = dir.join("xscpd.log");
    std::fs::write(&log, &s.log).unwrap();
    let out = xscp_diagram(&[log.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mermaid = String::from_utf8(out.stdout).unwrap();
    let ds = diagrams(&mermaid);
    assert_eq!(ds.len(), 2, "{mermaid}");
    let (talk, spoof) = (&ds[0], &ds[1]);

    // The conversation: three connections around the server, in order.
    let (a, b, b2) = (
        participant(talk, s.alice),
        participant(talk, s.bob),
        participant(talk, s.bob_again),
    );
    assert!(
        talk.iter()
            .any(|l| l.contains(" as conn ") && l.contains("bob → bobby"))
    );
    let hello_sent = at(talk, &[&format!("{a}->>"), "chatm alice bobby hello bob"]);
    let hello_relayed = at(talk, &[&format!("-->>{b}:"), "chatm alice bobby hello bob"]);
    let receipt = at(talk, &[&format!("{b}->>"), "chatr alice bobby"]);
    assert!(hello_sent < hello_relayed && hello_relayed < receipt);
    let renamed = at(
        talk,
        &[&format!("Note over {b}:"), "renamed bob -#62; bobby"],
    );
    assert!(renamed < hello_sent);
    // bob's departure ends his lifeline; then his return gets the mailbox replayed.
    let gone = close_of(talk, &b);
    let held = at(talk, &[&format!("Note over {b}:"), "name bobby held"]);
    let welcome = at(
        talk,
        &[
            &format!("-->>{b2}:"),
            "+OK welcome back bobby (2 held, 0 lost)",
        ],
    );
    let replay = at(talk, &[&format!("-->>{b2}:"), "chatm alice bobby third"]);
    let resumed = at(
        talk,
        &[
            &format!("Note over {b2},"),
            "ESTABLISHED on credentials_validated nick=bobby",
        ],
    );
    assert!(
        receipt < gone && gone < welcome && welcome < replay,
        "{talk:#?}"
    );
    assert!(
        receipt < held && held < gone,
        "held before the close: {talk:#?}"
    );
    assert!(
        gone < resumed && resumed < welcome,
        "the transition before its lines: {talk:#?}"
    );
    // bob read everything before he left: his close is his own.
    assert!(talk[gone].starts_with(&format!("{b}-x")), "{}", talk[gone]);
    assert!(
        !talk.iter().any(|l| l.contains("FAIL")),
        "no violation in the conversation"
    );
    assert!(
        !talk
            .iter()
            .any(|l| l.contains(" as conn ") && l.contains("mallory"))
    );

    // mallory alone: the violation marked where it happened, then the close.
    let m = participant(spoof, s.mallory);
    assert_eq!(
        spoof
            .iter()
            .filter(|l| l.starts_with("participant "))
            .count(),
        2
    );
    let spoofed = at(spoof, &[&format!("{m}->>"), "chatm eve bobby hi"]);
    let fail = at(
        spoof,
        &["FAIL", "ABORTED on connection_error cause=spoofing"],
    );
    let refused = at(spoof, &[&format!("-->>{m}:"), "-ERR [SPOOF]"]);
    let closed = close_of(spoof, &m);
    assert!(spoofed < fail && fail < closed && refused < closed);
    assert_eq!(spoof[fail - 1], "rect rgb(248, 215, 218)");

    // The same from standard input, for the connection named: mallory's diagram alone.
    let out = xscp_diagram(&["--conn", &s.mallory.to_string()], Some(&log));
    assert!(out.status.success());
    assert_eq!(
        diagrams(&String::from_utf8(out.stdout).unwrap()),
        std::slice::from_ref(spoof)
    );
    // A connection the log does not have.
    let out = xscp_diagram(&["--conn", "99999", log.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no connection 99999"));
}

/// The session's log, and the page `xscp diagram --html` drew of it with `args` more, in
/// the scratch folder `name`.
fn html_page(s: &Session, name: &str, args: &[&str]) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let log = dir.join("xscpd.log");
    std::fs::write(&log, &s.log).unwrap();
    let page = dir.join("diagrams.html");
    let mut all = args.to_vec();
    all.extend(["--html", page.to_str().unwrap(), log.to_str().unwrap()]);
    let out = xscp_diagram(&all, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (log, page)
}

/// The HTML page in a real browser: it loads nothing, draws the two diagrams and the
/// state machine, every label inside its picture and every arrow's label within its arrow,
/// the violation as one failure note, and a screenshot that is not blank.
#[test]
fn the_html_page_renders_in_chromium() {
    let s = session();
    let (log, page) = html_page(&s, "audit-diagram-html", &[]);
    let mermaid = xscp_diagram(&[log.to_str().unwrap()], None);
    let ds = diagrams(&String::from_utf8(mermaid.stdout).unwrap());

    let r = measure(&page);
    assert_eq!(r.resources, 0, "a self-contained page loads nothing");
    let seqs = r.sequences();
    assert_eq!(seqs.len(), 2, "{:?}", r.svgs);
    assert_eq!(r.svgs.iter().filter(|s| s.class == "fsm").count(), 1);
    for (svg, d) in seqs.iter().zip(&ds) {
        // One drawn step per Mermaid statement (a failure's `rect` and `end` wrap one).
        let statements = d
            .iter()
            .filter(|l| {
                !l.starts_with("%%")
                    && !l.starts_with("participant ")
                    && !l.starts_with("rect ")
                    && l.as_str() != "end"
            })
            .count();
        assert_eq!(svg.steps, statements, "{svg:?}");
        assert!(svg.width > 300 && svg.height > 200, "{svg:?}");
        assert!(svg.drawn >= svg.steps, "{svg:?}");
        assert_eq!((svg.outside, svg.squeezed), (0, 0), "{svg:?}");
    }
    assert_eq!((seqs[0].fails, seqs[1].fails), (0, 1));
    assert!(r.dom.contains(&format!("id=\"conn-{}\"", s.mallory)));
    let shot = screenshot(
        &page,
        1280,
        1600,
        Some(&page.with_file_name("diagrams.png")),
    );
    assert!(shot.colours > 16 && shot.inked > 0.02, "{shot:?}");
}

/// The legend says what the pictures draw in red. bob's departure without `cquit` is a
/// fault of xscp(7) §6 (the end of the stream), which the server logs at INFO and the page
/// draws as any transition; only mallory's violation, a warning in the log, is red. The
/// legend said "red: a violation or a fault", and xscp(1) the same.
#[test]
fn the_legend_says_what_is_drawn_red() {
    let (_, page) = html_page(&session(), "audit-diagram-legend", &[]);
    let html = std::fs::read_to_string(&page).expect("the page");
    let note = |cause: &str| {
        let pictures = html.find("<svg class=\"seq\"").expect("a diagram");
        let at = pictures
            + html[pictures..]
                .find(&format!("cause={cause}"))
                .unwrap_or_else(|| panic!("no note of {cause}"));
        let open = html[..at].rfind("<g class=\"step note").expect("its note");
        html[open..at].split('"').nth(1).unwrap().to_string()
    };
    assert_eq!(note("peer"), "step note state", "the fault");
    assert_eq!(note("spoofing"), "step note fail", "the violation");
    let legend = &html[html.find("<p class=\"legend\">").expect("the legend")..];
    let legend = &legend[..legend.find("</p>").unwrap()];
    let red = legend
        .split("<span>")
        .find(|s| s.starts_with("red: "))
        .expect("the legend's red");
    assert!(red.contains("a violation"), "{red}");
    assert!(
        !red.contains("fault"),
        "the legend's red promises faults: {red}"
    );
}

/// The page of one connection (`--conn N --html`) lists every connection of the log, but
/// draws only the one named: the table links only to what the page has. Every other
/// number was a link to an anchor the page lacks, and clicking it did nothing.
#[test]
fn a_page_of_one_connection_links_only_to_what_it_draws() {
    let s = session();
    let mallory = s.mallory.to_string();
    let (_, page) = html_page(&s, "audit-diagram-one", &["--conn", &mallory]);
    let html = std::fs::read_to_string(&page).expect("the page");
    for n in [s.alice, s.bob, s.bob_again, s.mallory] {
        assert!(html.contains(&format!("<td>{n}</td>")) || html.contains(&format!(">{n}</a>")));
    }
    for link in html.split("href=\"#").skip(1) {
        let id = &link[..link.find('"').unwrap()];
        assert!(
            html.contains(&format!("id=\"{id}\"")),
            "a link to no anchor: #{id}"
        );
    }
    assert!(html.contains(&format!("<a href=\"#conn-{mallory}\">{mallory}</a>")));
}

/// A log of two server runs (`--log-file` appends, and each run numbers its connections
/// from 1): a message held for bob in the first run and delivered to him after a restart
/// (xscp(7) §5.9) is one conversation of connections of both runs, each named by its run;
/// alice (run 1 conn 1) and bob's return (run 2 conn 1) are not taken for one connection.
#[test]
fn a_log_of_two_server_runs_keeps_their_connections_apart() {
    let dir = scratch("audit-diagram-runs");
    let (log, state) = (dir.join("xscpd.log"), dir.join("state"));
    let args = [
        "-vv",
        "--hold",
        "60",
        "--log-file",
        log.to_str().expect("a UTF-8 path"),
        "--state",
        state.to_str().expect("a UTF-8 path"),
    ];
    let stop = |mut server: Server| {
        server.signal("INT");
        server.wait_log(|l| l.contains("state saved to"));
        assert!(server.wait_exit().success());
    };

    let first = Server::start(&args);
    first.wait_log(|l| l.contains("state restored from"));
    let mut alice = first.register("alice");
    let bob = first.register("bob");
    let bob_peer = bob.peer();
    drop(bob);
    first.wait_peer_log(&bob_peer, "name bob held");
    alice.send("chatm alice bob kept over a restart");
    alice.expect("+OK message held for bob");
    first.quit(alice);
    stop(first);

    let second = Server::start(&args);
    second.wait_log(|l| l.contains("state restored from"));
    let mut bob = second.connect().greeted();
    bob.send("uname bob");
    bob.expect("+OK welcome back bob (1 held, 0 lost)");
    bob.expect("chatm alice bob kept over a restart");
    second.quit(bob);
    stop(second);

    let out = xscp_diagram(&[log.to_str().expect("a UTF-8 path")], None);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let titles: Vec<String> = diagrams(&text)
        .iter()
        .filter_map(|d| d.first()?.strip_prefix("%% ").map(String::from))
        .collect();
    assert_eq!(
        titles,
        [
            "run 1 conn 1 (alice), run 2 conn 1 (bob)",
            "run 1 conn 2 (bob)"
        ],
        "{text}"
    );
    let d = &diagrams(&text)[0];
    let sent = at(d, &["chatm alice bob kept over a restart"]);
    assert!(d[sent].contains("p0->>p1"), "alice's line read: {d:#?}");
    let delivered = d[sent + 1..]
        .iter()
        .position(|l| l.contains("chatm alice bob kept over a restart"))
        .map(|i| &d[sent + 1 + i])
        .unwrap_or_else(|| panic!("no delivery in {d:#?}"));
    assert!(delivered.starts_with("p1-->>p2"), "to bob's return: {d:#?}");
    // The restart is drawn where the second run's lines begin, before bob connects.
    let restart = at(d, &["Note over p1: xscpd run 2 (the server restarted)"]);
    assert!(
        sent < restart && restart < at(d, &["p2-)p1: (connect from"]),
        "{d:#?}"
    );

    // A number alone is ambiguous in such a log; with its run it is not.
    let out = xscp_diagram(&["--conn", "1", log.to_str().expect("a UTF-8 path")], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("name one as --conn RUN:1"), "{err}");
    let out = xscp_diagram(
        &["--conn", "2:1", log.to_str().expect("a UTF-8 path")],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("participant p0 as run 1 conn 1 alice (")
            && text.contains("(relays only)")
            && text.contains("participant p2 as run 2 conn 1 bob ("),
        "{text}"
    );
}
