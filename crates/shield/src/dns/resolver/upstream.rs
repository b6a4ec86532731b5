//! The resolver's way out: UDP sockets to the host's nameservers, opened in the namespace
//! the helper starts in (the host's, rootful or rootless) before it enters the container's.
//! The container has no route to any of them; only the helper does.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};

use crate::dns::DnsError;

/// The libc resolver's limit, and ours.
const MAX_SERVERS: usize = 3;
/// Sockets per server: source ports to spread queries over.
const PORTS: usize = 4;

/// Connected, non-blocking sockets to the host's nameservers.
#[derive(Debug)]
pub(crate) struct Upstreams {
    socks: Vec<(usize, UdpSocket)>,
    servers: Vec<SocketAddr>,
}

impl Upstreams {
    /// Sockets to the nameservers of a resolv.conf text (the host's, read where the helper
    /// starts). Loopback servers are fine: these sockets live in the host's namespace. A
    /// host with no nameserver gets none: allowed names then fail (SERVFAIL), addresses work.
    pub fn open(resolv_conf: &str) -> Result<Upstreams, DnsError> {
        let servers: Vec<SocketAddr> = crate::dns::resolv_conf::nameservers(resolv_conf)
            .into_iter()
            .take(MAX_SERVERS)
            .map(|a| SocketAddr::new(a, 53))
            .collect();
        let mut socks = Vec::new();
        for (i, server) in servers.iter().enumerate() {
            for _ in 0..PORTS {
                let any: SocketAddr = match server.ip() {
                    IpAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
                    IpAddr::V6(_) => ([0u16; 8], 0).into(),
                };
                let open = || -> std::io::Result<UdpSocket> {
                    let s = UdpSocket::bind(any)?;
                    s.connect(server)?;
                    s.set_nonblocking(true)?;
                    Ok(s)
                };
                match open() {
                    Ok(s) => socks.push((i, s)),
                    Err(e) => return Err(DnsError::UpstreamSocket { server: *server, reason: e.to_string() }),
                }
            }
        }
        Ok(Upstreams { socks, servers })
    }

    pub fn servers(&self) -> usize {
        self.servers.len()
    }

    /// Send `query` to server `server`, over socket `slot % PORTS` of it.
    pub fn send(&self, server: usize, slot: usize, query: &[u8]) -> bool {
        let of_server: Vec<&UdpSocket> = self.socks.iter().filter(|(i, _)| *i == server).map(|(_, s)| s).collect();
        of_server.get(slot % of_server.len().max(1)).is_some_and(|s| s.send(query).is_ok())
    }

    pub fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.socks.iter().map(|(_, s)| s.as_fd())
    }

    /// Every datagram waiting on any socket (a connected socket only takes its server's).
    pub fn drain(&self, buf: &mut [u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (_, s) in &self.socks {
            while let Ok(n) = s.recv(buf) {
                out.push(buf[..n].to_vec());
                if out.len() >= 1024 {
                    return out;
                }
            }
        }
        out
    }
}
