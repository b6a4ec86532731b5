//! The per-container state bundle (state-and-config.md §4).

pub mod dns;
pub mod layout;
pub mod policy;
pub mod seeds;

pub use layout::Bundle;
