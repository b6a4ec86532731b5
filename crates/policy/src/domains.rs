//! Which names the shield's resolver answers: the domain rules of an effective policy.
//!
//! A plain name `d` covers `d` and every name under it (what the reference's dnsmasq tier
//! did, and what the bundled profiles rely on: `pool.ntp.org` for `0.pool.ntp.org`); a
//! wildcard `*.d` covers only the names strictly under `d`. The most specific rule wins;
//! at the same name an override beats a deny, and a deny beats an allow.

use std::collections::HashMap;

use crate::ports::Ports;
use crate::tiers::Effective;

/// What the rules say of a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainVerdict {
    /// Allowed (by an allow or an override rule): resolve it.
    Allowed,
    /// Denied: answered as nonexistent.
    Denied,
    /// On no list: answered as nonexistent.
    Unlisted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Allow,
    Deny,
    Override,
}

/// The rules of one slot: the strongest kind, and for allows whether one is whole and the
/// port scopes of the scoped ones.
#[derive(Debug, Clone, Default)]
struct Slot {
    kind: Option<Kind>,
    whole_allow: bool,
    ports: Vec<Ports>,
}

/// One name's rules: for the name itself and (wildcards) for what is under it.
#[derive(Debug, Clone, Default)]
struct At {
    /// The rules covering the name and its subdomains.
    apex: Slot,
    /// The wildcard rules (`*.name`): only what is under the name.
    under: Slot,
}

/// The ports an allowed name's answers open: every port, or only these scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameScope {
    Whole,
    Ports(Vec<Ports>),
}

/// The domain rules of an effective policy, ready for lookups (a hash probe per label).
#[derive(Debug, Clone, Default)]
pub struct DomainRules {
    rules: HashMap<String, At>,
}

/// The longest name the wire format carries, without its final dot.
pub const MAX_NAME: usize = 253;

impl DomainRules {
    pub fn new(e: &Effective) -> Self {
        let mut r = DomainRules::default();
        for (list, kind) in
            [(e.allow_domains(), Kind::Allow), (e.deny_domains(), Kind::Deny), (e.override_domains(), Kind::Override)]
        {
            for d in list {
                r.add(d, kind, None);
            }
        }
        for (t, ports) in &e.scoped_allows {
            if let Some(d) = t.as_domain() {
                r.add(d, Kind::Allow, Some(ports));
            }
        }
        r
    }

    fn add(&mut self, domain: &str, kind: Kind, ports: Option<&Ports>) {
        let d = domain.to_ascii_lowercase();
        let (name, wild) = match d.strip_prefix("*.") {
            Some(rest) => (rest.to_string(), true),
            None => (d, false),
        };
        let at = self.rules.entry(name).or_default();
        let slot = if wild { &mut at.under } else { &mut at.apex };
        slot.kind = slot.kind.max(Some(kind));
        match ports {
            Some(p) if !slot.ports.contains(p) => slot.ports.push(p.clone()),
            Some(_) => {}
            None => slot.whole_allow |= kind != Kind::Deny,
        }
    }

    /// No domain rule at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The verdict on `name` (ASCII, any case, no final dot). Names the wire format cannot
    /// carry, and names with an empty label or a byte other than a letter, digit, `-` or
    /// `_`, are unlisted.
    pub fn decide(&self, name: &str) -> DomainVerdict {
        self.judge(name).0
    }

    /// The verdict on `name` and, when it is allowed, the ports its answers open.
    pub fn judge(&self, name: &str) -> (DomainVerdict, NameScope) {
        let unlisted = (DomainVerdict::Unlisted, NameScope::Whole);
        if !plausible(name) {
            return unlisted;
        }
        let lower = name.to_ascii_lowercase();
        let mut suffix = lower.as_str();
        let mut exact = true;
        loop {
            if let Some(at) = self.rules.get(suffix) {
                // The most specific level with a rule that covers the name decides.
                let slots: &[&Slot] = if exact { &[&at.apex] } else { &[&at.apex, &at.under] };
                if let Some(kind) = slots.iter().filter_map(|s| s.kind).max() {
                    return match kind {
                        Kind::Override => (DomainVerdict::Allowed, NameScope::Whole),
                        Kind::Deny => (DomainVerdict::Denied, NameScope::Whole),
                        Kind::Allow => {
                            let allowing = slots.iter().filter(|s| s.kind == Some(Kind::Allow));
                            let scope = if allowing.clone().any(|s| s.whole_allow) {
                                NameScope::Whole
                            } else {
                                NameScope::Ports(allowing.flat_map(|s| s.ports.iter().cloned()).collect())
                            };
                            (DomainVerdict::Allowed, scope)
                        }
                    };
                }
            }
            match suffix.split_once('.') {
                Some((_, parent)) => {
                    suffix = parent;
                    exact = false;
                }
                None => return unlisted,
            }
        }
    }

