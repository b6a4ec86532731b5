//! The DNS files of a bundle (dns.md §3-§5): which names are resolved at launch, the
//! address caches, the rebind guard over what a DNS answer may add, `dnsmasq.conf` and
//! `resolv.conf`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::SystemTime;

use terok_shield_policy::rebind::{guarded_ranges, is_guarded};
use terok_shield_policy::{Effective, IpNet, Target};

use crate::bundle::layout::{
    Bundle, DENY_RESOLVED, DNSMASQ_CONF, OVERRIDE_RESOLVED, RESOLVED_IPS, RESOLV_CONF, UPSTREAM_DNS,
};
use crate::bundle::policy::read_tiers;
use crate::dns::cache::{self, Request};
use crate::dns::conf::DnsmasqConf;
use crate::dns::{DnsError, DnsMode};
use crate::error::Result;
use crate::report::{Report, Reporter};

/// The OCI runtime a container runs under, as far as DNS cares (api.md `ShieldRuntime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Runtime {
    #[default]
    Default,
    /// libkrun microVMs: the guest reaches dnsmasq on an address of its own, not loopback.
    Krun,
}

impl Runtime {
    /// `Krun` for a runtime named `krun` (a bare name or a path to it), `Default` otherwise.
    pub fn from_name(name: Option<&str>) -> Runtime {
        match name.map(|n| Path::new(n).file_name().and_then(|f| f.to_str()).unwrap_or(n)) {
            Some("krun") => Runtime::Krun,
            _ => Runtime::Default,
        }
    }

    /// Where the container's own DNS server (the shield's resolver, or dnsmasq) listens
    /// inside its network namespace.
    pub fn local_dns(self) -> IpAddr {
        match self {
            Runtime::Default => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Runtime::Krun => IpAddr::V4(Ipv4Addr::new(169, 254, 1, 3)),
        }
    }
}

/// Where a bundle's address caches are and when they are stale.
pub struct Caches<'a> {
    /// The bundle's final path (what dnsmasq.conf names), and where existing caches are.
    pub state_dir: &'a Path,
    pub host_cache_dir: &'a Path,
    /// The newest policy file: caches older than it are stale.
    pub policy_mtime: SystemTime,
    /// Ignore both caches.
    pub force: bool,
    /// Where progress and warnings of the resolution go.
    pub report: Reporter<'a>,
}

impl Caches<'_> {
    /// `entries` resolved through the bundle's cache `file` and the host cache.
    fn resolve(&self, entries: Vec<&Target>, file: &str, what: &str) -> Result<Vec<IpNet>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let cache_file = self.state_dir.join(file);
        let req = Request {
            entries: &entries,
            cache_file: &cache_file,
            source_mtime: self.policy_mtime,
            host_cache_dir: self.host_cache_dir,
            force: self.force,
            what,
        };
        cache::resolve(&req, &cache::HOST, self.report)
    }

    /// The allow side: the kept addresses and those the rebind guard refused.
    pub fn allowlist(&self, e: &Effective, override_resolved: &[IpNet]) -> Result<(Vec<IpNet>, Vec<IpAddr>)> {
        let all = self.resolve(e.allow_targets(), RESOLVED_IPS, "allowlist")?;
        Ok(rebind_guard(e, all, override_resolved))
    }
}

/// Inputs of a DNS plan.
pub struct Inputs<'a> {
    pub effective: &'a Effective,
    pub mode: DnsMode,
    /// The one server a dnsmasq or lookup mode's container forwards to; the resolver needs
    /// none here (it reads the host's resolv.conf itself).
    pub upstream: Option<IpAddr>,
    pub runtime: Runtime,
    pub caches: Caches<'a>,
}

