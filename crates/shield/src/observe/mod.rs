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

/// No core dumps, not dumpable, no new privileges: for the long-running observers, which
/// hold container-controlled data. Best effort.
pub fn harden() {
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
    let _ = nix::sys::prctl::set_dumpable(false);
    let _ = nix::sys::prctl::set_no_new_privs();
}
