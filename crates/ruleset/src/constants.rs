//! Names and values shared by the generator and the verifier (ruleset.md §1-2).

/// Family and name of our one table, as nft scripts spell it.
pub const TABLE: &str = "inet terok_shield";
/// The table's family and name apart (nft arguments, netlink attributes).
pub const TABLE_FAMILY: &str = "inet";
pub const TABLE_NAME: &str = "terok_shield";
/// NFLOG group of every log statement.
pub const NFLOG_GROUP: u16 = 100;

pub const PREFIX_BLOCKED: &str = "TEROK_SHIELD_BLOCKED";
pub const PREFIX_DENIED: &str = "TEROK_SHIELD_DENIED";
pub const PREFIX_PRIVATE: &str = "TEROK_SHIELD_PRIVATE";
pub const PREFIX_ALLOWED: &str = "TEROK_SHIELD_ALLOWED";
pub const PREFIX_BYPASS: &str = "TEROK_SHIELD_BYPASS";

/// Cross-family reject: ICMP type 3 code 13 / ICMPv6 admin-prohibited.
pub const REJECT: &str = "reject with icmpx admin-prohibited";

/// t00: rejected above everything, overrides included (`policy::ranges`).
pub fn hard_deny() -> impl Iterator<Item = &'static str> {
    terok_shield_policy::ranges::floor(terok_shield_policy::ranges::Floor::HardDeny)
}

/// Rejected below the override tier (`policy::ranges`).
pub fn private_ranges() -> impl Iterator<Item = &'static str> {
    terok_shield_policy::ranges::floor(terok_shield_policy::ranges::Floor::Private)
}

pub const PASTA_DNS: &str = "169.254.1.1";
pub const PASTA_HOST_LOOPBACK: &str = "169.254.1.2";
pub const SLIRP_DNS: &str = "10.0.2.3";
pub const SLIRP_GATEWAY_V4: &str = "10.0.2.2";
pub const SLIRP_GATEWAY_V6: &str = "fd00::2";

/// Lifetime of an address learned from a DNS answer (re-armed by each answer).
pub const DNS_LEARNED_TIMEOUT: &str = "30m";
