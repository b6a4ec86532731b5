//! The table's sets, by typed identifier (ruleset.md §2). Code outside this crate names a set
//! only through [`SetId`]; its nft name is an output of this module, never a literal
//! elsewhere.

use terok_shield_policy::{IpNet, Tier};

/// How a set stores its elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetKind {
    /// Single addresses, no flags: cheap to fill in bulk, never expire.
    Addr,
    /// Networks: `flags interval`, never expire.
    Net,
    /// Addresses learned from DNS answers: `flags timeout` with a default timeout.
    Learned,
    /// The timed allow-all window: `flags interval, timeout`, no default.
    Window,
    /// Port-scoped elements (`address . protocol . ports`, networks and port ranges as
    /// intervals): `flags interval`, never expire.
    Scoped,
    /// Port-scoped elements learned from DNS answers: `flags interval, timeout`, each with
    /// its own timeout.
    LearnedScoped,
    /// A map from disjoint address ranges to the scope id of the ports open there
    /// (`type ipv4_addr : mark; flags interval`): the bulk of a tier's port-scoped entries.
    PortMap,
    /// Single addresses to the scope id of the ports open there (`type ipv4_addr : mark`, a
    /// hash: cheap to fill in bulk); consulted after the tier's port map, so an address's
    /// scope includes the ports of the networks containing it.
    PortHostMap,
    /// The ports of each scope id of a tier's port maps (`mark . inet_proto . inet_service`,
    /// `flags interval`).
    Scopes,
}

/// One set of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetId(u8);

struct Def {
    name: &'static str,
    v6: bool,
    kind: SetKind,
    /// The authored tier whose elements the set holds.
    tier: Option<Tier>,
}

const fn def(name: &'static str, v6: bool, kind: SetKind, tier: Option<Tier>) -> Def {
    Def { name, v6, kind, tier }
}

const OVERRIDE: Option<Tier> = Some(Tier::Override);
const DENY: Option<Tier> = Some(Tier::SecurityDeny);
const PROVIDER: Option<Tier> = Some(Tier::ProviderAllow);
const PROJECT: Option<Tier> = Some(Tier::ProjectAllow);

/// Every set, in declaration order. The ten names of the reference (`t10_override_v4` …
/// `bypass_window_v6`) keep their meaning: the tier's single addresses. Networks live in the
/// `_net_` twin of each tier, and DNS-learned addresses in `t40_dns_v4/_v6`, so that no
/// authored element ever carries a timeout (nft 1.0.6 ignores `timeout 0s` on a set with a
/// default timeout) and bulk loads stay in plain sets.
/// The port-scoped twins (`_port_`) follow: one per tier and family, and the learned one.
/// Then each authored tier's port maps (`_portmap_` for networks, `_porthost_` for single
/// addresses, per family) and its scope set (`_scopes`, both families): what the hook loads
/// a tier's port-scoped entries into.
const DEFS: [Def; 45] = [
    def("t10_override_v4", false, SetKind::Addr, OVERRIDE),
    def("t10_override_v6", true, SetKind::Addr, OVERRIDE),
    def("t10_override_net_v4", false, SetKind::Net, OVERRIDE),
    def("t10_override_net_v6", true, SetKind::Net, OVERRIDE),
    def("t20_security_deny_v4", false, SetKind::Addr, DENY),
    def("t20_security_deny_v6", true, SetKind::Addr, DENY),
    def("t20_security_deny_net_v4", false, SetKind::Net, DENY),
    def("t20_security_deny_net_v6", true, SetKind::Net, DENY),
    def("t30_provider_allow_v4", false, SetKind::Addr, PROVIDER),
    def("t30_provider_allow_v6", true, SetKind::Addr, PROVIDER),
    def("t30_provider_allow_net_v4", false, SetKind::Net, PROVIDER),
    def("t30_provider_allow_net_v6", true, SetKind::Net, PROVIDER),
    def("t40_project_allow_v4", false, SetKind::Addr, PROJECT),
    def("t40_project_allow_v6", true, SetKind::Addr, PROJECT),
    def("t40_project_allow_net_v4", false, SetKind::Net, PROJECT),
    def("t40_project_allow_net_v6", true, SetKind::Net, PROJECT),
    def("t40_dns_v4", false, SetKind::Learned, None),
    def("t40_dns_v6", true, SetKind::Learned, None),
    def("bypass_window_v4", false, SetKind::Window, None),
    def("bypass_window_v6", true, SetKind::Window, None),
    def("t10_override_port_v4", false, SetKind::Scoped, OVERRIDE),
    def("t10_override_port_v6", true, SetKind::Scoped, OVERRIDE),
    def("t20_security_deny_port_v4", false, SetKind::Scoped, DENY),
    def("t20_security_deny_port_v6", true, SetKind::Scoped, DENY),
    def("t30_provider_allow_port_v4", false, SetKind::Scoped, PROVIDER),
    def("t30_provider_allow_port_v6", true, SetKind::Scoped, PROVIDER),
    def("t40_project_allow_port_v4", false, SetKind::Scoped, PROJECT),
    def("t40_project_allow_port_v6", true, SetKind::Scoped, PROJECT),
    def("t40_dns_port_v4", false, SetKind::LearnedScoped, None),
    def("t40_dns_port_v6", true, SetKind::LearnedScoped, None),
    def("t10_override_portmap_v4", false, SetKind::PortMap, OVERRIDE),
    def("t10_override_portmap_v6", true, SetKind::PortMap, OVERRIDE),
    def("t10_override_porthost_v4", false, SetKind::PortHostMap, OVERRIDE),
    def("t10_override_porthost_v6", true, SetKind::PortHostMap, OVERRIDE),
    def("t10_override_scopes", false, SetKind::Scopes, OVERRIDE),
    def("t20_security_deny_portmap_v4", false, SetKind::PortMap, DENY),
    def("t20_security_deny_portmap_v6", true, SetKind::PortMap, DENY),
    def("t20_security_deny_porthost_v4", false, SetKind::PortHostMap, DENY),
    def("t20_security_deny_porthost_v6", true, SetKind::PortHostMap, DENY),
    def("t20_security_deny_scopes", false, SetKind::Scopes, DENY),
    def("t40_project_allow_portmap_v4", false, SetKind::PortMap, PROJECT),
    def("t40_project_allow_portmap_v6", true, SetKind::PortMap, PROJECT),
    def("t40_project_allow_porthost_v4", false, SetKind::PortHostMap, PROJECT),
    def("t40_project_allow_porthost_v6", true, SetKind::PortHostMap, PROJECT),
    def("t40_project_allow_scopes", false, SetKind::Scopes, PROJECT),
];

