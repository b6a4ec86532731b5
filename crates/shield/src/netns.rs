//! Entering a container's network namespace: `setns(2)` on `/proc/<pid>/ns/net`, in this
//! process. No `nsenter` or `podman unshare` process on the path.
//!
//! A network namespace can be joined by a multi-threaded process (only user namespaces
//! require a single thread), and every child spawned afterwards inherits it.

use std::fs::File;
use std::path::PathBuf;

use nix::sched::{setns, CloneFlags};

use crate::error::{Error, Result};

/// `/proc/<pid>/ns/net`.
pub fn net_ns_path(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/net"))
}

/// Move this process into the network namespace of `pid`.
pub fn enter_net_of(pid: u32) -> Result<()> {
    let path = net_ns_path(pid);
    let file = File::open(&path)
        .map_err(|e| Error::Setup(format!("network namespace file missing for pid {pid}: {}: {e}", path.display())))?;
    setns(&file, CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::Setup(format!("cannot enter the network namespace of pid {pid}: {e}")))
}

/// The inode of the current network namespace (to tell namespaces apart in tests and logs).
pub fn current_net_ns() -> Option<String> {
    std::fs::read_link("/proc/self/ns/net").ok().map(|p| p.display().to_string())
}
