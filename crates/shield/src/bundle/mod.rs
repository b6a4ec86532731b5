//! The per-container state bundle (state-and-config.md §4): its layout, policy files, seeds,
//! DNS files and lock.

pub(crate) mod dns;
pub(crate) mod layout;
pub(crate) mod lock;
pub(crate) mod policy;
pub(crate) mod posture;
pub(crate) mod seeds;

use std::path::PathBuf;

pub use layout::Bundle;
pub(crate) use lock::lock_bundle;

/// A bundle that cannot be used as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// An address cache holds a line that is not an address or network.
    #[error("{}: {source}", .path.display())]
    BadAddressFile {
        path: PathBuf,
        #[source]
        source: terok_shield_policy::TargetError,
    },
    /// `posture` names no posture.
    #[error("{}: {found} is not a posture (up, down, disengaged, quarantine)", .path.display())]
    BadPosture { path: PathBuf, found: String },
    #[error("{} has no parent", .0.display())]
    NoParent(PathBuf),
    /// `upstream.dns` is missing or garbled.
    #[error("Cannot determine DNS for container: {} holds no address; re-create the container", .0.display())]
    NoUpstream(PathBuf),
}
