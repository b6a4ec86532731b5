//! The bridge hook (hooks.md §6): soft. It never blocks a start; every failure is logged.
//! It persists `dossier.meta_path`; the NFLOG reader it will start is the observability
//! work still to come.

use super::log::HookLog;
use super::oci_state::OciState;
use super::{statedir, Stage};
use crate::bundle::layout::META_PATH;

pub fn run(stage: Stage, input: &[u8], log: &mut HookLog) -> Result<(), String> {
    let state = OciState::parse(input)?;
    let euid = crate::paths::effective_uid().unwrap_or(u32::MAX);
    let dir = statedir::validate(state.annotation("terok.shield.state_dir"), euid)?;
    log.attach(&dir);
    if stage == Stage::CreateRuntime {
        if let Some(meta) = state.annotation("dossier.meta_path").filter(|m| !m.is_empty()) {
            crate::fsutil::write_atomic(&dir.join(META_PATH), meta.as_bytes(), 0o600).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
