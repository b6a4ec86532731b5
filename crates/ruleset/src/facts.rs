//! The network facts a ruleset depends on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU16;

use crate::constants::{PASTA_DNS, SLIRP_DNS, SLIRP_GATEWAY_V4, SLIRP_GATEWAY_V6};

/// Inputs of the generator besides the posture and the seeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetFacts {
    /// The only DNS server the container may reach directly (udp and tcp port 53); `None`
    /// when the shield's own resolver answers on loopback and no DNS leaves the container.
    pub dns: Option<IpAddr>,
    /// Host TCP ports reachable through the host-loopback map and the gateways.
    pub loopback_ports: Vec<NonZeroU16>,
    pub gateway_v4: Option<Ipv4Addr>,
    pub gateway_v6: Option<Ipv6Addr>,
}

impl NetFacts {
    /// pasta: DNS forwarder 169.254.1.1, host services through the 169.254.1.2 map, no gateways.
    pub fn pasta() -> Self {
        NetFacts { dns: Some(parse_const(PASTA_DNS)), loopback_ports: Vec::new(), gateway_v4: None, gateway_v6: None }
    }

    /// slirp4netns with its default network: DNS 10.0.2.3, gateways 10.0.2.2 and fd00::2.
    pub fn slirp4netns() -> Self {
        NetFacts {
            dns: Some(parse_const(SLIRP_DNS)),
            loopback_ports: Vec::new(),
            gateway_v4: Some(parse_const(SLIRP_GATEWAY_V4)),
            gateway_v6: Some(parse_const(SLIRP_GATEWAY_V6)),
        }
    }

    /// The same facts with host TCP `ports` reachable (zero is not a port and is skipped).
    pub fn with_loopback_ports(mut self, ports: &[u16]) -> Self {
        self.loopback_ports = ports.iter().copied().filter_map(NonZeroU16::new).collect();
        self
    }

    /// The same facts with no DNS server reachable (the shield's resolver serves the
    /// container from inside its namespace).
    pub fn without_dns(self) -> Self {
        NetFacts { dns: None, ..self }
    }

    /// The facts `preview` shows: the pasta forwarder, no ports, no gateways.
    pub fn preview() -> Self {
        Self::pasta()
    }
}

fn parse_const<T: std::str::FromStr>(s: &str) -> T {
    match s.parse() {
        Ok(v) => v,
        Err(_) => unreachable!("constant address {s} parses"),
    }
}
