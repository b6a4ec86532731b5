//! `prepare`/`run` (pre_start): build a container's bundle and the podman flags that bind
//! the container to it (cli.md §3, state-and-config.md §4).
//!
//! Everything is computed in memory first; only then is anything written. A new bundle is
//! written to a temporary sibling directory and renamed into place, so a failed prepare
//! leaves nothing; an existing bundle is updated file by file, each atomically, under the
//! bundle lock, and its live overlay, audit log and runtime files are kept.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use terok_shield_policy::names::validate_container_name;
use terok_shield_policy::{render_policy, Action, Entry, IpNet, Target, Tier, TierSet};
use terok_shield_ruleset::{ruleset_nft, NetFacts, Seeds};

use crate::audit::Row;
pub use crate::bundle::dns::Runtime;
use crate::bundle::layout::*;
use crate::bundle::policy::{policy_dir, policy_mtime, read_tier};
use crate::bundle::{lock_bundle, BundleError};
use crate::config::Config;
use crate::dns::DnsMode;
use crate::error::{Error, Result};
use crate::paths::Env;
use crate::podman::{self, NetworkMode};
use crate::profiles::ProfileDirs;
use crate::report::Reporter;
use crate::setup::{check_setup, require_ready};
use crate::{audit, fsutil, BUNDLE_VERSION};

/// What the caller asks for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub container: String,
    /// `None`: the configured default profiles.
    pub profiles: Option<Vec<String>>,
    pub security_deny: Vec<String>,
    pub provider_allow: Vec<String>,
    pub project_allow: Vec<String>,
    pub override_: Vec<String>,
    /// The OCI runtime (`run --runtime krun` moves dnsmasq off loopback).
    pub runtime: Runtime,
}

/// Where and with what the bundle is built.
pub struct Context<'a> {
    pub env: &'a Env,
    pub state_root: &'a Path,
    pub ns_dir: &'a Path,
    pub config: &'a Config,
    pub profiles: &'a ProfileDirs,
    /// Where progress (long resolutions) and warnings go while prepare works.
    pub report: Reporter<'a>,
}

/// The result: podman flags (without `--name`), the bundle, and notes for stderr.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub flags: Vec<String>,
    pub state_dir: PathBuf,
    pub notes: Vec<String>,
}

/// How the container reaches the network.
enum Net {
    Rootless(NetworkMode),
    Rootful,
}

