//! The DNS rebind guard: an address that a DNS answer names is never trusted when it lies in
//! a private, loopback, link-local, shared (CGNAT) or cloud-metadata range, unless the
//! operator allowed that range (or part of it) explicitly.
//!
//! A name's owner controls its answers; without the guard, allowlisting `example.com` would
//! let whoever runs its DNS point the container at 169.254.169.254 or the host's LAN.

use std::net::IpAddr;

use crate::ranges::INTERNAL;
use crate::target::IpNet;

/// IPv6 prefixes that carry an IPv4 address, and where: the well-known NAT64 prefix and the
/// IPv4-compatible block (the last 32 bits), 6to4 (bits 16 to 47). Such an address leads to
/// its IPv4 address, so it is guarded exactly when that one is (DNS64 keeps working for
/// public addresses).
const EMBEDDING: [(u128, u8, u8); 3] = [(0x0064_ff9b << 96, 96, 96), (0, 96, 96), (0x2002 << 112, 16, 16)];

/// Every guarded network: the internal ranges (a range inside another one left out), and
/// each guarded IPv4 range as it appears inside the IPv4-carrying IPv6 prefixes.
fn guarded() -> impl Iterator<Item = IpNet> {
    static GUARDED: std::sync::OnceLock<Vec<IpNet>> = std::sync::OnceLock::new();
    GUARDED.get_or_init(guarded_table).iter().copied()
}

/// [`guarded`], computed once (every DNS answer is checked against it).
fn guarded_table() -> Vec<IpNet> {
    let all: Vec<IpNet> = INTERNAL.iter().filter_map(crate::ranges::net).collect();
    let outer: Vec<IpNet> = all.iter().copied().filter(|n| !all.iter().any(|o| o != n && o.contains(n))).collect();
    let v4: Vec<IpNet> = outer.iter().copied().filter(IpNet::is_ipv4).collect();
    let embedded: Vec<IpNet> = EMBEDDING
        .iter()
        .flat_map(|&(base, prefix, shift_from)| {
            v4.iter().filter_map(move |n| {
                let IpAddr::V4(a) = n.addr() else { return None };
                let bits = base | (u128::from(u32::from(a)) << (128 - u32::from(shift_from) - 32));
                IpNet::new(IpAddr::V6(bits.into()), prefix + n.prefix())
            })
        })
        .collect();
    outer.into_iter().chain(embedded).collect()
}

/// True when a DNS answer naming `addr` must not be trusted: it lies in a guarded range and
/// no `exempt` network (the operator's explicit allows) covers it.
pub fn is_guarded(addr: IpAddr, exempt: &[IpNet]) -> bool {
    let host = IpNet::host(addr);
    guarded().any(|g| g.contains(&host)) && !exempt.iter().any(|e| e.contains(&host))
}

/// The guarded ranges minus every `exempt` network, as a short list of networks (what a
/// resolver is told to refuse). Sorted: IPv4 first, then by address.
pub fn guarded_ranges(exempt: &[IpNet]) -> Vec<IpNet> {
    let mut out = Vec::new();
    for g in guarded() {
        subtract(g, exempt, &mut out);
    }
    out.sort();
    out
}

/// Push the parts of `net` that no `exempt` network covers.
fn subtract(net: IpNet, exempt: &[IpNet], out: &mut Vec<IpNet>) {
    if exempt.iter().any(|e| e.contains(&net)) {
        return;
    }
    if !exempt.iter().any(|e| net.contains(e)) {
        out.push(net);
        return;
    }
    // An exempt network lies strictly inside: split in halves and look again.
    let (lo, hi) = halves(net);
    subtract(lo, exempt, out);
    subtract(hi, exempt, out);
}

fn halves(net: IpNet) -> (IpNet, IpNet) {
    let p = net.prefix() + 1;
    let hi = match net.addr() {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a) | (1u32 << (32 - p))).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) | (1u128 << (128 - p))).into()),
    };
    let half = |a| IpNet::new(a, p).unwrap_or(net);
    (half(net.addr()), half(hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn private_loopback_link_local_and_metadata_are_guarded() {
        for a in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:10.0.0.1",
            "168.63.129.16",
            "192.0.0.192",
            "224.0.0.251",
            "255.255.255.255",
            "ff02::fb",
            "64:ff9b::a00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "::a00:1",
            "2002:a00:1::1",
            "2002:7f00:1::",
        ] {
            assert!(is_guarded(ip(a), &[]), "{a}");
        }
        for a in [
            "198.51.100.10",
            "8.8.8.8",
            "172.32.0.1",
            "2001:db8::1",
            "100.128.0.1",
            "168.63.129.17",
            "64:ff9b::c633:640a",
            "2002:c633:640a::1",
        ] {
            assert!(!is_guarded(ip(a), &[]), "{a}");
        }
    }

    #[test]
    fn explicit_allows_exempt_exactly_what_they_cover() {
        let exempt = [net("10.222.222.0/24")];
        assert!(!is_guarded(ip("10.222.222.10"), &exempt));
        assert!(is_guarded(ip("10.222.223.10"), &exempt));
        let ranges = guarded_ranges(&exempt);
        assert!(!ranges.iter().any(|r| r.contains(&net("10.222.222.10"))));
        assert!(ranges.iter().any(|r| r.contains(&net("10.222.223.10"))));
        assert!(ranges.iter().any(|r| r.contains(&net("10.0.0.1"))));
        // The remainder of a /8 around a /24 is 16 networks.
        assert_eq!(ranges.iter().filter(|r| net("10.0.0.0/8").contains(r)).count(), 16);
        // A single exempt address leaves the rest of its range guarded.
        let one = guarded_ranges(&[net("fd00:ec2::254")]);
        assert!(!one.iter().any(|r| r.contains(&net("fd00:ec2::254"))));
        assert!(one.iter().any(|r| r.contains(&net("fd00:ec2::253"))));
        // An exemption covering a whole range removes it.
        assert!(!guarded_ranges(&[net("10.0.0.0/7")]).iter().any(|r| r.contains(&net("10.0.0.1"))));
    }

    #[test]
    fn without_exemptions_the_ranges_are_the_table() {
        let ranges: Vec<String> = guarded_ranges(&[]).iter().map(IpNet::to_string).collect();
        // A host inside a guarded network is not listed again; one outside it is.
        for inner in ["192.0.0.192", "100.100.100.200", "fd00:ec2::254"] {
            assert!(!ranges.iter().any(|r| r == inner), "{inner}");
        }
        assert!(ranges.iter().any(|r| r == "168.63.129.16"));
        assert_eq!(ranges.first().map(String::as_str), Some("0.0.0.0/8"));
    }
}
