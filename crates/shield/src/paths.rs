//! Directory roots (state-and-config.md §1): state root, config root, shield namespace dir.
//!
//! All resolution reads an [`Env`] snapshot, so it is testable without touching the
//! process environment.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A snapshot of the environment variables that steer path resolution.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, OsString>,
    /// Effective uid 0 in the initial user namespace.
    pub real_root: bool,
}

impl Env {
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))).collect(),
            real_root: is_real_root(),
        }
    }

    /// A fixed environment, for tests.
    pub fn fixed(vars: &[(&str, &str)], real_root: bool) -> Self {
        Env { vars: vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect(), real_root }
    }

    /// A variable's value, when set and non-empty.
    pub fn get(&self, key: &str) -> Option<&OsStr> {
        self.vars.get(key).map(OsString::as_os_str).filter(|v| !v.is_empty())
    }

    /// An XDG base directory: only absolute values count (XDG Base Directory spec).
    fn xdg(&self, key: &str, home_fallback: &str) -> Result<PathBuf> {
        match self.get(key).map(Path::new).filter(|p| p.is_absolute()) {
            Some(p) => Ok(p.to_path_buf()),
            None => Ok(self.home()?.join(home_fallback)),
        }
    }

    /// `$XDG_DATA_HOME`, else `~/.local/share`.
    pub fn xdg_data_home(&self) -> Result<PathBuf> {
        self.xdg("XDG_DATA_HOME", ".local/share")
    }

    pub fn home(&self) -> Result<PathBuf> {
        self.get("HOME").map(PathBuf::from).filter(|p| p.is_absolute()).ok_or(Error::NoHome)
    }
}

/// Make `p` absolute against the current directory (no symlink resolution).
pub(crate) fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io(p, e))
}

/// State root: `--state-dir` → `$TEROK_SHIELD_STATE_DIR` → `$XDG_STATE_HOME/terok/shield`
/// → `~/.local/state/terok/shield`.
pub fn state_root(flag: Option<&Path>, env: &Env) -> Result<PathBuf> {
    if let Some(p) = flag {
        return absolute(p);
    }
    if let Some(p) = env.get("TEROK_SHIELD_STATE_DIR") {
        return absolute(Path::new(p));
    }
    Ok(env.xdg("XDG_STATE_HOME", ".local/state")?.join("terok/shield"))
}

/// Config root: `$TEROK_SHIELD_CONFIG_DIR` → `$XDG_CONFIG_HOME/terok/shield` →
/// `~/.config/terok/shield`.
pub fn config_root(env: &Env) -> Result<PathBuf> {
    if let Some(p) = env.get("TEROK_SHIELD_CONFIG_DIR") {
        return absolute(Path::new(p));
    }
    Ok(env.xdg("XDG_CONFIG_HOME", ".config")?.join("terok/shield"))
}

/// `<data base>`: `/var/lib/terok` for real root, else `$XDG_DATA_HOME/terok` or
/// `~/.local/share/terok`.
pub(crate) fn data_base(env: &Env) -> Result<PathBuf> {
    if env.real_root {
        return Ok(PathBuf::from("/var/lib/terok"));
    }
    Ok(env.xdg("XDG_DATA_HOME", ".local/share")?.join("terok"))
}

/// Shield namespace dir: `$TEROK_ROOT/shield` → `<paths.root>/shield` from the terok-wide
/// config → `<data base>/shield`.
pub fn namespace_dir(env: &Env) -> Result<PathBuf> {
    if let Some(root) = env.get("TEROK_ROOT") {
        return Ok(absolute(Path::new(root))?.join("shield"));
    }
    if let Some(root) = terok_paths_root(env) {
        return Ok(root.join("shield"));
    }
    Ok(data_base(env)?.join("shield"))
}

/// The host DNS cache shared by a state root's containers.
pub(crate) fn dns_cache_dir(state_root: &Path) -> PathBuf {
    state_root.join("dns-cache")
}

/// Per-container bundle under a state root.
pub fn container_dir(state_root: &Path, container: &str) -> PathBuf {
    state_root.join("containers").join(container)
}

