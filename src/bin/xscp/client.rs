//! The client's state and what it does on its own (xscp(7) §5): it answers pings,
//! acknowledges direct messages, registers with `--name`, and prints every line. Owned by
//! the main thread; the socket's sending side and standard output are plain writers, so
//! that it is tested without either.

use std::io::Write;

use xscp::clock::Utc;
use xscp::console;
use xscp::text::{self, Keep};

use crate::classify::{Seen, classify, keyword};
use crate::cli::Options;

/// The prefix of lines the client sends on its own (auto-pong, auto-receipt, `--name`,
/// `--notif`, the `cquit` at end of input or on Ctrl-C).
const AUTO: &str = "auto> ";
/// The prefix of lines produced by expanding a convenience such as `/msg`.
const EXPANDED: &str = "/msg> ";
/// The prefix of lines sent as typed, echoed with `--echo`.
const TYPED: &str = "> ";

/// Why the client stops, and with which status.
#[derive(Debug)]
pub enum Exit {
    /// The server closed after its `+OK` to our `cquit`.
    Done,
    /// A one-line reason, status 1.
    Failed(String),
    /// A second Ctrl-C.
    Interrupted,
    /// Standard output's reader has gone (`xscp ADDR | head -1`): the program ends
    /// quietly, with status 0.
    OutputClosed,
}

/// The most receipts that wait for the answer to a name change (see
/// [`Client::deferred`]).
const MAX_DEFERRED: usize = 1024;

/// The client's state, owned by the main thread. `S` is the socket's sending side, `W`
/// standard output (both plain writers, so that the logic can be tested without either).
pub struct Client<S: Write, W: Write> {
    pub opts: Options,
    pub sock: S,
    pub out: W,
    /// Our current nickname, from the server's replies to `uname` and `cname`.
    pub me: Option<String>,
    /// The name asked for by a `uname`/`cname` sent but not answered yet: the name the
    /// server will know us by when it reads our next line, if all goes well (for `/msg`).
    pub asked: Option<String>,
    /// Senders of direct messages that arrived while a name change was unanswered: their
    /// receipts wait for the answer, which says which name the server will expect in them.
    pub deferred: Vec<String>,
    /// Whether the user was told that receipts past [`MAX_DEFERRED`] are not sent.
    deferred_full_said: bool,
    /// `--notif` has been acted on.
    pub notif_sent: bool,
    /// The server's first line (its greeting) has arrived. Nothing is sent before it, so
    /// that `--name` goes first and a transcript reads in protocol order.
    pub greeted: bool,
    /// A `cquit` has gone out: nothing more is sent.
    pub quit_sent: bool,
    /// Inside a multi-line response: its lines are items, not server-initiated lines.
    pub in_block: bool,
    /// The last line the server sent, escaped as printed.
    pub last_line: Option<String>,
    /// The reason of the server's own `cquit <reason>`, escaped as printed.
    pub server_quit: Option<String>,
    /// Sending failed (the reason); what the server still says is read to the end.
    pub send_failed: Option<String>,
}

impl<S: Write, W: Write> Client<S, W> {
    pub fn new(opts: Options, sock: S, out: W) -> Client<S, W> {
        Client {
            opts,
            sock,
            out,
            me: None,
            asked: None,
            deferred: Vec::new(),
            deferred_full_said: false,
            notif_sent: false,
            greeted: false,
            quit_sent: false,
            in_block: false,
            last_line: None,
            server_quit: None,
            send_failed: None,
        }
    }

    /// Prints one line on standard output, with the timestamp and `prefix` if any. The
    /// line is shown as it is, except that control characters (which a conforming server
    /// never sends, xscp(7) §1) are shown as `\xNN`, so that they cannot drive the
    /// terminal: not in a server's line, and not in a line of the client's own that
    /// repeats a server's words (a pong's token, a receipt's sender, the nickname).
    fn print(&mut self, prefix: &str, line: &[u8]) -> Result<(), Exit> {
        self.print_shown(prefix, &text::escape(line, Keep::Text))
    }

    /// [`Client::print`] of a line escaped already.
    fn print_shown(&mut self, prefix: &str, shown: &str) -> Result<(), Exit> {
        let mut buf = Vec::with_capacity(shown.len() + 24);
        if self.opts.timestamps {
            buf.extend_from_slice(Utc::now().time_millis().as_bytes());
            buf.push(b' ');
        }
        buf.extend_from_slice(prefix.as_bytes());
        buf.extend_from_slice(shown.as_bytes());
        buf.push(b'\n');
        self.out
            .write_all(&buf)
            .and_then(|()| self.out.flush())
            .map_err(|e| {
                if console::is_closed(&e) {
                    Exit::OutputClosed
                } else {
                    Exit::Failed(format!("cannot write to standard output: {e}"))
                }
            })
    }

