//! The per-container dnsmasq process (hooks.md §5.1-5.3, dns.md §4.1): started in the
//! container's network namespace (the caller is already in it), recognised by its command
//! line, stopped with TERM and then KILL.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::bundle::layout::{Bundle, DNSMASQ_BIN, DNSMASQ_COMMAND, DNSMASQ_CONF, DNSMASQ_PID};
use crate::error::{Error, Result};
use crate::{exec, fsutil, tools};

/// How long a stopping dnsmasq gets before KILL, and a starting one to write its pid file.
const GRACE: Duration = Duration::from_secs(2);

/// The `--conf-file=` argument that names this bundle's configuration.
fn conf_arg(bundle: &Bundle) -> String {
    format!("--conf-file={}", bundle.path(DNSMASQ_CONF).display())
}

/// The pid in `dnsmasq.pid`; `None` when missing or garbled.
pub fn recorded_pid(bundle: &Bundle) -> Option<i32> {
    std::fs::read_to_string(bundle.path(DNSMASQ_PID)).ok()?.trim().parse().ok().filter(|p| *p > 0)
}

/// Process `pid` is this bundle's dnsmasq: its command line holds our `--conf-file=` argument
/// and its argv[0] is the binary recorded in `dnsmasq.bin` (or, when that is unreadable, a
/// file named `dnsmasq`). An unreadable command line is not ours.
pub fn is_ours(bundle: &Bundle, pid: i32) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
    let want = conf_arg(bundle);
    if !args.contains(&want.as_bytes()) {
        return false;
    }
    let argv0 = String::from_utf8_lossy(args.first().copied().unwrap_or_default()).into_owned();
    match std::fs::read_to_string(bundle.path(DNSMASQ_BIN)) {
        Ok(bin) => argv0 == bin.trim(),
        Err(_) => Path::new(&argv0).file_name().is_some_and(|n| n == "dnsmasq"),
    }
}

/// The binary to launch: the recorded launch choice (`dnsmasq.command`), an absolute path as
/// is, a bare name looked up on `path_var`.
pub fn launch_binary(bundle: &Bundle, path_var: Option<&std::ffi::OsStr>) -> Result<PathBuf> {
    let choice = bundle.read_value(DNSMASQ_COMMAND)?.filter(|c| !c.is_empty()).unwrap_or_else(|| "dnsmasq".into());
    tools::find_in(&choice, path_var).ok_or_else(|| {
        Error::Setup(format!("dnsmasq ({choice}) not found: install dnsmasq-base or re-create the container"))
    })
}

