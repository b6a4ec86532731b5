//! The library's error type: one variant per failing module, each carrying that module's
//! own typed error, so callers match variants, never message text. Messages are one line
//! and say what to do where they can.

use std::path::PathBuf;

use terok_shield_policy::names::NameError;
use terok_shield_policy::profiles::ProfileError;
use terok_shield_policy::{PolicyError, TargetError};

pub use crate::bundle::BundleError;
pub use crate::container::ContainerError;
pub use crate::control::ControlError;
pub use crate::dns::DnsError;
pub use crate::exec::ExecError;
pub use crate::hook::HookError;
pub use crate::kernel::{NetlinkError, NetnsError, NftError};
pub use crate::observe::ObserveError;
pub use crate::setup::SetupError;
pub use crate::tools::ToolMissing;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `config.yml` breaks the schema. Printed with the `Error [shield]:` prefix.
    #[error("invalid {}: {detail}", .path.display())]
    Config { path: PathBuf, detail: String },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("HOME is not set to an absolute path; set it, or pass --state-dir")]
    NoHome,
    #[error(transparent)]
    ToolMissing(#[from] ToolMissing),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Nft(#[from] NftError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Observe(#[from] ObserveError),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
