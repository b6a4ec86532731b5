//! `watch CONTAINER` (cli.md §13): the container's events as JSON lines until Ctrl-C.

use std::io::Write;

use terok_shield::bundle::layout::DNS_TIER;
use terok_shield::container;
use terok_shield::dns::DnsTier;

use crate::context::Context;
use crate::error::{CliError, CliResult};

pub fn run(ctx: &Context, name: &str) -> CliResult {
    let bundle = container::locate(&ctx.state_root, name)?;
    let tier = bundle.read_value(DNS_TIER)?.as_deref().and_then(DnsTier::parse);
    let Some(tier) = tier else {
        return Err(CliError::Message("DNS tier not set — container may not be shielded.".into()));
    };
    if !tier.runs_dnsmasq() {
        eprintln!("DNS tier {}: events carry IP addresses only.", tier.as_str());
    }
    terok_shield::observe::harden();
    let mut stdout = std::io::stdout();
    let mut out = |line: &str| writeln!(stdout, "{line}").and_then(|()| stdout.flush()).is_ok();
    terok_shield::observe::watch::run(&bundle, name, tier.runs_dnsmasq(), &mut out)?;
    Ok(())
}
