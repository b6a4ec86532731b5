//! Setup: the hook files, their descriptors, the containers.conf registration and the
//! receipt that certifies them (hooks.md §2).

pub(crate) mod containers_conf;
pub(crate) mod descriptors;
pub mod installer;
pub(crate) mod receipt;

use std::path::PathBuf;

pub use receipt::{check_setup, require_ready, system_hooks_dir, SetupCheck, SetupStatus};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// Some setup check is not ready: `terok-shield/<component>: <diag>; … . <what to do>`.
    #[error("{}. {tail}", .items.join("; "))]
    NotReady { items: Vec<String>, tail: &'static str },
    #[error("containers.conf is not valid TOML: {0}")]
    ConfNotToml(String),
    #[error("containers.conf: [engine] hooks_dir is neither a string nor a list")]
    ConfHooksDirType,
    #[error("could not register the hooks dir in containers.conf; add it to [engine] hooks_dir by hand")]
    ConfNotRegistered,
    #[error("containers.conf: unreadable hooks_dir line")]
    ConfUnreadableLine,
    #[error("containers.conf: hooks_dir spans several lines; add the terok-shield hooks dir to it by hand")]
    ConfMultiLine,
    #[error("containers.conf: hooks_dir not found on one line of [engine]")]
    ConfNoLine,
    #[error("Another setup operation is already running. Retry after it finishes.")]
    Busy,
    #[error("terok-shield {installed} installed these hooks; refusing to replace them with {running}. Downgrades are not supported.")]
    Downgrade { installed: String, running: String },
    /// Host tools setup needs (one sentence each).
    #[error("{}", .0.join(" "))]
    MissingTools(Vec<String>),
    #[error("post-install verification failed: {0}")]
    Verification(String),
    #[error("setup --root needs sudo, which is not installed: install sudo, or run setup as root")]
    NoSudo,
    #[error("sudo refused to {action}: {stderr}")]
    SudoRefused { action: String, stderr: String },
    #[error("uninstall incomplete: {}", .0.join("; "))]
    Incomplete(Vec<String>),
    #[error("{} is not the hook binary: {}", .0.display(), .1)]
    NoHookBinary(PathBuf, String),
}

/// A receipt that is there but cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    #[error("Setup receipt {} is malformed: {detail}", .path.display())]
    Malformed { path: PathBuf, detail: String },
    #[error("Setup receipt {} is unreadable: {source}", .path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
