//! The `xscp` client, driven as a person or a script would drive it: the real binary,
//! against the real server on 127.0.0.1:0, with its standard input piped or read from a
//! file. Every wait is for an event (a line on its standard output, the end of it, the
//! process's exit) with the harness's generous bound; nothing waits for time to pass.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use crate::harness::{Server, WAIT, lines_of, poll_until, proc_status, run, thread_wchan};
use crossbeam_channel::{Receiver, RecvTimeoutError};

/// A running `xscp` with its standard output read line by line.
struct Xscp {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every standard-output line taken so far, for failure messages.
    seen: Vec<String>,
}

/// Where `xscp`'s standard input comes from.
enum Input {
    /// A pipe the test writes to (and closes).
    Piped,
    /// A script file.
    File(PathBuf),
}

impl Xscp {
    /// Starts `xscp` with `args` against `server`.
    fn start(server: &Server, args: &[&str], input: Input) -> Xscp {
        let stdin = match input {
            Input::Piped => Stdio::piped(),
            Input::File(path) => Stdio::from(std::fs::File::open(path).expect("open script")),
        };
        Xscp::spawn(args, &server.addr.to_string(), stdin)
    }

    fn spawn(args: &[&str], addr: &str, stdin: Stdio) -> Xscp {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xscp"))
            .args(args)
            .arg(addr)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start xscp");
        let stdout = lines_of(child.stdout.take().expect("stdout"));
        let stderr = lines_of(child.stderr.take().expect("stderr"));
        Xscp {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            seen: Vec::new(),
        }
    }

    /// Types `line` (and a newline) on its standard input.
    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("standard input still open");
        writeln!(stdin, "{line}").expect("write to xscp");
        stdin.flush().expect("flush");
    }

    /// Closes its standard input (end of input).
    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next standard-output line; panics at end of output or after [`WAIT`].
    fn line(&mut self) -> String {
        match self.stdout.recv_timeout(WAIT) {
            Ok(l) => {
                self.seen.push(l.clone());
                l
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!("no line within {WAIT:?}; so far: {:#?}", self.seen)
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("xscp's output ended; so far: {:#?}", self.seen)
            }
        }
    }

    /// Checks the next standard-output line.
    fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want, "so far: {:#?}", self.seen);
    }

    /// Skips lines until one matches `pred`; returns it.
    fn until(&mut self, pred: impl Fn(&str) -> bool) -> String {
        loop {
            let l = self.line();
            if pred(&l) {
                return l;
            }
        }
    }

    /// Waits for the process to end (its output closes first) and returns its status, the
    /// rest of its standard output, and its standard error.
    fn finish(mut self) -> (ExitStatus, Vec<String>, Vec<String>) {
        self.stdin = None;
        let deadline = Instant::now() + WAIT;
        let mut rest = Vec::new();
        let mut err = Vec::new();
        for (rx, into) in [(&self.stdout, &mut rest), (&self.stderr, &mut err)] {
            loop {
                match rx.recv_deadline(deadline) {
                    Ok(l) => into.push(l),
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(RecvTimeoutError::Timeout) => {
                        let _ = self.child.kill();
                        panic!("xscp did not end; output so far: {:#?}", self.seen)
                    }
                }
            }
        }
        // Both of its outputs are closed: the process has ended or is ending.
        let status = self.child.wait().expect("wait for xscp");
        (status, rest, err)
    }
}

impl Drop for Xscp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `text` to a fresh script file.
fn script(text: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "xscp-test-{}-{}.txt",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&path, text).expect("write script");
    path
}

/// `xscp --name NAME` on a pipe, registered.
fn registered(server: &Server, name: &str, extra: &[&str]) -> Xscp {
    let mut args = vec!["--name", name];
    args.extend_from_slice(extra);
    let mut x = Xscp::start(server, &args, Input::Piped);
    x.expect("+OK xscp/1 ready");
    x.expect(&format!("auto> uname {name}"));
    x.expect(&format!("+OK you are {name}"));
    x
}