    /// Sends one PDU (with CRLF) and prints it behind `echo` if that is given.
    fn send(&mut self, line: &[u8], echo: Option<&str>) -> Result<(), Exit> {
        let text = String::from_utf8_lossy(line);
        let (k, arg) = keyword(&text);
        if k.eq_ignore_ascii_case("cquit") && arg.trim_end_matches(' ').is_empty() {
            // (`cquit` with an argument is only refused: the connection stays.)
            self.quit_sent = true;
        } else if k.eq_ignore_ascii_case("uname") || k.eq_ignore_ascii_case("cname") {
            let name = arg.trim_end_matches(' ');
            if !name.is_empty() && !name.contains(' ') {
                self.asked = Some(name.to_string());
            }
        }
        if self.send_failed.is_some() {
            // (A quit still counts as said: a second Ctrl-C must end the client.)
            return Ok(());
        }
        let mut pdu = Vec::with_capacity(line.len() + 2);
        pdu.extend_from_slice(line);
        pdu.extend_from_slice(b"\r\n");
        if let Err(e) = self.sock.write_all(&pdu).and_then(|()| self.sock.flush()) {
            // Keep reading: the server's last lines (a `cquit <reason>`) say why.
            self.send_failed = Some(e.to_string());
            return Ok(());
        }
        match echo {
            Some(prefix) => self.print(prefix, line),
            None => Ok(()),
        }
    }

    /// Sends a line the client makes on its own, unless either side has already said
    /// `cquit` (the server reads nothing after it).
    fn send_auto(&mut self, line: &str) -> Result<(), Exit> {
        if self.quit_sent || self.server_quit.is_some() {
            return Ok(());
        }
        self.send(line.as_bytes(), Some(AUTO))
    }

    /// The server's greeting: `--name` registers now, and input may flow. A refusal such
    /// as `-ERR [FULL]` is only printed; the server closes next.
    fn on_greeting(&mut self, line: &str) -> Result<(), Exit> {
        self.greeted = true;
        if line.starts_with("+OK")
            && let Some(name) = self.opts.name.clone()
        {
            self.send_auto(&format!("uname {name}"))?;
        }
        Ok(())
    }

    /// A line from the server: print it, then do what a client does on its own.
    pub fn on_server_line(&mut self, raw: &[u8]) -> Result<(), Exit> {
        // Escaped once: printed so, and so quoted on standard error.
        let shown = text::escape(raw, Keep::Text);
        self.print_shown("", &shown)?;
        let line = String::from_utf8_lossy(raw).into_owned();
        self.last_line = Some(shown.clone());
        if !self.greeted {
            return self.on_greeting(&line);
        }
        if self.in_block {
            self.in_block = line != ".";
            return Ok(());
        }
        if line.starts_with("-ERR") && self.asked.is_some() {
            // Most likely the refusal of the name asked for: the name stays as it was.
            self.asked = None;
            self.send_deferred()?;
        }
        match classify(&line) {
            Seen::Ping(token) if !self.opts.manual => {
                self.send_auto(&format!("+OK pong {token}"))?;
            }
            Seen::DirectChat { sender, recipient } if !self.opts.manual => {
                if self.asked.is_some() {
                    // The server reads the receipt after the name change: wait for its
                    // answer to know which name it will expect. A server that never
                    // answers cannot make the wait grow without end: past the bound a
                    // receipt is not sent (the message stays undelivered for the server;
                    // a receipt under a guessed name could be a spoof).
                    if self.deferred.len() < MAX_DEFERRED {
                        self.deferred.push(sender.to_string());
                    } else if !self.deferred_full_said {
                        self.deferred_full_said = true;
                        xscp::errln!(
                            "xscp: no answer to the name change after {MAX_DEFERRED} messages: \
                             their receipts are not sent until it comes, later ones not at all"
                        );
                    }
                } else {
                    let me = self.me.clone().unwrap_or_else(|| recipient.to_string());
                    self.send_auto(&format!("chatr {sender} {me}"))?;
                }
            }
            Seen::Quit(_) => self.server_quit = Some(keyword(&shown).1.to_string()),
            Seen::Registered(name) => {
                self.me = Some(name.to_string());
                self.asked = None;
                self.send_deferred()?;
                if self.opts.notif && !self.notif_sent {
                    self.notif_sent = true;
                    self.send_auto("notif on")?;
                }
            }
            Seen::Renamed(name) => {
                self.me = Some(name.to_string());
                self.asked = None;
                self.send_deferred()?;
            }
            Seen::BlockStart => self.in_block = true,
            Seen::Ping(_) | Seen::DirectChat { .. } | Seen::Broadcast | Seen::Other => {}
        }
        Ok(())
    }

