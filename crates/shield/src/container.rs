//! Finding a shielded container's bundle and its running process, without asking podman.
//!
//! The hook records `<pid> <start time> <netns inode>` in `container.pid` at createRuntime
//! and removes it at poststop; a verb trusts the pid only while the process at that pid has
//! the same start time and network namespace, so a recycled pid is never entered.

use std::path::{Path, PathBuf};
use std::time::Duration;

use terok_shield_policy::names::validate_container_name;

use crate::bundle::layout::Bundle;
use crate::error::Result;
use crate::kernel::netns;
use crate::{exec, tools};

pub(crate) const CONTAINER_PID: &str = "container.pid";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContainerError {
    /// The process the hook was handed is gone before it could be recorded.
    #[error("cannot read /proc/{0}: the container process is gone")]
    Gone(u32),
    #[error("container '{name}' has no bundle under {} and no 'terok.shield.state_dir' annotation — was it launched through terok-shield? Pass --state-dir=<root> if you know where its state lives.", .containers.display())]
    NoBundle { name: String, containers: PathBuf },
    #[error("container '{0}' is not running")]
    NotRunning(String),
}

/// A process's identity: pid, start time (clock ticks since boot), netns inode, and the
/// inode of its user namespace (`None` in a record of an older hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    pub pid: u32,
    pub start_time: u64,
    pub net_inode: u64,
    pub user_inode: Option<u64>,
}

impl Identity {
    pub(crate) fn of(pid: u32) -> Option<Identity> {
        let start_time = start_time(pid)?;
        let net_inode = netns::ns_inode(&netns::net_ns_path(pid))?;
        let user_inode = netns::ns_inode(std::path::Path::new(&format!("/proc/{pid}/ns/user")));
        Some(Identity { pid, start_time, net_inode, user_inode })
    }

    fn to_line(self) -> String {
        match self.user_inode {
            Some(u) => format!("{} {} {} {u}\n", self.pid, self.start_time, self.net_inode),
            None => format!("{} {} {}\n", self.pid, self.start_time, self.net_inode),
        }
    }

    fn parse(line: &str) -> Option<Identity> {
        let v: Vec<u64> = line.split_whitespace().map(|f| f.parse().ok()).collect::<Option<_>>()?;
        let (pid, start_time, net_inode, user_inode) = match v[..] {
            [pid, start_time, net_inode] => (pid, start_time, net_inode, None),
            [pid, start_time, net_inode, user] => (pid, start_time, net_inode, Some(user)),
            _ => return None,
        };
        Some(Identity { pid: u32::try_from(pid).ok()?, start_time, net_inode, user_inode })
    }
}

/// Record the container's process (the hook, at createRuntime).
pub(crate) fn record(bundle: &Bundle, pid: u32) -> Result<()> {
    let id = Identity::of(pid).ok_or(ContainerError::Gone(pid))?;
    crate::fsutil::write_atomic(&bundle.path(CONTAINER_PID), id.to_line().as_bytes(), 0o600)
}

/// Forget it (the hook, at poststop).
pub(crate) fn forget(bundle: &Bundle) {
    let _ = std::fs::remove_file(bundle.path(CONTAINER_PID));
}

/// The start time (clock ticks since boot) of process `pid`.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(19)?.parse().ok()
}

/// The namespaces of the running container: those of the process the hook recorded,
/// opened first and then checked (the same process by its start time, the same network
/// namespace by its inode), so a pid recycled in between is never entered. When that
/// process still runs but has moved to another network or user namespace (a PID 1 that
/// unshared one), the container's namespace is reached through its helper, which lives there for
/// the container's life. `None` when the container is not running.
pub(crate) fn running_namespaces(bundle: &Bundle) -> Option<netns::Namespaces> {
    let recorded = Identity::parse(&std::fs::read_to_string(bundle.path(CONTAINER_PID)).ok()?)?;
    let ns = netns::Namespaces::of(recorded.pid).ok()?;
    if start_time(recorded.pid) != Some(recorded.start_time) {
        return None;
    }
    // The same network namespace, entered through the same user namespace: a PID 1 that
    // unshared only a user namespace would make every child's join of the network
    // namespace fail (no privilege over it from the nested one).
    let same_user = recorded.user_inode.is_none_or(|u| ns.user_inode() == Some(u));
    if ns.net_inode() == Some(recorded.net_inode) && same_user {
        return Some(ns);
    }
    let helper = u32::try_from(crate::hook::helper_pid(bundle)?).ok()?;
    let ns = netns::Namespaces::of(helper).ok()?;
    (crate::hook::helper_pid(bundle) == Some(helper as i32) && ns.net_inode() == Some(recorded.net_inode)).then_some(ns)
}

