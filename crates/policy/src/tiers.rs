//! Policy tiers and the effective policy they yield (state-and-config.md §5).
//!
//! Authority, highest first: t10 override (break-glass allow, above the deny), t20
//! security-deny, t30 provider-allow, t40 project-allow. The live overlay holds the
//! operator's runtime allows and denies. A deny in t20 or live removes the same target from
//! every allow tier (t30, t40, live); the override tier is above the deny by design.

use std::collections::HashSet;

use crate::grammar::{Action, Entry};
use crate::target::{IpNet, Target};

/// A policy file of the bundle's `policy/` directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    Override,
    SecurityDeny,
    ProviderAllow,
    ProjectAllow,
    Live,
}

impl Tier {
    pub const ALL: [Tier; 5] =
        [Tier::Override, Tier::SecurityDeny, Tier::ProviderAllow, Tier::ProjectAllow, Tier::Live];

    /// File name inside `<state_dir>/policy/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Tier::Override => "10-override",
            Tier::SecurityDeny => "20-security-deny",
            Tier::ProviderAllow => "30-provider-allow",
            Tier::ProjectAllow => "40-project-allow",
            Tier::Live => "live",
        }
    }
}

/// The entries of every tier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TierSet {
    pub override_: Vec<Entry>,
    pub security_deny: Vec<Entry>,
    pub provider_allow: Vec<Entry>,
    pub project_allow: Vec<Entry>,
    pub live: Vec<Entry>,
}

impl TierSet {
    pub fn get(&self, tier: Tier) -> &[Entry] {
        match tier {
            Tier::Override => &self.override_,
            Tier::SecurityDeny => &self.security_deny,
            Tier::ProviderAllow => &self.provider_allow,
            Tier::ProjectAllow => &self.project_allow,
            Tier::Live => &self.live,
        }
    }

    pub fn get_mut(&mut self, tier: Tier) -> &mut Vec<Entry> {
        match tier {
            Tier::Override => &mut self.override_,
            Tier::SecurityDeny => &mut self.security_deny,
            Tier::ProviderAllow => &mut self.provider_allow,
            Tier::ProjectAllow => &mut self.project_allow,
            Tier::Live => &mut self.live,
        }
    }

    /// Compute the effective policy.
    pub fn effective(&self) -> Effective {
        let targets = |entries: &[&[Entry]], action: Action| -> Vec<Target> {
            unique(entries.iter().flat_map(|es| es.iter()).filter(|e| e.action == action).map(|e| e.target.clone()))
        };
        let denies = targets(&[&self.security_deny, &self.live], Action::Deny);
        let denied: HashSet<&Target> = denies.iter().collect();
        let allows: Vec<Target> = targets(&[&self.provider_allow, &self.project_allow, &self.live], Action::Allow)
            .into_iter()
            .filter(|t| !denied.contains(t))
            .collect();
        let overrides = targets(&[&self.override_], Action::Allow);
        Effective { allows, denies, overrides }
    }
}

/// What the tiers mean together. All lists are de-duplicated and keep first-seen order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effective {
    /// Allow targets of t30, t40 and live that no deny names.
    pub allows: Vec<Target>,
    /// Deny targets of t20 and live.
    pub denies: Vec<Target>,
    /// Allow targets of t10.
    pub overrides: Vec<Target>,
}

impl Effective {
    /// Allow targets to resolve (everything but `localhost`).
    pub fn allow_targets(&self) -> Vec<&Target> {
        self.allows.iter().filter(|t| **t != Target::Localhost).collect()
    }

    /// Allowed domains (deny domains were removed already): what dnsmasq follows.
    pub fn allow_domains(&self) -> Vec<&str> {
        self.allows.iter().filter_map(Target::as_domain).collect()
    }

    /// Allowed domains that start with `*.`: only the live DNS tier can follow them.
    pub fn wildcard_domains(&self) -> Vec<&str> {
        self.allow_domains().into_iter().filter(|d| d.starts_with("*.")).collect()
    }

    pub fn deny_ips(&self) -> Vec<IpNet> {
        self.denies.iter().filter_map(Target::as_net).collect()
    }

