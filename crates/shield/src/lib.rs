//! terok-shield: the library behind the CLI and the hooks.
//!
//! The pure decisions live in `terok-shield-policy` and `terok-shield-ruleset`; this crate
//! adds what touches the host: directory roots, `config.yml`, profile files, host-tool
//! lookup, subprocesses with timeouts, and the environment check.

pub mod audit;
pub mod bundle;
pub mod config;
pub mod conntrack;
pub mod container;
pub mod dns;
pub mod envcheck;
pub mod error;
pub mod exec;
pub mod fsutil;
pub mod hook;
pub mod live;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod nftnl;
pub mod observe;
pub mod paths;
pub mod podman;
pub mod prepare;
pub mod procs;
pub mod profiles;
pub mod setup;
pub mod tools;

pub use error::Error;

/// The package version, as `setup` records it and `--version` prints it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Bundle version written into the `terok.shield.version` annotation.
pub const BUNDLE_VERSION: u32 = 18;
