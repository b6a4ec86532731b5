//! The shield's own resolver (the `resolver` DNS mode): it lives in the container's helper
//! process, listens where the container's resolv.conf points (127.0.0.1, or 169.254.1.3
//! under krun), and answers only what the policy allows.
//!
//! * An allowed name's A or AAAA question goes to the host's nameserver, over a socket the
//!   helper opened in the host's namespace; every address of the answer (down its CNAME
//!   chain) that the rebind guard lets through is added to the learned sets over netlink,
//!   with the answer's TTL clamped, and only once the kernel has acknowledged that is the
//!   answer sent. The first packet after an answer never races the set.
//! * An allowed name's other question types are answered locally with no data: nothing but
//!   A and AAAA questions ever leaves, so TXT, NULL or ANY tunnels have no channel.
//! * Any other name is answered locally as nonexistent and reported.
//!
//! Single-threaded and non-blocking: the helper's poll loop calls [`Resolver::work`].

pub(crate) mod control;
mod learned;
mod tcp;
mod upstream;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use terok_shield_policy::rebind::is_guarded;
use terok_shield_policy::{DomainRules, DomainVerdict, IpNet, NameScope};
use terok_shield_ruleset::scoped::canonical;
use terok_shield_ruleset::Scoped;
use terok_shield_ruleset::SetId;

use super::message::{self, Incoming, Question};
use super::{DnsError, TtlClamp};
use crate::bundle::layout::{DNS_TTL, OVERRIDE_RESOLVED};
use crate::bundle::Bundle;
use crate::error::Result;
use crate::kernel::{conntrack, nftnl};
use learned::{secs, Learned};
pub(crate) use upstream::Upstreams;

/// How long one upstream try waits before the next server (or the same one again).
const TRY: Duration = Duration::from_millis(1500);
/// Tries per question before it is answered SERVFAIL.
const TRIES: u8 = 3;
/// Questions waiting for the upstream at once; more are answered SERVFAIL.
const MAX_PENDING: usize = 1024;

/// Something the reader reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// A name on no list (or denied) was asked for and answered as nonexistent.
    Refused { name: String, qtype: String, denied: bool },
    /// An answer named an address in a guarded range; it was left out.
    Rebind { name: String, addr: IpAddr },
    /// An answer could not be put into force; the client got SERVFAIL.
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Udp(SocketAddr),
    Tcp(u64),
}

struct Pending {
    client: Client,
    question: Question,
    sent: Instant,
    tries: u8,
    query: Vec<u8>,
}

/// Addresses pinned to ports at most (see [`Resolver::pin`]).
const MAX_PINNED: usize = 65_536;

pub(crate) struct Resolver {
    udp: UdpSocket,
    tcp: tcp::TcpServer,
    upstream: Upstreams,
    pending: HashMap<u16, Pending>,
    rules: DomainRules,
    /// The operator's explicit allows: what a DNS answer may name inside a guarded range.
    exempt: Vec<IpNet>,
    ttl: TtlClamp,
    bundle: Bundle,
    sets: nftnl::Loader,
    learned: Learned,
    /// The port-scoped elements put in for each learned address, and until when (at most
    /// [`MAX_PINNED`] addresses; expired ones go first, then answers are refused).
    pinned: HashMap<IpAddr, Vec<(Scoped, Instant)>>,
    ids: crate::dns::ids::Ids,
    /// One datagram at a time (allocated once: the helper's memory stays flat).
    buf: Vec<u8>,
}

