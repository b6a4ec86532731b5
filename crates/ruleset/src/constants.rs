//! Names and values shared by the generator and the verifier (ruleset.md §1-2).

/// Family and name of our one table.
pub const TABLE: &str = "inet terok_shield";
/// NFLOG group of every log statement.
pub const NFLOG_GROUP: u16 = 100;

pub const PREFIX_BLOCKED: &str = "TEROK_SHIELD_BLOCKED";
pub const PREFIX_DENIED: &str = "TEROK_SHIELD_DENIED";
pub const PREFIX_PRIVATE: &str = "TEROK_SHIELD_PRIVATE";
pub const PREFIX_ALLOWED: &str = "TEROK_SHIELD_ALLOWED";
pub const PREFIX_BYPASS: &str = "TEROK_SHIELD_BYPASS";

/// Cross-family reject: ICMP type 3 code 13 / ICMPv6 admin-prohibited.
pub const REJECT: &str = "reject with icmpx admin-prohibited";

/// t00: rejected above everything, overrides included.
pub const HARD_DENY: [&str; 3] = ["169.254.0.0/16", "fe80::/10", "fd00:ec2::254"];
/// Rejected below the override tier.
pub const PRIVATE_RANGES: [&str; 4] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"];

pub const PASTA_DNS: &str = "169.254.1.1";
pub const PASTA_HOST_LOOPBACK: &str = "169.254.1.2";
pub const SLIRP_DNS: &str = "10.0.2.3";
pub const SLIRP_GATEWAY_V4: &str = "10.0.2.2";
pub const SLIRP_GATEWAY_V6: &str = "fd00::2";

/// Lifetime of an address learned from a DNS answer (re-armed by each answer).
pub const DNS_LEARNED_TIMEOUT: &str = "30m";

/// How a set stores its elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// Single addresses, no flags: cheap to fill in bulk, never expire.
    Addr,
    /// Networks: `flags interval`, never expire.
    Net,
    /// Addresses learned from DNS answers: `flags timeout` with a default timeout.
    Learned,
    /// The timed allow-all window: `flags interval, timeout`, no default.
    Window,
}

/// One set of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetDef {
    pub name: &'static str,
    pub v6: bool,
    pub kind: SetKind,
}

const fn set(name: &'static str, v6: bool, kind: SetKind) -> SetDef {
    SetDef { name, v6, kind }
}

/// Every set, in declaration order. The ten names of the reference (`t10_override_v4` …
/// `bypass_window_v6`) keep their meaning: the tier's single addresses. Networks live in the
/// `_net_` twin of each tier, and DNS-learned addresses in `t40_dns_v4/_v6`, so that no
/// authored element ever carries a timeout (nft 1.0.6 ignores `timeout 0s` on a set with a
/// default timeout) and bulk loads stay in plain sets.
pub const SETS: [SetDef; 20] = [
    set("t10_override_v4", false, SetKind::Addr),
    set("t10_override_v6", true, SetKind::Addr),
    set("t10_override_net_v4", false, SetKind::Net),
    set("t10_override_net_v6", true, SetKind::Net),
    set("t20_security_deny_v4", false, SetKind::Addr),
    set("t20_security_deny_v6", true, SetKind::Addr),
    set("t20_security_deny_net_v4", false, SetKind::Net),
    set("t20_security_deny_net_v6", true, SetKind::Net),
    set("t30_provider_allow_v4", false, SetKind::Addr),
    set("t30_provider_allow_v6", true, SetKind::Addr),
    set("t30_provider_allow_net_v4", false, SetKind::Net),
    set("t30_provider_allow_net_v6", true, SetKind::Net),
    set("t40_project_allow_v4", false, SetKind::Addr),
    set("t40_project_allow_v6", true, SetKind::Addr),
    set("t40_project_allow_net_v4", false, SetKind::Net),
    set("t40_project_allow_net_v6", true, SetKind::Net),
    set("t40_dns_v4", false, SetKind::Learned),
    set("t40_dns_v6", true, SetKind::Learned),
    set("bypass_window_v4", false, SetKind::Window),
    set("bypass_window_v6", true, SetKind::Window),
];

/// The authored tiers that own a set quadruple, in authority order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTier {
    Override,
    SecurityDeny,
    ProviderAllow,
    ProjectAllow,
}

impl SetTier {
    /// Name of the set holding this tier's elements of one family and kind.
    pub fn set_name(self, v6: bool, net: bool) -> &'static str {
        let base = match self {
            SetTier::Override => 0,
            SetTier::SecurityDeny => 4,
            SetTier::ProviderAllow => 8,
            SetTier::ProjectAllow => 12,
        };
        SETS[base + 2 * usize::from(net) + usize::from(v6)].name
    }
}
