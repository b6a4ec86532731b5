//! NFLOG over netlink (observe.md §5): bind group 100 in the current network namespace,
//! receive logged packets, and parse them. The parsing is pure and unit-tested; the socket
//! work is a thin layer over [`super::netlink`]. Payloads are packets the container sent:
//! every read is bounds-checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{recv, setsockopt, sockopt, MsgFlags};

use super::netlink::{self, NetlinkError, Result, NLM_F_ACK, NLM_F_REQUEST};

const WHO: &str = "nflog";

/// `NFNL_SUBSYS_ULOG`.
const SUBSYS_ULOG: u16 = 4;
const MSG_PACKET: u16 = 0;
const MSG_CONFIG: u16 = 1;
const CFG_CMD: u16 = 1;
const CMD_BIND: u8 = 1;
const ATTR_PAYLOAD: u16 = 9;
const ATTR_PREFIX: u16 = 10;
/// `AF_INET`, as nfgenmsg and the bind command carry it.
const AF_INET: u8 = 2;

/// One logged packet: the rule's prefix and where the packet was going.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The log prefix, NULs and surrounding whitespace stripped (`TEROK_SHIELD_BLOCKED:`).
    pub prefix: String,
    pub dest: IpAddr,
    /// Destination port for TCP and UDP, else 0.
    pub port: u16,
    /// IP protocol number (IPv6: the first next-header; extension headers are not walked).
    pub proto: u8,
}

impl Logged {
    /// `tcp`, `udp`, or the protocol number.
    pub fn proto_name(&self) -> String {
        match self.proto {
            6 => "tcp".into(),
            17 => "udp".into(),
            n => n.to_string(),
        }
    }
}

/// An NFLOG socket bound to `group` in the current network namespace.
pub fn open(group: u16) -> Result<OwnedFd> {
    let fd = netlink::open(WHO)?;
    // Room for a burst: a flood is drained once a second at most.
    let _ = setsockopt(&fd, sockopt::RcvBuf, &(4 << 20));
    let mut req = Vec::new();
    let ty = (SUBSYS_ULOG << 8) | MSG_CONFIG;
    netlink::message(&mut req, ty, NLM_F_REQUEST | NLM_F_ACK, 0, AF_INET, group, |b| {
        netlink::attr(b, CFG_CMD, &[CMD_BIND, 0, 0, AF_INET]);
    });
    netlink::send(&fd, &req, WHO)?;
    let mut buf = vec![0u8; 8192];
    let n = recv_timeout(&fd, &mut buf)?;
    let code = netlink::messages(&buf[..n]).next().and_then(|m| m.ok()).and_then(|m| m.error_code());
    if let Some(code) = code.filter(|c| *c != 0) {
        return Err(NetlinkError::NflogBind { group, errno: nix::Error::from_raw(-code) });
    }
    // Receives after this use MSG_DONTWAIT.
    Ok(fd)
}