    /// Sends the receipts that waited for a name change to be answered.
    fn send_deferred(&mut self) -> Result<(), Exit> {
        self.deferred_full_said = false;
        let Some(me) = self.me.clone() else {
            return Ok(());
        };
        for sender in std::mem::take(&mut self.deferred) {
            self.send_auto(&format!("chatr {sender} {me}"))?;
        }
        Ok(())
    }

    /// A line from standard input: one PDU, or a convenience. Its bytes go out as they
    /// are, UTF-8 or not: the server judges them.
    pub fn on_input(&mut self, line: &[u8]) -> Result<(), Exit> {
        let trimmed = trim_spaces(line);
        if trimmed.is_empty() || trimmed.starts_with(b"#") {
            return Ok(()); // Not PDUs (xscp(7) §1) / script comments.
        }
        if self.quit_sent {
            let text = String::from_utf8_lossy(line);
            xscp::errln!("xscp: not sent, cquit already sent: {}", text.trim_end());
            return Ok(());
        }
        if let Some(args) = trimmed.strip_prefix(b"/msg")
            && (args.is_empty() || args.starts_with(b" "))
        {
            return self.msg(trim_spaces(args));
        }
        let echo = self.opts.echo.then_some(TYPED);
        self.send(line, echo)
    }

    /// `/msg NAME TEXT` -> `chatm <me> NAME TEXT`, echoed; NAME and TEXT byte for byte.
    fn msg(&mut self, args: &[u8]) -> Result<(), Exit> {
        let (name, text) = args
            .iter()
            .position(|&b| b == b' ')
            .map_or((args, &b""[..]), |i| (&args[..i], trim_spaces(&args[i..])));
        if name.is_empty() || text.is_empty() {
            xscp::errln!("xscp: usage: /msg NAME TEXT");
            return Ok(());
        }
        // A script may say `uname alice` and `/msg bob hi` in one breath: the server reads
        // them in order, so the name asked for is the one to send as.
        let Some(me) = self.asked.clone().or_else(|| self.me.clone()) else {
            xscp::errln!("xscp: /msg needs a nickname first (uname NAME)");
            return Ok(());
        };
        let mut pdu = format!("chatm {me} ").into_bytes();
        pdu.extend_from_slice(name);
        pdu.push(b' ');
        pdu.extend_from_slice(text);
        self.send(&pdu, Some(EXPANDED))
    }

    /// End of standard input (or Ctrl-C): say `cquit`, then wait for the server to close.
    pub fn quit(&mut self) -> Result<(), Exit> {
        self.send_auto("cquit")
    }

    /// The server closed the connection (or it failed): how the client ends.
    pub fn on_end(&self, error: Option<String>) -> Exit {
        let last = self.last_line.as_deref().unwrap_or("");
        if self.quit_sent && last.starts_with("+OK") {
            return Exit::Done;
        }
        let reason = if let Some(reason) = &self.server_quit {
            format!("server closed the connection: {reason}")
        } else if let Some(e) = error {
            format!("connection lost: {e}")
        } else if last.starts_with("-ERR") {
            format!("server closed the connection after: {last}")
        } else if let Some(e) = &self.send_failed {
            format!("server closed the connection (sending failed: {e})")
        } else {
            "server closed the connection".to_string()
        };
        Exit::Failed(reason)
    }
}

