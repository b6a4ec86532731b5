//! Resolving a name on the host (dns.md §6): `dig`/`drill` when present, else `getent`;
//! A and AAAA; 2 s per lookup; only lines that parse as addresses count.

use std::net::IpAddr;
use std::time::Duration;

use crate::report::{Report, Reporter};
use crate::{exec, tools};

const TIMEOUT: Duration = Duration::from_secs(2);

/// Resolve many names at once over one UDP socket to the host's first nameserver, at most
/// `window` names (two questions each, A and AAAA) in flight, 2 s each. Every question has a
/// random id of its own, and only a reply to that very question counts (id, name, type and
/// the owner names down the CNAME chain: [`super::message::read_answer`]). A name whose
/// questions were not both answered usably is `None` (the caller asks the tools).
pub fn resolve_many(domains: &[&str], window: usize) -> Vec<Option<Vec<IpAddr>>> {
    match super::resolv_conf::host_first() {
        Some(server) => ask_many((server, 53).into(), domains, window),
        None => vec![None; domains.len()],
    }
}

/// [`resolve_many`] against `server`.
fn ask_many(server: std::net::SocketAddr, domains: &[&str], window: usize) -> Vec<Option<Vec<IpAddr>>> {
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::RecordType;
    use std::collections::HashMap;
    use std::time::Instant;

    /// A name's two answers, as they come: `None` not yet, `Some(None)` unusable.
    struct Slot {
        sent: Instant,
        a: Option<Option<Vec<IpAddr>>>,
        aaaa: Option<Option<Vec<IpAddr>>>,
    }

    let mut out: Vec<Option<Vec<IpAddr>>> = vec![None; domains.len()];
    let bind: std::net::SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    // Port 0: the kernel picks a random source port.
    let Ok(sock) = std::net::UdpSocket::bind(bind) else { return out };
    if sock.connect(server).is_err() {
        return out;
    }
    let mut ids = super::ids::Ids::new();
    let mut slots: HashMap<usize, Slot> = HashMap::new();
    let mut asked: HashMap<u16, (usize, RecordType)> = HashMap::new();
    let mut next = 0;
    let mut buf = vec![0u8; 4096];
    while next < domains.len() || !slots.is_empty() {
        while slots.len() < window && next < domains.len() {
            let i = next;
            next += 1;
            let mut sent_both = true;
            for qtype in [RecordType::A, RecordType::AAAA] {
                let id = ids.fresh(|id| asked.contains_key(&id));
                let query = super::message::upstream_query(id, &domains[i].to_ascii_lowercase(), qtype);
                sent_both &= query.is_some_and(|q| sock.send(&q).is_ok());
                asked.insert(id, (i, qtype));
            }
            if sent_both {
                slots.insert(i, Slot { sent: Instant::now(), a: None, aaaa: None });
            }
        }
        let now = Instant::now();
        slots.retain(|_, s| now.duration_since(s.sent) < TIMEOUT);
        asked.retain(|_, (i, _)| slots.contains_key(i));
        let Some(wait) = slots.values().map(|s| TIMEOUT.saturating_sub(now.duration_since(s.sent))).min() else {
            continue;
        };
        let _ = sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let reply = &buf[..n];
        let Some(id) = reply.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else { continue };
        let Some(&(i, qtype)) = asked.get(&id) else { continue };
        let name = domains[i].to_ascii_lowercase();
        let Some(answer) = super::message::read_answer(reply, id, &name, qtype) else { continue };
        asked.remove(&id);
        let usable = match answer.code {
            _ if answer.truncated => None,
            ResponseCode::NoError => Some(answer.addresses.iter().map(|a| a.addr).collect()),
            ResponseCode::NXDomain => Some(Vec::new()),
            _ => None,
        };
        let Some(slot) = slots.get_mut(&i) else { continue };
        if qtype == RecordType::A {
            slot.a = Some(usable);
        } else {
            slot.aaaa = Some(usable);
        }
        if let (Some(a), Some(b)) = (&slot.a, &slot.aaaa) {
            if let (Some(a), Some(b)) = (a, b) {
                out[i] = Some(a.iter().chain(b).copied().collect());
            }
            slots.remove(&i);
        }
    }
    out
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

    /// A nameserver on loopback that answers every question three times: first with a
    /// forged id, then with the right id but another question, then a stray owner record
    /// plus the real answer. Only the real answer may count.
    #[test]
    fn spoofed_answers_do_not_count() {
        use hickory_proto::op::{Message, MessageType, OpCode, Query};
        use hickory_proto::rr::{Name, RData, Record, RecordType};
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = server.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let ip = |s: &str| -> IpAddr { s.parse().unwrap_or_else(|_| unreachable!()) };
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = server.recv_from(&mut buf) {
                let Ok(q) = Message::from_vec(&buf[..n]) else { continue };
                let query = q.queries[0].clone();
                let reply = |id: u16, question: Query, records: Vec<Record>| {
                    let mut m = Message::response(id, OpCode::Query);
                    m.metadata.message_type = MessageType::Response;
                    m.add_query(question);
                    for r in records {
                        m.add_answer(r);
                    }
                    m.to_vec().unwrap_or_default()
                };
                let a = |owner: &Name, v4: [u8; 4]| {
                    Record::from_rdata(owner.clone(), 60, RData::A(std::net::Ipv4Addr::from(v4).into()))
                };
                if query.query_type() != RecordType::A {
                    let _ = server.send_to(&reply(q.metadata.id, query, vec![]), from);
                    continue;
                }
                let name = query.name().clone();
                let other = Query::query(Name::from_ascii("evil.example.").unwrap_or_default(), RecordType::A);
                let stray = Name::from_ascii("stray.example.").unwrap_or_default();
                let _ = server.send_to(
                    &reply(q.metadata.id.wrapping_add(1), query.clone(), vec![a(&name, [198, 51, 100, 66])]),
                    from,
                );
                let _ = server.send_to(&reply(q.metadata.id, other, vec![a(&name, [198, 51, 100, 67])]), from);
                let real = vec![a(&stray, [198, 51, 100, 68]), a(&name, [198, 51, 100, 10])];
                let _ = server.send_to(&reply(q.metadata.id, query, real), from);
            }
        });
        let got = ask_many(addr, &["a.example", "b.example"], 16);
        assert_eq!(got, vec![Some(vec![ip("198.51.100.10")]), Some(vec![ip("198.51.100.10")])]);
    }

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