/// Start dnsmasq in the current network namespace unless ours already runs (idempotent).
/// Returns its pid once its pid file names a process that is ours.
pub fn start(
    bundle: &Bundle,
    binary: &Path,
    env: Option<Vec<(std::ffi::OsString, std::ffi::OsString)>>,
) -> Result<i32> {
    if let Some(pid) = recorded_pid(bundle).filter(|p| is_ours(bundle, *p)) {
        return Ok(pid);
    }
    let _ = std::fs::remove_file(bundle.path(DNSMASQ_PID));
    fsutil::write_atomic(&bundle.path(DNSMASQ_BIN), format!("{}\n", binary.display()).as_bytes(), 0o600)?;
    let mut cmd = exec::Cmd::new(binary, Duration::from_secs(10)).arg(conf_arg(bundle));
    if let Some(vars) = env {
        cmd = cmd.clean_env(vars);
    }
    // dnsmasq daemonises: the command returns once the daemon is up (or failed to start).
    cmd.run_ok().map_err(|e| Error::Setup(format!("dnsmasq failed to start: {e}")))?;
    let deadline = Instant::now() + GRACE;
    loop {
        match recorded_pid(bundle) {
            Some(pid) if is_ours(bundle, pid) => return Ok(pid),
            Some(pid) if Instant::now() >= deadline => {
                return Err(Error::Setup(format!("dnsmasq PID {pid} is not the expected process")))
            }
            None if Instant::now() >= deadline => {
                return Err(Error::Setup(format!(
                    "dnsmasq started but PID file not written: {}",
                    bundle.path(DNSMASQ_PID).display()
                )))
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// What [`stop`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// No pid file, or a garbled one.
    NotRunning,
    /// The pid file named a process that is not ours (removed).
    Stale(i32),
    /// Ours, stopped by TERM.
    Terminated(i32),
    /// Ours, survived TERM for the grace period, killed.
    Killed(i32),
}

/// Stop this bundle's dnsmasq: TERM, poll every 50 ms for up to 2 s, then KILL. The pid
/// file stays after a normal stop; a stale one is removed.
pub fn stop(bundle: &Bundle) -> Result<Stopped> {
    let Some(pid) = recorded_pid(bundle) else { return Ok(Stopped::NotRunning) };
    if !is_ours(bundle, pid) {
        let _ = std::fs::remove_file(bundle.path(DNSMASQ_PID));
        return Ok(Stopped::Stale(pid));
    }
    kill(Pid::from_raw(pid), Signal::SIGTERM)
        .map_err(|e| Error::Setup(format!("cannot stop dnsmasq (pid {pid}): {e}")))?;
    Ok(wait_or_kill(bundle, pid))
}

/// The dnsmasq processes of a bundle whose directory is gone (deleted while its container
/// ran, so no pid file is left): processes named dnsmasq whose command line names the
/// bundle's configuration, stopped like [`stop`]. Not filtered by uid: dnsmasq drops to
/// `nobody`. Does nothing while the directory exists.
pub fn reap_orphans(bundle: &Bundle) -> Vec<Stopped> {
    if std::fs::symlink_metadata(&bundle.dir).is_ok() {
        return Vec::new();
    }
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    let pids: Vec<i32> = procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|pid| is_ours(bundle, *pid))
        .collect();
    pids.into_iter()
        .map(|pid| match kill(Pid::from_raw(pid), Signal::SIGTERM) {
            Ok(()) => wait_or_kill(bundle, pid),
            Err(_) => Stopped::Stale(pid),
        })
        .collect()
}

/// After TERM: poll every 50 ms for up to 2 s, then KILL.
fn wait_or_kill(bundle: &Bundle, pid: i32) -> Stopped {
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if !is_ours(bundle, pid) {
            return Stopped::Terminated(pid);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    Stopped::Killed(pid)
}

/// Stop the running dnsmasq (if any) and start it again with the current configuration.
pub fn restart(bundle: &Bundle, binary: &Path) -> Result<i32> {
    stop(bundle)?;
    // A killed dnsmasq may still look like ours for a moment; without its pid file, start
    // launches the new one instead of taking the dying one for it.
    let _ = std::fs::remove_file(bundle.path(DNSMASQ_PID));
    start(bundle, binary, None).map_err(|e| {
        Error::Setup(format!(
            "dnsmasq did not restart after a config reload ({e}) — container DNS is broken. Re-create the container to recover."
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_needs_our_conf_file_and_the_recorded_binary() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let b = Bundle::new(dir.path());
        // A process that is not dnsmasq (this test) is never ours.
        assert!(!is_ours(&b, std::process::id() as i32));
        assert!(!is_ours(&b, i32::MAX));
        // A sleeping child with our argument and a recorded argv[0].
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 30", &conf_arg(&b)])
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let pid = child.id() as i32;
        std::thread::sleep(Duration::from_millis(100));
        std::fs::write(b.path(DNSMASQ_BIN), "/bin/sh\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(is_ours(&b, pid));
        std::fs::write(b.path(DNSMASQ_BIN), "/usr/sbin/dnsmasq\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(!is_ours(&b, pid));
        std::fs::write(b.path(DNSMASQ_BIN), "/bin/sh\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(b.path(DNSMASQ_PID), format!("{pid}\n")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stop(&b).ok(), Some(Stopped::Terminated(pid)));
        let _ = child.wait();
        assert_eq!(stop(&b).ok(), Some(Stopped::Stale(pid)));
        assert!(!b.path(DNSMASQ_PID).exists());
        assert_eq!(stop(&b).ok(), Some(Stopped::NotRunning));
    }
}