/// What a bundle's DNS side is: the files to write, the caches to remove, the addresses
/// resolved for each tier, and the answers the rebind guard refused.
#[derive(Debug, Default)]
pub struct Plan {
    pub files: Vec<(String, String)>,
    pub stale: Vec<&'static str>,
    pub resolved: Vec<IpNet>,
    pub override_resolved: Vec<IpNet>,
    pub deny_resolved: Vec<IpNet>,
    /// Addresses DNS answers named inside a guarded range (the rebind guard refused them).
    pub refused: Vec<IpAddr>,
    pub notes: Vec<String>,
}

/// The operator's explicit allows: what may lie in a guarded range.
pub fn explicit_allows(effective: &Effective, override_resolved: &[IpNet]) -> Vec<IpNet> {
    effective
        .allows
        .iter()
        .chain(&effective.overrides)
        .filter_map(Target::as_net)
        .chain(override_resolved.iter().copied())
        .collect()
}

/// Split resolved allow addresses into those kept and those the rebind guard refuses: an
/// address a DNS answer named inside a guarded range that no explicit allow covers. The
/// allowlist's own address literals are always kept.
pub fn rebind_guard(e: &Effective, resolved: Vec<IpNet>, override_resolved: &[IpNet]) -> (Vec<IpNet>, Vec<IpAddr>) {
    let exempt = explicit_allows(e, override_resolved);
    let literals: Vec<IpNet> = e.allow_targets().iter().filter_map(|t| t.as_net()).collect();
    let (mut kept, mut refused) = (Vec::new(), Vec::new());
    for n in resolved {
        if !literals.contains(&n) && is_guarded(n.addr(), &exempt) {
            refused.push(n.addr());
        } else {
            kept.push(n);
        }
    }
    (kept, refused)
}

/// What the operator is told of an answer the rebind guard refused.
pub fn refused_note(addr: IpAddr, domain: Option<&str>) -> String {
    let of = domain.map(|d| format!(" for {}", terok_shield_policy::sanitize::quoted(d))).unwrap_or_default();
    format!("Refused {addr}{of}: a DNS answer may not open a private, loopback, link-local or metadata address (allow the address or its range explicitly to permit it).")
}

pub fn plan(i: &Inputs) -> Result<Plan> {
    let e = i.effective;
    let mut p = Plan::default();
    if !i.mode.follows_answers() {
        let wild = e.wildcard_domains();
        if !wild.is_empty() {
            return Err(DnsError::WildcardsNeedAnswers { mode: i.mode.as_str(), names: wild.join(", ") }.into());
        }
    }
    let scoped_names = e.scoped_domains();
    if !scoped_names.is_empty() && i.mode != DnsMode::Resolver {
        return Err(DnsError::PortsNeedResolver { mode: i.mode.as_str(), names: scoped_names.join(", ") }.into());
    }
    let unpinnable = e.scoped_overrides.iter().chain(&e.scoped_denies).find(|(t, _)| t.as_domain().is_some());
    if let Some((t, p)) = unpinnable {
        return Err(DnsError::ScopedNameUnsupported(format!("{t}:{p}")).into());
    }
    let overrides: Vec<&Target> = e.overrides.iter().filter(|t| **t != Target::Localhost).collect();
    p.override_resolved = i.caches.resolve(overrides, OVERRIDE_RESOLVED, "override")?;
    let denies: Vec<&Target> = e.denies.iter().filter(|t| **t != Target::Localhost).collect();
    p.deny_resolved = i.caches.resolve(denies, DENY_RESOLVED, "denylist")?;
    if !i.mode.follows_answers() {
        (p.resolved, p.refused) = i.caches.allowlist(e, &p.override_resolved)?;
    }
    for (file, list) in
        [(RESOLVED_IPS, &p.resolved), (OVERRIDE_RESOLVED, &p.override_resolved), (DENY_RESOLVED, &p.deny_resolved)]
    {
        let produced = (file == RESOLVED_IPS && !i.mode.follows_answers()) || !list.is_empty();
        if produced {
            p.files.push((file.to_string(), list.iter().map(|a| format!("{a}\n")).collect()));
        } else {
            p.stale.push(file);
        }
    }
    p.notes.extend(p.refused.iter().map(|a| refused_note(*a, None)));
    let nameserver = if i.mode.runs_dnsmasq() {
        let upstream = i.upstream.ok_or(DnsError::NoNameserver)?;
        p.files.push((
            DNSMASQ_CONF.to_string(),
            dnsmasq_conf(
                i.effective,
                i.mode,
                (i.runtime.local_dns(), upstream),
                i.caches.state_dir,
                &p.override_resolved,
                i.caches.report,
            )?,
        ));
        i.runtime.local_dns()
    } else {
        p.stale.extend([DNSMASQ_CONF, "dnsmasq.pid", "dnsmasq.log", "dnsmasq.bin"]);
        match i.mode {
            DnsMode::Resolver => i.runtime.local_dns(),
            _ => i.upstream.ok_or(DnsError::NoNameserver)?,
        }
    };
    p.files.push((RESOLV_CONF.to_string(), format!("nameserver {nameserver}\noptions ndots:0\n")));
    Ok(p)
}

