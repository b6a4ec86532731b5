//! Targets of policy entries and operator verbs, parsed strictly.
//!
//! An address is never reinterpreted: `1.2.3` is an error, not `1.2.0.3`, and a value that
//! looks numeric is never treated as a domain name.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::ports::Ports;
use crate::sanitize::quoted;

/// Why a target was refused. Every message names the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    #[error("Invalid IP/CIDR: {}", quoted(.0))]
    InvalidIp(String),
    #[error("Invalid domain: {} ({reason})", quoted(.value))]
    InvalidDomain { value: String, reason: &'static str },
    #[error("Invalid port: {} (must be 1-65535)", quoted(.0))]
    InvalidPort(String),
    #[error("Invalid port range: {} (the first port must not exceed the last)", quoted(.0))]
    InvalidPortRange(String),
    #[error("Invalid protocol: {} (tcp or udp)", quoted(.0))]
    InvalidProtocol(String),
    #[error("too many ports: {0} (at most {max} ports or ranges in one entry)", max = crate::ports::MAX_ITEMS)]
    TooManyPorts(usize),
    #[error("empty target")]
    Empty,
}

/// An IPv4 or IPv6 network in canonical form: host bits cleared, full-length prefixes
/// meaning a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// A single address.
    pub fn host(addr: IpAddr) -> Self {
        let prefix = max_prefix(&addr);
        IpNet { addr, prefix }
    }

    /// A network; host bits are cleared. `None` when the prefix is longer than the family allows.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        if prefix > max_prefix(&addr) {
            return None;
        }
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Some(IpNet { addr, prefix })
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// True for a single address (`/32` or `/128`).
    pub fn is_host(&self) -> bool {
        self.prefix == max_prefix(&self.addr)
    }

    /// True when `other` lies entirely inside `self` (same family).
    pub fn contains(&self, other: &IpNet) -> bool {
        if self.prefix > other.prefix {
            return false;
        }
        match (self.addr, other.addr) {
            (IpAddr::V4(_), IpAddr::V4(b)) => IpNet::new(IpAddr::V4(b), self.prefix).map(|n| n.addr) == Some(self.addr),
            (IpAddr::V6(_), IpAddr::V6(b)) => IpNet::new(IpAddr::V6(b), self.prefix).map(|n| n.addr) == Some(self.addr),
            _ => false,
        }
    }

    /// The network's last address (its first is [`IpNet::addr`]).
    pub fn last(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let host = u32::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(a) | host).into())
            }
            IpAddr::V6(a) => {
                let host = u128::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(a) | host).into())
            }
        }
    }

    /// True when the two networks share at least one address.
    pub fn overlaps(&self, other: &IpNet) -> bool {
        self.contains(other) || other.contains(self)
    }
}

fn max_prefix(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

/// Canonical text: a bare address for single hosts, `addr/prefix` otherwise; IPv6 compressed
/// and lower-case. This is the form written to policy files and passed to nft.
impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_host() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl FromStr for IpNet {
    type Err = TargetError;

    /// Strict parse of an address or `addr/prefix`. Surrounding whitespace is trimmed.
    fn from_str(raw: &str) -> Result<Self, TargetError> {
        let s = raw.trim();
        let bad = || TargetError::InvalidIp(raw.to_string());
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = IpAddr::from_str(addr_text).map_err(|_| bad())?;
        // An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is the IPv4 address: a socket that
        // sends to it sends IPv4 packets, which an IPv6 set element never matches.
        if let IpAddr::V6(v6) = addr {
            if let Some(v4) = v6.to_ipv4_mapped() {
                let prefix = match prefix_text {
                    None => None,
                    Some(p) => Some(p.parse::<u8>().map_err(|_| bad())?),
                };
                match prefix {
                    None => return Ok(IpNet::host(IpAddr::V4(v4))),
                    Some(p) if (96..=128).contains(&p) && format!("{p}") == prefix_text.unwrap_or_default() => {
                        return IpNet::new(IpAddr::V4(v4), p - 96).ok_or_else(bad);
                    }
                    _ => {}
                }
            }
        }
        match prefix_text {
            None => Ok(IpNet::host(addr)),
            Some(p) => {
                let canonical_digits = !p.is_empty()
                    && p.len() <= 3
                    && p.bytes().all(|b| b.is_ascii_digit())
                    && (p == "0" || !p.starts_with('0'));
                if !canonical_digits {
                    return Err(bad());
                }
                let prefix: u8 = p.parse().map_err(|_| bad())?;
                IpNet::new(addr, prefix).ok_or_else(bad)
            }
        }
    }
}

/// What a policy entry or an operator verb names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// An address or network.
    Net(IpNet),
    /// A domain name, lower-cased; may start with `*.`.
    Domain(String),
    /// The reserved name `localhost` (only valid with a port in policy lines).
    Localhost,
}