    pub fn deny_domains(&self) -> Vec<&str> {
        self.denies.iter().filter_map(Target::as_domain).collect()
    }

    pub fn override_ips(&self) -> Vec<IpNet> {
        self.overrides.iter().filter_map(Target::as_net).collect()
    }

    pub fn override_domains(&self) -> Vec<&str> {
        self.overrides.iter().filter_map(Target::as_domain).collect()
    }

    /// t40 seed: resolved allow addresses, then allow IP literals, minus anything a denied
    /// address or network covers.
    pub fn t40_seed(&self, resolved: &[IpNet]) -> Vec<IpNet> {
        // Single-address denies in a hash set, so large allow and deny lists stay linear.
        let (hosts, nets): (Vec<IpNet>, Vec<IpNet>) = self.deny_ips().into_iter().partition(IpNet::is_host);
        let hosts: HashSet<IpNet> = hosts.into_iter().collect();
        let denied = |n: &IpNet| hosts.contains(n) || nets.iter().any(|d| d.contains(n));
        let literals = self.allows.iter().filter_map(Target::as_net);
        unique(resolved.iter().copied().chain(literals).filter(|n| !denied(n)))
    }

    /// t20 seed: denied IP literals, then resolved deny domains.
    pub fn t20_seed(&self, deny_resolved: &[IpNet]) -> Vec<IpNet> {
        unique(self.deny_ips().into_iter().chain(deny_resolved.iter().copied()))
    }

    /// t10 seed: override IP literals, then resolved override domains. Denies do not apply.
    pub fn t10_seed(&self, override_resolved: &[IpNet]) -> Vec<IpNet> {
        unique(self.override_ips().into_iter().chain(override_resolved.iter().copied()))
    }
}

fn unique<T: Clone + Eq + std::hash::Hash>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items.filter(|i| seen.insert(i.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grammar::parse_policy;

    fn tiers(t10: &str, t20: &str, t30: &str, t40: &str, live: &str) -> TierSet {
        let p = |s: &str| parse_policy(s, "test").unwrap_or_default();
        TierSet {
            override_: p(t10),
            security_deny: p(t20),
            provider_allow: p(t30),
            project_allow: p(t40),
            live: p(live),
        }
    }

    fn strs<T: ToString>(v: &[T]) -> Vec<String> {
        v.iter().map(T::to_string).collect()
    }

    #[test]
    fn a_deny_removes_the_target_from_every_allow_tier() {
        let t = tiers(
            "+10.9.9.9\n",
            "-evil.example\n-1.1.1.1\n",
            "+evil.example\n+p.example\n",
            "+1.1.1.1\n+a.example\n+a.example\n",
            "+live.example\n-a.example\n",
        );
        let e = t.effective();
        assert_eq!(strs(&e.allows), ["p.example", "live.example"]);
        assert_eq!(strs(&e.denies), ["evil.example", "1.1.1.1", "a.example"]);
        assert_eq!(strs(&e.overrides), ["10.9.9.9"]);
    }

    #[test]
    fn seeds() {
        let t = tiers(
            "+10.9.9.9\n+ov.example\n",
            "-198.51.100.0/28\n",
            "",
            "+198.51.100.1\n+198.51.100.77\n+x.example\n",
            "",
        );
        let e = t.effective();
        let resolved = [
            "198.51.100.5".parse().unwrap_or_else(|_| unreachable!()),
            "198.51.100.99".parse().unwrap_or_else(|_| unreachable!()),
        ];
        assert_eq!(strs(&e.t40_seed(&resolved)), ["198.51.100.99", "198.51.100.77"]);
        assert_eq!(strs(&e.t20_seed(&resolved[..1])), ["198.51.100.0/28", "198.51.100.5"]);
        assert_eq!(strs(&e.t10_seed(&[])), ["10.9.9.9"]);
        assert_eq!(e.override_domains(), ["ov.example"]);
    }

    #[test]
    fn wildcards_and_localhost() {
        let t = tiers("", "", "", "+*.example.com\n+localhost:8080\n+plain.example\n", "");
        let e = t.effective();
        assert_eq!(e.wildcard_domains(), ["*.example.com"]);
        assert_eq!(e.allow_targets().len(), 2);
    }
}
