//! terok-shield: the library behind the CLI and the hooks.
//!
//! The pure decisions live in `terok-shield-policy` and `terok-shield-ruleset`; this crate
//! adds what touches the host. It prints nothing and owns no process: warnings, notes and
//! progress go to a caller's [`report::Reporter`], entry points and argument parsing live
//! in the binaries, and the helper executable it starts is named by its caller
//! ([`helper::Helper`]). `docs/architecture.md` maps the modules.
//!
//! The public surface:
//! * configuration and places: [`config`], [`paths`], [`profiles`];
//! * building a container's bundle: [`prepare`];
//! * a running container: [`control::Container`]; finding one: [`container::locate`];
//! * the hooks and the helper executable: [`hook`], [`helper`], [`procenv`];
//! * observing: [`observe`] (the NFLOG reader, `watch`, hub events);
//! * installing: [`setup`]; checking the host: [`envcheck`];
//! * [`error::Error`], [`report::Report`], and a few facts: [`dns::DnsMode`], [`bundle::Bundle`].

pub mod bundle;
pub mod config;
pub mod container;
pub mod control;
pub mod dns;
pub mod envcheck;
pub mod error;
pub mod helper;
pub mod hook;
pub mod observe;
pub mod paths;
pub mod prepare;
pub mod procenv;
pub mod profiles;
pub mod report;
pub mod setup;
pub mod tools;

pub(crate) mod audit;
pub(crate) mod confine;
pub(crate) mod exec;
pub(crate) mod fsutil;
pub(crate) mod kernel;
pub(crate) mod podman;
pub(crate) mod procs;

pub use error::{Error, Result};

/// The package version, as `setup` records it and `--version` prints it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Bundle version written into the `terok.shield.version` annotation.
pub const BUNDLE_VERSION: u32 = 18;
