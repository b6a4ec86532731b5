//! Where clearance events go (observe.md §4.2, §6): JSON lines on stdout, or the hub's
//! unix socket `$XDG_RUNTIME_DIR/terok/events/<id12>/ingester.sock`, connected lazily; an
//! outage is warned about once and never blocks the reader for long.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_millis(500);

/// `$XDG_RUNTIME_DIR` when set, else `/run/user/<host uid>` (also inside a rootless user
/// namespace, where our own uid is 0), as the hooks compute it.
pub fn runtime_dir() -> PathBuf {
    crate::hook::envboot::bootstrap().xdg_runtime_dir.into()
}

/// The hub socket of container `id` (12 to 64 hex digits) under `runtime_dir`.
pub fn socket_path(runtime_dir: &Path, id: &str) -> Option<PathBuf> {
    let ok = (12..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| runtime_dir.join("terok/events").join(&id[..12]).join("ingester.sock"))
}

#[derive(Debug)]
pub enum Emitter {
    /// Lines on stdout: always delivered (a closed stdout ends the reader).
    Json,
    Socket {
        path: PathBuf,
        conn: Option<UnixStream>,
        warned: bool,
    },
}

impl Emitter {
    pub fn socket(path: PathBuf) -> Self {
        Emitter::Socket { path, conn: None, warned: false }
    }

    /// Send one line; whether the receiver got it. A failed send reconnects once.
    pub fn send(&mut self, line: &str) -> bool {
        match self {
            Emitter::Json => {
                let mut out = std::io::stdout().lock();
                out.write_all(line.as_bytes()).and_then(|_| out.write_all(b"\n")).and_then(|_| out.flush()).is_ok()
            }
            Emitter::Socket { path, conn, warned } => {
                for _ in 0..2 {
                    if conn.is_none() {
                        match connect(path) {
                            Ok(c) => {
                                *conn = Some(c);
                                *warned = false;
                            }
                            Err(e) => {
                                if !*warned {
                                    eprintln!("warning: hub socket {} unreachable: {e}", path.display());
                                    *warned = true;
                                }
                                return false;
                            }
                        }
                    }
                    let sent = conn.as_mut().is_some_and(|c| {
                        c.write_all(line.as_bytes()).and_then(|_| c.write_all(b"\n")).and_then(|_| c.flush()).is_ok()
                    });
                    if sent {
                        return true;
                    }
                    *conn = None;
                }
                false
            }
        }
    }
}

fn connect(path: &Path) -> std::io::Result<UnixStream> {
    let c = UnixStream::connect(path)?;
    c.set_write_timeout(Some(TIMEOUT))?;
    Ok(c)
}

/// One event on its own connection (observe.md §6, for `up`/`down`); every error is ignored.
pub fn notify(runtime_dir: &Path, id: &str, line: &str) {
    if let Some(path) = socket_path(runtime_dir, id) {
        if let Ok(mut c) = connect(&path) {
            let _ = c.write_all(format!("{line}\n").as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    #[test]
    fn socket_emitter_reconnects_after_an_outage() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let id = "0123456789abcdef";
        let path = socket_path(dir.path(), id).ok_or_else(|| std::io::Error::other("id"))?;
        assert!(socket_path(dir.path(), "xyz").is_none());
        assert!(path.ends_with("terok/events/0123456789ab/ingester.sock"));
        let mut e = Emitter::socket(path.clone());
        assert!(!e.send("lost"), "no hub yet");
        std::fs::create_dir_all(path.parent().unwrap_or(dir.path()))?;
        let hub = std::os::unix::net::UnixListener::bind(&path)?;
        assert!(e.send("one"));
        let (conn, _) = hub.accept()?;
        let mut lines = std::io::BufReader::new(conn).lines();
        assert_eq!(lines.next().transpose()?, Some("one".to_string()));
        Ok(())
    }
}
