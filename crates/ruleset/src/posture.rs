//! The table for each posture (ruleset.md §3-4, §6.1-6.3), rendered as `nft -f` text.

use std::fmt::Write as _;
use std::net::IpAddr;

use terok_shield_policy::Tier;

use crate::constants::{
    hard_deny, private_ranges, DNS_LEARNED_TIMEOUT, NFLOG_GROUP, PASTA_HOST_LOOPBACK, PREFIX_ALLOWED, PREFIX_BLOCKED,
    PREFIX_BYPASS, PREFIX_DENIED, PREFIX_PRIVATE, REJECT, TABLE,
};
use crate::facts::NetFacts;
use crate::portmap::{MARK_BASE, MARK_MASK};
use crate::sets::{SetId, SetKind};

/// What the output chain enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Posture {
    /// Default deny: only the allowlist passes.
    Up,
    /// Default accept and log, but floors, private ranges and denies still reject.
    Down,
    /// Accept and log everything new; nothing enforced.
    Disengaged,
    /// Drop everything but loopback and established flows; no sets.
    Quarantine,
}

impl Posture {
    pub fn label(self) -> &'static str {
        match self {
            Posture::Up => "up",
            Posture::Down => "down",
            Posture::Disengaged => "disengaged",
            Posture::Quarantine => "quarantine",
        }
    }

    /// The posture a [`Posture::label`] names.
    pub fn from_label(word: &str) -> Option<Posture> {
        [Posture::Up, Posture::Down, Posture::Disengaged, Posture::Quarantine].into_iter().find(|p| p.label() == word)
    }
}

fn log(prefix: &str) -> String {
    format!("log group {NFLOG_GROUP} prefix \"{prefix}: \"")
}

fn daddr(net: &str) -> String {
    let family = if net.contains(':') { "ip6" } else { "ip" };
    format!("{family} daddr {net}")
}

fn set_match(set: SetId) -> String {
    let family = if set.is_v6() { "ip6" } else { "ip" };
    if set.is_scoped() {
        format!("{family} daddr . meta l4proto . th dport @{set}")
    } else {
        format!("{family} daddr @{set}")
    }
}

/// Rules every posture but quarantine starts with: loopback (where the shield's resolver
/// listens), established flows, the IPv6 neighbour discovery a dual-stack container needs,
/// DNS to the forwarder only (none with the shield's resolver), host ports.
fn preamble(f: &NetFacts, out: &mut Vec<String>) {
    out.push("oifname \"lo\" accept".into());
    out.push("ct state established,related accept".into());
    out.extend(neighbour_discovery_out());
    if let Some(server) = f.dns {
        let dns = match server {
            IpAddr::V4(a) => format!("ip daddr {a}"),
            IpAddr::V6(a) => format!("ip6 daddr {a}"),
        };
        out.push(format!("udp dport 53 {dns} accept"));
        out.push(format!("tcp dport 53 {dns} accept"));
    }
    for p in &f.loopback_ports {
        if let Some(gw) = f.gateway_v4 {
            out.push(format!("tcp dport {p} ip daddr {gw} accept"));
        }
        if let Some(gw) = f.gateway_v6 {
            out.push(format!("tcp dport {p} ip6 daddr {gw} accept"));
        }
    }
    for p in &f.loopback_ports {
        out.push(format!("tcp dport {p} ip daddr {PASTA_HOST_LOOPBACK} accept"));
    }
}

/// Neighbour discovery is link-local by construction: the kernel sends it with hop limit 255
/// (MLD reports with 1), and a router never forwards a packet with those limits intact. The
/// container has no CAP_NET_RAW, so it cannot forge these messages.
fn neighbour_discovery_out() -> [String; 2] {
    [
        "icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept".into(),
        "ip6 daddr ff02::/16 icmpv6 type { mld-listener-report, mld2-listener-report } ip6 hoplimit 1 accept".into(),
    ]
}

/// The slirp4netns gateway leads to the host (its loopback, when that is mapped): no
/// override network opens it, only an override naming the address itself (issue 14.8).
/// The loopback ports the operator listed are accepted above.
fn gateway_rejects(f: &NetFacts, out: &mut Vec<String>) {
    if let Some(gw) = f.gateway_v4 {
        let own = SetId::authored(Tier::Override, false, false).map_or(String::new(), |s| format!(" ip daddr != @{s}"));
        out.push(format!("ip daddr {gw}{own} {} {REJECT}", log(PREFIX_PRIVATE)));
    }
    if let Some(gw) = f.gateway_v6 {
        let own = SetId::authored(Tier::Override, true, false).map_or(String::new(), |s| format!(" ip6 daddr != @{s}"));
        out.push(format!("ip6 daddr {gw}{own} {} {REJECT}", log(PREFIX_PRIVATE)));
    }
}

fn range_rejects(ranges: impl Iterator<Item = &'static str>, out: &mut Vec<String>) {
    for r in ranges {
        out.push(format!("{} {} {REJECT}", daddr(r), log(PREFIX_PRIVATE)));
    }
}

/// One rule per set of the tier (addresses, networks and port-scoped, v4 and v6), then its
/// port maps: each sets the packet mark to the scope id of the destination's range, then of
/// the destination itself (a lookup that misses leaves the mark as it was; an address's
/// scope includes its networks'), and the scope set matches mark, protocol and port.
fn tier_rules(tier: Tier, prefix: &str, verdict: &str, out: &mut Vec<String>) {
    let sets = [false, true].into_iter().flat_map(|net| [false, true].map(|v6| SetId::authored(tier, v6, net)));
    let scoped = [false, true].map(|v6| SetId::scoped(tier, v6));
    set_rules(sets.chain(scoped).flatten(), prefix, verdict, out);
    if let Some(scopes) = SetId::scopes(tier) {
        let maps = [false, true].into_iter().flat_map(|v6| [SetId::port_map(tier, v6), SetId::port_hosts(tier, v6)]);
        for map in maps.flatten() {
            let family = if map.is_v6() { "ip6" } else { "ip" };
            out.push(format!("meta mark set {family} daddr map @{map}"));
        }
        out.push(format!("meta mark . meta l4proto . th dport @{scopes} {} counter {verdict}", log(prefix)));
    }
}

