//! The bridge hook (hooks.md §6): soft. It never blocks a start; every failure is logged.
//! createRuntime persists `dossier.meta_path` and starts the container's NFLOG reader
//! ([`crate::observe::reader`]) in the container's network namespace; poststop stops it.

use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use terok_shield_policy::names::validate_container_name;

use super::oci_state::OciState;
use super::{HookError, HookLog, Stage};
use crate::bundle::layout::{Bundle, META_PATH, READER_LOG, READER_PID};
use crate::error::Result;
use crate::helper::Helper;
use crate::observe::reader::ReaderSpec;
use crate::procenv::ProcEnv;
use crate::procs::{self, Stopped};

pub fn run(stage: Stage, input: &[u8], env: &ProcEnv, helper: &Helper, log: &mut dyn HookLog) -> Result<()> {
    let state = OciState::parse(input).map_err(HookError::from)?;
    let bundle = super::bundle_of(&state, stage, log, reap_orphans)?;
    match stage {
        Stage::CreateRuntime => {
            if let Some(meta) = state.annotation("dossier.meta_path").filter(|m| !m.is_empty()) {
                crate::fsutil::write_atomic(&bundle.path(META_PATH), meta.as_bytes(), 0o600)?;
            }
            start_reader(&state, &bundle, env, helper)
        }
        Stage::Poststop => {
            stop_reader(&bundle, log);
            Ok(())
        }
    }
}

/// poststop of a container whose bundle was deleted while it ran: its reader, if one is
/// still there, is found by the state dir on its command line.
fn reap_orphans(raw_dir: Option<&str>, log: &mut dyn HookLog) {
    let Some(dir) = raw_dir.map(Path::new).filter(|d| d.is_absolute()) else { return };
    let bundle = Bundle::new(dir);
    for how in procs::reap_if_gone(dir, |p| is_reader(&bundle, p)) {
        log.write(&format!("poststop: state dir is gone; stopped its orphaned reader ({how:?})"));
    }
}

/// The pid in `reader.pid` when that process is this bundle's reader.
pub fn running_reader(bundle: &Bundle) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(bundle.path(READER_PID)).ok()?.trim().parse().ok()?;
    is_reader(bundle, pid).then_some(pid)
}

/// Process `pid` runs `<helper> reader <this state dir> <container> … --emit=socket …`.
fn is_reader(bundle: &Bundle, pid: i32) -> bool {
    procs::cmdline(pid).is_some_and(|args| ReaderSpec::is_socket_reader_of(&args, &bundle.dir))
}

fn start_reader(state: &OciState, bundle: &Bundle, env: &ProcEnv, helper: &Helper) -> Result<()> {
    if state.id.is_empty() {
        return Err(HookError::ReaderNoId.into());
    }
    if running_reader(bundle).is_some() {
        return Ok(());
    }
    let pid = state.pid.ok_or(HookError::ReaderNoPid)?;
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
    };
    let log = crate::fsutil::open_append(&bundle.path(READER_LOG)).map_err(HookError::ReaderStart)?;
    let child = Command::new(&helper.path)
        .arg("reader")
        .args(spec.args())
        .env_clear()
        .envs(env.child_env())
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(HookError::ReaderStart)?)
        .stderr(log)
        .spawn()
        .map_err(HookError::ReaderStart)?;
    let pid = child.id();
    if let Err(e) = crate::fsutil::write_atomic(&bundle.path(READER_PID), format!("{pid}\n").as_bytes(), 0o600) {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        return Err(HookError::ReaderPid(Box::new(e)).into());
    }
    Ok(())
}

/// TERM, then KILL after 2 s; `reader.pid` is removed in every case.
fn stop_reader(bundle: &Bundle, log: &mut dyn HookLog) {
    if let Some(pid) = running_reader(bundle) {
        if let Stopped::Killed(_) = procs::terminate(pid, |p| is_reader(bundle, p)) {
            log.write(&format!("poststop: the reader (pid {pid}) survived SIGTERM; killed"));
        }
    }
    let _ = std::fs::remove_file(bundle.path(READER_PID));
}
