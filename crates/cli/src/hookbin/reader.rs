//! `reader <state_dir> <container> [--emit=socket|json] [--annotations=JSON]
//! [--container-id=ID] [--hub-socket=PATH] [--netns-pid=PID]`: the container's NFLOG reader
//! (`terok_shield::observe::reader`). Its stdout and stderr are the bundle's `reader.log`.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;

use serde_json::{Map, Value};
use terok_shield::observe::hub::{self, Emitter};
use terok_shield::observe::reader::{self, ReaderSpec};
use terok_shield::report::Report;

const USAGE: &str = "usage: reader <state_dir> <container> [--emit=socket|json] [--annotations=JSON] [--container-id=ID] [--hub-socket=PATH] [--netns-pid=PID] [--dns=ADDR]";

/// Parse the arguments after `reader`; warnings (an ignored option value) go to `warn`.
pub fn parse(args: &[String], warn: &mut dyn FnMut(&str)) -> Result<ReaderSpec, String> {
    let mut positional = Vec::new();
    let mut a = ReaderSpec::default();
    for arg in args {
        match arg.split_once('=') {
            Some(("--emit", "json")) => a.json = true,
            Some(("--emit", "socket")) => a.json = false,
            Some(("--emit", other)) => return Err(format!("--emit must be socket or json, not {other:?}")),
            Some(("--annotations", v)) => {
                a.annotations = match serde_json::from_str::<Value>(if v.is_empty() { "{}" } else { v }) {
                    Ok(Value::Object(m)) => m,
                    _ => {
                        warn("--annotations is not a JSON object; ignored");
                        Map::new()
                    }
                }
            }
            Some(("--container-id", v)) => a.container_id = v.to_string(),
            Some(("--hub-socket", v)) => a.hub_socket = Some(PathBuf::from(v)).filter(|p| !p.as_os_str().is_empty()),
            Some(("--netns-pid", v)) => a.netns_pid = Some(v.parse().map_err(|_| format!("bad --netns-pid {v:?}"))?),
            Some(("--dns", v)) => a.dns = Some(v.parse().map_err(|_| format!("bad --dns {v:?}"))?),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg:?}")),
            _ => positional.push(arg.clone()),
        }
    }
    let [dir, container] = positional.as_slice() else {
        return Err(USAGE.into());
    };
    a.state_dir = PathBuf::from(dir);
    a.container = container.clone();
    if !a.state_dir.is_absolute() {
        return Err("the state dir must be absolute".into());
    }
    Ok(a)
}

/// What the reader writes to its log over its life at most; then one line says the rest
/// is left out (its log is opened rotated at each start: `terok_shield::fsutil`).
const LOG_BUDGET: usize = 1 << 20;

fn say(r: Report) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static WRITTEN: AtomicUsize = AtomicUsize::new(0);
    let line = match r {
        Report::Warning(w) => format!("warning: {w}"),
        Report::Note(n) => n,
        _ => return,
    };
    let before = WRITTEN.fetch_add(line.len() + 1, Ordering::Relaxed);
    if before + line.len() < LOG_BUDGET {
        eprintln!("{line}");
    } else if before < LOG_BUDGET {
        eprintln!("warning: this log reached {LOG_BUDGET} bytes; further lines are left out until the next start");
    }
}

/// Run until SIGTERM/SIGINT or the container's end; returns the exit code.
pub fn main(args: &[String]) -> u8 {
    crate::process::harden();
    let spec = match parse(args, &mut |w| eprintln!("warning: {w}")) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("nflog reader: {e}");
            return 2;
        }
    };
    let emitter = if spec.json {
        Emitter::Lines(Box::new(|line: &str| {
            let mut out = std::io::stdout().lock();
            out.write_all(line.as_bytes()).and_then(|_| out.write_all(b"\n")).and_then(|_| out.flush()).is_ok()
        }))
    } else {
        match spec.hub_socket.clone().or_else(|| hub::socket_path(&hub::runtime_dir(), &spec.container_id)) {
            Some(p) => Emitter::socket(p),
            None => {
                // No hub to tell (an engine whose ids are not podman's): the helper still does
                // its work — it may be the container's resolver.
                eprintln!("warning: no hub socket (no --hub-socket, and the container id is not 12-64 hex digits): clearance events are not sent");
                Emitter::Lines(Box::new(|_: &str| false))
            }
        }
    };
    // A session of its own: the hook that started it may exit, and poststop signals it alone.
    let _ = nix::unistd::setsid();
    let stop = match crate::process::stop_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("nflog reader: {e}");
            return 1;
        }
    };
    // With --dns, the hook that started us waits for one line on stdout: `ready` once the
    // resolver answers, or why it does not. After that, stdout is the log like stderr.
    let mut said = spec.dns.is_none();
    let mut ready = || {
        if !said {
            println!("ready");
            let _ = std::io::stdout().flush();
            let _ = nix::unistd::dup2_stdout(std::io::stderr());
            said = true;
        }
    };
    let result = reader::run(&spec, emitter, stop.as_fd(), &say, &mut ready);
    match result {
        Ok(()) => 0,
        Err(e) => {
            if spec.dns.is_some() {
                println!("{e}");
            }
            eprintln!("nflog reader: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn arguments() {
        let mut warnings = Vec::new();
        let mut warn = |w: &str| warnings.push(w.to_string());
        let a = parse(
            &s(&[
                "/s",
                "web",
                "--emit=json",
                "--annotations={\"dossier.x\":\"1\"}",
                "--container-id=",
                "--netns-pid=42",
            ]),
            &mut warn,
        )
        .unwrap_or_default();
        assert_eq!((a.container.as_str(), a.json, a.netns_pid, a.annotations.len()), ("web", true, Some(42), 1));
        let a = parse(&s(&["/s", "web", "--annotations=[1]"]), &mut warn).unwrap_or_default();
        assert!(a.annotations.is_empty() && !a.json);
        assert_eq!(warnings.len(), 1);
        for bad in [&["rel", "web"][..], &["/s"], &["/s", "web", "--emit=dbus"], &["/s", "web", "--bogus"]] {
            assert!(parse(&s(bad), &mut |_| {}).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn what_the_bridge_hook_writes_parses_back() {
        let spec = ReaderSpec {
            state_dir: "/s/web".into(),
            container: "web".into(),
            json: false,
            annotations: serde_json::from_str(r#"{"dossier.task":"t 1"}"#).unwrap_or_default(),
            container_id: "0123456789abcdef".into(),
            hub_socket: Some("/run/h.sock".into()),
            netns_pid: Some(7),
            dns: Some([169, 254, 1, 3].into()),
        };
        assert_eq!(parse(&spec.args(), &mut |_| {}), Ok(spec));
    }
}
