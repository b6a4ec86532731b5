//! The setup receipt and the setup checks (hooks.md §2.4).
//!
//! A user install keeps its receipt at `<ns dir>/setup.json`; a system-wide install keeps
//! it next to the hooks it certifies, `<system hooks dir>/terok-shield.receipt` (podman
//! reads only `*.json` there).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::containers_conf::{self, Edit};
use super::descriptors::{self, DESCRIPTORS};
use super::{ReceiptError, SetupError};
use crate::helper::HELPER_BINARY as HOOK_BINARY;
use crate::paths::Env;
use crate::tools;

/// podman's built-in default hook dir, scanned by rootful and rootless podman alike when no
/// containers.conf sets `hooks_dir` (podman 4.3 scans only this one).
pub const SYSTEM_HOOKS_DIR: &str = "/usr/share/containers/oci/hooks.d";
pub const SYSTEM_RECEIPT: &str = "terok-shield.receipt";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryId {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfEdit {
    pub path: PathBuf,
    #[serde(flatten)]
    pub edit: Edit,
}

/// What setup installed. Fields are declared in sorted order (the file's keys are sorted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    pub containers_conf: Option<ConfEdit>,
    pub hook_binary: BinaryId,
    pub hooks: PathBuf,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub inputs: Inputs,
    pub owner: String,
    pub version: String,
}

impl Receipt {
    pub fn to_text(&self) -> String {
        let mut t = serde_json::to_string_pretty(self).unwrap_or_default();
        t.push('\n');
        t
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupStatus {
    Ready,
    Missing,
    Invalid,
    Downgrade,
    Stale,
}

impl SetupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SetupStatus::Ready => "ready",
            SetupStatus::Missing => "missing",
            SetupStatus::Invalid => "invalid",
            SetupStatus::Downgrade => "downgrade",
            SetupStatus::Stale => "stale",
        }
    }
}

/// One setup check: a component, its status and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupCheck {
    pub component: &'static str,
    pub status: SetupStatus,
    pub diagnostic: String,
}

impl SetupCheck {
    fn new(component: &'static str, status: SetupStatus, diagnostic: impl Into<String>) -> Self {
        SetupCheck { component, status, diagnostic: diagnostic.into() }
    }
}

/// `<ns dir>/setup.json`.
pub fn receipt_path(ns_dir: &Path) -> PathBuf {
    ns_dir.join("setup.json")
}

/// `<ns dir>/hooks`.
pub fn hooks_dir(ns_dir: &Path) -> PathBuf {
    ns_dir.join("hooks")
}

/// The system hooks dir: `TEROK_SHIELD_SYSTEM_HOOKS_DIR`, else the first `hooks_dir` of the
/// system containers.conf files (podman reads only those dirs then), else podman's default.
pub fn system_hooks_dir(env: &Env) -> PathBuf {
    if let Some(p) = env.get("TEROK_SHIELD_SYSTEM_HOOKS_DIR").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return p;
    }
    for conf in ["/etc/containers/containers.conf", "/usr/share/containers/containers.conf"] {
        let dirs = std::fs::read_to_string(conf).ok().and_then(|t| containers_conf::hooks_dirs(&t).ok().flatten());
        if let Some(first) = dirs.and_then(|d| d.into_iter().find(|d| d.starts_with('/'))) {
            return PathBuf::from(first);
        }
    }
    PathBuf::from(SYSTEM_HOOKS_DIR)
}

/// Numeric components of a version string (`0.9.0-rc1` → `[0, 9, 0]`).
pub fn version_tuple(v: &str) -> Vec<u32> {
    v.split('.')
        .map(|part| part.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0))
        .collect()
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path)?;
    let digest = Sha256::digest(&bytes);
    Ok((digest.iter().map(|b| format!("{b:02x}")).collect(), bytes.len() as u64))
}

/// Read a receipt file: `Ok(None)` when absent.
pub fn read_receipt(path: &Path) -> Result<Option<Receipt>, ReceiptError> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| ReceiptError::Malformed { path: path.to_path_buf(), detail: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ReceiptError::Unreadable { path: path.to_path_buf(), source }),
    }
}

/// The receipt in force: the user's, else the system-wide one.
pub fn find_receipt(env: &Env, ns_dir: &Path) -> (PathBuf, Result<Option<Receipt>, ReceiptError>) {
    let user = receipt_path(ns_dir);
    let found = read_receipt(&user);
    if !matches!(found, Ok(None)) {
        return (user, found);
    }
    let system = system_hooks_dir(env).join(SYSTEM_RECEIPT);
    let found_system = read_receipt(&system);
    if matches!(found_system, Ok(None)) {
        (user, Ok(None))
    } else {
        (system, found_system)
    }
}

/// Check the receipt, the installed hook files and (with `tools_too`) the host tools.
pub fn check_setup(env: &Env, ns_dir: &Path, running_version: &str, tools_too: bool) -> Vec<SetupCheck> {
    let mut checks = Vec::new();
    let (path, found) = find_receipt(env, ns_dir);
    let receipt = match found {
        Ok(Some(r)) => Some(r),
        Ok(None) => {
            checks.push(SetupCheck::new("receipt", SetupStatus::Missing, "Setup receipt is missing"));
            None
        }
        Err(e) => {
            checks.push(SetupCheck::new("receipt", SetupStatus::Invalid, e.to_string()));
            None
        }
    };
    if let Some(r) = &receipt {
        checks.push(check_receipt(r, &path, running_version));
        checks.push(check_hooks(r, env));
    } else {
        checks.push(SetupCheck::new("hooks", SetupStatus::Stale, "Hooks are not installed"));
    }
    if tools_too {
        for tool in ["podman", "nft"] {
            if tools::find(tool).is_none() {
                checks.push(SetupCheck::new(
                    tool,
                    SetupStatus::Missing,
                    format!("Host tool '{tool}' must be executable on PATH."),
                ));
            }
        }
    }
    checks
}

