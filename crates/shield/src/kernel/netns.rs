//! Entering a container's namespaces. No `nsenter` or `podman unshare` process on any path.
//!
//! * The hook, already in the container's user namespace, moves itself into the network
//!   namespace with `setns(2)` ([`enter_net_of`]); a network namespace can be joined by a
//!   multi-threaded process and every child inherits it.
//! * The CLI runs in the operator's namespaces and starts `nft` in a child that joins the
//!   container's user namespace (rootless: the kernel refuses that to a multi-threaded
//!   process, a freshly forked child is single-threaded) and then its network namespace
//!   ([`Namespaces::apply_to`]). This is the crate's only `unsafe`: the `pre_exec` hook.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::sched::{setns, CloneFlags};

/// A namespace that could not be opened or entered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    #[error("network namespace file missing for pid {pid}: {}: {source}", .path.display())]
    Missing {
        pid: u32,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot enter the network namespace of pid {pid}: {errno}")]
    Enter { pid: u32, errno: nix::errno::Errno },
    #[error("cannot open {}: {source}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, NetnsError>;

/// `/proc/<pid>/ns/net`.
pub fn net_ns_path(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/net"))
}

/// Move this process into the network namespace of `pid`.
pub fn enter_net_of(pid: u32) -> Result<()> {
    let path = net_ns_path(pid);
    let file = File::open(&path).map_err(|source| NetnsError::Missing { pid, path, source })?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|errno| NetnsError::Enter { pid, errno })
}

/// Inode of a namespace file (to compare namespaces).
pub fn ns_inode(path: &std::path::Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// The namespaces of a container process. Opened first and checked after (the caller
/// compares [`Namespaces::net_inode`] and the process's start time with what the hook
/// recorded), so a pid recycled in between is never entered.
#[derive(Debug)]
pub struct Namespaces {
    /// `Some` when the container's user namespace differs from ours (rootless).
    user: Option<File>,
    net: File,
}

impl Namespaces {
    pub fn of(pid: u32) -> Result<Namespaces> {
        let open = |kind: &str| {
            let path = PathBuf::from(format!("/proc/{pid}/ns/{kind}"));
            File::open(&path).map_err(|source| NetnsError::Open { path, source })
        };
        let net = open("net")?;
        let theirs = ns_inode(std::path::Path::new(&format!("/proc/{pid}/ns/user")));
        let ours = ns_inode(std::path::Path::new("/proc/self/ns/user"));
        let user = if theirs.is_some() && theirs != ours { Some(open("user")?) } else { None };
        Ok(Namespaces { user, net })
    }

    /// The inode of the opened network namespace.
    pub fn net_inode(&self) -> Option<u64> {
        self.net.metadata().ok().map(|m| m.ino())
    }

    /// The inode of the user namespace a child joins (ours when it joins none).
    pub fn user_inode(&self) -> Option<u64> {
        match &self.user {
            Some(f) => f.metadata().ok().map(|m| m.ino()),
            None => ns_inode(std::path::Path::new("/proc/self/ns/user")),
        }
    }

    /// Make `cmd` join these namespaces (user first, then network) between fork and exec.
    #[allow(unsafe_code)]
    pub fn apply_to(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let user = self.user.as_ref().map(AsRawFd::as_raw_fd);
        let net = self.net.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec and only calls setns(2),
        // which is async-signal-safe; the descriptors stay open in the parent (self is
        // borrowed for the life of the command) and are inherited by the child.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(fd) = user {
                    setns(std::os::fd::BorrowedFd::borrow_raw(fd), CloneFlags::CLONE_NEWUSER)
                        .map_err(std::io::Error::from)?;
                }
                setns(std::os::fd::BorrowedFd::borrow_raw(net), CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)?;
                Ok(())
            });
        }
    }
}
