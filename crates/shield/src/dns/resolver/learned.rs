//! Which name produced which learned address, for as long as the address may be in the
//! learned sets: what names a blocked destination, and what `deny C name` must cut.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use terok_shield_policy::DomainRules;

/// Names remembered at most (each with its addresses); expired ones go first.
const MAX_NAMES: usize = 16_384;

#[derive(Debug, Default)]
pub(crate) struct Learned {
    by_name: HashMap<String, HashMap<IpAddr, Instant>>,
    by_addr: HashMap<IpAddr, String>,
}

impl Learned {
    /// There is room to record `name`: it is known, or fewer than [`MAX_NAMES`] are (once
    /// expired ones are gone). A name that cannot be recorded must not be learned: a later
    /// `deny` would not find its addresses.
    pub fn has_room(&mut self, name: &str, now: Instant) -> bool {
        if self.by_name.len() < MAX_NAMES || self.by_name.contains_key(name) {
            return true;
        }
        self.prune(now);
        self.by_name.len() < MAX_NAMES
    }

    /// `name` answered `addrs`, allowed until `until` (the caller checked [`Learned::has_room`]).
    pub fn record(&mut self, name: &str, addrs: &[IpAddr], until: Instant) {
        let entry = self.by_name.entry(name.to_string()).or_default();
        for a in addrs {
            let t = entry.entry(*a).or_insert(until);
            *t = (*t).max(until);
            self.by_addr.insert(*a, name.to_string());
        }
    }

    fn prune(&mut self, now: Instant) {
        self.by_name.retain(|_, addrs| {
            addrs.retain(|_, until| *until > now);
            !addrs.is_empty()
        });
        let by_name = &self.by_name;
        self.by_addr.retain(|a, n| by_name.get(n).is_some_and(|addrs| addrs.contains_key(a)));
    }

    /// The name an address was last learned for.
    pub fn domain_of(&self, addr: &IpAddr) -> Option<&str> {
        self.by_addr.get(addr).map(String::as_str)
    }

    /// Everything learned for a name `rule` covers (`name` or `*.name`): the addresses, once
    /// each. Nothing is forgotten yet ([`Learned::forget_covered`] once they are out).
    pub fn covered(&self, rule: &str) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = self
            .by_name
            .iter()
            .filter(|(n, _)| DomainRules::covers(rule, n))
            .flat_map(|(_, addrs)| addrs.keys().copied())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Drop the bookkeeping of the names `rule` covers and of `addrs`.
    pub fn forget_covered(&mut self, rule: &str, addrs: &[IpAddr]) {
        self.by_name.retain(|n, _| !DomainRules::covers(rule, n));
        self.by_addr.retain(|a, _| !addrs.contains(a));
    }
}

/// Seconds as a duration (timeouts are whole seconds).
pub(crate) fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_addresses_and_what_a_deny_takes() {
        let now = Instant::now();
        let a: IpAddr = [198, 51, 100, 10].into();
        let b: IpAddr = [198, 51, 100, 11].into();
        let c: IpAddr = [198, 51, 100, 12].into();
        let mut l = Learned::default();
        l.record("x.example.com", &[a, b], now + secs(60));
        l.record("example.com", &[c], now + secs(60));
        l.record("other.test", &[b], now + secs(60));
        assert_eq!(l.domain_of(&a), Some("x.example.com"));
        assert_eq!(l.domain_of(&b), Some("other.test"));
        let wild = l.covered("*.example.com");
        assert_eq!(wild, vec![a, b]);
        l.forget_covered("*.example.com", &wild);
        assert_eq!(l.domain_of(&a), None);
        assert_eq!(l.covered("example.com"), vec![c]);
        l.forget_covered("example.com", &[c]);
        assert!(l.covered("example.com").is_empty());
        l.record("old.test", &[a], now);
        l.prune(now + secs(1));
        assert_eq!(l.domain_of(&a), None);
        for i in 0..MAX_NAMES {
            l.record(&format!("n{i}.test"), &[a], now + secs(60));
        }
        assert!(!l.has_room("one.more.test", now), "full: a new name must be refused, not forgotten");
        assert!(l.has_room("n1.test", now));
        assert!(l.has_room("one.more.test", now + secs(61)), "expired names make room");
    }
}