/// A line the client printed about what it sent itself, not a server line.
fn is_clients_own(line: &str) -> bool {
    line.starts_with("auto> ") || line.starts_with("/msg> ") || line.starts_with("> ")
}

// --- scripts -----------------------------------------------------------------------------

/// A file of commands piped in is a script: each line is one PDU, every reply is printed
/// verbatim, and the client returns when the server has closed after `cquit`.
#[test]
fn a_script_file_runs_to_its_cquit_and_exits_zero() {
    let server = Server::start(&[]);
    let path = script(
        "# a comment is not sent\n\
         uname alice\r\n\
         \n\
         capa\n\
         users\n\
         ping hello\n\
         cquit\n",
    );
    let x = Xscp::start(&server, &[], Input::File(path.clone()));
    let (status, out, err) = x.finish();
    let _ = std::fs::remove_file(path);
    assert!(status.success(), "{status:?} {out:#?} {err:#?}");
    assert!(err.is_empty(), "{err:#?}");
    assert_eq!(out[0], "+OK xscp/1 ready");
    assert_eq!(out[1], "+OK you are alice");
    assert_eq!(out[2], "+OK capability list follows");
    let dot = out.iter().position(|l| l == ".").expect("end of capa");
    assert!(out[3..dot].contains(&"XSCP 1".to_string()), "{out:#?}");
    assert_eq!(out[dot + 1..dot + 4], ["+OK 1 users", "alice", "."]);
    assert_eq!(
        out[dot + 4..],
        ["+OK pong hello", "+OK terminating tasks and disconnecting"]
    );
    // The script said cquit itself: the client added nothing (no second cquit).
    assert!(!out.iter().any(|l| is_clients_own(l)), "{out:#?}");
    server.wait_log(|l| l.contains("ESTABLISHED -> UPDATE on quit_requested"));
}

/// End of standard input sends `cquit` (shown as sent by the client) and waits for the
/// reply; the status is 0.
#[test]
fn end_of_input_sends_cquit_and_waits_for_the_reply() {
    let server = Server::start(&[]);
    let mut x = registered(&server, "bob", &[]);
    x.close_stdin();
    x.expect("auto> cquit");
    x.expect("+OK terminating tasks and disconnecting");
    let (status, rest, err) = x.finish();
    assert!(status.success(), "{status:?} {err:#?}");
    assert!(rest.is_empty() && err.is_empty(), "{rest:#?} {err:#?}");
}

/// `--timestamps` puts the time in front of each line; the line itself stays verbatim.
#[test]
fn timestamps_prefix_lines_that_stay_verbatim() {
    let server = Server::start(&[]);
    let path = script("uname tim\ncquit\n");
    let x = Xscp::start(&server, &["--timestamps"], Input::File(path.clone()));
    let (status, out, _) = x.finish();
    let _ = std::fs::remove_file(path);
    assert!(status.success());
    let bare: Vec<&str> = out
        .iter()
        .map(|l| {
            let (time, rest) = l.split_once(' ').expect("time and line");
            assert_eq!(time.len(), "12:34:56.789".len(), "{l}");
            assert!(
                time.bytes()
                    .all(|b| b.is_ascii_digit() || b == b':' || b == b'.')
            );
            rest
        })
        .collect();
    assert_eq!(
        bare,
        [
            "+OK xscp/1 ready",
            "+OK you are tim",
            "+OK terminating tasks and disconnecting"
        ]
    );
}

// --- what the client does on its own (WS_2017) ------------------------------------------

/// The server's `ping <token>` is answered `+OK pong <token>`, shown as sent by the
/// client. The proof that the server accepted it: it pings again later instead of
/// aborting (a second ping is only sent once the first is answered).
#[test]
fn server_pings_are_answered() {
    let server = Server::start(&["--ping-interval", "200ms"]);
    let mut x = registered(&server, "alice", &[]);
    let first = x.until(|l| l.starts_with("ping "));
    let token = first.strip_prefix("ping ").unwrap_or_default().to_string();
    x.expect(&format!("auto> +OK pong {token}"));
    let second = x.until(|l| l.starts_with("ping "));
    assert_ne!(second, first, "a new token for a new ping");
    let token = second.strip_prefix("ping ").unwrap_or_default();
    x.expect(&format!("auto> +OK pong {token}"));
    x.close_stdin();
    x.until(|l| l == "+OK terminating tasks and disconnecting");
    let (status, _, err) = x.finish();
    assert!(status.success(), "{status:?} {err:#?}");
}

