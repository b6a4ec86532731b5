//! The bridge hook (hooks.md §6): soft. It never blocks a start; every failure is logged.
//! createRuntime persists `dossier.meta_path` and starts the container's NFLOG reader in
//! the container's network namespace (on the resolver DNS mode the nft hook has started it,
//! fail-closed, as the container's resolver); poststop stops it.

use super::oci_state::OciState;
use super::{helper_proc, HookError, HookLog, Stage};
use crate::bundle::layout::META_PATH;
use crate::dns::DnsMode;
use crate::error::Result;
use crate::helper::Helper;
use crate::procenv::ProcEnv;

pub fn run(stage: Stage, input: &[u8], env: &ProcEnv, helper: &Helper, log: &mut dyn HookLog) -> Result<()> {
    let state = OciState::parse(input).map_err(HookError::from)?;
    let bundle = super::bundle_of(&state, stage, log, helper_proc::reap_orphans)?;
    match stage {
        Stage::CreateRuntime => {
            if let Some(meta) = state.annotation("dossier.meta_path").filter(|m| !m.is_empty()) {
                crate::fsutil::write_atomic(&bundle.path(META_PATH), meta.as_bytes(), 0o600)?;
            }
            if bundle.dns_mode()? == Some(DnsMode::Resolver) {
                return Ok(());
            }
            helper_proc::spawn(&state, &bundle, env, helper, None).map(|_| ())
        }
        Stage::Poststop => {
            helper_proc::stop(&bundle, log);
            Ok(())
        }
    }
}
