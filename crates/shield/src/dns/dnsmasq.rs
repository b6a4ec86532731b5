//! The per-container dnsmasq process (hooks.md §5.1-5.3, dns.md §4.1): started in the
//! container's network namespace (the caller is already in it), recognised by its command
//! line, stopped with TERM and then KILL.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::DnsError;
use crate::bundle::layout::{Bundle, DNSMASQ_BIN, DNSMASQ_COMMAND, DNSMASQ_CONF, DNSMASQ_PID};
use crate::error::Result;
pub use crate::procs::Stopped;
use crate::{exec, fsutil, procs, tools};

/// How long a starting dnsmasq gets to write its pid file.
const GRACE: Duration = procs::GRACE;

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
    let Some(args) = procs::cmdline(pid) else { return false };
    let want = conf_arg(bundle).into_bytes();
    if !args.contains(&want) {
        return false;
    }
    let argv0 = String::from_utf8_lossy(args.first().map(Vec::as_slice).unwrap_or_default()).into_owned();
    match std::fs::read_to_string(bundle.path(DNSMASQ_BIN)) {
        Ok(bin) => argv0 == bin.trim(),
        Err(_) => Path::new(&argv0).file_name().is_some_and(|n| n == "dnsmasq"),
    }
}

/// The binary to launch: the recorded launch choice (`dnsmasq.command`), an absolute path as
/// is, a bare name looked up on `path_var`.
pub fn launch_binary(bundle: &Bundle, path_var: Option<&std::ffi::OsStr>) -> Result<PathBuf> {
    let choice = bundle.read_value(DNSMASQ_COMMAND)?.filter(|c| !c.is_empty()).unwrap_or_else(|| "dnsmasq".into());
    tools::find_in(&choice, path_var).ok_or_else(|| DnsError::DnsmasqMissing(choice).into())
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
    cmd.run_ok().map_err(DnsError::DnsmasqStart)?;
    let deadline = Instant::now() + GRACE;
    loop {
        match recorded_pid(bundle) {
            Some(pid) if is_ours(bundle, pid) => return Ok(pid),
            Some(pid) if Instant::now() >= deadline => return Err(DnsError::DnsmasqImpostor(pid).into()),
            None if Instant::now() >= deadline => return Err(DnsError::DnsmasqNoPid(bundle.path(DNSMASQ_PID)).into()),
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Stop this bundle's dnsmasq: TERM, poll every 2 ms for up to 2 s, then KILL. The pid
/// file stays after a normal stop; a stale one is removed.
pub fn stop(bundle: &Bundle) -> Result<Stopped> {
    let Some(pid) = recorded_pid(bundle) else { return Ok(Stopped::NotRunning) };
    if !is_ours(bundle, pid) {
        let _ = std::fs::remove_file(bundle.path(DNSMASQ_PID));
        return Ok(Stopped::Stale(pid));
    }
    match procs::terminate(pid, |p| is_ours(bundle, p)) {
        Stopped::Stale(_) => Err(DnsError::DnsmasqStop(pid).into()),
        done => Ok(done),
    }
}

/// The dnsmasq processes of a bundle whose directory is gone (deleted while its container
/// ran, so no pid file is left): processes named dnsmasq whose command line names the
/// bundle's configuration, stopped like [`stop`]. Not filtered by uid: dnsmasq drops to
/// `nobody`. Does nothing while the directory exists.
pub fn reap_orphans(bundle: &Bundle) -> Vec<Stopped> {
    procs::reap_if_gone(&bundle.dir, |p| is_ours(bundle, p))
}

/// Stop the running dnsmasq (if any) and start it again with the current configuration.
pub fn restart(bundle: &Bundle, binary: &Path) -> Result<i32> {
    // The new one binds the same addresses: wait until the old one has closed them.
    if let Stopped::Terminated(pid) | Stopped::Killed(pid) = stop(bundle)? {
        procs::wait_gone(pid, Duration::from_secs(2));
    }
    // A killed dnsmasq may still look like ours for a moment; without its pid file, start
    // launches the new one instead of taking the dying one for it.
    let _ = std::fs::remove_file(bundle.path(DNSMASQ_PID));
    start(bundle, binary, None).map_err(|e| DnsError::DnsmasqRestart(Box::new(e)).into())
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
