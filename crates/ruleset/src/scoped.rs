//! Elements of the port-scoped sets: `address-or-network . protocol . port-range`.
//!
//! Those sets are concatenations with intervals (the kernel's pipapo sets). The kernel
//! refuses an element whose first or last point lies inside an element already there, so
//! what is loaded together is made canonical first: per protocol, a network keeps only the
//! ports that no network containing it already opens, and the ports of one network are
//! merged. CIDRs are nested or disjoint, so no canonical element then starts or ends inside
//! another.

use std::fmt;

use terok_shield_policy::ports::{merge, subtract};
use terok_shield_policy::{IpNet, PortRange, Ports, Proto};

/// One element of a port-scoped set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scoped {
    pub net: IpNet,
    pub proto: Proto,
    pub ports: PortRange,
}

impl Scoped {
    /// The elements one entry's scope gives for `net`.
    pub fn of(net: IpNet, ports: &Ports) -> impl Iterator<Item = Scoped> + '_ {
        ports.ranges().iter().map(move |r| Scoped { net, proto: ports.proto(), ports: *r })
    }

    /// True when a packet of protocol number `proto` to `addr`:`port` is in the element.
    pub fn admits(&self, addr: std::net::IpAddr, proto: u8, port: u16) -> bool {
        self.proto.number() == proto && self.ports.contains(port) && self.net.contains(&IpNet::host(addr))
    }

    /// True when every packet `other` admits, this one admits too.
    pub fn covers(&self, other: &Scoped) -> bool {
        self.proto == other.proto
            && self.net.contains(&other.net)
            && self.ports.lo <= other.ports.lo
            && other.ports.hi <= self.ports.hi
    }
}

impl Scoped {
    /// One word for an argument list: `198.51.100.0/24,tcp,8000-8100`.
    pub fn to_arg(&self) -> String {
        format!("{},{},{}-{}", self.net, self.proto.name(), self.ports.lo, self.ports.hi)
    }

    /// The element a [`Scoped::to_arg`] word names; `None` for anything else.
    pub fn from_arg(word: &str) -> Option<Scoped> {
        let mut parts = word.split(',');
        let (net, proto, ports) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let parsed = Ports::parse(&format!("{ports}/{proto}")).ok()?;
        let [range] = parsed.ranges() else { return None };
        let (lo, hi) = ports.split_once('-')?;
        if lo.parse() != Ok(range.lo) || hi.parse() != Ok(range.hi) {
            return None;
        }
        Some(Scoped { net: net.parse().ok()?, proto: parsed.proto(), ports: *range })
    }
}

/// nft's element syntax: `198.51.100.0/24 . tcp . 8000-8100`.
impl fmt::Display for Scoped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} . {} . {}", self.net, self.proto.name(), self.ports)
    }
}