/// A direct `chatm` is acknowledged with `chatr <sender> <me>`, which the server relays to
/// the sender; a broadcast gets no receipt.
#[test]
fn direct_messages_get_a_receipt_broadcasts_do_not() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut x = registered(&server, "alice", &[]);

    bob.send("chatm bob alice hello alice");
    bob.expect("+OK message relayed");
    x.expect("chatm bob alice hello alice");
    x.expect("auto> chatr bob alice");
    bob.expect("chatr bob alice");

    bob.send("chatm bob * hello all");
    bob.expect("+OK message relayed");
    x.expect("chatm bob * hello all");
    // A receipt would be printed right after the message; the next line is the reply to
    // what is typed now.
    x.type_line("ping after");
    x.expect("+OK pong after");
    assert!(bob.nothing_pending());
}

/// §5.8: `xscp` coming back to a held name shows the counted welcome back and receipts
/// every replayed message, which reaches the original sender.
#[test]
fn replayed_messages_get_their_receipts() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut alice = server.register("alice");
    for text in ["one", "two"] {
        bob.send(&format!("chatm bob alice {text}"));
        bob.expect("+OK message relayed");
        alice.expect(&format!("chatm bob alice {text}"));
    }
    let peer = alice.peer();
    alice.reset(); // Before any receipt.
    server.wait_peer_log(&peer, "name alice held for ");

    let mut x = Xscp::start(&server, &["--name", "alice"], Input::Piped);
    x.expect("+OK xscp/1 ready");
    x.expect("auto> uname alice");
    x.expect("+OK welcome back alice (2 held, 0 lost)");
    for text in ["one", "two"] {
        x.expect(&format!("chatm bob alice {text}"));
        x.expect("auto> chatr bob alice");
        bob.expect("chatr bob alice");
    }
    assert!(bob.nothing_pending());
}

/// The receipt names the client by its current nickname, tracked through `cname`.
#[test]
fn receipts_follow_a_change_of_name() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut x = registered(&server, "alice", &[]);
    x.type_line("cname alicia");
    x.expect("+OK name changed from alice to alicia");
    bob.send("chatm bob alicia hi");
    bob.expect("+OK message relayed");
    x.expect("chatm bob alicia hi");
    x.expect("auto> chatr bob alicia");
    bob.expect("chatr bob alicia");
}

/// `--manual` turns both automatic answers off: a chatm gets no receipt, and a ping goes
/// unanswered until the server aborts the connection (status 1, the reason on stderr).
#[test]
fn manual_sends_no_receipt() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut x = registered(&server, "alice", &["--manual"]);
    bob.send("chatm bob alice hello");
    bob.expect("+OK message relayed");
    x.expect("chatm bob alice hello");
    x.type_line("ping after");
    x.expect("+OK pong after");
    // Had a receipt been sent, the server would have relayed it before that pong.
    assert!(bob.nothing_pending());
}

#[test]
fn manual_leaves_pings_unanswered() {
    let server = Server::start(&["--ping-interval", "200ms", "--ping-timeout", "300ms"]);
    let mut x = registered(&server, "alice", &["--manual"]);
    x.until(|l| l.starts_with("ping "));
    // No `auto> +OK pong ...` in between: the next line is the server giving up.
    x.expect("cquit ping timeout");
    let (status, rest, err) = x.finish();
    assert_eq!(status.code(), Some(1), "{rest:#?} {err:#?}");
    assert!(rest.is_empty(), "{rest:#?}");
    assert_eq!(err, ["xscp: server closed the connection: ping timeout"]);
}