const LEARNED_V4: SetId = SetId(16);
const WINDOW_V4: SetId = SetId(18);
const SCOPED_BASE: u8 = 20;
const LEARNED_SCOPED_V4: SetId = SetId(28);
const PORTMAP_BASE: u8 = 30;

impl SetId {
    /// Every set, in declaration order.
    pub fn all() -> impl Iterator<Item = SetId> {
        (0..DEFS.len() as u8).map(SetId)
    }

    fn def(self) -> &'static Def {
        &DEFS[usize::from(self.0)]
    }

    /// The set's nft name.
    pub fn name(self) -> &'static str {
        self.def().name
    }

    pub fn is_v6(self) -> bool {
        self.def().v6
    }

    pub fn kind(self) -> SetKind {
        self.def().kind
    }

    /// The authored tier whose elements the set holds; `None` for the learned and window sets.
    pub fn tier(self) -> Option<Tier> {
        self.def().tier
    }

    /// Elements added to this set are denied (the security-deny tier).
    pub fn denies(self) -> bool {
        self.tier() == DENY
    }

    /// The set of an authored tier that holds elements of one family and shape (a single
    /// address or a network); `None` for the live overlay, which owns no sets (its allows go
    /// to the project tier's, its denies to the deny tier's).
    pub fn authored(tier: Tier, v6: bool, network: bool) -> Option<SetId> {
        Some(SetId(4 * tier_index(tier)? + 2 * u8::from(network) + u8::from(v6)))
    }

    /// The port-scoped set of an authored tier and family; `None` for the live overlay.
    pub fn scoped(tier: Tier, v6: bool) -> Option<SetId> {
        Some(SetId(SCOPED_BASE + 2 * tier_index(tier)? + u8::from(v6)))
    }

    /// The port map of an authored tier and family; `None` for the tiers without one (the
    /// provider tier holds names only, the live overlay no sets).
    pub fn port_map(tier: Tier, v6: bool) -> Option<SetId> {
        Some(SetId(PORTMAP_BASE + 5 * map_index(tier)? + u8::from(v6)))
    }

    /// The single-address port map of an authored tier and family; `None` where
    /// [`SetId::port_map`] is.
    pub fn port_hosts(tier: Tier, v6: bool) -> Option<SetId> {
        Some(SetId(PORTMAP_BASE + 5 * map_index(tier)? + 2 + u8::from(v6)))
    }

    /// Every set and map a tier's port-scoped entries can be in (its port-scoped sets, port
    /// maps and scope set); none for the live overlay.
    pub fn port_structures(tier: Tier) -> Vec<SetId> {
        let per_family =
            [false, true].map(|v6| [SetId::scoped(tier, v6), SetId::port_map(tier, v6), SetId::port_hosts(tier, v6)]);
        per_family.into_iter().flatten().chain([SetId::scopes(tier)]).flatten().collect()
    }

    /// The scope set of an authored tier's port maps; `None` where [`SetId::port_map`] is.
    pub fn scopes(tier: Tier) -> Option<SetId> {
        Some(SetId(PORTMAP_BASE + 5 * map_index(tier)? + 4))
    }

    /// Where a live port-scoped allow (`true`) or deny (`false`) goes.
    pub fn live_scoped(allow: bool, v6: bool) -> SetId {
        let tier = if allow { Tier::ProjectAllow } else { Tier::SecurityDeny };
        match SetId::scoped(tier, v6) {
            Some(s) => s,
            None => unreachable!("authored tiers own sets"),
        }
    }

    /// The port-scoped set of addresses learned from DNS answers, per family.
    pub fn learned_scoped(v6: bool) -> SetId {
        SetId(LEARNED_SCOPED_V4.0 + u8::from(v6))
    }

    /// Every set that holds learned addresses (whole and port-scoped).
    pub fn all_learned() -> [SetId; 4] {
        [SetId::learned(false), SetId::learned(true), SetId::learned_scoped(false), SetId::learned_scoped(true)]
    }

    /// The set is a map (`map NAME { … }`), not a set.
    pub fn is_map(self) -> bool {
        matches!(self.kind(), SetKind::PortMap | SetKind::PortHostMap)
    }

    /// The set's elements carry a port scope.
    pub fn is_scoped(self) -> bool {
        matches!(self.kind(), SetKind::Scoped | SetKind::LearnedScoped)
    }

    /// The set of `tier` that holds `element`.
    pub fn holding(tier: Tier, element: IpNet) -> Option<SetId> {
        SetId::authored(tier, !element.is_ipv4(), !element.is_host())
    }

    /// Where a live allow (`true`) or deny (`false`) of `element` goes: the project-allow or
    /// the security-deny set of its family and shape.
    pub fn live_change(allow: bool, element: IpNet) -> SetId {
        let tier = if allow { Tier::ProjectAllow } else { Tier::SecurityDeny };
        match SetId::holding(tier, element) {
            Some(s) => s,
            None => unreachable!("authored tiers own sets"),
        }
    }

    /// The set of addresses learned from DNS answers, per family.
    pub fn learned(v6: bool) -> SetId {
        SetId(LEARNED_V4.0 + u8::from(v6))
    }

    /// Both learned sets, v4 then v6.
    pub fn learned_sets() -> [SetId; 2] {
        [SetId::learned(false), SetId::learned(true)]
    }

    /// The timed allow-all window, per family.
    pub fn window(v6: bool) -> SetId {
        SetId(WINDOW_V4.0 + u8::from(v6))
    }

    /// The set with this nft name.
    pub fn parse(name: &str) -> Option<SetId> {
        SetId::all().find(|s| s.name() == name)
    }
}

