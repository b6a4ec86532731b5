//! A tier's port-scoped entries as a port map: disjoint address ranges, each labelled with
//! a scope id, and the ports of each scope id.
//!
//! The kernel inserts an element into a concatenated interval set (pipapo) about thirty
//! times slower than into a single-field interval set (rbtree), so a large port-scoped
//! allowlist goes to an interval *map* from address ranges to a scope id instead, plus one
//! small set `scope id . protocol . ports`. The output chain sets the packet mark from the
//! map and matches the mark, protocol and port against the scope set.
//!
//! Networks are nested or disjoint; the map's ranges must not overlap, so a network with
//! networks inside it is cut around them, and each piece is labelled with the union of the
//! ports of every entry containing it (the ports open there). A scope id is
//! [`MARK_BASE`] | tier << 16 | label number; the number is the label's rank among the
//! tier's labels (from 1), so ids never collide within a tier and a mark one tier's map
//! left never matches another tier's scope set.

use std::net::IpAddr;

use terok_shield_policy::ports::merge;
use terok_shield_policy::{IpNet, PortRange, Proto, Tier};

use crate::scoped::Scoped;

/// The byte every scope id carries on top; marks with this top byte are cleared before the
/// first port map is consulted, so a mark the container set never reads as a scope.
pub const MARK_BASE: u32 = 0x5e00_0000;
pub const MARK_MASK: u32 = 0xff00_0000;
/// At most this many distinct labels per tier (the low 16 bits of an id, 0 unused).
pub const MAX_LABELS: usize = 0xffff;

/// One element of a port map: the addresses `lo..=hi` (one family) have scope `mark`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MapRange {
    pub lo: IpAddr,
    pub hi: IpAddr,
    pub mark: u32,
}

/// One element of a scope set: packets with `mark` are open on `proto` `ports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeElement {
    pub mark: u32,
    pub proto: Proto,
    pub ports: PortRange,
}

/// A tier's port map: its network ranges and its single addresses per family, and its
/// scope set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortMap {
    pub v4: Vec<MapRange>,
    pub v6: Vec<MapRange>,
    /// Single addresses (`lo == hi`), each with the scope of its own ports and of every
    /// network containing it; an address a network already opens the same way is left out.
    pub hosts_v4: Vec<MapRange>,
    pub hosts_v6: Vec<MapRange>,
    pub scopes: Vec<ScopeElement>,
}

impl PortMap {
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty() && self.hosts_v4.is_empty() && self.hosts_v6.is_empty()
    }

    /// The network ranges of one family.
    pub fn ranges(&self, v6: bool) -> &[MapRange] {
        if v6 {
            &self.v6
        } else {
            &self.v4
        }
    }

    /// The single addresses of one family.
    pub fn hosts(&self, v6: bool) -> &[MapRange] {
        if v6 {
            &self.hosts_v6
        } else {
            &self.hosts_v4
        }
    }

    /// True when the map admits a packet of protocol number `proto` to `addr`:`port` (as
    /// the table judges it: the address map's mark, else the network map's).
    pub fn admits(&self, addr: IpAddr, proto: u8, port: u16) -> bool {
        let find = |ranges: &[MapRange]| {
            let at = ranges.partition_point(|r| r.hi < addr);
            ranges.get(at).filter(|r| r.lo <= addr).map(|r| r.mark)
        };
        let v6 = addr.is_ipv6();
        let Some(mark) = find(self.hosts(v6)).or_else(|| find(self.ranges(v6))) else { return false };
        self.scopes.iter().any(|s| s.mark == mark && s.proto.number() == proto && s.ports.contains(port))
    }
}

/// The ports one label opens: per protocol, merged ranges, sorted.
type Label = Vec<(Proto, PortRange)>;

/// The canonical label of `parts` (any order, overlaps allowed).
fn canonical_label(mut parts: Vec<(Proto, PortRange)>) -> Label {
    parts.sort_unstable();
    let mut out: Label = Vec::with_capacity(parts.len());
    let mut run: Vec<PortRange> = Vec::new();
    let mut proto = None;
    for (p, r) in parts {
        if proto != Some(p) {
            if let Some(q) = proto {
                out.extend(merge(std::mem::take(&mut run)).into_iter().map(|r| (q, r)));
            }
            proto = Some(p);
        }
        run.push(r);
    }
    if let Some(q) = proto {
        out.extend(merge(run).into_iter().map(|r| (q, r)));
    }
    out
}

