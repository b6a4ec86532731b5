//! The container's helper process (the NFLOG reader, and on the resolver DNS mode the
//! container's resolver): started detached by a hook, recognised by its command line,
//! stopped at poststop.

use std::io::Read;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use terok_shield_policy::names::validate_container_name;

use super::oci_state::OciState;
use super::{HookError, HookLog};
use crate::bundle::layout::{Bundle, READER_LOG, READER_PID};
use crate::error::Result;
use crate::helper::Helper;
use crate::observe::reader::ReaderSpec;
use crate::procenv::ProcEnv;
use crate::procs::{self, Stopped};

/// How long a starting resolver gets to say it is ready.
const READY: Duration = Duration::from_secs(5);

/// poststop of a container whose bundle was deleted while it ran: its helper, if one is
/// still there, is found by the state dir on its command line.
pub(super) fn reap_orphans(raw_dir: Option<&str>, log: &mut dyn HookLog) {
    let Some(dir) = raw_dir.map(Path::new).filter(|d| d.is_absolute()) else { return };
    let bundle = Bundle::new(dir);
    for how in procs::reap_if_gone(dir, |p| is_reader(&bundle, p)) {
        log.write(&format!("poststop: state dir is gone; stopped its orphaned reader ({how:?})"));
    }
}

/// The pid in `reader.pid` when that process is this bundle's helper.
pub(crate) fn running(bundle: &Bundle) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(bundle.path(READER_PID)).ok()?.trim().parse().ok()?;
    is_reader(bundle, pid).then_some(pid)
}

/// Process `pid` runs `<helper> reader <this state dir> <container> … --emit=socket …`.
fn is_reader(bundle: &Bundle, pid: i32) -> bool {
    procs::cmdline(pid).is_some_and(|args| ReaderSpec::is_socket_reader_of(&args, &bundle.dir))
}

/// A resolver started and not yet known to answer.
pub(super) struct Starting {
    child: Child,
}

impl Starting {
    /// Wait until it answers (or fails, with the helper's own message; it is killed then).
    pub fn ready(mut self, bundle: &Bundle) -> Result<()> {
        let waited = wait_ready(&mut self.child);
        if waited.is_err() {
            self.abandon(bundle);
        }
        waited
    }

    /// Kill it: the start failed.
    pub fn abandon(mut self, bundle: &Bundle) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(bundle.path(READER_PID));
    }
}

/// Start the helper for the container of `state` unless it runs. It must start in the
/// namespace the hook started in (the host's): with `dns` it is also the container's
/// resolver on `dns:53`, and opens its way to the host's nameservers there first; the
/// returned [`Starting`] tells when it answers.
pub(super) fn spawn(
    state: &OciState,
    bundle: &Bundle,
    env: &ProcEnv,
    helper: &Helper,
    dns: Option<IpAddr>,
) -> Result<Option<Starting>> {
    if state.id.is_empty() {
        return Err(HookError::ReaderNoId.into());
    }
    let pid = state.pid.ok_or(HookError::ReaderNoPid)?;
    if let Some(old) = running(bundle) {
        // Already serving this container (a hook that runs twice): nothing to do. A helper
        // left from an earlier start serves a namespace that is gone: replace it.
        let ours = format!("--netns-pid={pid}").into_bytes();
        if procs::cmdline(old).is_some_and(|args| args.contains(&ours)) {
            return Ok(None);
        }
        procs::terminate(old, |p| is_reader(bundle, p));
    }
    let short: String = state.id.chars().take(12).collect();
    let name = state.annotation("terok.shield.name").filter(|n| validate_container_name(n).is_ok());
    let spec = ReaderSpec {
        state_dir: bundle.dir.clone(),
        container: name.unwrap_or(&short).to_string(),
        json: false,
        annotations: state
            .annotations
            .iter()
            .filter(|(k, _)| k.starts_with("dossier."))
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect(),
        container_id: state.id.clone(),
        hub_socket: None,
        netns_pid: Some(pid),
        dns,
    };
    let log = crate::fsutil::open_append_rotating(&bundle.path(READER_LOG), 1 << 20).map_err(HookError::ReaderStart)?;
    // A resolver says `ready` (or why not) on its stdout first; a plain reader logs there.
    let stdout = if dns.is_some() { Stdio::piped() } else { log.try_clone().map_err(HookError::ReaderStart)?.into() };
    let child = Command::new(&helper.path)
        .arg("reader")
        .args(spec.args())
        .env_clear()
        .envs(env.child_env())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log)
        .spawn()
        .map_err(HookError::ReaderStart)?;
    let pid = child.id();
    if let Err(e) = crate::fsutil::write_atomic(&bundle.path(READER_PID), format!("{pid}\n").as_bytes(), 0o600) {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        return Err(HookError::ReaderPid(Box::new(e)).into());
    }
    Ok(dns.map(|_| Starting { child }))
}

/// Read the helper's first line: `ready`, or its error.
fn wait_ready(child: &mut Child) -> Result<()> {
    let Some(mut out) = child.stdout.take() else { return Err(HookError::ResolverNotReady("no pipe".into()).into()) };
    let deadline = Instant::now() + READY;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while line.len() < 512 && matches!(out.read(&mut b), Ok(1)) && b[0] != b'\n' {
            line.push(b[0]);
        }
        let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
    });
    let line = rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .map_err(|_| HookError::ResolverNotReady(format!("no answer within {} s", READY.as_secs())))?;
    match line.as_str() {
        "ready" => Ok(()),
        "" => Err(HookError::ResolverNotReady("the helper exited (see reader.log)".into()).into()),
        other => Err(HookError::ResolverNotReady(terok_shield_policy::sanitize::sanitize_wire(other, 256)).into()),
    }
}

/// TERM, then KILL after 2 s; `reader.pid` is removed in every case.
pub(super) fn stop(bundle: &Bundle, log: &mut dyn HookLog) {
    if let Some(pid) = running(bundle) {
        if let Stopped::Killed(_) = procs::terminate(pid, |p| is_reader(bundle, p)) {
            log.write(&format!("poststop: the reader (pid {pid}) survived SIGTERM; killed"));
        }
    }
    let _ = std::fs::remove_file(bundle.path(READER_PID));
}
