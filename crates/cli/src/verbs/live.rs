//! Verbs on a running container: `allow`, `deny`, `status CONTAINER`, `rules`.

use terok_shield::live::Container;

use crate::context::Context;
use crate::error::CliResult;
use crate::output;

fn open(ctx: &Context, name: &str) -> CliResult<Container> {
    Ok(Container::open(&ctx.state_root, name)?)
}

fn pending(live: bool) -> &'static str {
    if live {
        ""
    } else {
        " (not running: applies at its next start)"
    }
}

pub fn allow(ctx: &Context, name: &str, target: &str) -> CliResult {
    let change = open(ctx, name)?.allow(target, ctx.config.audit_enabled)?;
    output::print(&format!("Allowed {target} -> {} for {name}{}\n", change.address, pending(change.live)))
}

pub fn deny(ctx: &Context, name: &str, target: &str) -> CliResult {
    let change = open(ctx, name)?.deny(target, ctx.config.audit_enabled)?;
    output::print(&format!("Denied {target} ({}) for {name}{}\n", change.address, pending(change.live)))
}

pub fn status(ctx: &Context, name: &str, json: bool) -> CliResult {
    let state = open(ctx, name)?.state().as_str();
    if json {
        return output::print(&format!("{}\n", serde_json::json!({"container": name, "state": state})));
    }
    output::print(&format!("{state}\n"))
}

pub fn rules(ctx: &Context, name: &str) -> CliResult {
    let c = open(ctx, name)?;
    let listing = c.rules()?;
    if listing.trim().is_empty() {
        return output::print(&format!("No rules found for {name}\n"));
    }
    output::print(&format!("State: {}\n{listing}", terok_shield_ruleset::classify(&listing).as_str()))
}
