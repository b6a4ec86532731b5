//! Resolving a name on the host (dns.md §6): `dig`/`drill` when present, else `getent`;
//! A and AAAA; 2 s per lookup; only lines that parse as addresses count.

use std::net::IpAddr;
use std::time::Duration;

use crate::{exec, tools};

const TIMEOUT: Duration = Duration::from_secs(2);

/// The addresses of `domain`, de-duplicated in answer order; empty when none resolved.
pub fn resolve(domain: &str) -> Vec<IpAddr> {
    let mut out = lookup_tool(domain);
    if out.is_empty() {
        out = getent(domain);
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|a| seen.insert(*a));
    out
}

fn lookup_tool(domain: &str) -> Vec<IpAddr> {
    if let Some(dig) = tools::find("dig") {
        let args = ["+short", "+time=2", "+tries=1", domain, "A", domain, "AAAA"];
        return exec::run(&dig, &args, TIMEOUT + Duration::from_secs(1))
            .map(|o| addresses(&o.stdout))
            .unwrap_or_default();
    }
    if let Some(drill) = tools::find("drill") {
        let mut v = Vec::new();
        for ty in ["A", "AAAA"] {
            if let Ok(o) = exec::run(&drill, &["-Q", domain, ty], TIMEOUT) {
                v.extend(addresses(&o.stdout));
            }
        }
        return v;
    }
    Vec::new()
}

fn getent(domain: &str) -> Vec<IpAddr> {
    let Some(getent) = tools::find("getent") else { return Vec::new() };
    let mut v = Vec::new();
    for db in ["ahostsv4", "ahostsv6"] {
        if let Ok(o) = exec::run(&getent, &[db, domain], TIMEOUT) {
            v.extend(getent_addresses(&o.stdout));
        }
    }
    v
}

/// First-column addresses of `getent ahosts*` lines whose socket type is `STREAM`.
fn getent_addresses(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("STREAM"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Lines that are exactly an address (dig prints CNAME targets too).
fn addresses(text: &str) -> Vec<IpAddr> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getent_keeps_stream_lines() {
        let text = "198.51.100.10   STREAM allowed.shield.test\n198.51.100.10   DGRAM  \n198.51.100.10   RAW    \nbogus STREAM x\n";
        assert_eq!(getent_addresses(text), ["198.51.100.10".parse::<IpAddr>().unwrap_or_else(|_| unreachable!())]);
    }

    #[test]
    fn only_addresses_count() {
        let got = addresses("cdn.example.net.\n198.51.100.10\n2001:db8::1\n;; timed out\n1.2.3\n");
        assert_eq!(
            got,
            [
                "198.51.100.10".parse::<IpAddr>().unwrap_or_else(|_| unreachable!()),
                "2001:db8::1".parse().unwrap_or_else(|_| unreachable!())
            ]
        );
    }
}
