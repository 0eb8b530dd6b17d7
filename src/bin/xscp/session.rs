//! The loop: connects, starts the threads, and hands every event to the [`Client`] in the
//! order it comes, until the connection ends. Threads: one reads standard input, one reads
//! the socket, each feeding a crossbeam channel, and one writes to the socket what the
//! main thread queues for it ([`Outgoing`]); the main thread `select!`s on the channels
//! (and on Ctrl-C), owns standard output, and is the only one that decides anything.
//!
//! The main thread never blocks on the socket: a server that writes all it has to say
//! before it reads (one thread, as a first server may be) fills the socket one way while
//! the client's lines fill it the other; if the main thread waited to send, it would stop
//! printing, the socket thread would stop reading, and both ends would wait for ever.
//! Memory stays bounded both ways: standard input is taken only while few lines wait to
//! be sent ([`OUT_AHEAD`]), and the server's lines only while the lines the client makes
//! on its own (pongs, receipts) have not piled up ([`OUT_MOST`]).

use std::convert::Infallible;
use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Receiver, Sender, bounded, never, select, unbounded};
use parking_lot::Mutex;

use crate::cli::Options;
use crate::client::{Client, Exit};
use crate::reader::{
    FromServer, FromStdin, MAX_INPUT_LINE, MAX_SERVER_LINE, connect, socket_thread, stdin_thread,
};

/// How many server lines the socket thread reads ahead of the printing: each is at most
/// [`MAX_SERVER_LINE`] bytes, so this bounds what a flood costs in memory.
const SERVER_LINES_AHEAD: usize = 64;

/// How many PDUs may wait to be sent before standard input is no longer read.
const OUT_AHEAD: usize = 16;

/// How many PDUs may wait to be sent before the server's lines are no longer taken (each
/// may make a pong or a receipt): a server that floods pings and never reads cannot make
/// the client's memory grow; it is held back by TCP instead.
const OUT_MOST: usize = 1024;

/// The socket's sending side as the main thread sees it: each PDU (written, then
/// flushed) is queued for the writer thread, which never makes the main thread wait.
pub struct Outgoing {
    pdu: Vec<u8>,
    tx: Sender<Vec<u8>>,
    /// Told after each PDU written (disconnected once the writer has stopped).
    sent: Receiver<()>,
    /// Why the writer stopped, once it did.
    failed: Arc<Mutex<Option<String>>>,
}

impl Outgoing {
    /// Starts the writer thread on `sock`.
    pub fn start(sock: TcpStream) -> io::Result<Outgoing> {
        let (tx, rx) = unbounded::<Vec<u8>>();
        let (sent_tx, sent) = bounded(1);
        let failed = Arc::new(Mutex::new(None));
        let failure = Arc::clone(&failed);
        thread::Builder::new()
            .name("xscp-send".into())
            .spawn(move || {
                let mut sock = sock;
                for pdu in rx {
                    if let Err(e) = sock.write_all(&pdu) {
                        *failure.lock() = Some(e.to_string());
                        return;
                    }
                    let _ = sent_tx.try_send(());
                }
            })?;
        Ok(Outgoing {
            pdu: Vec::new(),
            tx,
            sent,
            failed,
        })
    }

    /// PDUs queued and not yet written.
    fn waiting(&self) -> usize {
        self.tx.len()
    }

    /// Why sending failed, if it did.
    fn failure(&self) -> Option<String> {
        self.failed.lock().clone()
    }
}

impl Write for Outgoing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pdu.extend_from_slice(buf);
        Ok(buf.len())
    }

    /// Queues what was written as one PDU; fails once the writer has stopped.
    fn flush(&mut self) -> io::Result<()> {
        if self.pdu.is_empty() {
            return Ok(());
        }
        if let Some(e) = self.failure() {
            return Err(io::Error::other(e));
        }
        // (The writer keeps its failure before it stops: one that stopped since the look
        // above is named too.)
        self.tx.send(std::mem::take(&mut self.pdu)).map_err(|_| {
            io::Error::other(
                self.failure()
                    .unwrap_or_else(|| "the sending thread stopped".into()),
            )
        })
    }
}

