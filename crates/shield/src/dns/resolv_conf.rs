//! The host's resolv.conf: the nameservers it names, and the one a rootful container's DNS
//! goes to.

use std::net::IpAddr;

use super::DnsError;

/// The `nameserver` addresses of a resolv.conf text, in order (garbled ones skipped).
pub fn nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter_map(|a| a.parse().ok())
        .collect()
}

/// The host's first nameserver (`/etc/resolv.conf`), loopback included: where host-side
/// resolution asks.
pub fn host_first() -> Option<IpAddr> {
    std::fs::read_to_string("/etc/resolv.conf").ok().and_then(|t| nameservers(&t).into_iter().next())
}

/// The first usable nameserver for a rootful container: a non-loopback address from
/// `/etc/resolv.conf`, else from systemd-resolved's upstream list.
pub fn host_nameserver() -> Result<IpAddr, DnsError> {
    for file in ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"] {
        if let Ok(text) = std::fs::read_to_string(file) {
            if let Some(ip) = nameservers(&text).into_iter().find(|ip| !ip.is_loopback()) {
                return Ok(ip);
            }
        }
    }
    Err(DnsError::NoNameserver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let ns = nameservers("# c\nnameserver 127.0.0.53\nnameserver 10.255.255.53\nnameserver bogus\noptions x\n");
        assert_eq!(ns.len(), 2);
        assert!(ns[0].is_loopback() && !ns[1].is_loopback());
    }
}
