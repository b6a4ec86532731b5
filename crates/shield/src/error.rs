//! The library's error type. Messages are one line and say what to do where they can.

use std::path::PathBuf;

use terok_shield_policy::names::NameError;
use terok_shield_policy::profiles::ProfileError;
use terok_shield_policy::{PolicyError, TargetError};

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
    #[error("{name} not found on PATH (only absolute PATH entries are searched). {hint}")]
    ToolMissing { name: &'static str, hint: &'static str },
    #[error("'{cmd}' failed (rc={rc}): {stderr}")]
    Exec { cmd: String, rc: i32, stderr: String },
    #[error("'{cmd}' timed out after {secs} s")]
    Timeout { cmd: String, secs: u64 },
    #[error("{0}")]
    Setup(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