/// Labels by number: a large allowlist has few distinct labels, so each is stored once and
/// unions are computed once per pair.
#[derive(Default)]
struct Labels {
    all: Vec<Label>,
    index: std::collections::HashMap<Label, u32>,
    unions: std::collections::HashMap<(u32, u32), u32>,
}

impl Labels {
    fn intern(&mut self, label: Label) -> u32 {
        if let Some(n) = self.index.get(&label) {
            return *n;
        }
        let n = self.all.len() as u32;
        self.all.push(label.clone());
        self.index.insert(label, n);
        n
    }

    fn union(&mut self, a: u32, b: u32) -> u32 {
        if a == b {
            return a;
        }
        if let Some(n) = self.unions.get(&(a, b)) {
            return *n;
        }
        let parts: Vec<(Proto, PortRange)> =
            self.all[a as usize].iter().chain(&self.all[b as usize]).copied().collect();
        let n = self.intern(canonical_label(parts));
        self.unions.insert((a, b), n);
        n
    }
}

/// The tier's code in a scope id.
fn tier_code(tier: Tier) -> u32 {
    match tier {
        Tier::Override => 0x10,
        Tier::SecurityDeny => 0x20,
        Tier::ProviderAllow => 0x30,
        Tier::ProjectAllow | Tier::Live => 0x40,
    }
}

/// A network's first and last address as numbers (IPv4 in the low 32 bits).
fn bounds(net: &IpNet) -> (u128, u128) {
    let number = |a: IpAddr| match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    (number(net.addr()), number(net.last()))
}

fn address(v6: bool, n: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(n.into())
    } else {
        IpAddr::V4(u32::try_from(n).unwrap_or(u32::MAX).into())
    }
}

/// Disjoint ranges of one family, each with the label of the innermost entries over it,
/// adjacent ranges of one label joined. `entries` are networks with their labels.
fn partition(mut entries: Vec<(IpNet, u32)>, labels: &mut Labels) -> Vec<(u128, u128, u32)> {
    // Sorted by (start, prefix): a network comes after every network containing it.
    entries.sort_unstable_by_key(|(n, _)| (n.addr(), n.prefix()));
    let mut out: Vec<(u128, u128, u32)> = Vec::with_capacity(entries.len());
    let emit = |out: &mut Vec<(u128, u128, u32)>, lo: u128, hi: u128, label: u32| {
        if let Some(last) = out.last_mut() {
            if last.2 == label && last.1.checked_add(1) == Some(lo) {
                last.1 = hi;
                return;
            }
        }
        out.push((lo, hi, label));
    };
    // Open networks, outermost first: the next address not yet emitted (None: all of it
    // is), the last address, the label.
    let mut open: Vec<(Option<u128>, u128, u32)> = Vec::new();
    let close = |open: &mut Vec<(Option<u128>, u128, u32)>, out: &mut Vec<(u128, u128, u32)>| {
        if let Some((cursor, hi, label)) = open.pop() {
            if let Some(lo) = cursor {
                emit(out, lo, hi, label);
            }
            if let Some(parent) = open.last_mut() {
                parent.0 = hi.checked_add(1).filter(|n| *n <= parent.1);
            }
        }
    };
    for (net, own) in entries {
        let (lo, hi) = bounds(&net);
        while open.last().is_some_and(|o| o.1 < lo) {
            close(&mut open, &mut out);
        }
        let label = match open.last_mut() {
            Some(parent) => {
                if let Some(c) = parent.0.filter(|c| *c < lo) {
                    emit(&mut out, c, lo - 1, parent.2);
                }
                parent.0 = Some(lo);
                labels.union(parent.2, own)
            }
            None => own,
        };
        open.push((Some(lo), hi, label));
    }
    while !open.is_empty() {
        close(&mut open, &mut out);
    }
    out
}

