//! The process environment the hooks and their helpers work with (hooks.md §3). OCI
//! runtimes may strip or inherit anything, so what is needed is computed here, and children
//! get exactly that.

use std::ffi::OsString;

use nix::unistd::{Uid, User};

/// PATH when the runtime passes none (the descriptors normally carry setup's PATH).
pub const FALLBACK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a hook (or a helper it starts) knows of its environment.
#[derive(Debug, Clone)]
pub struct ProcEnv {
    pub path: OsString,
    pub home: OsString,
    pub xdg_runtime_dir: OsString,
    /// The host uid this process's uid maps to (the rootless user, or 0 for rootful).
    pub outer_uid: u32,
}

impl ProcEnv {
    /// This process's environment: PATH as inherited (even empty: tool lookup only uses
    /// absolute entries), else [`FALLBACK_PATH`]; HOME and XDG_RUNTIME_DIR as inherited,
    /// else those of the host user it runs as.
    pub fn current() -> ProcEnv {
        let uid = nix::unistd::geteuid().as_raw();
        let outer_uid =
            std::fs::read_to_string("/proc/self/uid_map").ok().and_then(|m| outer_of(&m, uid)).unwrap_or(uid);
        let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).unwrap_or_else(|| home_of(outer_uid));
        let xdg = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|x| !x.is_empty())
            .unwrap_or_else(|| format!("/run/user/{outer_uid}").into());
        let path = std::env::var_os("PATH").unwrap_or_else(|| FALLBACK_PATH.into());
        ProcEnv { path, home, xdg_runtime_dir: xdg, outer_uid }
    }

    /// Environment for children: PATH, HOME, XDG_RUNTIME_DIR and a C locale, nothing else
    /// (no LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, PYTHONPATH, …).
    pub fn child_env(&self) -> Vec<(OsString, OsString)> {
        vec![
            ("PATH".into(), self.path.clone()),
            ("HOME".into(), self.home.clone()),
            ("XDG_RUNTIME_DIR".into(), self.xdg_runtime_dir.clone()),
            ("LC_ALL".into(), "C".into()),
        ]
    }
}

/// Project `uid` through a uid_map (`inner outer count` rows).
pub fn outer_of(map: &str, uid: u32) -> Option<u32> {
    map.lines().find_map(|row| {
        let v: Vec<u64> = row.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        let (inner, outer, count) = (*v.first()?, *v.get(1)?, *v.get(2)?);
        let u = u64::from(uid);
        (u >= inner && u < inner + count).then(|| u32::try_from(outer + (u - inner)).ok()).flatten()
    })
}

/// The home directory of host user `uid` (the password database), else `/root` for root and
/// `/home/<uid>` for anyone else.
fn home_of(uid: u32) -> OsString {
    match (User::from_uid(Uid::from_raw(uid)).ok().flatten(), uid) {
        (Some(u), _) if u.dir.is_absolute() => u.dir.into_os_string(),
        (_, 0) => "/root".into(),
        _ => format!("/home/{uid}").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_projection() {
        assert_eq!(outer_of("0 1000 1\n1 100000 65536\n", 0), Some(1000));
        assert_eq!(outer_of("0 1000 1\n1 100000 65536\n", 5), Some(100004));
        assert_eq!(outer_of("0 0 4294967295\n", 0), Some(0));
        assert_eq!(outer_of("0 1000 1\n", 7), None);
    }

    #[test]
    fn homes_from_the_password_database() {
        assert_eq!(home_of(0), OsString::from("/root"));
        assert_eq!(home_of(4_000_000_000), OsString::from("/home/4000000000"));
    }
}
