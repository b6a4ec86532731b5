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
    /// `name` answered `addrs`, allowed until `until`.
    pub fn record(&mut self, name: &str, addrs: &[IpAddr], until: Instant, now: Instant) {
        if self.by_name.len() >= MAX_NAMES && !self.by_name.contains_key(name) {
            self.prune(now);
            if self.by_name.len() >= MAX_NAMES {
                // Only bookkeeping is lost: the sets keep what they hold, and expire it.
                self.by_name.clear();
                self.by_addr.clear();
            }
        }
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

    /// Take out everything learned for a name `rule` covers (`name` or `*.name`): the
    /// addresses, once each.
    pub fn take_covered(&mut self, rule: &str) -> Vec<IpAddr> {
        let names: Vec<String> = self.by_name.keys().filter(|n| DomainRules::covers(rule, n)).cloned().collect();
        let mut out: Vec<IpAddr> = Vec::new();
        for n in names {
            if let Some(addrs) = self.by_name.remove(&n) {
                out.extend(addrs.into_keys());
            }
        }
        out.sort();
        out.dedup();
        self.by_addr.retain(|a, _| !out.contains(a));
        out
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
        l.record("x.example.com", &[a, b], now + secs(60), now);
        l.record("example.com", &[c], now + secs(60), now);
        l.record("other.test", &[b], now + secs(60), now);
        assert_eq!(l.domain_of(&a), Some("x.example.com"));
        assert_eq!(l.domain_of(&b), Some("other.test"));
        assert_eq!(l.take_covered("*.example.com"), vec![a, b]);
        assert_eq!(l.domain_of(&a), None);
        assert_eq!(l.take_covered("example.com"), vec![c]);
        assert!(l.take_covered("example.com").is_empty());
        l.record("old.test", &[a], now, now);
        l.prune(now + secs(1));
        assert_eq!(l.domain_of(&a), None);
    }
}
