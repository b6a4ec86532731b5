//! `<state_dir>/resolver.sock`: how a live `allow`/`deny` of a name reaches the running
//! resolver. One JSON line in, one JSON line out, then the connection closes. The resolver
//! serves one request at a time between questions, so a `forget` never races an answer.
//!
//! * `{"op":"reload"}`: read the policy again.
//! * `{"op":"forget","rule":"<name or *.name>"}`: read the policy again, then take every
//!   address learned for a name the rule covers out of the learned sets and end its flows;
//!   the reply lists them.

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use terok_shield_policy::Target;

use super::Resolver;
use crate::bundle::Bundle;

pub const SOCKET: &str = "resolver.sock";
/// How long either side waits for the other.
const TIMEOUT: Duration = Duration::from_secs(5);
/// A request line longer than this is refused.
const MAX_REQUEST: u64 = 4096;

/// A request to the resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Reload,
    Forget(String),
}

impl Request {
    fn line(&self) -> String {
        match self {
            Request::Reload => json!({"op": "reload"}).to_string(),
            Request::Forget(rule) => json!({"op": "forget", "rule": rule}).to_string(),
        }
    }

    fn parse(line: &str) -> Result<Request, String> {
        let v: Value = serde_json::from_str(line).map_err(|_| "not a JSON request".to_string())?;
        match (v.get("op").and_then(Value::as_str), v.get("rule").and_then(Value::as_str)) {
            (Some("reload"), None) => Ok(Request::Reload),
            (Some("forget"), Some(rule)) => match Target::parse(rule) {
                Ok(Target::Domain(d)) => Ok(Request::Forget(d)),
                _ => Err("forget takes a domain name".into()),
            },
            _ => Err("unknown request".into()),
        }
    }
}

/// The listening side, in the helper.
pub(crate) struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    pub fn bind(state_dir: &Path) -> std::io::Result<ControlServer> {
        let path = state_dir.join(SOCKET);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        // The state dir is 0700 already; the socket itself is its owner's alone too,
        // whatever the umask.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(ControlServer { listener, path })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// Serve every waiting connection, one request each.
    pub fn serve(&self, resolver: &mut Resolver) {
        while let Ok((conn, _)) = self.listener.accept() {
            let _ = handle(conn, resolver);
        }
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn handle(conn: UnixStream, resolver: &mut Resolver) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(TIMEOUT))?;
    conn.set_write_timeout(Some(TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(std::io::Read::take(&conn, MAX_REQUEST)).read_line(&mut line)?;
    let reply = match Request::parse(line.trim()) {
        Err(e) => json!({"ok": false, "error": e}),
        Ok(req) => match answer(&req, resolver) {
            Ok(removed) => json!({"ok": true, "removed": removed.iter().map(IpAddr::to_string).collect::<Vec<_>>()}),
            Err(e) => json!({"ok": false, "error": e.to_string()}),
        },
    };
    (&conn).write_all(format!("{reply}\n").as_bytes())
}

fn answer(req: &Request, resolver: &mut Resolver) -> crate::error::Result<Vec<IpAddr>> {
    resolver.reload()?;
    match req {
        Request::Reload => Ok(Vec::new()),
        Request::Forget(rule) => resolver.forget(rule),
    }
}

/// What the running resolver of a bundle answered; `None` when none runs (no socket, or it
/// does not answer).
pub(crate) fn request(bundle: &Bundle, req: &Request) -> Option<Result<Vec<IpAddr>, String>> {
    let conn = UnixStream::connect(bundle.path(SOCKET)).ok()?;
    conn.set_read_timeout(Some(TIMEOUT)).ok()?;
    conn.set_write_timeout(Some(TIMEOUT)).ok()?;
    (&conn).write_all(format!("{}\n", req.line()).as_bytes()).ok()?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line).ok()?;
    let v: Value = serde_json::from_str(line.trim()).ok()?;
    if v.get("ok") == Some(&Value::Bool(true)) {
        let removed = v.get("removed").and_then(Value::as_array).cloned().unwrap_or_default();
        Some(Ok(removed.iter().filter_map(|a| a.as_str()?.parse().ok()).collect()))
    } else {
        Some(Err(v.get("error").and_then(Value::as_str).unwrap_or("the resolver refused the request").to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_bad_ones_are_refused() {
        for r in [Request::Reload, Request::Forget("x.example.com".into()), Request::Forget("*.example.com".into())] {
            assert_eq!(Request::parse(&r.line()), Ok(r));
        }
        for bad in ["", "{", "{\"op\":\"forget\"}", "{\"op\":\"forget\",\"rule\":\"1.2.3.4\"}", "{\"op\":\"rm\"}"] {
            assert!(Request::parse(bad).is_err(), "{bad}");
        }
    }
}