pub fn pre_start(ctx: &Context, req: &Request) -> Result<Prepared> {
    validate_container_name(&req.container)?;
    require_ready(&check_setup(ctx.env, ctx.ns_dir, crate::VERSION, true))?;
    let state_dir = crate::paths::container_dir(ctx.state_root, &req.container);
    let profile_names = req.profiles.clone().unwrap_or_else(|| ctx.config.default_profiles.clone());
    let mut tiers = TierSet { project_allow: ctx.profiles.compose(&profile_names)?, ..TierSet::default() };
    for (tier, action, items) in [
        (Tier::Override, Action::Allow, &req.override_),
        (Tier::SecurityDeny, Action::Deny, &req.security_deny),
        (Tier::ProviderAllow, Action::Allow, &req.provider_allow),
        (Tier::ProjectAllow, Action::Allow, &req.project_allow),
    ] {
        for item in items {
            tiers.get_mut(tier).push(Entry::new(action, Target::parse(item)?));
        }
    }
    let existing = state_dir.is_dir();
    if existing {
        tiers.live = read_tier(&state_dir, Tier::Live)?;
    }

    let (net, base) = network(ctx)?;
    let mut notes = Vec::new();
    let parent = ctx.state_root.join("containers");
    fsutil::mkdir_700(&parent)?;
    let parent = std::fs::canonicalize(&parent).map_err(|e| Error::io(&parent, e))?;
    let state_dir = parent.join(state_dir.file_name().unwrap_or_default());
    let probe_dir = if existing { &state_dir } else { &parent };
    let detection = crate::dns::choose(ctx.config.dns_tier, ctx.config.dnsmasq_path.as_deref(), Some(probe_dir))?;
    let mode = detection.mode;
    // The shield's resolver asks the host's own nameserver from the host's network namespace,
    // and the container reaches no DNS server at all; every other mode forwards from inside
    // the container to one upstream the ruleset lets through.
    let (facts, upstream) = match (mode, &net, base.dns) {
        (DnsMode::Resolver, _, _) => (base.without_dns(), crate::dns::resolv_conf::host_first()),
        (_, Net::Rootful, _) => {
            let dns = crate::dns::resolv_conf::host_nameserver()?;
            (NetFacts { dns: Some(dns), ..base }, Some(dns))
        }
        (_, _, dns) => (base, dns),
    };
    if !mode.hint().is_empty() {
        notes.push(format!("DNS tier {}: {}", mode.as_str(), mode.hint()));
    }
    if let Some(bin) = &detection.apparmor_blocked {
        notes.push(format!(
            "AppArmor keeps {} from reading {}: the DNS tier falls back to {}. See docs/apparmor.md for the profile addendum.",
            bin.display(),
            state_dir.display(),
            mode.as_str()
        ));
    }
    let effective = tiers.effective();
    let mut files: Vec<(String, String)> = Tier::ALL
        .iter()
        .filter(|t| **t != Tier::Live)
        .map(|t| (format!("policy/{}", t.file_name()), render_policy(tiers.get(*t))))
        .collect();
    let policy_changed =
        files.iter().any(|(f, text)| std::fs::read(state_dir.join(f)).map_or(true, |old| old != text.as_bytes()));
    let dns = crate::bundle::dns::plan(&crate::bundle::dns::Inputs {
        effective: &effective,
        mode,
        upstream,
        runtime: req.runtime,
        caches: crate::bundle::dns::Caches {
            state_dir: &state_dir,
            host_cache_dir: &crate::paths::dns_cache_dir(ctx.state_root),
            policy_mtime: if policy_changed { std::time::SystemTime::now() } else { policy_mtime(&state_dir) },
            force: false,
            report: ctx.report,
        },
    })?;
    notes.extend(dns.notes.iter().cloned());
    let seeds = Seeds {
        t40_project_allow: effective.t40_seed(&dns.resolved),
        t20_security_deny: effective.t20_seed(&dns.deny_resolved),
        t10_override: effective.t10_seed(&dns.override_resolved),
        ..Seeds::default()
    }
    .with_ports(&effective);
    let network_mode = match &net {
        Net::Rootless(m) => m.as_str(),
        Net::Rootful => "bridge",
    };
    files.extend(dns.files.iter().cloned());
    files.extend([
        (UPSTREAM_DNS.to_string(), upstream.map(|u| format!("{u}\n")).unwrap_or_default()),
        (DNS_TTL.to_string(), ctx.config.dns_ttl.to_line()),
        (DNS_TIER.to_string(), format!("{}\n", mode.as_str())),
        (DNSMASQ_COMMAND.to_string(), format!("{}\n", detection.dnsmasq_command.as_deref().unwrap_or(""))),
        (NETWORK_MODE.to_string(), format!("{network_mode}\n")),
        (LOOPBACK_PORTS.to_string(), String::new()),
        (RULESET.to_string(), ruleset_nft(&facts, &seeds)),
    ]);
    if existing {
        update_bundle(&state_dir, &files, &dns.stale)?;
        // The posture, like `policy/live`, belongs to the name and outlives a new prepare.
        let posture = crate::bundle::posture::recorded(&crate::bundle::Bundle::new(&state_dir))?;
        if posture != terok_shield_ruleset::Posture::Up {
            notes.push(format!(
                "{} is recorded as {}: it starts {} (`terok-shield up {}` lifts it)",
                req.container,
                posture.label(),
                posture.label(),
                req.container
            ));
        }
    } else {
        create_bundle(&state_dir, &files)?;
    }
    let state_dir = std::fs::canonicalize(&state_dir).map_err(|e| Error::io(&state_dir, e))?;
    if ctx.config.audit_enabled {
        let audit = |row: Row| audit::append(&state_dir, row, ctx.report);
        let c = req.container.as_str();
        audit(Row::new(c, "setup").detail(&format!("profiles={}", profile_names.join(","))));
        for e in tiers.get(Tier::Override) {
            if let Target::Net(n) = &e.target {
                audit(Row::new(c, "override_range").detail(&n.to_string()));
            }
        }
        if let Some(bin) = &detection.apparmor_blocked {
            let detail = format!("dnsmasq {} blocked by AppArmor in {}", bin.display(), state_dir.display());
            audit(Row::new(c, "setup").detail(&detail));
        }
        for a in &dns.refused {
            audit(Row::new(c, "dns_rebind").dest(&a.to_string()).detail("refused at resolution"));
        }
    }
    let flags = flags(&net, &state_dir, &req.container, &profile_names, ctx.config.audit_enabled, upstream, mode);
    Ok(Prepared { flags, state_dir, notes })
}

/// `resolve CONTAINER [--force]` (cli.md §5): compose the default profiles into the bundle's
/// `40-project-allow` and resolve the allow targets into `resolved.ips` (the rebind guard
/// applies). `--force` bypasses both caches. Returns the addresses, and a note for each
/// answer the rebind guard refused.
pub fn resolve(ctx: &Context, container: &str, force: bool) -> Result<(Vec<IpNet>, Vec<String>)> {
    validate_container_name(container)?;
    let entries = ctx.profiles.compose(&ctx.config.default_profiles)?;
    if entries.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let state_dir = crate::paths::container_dir(ctx.state_root, container);
    crate::bundle::policy::ensure_dirs(&state_dir)?;
    let _lock = lock_bundle(&state_dir)?;
    crate::bundle::policy::write_tier(&state_dir, Tier::ProjectAllow, &entries)?;
    let effective = crate::bundle::policy::read_tiers(&state_dir)?.effective();
    let override_resolved = crate::bundle::Bundle::new(&state_dir).read_addresses(OVERRIDE_RESOLVED)?;
    let caches = crate::bundle::dns::Caches {
        state_dir: &state_dir,
        host_cache_dir: &crate::paths::dns_cache_dir(ctx.state_root),
        policy_mtime: policy_mtime(&state_dir),
        force,
        report: ctx.report,
    };
    let (kept, refused) = caches.allowlist(&effective, &override_resolved)?;
    crate::dns::cache::write(&state_dir.join(RESOLVED_IPS), &kept)?;
    Ok((kept, refused.into_iter().map(|a| crate::bundle::dns::refused_note(a, None)).collect()))
}

