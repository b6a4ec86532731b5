//! Adding addresses to plain sets over netlink, without nft's parser.
//!
//! nft parses and evaluates every element literal; for 100 000 addresses that is most of a
//! container start. A plain set (no intervals, no timeouts) needs none of that: each element
//! is its key, 4 or 16 bytes. This module sends `NFT_MSG_NEWSETELEM` messages inside an
//! nfnetlink batch (one transaction each) on a `NETLINK_NETFILTER` socket opened in the
//! current network namespace, and waits for the kernel's acknowledgement of every
//! message. Transactions stay well under the default socket send buffer, which a user
//! namespace cannot enlarge. Networks go the same way (an interval start and end each), and
//! port-scoped elements (a key and a key end each).

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{recv, MsgFlags};
use terok_shield_policy::IpNet;
use terok_shield_ruleset::constants::TABLE_NAME;
use terok_shield_ruleset::portmap::{MapRange, ScopeElement};
use terok_shield_ruleset::{Scoped, SetId};

use super::netlink::{
    self, attr, attr_str, message, nested, NetlinkError, Result, NLMSG_ERROR, NLM_F_ACK, NLM_F_REQUEST,
};

const NLM_F_CREATE: u16 = 0x400;
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
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_SET_ELEM_EXPIRATION: u16 = 5;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_SET_ELEM_KEY_END: u16 = 10;
const NFT_SET_ELEM_INTERVAL_END: u32 = 1;
const NFTA_DATA_VALUE: u16 = 1;

/// Each transaction stays under the socket's send buffer (a larger batch is refused,
/// "Message too long"; the default `wmem_default` is 212 992, and a user namespace cannot
/// enlarge it); this many bytes when the buffer cannot be read.
const MAX_BATCH_BYTES: usize = 128 * 1024;
/// The largest send buffer asked for (`SO_SNDBUFFORCE`, which needs CAP_NET_ADMIN in the
/// initial user namespace: rootful only). Each transaction's commit walks every interval set
/// it touched, whole (the kernel's rbtree), so fewer, larger transactions fill a large
/// interval set much faster.
const WANTED_SNDBUF: usize = 4 << 20;
/// What a batch leaves free of the send buffer.
const SNDBUF_SLACK: usize = 8 * 1024;
/// The largest reply read: an acknowledgement, or a refusal echoing one message.
const MAX_REPLY_BYTES: usize = 2 * MAX_NEST_BYTES + 16 * 1024;
/// One message's element list: its attribute length is a u16.
const MAX_NEST_BYTES: usize = 60 * 1024;

const WHO: &str = "netlink";

/// A netfilter netlink socket in the current network namespace.
pub struct Loader {
    fd: OwnedFd,
    seq: u32,
    /// The size of the last request: a refusal echoes it, so a reply is at most this much
    /// more than a header (a small lookup needs no 192 KiB buffer).
    last_sent: std::cell::Cell<usize>,
    /// The largest transaction this socket sends: its send buffer less some slack
    /// ([`MAX_BATCH_BYTES`] when the buffer cannot be read).
    batch_bytes: usize,
}

impl Loader {
    pub fn open() -> Result<Loader> {
        let fd = netlink::open(WHO)?;
        use nix::sys::socket::{getsockopt, setsockopt, sockopt};
        // Refused without the capability: the default buffer stays.
        let _ = setsockopt(&fd, sockopt::SndBufForce, &WANTED_SNDBUF);
        let batch_bytes = match getsockopt(&fd, sockopt::SndBuf) {
            Ok(sndbuf) => sndbuf.saturating_sub(SNDBUF_SLACK).clamp(16 * 1024, WANTED_SNDBUF),
            Err(_) => MAX_BATCH_BYTES,
        };
        Ok(Loader { fd, seq: 1, last_sent: std::cell::Cell::new(0), batch_bytes })
    }

