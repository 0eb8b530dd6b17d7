//! A reader that writes its own output starts no writer thread: with a pool that may
//! start none, a writer start would cut the connection.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use super::*;
use crate::net::pool::{Budget, Pool};

/// An outbox whose pool can start no thread, and the client's end of its socket.
fn threadless() -> (Outbox, TcpStream) {
    outbox_with(0, 1024)
}

/// An outbox whose pool can start `threads` writers, with `--sendq` of `sendq` bytes, and
/// the client's end of its socket.
fn outbox_with(threads: usize, sendq: usize) -> (Outbox, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    outbox_on((server, client), threads, sendq, Duration::from_secs(20))
}

/// An outbox on the server's end of `pair`, whose pool can start `threads` writers, with
/// `--sendq` and the write timeout; and the client's end.
fn outbox_on(
    (server, client): (TcpStream, TcpStream),
    threads: usize,
    sendq: usize,
    write_timeout: Duration,
) -> (Outbox, TcpStream) {
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let writers = Arc::new(Writers {
        pool: Pool::new(64 * 1024, Budget::new(threads)),
        sendq,
        write_timeout,
    });
    let outbox = Outbox::new(1, "conn=1".into(), ConnShared::new(server), writers);
    (outbox, client)
}

fn read_exactly(client: &mut TcpStream, n: usize) -> String {
    let mut buf = vec![0; n];
    client.read_exact(&mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

/// Every connection keeps its outbox for its whole life: what all of them share is
/// behind one pointer (seventeen words on a 64-bit machine).
#[test]
fn an_outbox_is_small() {
    assert!(std::mem::size_of::<Inner>() <= 17 * std::mem::size_of::<usize>());
}

/// The check below can fail: what the socket does not take at once needs a writer
/// thread (and this pool can start none).
#[test]
fn what_the_socket_does_not_take_needs_a_writer_thread() {
    let (outbox, _client) = threadless();
    // The client reads nothing: no socket takes 32 MiB at once.
    assert_eq!(outbox.respond(&vec![b'x'; 32 << 20]), Wake::Now);
    outbox.wake_now();
    assert!(matches!(outbox.0.shared.end(), Some(Cause::Io(_))));
}

/// What the socket takes at once is written by the thread that wakes the queue (the hub,
/// at the end of its burst): the reply to a `uname` costs no writer thread.
#[test]
fn what_the_socket_takes_at_once_needs_no_writer_thread() {
    let (outbox, mut client) = threadless();
    assert_eq!(outbox.respond(b"+OK you are a\r\n"), Wake::Later);
    outbox.wake_now();
    assert_eq!(read_exactly(&mut client, 15), "+OK you are a\r\n");
    assert_eq!(outbox.0.shared.end(), None);
}

/// What the hub's offer leaves goes to a writer: after what the offer wrote, before what
/// is queued later, and the close's FIN after all of it. Nothing lost, nothing reordered.
/// (Seen failing when the offer drops what the socket did not take.) (A
/// `--sendq` over the whole keeps the slow-consumer rule out of it: the client reads only
/// once everything is queued.)
#[test]
fn a_writer_finishes_what_the_offer_left_in_order() {
    let (outbox, mut client) = outbox_with(2, 64 << 20);
    // More than any socket takes at once.
    let big: Vec<u8> = (0..8u32 << 20).map(|i| b'a' + (i % 26) as u8).collect();
    assert_eq!(outbox.respond(&big), Wake::Now);
    outbox.wake_now();
    outbox.respond(b"\r\nlast\r\n");
    outbox.wake_now();
    outbox.finish("bye\r\n");
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    let mut want = big;
    want.extend_from_slice(b"\r\nlast\r\nbye\r\n");
    assert!(
        got.len() == want.len() && got == want,
        "{} bytes, not in order",
        got.len()
    );
    assert_eq!(outbox.0.shared.end(), None);
}

/// Connect, a last-attempt `uname` (which the reader waits for, `Hand::Wait`), `cquit`:
/// the greeting, the hub's reply and the last lines with the FIN are all written by the
/// reader.
#[test]
fn the_reader_writes_the_greeting_the_hubs_reply_and_the_close_itself() {
    let (outbox, mut client) = threadless();
    outbox.push_here(b"+OK hello\r\n").unwrap();
    assert_eq!(read_exactly(&mut client, 11), "+OK hello\r\n");
    // The hub queues its reply while the reader waits for the answer.
    outbox.claim();
    assert_eq!(outbox.respond(b"+OK you are a\r\n"), Wake::Later);
    outbox.wake_now();
    outbox.release();
    assert_eq!(read_exactly(&mut client, 15), "+OK you are a\r\n");
    // The last lines come from another thread (the hub, when it still owed the client
    // answers) while (or before) the reader waits for the close.
    outbox.claim();
    let hub = outbox.clone();
    let departing = std::thread::spawn(move || hub.finish("cquit bye\r\n"));
    outbox.wait_done();
    departing.join().unwrap();
    let mut rest = String::new();
    client.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "cquit bye\r\n");
    assert_eq!(outbox.0.shared.end(), None);
}

/// The reader goes on at once, or hands over the lines it holds back before it waits:
/// too many commands with the hub, a queue over `--sendq`, a recipient behind.
#[test]
fn room_now_says_when_the_reader_would_wait() {
    let (outbox, _client) = threadless();
    assert_eq!(outbox.room_now(32, 32), Some(Room::Free));
    assert_eq!(outbox.room_now(33, 32), None);
    outbox.handled(1);
    assert_eq!(outbox.room_now(33, 32), Some(Room::Free));
    outbox.claim(); // No writer: the queue stays as queued.
    outbox.respond(&[b'x'; 1025]);
    assert_eq!(outbox.room_now(33, 32), None);
    outbox.release();
    assert_eq!(outbox.room_now(33, 32), Some(Room::Free));
    let (recipient, _other) = threadless();
    recipient.claim();
    recipient.relay(&[b'y'; 1025], &outbox).unwrap();
    assert_eq!(outbox.room_now(33, 32), None);
    outbox.finish("");
    assert_eq!(outbox.room_now(40, 32), Some(Room::Closing));
}

/// A connected pair with small, fixed kernel buffers (the server's send buffer, the
/// client's receive buffer: no autotuning), so that a few tens of KiB fill it.
fn small_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    socket
        .connect(&listener.local_addr().unwrap().into())
        .unwrap();
    let client: TcpStream = socket.into();
    let (server, _) = listener.accept().unwrap();
    socket2::SockRef::from(&server)
        .set_send_buffer_size(16 * 1024)
        .unwrap();
    (server, client)
}