/// `--notif` subscribes once registered; notifications are printed like any server line.
#[test]
fn notif_subscribes_once_registered() {
    let server = Server::start(&[]);
    let mut x = registered(&server, "alice", &["--notif"]);
    x.expect("auto> notif on");
    x.expect("+OK notifications on");
    let _bob = server.register("bob");
    x.expect("notif join bob");
}

/// Ctrl-C (SIGINT) sends `cquit` like the end of input; the status is 0 once the server
/// has answered it.
#[test]
fn an_interrupt_sends_cquit() {
    let server = Server::start(&[]);
    let mut x = registered(&server, "alice", &[]);
    let status = Command::new("kill")
        .args(["-INT", &x.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    x.expect("auto> cquit");
    x.expect("+OK terminating tasks and disconnecting");
    let (status, _, err) = x.finish();
    assert!(status.success(), "{status:?} {err:#?}");
}

// --- conveniences -----------------------------------------------------------------------

/// `/msg NAME TEXT` goes out as `chatm <me> NAME TEXT`, and the expansion is shown.
#[test]
fn msg_expands_to_chatm() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut x = registered(&server, "alice", &[]);
    x.type_line("/msg bob hi  there");
    x.expect("/msg> chatm alice bob hi  there");
    x.expect("+OK message relayed");
    bob.expect("chatm alice bob hi  there");
    bob.send("chatr alice bob");
    x.expect("chatr alice bob");
}

/// `/msg` changes nothing of the text: bytes that are not UTF-8 go out as typed, as in a
/// `chatm` typed whole, and the server judges them; they are not replaced with U+FFFD and
/// delivered as a message the user never wrote.
#[test]
fn msg_sends_the_text_as_typed() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let mut x = registered(&server, "alice", &[]);
    let stdin = x.stdin.as_mut().expect("standard input still open");
    stdin
        .write_all(b"/msg bob caf\xe9\n")
        .and_then(|()| stdin.flush())
        .expect("write to xscp");
    x.expect("/msg> chatm alice bob caf\\xE9");
    x.expect("-ERR [PDU] line is not valid UTF-8");
    x.expect("cquit protocol violation");
    assert!(bob.nothing_pending(), "bob got no message");
}

/// In a script, `/msg` right after `uname` sends as the name just asked for: the server
/// reads the lines in order.
#[test]
fn msg_right_after_uname_in_a_script() {
    let server = Server::start(&[]);
    let mut bob = server.register("bob");
    let path = script("uname carol\n/msg bob hello from a script\n");
    let x = Xscp::start(&server, &[], Input::File(path.clone()));
    bob.expect("chatm carol bob hello from a script");
    bob.send("chatr carol bob");
    let (status, out, err) = x.finish();
    let _ = std::fs::remove_file(path);
    assert!(status.success(), "{out:#?} {err:#?}");
    assert!(out.contains(&"/msg> chatm carol bob hello from a script".to_string()));
    assert!(out.contains(&"+OK message relayed".to_string()));
}

// --- a hostile server --------------------------------------------------------------------

