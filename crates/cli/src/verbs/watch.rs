//! `watch CONTAINER` (cli.md §13): the container's events as JSON lines until Ctrl-C.

use std::io::Write;
use std::os::fd::AsFd;

use terok_shield::container;
use terok_shield::observe::watch::{self, WatchSink};

use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::process;

/// Events to stdout, notes to stderr.
struct Terminal(std::io::Stdout);

impl WatchSink for Terminal {
    fn event(&mut self, line: &str) -> bool {
        writeln!(self.0, "{line}").and_then(|()| self.0.flush()).is_ok()
    }

    fn note(&mut self, msg: &str) {
        eprintln!("{msg}");
    }
}

pub fn run(ctx: &Context, name: &str) -> CliResult {
    let bundle = container::locate(&ctx.state_root, name)?;
    let Some(mode) = bundle.dns_mode()? else {
        return Err(CliError::Message("DNS tier not set — container may not be shielded.".into()));
    };
    if !mode.runs_dnsmasq() && !mode.follows_answers() {
        eprintln!("DNS tier {}: events carry IP addresses only.", mode.as_str());
    }
    process::harden();
    let stop = process::stop_signals().map_err(|e| CliError::Message(e.to_string()))?;
    watch::run(&bundle, name, mode.runs_dnsmasq(), stop.as_fd(), &mut Terminal(std::io::stdout()))?;
    Ok(())
}
