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
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let writers = Arc::new(Writers {
        pool: Pool::new(64 * 1024, Budget::new(threads)),
        sendq,
        write_timeout: Duration::from_secs(20),
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
