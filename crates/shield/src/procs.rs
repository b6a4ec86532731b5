//! Processes the shield starts and stops (dnsmasq, the NFLOG reader): found by their
//! command line, stopped with TERM and then KILL.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long a stopping process gets before KILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// No pid file, or a garbled one.
    NotRunning,
    /// The pid named a process that is not ours (any pid file is removed).
    Stale(i32),
    /// Ours, stopped by TERM.
    Terminated(i32),
    /// Ours, survived TERM for the grace period, killed.
    Killed(i32),
}

/// The NUL-separated arguments of `/proc/<pid>/cmdline`; `None` when unreadable (gone, or
/// a zombie: empty).
pub fn cmdline(pid: i32) -> Option<Vec<Vec<u8>>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok().filter(|r| !r.is_empty())?;
    Some(raw.split(|b| *b == 0).map(<[u8]>::to_vec).collect())
}

/// Every process `is_it` recognises by pid.
pub fn find(is_it: impl Fn(i32) -> bool) -> Vec<i32> {
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    procs.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).filter(|pid| is_it(*pid)).collect()
}

/// Once `dir` (a bundle) no longer exists, stop every process `is_it` recognises: what its
/// container left running when the bundle was deleted under it. Nothing while it exists.
pub fn reap_if_gone(dir: &std::path::Path, is_it: impl Fn(i32) -> bool + Copy) -> Vec<Stopped> {
    if std::fs::symlink_metadata(dir).is_ok() {
        return Vec::new();
    }
    find(is_it).into_iter().map(|pid| terminate(pid, is_it)).collect()
}

/// Wait up to `within` for `pid` to be gone or a zombie: a process loses its command line
/// (its memory) before it closes its files, so a listener that no longer reads as ours may
/// still hold its sockets for a moment. True when it is gone.
pub fn wait_gone(pid: i32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()));
        if matches!(state, None | Some('Z' | 'X')) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// TERM `pid`, poll `is_it` every 2 ms for up to 2 s, then KILL. `Stale` when the TERM
/// could not be sent.
pub fn terminate(pid: i32, is_it: impl Fn(i32) -> bool) -> Stopped {
    if kill(Pid::from_raw(pid), Signal::SIGTERM).is_err() {
        return Stopped::Stale(pid);
    }
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if !is_it(pid) {
            return Stopped::Terminated(pid);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    Stopped::Killed(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_gone_sees_an_exited_child() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap_or_else(|e| panic!("{e}"));
        let pid = child.id() as i32;
        assert!(!wait_gone(pid, Duration::from_millis(20)), "a running child is not gone");
        let _ = child.kill();
        assert!(wait_gone(pid, Duration::from_secs(2)), "a killed child is a zombie, then gone");
        let _ = child.wait();
        assert!(wait_gone(pid, Duration::ZERO));
    }

    #[test]
    fn terminate_a_child() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap_or_else(|e| panic!("{e}"));
        let pid = child.id() as i32;
        // Until the exec, the child's command line is this test's.
        let exec_done = (0..500).any(|_| {
            std::thread::sleep(Duration::from_millis(2));
            cmdline(pid).is_some_and(|a| a[0] == b"sleep")
        });
        assert!(exec_done);
        assert!(find(|p| p == pid).contains(&pid));
        // The child stays a zombie until waited for: recognise it by a readable cmdline.
        let alive = |p: i32| cmdline(p).is_some();
        assert_eq!(terminate(pid, alive), Stopped::Terminated(pid));
        let _ = child.wait();
        assert_eq!(terminate(pid, alive), Stopped::Stale(pid));
    }
}
