//! The per-container state bundle (state-and-config.md §4).

pub mod policy;
