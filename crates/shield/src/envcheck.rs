//! The environment check behind `check-environment` and `status` (observe.md §9).

use std::path::Path;
use std::time::Duration;

use crate::config::Config;
use crate::setup::{check_setup, SetupStatus};
use crate::{dns, exec, tools};

pub const SETUP_HINT: &str = "Run 'terok-shield setup' to refresh global hooks.";

/// What the environment check found. It never fails: problems become issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentCheck {
    pub ok: bool,
    pub podman_version: Option<String>,
    pub hooks: &'static str,
    pub health: &'static str,
    pub dns_mode: Option<dns::DnsMode>,
    pub issues: Vec<String>,
    pub needs_setup: bool,
    pub setup_hint: &'static str,
}

/// `podman version --format {{.Client.Version}}` with a 5 s limit; `None` when podman is
/// missing, fails or times out.
pub fn podman_version() -> Option<String> {
    let podman = tools::find("podman")?;
    let out = exec::run(&podman, &["version", "--format", "{{.Client.Version}}"], Duration::from_secs(5)).ok()?;
    let v = out.stdout.trim();
    (out.status == 0 && !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || ".-+~".contains(c)))
        .then(|| v.to_string())
}

/// Run every check. `probe_dir` is the `_default` state dir for the dnsmasq AppArmor probe.
pub fn check_environment(
    config: &Config,
    env: &crate::paths::Env,
    ns_dir: &Path,
    probe_dir: Option<&Path>,
) -> EnvironmentCheck {
    let mut issues = Vec::new();
    let dns_mode = match dns::choose(config.dns_tier, config.dnsmasq_path.as_deref(), probe_dir) {
        Ok(d) => {
            if let Some(bin) = &d.apparmor_blocked {
                issues.push(format!(
                    "AppArmor keeps {} from reading the state dir; DNS falls back to {}.",
                    bin.display(),
                    d.mode.as_str()
                ));
            }
            Some(d.mode)
        }
        Err(e) => {
            issues.push(e.to_string());
            None
        }
    };
    if let Some(t) = dns_mode.filter(|t| !t.follows_answers()) {
        issues.push(format!("DNS tier {}: {}", t.as_str(), t.hint()));
    }
    let checks = check_setup(env, ns_dir, crate::VERSION, false);
    let ready = checks.iter().all(|c| c.status == SetupStatus::Ready);
    issues.extend(checks.into_iter().filter(|c| c.status != SetupStatus::Ready).map(|c| c.diagnostic));
    EnvironmentCheck {
        ok: issues.is_empty(),
        podman_version: podman_version(),
        hooks: if ready { "global" } else { "not-installed" },
        health: if ready { "ok" } else { "setup-needed" },
        dns_mode,
        issues,
        needs_setup: !ready,
        setup_hint: if ready { "" } else { SETUP_HINT },
    }
}
