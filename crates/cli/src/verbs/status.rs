//! `status` without a container: the configuration overview and the environment hints.

use crate::context::Context;
use crate::error::CliResult;
use crate::output;
use crate::verbs::check_environment::{gather, hint_block, to_json};

pub fn run(ctx: &Context, json: bool) -> CliResult {
    let check = gather(ctx)?;
    let profiles = ctx.profile_dirs().list();
    let audit = if ctx.config.audit_enabled { "enabled" } else { "disabled" };
    if json {
        let v = serde_json::json!({
            "version": terok_shield::VERSION,
            "mode": "hook",
            "audit": audit,
            "profiles": profiles,
            "environment": to_json(&check),
        });
        return output::print(&format!("{v}\n"));
    }
    let profile_text = if profiles.is_empty() { "(none)".to_string() } else { profiles.join(", ") };
    let mut text = format!(
        "Version:  {}\nPodman:   {}\nMode:     hook\nHooks:    {}\nHealth:   {}\nAudit:    {}\nProfiles: {}\n",
        terok_shield::VERSION,
        check.podman_version.as_deref().unwrap_or("unknown"),
        check.hooks,
        check.health,
        audit,
        profile_text
    );
    text.push_str(&hint_block(&check));
    output::print(&text)
}
