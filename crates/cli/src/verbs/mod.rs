//! One module per verb; [`dispatch`] routes an invocation to it.

mod check_environment;
mod clearance;
mod control;
mod logs;
mod prepare;
mod preview;
mod profiles;
mod setup;
mod status;
mod version;
mod watch;

use crate::args::{help, Invocation, Verb};
use crate::context::Context;
use crate::error::CliResult;
use crate::output;

pub fn dispatch(inv: Invocation) -> CliResult {
    if inv.cli.version {
        return version::run();
    }
    let Some(verb) = inv.cli.verb else {
        return output::print(&help());
    };
    let ctx = Context::load(inv.cli.state_dir.as_deref())?;
    match verb {
        Verb::Status { container: Some(c), json } => control::status(&ctx, &c, json),
        Verb::Status { container: None, json } => status::run(&ctx, json),
        Verb::Allow { container, target } => control::change(&ctx, &container, &target, true),
        Verb::Deny { container, target } => control::change(&ctx, &container, &target, false),
        Verb::Rules { container } => control::rules(&ctx, &container),
        Verb::Up { container, container_id } => control::up(&ctx, &container, container_id.as_deref()),
        Verb::Down { container, container_id, disengage } => {
            control::down(&ctx, &container, container_id.as_deref(), disengage)
        }
        Verb::Reset { container } => control::reset(&ctx, &container),
        Verb::Quarantine { container } => control::quarantine(&ctx, &container),
        Verb::Profiles => profiles::run(&ctx),
        Verb::Resolve { container, force } => prepare::resolve(&ctx, &container, force),
        Verb::CheckEnvironment { json } => check_environment::run(&ctx, json),
        Verb::Preview { down, disengage, profiles, allow, deny } => {
            preview::run(&ctx, preview::Request { down, disengage, profiles, allow, deny })
        }
        Verb::Logs { container, n, json } => logs::run(&ctx, container.as_deref(), n, json),
        Verb::Watch { container } => watch::run(&ctx, &container),
        Verb::SimpleClearance { container } => clearance::run(&ctx, &container),
        Verb::Prepare { container, profiles, json } => prepare::prepare(&ctx, &container, profiles.as_deref(), json),
        Verb::Run { container, profiles } => prepare::run(&ctx, &container, profiles.as_deref(), &inv.trailing),
        Verb::Setup { user, root } => setup::setup(&ctx, setup::target(user, root)),
        Verb::Uninstall { user, root } => setup::uninstall(&ctx, setup::target(user, root)),
    }
}
