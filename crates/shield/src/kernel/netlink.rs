//! Netfilter netlink plumbing shared by the set loader ([`super::nftnl`]), flow revocation
//! ([`super::conntrack`]) and the NFLOG reader ([`super::nflog`]): the socket, message
//! framing, attributes, and bounds-checked readers of what the kernel sends back. All work
//! in the current network namespace.
//!
//! Readers take slices and return `None` (or stop) rather than index past the end: a reply
//! is bytes from the kernel, and an NFLOG payload is bytes from the container.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{bind, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
/// `struct nlmsghdr`.
pub const HEADER: usize = 16;

/// What failed talking to the kernel. `who` names the user (netlink, conntrack, nflog).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetlinkError {
    /// A system call failed.
    #[error("{who} {op}: {errno}")]
    Sys { who: &'static str, op: &'static str, errno: Errno },
    #[error("{who} send: {sent} of {len} bytes")]
    ShortSend { who: &'static str, sent: usize, len: usize },
    #[error("{who}: malformed reply")]
    Malformed { who: &'static str },
    #[error("{who} {op}: no acknowledgement")]
    NoAck { who: &'static str, op: &'static str },
    /// The kernel refused a request about a set.
    #[error("set {set}: {errno}")]
    SetRefused { set: String, errno: Errno },
    /// One transaction of a bulk load failed.
    #[error("{source} (transaction {index} of {elements} elements)")]
    Transaction {
        index: usize,
        elements: usize,
        #[source]
        source: Box<NetlinkError>,
    },
    #[error("nflog bind to group {group}: {errno}")]
    NflogBind { group: u16, errno: Errno },
}

pub type Result<T> = std::result::Result<T, NetlinkError>;

/// A system call error of `who`.
pub fn sys(who: &'static str, op: &'static str) -> impl Fn(Errno) -> NetlinkError {
    move |errno| NetlinkError::Sys { who, op, errno }
}

/// A `NETLINK_NETFILTER` socket, bound.
pub fn open(who: &'static str) -> Result<OwnedFd> {
    let fd = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkNetFilter)
        .map_err(sys(who, "socket"))?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(sys(who, "bind"))?;
    Ok(fd)
}

/// Send `buf` to the kernel whole.
pub fn send(fd: &OwnedFd, buf: &[u8], who: &'static str) -> Result<()> {
    let sent = sendto(fd.as_raw_fd(), buf, &NetlinkAddr::new(0, 0), MsgFlags::empty()).map_err(sys(who, "send"))?;
    if sent != buf.len() {
        return Err(NetlinkError::ShortSend { who, sent, len: buf.len() });
    }
    Ok(())
}

/// Append one netlink message: header, nfgenmsg, then what `body` writes.
pub fn message(
    buf: &mut Vec<u8>,
    ty: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    body: impl FnOnce(&mut Vec<u8>),
) {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER]);
    buf.extend_from_slice(&[family, 0]);
    buf.extend_from_slice(&res_id.to_be_bytes());
    body(buf);
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    buf[start + 4..start + 6].copy_from_slice(&ty.to_ne_bytes());
    buf[start + 6..start + 8].copy_from_slice(&flags.to_ne_bytes());
    buf[start + 8..start + 12].copy_from_slice(&seq.to_ne_bytes());
    pad(buf);
}

pub fn attr(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    let len = (4 + data.len()) as u16;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(data);
    pad(buf);
}

pub fn attr_str(buf: &mut Vec<u8>, ty: u16, s: &str) {
    let mut data = s.as_bytes().to_vec();
    data.push(0);
    attr(buf, ty, &data);
}

pub fn nested(buf: &mut Vec<u8>, ty: u16, body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    body(buf);
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    buf[start + 2..start + 4].copy_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
}

pub fn pad(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// One message of a datagram: its type, sequence number and the bytes after its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msg<'a> {
    pub ty: u16,
    pub seq: u32,
    pub body: &'a [u8],
}