/// A server that is not xscpd: it says whatever it likes, control bytes included. Its
/// lines are shown escaped, and so are the lines the client makes of its words (the pong
/// that repeats its token, the receipt that names its sender, the nickname it gave) and
/// the reason on standard error: nothing it sends reaches the terminal raw.
#[test]
fn a_hostile_server_cannot_drive_the_terminal() {
    use std::io::{BufRead, BufReader};
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = listener.local_addr().expect("address");
    let server = std::thread::spawn(move || -> std::io::Result<Vec<String>> {
        let (mut sock, _) = listener.accept()?;
        sock.write_all(
            b"+OK hi\r\n+OK you are al\x1b[5mice\r\nping \x1b]0;T\x07\r\n\
              chatm \x1b[31mevil al\x1b[5mice hi\r\n",
        )?;
        // The pong and the receipt, then the goodbye: nothing is left unread at the close.
        let mut read = BufReader::new(sock.try_clone()?);
        let mut got = Vec::new();
        for _ in 0..2 {
            let mut line = String::new();
            read.read_line(&mut line)?;
            got.push(line);
        }
        sock.write_all(b"cquit \x1b[2Jbye\x9b\r\n")?;
        Ok(got)
    });
    // Standard input stays open (its end would send cquit) until the server has said all.
    let mut x = Xscp::spawn(&[], &addr.to_string(), Stdio::piped());
    for want in [
        "+OK hi",
        "+OK you are al\\x1B[5mice",
        "ping \\x1B]0;T\\x07",
        "auto> +OK pong \\x1B]0;T\\x07",
        "chatm \\x1B[31mevil al\\x1B[5mice hi",
        "auto> chatr \\x1B[31mevil al\\x1B[5mice",
        "cquit \\x1B[2Jbye\\x9B",
    ] {
        x.expect(want);
    }
    let (status, rest, err) = x.finish();
    let got = server
        .join()
        .expect("the server thread")
        .expect("the server's I/O");
    assert_eq!(
        got,
        [
            "+OK pong \x1b]0;T\x07\r\n",
            "chatr \x1b[31mevil al\x1b[5mice\r\n"
        ]
    );
    assert_eq!(status.code(), Some(1), "{rest:#?} {err:#?}");
    assert!(rest.is_empty(), "{rest:#?}");
    assert_eq!(
        err,
        ["xscp: server closed the connection: \\x1B[2Jbye\\x9B"]
    );
}

/// A server that sends faster than standard output takes it (`xscp ADDR | less`, the
/// reader paused) is read no faster than the client prints: the lines wait in the
/// network, not in the client's memory. Seen from /proc: the client's printer blocked on
/// its full pipe, its socket reader blocked handing over the next line, and the memory
/// small (read into memory, the flood passed 64 MiB in a fraction of a second).
#[test]
fn a_flood_waits_in_the_network_not_in_memory() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    let sent = Arc::new(AtomicU64::new(0));
    let (mut child, server) = flooded(Arc::clone(&sent));
    let pid = child.id();
    let waits =
        |thread: &str, call: &str| thread_wchan(pid, thread).is_some_and(|w| w.contains(call));
    // (Or the memory past the bound: the flood read into memory fails the test at once.)
    let rss_kib = poll_until(
        "the printer and the socket reader to wait for each other",
        || {
            let rss_kib = proc_status(pid, "VmRSS");
            let waiting = waits("xscp", "pipe_write") && waits("xscp-socket", "futex");
            (waiting || rss_kib >= 64 * 1024).then_some(rss_kib)
        },
    );
    let sent_mib = sent.load(Ordering::SeqCst) / (1 << 20);
    let _ = child.kill();
    let _ = child.wait();
    let _ = server.join();
    assert!(
        rss_kib < 64 * 1024,
        "{rss_kib} KiB in memory after {sent_mib} MiB sent"
    );
}

