//! Where clearance events go (observe.md §4.2, §6): JSON lines to the caller (the reader
//! binary prints them), or the hub's unix socket
//! `$XDG_RUNTIME_DIR/terok/events/<id12>/ingester.sock`, connected lazily; an outage is
//! warned about once and never blocks the reader for long.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::report::{Report, Reporter};

const TIMEOUT: Duration = Duration::from_millis(500);

/// `$XDG_RUNTIME_DIR` when set, else `/run/user/<host uid>` (also inside a rootless user
/// namespace, where our own uid is 0), as the hooks compute it.
pub fn runtime_dir() -> PathBuf {
    crate::procenv::ProcEnv::current().xdg_runtime_dir.into()
}

/// The hub socket of container `id` (12 to 64 hex digits) under `runtime_dir`.
pub fn socket_path(runtime_dir: &Path, id: &str) -> Option<PathBuf> {
    let ok = (12..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| runtime_dir.join("terok/events").join(&id[..12]).join("ingester.sock"))
}

pub enum Emitter {
    /// Each line to a function that says whether it was delivered.
    Lines(Box<dyn FnMut(&str) -> bool>),
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

    /// Send one line; whether the receiver got it. A failed send reconnects once; an
    /// unreachable hub is reported once per outage.
    pub fn send(&mut self, line: &str, report: Reporter) -> bool {
        match self {
            Emitter::Lines(out) => out(line),
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
                                    report(Report::Warning(format!("hub socket {} unreachable: {e}", path.display())));
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

/// The clearance hub owns `org.terok.Shield1` on the session bus, so verdicts are its to
/// give (2 s timeout; any error, including no `dbus-send`, means it does not).
pub fn clearance_hub_active() -> bool {
    let Some(dbus) = crate::tools::find("dbus-send") else { return false };
    crate::exec::Cmd::new(&dbus, Duration::from_secs(2))
        .args([
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            "string:org.terok.Shield1",
        ])
        .run()
        .is_ok_and(|o| o.status == 0 && o.stdout.contains("boolean true"))
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
        let q = &crate::report::quiet;
        assert!(!e.send("lost", q), "no hub yet");
        std::fs::create_dir_all(path.parent().unwrap_or(dir.path()))?;
        let hub = std::os::unix::net::UnixListener::bind(&path)?;
        assert!(e.send("one", q));
        let (conn, _) = hub.accept()?;
        let mut lines = std::io::BufReader::new(conn).lines();
        assert_eq!(lines.next().transpose()?, Some("one".to_string()));
        Ok(())
    }
}
