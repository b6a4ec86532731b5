//! `--version`: the package, the podman client and whether nft is on PATH.

use terok_shield::{envcheck, tools};

use crate::error::CliResult;
use crate::output;

pub fn run() -> CliResult {
    let podman = envcheck::podman_version().unwrap_or_else(|| "not found".into());
    let nft = if tools::find("nft").is_some() { "nft found" } else { "nft not found" };
    output::lines(&[format!("terok-shield {}", terok_shield::VERSION), format!("podman {podman}"), nft.to_string()])
}
