//! The command line: clap declarations, then the checks clap cannot express.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use crate::error::{CliError, CliResult};

#[derive(Debug, Parser)]
#[command(
    name = "terok-shield",
    about = "Default-deny egress firewall for Podman containers",
    disable_version_flag = true,
    subcommand_required = false
)]
pub struct Cli {
    /// Print the version of terok-shield, podman and whether nft is present
    #[arg(long)]
    pub version: bool,
    /// Override the state root (default: $TEROK_SHIELD_STATE_DIR, else $XDG_STATE_HOME/terok/shield)
    #[arg(long, value_name = "PATH")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub verb: Option<Verb>,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Prepare shield and print podman flags
    Prepare {
        /// Container name
        container: String,
        /// Comma-separated profiles (default: default_profiles from config.yml)
        #[arg(long, value_name = "LIST")]
        profiles: Option<String>,
        /// Print the flags as a JSON array
        #[arg(long)]
        json: bool,
    },
    /// Launch a shielded container via podman
    Run {
        /// Container name
        container: String,
        /// Comma-separated profiles (default: default_profiles from config.yml)
        #[arg(long, value_name = "LIST")]
        profiles: Option<String>,
    },
    /// Install global OCI hooks for restart persistence
    Setup {
        /// Into podman's per-user hooks.d (~/.local/share/containers/oci/hooks.d)
        #[arg(long, conflicts_with = "root")]
        user: bool,
        /// System-wide, where podman looks by default (through sudo when not root)
        #[arg(long)]
        root: bool,
    },
    /// Remove exactly what setup installed
    Uninstall {
        /// The per-user hooks.d install
        #[arg(long, conflicts_with = "root")]
        user: bool,
        /// The system-wide install
        #[arg(long)]
        root: bool,
    },
    /// Show shield configuration overview, or a container's firewall state (up/down/disengaged/quarantine/offline/error)
    Status {
        /// Container name: print its firewall state
        container: Option<String>,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Live-allow an IP or CIDR for a container
    Allow {
        /// Container name
        container: String,
        /// IP address or CIDR
        target: String,
    },
    /// Live-deny an IP or CIDR for a container
    Deny {
        /// Container name
        container: String,
        /// IP address or CIDR
        target: String,
    },
    /// Switch container to the DOWN posture (accept + log)
    Down {
        /// Container name
        container: String,
        /// The podman container id (full or at least 12 hex digits; routes hub events)
        #[arg(long, value_name = "ID")]
        container_id: Option<String>,
        /// Enforce nothing at all (only log new flows)
        #[arg(long)]
        disengage: bool,
    },
    /// Restore deny-all mode for a container
    Up {
        /// Container name
        container: String,
        /// The podman container id (full or at least 12 hex digits; routes hub events)
        #[arg(long, value_name = "ID")]
        container_id: Option<String>,
    },
    /// Forget DNS-learned allow state (back to authored policy seeds)
    Reset {
        /// Container name
        container: String,
    },
    /// Total network blackout (drop all, log dropped traffic)
    Quarantine {
        /// Container name
        container: String,
    },
    /// Show current nft rules for a container
    Rules {
        /// Container name
        container: String,
    },
    /// Resolve the default profiles' names for a container and cache the addresses
    Resolve {
        /// Container name
        container: String,
        /// Ignore the caches
        #[arg(long)]
        force: bool,
    },
    /// List available shield profiles
    Profiles,
    /// Check podman environment for compatibility issues
    CheckEnvironment {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Show ruleset that would be applied
    Preview {
        /// Show the DOWN posture (accept + log) instead of UP
        #[arg(long)]
        down: bool,
        /// With --down: show the DISENGAGED posture (nothing enforced)
        #[arg(long)]
        disengage: bool,
        /// Comma-separated profiles whose addresses to seed (default: none)
        #[arg(long, value_name = "LIST")]
        profiles: Option<String>,
        /// Also allow this IP, CIDR or domain (repeatable)
        #[arg(long, value_name = "TARGET")]
        allow: Vec<String>,
        /// Also deny this IP, CIDR or domain (repeatable)
        #[arg(long, value_name = "TARGET")]
        deny: Vec<String>,
    },
    /// Show audit log entries
    Logs {
        /// Only this container's entries
        #[arg(long, value_name = "NAME")]
        container: Option<String>,
        /// How many entries (the last N)
        #[arg(short = 'n', default_value_t = 50, allow_negative_numbers = true)]
        n: i64,
        /// One JSON array of the entries (compact)
        #[arg(long)]
        json: bool,
    },
    /// Stream a container's events (blocked packets, DNS queries, audit rows) as JSON lines
    Watch {
        /// Container name
        container: String,
    },
    /// Ask on the terminal about each blocked destination: allow or deny
    SimpleClearance {
        /// Container name
        container: String,
    },
}

impl Verb {
    fn is_run(&self) -> bool {
        matches!(self, Verb::Run { .. })
    }
}

/// Split a comma-separated `--profiles` value: items trimmed, empty items dropped.
pub fn profile_list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// The parsed invocation.
#[derive(Debug)]
pub struct Invocation {
    pub cli: Cli,
    /// Everything after the first `--` (only `run` takes it).
    pub trailing: Vec<OsString>,
}

/// Parse argv: split at the first `--`, let clap parse the rest, then apply the checks clap
/// cannot express.
pub fn parse(argv: Vec<OsString>) -> CliResult<Invocation> {
    let (head, trailing, had_separator) = match argv.iter().position(|a| a == "--") {
        Some(i) => (argv[..i].to_vec(), argv[i + 1..].to_vec(), true),
        None => (argv, Vec::new(), false),
    };
    let cli = Cli::try_parse_from(head).map_err(|e| {
        let text = e.render().to_string();
        match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => CliError::Display(text),
            _ => CliError::Usage(text),
        }
    })?;
    if had_separator && !cli.verb.as_ref().is_some_and(Verb::is_run) && !cli.version {
        return Err(CliError::Usage(usage_error("'--' separator is only supported by the 'run' subcommand")));
    }
    Ok(Invocation { cli, trailing })
}

/// Format a usage error the way clap does.
pub fn usage_error(msg: &str) -> String {
    Cli::command().error(clap::error::ErrorKind::ArgumentConflict, msg).render().to_string()
}

/// Top-level help text.
pub fn help() -> String {
    Cli::command().render_help().to_string()
}
