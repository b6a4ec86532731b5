//! What prepare needs to know about podman, cheaply.
//!
//! Rootless network mode and podman's version come from `podman info` (about 0.3 s), so they
//! are cached in `<ns dir>/podman-facts.json`, keyed by the identity (path, size, mtime,
//! inode) of the podman binary and of every containers.conf podman reads: upgrading podman
//! or editing its configuration invalidates the cache.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::paths::Env;
use crate::{exec, tools};

/// How a rootless container reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    Pasta,
    Slirp4netns,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Pasta => "pasta",
            NetworkMode::Slirp4netns => "slirp4netns",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodmanFacts {
    pub version: String,
    pub network: NetworkMode,
}

#[derive(Serialize, Deserialize)]
struct Cached {
    key: String,
    facts: PodmanFacts,
}

/// The containers.conf files podman consults, in its order.
pub fn conf_files(env: &Env) -> Vec<PathBuf> {
    if let Some(p) = env.get("CONTAINERS_CONF") {
        return vec![PathBuf::from(p)];
    }
    let mut v =
        vec![PathBuf::from("/usr/share/containers/containers.conf"), PathBuf::from("/etc/containers/containers.conf")];
    if let Ok(user) = crate::setup::containers_conf::user_conf_path(env) {
        v.push(user);
    }
    v
}

fn identity(p: &Path) -> String {
    match std::fs::metadata(p) {
        Ok(m) => format!("{}:{}:{}:{}", p.display(), m.len(), m.mtime_nsec() + m.mtime() * 1_000_000_000, m.ino()),
        Err(_) => format!("{}:absent", p.display()),
    }
}

/// Podman's facts, from the cache when podman and its configuration are unchanged.
pub fn facts(env: &Env, ns_dir: &Path) -> Result<PodmanFacts> {
    let podman = tools::find_in("podman", env.get("PATH"))
        .ok_or(crate::tools::ToolMissing { name: "podman", hint: "Install Podman." })?;
    let mut key = identity(&podman);
    for f in conf_files(env) {
        key.push('|');
        key.push_str(&identity(&f));
    }
    let cache = ns_dir.join("podman-facts.json");
    if let Ok(text) = std::fs::read_to_string(&cache) {
        if let Ok(c) = serde_json::from_str::<Cached>(&text) {
            if c.key == key {
                return Ok(c.facts);
            }
        }
    }
    let out = exec::run_ok(&podman, &["info", "--format", "json"], Duration::from_secs(30))?;
    let facts = parse_info(&out.stdout);
    if std::fs::create_dir_all(ns_dir).is_ok() {
        let text = serde_json::to_string(&Cached { key, facts: facts.clone() }).unwrap_or_default();
        let _ = crate::fsutil::write_atomic(&cache, text.as_bytes(), 0o600);
    }
    Ok(facts)
}

/// Network mode = `host.rootlessNetworkCmd` when it names pasta or slirp4netns; else
/// slirp4netns when podman knows its executable (podman 4.x); else pasta.
pub fn parse_info(json: &str) -> PodmanFacts {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let host = &v["host"];
    let network = match host["rootlessNetworkCmd"].as_str() {
        Some("pasta") => NetworkMode::Pasta,
        Some("slirp4netns") => NetworkMode::Slirp4netns,
        _ if host["slirp4netns"]["executable"].as_str().is_some_and(|e| !e.is_empty()) => NetworkMode::Slirp4netns,
        _ => NetworkMode::Pasta,
    };
    let version = v["version"]["Version"].as_str().unwrap_or("0").to_string();
    PodmanFacts { version, network }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_parsing() {
        let p4 = parse_info(
            r#"{"host":{"slirp4netns":{"executable":"/usr/bin/slirp4netns"}},"version":{"Version":"4.3.1"}}"#,
        );
        assert_eq!((p4.network, p4.version.as_str()), (NetworkMode::Slirp4netns, "4.3.1"));
        let p5 = parse_info(
            r#"{"host":{"rootlessNetworkCmd":"pasta","slirp4netns":{"executable":"/usr/bin/slirp4netns"}},"version":{"Version":"5.2.0"}}"#,
        );
        assert_eq!(p5.network, NetworkMode::Pasta);
        assert_eq!(parse_info("garbage").network, NetworkMode::Pasta);
    }
}
