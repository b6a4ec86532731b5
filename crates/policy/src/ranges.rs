//! The internal and metadata ranges: one list for the ruleset's floors, the DNS rebind
//! guard and the documentation (docs/threat-model.md lists the same rows; a test checks it).
//!
//! Each range has a floor: the hard-deny floor rejects above every tier, overrides
//! included, in UP and DOWN; the private floor rejects below the override tier (an
//! operator's override opens it) in UP and DOWN; every range, whatever its floor, is one
//! that a DNS answer may not open (the rebind guard), unless the operator allowed it.

/// Where a range is enforced besides the rebind guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Floor {
    /// Rejected above everything (t00), overrides included.
    HardDeny,
    /// Rejected below the override tier.
    Private,
    /// Only never learned from a DNS answer (the kernel already keeps these local, or
    /// they are not unicast destinations).
    Answers,
}

/// One internal range: the network as the ruleset spells it (a host without a prefix),
/// its floor, and what lives there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Internal {
    pub net: &'static str,
    pub floor: Floor,
    pub holds: &'static str,
}

const fn r(net: &'static str, floor: Floor, holds: &'static str) -> Internal {
    Internal { net, floor, holds }
}

/// Every internal range, IPv4 first.
pub const INTERNAL: [Internal; 23] = [
    r("169.254.0.0/16", Floor::HardDeny, "link-local; the AWS, GCP, Azure and OpenStack metadata service"),
    r("100.100.100.200", Floor::HardDeny, "Alibaba Cloud's metadata service"),
    r("168.63.129.16", Floor::HardDeny, "Azure's WireServer"),
    r("192.0.0.192", Floor::HardDeny, "Oracle Cloud's metadata service"),
    r("10.0.0.0/8", Floor::Private, "private networks (RFC 1918)"),
    r("172.16.0.0/12", Floor::Private, "private networks (RFC 1918)"),
    r("192.168.0.0/16", Floor::Private, "private networks (RFC 1918)"),
    r("100.64.0.0/10", Floor::Private, "shared address space (carrier-grade NAT, Tailscale)"),
    r("192.0.0.0/24", Floor::Private, "IETF protocol assignments (DS-Lite, NAT64 discovery)"),
    r("0.0.0.0/8", Floor::Answers, "\"this network\""),
    r("127.0.0.0/8", Floor::Answers, "loopback"),
    r("224.0.0.0/4", Floor::Answers, "multicast"),
    r("240.0.0.0/4", Floor::Answers, "reserved, and the limited broadcast address"),
    r("fe80::/10", Floor::HardDeny, "IPv6 link-local"),
    r("fd00:ec2::254", Floor::HardDeny, "AWS's IPv6 metadata service"),
    r("fc00::/7", Floor::Private, "IPv6 unique-local"),
    r("::", Floor::Answers, "the unspecified address"),
    r("::1", Floor::Answers, "IPv6 loopback"),
    r("::ffff:0:0/96", Floor::Answers, "IPv4-mapped addresses"),
    r("::ffff:0:0:0/96", Floor::Answers, "IPv4-translated addresses"),
    r("64:ff9b:1::/48", Floor::Answers, "local-use NAT64"),
    r("fec0::/10", Floor::Answers, "IPv6 site-local (deprecated)"),
    r("ff00::/8", Floor::Answers, "IPv6 multicast"),
];

/// The network a range names, read literally: `::ffff:0:0/96` stays the IPv6 block (the
/// policy grammar would read it as the IPv4 addresses it maps).
pub fn net(i: &Internal) -> Option<IpNet> {
    let (addr, prefix) = i.net.split_once('/').map_or((i.net, None), |(a, p)| (a, Some(p)));
    let addr: std::net::IpAddr = addr.parse().ok()?;
    match prefix {
        None => Some(IpNet::host(addr)),
        Some(p) => IpNet::new(addr, p.parse().ok()?),
    }
}

/// The ranges of one floor, in table order.
pub fn floor(floor: Floor) -> impl Iterator<Item = &'static str> {
    INTERNAL.iter().filter(move |i| i.floor == floor).map(|i| i.net)
}

use crate::IpNet;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_range_parses_and_hosts_have_no_prefix() {
        for i in INTERNAL {
            let net = net(&i).unwrap_or_else(|| panic!("{} does not parse", i.net));
            assert_ne!(net.prefix(), 0, "{}", i.net);
            assert_eq!(net.is_host(), !i.net.contains('/'), "{}: a host is written without a prefix", i.net);
        }
    }

    #[test]
    fn the_floors_hold_what_the_issue_names() {
        let hard: Vec<_> = floor(Floor::HardDeny).collect();
        for a in ["169.254.0.0/16", "100.100.100.200", "168.63.129.16", "192.0.0.192", "fe80::/10", "fd00:ec2::254"] {
            assert!(hard.contains(&a), "{a}");
        }
        let private: Vec<_> = floor(Floor::Private).collect();
        for a in ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"] {
            assert!(private.contains(&a), "{a}");
        }
    }

    /// docs/threat-model.md lists every range with its floor, as `| `net` | floor | … |`.
    #[test]
    fn the_threat_model_lists_the_same_ranges() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/threat-model.md");
        let doc = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let rows: Vec<&str> = doc.lines().filter(|l| l.starts_with("| `")).collect();
        for i in INTERNAL {
            let word = match i.floor {
                Floor::HardDeny => "hard deny",
                Floor::Private => "private",
                Floor::Answers => "answers only",
            };
            let row = format!("| `{}` | {word} |", i.net);
            assert!(rows.iter().any(|l| l.starts_with(&row)), "docs/threat-model.md lacks the row {row}");
        }
        assert_eq!(rows.len(), INTERNAL.len(), "docs/threat-model.md lists ranges the code does not have");
    }
}
