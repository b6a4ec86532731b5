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

use crate::error::{Error, Result};
use crate::netlink::{self, attrs, error_code, header_at, u16_at, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_REQUEST};

const NLM_F_DUMP: u16 = 0x300;
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_IP: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_DST: u16 = 4;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

fn sys(what: &str, e: Errno) -> Error {
    netlink::sys("conntrack", what, e)
}

/// Delete every conntrack entry whose original destination lies in one of `revoked`
/// (every entry when `revoked` is `None`). Returns how many were deleted.
pub fn kill_flows(revoked: Option<&[IpNet]>) -> Result<usize> {
    let fd = netlink::open("conntrack")?;
    let mut killed = 0;
    for family in [AF_INET, AF_INET6] {
        let tuples = dump(&fd, family)?;
        for (tuple, dst) in tuples {
            let hit = match (revoked, dst) {
                (None, _) => true,
                (Some(nets), Some(d)) => nets.iter().any(|n| n.contains(&IpNet::host(d))),
                (Some(_), None) => false,
            };
            if hit && delete(&fd, family, &tuple)? {
                killed += 1;
            }
        }
    }
    Ok(killed)
}

/// Every entry of `family`: its raw `CTA_TUPLE_ORIG` attribute and original destination.
fn dump(fd: &OwnedFd, family: u8) -> Result<Vec<(Vec<u8>, Option<IpAddr>)>> {
    let mut req = Vec::new();
    netlink::message(&mut req, ctnetlink(IPCTNL_MSG_CT_GET), NLM_F_REQUEST | NLM_F_DUMP, 1, family, 0, |_| {});
    netlink::send(fd, &req, "conntrack")?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|e| sys("recv", e))?;
        let mut off = 0;
        while off + 16 <= n {
            let (len, ty, _) = header_at(&buf, off);
            if len < 16 || off + len > n {
                return Err(Error::Setup("conntrack: malformed reply".into()));
            }
            match ty {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    let code = error_code(&buf, off);
                    if code != 0 {
                        return Err(sys("dump", Errno::from_raw(-code)));
                    }
                }
                t if t == ctnetlink(IPCTNL_MSG_CT_NEW) => {
                    // nlmsghdr (16) + nfgenmsg (4), then attributes.
                    for (aty, start, end) in attrs(&buf, off + 20, off + len) {
                        if aty == CTA_TUPLE_ORIG {
                            let raw = buf[start - 4..end].to_vec();
                            out.push((raw, orig_dst(&buf, start, end)));
                        }
                    }
                }
                _ => {}
            }
            off += (len + 3) & !3;
        }
    }
}

/// The destination address inside a `CTA_TUPLE_ORIG` payload.
fn orig_dst(buf: &[u8], start: usize, end: usize) -> Option<IpAddr> {
    let (_, ip_start, ip_end) = attrs(buf, start, end).into_iter().find(|(t, _, _)| *t == CTA_TUPLE_IP)?;
    attrs(buf, ip_start, ip_end).into_iter().find_map(|(t, s, e)| match (t, e - s) {
        (CTA_IP_V4_DST, 4) => Some(IpAddr::from([buf[s], buf[s + 1], buf[s + 2], buf[s + 3]])),
        (CTA_IP_V6_DST, 16) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&buf[s..e]);
            Some(IpAddr::from(a))
        }
        _ => None,
    })
}

/// Delete the entry with this original tuple; false when it was already gone.
fn delete(fd: &OwnedFd, family: u8, tuple: &[u8]) -> Result<bool> {
    let mut req = Vec::new();
    netlink::message(&mut req, ctnetlink(IPCTNL_MSG_CT_DELETE), NLM_F_REQUEST | NLM_F_ACK, 2, family, 0, |b| {
        b.extend_from_slice(tuple);
        netlink::pad(b);
    });
    netlink::send(fd, &req, "conntrack")?;
    let mut buf = vec![0u8; 8192];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|e| sys("recv", e))?;
    if n >= 20 && u16_at(&buf, 4) == NLMSG_ERROR {
        return match error_code(&buf, 0) {
            0 => Ok(true),
            c if Errno::from_raw(-c) == Errno::ENOENT => Ok(false),
            c => Err(sys("delete", Errno::from_raw(-c))),
        };
    }
    Err(Error::Setup("conntrack delete: no acknowledgement".into()))
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
        tuple.extend_from_slice(&((4 + ip.len()) as u16).to_ne_bytes());
        tuple.extend_from_slice(&(CTA_TUPLE_IP | 0x8000).to_ne_bytes());
        tuple.extend_from_slice(&ip);
        assert_eq!(orig_dst(&tuple, 0, tuple.len()), Some("198.51.100.10".parse().unwrap_or_else(|_| unreachable!())));
        assert_eq!(attrs(&tuple, 0, 3), vec![]);
    }
}
