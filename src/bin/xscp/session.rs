//! The loop: connects, starts the two reading threads, and hands every event to the
//! [`Client`] in the order it comes, until the connection ends. Threads: one reads
//! standard input, one reads the socket, each feeding a crossbeam channel; the main thread
//! `select!`s on both (and on Ctrl-C), owns the socket's sending side and standard output,
//! and is the only one that decides anything.

use std::convert::Infallible;
use std::io::{self, Write};
use std::thread;

use crossbeam_channel::{Receiver, bounded, never, select};

use crate::cli::Options;
use crate::client::{Client, Exit};
use crate::reader::{
    FromServer, FromStdin, MAX_INPUT_LINE, MAX_SERVER_LINE, connect, socket_thread, stdin_thread,
};

/// How many server lines the socket thread reads ahead of the printing: each is at most
/// [`MAX_SERVER_LINE`] bytes, so this bounds what a flood costs in memory.
const SERVER_LINES_AHEAD: usize = 64;

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
    let mut client = Client::new(opts, sock, io::stdout().lock());
    let Err(exit) = session(&mut client, &server_rx, &stdin_rx, &signal_rx);
    exit
}

/// The main loop: every event in the order it comes, until the connection ends. It only
/// returns through `Err`, with how it ends (the good end, [`Exit::Done`], included).
fn session<S: Write, W: Write>(
    client: &mut Client<S, W>,
    server_rx: &Receiver<FromServer>,
    stdin_rx: &Receiver<FromStdin>,
    signal_rx: &Receiver<()>,
) -> Result<Infallible, Exit> {
    let closed = never();
    let mut input_open = true;
    loop {
        // Input waits for the greeting, so that nothing overtakes `--name`.
        let input = if input_open && client.greeted {
            stdin_rx
        } else {
            &closed
        };
        select! {
            recv(server_rx) -> msg => match msg {
                Ok(FromServer::Line(l)) => client.on_server_line(&l)?,
                Ok(FromServer::Eof) | Err(_) => return Err(client.on_end(None)),
                Ok(FromServer::Error(e)) => return Err(client.on_end(Some(e))),
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
        }
    }
}
