//! Port scopes of policy entries: what follows the host's `:` (`443`, `80,443,8000-8100`,
//! `53/udp`).
//!
//! ```text
//! ports = item *( "," item ) [ "/" proto ]     item  = port | port "-" port
//! proto = "tcp" | "udp"                         port  = 1-65535, decimal
//! ```
//! Without `/proto` the scope is TCP. The ranges are kept sorted and merged, so two spellings
//! of the same scope are equal and render the same.

use std::fmt;

use crate::target::{parse_port, TargetError};

/// At most this many ports or ranges in one entry.
pub const MAX_ITEMS: usize = 32;

/// The transport protocol of a port scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }

    pub fn from_number(n: u8) -> Option<Proto> {
        [Proto::Tcp, Proto::Udp].into_iter().find(|p| p.number() == n)
    }
}

/// An inclusive range of ports, `lo <= hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }

    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// The ports of one protocol an entry names: non-empty, sorted, disjoint and not adjacent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ports {
    proto: Proto,
    ranges: Vec<PortRange>,
}

impl Ports {
    /// One port of one protocol.
    pub fn single(proto: Proto, port: u16) -> Ports {
        Ports { proto, ranges: vec![PortRange { lo: port, hi: port }] }
    }

    /// Ranges of one protocol, merged; `None` when empty.
    pub fn new(proto: Proto, ranges: Vec<PortRange>) -> Option<Ports> {
        let ranges = merge(ranges);
        (!ranges.is_empty()).then_some(Ports { proto, ranges })
    }

    pub fn proto(&self) -> Proto {
        self.proto
    }

    pub fn ranges(&self) -> &[PortRange] {
        &self.ranges
    }

    /// True when a packet of protocol number `proto` to `port` is in scope.
    pub fn admits(&self, proto: u8, port: u16) -> bool {
        self.proto.number() == proto && self.ranges.iter().any(|r| r.contains(port))
    }

    /// Parse what follows the host's `:` (see the module's grammar).
    pub fn parse(raw: &str) -> Result<Ports, TargetError> {
        let (list, proto) = match raw.rsplit_once('/') {
            Some((list, p)) => (list, parse_proto(p)?),
            None => (raw, Proto::Tcp),
        };
        let items: Vec<&str> = list.split(',').collect();
        if items.len() > MAX_ITEMS {
            return Err(TargetError::TooManyPorts(items.len()));
        }
        let mut ranges = Vec::with_capacity(items.len());
        for item in items {
            let range = match item.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (parse_port(lo)?, parse_port(hi)?);
                    if lo > hi {
                        return Err(TargetError::InvalidPortRange(item.to_string()));
                    }
                    PortRange { lo, hi }
                }
                None => {
                    let p = parse_port(item)?;
                    PortRange { lo: p, hi: p }
                }
            };
            ranges.push(range);
        }
        Ports::new(proto, ranges).ok_or_else(|| TargetError::InvalidPort(raw.to_string()))
    }
}

fn parse_proto(raw: &str) -> Result<Proto, TargetError> {
    match raw {
        "tcp" => Ok(Proto::Tcp),
        "udp" => Ok(Proto::Udp),
        _ => Err(TargetError::InvalidProtocol(raw.to_string())),
    }
}

/// Sort and merge overlapping or adjacent ranges.
pub fn merge(mut ranges: Vec<PortRange>) -> Vec<PortRange> {
    ranges.sort();
    let mut out: Vec<PortRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if u32::from(r.lo) <= u32::from(last.hi) + 1 => last.hi = last.hi.max(r.hi),
            _ => out.push(r),
        }
    }
    out
}

/// `a` without the ports of `b` (both merged lists).
pub fn subtract(a: &[PortRange], b: &[PortRange]) -> Vec<PortRange> {
    let mut out = Vec::new();
    for r in a {
        let mut lo = u32::from(r.lo);
        let hi = u32::from(r.hi);
        for cut in b.iter().filter(|c| c.overlaps(r)) {
            let (clo, chi) = (u32::from(cut.lo), u32::from(cut.hi));
            if clo > lo {
                out.push(range(lo, clo - 1));
            }
            lo = lo.max(chi + 1);
        }
        if lo <= hi {
            out.push(range(lo, hi));
        }
    }
    out
}