/// How the container reaches the network, and its facts (a rootful container's DNS
/// upstream is chosen with the DNS mode).
fn network(ctx: &Context) -> Result<(Net, NetFacts)> {
    if ctx.env.real_root {
        return Ok((Net::Rootful, NetFacts::pasta().without_dns()));
    }
    let facts = podman::facts(ctx.env, ctx.ns_dir)?;
    Ok(match facts.network {
        NetworkMode::Pasta => (Net::Rootless(NetworkMode::Pasta), NetFacts::pasta()),
        NetworkMode::Slirp4netns => (Net::Rootless(NetworkMode::Slirp4netns), NetFacts::slirp4netns()),
    })
}

/// The flags of cli.md §3.1, in order (slirp4netns without host loopback: decisions.md).
fn flags(
    net: &Net,
    state_dir: &Path,
    container: &str,
    profiles: &[String],
    audit: bool,
    dns: Option<IpAddr>,
    mode: DnsMode,
) -> Vec<String> {
    let mut f: Vec<String> = Vec::new();
    match net {
        Net::Rootless(NetworkMode::Pasta) => f.extend([
            "--network".into(),
            "pasta:--map-host-loopback,169.254.1.2".into(),
            "--add-host".into(),
            "host.containers.internal:169.254.1.2".into(),
        ]),
        Net::Rootless(NetworkMode::Slirp4netns) => f.extend([
            "--network".into(),
            // The host's loopback stays closed behind 10.0.2.2: it opens only for loopback
            // ports, which prepare configures none of (`loopback.ports` is empty), so an
            // override of 10.0.0.0/8 cannot reach the host's 127.0.0.1 (issue 14.8).
            "slirp4netns:allow_host_loopback=false".into(),
            "--add-host".into(),
            "host.containers.internal:10.0.2.2".into(),
        ]),
        Net::Rootful => {}
    }
    let sd = state_dir.display();
    f.extend(["--volume".into(), format!("{sd}/{RESOLV_CONF}:/etc/resolv.conf:ro,Z")]);
    for (k, v) in [
        ("profiles", profiles.join(":")),
        ("name", container.to_string()),
        ("state_dir", sd.to_string()),
        ("version", BUNDLE_VERSION.to_string()),
        ("audit_enabled", audit.to_string()),
        ("upstream_dns", dns.map(|d| d.to_string()).unwrap_or_default()),
        ("dns_tier", mode.as_str().to_string()),
    ] {
        f.extend(["--annotation".into(), format!("terok.shield.{k}={v}")]);
    }
    f.extend(["--cap-drop".into(), "NET_ADMIN".into(), "--cap-drop".into(), "NET_RAW".into()]);
    f
}

/// A new bundle: written in full to a temporary sibling, then renamed into place.
fn create_bundle(state_dir: &Path, files: &[(String, String)]) -> Result<()> {
    let parent = state_dir.parent().ok_or_else(|| BundleError::NoParent(state_dir.to_path_buf()))?;
    fsutil::mkdir_700(parent)?;
    let name = state_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".new")
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    fsutil::mkdir_700(tmp.path())?;
    fsutil::mkdir_700(&policy_dir(tmp.path()))?;
    for (file, text) in files {
        fsutil::write_atomic(&tmp.path().join(file), text.as_bytes(), 0o600)?;
    }
    let tmp_path = tmp.keep();
    std::fs::rename(&tmp_path, state_dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp_path);
        Error::io(state_dir, e)
    })
}

/// An existing bundle: each file replaced atomically (only when it changed), under the
/// bundle lock; caches this prepare does not produce are removed.
fn update_bundle(state_dir: &Path, files: &[(String, String)], stale: &[&str]) -> Result<()> {
    fsutil::mkdir_700(state_dir)?;
    fsutil::mkdir_700(&policy_dir(state_dir))?;
    let _lock = lock_bundle(state_dir)?;
    for (file, text) in files {
        let path = state_dir.join(file);
        if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
            continue;
        }
        fsutil::write_atomic(&path, text.as_bytes(), 0o600)?;
    }
    for f in stale {
        let _ = std::fs::remove_file(state_dir.join(f));
    }
    Ok(())
}
