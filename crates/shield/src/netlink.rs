//! Netfilter netlink plumbing shared by the set loader ([`crate::nftnl`]) and flow
//! revocation ([`crate::conntrack`]): the socket, message framing, attributes, reply fields.
//! Both work in the current network namespace.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{bind, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};

use crate::error::{Error, Result};

pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// A `NETLINK_NETFILTER` socket, bound. `who` prefixes error messages.
pub fn open(who: &str) -> Result<OwnedFd> {
    let fd = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkNetFilter)
        .map_err(|e| sys(who, "socket", e))?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| sys(who, "bind", e))?;
    Ok(fd)
}

pub fn sys(who: &str, what: &str, e: nix::Error) -> Error {
    Error::Setup(format!("{who} {what}: {e}"))
}

/// Send `buf` to the kernel whole.
pub fn send(fd: &OwnedFd, buf: &[u8], who: &str) -> Result<()> {
    let sent =
        sendto(fd.as_raw_fd(), buf, &NetlinkAddr::new(0, 0), MsgFlags::empty()).map_err(|e| sys(who, "send", e))?;
    if sent != buf.len() {
        return Err(Error::Setup(format!("{who} send: {sent} of {} bytes", buf.len())));
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
    buf.extend_from_slice(&[0; 16]);
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

/// Attributes in `[start, end)`: (type without flags, payload start, payload end).
pub fn attrs(buf: &[u8], mut off: usize, end: usize) -> Vec<(u16, usize, usize)> {
    let mut out = Vec::new();
    while off + 4 <= end {
        let len = usize::from(u16_at(buf, off));
        if len < 4 || off + len > end {
            break;
        }
        out.push((u16_at(buf, off + 2) & NLA_TYPE_MASK, off + 4, off + len));
        off += (len + 3) & !3;
    }
    out
}

/// The header of the reply message at `off`: (length, type, sequence number).
pub fn header_at(b: &[u8], off: usize) -> (usize, u16, u32) {
    (u32_at(b, off) as usize, u16_at(b, off + 4), u32_at(b, off + 8))
}

/// The error code of the `NLMSG_ERROR` message at `off` (0: an acknowledgement).
pub fn error_code(b: &[u8], off: usize) -> i32 {
    i32::from_ne_bytes([b[off + 16], b[off + 17], b[off + 18], b[off + 19]])
}

pub fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_ne_bytes([b[i], b[i + 1]])
}

pub fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_layout() {
        let mut b = Vec::new();
        message(&mut b, 0x0a0c, NLM_F_REQUEST, 7, 1, 0, |b| attr_str(b, 2, "s"));
        assert_eq!(b.len(), 16 + 4 + 8);
        assert_eq!(header_at(&b, 0), (28, 0x0a0c, 7));
        assert_eq!(&b[16..20], &[1, 0, 0, 0]);
        assert_eq!(&b[20..28], &[6, 0, 2, 0, b's', 0, 0, 0]);
        assert_eq!(attrs(&b, 20, 28), vec![(2, 24, 26)]);
        let mut n = Vec::new();
        nested(&mut n, 3, |b| attr(b, 1, &[10, 0, 0, 1]));
        assert_eq!(n, [12, 0, 3, 0x80, 8, 0, 1, 0, 10, 0, 0, 1]);
        assert_eq!(attrs(&n, 0, 3), vec![]);
    }
}