/// Connects and runs the session until the server closes the connection.
pub fn run(opts: Options) -> Exit {
    let sock = match connect(&opts.addr) {
        Ok(s) => s,
        Err(e) => return Exit::Failed(format!("cannot connect to {}: {e}", opts.addr)),
    };
    let reading = match sock.try_clone() {
        Ok(s) => s,
        Err(e) => return Exit::Failed(format!("cannot use the connection: {e}")),
    };
    // Bounded: a server that sends faster than standard output takes the lines (`xscp ADDR
    // | less`, paused) is read no faster than they are printed, and the rest waits in the
    // network (TCP holds the server back) rather than in memory.
    let (server_tx, server_rx) = bounded(SERVER_LINES_AHEAD);
    // Small: a long script is read as it is sent, not all at once.
    let (stdin_tx, stdin_rx) = bounded(16);
    let (signal_tx, signal_rx) = bounded(4);
    if let Err(e) = ctrlc::set_handler(move || {
        // A second signal ends the client at once (xscp(1) SIGNALS), also while the main
        // thread cannot take the first (it waits to print: standard output is a pipe nobody
        // reads): the first still waiting for it says so.
        if !signal_tx.is_empty() {
            std::process::exit(130);
        }
        let _ = signal_tx.try_send(());
    }) {
        xscp::errln!("xscp: Ctrl-C will not send cquit: {e}");
    }
    let started = thread::Builder::new()
        .name("xscp-socket".into())
        .spawn(move || socket_thread(reading, server_tx))
        .and_then(|_| {
            thread::Builder::new()
                .name("xscp-stdin".into())
                .spawn(move || stdin_thread(stdin_tx))
        });
    if let Err(e) = started {
        return Exit::Failed(format!("cannot start a thread: {e}"));
    }
    let outgoing = match Outgoing::start(sock) {
        Ok(o) => o,
        Err(e) => return Exit::Failed(format!("cannot start a thread: {e}")),
    };
    let mut client = Client::new(opts, outgoing, io::stdout().lock());
    let Err(exit) = session(&mut client, &server_rx, &stdin_rx, &signal_rx);
    exit
}

/// The main loop: every event in the order it comes, until the connection ends. It only
/// returns through `Err`, with how it ends (the good end, [`Exit::Done`], included).
fn session<W: Write>(
    client: &mut Client<Outgoing, W>,
    server_rx: &Receiver<FromServer>,
    stdin_rx: &Receiver<FromStdin>,
    signal_rx: &Receiver<()>,
) -> Result<Infallible, Exit> {
    let sent_rx = &client.sock.sent.clone();
    let closed = never();
    let no_server = never();
    let stopped = never();
    let mut input_open = true;
    // The sending thread is running: once it has stopped (a write error), its channel is
    // always ready, and selecting on it would spin.
    let mut sending = true;
    loop {
        let waiting = client.sock.waiting();
        // Input waits for the greeting, so that nothing overtakes `--name`, and for the
        // lines before it to leave.
        let input = if input_open && client.greeted && waiting < OUT_AHEAD {
            stdin_rx
        } else {
            &closed
        };
        let server = if waiting < OUT_MOST {
            server_rx
        } else {
            &no_server
        };
        let sent = if sending { sent_rx } else { &stopped };
        select! {
            recv(server) -> msg => match msg {
                Ok(FromServer::Line(l)) => client.on_server_line(&l)?,
                Ok(FromServer::Eof) | Err(_) => return Err(end(client, None)),
                Ok(FromServer::Error(e)) => return Err(end(client, Some(e))),
                Ok(FromServer::TooLong) => {
                    return Err(Exit::Failed(format!(
                        "the server sent a line longer than {MAX_SERVER_LINE} bytes"
                    )));
                }
            },
            recv(input) -> msg => match msg {
                Ok(FromStdin::Line(l)) => client.on_input(&l)?,
                Ok(FromStdin::TooLong) => {
                    xscp::errln!("xscp: not sent: input line longer than {MAX_INPUT_LINE} bytes");
                }
                Ok(FromStdin::Eof) | Err(_) => {
                    input_open = false;
                    client.quit()?;
                }
                Ok(FromStdin::Error(e)) => {
                    xscp::errln!("xscp: cannot read standard input: {e}");
                    input_open = false;
                    client.quit()?;
                }
            },
            recv(signal_rx) -> _ => {
                if client.quit_sent {
                    return Err(Exit::Interrupted);
                }
                client.quit()?;
            },
            // A PDU left: input may be taken again.
            recv(sent) -> msg => sending = msg.is_ok(),
        }
    }
}

