//! How allowlisted names reach the allow sets, and its detection (dns.md §1): dnsmasq with
//! nftset > dnsmasq > dig/drill > getent. Files and messages call it the "DNS tier"
//! (`dns.tier`); in code a *tier* is only a policy tier, so this is the DNS mode.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::DnsError;
use crate::config::DnsChoice;
use crate::error::Result;
use crate::{exec, tools};

/// How domain allowlists reach the allow sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnsMode {
    /// The shield's own resolver, in the container's helper: it answers only allowed names,
    /// adds each answer's addresses to the sets before replying, and nothing else leaves.
    Resolver,
    /// dnsmasq fills the sets from each answer (`--nftset`); written `dnsmasq-live`.
    DnsmasqNftset,
    /// dnsmasq serves and sinkholes; addresses are resolved once at launch.
    DnsmasqStatic,
    /// `dig` or `drill` at launch.
    Lookup,
    /// `getent` at launch.
    Getent,
}

impl DnsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsMode::Resolver => "resolver",
            DnsMode::DnsmasqNftset => "dnsmasq-live",
            DnsMode::DnsmasqStatic => "dnsmasq-static",
            DnsMode::Lookup => "lookup",
            DnsMode::Getent => "getent",
        }
    }

    /// Read a `dns.tier` value; retired names map to their successors.
    pub fn parse(s: &str) -> Option<DnsMode> {
        match s.trim() {
            "resolver" => Some(DnsMode::Resolver),
            "dnsmasq-live" | "dnsmasq" => Some(DnsMode::DnsmasqNftset),
            "dnsmasq-static" => Some(DnsMode::DnsmasqStatic),
            "lookup" | "dig" => Some(DnsMode::Lookup),
            "getent" => Some(DnsMode::Getent),
            _ => None,
        }
    }

    /// The allow sets follow each DNS answer (names resolved at launch are not enough).
    pub fn follows_answers(self) -> bool {
        matches!(self, DnsMode::Resolver | DnsMode::DnsmasqNftset)
    }

    pub fn runs_dnsmasq(self) -> bool {
        matches!(self, DnsMode::DnsmasqNftset | DnsMode::DnsmasqStatic)
    }

    /// What a degraded mode loses; empty for the one that follows answers.
    pub fn hint(self) -> &'static str {
        match self {
            DnsMode::Resolver | DnsMode::DnsmasqNftset => "",
            DnsMode::DnsmasqStatic => "dnsmasq lacks nftset support, so allowlisted names are resolved once at launch and address rotation is not followed. A dnsmasq built with nftset restores live following.",
            DnsMode::Lookup => "no usable dnsmasq, so allowlisted names are resolved once at launch with dig/drill, address rotation is not followed and block events carry addresses only. A dnsmasq built with nftset restores both.",
            DnsMode::Getent => "no usable dnsmasq and no dig/drill, so allowlisted names are resolved once at launch with getent, address rotation is not followed and block events carry addresses only. A dnsmasq built with nftset restores both.",
        }
    }
}

/// The outcome of detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    pub mode: DnsMode,
    /// The launch choice: the symbolic `dnsmasq` (looked up on PATH at each launch) or the
    /// configured absolute path; `None` when no usable dnsmasq was found.
    pub dnsmasq_command: Option<String>,
    /// A dnsmasq that AppArmor keeps from reading the state dir.
    pub apparmor_blocked: Option<PathBuf>,
}

/// Locate dnsmasq: the configured path (which must be an executable file), else `dnsmasq`
/// on PATH. Returns the launch choice and the binary it names now.
pub fn locate_dnsmasq(configured: Option<&Path>) -> Result<Option<(String, PathBuf)>> {
    match configured {
        Some(p) if p.is_absolute() && tools::is_executable(p) => Ok(Some((p.display().to_string(), p.to_path_buf()))),
        Some(p) => Err(DnsError::BadDnsmasqPath(p.to_path_buf()).into()),
        None => Ok(tools::find("dnsmasq").map(|b| ("dnsmasq".to_string(), b))),
    }
}