    /// Add `addresses` (all of the set's family) to the plain set `set` of our table, in as
    /// many transactions as needed.
    pub fn add(&mut self, set: SetId, addresses: &[IpAddr]) -> Result<()> {
        let per_element = 16 + if addresses.first().is_some_and(IpAddr::is_ipv6) { 16 } else { 4 };
        let per_batch = (self.batch_bytes / per_element).max(1);
        for (i, chunk) in addresses.chunks(per_batch).enumerate() {
            self.transaction(set, chunk).map_err(|e| NetlinkError::Transaction {
                index: i,
                elements: chunk.len(),
                source: Box::new(e),
            })?;
        }
        Ok(())
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// One nfnetlink batch (one transaction) of several `NEWSETELEM` messages: an
    /// attribute's length is 16 bits, so one message's element list stays under 64 KiB.
    fn transaction(&mut self, set: SetId, addresses: &[IpAddr]) -> Result<()> {
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
        self.send(&buf)?;
        self.wait_acks(pending, set)
    }

    /// True when `address` is in the plain set `set` (one `GETSETELEM`: a hash lookup in the
    /// kernel, whatever the set's size).
    pub fn has(&mut self, set: SetId, address: IpAddr) -> Result<bool> {
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

    /// Add `addresses` to the timeout set `set`, each expiring after `timeout`, in one
    /// transaction. An address already there gets the new timeout.
    pub fn add_timed(&mut self, set: SetId, addresses: &[IpAddr], timeout: Duration) -> Result<()> {
        let mut buf = Vec::with_capacity(addresses.len() * 48 + 128);
        let begin = self.next_seq();
        message(&mut buf, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, begin, 0, NFNL_SUBSYS_NFTABLES, |_| {});
        let seq = self.next_seq();
        let flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK;
        timed_element_message(&mut buf, NFT_MSG_NEWSETELEM, flags, seq, set, addresses, Some(timeout));
        let end = self.next_seq();
        message(&mut buf, NFNL_MSG_BATCH_END, NLM_F_REQUEST, end, 0, NFNL_SUBSYS_NFTABLES, |_| {});
        self.send(&buf)?;
        self.wait_acks(vec![seq], set)
    }

    /// Take `address` out of the timeout set `set` and put it in again with `timeout`, in one
    /// transaction (what re-arms an element on kernels that ignore a new add's timeout).
    pub fn rearm(&mut self, set: SetId, address: IpAddr, timeout: Duration) -> Result<()> {
        let mut buf = Vec::with_capacity(256);
        let begin = self.next_seq();
        message(&mut buf, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, begin, 0, NFNL_SUBSYS_NFTABLES, |_| {});
        let del = self.next_seq();
        element_message(&mut buf, NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK, del, set, &[address]);
        let add = self.next_seq();
        let flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK;
        timed_element_message(&mut buf, NFT_MSG_NEWSETELEM, flags, add, set, &[address], Some(timeout));
        let end = self.next_seq();
        message(&mut buf, NFNL_MSG_BATCH_END, NLM_F_REQUEST, end, 0, NFNL_SUBSYS_NFTABLES, |_| {});
        self.send(&buf)?;
        self.wait_acks(vec![del, add], set)
    }

    /// How long `address` has left in the timeout set `set`: `None` when it is not there
    /// (`Some(Duration::MAX)` for an element without a timeout).
    pub fn remaining(&mut self, set: SetId, address: IpAddr) -> Result<Option<Duration>> {
        let mut buf = Vec::with_capacity(128);
        let seq = self.next_seq();
        element_message(&mut buf, NFT_MSG_GETSETELEM, NLM_F_REQUEST | NLM_F_ACK, seq, set, &[address]);
        self.send(&buf)?;
        let mut found = None;
        match self.replies(vec![seq], &mut |body| found = Some(expiration(body).unwrap_or(Duration::MAX)))? {
            Ok(()) => Ok(found),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(refused(set, e)),
        }
    }

    /// Delete `address` from `set` (one transaction); false when it was not there.
    pub fn remove(&mut self, set: SetId, address: IpAddr) -> Result<bool> {
        let mut buf = Vec::with_capacity(256);
        let begin = self.next_seq();
        message(&mut buf, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, begin, 0, NFNL_SUBSYS_NFTABLES, |_| {});
        let seq = self.next_seq();
        element_message(&mut buf, NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK, seq, set, &[address]);
        let end = self.next_seq();
        message(&mut buf, NFNL_MSG_BATCH_END, NLM_F_REQUEST, end, 0, NFNL_SUBSYS_NFTABLES, |_| {});
        self.send(&buf)?;
        match self.acks(vec![seq])? {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(refused(set, e)),
        }
    }

    /// Whether the set exists in our table (also tells a missing element from a missing set).
    pub fn has_set(&mut self, set: SetId) -> Result<bool> {
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
                attr_str(b, NFTA_SET_TABLE, TABLE_NAME);
                attr_str(b, NFTA_SET_NAME, set.name());
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
    pub fn move_to(&mut self, from: Option<SetId>, to: SetId, address: IpAddr) -> Result<()> {
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

    /// Add `nets` (all of the set's family, sorted and disjoint: [`terok_shield_ruleset::seeds::outermost`])
    /// to the interval set `set`: each network is its first address and, flagged as an
    /// interval end, the address after its last (none when it reaches the top of the
    /// family's space), as nft sends them. In as many transactions as needed.
    pub fn add_networks(&mut self, set: SetId, nets: &[IpNet]) -> Result<()> {
        // A start (element, key) and an end (element, flags, key).
        let per_element = 8 + 24 + 2 * if set.is_v6() { 16 } else { 4 };
        self.add_bulk(set, nets, per_element, |buf, flags, seq, part| interval_message(buf, flags, seq, set, part))
    }

    /// Add port-scoped `elements` (canonical, so none starts or ends inside another) to the
    /// scoped set `set`, each with `timeout` when given, in as many transactions as needed.
    pub fn add_scoped(&mut self, set: SetId, elements: &[Scoped], timeout: Option<Duration>) -> Result<()> {
        let per_element = 40 + 2 * scoped_key_len(set);
        self.add_bulk(set, elements, per_element, |buf, flags, seq, part| {
            scoped_message(buf, NFT_MSG_NEWSETELEM, flags, seq, set, part, timeout)
        })
    }

    /// Add `ranges` (sorted, disjoint, of the map's family) to the port map `set`: each
    /// range is its first address with its mark and, flagged as an interval end, the address
    /// after its last (none at the top of the family's space). In as many transactions as
    /// needed.
    pub fn add_mapped(&mut self, set: SetId, ranges: &[MapRange]) -> Result<()> {
        // A start (element, key, data) and an end (element, flags, key).
        let per_element = 16 + 12 + 24 + 2 * if set.is_v6() { 16 } else { 4 };
        let descending: Vec<MapRange> = ranges.iter().rev().copied().collect();
        self.add_bulk(set, &descending, per_element, |buf, flags, seq, part| mapped_message(buf, flags, seq, set, part))
    }

    /// Add single addresses with their marks (`lo == hi`) to the address port map `set` (a
    /// hash: one key and its data each).
    pub fn add_mapped_hosts(&mut self, set: SetId, hosts: &[MapRange]) -> Result<()> {
        // An element with its key and data.
        let per_element = 12 + 12 + if set.is_v6() { 16 } else { 4 };
        self.add_bulk(set, hosts, per_element, |buf, flags, seq, part| {
            elements_message(buf, NFT_MSG_NEWSETELEM, flags, seq, set, |b| {
                for h in part {
                    nested(b, NFTA_LIST_ELEM, |b| {
                        nested(b, NFTA_SET_ELEM_KEY, |b| attr(b, NFTA_DATA_VALUE, &addr_bytes(h.lo)));
                        nested(b, NFTA_SET_ELEM_DATA, |b| attr(b, NFTA_DATA_VALUE, &h.mark.to_ne_bytes()));
                    });
                }
            })
        })
    }

    /// Add `elements` (`mark . protocol . ports`) to the scope set `set`.
    pub fn add_scopes(&mut self, set: SetId, elements: &[ScopeElement]) -> Result<()> {
        self.add_bulk(set, elements, 64, |buf, flags, seq, part| scopes_message(buf, flags, seq, set, part))
    }

    /// `items` into `set` in transactions of at most `batch_bytes`, each of
    /// `NEWSETELEM` messages of at most [`MAX_NEST_BYTES`] that `write` appends
    /// (`per_element`: the bytes one item takes), every message acknowledged.
    fn add_bulk<T>(
        &mut self,
        set: SetId,
        items: &[T],
        per_element: usize,
        write: impl Fn(&mut Vec<u8>, u16, u32, &[T]),
    ) -> Result<()> {
        let per_batch = (self.batch_bytes / per_element).max(1);
        let per_message = (MAX_NEST_BYTES / per_element).max(1);
        for (i, chunk) in items.chunks(per_batch).enumerate() {
            let mut buf = Vec::with_capacity(chunk.len() * per_element + 256);
            let begin = self.next_seq();
            message(&mut buf, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, begin, 0, NFNL_SUBSYS_NFTABLES, |_| {});
            let mut pending = Vec::new();
            for part in chunk.chunks(per_message) {
                let seq = self.next_seq();
                pending.push(seq);
                write(&mut buf, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK, seq, part);
            }
            let end = self.next_seq();
            message(&mut buf, NFNL_MSG_BATCH_END, NLM_F_REQUEST, end, 0, NFNL_SUBSYS_NFTABLES, |_| {});
            self.send(&buf)?;
            self.wait_acks(pending, set).map_err(|e| NetlinkError::Transaction {
                index: i,
                elements: chunk.len(),
                source: Box::new(e),
            })?;
        }
        Ok(())
    }

    /// One transaction: delete `remove` (exact elements) from `set`, then add `add`, each
    /// added one with `timeout` when given. Refused as a whole when an element to delete
    /// is not there.
    pub fn replace_scoped(
        &mut self,
        set: SetId,
        remove: &[Scoped],
        add: &[Scoped],
        timeout: Option<Duration>,
    ) -> Result<()> {
        let mut buf = Vec::with_capacity(256 + (remove.len() + add.len()) * 96);
        let begin = self.next_seq();
        message(&mut buf, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, begin, 0, NFNL_SUBSYS_NFTABLES, |_| {});
        let mut pending = Vec::new();
        if !remove.is_empty() {
            let seq = self.next_seq();
            pending.push(seq);
            scoped_message(&mut buf, NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK, seq, set, remove, None);
        }
        if !add.is_empty() {
            let seq = self.next_seq();
            pending.push(seq);
            let flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK;
            scoped_message(&mut buf, NFT_MSG_NEWSETELEM, flags, seq, set, add, timeout);
        }
        let end = self.next_seq();
        message(&mut buf, NFNL_MSG_BATCH_END, NLM_F_REQUEST, end, 0, NFNL_SUBSYS_NFTABLES, |_| {});
        self.send(&buf)?;
        self.wait_acks(pending, set)
    }

    /// True when the scoped set `set` holds an element with `element`'s key and key end
    /// (one `GETSETELEM`: no transaction).
    pub fn has_scoped(&mut self, set: SetId, element: &Scoped) -> Result<bool> {
        let mut buf = Vec::with_capacity(160);
        let seq = self.next_seq();
        let e = std::slice::from_ref(element);
        scoped_message(&mut buf, NFT_MSG_GETSETELEM, NLM_F_REQUEST | NLM_F_ACK, seq, set, e, None);
        self.send(&buf)?;
        match self.acks(vec![seq])? {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(refused(set, e)),
        }
    }

    /// Delete the exact element `element` from the scoped set `set`; false when it was not
    /// there. (A refused transaction makes the kernel wait for an RCU grace period before it
    /// answers, 8-12 ms here: ask [`Loader::has_scoped`] first where the element is likely
    /// absent.)
    pub fn remove_scoped(&mut self, set: SetId, element: &Scoped) -> Result<bool> {
        match self.replace_scoped(set, std::slice::from_ref(element), &[], None) {
            Ok(()) => Ok(true),
            Err(NetlinkError::SetRefused { errno: Errno::ENOENT, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn send(&self, buf: &[u8]) -> Result<()> {
        self.last_sent.set(buf.len());
        netlink::send(&self.fd, buf, WHO)
    }

    /// Read until the kernel acknowledges every message of `pending`, or refuses one.
    fn wait_acks(&self, pending: Vec<u32>, set: SetId) -> Result<()> {
        self.acks(pending)?.map_err(|e| refused(set, e))
    }

    /// The kernel's verdict on `pending`: `Ok(Err(errno))` when it refused one of them.
    fn acks(&self, pending: Vec<u32>) -> Result<std::result::Result<(), Errno>> {
        self.replies(pending, &mut |_| {})
    }

    /// Like [`Loader::acks`], handing the body of every other reply message to `data`.
    fn replies(&self, mut pending: Vec<u32>, data: &mut dyn FnMut(&[u8])) -> Result<std::result::Result<(), Errno>> {
        // An error reply echoes the whole request: room for a full batch and more.
        let mut buf = vec![0u8; (self.last_sent.get() + 16 * 1024).min(MAX_REPLY_BYTES)];
        while !pending.is_empty() {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(netlink::sys(WHO, "recv"))?;
            for msg in netlink::messages(&buf[..n]) {
                let msg = msg.map_err(|()| NetlinkError::Malformed { who: WHO })?;
                match msg.error_code() {
                    Some(0) => pending.retain(|s| *s != msg.seq),
                    Some(code) => return Ok(Err(Errno::from_raw(-code))),
                    None if msg.ty == NLMSG_ERROR => return Err(NetlinkError::Malformed { who: WHO }),
                    None => data(msg.body),
                }
            }
        }
        Ok(Ok(()))
    }
}

fn refused(set: SetId, errno: Errno) -> NetlinkError {
    NetlinkError::SetRefused { set: set.name().to_string(), errno }
}

/// Append a set-element message (`NEW`/`GET`/`DELSETELEM`) of our table's `set`, its
/// element list written by `elements`.
fn elements_message(
    buf: &mut Vec<u8>,
    msg: u16,
    flags: u16,
    seq: u32,
    set: SetId,
    elements: impl FnOnce(&mut Vec<u8>),
) {
    message(buf, (NFNL_SUBSYS_NFTABLES << 8) | msg, flags, seq, NFPROTO_INET, 0, |b| {
        attr_str(b, NFTA_SET_ELEM_LIST_TABLE, TABLE_NAME);
        attr_str(b, NFTA_SET_ELEM_LIST_SET, set.name());
        nested(b, NFTA_SET_ELEM_LIST_ELEMENTS, elements);
    });
}

/// Append a set-element message (`NEW`/`GET`/`DELSETELEM`) naming `addresses`.
fn element_message(buf: &mut Vec<u8>, msg: u16, flags: u16, seq: u32, set: SetId, addresses: &[IpAddr]) {
    timed_element_message(buf, msg, flags, seq, set, addresses, None);
}

/// Like [`element_message`], each element with its own timeout when given.
fn timed_element_message(
    buf: &mut Vec<u8>,
    msg: u16,
    flags: u16,
    seq: u32,
    set: SetId,
    addresses: &[IpAddr],
    timeout: Option<Duration>,
) {
    elements_message(buf, msg, flags, seq, set, |b| {
        for a in addresses {
            nested(b, NFTA_LIST_ELEM, |b| {
                nested(b, NFTA_SET_ELEM_KEY, |b| match a {
                    IpAddr::V4(v4) => attr(b, NFTA_DATA_VALUE, &v4.octets()),
                    IpAddr::V6(v6) => attr(b, NFTA_DATA_VALUE, &v6.octets()),
                });
                if let Some(t) = timeout {
                    let ms = u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
                    attr(b, NFTA_SET_ELEM_TIMEOUT, &ms.to_be_bytes());
                }
            });
        }
    });
}

/// The key length of a scoped set's elements: the address, then the protocol and the port,
/// each padded to four bytes.
fn scoped_key_len(set: SetId) -> usize {
    if set.is_v6() {
        24
    } else {
        12
    }
}

/// The key of `addr . proto . port`, as the kernel lays out a concatenation.
fn scoped_key(addr: IpAddr, proto: u8, port: u16) -> Vec<u8> {
    let mut k = match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    k.extend_from_slice(&[proto, 0, 0, 0]);
    let p = port.to_be_bytes();
    k.extend_from_slice(&[p[0], p[1], 0, 0]);
    k
}

/// The address after `net`'s last one; `None` when `net` reaches the top of its family.
fn after_last(net: &IpNet) -> Option<IpAddr> {
    next_address(net.last())
}

/// The address after `a`; `None` at the top of its family.
fn next_address(a: IpAddr) -> Option<IpAddr> {
    match a {
        IpAddr::V4(a) => u32::from(a).checked_add(1).map(|n| IpAddr::V4(n.into())),
        IpAddr::V6(a) => u128::from(a).checked_add(1).map(|n| IpAddr::V6(n.into())),
    }
}

fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// A `NEWSETELEM` message naming `nets` as intervals of a single-field interval set.
fn interval_message(buf: &mut Vec<u8>, flags: u16, seq: u32, set: SetId, nets: &[IpNet]) {
    elements_message(buf, NFT_MSG_NEWSETELEM, flags, seq, set, |b| {
        for n in nets {
            nested(b, NFTA_LIST_ELEM, |b| {
                nested(b, NFTA_SET_ELEM_KEY, |b| attr(b, NFTA_DATA_VALUE, &addr_bytes(n.addr())));
            });
            if let Some(end) = after_last(n) {
                nested(b, NFTA_LIST_ELEM, |b| {
                    attr(b, NFTA_SET_ELEM_FLAGS, &NFT_SET_ELEM_INTERVAL_END.to_be_bytes());
                    nested(b, NFTA_SET_ELEM_KEY, |b| attr(b, NFTA_DATA_VALUE, &addr_bytes(end)));
                });
            }
        }
    });
}

/// A `NEWSETELEM` message naming `ranges` as intervals of a map to marks.
fn mapped_message(buf: &mut Vec<u8>, flags: u16, seq: u32, set: SetId, ranges: &[MapRange]) {
    elements_message(buf, NFT_MSG_NEWSETELEM, flags, seq, set, |b| {
        for r in ranges {
            if let Some(end) = next_address(r.hi) {
                nested(b, NFTA_LIST_ELEM, |b| {
                    attr(b, NFTA_SET_ELEM_FLAGS, &NFT_SET_ELEM_INTERVAL_END.to_be_bytes());
                    nested(b, NFTA_SET_ELEM_KEY, |b| attr(b, NFTA_DATA_VALUE, &addr_bytes(end)));
                });
            }
            nested(b, NFTA_LIST_ELEM, |b| {
                nested(b, NFTA_SET_ELEM_KEY, |b| attr(b, NFTA_DATA_VALUE, &addr_bytes(r.lo)));
                // A mark is a host-order integer in the kernel's registers.
                nested(b, NFTA_SET_ELEM_DATA, |b| attr(b, NFTA_DATA_VALUE, &r.mark.to_ne_bytes()));
            });
        }
    });
}

/// The key of `mark . proto . port`, as the kernel lays out a concatenation with
/// intervals: nft's rule turns the host-order mark to network order before the lookup.
fn scope_key(mark: u32, proto: u8, port: u16) -> [u8; 12] {
    let (m, p) = (mark.to_be_bytes(), port.to_be_bytes());
    [m[0], m[1], m[2], m[3], proto, 0, 0, 0, p[0], p[1], 0, 0]
}

/// A `NEWSETELEM` message naming scope elements (each a key and a key end).
fn scopes_message(buf: &mut Vec<u8>, flags: u16, seq: u32, set: SetId, elements: &[ScopeElement]) {
    elements_message(buf, NFT_MSG_NEWSETELEM, flags, seq, set, |b| {
        for e in elements {
            let proto = e.proto.number();
            nested(b, NFTA_LIST_ELEM, |b| {
                nested(b, NFTA_SET_ELEM_KEY, |b| attr(b, NFTA_DATA_VALUE, &scope_key(e.mark, proto, e.ports.lo)));
                nested(b, NFTA_SET_ELEM_KEY_END, |b| {
                    attr(b, NFTA_DATA_VALUE, &scope_key(e.mark, proto, e.ports.hi));
                });
            });
        }
    });
}

/// A set-element message naming port-scoped `elements` (each a key and a key end).
fn scoped_message(
    buf: &mut Vec<u8>,
    msg: u16,
    flags: u16,
    seq: u32,
    set: SetId,
    elements: &[Scoped],
    timeout: Option<Duration>,
) {
    elements_message(buf, msg, flags, seq, set, |b| {
        for e in elements {
            let proto = e.proto.number();
            nested(b, NFTA_LIST_ELEM, |b| {
                nested(b, NFTA_SET_ELEM_KEY, |b| {
                    attr(b, NFTA_DATA_VALUE, &scoped_key(e.net.addr(), proto, e.ports.lo));
                });
                nested(b, NFTA_SET_ELEM_KEY_END, |b| {
                    attr(b, NFTA_DATA_VALUE, &scoped_key(e.net.last(), proto, e.ports.hi));
                });
                if let Some(t) = timeout {
                    let ms = u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
                    attr(b, NFTA_SET_ELEM_TIMEOUT, &ms.to_be_bytes());
                }
            });
        }
    });
}

/// The `NFTA_SET_ELEM_EXPIRATION` of the first element in a set-element reply's body.
fn expiration(body: &[u8]) -> Option<Duration> {
    let elements = netlink::attrs(body.get(4..)?).find(NFTA_SET_ELEM_LIST_ELEMENTS)?;
    let elem = netlink::attrs(elements).find(NFTA_LIST_ELEM)?;
    let ms = netlink::attrs(elem).find(NFTA_SET_ELEM_EXPIRATION)?;
    Some(Duration::from_millis(u64::from_be_bytes(ms.try_into().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_lay_out_a_concatenation() {
        // What `nft --debug=netlink` sends for 198.51.100.0/24 . udp . 8000-8100.
        let net: IpNet = "198.51.100.0/24".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(scoped_key(net.addr(), 17, 8000), [198, 51, 100, 0, 17, 0, 0, 0, 0x1f, 0x40, 0, 0]);
        assert_eq!(net.last().to_string(), "198.51.100.255");
        let host: IpNet = "2001:db8::1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(host.last(), host.addr());
        let all: IpNet = "0.0.0.0/0".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all.last().to_string(), "255.255.255.255");
        assert_eq!(scoped_key(host.addr(), 6, 443).len(), 24);
        assert_eq!(after_last(&net).map(|a| a.to_string()).as_deref(), Some("198.51.101.0"));
        assert_eq!(after_last(&all), None);
        // What `nft --debug=netlink` shows for 0x5e030002 . udp . 53: the mark in network
        // order; a map's data (0x5e030002 : …) stays in host order.
        assert_eq!(scope_key(0x5e03_0002, 17, 53), [0x5e, 3, 0, 2, 17, 0, 0, 0, 0, 53, 0, 0]);
        let top: IpNet = "ffff::/16".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(after_last(&top), None);
    }
}
