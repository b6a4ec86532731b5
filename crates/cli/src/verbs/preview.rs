//! `preview`: the ruleset that would be applied, with default network inputs (no ports, no
//! gateways; DNS as the configured tier has it: none with the shield's resolver, else the
//! pasta forwarder). With `--profiles`, `--allow` or `--deny` it also shows the seed
//! elements of that policy; domains are listed, not resolved.

use terok_shield::config::DnsChoice;
use terok_shield::dns::DnsMode;
use terok_shield_policy::{Action, Entry, TierSet};
use terok_shield_ruleset::{render_table, seed_statements, NetFacts, Posture, Seeds};

use crate::args::profile_list;
use crate::context::Context;
use crate::error::{CliError, CliResult};
use crate::output;

pub struct Request {
    pub down: bool,
    pub disengage: bool,
    pub profiles: Option<String>,
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

pub fn run(ctx: &Context, req: Request) -> CliResult {
    let posture = match (req.down, req.disengage) {
        (false, true) => return Err(CliError::Message("--disengage requires --down".into())),
        (true, true) => Posture::Disengaged,
        (true, false) => Posture::Down,
        (false, false) => Posture::Up,
    };
    let tiers = policy(ctx, &req)?;
    let resolver = ctx.config.dns_tier == DnsChoice::Mode(DnsMode::Resolver);
    let facts = if resolver { NetFacts::preview().without_dns() } else { NetFacts::preview() };
    let mut text = format!("# Ruleset preview ({}):\n{}", posture.label(), render_table(posture, &facts));
    if let Some(tiers) = tiers {
        let eff = tiers.effective();
        let all =
            Seeds { t40_project_allow: eff.t40_seed(&[]), t20_security_deny: eff.t20_seed(&[]), ..Seeds::default() }
                .with_ports(&eff);
        let seeds = match posture {
            Posture::Up => all,
            Posture::Down => all.without_allows(),
            _ => Seeds::default(),
        };
        let max = terok_shield_ruleset::seeds::MAX_ELEMENTS_PER_STATEMENT;
        for stmt in seed_statements(&seeds, max, max) {
            text.push_str(&stmt);
            text.push('\n');
        }
        let mut domains: Vec<&str> = eff.allow_domains().into_iter().chain(eff.deny_domains()).collect();
        domains.extend(eff.scoped_domains().into_iter().filter(|d| !domains.contains(d)).collect::<Vec<_>>());
        if !domains.is_empty() {
            let how = if resolver { "answered by the shield's resolver" } else { "resolved at launch" };
            text.push_str(&format!("# {} domain(s) {how}: {}\n", domains.len(), domains.join(", ")));
        }
    }
    text.push('\n');
    output::print(&text)
}

/// The policy the flags describe, or `None` when no flag asked for one.
fn policy(ctx: &Context, req: &Request) -> CliResult<Option<TierSet>> {
    if req.profiles.is_none() && req.allow.is_empty() && req.deny.is_empty() {
        return Ok(None);
    }
    let names = req.profiles.as_deref().map(profile_list).unwrap_or_default();
    let mut tiers = TierSet { project_allow: ctx.profile_dirs().compose(&names)?, ..TierSet::default() };
    for (action, targets) in [(Action::Allow, &req.allow), (Action::Deny, &req.deny)] {
        for t in targets {
            let (target, ports) = terok_shield_policy::target::parse_scoped(t)?;
            let entry = Entry { ports, ..Entry::new(action, target) };
            terok_shield_policy::overlay::upsert(&mut tiers.live, entry);
        }
    }
    Ok(Some(tiers))
}
