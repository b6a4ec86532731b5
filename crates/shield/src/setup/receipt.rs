//! The setup receipt `<ns dir>/setup.json` and the setup checks (hooks.md §2.4).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Hook descriptor file names, one per (program, stage).
pub const DESCRIPTORS: [&str; 4] = [
    "terok-shield-createRuntime.json",
    "terok-shield-poststop.json",
    "terok-shield-bridge-createRuntime.json",
    "terok-shield-bridge-poststop.json",
];

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

#[derive(Deserialize)]
struct Receipt {
    owner: String,
    version: String,
    inputs: ReceiptInputs,
}

#[derive(Deserialize)]
struct ReceiptInputs {
    hooks: PathBuf,
}

/// Where the receipt lives.
pub fn receipt_path(ns_dir: &Path) -> PathBuf {
    ns_dir.join("setup.json")
}

/// Where the hook files live.
pub fn hooks_dir(ns_dir: &Path) -> PathBuf {
    ns_dir.join("hooks")
}

/// Numeric components of a version string (`0.9.0-rc1` → `[0, 9, 0]`).
pub fn version_tuple(v: &str) -> Vec<u32> {
    v.split('.')
        .map(|part| {
            part.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap_or(0)
        })
        .collect()
}

/// Check the receipt and the hook files against `running_version`.
pub fn check_setup(ns_dir: &Path, running_version: &str) -> Vec<SetupCheck> {
    let mut checks = vec![check_receipt(ns_dir, running_version)];
    let hooks = hooks_dir(ns_dir);
    let missing: Vec<&str> = DESCRIPTORS
        .iter()
        .copied()
        .filter(|f| !hooks.join(f).is_file())
        .collect();
    checks.push(if missing.is_empty() {
        SetupCheck {
            component: "hooks",
            status: SetupStatus::Ready,
            diagnostic: String::new(),
        }
    } else {
        SetupCheck {
            component: "hooks",
            status: SetupStatus::Stale,
            diagnostic: format!("Missing hook files: {}", missing.join(", ")),
        }
    });
    checks
}

fn check_receipt(ns_dir: &Path, running: &str) -> SetupCheck {
    let path = receipt_path(ns_dir);
    let check = |status, diagnostic: String| SetupCheck {
        component: "receipt",
        status,
        diagnostic,
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return check(SetupStatus::Missing, "Setup receipt is missing".into())
        }
        Err(e) => {
            return check(
                SetupStatus::Invalid,
                format!("Setup receipt {} is unreadable: {e}", path.display()),
            )
        }
    };
    let receipt: Receipt = match serde_json::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            return check(
                SetupStatus::Invalid,
                format!("Setup receipt {} is malformed: {e}", path.display()),
            )
        }
    };
    if receipt.owner != "terok-shield" {
        return check(
            SetupStatus::Invalid,
            format!(
                "Setup receipt {} belongs to {:?}",
                path.display(),
                receipt.owner
            ),
        );
    }
    let (have, want) = (version_tuple(&receipt.version), version_tuple(running));
    if have > want {
        return check(
            SetupStatus::Downgrade,
            format!(
                "Setup receipt is from the newer version {}",
                receipt.version
            ),
        );
    }
    if have != want || receipt.inputs.hooks != hooks_dir(ns_dir) {
        return check(
            SetupStatus::Stale,
            format!("Setup receipt is stale (written by {})", receipt.version),
        );
    }
    check(SetupStatus::Ready, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_states() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let ns = dir.path();
        let status = || check_setup(ns, "1.2.3")[0].status;
        assert_eq!(status(), SetupStatus::Missing);
        let write = |v: &str, owner: &str| {
            let hooks = hooks_dir(ns).display().to_string();
            let body =
                serde_json::json!({"inputs": {"hooks": hooks}, "owner": owner, "version": v});
            std::fs::write(receipt_path(ns), body.to_string())
        };
        write("1.2.3", "terok-shield")?;
        assert_eq!(status(), SetupStatus::Ready);
        write("1.10.0", "terok-shield")?;
        assert_eq!(status(), SetupStatus::Downgrade);
        write("1.2.2", "terok-shield")?;
        assert_eq!(status(), SetupStatus::Stale);
        write("1.2.3", "someone-else")?;
        assert_eq!(status(), SetupStatus::Invalid);
        std::fs::write(receipt_path(ns), "{")?;
        assert_eq!(status(), SetupStatus::Invalid);
        assert_eq!(
            check_setup(ns, "1.2.3")[1].diagnostic,
            format!("Missing hook files: {}", DESCRIPTORS.join(", "))
        );
        Ok(())
    }
}
