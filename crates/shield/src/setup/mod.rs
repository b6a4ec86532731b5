//! Setup: the hook files, their descriptors, the containers.conf registration and the
//! receipt that certifies them (hooks.md §2).

pub mod containers_conf;
pub mod descriptors;
pub mod installer;
pub mod receipt;

pub use receipt::{check_setup, require_ready, SetupCheck, SetupStatus};
