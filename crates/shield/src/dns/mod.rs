//! DNS: how allowlisted domains reach the allow sets — the mode and its detection, the
//! per-container dnsmasq (configuration and process), host-side resolution with caches, the
//! wire format, and the host's resolv.conf.

pub(crate) mod cache;
pub(crate) mod conf;
pub(crate) mod dnsmasq;
pub(crate) mod mode;
pub(crate) mod resolv_conf;
pub(crate) mod resolve;
pub(crate) mod wire;

use std::path::PathBuf;

pub(crate) use mode::detect;
pub use mode::DnsMode;

use crate::exec::ExecError;

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
    /// A live wildcard allow or deny on such a mode.
    #[error("'{name}': wildcard entries need live DNS resolution, which the {mode} tier does not do; name the hosts instead")]
    WildcardNeedsAnswers { name: String, mode: String },
    #[error("state dir {0} holds control characters")]
    ControlCharacters(String),
    #[error("Cannot reload dnsmasq: upstream DNS not persisted in state")]
    NoUpstream,
    #[error("no non-loopback nameserver in /etc/resolv.conf or /run/systemd/resolve/resolv.conf: a rootful container needs one")]
    NoNameserver,
}
