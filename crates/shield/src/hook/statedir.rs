//! State-dir validation (hooks.md §4): other host users must not be able to steer the hook,
//! which holds CAP_NET_ADMIN over the container, into applying their ruleset.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use terok_shield_policy::sanitize::quoted;

/// System trees a state dir may never be in (`/tmp` and `/var/tmp` are allowed).
const SENSITIVE: [&str; 11] =
    ["/etc", "/proc", "/sys", "/dev", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/root"];

fn sensitive(p: &Path) -> bool {
    p == Path::new("/") || SENSITIVE.iter().any(|s| p.starts_with(s))
}

/// Validate the `terok.shield.state_dir` annotation for a hook running as `euid`; returns
/// the symlink-resolved directory. The hook never creates it.
pub fn validate(raw: Option<&str>, euid: u32) -> Result<PathBuf, String> {
    let raw = raw.filter(|r| !r.is_empty()).ok_or("annotation terok.shield.state_dir is missing")?;
    let q = quoted(raw);
    let path = Path::new(raw);
    if !path.is_absolute() {
        return Err(format!("state dir {q} is not absolute"));
    }
    if sensitive(path) {
        return Err(format!("state dir {q} is inside a system directory"));
    }
    let resolved = std::fs::canonicalize(path).map_err(|e| format!("state dir {q} cannot be resolved: {e}"))?;
    if sensitive(&resolved) {
        return Err(format!("state dir {q} resolves into a system directory"));
    }
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("state dir {q}: {e}"))?;
    if meta.file_type().is_symlink() {
        return Err(format!("state dir {q} is a symlink"));
    }
    if !meta.is_dir() {
        return Err(format!("state dir {q} is not a directory"));
    }
    if meta.uid() != euid {
        return Err(format!("state dir {q} is owned by uid {}, not by the hook's uid {euid}", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("state dir {q} is group- or world-writable (mode {:o})", meta.mode() & 0o7777));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections() -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let euid = crate::paths::effective_uid().unwrap_or(0);
        let dir = tempfile::tempdir()?;
        let good = dir.path().join("good");
        std::fs::create_dir(&good)?;
        std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o700))?;
        let s = |p: &Path| p.display().to_string();
        assert_eq!(validate(Some(&s(&good)), euid), Ok(std::fs::canonicalize(&good)?));
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
            let e = validate(raw.as_deref(), euid).err().unwrap_or_default();
            assert!(e.contains(why), "{raw:?}: {e}");
        }
        let e = validate(Some(&s(&good)), euid + 1).err().unwrap_or_default();
        assert!(e.contains("is owned by uid"), "{e}");
        Ok(())
    }
}
