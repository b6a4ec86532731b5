//! `<state_dir>/reader.sock`: the reader hands every logged packet, as a watch event line,
//! to whoever listens (`watch`, `simple-clearance`). NFLOG has one reader per group and
//! namespace, so the others subscribe here instead of binding it themselves. A subscriber
//! that cannot keep up is dropped, never waited for.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

pub const SOCKET: &str = "reader.sock";
const MAX_SUBSCRIBERS: usize = 16;

pub(crate) struct Fanout {
    pub listener: UnixListener,
    path: PathBuf,
    subscribers: Vec<UnixStream>,
}

impl Fanout {
    /// Listen on the state dir's socket (a stale one is replaced).
    pub fn bind(state_dir: &Path) -> std::io::Result<Fanout> {
        let path = state_dir.join(SOCKET);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", path.display())))?;
        listener.set_nonblocking(true)?;
        Ok(Fanout { listener, path, subscribers: Vec::new() })
    }

    pub fn accept(&mut self) {
        while let Ok((s, _)) = self.listener.accept() {
            if self.subscribers.len() < MAX_SUBSCRIBERS && s.set_nonblocking(true).is_ok() {
                self.subscribers.push(s);
            }
        }
    }

    pub fn send(&mut self, line: &str) {
        let data = format!("{line}\n");
        self.subscribers.retain_mut(|s| s.write_all(data.as_bytes()).is_ok());
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
