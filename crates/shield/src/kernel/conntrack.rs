//! Ending live flows: deleting conntrack entries over ctnetlink, in the current network
//! namespace (the caller has joined the container's).
//!
//! A revoked destination must stop passing traffic at once, not when its open connections
//! close: the firewall accepts `ct state established,related` early, so an existing entry
//! would keep a denied flow alive. Deleting the entry makes the next packet of the flow a
//! new one, which the rules then judge.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{recv, MsgFlags};
use terok_shield_policy::IpNet;
use terok_shield_ruleset::Flow;

use super::netlink::{self, attrs, NetlinkError, Result, NLMSG_DONE, NLM_F_ACK, NLM_F_REQUEST};

const NLM_F_DUMP: u16 = 0x300;
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_IP: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_DST: u16 = 4;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

const WHO: &str = "conntrack";

/// Delete every conntrack entry whose original destination lies in one of `revoked`
/// (every entry when `revoked` is `None`). Returns how many were deleted.
pub fn kill_flows(revoked: Option<&[IpNet]>) -> Result<usize> {
    kill_where(|flow| match (revoked, flow) {
        (None, _) => true,
        (Some(nets), Some(f)) => nets.iter().any(|n| n.contains(&IpNet::host(f.dst))),
        (Some(_), None) => false,
    })
}

/// Delete every conntrack entry for which `end` says so, given its flow (`None` when the
/// entry's original tuple could not be read; `local` is not set here). Returns how many
/// were deleted.
pub fn kill_where(mut end: impl FnMut(Option<&Flow>) -> bool) -> Result<usize> {
    let fd = netlink::open(WHO)?;
    let mut killed = 0;
    for family in [AF_INET, AF_INET6] {
        let tuples = dump(&fd, family)?;
        for (tuple, flow) in tuples {
            if end(flow.as_ref()) && delete(&fd, family, &tuple)? {
                killed += 1;
            }
        }
    }
    Ok(killed)
}

/// Every entry of `family`: the payload of its `CTA_TUPLE_ORIG` attribute and the flow it
/// describes.
fn dump(fd: &OwnedFd, family: u8) -> Result<Vec<(Vec<u8>, Option<Flow>)>> {
    let mut req = Vec::new();
    netlink::message(&mut req, ctnetlink(IPCTNL_MSG_CT_GET), NLM_F_REQUEST | NLM_F_DUMP, 1, family, 0, |_| {});
    netlink::send(fd, &req, WHO)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(netlink::sys(WHO, "recv"))?;
        for msg in netlink::messages(&buf[..n]) {
            let msg = msg.map_err(|()| NetlinkError::Malformed { who: WHO })?;
            if msg.ty == NLMSG_DONE {
                return Ok(out);
            }
            if let Some(code) = msg.error_code().filter(|c| *c != 0) {
                return Err(netlink::sys(WHO, "dump")(Errno::from_raw(-code)));
            }
            if msg.ty == ctnetlink(IPCTNL_MSG_CT_NEW) {
                if let Some(tuple) = msg.attrs().find(CTA_TUPLE_ORIG) {
                    out.push((tuple.to_vec(), orig_flow(tuple)));
                }
            }
        }
    }
}

/// The destination address inside a `CTA_TUPLE_ORIG` payload.
fn orig_dst(tuple: &[u8]) -> Option<IpAddr> {
    attrs(attrs(tuple).find(CTA_TUPLE_IP)?).find_map(|(t, p)| match t {
        CTA_IP_V4_DST => <[u8; 4]>::try_from(p).ok().map(IpAddr::from),
        CTA_IP_V6_DST => <[u8; 16]>::try_from(p).ok().map(IpAddr::from),
        _ => None,
    })
}

/// The flow of a `CTA_TUPLE_ORIG` payload: its protocol, destination and destination port.
fn orig_flow(tuple: &[u8]) -> Option<Flow> {
    let dst = orig_dst(tuple)?;
    let proto = attrs(tuple).find(CTA_TUPLE_PROTO)?;
    let num = attrs(proto).find(CTA_PROTO_NUM).and_then(|p| p.first().copied())?;
    let dport = attrs(proto).find(CTA_PROTO_DST_PORT).and_then(|p| <[u8; 2]>::try_from(p).ok()).map(u16::from_be_bytes);
    Some(Flow { proto: num, dst, dport: dport.filter(|_| matches!(num, 6 | 17 | 132 | 136)), local: false })
}

/// Delete the entry with this original tuple; false when it was already gone.
fn delete(fd: &OwnedFd, family: u8, tuple: &[u8]) -> Result<bool> {
    let mut req = Vec::new();
    netlink::message(&mut req, ctnetlink(IPCTNL_MSG_CT_DELETE), NLM_F_REQUEST | NLM_F_ACK, 2, family, 0, |b| {
        netlink::nested(b, CTA_TUPLE_ORIG, |b| b.extend_from_slice(tuple));
    });
    netlink::send(fd, &req, WHO)?;
    let mut buf = vec![0u8; 8192];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(netlink::sys(WHO, "recv"))?;
    let code = netlink::messages(&buf[..n]).next().and_then(|m| m.ok()).and_then(|m| m.error_code());
    match code {
        Some(0) => Ok(true),
        Some(c) if Errno::from_raw(-c) == Errno::ENOENT => Ok(false),
        Some(c) => Err(netlink::sys(WHO, "delete")(Errno::from_raw(-c))),
        None => Err(NetlinkError::NoAck { who: WHO, op: "delete" }),
    }
}

/// A ctnetlink message type.
fn ctnetlink(msg: u16) -> u16 {
    (NFNL_SUBSYS_CTNETLINK << 8) | msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_walk_and_destination() {
        // CTA_TUPLE_ORIG { CTA_TUPLE_IP { SRC 10.0.0.1, DST 198.51.100.10 } }
        let mut ip = Vec::new();
        for (t, a) in [(1u16, [10u8, 0, 0, 1]), (CTA_IP_V4_DST, [198, 51, 100, 10])] {
            ip.extend_from_slice(&8u16.to_ne_bytes());
            ip.extend_from_slice(&t.to_ne_bytes());
            ip.extend_from_slice(&a);
        }
        let mut tuple = Vec::new();
        netlink::nested(&mut tuple, CTA_TUPLE_IP, |b| b.extend_from_slice(&ip));
        assert_eq!(orig_dst(&tuple), Some("198.51.100.10".parse().unwrap_or_else(|_| unreachable!())));
        for cut in 0..tuple.len() {
            assert_eq!(orig_dst(&tuple[..cut]), None, "truncated at {cut}");
        }
    }
}