/// The position of an authored tier in the catalogue's blocks; `None` for the live overlay.
fn tier_index(tier: Tier) -> Option<u8> {
    match tier {
        Tier::Override => Some(0),
        Tier::SecurityDeny => Some(1),
        Tier::ProviderAllow => Some(2),
        Tier::ProjectAllow => Some(3),
        Tier::Live => None,
    }
}

/// The position of a tier among those with port maps.
fn map_index(tier: Tier) -> Option<u8> {
    match tier {
        Tier::Override => Some(0),
        Tier::SecurityDeny => Some(1),
        Tier::ProjectAllow => Some(2),
        Tier::ProviderAllow | Tier::Live => None,
    }
}

impl std::fmt::Display for SetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_lookups_agree_with_the_catalogue() {
        assert_eq!(SetId::all().count(), 45);
        for s in SetId::all() {
            assert_eq!(SetId::parse(s.name()), Some(s));
            assert_eq!(s.name().contains("_v6"), s.is_v6());
            assert_eq!(s.name().contains("_port_"), s.is_scoped());
            assert_eq!(s.name().contains("_portmap_"), s.kind() == SetKind::PortMap);
            assert_eq!(s.name().contains("_porthost_"), s.kind() == SetKind::PortHostMap);
            match s.tier() {
                Some(t) if s.is_scoped() => assert_eq!(SetId::scoped(t, s.is_v6()), Some(s)),
                Some(t) if s.kind() == SetKind::PortMap => assert_eq!(SetId::port_map(t, s.is_v6()), Some(s)),
                Some(t) if s.kind() == SetKind::PortHostMap => assert_eq!(SetId::port_hosts(t, s.is_v6()), Some(s)),
                Some(t) if s.kind() == SetKind::Scopes => assert_eq!(SetId::scopes(t), Some(s)),
                Some(t) => assert_eq!(SetId::authored(t, s.is_v6(), s.kind() == SetKind::Net), Some(s)),
                None => {}
            }
        }
        assert_eq!(SetId::learned_scoped(true).name(), "t40_dns_port_v6");
        assert_eq!(SetId::live_scoped(false, false).name(), "t20_security_deny_port_v4");
        assert_eq!(SetId::parse("t40_project_allow_v4 "), None);
        assert_eq!(SetId::learned(true).name(), "t40_dns_v6");
        assert_eq!(SetId::window(false).name(), "bypass_window_v4");
        assert_eq!(SetId::authored(Tier::Live, false, false), None);
        let net: IpNet = "2001:db8::/32".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(SetId::live_change(false, net).name(), "t20_security_deny_net_v6");
        assert!(SetId::live_change(false, net).denies());
        let host: IpNet = "198.51.100.7".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(SetId::live_change(true, host).name(), "t40_project_allow_v4");
    }
}
