//! `profiles`: the sorted union of bundled and user profile names.

use crate::context::Context;
use crate::error::CliResult;
use crate::output;

pub fn run(ctx: &Context) -> CliResult {
    output::lines(&ctx.profile_dirs().list())
}
