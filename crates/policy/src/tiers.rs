//! Policy tiers and the effective policy they yield (state-and-config.md §5).
//!
//! Authority, highest first: t10 override (break-glass allow, above the deny), t20
//! security-deny, t30 provider-allow, t40 project-allow. The live overlay holds the
//! operator's runtime allows and denies. A deny in t20 or live removes the same target from
//! every allow tier (t30, t40, live); the override tier is above the deny by design.

use std::collections::HashSet;

use crate::grammar::{Action, Entry};
use crate::ports::Ports;
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
        // De-duplicated by reference, so only what is kept is cloned (a large allowlist is
        // mostly distinct entries).
        let whole = |entries: &[&[Entry]], action: Action| -> Vec<Target> {
            let mut seen = HashSet::new();
            pick(entries, action)
                .filter(|e| scope_of(e).is_none())
                .map(|e| &e.target)
                .filter(|t| seen.insert(*t))
                .cloned()
                .collect()
        };
        let scoped = |entries: &[&[Entry]], action: Action| -> Vec<(Target, Ports)> {
            let mut seen = HashSet::new();
            pick(entries, action)
                .filter_map(|e| scope_of(e).map(|p| (&e.target, p)))
                .filter(|k| seen.insert(*k))
                .map(|(t, p)| (t.clone(), p.clone()))
                .collect()
        };
        let allow_tiers: [&[Entry]; 3] = [&self.provider_allow, &self.project_allow, &self.live];
        let deny_tiers: [&[Entry]; 2] = [&self.security_deny, &self.live];
        let denies = whole(&deny_tiers, Action::Deny);
        let denied: HashSet<&Target> = denies.iter().collect();
        let allows: Vec<Target> =
            whole(&allow_tiers, Action::Allow).into_iter().filter(|t| !denied.contains(t)).collect();
        // A scoped deny withdraws the allow with exactly its target and ports; for an address
        // it also stays a deny in the kernel, ahead of every allow. A name's deny that
        // withdrew an allow has done its work; one that withdrew none stays (and is refused
        // downstream: the resolver pins allows only).
        let scoped_denies = scoped(&deny_tiers, Action::Deny);
        let all_scoped_allows = scoped(&allow_tiers, Action::Allow);
        let (keep_allows, keep_denies): (Vec<bool>, Vec<bool>) = {
            let withdrawn: HashSet<&(Target, Ports)> = scoped_denies.iter().collect();
            let allowed_names: HashSet<&(Target, Ports)> =
                all_scoped_allows.iter().filter(|tp| tp.0.as_domain().is_some()).collect();
            (
                all_scoped_allows.iter().map(|tp| !denied.contains(&tp.0) && !withdrawn.contains(tp)).collect(),
                scoped_denies.iter().map(|tp| tp.0.as_domain().is_none() || !allowed_names.contains(tp)).collect(),
            )
        };
        let masked = |list: Vec<(Target, Ports)>, keep: Vec<bool>| -> Vec<(Target, Ports)> {
            list.into_iter().zip(keep).filter_map(|(tp, k)| k.then_some(tp)).collect()
        };
        let scoped_allows = masked(all_scoped_allows, keep_allows);
        let scoped_denies = masked(scoped_denies, keep_denies);
        Effective {
            allows,
            scoped_allows,
            scoped_denies,
            denies,
            overrides: whole(&[&self.override_], Action::Allow),
            scoped_overrides: scoped(&[&self.override_], Action::Allow),
        }
    }
}

/// The port scope an entry is limited to; `localhost` entries (whose port is not enforced
/// here) count as whole.
fn pick<'a>(entries: &'a [&'a [Entry]], action: Action) -> impl Iterator<Item = &'a Entry> + 'a {
    entries.iter().flat_map(|es| es.iter()).filter(move |e| e.action == action)
}

fn scope_of(e: &Entry) -> Option<&Ports> {
    e.ports.as_ref().filter(|_| e.target != Target::Localhost)
}

/// What the tiers mean together. All lists are de-duplicated and keep first-seen order.
/// "Whole" entries name a target on every port and protocol; scoped ones carry [`Ports`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effective {
    /// Whole allow targets of t30, t40 and live that no whole deny names.
    pub allows: Vec<Target>,
    /// Scoped allows of t30, t40 and live whose target no whole deny names.
    pub scoped_allows: Vec<(Target, Ports)>,
    /// Whole deny targets of t20 and live.
    pub denies: Vec<Target>,
    /// Scoped denies of t20 and live.
    pub scoped_denies: Vec<(Target, Ports)>,
    /// Whole allow targets of t10.
    pub overrides: Vec<Target>,
    /// Scoped allows of t10.
    pub scoped_overrides: Vec<(Target, Ports)>,
}

impl Effective {
    /// Allow targets to resolve (everything but `localhost`).
    pub fn allow_targets(&self) -> Vec<&Target> {
        self.allows.iter().filter(|t| **t != Target::Localhost).collect()
    }

    /// Allowed domains, whole (deny domains were removed already): what dnsmasq follows.
    pub fn allow_domains(&self) -> Vec<&str> {
        self.allows.iter().filter_map(Target::as_domain).collect()
    }

    /// Domains named with a port scope, in any tier: only the shield's resolver can pin
    /// the addresses it answers to ports.
    pub fn scoped_domains(&self) -> Vec<&str> {
        let all = self.scoped_allows.iter().chain(&self.scoped_denies).chain(&self.scoped_overrides);
        unique(all.filter_map(|(t, _)| t.as_domain()))
    }

    /// The scoped elements of one kind of tier that are addresses or networks.
    pub fn scoped_nets(list: &[(Target, Ports)]) -> Vec<(IpNet, Ports)> {
        list.iter().filter_map(|(t, p)| t.as_net().map(|n| (n, p.clone()))).collect()
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
    fn scoped_entries_are_their_own() {
        let t = tiers(
            "+198.51.100.9:22\n",
            "-198.51.100.1:25\n-gone.example\n",
            "",
            "+198.51.100.1\n+198.51.100.1:443\n+gone.example:443\n+a.example:80,443\n+localhost:8080\n",
            "+a.example:443,80\n+b.example:22\n-b.example:22\n",
        );
        let e = t.effective();
        assert_eq!(strs(&e.allows), ["198.51.100.1", "localhost"]);
        let sc = |v: &[(Target, Ports)]| v.iter().map(|(t, p)| format!("{t}:{p}")).collect::<Vec<_>>();
        assert_eq!(sc(&e.scoped_allows), ["198.51.100.1:443", "a.example:80,443"]);
        assert_eq!(sc(&e.scoped_denies), ["198.51.100.1:25"]);
        assert_eq!(sc(&e.scoped_overrides), ["198.51.100.9:22"]);
        assert_eq!(e.scoped_domains(), ["a.example"]);
        assert_eq!(Effective::scoped_nets(&e.scoped_allows).len(), 1);
    }

    #[test]
    fn wildcards_and_localhost() {
        let t = tiers("", "", "", "+*.example.com\n+localhost:8080\n+plain.example\n", "");
        let e = t.effective();
        assert_eq!(e.wildcard_domains(), ["*.example.com"]);
        assert_eq!(e.allow_targets().len(), 2);
    }
}
