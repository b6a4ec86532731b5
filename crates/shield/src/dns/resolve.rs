//! Resolving a name on the host (dns.md §6): `dig`/`drill` when present, else `getent`;
//! A and AAAA; 2 s per lookup; only lines that parse as addresses count.

use std::net::IpAddr;
use std::time::Duration;

use crate::report::{Report, Reporter};
use crate::{exec, tools};

const TIMEOUT: Duration = Duration::from_secs(2);

/// Resolve many names at once over one UDP socket to the host's first nameserver, at most
/// `window` names (two questions each, A and AAAA) in flight, 2 s each. A name whose
/// questions were not both answered usably is `None` (the caller asks the tools).
pub fn resolve_many(domains: &[&str], window: usize) -> Vec<Option<Vec<IpAddr>>> {
    use super::wire::{self, Answer, TYPE_A, TYPE_AAAA};
    let mut out: Vec<Option<Vec<IpAddr>>> = vec![None; domains.len()];
    let Some(server) = super::resolv_conf::host_first() else { return out };
    let bind: std::net::SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let Ok(sock) = std::net::UdpSocket::bind(bind) else { return out };
    if sock.connect((server, 53)).is_err() {
        return out;
    }
    // Query ids: a per-run random base (the socket is connected, so only the server's
    // replies arrive; the id and the question type pick the slot).
    let base = u16::try_from(std::process::id() as u64 ^ nanos() & 0xffff).unwrap_or(0);
    struct Slot {
        sent: std::time::Instant,
        a: Option<Answer>,
        aaaa: Option<Answer>,
    }
    let mut inflight: std::collections::HashMap<usize, Slot> = std::collections::HashMap::new();
    let mut next = 0;
    let mut buf = [0u8; 4096];
    while next < domains.len() || !inflight.is_empty() {
        while inflight.len() < window && next < domains.len() {
            let i = next;
            next += 1;
            let id = base.wrapping_add(u16::try_from(i % 32768).unwrap_or(0).wrapping_mul(2));
            let qa = wire::query(id, domains[i], TYPE_A);
            let qb = wire::query(id.wrapping_add(1), domains[i], TYPE_AAAA);
            if let (Some(qa), Some(qb)) = (qa, qb) {
                if sock.send(&qa).is_ok() && sock.send(&qb).is_ok() {
                    inflight.insert(i, Slot { sent: std::time::Instant::now(), a: None, aaaa: None });
                }
            }
        }
        let now = std::time::Instant::now();
        inflight.retain(|_, s| now.duration_since(s.sent) < TIMEOUT);
        let Some(wait) = inflight.values().map(|s| TIMEOUT.saturating_sub(now.duration_since(s.sent))).min() else {
            continue;
        };
        let _ = sock.set_read_timeout(Some(wait.max(std::time::Duration::from_millis(1))));
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let reply = &buf[..n];
        let Some(id) = reply.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else { continue };
        let offset = id.wrapping_sub(base);
        let (i, is_aaaa) = (usize::from(offset / 2), offset % 2 == 1);
        // Slot i or i + 32768 (ids wrap); only an in-flight one counts.
        let Some(key) = [i, i + 32768].into_iter().find(|k| inflight.contains_key(k)) else { continue };
        let qtype = if is_aaaa { TYPE_AAAA } else { TYPE_A };
        let Some((_, answer)) = wire::parse(reply, qtype) else { continue };
        if let Some(slot) = inflight.get_mut(&key) {
            if is_aaaa {
                slot.aaaa = Some(answer);
            } else {
                slot.a = Some(answer);
            }
            if let (Some(a), Some(b)) = (&slot.a, &slot.aaaa) {
                if let (Answer::Addresses(a), Answer::Addresses(b)) = (a, b) {
                    out[key] = Some(a.iter().chain(b).copied().collect());
                }
                inflight.remove(&key);
            }
        }
    }
    out
}

fn nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| u64::from(d.subsec_nanos())).unwrap_or(0)
}

/// The addresses of `domain`, de-duplicated in answer order; empty when none resolved. Asks
/// the host's nameserver directly, then the tools.
pub fn resolve(domain: &str, report: Reporter) -> Vec<IpAddr> {
    match resolve_many(&[domain], 1).pop().flatten() {
        Some(mut found) if !found.is_empty() => {
            let mut seen = std::collections::HashSet::new();
            found.retain(|a| seen.insert(*a));
            found
        }
        _ => with_tools(domain, report),
    }
}

/// Many names: all through [`resolve_many`], 16 in flight; what that leaves unanswered
/// through the tools.
pub fn resolve_all(domains: &[&str]) -> Vec<Option<Vec<IpAddr>>> {
    resolve_many(domains, 16)
}

/// One name with the host's tools: `dig`/`drill`, else (or when they find nothing) `getent`.
pub fn with_tools(domain: &str, report: Reporter) -> Vec<IpAddr> {
    let mut out = lookup_tool(domain);
    if out.is_empty() {
        out = getent(domain);
        let tool = ["dig", "drill"].into_iter().find(|t| tools::find(t).is_some());
        if let (Some(tool), false) = (tool, out.is_empty()) {
            report(Report::Warning(format!(
                "{tool} found nothing for {} but getent did: {tool} may not work on this host",
                terok_shield_policy::sanitize::quoted(domain)
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|a| seen.insert(*a));
    out
}

fn lookup_tool(domain: &str) -> Vec<IpAddr> {
    if let Some(dig) = tools::find("dig") {
        let args = ["+short", "+time=2", "+tries=1", domain, "A", domain, "AAAA"];
        return exec::run(&dig, &args, TIMEOUT + Duration::from_secs(1))
            .map(|o| addresses(&o.stdout))
            .unwrap_or_default();
    }
    if let Some(drill) = tools::find("drill") {
        let mut v = Vec::new();
        for ty in ["A", "AAAA"] {
            if let Ok(o) = exec::run(&drill, &["-Q", domain, ty], TIMEOUT) {
                v.extend(addresses(&o.stdout));
            }
        }
        return v;
    }
    Vec::new()
}

fn getent(domain: &str) -> Vec<IpAddr> {
    let Some(getent) = tools::find("getent") else { return Vec::new() };
    let mut v = Vec::new();
    for db in ["ahostsv4", "ahostsv6"] {
        if let Ok(o) = exec::run(&getent, &[db, domain], TIMEOUT) {
            v.extend(getent_addresses(&o.stdout));
        }
    }
    v
}

/// First-column addresses of `getent ahosts*` lines whose socket type is `STREAM`.
fn getent_addresses(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("STREAM"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Lines that are exactly an address (dig prints CNAME targets too).
fn addresses(text: &str) -> Vec<IpAddr> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getent_keeps_stream_lines() {
        let text = "198.51.100.10   STREAM allowed.shield.test\n198.51.100.10   DGRAM  \n198.51.100.10   RAW    \nbogus STREAM x\n";
        assert_eq!(getent_addresses(text), ["198.51.100.10".parse::<IpAddr>().unwrap_or_else(|_| unreachable!())]);
    }

    #[test]
    fn only_addresses_count() {
        let got = addresses("cdn.example.net.\n198.51.100.10\n2001:db8::1\n;; timed out\n1.2.3\n");
        assert_eq!(
            got,
            [
                "198.51.100.10".parse::<IpAddr>().unwrap_or_else(|_| unreachable!()),
                "2001:db8::1".parse().unwrap_or_else(|_| unreachable!())
            ]
        );
    }
}
