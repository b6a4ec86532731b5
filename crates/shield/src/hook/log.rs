//! Hook diagnostics: stderr, and `<state_dir>/hook-error.log` once the state dir is known.

use std::io::Write;
use std::path::Path;

use super::Kind;
use crate::bundle::layout::HOOK_ERROR_LOG;

pub struct HookLog {
    prefix: &'static str,
    file: Option<std::fs::File>,
}

impl HookLog {
    pub fn new(kind: Kind) -> Self {
        let prefix = match kind {
            Kind::Nft => "terok-shield hook:",
            Kind::Bridge => "terok-shield bridge hook:",
        };
        HookLog { prefix, file: None }
    }

    /// Also append to the validated state dir's `hook-error.log` (0600, never through a
    /// symlink). Failing to open it is not an error.
    pub fn attach(&mut self, state_dir: &Path) {
        self.file = crate::fsutil::open_append(&state_dir.join(HOOK_ERROR_LOG)).ok();
    }

    pub fn write(&mut self, msg: &str) {
        let line = format!("{} {}\n", self.prefix, msg.replace('\n', " "));
        let _ = std::io::stderr().write_all(line.as_bytes());
        if let Some(f) = self.file.as_mut() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}
