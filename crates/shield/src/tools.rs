//! Host-tool lookup: only the absolute entries of `PATH` are searched.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Find an executable `name` in the absolute entries of `path_var`. A name containing `/`
/// must itself be an absolute path to an executable file.
pub fn find_in(name: &str, path_var: Option<&OsStr>) -> Option<PathBuf> {
    if name.contains('/') {
        let p = Path::new(name);
        return (p.is_absolute() && is_executable(p)).then(|| p.to_path_buf());
    }
    if name.is_empty() {
        return None;
    }
    std::env::split_paths(path_var?)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Find `name` on the process's own `PATH`.
pub fn find(name: &str) -> Option<PathBuf> {
    find_in(name, std::env::var_os("PATH").as_deref())
}

/// A regular file (following links) with an execute bit.
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A host tool the work needs is not on PATH.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} not found on PATH (only absolute PATH entries are searched). {hint}")]
pub struct ToolMissing {
    pub name: &'static str,
    pub hint: &'static str,
}

/// Find `name` on the process's PATH, or say which tool is missing and how to get it.
pub fn require(name: &'static str, hint: &'static str) -> Result<PathBuf, ToolMissing> {
    find(name).ok_or(ToolMissing { name, hint })
}

pub const NFT_HINT: &str =
    "Install nftables: apt install nftables (Debian/Ubuntu), dnf install nftables (Fedora), pacman -S nftables (Arch).";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_empty_entries_are_never_searched() {
        let found = find_in("sh", Some(OsStr::new(":.:bin:/bin:/usr/bin")));
        assert!(found.is_some_and(|p| p.is_absolute()));
        assert_eq!(find_in("sh", Some(OsStr::new(".:bin::usr/bin"))), None);
        assert_eq!(find_in("sh", None), None);
        assert_eq!(find_in("bin/sh", Some(OsStr::new("/"))), None);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(find_in(&plain.display().to_string(), None), None, "not executable");
    }
}
