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
