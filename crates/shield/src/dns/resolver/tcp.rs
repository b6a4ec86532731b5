//! DNS over TCP for the container's clients (they retry over TCP when an answer is
//! truncated): length-prefixed messages, a bounded number of connections, each closed when
//! idle. Non-blocking throughout: a slow or hostile client never holds the helper up.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::dns::message::MAX_MESSAGE;

/// Connections served at once; a new one beyond this is closed at once.
const MAX_CONNECTIONS: usize = 16;
/// A connection that sends nothing for this long is closed.
const IDLE: Duration = Duration::from_secs(5);
/// Answers queued for a client that does not read: beyond this, the connection is closed
/// (the helper's memory must not grow with what a client leaves unread).
const MAX_OUTBOX: usize = 64 * 1024;
/// Questions of one connection waiting for the upstream at once.
const MAX_UNANSWERED: usize = 16;

struct Conn {
    stream: TcpStream,
    inbox: Vec<u8>,
    outbox: Vec<u8>,
    last: Instant,
    token: u64,
    /// Questions read whose answers are not queued yet.
    unanswered: usize,
    /// The client closed its side: close once every answer is out.
    eof: bool,
}

pub(crate) struct TcpServer {
    listener: TcpListener,
    conns: Vec<Conn>,
    next_token: u64,
}

impl TcpServer {
    pub fn bind(addr: SocketAddr) -> std::io::Result<TcpServer> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(TcpServer { listener, conns: Vec::new(), next_token: 1 })
    }

    pub fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        // A closed client's socket stays readable (end of file): it is not polled any more.
        std::iter::once(self.listener.as_fd()).chain(self.conns.iter().filter(|c| !c.eof).map(|c| c.stream.as_fd()))
    }

    /// Accept, read and flush what is ready; returns the complete messages that arrived,
    /// each with the token of its connection.
    pub fn work(&mut self, now: Instant) -> Vec<(u64, Vec<u8>)> {
        while let Ok((stream, _)) = self.listener.accept() {
            if self.conns.len() >= MAX_CONNECTIONS || stream.set_nonblocking(true).is_err() {
                continue;
            }
            let token = self.next_token;
            self.next_token += 1;
            self.conns.push(Conn {
                stream,
                inbox: Vec::new(),
                outbox: Vec::new(),
                last: now,
                token,
                unanswered: 0,
                eof: false,
            });
        }
        let mut messages = Vec::new();
        let mut buf = [0u8; 4096];
        self.conns.retain_mut(|c| {
            while !c.eof {
                match c.stream.read(&mut buf) {
                    Ok(0) => c.eof = true,
                    Ok(n) => {
                        c.inbox.extend_from_slice(&buf[..n]);
                        c.last = now;
                        if c.inbox.len() > 2 + MAX_MESSAGE {
                            return false;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => return false,
                }
            }
            while c.inbox.len() >= 2 && c.unanswered < MAX_UNANSWERED {
                let len = usize::from(u16::from_be_bytes([c.inbox[0], c.inbox[1]]));
                if c.inbox.len() < 2 + len {
                    break;
                }
                messages.push((c.token, c.inbox[2..2 + len].to_vec()));
                c.inbox.drain(..2 + len);
                c.unanswered += 1;
            }
            let done = c.eof && c.unanswered == 0 && c.outbox.is_empty();
            flush(c) && !done && c.outbox.len() <= MAX_OUTBOX && now.duration_since(c.last) < IDLE
        });
        messages
    }

    /// Queue `reply` on the connection `token` (gone connections drop it).
    pub fn reply(&mut self, token: u64, reply: &[u8]) {
        if let Some(c) = self.conns.iter_mut().find(|c| c.token == token) {
            c.unanswered = c.unanswered.saturating_sub(1);
            let Ok(len) = u16::try_from(reply.len()) else { return };
            c.outbox.extend_from_slice(&len.to_be_bytes());
            c.outbox.extend_from_slice(reply);
            let _ = flush(c);
            if c.outbox.len() > MAX_OUTBOX {
                // Closed at the next round: the client does not read what it asked for.
                c.eof = true;
                c.unanswered = 0;
            }
        }
    }
}

/// Write what the socket takes; false when the connection is broken.
fn flush(c: &mut Conn) -> bool {
    while !c.outbox.is_empty() {
        match c.stream.write(&c.outbox) {
            Ok(0) => return false,
            Ok(n) => {
                c.outbox.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn what_a_client_leaves_unread_stays_bounded() {
        let mut server =
            TcpServer::bind("127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!())).unwrap_or_else(|e| panic!("{e}"));
        let addr = server.listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let mut client = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
        // Small queries, as many as the server takes; answers far larger, never read.
        for _ in 0..MAX_UNANSWERED * 4 {
            let _ = client.write_all(&[0, 2, 0xab, 0xcd]);
        }
        let big = vec![0u8; 16 * 1024];
        let mut served = 0;
        for _ in 0..200 {
            let now = Instant::now();
            for (token, _) in server.work(now) {
                served += 1;
                server.reply(token, &big);
            }
            assert!(server.conns.iter().all(|c| c.outbox.len() <= MAX_OUTBOX + big.len() + 2));
            if server.conns.is_empty() && served > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(served > 0, "no question was read");
        assert!(served <= MAX_UNANSWERED * 4);
        // Past the cap a connection is closed at the next round, whatever the kernel took.
        if let Some(c) = server.conns.first_mut() {
            c.outbox = vec![0; MAX_OUTBOX + 1];
            c.eof = true;
            c.unanswered = 0;
        }
        let _ = server.work(Instant::now());
        assert!(server.conns.iter().all(|c| c.outbox.len() <= MAX_OUTBOX), "an overfull connection was kept");
    }
}
