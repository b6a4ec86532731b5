//! Process-wide settings the binaries make for themselves (the library never does): the
//! stop signals as a descriptor, and the hardening of long-running observers.

use std::fmt;

/// Why a process setting could not be made.
#[derive(Debug)]
pub struct ProcessError(String);

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SIGTERM and SIGINT as a descriptor to poll, blocked for normal delivery: how the
/// long-running observers (reader, `watch`, `simple-clearance`) end cleanly.
pub fn stop_signals() -> Result<nix::sys::signalfd::SignalFd, ProcessError> {
    use nix::sys::signal::{SigSet, Signal};
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.thread_block().map_err(|e| ProcessError(format!("signal mask: {e}")))?;
    nix::sys::signalfd::SignalFd::new(&signals).map_err(|e| ProcessError(format!("signalfd: {e}")))
}

/// No core dumps, not dumpable, no new privileges: for the long-running observers, which
/// hold container-controlled data. Best effort.
pub fn harden() {
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
    let _ = nix::sys::prctl::set_dumpable(false);
    let _ = nix::sys::prctl::set_no_new_privs();
}