impl Resolver {
    /// Bind the resolver at `listen:53` in the current network namespace (the container's),
    /// with `upstream` opened before entering it.
    pub fn bind(listen: IpAddr, upstream: Upstreams, bundle: Bundle) -> Result<Resolver> {
        let at = SocketAddr::new(listen, 53);
        let bind_err = |e: std::io::Error| DnsError::ResolverBind { addr: at, reason: e.to_string() };
        let udp = UdpSocket::bind(at).map_err(bind_err)?;
        udp.set_nonblocking(true).map_err(bind_err)?;
        let tcp = tcp::TcpServer::bind(at).map_err(bind_err)?;
        let sets = nftnl::Loader::open()?;
        let mut r = Resolver {
            udp,
            tcp,
            upstream,
            pending: HashMap::new(),
            rules: DomainRules::default(),
            exempt: Vec::new(),
            ttl: TtlClamp::default(),
            bundle,
            sets,
            learned: Learned::default(),
            pinned: HashMap::new(),
            ids: crate::dns::ids::Ids::new(),
            buf: vec![0u8; message::MAX_MESSAGE],
        };
        r.reload()?;
        Ok(r)
    }

    /// Read the policy again (after a live allow or deny).
    pub fn reload(&mut self) -> Result<()> {
        let effective = crate::bundle::policy::read_tiers(&self.bundle.dir)?.effective();
        self.exempt = crate::bundle::dns::explicit_allows(&effective, &self.bundle.read_addresses(OVERRIDE_RESOLVED)?);
        self.rules = DomainRules::new(&effective);
        self.ttl = self.bundle.read_value(DNS_TTL)?.as_deref().and_then(TtlClamp::parse).unwrap_or_default();
        Ok(())
    }