/// The bind acknowledgement, waited for at most 2 s.
fn recv_timeout(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize> {
    let tv = nix::sys::time::TimeVal::new(2, 0);
    setsockopt(fd, sockopt::ReceiveTimeout, &tv).map_err(netlink::sys(WHO, "timeout"))?;
    recv(fd.as_raw_fd(), buf, MsgFlags::empty()).map_err(netlink::sys(WHO, "bind acknowledgement"))
}

/// Datagrams read per call at most.
const MAX_DATAGRAMS: usize = 1024;

/// Read the pending datagrams (until it would block, at most [`MAX_DATAGRAMS`]) and parse the packets in them. A
/// receive-buffer overrun (`ENOBUFS`: the kernel dropped messages) is not an error.
pub fn drain(fd: &OwnedFd, buf: &mut [u8]) -> Vec<Logged> {
    let mut out = Vec::new();
    // A bounded round: under a flood the caller's loop still serves DNS and its control
    // socket in between (what is left is read next round, or dropped by the kernel).
    for _ in 0..MAX_DATAGRAMS {
        match recv(fd.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
            Ok(0) => break,
            Ok(n) => out.extend(parse_messages(&buf[..n])),
            Err(nix::Error::ENOBUFS) | Err(nix::Error::EINTR) => continue,
            Err(_) => break,
        }
    }
    out
}

/// The packet messages of one netlink datagram.
pub fn parse_messages(buf: &[u8]) -> Vec<Logged> {
    let mut out = Vec::new();
    for msg in netlink::messages(buf).map_while(|m| m.ok()) {
        if msg.ty != (SUBSYS_ULOG << 8) | MSG_PACKET {
            continue;
        }
        let (mut prefix, mut payload) = (None, None);
        for (t, p) in msg.attrs() {
            match t {
                ATTR_PREFIX => prefix = Some(p),
                ATTR_PAYLOAD => payload = Some(p),
                _ => {}
            }
        }
        if let Some(logged) = payload.and_then(|p| parse_packet(prefix.unwrap_or_default(), p)) {
            out.push(logged);
        }
    }
    out
}

/// Destination, port and protocol of a raw IP packet; `None` when it cannot be parsed.
pub fn parse_packet(prefix: &[u8], p: &[u8]) -> Option<Logged> {
    if p.len() < 20 {
        return None;
    }
    let (dest, proto, l4) = match p[0] >> 4 {
        4 => {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            if ihl < 20 {
                return None;
            }
            (IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19])), p[9], ihl)
        }
        6 if p.len() >= 40 => {
            let b: [u8; 16] = p[24..40].try_into().ok()?;
            (IpAddr::V6(Ipv6Addr::from(b)), p[6], 40)
        }
        _ => return None,
    };
    let port = match proto {
        6 | 17 if p.len() >= l4 + 4 => u16::from_be_bytes([p[l4 + 2], p[l4 + 3]]),
        _ => 0,
    };
    let prefix = String::from_utf8_lossy(prefix).replace('\0', "").trim().to_string();
    Some(Logged { prefix, dest, port, proto })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// An IPv4 TCP SYN header to `dest:port`.
    pub fn v4_tcp(dest: [u8; 4], port: u16) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[9] = 6;
        p[16..20].copy_from_slice(&dest);
        p[22..24].copy_from_slice(&port.to_be_bytes());
        p
    }

    /// A netlink datagram with one NFLOG packet message.
    pub fn datagram(prefix: &str, payload: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        netlink::message(&mut b, SUBSYS_ULOG << 8, 0, 0, 2, 100, |b| {
            netlink::attr(b, 1, &[0, 0, 8, 0]);
            netlink::attr_str(b, ATTR_PREFIX, prefix);
            netlink::attr(b, ATTR_PAYLOAD, payload);
        });
        b
    }

    #[test]
    fn packets() {
        let l = parse_packet(b"TEROK_SHIELD_BLOCKED: \0", &v4_tcp([198, 51, 100, 11], 443)).unwrap_or_else(|| panic!());
        assert_eq!(
            (l.prefix.as_str(), l.dest.to_string(), l.port, l.proto_name()),
            ("TEROK_SHIELD_BLOCKED:", "198.51.100.11".into(), 443, "tcp".into())
        );
        let mut v6 = vec![0u8; 48];
        v6[0] = 0x60;
        v6[6] = 17;
        v6[24..40].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap_or(Ipv6Addr::UNSPECIFIED).octets());
        v6[42..44].copy_from_slice(&53u16.to_be_bytes());
        let l = parse_packet(b"X", &v6).unwrap_or_else(|| panic!());
        assert_eq!((l.dest.to_string(), l.port, l.proto_name()), ("2001:db8::1".into(), 53, "udp".into()));
        // ICMP: no port; short or unknown packets: nothing.
        let mut icmp = v4_tcp([1, 2, 3, 4], 0);
        icmp[9] = 1;
        assert_eq!(parse_packet(b"", &icmp).map(|l| (l.port, l.proto_name())), Some((0, "1".into())));
        assert!(parse_packet(b"", &[0x45; 19]).is_none());
        assert!(parse_packet(b"", &[0x41; 40]).is_none());
        assert!(parse_packet(b"", &[0x60; 39]).is_none());
        // IPv6 without a whole port field: port 0.
        assert_eq!(parse_packet(b"", &v6[..42]).map(|l| l.port), Some(0));
    }

    #[test]
    fn messages() {
        let mut d = datagram("TEROK_SHIELD_BLOCKED: ", &v4_tcp([198, 51, 100, 11], 80));
        d.extend(datagram("TEROK_SHIELD_ALLOWED: ", &v4_tcp([198, 51, 100, 10], 80)));
        let got = parse_messages(&d);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].prefix, "TEROK_SHIELD_ALLOWED:");
        // Truncated datagrams stop the walk without panicking.
        for cut in 0..d.len() {
            let _ = parse_messages(&d[..cut]);
        }
    }
}
