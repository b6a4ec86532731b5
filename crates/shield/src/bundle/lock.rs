//! The per-bundle lock: every read-modify-write of a bundle holds it, so concurrent verbs
//! (and a verb racing the hook) lose no update.

use std::path::Path;

use super::layout::LOCK;
use crate::error::{Error, Result};
use crate::fsutil;

/// Hold `<state_dir>/.lock` (exclusive) for the life of the returned file.
pub fn lock_bundle(state_dir: &Path) -> Result<std::fs::File> {
    let path = state_dir.join(LOCK);
    let f = fsutil::open_lock_file(&path)?;
    f.lock().map_err(|e| Error::io(&path, e))?;
    Ok(f)
}