    /// Every descriptor the poll loop should wait on.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        std::iter::once(self.udp.as_fd()).chain(self.tcp.fds()).chain(self.upstream.fds()).collect()
    }

    /// When the next upstream try is due.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.sent + TRY).min()
    }

    /// The name an address was last learned for.
    pub fn domain_of(&self, addr: &IpAddr) -> Option<&str> {
        self.learned.domain_of(addr)
    }

    /// Take out of the learned sets every address learned for a name `rule` covers, and end
    /// the flows to them (after `deny C rule`; the policy has been reloaded). Returns them.
    pub fn forget(&mut self, rule: &str) -> Result<Vec<IpAddr>> {
        // Out of the sets and cut first; the bookkeeping goes only once that worked, so a
        // failure midway leaves every address findable by the next deny.
        let addrs = self.learned.covered(rule);
        for a in &addrs {
            self.sets.remove(SetId::learned(a.is_ipv6()), *a)?;
            for (e, _) in self.pinned.get(a).cloned().unwrap_or_default() {
                self.sets.remove_scoped(SetId::learned_scoped(a.is_ipv6()), &e)?;
            }
            self.pinned.remove(a);
        }
        if !addrs.is_empty() {
            let nets: Vec<IpNet> = addrs.iter().map(|a| IpNet::host(*a)).collect();
            conntrack::kill_flows(Some(&nets))?;
        }
        self.learned.forget_covered(rule, &addrs);
        Ok(addrs)
    }

    /// Serve what is ready: questions from clients, answers from upstream, tries that timed
    /// out. Returns what to report.
    pub fn work(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        let mut buf = std::mem::take(&mut self.buf);
        for _ in 0..256 {
            let Ok((n, from)) = self.udp.recv_from(&mut buf) else { break };
            self.incoming(&buf[..n], Client::Udp(from), now, &mut events);
        }
        for (token, bytes) in self.tcp.work(now) {
            self.incoming(&bytes, Client::Tcp(token), now, &mut events);
        }
        for reply in self.upstream.drain(&mut buf) {
            self.upstream_reply(&reply, now, &mut events);
        }
        self.buf = buf;
        self.retry(now);
        events
    }

    fn respond(&mut self, client: Client, reply: &[u8]) {
        match client {
            Client::Udp(to) => {
                let _ = self.udp.send_to(reply, to);
            }
            Client::Tcp(token) => self.tcp.reply(token, reply),
        }
    }

    fn incoming(&mut self, bytes: &[u8], client: Client, now: Instant, events: &mut Vec<Event>) {
        let q = match message::read_query(bytes) {
            Incoming::Question(q) => q,
            Incoming::Reply(r) => return self.respond(client, &r),
            Incoming::Drop => return,
        };
        let verdict = self.rules.decide(&q.name);
        if verdict != DomainVerdict::Allowed {
            events.push(Event::Refused {
                name: q.name.clone(),
                qtype: q.qtype.to_string(),
                denied: verdict == DomainVerdict::Denied,
            });
            return self.respond(client, &message::local_reply(&q, ResponseCode::NXDomain));
        }
        if !matches!(q.qtype, RecordType::A | RecordType::AAAA) {
            // An allowed name, a type the shield does not serve: no data, and nothing sent.
            return self.respond(client, &message::local_reply(&q, ResponseCode::NoError));
        }
        if self.pending.len() >= MAX_PENDING || self.upstream.servers() == 0 {
            return self.respond(client, &message::local_reply(&q, ResponseCode::ServFail));
        }
        let id = self.fresh_id();
        let Some(query) = message::upstream_query(id, &q.name, q.qtype) else {
            return self.respond(client, &message::local_reply(&q, ResponseCode::NXDomain));
        };
        let slot = self.next_random() as usize;
        self.upstream.send(0, slot, &query);
        self.pending.insert(id, Pending { client, question: q, sent: now, tries: 1, query });
    }

    /// Re-send what waited too long, to the next server; give up after [`TRIES`].
    fn retry(&mut self, now: Instant) {
        let due: Vec<u16> = self.pending.iter().filter(|(_, p)| now >= p.sent + TRY).map(|(id, _)| *id).collect();
        for id in due {
            let Some(mut p) = self.pending.remove(&id) else { continue };
            if p.tries >= TRIES {
                let reply = message::local_reply(&p.question, ResponseCode::ServFail);
                self.respond(p.client, &reply);
                continue;
            }
            let server = usize::from(p.tries) % self.upstream.servers().max(1);
            let slot = self.next_random() as usize;
            self.upstream.send(server, slot, &p.query);
            p.tries += 1;
            p.sent = now;
            self.pending.insert(id, p);
        }
    }

    fn upstream_reply(&mut self, bytes: &[u8], now: Instant, events: &mut Vec<Event>) {
        let Some(id) = bytes.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else { return };
        let Some(p) = self.pending.get(&id) else { return };
        // Anything that is not the answer to this very question (a stray or forged
        // datagram) is ignored, and the question keeps waiting.
        let Some(answer) = message::read_answer(bytes, id, &p.question.name, p.question.qtype) else { return };
        let Some(p) = self.pending.remove(&id) else { return };
        let q = &p.question;
        // The policy may have changed while the question waited.
        if self.rules.decide(&q.name) != DomainVerdict::Allowed {
            return self.respond(p.client, &message::local_reply(q, ResponseCode::NXDomain));
        }
        // A chain through a denied name is that name's answer: refused like the name.
        if let Some(denied) = answer.aliases.iter().find(|a| self.rules.decide(a) == DomainVerdict::Denied) {
            events.push(Event::Refused { name: denied.clone(), qtype: q.qtype.to_string(), denied: true });
            return self.respond(p.client, &message::local_reply(q, ResponseCode::NXDomain));
        }
        if answer.code != ResponseCode::NoError {
            let code =
                if answer.code == ResponseCode::NXDomain { ResponseCode::NXDomain } else { ResponseCode::ServFail };
            return self.respond(p.client, &message::local_reply(q, code));
        }
        let (kept, guarded): (Vec<_>, Vec<_>) =
            answer.addresses.iter().copied().partition(|a| !is_guarded(a.addr, &self.exempt));
        for a in &guarded {
            events.push(Event::Rebind { name: q.name.clone(), addr: a.addr });
        }
        if kept.is_empty() && !guarded.is_empty() {
            // Like dnsmasq's bogus-nxdomain: an answer that would open only guarded ranges.
            return self.respond(p.client, &message::local_reply(q, ResponseCode::NXDomain));
        }
        if let Err(e) = self.enforce(&q.name, &kept, now) {
            events.push(Event::Failed(format!("cannot allow the answer for {}: {e}", q.name)));
            return self.respond(p.client, &message::local_reply(q, ResponseCode::ServFail));
        }
        let limit = match p.client {
            Client::Udp(_) => message::udp_limit(q),
            Client::Tcp(_) => message::MAX_MESSAGE,
        };
        let reply = message::answer_reply(q, &answer.chain, &kept, self.ttl.max, limit);
        self.respond(p.client, &reply);
    }

    /// Put `addrs` in force in the learned sets (each for its clamped TTL, never shortening
    /// what an element has left) and wait for the kernel's acknowledgement.
    fn enforce(&mut self, name: &str, addrs: &[message::Address], now: Instant) -> Result<()> {
        if !addrs.is_empty() && !self.learned.has_room(name, now) {
            return Err(DnsError::LearnedFull.into());
        }
        let scope = self.rules.judge(name).1;
        for a in addrs {
            let timeout = secs(self.ttl.timeout(a.ttl));
            if let NameScope::Ports(ports) = &scope {
                self.pin(a.addr, ports, timeout, now)?;
                self.learned.record(name, &[a.addr], now + timeout);
                continue;
            }
            let set = SetId::learned(a.addr.is_ipv6());
            let left = self.sets.remaining(set, a.addr)?;
            if left.is_none_or(|l| l < timeout) {
                self.sets.add_timed(set, &[a.addr], timeout)?;
                // Kernels before 6.12 keep an existing element's expiry on a new add: take
                // it out and in again then (one transaction).
                if left.is_some() && self.sets.remaining(set, a.addr)?.is_some_and(|l| l + secs(1) < timeout) {
                    self.sets.rearm(set, a.addr, timeout)?;
                }
            }
            self.learned.record(name, &[a.addr], now + timeout);
        }
        Ok(())
    }

    /// Put `addr` in the port-scoped learned set on `ports`, merged with what it holds for
    /// the address already (elements of one address must not overlap), for at least
    /// `timeout`: one transaction replacing the address's elements.
    fn pin(
        &mut self,
        addr: IpAddr,
        ports: &[terok_shield_policy::Ports],
        timeout: Duration,
        now: Instant,
    ) -> Result<()> {
        if self.pinned.len() >= MAX_PINNED && !self.pinned.contains_key(&addr) {
            self.pinned.retain(|_, elements| elements.iter().any(|(_, until)| *until > now));
            if self.pinned.len() >= MAX_PINNED {
                return Err(DnsError::LearnedFull.into());
            }
        }
        let set = SetId::learned_scoped(addr.is_ipv6());
        let host = IpNet::host(addr);
        let held: Vec<(Scoped, Instant)> =
            self.pinned.remove(&addr).unwrap_or_default().into_iter().filter(|(_, until)| *until > now).collect();
        let until = held.iter().map(|(_, u)| *u).fold(now + timeout, Instant::max);
        let wanted = canonical(
            held.iter().map(|(e, _)| *e).chain(ports.iter().flat_map(|p| Scoped::of(host, p).collect::<Vec<_>>())),
        );
        let old: Vec<Scoped> = held.iter().map(|(e, _)| *e).collect();
        if wanted == old && held.iter().all(|(_, u)| *u >= now + timeout) {
            self.pinned.insert(addr, held);
            return Ok(());
        }
        let left = until.saturating_duration_since(now);
        if self.sets.replace_scoped(set, &old, &wanted, Some(left)).is_err() {
            // Something of the old elements is gone already (expired, or flushed by a
            // reset): take out what is there, then put the whole scope in.
            for e in &old {
                self.sets.remove_scoped(set, e)?;
            }
            self.sets.add_scoped(set, &wanted, Some(left))?;
        }
        self.pinned.insert(addr, wanted.into_iter().map(|e| (e, until)).collect());
        Ok(())
    }

    fn next_random(&mut self) -> u64 {
        self.ids.next_u64()
    }

    fn fresh_id(&mut self) -> u16 {
        let pending = &self.pending;
        self.ids.fresh(|id| pending.contains_key(&id))
    }
}
