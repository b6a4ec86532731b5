//! Verbs on a running container: `allow`, `deny`, `status CONTAINER`, `rules`, `up`,
//! `down`, `quarantine`, `reset`.

use terok_shield::control::Container;
use terok_shield_ruleset::Posture;

use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::output;

fn open<'a>(ctx: &Context, name: &str) -> CliResult<Container<'a>> {
    Ok(Container::open(&ctx.state_root, name, ctx.helper()?, &output::report)?)
}

fn pending(in_force: bool) -> &'static str {
    if in_force {
        ""
    } else {
        " (not running: applies at its next start)"
    }
}

/// `allow` (true) or `deny` (false) of `target`: what changed, or an error when nothing did.
pub fn change(ctx: &Context, name: &str, target: &str, allow: bool) -> CliResult {
    let c = open(ctx, name)?;
    let changes =
        if allow { c.allow(target, ctx.config.audit_enabled)? } else { c.deny(target, ctx.config.audit_enabled)? };
    let verb = if allow { "allowed" } else { "denied" };
    if changes.is_empty() {
        return Err(CliError::Message(format!("No IPs {verb} for {name}")));
    }
    let list = changes.iter().map(|c| c.address.as_str()).collect::<Vec<_>>().join(", ");
    let pending = pending(changes.iter().all(|c| c.in_force));
    let line = if allow {
        format!("Allowed {target} -> {list} for {name}{pending}\n")
    } else {
        format!("Denied {target} ({list}) for {name}{pending}\n")
    };
    output::print(&line)
}

/// The state word; with port-scoped rules, a second line listing them (`ports: …`).
pub fn status(ctx: &Context, name: &str, json: bool) -> CliResult {
    let c = open(ctx, name)?;
    let state = c.state().as_str();
    let ports = c.port_rules()?;
    if json {
        let v = serde_json::json!({"container": name, "state": state, "ports": ports});
        return output::print(&format!("{v}\n"));
    }
    if ports.is_empty() {
        return output::print(&format!("{state}\n"));
    }
    output::print(&format!("{state}\nports: {}\n", ports.join(" ")))
}

pub fn rules(ctx: &Context, name: &str) -> CliResult {
    let c = open(ctx, name)?;
    let listing = c.rules()?;
    if listing.trim().is_empty() {
        return output::print(&format!("No rules found for {name}\n"));
    }
    output::print(&format!("State: {}\n{listing}", terok_shield_ruleset::classify(&listing).as_str()))
}

/// `--container-id`: checked before anything changes (the reference checks it after the
/// transition and leaves the container DOWN on a bad id).
fn check_id(id: Option<&str>) -> CliResult {
    match id {
        Some(i) if i.len() < 12 || i.len() > 64 || !i.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Err(CliError::Message(format!("Unsafe container id: {}", terok_shield_policy::sanitize::quoted(i))))
        }
        _ => Ok(()),
    }
}

pub fn up(ctx: &Context, name: &str, id: Option<&str>) -> CliResult {
    check_id(id)?;
    let c = open(ctx, name)?;
    c.set_posture(Posture::Up, ctx.config.audit_enabled)?;
    notify_hub(&c, name, id, "shield_up");
    output::print(&format!("Shield up for {name}\n"))
}

pub fn down(ctx: &Context, name: &str, id: Option<&str>, disengage: bool) -> CliResult {
    check_id(id)?;
    let posture = if disengage { Posture::Disengaged } else { Posture::Down };
    let c = open(ctx, name)?;
    c.set_posture(posture, ctx.config.audit_enabled)?;
    notify_hub(&c, name, id, if disengage { "shield_disengaged" } else { "shield_down" });
    output::print(&format!("Shield down for {name}{}\n", if disengage { " (disengaged)" } else { "" }))
}

/// Tell the clearance hub of container `id` (observe.md §6); silent when nobody listens.
fn notify_hub(c: &Container, name: &str, id: Option<&str>, kind: &str) {
    use terok_shield::observe::{dossier, event::Fields, hub};
    let Some(id) = id else { return };
    let dossier = dossier::overlay(&serde_json::Map::new(), c.bundle.meta_path().as_deref());
    let line = Fields::new().str("type", kind).str("container", name).map("dossier", &dossier).line();
    hub::notify(&hub::runtime_dir(), id, &line);
}

pub fn quarantine(ctx: &Context, name: &str) -> CliResult {
    open(ctx, name)?.set_posture(Posture::Quarantine, ctx.config.audit_enabled)?;
    output::print(&format!("Shield QUARANTINED for {name} — all traffic dropped\n"))
}

pub fn reset(ctx: &Context, name: &str) -> CliResult {
    open(ctx, name)?.reset(ctx.config.audit_enabled)?;
    output::print(&format!("Shield reset for {name} — learned allow state forgotten\n"))
}
