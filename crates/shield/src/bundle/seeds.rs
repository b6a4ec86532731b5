//! The seed elements of a bundle, derived from its policy files and address caches.
//!
//! prepare writes them into `ruleset.nft`; the hook derives them again at every start, so
//! the runtime overlay (`policy/live`) in force when the container stopped is in force
//! when it starts again.

use terok_shield_ruleset::Seeds;

use crate::bundle::layout::{Bundle, DENY_RESOLVED, OVERRIDE_RESOLVED, RESOLVED_IPS};
use crate::bundle::policy::read_tiers;
use crate::error::Result;

/// The override tier alone (a deny checks it; the whole seed reads every address cache).
pub fn overrides(bundle: &Bundle) -> Result<Vec<terok_shield_policy::IpNet>> {
    Ok(read_tiers(&bundle.dir)?.effective().t10_seed(&bundle.read_addresses(OVERRIDE_RESOLVED)?))
}

pub fn derive(bundle: &Bundle) -> Result<Seeds> {
    let effective = read_tiers(&bundle.dir)?.effective();
    Ok(Seeds {
        t40_project_allow: effective.t40_seed(&bundle.read_addresses(RESOLVED_IPS)?),
        t20_security_deny: effective.t20_seed(&bundle.read_addresses(DENY_RESOLVED)?),
        t10_override: effective.t10_seed(&bundle.read_addresses(OVERRIDE_RESOLVED)?),
        ..Seeds::default()
    }
    .with_ports(&effective))
}