impl Target {
    /// Parse a host (no port). Anything that looks like an address must be a valid one;
    /// everything else must be a valid domain name.
    pub fn parse(raw: &str) -> Result<Target, TargetError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(TargetError::Empty);
        }
        if s.eq_ignore_ascii_case("localhost") {
            return Ok(Target::Localhost);
        }
        if looks_like_ip(s) {
            return s.parse::<IpNet>().map(Target::Net).map_err(|_| TargetError::InvalidIp(raw.to_string()));
        }
        validate_domain(s).map(Target::Domain)
    }

    pub fn is_ip(&self) -> bool {
        matches!(self, Target::Net(_))
    }

    pub fn as_net(&self) -> Option<IpNet> {
        match self {
            Target::Net(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_domain(&self) -> Option<&str> {
        match self {
            Target::Domain(d) => Some(d),
            _ => None,
        }
    }

    /// True for `*.example.com`.
    pub fn is_wildcard(&self) -> bool {
        matches!(self, Target::Domain(d) if d.starts_with("*."))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Net(n) => n.fmt(f),
            Target::Domain(d) => f.write_str(d),
            Target::Localhost => f.write_str("localhost"),
        }
    }
}

/// A value is address-like when it contains `:` or `/`, or when its last dot-separated label
/// is numeric (decimal, or `0x` hex as `inet_aton` would read it). Such a value is never a
/// domain: either it parses as an address, or it is an error.
fn looks_like_ip(s: &str) -> bool {
    if s.contains(':') || s.contains('/') {
        return true;
    }
    let last = s.rsplit('.').next().unwrap_or(s);
    is_numeric_label(last)
}

fn is_numeric_label(label: &str) -> bool {
    let lower = label.to_ascii_lowercase();
    if let Some(hex) = lower.strip_prefix("0x") {
        return hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    !lower.is_empty() && lower.bytes().all(|b| b.is_ascii_digit())
}

/// Validate a domain name: `(*.)?label(.label)*`, labels of `[A-Za-z0-9_-]`, 1-63 characters,
/// at most 253 in all, no trailing dot. Returns it lower-cased.
pub fn validate_domain(raw: &str) -> Result<String, TargetError> {
    let bad = |reason| TargetError::InvalidDomain { value: raw.to_string(), reason };
    let s = raw.trim();
    let body = s.strip_prefix("*.").unwrap_or(s);
    if body.is_empty() {
        return Err(bad("empty name"));
    }
    if s.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    if body.ends_with('.') {
        return Err(bad("trailing dot"));
    }
    for label in body.split('.') {
        if label.is_empty() {
            return Err(bad("empty label"));
        }
        if label.len() > 63 {
            return Err(bad("label longer than 63 characters"));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(bad("only letters, digits, '-' and '_' are allowed"));
        }
    }
    if looks_like_ip(body) {
        return Err(TargetError::InvalidIp(raw.to_string()));
    }
    Ok(s.to_ascii_lowercase())
}

/// Parse a port: decimal digits only, 1-65535.
pub fn parse_port(raw: &str) -> Result<u16, TargetError> {
    let ok = !raw.is_empty() && raw.len() <= 5 && raw.bytes().all(|b| b.is_ascii_digit());
    match raw.parse::<u16>() {
        Ok(p) if ok && p != 0 => Ok(p),
        _ => Err(TargetError::InvalidPort(raw.to_string())),
    }
}

/// Split `host[:ports]` per the policy grammar: `[v6]` or `[v6]:ports` (a v6 network too,
/// `[2001:db8::/64]:443`); a bare host with two or more colons is an IPv6 literal without
/// ports; otherwise what follows the one `:` is the port scope ([`Ports::parse`]).
pub fn split_host_port(s: &str) -> Result<(&str, Option<Ports>), TargetError> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| TargetError::InvalidIp(s.to_string()))?;
        if !host.contains(':') {
            return Err(TargetError::InvalidIp(s.to_string()));
        }
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((host, Some(Ports::parse(p)?))),
                None => Err(TargetError::InvalidIp(s.to_string())),
            },
        };
    }
    if s.matches(':').count() >= 2 {
        return Ok((s, None));
    }
    match s.split_once(':') {
        Some((host, port)) => Ok((host, Some(Ports::parse(port)?))),
        None => Ok((s, None)),
    }
}