/// How the session ends when the server's side does, saying why sending failed if it did.
fn end<W: Write>(client: &mut Client<Outgoing, W>, error: Option<String>) -> Exit {
    if client.send_failed.is_none() {
        client.send_failed = client.sock.failure();
    }
    client.on_end(error)
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use socket2::SockRef;

    use super::*;

    /// A server with one thread that says all it has to say before it reads (as a
    /// student's first server may): the client must keep reading while its own lines wait
    /// in the network, or both wait for each other for ever.
    #[test]
    fn a_server_that_writes_before_it_reads_does_not_hang_the_client() {
        const LINES: usize = 3000;
        let text = "x".repeat(1000);
        let small = |s: SockRef<'_>| {
            s.set_recv_buffer_size(32 * 1024).expect("SO_RCVBUF");
            s.set_send_buffer_size(32 * 1024).expect("SO_SNDBUF");
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        small(SockRef::from(&listener));
        let addr = listener.local_addr().expect("addr");
        let said = text.clone();
        let server = thread::spawn(move || {
            let (s, _) = listener.accept().expect("accept");
            let mut w = &s;
            w.write_all(b"+OK xscp/1 ready\r\n").expect("greet");
            for _ in 0..LINES {
                w.write_all(format!("{said}\r\n").as_bytes())
                    .expect("write");
            }
            let mut read = 0;
            for l in BufReader::new(&s).lines() {
                if l.expect("read") == "cquit" {
                    break;
                }
                read += 1;
            }
            read
        });
        let sock = TcpStream::connect(addr).expect("connect");
        small(SockRef::from(&sock));
        let reading = sock.try_clone().expect("clone");
        let (server_tx, server_rx) = bounded(SERVER_LINES_AHEAD);
        thread::spawn(move || socket_thread(reading, server_tx));
        let (stdin_tx, stdin_rx) = bounded(16);
        let outgoing = Outgoing::start(sock).expect("the sending thread");
        thread::spawn(move || {
            for _ in 0..LINES {
                let _ = stdin_tx.send(FromStdin::Line(text.clone().into_bytes()));
            }
            let _ = stdin_tx.send(FromStdin::Eof);
        });
        let (_signal_tx, signal_rx) = bounded(1);
        let (done_tx, done_rx) = bounded(1);
        thread::spawn(move || {
            let mut client = Client::new(Options::default(), outgoing, io::sink());
            let Err(exit) = session(&mut client, &server_rx, &stdin_rx, &signal_rx);
            let _ = done_tx.send(exit);
        });
        done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the client and the server wait for each other");
        assert_eq!(server.join().expect("server"), LINES);
    }

    /// The CPU time the calling thread has used, in clock ticks (`/proc/thread-self/stat`).
    fn thread_cpu_ticks() -> u64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
        let after_name = &stat[stat.rfind(')').expect("(comm)") + 2..];
        let fields: Vec<&str> = after_name.split(' ').collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
    }

    /// Once the sending thread has stopped (a write error), the main loop waits for the
    /// server's end without spinning: the sending thread's end must not leave an event
    /// ready for ever.
    #[test]
    fn a_stopped_sending_thread_does_not_make_the_main_loop_spin() {
        const QUIET: Duration = Duration::from_millis(600);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = thread::spawn(move || {
            let (s, _) = listener.accept().expect("accept");
            (&s).write_all(b"+OK xscp/1 ready\r\n").expect("greet");
            // Quiet for a while after the client's line failed to go, then gone.
            thread::sleep(QUIET);
        });
        let sock = TcpStream::connect(addr).expect("connect");
        let reading = sock.try_clone().expect("clone");
        // Every write fails (EPIPE), as after a reset; the socket is still read.
        sock.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let (server_tx, server_rx) = bounded(SERVER_LINES_AHEAD);
        thread::spawn(move || socket_thread(reading, server_tx));
        let (stdin_tx, stdin_rx) = bounded(16);
        let outgoing = Outgoing::start(sock).expect("the sending thread");
        let (_signal_tx, signal_rx) = bounded(1);
        let (done_tx, done_rx) = bounded(1);
        thread::spawn(move || {
            let before = thread_cpu_ticks();
            let mut client = Client::new(Options::default(), outgoing, io::sink());
            let Err(exit) = session(&mut client, &server_rx, &stdin_rx, &signal_rx);
            let _ = done_tx.send((exit, thread_cpu_ticks() - before));
            drop(stdin_rx);
        });
        let _ = stdin_tx.send(FromStdin::Line(b"hello".to_vec()));
        let (exit, ticks) = done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the session ends");
        server.join().expect("server");
        let Exit::Failed(reason) = exit else {
            panic!("{exit:?}")
        };
        assert!(reason.contains("sending failed"), "{reason}");
        // (A tick is 10 ms: the loop waits, it does not spin through the quiet time.)
        assert!(ticks < 15, "the main loop spun: {ticks} ticks of CPU");
    }

    /// A write error is named as it was, whenever the main thread learns of it: also
    /// when the sending thread stops between the main thread's look at its failure and
    /// the queuing of the next PDU.
    #[test]
    fn a_write_error_is_named_even_when_the_sending_thread_stops_meanwhile() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        for _ in 0..200 {
            let sock = TcpStream::connect(addr).expect("connect");
            let _peer = listener.accept().expect("accept");
            // Every write fails (EPIPE).
            sock.shutdown(std::net::Shutdown::Write).expect("shutdown");
            let mut out = Outgoing::start(sock).expect("the sending thread");
            let e = loop {
                if let Err(e) = out.write_all(b"ping\r\n").and_then(|()| out.flush()) {
                    break e;
                }
            };
            assert!(e.to_string().contains("os error"), "{e}");
        }
    }
}
