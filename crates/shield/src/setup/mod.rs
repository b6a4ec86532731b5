//! Setup state: the receipt and the installed hook files (hooks.md §2).

pub mod receipt;

pub use receipt::{check_setup, SetupCheck, SetupStatus};
