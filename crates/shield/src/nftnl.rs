//! Adding addresses to plain sets over netlink, without nft's parser.
//!
//! nft parses and evaluates every element literal; for 100 000 addresses that is most of a
//! container start. A plain set (no intervals, no timeouts) needs none of that: each element
//! is its key, 4 or 16 bytes. This module sends `NFT_MSG_NEWSETELEM` messages inside an
//! nfnetlink batch (one transaction each) on a `NETLINK_NETFILTER` socket opened in the
//! current network namespace, and waits for the kernel's acknowledgement of every
//! message. Transactions stay well under the default socket send buffer, which a user
//! namespace cannot enlarge. Networks and everything else still go through nft.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    bind, recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

use crate::error::{Error, Result};

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_INET: u8 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_DATA_VALUE: u16 = 1;

/// Keep each transaction under this many bytes: the default `wmem_default` is 212 992, and
/// a batch larger than the socket's send buffer is refused ("Message too long").
const MAX_BATCH_BYTES: usize = 128 * 1024;
/// One message's element list: its attribute length is a u16.
const MAX_NEST_BYTES: usize = 60 * 1024;

/// A netfilter netlink socket in the current network namespace.
pub struct Loader {
    fd: OwnedFd,
    seq: u32,
}

fn sys(what: &str, e: nix::Error) -> Error {
    Error::Setup(format!("netlink {what}: {e}"))
}

impl Loader {
    pub fn open() -> Result<Loader> {
        let fd = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkNetFilter)
            .map_err(|e| sys("socket", e))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| sys("bind", e))?;
        Ok(Loader { fd, seq: 1 })
    }

    /// Add `addresses` (all of the set's family) to the plain set `set` of
    /// `inet terok_shield`, in as many transactions as needed.
    pub fn add(&mut self, set: &str, addresses: &[IpAddr]) -> Result<()> {
        let per_element = 16 + if addresses.first().is_some_and(IpAddr::is_ipv6) { 16 } else { 4 };
        let per_batch = (MAX_BATCH_BYTES / per_element).max(1);
        for (i, chunk) in addresses.chunks(per_batch).enumerate() {
            self.transaction(set, chunk)
                .map_err(|e| Error::Setup(format!("{e} (transaction {i} of {} elements)", chunk.len())))?;
        }
        Ok(())
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// One nfnetlink batch (one transaction) of several `NEWSETELEM` messages: an
    /// attribute's length is 16 bits, so one message's element list stays under 64 KiB.
    fn transaction(&mut self, set: &str, addresses: &[IpAddr]) -> Result<()> {
        let per_element = 16 + if addresses.first().is_some_and(IpAddr::is_ipv6) { 16 } else { 4 };
        let per_message = (MAX_NEST_BYTES / per_element).max(1);
        let mut buf = Vec::with_capacity(addresses.len() * per_element + 256);
        let begin = self.next_seq();
        message(&mut buf, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, begin, 0, NFNL_SUBSYS_NFTABLES, |_| {});
        let mut pending = Vec::new();
        for part in addresses.chunks(per_message) {
            let seq = self.next_seq();
            pending.push(seq);
            element_message(&mut buf, NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK, seq, set, part);
        }
        let end = self.next_seq();
        message(&mut buf, NFNL_MSG_BATCH_END, NLM_F_REQUEST, end, 0, NFNL_SUBSYS_NFTABLES, |_| {});
        let sent = sendto(self.fd.as_raw_fd(), &buf, &NetlinkAddr::new(0, 0), MsgFlags::empty())
            .map_err(|e| sys("send", e))?;
        if sent != buf.len() {
            return Err(Error::Setup(format!("netlink send: {sent} of {} bytes", buf.len())));
        }
        self.wait_acks(pending, set)
    }

    /// True when `address` is in the plain set `set` (one `GETSETELEM`: a hash lookup in the
    /// kernel, whatever the set's size).
    pub fn has(&mut self, set: &str, address: IpAddr) -> Result<bool> {
        let mut buf = Vec::with_capacity(128);
        let seq = self.next_seq();
        element_message(&mut buf, NFT_MSG_GETSETELEM, NLM_F_REQUEST | NLM_F_ACK, seq, set, &[address]);
        self.send(&buf)?;
        match self.acks(vec![seq])? {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) if self.has_set(set)? => Ok(false),
            Err(e) => Err(refused(set, e)),
        }
    }

    /// Whether the set exists in our table (also tells a missing element from a missing set).
    pub fn has_set(&mut self, set: &str) -> Result<bool> {
        const NFT_MSG_GETSET: u16 = 10;
        const NFTA_SET_TABLE: u16 = 1;
        const NFTA_SET_NAME: u16 = 2;
        let mut buf = Vec::with_capacity(96);
        let seq = self.next_seq();
        message(
            &mut buf,
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSET,
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            NFPROTO_INET,
            0,
            |b| {
                attr_str(b, NFTA_SET_TABLE, "terok_shield");
                attr_str(b, NFTA_SET_NAME, set);
            },
        );
        self.send(&buf)?;
        match self.acks(vec![seq])? {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(refused(set, e)),
        }
    }

    /// One transaction: delete `address` from `from` (when given) and add it to `to`.
    pub fn move_to(&mut self, from: Option<&str>, to: &str, address: IpAddr) -> Result<()> {
        let mut buf = Vec::with_capacity(256);
        let begin = self.next_seq();
        message(&mut buf, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, begin, 0, NFNL_SUBSYS_NFTABLES, |_| {});
        let mut pending = Vec::new();
        if let Some(from) = from {
            let seq = self.next_seq();
            pending.push(seq);
            element_message(&mut buf, NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK, seq, from, &[address]);
        }
        let seq = self.next_seq();
        pending.push(seq);
        element_message(&mut buf, NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK, seq, to, &[address]);
        let end = self.next_seq();
        message(&mut buf, NFNL_MSG_BATCH_END, NLM_F_REQUEST, end, 0, NFNL_SUBSYS_NFTABLES, |_| {});
        self.send(&buf)?;
        self.wait_acks(pending, to)
    }

    fn send(&self, buf: &[u8]) -> Result<()> {
        let sent =
            sendto(self.fd.as_raw_fd(), buf, &NetlinkAddr::new(0, 0), MsgFlags::empty()).map_err(|e| sys("send", e))?;
        if sent != buf.len() {
            return Err(Error::Setup(format!("netlink send: {sent} of {} bytes", buf.len())));
        }
        Ok(())
    }

    /// Read until the kernel acknowledges every message of `pending`, or refuses one.
    fn wait_acks(&self, pending: Vec<u32>, set: &str) -> Result<()> {
        self.acks(pending)?.map_err(|e| refused(set, e))
    }

    /// The kernel's verdict on `pending`: `Ok(Err(errno))` when it refused one of them.
    fn acks(&self, mut pending: Vec<u32>) -> Result<std::result::Result<(), Errno>> {
        // An error reply echoes the whole request: room for a full batch and more.
        let mut buf = vec![0u8; MAX_BATCH_BYTES + 64 * 1024];
        while !pending.is_empty() {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|e| sys("recv", e))?;
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
                let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                let msg_seq = u32::from_ne_bytes([buf[off + 8], buf[off + 9], buf[off + 10], buf[off + 11]]);
                if len < 16 || off + len > n {
                    return Err(Error::Setup("netlink: malformed reply".into()));
                }
                if ty == NLMSG_ERROR && len >= 20 {
                    let code = i32::from_ne_bytes([buf[off + 16], buf[off + 17], buf[off + 18], buf[off + 19]]);
                    if code != 0 {
                        return Ok(Err(Errno::from_raw(-code)));
                    }
                    pending.retain(|s| *s != msg_seq);
                }
                off += (len + 3) & !3;
            }
        }
        Ok(Ok(()))
    }
}

