//! State-dir validation (hooks.md §4): other host users must not be able to steer the hook,
//! which holds CAP_NET_ADMIN over the container, into applying their ruleset.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use terok_shield_policy::sanitize::quoted;

/// Why a state dir annotation was refused (each names the dir, quoted and sanitised).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateDirError {
    #[error("annotation terok.shield.state_dir is missing")]
    Missing,
    #[error("state dir {0} is not absolute")]
    NotAbsolute(String),
    #[error("state dir {0} is inside a system directory")]
    SystemDir(String),
    #[error("state dir {0} cannot be resolved: {1}")]
    Unresolvable(String, #[source] std::io::Error),
    #[error("state dir {0} resolves into a system directory")]
    ResolvesIntoSystemDir(String),
    #[error("state dir {0}: {1}")]
    Unreadable(String, #[source] std::io::Error),
    #[error("state dir {0} is a symlink")]
    Symlink(String),
    #[error("state dir {0} is not a directory")]
    NotDirectory(String),
    #[error("state dir {dir} is owned by uid {owner}, not by the hook's uid {euid}")]
    Owner { dir: String, owner: u32, euid: u32 },
    #[error("state dir {dir} is group- or world-writable (mode {mode:o})")]
    Writable { dir: String, mode: u32 },
    /// A directory above the state dir lets someone else replace it.
    #[error("state dir {dir}: its parent {parent} {why}")]
    Ancestor { dir: String, parent: String, why: String },
}

/// System trees a state dir may never be in (`/tmp` and `/var/tmp` are allowed).
const SENSITIVE: [&str; 11] =
    ["/etc", "/proc", "/sys", "/dev", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/root"];

fn sensitive(p: &Path) -> bool {
    p == Path::new("/") || SENSITIVE.iter().any(|s| p.starts_with(s))
}

/// Validate the `terok.shield.state_dir` annotation for a hook running as `euid`; returns
/// the symlink-resolved directory. The hook never creates it.
pub fn validate(raw: Option<&str>, euid: u32) -> Result<PathBuf, StateDirError> {
    use StateDirError as E;
    let raw = raw.filter(|r| !r.is_empty()).ok_or(E::Missing)?;
    let q = quoted(raw);
    let path = Path::new(raw);
    if !path.is_absolute() {
        return Err(E::NotAbsolute(q));
    }
    if sensitive(path) {
        return Err(E::SystemDir(q));
    }
    let resolved = match std::fs::canonicalize(path) {
        Ok(r) => r,
        Err(e) => return Err(E::Unresolvable(q, e)),
    };
    if sensitive(&resolved) {
        return Err(E::ResolvesIntoSystemDir(q));
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return Err(E::Unreadable(q, e)),
    };
    if meta.file_type().is_symlink() {
        return Err(E::Symlink(q));
    }
    if !meta.is_dir() {
        return Err(E::NotDirectory(q));
    }
    if meta.uid() != euid {
        return Err(E::Owner { dir: q, owner: meta.uid(), euid });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(E::Writable { dir: q, mode: meta.mode() & 0o7777 });
    }
    ancestors(&resolved, euid).map_err(|(parent, why)| E::Ancestor { dir: q, parent: quoted(&parent), why })?;
    Ok(resolved)
}

/// Every directory above the (resolved) state dir must be one only root, the hook's user
/// or the kernel's overflow uid (root as a rootless hook sees it) can change entries in:
/// owned by one of them, and writable by group or others only with the sticky bit (as
/// `/tmp`), so no other user can rename the state dir away and put their own in its place.
/// Inside a user namespace every unmapped owner shows as the overflow uid, so there an
/// ancestor owned by another host user is not told from root's (decisions.md).
fn ancestors(resolved: &Path, euid: u32) -> Result<(), (String, String)> {
    // The overflow uid stands for unmapped owners only inside a user namespace; in the
    // initial one it is the real `nobody`, trusted for nothing.
    let initial = std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]);
    let overflow: Option<u32> = if initial {
        None
    } else {
        std::fs::read_to_string("/proc/sys/kernel/overflowuid").ok().and_then(|s| s.trim().parse().ok())
    };
    for parent in resolved.ancestors().skip(1) {
        let shown = parent.display().to_string();
        let meta = std::fs::metadata(parent).map_err(|e| (shown.clone(), format!("cannot be read: {e}")))?;
        let owner = meta.uid();
        if owner != 0 && owner != euid && Some(owner) != overflow {
            return Err((shown, format!("is owned by uid {owner}")));
        }
        let mode = meta.mode();
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err((
                shown,
                format!("is group- or world-writable without the sticky bit (mode {:o})", mode & 0o7777),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections() -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let euid = nix::unistd::geteuid().as_raw();
        let dir = tempfile::tempdir()?;
        let good = dir.path().join("good");
        std::fs::create_dir(&good)?;
        std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o700))?;
        let s = |p: &Path| p.display().to_string();
        assert_eq!(validate(Some(&s(&good)), euid).ok(), Some(std::fs::canonicalize(&good)?));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&good, &link)?;
        let file = dir.path().join("file");
        std::fs::write(&file, "")?;
        let writable = dir.path().join("writable");
        std::fs::create_dir(&writable)?;
        std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o770))?;
        for (raw, why) in [
            (None, "missing"),
            (Some("relative/dir".to_string()), "not absolute"),
            (Some("/etc/terok".to_string()), "system directory"),
            (Some("/".to_string()), "system directory"),
            (Some(s(&dir.path().join("absent"))), "cannot be resolved"),
            (Some(s(&link)), "is a symlink"),
            (Some(s(&file)), "not a directory"),
            (Some(s(&writable)), "group- or world-writable"),
        ] {
            let e = validate(raw.as_deref(), euid).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(why), "{raw:?}: {e}");
        }
        let e = validate(Some(&s(&good)), euid + 1).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("is owned by uid"), "{e}");
        // An ancestor others may write to: refused, unless it is sticky (as /tmp is).
        let inner = writable.join("inner");
        std::fs::create_dir(&inner)?;
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700))?;
        let e = validate(Some(&s(&inner)), euid).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("its parent") && e.contains("without the sticky bit (mode 770)"), "{e}");
        std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o1777))?;
        assert!(validate(Some(&s(&inner)), euid).is_ok());
        Ok(())
    }
}