fn check_receipt(r: &Receipt, path: &Path, running: &str) -> SetupCheck {
    if r.owner != "terok-shield" {
        return SetupCheck::new(
            "receipt",
            SetupStatus::Invalid,
            format!("Setup receipt {} belongs to {:?}", path.display(), r.owner),
        );
    }
    let (have, want) = (version_tuple(&r.version), version_tuple(running));
    if have > want {
        return SetupCheck::new(
            "receipt",
            SetupStatus::Downgrade,
            format!("Setup receipt is from the newer version {}", r.version),
        );
    }
    if have != want {
        return SetupCheck::new(
            "receipt",
            SetupStatus::Stale,
            format!("Setup receipt is stale (written by {})", r.version),
        );
    }
    SetupCheck::new("receipt", SetupStatus::Ready, "")
}

fn check_hooks(r: &Receipt, env: &Env) -> SetupCheck {
    let dir = &r.inputs.hooks;
    let stale = |d: String| SetupCheck::new("hooks", SetupStatus::Stale, d);
    let mut missing: Vec<&str> = DESCRIPTORS.iter().map(|(f, _, _)| *f).filter(|f| !dir.join(f).is_file()).collect();
    let binary = dir.join(HOOK_BINARY);
    if !binary.is_file() {
        missing.push(HOOK_BINARY);
    }
    if !missing.is_empty() {
        return stale(format!("Missing hook files: {}", missing.join(", ")));
    }
    match sha256_file(&binary) {
        Ok((sum, _)) if sum == r.inputs.hook_binary.sha256 && tools::is_executable(&binary) => {}
        _ => return stale(format!("Hook binary {} changed since setup; rerun setup", binary.display())),
    }
    for (file, program, stage) in DESCRIPTORS {
        let want = descriptors::render(dir, program, stage, &r.inputs.path);
        if std::fs::read_to_string(dir.join(file)).ok().as_deref() != Some(want.as_str()) {
            return stale("Hook bootstrap binding changed; rerun setup".into());
        }
    }
    let home = env.home().ok();
    match &r.inputs.containers_conf {
        Some(c) if !containers_conf::is_registered(&c.path, dir, home.as_deref()) => {
            return stale(format!("Hook directory is not registered in {}", c.path.display()));
        }
        None => {
            // A system-wide install relies on podman's default hook dirs, which a user's
            // hooks_dir setting replaces.
            if let Ok(conf) = containers_conf::user_conf_path(env) {
                if let Ok(Some(dirs)) = std::fs::read_to_string(&conf)
                    .map_err(|_| ())
                    .and_then(|t| containers_conf::hooks_dirs(&t).map_err(|_| ()))
                {
                    if !env.real_root && !dirs.iter().any(|d| Path::new(d) == dir) {
                        return stale(format!(
                            "hooks_dir in {} replaces podman's default hook dirs and does not list {}",
                            conf.display(),
                            dir.display()
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    SetupCheck::new("hooks", SetupStatus::Ready, "")
}

/// Fail unless every check is ready: `terok-shield/<component>: <diag>; … . Run setup again.`
pub fn require_ready(checks: &[SetupCheck]) -> crate::error::Result<()> {
    let bad: Vec<&SetupCheck> = checks.iter().filter(|c| c.status != SetupStatus::Ready).collect();
    if bad.is_empty() {
        return Ok(());
    }
    let items: Vec<String> = bad
        .iter()
        .map(|c| {
            format!(
                "terok-shield/{}: {}",
                c.component,
                if c.diagnostic.is_empty() { c.status.as_str() } else { &c.diagnostic }
            )
        })
        .collect();
    let tail = if bad.iter().any(|c| c.status == SetupStatus::Downgrade) {
        "Downgrades are not supported."
    } else {
        "Run 'terok-shield setup' again."
    };
    Err(SetupError::NotReady { items, tail }.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_states() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let ns = dir.path();
        let env =
            Env::fixed(&[("HOME", "/nonexistent"), ("TEROK_SHIELD_SYSTEM_HOOKS_DIR", "/nonexistent/hooks.d")], false);
        let status = || check_setup(&env, ns, "1.2.3", false)[0].status;
        assert_eq!(status(), SetupStatus::Missing);
        let write = |v: &str, owner: &str| {
            let r = Receipt {
                inputs: Inputs {
                    containers_conf: None,
                    hook_binary: BinaryId { path: "/x".into(), sha256: "0".into(), size: 0 },
                    hooks: hooks_dir(ns),
                    path: "/usr/bin".into(),
                },
                owner: owner.into(),
                version: v.into(),
            };
            std::fs::write(receipt_path(ns), r.to_text())
        };
        write("1.2.3", "terok-shield")?;
        assert_eq!(status(), SetupStatus::Ready);
        assert!(check_setup(&env, ns, "1.2.3", false)[1]
            .diagnostic
            .starts_with("Missing hook files: terok-shield-createRuntime.json"));
        write("1.10.0", "terok-shield")?;
        assert_eq!(status(), SetupStatus::Downgrade);
        let err =
            require_ready(&check_setup(&env, ns, "1.2.3", false)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.ends_with("Downgrades are not supported."), "{err}");
        write("1.2.2", "terok-shield")?;
        assert_eq!(status(), SetupStatus::Stale);
        write("1.2.3", "someone-else")?;
        assert_eq!(status(), SetupStatus::Invalid);
        std::fs::write(receipt_path(ns), "{")?;
        assert_eq!(status(), SetupStatus::Invalid);
        Ok(())
    }
}