/// Parse `host[:ports]` as an operator verb takes it: the target, and its port scope.
pub fn parse_scoped(raw: &str) -> Result<(Target, Option<Ports>), TargetError> {
    let (host, ports) = split_host_port(raw.trim())?;
    Ok((Target::parse(host)?, ports))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> String {
        s.parse::<IpNet>().map(|n| n.to_string()).unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn strict_addresses() {
        assert_eq!(ip("1.2.3.4"), "1.2.3.4");
        assert_eq!(ip(" 1.2.3.4 "), "1.2.3.4");
        assert_eq!(ip("10.1.2.3/8"), "10.0.0.0/8");
        assert_eq!(ip("1.2.3.4/32"), "1.2.3.4");
        assert_eq!(ip("2001:0DB8::1"), "2001:db8::1");
        assert_eq!(ip("2001:db8::1/64"), "2001:db8::/64");
        assert_eq!(ip("::/0"), "::/0");
        // IPv4-mapped IPv6 is IPv4.
        assert_eq!(ip("::ffff:198.51.100.7"), "198.51.100.7");
        assert_eq!(ip("::FFFF:c633:6407"), "198.51.100.7");
        assert_eq!(ip("::ffff:198.51.100.0/120"), "198.51.100.0/24");
        assert_eq!(ip("::ffff:0:0/96"), "0.0.0.0/0");
        assert_eq!(ip("::ffff:0:0/95"), "::fffe:0:0/95");
        for bad in ["::ffff:1.2.3.4/129", "::ffff:1.2.3.4/0120", "::ffff:1.2.3.4/x"] {
            assert!(ip(bad).starts_with("Invalid IP/CIDR"), "{bad} -> {}", ip(bad));
        }
        for bad in [
            "1.2.3",
            "300.1.2.3",
            "10.0.0.0/33",
            "::gg",
            "01.2.3.4",
            "1.2.3.4/",
            "1.2.3.4/+8",
            "1.2.3.4/08",
            "::1/129",
            "1.2.3.4/8/8",
        ] {
            assert!(ip(bad).starts_with("Invalid IP/CIDR"), "{bad} -> {}", ip(bad));
        }
    }

    #[test]
    fn address_like_values_are_never_domains() {
        for bad in ["1.2.3", "300.1.2.3", "10.0.0.0/33", "::gg", "0x7f.1", "0x7f000001", "127.1", "4294967295", "a.b.1"]
        {
            match Target::parse(bad) {
                Err(TargetError::InvalidIp(v)) => assert_eq!(v, bad),
                other => panic!("{bad} -> {other:?}"),
            }
        }
    }

    #[test]
    fn domains() {
        assert_eq!(Target::parse("GitHub.COM"), Ok(Target::Domain("github.com".into())));
        assert!(Target::parse("*.example.com").map(|t| t.is_wildcard()).unwrap_or(false));
        assert_eq!(Target::parse("localhost"), Ok(Target::Localhost));
        assert_eq!(Target::parse("_srv.host-1.test"), Ok(Target::Domain("_srv.host-1.test".into())));
        for bad in ["example.com.", "a..b", "exa mple.com", "ex$ample.com", "*.", "é.com", "*.*.x.com"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        assert!(Target::parse(&format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn ports() {
        let tcp = |p| Some(Ports::single(crate::ports::Proto::Tcp, p));
        assert_eq!(split_host_port("example.com:443"), Ok(("example.com", tcp(443))));
        assert_eq!(split_host_port("[2001:db8::1]:443"), Ok(("2001:db8::1", tcp(443))));
        assert_eq!(split_host_port("[2001:db8::/64]:443"), Ok(("2001:db8::/64", tcp(443))));
        assert_eq!(split_host_port("198.51.100.0/24:443"), Ok(("198.51.100.0/24", tcp(443))));
        assert_eq!(split_host_port("[2001:db8::1]"), Ok(("2001:db8::1", None)));
        assert_eq!(split_host_port("2001:db8::1"), Ok(("2001:db8::1", None)));
        assert_eq!(split_host_port("1.2.3.4"), Ok(("1.2.3.4", None)));
        for bad in ["a:0", "a:65536", "a:", "a:+1", "a:x", "[::1]x", "[1.2.3.4]:80", "[::1"] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn containment() {
        let n = |s: &str| s.parse::<IpNet>().expect("valid");
        assert!(n("10.0.0.0/8").contains(&n("10.1.2.3")));
        assert!(!n("10.0.0.0/8").contains(&n("11.1.2.3")));
        assert!(!n("10.0.0.0/8").contains(&n("::1")));
        assert!(n("10.1.0.0/16").overlaps(&n("10.0.0.0/8")));
        assert!(n("2001:db8::/32").contains(&n("2001:db8:1::5")));
    }
}