/// The port map of `tier` holding `elements` (its canonical or raw port-scoped elements,
/// both families); `None` when they need more than [`MAX_LABELS`] labels.
pub fn build(tier: Tier, elements: &[Scoped]) -> Option<PortMap> {
    let mut labels = Labels::default();
    // Per family, the entries (network or address) with their labels.
    let mut sorted: Vec<(IpNet, Proto, PortRange)> = elements.iter().map(|e| (e.net, e.proto, e.ports)).collect();
    sorted.sort_unstable();
    let mut nets: [Vec<(IpNet, u32)>; 2] = Default::default();
    let mut singles: [Vec<(IpNet, u32)>; 2] = Default::default();
    for run in sorted.chunk_by(|a, b| a.0 == b.0) {
        let net = run[0].0;
        let label = labels.intern(canonical_label(run.iter().map(|(_, p, r)| (*p, *r)).collect()));
        let family = usize::from(!net.is_ipv4());
        if net.is_host() {
            singles[family].push((net, label));
        } else {
            nets[family].push((net, label));
        }
    }
    // Per family: the networks cut into disjoint pieces, then each address with the label
    // of the piece it lies in joined to its own (left out when that adds nothing).
    let mut pieces: [Vec<(u128, u128, u32)>; 2] = Default::default();
    let mut hosts: [Vec<(u128, u32)>; 2] = Default::default();
    for i in 0..2 {
        let cut = partition(std::mem::take(&mut nets[i]), &mut labels);
        for (net, own) in std::mem::take(&mut singles[i]) {
            let (a, _) = bounds(&net);
            let at = cut.partition_point(|(_, hi, _)| *hi < a);
            let label = match cut.get(at).filter(|(lo, _, _)| *lo <= a) {
                Some((_, _, l)) if labels.union(*l, own) == *l => continue,
                Some((_, _, l)) => labels.union(*l, own),
                None => own,
            };
            hosts[i].push((a, label));
        }
        pieces[i] = cut;
    }
    // Scope ids: the used labels ranked by their ports (deterministic for one policy).
    let mut used: Vec<u32> = pieces.iter().flatten().map(|p| p.2).chain(hosts.iter().flatten().map(|h| h.1)).collect();
    used.sort_unstable();
    used.dedup();
    if used.len() > MAX_LABELS {
        return None;
    }
    used.sort_by(|a, b| labels.all[*a as usize].cmp(&labels.all[*b as usize]));
    let code = MARK_BASE | tier_code(tier) << 16;
    let mut mark_of = vec![0u32; labels.all.len()];
    let mut map = PortMap::default();
    for (rank, l) in used.iter().enumerate() {
        let mark = code | (rank as u32 + 1);
        mark_of[*l as usize] = mark;
        let ports = &labels.all[*l as usize];
        map.scopes.extend(ports.iter().map(|(proto, ports)| ScopeElement { mark, proto: *proto, ports: *ports }));
    }
    for v6 in [false, true] {
        let i = usize::from(v6);
        let ranges = pieces[i]
            .iter()
            .map(|(lo, hi, l)| MapRange { lo: address(v6, *lo), hi: address(v6, *hi), mark: mark_of[*l as usize] })
            .collect();
        let singles = hosts[i]
            .iter()
            .map(|(a, l)| MapRange { lo: address(v6, *a), hi: address(v6, *a), mark: mark_of[*l as usize] })
            .collect();
        if v6 {
            (map.v6, map.hosts_v6) = (ranges, singles);
        } else {
            (map.v4, map.hosts_v4) = (ranges, singles);
        }
    }
    Some(map)
}

impl std::fmt::Display for MapRange {
    /// nft's element syntax: `198.51.100.7 : 0x5e400001`, `10.0.0.0-10.0.255.255 : …`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.lo == self.hi {
            write!(f, "{} : {:#010x}", self.lo, self.mark)
        } else {
            write!(f, "{}-{} : {:#010x}", self.lo, self.hi, self.mark)
        }
    }
}

impl std::fmt::Display for ScopeElement {
    /// nft's element syntax: `0x5e400001 . tcp . 443`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#010x} . {} . {}", self.mark, self.proto.name(), self.ports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use terok_shield_policy::Ports;

