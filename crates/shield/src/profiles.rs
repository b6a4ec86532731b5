//! Profile files: the bundled set, overridden whole by `<config root>/profiles/<name>.txt`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use terok_shield_policy::profiles::{compose, ProfileSource};
use terok_shield_policy::Entry;

use crate::error::Result;

/// The bundled profiles: name and text (dns.md §8.1).
pub const BUNDLED: [(&str, &str); 6] = [
    ("base", include_str!("../profiles/base.txt")),
    ("dev-node", include_str!("../profiles/dev-node.txt")),
    ("dev-python", include_str!("../profiles/dev-python.txt")),
    ("dev-standard", include_str!("../profiles/dev-standard.txt")),
    ("krun_guest", include_str!("../profiles/krun_guest.txt")),
    ("nvidia-hpc", include_str!("../profiles/nvidia-hpc.txt")),
];

/// Where profiles are looked up.
#[derive(Debug, Clone)]
pub struct ProfileDirs {
    /// `<config root>/profiles`; may not exist.
    pub user_dir: PathBuf,
}

impl ProfileDirs {
    pub fn new(config_root: &Path) -> Self {
        ProfileDirs { user_dir: config_root.join("profiles") }
    }

    /// A profile's text: the user's file first, then the bundled one. The name must have been
    /// validated (it becomes a file name).
    pub fn lookup(&self, name: &str) -> Option<ProfileSource> {
        let user = self.user_dir.join(format!("{name}.txt"));
        if let Ok(text) = std::fs::read_to_string(&user) {
            return Some(ProfileSource { origin: user.display().to_string(), text });
        }
        BUNDLED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, text)| ProfileSource { origin: format!("bundled profile {n}"), text: (*text).to_string() })
    }

    /// Sorted union of bundled names and `*.txt` stems in the user dir.
    pub fn list(&self) -> Vec<String> {
        let mut names: BTreeSet<String> = BUNDLED.iter().map(|(n, _)| (*n).to_string()).collect();
        if let Ok(entries) = std::fs::read_dir(&self.user_dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "txt") {
                    if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                        if terok_shield_policy::names::validate_profile_name(stem).is_ok() {
                            names.insert(stem.to_string());
                        }
                    }
                }
            }
        }
        names.into_iter().collect()
    }

    /// Compose `names` in order, duplicates dropped.
    pub fn compose(&self, names: &[String]) -> Result<Vec<Entry>> {
        Ok(compose(names, |n| self.lookup(n))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use terok_shield_policy::render_policy;

    fn domains(names: &[&str], dirs: &ProfileDirs) -> Vec<String> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        dirs.compose(&names).unwrap_or_default().iter().map(|e| e.target.to_string()).collect()
    }

    #[test]
    fn bundled_profiles_hold_the_specified_data() {
        let dirs = ProfileDirs { user_dir: PathBuf::from("/nonexistent") };
        assert_eq!(dirs.list(), ["base", "dev-node", "dev-python", "dev-standard", "krun_guest", "nvidia-hpc"]);
        let expected: [(&str, &[&str]); 6] = [
            (
                "base",
                &[
                    "root-servers.net",
                    "pool.ntp.org",
                    "time.google.com",
                    "time.cloudflare.com",
                    "ocsp.digicert.com",
                    "ocsp.pki.goog",
                    "ocsp.sectigo.com",
                    "r3.o.lencr.org",
                    "archive.ubuntu.com",
                    "security.ubuntu.com",
                    "deb.debian.org",
                    "mirrors.fedoraproject.org",
                    "dl.fedoraproject.org",
                    "dl-cdn.alpinelinux.org",
                ],
            ),
            (
                "dev-standard",
                &[
                    "github.com",
                    "api.github.com",
                    "raw.githubusercontent.com",
                    "objects.githubusercontent.com",
                    "github-releases.githubusercontent.com",
                    "gitlab.com",
                    "registry-1.docker.io",
                    "auth.docker.io",
                    "production.cloudflare.docker.com",
                    "ghcr.io",
                    "pypi.org",
                    "files.pythonhosted.org",
                    "registry.npmjs.org",
                    "crates.io",
                    "static.crates.io",
                    "proxy.golang.org",
                    "sum.golang.org",
                    "storage.googleapis.com",
                ],
            ),
            (
                "dev-python",
                &[
                    "pypi.org",
                    "files.pythonhosted.org",
                    "conda.anaconda.org",
                    "repo.anaconda.com",
                    "docs.python.org",
                    "readthedocs.org",
                    "readthedocs.io",
                ],
            ),
            ("dev-node", &["registry.npmjs.org", "registry.yarnpkg.com", "cdn.jsdelivr.net", "unpkg.com"]),
            ("nvidia-hpc", &["developer.download.nvidia.com", "nvcr.io", "authn.nvidia.com", "cuda-repo.nvidia.com"]),
            (
                "krun_guest",
                &[
                    "pool.ntp.org",
                    "time.google.com",
                    "time.cloudflare.com",
                    "archive.ubuntu.com",
                    "security.ubuntu.com",
                    "deb.debian.org",
                    "mirrors.fedoraproject.org",
                    "dl.fedoraproject.org",
                ],
            ),
        ];
        for (name, want) in expected {
            assert_eq!(domains(&[name], &dirs), want, "{name}");
        }
        assert_eq!(domains(&["dev-python", "dev-standard"], &dirs).iter().filter(|d| *d == "pypi.org").count(), 1);
    }

    #[test]
    fn user_profiles_override_whole_files() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tmp", e))?;
        let dirs = ProfileDirs::new(dir.path());
        std::fs::create_dir(&dirs.user_dir).map_err(|e| crate::Error::io(&dirs.user_dir, e))?;
        std::fs::write(dirs.user_dir.join("base.txt"), "+mine.example\n").map_err(|e| crate::Error::io("base", e))?;
        std::fs::write(dirs.user_dir.join("extra.txt"), "+x.example:443\n")
            .map_err(|e| crate::Error::io("extra", e))?;
        std::fs::write(dirs.user_dir.join("notes.md"), "").map_err(|e| crate::Error::io("notes", e))?;
        assert_eq!(domains(&["base"], &dirs), ["mine.example"]);
        assert!(dirs.list().contains(&"extra".to_string()) && !dirs.list().contains(&"notes".to_string()));
        let composed = dirs.compose(&["extra".into(), "base".into()])?;
        assert_eq!(render_policy(&composed), "+x.example:443\n+mine.example\n");
        Ok(())
    }
}
