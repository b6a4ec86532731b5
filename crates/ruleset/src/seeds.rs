//! `add element` statements for the authored addresses of a bundle (ruleset.md §5).

use terok_shield_policy::{Effective, IpNet, Ports, Target, Tier};

use crate::portmap::{self, MapRange, PortMap};
use crate::scoped::{canonical, Scoped};
use crate::sets::{SetId, SetKind};

/// At most this many elements per `add element` statement, so a loader can split a long
/// seed into transactions a user namespace accepts.
pub const MAX_ELEMENTS_PER_STATEMENT: usize = 1000;

/// Authored elements per tier: whole addresses and networks, and port-scoped elements.
/// Nothing here ever expires.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seeds {
    pub t10_override: Vec<IpNet>,
    pub t20_security_deny: Vec<IpNet>,
    pub t40_project_allow: Vec<IpNet>,
    pub t10_override_ports: Vec<Scoped>,
    pub t20_security_deny_ports: Vec<Scoped>,
    pub t40_project_allow_ports: Vec<Scoped>,
}

impl Seeds {
    pub fn is_empty(&self) -> bool {
        self.t10_override.is_empty()
            && self.t20_security_deny.is_empty()
            && self.t40_project_allow.is_empty()
            && self.t10_override_ports.is_empty()
            && self.t20_security_deny_ports.is_empty()
            && self.t40_project_allow_ports.is_empty()
    }

    /// These seeds with the port-scoped addresses and networks of `effective` (scoped names
    /// are the resolver's: it pins what it answers).
    pub fn with_ports(self, effective: &Effective) -> Seeds {
        let scoped = |list: &[(Target, Ports)]| -> Vec<Scoped> {
            list.iter().filter_map(|(t, p)| Some(Scoped::of(t.as_net()?, p))).flatten().collect()
        };
        Seeds {
            t40_project_allow_ports: scoped(&effective.scoped_allows),
            t20_security_deny_ports: scoped(&effective.scoped_denies),
            t10_override_ports: scoped(&effective.scoped_overrides),
            ..self
        }
    }

    /// The same seeds without the allows (what DOWN loads).
    pub fn without_allows(self) -> Seeds {
        Seeds { t40_project_allow: Vec::new(), t40_project_allow_ports: Vec::new(), ..self }
    }
}

/// How each authored tier's port-scoped elements load: into its port map and scope set,
/// or, when they need more labels than a map holds, canonical into its port-scoped sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortLoad {
    pub maps: Vec<(Tier, PortMap)>,
    pub sets: Vec<(SetId, Vec<Scoped>)>,
}

/// The port loads of every seeded tier, in statement order (t20, t10, t40, as
/// [`set_elements`]; empty tiers left out).
pub fn port_load(seeds: &Seeds) -> PortLoad {
    let mut out = PortLoad::default();
    for (tier, elements) in [
        (Tier::SecurityDeny, &seeds.t20_security_deny_ports),
        (Tier::Override, &seeds.t10_override_ports),
        (Tier::ProjectAllow, &seeds.t40_project_allow_ports),
    ] {
        if elements.is_empty() {
            continue;
        }
        match portmap::build(tier, elements) {
            Some(map) => out.maps.push((tier, map)),
            None => {
                for v6 in [false, true] {
                    let of_family = elements.iter().filter(|e| e.net.is_ipv4() != v6).copied();
                    if let Some(set) = SetId::scoped(tier, v6) {
                        out.sets.push((set, canonical(of_family)));
                    }
                }
            }
        }
    }
    out
}

/// The elements of every seeded set, in statement order (t20, t10, t40: the denies are in
/// before any allow, so a table filled while a container runs never admits, for a moment,
/// what a deny refuses; per family single addresses then networks). Single addresses go to the tier's plain sets, networks to its
/// interval sets (nested networks collapsed into the outermost, since an interval set
/// refuses overlapping elements).
pub fn set_elements(seeds: &Seeds) -> Vec<(SetId, Vec<IpNet>)> {
    let mut out = Vec::new();
    for (tier, elements) in [
        (Tier::SecurityDeny, &seeds.t20_security_deny),
        (Tier::Override, &seeds.t10_override),
        (Tier::ProjectAllow, &seeds.t40_project_allow),
    ] {
        for v6 in [false, true] {
            let mut hosts: Vec<IpNet> = Vec::new();
            let mut nets: Vec<IpNet> = Vec::new();
            for e in elements.iter().filter(|e| e.is_ipv4() != v6) {
                if e.is_host() {
                    hosts.push(*e);
                } else {
                    nets.push(*e);
                }
            }
            let mut seen = std::collections::HashSet::with_capacity(hosts.len());
            hosts.retain(|h| seen.insert(*h));
            for (network, elements) in [(false, hosts), (true, outermost(nets))] {
                if let Some(set) = SetId::authored(tier, v6, network) {
                    out.push((set, elements));
                }
            }
        }
    }
    out
}

/// `add element` statements for every non-empty set, at most `max_addresses` elements per
/// statement into a plain set and `max_networks` into an interval set.
pub fn seed_statements(seeds: &Seeds, max_addresses: usize, max_networks: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (set, elements) in set_elements(seeds) {
        let max = if set.kind() == SetKind::Net { max_networks } else { max_addresses };
        for chunk in elements.chunks(max.max(1)) {
            out.push(crate::script::add_elements(set, chunk).trim_end().to_string());
        }
    }
    out.extend(port_statements(&port_load(seeds), None, max_addresses, max_networks));
    out
}