/// The canonical elements admitting exactly what `elements` admit (all of one family).
pub fn canonical(elements: impl IntoIterator<Item = Scoped>) -> Vec<Scoped> {
    let mut by_key: std::collections::BTreeMap<(Proto, IpNet), Vec<PortRange>> = Default::default();
    for e in elements {
        by_key.entry((e.proto, e.net)).or_default().push(e.ports);
    }
    let mut out = Vec::with_capacity(by_key.len());
    // Sorted by (protocol, address, prefix): a network comes after every network containing
    // it, and the ones containing it form a chain.
    let mut chain: Vec<(Proto, IpNet, Vec<PortRange>)> = Vec::new();
    for ((proto, net), ranges) in by_key {
        while chain.last().is_some_and(|(p, n, _)| *p != proto || !n.contains(&net)) {
            chain.pop();
        }
        let ranges = merge(ranges);
        let covered = chain.last().map(|(_, _, c)| c.clone()).unwrap_or_default();
        out.extend(subtract(&ranges, &covered).into_iter().map(|ports| Scoped { net, proto, ports }));
        let mut all = covered;
        all.extend(ranges);
        chain.push((proto, net, merge(all)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(s: &str) -> Scoped {
        let mut w = s.split(" . ");
        let net = w.next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{s}"));
        let proto = if w.next() == Some("udp") { Proto::Udp } else { Proto::Tcp };
        let r = w.next().unwrap_or_else(|| panic!("{s}"));
        let (lo, hi) = r.split_once('-').unwrap_or((r, r));
        let ports = PortRange { lo: lo.parse().unwrap_or(1), hi: hi.parse().unwrap_or(1) };
        Scoped { net, proto, ports }
    }

    fn texts(v: &[Scoped]) -> Vec<String> {
        v.iter().map(Scoped::to_string).collect()
    }

    #[test]
    fn nested_networks_keep_only_their_own_ports() {
        let got = canonical(
            [
                "10.1.2.3 . tcp . 443",
                "10.0.0.0/8 . tcp . 443",
                "10.1.0.0/16 . tcp . 80-500",
                "10.1.2.3 . udp . 53",
                "10.1.2.3 . tcp . 444-600",
                "11.0.0.0/8 . tcp . 443",
                "10.1.2.3 . tcp . 443",
            ]
            .map(el),
        );
        assert_eq!(
            texts(&got),
            [
                "10.0.0.0/8 . tcp . 443",
                "10.1.0.0/16 . tcp . 80-442",
                "10.1.0.0/16 . tcp . 444-500",
                "10.1.2.3 . tcp . 501-600",
                "11.0.0.0/8 . tcp . 443",
                "10.1.2.3 . udp . 53",
            ]
        );
    }

    #[test]
    fn argument_words_round_trip() {
        for text in ["198.51.100.0/24 . tcp . 8000-8100", "2001:db8::1 . udp . 53"] {
            let e = el(text);
            assert_eq!(Scoped::from_arg(&e.to_arg()), Some(e));
        }
        for bad in ["1.2.3.4,tcp,80", "1.2.3.4,icmp,1-1", "1.2.3.4,tcp,9-8", "1.2.3,tcp,1-1", "a,tcp,1-1,x"] {
            assert_eq!(Scoped::from_arg(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        /// Canonical elements admit exactly what the input admits, and none starts or ends
        /// inside another (what the kernel refuses).
        #[test]
        fn canonical_admits_the_same_and_never_overlaps(
            items in proptest::collection::vec((0u8..4, 28u8..=32, 0u8..2, 1u16..40, 0u16..10), 1..12),
            probes in proptest::collection::vec((0u8..20, 0u8..2, 1u16..55), 40),
        ) {
            let input: Vec<Scoped> = items.iter().map(|(a, len, p, lo, w)| {
                let addr = std::net::Ipv4Addr::new(198, 51, 100, a * 4);
                Scoped {
                    net: IpNet::new(addr.into(), *len).expect("prefix"),
                    proto: if *p == 0 { Proto::Tcp } else { Proto::Udp },
                    ports: PortRange { lo: *lo, hi: lo + w },
                }
            }).collect();
            let out = canonical(input.clone());
            for (a, proto, port) in probes {
                let addr: std::net::IpAddr = std::net::Ipv4Addr::new(198, 51, 100, a).into();
                let proto = if proto == 0 { 6 } else { 17 };
                proptest::prop_assert_eq!(
                    out.iter().any(|e| e.admits(addr, proto, port)),
                    input.iter().any(|e| e.admits(addr, proto, port))
                );
            }
            for (i, x) in out.iter().enumerate() {
                for (j, y) in out.iter().enumerate() {
                    if i == j { continue; }
                    let start = Scoped { net: IpNet::host(x.net.addr()), proto: x.proto, ports: PortRange { lo: x.ports.lo, hi: x.ports.lo } };
                    proptest::prop_assert!(!y.covers(&start), "{} starts inside {}", x, y);
                }
            }
        }
    }
}