/// The bundle of `name`: `<state root>/containers/<name>` when it exists, else the
/// `terok.shield.state_dir` annotation podman holds for the container.
pub fn locate(state_root: &Path, name: &str) -> Result<Bundle> {
    validate_container_name(name)?;
    let dir = crate::paths::container_dir(state_root, name);
    if dir.is_dir() {
        return Ok(Bundle::new(dir));
    }
    annotated_state_dir(name).map(Bundle::new).ok_or_else(|| {
        ContainerError::NoBundle { name: name.to_string(), containers: state_root.join("containers") }.into()
    })
}

fn annotated_state_dir(name: &str) -> Option<PathBuf> {
    let podman = tools::find("podman")?;
    let out = exec::run_ok(&podman, &["inspect", "--format", "json", "--", name], Duration::from_secs(10)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
    let dir = v.get(0)?.get("Config")?.get("Annotations")?.get("terok.shield.state_dir")?.as_str()?;
    let p = PathBuf::from(dir);
    p.is_absolute().then(|| std::fs::canonicalize(&p).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trip() {
        let me = Identity::of(std::process::id());
        let me = me.unwrap_or_else(|| panic!("own /proc entry"));
        assert_eq!(Identity::parse(&me.to_line()), Some(me));
        assert_eq!(Identity::parse("1 2"), None);
        assert_eq!(Identity::parse("x 2 3"), None);
    }

    #[test]
    fn namespaces_are_opened_then_checked() {
        let me = Identity::of(std::process::id()).unwrap_or_else(|| panic!("own /proc entry"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let b = Bundle::new(dir.path());
        assert!(running_namespaces(&b).is_none(), "nothing recorded");
        std::fs::write(b.path(CONTAINER_PID), me.to_line()).unwrap_or_else(|e| panic!("{e}"));
        let ns = running_namespaces(&b).unwrap_or_else(|| panic!("the recorded process runs"));
        assert_eq!(ns.net_inode(), Some(me.net_inode));
        // Another start time at the same pid: a different process at the same pid is not
        // the container, never entered.
        let recycled = Identity { start_time: me.start_time + 1, ..me };
        std::fs::write(b.path(CONTAINER_PID), recycled.to_line()).unwrap_or_else(|e| panic!("{e}"));
        assert!(running_namespaces(&b).is_none());
        // The same process in another network namespace, and no helper to reach the
        // recorded one through: not running.
        let moved = Identity { net_inode: me.net_inode + 1, ..me };
        std::fs::write(b.path(CONTAINER_PID), moved.to_line()).unwrap_or_else(|e| panic!("{e}"));
        assert!(running_namespaces(&b).is_none());
        // Likewise in another user namespace only.
        let nested = Identity { user_inode: me.user_inode.map(|u| u + 1), ..me };
        std::fs::write(b.path(CONTAINER_PID), nested.to_line()).unwrap_or_else(|e| panic!("{e}"));
        assert!(running_namespaces(&b).is_none());
        // A record of an older hook (no user namespace) is still read.
        let old = format!("{} {} {}\n", me.pid, me.start_time, me.net_inode);
        std::fs::write(b.path(CONTAINER_PID), old).unwrap_or_else(|e| panic!("{e}"));
        assert!(running_namespaces(&b).is_some());
    }
}