/// What a fresh [`small_pair`] takes before a send would block (the client reads nothing).
fn capacity() -> usize {
    use std::io::Write;
    let (mut server, _client) = small_pair();
    server.set_nonblocking(true).unwrap();
    let mut n = 0;
    loop {
        match server.write(&[b'c'; 4096]) {
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return n,
            Err(e) => panic!("{e}"),
        }
    }
}

/// An outbox on a [`small_pair`], with `threads` writers, `--sendq` and the write timeout.
fn small_outbox(threads: usize, sendq: usize, write_timeout: Duration) -> (Outbox, TcpStream) {
    outbox_on(small_pair(), threads, sendq, write_timeout)
}

/// Waits (at most 20 s) until `done` holds.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        std::thread::yield_now();
    }
}

/// What the socket took of a batch no longer counts as queued: a client that reads is
/// not a slow consumer because the writer's batch was larger than `--sendq` (§7).
#[test]
fn what_the_socket_took_no_longer_counts_as_queued() {
    let c = capacity();
    let (outbox, mut client) = small_outbox(1, c, Duration::from_secs(20));
    let total = c * 5 / 2;
    let data: Vec<u8> = (0..total).map(|i| b'a' + (i % 26) as u8).collect();
    assert_eq!(outbox.respond(&data), Wake::Now);
    // The socket takes about `c` at once; a writer gets the rest, 1.5 x --sendq.
    outbox.wake_now();
    let mut got = vec![0; c];
    client.read_exact(&mut got).unwrap();
    // The writer gets about `c` more into the socket: half of --sendq is left. Counting
    // its whole batch, 1.5 x --sendq would stay "queued" and the client be dropped.
    wait_for("the queue under --sendq", || {
        outbox.0.queue.lock().queued() <= c
    });
    assert_eq!(outbox.0.shared.end(), None, "a reading client was dropped");
    let mut rest = vec![0; total - c];
    client.read_exact(&mut rest).unwrap();
    got.extend_from_slice(&rest);
    assert!(got == data, "the client got other bytes");
    assert_eq!(outbox.0.shared.end(), None);
}

/// A writer that cannot start ends the connection, and lets whoever waits for room go
/// on at once: not after the write timeout, and not as a slow consumer.
#[test]
fn a_writer_that_cannot_start_lets_the_reader_waiting_for_room_go() {
    let (outbox, _client) = small_outbox(0, 1024, Duration::from_secs(3600));
    assert_eq!(outbox.respond(&vec![b'x'; 1 << 20]), Wake::Now);
    let (tx, rx) = crossbeam_channel::bounded(1);
    let reader = outbox.clone();
    std::thread::spawn(move || tx.send(reader.wait_room(0, 64)).unwrap());
    wait_for("the reader waiting for room", || {
        outbox.0.queue.lock().waiters == 1
    });
    // The socket takes part of it; no writer can start for the rest.
    outbox.wake_now();
    assert!(matches!(outbox.0.shared.end(), Some(Cause::Io(_))));
    let room = rx.recv_timeout(Duration::from_secs(20));
    assert_eq!(room, Ok(Room::Closing), "the reader still waits");
}