/// The maps of `tier` that `map` loads into, each with its elements: per family the
/// network ranges, then the single addresses.
pub fn map_elements(tier: Tier, map: &PortMap) -> impl Iterator<Item = (SetId, &[MapRange])> {
    [false, true]
        .into_iter()
        .flat_map(move |v6| [(SetId::port_map(tier, v6), map.ranges(v6)), (SetId::port_hosts(tier, v6), map.hosts(v6))])
        .filter_map(|(set, ranges)| Some((set?, ranges)))
}

/// `add element` statements for `load` (only the tier `only`, when given), at most
/// `max_addresses` elements per statement into an address map and `max_networks` into the
/// other maps and sets; none for an empty one.
pub fn port_statements(load: &PortLoad, only: Option<Tier>, max_addresses: usize, max_networks: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (tier, map) in load.maps.iter().filter(|(t, _)| only.is_none_or(|o| o == *t)) {
        for (set, ranges) in map_elements(*tier, map) {
            let max = if set.kind() == SetKind::PortHostMap { max_addresses } else { max_networks };
            for chunk in ranges.chunks(max.max(1)) {
                out.push(crate::script::add_mapped(set, chunk).trim_end().to_string());
            }
        }
        if let Some(set) = SetId::scopes(*tier) {
            for chunk in map.scopes.chunks(max_networks.max(1)) {
                out.push(crate::script::add_scopes(set, chunk).trim_end().to_string());
            }
        }
    }
    for (set, elements) in load.sets.iter().filter(|(s, _)| only.is_none_or(|o| s.tier() == Some(o))) {
        for chunk in elements.chunks(max_networks.max(1)) {
            out.push(crate::script::add_scoped(*set, chunk).trim_end().to_string());
        }
    }
    out
}

/// Networks of one family with every network that another one contains removed. CIDRs are
/// either nested or disjoint, so after sorting by (start, prefix) a network is covered
/// exactly when the last kept one contains it.
pub fn outermost(mut nets: Vec<IpNet>) -> Vec<IpNet> {
    nets.sort_by_key(|n| (n.addr(), n.prefix()));
    let mut kept: Vec<IpNet> = Vec::with_capacity(nets.len());
    for n in nets {
        if kept.last().is_some_and(|k| k.contains(&n)) {
            continue;
        }
        kept.push(n);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().filter_map(|x| x.parse().ok()).collect()
    }

    #[test]
    fn hosts_and_networks_go_to_their_own_sets() {
        let seeds = Seeds {
            t40_project_allow: nets(&[
                "198.51.100.1",
                "198.51.100.0/24",
                "198.51.100.1",
                "2001:db8::1",
                "10.1.0.0/16",
                "10.0.0.0/8",
            ]),
            t10_override: nets(&["10.222.222.10"]),
            t20_security_deny: nets(&["2001:db8::/32"]),
            t40_project_allow_ports: ["198.51.100.7", "198.51.100.0/24", "2001:db8::7"]
                .iter()
                .filter_map(|n| n.parse().ok())
                .flat_map(|n| {
                    Scoped::of(n, &terok_shield_policy::Ports::single(terok_shield_policy::Proto::Tcp, 443))
                        .collect::<Vec<_>>()
                })
                .collect(),
            ..Seeds::default()
        };
        assert_eq!(
            seed_statements(&seeds, 1000, 1000),
            [
                "add element inet terok_shield t20_security_deny_net_v6 { 2001:db8::/32 }",
                "add element inet terok_shield t10_override_v4 { 10.222.222.10 }",
                "add element inet terok_shield t40_project_allow_v4 { 198.51.100.1 }",
                "add element inet terok_shield t40_project_allow_net_v4 { 10.0.0.0/8, 198.51.100.0/24 }",
                "add element inet terok_shield t40_project_allow_v6 { 2001:db8::1 }",
                "add element inet terok_shield t40_project_allow_portmap_v4 { 198.51.100.0-198.51.100.255 : 0x5e400001 }",
                "add element inet terok_shield t40_project_allow_porthost_v6 { 2001:db8::7 : 0x5e400001 }",
                "add element inet terok_shield t40_project_allow_scopes { 0x5e400001 . tcp . 443 }",
            ]
        );
    }

    #[test]
    fn long_seeds_are_split() {
        let many: Vec<IpNet> =
            (0..2500u32).map(|i| IpNet::host(std::net::Ipv4Addr::from(0xC633_0000 + i).into())).collect();
        let stmts = seed_statements(&Seeds { t40_project_allow: many, ..Seeds::default() }, 1000, 1000);
        assert_eq!(stmts.len(), 3);
        assert_eq!(stmts.iter().map(|s| s.matches(", ").count() + 1).sum::<usize>(), 2500);
    }

    #[test]
    fn nested_networks_collapse() {
        let kept = outermost(nets(&["10.1.2.0/24", "10.0.0.0/8", "10.1.0.0/16", "11.0.0.0/8", "11.0.0.0/8"]));
        assert_eq!(kept, nets(&["10.0.0.0/8", "11.0.0.0/8"]));
    }
}
