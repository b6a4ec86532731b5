//! File names of a bundle and small readers for its one-value files.

use std::path::{Path, PathBuf};

use terok_shield_policy::{IpNet, TargetError};

use super::BundleError;
use crate::error::{Error, Result};

pub const RULESET: &str = "ruleset.nft";
pub const UPSTREAM_DNS: &str = "upstream.dns";
pub const DNS_TIER: &str = "dns.tier";
/// The resolver's TTL bounds (`<min> <max>` seconds).
pub const DNS_TTL: &str = "dns.ttl";
pub const DNSMASQ_COMMAND: &str = "dnsmasq.command";
pub const DNSMASQ_BIN: &str = "dnsmasq.bin";
pub const DNSMASQ_CONF: &str = "dnsmasq.conf";
pub const DNSMASQ_PID: &str = "dnsmasq.pid";
pub const DNSMASQ_LOG: &str = "dnsmasq.log";
pub const NETWORK_MODE: &str = "network.mode";
pub const LOOPBACK_PORTS: &str = "loopback.ports";
pub const RESOLVED_IPS: &str = "resolved.ips";
pub const OVERRIDE_RESOLVED: &str = "override_resolved.ips";
pub const DENY_RESOLVED: &str = "deny_resolved.ips";
pub const RESOLV_CONF: &str = "resolv.conf";
pub const CONTAINER_ID: &str = "container.id";
pub const HOOK_ERROR_LOG: &str = "hook-error.log";
pub const AUDIT_LOG: &str = "audit.jsonl";
pub const META_PATH: &str = "meta_path";
pub const READER_PID: &str = "reader.pid";
pub const READER_LOG: &str = "reader.log";
pub const LOCK: &str = ".lock";
/// The posture in force (`up`, `down`, `disengaged`, `quarantine`); UP when missing.
pub const POSTURE: &str = "posture";

/// A bundle directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub dir: PathBuf,
}

impl Bundle {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Bundle { dir: dir.into() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A one-line file's trimmed content; `None` when missing.
    pub fn read_value(&self, name: &str) -> Result<Option<String>> {
        let p = self.path(name);
        match std::fs::read_to_string(&p) {
            Ok(s) => Ok(Some(s.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(p, e)),
        }
    }

    /// The dossier file the orchestrator named (`dossier.meta_path`, recorded by the bridge
    /// hook); `None` when there is none.
    pub fn meta_path(&self) -> Option<PathBuf> {
        std::fs::read_to_string(self.path(META_PATH)).ok().filter(|p| !p.is_empty()).map(PathBuf::from)
    }

    /// The DNS mode recorded in `dns.tier`; `None` when missing or unknown.
    pub fn dns_mode(&self) -> Result<Option<crate::dns::DnsMode>> {
        Ok(self.read_value(DNS_TIER)?.as_deref().and_then(crate::dns::DnsMode::parse))
    }

    /// An address cache of the bundle (one address or network per line; a line that is
    /// not one is an error); empty when missing.
    pub fn read_addresses(&self, name: &str) -> Result<Vec<IpNet>> {
        let p = self.path(name);
        match std::fs::metadata(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            _ => read_addresses(&p),
        }
    }
}

/// An address file: one address or network per line. A line that is not one is an error
/// (these files are ours; a garbled one must not silently drop a deny).
pub fn read_addresses(path: &Path) -> Result<Vec<IpNet>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.parse::<IpNet>().map_err(|source: TargetError| {
                Error::from(BundleError::BadAddressFile { path: path.to_path_buf(), source })
            })
        })
        .collect()
}