fn refused(set: &str, e: Errno) -> Error {
    Error::Setup(format!("set {set}: {e}"))
}

/// Append a set-element message (`NEW`/`GET`/`DELSETELEM`) naming `addresses`.
fn element_message(buf: &mut Vec<u8>, msg: u16, flags: u16, seq: u32, set: &str, addresses: &[IpAddr]) {
    message(buf, (NFNL_SUBSYS_NFTABLES << 8) | msg, flags, seq, NFPROTO_INET, 0, |b| {
        attr_str(b, NFTA_SET_ELEM_LIST_TABLE, "terok_shield");
        attr_str(b, NFTA_SET_ELEM_LIST_SET, set);
        nested(b, NFTA_SET_ELEM_LIST_ELEMENTS, |b| {
            for a in addresses {
                nested(b, NFTA_LIST_ELEM, |b| {
                    nested(b, NFTA_SET_ELEM_KEY, |b| match a {
                        IpAddr::V4(v4) => attr(b, NFTA_DATA_VALUE, &v4.octets()),
                        IpAddr::V6(v6) => attr(b, NFTA_DATA_VALUE, &v6.octets()),
                    })
                });
            }
        });
    });
}

/// Append one netlink message: header, nfgenmsg, then what `body` writes.
fn message(buf: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16, body: impl FnOnce(&mut Vec<u8>)) {
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

fn attr(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    let len = (4 + data.len()) as u16;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(data);
    pad(buf);
}

fn attr_str(buf: &mut Vec<u8>, ty: u16, s: &str) {
    let mut data = s.as_bytes().to_vec();
    data.push(0);
    attr(buf, ty, &data);
}

fn nested(buf: &mut Vec<u8>, ty: u16, body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    body(buf);
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    buf[start + 2..start + 4].copy_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
}

fn pad(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_layout() {
        let mut b = Vec::new();
        message(&mut b, 0x0a0c, NLM_F_REQUEST, 7, NFPROTO_INET, 0, |b| attr_str(b, NFTA_SET_ELEM_LIST_SET, "s"));
        assert_eq!(b.len(), 16 + 4 + 8);
        assert_eq!(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]), 28);
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), 0x0a0c);
        assert_eq!(&b[16..20], &[1, 0, 0, 0]);
        assert_eq!(&b[20..28], &[6, 0, 2, 0, b's', 0, 0, 0]);
        let mut n = Vec::new();
        nested(&mut n, 3, |b| attr(b, 1, &[10, 0, 0, 1]));
        assert_eq!(n, [12, 0, 3, 0x80, 8, 0, 1, 0, 10, 0, 0, 1]);
    }
}
