//! What the shield saw and decided, for operators and clearance UIs (observe.md): the NFLOG
//! reader and its parts, the watch event shapes, and the hub emitter.

pub mod budget;
mod dedup;
mod dnslog;
pub mod dossier;
pub mod event;
pub mod fanout;
pub mod hub;
pub mod reader;
mod tail;
pub mod watch;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObserveError {
    #[error("poll: {0}")]
    Poll(#[source] nix::errno::Errno),
}

/// Take the complete lines off the front of `buf` (a partial last line stays for later);
/// invalid UTF-8 is replaced.
pub fn take_lines(buf: &mut Vec<u8>) -> Vec<String> {
    let end = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let complete: Vec<u8> = buf.drain(..end).collect();
    String::from_utf8_lossy(&complete).lines().map(str::to_string).collect()
}