/// `dnsmasq.conf` for a bundle at `state_dir` (its final path: dnsmasq is recognised by it),
/// listening on `bind` and forwarding to `upstream`.
pub fn dnsmasq_conf(
    e: &Effective,
    mode: DnsMode,
    (bind, upstream): (IpAddr, IpAddr),
    state_dir: &Path,
    override_resolved: &[IpNet],
    report: Reporter,
) -> Result<String> {
    let sd = state_dir.display().to_string();
    if sd.chars().any(char::is_control) {
        return Err(DnsError::ControlCharacters(sd.escape_debug().to_string()).into());
    }
    let ranges = guarded_ranges(&explicit_allows(e, override_resolved));
    let rendered = DnsmasqConf {
        generator_pid: std::process::id(),
        bind,
        upstream,
        state_dir,
        nftset: mode.follows_answers(),
        allow_domains: &e.allow_domains(),
        deny_domains: &e.deny_domains(),
        override_domains: &e.override_domains(),
        refused_ranges: &ranges,
    }
    .render();
    for d in rendered.skipped {
        report(Report::Warning(format!(
            "{} cannot be followed by dnsmasq (not a plain domain name); skipped",
            terok_shield_policy::sanitize::quoted(&d)
        )));
    }
    Ok(rendered.text)
}

/// Regenerate an existing bundle's `dnsmasq.conf` from its policy files (after a live
/// domain allow or deny). Returns false when the bundle's DNS mode runs no dnsmasq.
pub fn refresh_dnsmasq_conf(bundle: &Bundle, report: Reporter) -> Result<bool> {
    let Some(mode) = bundle.dns_mode()?.filter(|m| m.runs_dnsmasq()) else {
        return Ok(false);
    };
    let upstream: IpAddr = bundle.read_value(UPSTREAM_DNS)?.and_then(|v| v.parse().ok()).ok_or(DnsError::NoUpstream)?;
    // The listen address stays what prepare chose (the runtime is not known here).
    let bind = std::fs::read_to_string(bundle.path(DNSMASQ_CONF))
        .ok()
        .and_then(|c| crate::dns::conf::listen_address(&c))
        .filter(|a| [Runtime::Default, Runtime::Krun].map(Runtime::local_dns).contains(a))
        .unwrap_or(Runtime::Default.local_dns());
    let effective = read_tiers(&bundle.dir)?.effective();
    let overrides = bundle.read_addresses(OVERRIDE_RESOLVED)?;
    let text = dnsmasq_conf(&effective, mode, (bind, upstream), &bundle.dir, &overrides, report)?;
    crate::fsutil::write_atomic(&bundle.path(DNSMASQ_CONF), text.as_bytes(), 0o600)?;
    Ok(true)
}