/// A fake server that floods its client (greeting, then broadcasts until the client is
/// gone, counting the bytes in `sent`), and `xscp` connected to it, its standard output a
/// pipe nobody reads.
fn flooded(
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> (std::process::Child, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = listener.local_addr().expect("address");
    let server = std::thread::spawn(move || {
        let Ok((mut sock, _)) = listener.accept() else {
            return;
        };
        let block = format!("chatm bob * {}\r\n", "x".repeat(400)).repeat(100);
        let mut out = b"+OK hi\r\n".to_vec();
        while sock.write_all(&out).is_ok() {
            sent.fetch_add(out.len() as u64, Ordering::SeqCst);
            out = block.clone().into_bytes();
        }
    });
    let child = Command::new(env!("CARGO_BIN_EXE_xscp"))
        .arg(addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start xscp");
    (child, server)
}

/// xscp(1) SIGNALS: a second Ctrl-C ends the client at once with status 130, also while
/// it waits to print (standard output a pipe nobody reads, the flood of
/// [`a_flood_waits_in_the_network_not_in_memory`]). Before, the main thread never took
/// the signals while it waited, and only SIGKILL ended the client.
#[test]
fn a_second_interrupt_ends_a_client_that_waits_to_print() {
    let (mut child, server) = flooded(Default::default());
    let pid = child.id();
    poll_until("the client to wait to print", || {
        thread_wchan(pid, "xscp")
            .is_some_and(|w| w.contains("pipe_write"))
            .then_some(())
    });
    // (Two signals sent at once may arrive as one: sent until the client is gone.)
    let status = poll_until("the client to end on a second interrupt", || {
        let _ = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status();
        child.try_wait().expect("try_wait")
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = server.join();
    assert_eq!(status.code(), Some(130), "{status:?}");
}

// --- exit status --------------------------------------------------------------------------

/// A protocol violation: the server answers, says `cquit protocol violation` and closes;
/// the client exits 1 with a one-line reason.
#[test]
fn a_violation_ends_the_client_with_status_1() {
    let server = Server::start(&[]);
    let path = script("uname alice\nuname again\n");
    let x = Xscp::start(&server, &[], Input::File(path.clone()));
    let (status, out, err) = x.finish();
    let _ = std::fs::remove_file(path);
    assert_eq!(status.code(), Some(1), "{out:#?} {err:#?}");
    assert!(
        out.contains(&"-ERR [STATE] uname is not allowed in ESTABLISHED".to_string()),
        "{out:#?}"
    );
    // The server's last line; the client's own `auto> cquit` (end of the script) may come
    // before or after it.
    let server_lines: Vec<&String> = out.iter().filter(|l| !is_clients_own(l)).collect();
    assert_eq!(
        server_lines.last().map(|l| l.as_str()),
        Some("cquit protocol violation")
    );
    assert_eq!(
        err,
        ["xscp: server closed the connection: protocol violation"]
    );
    server.wait_log(|l| l.contains("ESTABLISHED -> ABORTED on connection_error"));
}

/// The server shutting down is not the client's own quit: status 1.
#[test]
fn server_shutdown_ends_the_client_with_status_1() {
    let mut server = Server::start(&[]);
    let mut x = registered(&server, "alice", &[]);
    server.signal("TERM");
    x.expect("cquit server shutting down");
    let (status, _, err) = x.finish();
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        err,
        ["xscp: server closed the connection: server shutting down"]
    );
    assert!(server.wait_exit().success());
}

/// Nothing listening: status 1 and one line saying so.
#[test]
fn no_server_is_status_1() {
    // A port that was just free on loopback.
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let x = Xscp::spawn(&[], &addr.to_string(), Stdio::null());
    let (status, out, err) = x.finish();
    assert_eq!(status.code(), Some(1));
    assert!(out.is_empty());
    assert_eq!(err.len(), 1, "{err:#?}");
    assert!(err[0].starts_with(&format!("xscp: cannot connect to {addr}")));
}

/// Runs `xscp` with a command line that never connects.
fn run_cli(args: &[&str]) -> (Option<i32>, String, String) {
    let out = run(env!("CARGO_BIN_EXE_xscp"), args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_usage_is_one_line_and_the_usage_with_status_2() {
    for args in [
        &["--bogus"][..],
        &["--name"],
        &["a:1", "b:2"],
        &["--manual=yes"],
    ] {
        let (code, out, err) = run_cli(args);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(out.is_empty());
        let lines: Vec<&str> = err.lines().collect();
        assert!(lines[0].starts_with("xscp: "), "{err}");
        assert!(lines[1].starts_with("usage: xscp"), "{err}");
    }
}

#[test]
fn help_and_version() {
    for flag in ["-h", "--help"] {
        let (code, out, err) = run_cli(&[flag]);
        assert_eq!(code, Some(0));
        assert!(out.starts_with("usage: xscp"), "{out}");
        assert!(out.contains("--manual") && err.is_empty());
    }
    for flag in ["-V", "--version"] {
        let (code, out, _) = run_cli(&[flag]);
        assert_eq!(code, Some(0));
        assert_eq!(out, format!("xscp {}\n", env!("CARGO_PKG_VERSION")));
    }
}
