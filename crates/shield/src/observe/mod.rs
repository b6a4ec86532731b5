//! What the shield saw and decided, for operators and clearance UIs (observe.md): the NFLOG
//! reader and its parts, the watch event shapes, and the hub emitter.

pub mod dedup;
pub mod dnslog;
pub mod dossier;
pub mod event;
pub mod fanout;
pub mod hub;
pub mod nflog;
pub mod reader;
pub mod tail;
pub mod watch;

/// SIGTERM and SIGINT as a descriptor to poll, blocked for normal delivery: how the
/// long-running observers (reader, `watch`, `simple-clearance`) end cleanly.
pub fn stop_signals() -> crate::error::Result<nix::sys::signalfd::SignalFd> {
    use nix::sys::signal::{SigSet, Signal};
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    let fail = |what: &str, e: nix::Error| crate::error::Error::Setup(format!("{what}: {e}"));
    signals.thread_block().map_err(|e| fail("signal mask", e))?;
    nix::sys::signalfd::SignalFd::new(&signals).map_err(|e| fail("signalfd", e))
}

/// Take the complete lines off the front of `buf` (a partial last line stays for later);
/// invalid UTF-8 is replaced.
pub fn take_lines(buf: &mut Vec<u8>) -> Vec<String> {
    let end = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let complete: Vec<u8> = buf.drain(..end).collect();
    String::from_utf8_lossy(&complete).lines().map(str::to_string).collect()
}

/// No core dumps, not dumpable, no new privileges: for the long-running observers, which
/// hold container-controlled data. Best effort.
pub fn harden() {
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
    let _ = nix::sys::prctl::set_dumpable(false);
    let _ = nix::sys::prctl::set_no_new_privs();
}