/// `bytes` without the spaces it starts with.
fn trim_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client on in-memory "socket" and "stdout", already greeted.
    fn client(opts: Options) -> Client<Vec<u8>, Vec<u8>> {
        let mut c = Client::new(opts, Vec::new(), Vec::new());
        c.on_server_line(b"+OK xscp/1 ready").unwrap();
        c
    }

    fn registered(name: &str, opts: Options) -> Client<Vec<u8>, Vec<u8>> {
        let mut c = client(opts);
        c.on_input(format!("uname {name}").as_bytes()).unwrap();
        c.on_server_line(format!("+OK you are {name}").as_bytes())
            .unwrap();
        take_sent(&mut c);
        c
    }

    /// The PDUs sent since the last call.
    fn take_sent(c: &mut Client<Vec<u8>, Vec<u8>>) -> Vec<String> {
        let sent = String::from_utf8(std::mem::take(&mut c.sock)).unwrap();
        sent.split_terminator("\r\n").map(str::to_string).collect()
    }

    fn printed(c: &Client<Vec<u8>, Vec<u8>>) -> Vec<&str> {
        std::str::from_utf8(&c.out).unwrap().lines().collect()
    }

    fn server(c: &mut Client<Vec<u8>, Vec<u8>>, lines: &[&str]) {
        for l in lines {
            c.on_server_line(l.as_bytes()).unwrap();
        }
    }

    #[test]
    fn control_bytes_are_shown_not_obeyed() {
        let mut c = client(Options::default());
        server(&mut c, &["a\x1b[31mb", "wörld"]);
        assert!(printed(&c).ends_with(&["a\\x1B[31mb", "wörld"]));
    }

    mod automatic_lines {
        use super::*;

        #[test]
        fn name_is_sent_after_the_greeting() {
            let opts = Options {
                name: Some("alice".into()),
                ..Options::default()
            };
            let mut c = Client::new(opts, Vec::new(), Vec::new());
            assert!(take_sent(&mut c).is_empty());
            server(&mut c, &["+OK xscp/1 ready"]);
            assert_eq!(take_sent(&mut c), ["uname alice"]);
            assert_eq!(printed(&c), ["+OK xscp/1 ready", "auto> uname alice"]);
        }

        #[test]
        fn no_name_after_a_refusal_instead_of_a_greeting() {
            let opts = Options {
                name: Some("alice".into()),
                ..Options::default()
            };
            let mut c = Client::new(opts, Vec::new(), Vec::new());
            server(&mut c, &["-ERR [FULL] server full", "cquit server full"]);
            assert!(take_sent(&mut c).is_empty());
        }

        #[test]
        fn pings_are_answered_unless_manual() {
            let mut c = registered("alice", Options::default());
            server(&mut c, &["ping 1.1"]);
            assert_eq!(take_sent(&mut c), ["+OK pong 1.1"]);
            let mut m = registered(
                "alice",
                Options {
                    manual: true,
                    ..Options::default()
                },
            );
            server(&mut m, &["ping 1.1"]);
            assert!(take_sent(&mut m).is_empty());
        }

        #[test]
        fn direct_messages_get_receipts_broadcasts_do_not() {
            let mut c = registered("alice", Options::default());
            server(&mut c, &["chatm bob alice hi", "chatm bob * hi all"]);
            assert_eq!(take_sent(&mut c), ["chatr bob alice"]);
            assert!(printed(&c).ends_with(&[
                "chatm bob alice hi",
                "auto> chatr bob alice",
                "chatm bob * hi all"
            ]));
        }

        #[test]
        fn replayed_messages_after_welcome_back_get_receipts() {
            let mut c = client(Options::default());
            c.on_input(b"uname alice").unwrap();
            server(
                &mut c,
                &[
                    "+OK welcome back alice (2 held, 0 lost)",
                    "chatm bob alice one",
                    "chatm carol alice two",
                ],
            );
            assert_eq!(
                take_sent(&mut c),
                ["uname alice", "chatr bob alice", "chatr carol alice"]
            );
            assert!(printed(&c).contains(&"+OK welcome back alice (2 held, 0 lost)"));
        }

        #[test]
        fn items_of_a_multiline_response_are_not_commands() {
            let mut c = registered("alice", Options::default());
            server(&mut c, &["+OK capability list follows", "ping 60", "."]);
            assert!(take_sent(&mut c).is_empty());
            server(&mut c, &["ping 1.1"]);
            assert_eq!(take_sent(&mut c), ["+OK pong 1.1"]);
        }

        #[test]
        fn a_receipt_waits_for_a_pending_rename() {
            let mut c = registered("alice", Options::default());
            c.on_input(b"cname alicia").unwrap();
            server(&mut c, &["chatm bob alice hi"]);
            assert_eq!(take_sent(&mut c), ["cname alicia"]);
            server(&mut c, &["+OK name changed from alice to alicia"]);
            assert_eq!(take_sent(&mut c), ["chatr bob alicia"]);
        }

        /// A server that never answers the name change cannot make the receipts that wait
        /// for it grow without end: past the bound they are not sent (nor kept).
        #[test]
        fn the_receipts_waiting_for_a_rename_are_bounded() {
            let mut c = registered("alice", Options::default());
            c.on_input(b"cname alicia").unwrap();
            take_sent(&mut c);
            for i in 0..MAX_DEFERRED + 500 {
                server(&mut c, &[&format!("chatm bob{i} alice hi")]);
            }
            assert_eq!(c.deferred.len(), MAX_DEFERRED);
            server(&mut c, &["+OK name changed from alice to alicia"]);
            let sent = take_sent(&mut c);
            assert_eq!(sent.len(), MAX_DEFERRED);
            assert_eq!(sent[0], "chatr bob0 alicia");
            // The next rename waits again, from nothing.
            c.on_input(b"cname alice").unwrap();
            server(&mut c, &["chatm carol alicia hi"]);
            assert_eq!(c.deferred, ["carol"]);
        }

        #[test]
        fn a_refused_rename_releases_the_receipt_under_the_old_name() {
            let mut c = registered("alice", Options::default());
            c.on_input(b"cname bob").unwrap();
            server(&mut c, &["chatm bob alice hi"]);
            take_sent(&mut c);
            server(
                &mut c,
                &["-ERR [IN-USE] bob is already taken by another client"],
            );
            assert_eq!(take_sent(&mut c), ["chatr bob alice"]);
        }

        #[test]
        fn nothing_automatic_after_either_cquit() {
            let mut c = registered("alice", Options::default());
            server(&mut c, &["cquit ping timeout", "ping 1.2"]);
            assert!(take_sent(&mut c).is_empty());
            let mut c = registered("alice", Options::default());
            c.quit().unwrap();
            server(&mut c, &["chatm bob alice hi"]);
            assert_eq!(take_sent(&mut c), ["cquit"]);
        }
    }

    mod input {
        use super::*;

        #[test]
        fn blank_lines_and_comments_are_not_sent() {
            let mut c = client(Options::default());
            for l in ["", "   ", "# note", "  # note", "ping"] {
                c.on_input(l.as_bytes()).unwrap();
            }
            assert_eq!(take_sent(&mut c), ["ping"]);
        }

        #[test]
        fn msg_expands_with_the_current_or_pending_name() {
            let mut c = client(Options::default());
            c.on_input(b"/msg bob hi").unwrap();
            assert!(take_sent(&mut c).is_empty(), "no name yet");
            c.on_input(b"uname alice").unwrap();
            c.on_input(b"/msg bob hi  there").unwrap();
            assert_eq!(
                take_sent(&mut c),
                ["uname alice", "chatm alice bob hi  there"]
            );
            assert_eq!(printed(&c).last(), Some(&"/msg> chatm alice bob hi  there"));
            c.on_input(b"/msg bob").unwrap();
            c.on_input(b"/message").unwrap();
            assert_eq!(take_sent(&mut c), ["/message"]);
        }

        #[test]
        fn cquit_with_an_argument_is_not_a_quit() {
            let mut c = client(Options::default());
            c.on_input(b"cquit now").unwrap();
            assert!(!c.quit_sent);
            c.on_input(b"CQUIT").unwrap();
            assert!(c.quit_sent);
            c.on_input(b"ping").unwrap();
            assert_eq!(take_sent(&mut c), ["cquit now", "CQUIT"]);
        }
    }

    mod ending {
        use super::*;

        #[test]
        fn the_reply_to_our_cquit_is_success() {
            let mut c = registered("alice", Options::default());
            c.quit().unwrap();
            server(&mut c, &["+OK terminating tasks and disconnecting"]);
            assert!(matches!(c.on_end(None), Exit::Done));
        }

        #[test]
        fn the_servers_own_cquit_is_the_reason() {
            let mut c = registered("alice", Options::default());
            c.quit().unwrap();
            server(&mut c, &["cquit server shutting down"]);
            let Exit::Failed(reason) = c.on_end(None) else {
                panic!()
            };
            assert_eq!(reason, "server closed the connection: server shutting down");
        }

        /// The reason on standard error quotes the server: escaped, as its line was.
        #[test]
        fn a_refusal_quoted_as_the_reason_is_escaped() {
            let mut c = registered("alice", Options::default());
            server(&mut c, &["-ERR \x1b[2Jgone"]);
            let Exit::Failed(reason) = c.on_end(None) else {
                panic!()
            };
            assert_eq!(
                reason,
                "server closed the connection after: -ERR \\x1B[2Jgone"
            );
        }

        #[test]
        fn a_close_without_our_cquit_is_failure() {
            let c = registered("alice", Options::default());
            assert!(matches!(c.on_end(None), Exit::Failed(_)));
        }
    }
}
