//! A first end-to-end session: greeting, registration, a relayed message and its receipt.

use crate::harness::Server;

#[test]
fn two_clients_chat_and_quit() {
    let server = Server::start(&[]);
    let mut alice = server.register("alice");
    let mut bob = server.register("bob");
    alice.send("chatm alice bob hello bob");
    alice.expect("+OK message relayed");
    bob.expect("chatm alice bob hello bob");
    bob.send("chatr alice bob");
    alice.expect("chatr alice bob");
    bob.send("cquit");
    bob.expect_close(&["+OK terminating tasks and disconnecting"]);
    // Closed after end of stream, so that the server's linger ends at once.
    drop(bob);
    server.wait_log(|l| l.contains("ESTABLISHED -> UPDATE on quit_requested"));
    server.wait_log(|l| l.contains("UPDATE -> CLOSED on close"));
}
