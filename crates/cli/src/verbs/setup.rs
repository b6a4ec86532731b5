//! `setup [--user | --root]` and `uninstall [--user | --root]`.

use terok_shield::setup::installer::{self, Target};

use crate::context::Context;
use crate::error::CliResult;
use crate::output;

pub fn target(user: bool, root: bool) -> Option<Target> {
    match (user, root) {
        (true, _) => Some(Target::UserHooksD),
        (_, true) => Some(Target::System),
        _ => None,
    }
}

pub fn setup(ctx: &Context, target: Option<Target>) -> CliResult {
    let plan = installer::plan(&ctx.env, target)?;
    let via = if plan.sudo { " (through sudo)" } else { "" };
    output::print(&format!("Installing hooks to {}{via}...\n", plan.hooks_dir.display()))?;
    installer::install(&ctx.env, &plan, &ctx.helper()?.path)?;
    output::print("Done. Global hooks installed.\n")
}

pub fn uninstall(ctx: &Context, target: Option<Target>) -> CliResult {
    let plan = installer::plan(&ctx.env, target)?;
    for note in installer::uninstall(&ctx.env, &plan)? {
        output::warn(&note);
    }
    output::print(&format!("Removed the terok-shield hooks from {}.\n", plan.hooks_dir.display()))
}