/// Clear a mark in the range of scope ids before the first port map is consulted: a mark
/// the container set on its socket must never read as a scope. Other marks stay.
fn mark_reset(out: &mut Vec<String>) {
    let bits = MARK_MASK.count_ones();
    out.push(format!("meta mark {MARK_BASE:#010x}/{bits} meta mark set 0x00000000"));
}

fn set_rules(sets: impl IntoIterator<Item = SetId>, prefix: &str, verdict: &str, out: &mut Vec<String>) {
    for set in sets {
        out.push(format!("{} {} counter {verdict}", set_match(set), log(prefix)));
    }
}

/// Output-chain policy and rules of a posture.
fn output_chain(posture: Posture, f: &NetFacts) -> (&'static str, Vec<String>) {
    let mut r = Vec::with_capacity(48);
    match posture {
        Posture::Up => {
            preamble(f, &mut r);
            mark_reset(&mut r);
            range_rejects(hard_deny(), &mut r);
            gateway_rejects(f, &mut r);
            tier_rules(Tier::Override, PREFIX_ALLOWED, "accept", &mut r);
            tier_rules(Tier::SecurityDeny, PREFIX_DENIED, REJECT, &mut r);
            range_rejects(private_ranges(), &mut r);
            tier_rules(Tier::ProviderAllow, PREFIX_ALLOWED, "accept", &mut r);
            tier_rules(Tier::ProjectAllow, PREFIX_ALLOWED, "accept", &mut r);
            set_rules(SetId::all_learned(), PREFIX_ALLOWED, "accept", &mut r);
            set_rules([SetId::window(false), SetId::window(true)], PREFIX_BYPASS, "accept", &mut r);
            r.push(format!("{} counter {REJECT}", log(PREFIX_BLOCKED)));
            ("drop", r)
        }
        Posture::Down => {
            preamble(f, &mut r);
            mark_reset(&mut r);
            range_rejects(hard_deny(), &mut r);
            gateway_rejects(f, &mut r);
            tier_rules(Tier::Override, PREFIX_BYPASS, "accept", &mut r);
            tier_rules(Tier::SecurityDeny, PREFIX_DENIED, REJECT, &mut r);
            range_rejects(private_ranges(), &mut r);
            r.push(format!("ct state new {} counter", log(PREFIX_BYPASS)));
            ("accept", r)
        }
        Posture::Disengaged => {
            preamble(f, &mut r);
            r.push(format!("ct state new {} counter", log(PREFIX_BYPASS)));
            ("accept", r)
        }
        Posture::Quarantine => {
            r.push("oifname \"lo\" accept".into());
            r.push("ct state established,related accept".into());
            r.push(format!("{} drop", log(PREFIX_BLOCKED)));
            ("drop", r)
        }
    }
}

/// Input chain, the same in every posture: nothing new comes in but neighbour discovery.
fn input_rules() -> Vec<String> {
    vec![
        "iifname \"lo\" accept".into(),
        "ct state established,related accept".into(),
        "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } ip6 hoplimit 255 accept".into(),
        "drop".into(),
    ]
}

fn set_declaration(set: SetId) -> String {
    let addr = if set.is_v6() { "ipv6_addr" } else { "ipv4_addr" };
    match set.kind() {
        SetKind::PortMap => return format!("map {set} {{ type {addr} : mark; flags interval; }}"),
        SetKind::PortHostMap => return format!("map {set} {{ type {addr} : mark; }}"),
        SetKind::Scopes => return format!("set {set} {{ type mark . inet_proto . inet_service; flags interval; }}"),
        _ => {}
    }
    let ty = if set.is_scoped() { format!("{addr} . inet_proto . inet_service") } else { addr.to_string() };
    let rest = match set.kind() {
        SetKind::Addr => String::new(),
        SetKind::Net | SetKind::Scoped => " flags interval;".into(),
        SetKind::Learned => format!(" flags timeout; timeout {DNS_LEARNED_TIMEOUT};"),
        SetKind::Window | SetKind::LearnedScoped => " flags interval, timeout;".into(),
        SetKind::PortMap | SetKind::PortHostMap | SetKind::Scopes => unreachable!("declared above"),
    };
    format!("set {set} {{ type {ty};{rest} }}")
}

/// The `table inet terok_shield { … }` text of a posture. Quarantine declares no sets.
pub fn render_table(posture: Posture, facts: &NetFacts) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let _ = writeln!(out, "table {TABLE} {{");
    if posture != Posture::Quarantine {
        for set in SetId::all() {
            let _ = writeln!(out, "    {}", set_declaration(set));
        }
        out.push('\n');
    }
    let (policy, rules) = output_chain(posture, facts);
    chain(&mut out, "output", policy, &rules);
    out.push('\n');
    chain(&mut out, "input", "drop", &input_rules());
    out.push_str("}\n");
    out
}

fn chain(out: &mut String, name: &str, policy: &str, rules: &[String]) {
    let _ = writeln!(out, "    chain {name} {{");
    let _ = writeln!(out, "        type filter hook {name} priority filter; policy {policy};");
    for rule in rules {
        let _ = writeln!(out, "        {rule}");
    }
    out.push_str("    }\n");
}