impl<'a> Msg<'a> {
    /// The error code of an `NLMSG_ERROR` message (0: an acknowledgement); `None` for other
    /// messages or a short one.
    pub fn error_code(&self) -> Option<i32> {
        if self.ty != NLMSG_ERROR {
            return None;
        }
        Some(i32::from_ne_bytes(self.body.get(..4)?.try_into().ok()?))
    }

    /// The attributes after the `nfgenmsg` (4 bytes) of a netfilter message.
    pub fn attrs(&self) -> Attrs<'a> {
        attrs(self.body.get(4..).unwrap_or_default())
    }
}

/// The messages of one datagram, in order. A message whose length is impossible ends the
/// walk and is reported as `Err(())` (the rest of the datagram cannot be framed).
pub fn messages(buf: &[u8]) -> impl Iterator<Item = std::result::Result<Msg<'_>, ()>> {
    let mut off = 0;
    let mut broken = false;
    std::iter::from_fn(move || {
        if broken || off + HEADER > buf.len() {
            return None;
        }
        let len = u32_at(buf, off).map_or(0, |l| l as usize);
        let (Some(ty), Some(seq)) = (u16_at(buf, off + 4), u32_at(buf, off + 8)) else {
            broken = true;
            return Some(Err(()));
        };
        if len < HEADER || len > buf.len() - off {
            broken = true;
            return Some(Err(()));
        }
        let body = &buf[off + HEADER..off + len];
        off += (len + 3) & !3;
        Some(Ok(Msg { ty, seq, body }))
    })
}

/// An attribute: its type without flags and its payload.
pub type Attr<'a> = (u16, &'a [u8]);

/// The attributes packed in `buf`; a truncated one ends the walk.
pub struct Attrs<'a>(&'a [u8]);

pub fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs(buf)
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        let b = self.0;
        let len = usize::from(u16_at(b, 0)?);
        let ty = u16_at(b, 2)? & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            self.0 = &[];
            return None;
        }
        let payload = &b[4..len];
        self.0 = b.get((len + 3) & !3..).unwrap_or_default();
        Some((ty, payload))
    }
}

impl<'a> Attrs<'a> {
    /// The payload of the first attribute of type `ty`.
    pub fn find(self, ty: u16) -> Option<&'a [u8]> {
        self.into_iter().find_map(|(t, p)| (t == ty).then_some(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_layout_and_readers() {
        let mut b = Vec::new();
        message(&mut b, 0x0a0c, NLM_F_REQUEST, 7, 1, 0, |b| attr_str(b, 2, "s"));
        assert_eq!(b.len(), 16 + 4 + 8);
        let m: Vec<_> = messages(&b).collect();
        assert_eq!(m.len(), 1);
        let Ok(msg) = m[0] else { panic!("framed") };
        assert_eq!((msg.ty, msg.seq, msg.body.len()), (0x0a0c, 7, 12));
        assert_eq!(msg.attrs().collect::<Vec<_>>(), vec![(2u16, &b"s\0"[..])]);
        let mut n = Vec::new();
        nested(&mut n, 3, |b| attr(b, 1, &[10, 0, 0, 1]));
        assert_eq!(n, [12, 0, 3, 0x80, 8, 0, 1, 0, 10, 0, 0, 1]);
        assert_eq!(attrs(&n).find(3), Some(&[8, 0, 1, 0, 10, 0, 0, 1][..]));
        assert_eq!(attrs(&n[..3]).count(), 0);
        // Every truncation and every length byte set to anything: no panic, no overrun.
        for cut in 0..b.len() {
            let _ = messages(&b[..cut]).count();
        }
        for v in 0..=255u8 {
            let mut x = b.clone();
            x[0] = v;
            for m in messages(&x).flatten() {
                let _ = m.attrs().count();
            }
            let mut y = n.clone();
            y[0] = v;
            let _ = attrs(&y).count();
        }
        let mut err = Vec::new();
        message(&mut err, NLMSG_ERROR, 0, 1, 0, 0, |_| {});
        // nfgenmsg (4 bytes) is where an error message keeps its code.
        assert_eq!(messages(&err).next().and_then(|m| m.ok()).and_then(|m| m.error_code()), Some(0));
    }
}