/// A recipient that ends is released (its socket closed) once its connection is done
/// with it, even if a sender whose relay left it over `--sendq` sends nothing more.
#[test]
fn an_idle_sender_does_not_keep_a_departed_recipients_socket() {
    let (b, _b_client) = small_outbox(0, 1024, Duration::from_secs(20));
    let (a, _a_client) = small_outbox(0, 1024, Duration::from_secs(20));
    b.claim(); // Nothing written: the relay leaves b over --sendq, a behind it.
    b.relay(&[b'y'; 2000], &a).unwrap();
    assert!(a.room_now(0, 64).is_none(), "a is not held back by b");
    let socket = Arc::downgrade(&b.0.shared);
    b.abort(Cause::SlowConsumer);
    drop(b);
    assert!(
        socket.upgrade().is_none(),
        "b's socket stays open while a is idle"
    );
    // a's next command does not wait for a recipient that is gone.
    a.wait_behind();
    assert_eq!(a.room_now(0, 64), Some(Room::Free));
}

/// A sender whose relays left several recipients over `--sendq` (a broadcast) holds each
/// once and waits for every one of them, not only the first: here `a` waits behind `b`,
/// then, once `b` closes, behind `c`, and goes on only when `c` closes too.
#[test]
fn a_sender_waits_behind_every_recipient_its_relays_left_over() {
    let (a, _a_client) = small_outbox(0, 1024, Duration::from_secs(20));
    let (b, _b_client) = small_outbox(0, 1024, Duration::from_secs(20));
    let (c, _c_client) = small_outbox(0, 1024, Duration::from_secs(20));
    b.claim(); // Nothing written: the second relay leaves each over --sendq.
    c.claim();
    for _ in 0..3 {
        b.relay(&[b'y'; 600], &a).unwrap();
        c.relay(&[b'y'; 600], &a).unwrap();
    }
    let held =
        a.0.queue
            .lock()
            .behind
            .as_ref()
            .map(|h| h.recipients().count());
    assert_eq!(held, Some(2), "each recipient once");
    let (tx, rx) = crossbeam_channel::bounded(1);
    let sender = a.clone();
    std::thread::spawn(move || {
        sender.wait_behind();
        tx.send(()).unwrap();
    });
    wait_for("a waiting behind b", || b.0.queue.lock().waiters == 1);
    b.finish("");
    wait_for("a waiting behind c", || c.0.queue.lock().waiters == 1);
    assert!(rx.try_recv().is_err(), "a went on while c was over --sendq");
    c.finish("");
    assert_eq!(rx.recv_timeout(Duration::from_secs(20)), Ok(()));
    assert_eq!(a.room_now(0, 64), Some(Room::Free));
}

/// The commands a sender may have with the hub fit, full-length lines all, between
/// `--sendq` and the hard bound, whatever `--sendq` (at least 512); 3 at the least, and
/// [`MAX_IN_FLIGHT`] from about 11 KiB (src/ARCHITECTURE.md).
#[test]
fn the_commands_in_flight_fit_between_sendq_and_the_hard_bound() {
    assert_eq!(max_in_flight(512), 3);
    assert_eq!(max_in_flight(10 * 1024), 60);
    assert_eq!(max_in_flight(11 * 1024), MAX_IN_FLIGHT);
    assert_eq!(max_in_flight(usize::MAX), MAX_IN_FLIGHT);
    for sendq in [512, 513, 1000, 1023, 1024, 4096, 10_000, 11 << 10, 1 << 20] {
        let n = usize::try_from(max_in_flight(sendq)).unwrap();
        assert!(
            n * MAX_LINE <= (HARD_SENDQ - 1) * sendq,
            "--sendq {sendq}: {n}"
        );
    }
}

/// The write timeout is how long the socket takes nothing (xscpd(8): a client whose TCP
/// window stays closed this long), not how long a large batch takes: this client reads
/// 4 KiB every 10 ms, and its batch takes it three times the timeout.
#[test]
fn a_client_that_reads_steadily_is_not_timed_out() {
    let (outbox, mut client) = small_outbox(1, 64 << 20, Duration::from_secs(1));
    let total = 1200 * 1024;
    assert_eq!(outbox.respond(&vec![b'z'; total]), Wake::Now);
    outbox.wake_now();
    let (mut got, mut buf) = (0, [0u8; 4096]);
    while got < total {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
        // The pace of a slow reader, not a synchronisation.
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        outbox.0.shared.end(),
        None,
        "a steadily reading client was dropped"
    );
    assert_eq!(got, total);
}