    fn scoped(net: &str, ports: &str) -> Vec<Scoped> {
        let net: IpNet = net.parse().unwrap_or_else(|e| panic!("{net}: {e:?}"));
        let ports = Ports::parse(ports).unwrap_or_else(|e| panic!("{ports}: {e:?}"));
        Scoped::of(net, &ports).collect()
    }

    fn texts(m: &PortMap) -> (Vec<String>, Vec<String>) {
        let ranges = m.v4.iter().chain(&m.hosts_v4).chain(&m.v6).chain(&m.hosts_v6).map(ToString::to_string).collect();
        (ranges, m.scopes.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn nested_networks_are_cut_and_labelled_with_the_union() {
        let mut e = scoped("10.0.0.0/8", "443");
        e.extend(scoped("10.1.0.0/16", "80"));
        e.extend(scoped("10.1.2.3", "53/udp"));
        e.extend(scoped("10.1.2.4", "80"));
        e.extend(scoped("10.200.0.0/16", "443"));
        e.extend(scoped("198.51.100.7", "443"));
        e.extend(scoped("2001:db8::/32", "443"));
        let m = build(Tier::ProjectAllow, &e).unwrap_or_else(|| unreachable!());
        let (ranges, scopes) = texts(&m);
        assert_eq!(
            ranges,
            [
                "10.0.0.0-10.0.255.255 : 0x5e400003",
                "10.1.0.0-10.1.255.255 : 0x5e400001",
                "10.2.0.0-10.255.255.255 : 0x5e400003",
                // 10.1.2.4 adds nothing to its /16's ports: left out.
                "10.1.2.3 : 0x5e400002",
                "198.51.100.7 : 0x5e400003",
                "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff : 0x5e400003",
            ]
        );
        assert_eq!(
            scopes,
            [
                "0x5e400001 . tcp . 80",
                "0x5e400001 . tcp . 443",
                "0x5e400002 . tcp . 80",
                "0x5e400002 . tcp . 443",
                "0x5e400002 . udp . 53",
                "0x5e400003 . tcp . 443",
            ]
        );
    }

    #[test]
    fn the_top_of_the_space_and_whole_families_close_cleanly() {
        let mut e = scoped("0.0.0.0/0", "1-65535/udp");
        e.extend(scoped("255.255.255.255", "53"));
        e.extend(scoped("::/0", "22"));
        e.extend(scoped("ffff::/16", "22"));
        let m = build(Tier::SecurityDeny, &e).unwrap_or_else(|| unreachable!());
        let (ranges, _) = texts(&m);
        assert_eq!(
            ranges,
            [
                "0.0.0.0-255.255.255.255 : 0x5e200003",
                "255.255.255.255 : 0x5e200002",
                "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff : 0x5e200001",
            ]
        );
    }

    proptest::proptest! {
        /// The map admits exactly what its elements admit, and its ranges are sorted and
        /// disjoint (what an interval map needs).
        #[test]
        fn the_map_admits_what_the_elements_admit(
            items in proptest::collection::vec((0u8..4, 28u8..=32, 0u8..2, 1u16..40, 0u16..10), 1..14),
            probes in proptest::collection::vec((0u8..20, 0u8..2, 1u16..55), 60),
        ) {
            let input: Vec<Scoped> = items.iter().map(|(a, len, p, lo, w)| Scoped {
                net: IpNet::new(std::net::Ipv4Addr::new(198, 51, 100, a * 4).into(), *len).expect("prefix"),
                proto: if *p == 0 { Proto::Tcp } else { Proto::Udp },
                ports: PortRange { lo: *lo, hi: lo + w },
            }).collect();
            let m = build(Tier::Override, &input).expect("few labels");
            for w in m.v4.windows(2).chain(m.hosts_v4.windows(2)) {
                proptest::prop_assert!(w[0].hi < w[1].lo, "{} then {}", w[0], w[1]);
            }
            for (a, proto, port) in probes {
                let addr: IpAddr = std::net::Ipv4Addr::new(198, 51, 100, a).into();
                let proto = if proto == 0 { 6 } else { 17 };
                proptest::prop_assert_eq!(
                    m.admits(addr, proto, port),
                    input.iter().any(|e| e.admits(addr, proto, port))
                );
            }
        }
    }
}