    /// `name` falls under `rule` (a plain name or a `*.` wildcard, as the policy writes it).
    pub fn covers(rule: &str, name: &str) -> bool {
        let rule = rule.to_ascii_lowercase();
        let name = name.to_ascii_lowercase();
        match rule.strip_prefix("*.") {
            Some(base) => {
                name.len() > base.len() + 1 && name.ends_with(base) && name[..name.len() - base.len()].ends_with('.')
            }
            None => name == rule || (name.ends_with(&rule) && name[..name.len() - rule.len()].ends_with('.')),
        }
    }
}

/// Fits the wire format and holds only letters, digits, `-` and `_` between single dots.
fn plausible(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grammar::parse_policy;
    use crate::tiers::TierSet;

    fn rules(allow: &str, deny: &str, over: &str) -> DomainRules {
        let p = |t: &str| parse_policy(t, "t").unwrap_or_else(|e| panic!("{e}"));
        let tiers =
            TierSet { project_allow: p(allow), security_deny: p(deny), override_: p(over), ..TierSet::default() };
        DomainRules::new(&tiers.effective())
    }

    #[test]
    fn names_subdomains_and_wildcards() {
        use DomainVerdict::*;
        let r = rules("+pool.ntp.org\n+*.wild.test\n+Mixed.Case.test\n", "-bad.pool.ntp.org\n-*.x.wild.test\n", "");
        assert_eq!(r.decide("pool.ntp.org"), Allowed);
        assert_eq!(r.decide("0.POOL.ntp.org"), Allowed);
        assert_eq!(r.decide("bad.pool.ntp.org"), Denied);
        assert_eq!(r.decide("a.bad.pool.ntp.org"), Denied);
        assert_eq!(r.decide("ntp.org"), Unlisted);
        assert_eq!(r.decide("wild.test"), Unlisted, "a wildcard is only what is under its name");
        assert_eq!(r.decide("a.wild.test"), Allowed);
        assert_eq!(r.decide("a.b.wild.test"), Allowed);
        assert_eq!(r.decide("x.wild.test"), Allowed, "*.x.wild.test denies only what is under x");
        assert_eq!(r.decide("y.x.wild.test"), Denied);
        assert_eq!(r.decide("mixed.case.test"), Allowed);
        assert_eq!(r.decide("exfil.example"), Unlisted);
        for odd in ["", ".", "a..pool.ntp.org", "a b.pool.ntp.org", "\u{7}.pool.ntp.org", "é.pool.ntp.org"] {
            assert_eq!(r.decide(odd), Unlisted, "{odd:?}");
        }
        let long = format!("{}.pool.ntp.org", "a.".repeat(120));
        assert_eq!(r.decide(&long), Unlisted, "longer than the wire format carries");
        assert_eq!(r.decide(&format!("{}.pool.ntp.org", "a".repeat(64))), Unlisted);
    }

    #[test]
    fn a_deny_removes_the_allow_and_an_override_beats_a_deny() {
        use DomainVerdict::*;
        let r = rules("+same.test\n", "-same.test\n-corp.test\n", "+api.corp.test\n");
        assert_eq!(r.decide("same.test"), Denied);
        assert_eq!(r.decide("corp.test"), Denied);
        assert_eq!(r.decide("api.corp.test"), Allowed);
        assert_eq!(r.decide("v1.api.corp.test"), Allowed);
        let r = rules("", "-x.test\n", "+x.test\n");
        assert_eq!(r.decide("x.test"), Allowed);
        assert!(rules("", "", "").is_empty());
    }

    #[test]
    fn scoped_allows_pin_ports() {
        let r = rules("+api.test:443\n+api.test:8443\n+*.cdn.test:443\n+cdn.test\n+big.test\n+x.big.test:22\n", "", "");
        let ports = |name: &str| match r.judge(name) {
            (DomainVerdict::Allowed, NameScope::Whole) => "whole".to_string(),
            (DomainVerdict::Allowed, NameScope::Ports(p)) => {
                p.iter().map(Ports::to_string).collect::<Vec<_>>().join(" ")
            }
            (v, _) => format!("{v:?}"),
        };
        assert_eq!(ports("api.test"), "443 8443");
        assert_eq!(ports("v1.api.test"), "443 8443");
        assert_eq!(ports("cdn.test"), "whole");
        assert_eq!(ports("a.cdn.test"), "whole", "the plain rule at the same level is whole");
        assert_eq!(ports("big.test"), "whole");
        assert_eq!(ports("x.big.test"), "22", "the most specific level decides");
        assert_eq!(ports("other.test"), "Unlisted");
    }

    #[test]
    fn coverage_of_a_rule() {
        assert!(DomainRules::covers("example.com", "example.com"));
        assert!(DomainRules::covers("example.com", "a.Example.com"));
        assert!(!DomainRules::covers("example.com", "badexample.com"));
        assert!(DomainRules::covers("*.example.com", "a.example.com"));
        assert!(!DomainRules::covers("*.example.com", "example.com"));
        assert!(!DomainRules::covers("*.example.com", "aexample.com"));
    }
}