/// `paths.root` of the layered terok config: `$TEROK_CONFIG_FILE` alone if set, else
/// `/etc/terok/config.yml` then (non-root) `~/.config/terok/config.yml`, the user's winning.
/// Read failures are silent: this only picks a default location.
fn terok_paths_root(env: &Env) -> Option<PathBuf> {
    let files: Vec<PathBuf> = match env.get("TEROK_CONFIG_FILE") {
        Some(f) => vec![PathBuf::from(f)],
        None => {
            let mut v = vec![PathBuf::from("/etc/terok/config.yml")];
            if !env.real_root {
                if let Ok(h) = env.home() {
                    v.push(h.join(".config/terok/config.yml"));
                }
            }
            v
        }
    };
    let mut root = None;
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let Ok(value) = serde_saphyr::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if let Some(s) = value.get("paths").and_then(|p| p.get("root")).and_then(|r| r.as_str()) {
            root = Some(expand_tilde(s, env));
        }
    }
    root.and_then(|p| absolute(&p).ok())
}

fn expand_tilde(s: &str, env: &Env) -> PathBuf {
    match (s.strip_prefix("~/"), env.home()) {
        (Some(rest), Ok(home)) => home.join(rest),
        _ if s == "~" => env.home().unwrap_or_else(|_| PathBuf::from(s)),
        _ => PathBuf::from(s),
    }
}

/// Effective uid 0 *and* the initial user namespace (`uid_map` is exactly `0 0 4294967295`).
/// A uid 0 inside a user namespace is not real root.
pub(crate) fn is_real_root() -> bool {
    nix::unistd::geteuid().is_root()
        && std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| is_initial_uid_map(&m))
}

fn is_initial_uid_map(map: &str) -> bool {
    let rows: Vec<Vec<&str>> =
        map.lines().map(|l| l.split_whitespace().collect()).filter(|r: &Vec<&str>| !r.is_empty()).collect();
    rows.len() == 1 && rows[0] == ["0", "0", "4294967295"]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(r: Result<PathBuf>) -> String {
        r.map(|p| p.display().to_string()).unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn state_root_order() {
        let env = Env::fixed(
            &[("HOME", "/home/u"), ("XDG_STATE_HOME", "/xdg/state"), ("TEROK_SHIELD_STATE_DIR", "/env/state")],
            false,
        );
        assert_eq!(p(state_root(Some(Path::new("/flag")), &env)), "/flag");
        assert_eq!(p(state_root(None, &env)), "/env/state");
        let env = Env::fixed(&[("HOME", "/home/u"), ("XDG_STATE_HOME", "/xdg/state")], false);
        assert_eq!(p(state_root(None, &env)), "/xdg/state/terok/shield");
        let env = Env::fixed(&[("HOME", "/home/u"), ("XDG_STATE_HOME", "relative")], false);
        assert_eq!(p(state_root(None, &env)), "/home/u/.local/state/terok/shield");
        assert!(p(state_root(None, &Env::fixed(&[], false))).starts_with("ERR HOME is not set"));
    }

    #[test]
    fn config_root_order() {
        let env = Env::fixed(&[("HOME", "/home/u")], false);
        assert_eq!(p(config_root(&env)), "/home/u/.config/terok/shield");
        let env =
            Env::fixed(&[("HOME", "/home/u"), ("XDG_CONFIG_HOME", "/c"), ("TEROK_SHIELD_CONFIG_DIR", "/d")], false);
        assert_eq!(p(config_root(&env)), "/d");
    }

    #[test]
    fn namespace_dir_order() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, "paths:\n  root: ~/terok-data\n").map_err(|e| Error::io(&cfg, e))?;
        let cfg_s = cfg.display().to_string();
        let env = Env::fixed(&[("HOME", "/home/u"), ("TEROK_CONFIG_FILE", &cfg_s)], false);
        assert_eq!(p(namespace_dir(&env)), "/home/u/terok-data/shield");
        let env = Env::fixed(&[("HOME", "/home/u"), ("TEROK_CONFIG_FILE", &cfg_s), ("TEROK_ROOT", "/tr")], false);
        assert_eq!(p(namespace_dir(&env)), "/tr/shield");
        let env = Env::fixed(&[("HOME", "/home/u"), ("TEROK_CONFIG_FILE", "/nonexistent")], false);
        assert_eq!(p(namespace_dir(&env)), "/home/u/.local/share/terok/shield");
        let env = Env::fixed(&[("HOME", "/root"), ("TEROK_CONFIG_FILE", "/nonexistent")], true);
        assert_eq!(p(namespace_dir(&env)), "/var/lib/terok/shield");
        Ok(())
    }

    #[test]
    fn uid_maps() {
        assert!(is_initial_uid_map("         0          0 4294967295\n"));
        assert!(!is_initial_uid_map("0 1000 1\n1 100000 65536\n"));
        assert!(!is_initial_uid_map("0 0 4294967294\n"));
    }
}
