//! The bridge hook (hooks.md §6): soft. It never blocks a start; every failure is logged.
//! createRuntime persists `dossier.meta_path` and starts the container's NFLOG reader
//! ([`crate::observe::reader`]) in the container's network namespace; poststop stops it.

use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use terok_shield_policy::names::validate_container_name;

use super::envboot::HookEnv;
use super::log::HookLog;
use super::oci_state::OciState;
use super::Stage;
use crate::bundle::layout::{Bundle, META_PATH, READER_LOG, READER_PID};
use crate::procs::{self, Stopped};

pub fn run(stage: Stage, input: &[u8], env: &HookEnv, log: &mut HookLog) -> Result<(), String> {
    let state = OciState::parse(input)?;
    let bundle = super::bundle_of(&state, stage, log, reap_orphans)?;
    match stage {
        Stage::CreateRuntime => {
            if let Some(meta) = state.annotation("dossier.meta_path").filter(|m| !m.is_empty()) {
                crate::fsutil::write_atomic(&bundle.path(META_PATH), meta.as_bytes(), 0o600)
                    .map_err(|e| e.to_string())?;
            }
            start_reader(&state, &bundle, env)
        }
        Stage::Poststop => {
            stop_reader(&bundle, log);
            Ok(())
        }
    }
}

/// poststop of a container whose bundle was deleted while it ran: its reader, if one is
/// still there, is found by the state dir on its command line.
fn reap_orphans(raw_dir: Option<&str>, log: &mut HookLog) {
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

/// Process `pid` runs `… reader <this state dir> <container> … --emit=socket …`.
fn is_reader(bundle: &Bundle, pid: i32) -> bool {
    let Some(args) = procs::cmdline(pid) else { return false };
    let dir = bundle.dir.as_os_str().as_encoded_bytes();
    args.len() >= 4 && args[1] == b"reader" && args[2] == dir && args[4..].contains(&b"--emit=socket".to_vec())
}

fn start_reader(state: &OciState, bundle: &Bundle, env: &HookEnv) -> Result<(), String> {
    if state.id.is_empty() {
        return Err("missing container id — skipping reader".into());
    }
    if running_reader(bundle).is_some() {
        return Ok(());
    }
    let pid = state.pid.ok_or("OCI state has no pid — skipping reader")?;
    let short: String = state.id.chars().take(12).collect();
    let name = state.annotation("terok.shield.name").filter(|n| validate_container_name(n).is_ok());
    let annotations: serde_json::Map<String, serde_json::Value> = state
        .annotations
        .iter()
        .filter(|(k, _)| k.starts_with("dossier."))
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    let log =
        crate::fsutil::open_append(&bundle.path(READER_LOG)).map_err(|e| format!("cannot start the reader: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot start the reader: {e}"))?;
    let child = Command::new(exe)
        .arg("reader")
        .arg(&bundle.dir)
        .arg(name.unwrap_or(&short))
        .arg("--emit=socket")
        .arg(format!("--annotations={}", serde_json::Value::Object(annotations)))
        .arg(format!("--container-id={}", state.id))
        .arg(format!("--netns-pid={pid}"))
        .env_clear()
        .envs(env.child_env())
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start the reader: {e}"))?;
    let pid = child.id();
    if let Err(e) = crate::fsutil::write_atomic(&bundle.path(READER_PID), format!("{pid}\n").as_bytes(), 0o600) {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        return Err(format!("cannot record the reader's pid: {e}"));
    }
    Ok(())
}

/// TERM, then KILL after 2 s; `reader.pid` is removed in every case.
fn stop_reader(bundle: &Bundle, log: &mut HookLog) {
    if let Some(pid) = running_reader(bundle) {
        if let Stopped::Killed(_) = procs::terminate(pid, |p| is_reader(bundle, p)) {
            log.write(&format!("poststop: the reader (pid {pid}) survived SIGTERM; killed"));
        }
    }
    let _ = std::fs::remove_file(bundle.path(READER_PID));
}
