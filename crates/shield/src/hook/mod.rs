//! The OCI hooks (hooks.md): the nft hook (fail-closed) and the bridge hook (soft).
//!
//! The helper binary (`terok-shield-hook nft|bridge <stage>`, see [`crate::helper`]) reads
//! the OCI state from stdin and calls [`run`]; the exit code, the panic guard and stderr are
//! its business. What the hook has to say goes to a [`HookLog`].

mod bridge_hook;
mod helper_proc;
mod nft_hook;
mod oci_config;
mod oci_state;
mod statedir;

use std::path::Path;

use crate::bundle::layout::Bundle;
use crate::error::Result;
use crate::helper::Helper;
use crate::procenv::ProcEnv;
pub use oci_state::{BadOciState, OciState};
pub use statedir::StateDirError;

/// The pid of the bundle's running helper (resolver and NFLOG reader), checked by its
/// command line.
pub(crate) fn helper_pid(bundle: &crate::bundle::Bundle) -> Option<i32> {
    helper_proc::running(bundle)
}

/// Which hook program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Fail-closed: any error aborts the container's start.
    Nft,
    /// Soft: every failure is logged, the start goes on.
    Bridge,
}

/// The OCI stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    CreateRuntime,
    Poststop,
}

impl Stage {
    /// The name OCI gives the stage (and the hook descriptors pass as an argument).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::CreateRuntime => "createRuntime",
            Stage::Poststop => "poststop",
        }
    }
}

/// OCI state larger than this is refused (podman's is a few KiB).
pub const MAX_STATE: u64 = 4 * 1024 * 1024;

/// Where the hook's diagnostics go: the binary writes them to stderr and, once the state
/// dir is validated ([`HookLog::attach`]), to its `hook-error.log`.
pub trait HookLog {
    /// The validated state dir of this container.
    fn attach(&mut self, state_dir: &Path);
    /// One line of diagnostics.
    fn write(&mut self, msg: &str);
}

/// Open the state dir's `hook-error.log` for appending (0600, never through a symlink;
/// rotated to `hook-error.log.1` past 1 MiB).
pub fn open_error_log(state_dir: &Path) -> std::io::Result<std::fs::File> {
    crate::fsutil::open_append_rotating(&state_dir.join(crate::bundle::layout::HOOK_ERROR_LOG), 1 << 20)
}

/// What only a hook can get wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HookError {
    #[error(transparent)]
    BadState(#[from] BadOciState),
    #[error(transparent)]
    StateDir(#[from] StateDirError),
    #[error("bundle version {found} does not match this hook's {want}: re-create the container with this terok-shield (or re-run 'terok-shield setup' if the hooks are older than the package)")]
    BundleVersion { found: String, want: u32 },
    #[error("OCI state has no pid")]
    NoPid,
    #[error("OCI state names no absolute bundle directory (got {0})")]
    NoBundle(String),
    #[error("cannot read the container's {}: {source}", .path.display())]
    ConfigUnreadable {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: larger than 4 MiB", .0.display())]
    ConfigTooLarge(std::path::PathBuf),
    #[error(transparent)]
    Confinement(#[from] oci_config::ConfigRefusal),
    #[error("OCI state id {0} is not alphanumeric")]
    BadId(String),
    #[error("cannot read {}: {source}", .path.display())]
    RulesetUnreadable {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Ruleset(#[from] terok_shield_ruleset::file::CorruptRuleset),
    /// A tool the hook runs is not on the PATH the runtime gave it.
    #[error("{name} not found on PATH: install {package}")]
    NoTool { name: &'static str, package: &'static str },
    #[error("cannot add {cidr} to lo for dnsmasq: {detail}")]
    DnsmasqAddress { cidr: String, detail: String },
    #[error("missing container id — skipping reader")]
    ReaderNoId,
    #[error("OCI state has no pid — skipping reader")]
    ReaderNoPid,
    #[error("cannot start the reader: {0}")]
    ReaderStart(#[source] std::io::Error),
    #[error("the shield's resolver did not start: {0}")]
    ResolverNotReady(String),
    #[error("resolv.conf of the bundle names {0}, where the resolver cannot listen")]
    ResolverAddress(String),
    #[error("cannot record the reader's pid: {0}")]
    ReaderPid(#[source] Box<crate::Error>),
}

/// Run a hook on the OCI state `input`. `helper` is the helper executable (the reader the
/// bridge hook starts is `<helper> reader …`).
pub fn run(
    kind: Kind,
    stage: Stage,
    input: &[u8],
    env: &ProcEnv,
    helper: &Helper,
    log: &mut dyn HookLog,
) -> Result<()> {
    match kind {
        Kind::Nft => nft_hook::run(stage, input, env, helper, log),
        Kind::Bridge => bridge_hook::run(stage, input, env, helper, log),
    }
}

/// The validated state dir of `state` as a bundle; the hook's diagnostics now also go to its
/// `hook-error.log`. When validation fails at poststop, `orphans` gets the raw annotation:
/// a bundle deleted while its container ran may have left processes behind.
fn bundle_of(
    state: &OciState,
    stage: Stage,
    log: &mut dyn HookLog,
    orphans: fn(Option<&str>, &mut dyn HookLog),
) -> Result<Bundle> {
    let euid = nix::unistd::geteuid().as_raw();
    let raw_dir = state.annotation("terok.shield.state_dir");
    match statedir::validate(raw_dir, euid) {
        Ok(dir) => {
            log.attach(&dir);
            Ok(Bundle::new(dir))
        }
        Err(e) => {
            if stage == Stage::Poststop {
                orphans(raw_dir, log);
            }
            Err(HookError::from(e).into())
        }
    }
}