/// The mode `choice` asks for, on this host: the resolver as it is, `auto` detected, and
/// an explicit dnsmasq or lookup mode only when the host has what it needs.
pub fn choose(choice: DnsChoice, configured_dnsmasq: Option<&Path>, probe_dir: Option<&Path>) -> Result<Detection> {
    let wanted = match choice {
        DnsChoice::Mode(DnsMode::Resolver) => {
            return Ok(Detection { mode: DnsMode::Resolver, dnsmasq_command: None, apparmor_blocked: None })
        }
        DnsChoice::Auto => return detect(configured_dnsmasq, probe_dir),
        DnsChoice::Mode(m) => m,
    };
    let found = detect(configured_dnsmasq, probe_dir)?;
    let unavailable = |why: &'static str| Err(DnsError::TierUnavailable { tier: wanted.as_str(), why }.into());
    match (wanted, found.mode) {
        (w, f) if w == f => Ok(found),
        (DnsMode::DnsmasqStatic, DnsMode::DnsmasqNftset) => Ok(Detection { mode: wanted, ..found }),
        (DnsMode::Getent, _) => Ok(Detection { mode: wanted, dnsmasq_command: None, ..found }),
        (DnsMode::Lookup, _) if tools::find("dig").is_some() || tools::find("drill").is_some() => {
            Ok(Detection { mode: wanted, dnsmasq_command: None, ..found })
        }
        (DnsMode::Lookup, _) => unavailable("neither dig nor drill is on PATH"),
        (DnsMode::DnsmasqNftset, DnsMode::DnsmasqStatic) => unavailable("this dnsmasq is built without nftset"),
        _ => unavailable("no usable dnsmasq (install dnsmasq-base, or see docs/apparmor.md)"),
    }
}

/// Detect the mode. `probe_dir` is the state dir to run the AppArmor probe in (skipped when
/// `None` or missing: never downgrade on a guess).
pub fn detect(configured_dnsmasq: Option<&Path>, probe_dir: Option<&Path>) -> Result<Detection> {
    let mut apparmor_blocked = None;
    if let Some((command, binary)) = locate_dnsmasq(configured_dnsmasq)? {
        if apparmor_allows(&binary, probe_dir) {
            let mode = if has_nftset(&binary) { DnsMode::DnsmasqNftset } else { DnsMode::DnsmasqStatic };
            return Ok(Detection { mode, dnsmasq_command: Some(command), apparmor_blocked: None });
        }
        apparmor_blocked = Some(binary);
    }
    let mode =
        if tools::find("dig").is_some() || tools::find("drill").is_some() { DnsMode::Lookup } else { DnsMode::Getent };
    Ok(Detection { mode, dnsmasq_command: None, apparmor_blocked })
}

/// `--version` lists `nftset` (and not `no-nftset`) among the compile-time options.
fn has_nftset(binary: &Path) -> bool {
    exec::run(binary, &["--version"], Duration::from_secs(10)).is_ok_and(|o| {
        let words: Vec<&str> = o.stdout.split_whitespace().collect();
        words.contains(&"nftset") && !words.contains(&"no-nftset")
    })
}

/// Ask dnsmasq to read a probe file in the state dir. Blocked only when it fails with
/// "permission denied"; any other outcome counts as usable.
fn apparmor_allows(binary: &Path, probe_dir: Option<&Path>) -> bool {
    let Some(dir) = probe_dir.filter(|d| d.is_dir()) else {
        return true;
    };
    let probe = dir.join("dnsmasq.apparmor-probe.conf");
    if std::fs::write(&probe, "# terok-shield AppArmor probe\n").is_err() {
        return true;
    }
    let arg = format!("--conf-file={}", probe.display());
    let result = exec::run(binary, &["--test", &arg], Duration::from_secs(10));
    let _ = std::fs::remove_file(&probe);
    !matches!(result, Ok(o) if o.status != 0 && o.stderr.to_ascii_lowercase().contains("permission denied"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_names() {
        for t in [DnsMode::Resolver, DnsMode::DnsmasqNftset, DnsMode::DnsmasqStatic, DnsMode::Lookup, DnsMode::Getent] {
            assert_eq!(DnsMode::parse(t.as_str()), Some(t));
            assert_eq!(t.hint().is_empty(), t.follows_answers());
        }
        assert_eq!(DnsMode::parse("dig"), Some(DnsMode::Lookup));
        assert_eq!(DnsMode::parse("dnsmasq"), Some(DnsMode::DnsmasqNftset));
        assert_eq!(DnsMode::parse("bogus"), None);
    }

    #[test]
    fn a_configured_dnsmasq_must_be_executable() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let plain = dir.path().join("dnsmasq");
        std::fs::write(&plain, "").unwrap_or_else(|e| panic!("{e}"));
        let e = locate_dnsmasq(Some(&plain)).err().map(|e| e.to_string());
        assert_eq!(e, Some(format!("dnsmasq_path {} is not an executable file.", plain.display())));
        assert!(locate_dnsmasq(Some(Path::new("relative/dnsmasq"))).is_err());
    }
}
