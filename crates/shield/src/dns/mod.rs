//! DNS: how allowlisted domains reach the allow sets — the mode and its detection, the
//! per-container dnsmasq (configuration and process), host-side resolution with caches, the
//! wire format, and the host's resolv.conf.

pub(crate) mod cache;
pub(crate) mod conf;
pub(crate) mod dnsmasq;
pub(crate) mod ids;
pub(crate) mod message;
pub(crate) mod mode;
pub(crate) mod resolv_conf;
pub(crate) mod resolve;
pub(crate) mod resolver;

use std::path::PathBuf;

pub(crate) use mode::choose;
pub use mode::DnsMode;

use crate::exec::ExecError;

/// The bounds on how long an address the resolver learned stays in the allow sets, in
/// seconds: the answer's TTL, raised to `min` (a TTL of 0 must still let the first
/// connection through) and cut to `max` (an owner who moved the name away does not keep the
/// old address open for long). Flows already open outlive the element: the firewall accepts
/// established connections before it looks at any set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlClamp {
    pub min: u32,
    pub max: u32,
}

impl Default for TtlClamp {
    fn default() -> Self {
        TtlClamp { min: 60, max: 3600 }
    }
}

impl TtlClamp {
    /// The longest `max` accepted: a day.
    pub const LIMIT: u32 = 86_400;

    pub fn new(min: u32, max: u32) -> Result<TtlClamp, String> {
        if min == 0 {
            return Err("ttl_min must be at least 1".into());
        }
        if max > Self::LIMIT {
            return Err(format!("ttl_max must be at most {}", Self::LIMIT));
        }
        if max < min {
            return Err(format!("ttl_max ({max}) is below ttl_min ({min})"));
        }
        Ok(TtlClamp { min, max })
    }

    /// How long an answer with `ttl` keeps its address allowed.
    pub fn timeout(self, ttl: u32) -> u32 {
        ttl.clamp(self.min, self.max)
    }

    /// `"<min> <max>"`, as `dns.ttl` in a bundle holds it.
    pub fn to_line(self) -> String {
        format!("{} {}\n", self.min, self.max)
    }

    pub fn parse(line: &str) -> Option<TtlClamp> {
        let mut w = line.split_whitespace();
        let (min, max) = (w.next()?.parse().ok()?, w.next()?.parse().ok()?);
        TtlClamp::new(min, max).ok()
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    #[error("dnsmasq_path {} is not an executable file.", .0.display())]
    BadDnsmasqPath(PathBuf),
    /// The recorded launch choice names no executable now.
    #[error("dnsmasq ({0}) not found: install dnsmasq-base or re-create the container")]
    DnsmasqMissing(String),
    #[error("dnsmasq failed to start: {0}")]
    DnsmasqStart(#[source] ExecError),
    #[error("dnsmasq PID {0} is not the expected process")]
    DnsmasqImpostor(i32),
    #[error("dnsmasq started but PID file not written: {}", .0.display())]
    DnsmasqNoPid(PathBuf),
    #[error("cannot stop dnsmasq (pid {0})")]
    DnsmasqStop(i32),
    #[error("dnsmasq did not restart after a config reload ({0}) — container DNS is broken. Re-create the container to recover.")]
    DnsmasqRestart(#[source] Box<crate::Error>),
    /// Wildcards in a policy whose DNS mode resolves names only at launch.
    #[error("wildcard entries need live DNS resolution, which the {mode} tier does not do: {names}. Drop the wildcards or install a dnsmasq built with nftset.")]
    WildcardsNeedAnswers { mode: &'static str, names: String },
    /// Names with a port scope where the shield's resolver does not answer.
    #[error("ports on names need the shield's resolver (dns.tier: resolver), not the {mode} tier: {names}")]
    PortsNeedResolver { mode: &'static str, names: String },
    /// A scoped name the resolver cannot pin: an override, or a deny no allow matches.
    #[error("{0}: a name with ports can only be allowed (in a provider or project profile) or have exactly that allow withdrawn; deny or override the name as a whole")]
    ScopedNameUnsupported(String),
    /// A live wildcard allow or deny on such a mode.
    #[error("'{name}': wildcard entries need live DNS resolution, which the {mode} tier does not do; name the hosts instead")]
    WildcardNeedsAnswers { name: String, mode: String },
    #[error("state dir {0} holds control characters")]
    ControlCharacters(String),
    #[error("Cannot reload dnsmasq: upstream DNS not persisted in state")]
    NoUpstream,
    /// `dns.tier` names a mode this host cannot run.
    #[error("dns.tier {tier}: {why}")]
    TierUnavailable { tier: &'static str, why: &'static str },
    #[error("cannot open a socket to the nameserver {server}: {reason}")]
    UpstreamSocket { server: std::net::SocketAddr, reason: String },
    /// The resolver remembers as many names as it may (a deny must find every address it
    /// learned); new names wait until old answers expire.
    #[error("too many names learned at once; new ones resolve once older answers expire")]
    LearnedFull,
    #[error("the resolver cannot listen on {addr}: {reason}")]
    ResolverBind { addr: std::net::SocketAddr, reason: String },
    #[error("no non-loopback nameserver in /etc/resolv.conf or /run/systemd/resolve/resolv.conf: a rootful container needs one")]
    NoNameserver,
}