fn range(lo: u32, hi: u32) -> PortRange {
    // Both come from u16 ports and lie between two of them.
    PortRange { lo: u16::try_from(lo).unwrap_or(u16::MAX), hi: u16::try_from(hi).unwrap_or(u16::MAX) }
}

/// Canonical text: the ranges joined by `,`, then `/udp` for UDP (TCP is the default).
impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            r.fmt(f)?;
        }
        if self.proto == Proto::Udp {
            f.write_str("/udp")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        Ports::parse(s).map(|p| p.to_string()).unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn forms() {
        assert_eq!(p("443"), "443");
        assert_eq!(p("443/tcp"), "443");
        assert_eq!(p("53/udp"), "53/udp");
        assert_eq!(p("8100,80,8000-8099,443"), "80,443,8000-8100");
        assert_eq!(p("1-65535"), "1-65535");
        assert_eq!(p("5-5"), "5");
        assert_eq!(p("10-20,15-30,31"), "10-31");
    }

    #[test]
    fn errors() {
        for (bad, says) in [
            ("0", "Invalid port: '0'"),
            ("65536", "Invalid port: '65536'"),
            ("", "Invalid port: ''"),
            ("80,", "Invalid port: ''"),
            ("-80", "Invalid port: ''"),
            ("80-", "Invalid port: ''"),
            ("90-80", "Invalid port range: '90-80'"),
            ("80/icmp", "Invalid protocol: 'icmp'"),
            ("80/TCP", "Invalid protocol: 'TCP'"),
            ("80/", "Invalid protocol: ''"),
            ("80/tcp/udp", "Invalid port: '80/tcp'"),
            ("+80", "Invalid port: '+80'"),
            ("1-2-3", "Invalid port: '2-3'"),
        ] {
            let got = p(bad);
            assert!(got.starts_with(&format!("ERR {says}")), "{bad:?}: {got}");
        }
        let many = (1..=33).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        assert!(p(&many).contains("at most 32"), "{}", p(&many));
    }

    #[test]
    fn subtraction() {
        let r = |lo, hi| PortRange { lo, hi };
        assert_eq!(subtract(&[r(1, 100)], &[r(10, 20), r(50, 60)]), [r(1, 9), r(21, 49), r(61, 100)]);
        assert_eq!(subtract(&[r(1, 10)], &[r(1, 10)]), []);
        assert_eq!(subtract(&[r(5, 10), r(20, 30)], &[r(1, 25)]), [r(26, 30)]);
        assert_eq!(subtract(&[r(1, 65535)], &[r(65535, 65535)]), [r(1, 65534)]);
    }

    proptest::proptest! {
        #[test]
        fn rendering_reparses(items in proptest::collection::vec((1u16.., 0u16..50), 1..8), udp in proptest::prelude::any::<bool>()) {
            let ranges = items.iter().map(|(lo, w)| PortRange { lo: *lo, hi: lo.saturating_add(*w) }).collect();
            let ports = Ports::new(if udp { Proto::Udp } else { Proto::Tcp }, ranges).expect("non-empty");
            proptest::prop_assert_eq!(Ports::parse(&ports.to_string()), Ok(ports));
        }

        #[test]
        fn subtract_agrees_with_membership(a in proptest::collection::vec((1u16..200, 0u16..30), 1..5), b in proptest::collection::vec((1u16..200, 0u16..30), 0..5)) {
            let mk = |v: &[(u16, u16)]| merge(v.iter().map(|(lo, w)| PortRange { lo: *lo, hi: lo + w }).collect());
            let (a, b) = (mk(&a), mk(&b));
            let d = subtract(&a, &b);
            for port in 1u16..240 {
                let want = a.iter().any(|r| r.contains(port)) && !b.iter().any(|r| r.contains(port));
                proptest::prop_assert_eq!(d.iter().any(|r| r.contains(port)), want, "port {}", port);
            }
        }
    }
}
