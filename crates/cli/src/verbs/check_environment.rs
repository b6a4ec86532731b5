//! `check-environment`: podman version, setup health, issues and the setup hint. Exit 0.

use terok_shield::envcheck::{check_environment, EnvironmentCheck};

use crate::context::Context;
use crate::error::CliResult;
use crate::output;

pub fn run(ctx: &Context, json: bool) -> CliResult {
    let check = gather(ctx)?;
    if json {
        return output::print(&format!("{}\n", to_json(&check)));
    }
    let mut text = format!(
        "podman_version={}\ndns_tier={}\nhooks={}\nhealth={}\n",
        check.podman_version.as_deref().unwrap_or("unknown"),
        check.dns_mode.map_or("unavailable", |m| m.as_str()),
        check.hooks,
        check.health
    );
    text.push_str(&hint_block(&check));
    output::print(&text)
}

pub fn gather(ctx: &Context) -> CliResult<EnvironmentCheck> {
    let probe_dir = ctx.default_state_dir();
    Ok(check_environment(&ctx.config, &ctx.env, &ctx.namespace_dir()?, Some(&probe_dir)))
}

/// Issues (indented) and the setup hint, each block after an empty line.
pub fn hint_block(check: &EnvironmentCheck) -> String {
    let mut text = String::new();
    if !check.issues.is_empty() {
        text.push('\n');
        for issue in &check.issues {
            text.push_str(&format!("  {issue}\n"));
        }
    }
    if !check.setup_hint.is_empty() {
        text.push_str(&format!("\n{}\n", check.setup_hint));
    }
    text
}

pub fn to_json(c: &EnvironmentCheck) -> serde_json::Value {
    serde_json::json!({
        "ok": c.ok,
        "podman_version": c.podman_version,
        "hooks": c.hooks,
        "health": c.health,
        "dns_tier": c.dns_mode.map(|t| t.as_str()),
        "issues": c.issues,
        "needs_setup": c.needs_setup,
        "setup_hint": c.setup_hint,
    })
}
